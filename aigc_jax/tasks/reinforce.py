"""`reinforce`: the simple Monte-Carlo policy gradient (Williams 1992), the baseline row for `ppo`.

One update (one engine step) of one agent plays `batch_size` complete episodes from reset to the
end (termination or the 500-step limit; a `lax.scan` of `max_episode_steps` steps with an alive
mask), and takes one gradient step on -mean(log pi(a_t|s_t) * G_t) over the steps that happened,
where G_t is the discounted reward-to-go, normalised over the batch (a constant baseline).
"""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import flops
from aigc_jax.engine.state import create_train_state
from aigc_jax.envs import cartpole
from aigc_jax.models.policy import Policy
from aigc_jax.rl import categorical
from aigc_jax.rl.advantages import rewards_to_go
from aigc_jax.rl.rollout import episodes
from aigc_jax.tasks.rl import RL_RANGES, RLTask, new_agent, progress_metrics, record_update, rl_config


class ReinforceTask(RLTask):
    name = "reinforce"
    summary = "REINFORCE policy gradient on CartPole-v1 (baseline for ppo)"

    @staticmethod
    def default_config():
        c = rl_config()
        c.steps = 300  # updates; each plays batch_size complete episodes
        c.batch_size = 8  # episodes per update
        c.learning_rate = 1e-2
        c.log_every = 10
        c.eval_every = 50
        c.ckpt_every = 100
        return c

    config_ranges = RL_RANGES
    benchmark_presets = {
        "tiny": {"steps": 4, "batch_size": 4, "hidden": (16, 16), "max_episode_steps": 50},
        "cpu": {"batch_size": 8},
        "gpu": {"batch_size": 8, "num_seeds": 256},
    }

    @property
    def model(self):
        return Policy(cartpole.NUM_ACTIONS, tuple(self.config.hidden))

    def policy_logits(self, params, obs):
        return self.model.apply({"params": params}, obs)

    def init_agent(self, rng):
        model_key, agent_key = jax.random.split(rng)
        variables = self.model.init(model_key, jnp.zeros((1, cartpole.OBS_SIZE)))
        train = create_train_state(self.model, variables, optax.adam(self.config.learning_rate))
        return new_agent(train, None, agent_key, self.config.steps)

    def env_steps_per_update(self) -> int:
        return self.config.batch_size * self.config.max_episode_steps

    def update_agent(self, agent):
        params = agent.train.params

        def policy(obs, keys):
            return categorical.sample(keys, self.policy_logits(params, obs)), {}

        ep = episodes(policy, jax.random.split(agent.update_key(), self.config.batch_size), self.env_params)
        returns_to_go = rewards_to_go(ep.reward, ep.alive, self.config.gamma)
        count = ep.alive.sum()
        mean = (returns_to_go * ep.alive).sum() / count
        std = jnp.sqrt((jnp.square(returns_to_go - mean) * ep.alive).sum() / count)
        weights = (returns_to_go - mean) / (std + 1e-8) * ep.alive

        def loss_fn(params):
            logits = self.policy_logits(params, ep.obs)
            loss = -(categorical.log_prob(logits, ep.action) * weights).sum() / count
            return loss, (categorical.entropy(logits) * ep.alive).sum() / count

        (loss, entropy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        train = agent.train.apply_gradients(grads=grads)
        ended = jnp.asarray(self.config.batch_size)
        agent = record_update(agent, train, None, ep.returns.sum(), ended, count)
        return agent, {**progress_metrics(agent, ended), "loss": loss, "entropy": entropy}

    def flops_per_step(self):
        c = self.config
        n = c.batch_size * c.max_episode_steps  # the scan always runs the full time limit
        forward = flops.mlp(1, (cartpole.OBS_SIZE, *c.hidden, cartpole.NUM_ACTIONS))
        return c.num_seeds * n * (forward + flops.train(forward))
