"""Every foundation family measurably learns on the embedded digits in a short run."""

import numpy as np

from conftest import train_family


def series(rows, key):
    return [r[key] for r in rows if key in r]


def test_mlp_accuracy_rises(tmp_path):
    _, rows = train_family("mlp", tmp_path, steps=120, batch_size=32, log_every=10, eval_every=10,
                           ckpt_every=0, sample_every=0)
    acc = series(rows, "eval_accuracy")
    assert acc[-1] > 0.85 and acc[-1] > acc[0] + 0.1


def test_cnn_accuracy_rises(tmp_path):
    _, rows = train_family("cnn", tmp_path, steps=120, batch_size=32, log_every=10, eval_every=10,
                           ckpt_every=0, sample_every=0)
    acc, loss = series(rows, "eval_accuracy"), series(rows, "loss")
    assert acc[-1] > 0.85 and acc[-1] > acc[0] + 0.1
    assert np.mean(loss[-3:]) < 0.5 * np.mean(loss[:3])


def test_mlp_gan_moves_towards_the_data(tmp_path):
    _, rows = train_family("mlp_gan", tmp_path, steps=300, batch_size=64, log_every=20, eval_every=20,
                           ckpt_every=0, sample_every=0)
    fd = series(rows, "eval_pixel_fd")
    d_loss, g_loss = series(rows, "d_loss"), series(rows, "g_loss")
    assert np.isfinite(d_loss).all() and np.isfinite(g_loss).all()
    assert min(fd[-3:]) < 0.5 * fd[0]


def test_vae_elbo_improves(tmp_path):
    _, rows = train_family("vae", tmp_path, steps=150, batch_size=64, log_every=10, eval_every=10,
                           ckpt_every=0, sample_every=0)
    elbo, loss = series(rows, "eval_elbo"), series(rows, "loss")
    assert elbo[-1] > elbo[0] + 50  # nats per image
    assert loss[-1] < loss[0]
