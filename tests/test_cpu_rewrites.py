"""engine/cpu_rewrites.py: the rewritten function computes the same values, the sums it is meant
to rewrite are no longer `reduce_sum`s, its large argmaxes are no longer argmaxes, its long
trailing maxes are halved first, and a mean of per-example sums stays a sum of those sums."""

import re

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.engine.cpu_rewrites import ALIASED_ROW, MIN_ARGMAX, MIN_HALVED_MAX, MIN_ROWS, OPT_OUT_ENV, cpu_rewrites_on, rewritten_for_cpu


def _primitives(fn, *args) -> list[str]:
    return [eqn.primitive.name for eqn in jax.make_jaxpr(fn)(*args).jaxpr.eqns]


def _leading_sums(fn, *args) -> int:
    """reduce_sums over leading axes, large enough to be rewritten, in fn's jaxpr (top level)."""
    count = 0
    for eqn in jax.make_jaxpr(fn)(*args).jaxpr.eqns:
        if eqn.primitive.name == "reduce_sum":
            shape, axes = eqn.invars[0].aval.shape, tuple(sorted(eqn.params["axes"]))
            count += axes == tuple(range(len(axes))) and len(axes) < len(shape) and np.prod(shape[:len(axes)]) >= MIN_ROWS
    return count


def _close(a, b, rtol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=rtol * float(np.abs(x).max()))


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.LayerNorm()(x)
        return nn.Dense(24)(nn.gelu(nn.Dense(48)(x)))


@pytest.fixture(scope="module")
def block_grad():
    x = jax.random.normal(jax.random.key(1), (8, 96, 16))
    params = Block().init(jax.random.key(0), x)
    grad = jax.grad(lambda p, x: jnp.tanh(Block().apply(p, x)).mean())
    return grad, params, x


def test_layer_gradients_equal_with_every_bias_sum_inside_a_matmul(block_grad):
    grad, params, x = block_grad
    assert _leading_sums(grad, params, x) == 4  # two biases, LayerNorm's scale and shift
    rewritten = rewritten_for_cpu(grad)
    assert _leading_sums(rewritten, params, x) == 0
    # Each bias gradient joins its kernel gradient's product: no dot_general is added for them.
    assert _primitives(rewritten, params, x).count("dot_general") == _primitives(grad, params, x).count("dot_general") + 2
    _close(jax.jit(grad)(params, x), jax.jit(rewritten)(params, x))


def test_a_sum_with_no_matmul_beside_it_becomes_one_and_small_sums_stay():
    def f(x, y):
        return jnp.tanh(x).sum((0, 1)), (x * 2).sum(-1), y.sum(0)  # leading (rewritten), trailing, few rows

    x, y = jax.random.normal(jax.random.key(0), (16, 64, 8)), jnp.ones((MIN_ROWS - 1, 3))
    rewritten = rewritten_for_cpu(f)
    assert _primitives(rewritten, x, y).count("reduce_sum") == 2
    _close(jax.jit(f)(x, y), jax.jit(rewritten)(x, y))


def _reductions_over_rows(fn, x) -> int:
    """Reductions in the compiled `fn` that run across the rows of its [rows, n] input (XLA:CPU
    compiles a total as a reduce over both axes or a two-dimensional reduce-window)."""
    text = jax.jit(fn).lower(x).compile().as_text()
    return len(re.findall(r"dimensions=\{(?:0,1|1,0)\}", text)) + len(re.findall(r"window=\{size=([2-9]|\d\d+)x", text))


def test_a_mean_of_per_example_sums_read_elsewhere_too_reads_only_those_sums():
    def f(x):  # a per-example loss, and its mean as a metric
        per_example = jnp.tanh(x).sum(-1)
        return per_example, per_example.mean()

    x = jax.random.normal(jax.random.key(0), (128, 784)) * jnp.logspace(-30, 30, 784)
    rewritten = rewritten_for_cpu(f)
    assert _reductions_over_rows(f, x) > 0  # XLA merges the mean into a second pass over x...
    assert _reductions_over_rows(rewritten, x) == 0  # ...kept apart, it sums the 128 sums
    (plain_rows, plain_mean), (rows, mean) = jax.jit(f)(x), jax.jit(rewritten)(x)
    np.testing.assert_array_equal(rows, plain_rows)
    tol = 1e-6 * float(np.abs(rows).max())  # float32 rounding of a sum of 128 such rows
    np.testing.assert_allclose(mean, np.asarray(plain_rows, np.float64).mean(), rtol=0, atol=tol)
    np.testing.assert_allclose(mean, plain_mean, rtol=0, atol=tol)
    alone = lambda x: jnp.tanh(x).sum(-1).mean()  # noqa: E731  (one pass over x is better: left)
    assert _primitives(rewritten_for_cpu(alone), x) == _primitives(alone, x)


