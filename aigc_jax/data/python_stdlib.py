"""`python_stdlib`: the Python standard library's own source code, as a TFDS text dataset.

Every CPython ships its standard library as `.py` files (`sysconfig.get_paths()["stdlib"]`): about
10 MB of real, reviewed code with English docstrings and comments, so nothing is downloaded. The
dataset is those files without the test suites (directories named `test`, `tests`, `idle_test`),
without `pydoc_data` (the help topics: the `pydoc_text` dataset) and without `encodings` (mostly
generated codec tables), one record per top-level module or package (a package's files joined in
path order). Its exact bytes follow the interpreter; the builder records the version.

The split is by module, free of near-duplicates like `pydoc_text`'s: modules are joined into groups
when more than 1% of one's 64-byte windows occur in the other (`data/near_duplicates.py`: several
modules vendor or reproduce others), then whole groups go to `test` and `validation` (at least 5%
of the bytes each) in an order fixed by `numpy.random.default_rng(0)`, and any group over 15% of
the bytes stays in `train`. tests/test_text_splits.py checks that under 1% of the held-out
windows occur anywhere in train.
"""

import os
import sys
import sysconfig

import tensorflow_datasets as tfds

from aigc_jax.data import near_duplicates

SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.05  # of the bytes, for each of test and validation
MAX_HELD_OUT_GROUP = 0.15
MIN_SHARED = 0.01  # share of a module's windows found in another that joins the two
SKIPPED_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
SKIPPED_MODULES = {"pydoc_data", "encodings"}


def modules(root: str | None = None) -> dict[str, bytes]:
    """Top-level module or package name -> its source bytes (a package's files joined in path order)."""
    root = root or sysconfig.get_paths()["stdlib"]
    files: dict[str, list[bytes]] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, root).split(os.sep)[0].removesuffix(".py")
            if module not in SKIPPED_MODULES:
                with open(path, "rb") as f:
                    files.setdefault(module, []).append(f.read())
    return {module: b"\n\n".join(parts) for module, parts in files.items()}


def split_modules(sources: dict[str, bytes]) -> dict[str, list[str]]:
    """Module names of each split (see the module docstring); disjoint by construction."""
    groups = near_duplicates.groups(sources, MIN_SHARED)
    return near_duplicates.assign_splits(groups, {n: len(t) for n, t in sources.items()}, HELD_OUT_FRACTION,
                                         MAX_HELD_OUT_GROUP, SPLIT_SEED)


class PythonStdlib(tfds.core.GeneratorBasedBuilder):
    """The standard library's source, one record per top-level module or package."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: split by module groups without near-duplicates, 5% + 5% held out."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{__doc__}\nBuilt from CPython {sys.version.split()[0]}.",
            features=tfds.features.FeaturesDict({"module": tfds.features.Text(), "text": tfds.features.Text()}),
            homepage="https://docs.python.org/3/library/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the source ships with the interpreter; nothing is downloaded
        sources = modules()
        return {split: self._generate_examples(sources, names) for split, names in split_modules(sources).items()}

    def _generate_examples(self, sources, names):
        for name in names:
            # Text features hold str: undecodable bytes (none in CPython's sources) become U+FFFD.
            yield name, {"module": name, "text": sources[name].decode("utf-8", errors="replace")}
