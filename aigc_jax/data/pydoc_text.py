"""`pydoc_text`: real English technical prose that ships with every CPython, as a TFDS dataset.

The text is `pydoc_data.topics.topics`: the help topics of the Python documentation (the pages
`help("if")`, `help("specialnames")`, ... print), 79 topics and about 466 KB of UTF-8 in CPython
3.11, part of the standard library, so nothing is downloaded. It is real, human-written text
(the Language Reference and Library Reference sections those topics reproduce), mixing prose
with grammar rules and code examples. Its exact bytes follow the interpreter's version; the
builder records that version in the dataset description.

The split is by topic, fixed, and free of near-duplicates. Many help topics reproduce parts of
others (`attribute-access` is a section of `specialnames`, `class` of `compound`), so topics are
first joined into groups: two topics belong together when a 64-byte window of one (windows start
every 64 bytes) occurs anywhere in the other. Groups are then taken in an order fixed by
`numpy.random.default_rng(0)`: into `test` until it holds at least 10% of the bytes, then into
`validation` until it does too; the rest, and any group too large to hold out (over 15% of the
bytes, the 18 topics around `compound` and `specialnames`), are `train`. So no 64-byte window of
a held-out split occurs in `train` (tests/test_text_splits.py checks < 1%), and the test split is
whole pages the models never read, nor copies of them. Defaults are tuned on `validation`; `test`
is only reported. Language models read the concatenated bytes of each split (vocabulary 256).
"""

import sys

import tensorflow_datasets as tfds

from aigc_jax.data import near_duplicates

SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.10  # of the bytes, for each of test and validation
MAX_HELD_OUT_GROUP = 0.15  # a group with more of the bytes stays in train


def topics() -> dict[str, str]:
    from pydoc_data.topics import topics as pages

    return dict(pages)


def split_topics(pages: dict[str, str]) -> dict[str, list[str]]:
    """Topic names of each split (see the module docstring); disjoint by construction."""
    encoded = {name: text.encode() for name, text in pages.items()}
    groups = near_duplicates.groups(encoded)  # any shared 64-byte window joins two topics
    return near_duplicates.assign_splits(groups, {n: len(t) for n, t in encoded.items()}, HELD_OUT_FRACTION,
                                         MAX_HELD_OUT_GROUP, SPLIT_SEED)


class PydocText(tfds.core.GeneratorBasedBuilder):
    """The Python documentation's help topics (pydoc_data), one record per topic."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: topic-level split, >= 10% of the bytes held out.",
        "2.0.0": "Near-duplicate topics kept in one split; a validation split (>= 10% of the bytes).",
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{__doc__}\nBuilt from CPython {sys.version.split()[0]}.",
            features=tfds.features.FeaturesDict({"topic": tfds.features.Text(), "text": tfds.features.Text()}),
            homepage="https://docs.python.org/3/reference/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the text ships with the interpreter; nothing is downloaded
        pages = topics()
        return {split: self._generate_examples(pages, names) for split, names in split_topics(pages).items()}

    def _generate_examples(self, pages, names):
        for name in names:
            yield name, {"topic": name, "text": pages[name]}
