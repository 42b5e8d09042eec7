"""Reinforcement learning pieces shared by the RL tasks: rollouts, advantages, the seed-vmapped runner."""
