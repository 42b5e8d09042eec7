"""Samples from the newest checkpoint in a workdir, without training: `python -m train sample FAMILY`."""

import os

import jax
import ml_collections

from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.loop import eval_batch_size_for, first_test_batch, initial_state, root_keys, saved_config
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
    config: ml_collections.ConfigDict = task.config
    data = task.load_data()
    compiled = compile_task(task, "jit", config.batch_size)
    keys = root_keys(config.seed)
    template = jax.device_put(initial_state(task, data, keys["init"]),
                              jax.sharding.NamedSharding(compiled.mesh, jax.sharding.PartitionSpec()))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        # Sampling may change any key that leaves the arrays as they are (truncation, prompts, ...).
        restored = ckpt.restore_latest(template, config.to_dict(), resumable=tuple(config.keys()), move_damaged=False)
    finally:
        ckpt.close()
    if restored is None:
        raise UserError(f"no readable checkpoint in {ckpt.directory!r}; expected a trained workdir")
    step, state, _ = restored
    batch = first_test_batch(compiled, data, eval_batch_size_for(config, compiled, data.num_test if data else 1))
    rng = jax.random.fold_in(keys["sample"], seed_offset) if seed_offset else keys["sample"]
    outputs = jax.device_get(compiled.sample(state, rng, batch))
    return write_samples(out_dir or os.path.join(workdir, "samples"), step, task.render_samples(outputs),
                         suffix=f"_seed{seed_offset}")
