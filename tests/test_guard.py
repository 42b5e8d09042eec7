"""The non-finite guard: a NaN or Inf that reaches a step's gradients or new parameters is flagged;
under nan_policy=skip it leaves the whole train state (parameters, optimizer moments, step count)
exactly as it was before that step, under stop the run never reads the state that holds it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aigc_jax.data import sampler
from aigc_jax.engine import loop, parallel
from aigc_jax.engine import run as engine_run
from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.guard import FLAG, NonFiniteError, PendingChecks
from aigc_jax.tasks.classifier import MLPClassifier
from conftest import read_metrics
from aigc_jax.cli import build_task

TINY = dict(batch_size=16, hidden="32,16", log_every=1, eval_every=0, sample_every=0)
POISON_STEP = 7  # 1-based, as the loop counts


class Poisoned(MLPClassifier):
    """The mlp family, but on the 7th batch `poison` (nan or inf) is added to every gradient or to
    every updated parameter; the loss and accuracy it reports stay finite."""

    def __init__(self, config, where: str, poison: float):
        super().__init__(config)
        self.where, self.poison = where, poison

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            logits = state.apply_fn({"params": params}, batch["image"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        data = self.load_data()
        bad_batch = data.train["image"][sampler.batch_indices(data.num_train, self.config.batch_size,
                                                                POISON_STEP - 1, 0)]
        seen = parallel.data_sum(batch["image"].sum())  # the global batch's, under shard_map too
        add = jnp.where(jnp.allclose(seen, bad_batch.sum()), self.poison, 0.0)
        if self.where == "grads":
            grads = jax.tree.map(lambda g: g + add, grads)
        new_state = state.apply_gradients(grads=grads)
        if self.where == "params":
            new_state = new_state.replace(params=jax.tree.map(lambda w: w + add, new_state.params))
        return new_state, {"loss": loss}


def poisoned_task(where, poison, **overrides):
    config = build_task("mlp", {k: str(v) for k, v in {**TINY, "steps": 10, **overrides}.items()}).config
    return Poisoned(config, where, poison)


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


@pytest.mark.parametrize("mode", ["jit", "shard_map"])
@pytest.mark.parametrize("where", ["grads", "params"])
@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_a_poisoned_update_leaves_the_state_bit_identical_under_skip(mode, where, poison):
    task = poisoned_task(where, poison, parallel=mode, nan_policy="skip")
    data = task.load_data()
    compiled = compile_task(task, mode, task.config.batch_size)
    keys = engine_run.root_keys(0)
    placed = compiled.place_state(engine_run.initial_state(task, data, keys["init"]))
    for step in range(1, POISON_STEP + 1):
        before = leaves(compiled.canonical(placed))
        host = sampler.take(data.train, sampler.batch_indices(data.num_train, task.config.batch_size, step - 1, 0))
        placed, metrics = compiled.train_step(placed, compiled.place_batch(host), jax.random.fold_in(keys["train"], step - 1))
        assert np.isfinite(float(metrics["loss"]))
        assert int(metrics[FLAG]) == (step == POISON_STEP)
    after = leaves(compiled.canonical(placed))
    assert len(after) == len(before)
    for a, b in zip(after, before):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # bit for bit, the step counter included


@pytest.mark.parametrize("policy, conditionals", [("skip", 1), ("stop", 0)])
def test_only_the_skip_policy_keeps_a_copy_of_the_old_state(policy, conditionals):
    # Under stop the step commits its update as computed: keeping the old state costs a copy of
    # the whole state every step (the conditional's result is not written in place).
    task = poisoned_task("grads", float("nan"), nan_policy=policy)
    data = task.load_data()
    compiled = compile_task(task, "jit", task.config.batch_size)
    keys = engine_run.root_keys(0)
    state = engine_run.initial_state(task, data, keys["init"])
    host = sampler.take(data.train, sampler.batch_indices(data.num_train, task.config.batch_size, 0, 0))
    hlo = compiled.train_step.lower(compiled.place_state(state), compiled.place_batch(host), keys["train"]).as_text()
    assert hlo.count("stablehlo.case") + hlo.count("stablehlo.if") == conditionals


def test_stop_policy_run_refuses_the_state_that_holds_a_bad_update(tmp_path):
    run = engine_run.Run(poisoned_task("grads", float("nan"), parallel="jit"))  # nan_policy=stop
    run.train(POISON_STEP - 1)
    run.save(str(tmp_path))
    for _ in range(3):  # steps 7-9, no sync: the flags wait on the device
        run.advance()
    with pytest.raises(NonFiniteError, match=f"non-finite parameters or gradients at step {POISON_STEP}"):
        run.canonical_state()
    with pytest.raises(NonFiniteError, match=f"at step {POISON_STEP}"):  # every read, not only the first
        run.save(str(tmp_path))
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    try:
        assert ckpt.all_steps() == [POISON_STEP - 1]
        assert run.restore(ckpt) == POISON_STEP - 1
    finally:
        ckpt.close()
    assert all(np.isfinite(x).all() for x in leaves(run.canonical_state()))  # readable again


def test_pending_checks_wait_for_at_most_limit_steps():
    checks = PendingChecks(limit=4)
    for step in range(1, 11):
        checks.add(step, {"loss": jnp.float32(step), FLAG: jnp.int32(step in (3, 9))})
        assert len(checks._pending) < 4
    assert checks.bad_steps() == [(3, ["parameters or gradients"]), (9, ["parameters or gradients"])]
    assert checks.bad_steps() == []


def test_skip_policy_run_lists_the_dropped_updates():
    run = engine_run.Run(poisoned_task("params", float("inf"), parallel="jit", nan_policy="skip"))
    run.train(POISON_STEP + 2)
    assert run.skipped_updates == [POISON_STEP]
    assert all(np.isfinite(x).all() for x in leaves(run.canonical_state()))


def test_skip_policy_keeps_the_previous_state_in_the_checkpoint(tmp_path):
    task = poisoned_task("grads", float("nan"), nan_policy="skip", ckpt_every=1, keep_checkpoints=20)
    summary = loop.train_and_evaluate(task, str(tmp_path), log=lambda *a: None, show_progress=False)
    assert summary["skipped_updates"] == [POISON_STEP] and summary["step"] == 10
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    template = engine_run.initial_state(task, task.load_data(), engine_run.root_keys(0)["init"])
    try:
        states = {s: leaves(ckpt.restore(s, template)[0]) for s in (POISON_STEP - 2, POISON_STEP - 1, POISON_STEP)}
    finally:
        ckpt.close()
    assert all(np.array_equal(a, b) for a, b in zip(states[POISON_STEP], states[POISON_STEP - 1]))
    assert not all(np.array_equal(a, b) for a, b in zip(states[POISON_STEP - 1], states[POISON_STEP - 2]))
    assert all(np.isfinite(r["loss"]) for r in read_metrics(tmp_path) if "loss" in r)


def test_stop_policy_names_the_step_and_saves_nothing_after_it(tmp_path):
    task = poisoned_task("params", float("inf"), ckpt_every=1, keep_checkpoints=20)
    with pytest.raises(NonFiniteError, match=f"non-finite parameters or gradients at step {POISON_STEP}"):
        loop.train_and_evaluate(task, str(tmp_path), log=lambda *a: None, show_progress=False)
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    try:
        assert ckpt.all_steps()[-1] == POISON_STEP - 1
    finally:
        ckpt.close()


@pytest.mark.parametrize("shape", [(5000,), (784, 512), (4, 4, 256, 64), (3, 0, 2000)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_all_finite_finds_one_nan_or_inf_in_any_leaf(shape, dtype):
    from aigc_jax.engine.guard import all_finite

    big = jnp.full(shape, 3e38, dtype)  # finite, near the largest float
    tree = {"big": big, "small": jnp.ones(3, dtype), "count": jnp.int32(7)}
    check = jax.jit(all_finite)
    assert bool(check(tree))  # large finite values are no false alarm
    if big.size == 0:
        return
    last = tuple(n - 1 for n in shape)
    for bad in (float("nan"), float("inf"), -float("inf")):
        for where in (tuple(0 for _ in shape), last):
            assert not bool(check({**tree, "big": big.at[where].set(bad)})), (bad, where)
    assert not bool(check({**tree, "small": tree["small"].at[1].set(float("nan"))}))
