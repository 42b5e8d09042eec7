"""ddpm: the schedule, the DDIM/DDPM step and the DPM-Solver++(2M) SDE step, guidance's
convention, determinism at eta = 0, the four parallel modes, the prompt on the command line, and a
tiny run whose loss and sample FD fall below the untrained model's (flow matching: its loss falls)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from aigc_jax.cli import build_task, main
from aigc_jax.engine.config import PARALLEL_MODES
from aigc_jax.engine.run import Run
from aigc_jax.errors import UserError
from aigc_jax.tasks.ddpm import NUM_CLASSES, cosine_alpha_bar, ddim_step, dpmpp_2m_sde_step, log_snr
from conftest import run_mode, train_family

TINY = {"channels": "8", "blocks": "1", "attention_at": "8", "batch_size": "8", "sample_steps": "4",
        "judge_metrics": "false"}


def test_cosine_schedule_runs_from_signal_to_noise():
    a = cosine_alpha_bar(1000)
    assert a[0] == 1.0 and np.all(np.diff(a) < 0) and a[-1] < 1e-4 and a[1] > 0.999


def test_ddim_step_at_eta_one_is_the_ddpm_posterior():
    rng = np.random.default_rng(0)
    x, eps, z = (rng.standard_normal(64).astype(np.float32) * 0.3 for _ in range(3))
    a = cosine_alpha_bar(100)
    t = 40
    a_t, a_s = a[t], a[t - 1]
    beta = 1.0 - a_t / a_s
    x0 = np.clip((x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t), -1, 1)
    mean = np.sqrt(a_s) * beta / (1 - a_t) * x0 + np.sqrt(1 - beta) * (1 - a_s) / (1 - a_t) * x
    std = np.sqrt((1 - a_s) / (1 - a_t) * beta)
    np.testing.assert_allclose(ddim_step(x, eps, a_t, a_s, 1.0, z), mean + std * z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ddim_step(x, eps, a_t, a_s, 0.0, z), ddim_step(x, eps, a_t, a_s, 0.0, 0.0 * z))


def test_dpm_solver_first_step_is_ddim_at_eta_one_and_then_takes_the_midpoint_prediction():
    rng = np.random.default_rng(1)
    x, z = (rng.standard_normal(64).astype(np.float32) * 0.3 for _ in range(2))
    a = cosine_alpha_bar(100)
    a_u, a_t, a_s = a[60], a[40], a[20]  # the last step u -> t, this one t -> s
    lam_u, lam_t, lam_s = (float(log_snr(v)) for v in (a_u, a_t, a_s))
    A, B = (rng.uniform(-0.3, 0.3, 64).astype(np.float32) for _ in range(2))
    clean = lambda lam: A + B * lam  # noqa: E731  a clean-image prediction linear in log-SNR
    eps = (x - np.sqrt(a_t) * clean(lam_t)) / np.sqrt(1 - a_t)  # the noise that implies clean(lam_t)
    first, _ = dpmpp_2m_sde_step(x, eps, a_t, a_s, (np.zeros(64), 0.0), z)
    np.testing.assert_allclose(first, ddim_step(x, eps, a_t, a_s, 1.0, z), rtol=1e-4, atol=1e-5)
    second, _ = dpmpp_2m_sde_step(x, eps, a_t, a_s, (clean(lam_u), lam_t - lam_u), z)
    midpoint = clean(lam_t + (lam_s - lam_t) / 2)  # the prediction half this step along
    eps_mid = (x - np.sqrt(a_t) * midpoint) / np.sqrt(1 - a_t)
    np.testing.assert_allclose(second, ddim_step(x, eps_mid, a_t, a_s, 1.0, z), rtol=1e-4, atol=1e-5)
    last, _ = dpmpp_2m_sde_step(x, eps, a_t, 1.0, (clean(lam_u), lam_t - lam_u), z)
    np.testing.assert_allclose(last, clean(lam_t), rtol=1e-4, atol=1e-5)  # at the data: the prediction


@pytest.fixture(scope="module")
def perturbed():
    """A tiny ddpm task and parameters moved off their (zero-output) initialisation, so the
    prediction depends on the image, the time and the class."""
    task = build_task("ddpm", TINY)
    state = jax.jit(task.init)(jax.random.key(0), {"image": jnp.zeros((1, 32, 32, 1))})
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = tree.unflatten([p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    return task, params


def test_guidance_zero_is_the_unconditional_model_and_one_the_conditional(perturbed):
    task, params = perturbed
    keys = jax.random.split(jax.random.key(2), 4)
    label, null = jnp.array([3, 3, 7, 7]), jnp.full((4,), NUM_CLASSES)
    gen = jax.jit(task.generate, static_argnames=("guidance",))
    unconditional = gen(params, null, keys, guidance=1.0)  # one pass, no class
    np.testing.assert_allclose(gen(params, label, keys, guidance=0.0), unconditional, atol=1e-4)  # batch-size rounding
    conditional = gen(params, label, keys, guidance=1.0)
    assert np.abs(conditional - unconditional).max() > 1e-3  # the class changes the samples
    assert np.abs(gen(params, label, keys, guidance=3.0) - conditional).max() > 1e-3


def test_ddim_at_eta_zero_depends_only_on_the_starting_noise(perturbed):
    _, params = perturbed
    start = jax.random.normal(jax.random.key(3), (4, 32, 32, 1))
    label = jnp.arange(4)
    a, b = jax.random.split(jax.random.key(4), 4), jax.random.split(jax.random.key(5), 4)
    still = build_task("ddpm", {**TINY, "sampler": "ddim", "eta": "0.0"})
    deterministic = jax.jit(lambda k: still.generate(params, label, k, start=start))
    np.testing.assert_array_equal(deterministic(a), deterministic(b))
    for noisy in (build_task("ddpm", {**TINY, "sampler": "ddim", "eta": "1.0"}), build_task("ddpm", TINY)):
        stochastic = jax.jit(lambda k, task=noisy: task.generate(params, label, k, start=start))
        # eta = 1 and the default solver draw fresh noise from the keys at every step
        assert np.abs(stochastic(a) - stochastic(b)).max() > 1e-3, noisy.config.sampler


def test_ddpm_sampler_walks_every_timestep(perturbed):
    _, params = perturbed
    ddpm = build_task("ddpm", {**TINY, "sampler": "ddpm", "timesteps": "20"})
    images, path = jax.jit(lambda k: ddpm.generate(params, jnp.arange(2), k, trajectory=True))(jax.random.split(jax.random.key(6), 2))
    assert len(ddpm.schedule()[0]) == 21 and images.shape == (2, 32, 32, 1) and path.shape == (2, 10, 32, 32, 1)
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(path[:, -1], images)


@pytest.mark.parametrize(("overrides", "words"), [({"prompt": "12"}, "prompt='12'"),
                                                  ({"objective": "flow", "sampler": "ddpm"}, "sampler='ddpm'"),
                                                  ({"channels": "8,8,8,8,8,8,8"}, "config.channels")])
def test_bad_config_is_a_user_error(overrides, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(")):
        build_task("ddpm", {**TINY, **overrides})


# Small enough to train in CI, large enough for samples to move towards the digits.
LEARN = {"channels": "16,32", "blocks": "1", "attention_at": "8", "batch_size": "32", "sample_steps": "10",
         "steps": "300", "learning_rate": "2e-3", "warmup_steps": "20", "ema_decay": "0.9", "judge_metrics": "false",
         "guidance": "1.0"}


def test_tiny_run_beats_the_untrained_model():
    run = Run(build_task("ddpm", LEARN))
    before = run.evaluate()
    losses = [float(run.advance()["loss"]) for _ in range(300)]
    after = run.evaluate()
    assert np.mean(losses[-30:]) < 0.6 * np.mean(losses[:10]), (losses[:10], losses[-30:])
    assert after["eval_loss"] < 0.6 * before["eval_loss"], (before, after)
    # Pooled-pixel FD of 360 samples (10 DDIM steps) to the test digits: the untrained net predicts
    # zero noise, so its samples are the clipped starting noise.
    assert after["eval_pixel_fd"] < 0.75 * before["eval_pixel_fd"], (before, after)


def test_flow_matching_loss_falls():
    run = Run(build_task("ddpm", {**LEARN, "objective": "flow", "channels": "8,16"}))
    losses = [float(run.advance()["loss"]) for _ in range(100)]
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:5]), (losses[:5], losses[-20:])


def test_the_four_parallel_modes_agree():
    data = build_task("ddpm", TINY).load_data()
    reference = run_mode("ddpm", TINY, "jit", data, 2, 8, "loss")[0]
    for mode in PARALLEL_MODES[1:]:
        np.testing.assert_allclose(run_mode("ddpm", TINY, mode, data, 2, 8, "loss")[0], reference, rtol=1e-5, err_msg=mode)


def test_sample_command_draws_the_prompted_class(tmp_path, capsys):
    train_family("ddpm", tmp_path, steps=2, ckpt_every=2, eval_every=0, sample_every=0, parallel="jit",
                 **TINY)
    assert main(["sample", "ddpm", "--workdir", str(tmp_path), "--prompt", "7", "--config.guidance=3.0"]) == 0
    drawn = sorted(n for n in os.listdir(tmp_path / "samples") if "seed0" in n)
    assert drawn == ["denoising_000002_seed0.png", "samples_000002_seed0.png"]
    # 64 sevens in an 8 x 8 grid (32 px + 2 px borders, shown 3x); without a prompt, 10 rows of 10
    assert Image.open(tmp_path / "samples" / drawn[1]).size == (3 * (8 * 34 + 2),) * 2
    assert Image.open(tmp_path / "samples" / "samples_000002.png").size == (3 * (10 * 34 + 2),) * 2
    assert main(["sample", "ddpm", "--workdir", str(tmp_path), "--prompt", "12"]) == 2
    err = capsys.readouterr().err
    assert "prompt='12'" in err and err.strip().count("\n") == 0
