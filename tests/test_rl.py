"""PPO and REINFORCE on CartPole: advantages, learning, seeds under vmap, resume, parallel modes."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image
from conftest import train_family

from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.run import initial_state
from aigc_jax.errors import UserError
from aigc_jax.rl.advantages import gae, rewards_to_go
from aigc_jax.rl.runner import make_train, train_seeds
from aigc_jax.cli import build_task

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


# One engine run shared by the tests below: 2 PPO agents (vmapped seeds), 30 updates of 4 envs x 128
# steps, checkpoints and evaluations after updates 15 and 30.
TWO_SEEDS = {"num_seeds": 2, "steps": 30, "anneal_lr": False, "log_every": 1, "eval_every": 15, "ckpt_every": 15,
             "eval_episodes": 20, "parallel": "jit"}


@pytest.fixture(scope="module")
def two_seeds_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two_seeds") / "run"
    _, rows = train_family("ppo", workdir, **TWO_SEEDS)
    return workdir, rows


def test_ppo_short_run_improves_the_return(two_seeds_run):
    workdir, rows = two_seeds_run
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == list(range(1, 31))
    assert train_rows[-1]["env_steps"] == 30 * 128 * 4
    first, last = train_rows[0], train_rows[-5:]
    # Random actions last ~22 steps; after 30 updates even the worse agent does far better.
    assert np.mean([r["return_min"] for r in last]) > 3 * first["return_max"], [r["return"] for r in train_rows]
    evals = [r for r in rows if "eval_return" in r]  # the engine evaluates this data-less task
    assert [r["step"] for r in evals] == [15, 30]
    assert evals[-1]["eval_return_min"] > 100  # an untrained greedy policy scores about 10
    for name, width in (("episode", 8 * 240 + 7 * 4), ("learning_curve", 640)):  # drawn from the state
        with Image.open(workdir / "samples" / f"{name}_000030.png") as image:
            assert image.width == width + 4  # the grid's border; large images are not enlarged


def _tree_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_vmap_over_seeds_gives_each_seed_its_own_run(two_seeds_run):
    """The engine's 2-seed run is `vmap(update_agent)` over a seed axis; each agent in it matches
    the same agent of PureJaxRL's form, `jit(vmap(make_train(task)))(keys)` (whole runs).

    Both sides are vmapped over the seeds: a lone agent's unbatched matmuls may run on another
    XLA:CPU kernel (the engine sends only single matmuls to YNNPACK), and RL amplifies that last-bit
    rounding into visibly different returns within a few updates."""
    task = build_task("ppo", {k: str(v) for k, v in TWO_SEEDS.items()})
    metrics = jax.device_get(train_seeds(task)[1])
    alone = [jax.tree.map(lambda m, i=i: m[i], metrics) for i in range(task.config.num_seeds)]
    returns = np.stack([m["return"] for m in alone])  # [seed, update]
    assert not np.allclose(returns[0], returns[1])  # two different agents
    _, rows = two_seeds_run
    for u, row in enumerate(r for r in rows if "loss" in r):
        np.testing.assert_allclose([row["return_min"], row["return_max"], row["return"], row["loss"]],
                                   [returns[:, u].min(), returns[:, u].max(), returns[:, u].mean(),
                                    np.mean([m["loss"][u] for m in alone])], rtol=1e-3)


def test_resume_is_exact(two_seeds_run, tmp_path):
    whole, rows = two_seeds_run
    interrupted = tmp_path / "interrupted"
    shutil.copytree(whole, interrupted)
    shutil.rmtree(interrupted / "checkpoints" / "30")  # as if stopped right after update 15's checkpoint
    _, resumed_rows = train_family("ppo", interrupted, fresh=False, **TWO_SEEDS)
    assert resumed_rows == rows
    states = []
    for workdir in (whole, interrupted):
        ckpt = Checkpointer(str(workdir / "checkpoints"))
        saved = ckpt.manager.restore(30, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
        states.append(saved.state)  # as saved: nested dicts of arrays
        ckpt.close()
    assert len(jax.tree.leaves(states[0])) > 20
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1]), strict=True):
        np.testing.assert_array_equal(a, b)  # weights, optimiser, envs mid-episode, keys, curves


def test_reinforce_learns():
    task = build_task("reinforce", {"steps": "25", "max_episode_steps": "200"})
    _, metrics = jax.jit(make_train(task))(jax.random.key(0))
    returns = np.asarray(metrics["return"])
    assert returns[-5:].mean() > 2 * returns[:3].mean(), returns


def test_parallel_modes_compute_what_jit_computes():
    """Every device runs the whole (replicated) update, so the default `sharded` mode over 4
    simulated devices computes what `jit` on one computes (shard_map too; left out for time)."""
    task = build_task("ppo", {k: str(v) for k, v in {**TINY_PPO, "num_seeds": 2, "steps": 2}.items()})
    results, start = {}, jax.device_get(initial_state(task, None, jax.random.key(0)))
    for mode in ("jit", "sharded"):
        compiled = compile_task(task, mode, task.config.batch_size)
        state = compiled.place_state(start)
        for step in range(2):
            state, metrics = compiled.train_step(state, compiled.place_batch({}), jax.random.key(step))
        results[mode] = (compiled.canonical(state), metrics)
    _tree_close(results["sharded"], results["jit"])


def test_bad_minibatch_count_is_a_user_error():
    with pytest.raises(UserError, match="num_minibatches=3"):
        build_task("ppo", {"num_minibatches": "3"})
