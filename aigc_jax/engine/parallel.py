"""Data-parallel reductions that tasks can call without knowing the parallel mode.

Under `shard_map` and `pmap` the engine binds the mesh axis `DATA_AXIS`; there each device holds a
slice of the batch and gradients, metrics and BatchNorm statistics must be averaged across it.
Under plain or sharded `jit` no axis is bound and XLA already sees the global batch, so these
functions are the identity. The check happens at trace time, so it costs nothing at run time.
"""

import jax
from jax import lax

from aigc_jax.models.axes import bound_axis

DATA_AXIS = "data"


def bound_data_axis() -> str | None:
    """`DATA_AXIS` when tracing inside shard_map/pmap over it, else None (for BatchNorm's axis_name)."""
    return bound_axis(DATA_AXIS)


def data_mean(tree):
    """Mean over the data-parallel devices (identity when the batch is not split by hand)."""
    if bound_data_axis() is None:
        return tree
    return jax.tree.map(lambda x: lax.pmean(x, DATA_AXIS), tree)


def data_sum(tree):
    """Sum over the data-parallel devices (identity when the batch is not split by hand)."""
    if bound_data_axis() is None:
        return tree
    return jax.tree.map(lambda x: lax.psum(x, DATA_AXIS), tree)


def data_all_gather(tree):
    """Every device's rows, concatenated in device order: the global batch (identity when the batch
    is not split by hand). For losses over the whole batch (contrastive negatives); the gradient
    flows back to each row's own device (all_gather's transpose is a reduce-scatter)."""
    if bound_data_axis() is None:
        return tree
    return jax.tree.map(lambda x: lax.all_gather(x, DATA_AXIS, tiled=True), tree)
