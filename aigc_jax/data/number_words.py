"""`number_words`: a synthetic translation task, digits -> American English words, as a TFDS dataset.

"427" -> "four hundred twenty-seven", "90210" -> "ninety thousand two hundred ten", for the
integers 0 <= n < 1,000,000. It is generated, not collected: every example is produced by
`spell` below, so the task is exactly learnable and the builder needs no network and no
TensorFlow (it writes array_record files that `tfds.data_source` reads).

The split is fixed and disjoint by construction. The 100 numbers below 100 are the words
themselves ("zero" .. "ninety-nine") and are all in `train`. For each length of 3 to 6 digits the
numbers of that length are permuted with `numpy.random.default_rng([SPLIT_SEED, length])`; the
first `TEST_PER_LENGTH` go to `test`, the next (up to `TRAIN_PER_LENGTH`) to `train`. So the test
split measures translation of numbers never seen in training, with every length equally weighted:
1,600 test and 33,200 train examples.
"""

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
ATOMS = 100  # 0..99 spell as single words (or tens-ones pairs) and all go to train
LENGTHS = (3, 4, 5, 6)  # digit counts the splits draw from
TEST_PER_LENGTH = 400
TRAIN_PER_LENGTH = 12_000

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ("hundred", "thousand")
HYPHEN = "-"
# Every token a target can contain, in a fixed order (the tokenizer's target vocabulary).
TARGET_WORDS = (*ONES, *TENS, *SCALES, HYPHEN)
SOURCE_SYMBOLS = tuple("0123456789")


def _below_thousand(n: int) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(TENS[tens - 2] + (f"-{ONES[ones]}" if ones else ""))
    elif rest or not words:
        words.append(ONES[rest])
    return words


def spell(n: int) -> str:
    """American English words for 0 <= n < 1,000,000 (no "and"; tens-ones hyphenated)."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"n={n}: expected 0 <= n < 1000000")
    thousands, rest = divmod(n, 1000)
    words = _below_thousand(thousands) + ["thousand"] if thousands else []
    if rest or not words:
        words += _below_thousand(rest)
    return " ".join(words)


def split_numbers() -> dict[str, np.ndarray]:
    """The integers of each split (see the module docstring); disjoint by construction."""
    train, test = [np.arange(ATOMS)], []
    for length in LENGTHS:
        low = 10 ** (length - 1)
        pool = low + np.random.default_rng([SPLIT_SEED, length]).permutation(9 * low)
        test.append(pool[:TEST_PER_LENGTH])
        train.append(pool[TEST_PER_LENGTH:TEST_PER_LENGTH + TRAIN_PER_LENGTH])
    return {"train": np.concatenate(train), "test": np.concatenate(test)}


class NumberWords(tfds.core.GeneratorBasedBuilder):
    """Synthetic translation: decimal numbers below one million -> English words."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 33,200 train / 1,600 test numbers, disjoint."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "number": tfds.features.Scalar(dtype=np.int64),
                "source": tfds.features.Text(),
                "target": tfds.features.Text(),
            }),
            supervised_keys=("source", "target"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # generated data: nothing is downloaded
        return {name: self._generate_examples(numbers) for name, numbers in split_numbers().items()}

    def _generate_examples(self, numbers):
        for n in numbers:
            yield int(n), {"number": int(n), "source": str(n), "target": spell(int(n))}
