"""models/conv_transpose.ConvTranspose is flax's nn.ConvTranspose: same parameters, same forward
pass bit for bit (on a one-pixel input to float rounding: a product), the same gradients (the
kernel's computed another way, to float rounding)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.models.conv_transpose import (DIMENSIONS, ConvTranspose, kernel_gradient, one_pixel_taps,
                                            stacked_kernel_gradient, transpose_padding)

CASES = [  # input size, in, out channels, kernel, stride, padding
    (4, 5, 9, 4, 2, "SAME"),  # DCGAN's up-sampling layers
    (4, 5, 3, 4, 2, "SAME"),  # an image output layer
    (1, 4, 10, 4, 1, "VALID"),  # DCGAN's first layer: 1x1 -> 4x4
    (5, 2, 8, 3, 2, "SAME"),  # cyclegan / autoencoder: 3x3, odd sizes
    (7, 2, 8, 3, 2, "VALID"),
    (6, 2, 8, 5, 3, "SAME"),  # stride 3
    (4, 3, 8, 3, 1, "SAME"),
    (5, 3, 8, 4, 2, ((1, 2), (2, 1))),  # explicit, uneven padding
    (1, 3, 8, 3, 2, "SAME"),  # one pixel -> 2x2 as a product too
    (1, 3, 8, 3, 1, ((4, 4), (4, 4))),  # one pixel, output beyond the kernel's reach: XLA's convolution
]


@pytest.mark.parametrize("size, c_in, c_out, kernel, stride, padding", CASES)
def test_same_parameters_outputs_and_gradients_as_flax(size, c_in, c_out, kernel, stride, padding):
    x = jax.random.normal(jax.random.key(0), (3, size, size, c_in))
    args = dict(features=c_out, kernel_size=(kernel, kernel), strides=(stride, stride), padding=padding)
    flax_layer, layer = nn.ConvTranspose(**args), ConvTranspose(**args)
    variables = flax_layer.init(jax.random.key(1), x)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), variables,
                                     layer.init(jax.random.key(1), x)))
    if size == 1 and one_pixel_taps(transpose_pads(kernel, stride, padding), (kernel, kernel)):
        # One pixel: a product instead of XLA's padded convolution, equal to float rounding.
        np.testing.assert_allclose(layer.apply(variables, x), flax_layer.apply(variables, x), rtol=1e-6, atol=1e-6)
    else:  # Flax's own forward pass, bit for bit
        assert jnp.array_equal(flax_layer.apply(variables, x), layer.apply(variables, x))

    def loss(module):
        return lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))  # a gradient that differs per pixel

    want = jax.grad(loss(flax_layer), argnums=(0, 1))(variables, x)
    got = jax.grad(loss(layer), argnums=(0, 1))(variables, x)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, c_in, c_out, kernel, stride, padding", CASES)
def test_both_kernel_gradients_equal_xlas(size, c_in, c_out, kernel, stride, padding):
    # The layer takes one of the two by width; each must equal autodiff's through lax.conv_transpose.
    pads = transpose_pads(kernel, stride, padding)
    x = jax.random.normal(jax.random.key(0), (3, size, size + 1, c_in))  # not square: rows and columns apart
    k = jax.random.normal(jax.random.key(1), (kernel, kernel, c_in, c_out))
    native = lambda k: jax.lax.conv_transpose(x, k, (stride, stride), pads, dimension_numbers=DIMENSIONS)  # noqa: E731
    dy = jax.random.normal(jax.random.key(2), native(k).shape)
    want = jax.vjp(native, k)[1](dy)[0]
    assert float(jnp.max(jnp.abs(want))) > 1.0  # a zero gradient would pass the comparisons below
    for gradient in (kernel_gradient, stacked_kernel_gradient):
        got = gradient(x, dy, (kernel, kernel), (stride, stride), pads)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=gradient.__name__)


def transpose_pads(kernel: int, stride: int, padding) -> tuple:
    return tuple(transpose_padding(kernel, stride, padding if isinstance(padding, str) else padding[i]) for i in range(2))


def test_one_pixel_is_a_product_where_every_output_pixel_has_its_tap():
    assert one_pixel_taps(transpose_pads(4, 1, "VALID"), (4, 4)) == (3, 4, 3, 4)  # DCGAN's first layer
    assert one_pixel_taps(transpose_pads(3, 1, ((4, 4), (4, 4))), (3, 3)) is None  # zero rows around
    x = jax.random.normal(jax.random.key(0), (2, 1, 1, 5))
    layer = ConvTranspose(8, (4, 4), padding="VALID")
    variables = layer.init(jax.random.key(1), x)
    # The product's graph has no convolution in it, forward or backward.
    graph = jax.make_jaxpr(jax.grad(lambda v: jnp.sum(jnp.sin(layer.apply(v, x)))))(variables)
    assert "conv_general_dilated" not in str(graph)


def test_bfloat16_computes_in_bfloat16_with_float32_parameters():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    layer = ConvTranspose(8, (4, 4), strides=(2, 2), dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(1), x)
    assert variables["params"]["kernel"].dtype == jnp.float32
    grads = jax.grad(lambda v: jnp.sum(layer.apply(v, x).astype(jnp.float32) ** 2))(variables)
    assert grads["params"]["kernel"].dtype == jnp.float32
    reference = jax.grad(lambda v: jnp.sum(nn.ConvTranspose(8, (4, 4), strides=(2, 2)).apply(v, x) ** 2))(variables)
    np.testing.assert_allclose(grads["params"]["kernel"], reference["params"]["kernel"], rtol=5e-2, atol=5e-2)
