"""`Run`: one family's training run in memory, the object scripts, the loop and the sampler share.

It puts together, once and in one order, what every user of a task needs: the compiled step
(`compile_task`, mode from `config.parallel`), the data, the run's named keys, the initial state
placed for the step, and the number of steps taken. Its rules are the loop's: batch `s` is a pure
function of (seed, s) and step `s` uses `fold_in(train_key, s)`, so `Run(task).train(n)` computes
what `python -m train` computes for its first n steps, and a saved run resumes exactly.

    run = Run(aigc_jax.build("vae", latent=8))
    run.train(100); run.evaluate(); run.sample(seed=0)
    run.save("/tmp/w"); run = aigc_jax.load("/tmp/w")
"""

import json
import os

import jax
import numpy as np

from aigc_jax.data import sampler
from aigc_jax.data.records import RecordSplit, split_size
from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.compile import CompiledTask, check_fits, compile_task
from aigc_jax.engine.guard import FLAG, NonFiniteError, PendingChecks
from aigc_jax.engine.input_pipeline import StepInputs
from aigc_jax.engine.metrics import to_python, write_atomically
from aigc_jax.engine.state import engine_options, evaluation_view, regularise
from aigc_jax.errors import UserError

LOAD = object()  # Run(task): read the task's data


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
    state = regularise(jax.jit(task.init)(rng, batch), task.config, task.name)
    return strongly_typed(engine_options(state, task.config, task.name))


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
    n = split_size(split)
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        pad = batch_size - len(idx)
        batch = sampler.take(split, np.concatenate([idx, np.zeros(pad, np.int64)]))
        batch["mask"] = np.concatenate([np.ones(len(idx)), np.zeros(pad)]).astype(np.float32)
        yield start, batch, len(idx)