def _scan_body(fn, *args):
    (eqn,) = [e for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns if e.primitive.name == "scan"]
    return eqn.params["jaxpr"]


def test_sums_in_nested_jit_and_scan_bodies_are_rewritten_and_while_bodies_left():
    inner = jax.jit(lambda x: x.sum(0))

    def f(x):
        carry, sums = jax.lax.scan(lambda c, x: (c + x.sum(0)[0], jnp.tanh(x).sum(0)), 0.0, jnp.stack([x, 2 * x]))
        _, looped = jax.lax.while_loop(lambda ic: ic[0] < 2, lambda ic: (ic[0] + 1, ic[1] + x.sum(0)),
                                       (0, jnp.zeros(x.shape[1])))
        return inner(x), carry, sums, looped

    x = jax.random.normal(jax.random.key(0), (MIN_ROWS, 4))
    rewritten = rewritten_for_cpu(f)
    assert "jit" not in _primitives(rewritten, x) and "while" in _primitives(rewritten, x)
    assert _leading_sums(rewritten, x) == 0
    body = _scan_body(rewritten, x)
    assert _leading_sums(jax.extend.core.jaxpr_as_fun(body), *[v.aval for v in body.jaxpr.invars]) == 0
    assert _leading_sums(jax.extend.core.jaxpr_as_fun(_scan_body(f, x)), *[v.aval for v in body.jaxpr.invars]) == 2
    _close(jax.jit(f)(x), jax.jit(rewritten)(x))


def test_a_bias_sum_read_before_its_matmul_is_paired_at_the_matmul_or_left_alone():
    contract_rows = (((0,), (0,)), ((), ()))

    def paired(g, x, w):
        bias = g.sum(0)  # the sum comes first ...
        h = jnp.tanh(x @ w)  # ... the matmul's other operand is made after it
        return jax.lax.dot_general(g, h, contract_rows), bias

    def read_between(g, x, w):
        bias = g.sum(0)
        h = jnp.tanh(x @ w) + bias[0]  # the sum is read before the matmul: they cannot be merged
        return jax.lax.dot_general(g, h, contract_rows), bias

    g, x, w = (jax.random.normal(jax.random.key(i), s) for i, s in enumerate([(MIN_ROWS, 8), (MIN_ROWS, 6), (6, 5)]))
    for fn, added_dots in ((paired, 0), (read_between, 1)):
        rewritten = rewritten_for_cpu(fn)
        assert _leading_sums(rewritten, g, x, w) == 0
        assert _primitives(rewritten, g, x, w).count("dot_general") == _primitives(fn, g, x, w).count("dot_general") + added_dots
        _close(jax.jit(fn)(g, x, w), jax.jit(rewritten)(g, x, w))


def test_bfloat16_sums_accumulate_in_float32():
    # A bias gradient in bfloat16 is a bfloat16 reduce_sum (jnp.sum would convert to float32 first).
    bias_grad = jax.linear_transpose(lambda b: jnp.broadcast_to(b, (4 * MIN_ROWS, 2)), jnp.zeros(2, jnp.bfloat16))
    x = jnp.full((4 * MIN_ROWS, 2), 1.0, jnp.bfloat16)
    rewritten = rewritten_for_cpu(lambda x: bias_grad(x)[0])
    assert _leading_sums(rewritten, x) == 0
    (dot,) = [e for e in jax.make_jaxpr(rewritten)(x).jaxpr.eqns if e.primitive.name == "dot_general"]
    assert dot.params["preferred_element_type"] == jnp.float32
    total = jax.jit(rewritten)(x)
    assert total.dtype == jnp.bfloat16 and float(total[0]) == 4 * MIN_ROWS  # 2048 is exact in bfloat16


def test_on_for_cpu_steps_unless_opted_out(monkeypatch):
    assert cpu_rewrites_on(jax.devices("cpu"))
    monkeypatch.setenv(OPT_OUT_ENV, "0")
    assert not cpu_rewrites_on(jax.devices("cpu"))


