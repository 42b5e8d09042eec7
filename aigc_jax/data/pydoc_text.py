"""`pydoc_text`: real English technical prose that ships with every CPython, as a TFDS dataset.

The text is `pydoc_data.topics.topics`: the help topics of the Python documentation (the pages
`help("if")`, `help("specialnames")`, ... print), 79 topics and about 466 KB of UTF-8 in CPython
3.11, part of the standard library, so nothing is downloaded. It is real, human-written text
(the Language Reference and Library Reference sections those topics reproduce), mixing prose
with grammar rules and code examples. Its exact bytes follow the interpreter's version; the
builder records that version in the dataset description.

The split is by topic, fixed: the topic names in sorted order are permuted with
`numpy.random.default_rng(0)`, and topics are moved to `test` in that order until it holds at
least 10% of the bytes; the rest are `train`. So the test split is whole pages the models never
read. Language models read the concatenated bytes of each split (vocabulary 256).
"""

import sys

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
TEST_FRACTION = 0.10


def topics() -> dict[str, str]:
    from pydoc_data.topics import topics as pages

    return dict(pages)


def split_topics(pages: dict[str, str]) -> dict[str, list[str]]:
    """Topic names of each split (see the module docstring); disjoint by construction."""
    names = sorted(pages)
    order = [names[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(names))]
    total = sum(len(pages[n].encode()) for n in names)
    test, held = [], 0
    for name in order:
        if held >= TEST_FRACTION * total:
            break
        test.append(name)
        held += len(pages[name].encode())
    return {"train": sorted(set(names) - set(test)), "test": sorted(test)}


class PydocText(tfds.core.GeneratorBasedBuilder):
    """The Python documentation's help topics (pydoc_data), one record per topic."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: topic-level split, >= 10% of the bytes held out."}

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
