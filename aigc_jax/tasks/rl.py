"""What the reinforcement-learning tasks (`ppo`, `reinforce`) share: agents, seeds, evaluation.

An RL task has no dataset: its experience comes from environments that live in its state. The
algorithm is written for ONE agent as two pure functions, `init_agent(rng)` and
`update_agent(agent) -> (agent, metrics)`; an agent carries its own PRNG key (as raw key data,
which orbax can save), and update `u` draws from `fold_in(key, u)`. So an agent's whole training
run is a function of its initial key alone, which is what lets `aigc_jax.rl.runner.make_train`
scan it inside one jitted function and `vmap` it over seeds.

As a task of the engine, the state holds `num_seeds` agents stacked on a leading axis:
`init` splits the engine's init key into one key per agent and `train_step` is `vmap(update_agent)`,
so `--config.num_seeds=N` trains N independent agents in one compiled step and logs their mean and
spread. One engine step is one update of every agent. The engine's per-example keys and step key
are not used (the agents' keys are in the state), so every parallel mode computes the same numbers
and a resumed run continues the same episodes. `batch_size` is the number of environments each
agent runs in parallel.

Evaluation plays `eval_episodes` episodes (100: the usual CartPole criterion) of each agent's
greedy policy from the engine's per-example keys, and logs the mean return over episodes (mean,
std, min and max over agents when there are several). `sample` returns the learning curve and one
greedy episode, drawn host-side as a PNG plot and a PNG strip of frames.
"""

import abc

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import TrainState
from aigc_jax.envs import cartpole
from aigc_jax.errors import UserError
from aigc_jax.rl.rollout import EnvBatch, episodes
from aigc_jax.tasks.base import Task

SOLVED_RETURN = 475.0  # CartPole-v1's reward threshold


@struct.dataclass
class AgentState:
    train: TrainState
    envs: EnvBatch | None  # running environments (None for algorithms that reset every update)
    key: jax.Array  # raw key data of the agent's own PRNG key (orbax cannot save typed keys)
    updates: jax.Array  # updates done so far (int32)
    env_steps: jax.Array  # environment steps taken so far (int32)
    last_return: jax.Array  # mean return of the most recent episodes that ended
    curve_steps: jax.Array  # [steps] env_steps after each update (the learning curve's x)
    curve_return: jax.Array  # [steps] last_return after each update (its y)

    def update_key(self) -> jax.Array:
        return jax.random.fold_in(jax.random.wrap_key_data(self.key), self.updates)


def new_agent(train: TrainState, envs: EnvBatch | None, key: jax.Array, num_updates: int) -> AgentState:
    zero = jnp.zeros((), jnp.int32)
    return AgentState(train, envs, jax.random.key_data(key), zero, zero, jnp.zeros((), jnp.float32),
                      jnp.zeros(num_updates, jnp.int32), jnp.zeros(num_updates, jnp.float32))


def record_update(agent: AgentState, train: TrainState, envs, returns_sum, episodes_ended, env_steps) -> AgentState:
    """The agent after one update: new weights and envs, counters and the learning curve advanced."""
    last = jnp.where(episodes_ended > 0, returns_sum / jnp.maximum(episodes_ended, 1), agent.last_return)
    steps = agent.env_steps + env_steps.astype(jnp.int32)
    u = agent.updates
    return agent.replace(train=train, envs=envs, updates=u + 1, env_steps=steps, last_return=last,
                         curve_steps=agent.curve_steps.at[u].set(steps),
                         curve_return=agent.curve_return.at[u].set(last))


def progress_metrics(agent: AgentState, episodes_ended) -> dict:
    return {"return": agent.last_return, "episodes": episodes_ended.astype(jnp.float32),
            "env_steps": agent.env_steps.astype(jnp.float32)}


def spread(name: str, per_agent: jax.Array) -> dict:
    """Mean over agents, plus std, min and max when there are several."""
    out = {name: per_agent.mean()}
    if per_agent.shape[0] > 1:
        out.update({f"{name}_std": per_agent.std(), f"{name}_min": per_agent.min(), f"{name}_max": per_agent.max()})
    return out


