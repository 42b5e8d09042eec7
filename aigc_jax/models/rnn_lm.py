"""Recurrent byte language models: the Elman RNN (seed 002), the LSTM (seeds 001, 002) and the GRU.

embed -> `layers` recurrent layers -> linear to the vocabulary. Each layer is `nn.RNN` over a Flax
cell (a `lax.scan` over time, compiled once whatever the length): `nn.SimpleCell` (tanh Elman
RNN), `nn.OptimizedLSTMCell` (the LSTM with its four gates computed by one matmul, the faster
formulation) or `nn.GRUCell`. A float32 LSTM layer is `LSTMLayer` instead: the same parameters
and results, with the backward pass written out (models/lstm_layer.py). `__call__` takes the
carries of the previous segment and returns the new ones, so training can carry the state across
segments (truncated BPTT) and sampling can feed one byte at a time.
"""

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.input_grad_first import InputGradFirstDense
from aigc_jax.models.lstm_layer import LSTMLayer

LARGE_HEAD = 1 << 20  # hidden x vocab weights from which the head orders its backward products
CELLS = {"rnn": nn.SimpleCell, "lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


class RecurrentLM(nn.Module):
    """(bytes [B, T], carries per layer) -> (carries, next-byte logits [B, T, vocab] float32)."""

    vocab_size: int = 256
    cell: str = "lstm"
    embed: int = 64
    hidden: int = 256
    layers: int = 1
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.embedding = nn.Embed(self.vocab_size, self.embed, dtype=self.dtype)
        self.recurrent = [self._recurrent_layer() for _ in range(self.layers)]
        # A large output layer computes its input gradient (which the scans' backward waits for)
        # before its kernel gradient (see the module): lstm_lm's 256 x 5000 head 7% faster; for a
        # small one the two running side by side is faster (rnn_lm's 256 x 256, 2%).
        large = self.hidden * self.vocab_size >= LARGE_HEAD
        self.head = (InputGradFirstDense if large else nn.Dense)(self.vocab_size, dtype=self.dtype)

    @nn.nowrap
    def _recurrent_layer(self) -> nn.Module:
        if self.cell == "lstm" and jnp.dtype(self.dtype) == jnp.float32:
            return LSTMLayer(self.hidden)
        return nn.RNN(CELLS[self.cell](self.hidden, dtype=self.dtype), return_carry=True)

    @nn.nowrap
    def initial_carries(self, batch: int) -> tuple:
        """Zero state for `batch` sequences: (c, h) per LSTM layer, h per RNN/GRU layer."""
        zeros = jnp.zeros((batch, self.hidden), jnp.float32)
        return tuple((zeros, zeros) if self.cell == "lstm" else zeros for _ in range(self.layers))

    def __call__(self, tokens, carries):
        x, new = self.embedding(tokens), []
        for rnn, carry in zip(self.recurrent, carries):
            carry, x = rnn(x, initial_carry=carry)
            new.append(carry)
        return tuple(new), self.head(x).astype(jnp.float32)
