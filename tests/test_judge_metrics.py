"""Generator metrics in the feature space of the project's own digits classifier (aigc_jax/tasks/judge.py).

The judge is trained once per test session into the session's TFDS data dir (about 30 s on a CPU)
and restored from its checkpoint afterwards.
"""

import math

import jax
import numpy as np
import pytest

from aigc_jax.data.images import load_image_splits
from aigc_jax.tasks import judge
from conftest import train_family


@pytest.fixture(scope="module")
def params():
    return judge.judge_params()


@pytest.fixture(scope="module")
def test_images():
    return load_image_splits("digits", "", 28).test["image"]


def series(rows, key):
    return [r[key] for r in rows if key in r]


def test_the_judge_is_accurate_and_cached(params):
    info = judge.judge_info()
    assert info["test_accuracy"] >= judge.MIN_ACCURACY
    judge._memo.clear()  # restore from the checkpoint on disk: the same params
    restored = judge.judge_params()
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fd_is_zero_on_itself_and_grows_with_noise(params, test_images):
    feats, _ = judge.features_and_probs(params, test_images)
    scale = float(np.trace(np.cov(feats.T)))
    assert judge.fd_of_features(feats, feats) < 1e-3 * scale
    rng = np.random.default_rng(0)
    noise = rng.normal(size=test_images.shape)
    fds = [judge.fd_of_images(params, np.clip(test_images + s * noise, 0.0, 1.0), test_images)
           for s in (0.05, 0.1, 0.2, 0.4, 0.8)]
    assert all(a < b for a, b in zip(fds, fds[1:])), fds


def test_real_vs_real_floor_is_small_next_to_noise(params, test_images):
    floor = judge.real_vs_real_fd()
    noise = np.random.default_rng(0).uniform(size=test_images.shape)
    assert 0.0 < floor < 0.1 * judge.fd_of_images(params, noise, test_images)


def test_diversity_of_real_digits_and_of_copies(params, test_images):
    assert judge.diversity_of_images(params, test_images) > 0.95 * math.log(10)
    assert judge.diversity_of_images(params, np.repeat(test_images[:1], 360, axis=0)) < 0.1


def test_prompt_hits_count_fakes_the_judge_reads_as_their_prompt(params):
    from aigc_jax.tasks.images import judge_sums

    test = load_image_splits("digits", "", 32).test  # a 32x32 generator's size: resized to the judge's
    images, labels = test["image"], test["label"]
    mask = np.ones(len(labels), np.float32)
    mask[:60] = 0.0  # padding rows never count

    def accuracy(prompts):
        return float(judge_sums(params, images, images, mask, prompts)["prompt_hits"]) / mask.sum()

    # Real digits asked for as their own class: the judge's accuracy; asked for as the next class:
    # a chance-level generator's (the judge is right on real digits, so it reads them as another class).
    assert accuracy(labels) >= judge.MIN_ACCURACY
    assert accuracy((labels + 1) % 10) < 0.05


def test_vae_reports_judge_metrics_that_improve(tmp_path, params):
    _, rows = train_family("vae", tmp_path, steps=150, batch_size=64, log_every=50, eval_every=50,
                           ckpt_every=0, sample_every=0)
    fd, diversity = series(rows, "eval_fd"), series(rows, "eval_diversity")
    assert len(fd) == len(diversity) == 3 and series(rows, "eval_elbo")
    assert fd[-1] < 0.8 * fd[0], fd
    # Against the trivial generator: one mid-grey image, whatever the latent.
    grey = judge.diversity_of_images(params, np.full((360, 28, 28, 1), 0.5, np.float32))
    assert diversity[-1] > grey + 0.5 and diversity[-1] <= math.log(10) + 1e-9, (diversity, grey)


def test_mlp_gan_reports_judge_metrics_beside_pixel_fd(tmp_path):
    _, rows = train_family("mlp_gan", tmp_path, steps=2, batch_size=16, g_hidden="32,64", d_hidden="64,32",
                           log_every=1, eval_every=2, ckpt_every=0, sample_every=0)
    last = rows[-1]
    assert {"eval_pixel_fd", "eval_fd", "eval_diversity"} <= set(last)
    assert np.isfinite([last["eval_pixel_fd"], last["eval_fd"], last["eval_diversity"]]).all()


def test_judge_metrics_can_be_turned_off(tmp_path):
    _, rows = train_family("vae", tmp_path, steps=2, batch_size=16, hidden=32, judge_metrics="false",
                           log_every=1, eval_every=2, ckpt_every=0, sample_every=0)
    assert "eval_elbo" in rows[-1] and "eval_fd" not in rows[-1]
