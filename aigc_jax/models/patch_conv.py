"""A convolution over an image's few channels as one matmul over its patches (or, for one channel
at stride 1, a sum over the kernel's taps), for `nn.Conv`.

XLA:CPU's convolution is slow when the input has one or three channels (an image classifier's
first layer: cnn's 1 -> 32 channel 3x3 layer ran at 25 GFLOP/s). Gathering each output pixel's
k x k x C patch into a row and multiplying by the kernel as a [k k C, O] matrix (im2col) is the
same sum, run by the matmul kernels. Pass `conv_general_dilated=patch_conv` to `flax.linen.Conv`:
parameters and results stay Flax's (to float rounding); a layer with more input channels, groups,
dilation or another layout, and any layer off CPU (where cuDNN's convolutions are the fast path),
goes to `lax.conv_general_dilated` unchanged. Measured in
docs/benchmarks.md ("First layers as patch matmuls").
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

MAX_CHANNELS = 4  # input channels up to which a layer is computed over its patches
_NHWC = ("NHWC", "HWIO", "NHWC")  # Flax's layout


def patch_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
               preferred_element_type=None):
    """`lax.conv_general_dilated`'s signature and result; an NHWC layer with few input channels,
    no dilation and no groups is computed as patches @ kernel (one channel at stride 1: a tap sum)."""
    kwargs = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                  feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                  precision=precision, preferred_element_type=preferred_element_type)
    if not _takes(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
    kh, kw, c, out = rhs.shape
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
    (top, bottom), (left, right) = padding
    x = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    if c == 1 and tuple(window_strides) == (1, 1):  # where the tap sum measured faster (see _tap_sum)
        return _tap_sum(x, rhs, (1, 1)).astype(preferred_element_type or jnp.result_type(lhs, rhs))
    # [B, oh, ow, kh * kw * C], in the kernel's (row, column, channel) order
    patches = jnp.concatenate(_taps(x, rhs.shape, tuple(window_strides)), axis=-1)
    y = jnp.dot(patches.reshape(-1, kh * kw * c), rhs.reshape(kh * kw * c, out), precision=precision,
                preferred_element_type=preferred_element_type)
    return y.reshape(*patches.shape[:3], out)


def _taps(x, kernel_shape, strides):
    """The kh * kw views of the padded input, one per kernel tap: view (i, j)[b, y, x] is the pixel
    that tap (i, j) meets at output pixel (y, x). Each is [B, oh, ow, C]."""
    kh, kw = kernel_shape[:2]
    sh, sw = strides
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    return [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] for i in range(kh) for j in range(kw)]


def _tap_sum_value(x, kernel, strides):
    taps = _taps(x, kernel.shape, strides)
    weights = kernel.reshape(len(taps), kernel.shape[2], kernel.shape[3])  # [tap, C, O]
    acc = jnp.promote_types(x.dtype, jnp.float32)  # accumulate bfloat16 layers in float32, as a product would
    return sum(tap[..., ch, None].astype(acc) * weights[t, ch].astype(acc)
               for t, tap in enumerate(taps) for ch in range(kernel.shape[2]))


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _tap_sum(x, kernel, strides):
    """The convolution of the padded input as a sum over kernel taps and input channels of a view
    times that tap's [O] weights: one elementwise loop. For a one-channel stride-1 layer (cnn's
    first: [B 28 28, 9] @ [9, 32]) the product's 9-long contraction left the matmul kernels at 18
    GFLOP/s, and the patches cost a pass of their own: forward 0.43 -> 0.10-0.13 ms, the cnn step
    4-8% faster on one core, 2-3% on two (docs/benchmarks.md). With 3 channels or a stride the sum's
    backward measured slower than the product's, so those layers keep the product."""
    return _tap_sum_value(x, kernel, strides)


def _tap_sum_forward(x, kernel, strides):
    return _tap_sum(x, kernel, strides), (x, kernel)


def _tap_sum_backward(strides, residuals, g):
    x, kernel = residuals
    kh, kw, c, out = kernel.shape
    # Kernel gradient: one product, patches [B oh ow, k k C] contracted with g over their rows (laid
    # out tap-major instead, [k k C, B oh ow], it ran 1.8x slower).
    patches = jnp.concatenate(_taps(x, kernel.shape, strides), axis=-1).reshape(-1, kh * kw * c)
    dkernel = lax.dot_general(patches, g.reshape(-1, out), (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    # Input gradient (an image's first layer does not need it, and then XLA drops it): autodiff's.
    _, input_vjp = jax.vjp(lambda x: _tap_sum_value(x, kernel, strides), x)
    return input_vjp(g)[0], dkernel.reshape(kernel.shape).astype(kernel.dtype)


_tap_sum.defvjp(_tap_sum_forward, _tap_sum_backward)


def _takes(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count) -> bool:
    """Whether the layer is one patch_conv computes: on CPU, NHWC, few input channels, no
    dilation, no groups."""
    if jax.default_backend() != "cpu" or lhs.ndim != 4 or lhs.shape[-1] > MAX_CHANNELS:
        return False
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
    plain = all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    return (plain and feature_group_count == 1 and batch_group_count == 1
            and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == nhwc)
