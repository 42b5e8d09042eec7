"""Advantage estimates over a rollout of shape [time, envs], as reverse `lax.scan`s.

GAE here keeps termination and truncation apart. At a truncation (the time limit) the episode is
cut but the state it reached still has a value, so the TD error bootstraps from the value of the
true final observation (`next_values` holds it there); only a termination drops the bootstrap. In
both cases the advantage trace stops at the episode boundary. (PureJaxRL treats the time limit as
a termination, which biases the value of every state near the limit toward zero.)
"""

import jax.numpy as jnp
from jax import lax


def gae(rewards, values, next_values, terminated, done, gamma: float, lam: float):
    """Generalised advantage estimation. All inputs [T, ...]; returns (advantages, value targets).

    `values[t]` = V(s_t); `next_values[t]` = V(s'_t) of the state step t reached (before any
    auto-reset); `terminated[t]`: no value after step t; `done[t]`: step t ended its episode
    (terminated or truncated), so no advantage flows back across it.
    """
    not_terminated = 1.0 - terminated.astype(values.dtype)
    not_done = 1.0 - done.astype(values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values

    def backward(next_advantage, x):
        delta, carry_on = x
        advantage = delta + gamma * lam * carry_on * next_advantage
        return advantage, advantage

    _, advantages = lax.scan(backward, jnp.zeros_like(values[0]), (deltas, not_done), reverse=True)
    return advantages, advantages + values


def rewards_to_go(rewards, alive, gamma: float):
    """Discounted return from each step to the end of its (single, complete) episode: [T, ...]."""

    def backward(future, x):
        reward, live = x
        ret = live * (reward + gamma * future)
        return ret, ret

    _, returns = lax.scan(backward, jnp.zeros_like(rewards[0]), (rewards, alive.astype(rewards.dtype)),
                          reverse=True)
    return returns
