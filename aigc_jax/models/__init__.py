"""flax.linen modules only: no optimizers, no data, no loops."""
