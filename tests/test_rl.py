"""PPO and REINFORCE on CartPole: advantages, learning, seeds under vmap, resume, parallel modes."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import train_family

from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.loop import initial_state, root_keys
from aigc_jax.errors import UserError
from aigc_jax.rl.advantages import gae, rewards_to_go
from aigc_jax.rl.runner import make_train, seed_keys, train_seeds
from train.cli import build_task

TINY_PPO = {"batch_size": 4, "num_steps": 16, "num_minibatches": 2, "update_epochs": 2, "hidden": "16,16",
            "eval_episodes": 8, "parallel": "jit"}


def numpy_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """The textbook recursion, one env and one step at a time."""
    steps, envs = rewards.shape
    adv = np.zeros((steps, envs))
    for e in range(envs):
        running = 0.0
        for t in reversed(range(steps)):
            if terminated[t, e]:
                delta = rewards[t, e] - values[t, e]  # nothing after a termination
            else:  # bootstrap, from the true final state when the time limit truncated the episode
                delta = rewards[t, e] + gamma * next_values[t, e] - values[t, e]
            if terminated[t, e] or truncated[t, e]:
                running = 0.0  # the next step belongs to another episode
            running = delta + gamma * lam * running
            adv[t, e] = running
    return adv


def test_gae_matches_a_numpy_loop_with_terminations_and_truncations():
    rng = np.random.default_rng(0)
    steps, envs, gamma, lam = 12, 3, 0.9, 0.8
    rewards, values, next_values = (rng.normal(size=(steps, envs)) for _ in range(3))
    terminated = np.zeros((steps, envs), bool)
    truncated = np.zeros((steps, envs), bool)
    terminated[4, 0] = terminated[9, 2] = True
    truncated[6, 0] = truncated[2, 1] = truncated[11, 1] = True
    terminated[7, 2] = truncated[7, 2] = True  # the pole falls on the last allowed step: a termination
    done = terminated | truncated
    adv, targets = gae(*(jnp.asarray(x, jnp.float32) for x in (rewards, values, next_values)),
                       jnp.asarray(terminated), jnp.asarray(done), gamma, lam)
    want = numpy_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, want + values, rtol=1e-5, atol=1e-5)
    # At a truncation the estimate bootstraps from V(final obs); treating it as a termination would not.
    np.testing.assert_allclose(adv[2, 1], rewards[2, 1] + gamma * next_values[2, 1] - values[2, 1], rtol=1e-5)


def test_rewards_to_go_stop_at_the_end_of_the_episode():
    rewards = jnp.ones((5, 2))
    alive = jnp.asarray([[1, 1], [1, 1], [1, 0], [0, 0], [0, 0]], jnp.float32)
    got = rewards_to_go(rewards, alive, 0.5)
    np.testing.assert_allclose(got[:, 0], [1.75, 1.5, 1.0, 0, 0])
    np.testing.assert_allclose(got[:, 1], [1.5, 1.0, 0, 0, 0])


def test_ppo_short_run_improves_the_return(tmp_path):
    summary, rows = train_family("ppo", tmp_path, steps=40, log_every=1, eval_every=0, ckpt_every=0,
                                 eval_episodes=20, anneal_lr=False, parallel="jit")
    returns = [r["return"] for r in rows if "return" in r]
    assert len(returns) == 40 and rows[-2]["env_steps"] == 40 * 128 * 4
    assert np.mean(returns[-5:]) > 3 * returns[0], returns  # ~22 (random actions) -> over 66
    assert summary["metrics"]["eval_return"] > 100  # the untrained greedy policy scores about 10
    for name in ("episode", "learning_curve"):  # the strip and the curve, drawn from the state
        assert (tmp_path / "samples" / f"{name}_000040.png").is_file()


def test_reinforce_short_run_improves_the_return(tmp_path):
    summary, rows = train_family("reinforce", tmp_path, steps=25, log_every=1, eval_every=0, ckpt_every=0,
                                 sample_every=0, eval_episodes=8, max_episode_steps=200, parallel="jit")
    returns = [r["return"] for r in rows if "return" in r]
    assert np.mean(returns[-5:]) > 2 * np.mean(returns[:3]), returns


def _tree_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# One tiny engine run shared by the tests below: 2 seeds, 4 updates, checkpoints at 2 and 4.
TWO_SEEDS = {**TINY_PPO, "num_seeds": 2, "steps": 4, "log_every": 1, "eval_every": 2, "ckpt_every": 2,
             "sample_every": 0}


@pytest.fixture(scope="module")
def two_seeds_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two_seeds") / "run"
    _, rows = train_family("ppo", workdir, **TWO_SEEDS)
    return workdir, rows


def test_vmap_over_seeds_gives_each_seed_its_own_run(two_seeds_run):
    task = build_task("ppo", {k: str(v) for k, v in TWO_SEEDS.items()})
    together, together_metrics = train_seeds(task.config)  # jit(vmap(make_train(config)))
    train = jax.jit(make_train(task.config))
    for i, key in enumerate(seed_keys(task.config)):
        agent, metrics = train(key)
        _tree_close(jax.tree.map(lambda x: x[i], together.train.params), agent.train.params)
        _tree_close(jax.tree.map(lambda x: x[i], together_metrics), metrics)
        np.testing.assert_array_equal(together.envs.state.time[i], agent.envs.state.time)
    assert not np.allclose(together_metrics["loss"][0], together_metrics["loss"][1])  # two different agents
    # The engine with --config.num_seeds=2 trained the same two agents, and logged their mean and spread.
    _, rows = two_seeds_run
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    for u, row in enumerate(train_rows):
        per_seed = np.asarray(together_metrics["return"][:, u])
        np.testing.assert_allclose([row["loss"], row["return"], row["return_min"], row["return_max"]],
                                   [float(together_metrics["loss"][:, u].mean()), per_seed.mean(), per_seed.min(),
                                    per_seed.max()], rtol=1e-4)
    assert {"eval_return", "eval_return_std", "eval_return_min", "eval_return_max"} <= set(rows[-1])


def test_resume_is_exact(two_seeds_run, tmp_path):
    whole, rows = two_seeds_run
    interrupted = tmp_path / "interrupted"
    shutil.copytree(whole, interrupted)
    shutil.rmtree(interrupted / "checkpoints" / "4")  # as if stopped right after step 2's checkpoint
    _, resumed_rows = train_family("ppo", interrupted, fresh=False, **TWO_SEEDS)
    assert resumed_rows == rows
    task = build_task("ppo", {k: str(v) for k, v in TWO_SEEDS.items()})
    template = initial_state(task, None, root_keys(0)["init"])
    states = []
    for workdir in (whole, interrupted):
        ckpt = Checkpointer(str(workdir / "checkpoints"))
        states.append(ckpt.restore(4, template)[0])
        ckpt.close()
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1]), strict=True):
        np.testing.assert_array_equal(a, b)  # weights, optimiser, envs mid-episode, keys, curves


def test_parallel_modes_compute_what_jit_computes(two_seeds_run, tmp_path):
    """Every device runs the whole (replicated) update, so the modes agree (4 simulated devices)."""
    _, want = two_seeds_run
    for mode in ("sharded", "shard_map"):
        _, got = train_family("ppo", tmp_path / mode, **{**TWO_SEEDS, "parallel": mode})
        assert [sorted(r) for r in got] == [sorted(r) for r in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose([g[k] for k in sorted(w)], [w[k] for k in sorted(w)], rtol=1e-4, atol=1e-6,
                                       err_msg=mode)


def test_bad_minibatch_count_is_a_user_error():
    with pytest.raises(UserError, match="num_minibatches=3"):
        build_task("ppo", {"num_minibatches": "3"})
