"""Samples from the newest checkpoint in a workdir, without training: `python -m train sample FAMILY`."""

import os

from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.loop import saved_config
from aigc_jax.engine.run import Run
from aigc_jax.engine.samples import write_samples
from aigc_jax.errors import UserError


def _no_checkpoint(ckpt_dir: str, family: str, workdir: str) -> UserError:
    return UserError(f"no checkpoint in {os.path.abspath(ckpt_dir)!r}; expected a trained workdir "
                     f"(train first: python -m train {family} --workdir {workdir})")


def trained_config(workdir: str, family: str) -> dict:
    """The config saved with the newest checkpoint in `workdir` (what the model was trained with)."""
    config = saved_config(workdir, family)
    if config is None:
        raise _no_checkpoint(os.path.join(workdir, "checkpoints"), family, workdir)
    return config


def sample_from_workdir(task, workdir: str, out_dir: str | None = None, seed_offset: int = 0) -> list[str]:
    """Restore the newest checkpoint, run the task's `sample`, write the outputs; return their paths.

    The files are named `{name}_{step}_seed{seed_offset}`, so they never overwrite the training
    run's own samples (`{name}_{step}`) or another seed's. The workdir is only read (a damaged
    checkpoint is skipped, not moved)."""
    run = Run(task, mode="jit")
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        # Sampling may change any key that leaves the arrays as they are (truncation, prompts, ...).
        step = run.restore(ckpt, resumable=tuple(task.config.keys()), move_damaged=False, same_position=False)
    finally:
        ckpt.close()
    if step is None:
        raise UserError(f"no readable checkpoint in {ckpt.directory!r}; expected a trained workdir")
    return write_samples(out_dir or os.path.join(workdir, "samples"), step, run.task.render_samples(run.sample_outputs(seed_offset)),
                         suffix=f"_seed{seed_offset}")
