"""Engine-wide `config.l1` / `config.l2`: exact update rule, effect on a trained mlp, bad values."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from aigc_jax.data import sampler
from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.run import initial_state, root_keys
from aigc_jax.engine.state import TrainState, regularise
from aigc_jax.errors import UserError
from aigc_jax.cli import build_task


def test_update_rule_is_exact():
    """With zero loss gradients and SGD: L1 steps kernels by -lr * l1 * sign(w), L2 shrinks them by
    learning_rate * l2; 1-D parameters (biases) are left alone."""
    params = {"kernel": jnp.array([[0.5, -0.25], [0.0, 1.0]]), "bias": jnp.array([0.5, -0.5])}
    config = ml_collections.ConfigDict({"l1": 0.1, "l2": 2.0, "learning_rate": 0.01})
    state = regularise({"net": TrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.01))}, config, "t")
    new = state["net"].apply_gradients(grads=jax.tree.map(jnp.zeros_like, params)).params
    w = params["kernel"]
    np.testing.assert_allclose(new["kernel"], w - 0.01 * 0.1 * jnp.sign(w) - 0.01 * 2.0 * w, rtol=1e-6)
    np.testing.assert_array_equal(new["bias"], params["bias"])
    # The optimizer state is the family's own: checkpoints keep their layout whatever l1/l2 are.
    assert jax.tree.structure(state["net"].opt_state) == jax.tree.structure(optax.sgd(0.01).init(params))


def kernels_after(steps: int, **overrides) -> np.ndarray:
    task = build_task("mlp", {"hidden": "32", "batch_size": "32", "parallel": "jit",
                              **{k: str(v) for k, v in overrides.items()}})
    data = task.load_data()
    compiled = compile_task(task, "jit", 32)
    keys = root_keys(0)
    state = compiled.place_state(initial_state(task, data, keys["init"]))
    for step in range(steps):
        batch = sampler.take(data.train, sampler.batch_indices(data.num_train, 32, step, 0))
        state, _ = compiled.train_step(state, compiled.place_batch(batch), jax.random.fold_in(keys["train"], step))
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(state.params)) if x.ndim >= 2])


def test_l2_shrinks_and_l1_sparsifies_the_mlp():
    plain, decayed, sparse = (kernels_after(40, **o) for o in ({}, {"l2": 5.0}, {"l1": 1e-3}))
    assert np.linalg.norm(decayed) < 0.9 * np.linalg.norm(plain)
    near_zero = lambda w: np.mean(np.abs(w) < 1e-3)  # noqa: E731
    assert near_zero(sparse) > 3 * near_zero(plain), (near_zero(sparse), near_zero(plain))
    assert np.abs(sparse).sum() < np.abs(plain).sum()


@pytest.mark.parametrize("key", ["l1", "l2"])
def test_negative_values_are_one_line_errors(key):
    with pytest.raises(UserError, match=rf"config\.{key}=-0\.1: expected a value >= 0") as e:
        build_task("mlp", {key: "-0.1"})
    assert "\n" not in str(e.value)


def test_family_without_a_train_state_says_so():
    config = ml_collections.ConfigDict({"l1": 0.0, "l2": 0.1, "learning_rate": 1.0})
    with pytest.raises(UserError, match="config.l2=0.1: family 'ngram' has no trained weights"):
        regularise({"counts": jnp.zeros(3)}, config, "ngram")
    assert regularise({"counts": 1}, ml_collections.ConfigDict({"l1": 0.0, "l2": 0.0}), "ngram") == {"counts": 1}
