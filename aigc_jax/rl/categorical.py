"""The categorical action distribution of a discrete policy, from its logits [..., A]."""

import jax
import jax.numpy as jnp


def sample(keys: jax.Array, logits: jax.Array) -> jax.Array:
    """One action per key: keys [E], logits [E, A] -> actions [E]."""
    return jax.vmap(jax.random.categorical)(keys, logits)


def log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    return jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., None], axis=-1)[..., 0]


def entropy(logits: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(logits)
    return -(jnp.exp(log_p) * log_p).sum(-1)
