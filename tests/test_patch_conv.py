"""models/patch_conv.py: nn.Conv with `conv_general_dilated=patch_conv` computes Flax's convolution
(values and gradients), and layers it does not take go to lax unchanged."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models import patch_conv as pc


@pytest.mark.parametrize("shape, features, kernel, strides, padding", [
    ((4, 28, 28, 1), 32, (3, 3), 1, "SAME"),  # cnn's first layer
    ((4, 32, 32, 3), 16, (4, 4), 2, ((1, 1), (1, 1))),  # a strided colour layer
    ((2, 9, 7, 1), 5, (3, 2), (2, 1), "VALID"),  # odd sizes, unequal kernel and strides
    ((2, 8, 8, 2), 4, (5, 5), 1, ((2, 1), (0, 3))),  # uneven padding
    ((2, 9, 7, 1), 3, (3, 2), 1, "VALID"),  # one channel, stride 1, an uneven kernel: the tap sum
])
def test_patch_conv_equals_flax_conv_in_values_and_gradients(shape, features, kernel, strides, padding, monkeypatch):
    taken = _record_takes(monkeypatch)
    x = jax.random.normal(jax.random.key(0), shape)
    flax_conv = nn.Conv(features, kernel, strides=strides, padding=padding)
    ours = nn.Conv(features, kernel, strides=strides, padding=padding, conv_general_dilated=pc.patch_conv)
    params = flax_conv.init(jax.random.key(1), x)

    def value_and_grads(layer):
        return jax.value_and_grad(lambda p, x: jnp.sin(layer.apply(p, x)).sum(), argnums=(0, 1))(params, x)

    expected, got = value_and_grads(flax_conv), value_and_grads(ours)
    assert taken and all(taken)  # every call took the patches path
    assert ours.apply(params, x).shape == flax_conv.apply(params, x).shape
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


def test_one_channel_stride_one_layers_are_tap_sums_the_others_products(monkeypatch):
    sums = []
    monkeypatch.setattr(pc, "_tap_sum", lambda *a, f=pc._tap_sum: sums.append(a[0].shape) or f(*a))
    for shape, strides in (((2, 8, 8, 1), 1), ((2, 8, 8, 1), 2), ((2, 8, 8, 3), 1)):
        x = jax.random.normal(jax.random.key(0), shape)
        layer = nn.Conv(4, (3, 3), strides=strides, conv_general_dilated=pc.patch_conv)
        params = layer.init(jax.random.key(1), x)
        sums.clear()
        layer.apply(params, x)
        assert sums == ([(2, 10, 10, 1)] if shape[-1] == 1 and strides == 1 else [])  # the input padded by SAME


def test_the_tap_sum_accumulates_bfloat16_in_float32():
    x = jnp.full((1, 4, 4, 1), 1.0, jnp.bfloat16)
    kernel = jnp.full((3, 3, 1, 2), 1.0 + 2.0**-7, jnp.bfloat16)  # bfloat16's next value above 1
    y = pc.patch_conv(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(y, jnp.full((1, 2, 2, 2), 9 * (1.0 + 2.0**-7), jnp.float32).astype(jnp.bfloat16))


def test_layers_with_many_channels_or_dilation_go_to_lax(monkeypatch):
    taken = _record_takes(monkeypatch)
    deep = jax.random.normal(jax.random.key(0), (2, 8, 8, pc.MAX_CHANNELS + 1))
    for layer, x in ((nn.Conv(3, (3, 3), conv_general_dilated=pc.patch_conv), deep),
                     (nn.Conv(3, (3, 3), kernel_dilation=2, conv_general_dilated=pc.patch_conv), deep[..., :1])):
        expected = nn.Conv(3, (3, 3), kernel_dilation=layer.kernel_dilation)
        params = layer.init(jax.random.key(1), x)
        np.testing.assert_array_equal(layer.apply(params, x), expected.apply(params, x))  # lax's own result
    assert taken and not any(taken)


def _record_takes(monkeypatch) -> list[bool]:
    """What `patch_conv` decides at each call: True where it computes the layer over patches."""
    decisions = []
    monkeypatch.setattr(pc, "_takes", lambda *a, f=pc._takes: decisions.append(f(*a)) or decisions[-1])
    return decisions
