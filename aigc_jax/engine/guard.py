"""The non-finite guard: a NaN or Inf in a step's metrics or new state is flagged, and never saved.

Inside the compiled step, an update whose metrics or new state hold a NaN/Inf is flagged in the
metrics. The host reads the flags lazily, at the points where it syncs anyway (logging, eval,
checkpoints, the end), so dispatch stays asynchronous, and always before it reads the state.
Policies: `stop` (default) ends the run naming the step and metric, keeping the last good
checkpoint; `skip` drops that update and carries on.

Only `skip` needs the state from before a bad update, so only under `skip` does the step keep it
(one `lax.cond` over the whole state). Under `stop` the update is committed as computed: the run
ends at its next sync and the state holding it is never read (`Run` refuses to read it until a
restore). Keeping it anyway would cost a copy of the whole state every step, because the
conditional's result cannot be written in place: 2-11% of the cpu-preset steps
(docs/benchmarks.md, "The guard keeps the old state only under nan_policy=skip").
"""

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.engine import parallel

FLAG = "nonfinite"
POLICIES = ("stop", "skip")


class NonFiniteError(Exception):
    """A step produced NaN/Inf under nan_policy=stop: `step` (1-based) and the non-finite metric `names`."""

    def __init__(self, message: str, step: int, names: list[str]):
        super().__init__(message)
        self.step, self.names = step, names


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


def guarded(step_fn, policy: str):
    """Wrap `(state, batch, rng) -> (state, metrics)` (metrics already averaged over devices): the
    metrics gain the non-finite flag, and under `policy="skip"` a flagged update leaves the state
    bit for bit as it was."""
    if policy not in POLICIES:
        raise ValueError(f"nan_policy={policy!r}; expected one of {POLICIES}")

    def step(state, batch, rng):
        new_state, metrics = step_fn(state, batch, rng)
        ok = all_finite(metrics) & all_finite(new_state)
        # Under shard_map/pmap every device must take the same branch.
        ok = parallel.data_mean(ok.astype(jnp.float32)) == 1.0
        if policy == "skip":
            # One conditional for the whole state, not a `where` per leaf: with a select per leaf on
            # a predicate that reduces over every leaf, XLA:CPU took up to 6x longer to compile the
            # step (StyleGAN's: 46 s instead of 9 s).
            new_state = jax.lax.cond(ok, lambda: new_state, lambda: state)
        return new_state, {**metrics, FLAG: (~ok).astype(jnp.int32)}

    return step


def nonfinite_names(metrics: dict) -> list[str]:
    names = [k for k, v in metrics.items() if k != FLAG and not np.isfinite(np.asarray(v)).all()]
    return names or ["parameters or gradients"]


class PendingChecks:
    """Per-step flags kept on device until the host next syncs; then the bad steps are found.

    At most `limit` steps wait: past that the waiting flags are read (one sync per `limit` steps)
    and only the bad steps are kept, so a caller that never syncs does not hold every step's metrics."""

    def __init__(self, limit: int = 1024):
        self._pending: list[tuple[int, dict]] = []
        self._found: list[tuple[int, list[str]]] = []
        self.limit = limit

    def add(self, step: int, metrics: dict) -> None:
        self._pending.append((step, metrics))
        if len(self._pending) >= self.limit:
            self._found += self._read()

    def _read(self) -> list[tuple[int, list[str]]]:
        pending, self._pending = self._pending, []
        if not pending:
            return []
        flags = jax.device_get([m[FLAG] for _, m in pending])
        return [(step, nonfinite_names(jax.device_get(m))) for (step, m), f in zip(pending, flags) if int(f)]

    def bad_steps(self) -> list[tuple[int, list[str]]]:
        """[(step, names of non-finite metrics)] since the last call, in order."""
        found, self._found = self._found, []
        return found + self._read()
