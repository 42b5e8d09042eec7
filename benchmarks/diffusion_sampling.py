"""`python -m benchmarks.diffusion_sampling` from a checkout: see aigc_jax/benchmarks/diffusion_sampling.py."""

import sys

from aigc_jax.benchmarks.diffusion_sampling import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
