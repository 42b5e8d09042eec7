"""The autoencoder families learn on tiny runs: `autoencoder` (reconstruction error falls; its codes
probe better than the same network's at random init), `conv_vae` (ELBO rises) and `vae_gan`
(finite D/G losses, reconstruction error and judge FD fall)."""

import numpy as np
import pytest

from aigc_jax.data.images import load_image_splits
from aigc_jax.engine.run import Run
from aigc_jax.errors import UserError
from conftest import train_family
from aigc_jax.cli import build_task

RUN = {"log_every": 10, "ckpt_every": 0, "sample_every": 0}


def series(rows, key):
    return [r[key] for r in rows if key in r]


def random_init_probe(family: str, **overrides) -> float:
    """Probe accuracy of the family's codes at the run's own initial state (same seed, same layers)."""
    return Run(build_task(family, {k: str(v) for k, v in overrides.items()})).evaluate()["eval_probe_accuracy"]


def test_autoencoder_reconstructs_and_its_codes_probe_better_than_at_init(tmp_path):
    config = {"steps": 200, "batch_size": 64}
    _, rows = train_family("autoencoder", tmp_path, eval_every=100, **config, **RUN)
    mse, probe = series(rows, "eval_mse"), series(rows, "eval_probe_accuracy")
    assert mse[-1] < 0.6 * mse[0], mse
    random = random_init_probe("autoencoder", **config)
    assert probe[-1] > random + 0.02, (probe, random)


def test_conv_vae_elbo_improves(tmp_path):
    config = {"steps": 120, "batch_size": 32, "channels": "8,16", "latent": 8}
    _, rows = train_family("conv_vae", tmp_path, judge_metrics="false", eval_every=30, **config, **RUN)
    elbo, rec = series(rows, "eval_elbo"), series(rows, "eval_reconstruction")
    assert elbo[-1] > elbo[0] + 20 and rec[-1] < rec[0], (elbo, rec)
    random = random_init_probe("conv_vae", **config)
    assert rows[-1]["eval_probe_accuracy"] > random + 0.02, (rows[-1]["eval_probe_accuracy"], random)


def test_vae_gan_losses_finite_and_fd_falls(tmp_path):
    _, rows = train_family("vae_gan", tmp_path, steps=200, batch_size=32, channels="8,16", d_channels="8,16",
                           d_hidden=32, learning_rate=1e-3, eval_every=100, **RUN)
    for key in ("d_loss", "g_loss", "feature_nll", "kl"):
        assert np.isfinite(series(rows, key)).all(), key
    fd, mse = series(rows, "eval_fd"), series(rows, "eval_reconstruction_mse")
    assert fd[-1] < 0.8 * fd[0], fd
    # The untrained tanh decoder draws about mid-gray everywhere: the error to beat.
    test = load_image_splits("digits", "", 28).test["image"]
    assert mse[-1] < float(((test - 0.5) ** 2).mean()), mse


@pytest.mark.parametrize("family, overrides, message", [
    ("autoencoder", {"channels": "4,8,16"}, "stride-2 stages"),
    ("vae_gan", {"feature_layer": "2"}, "feature_layer"),
    ("vae_gan", {"feature_sigma": "0"}, "feature_sigma"),
])
def test_bad_config_is_one_line_user_error(family, overrides, message):
    with pytest.raises(UserError, match=message) as err:
        build_task(family, overrides)
    assert "\n" not in str(err.value)


def test_vae_cross_entropy_equals_optax_in_value_and_gradient():
    import jax
    import jax.numpy as jnp
    import optax

    from aigc_jax.tasks.vae import sigmoid_cross_entropy

    logits = jnp.array([-200.0, -30.0, -5.0, -1e-3, 0.0, 1e-3, 0.7, 5.0, 30.0, 200.0])
    for target in (0.0, 0.3, 1.0):  # pixel intensities in [0, 1] are the targets
        t = jnp.full_like(logits, target)
        ours = jax.vmap(jax.value_and_grad(lambda x: sigmoid_cross_entropy(x, target)))(logits)
        ref = jax.vmap(jax.value_and_grad(lambda x: optax.sigmoid_binary_cross_entropy(x, target)))(logits)
        np.testing.assert_allclose(ours[0], ref[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ours[1], ref[1], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ours[1], jax.nn.sigmoid(logits) - t, atol=1e-6)  # d/dx = s(x) - t
