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
import numpy as np

from aigc_jax.data import sampler
from aigc_jax.engine.checkpoint import Checkpointer, check_same_run, latest_config
from aigc_jax.engine.compile import CompiledTask, compile_task
from aigc_jax.engine.guard import FLAG, NonFiniteError, PendingChecks
from aigc_jax.engine.metrics import MetricWriter, progress_bar, to_python, write_atomically
from aigc_jax.engine.samples import write_samples
from aigc_jax.engine.state import regularise
from aigc_jax.engine.stopping import StopAgreement, StopRequested, StopSignal, signal_name
from aigc_jax.errors import UserError
from aigc_jax.eval.linear_probe import probe_accuracy


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


def check_position(saved: dict, expected: dict, step: int) -> None:
    """The restored data position must be the one this run computes for that step: a dataset that
    changed size under a run would silently shift every later batch."""
    if saved != expected:
        diff = "; ".join(f"{k}: {saved.get(k)!r} -> {expected.get(k)!r}" for k in sorted(set(saved) | set(expected))
                         if saved.get(k) != expected.get(k))
        raise UserError(f"checkpoint step {step} was saved at another data position ({diff}); expected the "
                        "same dataset as the run it continues (use --fresh or another --workdir)")


def host_batch(arrays: dict, indices: np.ndarray) -> dict:
    """This process's slice of the global batch `indices`."""
    local = np.array_split(indices, jax.process_count())[jax.process_index()]
    return sampler.take(arrays, local)


def root_keys(seed: int) -> dict:
    """The run's named keys, all from the one config seed."""
    names = ("init", "train", "eval", "sample")
    return dict(zip(names, jax.random.split(jax.random.key(seed), len(names))))


