"""Environment steps per second: a random policy, an MLP policy, and whole PPO training runs.

Each figure is timed after compilation (reported separately), with `block_until_ready`, median of
`repeats` calls. These are the figures PureJaxRL and gymnax publish: PureJaxRL ~29k env-steps/s
for one PPO agent and ~2.6M/s aggregate for 256 seeds (Colab GPU); gymnax CartPole 1.42 s per 1M
steps on CPU with 10 envs and an MLP policy.

    python -m benchmarks.rl_throughput [--seeds 1,64] [--updates 50] [--repeats 5]   (from a checkout)
    python -m aigc_jax.benchmarks.rl_throughput ...                                   (installed)
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from aigc_jax.envs import cartpole
from aigc_jax.rl import categorical
from aigc_jax.rl.rollout import reset_envs, rollout
from aigc_jax.rl.runner import make_train
from aigc_jax.tasks.ppo import PPOTask


def timed_call(fn, args, repeats: int) -> tuple[float, float]:
    """(compile seconds, median run seconds) of jitted `fn(*args)`."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - start)
    return compile_s, statistics.median(runs)


def rollout_steps_per_s(num_seeds: int, num_envs: int, num_steps: int, policy: str = "random",
                        repeats: int = 5) -> dict:
    """Env steps/s of `num_seeds` x `num_envs` envs stepped `num_steps` times in one `lax.scan`.

    policy: "random" (uniform actions) or "mlp" (PPO's untrained actor, sampled).
    """
    params = cartpole.DEFAULT
    model = PPOTask(PPOTask.default_config()).model
    weights = model.init(jax.random.key(0), jnp.zeros((1, cartpole.OBS_SIZE)))

    def policy_fn(obs, keys):
        if policy == "random":
            return jax.vmap(lambda k: jax.random.randint(k, (), 0, cartpole.NUM_ACTIONS))(keys), {}
        return categorical.sample(keys, model.apply(weights, obs)[0]), {}

    def run(keys):
        def one_seed(key):
            reset_key, run_key = jax.random.split(key)
            envs, traj = rollout(policy_fn, reset_envs(reset_key, num_envs, params), run_key, num_steps, params)
            # Depends on every step's dynamics and flags, so none of the work can be optimised away.
            return traj.final_obs.sum() + traj.terminated.sum() + envs.episode_return.sum()
        return jax.vmap(one_seed)(keys)

    compile_s, run_s = timed_call(run, (jax.random.split(jax.random.key(0), num_seeds),), repeats)
    steps = num_seeds * num_envs * num_steps
    return {"what": f"{policy} policy rollout", "seeds": num_seeds, "envs": num_envs, "env_steps": steps,
            "compile_s": compile_s, "run_s": run_s, "env_steps_per_s": steps / run_s}


def training_steps_per_s(num_seeds: int, updates: int = 50, repeats: int = 3, **overrides) -> dict:
    """Env steps/s of whole PPO training runs (`updates` updates, default config) in one jitted,
    seed-vmapped function: rollouts, GAE and the minibatch epochs all included."""
    config = PPOTask.default_config()
    config.family, config.steps = "ppo", updates
    config.update(overrides)
    train = jax.vmap(make_train(PPOTask(config)))
    compile_s, run_s = timed_call(train, (jax.random.split(jax.random.key(0), num_seeds),), repeats)
    steps = num_seeds * updates * config.num_steps * config.batch_size
    return {"what": "ppo training", "seeds": num_seeds, "envs": config.batch_size, "env_steps": steps,
            "compile_s": compile_s, "run_s": run_s, "env_steps_per_s": steps / run_s}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rl_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,64", help="comma-separated seed counts")
    parser.add_argument("--updates", type=int, default=50, help="PPO updates per timed training run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    config = PPOTask.default_config()
    rows = [rollout_steps_per_s(1, 10, 10_000, "mlp", args.repeats)]  # gymnax's CPU figure's shape
    for seeds in (int(s) for s in args.seeds.split(",")):
        rows.append(rollout_steps_per_s(seeds, config.batch_size, config.num_steps * 10, "random", args.repeats))
        rows.append(training_steps_per_s(seeds, args.updates, args.repeats))
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}")
    print(f"{'what':<22} {'seeds':>5} {'envs':>5} {'env steps':>10} {'compile s':>9} {'run s':>8} {'env steps/s':>12}")
    for r in rows:
        print(f"{r['what']:<22} {r['seeds']:>5} {r['envs']:>5} {r['env_steps']:>10} {r['compile_s']:>9.2f} "
              f"{r['run_s']:>8.3f} {r['env_steps_per_s']:>12,.0f}")


if __name__ == "__main__":
    main()
