"""The non-finite guard: a NaN or Inf in a step's metrics or new state never reaches the state.

Inside the compiled step, an update whose metrics or new state hold a NaN/Inf is replaced by the
old state (one `lax.cond` over the whole state) and flagged in the metrics. The host reads the flags lazily, at
the points where it syncs anyway (logging, eval, checkpoints, the end), so dispatch stays
asynchronous. Policies: `stop` (default) ends the run naming the step and metric, keeping the last
good checkpoint; `skip` drops that update and carries on.
"""

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.engine import parallel

FLAG = "nonfinite"
POLICIES = ("stop", "skip")


class NonFiniteError(Exception):
    """A step produced NaN/Inf under nan_policy=stop."""


# On CPU, leaves of at least this many elements are checked as a product with zeros (below).
MIN_PRODUCT_CHECK = 4096


def all_finite(tree) -> jax.Array:
    """Whether no float leaf of `tree` holds a NaN or an Inf."""
    leaves = [_finite(jnp.asarray(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _finite(x) -> jax.Array:
    if x.size < MIN_PRODUCT_CHECK or jax.default_backend() != "cpu":
        return jnp.isfinite(x).all()
    # x (as rows) times a vector of zeros: 0 * NaN and 0 * Inf are NaN, a NaN survives the sums,
    # and finite values give exactly 0, so the product is finite exactly when every element is.
    # XLA:CPU runs it as one vectorised pass over x, where `isfinite(x).all()` became a boolean
    # array and then a reduction over every axis: mlp_gan's and vae's steps spent 11% of their time
    # in those (docs/benchmarks.md, "The non-finite guard's check as a product").
    rows = x.reshape(-1, x.shape[-1])
    return jnp.isfinite(rows @ jnp.zeros(rows.shape[-1], rows.dtype)).all()


def guarded(step_fn):
    """Wrap `(state, batch, rng) -> (state, metrics)` (metrics already averaged over devices)."""

    def step(state, batch, rng):
        new_state, metrics = step_fn(state, batch, rng)
        ok = all_finite(metrics) & all_finite(new_state)
        # Under shard_map/pmap every device must take the same branch.
        ok = parallel.data_mean(ok.astype(jnp.float32)) == 1.0
        # One conditional for the whole state, not a `where` per leaf: with a select per leaf on a
        # predicate that reduces over every leaf, XLA:CPU took up to 6x longer to compile the step
        # (StyleGAN's: 46 s instead of 9 s).
        new_state = jax.lax.cond(ok, lambda: new_state, lambda: state)
        return new_state, {**metrics, FLAG: (~ok).astype(jnp.int32)}

    return step


def nonfinite_names(metrics: dict) -> list[str]:
    names = [k for k, v in metrics.items() if k != FLAG and not np.isfinite(np.asarray(v)).all()]
    return names or ["parameters or gradients"]


class PendingChecks:
    """Per-step flags kept on device until the host next syncs; then the first bad step is found."""

    def __init__(self):
        self._pending: list[tuple[int, dict]] = []

    def add(self, step: int, metrics: dict) -> None:
        self._pending.append((step, metrics))

    def bad_steps(self) -> list[tuple[int, list[str]]]:
        """[(step, names of non-finite metrics)] since the last call, in order."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        flags = jax.device_get([m[FLAG] for _, m in pending])
        return [(step, nonfinite_names(jax.device_get(m))) for (step, m), f in zip(pending, flags) if int(f)]
