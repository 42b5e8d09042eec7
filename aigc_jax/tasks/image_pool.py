"""CycleGAN's image history pool (Shrivastava et al. 2017), as a pure function over train state.

The discriminators see a mix of the newest fakes and older ones, which damps oscillation. As in
the reference implementation, each new fake in turn: while the pool is not full, it is stored and
passed on; once full, with probability 1/2 it replaces a random stored fake, which is passed on
instead, else it is passed on itself. A size of 0 turns the pool off.

The pool lives in the train state (checkpointed, so resume is exact); its coin flips and slots
come from the per-example keys. Under shard_map/pmap every device gathers the global batch's fakes
and draws, updates the (replicated) pool identically, and keeps its own rows of the output, so
the four parallel modes compute the same pool.
"""

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from aigc_jax.engine import parallel


@struct.dataclass
class ImagePool:
    images: jax.Array  # [size, H, W, C]
    count: jax.Array  # int32 scalar: how many slots are filled

    @property
    def size(self) -> int:
        return self.images.shape[0]


def empty_pool(size: int, image_shape) -> ImagePool:
    return ImagePool(images=jnp.zeros((size, *image_shape), jnp.float32), count=jnp.zeros((), jnp.int32))


def pool_draws(keys: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """Per example: (swap with a stored fake? [B] bool, which slot [B] int32)."""
    def one(key):
        coin, slot = jax.random.split(key)
        return jax.random.uniform(coin) < 0.5, jax.random.randint(slot, (), 0, max(size, 1))

    return jax.vmap(one)(keys)


def query(pool: ImagePool, images: jax.Array, swap: jax.Array, slot: jax.Array) -> tuple[ImagePool, jax.Array]:
    """(updated pool, the images to show the discriminator), examples taken in order."""
    if pool.size == 0:
        return pool, images

    def one(carry, inputs):
        stored, count = carry
        image, do_swap, j = inputs
        filling = count < pool.size
        index = jnp.where(filling, count, j)
        old = stored[index]
        out = jnp.where(filling | ~do_swap, image, old)
        stored = stored.at[index].set(jnp.where(filling | do_swap, image, old))
        return (stored, count + filling.astype(count.dtype)), out

    (stored, count), out = lax.scan(one, (pool.images, pool.count), (images.astype(jnp.float32), swap, slot))
    return ImagePool(images=stored, count=count), out


def query_batch(pool: ImagePool, images: jax.Array, keys: jax.Array) -> tuple[ImagePool, jax.Array]:
    """`query` over the global batch whatever the parallel mode; returns this device's rows."""
    swap, slot = pool_draws(keys, pool.size)
    pool, out = query(pool, *parallel.data_all_gather((images, swap, slot)))
    axis = parallel.bound_data_axis()
    if axis is None:
        return pool, out
    local = images.shape[0]
    return pool, lax.dynamic_slice_in_dim(out, lax.axis_index(axis) * local, local)
