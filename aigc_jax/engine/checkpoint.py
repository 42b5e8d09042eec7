"""Checkpoints through orbax's CheckpointManager: train state, data position, config, metadata.

Saves are asynchronous (orbax copies the arrays to host, then writes in a background thread) and
atomic (a step folder appears only when complete), the newest `keep` are kept. On restore the
newest step that reads back whole wins; a damaged newer one is reported in one line and skipped.
"""

import math
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from aigc_jax.errors import UserError

ITEMS = ("state", "data", "config", "meta")


def _shapes(tree) -> list[tuple]:
    """Sorted leaf shapes: comparable between a live state and orbax's saved metadata tree."""
    leaves = jax.tree.leaves(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return sorted(tuple(x.shape) for x in leaves if hasattr(x, "shape"))


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        # cleanup_tmp_directories: a save cut short by a kill leaves a *.orbax-checkpoint-tmp folder
        # (never a half-written step folder); it is removed on the next start.
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                               enable_async_checkpointing=True)
        handlers = {"state": ocp.StandardCheckpointHandler(), **{k: ocp.JsonCheckpointHandler() for k in ITEMS[1:]}}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, data: dict, config: dict, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data),
            config=ocp.args.JsonSave(config),
            meta=ocp.args.JsonSave(meta),
        ), force=True)

    def read_meta(self, step: int) -> dict:
        out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore(),
                                                                 data=ocp.args.JsonRestore()))
        return {"meta": out.meta, "data": out.data}

    def restore(self, step: int, target_state) -> tuple:
        """(state, data position) of `step`, laid out like `target_state` (shapes, dtypes, shardings)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return out.state, out.data

    def restore_latest(self, target_state, family: str):
        """(step, state, data) of the newest readable checkpoint, or None when there is none.

        An unreadable newer checkpoint (truncated, corrupted) is reported in one line and deleted,
        so training resumes from the newest good one and can save that step number again.
        """
        for step in reversed(self.all_steps()):
            try:
                meta = self.read_meta(step)["meta"]
            except Exception as e:
                self._drop_unreadable(step, e)
                continue
            if meta.get("family") != family:
                raise UserError(f"checkpoint in {self.directory} is of family {meta.get('family')!r}; "
                                f"expected {family!r} (use another --workdir or --fresh)")
            self._check_shapes(step, target_state)
            try:
                state, data = self.restore(step, target_state)
            except Exception as e:
                self._drop_unreadable(step, e)
                continue
            return step, state, data
        return None

    def _check_shapes(self, step: int, target_state) -> None:
        """A checkpoint of another model size is the user's mistake, not damage: say so, touch nothing."""
        try:
            saved = self.manager.item_metadata(step)["state"]
        except Exception:
            return  # unreadable metadata: the restore below reports it as damage
        want, have = _shapes(target_state), _shapes(saved)
        if want != have:
            sizes = [sum(math.prod(shape) for shape in shapes) for shapes in (have, want)]
            raise UserError(f"checkpoint step {step} in {self.directory} does not fit this model (saved "
                            f"{len(have)} arrays, {sizes[0]:,} values; model {len(want)} arrays, {sizes[1]:,} "
                            "values); expected the same model config (use another --workdir or --fresh)")

    def _drop_unreadable(self, step: int, error: Exception) -> None:
        print(f"warning: checkpoint step {step} in {self.directory} is unreadable ({type(error).__name__}); "
              "deleting it and trying an older one", file=sys.stderr)
        self.manager.delete(step)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def restore_subtree(directory: str, subtree: dict, family: str) -> tuple[int, dict]:
    """(step, values) of only `subtree` of the newest checkpoint's state in `directory`.

    `subtree` is a nested dict of `jax.ShapeDtypeStruct`s naming part of the saved state, e.g.
    {"params": {"encoder": ...}}: orbax's partial restore (`PyTreeRestore(partial_restore=True)`)
    reads those arrays alone, as numpy, and nothing else of the state. A missing checkpoint, one of
    another family, or one whose arrays there have other shapes is a UserError.
    """
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise UserError(f"no checkpoint directory {directory!r}; expected the workdir of a trained {family!r} run")
    manager = ocp.CheckpointManager(directory, item_handlers={
        "state": ocp.PyTreeCheckpointHandler(), **{k: ocp.JsonCheckpointHandler() for k in ITEMS[1:]}})
    try:
        step = manager.latest_step()
        if step is None:
            raise UserError(f"no checkpoint in {directory!r}; expected the workdir of a trained {family!r} run")
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        if meta.get("family") != family:
            raise UserError(f"checkpoint in {directory} is of family {meta.get('family')!r}; expected {family!r}")
        saved = manager.item_metadata(step)["state"]
        saved = getattr(saved, "tree", saved)  # orbax's TreeMetadata around the nested dict
        path = _path(subtree)
        for key in path:  # the saved node the subtree names: compared whole, so extra layers count too
            saved = saved.get(key) if isinstance(saved, dict) else None
        if _shapes_by_path(saved) != _shapes_by_path(_at(subtree, path)):
            raise UserError(f"checkpoint step {step} in {directory} does not fit this model: its "
                            f"{'/'.join(path)} arrays differ in names or shapes; expected a {family!r} run "
                            "of the same model config")
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), subtree)
        out = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=subtree, restore_args=restore_args, partial_restore=True)))
        return step, out.state
    finally:
        manager.close()


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _shapes_by_path(tree) -> dict:
    """{key path: shape} of a tree of arrays or of orbax's array metadata ({} for None)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {jax.tree_util.keystr(k): tuple(getattr(v, "shape", ())) for k, v in leaves}


def _path(tree) -> list[str]:
    """The keys down to the first non-trivial level, for messages: {"params": {"encoder": ...}} -> params, encoder."""
    out = []
    while isinstance(tree, dict) and len(tree) == 1:
        key = next(iter(tree))
        out.append(key)
        tree = tree[key]
    return out
