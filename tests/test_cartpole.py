"""The JAX CartPole against gymnasium's CartPole-v1, and its auto-reset and time-limit flags."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.envs import cartpole

gym = pytest.importorskip("gymnasium")


def _balancing_action(obs) -> int:
    """A simple controller that keeps the pole up for the whole 500 steps (reaches truncation)."""
    return int(obs[2] + 0.5 * obs[3] + 0.01 * obs[0] + 0.1 * obs[1] > 0)


def _drive_both(env, seed: int, policy, rng: np.random.Generator):
    """Run one gymnasium episode; before each step the JAX env takes gymnasium's state (and time)."""
    obs, _ = env.reset(seed=seed)
    step = jax.jit(cartpole.step_no_reset)
    rows = []
    while True:
        gym_state = np.asarray(env.unwrapped.state, np.float64)
        state = cartpole.State(*(jnp.asarray(v) for v in gym_state), jnp.asarray(len(rows), jnp.int32))
        action = policy(obs, rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        jax_obs, _, jax_reward, jax_term, jax_trunc = step(state, jnp.asarray(action))
        rows.append((obs, reward, terminated, truncated, np.asarray(jax_obs), float(jax_reward),
                     bool(jax_term), bool(jax_trunc), np.asarray(env.unwrapped.state)))
        if terminated or truncated:
            return rows


@pytest.mark.parametrize("policy", ["random", "balancing"])
def test_dynamics_equal_gymnasium_step_for_step(policy):
    """In 64-bit mode each JAX step reproduces gymnasium's float64 step (to rounding), flags exactly."""
    choose = {"random": lambda obs, rng: int(rng.integers(2)),
              "balancing": lambda obs, rng: _balancing_action(obs)}[policy]
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    ends = set()
    with jax.enable_x64(True):
        for episode in range(4 if policy == "random" else 1):
            rows = _drive_both(env, episode, choose, rng)
            for t, (obs, r, term, trunc, j_obs, j_r, j_term, j_trunc, gym_state) in enumerate(rows):
                np.testing.assert_allclose(j_obs, gym_state, rtol=1e-12, atol=1e-12, err_msg=f"step {t}")
                np.testing.assert_allclose(j_obs, obs, rtol=1e-6, atol=1e-7)  # gymnasium's float32 cast
                assert (j_r, j_term, j_trunc) == (r, term, trunc), f"step {t}"
            ends.add("truncated" if rows[-1][3] else "terminated")
            assert len(rows) == (500 if rows[-1][3] else len(rows))
    assert ends == ({"terminated"} if policy == "random" else {"truncated"})


def test_float32_step_matches_gymnasium_from_the_same_states():
    """The default float32 env: one step from many gymnasium states agrees to float32 precision."""
    env = gym.make("CartPole-v1").unwrapped
    rng = np.random.default_rng(1)
    states = rng.uniform(-0.2, 0.2, (64, 4))
    actions = rng.integers(0, 2, 64)
    batch = cartpole.State(*(jnp.asarray(states[:, i], jnp.float32) for i in range(4)), jnp.zeros(64, jnp.int32))
    obs, _, _, term, _ = jax.vmap(cartpole.step_no_reset)(batch, jnp.asarray(actions))
    for i in range(64):
        env.state = states[i].astype(np.float32).astype(np.float64)
        env.steps_beyond_terminated = None
        want, _, want_term, _, _ = env.step(int(actions[i]))
        np.testing.assert_allclose(np.asarray(obs[i]), want, rtol=1e-5, atol=1e-6)
        assert bool(term[i]) == want_term


def test_auto_reset_and_truncation_flags():
    params = cartpole.Params(max_steps=5)
    _, state = cartpole.reset(jax.random.key(0), params)
    step = jax.jit(lambda k, s: cartpole.step(k, s, jnp.asarray(1), params))
    for t in range(1, 6):
        before = state
        out = step(jax.random.key(t), state)
        state = out.state
        if t < 5:  # pushing right for 5 steps from near rest keeps the pole within 12 degrees
            assert not out.truncated and not out.terminated and int(state.time) == t
            np.testing.assert_array_equal(out.obs, out.final_obs)
    # The 5th step hits the time limit: truncated (not terminated), the env is reset, and the
    # true final observation is the physics step from `before`, not the new episode's first one.
    assert bool(out.truncated) and not bool(out.terminated)
    assert int(out.state.time) == 0
    physics_obs = cartpole.step_no_reset(before, jnp.asarray(1), params)[0]
    np.testing.assert_array_equal(out.final_obs, physics_obs)
    np.testing.assert_array_equal(out.obs, cartpole.reset(jax.random.key(5), params)[0])
    assert np.all(np.abs(np.asarray(out.obs)) <= params.reset_bound)


def test_termination_resets_and_flags_only_terminated():
    state = cartpole.State(*(jnp.float32(v) for v in (2.39, 1.0, 0.0, 0.0)), jnp.int32(10))
    out = cartpole.step(jax.random.key(0), state, jnp.asarray(1))
    assert bool(out.terminated) and not bool(out.truncated)
    assert float(out.final_obs[0]) > 2.4 and int(out.state.time) == 0 and float(out.reward) == 1.0
