"""A small BERT: a bidirectional Transformer encoder over bytes, with a masked-byte head or a
classification head, in Flax linen.

The encoder is the GPT's pre-LayerNorm block (`models/gpt.Block`: Flax's
`MultiHeadDotProductAttention`, MLP 4x GELU) without the causal mask, so every position sees the
whole window; byte + learned position embeddings, a final LayerNorm. Its vocabulary is the 256
bytes plus one [MASK] id. Both heads sit beside one submodule named `encoder`, so a classifier's
`params["encoder"]` has exactly the structure of a masked-byte model's: fine-tuning restores that
subtree from the pretrained checkpoint and leaves the head freshly initialised. No dropout (as
the GPT: every parallel mode computes the same numbers).
"""

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.models.gpt import Block

BYTES = 256
MASK_ID = BYTES  # the one id past the bytes
VOCAB_SIZE = BYTES + 1


class Encoder(nn.Module):
    """ids [B, T] (bytes or MASK_ID) -> features [B, T, width]."""

    context: int = 128
    width: int = 128
    layers: int = 4
    heads: int = 4
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, ids):
        x = nn.Embed(VOCAB_SIZE, self.width, embedding_init=nn.initializers.normal(0.02), name="embed")(ids)
        x = x + self.param("positions", nn.initializers.normal(0.02), (self.context, self.width))[: ids.shape[1]]
        x = x.astype(self.dtype)
        for i in range(self.layers):
            x = Block(self.heads, self.dtype, causal=False, name=f"block_{i}")(x)  # bidirectional
        return nn.LayerNorm(dtype=self.dtype, name="ln_f")(x)


class MaskedByteModel(nn.Module):
    """ids [B, T] -> logits over the 256 bytes at every position [B, T, 256] (float32)."""

    encoder: Encoder  # its params live under "encoder", the subtree mlm_finetune restores

    @nn.compact
    def __call__(self, ids):
        x = self.encoder(ids)
        return nn.Dense(BYTES, dtype=self.encoder.dtype, name="mlm_head")(x).astype(jnp.float32)


class SequenceClassifier(nn.Module):
    """bytes [B, T] -> class logits [B, classes] (float32), from the mean of the encoder's features."""

    encoder: Encoder
    classes: int

    @nn.compact
    def __call__(self, ids):
        x = self.encoder(ids)
        return nn.Dense(self.classes, dtype=self.encoder.dtype, name="head")(x.mean(axis=1)).astype(jnp.float32)
