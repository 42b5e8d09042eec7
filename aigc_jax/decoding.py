"""Compiled greedy, beam-search and sampled decoding for any step-wise decoder (one `lax.scan` over positions).

A decoder is `step_fn(state, token [N], t) -> (logits [N, V], state)`: it consumes the token at
position t and returns the logits for position t + 1, with whatever it carries between steps in
`state` (the Transformer's key/value cache, the LSTM's (c, h) carries). Every array leaf of
`state` with a leading axis holds one row per sequence, so beam search can reorder it when a beam
continues another beam's prefix; scalar leaves (a cache index) are shared.

Outputs are [batch, length] tokens (beam search: the best beam): EOS included, PAD after it.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from aigc_jax.data.tokenizer import BOS, EOS, PAD

NEG_INF = -1e9  # a score no real hypothesis reaches; finite, so sums never make NaN

StepFn = Callable[[object, jax.Array, jax.Array], tuple[jax.Array, object]]


def greedy(step_fn: StepFn, state, batch: int, length: int) -> jax.Array:
    def step(carry, t):
        state, token, done = carry
        logits, state = step_fn(state, token, t)
        token = jnp.where(done, PAD, logits.argmax(-1).astype(jnp.int32))
        return (state, token, done | (token == EOS)), token

    start = (state, jnp.full((batch,), BOS, jnp.int32), jnp.zeros((batch,), bool))
    _, tokens = lax.scan(step, start, jnp.arange(length))
    return tokens.T


def select_rows(state, rows: jax.Array):
    """Each per-sequence leaf of `state` re-indexed by `rows` (scalars are left alone)."""
    return jax.tree.map(lambda x: x[rows] if jnp.ndim(x) else x, state)


def beam_search(step_fn: StepFn, state, batch: int, length: int, beam: int) -> tuple[jax.Array, jax.Array]:
    """Keeps the `beam` best prefixes by total log-probability; a finished one carries on with PAD at no cost.

    `state` (and `step_fn`) hold batch * beam rows, beam-major within each example (row b * beam + k).
    Returns the best beam's tokens [batch, length] and its total log-probability [batch].
    """

    def step(carry, t):
        state, last, tokens, scores, done = carry
        logits, state = step_fn(state, last.reshape(batch * beam), t)
        vocab = logits.shape[-1]
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, beam, vocab)
        only_pad = jnp.full((vocab,), NEG_INF).at[PAD].set(0.0)
        log_probs = jnp.where(done[..., None], only_pad, log_probs)
        scores, flat = lax.top_k((scores[..., None] + log_probs).reshape(batch, beam * vocab), beam)
        parent, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        state = select_rows(state, (jnp.arange(batch)[:, None] * beam + parent).reshape(-1))
        tokens = jnp.take_along_axis(tokens, parent[..., None], axis=1)
        tokens = lax.dynamic_update_index_in_dim(tokens, token, t, axis=2)
        done = jnp.take_along_axis(done, parent, axis=1) | (token == EOS)
        return (state, token, tokens, scores, done), None

    # Only beam 0 is alive at the start, so the first step does not pick the same token `beam` times.
    scores = jnp.where(jnp.arange(beam) == 0, 0.0, NEG_INF)[None].repeat(batch, 0)
    tokens = jnp.full((batch, beam, length), PAD, jnp.int32)
    start = (state, jnp.full((batch, beam), BOS, jnp.int32), tokens, scores, jnp.zeros((batch, beam), bool))
    (_, _, tokens, scores, _), _ = lax.scan(step, start, jnp.arange(length))
    return tokens[:, 0], scores[:, 0]  # top_k sorts the beams: beam 0 is the best


def filter_logits(logits: jax.Array, temperature: float, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Logits to sample the next token from: scaled by 1/temperature, then only the `top_k` most
    likely tokens (0 = all) and the smallest set whose probability reaches `top_p` (1 = all) kept."""
    logits = logits.astype(jnp.float32) / temperature
    if top_k:
        kth = lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        ordered = jnp.sort(logits, axis=-1)[..., ::-1]
        before = jnp.cumsum(jax.nn.softmax(ordered), axis=-1) - jax.nn.softmax(ordered)
        # The lowest logit still needed to reach top_p; the most likely token is always kept.
        cutoff = jnp.min(jnp.where(before < top_p, ordered, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    return logits


def sample(step_fn: StepFn, state, prompt, new_tokens: int, rng: jax.Array, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Continue `prompt` (int [batch, P], the same length in every row) by `new_tokens` sampled tokens.

    One `lax.scan` over positions: position t feeds token t to `step_fn` and gets the logits of
    t + 1, which is the prompt's next token while the prompt lasts and a sample after it
    (`temperature` 0: the argmax). So a decoder with a cache (the GPT's keys and values, an RNN's
    carry) costs one position per token, prompt included. Returns [batch, P + new_tokens].
    """
    batch, length = prompt.shape[0], prompt.shape[1] + new_tokens
    tokens = jnp.zeros((batch, length), jnp.int32).at[:, :prompt.shape[1]].set(prompt)

    def step(carry, t):
        state, tokens = carry
        logits, state = step_fn(state, tokens[:, t], t)
        if temperature == 0:
            drawn = logits.argmax(-1)
        else:
            drawn = jax.random.categorical(jax.random.fold_in(rng, t),
                                           filter_logits(logits, temperature, top_k, top_p))
        following = jnp.where(t + 1 < prompt.shape[1], tokens[:, t + 1], drawn.astype(jnp.int32))
        return (state, tokens.at[:, t + 1].set(following)), None

    (_, tokens), _ = lax.scan(step, (state, tokens), jnp.arange(length - 1))
    return tokens
