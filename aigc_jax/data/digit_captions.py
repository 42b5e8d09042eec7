"""Synthetic captions for the digits images: templates filled with the digit's number word or numeral.

"a handwritten seven", "the digit 7 written by hand", "number seven": every caption is generated
from the image's label by a template, so the captions are synthetic and say nothing about the
image beyond its class. Tokens are words of a small closed vocabulary (`data/tokenizer.py`), the
number words are `data/number_words.py`'s.

`TRAIN_TEMPLATES` caption the training pairs; `HELD_OUT_TEMPLATES` never appear in training and
are the prompts of the zero-shot evaluation. Which template captions which image is drawn from
`numpy.random.default_rng([seed, split])`, so the pairs are a pure function of (seed, labels).
"""

import numpy as np

from aigc_jax.data.number_words import ONES
from aigc_jax.data.splits import Splits
from aigc_jax.data.tokenizer import Vocabulary, words

NUMBER_WORDS = ONES[:10]  # "zero" .. "nine"
TRAIN_TEMPLATES = (
    "a handwritten {word}",
    "the digit {numeral} written by hand",
    "number {word}",
    "a drawing of the digit {word}",
    "the number {numeral}",
    "a {word} written by hand",
    "an image of a {numeral}",
)
HELD_OUT_TEMPLATES = ("a photo of the number {word}",)
TEMPLATES = TRAIN_TEMPLATES + HELD_OUT_TEMPLATES
MAX_LEN = 8  # tokens, EOS included; the longest caption has 7


def caption(digit: int, template: str) -> str:
    return template.format(word=NUMBER_WORDS[digit], numeral=str(digit))


def _vocabulary() -> Vocabulary:
    """Every word of every template and every digit, in first-seen order (deterministic)."""
    symbols = dict.fromkeys(w for t in TEMPLATES for d in range(10) for w in words(caption(d, t)))
    return Vocabulary(tuple(symbols))


VOCAB = _vocabulary()


def encode(texts) -> np.ndarray:
    """Captions -> [N, MAX_LEN] int32 word ids, EOS then PAD (no BOS)."""
    return VOCAB.pad([VOCAB.encode(words(t)) for t in texts], MAX_LEN, bos=False)


def template_table(templates=TRAIN_TEMPLATES) -> np.ndarray:
    """[T, 10, MAX_LEN] tokens: row (t, d) is template t filled with digit d."""
    return np.stack([encode([caption(d, t) for d in range(10)]) for t in templates])


def paired_templates(labels: np.ndarray, seed: int, split: int) -> np.ndarray:
    """The index into TRAIN_TEMPLATES that captions each image: [N] int32."""
    return np.random.default_rng([seed, split]).integers(len(TRAIN_TEMPLATES), size=len(labels)).astype(np.int32)


def paired_captions(labels: np.ndarray, seed: int, split: int = 0) -> list[str]:
    """Each image's caption as text (what `with_captions` tokenizes)."""
    return [caption(int(d), TRAIN_TEMPLATES[t]) for d, t in zip(labels, paired_templates(labels, seed, split))]


def with_captions(splits: Splits, seed: int) -> Splits:
    """The image splits plus "caption" [N, MAX_LEN] tokens and "template" [N] per image."""
    out = []
    for index, split in enumerate((splits.train, splits.test)):
        templates = paired_templates(split["label"], seed, index)
        tokens = template_table()[templates, split["label"]]
        out.append({**split, "caption": tokens, "template": templates})
    return Splits(train=out[0], test=out[1])
