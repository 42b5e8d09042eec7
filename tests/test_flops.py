"""Analytic FLOP counts (aigc_jax/flops.py) against a count by hand and XLA's own count."""

import jax
import jax.numpy as jnp
from jax import lax

from aigc_jax import flops


def _xla_flops(fn, *args) -> float:
    return jax.jit(fn).lower(*args).compile().cost_analysis()["flops"]


def test_dense_layer_matches_hand_count_and_xla():
    batch, d_in, d_out = 2, 3, 4
    hand = batch * d_out * d_in * 2  # each of the 2x4 outputs: 3 multiplies + 3 adds
    assert flops.dense(batch, d_in, d_out) == hand == 48
    x, w = jnp.ones((batch, d_in)), jnp.ones((d_in, d_out))
    assert _xla_flops(jnp.matmul, x, w) == hand


def test_conv_layer_matches_hand_count_and_xla():
    # 7x7x2 input, 3x3 kernel, 3 output channels, VALID: 5x5x3 outputs, each 3*3*2 multiply-adds.
    out_h = out_w = 5
    hand = 1 * out_h * out_w * 3 * (3 * 3 * 2) * 2
    assert flops.conv2d(1, out_h, out_w, 3, 3, 2, 3) == hand == 2700
    x, k = jnp.ones((1, 7, 7, 2)), jnp.ones((3, 3, 2, 3))
    conv = lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
    assert _xla_flops(conv, x, k) == hand


def test_training_pass_counts_three_forward_passes():
    assert flops.train(flops.dense(2, 3, 4)) == 3 * 48


def test_transposed_conv_counts_each_input_pixel_times_each_tap():
    """A stride-2 transposed conv of a 3x3 map with a 4x4 kernel: each of the 9 input pixels meets
    each of the 16 taps once (2 in, 5 out channels); nothing is counted for the dilation's zeros."""
    hand = 9 * 16 * 2 * 5 * 2
    assert flops.conv_transpose(1, 3, 3, 4, 4, 2, 5) == hand
    # With all-ones inputs and kernel, a VALID transposed conv (which keeps every product) sums to
    # the number of (input pixel, tap) products.
    ones = lax.conv_transpose(jnp.ones((1, 3, 3, 1)), jnp.ones((4, 4, 1, 1)), (2, 2), "VALID",
                              dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert int(ones.sum()) * 2 * 5 * 2 == hand
