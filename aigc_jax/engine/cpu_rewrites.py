"""A CPU train step rewritten, from its jaxpr, into operations XLA:CPU compiles well.

`rewritten_for_cpu(fn)` traces `fn` to a jaxpr and evaluates it again, binding every primitive
as traced except a few kinds that XLA:CPU compiles into slow loops or extra passes:

**Sums over many rows, as matrix products.** XLA:CPU compiles a sum over the leading axes of an
array (the gradient of every bias, of every LayerNorm scale and shift, BatchNorm's statistics over
batch and pixels) as a two-stage reduce-window whose inner loop walks the array with a stride of
one row: a bias gradient of [16, 128, 1024] took 6.5 ms inside GPT's step, where the same sum
written as a product with a vector of ones runs in YNNPACK's vectorised kernels in about the time
it takes to read the array. Floating-point `reduce_sum`s over leading axes become:
- when a `dot_general` also contracts the summed array over the same leading axes (a layer's bias
  gradient beside its kernel gradient), part of that product, as one more column of ones beside
  the other operand: `[x, 1]^T @ g` gives the kernel and the bias gradient at once, as
  cuBLASLt's bias-gradient epilogue does. Summed alone, XLA then transposes `g` for the kernel
  gradient instead of `x` (GPT's step: 350 -> 430 ms). Eigen runs that product fastest with the
  narrower operand as its lhs, and one whose rows are not a multiple of 512 floats (it reads the
  lhs down its columns, and at such strides the reads fall on the same cache sets): so `[x, 1]`
  is the lhs unless `x` is the wider, else `g`, with a column of zeros when it is aligned (gpt's
  MLP kernel gradients 35% faster, the transformer's step 4-6%, gpt's 2-6%);
- any other such sum, `ones @ g`.

**Maxes over a last axis by halves.** XLA:CPU's reduction of a row to its maximum (NaN
propagating) runs at about a third of the speed of its sum; halving the row with elementwise
maximums first, while it is even and at least 128 long, then reducing what is left is about twice
as fast (lstm_lm's log-softmax stabiliser over 5000 words: 4.2 -> 2.0 ms). Same value bit for bit.

**A mean of per-example sums, from those sums.** XLA merges a sum of a sum's result into one
sum over the inner sum's operand. Where the per-example sums are read too (a VAE's per-image
reconstruction loss, and its mean reported as a metric), that is a second pass over the
per-pixel array; the rewrite keeps the outer sum on the inner one's result (vae's step 8-9% faster
on two threads, docs/benchmarks.md "A mean of per-example sums").

**Argmax as two plain reductions.** XLA:CPU compiles `argmax` as one reduction over (value,
index) pairs, about three times slower than a max followed by the smallest index holding it
(transformer's teacher-forced accuracy over 1000 words: 2.3 -> 0.7 ms). The first index of the
maximum, NaN counted as the largest (argmax's convention), so the result is the same.

The function computes the same numbers (sums in another order: equal to float32 rounding), and
autodiff, sharding and donation see an ordinary JAX function. Calls of nested `jax.jit` functions
are inlined and `lax.scan` bodies rewritten in place (a truncated-BPTT language model's or PPO's
whole update is a scan body); while-loop, cond and `shard_map` bodies are left as they are.
Measured in docs/benchmarks.md ("Sums as matrix products", "Maxes by halves", "A mean of
per-example sums", "Argmax as two reductions").

The engine applies it to the train step of the `jit` and `sharded` modes on CPU devices
(`engine/compile.py`); `AIGC_JAX_CPU_REWRITES=0` turns it off. On GPU and TPU, XLA's own
reductions are kept.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core
from jax.extend.core import primitives

from aigc_jax.engine.xla_flags import switched_off

OPT_OUT_ENV = "AIGC_JAX_CPU_REWRITES"
# Sums over fewer rows are left to XLA: rewritten, the batch-64 sums of mlp_gan's and vae's steps
# made them 10-30% slower, and at a few hundred rows the reduce loop is as fast.
MIN_ROWS = 512
# Argmaxes over fewer values (a 10-way classifier's) are left: the pair reduction is cheap there.
MIN_ARGMAX = 128
# Maxes over the last axis are halved (elementwise maximums of its two halves) down to fewer than
# this many values before XLA's reduce, which at 64-128 values ran fastest (docs/benchmarks.md).
MIN_HALVED_MAX = 128
# A kernel gradient paired with its bias gradient contracts the rows of both operands, which
# XLA:CPU runs in Eigen; Eigen reads that product's lhs down its columns, and when the lhs's rows
# are a multiple of this many floats long those reads fall on the same cache sets. The lhs is
# `[x, 1]` (unaligned by its ones) unless x is the wider, else the summed array, given one more
# column of zeros when aligned (docs/benchmarks.md, "The narrower operand as the lhs"). Products
# left alone keep their operands: padding dcgan's per-tap kernel gradients (lhs a window of a
# larger array) and mlp_gan's batch-64 products made their steps slower.
ALIASED_ROW = 512


def _leading_sum(eqn) -> int:
    """How many leading axes a float `reduce_sum` eqn sums (over at least MIN_ROWS rows), else 0."""
    if eqn.primitive is not primitives.reduce_sum_p:
        return 0
    aval = eqn.invars[0].aval
    axes = tuple(sorted(eqn.params["axes"]))
    n = len(axes)
    # (Weakly typed sums are left: a rewritten one would come back strongly typed, and a loop's
    # carry must keep its type.)
    if (not n or n == len(aval.shape) or axes != tuple(range(n)) or not jnp.issubdtype(aval.dtype, jnp.floating)
            or aval.weak_type or math.prod(aval.shape[:n]) < MIN_ROWS):
        return 0
    return n


def _is_shared_sum_of_sum(eqn, jaxpr: core.Jaxpr, users: dict, made_at: dict) -> bool:
    """Whether `eqn` is a float `reduce_sum` of another sum's result that something else reads too
    (a mean of per-example sums beside the per-example loss)."""
    if eqn.primitive is not primitives.reduce_sum_p:
        return False
    summed = eqn.invars[0]
    if (not isinstance(summed, core.Var) or summed not in made_at
            or jaxpr.eqns[made_at[summed]].primitive is not primitives.reduce_sum_p):
        return False
    readers = len(users.get(summed, [])) + sum(v is summed for v in jaxpr.outvars)
    return jnp.issubdtype(summed.aval.dtype, jnp.floating) and not summed.aval.weak_type and readers > 1


def _sum_kept_apart(x, axes):
    """The sum of `x` over `axes`, exactly, as 2 * sum(x / 2): XLA merges a sum of a sum's result
    into one sum over the inner sum's operand, a second pass over it when the inner result is read
    too; the halving (exact for floats above the subnormal range) keeps the two apart."""
    half = jnp.asarray(0.5, x.dtype)
    return lax.reduce_sum(x * half, axes) * jnp.asarray(2, x.dtype)


def _partner(eqn, summed, n: int):
    """(other operand, whether `summed` is the lhs) if `eqn` is a dot_general that contracts the
    first `n` axes of `summed` with the first `n` of its other operand, and has no batch axes."""
    if eqn.primitive is not primitives.dot_general_p:
        return None
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = eqn.invars
    if lb or rb or lhs is rhs or tuple(lc) != tuple(range(n)) or tuple(rc) != tuple(range(n)):
        return None
    if lhs is summed:
        return rhs, True
    if rhs is summed:
        return lhs, False
    return None


def _uses(eqns) -> tuple[dict, dict]:
    """({var: indices of the eqns reading it}, {var: index of the eqn making it})."""
    users: dict = {}
    made_at: dict = {}
    for i, eqn in enumerate(eqns):
        for v in eqn.invars:
            if isinstance(v, core.Var):
                users.setdefault(v, []).append(i)
        for v in eqn.outvars:
            made_at[v] = i
    return users, made_at


def _pairs(eqns, users: dict, made_at: dict) -> dict:
    """{index: (sum eqn, dot eqn, the dot's other operand, whether the summed array is its lhs)}
    where each sum paired with a dot is computed, and {index: None} at the other of the two. Both
    are computed at the earlier one when the dot's other operand exists by then, else at the later
    one if nothing between them reads the earlier result."""
    pairs: dict = {}
    for i, eqn in enumerate(eqns):
        n = _leading_sum(eqn)
        if not n:
            continue
        for j in users.get(eqn.invars[0], []):
            partner = None if j in pairs else _partner(eqns[j], eqn.invars[0], n)
            if partner is None:
                continue
            first, last = min(i, j), max(i, j)
            if made_at.get(partner[0], -1) < first:
                at, skip = first, last
            elif not any(k < last for v in eqns[first].outvars for k in users.get(v, [])):
                at, skip = last, first
            else:
                continue
            pairs[at], pairs[skip] = (eqn, eqns[j], *partner), None
            break
    return pairs


def _sum_with_dot(sum_eqn, dot_eqn, summed, other, summed_is_lhs: bool):
    """The kernel gradient (`dot_eqn`'s result) and the bias gradient (`sum_eqn`'s) from one product."""
    rows = math.prod(summed.shape[:_leading_sum(sum_eqn)])
    g = summed.reshape(rows, -1)
    x = other.reshape(rows, -1)
    x1 = jnp.concatenate([x, jnp.ones((rows, 1), x.dtype)], axis=1)
    contract = (((0,), (0,)), ((), ()))
    params = dict(precision=dot_eqn.params["precision"], preferred_element_type=dot_eqn.params["preferred_element_type"])
    # Eigen computes this product (both operands contracted over their rows) fastest with the
    # narrower operand as its lhs, and one whose rows are not a multiple of ALIASED_ROW floats:
    # [x, 1] unless x is the wider (at equal widths [x, 1]'s odd rows won: transformer's attention
    # projections, 3.5% of its step on one core).
    if x.shape[1] <= g.shape[1]:
        both = lax.dot_general(x1, g, contract, **params)  # [m + 1, k]
        product, total = both[:-1], both[-1]
        product = product.T if summed_is_lhs else product
    else:
        both = lax.dot_general(_unaligned_rows(g), x1, contract, **params)[:g.shape[1]]  # [k, m + 1]
        product, total = both[:, :-1], both[:, -1]
        product = product if summed_is_lhs else product.T
    return (product.reshape(dot_eqn.outvars[0].aval.shape),
            total.astype(summed.dtype).reshape(sum_eqn.outvars[0].aval.shape))


def _unaligned_rows(x):
    """`x` [rows, k], with a column of zeros after its last when k is a multiple of ALIASED_ROW."""
    return jnp.pad(x, ((0, 0), (0, 1))) if x.shape[1] % ALIASED_ROW == 0 else x


def _is_large_argmax(eqn) -> bool:
    if eqn.primitive is not primitives.argmax_p:
        return False
    aval = eqn.invars[0].aval
    (axis,) = eqn.params["axes"]
    return jnp.issubdtype(aval.dtype, jnp.floating) and aval.shape[axis] >= MIN_ARGMAX


def _is_large_trailing_max(eqn) -> bool:
    if eqn.primitive is not primitives.reduce_max_p:
        return False
    aval = eqn.invars[0].aval
    return (tuple(eqn.params["axes"]) == (len(aval.shape) - 1,) and jnp.issubdtype(aval.dtype, jnp.floating)
            and not aval.weak_type and aval.shape[-1] >= MIN_HALVED_MAX and aval.shape[-1] % 2 == 0)


def _max_by_halves(x):
    """The max over the last axis, after halving it with elementwise maximums while it is even
    and at least MIN_HALVED_MAX long (NaN propagates through both, as through the reduce)."""
    while x.shape[-1] >= MIN_HALVED_MAX and x.shape[-1] % 2 == 0:
        half = x.shape[-1] // 2
        x = jnp.maximum(x[..., :half], x[..., half:])
    return lax.reduce_max(x, (x.ndim - 1,))


def _first_max_index(x, axis: int, index_dtype):
    """argmax along `axis` as a max and a min: the first index of the largest value, NaN largest."""
    last = axis in (-1, x.ndim - 1)
    top = (_max_by_halves(x) if last else jnp.max(x, axis=axis))  # NaN if any is NaN
    top = jnp.expand_dims(top, axis)
    hit = (x == top) | jnp.isnan(x)
    index = lax.broadcasted_iota(index_dtype, x.shape, axis)
    return jnp.min(jnp.where(hit, index, x.shape[axis]), axis=axis).astype(index_dtype)


def _sum_alone(summed, n: int):
    rows = math.prod(summed.shape[:n])
    # Accumulate in float32 whatever the input dtype, as XLA's reduce does for bfloat16.
    acc = jnp.promote_types(summed.dtype, jnp.float32)
    total = lax.dot_general(jnp.ones((rows,), summed.dtype), summed.reshape(rows, -1), (((0,), (0,)), ((), ())),
                            preferred_element_type=acc)
    return total.astype(summed.dtype).reshape(summed.shape[n:])


def _evaluate(jaxpr: core.Jaxpr, consts, args) -> list:
    env = {}

    def read(v):
        return v.val if isinstance(v, core.Literal) else env[v]

    for v, val in zip(jaxpr.constvars, consts):
        env[v] = val
    for v, val in zip(jaxpr.invars, args):
        env[v] = val
    users, made_at = _uses(jaxpr.eqns)
    pairs = _pairs(jaxpr.eqns, users, made_at)
    for index, eqn in enumerate(jaxpr.eqns):
        if pairs.get(index, 0) is None:
            continue  # computed with its partner
        # The traced op names ("transpose(jvp(GPT))/block_1/mlp/up"), for profiles.
        with jax.named_scope(str(eqn.source_info.name_stack) or "_"):
            if index in pairs:
                sum_eqn, dot_eqn, other, summed_is_lhs = pairs[index]
                product, total = _sum_with_dot(sum_eqn, dot_eqn, read(sum_eqn.invars[0]), read(other), summed_is_lhs)
                env[dot_eqn.outvars[0]], env[sum_eqn.outvars[0]] = product, total
                continue
            invals = [read(v) for v in eqn.invars]
            if n := _leading_sum(eqn):
                outvals = [_sum_alone(invals[0], n)]
            elif _is_shared_sum_of_sum(eqn, jaxpr, users, made_at):
                outvals = [_sum_kept_apart(invals[0], tuple(eqn.params["axes"]))]
            elif _is_large_trailing_max(eqn):
                outvals = [_max_by_halves(invals[0])]
            elif _is_large_argmax(eqn):
                outvals = [_first_max_index(invals[0], eqn.params["axes"][0], eqn.params["index_dtype"])]
            elif eqn.primitive is primitives.jit_p:
                inner = eqn.params["jaxpr"]
                outvals = _evaluate(inner.jaxpr, inner.consts, invals)
            else:
                params = eqn.params
                if eqn.primitive is primitives.scan_p:  # a scan's body is rewritten too (one trace)
                    params = {**params, "jaxpr": _rewritten(params["jaxpr"])}
                with eqn.ctx.manager:
                    out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))
                outvals = out if eqn.primitive.multiple_results else [out]
        for v, val in zip(eqn.outvars, outvals):
            env[v] = val
    return [read(v) for v in jaxpr.outvars]


def _rewritten(closed: core.ClosedJaxpr) -> core.ClosedJaxpr:
    """A closed jaxpr (a loop body) rewritten, taking and giving the same types."""
    avals = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype, weak_type=v.aval.weak_type) for v in closed.jaxpr.invars]
    return jax.make_jaxpr(lambda *args: _evaluate(closed.jaxpr, closed.consts, args))(*avals)


def rewritten_for_cpu(fn):
    """`fn` with its large leading-axis sums as matrix products, its long trailing maxes halved, its
    means of shared per-example sums kept apart and its argmaxes as two reductions (module docstring)."""

    @functools.wraps(fn)
    def wrapped(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return wrapped


def cpu_rewrites_on(devices) -> bool:
    """Whether the engine rewrites a train step compiled for `devices`: on CPU, unless opted out."""
    return not switched_off(OPT_OUT_ENV) and all(d.platform == "cpu" for d in devices)
