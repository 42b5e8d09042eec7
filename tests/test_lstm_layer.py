"""LSTMLayer is flax's `nn.RNN(nn.OptimizedLSTMCell)` with its backward pass written out: the same
parameters (tree and initial values), outputs, final carry and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models.lstm_layer import LSTMLayer
from aigc_jax.models.rnn_lm import RecurrentLM

B, T, E, H = 3, 7, 5, 6


class _Flax(nn.Module):
    def setup(self):
        self.layer = nn.RNN(nn.OptimizedLSTMCell(H), return_carry=True)

    def __call__(self, x, carry):
        return self.layer(x, initial_carry=carry)


class _Written(nn.Module):
    def setup(self):
        self.layer = LSTMLayer(H)

    def __call__(self, x, carry):
        return self.layer(x, initial_carry=carry)


def _inputs(steps=T):
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (B, steps, E))
    carry = (jax.random.normal(keys[1], (B, H)), jax.random.normal(keys[2], (B, H)))
    return x, carry


def _close(a, b, tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def test_parameters_are_flax_cells_tree_and_initial_values():
    x, carry = _inputs()
    ours, theirs = _Written().init(jax.random.key(1), x, carry), _Flax().init(jax.random.key(1), x, carry)
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    _close(ours, theirs, 0.0)


@pytest.mark.parametrize("steps", [T, 1])
def test_outputs_and_final_carry_equal_flax(steps):
    x, carry = _inputs(steps)
    params = _Flax().init(jax.random.key(1), x, carry)
    _close(_Written().apply(params, x, carry), _Flax().apply(params, x, carry), 1e-6)


def test_gradients_equal_flax_autodiff():
    # Through the outputs and the final carry, to the parameters, the inputs and the initial carry.
    x, carry = _inputs()
    params = _Flax().init(jax.random.key(1), x, carry)
    params = jax.tree.map(lambda p: p + 0.1, params)  # nonzero biases too

    def loss(model):
        def f(params, x, carry):
            (c, h), y = model.apply(params, x, carry)
            return jnp.sum(y ** 2) + jnp.sum(1.3 * c) + jnp.sum(h ** 3)
        return jax.grad(f, argnums=(0, 1, 2))

    ours, theirs = loss(_Written())(params, x, carry), loss(_Flax())(params, x, carry)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(theirs)) > 0.1
    _close(ours, theirs, 2e-5)


def test_language_model_uses_it_in_float32_only():
    tokens = jnp.zeros((1, 4), jnp.int32)
    for dtype, layer in ((jnp.float32, LSTMLayer), (jnp.bfloat16, nn.RNN)):
        model = RecurrentLM(vocab_size=20, embed=E, hidden=H, dtype=dtype)
        params = model.init(jax.random.key(0), tokens, model.initial_carries(1))
        assert isinstance(model.bind(params).recurrent[0], layer)
        # Either way the same parameter tree, so a checkpoint restores into both.
        assert set(params["params"]["recurrent_0"]["cell"]) == {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"}
