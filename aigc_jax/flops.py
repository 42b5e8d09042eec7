"""Analytic FLOP counts (a multiply-add is 2 FLOPs), for MFU in benchmarks.

XLA's `cost_analysis()` counts a `lax.scan` body once and reports per-device numbers under
sharding, so every task counts its own step from its layer shapes with these helpers. A training
pass through a network costs about 3x its forward pass (forward, plus gradients with respect to
activations and to weights).
"""

TRAIN_MULTIPLIER = 3


def dense(batch: int, d_in: int, d_out: int) -> float:
    return 2.0 * batch * d_in * d_out


def mlp(batch: int, widths) -> float:
    """Forward FLOPs of Dense layers through `widths` = (d_in, h1, ..., d_out)."""
    return sum(dense(batch, a, b) for a, b in zip(widths[:-1], widths[1:]))


def conv2d(batch: int, out_h: int, out_w: int, kernel_h: int, kernel_w: int, c_in: int, c_out: int) -> float:
    """Forward FLOPs of a convolution, counted at its output size."""
    return 2.0 * batch * out_h * out_w * kernel_h * kernel_w * c_in * c_out


def conv_transpose(batch: int, in_h: int, in_w: int, kernel_h: int, kernel_w: int, c_in: int, c_out: int) -> float:
    """Forward FLOPs of a transposed convolution: every *input* pixel meets every kernel tap once
    (counted at the output size, a stride-s layer would count s*s times the work done)."""
    return conv2d(batch, in_h, in_w, kernel_h, kernel_w, c_in, c_out)


def train(forward: float) -> float:
    return TRAIN_MULTIPLIER * forward


def recurrent(batch: int, steps: int, d_in: int, hidden: int, gates: int) -> float:
    """Forward FLOPs of one recurrent layer over `steps` steps: the input and recurrent matmuls of its
    `gates` (Elman RNN 1, GRU 3, LSTM 4)."""
    return dense(batch * steps, d_in + hidden, gates * hidden)


def lstm(batch: int, steps: int, d_in: int, hidden: int) -> float:
    return recurrent(batch, steps, d_in, hidden, 4)


def attention(batch: int, q_len: int, kv_len: int, width: int) -> float:
    """Forward FLOPs of attention scores (Q K^T) and the weighted sum of values, all heads together.

    The Q/K/V/output projections are dense layers, counted separately. A causal mask does not
    halve the count (as in PaLM's and nanoGPT's MFU), although on CPU the engine's attention skips
    the score blocks above the diagonal (`models/attention.py`): the figure stays the same
    whichever implementation runs, as a model FLOP count should.
    """
    return 2 * 2.0 * batch * q_len * kv_len * width
