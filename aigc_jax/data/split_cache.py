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


def fingerprint(source, name: str) -> list[str] | None:
    """[dataset, split and `name`, then each file's name, size and mtime], or None without files."""
    try:
        info = source.dataset_info
        paths = sorted(info.splits[source.split].filepaths)
        return [f"{info.full_name}:{source.split}:{name}"] + [
            f"{os.path.basename(p)}:{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}" for p in paths]
    except Exception:  # another kind of source, or a split slice
        return None


def cache_path(cache_dir: str, key: list[str]) -> str:
    return os.path.join(cache_dir, key[0].replace("/", "_").replace(":", "-") + ".npz")


def cached_arrays(source, cache_dir: str | None, name: str,
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    key = fingerprint(source, name) if cache_dir else None
    if key is None:
        return compute()
    path = cache_path(cache_dir, key)
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
