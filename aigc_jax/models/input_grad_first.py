"""`InputGradFirstDense`: `flax.linen.Dense` whose backward pass computes the input gradient before
the kernel gradient.

Same parameters (`kernel` [in, out], `bias` [out]), initialisers, dtype promotion and values as
`nn.Dense`; only the order of the two backward products differs. Why: a recurrent language model's
backward pass starts with its output layer's two large products, the input gradient (which the
recurrence's backward scan waits for) and the kernel gradient (which nothing waits for). Left to
itself XLA:CPU runs the two side by side on the two cores, so the scan, whose small per-step products
keep only about one core busy, starts once both are done. Here the kernel gradient reads its input
through a zero that exists only once the input gradient does, so the input gradient runs first on
all cores and the kernel gradient then runs beside the scan: lstm_lm's step 7% faster on two
threads (docs/benchmarks.md). The added work is a zero per row and its add to the layer's input,
fused into the kernel gradient's operand.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


@jax.custom_vjp
def dense(x, kernel, bias):
    """x [..., in] @ kernel [in, out] + bias [out]."""
    return jnp.dot(x, kernel) + bias


def _dense_forward(x, kernel, bias):
    return dense(x, kernel, bias), (x, kernel)


def _dense_backward(residuals, g):
    x, kernel = residuals
    dx = lax.dot_general(g, kernel, (((g.ndim - 1,), (1,)), ((), ())))  # g @ kernel.T
    # A zero per row that depends on dx's row (the where keeps a non-finite dx out of it): the
    # kernel gradient's operand x + zero cannot be computed before dx is. Row by row, so a step
    # sharded over the batch needs no communication for it.
    first = dx[..., :1]
    zero = jnp.where(jnp.isfinite(first), first * 0, 0).astype(x.dtype)
    rows, g_rows = (x + zero).reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    # contracting the rows of both operands, the form autodiff gives nn.Dense's kernel gradient
    return dx, lax.dot_general(rows, g_rows, (((0,), (0,)), ((), ()))), g_rows.sum(0)


dense.defvjp(_dense_forward, _dense_backward)


class InputGradFirstDense(nn.Module):
    """`nn.Dense(features)` over the last axis, with a bias, ordering its backward products."""

    features: int
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.linear.default_kernel_init
    bias_init: Any = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return dense(x, kernel, bias)
