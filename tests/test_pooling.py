"""`models.pooling.max_pool` is flax's max_pool with a gradient XLA:CPU runs faster: same values,
and the same gradient behind a ReLU."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.models.pooling import max_pool


def test_values_equal_flax_max_pool_including_a_remainder():
    x = jax.random.normal(jax.random.key(1), (2, 7, 9, 3))  # 7x9: the last row and column are dropped
    np.testing.assert_array_equal(max_pool(x, 2), nn.max_pool(x, (2, 2), strides=(2, 2)))


def test_gradient_after_relu_equals_flax_max_pool():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    w = jax.random.normal(jax.random.key(2), (4, 4, 4, 3))

    def loss(pool):
        return lambda x: (pool(nn.relu(x)) * w).sum()

    flax_pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
    np.testing.assert_array_equal(jax.grad(loss(lambda x: max_pool(x, 2)))(x), jax.grad(loss(flax_pool))(x))
    assert jnp.count_nonzero(jax.grad(loss(flax_pool))(x)) > 0
