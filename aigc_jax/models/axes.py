"""Which named axis a module is traced under: for layers that average over the devices of a
data-parallel step written per device (BatchNorm's `axis_name` under shard_map or pmap)."""

from jax import lax


def bound_axis(name: str | None) -> str | None:
    """`name` when tracing inside shard_map/pmap over an axis of that name, else None (under plain
    or sharded jit XLA sees the global batch, so there is nothing to average over)."""
    if name is None:
        return None
    try:
        lax.axis_index(name)
    except NameError:
        return None
    return name
