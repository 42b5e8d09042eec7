"""The public Python API, re-exported by `import aigc_jax`: what a research script calls.

    import aigc_jax

    aigc_jax.families()                                   # every family, built-in and registered
    task = aigc_jax.build("vae", latent=8, batch_size=64)  # validated config; UserError on bad values
    run = aigc_jax.Run(task)                              # compiled step, data, keys, placed state
    run.step(); run.train(100); run.evaluate(); run.sample(seed=0)
    run.save("/tmp/w"); run = aigc_jax.load("/tmp/w")     # orbax checkpoint + config + family
    aigc_jax.train("vae", workdir="/tmp/v", steps=200)    # the CLI's loop: logs, samples, checkpoints

    @aigc_jax.register                                    # a family of your own (docs/your_family.md)
    class MyFamily(aigc_jax.Task): ...                    # with aigc_jax.base_config, aigc_jax.create_train_state
"""

import os

from aigc_jax.engine.checkpoint import Checkpointer, latest_config
from aigc_jax.engine.config import base_config
from aigc_jax.engine.run import Run
from aigc_jax.engine.state import create_train_state
from aigc_jax.errors import UserError
from aigc_jax.tasks import registry
from aigc_jax.tasks.base import Task

build = registry.build
register = registry.register


def families() -> list[str]:
    """Names of every family: built-in, registered in this process, and offered by installed
    packages through the `aigc_jax.families` entry point group."""
    return registry.names()


def load(workdir: str, **values) -> Run:
    """The run saved in `workdir` (by `Run.save` or `python -m train`) at its newest checkpoint, with
    the config it was trained with; `values` may change what leaves the arrays as they are (steps,
    sampling settings, ...)."""
    found = latest_config(os.path.join(workdir, "checkpoints"))
    if found is None:
        raise UserError(f"no checkpoint in {os.path.abspath(os.path.join(workdir, 'checkpoints'))!r}; expected "
                        "a workdir written by Run.save or python -m train")
    _, config, family = found
    run = Run(build(family, trained=config, **values))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        if run.restore(ckpt, resumable=tuple(run.config.keys()), move_damaged=False) is None:
            raise UserError(f"no readable checkpoint in {ckpt.directory!r}; expected a trained workdir")
    finally:
        ckpt.close()
    return run


def train(family: str, workdir: str, fresh: bool = False, quiet: bool = True, **values) -> dict:
    """`python -m train FAMILY --workdir WORKDIR --config.KEY=VALUE ...` from Python: the whole loop
    (metrics.jsonl, TensorBoard, samples, checkpoints, exact resume). Returns the run's summary
    (final metrics, the steps they are from, paths)."""
    from aigc_jax.engine.loop import saved_config, train_and_evaluate

    build(family, **values)  # every value checked before a workdir is read
    trained = None if fresh else saved_config(workdir, family)
    task = build(family, trained=trained, **values)
    return train_and_evaluate(task, workdir, fresh=fresh, log=(lambda *a: None) if quiet else print,
                              show_progress=not quiet)


__all__ = ["Run", "Task", "base_config", "build", "create_train_state", "families", "load", "register", "train"]
