"""The two engine options every family gets: gradient accumulation equals one bigger batch, and an
EMA of the weights is kept, checkpointed, and is what evaluation and samples use."""

import jax
import numpy as np
import pytest

import aigc_jax
from aigc_jax.engine.state import evaluation_view
from aigc_jax.errors import UserError

MLP = {"hidden": (32,), "parallel": "jit", "learning_rate": 3e-3}


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def adam_first_moment(opt_state):
    """Adam's mu in an optimizer state (inside MultiSteps' inner state when accumulating)."""
    found = [x for x in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "mu")) if hasattr(x, "mu")]
    return leaves(found[0].mu)


# Families whose step draws no per-example noise: the same 64 examples give the same gradient.
@pytest.mark.parametrize("family,overrides", [("mlp", MLP), ("cnn", {"channels": (4, 8), "hidden": 16, "parallel": "jit"})])
def test_four_accumulated_micro_batches_equal_one_four_times_batch(family, overrides):
    micro = aigc_jax.Run(aigc_jax.build(family, batch_size=16, grad_accum=4, **overrides))
    whole = aigc_jax.Run(aigc_jax.build(family, batch_size=64, **overrides))
    start = leaves(micro.state.params)
    for _ in range(3):  # the weights do not move until the 4th micro-batch
        micro.step()
        for a, b in zip(leaves(micro.state.params), start):
            np.testing.assert_array_equal(a, b)
    micro.step()
    whole.step()
    # The update's gradient (Adam's first moment, (1 - b1) * g after one update): the mean over the
    # 64 examples either way, up to the order of float additions.
    for a, b in zip(adam_first_moment(micro.state.opt_state), adam_first_moment(whole.state.opt_state)):
        assert np.abs(b).max() > 0
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    # The weights: equal, except that Adam's first step is lr * sign(g), so a gradient of ~1e-9
    # may round to either side of zero: at most a few weights differ, by 2 lr.
    lr = micro.config.learning_rate
    for a, b in zip(leaves(micro.state.params), leaves(whole.state.params)):
        off = np.abs(a - b) > 1e-6
        assert off.mean() < 0.15 and np.abs(a - b).max() <= 2 * lr * 1.001, (off.mean(), np.abs(a - b).max())


def test_ema_is_kept_checkpointed_and_evaluated(tmp_path):
    run = aigc_jax.Run(aigc_jax.build("mlp", batch_size=32, ema_decay=0.9, **MLP))
    run.train(30)
    state = run.canonical_state()
    params, ema = leaves(state.params), leaves(state.ema_params)
    assert all(np.abs(p - e).max() > 0 for p, e in zip(params, ema))
    # The EMA is what evaluation reads: the same numbers as evaluating a state whose weights are the EMA.
    viewed = leaves(evaluation_view(state).params)
    for v, e in zip(viewed, ema):
        np.testing.assert_array_equal(v, e)
    plain = aigc_jax.Run(aigc_jax.build("mlp", batch_size=32, **MLP))
    plain.train(30)
    for a, b in zip(leaves(plain.canonical_state().params), params):  # training itself is unchanged by the EMA
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert run.evaluate() != plain.evaluate()
    run.save(str(tmp_path / "w"))
    loaded = aigc_jax.load(str(tmp_path / "w"))
    for a, b in zip(leaves(loaded.canonical_state().ema_params), ema):
        np.testing.assert_array_equal(a, b)


def test_options_need_trained_weights():
    with pytest.raises(UserError, match=r"config.grad_accum=2: family 'ngram' has no trained weights"):
        aigc_jax.Run(aigc_jax.build("ngram", grad_accum=2, steps=2))
    with pytest.raises(UserError, match=r"config.ema_decay=1.5: expected a value in \[0.0, 1.0\]"):
        aigc_jax.build("mlp", ema_decay=1.5)
