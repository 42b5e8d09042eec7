"""`python -m benchmarks.sampling` from a checkout: see aigc_jax/benchmarks/sampling.py."""

import sys

from aigc_jax.benchmarks.sampling import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