def split_features(compiled: CompiledTask, state, split, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(the task's probe features of every example of `split` [N, D], its labels [N] or None), on
    the host, in one pass: a split on disk is read once."""
    out, labels = [], []
    for _, batch, real in padded_batches(split, batch_size):
        if "label" in batch:
            labels.append(np.asarray(batch["label"])[:real])
        placed = compiled.place_eval_batch(host_batch(batch, np.arange(batch_size)))
        out.append(np.asarray(jax.device_get(compiled.probe_features(state, placed)))[:real])
    return np.concatenate(out), (np.concatenate(labels) if labels else None)


def evaluate(task, compiled: CompiledTask, state, test: dict, rng, eval_batch_size: int, train: dict | None = None) -> dict:
    """Sum `eval_step` over the whole test split (padded, masked), then average and finalize; with
    `train`, add what the task's evaluators measure (e.g. the linear probe's test accuracy)."""
    n = split_size(test)
    totals = None
    for start, batch, _ in padded_batches(test, eval_batch_size):
        sums = compiled.eval_step(state, compiled.place_eval_batch(host_batch(batch, np.arange(eval_batch_size))),
                                  jax.random.fold_in(rng, start))
        totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
    means = jax.tree.map(lambda x: np.asarray(x, np.float64) / n, jax.device_get(totals))
    metrics = to_python(task.finalize_eval(means))
    if train is not None:
        def features(split):
            return split_features(compiled, state, split, eval_batch_size)

        for evaluator in task.evaluators:
            metrics.update(to_python(evaluator(features, train, test)))
    return metrics


def eval_batch_size_for(config, compiled: CompiledTask, test_size: int) -> int:
    per = compiled.num_devices
    size = min(config.eval_batch_size, max(test_size, 1))
    return max(per, -(-size // per) * per)  # round up to a multiple of the device count


class Run:
    """`Run(task)`: load the data (or take `data`), compile for `mode` (default config.parallel),
    and start from the initial state (or from `state`, a host or global state of the same layout,
    placed as given: the benchmarks time every mode from one initial state)."""

    def __init__(self, task, data=LOAD, mode: str | None = None, state=None):
        config = task.config
        check_fits(mode or config.parallel, config.batch_size)  # before any data is read
        self.data = task.load_data() if data is LOAD else data
        self.task = task.bind(self.data)  # holds what load_data prepared for the steps (Splits.constants)
        self.config = config
        self.compiled = compile_task(self.task, mode or config.parallel, config.batch_size)
        self.keys = root_keys(config.seed)
        self.steps_done = 0
        self._checks = PendingChecks()  # the non-finite flags of steps taken since the last check
        self._stopped_at: tuple[int, list[str]] | None = None  # nan_policy=stop: the bad update the state holds
        self.skipped_updates: list[int] = []  # nan_policy=skip: the steps whose update was dropped, so far
        if state is None:
            state = initial_state(self.task, self.data, self.keys["init"])
        else:  # one global (replicated) array per leaf, whatever devices the state came from
            state = jax.device_put(state, jax.sharding.NamedSharding(self.compiled.mesh, jax.sharding.PartitionSpec()))
        self.state = self.compiled.place_state(state)
        # What evaluation scores: the test split, or for families without a dataset (environments)
        # the examples they name themselves (one per episode, say); None: no evaluation.
        self.test_split = self.data.test if self.data is not None else self.task.eval_inputs()
        # A train split on disk is read ahead of the steps (engine/input_pipeline.py).
        streamed = self.data is not None and isinstance(self.data.train, RecordSplit)
        self._inputs = StepInputs(self.host_batch) if streamed else None

    # ---- data and keys: pure functions of (seed, step) ----

    @property
    def num_train(self) -> int:
        return self.data.num_train if self.data is not None else 0

    def host_batch(self, step: int) -> dict:
        """This process's rows of the batch of step `step` (0-based), before placement."""
        if self.data is None:
            return {}
        return host_batch(self.data.train, sampler.batch_indices(self.num_train, self.config.batch_size, step,
                                                                 self.config.seed))

    def position(self, step: int) -> dict:
        """Where in the data step `step` is (saved with checkpoints, checked on resume)."""
        if self.data is None:
            return {"step": step}
        return sampler.position(self.num_train, self.config.batch_size, step)

    # ---- training ----

    def advance(self) -> dict:
        """One compiled train step on the next batch; the metrics stay on the device (no sync)."""
        step = self.steps_done
        host = self._inputs.batch(step) if self._inputs is not None else self.host_batch(step)
        batch = self.compiled.place_batch(host)
        self.state, metrics = self.compiled.train_step(self.state, batch, jax.random.fold_in(self.keys["train"], step))
        self.steps_done = step + 1
        self._checks.add(self.steps_done, metrics)
        return metrics

    def step(self) -> dict:
        """One train step; its metrics as Python floats (after `check_updates`)."""
        metrics = self.advance()
        self.check_updates()
        return to_python({k: v for k, v in jax.device_get(metrics).items() if k != FLAG})

    def train(self, steps: int) -> dict:
        """`steps` train steps; the last step's metrics as Python floats."""
        if steps < 1:
            raise UserError(f"train({steps!r}): expected at least 1 step")
        for _ in range(steps - 1):
            self.advance()
        return self.step()

    def check_updates(self) -> list[tuple[int, list[str]]]:
        """The updates flagged non-finite since the last check: [(step, metric names)], 1-based
        steps in order (reads the flags: a sync). Under nan_policy=skip those updates were dropped
        (and join `skipped_updates`). Under stop the step committed the update (keeping the old
        state would copy the whole state every step, engine/guard.py), so the first one raises
        NonFiniteError, and so does every later read of the state, until `restore` replaces it."""
        bad = self._checks.bad_steps()
        if self.config.nan_policy == "stop":
            self._stopped_at = self._stopped_at or (bad[0] if bad else None)
            if self._stopped_at is not None:
                step, names = self._stopped_at
                raise NonFiniteError(f"non-finite {', '.join(names)} at step {step}; stopped (nan_policy=stop)",
                                     step, names)
        self.skipped_updates += [step for step, _ in bad]
        return bad

    # ---- looking at it ----

    def canonical_state(self):
        """The state as one global pytree (what is evaluated and checkpointed), once no update
        since the last check was non-finite (`check_updates`)."""
        self.check_updates()
        return self.compiled.canonical(self.state)

    def eval_batch_size(self) -> int:
        test = self.test_split
        return eval_batch_size_for(self.config, self.compiled, split_size(test) if test else 1)

    def evaluate(self, state=None) -> dict:
        """The family's eval metrics on its test split, named as metrics.jsonl names them (eval_*)."""
        if self.test_split is None:
            raise UserError(f"family {self.config.family!r} has no evaluation; expected a family with a test split")
        state = evaluation_view(self.canonical_state() if state is None else state)
        metrics = evaluate(self.task, self.compiled, state, self.test_split, self.keys["eval"], self.eval_batch_size(),
                           self.data.train if self.data is not None else None)
        return {f"eval_{k}": v for k, v in metrics.items()}

    def sample_outputs(self, seed: int = 0, state=None) -> dict:
        """The task's sample arrays (images in [0, 1], token ids, ...) for `seed` (0: the run's own)."""
        state = evaluation_view(self.canonical_state() if state is None else state)
        batch = first_test_batch(self.compiled, self.data, self.eval_batch_size())
        rng = jax.random.fold_in(self.keys["sample"], seed) if seed else self.keys["sample"]
        return jax.device_get(self.compiled.sample(state, rng, batch))

    def sample(self, seed: int = 0) -> dict:
        """What `python -m train sample` writes, before it is written: {name: images or text}."""
        return self.task.render_samples(self.sample_outputs(seed))

    # ---- checkpoints ----

    def checkpoint(self, ckpt: Checkpointer, step: int | None = None) -> None:
        step = self.steps_done if step is None else step
        ckpt.save(step, self.canonical_state(), data=self.position(step), config=self.config.to_dict(),
                  meta={"family": self.config.family})

    def restore(self, ckpt: Checkpointer, resumable=None, move_damaged: bool = True,
                same_position: bool = True) -> int | None:
        """Continue from the newest good checkpoint in `ckpt` (None: there is none, nothing changed).

        `same_position`: the saved data position must be the one this run computes for that step
        (a dataset that changed size under a run would silently shift every later batch)."""
        template = jax.device_put(self.compiled.canonical(self.state),  # shapes only: may hold a bad update
                                  jax.sharding.NamedSharding(self.compiled.mesh, jax.sharding.PartitionSpec()))
        resumable = self.task.resumable_keys if resumable is None else resumable
        restored = ckpt.restore_latest(template, self.config.to_dict(), resumable, move_damaged=move_damaged)
        if restored is None:
            return None
        step, state, saved_position = restored
        if same_position and saved_position != self.position(step):
            diff = "; ".join(f"{k}: {saved_position.get(k)!r} -> {self.position(step).get(k)!r}"
                             for k in sorted(set(saved_position) | set(self.position(step)))
                             if saved_position.get(k) != self.position(step).get(k))
            raise UserError(f"checkpoint step {step} was saved at another data position ({diff}); expected the "
                            "same dataset as the run it continues (use --fresh or another --workdir)")
        self.state = self.compiled.place_state(state)
        self.steps_done = step
        self._checks, self._stopped_at = PendingChecks(), None
        return step

    def save(self, workdir: str) -> str:
        """Checkpoint the run in `workdir/checkpoints` (with its config and family) and write
        `workdir/config.json`; `aigc_jax.load(workdir)` or `python -m train FAMILY --workdir` continue it."""
        ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=self.config.keep_checkpoints)
        try:
            self.checkpoint(ckpt)
        finally:
            ckpt.close()
        if jax.process_index() == 0:
            write_atomically(os.path.join(workdir, "config.json"),
                             json.dumps(self.config.to_dict(), indent=2, sort_keys=True))
        return workdir
