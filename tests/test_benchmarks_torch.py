"""PyTorch twins: loaded with the JAX family's initial weights and fed its batch and noise, each
twin takes the same training step (the same losses, the same gradients, the same updated
weights); every twin trains; a torch.compile failure becomes a row that says why. Skipped when
torch is not installed (the `torch` extra; the `test` extra installs it)."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigc_jax.data import sampler  # noqa: E402  (after the torch check: the twins import torch)
from aigc_jax.engine import run as engine_run  # noqa: E402
from aigc_jax.tasks import ddpm  # noqa: E402
from aigc_jax.tasks import images as im  # noqa: E402
from aigc_jax.tasks import registry  # noqa: E402
from aigc_jax.tasks.base import per_example_normal  # noqa: E402
from aigc_jax.tasks.optim import learning_rate_schedule  # noqa: E402
from aigc_jax.benchmarks.peaks import Peak  # noqa: E402
from aigc_jax.benchmarks.presets import preset_config  # noqa: E402
from aigc_jax.benchmarks.torch_twins import TWINS, load_twin  # noqa: E402
from aigc_jax.benchmarks.torch_twins.base import jax_tree, schedule  # noqa: E402


def _gan_noise(task, keys):
    d_keys, g_keys = im.split_keys(keys)
    latent = (task.config.latent,)
    return {"z_d": per_example_normal(d_keys, latent), "z_g": per_example_normal(g_keys, latent)}


def _ddpm_noise(task, keys):
    """DDPMTask.loss's draws: the time (a diffusion step, or flow's t), the noise, the dropped labels."""
    c = task.config
    noise_keys, drop_keys = im.split_keys(keys)
    t_keys, eps_keys = im.split_keys(noise_keys)
    if c.objective == "flow":
        time = {"t": jax.vmap(lambda k: jax.random.uniform(k))(t_keys)}
    else:
        time = {"step": jax.vmap(lambda k: jax.random.randint(k, (), 1, c.timesteps + 1))(t_keys)}
    return {**time, "eps": per_example_normal(eps_keys, (ddpm.IMAGE_SIZE, ddpm.IMAGE_SIZE, task.image_channels)),
            "drop": jax.vmap(lambda k: jax.random.bernoulli(k, c.label_dropout))(drop_keys)}


# How each family draws its per-example noise from batch["key"], so the twin can be fed the same
# draws (None: the step draws none).
JAX_NOISE = {
    "mlp": None,
    "cnn": None,
    "mlp_gan": _gan_noise,
    "dcgan": _gan_noise,
    "vae": lambda task, keys: {"eps": per_example_normal(keys, (task.config.latent,))},
    "lstm_lm": None,
    "gpt": None,
    "transformer": None,
    "ddpm": _ddpm_noise,
}

# Tolerances, float32 on both sides; the two frameworks sum in different orders, so they differ
# by roundoff (measured worst, in brackets, leaves a margin of 20x or more over every family).
# Losses: 1e-4 relative and absolute (measured: 4e-7 relative).
LOSS_TOL = 1e-4
# Gradients (Adam's first moment after the step, (1 - b1) * gradient): 1e-4 relative, plus 1e-4 of
# the tensor's largest entry absolute: roundoff is relative to the largest terms summed, so an
# entry that nearly cancels can be off by more than 1e-4 of itself (measured: 3% of this tolerance).
GRAD_RTOL = GRAD_ATOL = 1e-4
# Updated weights: Adam moves each weight by up to the learning rate whatever the gradient's size,
# so they are compared to 0.5% of the learning rate (measured: 0.03%); a wrong optimizer (learning
# rate, schedule, weight decay, betas) moves a weight by a good part of it. Except where the
# gradient is only roundoff (below the gradient tolerance in both frameworks, e.g. attention's key
# bias, which the softmax ignores): Adam's step has a random sign there, so those few weights
# (under 1%, checked; measured: 0.5%) are not compared.
STEP_TOL = 0.005


# The tiny presets of these families warm up from a learning rate of 0, so their first step would
# move no weight and test nothing of the optimizer: start them past the warm-up (the warm-up
# itself is test_twin_schedule_is_the_jax_schedule's).
PAST_WARMUP = {"gpt": {"warmup_steps": 0}, "transformer": {"warmup_steps": 0},
               # 16 channels: two per GroupNorm group (with one, the norm cancels the conv bias before it
               # and that bias's gradient is pure roundoff in both frameworks)
               "ddpm": {"warmup_steps": 0, "channels": (16,)}}

# Families whose zero-initialised layers (ddpm's residual, attention and output convs) pass no gradient
# back at initialisation: they start from random weights there, so every gradient is compared.
ZERO_INIT = {"ddpm"}


def _zeros_made_random(params, key):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [0.1 * jax.random.normal(k, p.shape, p.dtype) if not np.any(p) else p
                                     for k, p in zip(keys, leaves)])


def _tiny_step(family):
    """The JAX family at its tiny benchmark preset: config, first batch, initial and updated state, metrics, noise."""
    cls = registry.FAMILIES[family]
    config, _ = preset_config(cls, "tiny", "jit", "float32")
    config.update(PAST_WARMUP.get(family, {}))
    task = cls(config)
    data = task.load_data()
    host = engine_run.host_batch(data.train, sampler.batch_indices(data.num_train, config.batch_size, 0, config.seed))
    keys = jax.random.split(jax.random.key(1), config.batch_size)
    state = engine_run.initial_state(task, data, jax.random.key(0))
    if family in ZERO_INIT:
        state = state.replace(params=_zeros_made_random(state.params, jax.random.key(3)))
    new_state, metrics = jax.jit(task.train_step)(state, {**host, "key": keys}, jax.random.key(2))
    noise = JAX_NOISE[family]
    noise = None if noise is None else jax.tree.map(np.asarray, noise(task, keys))
    return config, host, state, new_state, metrics, noise


def _adam_mu(train_state):
    """optax's Adam first moment (ScaleByAdamState.mu) inside a TrainState's (chained) optimizer state."""
    is_adam = lambda x: hasattr(x, "mu")  # noqa: E731
    (adam,) = [s for s in jax.tree.leaves(train_state.opt_state, is_leaf=is_adam) if is_adam(s)]
    return adam.mu


def _torch_mu(twin, param) -> np.ndarray:
    """Adam's first moment of `param` in whichever of the twin's optimizers holds it."""
    for value in vars(twin).values():
        opt = getattr(value, "opt", value)  # base.ScheduledAdam wraps a torch optimizer
        if isinstance(opt, torch.optim.Optimizer) and param in opt.state:
            return opt.state[param]["exp_avg"].numpy()
    raise AssertionError("no optimizer state for a mapped parameter: did the twin train it?")


def _assert_close(name, actual, expected, rtol, atol):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture
def cheap_compiles():
    """XLA's least-optimising compiles: each JAX function here runs once, so compiling it is most of
    the test's time (half of it saved); its numbers differ from an optimised build's by roundoff."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


