import sys

from aigc_jax.benchmarks.cli import main

sys.exit(main(sys.argv[1:]))
