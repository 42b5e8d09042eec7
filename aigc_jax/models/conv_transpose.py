"""`ConvTranspose`: flax's transposed convolution, with a kernel gradient XLA:CPU computes fast.

Same parameters (`kernel` [kh, kw, in, out], `bias`), same initialisers, same auto-name and the
same forward pass as `flax.linen.ConvTranspose` (with its default `transpose_kernel=False`: a
correlation over the stride-dilated, padded input, `lax.conv_transpose`), so checkpoints and
numbers carry over. Only the gradient with respect to the kernel is written differently, and a
transposed convolution of a one-pixel input (DCGAN's first layer, 1x1 -> 4x4) is computed as the
single product it is (`conv_transpose_one_pixel`: equal to float rounding).

Why: XLA lowers that gradient to a convolution over the dilated input (`lhs_dilation`), which
XLA:CPU runs on a slow generic path: for DCGAN's 4->8 pixel, 512->256 channel layer at batch 64
it took 1152 ms against 28 ms for the forward pass and 41 ms for the input gradient. Here it is
a sum over the kernel taps of one matmul each, `x[window] @ dy[phase]`, over only the
(input, output) pixel pairs that tap connects: a stride-s tap meets every s-th output pixel,
so no multiplication by the dilation's zeros is done. Same layer: 27 ms (docs/benchmarks.md).
The forward pass and the input gradient stay XLA's, which are fast already.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

DIMENSIONS = ("NHWC", "HWIO", "NHWC")
# Below this many output channels XLA's own kernel gradient is the faster one (an image layer with
# 1-3 channels: 7 ms against 40 ms per tap sum at 16->32 px, 128->1 channels; from 8 up the per-tap
# sum wins, 66 against 78 ms, and by 32 channels 65 against 484 ms).
PER_TAP_MIN_FEATURES = 8


def transpose_padding(kernel: int, stride: int, padding) -> tuple[int, int]:
    """lax.conv_transpose's padding of the dilated input for one spatial dimension."""
    if padding == "SAME":
        total = kernel + stride - 2
        low = kernel - 1 if stride > kernel - 1 else -(-total // 2)
    elif padding == "VALID":
        total = kernel + stride - 2 + max(kernel - stride, 0)
        low = kernel - 1
    else:
        return tuple(padding)
    return low, total - low


def _tap_range(tap: int, stride: int, pad_low: int, n_in: int, n_out: int) -> tuple[int, int, int]:
    """Input pixels m (first, count) that kernel tap `tap` connects to output pixel
    `pad_low - tap + stride * m`, and the first such output pixel."""
    first = max(0, -(-(tap - pad_low) // stride))
    last = min(n_in - 1, (n_out - 1 - pad_low + tap) // stride)
    count = max(0, last - first + 1)
    return first, count, pad_low - tap + stride * first


def kernel_gradient(x, dy, kernel_size: Sequence[int], strides: Sequence[int], pads) -> jax.Array:
    """d(sum(dy * conv_transpose(x, k))) / dk, [kh, kw, in, out] in float32: one matmul per tap."""
    taps = []
    for ty in range(kernel_size[0]):
        row = []
        for tx in range(kernel_size[1]):
            (my, cy, py), (mx, cx, px) = (_tap_range(t, s, p[0], x.shape[d], dy.shape[d])
                                          for t, s, p, d in ((ty, strides[0], pads[0], 1), (tx, strides[1], pads[1], 2)))
            if cy == 0 or cx == 0:
                row.append(jnp.zeros((x.shape[-1], dy.shape[-1]), jnp.float32))
                continue
            window = x[:, my:my + cy, mx:mx + cx]
            phase = dy[:, py:py + strides[0] * (cy - 1) + 1:strides[0], px:px + strides[1] * (cx - 1) + 1:strides[1]]
            row.append(jnp.einsum("bhwi,bhwo->io", window, phase, preferred_element_type=jnp.float32))
        taps.append(jnp.stack(row))
    return jnp.stack(taps)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, strides: tuple, pads: tuple):
    """`lax.conv_transpose(x, kernel, strides, pads)` (NHWC, HWIO), with a fast kernel gradient."""
    return lax.conv_transpose(x, kernel, strides, pads, dimension_numbers=DIMENSIONS)


def _forward(x, kernel, strides, pads):
    return conv_transpose(x, kernel, strides, pads), (x, kernel)


def _backward(strides, pads, residuals, dy):
    x, kernel = residuals
    native = lambda x, kernel: lax.conv_transpose(x, kernel, strides, pads, dimension_numbers=DIMENSIONS)  # noqa: E731
    if kernel.shape[-1] < PER_TAP_MIN_FEATURES:
        return jax.vjp(native, x, kernel)[1](dy)
    _, input_vjp = jax.vjp(lambda x: native(x, kernel), x)
    return input_vjp(dy)[0], kernel_gradient(x, dy, kernel.shape[:2], strides, pads).astype(kernel.dtype)


conv_transpose.defvjp(_forward, _backward)


def one_pixel_taps(pads: tuple, kernel_size: Sequence[int]) -> tuple[int, ...] | None:
    """For a 1x1 input: (first tap, output length) per spatial dimension when output pixel i is
    the input times kernel tap `first - i` for every i (no output pixel outside the kernel's
    reach), else None. A transposed convolution of one pixel is then a single product."""
    out = []
    for (low, high), k in zip(pads, kernel_size):
        length = low + high + 2 - k
        if length < 1 or low >= k or low - (length - 1) < 0:
            return None
        out += [low, length]
    return tuple(out)


def conv_transpose_one_pixel(x, kernel, taps: tuple) -> jax.Array:
    """`lax.conv_transpose` of a [B, 1, 1, in] input: [B, in] @ the kernel's taps, flipped and laid
    out [in, h * w * out]. XLA:CPU ran DCGAN's 1x1 -> 4x4, 100 -> 512 layer as a padded convolution
    at 10 ms against 2 for torch; as a product its forward, input and kernel gradients are matmuls."""
    first_h, length_h, first_w, length_w = taps
    window = kernel[first_h - length_h + 1:first_h + 1, first_w - length_w + 1:first_w + 1][::-1, ::-1]
    matrix = jnp.transpose(window, (2, 0, 1, 3)).reshape(kernel.shape[2], -1)
    return (x[:, 0, 0, :] @ matrix).reshape(x.shape[0], length_h, length_w, kernel.shape[3])


class ConvTranspose(nn.Module):
    """2-D `flax.linen.ConvTranspose` (NHWC; no mask, kernel dilation or circular padding)."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    padding: Any = "SAME"
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.linear.default_kernel_init
    bias_init: Any = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        size = tuple(self.kernel_size)
        strides = tuple(self.strides or (1, 1))
        kernel = self.param("kernel", self.kernel_init, (*size, x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        pads = tuple(transpose_padding(k, s, self.padding if isinstance(self.padding, str) else self.padding[i])
                     for i, (k, s) in enumerate(zip(size, strides)))
        taps = one_pixel_taps(pads, size) if x.shape[1:3] == (1, 1) else None
        y = conv_transpose_one_pixel(x, kernel, taps) if taps else conv_transpose(x, kernel, strides, pads)
        return y if bias is None else y + bias
