"""`python -m benchmarks.report` from a checkout: see aigc_jax/benchmarks/report.py."""

import sys

from aigc_jax.benchmarks.report import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
