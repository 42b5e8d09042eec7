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
products over only the (input, output) pixel pairs each kernel tap connects (a stride-s tap meets
every s-th output pixel), so no multiplication by the dilation's zeros is done. A layer whose
taps x output channels are at most `STACKED_MAX_WIDTH` (an image output layer, a narrow decoder
layer) is one product: each tap's phase of the output gradient, stacked on the channel axis,
contracted with the input (`stacked_kernel_gradient`, on CPU; DCGAN's 128 -> 1 output layer
5.3 -> 0.7 ms). A wider layer is one product per tap, `x[window] @ dy[phase]` (`kernel_gradient`; the
512 -> 256 layer above: 27 ms), since stacking would copy its output gradient taps / stride^2
times over. The forward pass and the input gradient stay XLA's, which are fast already.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

DIMENSIONS = ("NHWC", "HWIO", "NHWC")
# Widest stacked output gradient (kernel taps x output channels) whose kernel gradient is one
# product; wider layers take one product per tap. At batch 64 (two threads, ms, XLA's own / stacked /
# per tap): 16 x 1 channels 5.3 / 0.7 / 40, 16 x 16 187 / 16 / 55, 16 x 64 at 8 px 316 / 16 / 19,
# 16 x 128 at 8 px 954 / 56 / 40 (docs/benchmarks.md, "Image layers' kernel gradients stacked").
STACKED_MAX_WIDTH = 1024


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


def stacked_kernel_gradient(x, dy, kernel_size: Sequence[int], strides: Sequence[int], pads) -> jax.Array:
    """`kernel_gradient` as one product: the phase of dy that each tap meets, zero where the tap
    falls outside the output, laid on the input's pixel grid and stacked on the channel axis
    ([B, h, w, taps * out]), contracted with x over (batch, h, w). The tap geometry is
    `_tap_range`'s, but dy is padded once for all taps: each tap's window from `_tap_range` padded
    back onto the grid gave the same numbers 10-20% slower (128 -> 3 and 32 -> 16 channels)."""
    low, high, first = [], [], []
    for d, (k, s, (p, _)) in enumerate(zip(kernel_size, strides, pads)):
        # tap t meets output pixel p - t + s * m of input pixel m: pad dy so every tap's is in range
        low.append(max(0, k - 1 - p))
        high.append(max(0, p + s * (x.shape[1 + d] - 1) - (dy.shape[1 + d] - 1)))
        first.append(low[-1] + p)
    padded = jnp.pad(dy, ((0, 0), (low[0], high[0]), (low[1], high[1]), (0, 0)))
    (sy, sx), (h, w) = strides, x.shape[1:3]
    phases = [padded[:, first[0] - ty:first[0] - ty + sy * (h - 1) + 1:sy, first[1] - tx:first[1] - tx + sx * (w - 1) + 1:sx]
              for ty in range(kernel_size[0]) for tx in range(kernel_size[1])]
    product = jnp.einsum("bhwc,bhwi->ci", jnp.concatenate(phases, axis=-1), x, preferred_element_type=jnp.float32)
    return jnp.transpose(product.reshape(*kernel_size, dy.shape[-1], x.shape[-1]), (0, 1, 3, 2))


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, strides: tuple, pads: tuple):
    """`lax.conv_transpose(x, kernel, strides, pads)` (NHWC, HWIO), with a fast kernel gradient."""
    return lax.conv_transpose(x, kernel, strides, pads, dimension_numbers=DIMENSIONS)


def _forward(x, kernel, strides, pads):
    return conv_transpose(x, kernel, strides, pads), (x, kernel)


def _backward(strides, pads, residuals, dy):
    x, kernel = residuals
    native = lambda x, kernel: lax.conv_transpose(x, kernel, strides, pads, dimension_numbers=DIMENSIONS)  # noqa: E731
    kh, kw, _, out = kernel.shape
    if kh * kw * out > STACKED_MAX_WIDTH:
        gradient = kernel_gradient
    elif jax.default_backend() == "cpu":
        gradient = stacked_kernel_gradient
    else:  # measured on CPU only: off it a narrow layer takes XLA's own (cuDNN's) kernel gradient
        return jax.vjp(native, x, kernel)[1](dy)
    _, input_vjp = jax.vjp(lambda x: native(x, kernel), x)
    return input_vjp(dy)[0], gradient(x, dy, kernel.shape[:2], strides, pads).astype(kernel.dtype)


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
