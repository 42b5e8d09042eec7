"""`python -m benchmarks.gpu_check` from a checkout: see aigc_jax/benchmarks/gpu_check.py."""

import sys

from aigc_jax.benchmarks.gpu_check import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
