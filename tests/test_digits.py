"""The embedded digits dataset: documented split sizes, dtypes, value ranges, determinism."""

import numpy as np
import pytest

from aigc_jax.data import digits, sampler
from aigc_jax.data.images import load_image_splits, validation_split


@pytest.fixture(scope="module")
def splits28():
    return load_image_splits("digits", image_size=28)


def test_split_sizes_and_disjointness():
    idx = digits.split_indices()
    assert len(idx["train"]) == digits.NUM_TRAIN == 1437
    assert len(idx["test"]) == digits.NUM_TEST == 360
    assert not set(idx["train"]) & set(idx["test"])
    assert sorted(np.concatenate([idx["train"], idx["test"]])) == list(range(1797))


def test_validation_split_is_held_out_train_images(splits28):
    held = validation_split(splits28)
    assert held.num_test == splits28.num_test and held.num_train == splits28.num_train - splits28.num_test

    def rows(*splits):  # every (image, label) as bytes, as a sorted multiset
        return sorted(s["image"][i].tobytes() + s["label"][i].tobytes() for s in splits for i in range(len(s["label"])))

    # Train and validation together are exactly the old train split: no test image comes in, none is lost.
    assert rows(held.train, held.test) == rows(splits28.train)
    assert set(rows(held.test)).isdisjoint(rows(held.train))  # the digits' train images are all distinct
    # One fixed draw: every run holds out the same images.
    assert rows(validation_split(splits28).test) == rows(held.test)


def test_arrays_match_documented_format(splits28):
    assert splits28.num_train == 1437 and splits28.num_test == 360
    for split in (splits28.train, splits28.test):
        assert split["image"].shape[1:] == (28, 28, 1) and split["image"].dtype == np.float32
        assert split["image"].min() >= 0.0 and split["image"].max() <= 1.0
        assert split["label"].dtype == np.int32
        assert set(np.unique(split["label"])) == set(range(10))
    splits32 = load_image_splits("digits", image_size=32)
    assert splits32.train["image"].shape == (1437, 32, 32, 1)


def test_images_are_the_real_uci_digits(splits28):
    """The stored test split is exactly sklearn's digits at the documented indices, upsampled."""
    from sklearn.datasets import load_digits

    ref = load_digits()
    expected = {(digits._upsample(ref.images[i], 28).tobytes(), int(ref.target[i]))
                for i in digits.split_indices()["test"]}
    stored = {((im * 255).round().astype(np.uint8).tobytes(), int(label))
              for im, label in zip(splits28.test["image"], splits28.test["label"])}
    assert stored == expected


def test_batches_are_a_pure_function_of_seed_and_step():
    a = sampler.batch_indices(100, 32, step=7, seed=3)
    b = sampler.batch_indices(100, 32, step=7, seed=3)
    assert (a == b).all()
    assert not (a == sampler.batch_indices(100, 32, step=7, seed=4)).all()
    # Four consecutive batches of 25 cover one epoch exactly once.
    epoch = np.concatenate([sampler.batch_indices(100, 25, s, seed=0) for s in range(4)])
    assert sorted(epoch) == list(range(100))
    # A batch crossing the epoch boundary takes the end of one permutation and the start of the next.
    crossing = sampler.batch_indices(100, 30, step=3, seed=0)
    assert len(crossing) == 30 and len(set(crossing[:10])) == 10
