"""The lite StyleGAN: it learns, the truncation trick, style mixing, the EMA generator and R1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.images import load_image_splits
from aigc_jax.engine.state import engine_options, evaluation_view
from aigc_jax.tasks.stylegan import StyleGANTask, mix_styles, mixing_crossover
from aigc_jax.cli import build_task

# One worker runs this whole file, so its module-scoped trained models are built once.
pytestmark = pytest.mark.xdist_group("stylegan")

# Small enough to compile and train in seconds, large enough to learn in 100 steps.
SMALL = {"latent": "16", "w_dim": "16", "mapping_layers": "2", "g_channels": "32,32,16,8", "d_channels": "8,16,32,32",
         "batch_size": "16", "r1_interval": "2", "ema_decay": "0.9", "judge_metrics": "false"}
STEPS = 80


@pytest.fixture(scope="module")
def task():
    return build_task("stylegan", SMALL)


@pytest.fixture(scope="module")
def digits():
    return load_image_splits("digits", "", 32)


@pytest.fixture(scope="module")
def run(task, digits):
    """(initial state, state after STEPS steps, per-step metrics) of one jitted training run."""
    images = digits.train["image"]
    step = jax.jit(task.train_step)
    init = engine_options(task.init(jax.random.key(0), {"image": jnp.asarray(images[:16])}), task.config, task.name)
    state, metrics = init, []
    for i in range(STEPS):
        idx = np.random.default_rng(i).choice(len(images), 16, replace=False)
        batch = {"image": jnp.asarray(images[idx]), "key": jax.random.split(jax.random.key(100 + i), 16)}
        state, m = step(state, batch, jax.random.key(i))
        metrics.append(m)
    return init, state, jax.device_get(metrics)


def judge_fd(task, state, real):
    from aigc_jax.tasks import judge
    from aigc_jax.tasks.images import to_judge_input

    keys = jax.random.split(jax.random.key(7), 2 * len(real))
    z = jax.vmap(lambda k: jax.random.normal(k, (task.config.latent,)))(keys[::2])
    fake = jax.jit(task.generate)(evaluation_view(state), z, keys[1::2])  # the EMA generator, as evaluated
    params = judge.judge_params()
    return judge.fd_of_images(params, np.asarray(to_judge_input(params, fake)), np.asarray(to_judge_input(params, real)))


def test_learns_on_a_tiny_run(task, digits, run):
    init, state, metrics = run
    assert np.isfinite([[m["d_loss"], m["g_loss"]] for m in metrics]).all()
    real = jnp.asarray(digits.test["image"])
    before, after = judge_fd(task, init, real), judge_fd(task, state, real)
    assert after < 0.5 * before, (before, after)


def test_lazy_r1_and_the_ema_generator_and_w_avg(task, run):
    init, state, metrics = run
    r1 = [float(m["r1"]) for m in metrics]
    assert all(v > 0 for v in r1[1::2]) and all(v == 0 for v in r1[::2])  # R1 on steps 2, 4, ... only
    leaves = zip(jax.tree.leaves(state.g.ema_params), jax.tree.leaves(state.g.params), jax.tree.leaves(init.g.params))
    moved = [(float(np.abs(e - g).max()), float(np.abs(g - g0).max())) for e, g, g0 in leaves]
    assert all(ema_gap > 0 for ema_gap, trained in moved if trained > 0), moved  # EMA params differ from raw G
    assert not np.allclose(state.w_avg, init.w_avg)


@pytest.fixture(scope="module")
def state(run):
    return run[1]


def test_truncation_psi_zero_gives_the_mean_image(task, state):
    z = jax.random.normal(jax.random.key(3), (6, task.config.latent))
    noise = jnp.broadcast_to(jax.random.key(4), (6,))  # one noise draw for all: only w differs
    mean = task.mean_image(state, jax.random.key(4))
    at_zero = task.generate(state, z, noise, psi=0.0)
    np.testing.assert_allclose(at_zero, jnp.broadcast_to(mean, at_zero.shape), atol=1e-4)
    assert np.abs(task.generate(state, z, noise, psi=1.0) - mean).max() > 1e-2  # psi = 1: the zs show

    zero = build_task("stylegan", {**SMALL, "truncation": "0.0"})
    out = jax.jit(zero.sample)(state, jax.random.key(5), {})
    np.testing.assert_allclose(out["samples"], jnp.broadcast_to(out["samples"][0], out["samples"].shape), atol=1e-4)
    trunc = np.asarray(out["truncation"]).reshape(8, 8, 32, 32, 1)  # psi 1.0 .. 0.0 whatever config.truncation
    np.testing.assert_allclose(trunc[:, -1], np.broadcast_to(trunc[0, -1], trunc[:, -1].shape), atol=1e-4)  # psi = 0 column
    assert np.abs(trunc[:, 0] - trunc[0, 0]).max() > 1e-2  # psi = 1 column differs by row


def test_style_mixing_crossover(task, state):
    n, params, num_ws = 4, state.g.params, task.num_ws
    w1 = task.map(params, jax.random.normal(jax.random.key(6), (n, task.config.latent)))
    w2 = task.map(params, jax.random.normal(jax.random.key(7), (n, task.config.latent)))
    noise = jax.random.split(jax.random.key(8), n)

    synthesize = jax.jit(task.synthesize)

    def image(crossover):
        return synthesize(params, mix_styles(w1, w2, jnp.full((n,), crossover), num_ws), noise)

    only_w1, only_w2 = image(num_ws + 1), image(0)
    np.testing.assert_allclose(only_w1, synthesize(params, task.broadcast_ws(w1), noise), atol=1e-5)
    np.testing.assert_allclose(image(0), only_w2, atol=1e-5)  # crossover at layer 0: every layer takes w2
    np.testing.assert_allclose(image(num_ws), only_w1, atol=1e-5)  # past the last layer: no mixing
    last = image(num_ws - 1)  # only the final toRGB takes w2: a small change of the w1 image
    assert np.abs(last - only_w1).max() > 1e-4
    assert np.abs(last - only_w1).mean() < np.abs(last - only_w2).mean()

    keys = jax.random.split(jax.random.key(9), 256)
    never, always = mixing_crossover(keys, 0.0, num_ws), mixing_crossover(keys, 1.0, num_ws)
    assert (never == num_ws).all()
    assert ((always >= 1) & (always < num_ws)).all() and len(np.unique(always)) == num_ws - 1


def test_bad_widths_are_a_user_error():
    from aigc_jax.errors import UserError

    with pytest.raises(UserError, match="g_channels"):
        build_task("stylegan", {**SMALL, "g_channels": "8,8"})
    assert isinstance(build_task("stylegan", SMALL), StyleGANTask)
