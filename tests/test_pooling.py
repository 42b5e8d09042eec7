"""`models.pooling.max_pool` is flax's max_pool with a gradient XLA:CPU runs faster: same values,
the gradient of a reshape-and-max pool (ties split evenly), and flax's gradient behind a ReLU."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models.pooling import max_pool


def reshape_max_pool(x, k):
    """The reference rule: max over the window axes of a reshaped view (jnp's gradient splits ties)."""
    b, h, w, c = x.shape
    x = x[:, :h - h % k, :w - w % k]
    return x.reshape(b, h // k, k, w // k, k, c).max(axis=(2, 4))


@pytest.mark.parametrize("window", [2, 3])
def test_values_equal_flax_max_pool_including_a_remainder(window):
    x = jax.random.normal(jax.random.key(1), (2, 7, 9, 3))  # 7x9: a remainder row and column are dropped
    np.testing.assert_array_equal(max_pool(x, window), nn.max_pool(x, (window, window), strides=(window, window)))


@pytest.mark.parametrize("window", [2, 3])
def test_gradient_equals_reshape_max_including_ties(window):
    x = jax.random.normal(jax.random.key(3), (2, 7, 9, 3))
    x = x.at[0, :window, :window, 0].set(1.5)  # a window of four (nine) equal maxima
    x = x.at[1, 0, :2, 1].set(9.0)  # two equal maxima in a window
    w = jax.random.normal(jax.random.key(4), max_pool(x, window).shape)
    grad = jax.jit(jax.grad(lambda x: (max_pool(x, window) * w).sum()))(x)
    reference = jax.grad(lambda x: (reshape_max_pool(x, window) * w).sum())(x)
    np.testing.assert_array_equal(grad, reference)
    np.testing.assert_allclose(grad[0, 0, 0, 0], w[0, 0, 0, 0] / window**2, rtol=1e-6)  # the tie is split
    assert grad[:, 6:].sum() == 0 and grad[:, :, 9 - 9 % window:].sum() == 0  # the dropped remainder


def test_gradient_after_relu_equals_flax_max_pool():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    w = jax.random.normal(jax.random.key(2), (4, 4, 4, 3))

    def loss(pool):
        return lambda x: (pool(nn.relu(x)) * w).sum()

    flax_pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
    np.testing.assert_array_equal(jax.grad(loss(lambda x: max_pool(x, 2)))(x), jax.grad(loss(flax_pool))(x))
    assert jnp.count_nonzero(jax.grad(loss(flax_pool))(x)) > 0