def test_argmax_is_two_reductions_with_argmaxs_ties_and_nans():
    """The first index of the maximum, NaN counted largest: what argmax gives, ties and NaNs included."""
    x = jax.random.normal(jax.random.key(0), (6, MIN_ARGMAX, MIN_ARGMAX))
    x = x.at[0, :, 5].set(9.0).at[0, :, 9].set(9.0).at[5, 3, :].set(9.0).at[5, 8, :].set(9.0)  # ties: the first wins
    x = x.at[1, 2, 7].set(jnp.nan).at[1, 2, 3].set(jnp.nan).at[2, 1, 0].set(jnp.inf).at[3, 3].set(-jnp.inf)
    x = x.at[4, 0, 11].set(jnp.nan).at[4, 0, 2].set(jnp.inf)
    for axis in (-1, 1):
        fn = lambda x: jnp.argmax(x, axis=axis)  # noqa: E731
        rewritten = rewritten_for_cpu(fn)
        assert "argmax" not in _primitives(rewritten, x)
        np.testing.assert_array_equal(jax.jit(rewritten)(x), jax.jit(fn)(x))
    small = x[..., :MIN_ARGMAX - 1]
    assert "argmax" in _primitives(rewritten_for_cpu(lambda x: x.argmax(-1)), small)  # a classifier's: left
    ints = jnp.arange(MIN_ARGMAX * 2).reshape(2, MIN_ARGMAX) % 7
    assert "argmax" in _primitives(rewritten_for_cpu(lambda x: x.argmax(-1)), ints)


@pytest.mark.parametrize("length", [MIN_HALVED_MAX, 5000, 1000])  # halved to 64, to 625, to 125
def test_a_long_trailing_max_is_halved_first_and_equal_bit_for_bit(length):
    x = jax.random.normal(jax.random.key(0), (5, 3, length))
    x = x.at[0, 0, length - 1].set(jnp.nan).at[1, 1, 0].set(jnp.inf).at[2].set(-jnp.inf)
    x = x.at[3, 2, length // 2].set(jnp.nan).at[3, 2, 0].set(jnp.inf).at[4, 0].set(0.0).at[4, 0, 7].set(-0.0)
    fn = lambda x: jax.nn.logsumexp(x, axis=-1) + x.max(-1)  # noqa: E731  (its max is stop-gradient)
    rewritten = rewritten_for_cpu(fn)
    assert "max" in _primitives(rewritten, x)  # the elementwise halves
    np.testing.assert_array_equal(jax.jit(rewritten)(x), jax.jit(fn)(x))  # NaN where fn has NaN
    g = jax.grad(lambda x: jnp.nansum(fn(x)))
    np.testing.assert_array_equal(jax.jit(rewritten_for_cpu(g))(x), jax.jit(g)(x))
    odd, short = x[..., :length - 1], x[..., :MIN_HALVED_MAX - 2]
    for left in (odd, short):  # left as one reduce
        assert "max" not in _primitives(rewritten_for_cpu(lambda x: x.max(-1)), left)
    assert "max" not in _primitives(rewritten_for_cpu(lambda x: x.max(0)), x)  # not the last axis


def _dot_lhs_shapes(fn, *args) -> list[tuple]:
    return [eqn.invars[0].aval.shape for eqn in jax.make_jaxpr(fn)(*args).jaxpr.eqns if eqn.primitive.name == "dot_general"]


@pytest.mark.parametrize("summed_width, other_width, lhs_width", [
    (ALIASED_ROW, 96, 97),  # [other, 1] is the narrower: it is the lhs
    (256, 256, 257),  # at equal widths too
    (ALIASED_ROW, 640, ALIASED_ROW + 1),  # the summed array is, and its aligned rows get a zero column
    (2 * ALIASED_ROW, 4 * ALIASED_ROW, 2 * ALIASED_ROW + 1),
    (640, 1024, 640),  # unaligned rows stay as they are
])
def test_a_kernel_gradient_with_its_bias_sum_is_one_product_with_the_narrower_lhs(summed_width, other_width, lhs_width):
    contract = (((0, 1), (0, 1)), ((), ()))
    summed = jax.random.normal(jax.random.key(0), (4, MIN_ROWS // 4, summed_width))
    other = jax.random.normal(jax.random.key(1), (4, MIN_ROWS // 4, other_width))

    def summed_lhs(s, o):  # s^T o beside s's sum (s a layer's output gradient, o its input)
        return jax.lax.dot_general(s, o, contract), s.sum((0, 1))

    def summed_rhs(s, o):
        return jax.lax.dot_general(o, s, contract), s.sum((0, 1))

    for fn in (summed_lhs, summed_rhs):
        rewritten = rewritten_for_cpu(fn)
        assert _dot_lhs_shapes(rewritten, summed, other) == [(MIN_ROWS, lhs_width)]
        _close(jax.jit(fn)(summed, other), jax.jit(rewritten)(summed, other))

    def alone(s, o):
        return jax.lax.dot_general(s, o, contract)

    assert _dot_lhs_shapes(rewritten_for_cpu(alone), summed, other) == [summed.shape]  # a product alone is left
