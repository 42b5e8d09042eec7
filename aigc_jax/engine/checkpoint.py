"""Checkpoints through orbax's CheckpointManager: train state, data position, config, metadata.

Saves are asynchronous (orbax copies the arrays to host, then writes in a background thread) and
atomic (a step folder appears only when complete), the newest `keep` are kept. On restore the
newest step that reads back whole wins. Nothing here deletes a checkpoint: a step proven damaged
(files missing, truncated or corrupt, as orbax and tensorstore report them) is moved aside to
`checkpoints/damaged/STEP` with one warning line; any other failure to read (I/O, permissions, an
orbax format it does not know) stops with one line and leaves every checkpoint where it was.
"""

import json
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from aigc_jax.engine.config import changed_keys
from aigc_jax.errors import UserError

ITEMS = ("state", "data", "config", "meta")
DAMAGED = "damaged"  # sub-folder of the checkpoint directory where damaged steps are moved
# What tensorstore (orbax's array store) says when a file is missing, short or corrupt.
DAMAGE_WORDS = ("NOT_FOUND", "DATA_LOSS", "OUT_OF_RANGE", "corruption detected", "Error decoding",
                "was not found in the checkpoint")


def is_damage(error: BaseException) -> bool:
    """True when `error` (or its cause) proves the checkpoint's own files missing, short or corrupt;
    False for anything that may pass or is not the files' fault (I/O, permissions, versions)."""
    seen = error
    while seen is not None:
        if isinstance(seen, PermissionError):
            return False
        if isinstance(seen, (json.JSONDecodeError, FileNotFoundError)):
            return True
        if isinstance(seen, (ValueError, KeyError)) and any(w in str(seen) for w in DAMAGE_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


def _shapes_by_path(tree) -> dict:
    """{"a/b/0/c": shape} of a tree of arrays or of orbax's array metadata, whatever the node types
    (a live TrainState's attributes and the saved tree's dict keys give the same paths)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path):
            tuple(getattr(v, "shape", ())) for path, v in leaves}


def first_difference(saved: dict, wanted: dict) -> str | None:
    """The first path whose presence or shape differs, described (parameters before optimizer
    state: they say more); None if equal."""
    for path in sorted(set(saved) | set(wanted), key=lambda p: ("params" not in p.split("/"), p)):
        if path not in saved:
            return f"{path} {wanted[path]} is not in the checkpoint"
        if path not in wanted:
            return f"the checkpoint's {path} {saved[path]} is not in this model"
        if saved[path] != wanted[path]:
            return f"{path} is {saved[path]} in the checkpoint and {wanted[path]} in this model"
    return None


def check_same_run(where: str, saved_family, saved_config: dict, config: dict, resumable=()) -> None:
    """UserError unless `config` continues the run saved at `where`: same family, and no key changed
    but those a resumed run may change (engine.config.RESUMABLE and `resumable`)."""
    if saved_family != config.get("family"):
        raise UserError(f"{where} is of family {saved_family!r}; expected {config.get('family')!r} "
                        "(use another --workdir or --fresh)")
    changed = changed_keys(saved_config, config, resumable)
    if changed:
        raise UserError(f"{where} was trained with other settings ({'; '.join(changed)}); a resumed run "
                        "may change only how long and how often (steps, *_every, keep_checkpoints, "
                        "nan_policy, parallel); expected the saved values (drop those overrides, or use "
                        "--fresh or another --workdir)")


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

    def read_json(self, step: int) -> dict:
        """{"meta", "data", "config"} of `step` (the small items, no arrays)."""
        out = self.manager.restore(step, args=ocp.args.Composite(**{k: ocp.args.JsonRestore() for k in ITEMS[1:]}))
        return {k: out[k] for k in ITEMS[1:]}

    def restore(self, step: int, target_state) -> tuple:
        """(state, data position) of `step`, laid out like `target_state` (shapes, dtypes, shardings)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return out.state, out.data

    def restore_latest(self, target_state, config: dict, resumable=(), move_damaged: bool = True):
        """(step, state, data position) of the newest good checkpoint, or None when there is none.

        Raises UserError, touching nothing, when the newest readable step is of another family, was
        trained with other settings than `config` (keys outside RESUMABLE and `resumable`), holds
        other arrays than `target_state` (compared by path and shape), or cannot be read for a
        reason other than damage. A damaged step is moved aside (`move_damaged`) or skipped, and
        the next older one is tried: a good newer step is never passed over.
        """
        for step in reversed(self.all_steps()):
            try:
                saved = self.read_json(step)
                self._check_fits(step, saved, target_state, config, resumable)
                state, data = self.restore(step, target_state)
            except UserError:
                raise
            except Exception as e:
                if not os.path.isdir(os.path.join(self.directory, str(step))):
                    continue  # removed while we looked (another run's cleanup): nothing to read
                if not is_damage(e):
                    raise UserError(f"cannot read checkpoint step {step} in {self.directory} ({_cause(e)}); "
                                    "every checkpoint was left as it is; expected a readable checkpoint "
                                    "(fix the cause and run again)") from None
                self._set_aside(step, e, move_damaged)
                continue
            return step, state, data
        return None

    def _check_fits(self, step: int, saved: dict, target_state, config: dict, resumable) -> None:
        """A checkpoint of another family, other settings or another model is the user's mistake,
        not damage: say exactly what differs, touch nothing."""
        where = f"checkpoint step {step} in {self.directory}"
        check_same_run(where, saved["meta"].get("family"), saved["config"], config, resumable)
        tree = self.manager.item_metadata(step)["state"]
        if tree is None:
            return  # no array metadata: the restore below reads the arrays or reports the damage
        problem = first_difference(_shapes_by_path(getattr(tree, "tree", tree)), _shapes_by_path(target_state))
        if problem:
            changed = changed_keys(saved["config"], config)
            why = (f"config keys that differ: {'; '.join(changed)}" if changed else
                   "the saved config matches this one, so the model's code changed")
            raise UserError(f"{where} does not fit this model: {problem} ({why}); expected the same model "
                            "(use another --workdir or --fresh)")

    def _set_aside(self, step: int, error: Exception, move: bool) -> None:
        source = os.path.join(self.directory, str(step))
        if not move:
            print(f"warning: checkpoint step {step} in {self.directory} is damaged ({_cause(error)}); "
                  "skipping it", file=sys.stderr)
            return
        target = os.path.join(self.directory, DAMAGED, str(step))
        suffix = 1
        while os.path.exists(target):  # the same step damaged again after a later save
            target = os.path.join(self.directory, DAMAGED, f"{step}.{suffix}")
            suffix += 1
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(source, target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"aigc_jax_set_aside_{step}")
        self.manager.reload()
        print(f"warning: checkpoint step {step} in {self.directory} is damaged ({_cause(error)}); moved it "
              f"to {target} and trying the next older one", file=sys.stderr)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def latest_config(directory: str) -> tuple[int, dict, str] | None:
    """(step, config, family) saved with the newest step whose small items read back, or None when
    there is no checkpoint. Reads only: a damaged step is left for `restore_latest` to deal with."""
    if not os.path.isdir(directory):
        return None
    ckpt = Checkpointer(directory)
    try:
        for step in reversed(ckpt.all_steps()):
            try:
                saved = ckpt.read_json(step)
            except Exception as e:
                if is_damage(e):
                    continue
                raise UserError(f"cannot read checkpoint step {step} in {ckpt.directory} ({_cause(e)}); "
                                "expected a readable checkpoint (fix the cause and run again)") from None
            return step, saved["config"], saved["meta"].get("family")
        return None
    finally:
        ckpt.close()


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


def _path(tree) -> list[str]:
    """The keys down to the first non-trivial level, for messages: {"params": {"encoder": ...}} -> params, encoder."""
    out = []
    while isinstance(tree, dict) and len(tree) == 1:
        key = next(iter(tree))
        out.append(key)
        tree = tree[key]
    return out
