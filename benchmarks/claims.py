"""`python -m benchmarks.claims` from a checkout: see aigc_jax/benchmarks/claims.py."""

import sys

from aigc_jax.benchmarks.claims import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
