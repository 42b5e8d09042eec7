"""The Transformer encoder-decoder of "Attention Is All You Need" (seeds 000, 002), in Flax linen.

Pre-LayerNorm blocks (LayerNorm before each sublayer, one more at the end of each stack): they
train stably at a large learning rate without warm-up, which short CPU runs need. One embedding
table is shared by source, target and the output layer (as in the paper), scaled by sqrt(width);
positions are the paper's sinusoids or a learned table. No dropout: the synthetic tasks have
nothing to over-fit, and dropout would need per-example keys to give every parallel mode the same
numbers.

Masks: the encoder and the cross-attention see only real source tokens (PAD = 0 is masked out as a
key), so source padding cannot change any output; decoder self-attention is causal, so a target
token cannot change the logits of an earlier position.

Decoding: a copy of the model with `use_cache=True` puts the decoder's self-attention in Flax's
cached mode (a "cache" collection of past keys and values, and the causal mask from its index), so
each new token costs one position: `decode` then takes one token and its `position`.
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from aigc_jax.data.tokenizer import PAD


def sinusoids(length: int, width: int) -> np.ndarray:
    """[length, width]: sin on even, cos on odd features, wavelengths 2*pi .. 10000*2*pi."""
    position = np.arange(length)[:, None]
    rate = np.exp(-np.log(10000.0) * np.arange(0, width, 2) / width)
    table = np.zeros((length, width), np.float32)
    table[:, 0::2] = np.sin(position * rate)
    table[:, 1::2] = np.cos(position * rate)[:, : width // 2]
    return table


class FeedForward(nn.Module):
    hidden: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
        return nn.Dense(x.shape[-1], dtype=self.dtype)(y)


def _attention(heads: int, dtype, name: str, decode: bool = False):
    return nn.MultiHeadDotProductAttention(num_heads=heads, dtype=dtype, deterministic=True, decode=decode,
                                           name=name)


class EncoderLayer(nn.Module):
    heads: int
    ff: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask):
        x = x + _attention(self.heads, self.dtype, "self_attention")(nn.LayerNorm(dtype=self.dtype)(x), mask=mask)
        return x + FeedForward(self.ff, self.dtype)(nn.LayerNorm(dtype=self.dtype)(x))


class DecoderLayer(nn.Module):
    heads: int
    ff: int
    dtype: jnp.dtype = jnp.float32
    decode: bool = False

    @nn.compact
    def __call__(self, y, encoded, self_mask, cross_mask):
        y = y + _attention(self.heads, self.dtype, "self_attention", self.decode)(
            nn.LayerNorm(dtype=self.dtype)(y), mask=self_mask)
        y = y + _attention(self.heads, self.dtype, "cross_attention")(
            nn.LayerNorm(dtype=self.dtype)(y), encoded, mask=cross_mask)
        return y + FeedForward(self.ff, self.dtype)(nn.LayerNorm(dtype=self.dtype)(y))


class Transformer(nn.Module):
    """(source [B, S], decoder input [B, T]) -> next-token logits [B, T, vocab] (float32)."""

    vocab_size: int
    width: int = 128
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    ff: int = 512
    max_len: int = 64  # longest source or decoder input
    positions: str = "sinusoidal"  # or "learned"
    dtype: jnp.dtype = jnp.float32
    use_cache: bool = False  # cached self-attention: `decode` takes one target position per call

    def setup(self):
        self.embed = nn.Embed(self.vocab_size, self.width,
                              embedding_init=nn.initializers.normal(stddev=self.width ** -0.5))
        if self.positions == "learned":
            self.position_table = self.param("position_table", nn.initializers.normal(stddev=0.02),
                                             (self.max_len, self.width))
        else:
            self.position_table = jnp.asarray(sinusoids(self.max_len, self.width))
        self.encoder = [EncoderLayer(self.heads, self.ff, self.dtype) for _ in range(self.encoder_layers)]
        self.decoder = [DecoderLayer(self.heads, self.ff, self.dtype, self.use_cache) for _ in range(self.decoder_layers)]
        self.encoder_norm = nn.LayerNorm(dtype=self.dtype)
        self.decoder_norm = nn.LayerNorm(dtype=self.dtype)

    def _embed(self, tokens, start=0):
        positions = lax.dynamic_slice_in_dim(self.position_table, start, tokens.shape[1])
        return (self.embed(tokens) * jnp.sqrt(float(self.width)) + positions).astype(self.dtype)

    def encode(self, source):
        mask = nn.make_attention_mask(source != PAD, source != PAD)
        x = self._embed(source)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x)

    def decode(self, encoded, source, decoder_input, position=0):
        """Logits for every decoder position; with `use_cache`, `decoder_input` is the one token at
        `position` and the cache supplies (and masks) the earlier ones."""
        self_mask = None if self.use_cache else nn.make_causal_mask(decoder_input)
        cross_mask = nn.make_attention_mask(jnp.ones(decoder_input.shape, bool), source != PAD)
        y = self._embed(decoder_input, position)
        for layer in self.decoder:
            y = layer(y, encoded, self_mask, cross_mask)
        return self.embed.attend(self.decoder_norm(y).astype(jnp.float32))

    def __call__(self, source, decoder_input):
        return self.decode(self.encode(source), source, decoder_input)