@pytest.mark.parametrize("family", [f for f in TWINS if f in registry.FAMILIES])
def test_twin_takes_the_jax_step(family, cheap_compiles):
    assert family in JAX_NOISE, f"{family}: add its noise derivation to JAX_NOISE"
    config, host, state, new_state, metrics, noise = _tiny_step(family)
    twin = load_twin(family)(config.to_dict(), torch.device("cpu"), "float32")
    twin.load_jax(state)

    _assert_mapping_covers_both(twin, state)

    losses = twin.step(twin.from_host(host), noise)
    assert set(losses) <= set(metrics) and losses, (sorted(losses), sorted(metrics))
    for name, value in losses.items():
        _assert_close(name, value.item(), float(metrics[name]), LOSS_TOL, LOSS_TOL)

    for name, (param, grad) in twin.jax_weights(jax_tree(new_state, _adam_mu)).items():
        _assert_close(f"Adam mu {name}", _torch_mu(twin, param), grad, GRAD_RTOL, GRAD_ATOL * np.abs(grad).max())

    _assert_same_update(twin, state, new_state, float(config.learning_rate))


def _assert_mapping_covers_both(twin, state):
    """Every parameter torch trains mirrors one JAX parameter, and every JAX parameter is mirrored."""
    weights = twin.jax_weights(jax_tree(state))
    trained = {p for m in twin.modules for p in getattr(twin, m).parameters() if p.requires_grad}
    mapped = {p for p, _ in weights.values()}
    unmapped = [n for m in twin.modules for n, p in getattr(twin, m).named_parameters() if p in trained - mapped]
    assert mapped <= trained and not unmapped and len(weights) == len(trained), f"not mapped: {unmapped}"
    assert sum(a.size for _, a in weights.values()) == sum(x.size for x in jax.tree.leaves(jax_tree(state)))


