"""Policy and value MLPs for discrete-action reinforcement learning (PPO, REINFORCE).

The PPO paper's and PureJaxRL's shapes: separate actor and critic towers of tanh Dense layers,
orthogonal initialisation (gain sqrt(2) in the hidden layers, 0.01 for the policy logits so the
first policy is near uniform, 1 for the value), zero biases.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class Tower(nn.Module):
    """[Dense -> tanh] * len(hidden) -> Dense(out)."""

    hidden: Sequence[int]
    out: int
    out_gain: float

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.tanh(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)))(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.orthogonal(self.out_gain))(x)


class Policy(nn.Module):
    """Observation -> action logits."""

    num_actions: int
    hidden: Sequence[int] = (64, 64)

    def setup(self):
        self.actor = Tower(self.hidden, self.num_actions, 0.01)

    def __call__(self, obs):
        return self.actor(obs)


class ActorCritic(nn.Module):
    """Observation -> (action logits, state value); the two towers share no weights."""

    num_actions: int
    hidden: Sequence[int] = (64, 64)

    def setup(self):
        self.actor = Tower(self.hidden, self.num_actions, 0.01)
        self.critic = Tower(self.hidden, 1, 1.0)

    def __call__(self, obs):
        return self.actor(obs), self.value(obs)

    def value(self, obs):
        return jnp.squeeze(self.critic(obs), -1)