def rl_config():
    c = base_config()
    del c["dataset"], c["data_dir"]  # no dataset: experience comes from the environment
    c.env = "cartpole"  # the environment (CartPole-v1 in JAX)
    c.batch_size = 4  # environments per agent
    c.num_seeds = 1  # agents trained at once (vmap); agent i starts from the i-th split of the init key
    c.hidden = (64, 64)  # actor and critic hidden layer widths
    c.gamma = 0.99  # discount factor
    c.max_episode_steps = 500  # CartPole-v1's time limit
    c.eval_episodes = 100  # greedy episodes per evaluation
    c.eval_batch_size = 100
    c.sample_every = 0
    return c


RL_RANGES = {"num_seeds": (1, None), "gamma": (0.0, 1.0), "max_episode_steps": (1, None), "eval_episodes": (1, None)}


class RLTask(Task):
    main_metric = "return"
    config_choices = {"env": ("cartpole",)}

    def __init__(self, config, constants=None):
        super().__init__(config, constants)
        self.env_params = cartpole.Params(max_steps=config.max_episode_steps)

    # --- one agent: what each algorithm writes -------------------------------------------------
    @abc.abstractmethod
    def init_agent(self, rng: jax.Array) -> AgentState: ...

    @abc.abstractmethod
    def update_agent(self, agent: AgentState) -> tuple[AgentState, dict]: ...

    @abc.abstractmethod
    def policy_logits(self, params, obs: jax.Array) -> jax.Array: ...

    @abc.abstractmethod
    def env_steps_per_update(self) -> int:
        """Environment steps one update of one agent takes (the most, for variable-length episodes)."""

    def env_steps_per_step(self) -> int:
        """Environment steps in one engine step, all agents together (steps/s -> env steps/s)."""
        return self.config.num_seeds * self.env_steps_per_update()

    # --- the engine's interface: a stack of `num_seeds` agents ---------------------------------
    def load_data(self):
        return None

    def init(self, rng, batch):
        # lax.map, not vmap: the same agents, but a batched QR (orthogonal init) compiles slower.
        return jax.lax.map(self.init_agent, jax.random.split(rng, self.config.num_seeds))

    def train_step(self, state, batch, rng):
        state, metrics = jax.vmap(self.update_agent)(state)
        out = {k: v.mean() for k, v in metrics.items()}
        out.update(spread("return", metrics["return"]))
        return state, out

    def eval_inputs(self):
        return {"episode": np.arange(self.config.eval_episodes)}

    def greedy(self, params):
        return lambda obs, keys: (self.policy_logits(params, obs).argmax(-1), {})

    def eval_step(self, state, batch, rng):
        """Greedy episodes from the per-example keys: masked sums of returns, one entry per agent."""
        def agent_returns(params):
            return episodes(self.greedy(params), batch["key"], self.env_params).returns

        returns = jax.vmap(agent_returns)(state.train.params)  # [S, N]
        mask = batch["mask"]
        return {"return": (returns * mask).sum(-1), "solved": ((returns >= SOLVED_RETURN) * mask).sum(-1)}

    def finalize_eval(self, means):
        return {**spread("return", np.asarray(means["return"])), "solved_fraction": float(np.mean(means["solved"]))}

    def sample(self, state, rng, batch):
        """Agent 0's greedy episode, and every agent's learning curve."""
        params = jax.tree.map(lambda x: x[0], state.train.params)
        ep = episodes(self.greedy(params), rng[None], self.env_params)
        return {"episode_obs": ep.obs[:, 0], "episode_alive": ep.alive[:, 0], "updates": state.updates[0],
                "curve_steps": state.curve_steps, "curve_return": state.curve_return}

    def render_samples(self, outputs):
        from aigc_jax.envs.cartpole_render import episode_strip
        from aigc_jax.rl.plots import learning_curve

        n = int(outputs["updates"])
        return {"episode": episode_strip(outputs["episode_obs"], outputs["episode_alive"], self.env_params)[None],
                "learning_curve": learning_curve(outputs["curve_steps"][:, :n], outputs["curve_return"][:, :n],
                                                 title=f"{self.name} on CartPole-v1", solved=SOLVED_RETURN)[None]}


def check_divides(config, what: str, total: int, parts_key: str) -> None:
    if total % config[parts_key]:
        raise UserError(f"config.{parts_key}={config[parts_key]} does not divide {what}={total}; "
                        f"expected a divisor of {total}")