def _assert_same_update(twin, state, new_state, lr):
    """The updated weights agree to STEP_TOL x the learning rate, where the gradient is more than roundoff."""
    before, after = twin.jax_weights(jax_tree(state)), twin.jax_weights(jax_tree(new_state))
    grads = twin.jax_weights(jax_tree(new_state, _adam_mu))
    moved = noisy = total = 0
    for name, (param, value) in after.items():
        grad, torch_grad = grads[name][1], _torch_mu(twin, param)
        # Roundoff: below the gradient tolerance in both frameworks, and not exactly 0 in both (an
        # unused embedding row's gradient is 0 in both, and its step is compared).
        tiny = np.maximum(np.abs(grad), np.abs(torch_grad)) <= GRAD_ATOL * np.abs(grad).max()
        roundoff = tiny & ((grad != 0) | (torch_grad != 0))
        error = np.abs(param.detach().numpy() - value)
        worst = error.max(initial=0.0, where=~roundoff)
        assert worst <= STEP_TOL * lr, f"updated {name}: off by {worst:.3g} = {worst / lr:.3g} x the learning rate"
        moved = max(moved, np.abs(value - before[name][1]).max())
        noisy, total = noisy + roundoff.sum(), total + roundoff.size
    assert moved > lr / 2, "the JAX step moved no weight: nothing of the optimizer was compared"
    assert noisy < 0.01 * total, f"{noisy} of {total} gradients are roundoff: the comparison would say little"


@pytest.mark.parametrize("updates_per_step", [1, 3])
@pytest.mark.parametrize("keys", [{"lr_schedule": "constant", "warmup_steps": 0}, {"lr_schedule": "cosine", "warmup_steps": 0},
                                  {"lr_schedule": "cosine", "warmup_steps": 4}, {"lr_schedule": "constant", "warmup_steps": 4}])
def test_twin_schedule_is_the_jax_schedule(keys, updates_per_step):
    config = registry.FAMILIES["gpt"].default_config()
    config.update({"steps": 10, "learning_rate": 2e-3, **keys})
    jax_lr = learning_rate_schedule(config, updates_per_step)
    factor = schedule(config.to_dict(), updates_per_step)
    n = np.arange(12 * updates_per_step)
    np.testing.assert_allclose([config.learning_rate * factor(i) for i in n], [float(jax_lr(i)) for i in n],
                               rtol=1e-5, atol=1e-9)


# Shapes small enough for a test; keys as the twins read them from a family config.
SMALL = {
    "mlp": {"hidden": (8,)}, "cnn": {"channels": (2, 4), "hidden": 8}, "mlp_gan": {"latent": 4, "g_hidden": (8,), "d_hidden": (8,)},
    "vae": {"hidden": 8, "latent": 2}, "dcgan": {"latent": 8, "g_channels": (16, 8, 4), "d_channels": (4, 8, 16)},
    "lstm_lm": {"vocab_size": 50, "embed": 8, "hidden": 16, "seq_len": 8, "bptt": 4},
    "gpt": {"vocab_size": 64, "context": 16, "width": 32, "layers": 2, "heads": 4},
    "transformer": {"vocab_size": 50, "width": 16, "heads": 2, "ff": 32, "max_source_len": 8, "max_target_len": 8},
    "ddpm": {"channels": (4, 8), "blocks": 1, "attention_at": (8,), "patch": 2},
}


@pytest.mark.parametrize("family", list(TWINS))
def test_every_twin_trains(family):
    """Twins of families not registered yet still build and learn on a repeated batch."""
    twin = load_twin(family)({**SMALL[family], "batch_size": 4, "learning_rate": 1e-2}, torch.device("cpu"), "float32")
    torch.manual_seed(0)
    batch = twin.random_batch(np.random.default_rng(0))
    first = {k: v.item() for k, v in twin.step(batch).items()}
    for _ in range(5):
        last = {k: v.item() for k, v in twin.step(batch).items()}
    assert all(np.isfinite(v) for v in (*first.values(), *last.values()))
    if family not in ("mlp_gan", "dcgan"):  # a GAN's losses need not fall
        assert last["loss"] < first["loss"], (first, last)


def test_bfloat16_twin_runs_under_autocast():
    twin = load_twin("mlp")({**SMALL["mlp"], "batch_size": 4}, torch.device("cpu"), "bfloat16")
    loss = twin.step(twin.random_batch(np.random.default_rng(0)))["loss"]
    assert loss.dtype == torch.float32 and np.isfinite(loss.item())


def test_torch_compile_failure_becomes_a_row_that_says_why(monkeypatch):
    from aigc_jax.benchmarks import records
    from aigc_jax.benchmarks.torch_twins import runner

    def broken(self):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(load_twin("mlp"), "compile", broken)
    config, _ = preset_config(registry.FAMILIES["mlp"], "tiny", "jit", None)
    eager, compiled = runner.benchmark_twin("mlp", config.to_dict(), "tiny", 0.02, 1e6, 0, Peak(0.1, "t"), log=lambda *a: None)
    assert eager["status"] == "ok" and records.check(eager) == []
    assert compiled["status"] == "skipped" and compiled["reason"] == "torch.compile failed: RuntimeError: no C++ compiler found"
    assert records.check(compiled) == []
