"""Checkpoints through orbax's CheckpointManager: train state, data position, config, metadata.

Saves are asynchronous (orbax copies the arrays to host, then writes in a background thread) and
atomic (a step folder appears only when complete), the newest `keep` are kept. On restore the
newest step that reads back whole wins; a damaged newer one is reported in one line and skipped.
"""

import os
import sys

import jax
import orbax.checkpoint as ocp

from aigc_jax.errors import UserError

ITEMS = ("state", "data", "config", "meta")


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

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
        """(step, state, data) of the newest readable checkpoint, or None when there is none."""
        for step in reversed(self.all_steps()):
            try:
                meta = self.read_meta(step)["meta"]
            except Exception as e:  # a damaged checkpoint: fall back to an older one
                print(f"warning: checkpoint step {step} in {self.directory} is unreadable "
                      f"({type(e).__name__}); trying an older one", file=sys.stderr)
                continue
            if meta.get("family") != family:
                raise UserError(f"checkpoint in {self.directory} is of family {meta.get('family')!r}; "
                                f"expected {family!r} (use another --workdir or --fresh)")
            try:
                state, data = self.restore(step, target_state)
            except (ValueError, KeyError) as e:
                if "shape" in str(e).lower() or "structure" in str(e).lower() or isinstance(e, KeyError):
                    raise UserError(f"checkpoint step {step} in {self.directory} does not fit this model "
                                    f"({str(e).splitlines()[0][:120]}); expected the same model config "
                                    f"(use another --workdir or --fresh)") from None
                raise
            except Exception as e:
                print(f"warning: checkpoint step {step} in {self.directory} is unreadable "
                      f"({type(e).__name__}); trying an older one", file=sys.stderr)
                continue
            return step, state, data
        return None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
