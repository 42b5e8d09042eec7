"""Where prepared TFDS data lives."""

import os
from pathlib import Path


def tfds_data_dir(configured: str = "") -> str:
    """The config's data_dir, else $TFDS_DATA_DIR, else ~/.cache/aigc_jax/tfds."""
    if configured:
        return os.path.expanduser(configured)
    if os.environ.get("TFDS_DATA_DIR"):
        return os.environ["TFDS_DATA_DIR"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return os.path.join(cache, "aigc_jax", "tfds")
