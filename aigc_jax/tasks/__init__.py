"""One file per family: default config, init, losses, train/eval step, sample."""
