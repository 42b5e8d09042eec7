"""Arrays computed from one split's records, kept on disk beside the prepared data, so a pass over
a multi-GB split is made once, not at every start.

`cached_arrays(source, cache_dir, name, compute)` returns the arrays that `compute()` gives for a
`tfds.data_source` split: read from `cache_dir` when they were stored there under the same
fingerprint (the split's files' names, sizes and modification times), else computed and stored
(written to a temporary file and renamed, so a reader sees all of it or nothing). A changed file
or a damaged cache computes again; a cache that cannot be written (a read-only data dir) costs
only the computation; a source that does not list its files is never cached.
"""

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Callable

import numpy as np

from aigc_jax.data.records import split_files


def _fingerprint(source, name: str) -> list[str] | None:
    """[dataset, split and `name`, then each file's name, size and mtime], or None without files."""
    files = split_files(source)
    try:
        stats = [(os.path.basename(f), os.stat(f)) for f in sorted(files)]
    except (TypeError, OSError):  # no file list, or a file gone
        return None
    return [f"{source.dataset_info.full_name}:{source.split}:{name}"] + [
        f"{base}:{st.st_size}:{st.st_mtime_ns}" for base, st in stats]


def _cache_path(cache_dir: str, key: list[str]) -> str:
    return os.path.join(cache_dir, key[0].replace("/", "_").replace(":", "-") + ".npz")


def cached_arrays(source, cache_dir: str | None, name: str,
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    key = _fingerprint(source, name) if cache_dir else None
    if key is None:
        return compute()
    path = _cache_path(cache_dir, key)
    try:
        with np.load(path) as saved:
            if saved["fingerprint"].tolist() == key:
                return {k: saved[k] for k in saved.files if k != "fingerprint"}
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):  # not there yet, or damaged
        pass
    arrays = compute()
    with contextlib.suppress(OSError):
        _write(path, key, arrays)
    return arrays


def _write(path: str, key: list[str], arrays: dict[str, np.ndarray]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, fingerprint=np.asarray(key), **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
