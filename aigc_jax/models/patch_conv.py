"""A convolution over an image's few channels as one matmul over its patches, for `nn.Conv`.

XLA:CPU's convolution is slow when the input has one or three channels (an image classifier's
first layer: cnn's 1 -> 32 channel 3x3 layer ran at 25 GFLOP/s). Gathering each output pixel's
k x k x C patch into a row and multiplying by the kernel as a [k k C, O] matrix (im2col) is the
same sum, run by the matmul kernels. Pass `conv_general_dilated=patch_conv` to `flax.linen.Conv`:
parameters and results stay Flax's (to float rounding); a layer with more input channels, groups,
dilation or another layout, and any layer off CPU (where cuDNN's convolutions are the fast path),
goes to `lax.conv_general_dilated` unchanged. Measured in
docs/benchmarks.md ("First layers as patch matmuls").
"""

import jax
import jax.numpy as jnp
from jax import lax

MAX_CHANNELS = 4  # input channels up to which a layer is computed over its patches
_NHWC = ("NHWC", "HWIO", "NHWC")  # Flax's layout


def patch_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
               preferred_element_type=None):
    """`lax.conv_general_dilated`'s signature and result; an NHWC layer with few input channels,
    no dilation and no groups is computed as patches @ kernel."""
    kwargs = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                  feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                  precision=precision, preferred_element_type=preferred_element_type)
    if not _takes(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
    kh, kw, c, out = rhs.shape
    sh, sw = window_strides
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
    (top, bottom), (left, right) = padding
    x = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    # [B, oh, ow, kh * kw * C], in the kernel's (row, column, channel) order
    patches = jnp.concatenate([x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                               for i in range(kh) for j in range(kw)], axis=-1)
    y = jnp.dot(patches.reshape(-1, kh * kw * c), rhs.reshape(kh * kw * c, out), precision=precision,
                preferred_element_type=preferred_element_type)
    return y.reshape(lhs.shape[0], oh, ow, out)


def _takes(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count) -> bool:
    """Whether the layer is one patch_conv computes: on CPU, NHWC, few input channels, no
    dilation, no groups."""
    if jax.default_backend() != "cpu" or lhs.ndim != 4 or lhs.shape[-1] > MAX_CHANNELS:
        return False
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
    plain = all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    return (plain and feature_group_count == 1 and batch_group_count == 1
            and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == nhwc)
