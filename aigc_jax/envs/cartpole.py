"""CartPole-v1 in pure JAX: gymnasium's dynamics, step for step.

`reset(key)` and `step(key, state, action)` are pure functions of arrays, so an environment can be
`vmap`ped over thousands of copies and stepped inside `lax.scan`. `step` resets an episode that
ends (auto-reset) and still returns the true final observation, so a learner can bootstrap from it
at a time-limit truncation. Termination (pole fell, cart left the track) and truncation (the
500-step limit of gymnasium's `TimeLimit` wrapper) are separate flags, as in gymnasium: both are
true when the pole falls on the 500th step.

The arithmetic follows gymnasium's `CartPoleEnv.step` term by term (Euler integrator); it runs in
float32 unless 64-bit mode is on, in which case it reproduces gymnasium's float64 numbers.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

NUM_ACTIONS = 2  # 0: push left, 1: push right
OBS_SIZE = 4  # cart position, cart velocity, pole angle, pole angular velocity


@dataclasses.dataclass(frozen=True)
class Params:
    """Physical constants and limits of CartPole-v1 (static: hashable, closed over when compiling)."""

    gravity: float = 9.8
    mass_cart: float = 1.0
    mass_pole: float = 0.1
    half_length: float = 0.5  # half the pole's length
    force: float = 10.0
    tau: float = 0.02  # seconds per step
    theta_limit: float = 12 * 2 * math.pi / 360  # radians
    x_limit: float = 2.4
    max_steps: int = 500  # CartPole-v1's time limit
    reset_bound: float = 0.05  # initial state ~ U(-bound, bound)^4

    @property
    def total_mass(self) -> float:
        return self.mass_pole + self.mass_cart

    @property
    def polemass_length(self) -> float:
        return self.mass_pole * self.half_length


DEFAULT = Params()


@struct.dataclass
class State:
    x: jax.Array
    x_dot: jax.Array
    theta: jax.Array
    theta_dot: jax.Array
    time: jax.Array  # steps taken in the current episode (int32)


class StepResult(NamedTuple):
    obs: jax.Array  # the next observation (the first of a new episode after a reset)
    state: State
    reward: jax.Array
    terminated: jax.Array  # the episode ended inside the MDP: no value after this step
    truncated: jax.Array  # the time limit cut the episode: the next state still has a value
    final_obs: jax.Array  # the observation the step reached, before any auto-reset


def observation(state: State) -> jax.Array:
    return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot], axis=-1)


def reset(key: jax.Array, params: Params = DEFAULT) -> tuple[jax.Array, State]:
    b = params.reset_bound
    x, x_dot, theta, theta_dot = jax.random.uniform(key, (4,), minval=-b, maxval=b)
    state = State(x, x_dot, theta, theta_dot, jnp.zeros((), jnp.int32))
    return observation(state), state


def step_no_reset(state: State, action: jax.Array, params: Params = DEFAULT):
    """One Euler step of the physics: (obs, state, reward, terminated, truncated)."""
    p = params
    force = jnp.where(action == 1, p.force, -p.force)
    cos, sin = jnp.cos(state.theta), jnp.sin(state.theta)
    temp = (force + p.polemass_length * jnp.square(state.theta_dot) * sin) / p.total_mass
    theta_acc = (p.gravity * sin - cos * temp) / (
        p.half_length * (4.0 / 3.0 - p.mass_pole * jnp.square(cos) / p.total_mass))
    x_acc = temp - p.polemass_length * theta_acc * cos / p.total_mass
    new = State(
        x=state.x + p.tau * state.x_dot,
        x_dot=state.x_dot + p.tau * x_acc,
        theta=state.theta + p.tau * state.theta_dot,
        theta_dot=state.theta_dot + p.tau * theta_acc,
        time=state.time + 1,
    )
    terminated = ((new.x < -p.x_limit) | (new.x > p.x_limit)
                  | (new.theta < -p.theta_limit) | (new.theta > p.theta_limit))
    truncated = new.time >= p.max_steps
    reward = jnp.ones_like(new.x)  # +1 for every step, the terminating one included
    return observation(new), new, reward, terminated, truncated


def step(key: jax.Array, state: State, action: jax.Array, params: Params = DEFAULT) -> StepResult:
    """`step_no_reset`, then a fresh episode (drawn from `key`) wherever this one ended."""
    obs, new, reward, terminated, truncated = step_no_reset(state, action, params)
    done = terminated | truncated
    reset_obs, reset_state = reset(key, params)
    next_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, new)
    return StepResult(jnp.where(done, reset_obs, obs), next_state, reward, terminated, truncated, obs)
