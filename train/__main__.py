import sys

from aigc_jax.cli import main

sys.exit(main(sys.argv[1:]))
