"""Rollouts of vmapped CartPole environments inside `lax.scan`.

Two shapes of experience:
- `rollout`: a fixed number of steps of envs that keep running across calls (auto-reset), whose
  state lives in the learner's state (PPO); episode returns are tracked as they complete.
- `episodes`: one complete episode per key, from reset to termination or the time limit, with an
  `alive` mask after the end (REINFORCE, greedy evaluation, rendering).

A policy is a function `(obs [E, OBS], keys [E]) -> (actions [E], extras)`: one key per env, so an
env's actions depend only on its own key; `extras` is a dict of per-env arrays (log-probabilities,
values) stored with each transition.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from aigc_jax.envs import cartpole

PolicyFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, dict]]


@struct.dataclass
class EnvBatch:
    """`E` running environments: their states, current observations and returns so far."""

    state: cartpole.State
    obs: jax.Array  # [E, OBS]
    episode_return: jax.Array  # [E] reward collected in each env's current episode


class Transition(NamedTuple):
    obs: jax.Array  # [T, E, OBS] observation the action was chosen from
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array  # [T, E, OBS] observation the step reached (before any auto-reset)
    completed_return: jax.Array  # return of the episode that ended at this step, else 0
    extras: dict


def reset_envs(key: jax.Array, num_envs: int, params: cartpole.Params) -> EnvBatch:
    obs, state = jax.vmap(lambda k: cartpole.reset(k, params))(jax.random.split(key, num_envs))
    return EnvBatch(state, obs, jnp.zeros(num_envs, jnp.float32))


def rollout(policy: PolicyFn, envs: EnvBatch, key: jax.Array, num_steps: int,
            params: cartpole.Params) -> tuple[EnvBatch, Transition]:
    """`num_steps` steps of every env; returns the envs after them and transitions [T, E, ...]."""
    num_envs = envs.obs.shape[0]
    step = jax.vmap(lambda k, s, a: cartpole.step(k, s, a, params))

    def one_step(envs: EnvBatch, key):
        act_key, env_key = jax.random.split(key)
        action, extras = policy(envs.obs, jax.random.split(act_key, num_envs))
        out = step(jax.random.split(env_key, num_envs), envs.state, action)
        done = out.terminated | out.truncated
        episode_return = envs.episode_return + out.reward
        transition = Transition(envs.obs, action, out.reward, out.terminated, out.truncated, out.final_obs,
                                jnp.where(done, episode_return, 0.0), extras)
        return EnvBatch(out.state, out.obs, jnp.where(done, 0.0, episode_return)), transition

    return jax.lax.scan(one_step, envs, jax.random.split(key, num_steps))


class Episodes(NamedTuple):
    obs: jax.Array  # [T, N, OBS] observation at each step (frozen after the end)
    action: jax.Array  # [T, N]
    reward: jax.Array  # [T, N], 0 after the end
    alive: jax.Array  # [T, N] 1 while the episode runs (this step is part of it)
    extras: dict

    @property
    def returns(self) -> jax.Array:
        return self.reward.sum(0)

    @property
    def lengths(self) -> jax.Array:
        return self.alive.sum(0)


def episodes(policy: PolicyFn, keys: jax.Array, params: cartpole.Params) -> Episodes:
    """One complete episode per key [N], `params.max_steps` steps long with an `alive` mask."""
    reset_key, act_keys = jax.vmap(lambda k: tuple(jax.random.split(k)))(keys)
    obs, state = jax.vmap(lambda k: cartpole.reset(k, params))(reset_key)
    # [T, N]: each episode's own stream of action keys.
    step_keys = jax.vmap(lambda k: jax.random.split(k, params.max_steps), out_axes=1)(act_keys)
    physics = jax.vmap(lambda s, a: cartpole.step_no_reset(s, a, params))

    def one_step(carry, keys_t):
        state, obs, alive = carry
        action, extras = policy(obs, keys_t)
        next_obs, next_state, reward, terminated, truncated = physics(state, action)
        live = alive.astype(jnp.float32)
        record = (obs, action, reward * live, live, extras)
        still = alive & ~(terminated | truncated)
        keep = lambda new, old: jnp.where(still.reshape(still.shape + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
        return (jax.tree.map(keep, next_state, state), keep(next_obs, obs), still), record

    alive = jnp.ones(keys.shape[0], bool)
    _, (obs_t, action, reward, live, extras) = jax.lax.scan(one_step, (state, obs, alive), step_keys)
    return Episodes(obs_t, action, reward, live, extras)
