"""Random image augmentations in pure JAX, one PRNG key per example (contrastive learning).

`augment(key, image, aug)` maps one image [H, W, C] in [0, 1] to another of the same shape and
range: a random affine map (rotation, zoom in or out, shift: the small-image form of SimCLR's
random crop), a smooth elastic displacement, then additive Gaussian noise. The image is resampled
once, bilinearly (`jax.scipy.ndimage.map_coordinates`), with black outside it, as the digits'
background is. `augment_batch` vmaps it over per-example keys, so an example's views depend only
on its own key: the same numbers in every parallel mode, however the batch is split.
"""

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

ELASTIC_GRID = 4  # the elastic field is drawn on a 4x4 grid and upsampled: smooth, few parameters


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """How strong each random transformation is; zero turns it off."""

    rotation: float = 15.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.15  # zoom factor uniform in [1 - scale, 1 + scale]
    shift: float = 3.0  # pixels, uniform in [-shift, shift] along each axis
    elastic: float = 1.0  # std (pixels) of the smooth random displacement
    noise: float = 0.05  # std of additive Gaussian pixel noise


def num_uniforms(height: int, width: int, channels: int) -> int:
    """Uniform draws one view consumes: 4 affine parameters, then pairs for the Gaussian draws."""
    return 4 + 2 * (2 * ELASTIC_GRID * ELASTIC_GRID + height * width * channels)


def _gaussian(u: jax.Array) -> jax.Array:
    """Box-Muller: 2k uniforms in [0, 1) -> k standard normals."""
    u1, u2 = jnp.split(u, 2)
    return jnp.sqrt(-2.0 * jnp.log1p(-u1)) * jnp.cos(2.0 * jnp.pi * u2)


def warp_coordinates(affine: jax.Array, elastic: jax.Array, height: int, width: int, aug: Augmentation) -> jax.Array:
    """[2, H, W] input (row, col) coordinates each output pixel is read from, given 4 uniforms in
    [0, 1) for the affine map and [2, G, G] standard normals for the elastic field."""
    angle, zoom_u, shift_r, shift_c = 2.0 * affine - 1.0  # each uniform in [-1, 1)
    angle = jnp.deg2rad(aug.rotation) * angle
    zoom = 1.0 + aug.scale * zoom_u
    shift = aug.shift * jnp.stack([shift_r, shift_c])
    centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0])
    out = jnp.stack(jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32),
                                 indexing="ij"))  # [2, H, W]
    p = out - (centre + shift)[:, None, None]
    # Inverse map: the content is rotated by `angle` and zoomed by `zoom`, so read from R(-angle) p / zoom.
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    rows = (cos * p[0] + sin * p[1]) / zoom
    cols = (-sin * p[0] + cos * p[1]) / zoom
    coords = jnp.stack([rows, cols]) + centre[:, None, None]
    return coords + jax.image.resize(aug.elastic * elastic, (2, height, width), method="cubic")


def view_from_uniforms(u: jax.Array, image: jax.Array, aug: Augmentation) -> jax.Array:
    """The view of `image` [H, W, C] that the uniforms `u` [num_uniforms(H, W, C)] pick."""
    h, w, c = image.shape
    normals = _gaussian(u[4:])
    elastic = normals[:2 * ELASTIC_GRID * ELASTIC_GRID].reshape(2, ELASTIC_GRID, ELASTIC_GRID)
    noise = normals[2 * ELASTIC_GRID * ELASTIC_GRID:].reshape(h, w, c)
    coords = warp_coordinates(u[:4], elastic, h, w, aug)
    warped = jax.vmap(lambda channel: map_coordinates(channel, list(coords), order=1, mode="constant", cval=0.0),
                      in_axes=-1, out_axes=-1)(image.astype(jnp.float32))
    return jnp.clip(warped + aug.noise * noise, 0.0, 1.0)


# One `uniform` draw per call, normals made from it: each threefry (and erfinv) draw is a kernel XLA
# compiles separately, and they dominated the compile time of the whole training step on CPU.

def augment(key: jax.Array, image: jax.Array, aug: Augmentation = Augmentation()) -> jax.Array:
    """One random view of `image` [H, W, C] in [0, 1]: same shape, values in [0, 1]."""
    return view_from_uniforms(jax.random.uniform(key, (num_uniforms(*image.shape),)), image, aug)


def augment_batch(keys: jax.Array, images: jax.Array, aug: Augmentation = Augmentation()) -> jax.Array:
    """One view per example: keys [B], images [B, H, W, C] -> [B, H, W, C]."""
    return jax.vmap(lambda k, x: augment(k, x, aug))(keys, images)


def two_views(keys: jax.Array, images: jax.Array, aug: Augmentation = Augmentation()) -> tuple[jax.Array, jax.Array]:
    """The positive pair of each example: two independent views drawn from its own key."""
    def pair(key, image):
        u = jax.random.uniform(key, (2, num_uniforms(*image.shape)))
        return view_from_uniforms(u[0], image, aug), view_from_uniforms(u[1], image, aug)

    return jax.vmap(pair)(keys, images)
