"""An LSTM layer over a whole sequence, with its backward pass written out as cuDNN's and oneDNN's
LSTMs do it, for `RecurrentLM` in float32.

Parameters, initial values and results are those of `nn.RNN(nn.OptimizedLSTMCell(features),
return_carry=True)` (same tree, `cell/ii/kernel` ... `cell/ho/bias`: checkpoints restore into
either). What differs is how the step is computed:

- the input projection of every time step is one product before the loop (the loop keeps the
  recurrent product `h @ W_h` and the gates);
- the backward loop carries only the recurrence: each step's gate gradients, and from them the
  hidden state's gradient (one product per step, against flax's autodiff four: the input gradient
  and the two kernel gradients as well); the kernel, bias and input gradients are then one product
  each over all time steps;
- the loop reads each step's input projection from the loop carry, where the previous step put
  it: read straight from the stacked projections, XLA:CPU fused that dynamic slice into the gate
  arithmetic and compiled it into a loop 6-10x slower than the same arithmetic on a plain array
  (84-166 against 14 us per step at lstm_lm's shape), which is what had made hoisting the
  projection lose before.

At lstm_lm's shape (batch 32, 64 steps, 128 -> 256) the layer's forward and backward take 38-40 ms
against 43-45 ms for flax's scan on two CPU threads (torch's LSTM: 27-29 ms); measured in
docs/benchmarks.md ("The LSTM's backward pass written out").
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.recurrent import DenseParams
from jax import lax

GATES = "ifgo"  # OptimizedLSTMCell's order of the four gates in its concatenated kernels


class LSTMLayer(nn.Module):
    """(inputs [B, T, E], initial carry (c, h) [B, features]) -> ((c, h) after the last step,
    outputs [B, T, features]); float32."""

    features: int

    @nn.compact
    def __call__(self, inputs, initial_carry):
        w_i, w_h, b = _CellParams(self.features, name="cell")(inputs.shape[-1])
        c0, h0 = initial_carry
        hs, c, h = lstm(w_i, w_h, b, jnp.swapaxes(inputs, 0, 1), c0, h0)
        return (c, h), jnp.swapaxes(hs, 0, 1)


class _CellParams(nn.Module):
    """OptimizedLSTMCell's parameters, made as it makes them (names, shapes, initialisers), returned
    as its concatenated kernels: input [E, 4H], recurrent [H, 4H] and bias [4H]."""

    features: int

    @nn.compact
    def __call__(self, in_features: int):
        cell = nn.OptimizedLSTMCell(self.features, parent=None)  # only for its initialisers

        def dense(name, fan_in, use_bias, kernel_init):
            return DenseParams(self.features, use_bias=use_bias, param_dtype=cell.param_dtype, kernel_init=kernel_init,
                               bias_init=cell.bias_init, name=name)(jnp.zeros((1, fan_in), cell.param_dtype))

        # Created in the cell's order (i then h, gate by gate), so that the tree reads the same.
        made = {}
        for gate in GATES:
            made["i" + gate] = dense("i" + gate, in_features, False, cell.kernel_init)
            made["h" + gate] = dense("h" + gate, self.features, True, cell.recurrent_kernel_init)
        w_i = jnp.concatenate([made["i" + g][0] for g in GATES], axis=-1)
        w_h = jnp.concatenate([made["h" + g][0] for g in GATES], axis=-1)
        b = jnp.concatenate([made["h" + g][1] for g in GATES], axis=-1)
        return w_i, w_h, b


def _scan(w_i, w_h, b, xs, c0, h0, keep_gates: bool):
    """Forward over xs [T, B, E]: hs [T, B, H], the last (c, h), and with `keep_gates` the stacked
    (cs, i, f, g, o) the backward pass reads."""
    steps, batch = xs.shape[:2]
    projected = (xs.reshape(steps * batch, -1) @ w_i + b).reshape(steps, batch, -1)
    # Step t's projection rides in the carry from step t - 1 (module docstring).
    following = jnp.concatenate([projected[1:], jnp.zeros_like(projected[:1])])

    def step(carry, next_projection):
        c, h, projection = carry
        z_i, z_f, z_g, z_o = jnp.split(projection + h @ w_h, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jnp.tanh(z_g), jax.nn.sigmoid(z_o)
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (c, h, next_projection), ((h, c, i, f, g, o) if keep_gates else h)

    (c, h, _), stacked = lax.scan(step, (c0, h0, projected[0]), following)
    return stacked, c, h


@jax.custom_vjp
def lstm(w_i, w_h, b, xs, c0, h0):
    """xs [T, B, E], c0 and h0 [B, H] -> (hs [T, B, H], c and h after the last step)."""
    return _scan(w_i, w_h, b, xs, c0, h0, keep_gates=False)


def _lstm_forward(w_i, w_h, b, xs, c0, h0):
    (hs, cs, i, f, g, o), c, h = _scan(w_i, w_h, b, xs, c0, h0, keep_gates=True)
    return (hs, c, h), (w_i, w_h, xs, c0, h0, hs, cs, i, f, g, o)


def _lstm_backward(residuals, cotangents):
    w_i, w_h, xs, c0, h0, hs, cs, i, f, g, o = residuals
    d_hs, d_c_last, d_h_last = cotangents
    c_before = jnp.concatenate([c0[None], cs[:-1]])
    h_before = jnp.concatenate([h0[None], hs[:-1]])
    w_h_t = w_h.T

    def step(carry, saved):
        d_h_next, d_c_next = carry  # what the later steps send back through h and c
        d_h_out, c, c_prev, i, f, g, o = saved
        d_h = d_h_out + d_h_next
        tanh_c = jnp.tanh(c)
        d_c = d_c_next + d_h * o * (1 - tanh_c * tanh_c)
        d_z = jnp.concatenate([d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f), d_c * i * (1 - g * g),
                               d_h * tanh_c * o * (1 - o)], axis=-1)
        return (d_z @ w_h_t, d_c * f), d_z

    (d_h0, d_c0), d_z = lax.scan(step, (d_h_last, d_c_last), (d_hs, cs, c_before, i, f, g, o), reverse=True)
    rows = d_z.shape[0] * d_z.shape[1]
    d_z = d_z.reshape(rows, -1)
    d_w_h = h_before.reshape(rows, -1).T @ d_z
    d_w_i = xs.reshape(rows, -1).T @ d_z
    d_xs = (d_z @ w_i.T).reshape(xs.shape)
    return d_w_i, d_w_h, d_z.sum(axis=0), d_xs, d_c0, d_h0


lstm.defvjp(_lstm_forward, _lstm_backward)
