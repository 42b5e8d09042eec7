"""Family-agnostic machinery: state, compiled steps, the training loop, checkpoints, metrics."""
