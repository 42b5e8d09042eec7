"""Image-text models: a fusion matcher (seed 003) and a CLIP-style dual encoder.

Both pair the digits CNN (`models/classifier.CNN`, its last layer sized to the embedding) with a
bag-of-words text encoder: word embeddings, mean over the non-padding tokens, an MLP. The captions
are short templated phrases whose meaning is one number word, so word order carries nothing.
"""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from aigc_jax.data.tokenizer import PAD
from aigc_jax.models.classifier import CNN

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps its learned temperature at 1/100


class TextEncoder(nn.Module):
    """Token ids [B, L] -> [B, embed]: Embed, masked mean over tokens, Dense-ReLU-Dense."""

    vocab_size: int
    width: int = 64
    embed: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab_size, self.width, dtype=self.dtype)(tokens)
        mask = (tokens != PAD).astype(x.dtype)[..., None]
        x = (x * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
        x = nn.relu(nn.Dense(self.width, dtype=self.dtype)(x))
        return nn.Dense(self.embed, dtype=self.dtype)(x).astype(jnp.float32)


def image_encoder(channels: Sequence[int], hidden: int, embed: int, dtype) -> CNN:
    """Images [B, 28, 28, 1] -> [B, embed]: the digits CNN with an `embed`-wide last layer."""
    return CNN(channels=tuple(channels), hidden=hidden, num_classes=embed, dtype=dtype)


class FusionMatcher(nn.Module):
    """(image, caption) -> match logit: both encoders, fused as [i, t, i * t], then an MLP head."""

    vocab_size: int
    channels: Sequence[int] = (32, 64)
    hidden: int = 64
    text_width: int = 64
    embed: int = 64
    fusion_hidden: int = 64
    dtype: Any = jnp.float32

    def setup(self):
        self.image = image_encoder(self.channels, self.hidden, self.embed, self.dtype)
        self.text = TextEncoder(self.vocab_size, self.text_width, self.embed, self.dtype)
        self.fuse = nn.Dense(self.fusion_hidden, dtype=self.dtype)
        self.head = nn.Dense(1, dtype=self.dtype)

    def score(self, image_features, text_features):
        """Match logits [...] of broadcastable [..., embed] image and text features."""
        i, t = jnp.broadcast_arrays(image_features, text_features)
        h = nn.relu(self.fuse(jnp.concatenate([i, t, i * t], axis=-1)))
        return self.head(h)[..., 0].astype(jnp.float32)

    def encode_image(self, images):
        return self.image(images)

    def encode_text(self, tokens):
        return self.text(tokens)

    def __call__(self, images, tokens):
        return self.score(self.image(images), self.text(tokens))

    def match_pair(self, images, positive, negative):
        """(logits of each image with its caption, with a non-matching one): two [B] arrays; the
        image is encoded once and both captions in one text batch."""
        i = self.image(images)
        t = self.text(jnp.concatenate([positive, negative]))
        return self.score(i, t[:len(images)]), self.score(i, t[len(images):])


class DualEncoder(nn.Module):
    """CLIP: image and text encoders into one space, L2-normalised, and a learned logit scale."""

    vocab_size: int
    channels: Sequence[int] = (32, 64)
    hidden: int = 64
    text_width: int = 64
    embed: int = 64
    dtype: Any = jnp.float32

    def setup(self):
        self.image = image_encoder(self.channels, self.hidden, self.embed, self.dtype)
        self.text = TextEncoder(self.vocab_size, self.text_width, self.embed, self.dtype)
        # log(1 / 0.07), CLIP's initial temperature
        self.log_scale = self.param("logit_scale", nn.initializers.constant(jnp.log(1 / 0.07)), ())

    def encode_image(self, images):
        return _normalize(self.image(images))

    def encode_text(self, tokens):
        return _normalize(self.text(tokens))

    def logit_scale(self):
        return jnp.exp(jnp.minimum(self.log_scale, MAX_LOGIT_SCALE))

    def __call__(self, images, tokens):
        """(unit image embeddings [B, E], unit text embeddings [B, E], logit scale [])."""
        return self.encode_image(images), self.encode_text(tokens), self.logit_scale()


def _normalize(x):
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True).clip(1e-6)
