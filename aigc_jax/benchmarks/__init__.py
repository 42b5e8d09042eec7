"""`python -m benchmarks`: the engine's compiled train step of every family, timed in every
parallel mode, beside optional PyTorch twins. See docs/benchmarks.md for the method."""
