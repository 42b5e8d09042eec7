"""The training loop every family shares: data -> step -> metrics -> eval -> samples -> checkpoint.

Randomness comes from one root key (the config's seed): step `s` uses `fold_in(train_key, s)` and
batch `s` is a pure function of (seed, s), so a run resumed from a checkpoint computes exactly what
an uninterrupted run computes. SIGTERM or Ctrl-C finishes the current step, saves, and returns
(every process after the same step: `engine/stopping.py`).
"""

import json
import os
import shutil
import time

import jax

from aigc_jax.engine.checkpoint import Checkpointer, check_same_run, latest_config
from aigc_jax.engine.compile import check_fits
from aigc_jax.engine.guard import FLAG, NonFiniteError
from aigc_jax.engine.metrics import MetricWriter, progress_bar, to_python, write_atomically
from aigc_jax.engine.samples import write_samples
from aigc_jax.engine.stopping import StopAgreement, StopRequested, StopSignal, signal_name
from aigc_jax.errors import UserError
from aigc_jax.engine.run import Run


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_workdir(workdir: str) -> None:
    """Fail before any work if `workdir` cannot hold checkpoints and logs; create nothing (a run
    that fails validation leaves no directory behind)."""
    existing = _nearest_existing(workdir)
    if not os.path.isdir(existing):
        raise UserError(f"workdir {workdir!r} is not writable ({existing!r} is a file); expected a writable directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"workdir {workdir!r} is not writable ({existing!r} is read-only); expected a writable directory")


def check_free_space(workdir: str, state, keep: int) -> None:
    """Fail now, not after an hour, when the workdir's disk cannot hold the checkpoints we will keep."""
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes"))
    needed = (keep + 1) * state_bytes + (16 << 20)  # one more in flight, plus logs and samples
    free = shutil.disk_usage(_nearest_existing(workdir)).free
    if free < needed:
        raise UserError(f"workdir {workdir!r} has {free / 2**20:.0f} MiB free; expected at least "
                        f"{needed / 2**20:.0f} MiB for {keep} checkpoints of this model")


def saved_config(workdir: str, family: str) -> dict | None:
    """The config a workdir's newest checkpoint was trained with (None: no checkpoint yet), for
    building the task that resumes it; a checkpoint of another family is a UserError."""
    found = latest_config(os.path.join(workdir, "checkpoints"))
    if found is None:
        return None
    step, config, saved_family = found
    if saved_family != family:
        raise UserError(f"checkpoint in {os.path.abspath(os.path.join(workdir, 'checkpoints'))} is of family "
                        f"{saved_family!r}; expected {family!r} (use another --workdir or --fresh)")
    return config


def _due(step: int, every: int, last: bool) -> bool:
    return last or (every > 0 and step % every == 0)


def _summary(config, workdir: str) -> dict:
    """What a run reports, before it has run: `train_and_evaluate` fills in the rest."""
    return {"family": config.family, "step": 0, "started": False, "stopped_by": None, "skipped_updates": [],
            "metrics": {}, "train_metrics": {}, "eval_metrics": {}, "train_step": None, "eval_step": None,
            "steps_per_s": float("nan"), "workdir": os.path.abspath(workdir),
            "checkpoints": os.path.abspath(os.path.join(workdir, "checkpoints")), "checkpoint_steps": [],
            "metrics_file": os.path.abspath(os.path.join(workdir, "metrics.jsonl")),
            "tensorboard": os.path.abspath(os.path.join(workdir, "tensorboard")), "samples": []}


def _stopped_before_start(config, workdir: str, signals: StopSignal) -> dict:
    return {**_summary(config, workdir), "stopped_by": signal_name(signals.code) or "a stop request"}


def train_and_evaluate(task, workdir: str, fresh: bool = False, log=print, show_progress: bool = True) -> dict:
    """Train `task` in `workdir` (resuming from its newest checkpoint) and return a summary."""
    with StopSignal() as signals:
        return _train(task, workdir, fresh, log, show_progress, signals)


def _train(task, workdir: str, fresh: bool, log, show_progress: bool, signals: StopSignal) -> dict:
    config = task.config
    check_workdir(workdir)
    check_fits(config.parallel, config.batch_size)  # a batch the devices do not divide: said first
    if not fresh:  # a resume that would change the run fails now, before any data is read
        found = latest_config(os.path.join(workdir, "checkpoints"))
        if found is not None:
            step, saved, family = found
            check_same_run(f"checkpoint step {step} in {os.path.abspath(os.path.join(workdir, 'checkpoints'))}",
                           family, saved, config.to_dict(), task.resumable_keys)
    try:
        data = task.load_data()
    except StopRequested:  # e.g. while the judge it needs was trained: nothing of this run written
        return _stopped_before_start(config, workdir, signals)
    stop = StopAgreement(signals)
    chief = jax.process_index() == 0
    run = Run(task, data)
    task = run.task  # bound to its data: the constants its steps and renderers need
    check_free_space(workdir, run.state, config.keep_checkpoints)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    summary = _summary(config, workdir)
    if stop.now() is not None:  # before anything is written
        return _stopped_before_start(config, workdir, signals)

    os.makedirs(workdir, exist_ok=True)
    if fresh and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    ckpt = Checkpointer(ckpt_dir, keep=config.keep_checkpoints)
    try:
        start_step = run.restore(ckpt) or 0
        if start_step:
            log(f"resumed from step {start_step}")
        name = stop.now()
    except BaseException:
        ckpt.close()
        raise
    if name is not None:  # during the restore: the checkpoints are as they were
        steps = ckpt.all_steps()
        ckpt.close()
        return {**summary, "step": start_step, "stopped_by": name, "checkpoint_steps": steps}
    if chief:
        write_atomically(os.path.join(workdir, "config.json"), json.dumps(config.to_dict(), indent=2, sort_keys=True))
    writer = MetricWriter(workdir, start_step, enabled=chief)
    # Families without a dataset (environments) may still evaluate: they name their own eval inputs,
    # e.g. one entry per episode, and eval_step draws everything else from the per-example keys.
    evaluates = run.test_split is not None
    sample_dir = os.path.join(workdir, "samples")

    last_train, last_eval, sample_paths = {}, {}, []
    train_step_logged = eval_step_logged = None
    bar = progress_bar(start_step, config.steps, config.family, enabled=chief and show_progress)
    timed_from, timed_steps, stopped_by = None, 0, None

    def resolve_checks() -> None:
        """Act on non-finite steps since the last sync: stop before anything is written (the Run
        raises), or skip."""
        for bad_step, names in run.check_updates():  # kept in run.skipped_updates
            log(f"warning: skipped the update of step {bad_step}: non-finite {', '.join(names)}")

    step = start_step
    try:
        for step in range(start_step + 1, config.steps + 1):
            metrics = run.advance()
            stopped_by = stop.after_step()  # agreed by every process: all stop after this same step
            last = step == config.steps or stopped_by is not None
            if timed_from is None:  # the first step compiles: time the ones after it
                jax.block_until_ready(metrics)
                timed_from = time.perf_counter()
            else:
                timed_steps += 1
            needs_log = _due(step, config.log_every, last)
            needs_eval = evaluates and _due(step, config.eval_every, step == config.steps)
            needs_sample = _due(step, config.sample_every, step == config.steps)
            needs_ckpt = _due(step, config.ckpt_every, last)
            if needs_log or needs_eval or needs_sample or needs_ckpt:
                resolve_checks()
            if needs_log:
                last_train = to_python({k: v for k, v in jax.device_get(metrics).items() if k != FLAG})
                train_step_logged = step
                writer.write(step, last_train)
                bar.set_postfix({task.main_metric: f"{last_train.get(task.main_metric, float('nan')):.4f}"})
            if needs_eval or needs_sample:
                canonical = run.canonical_state()
                if needs_eval:
                    last_eval = run.evaluate(canonical)
                    eval_step_logged = step
                    writer.write(step, last_eval)
                if needs_sample:  # every process runs the (collective) sampler; the chief writes
                    outputs = run.sample_outputs(0, canonical)
                    if chief:
                        sample_paths = write_samples(sample_dir, step, task.render_samples(outputs), writer)
            if needs_ckpt:
                run.checkpoint(ckpt, step)
            bar.update(1)
            if stopped_by is not None:
                break
        jax.block_until_ready(run.state)
        elapsed = time.perf_counter() - timed_from if timed_from else 0.0
    except NonFiniteError as e:
        good = ckpt.all_steps()
        raise NonFiniteError(
            f"{e}, nothing after step {e.step - 1} was saved; last good checkpoint: "
            f"{f'step {good[-1]} in {ckpt.directory}' if good else 'none'}; "
            "--config.nan_policy=skip skips such updates instead", e.step, e.names) from None
    finally:
        bar.close()
        ckpt.close()
        writer.close()
    return {
        **summary, "step": step, "started": True, "stopped_by": stopped_by, "skipped_updates": run.skipped_updates,
        "metrics": {**last_train, **last_eval}, "train_metrics": last_train, "eval_metrics": last_eval,
        "train_step": train_step_logged, "eval_step": eval_step_logged,
        "steps_per_s": timed_steps / elapsed if elapsed > 0 else float("nan"),
        "checkpoint_steps": ckpt.all_steps(),
        "samples": [os.path.abspath(p) for p in sample_paths],
    }
