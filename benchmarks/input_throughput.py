"""`python -m benchmarks.input_throughput` from a checkout: see aigc_jax/benchmarks/input_throughput.py."""

import sys

from aigc_jax.benchmarks.input_throughput import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
