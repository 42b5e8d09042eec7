"""The synthetic number_words task: spelling, disjoint deterministic splits, tokenizer, padding."""

import numpy as np
import pytest

from aigc_jax.data import number_words, translation
from aigc_jax.data.tokenizer import BOS, EOS, PAD, Vocabulary, join_words, words
from aigc_jax.errors import UserError


@pytest.mark.parametrize("n, text", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (99, "ninety-nine"), (100, "one hundred"),
    (427, "four hundred twenty-seven"), (1000, "one thousand"), (90210, "ninety thousand two hundred ten"),
    (700017, "seven hundred thousand seventeen"),
    (999999, "nine hundred ninety-nine thousand nine hundred ninety-nine"),
])
def test_spell(n, text):
    assert number_words.spell(n) == text


def test_splits_are_disjoint_deterministic_and_cover_every_length():
    first, again = number_words.split_numbers(), number_words.split_numbers()
    for split in ("train", "test"):
        np.testing.assert_array_equal(first[split], again[split])
        assert len(np.unique(first[split])) == len(first[split])
    assert not set(first["train"].tolist()) & set(first["test"].tolist())
    lengths = np.char.str_len(first["test"].astype(str))
    assert np.bincount(lengths).tolist()[3:] == [number_words.TEST_PER_LENGTH] * len(number_words.LENGTHS)
    assert set(range(number_words.ATOMS)) <= set(first["train"].tolist())


def test_prepared_dataset_matches_the_generator_and_pads_with_bos_eos():
    splits = translation.load_translation_splits("number_words", "", 8, 16)
    expected = number_words.split_numbers()
    seen = {}
    for name, arrays in (("train", splits.train), ("test", splits.test)):
        sources = [translation.source_text(row) for row in arrays["source"]]
        assert sorted(map(int, sources)) == sorted(expected[name].tolist())
        seen[name] = set(sources)
        target = arrays["target"]
        assert target.shape[1] == 17 and (target[:, 0] == BOS).all()
        for src, tgt in zip(sources[:200], target[:200]):
            assert join_words(translation.VOCABULARY.decode(tgt)) == number_words.spell(int(src))
            length = (tgt != PAD).sum()
            assert tgt[length - 1] == EOS and (tgt[length:] == PAD).all()
    assert not seen["train"] & seen["test"]


def test_lengths_and_vocabulary_errors_name_the_config_key():
    with pytest.raises(UserError, match="max_target_len=10"):
        translation.load_translation_splits("number_words", "", 8, 10)
    with pytest.raises(UserError, match="max_source_len=6"):
        translation.load_translation_splits("number_words", "", 6, 16)
    with pytest.raises(UserError, match="'wmt14'"):
        translation.load_translation_splits("wmt14", "", 8, 16)
    with pytest.raises(UserError, match="'eleventy'"):
        translation.VOCABULARY.encode(words("eleventy-one"))


def test_tokenizer_round_trip():
    vocab = Vocabulary(["a", "b", "-"])
    ids = vocab.encode(words("a-b a"))
    padded = vocab.pad([ids], 8, bos=True)
    assert padded[0].tolist() == [BOS, *ids, EOS, PAD, PAD]
    assert join_words(vocab.decode(padded[0])) == "a-b a"
