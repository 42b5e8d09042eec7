"""A whole RL training run as one jitted function, vmapped over seeds (PureJaxRL's `make_train`).

`make_train(task)` (an RL family's task, e.g. `aigc_jax.build("ppo")`) returns
`train(rng) -> (agent, metrics)`: the agent's initialisation and all `config.steps` updates in one
`lax.scan`, with metrics stacked per update. It is the same `init_agent` / `update_agent` the
engine runs one update at a time, so

    jax.jit(jax.vmap(make_train(task)))(jax.random.split(rng, n))

trains n agents at once, and with `seed_keys(task.config)` as the keys it computes the agents that
`python -m train FAMILY --config.num_seeds=n` trains (up to float rounding), minus the
checkpoints, logs and evaluations the engine adds.
"""

import jax
import ml_collections

from aigc_jax.engine.run import root_keys


def make_train(task):
    """`train(rng) -> (agent, metrics [steps])` for one agent of an RL family's `task`."""

    def train(rng):
        agent = task.init_agent(rng)
        return jax.lax.scan(lambda agent, _: task.update_agent(agent), agent, None, length=task.config.steps)

    return train


def seed_keys(config: ml_collections.ConfigDict) -> jax.Array:
    """The initial keys of the `num_seeds` agents the engine trains for `config` (see tasks/rl.py)."""
    return jax.random.split(root_keys(config.seed)["init"], config.num_seeds)


def train_seeds(task):
    """All `num_seeds` agents of `task.config`, trained at once in one jitted, vmapped function."""
    return jax.jit(jax.vmap(make_train(task)))(seed_keys(task.config))