def initial_state(task, data, rng):
    """The task's freshly initialised state, built from the first training batch, with the engine's
    regularisation (config.l1, config.l2) attached to its TrainStates (`state.regularise`)."""
    first = {} if data is None else host_batch(
        data.train, sampler.batch_indices(data.num_train, task.config.batch_size, 0, task.config.seed))
    batch = {**first, "key": jax.random.split(rng, task.config.batch_size // jax.process_count())}
    return strongly_typed(regularise(jax.jit(task.init)(rng, batch), task.config, task.name))


def strongly_typed(state):
    """`state` with weakly typed arrays (a parameter initialised from a Python float, say) made
    strongly typed. A train step returns strongly typed arrays, so a weakly typed initial state
    would change the step's input types after one step and make it compile a second time."""
    return jax.tree.map(lambda x: x.astype(x.dtype) if getattr(x, "weak_type", False) else x, state)


def first_test_batch(compiled: CompiledTask, data, size: int) -> dict:
    """The first `size` test examples (repeated if the split is smaller), for samples that need inputs."""
    if data is None:
        return {}
    batch = sampler.take(data.test, np.arange(size) % data.num_test)
    return compiled.place_eval_batch(host_batch(batch, np.arange(size)))


def padded_batches(split: dict, batch_size: int):
    """(start, batch with "mask", number of real rows) over a whole split, the last batch padded."""
    n = len(next(iter(split.values())))
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        pad = batch_size - len(idx)
        batch = sampler.take(split, np.concatenate([idx, np.zeros(pad, np.int64)]))
        batch["mask"] = np.concatenate([np.ones(len(idx)), np.zeros(pad)]).astype(np.float32)
        yield start, batch, len(idx)


def split_features(compiled: CompiledTask, state, split: dict, batch_size: int) -> np.ndarray:
    """The task's probe features of every example of `split`, on the host: [N, D]."""
    out = []
    for _, batch, real in padded_batches(split, batch_size):
        placed = compiled.place_eval_batch(host_batch(batch, np.arange(batch_size)))
        out.append(np.asarray(jax.device_get(compiled.probe_features(state, placed)))[:real])
    return np.concatenate(out)


def evaluate(task, compiled: CompiledTask, state, test: dict, rng, eval_batch_size: int, train: dict | None = None) -> dict:
    """Sum `eval_step` over the whole test split (padded, masked), then average and finalize; with
    `train` and a task that sets `linear_probe`, add the probe's test accuracy."""
    n = len(next(iter(test.values())))
    totals = None
    for start, batch, _ in padded_batches(test, eval_batch_size):
        sums = compiled.eval_step(state, compiled.place_eval_batch(host_batch(batch, np.arange(eval_batch_size))),
                                  jax.random.fold_in(rng, start))
        totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
    means = jax.tree.map(lambda x: np.asarray(x, np.float64) / n, jax.device_get(totals))
    metrics = to_python(task.finalize_eval(means))
    if compiled.probe_features is not None and train is not None:
        metrics["probe_accuracy"] = probe_accuracy(
            split_features(compiled, state, train, eval_batch_size), train["label"],
            split_features(compiled, state, test, eval_batch_size), test["label"])
    return metrics


def eval_batch_size_for(config, compiled: CompiledTask, test_size: int) -> int:
    per = compiled.num_devices
    size = min(config.eval_batch_size, max(test_size, 1))
    return max(per, -(-size // per) * per)  # round up to a multiple of the device count


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
    compiled = compile_task(task, config.parallel, config.batch_size)  # checks the batch fits the devices
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

    keys = root_keys(config.seed)
    num_train = data.num_train if data is not None else 0

    def batch_for(step: int) -> dict:
        if data is None:
            return {}
        return host_batch(data.train, sampler.batch_indices(num_train, config.batch_size, step, config.seed))

    def position(step: int) -> dict:
        return sampler.position(num_train, config.batch_size, step) if data is not None else {"step": step}

    state = initial_state(task, data, keys["init"])
    check_free_space(workdir, state, config.keep_checkpoints)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    summary = _summary(config, workdir)
    if stop.now() is not None:  # before anything is written
        return _stopped_before_start(config, workdir, signals)

    os.makedirs(workdir, exist_ok=True)
    if fresh and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    ckpt = Checkpointer(ckpt_dir, keep=config.keep_checkpoints)
    try:
        state = jax.device_put(state, jax.sharding.NamedSharding(compiled.mesh, jax.sharding.PartitionSpec()))
        start_step = 0
        restored = ckpt.restore_latest(state, config.to_dict(), task.resumable_keys)
        if restored is not None:
            start_step, state, saved_position = restored
            check_position(saved_position, position(start_step), start_step)
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
    test = data.test if data is not None else task.eval_inputs()
    num_test = len(next(iter(test.values()))) if test else 1
    eval_bs = eval_batch_size_for(config, compiled, num_test)
    sample_batch = first_test_batch(compiled, data, eval_bs)
    sample_dir = os.path.join(workdir, "samples")

    def save(step: int, placed_state) -> None:
        ckpt.save(step, compiled.canonical(placed_state), data=position(step),
                  config=config.to_dict(), meta={"family": config.family})

    def emit_samples(step: int, canonical_state) -> list[str]:
        outputs = jax.device_get(compiled.sample(canonical_state, keys["sample"], sample_batch))
        return write_samples(sample_dir, step, task.render_samples(outputs), writer) if chief else []

    placed = compiled.place_state(state)
    last_train, last_eval, sample_paths = {}, {}, []
    train_step_logged = eval_step_logged = None
    bar = progress_bar(start_step, config.steps, config.family, enabled=chief and show_progress)
    timed_from, timed_steps, stopped_by, skipped = None, 0, None, []
    checks = PendingChecks()

    def resolve_checks() -> None:
        """Act on non-finite steps since the last sync: stop before anything is written, or skip."""
        for bad_step, names in checks.bad_steps():
            if config.nan_policy == "stop":
                good = ckpt.all_steps()
                raise NonFiniteError(
                    f"non-finite {', '.join(names)} at step {bad_step}; stopped (nan_policy=stop), nothing "
                    f"after step {bad_step - 1} was saved; last good checkpoint: "
                    f"{f'step {good[-1]} in {ckpt.directory}' if good else 'none'}; "
                    "--config.nan_policy=skip skips such updates instead")
            skipped.append(bad_step)
            log(f"warning: skipped the update of step {bad_step}: non-finite {', '.join(names)}")

    step = start_step
    try:
        for step in range(start_step + 1, config.steps + 1):
            batch = compiled.place_batch(batch_for(step - 1))
            placed, metrics = compiled.train_step(placed, batch, jax.random.fold_in(keys["train"], step - 1))
            checks.add(step, metrics)
            stopped_by = stop.after_step()  # agreed by every process: all stop after this same step
            last = step == config.steps or stopped_by is not None
            if timed_from is None:  # the first step compiles: time the ones after it
                jax.block_until_ready(metrics)
                timed_from = time.perf_counter()
            else:
                timed_steps += 1
            needs_log = _due(step, config.log_every, last)
            needs_eval = test is not None and _due(step, config.eval_every, step == config.steps)
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
                canonical = compiled.canonical(placed)
                if needs_eval:
                    last_eval = {f"eval_{k}": v for k, v in
                                 evaluate(task, compiled, canonical, test, keys["eval"], eval_bs,
                                          data.train if data is not None else None).items()}
                    eval_step_logged = step
                    writer.write(step, last_eval)
                if needs_sample:
                    sample_paths = emit_samples(step, canonical)
            if needs_ckpt:
                save(step, placed)
            bar.update(1)
            if stopped_by is not None:
                break
        jax.block_until_ready(placed)
        elapsed = time.perf_counter() - timed_from if timed_from else 0.0
    finally:
        bar.close()
        ckpt.close()
        writer.close()
    return {
        **summary, "step": step, "started": True, "stopped_by": stopped_by, "skipped_updates": skipped,
        "metrics": {**last_train, **last_eval}, "train_metrics": last_train, "eval_metrics": last_eval,
        "train_step": train_step_logged, "eval_step": eval_step_logged,
        "steps_per_s": timed_steps / elapsed if elapsed > 0 else float("nan"),
        "checkpoint_steps": ckpt.all_steps(),
        "samples": [os.path.abspath(p) for p in sample_paths],
    }
