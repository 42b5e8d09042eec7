"""`ppo`: proximal policy optimisation on CartPole-v1, PureJaxRL-style, with correct truncation.

One update (one engine step) of one agent: a rollout of `num_steps` x `batch_size` vmapped envs
(`lax.scan`), GAE, then `update_epochs` passes over the rollout in `num_minibatches` shuffled
minibatches (both `lax.scan`): clipped surrogate objective, clipped value loss, entropy bonus,
gradient-norm clipping, Adam with a learning rate annealed linearly to 0 over the run. Unlike
PureJaxRL, GAE bootstraps from the value of the true final observation when the 500-step time
limit truncates an episode (see `aigc_jax/rl/advantages.py`).
"""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import flops
from aigc_jax.engine.state import create_train_state
from aigc_jax.envs import cartpole
from aigc_jax.models.policy import ActorCritic
from aigc_jax.rl import categorical
from aigc_jax.rl.advantages import gae
from aigc_jax.rl.rollout import reset_envs, rollout
from aigc_jax.tasks.rl import RL_RANGES, RLTask, check_divides, new_agent, progress_metrics, record_update, rl_config


class PPOTask(RLTask):
    name = "ppo"
    summary = "PPO actor-critic on CartPole-v1 (pure-JAX env, vmapped envs and seeds)"

    @staticmethod
    def default_config():
        c = rl_config()
        c.steps = 600  # updates; env steps = steps * num_steps * batch_size
        c.batch_size = 4  # environments per agent
        c.num_steps = 128  # rollout length per update
        c.update_epochs = 4  # passes over each rollout per update
        c.num_minibatches = 4  # minibatches per pass
        c.learning_rate = 2.5e-4
        c.anneal_lr = True  # anneal the learning rate linearly to 0 over the run
        c.gae_lambda = 0.95  # GAE lambda
        c.clip_eps = 0.2  # PPO's probability-ratio clip
        c.ent_coef = 0.01  # entropy bonus weight
        c.vf_coef = 0.5  # value loss weight
        c.max_grad_norm = 0.5  # global gradient-norm clip
        c.log_every = 20
        c.eval_every = 100
        c.ckpt_every = 200
        return c

    config_ranges = {**RL_RANGES, "num_steps": (1, None), "update_epochs": (1, None), "num_minibatches": (1, None),
                     "gae_lambda": (0.0, 1.0), "clip_eps": (0.0, None), "ent_coef": (0.0, None),
                     "vf_coef": (0.0, None), "max_grad_norm": (0.0, None)}
    benchmark_presets = {
        "tiny": {"steps": 4, "batch_size": 4, "num_steps": 16, "num_minibatches": 2, "update_epochs": 2,
                 "hidden": (16, 16)},
        "cpu": {"batch_size": 4, "num_steps": 128},  # the default run: one agent, PureJaxRL's shape
        "gpu": {"batch_size": 4, "num_steps": 128, "num_seeds": 256},  # PureJaxRL's 256-seed figure
    }

    def __init__(self, config, constants=None):
        super().__init__(config, constants)
        check_divides(config, "num_steps * batch_size", config.num_steps * config.batch_size, "num_minibatches")

    @property
    def model(self):
        return ActorCritic(cartpole.NUM_ACTIONS, tuple(self.config.hidden))

    def policy_logits(self, params, obs):
        return self.model.apply({"params": params}, obs)[0]

    def optimizer(self):
        c = self.config
        lr = c.learning_rate
        if c.anneal_lr:
            lr = optax.linear_schedule(lr, 0.0, c.steps * c.update_epochs * c.num_minibatches)
        return optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(lr, eps=1e-5))

    def init_agent(self, rng):
        model_key, env_key, agent_key = jax.random.split(rng, 3)
        variables = self.model.init(model_key, jnp.zeros((1, cartpole.OBS_SIZE)))
        train = create_train_state(self.model, variables, self.optimizer())
        envs = reset_envs(env_key, self.config.batch_size, self.env_params)
        return new_agent(train, envs, agent_key, self.config.steps)

    def env_steps_per_update(self) -> int:
        return self.config.num_steps * self.config.batch_size

    def update_agent(self, agent):
        c = self.config
        rollout_key, shuffle_key = jax.random.split(agent.update_key())
        params = agent.train.params

        def policy(obs, keys):
            logits, value = self.model.apply({"params": params}, obs)
            action = categorical.sample(keys, logits)
            return action, {"log_prob": categorical.log_prob(logits, action), "value": value}

        envs, traj = rollout(policy, agent.envs, rollout_key, c.num_steps, self.env_params)
        done = traj.terminated | traj.truncated
        # V(s') of the state each step reached: at a truncation this is the true final observation.
        next_values = self.model.apply({"params": params}, traj.final_obs, method=ActorCritic.value)
        advantages, targets = gae(traj.reward, traj.extras["value"], next_values, traj.terminated, done,
                                  c.gamma, c.gae_lambda)
        data = {"obs": traj.obs, "action": traj.action, "log_prob": traj.extras["log_prob"],
                "value": traj.extras["value"], "advantage": advantages, "target": targets}
        data = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), data)  # [T * E, ...]
        train, losses = self.epochs(agent.train, data, shuffle_key)

        ended = done.sum()
        agent = record_update(agent, train, envs, traj.completed_return.sum(), ended, jnp.asarray(traj.reward.size))
        return agent, {**progress_metrics(agent, ended), **jax.tree.map(jnp.mean, losses)}

    def epochs(self, train, data, key):
        """`update_epochs` passes of `num_minibatches` gradient steps each over shuffled data."""
        c = self.config
        n = data["obs"].shape[0]

        def one_epoch(train, epoch_key):
            order = jax.random.permutation(epoch_key, n)
            batches = jax.tree.map(lambda x: x[order].reshape((c.num_minibatches, -1, *x.shape[1:])), data)
            return jax.lax.scan(self.minibatch_step, train, batches)

        return jax.lax.scan(one_epoch, train, jax.random.split(key, c.update_epochs))

    def minibatch_step(self, train, batch):
        c = self.config

        def loss_fn(params):
            logits, value = self.model.apply({"params": params}, batch["obs"])
            log_prob = categorical.log_prob(logits, batch["action"])
            # Clipped value loss (as in PPO's reference implementations).
            value_clipped = batch["value"] + jnp.clip(value - batch["value"], -c.clip_eps, c.clip_eps)
            value_loss = 0.5 * jnp.maximum(jnp.square(value - batch["target"]),
                                           jnp.square(value_clipped - batch["target"])).mean()
            adv = batch["advantage"]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            log_ratio = log_prob - batch["log_prob"]
            ratio = jnp.exp(log_ratio)
            policy_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - c.clip_eps, 1 + c.clip_eps) * adv).mean()
            entropy = categorical.entropy(logits).mean()
            loss = policy_loss + c.vf_coef * value_loss - c.ent_coef * entropy
            return loss, {"loss": loss, "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                          "approx_kl": ((ratio - 1) - log_ratio).mean(),
                          "clip_fraction": (jnp.abs(ratio - 1) > c.clip_eps).mean()}

        grads, metrics = jax.grad(loss_fn, has_aux=True)(train.params)
        return train.apply_gradients(grads=grads), metrics

    def flops_per_step(self):
        c = self.config
        n = c.num_steps * c.batch_size
        actor = flops.mlp(1, (cartpole.OBS_SIZE, *c.hidden, cartpole.NUM_ACTIONS))
        critic = flops.mlp(1, (cartpole.OBS_SIZE, *c.hidden, 1))
        # Rollout: actor and critic on every step, the critic again on the final observations;
        # then every epoch trains both networks on the whole rollout.
        per_agent = n * (actor + 2 * critic) + c.update_epochs * n * flops.train(actor + critic)
        return c.num_seeds * per_agent
