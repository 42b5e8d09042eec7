"""Skip-gram word2vec (Mikolov et al. 2013): a word vector table and a context vector table.

The score of (center c, word w) is the dot product of c's word vector and w's context vector;
negative sampling trains it as a logistic classifier of true contexts against sampled words.
Neighbours and similarities are taken from `embed`, word vector + context vector (as GloVe does;
Levy, Goldberg & Dagan 2015 find it helps word similarity): early in training the word vectors
alone all share one direction, the sum separates related words much sooner. Initialisation follows
word2vec.c: word vectors uniform in [-0.5 / dim, 0.5 / dim], context vectors 0 (so at init `embed`
is the random word vectors).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class SkipGram(nn.Module):
    vocab_size: int
    dim: int = 64
    dtype: Any = jnp.float32  # compute dtype; the tables stay float32

    def setup(self):
        self.words = nn.Embed(self.vocab_size, self.dim, dtype=self.dtype,
                              embedding_init=_uniform(0.5 / self.dim))
        self.contexts = nn.Embed(self.vocab_size, self.dim, dtype=self.dtype,
                                 embedding_init=nn.initializers.zeros)

    def __call__(self, centers: jax.Array, candidates: jax.Array) -> jax.Array:
        """Logits [B, K] of `candidates` [B, K] (word ids) being contexts of `centers` [B]."""
        scores = jnp.einsum("bd,bkd->bk", self.words(centers), self.contexts(candidates))
        return scores.astype(jnp.float32)

    def embed(self, ids: jax.Array) -> jax.Array:
        """Vectors [..., dim] of `ids` for similarity (word + context vector), in float32."""
        return (self.words(ids) + self.contexts(ids)).astype(jnp.float32)

    def table(self) -> jax.Array:
        """`embed` of every word [vocab_size, dim]."""
        return (self.words.embedding + self.contexts.embedding).astype(jnp.float32)
