"""PyTorch twins: the same loss as the JAX family for the same weights and noise on one batch,
every twin takes a step, and a torch.compile failure becomes a row that says why. Skipped
when torch is not installed (it is the optional `torch` extra)."""

import jax
import numpy as np
import pytest

from aigc_jax.data import sampler
from aigc_jax.engine import loop
from aigc_jax.tasks import images as im
from aigc_jax.tasks import registry
from aigc_jax.tasks.base import per_example_normal
from benchmarks.peaks import Peak
from benchmarks.presets import preset_config
from benchmarks.torch_twins import TWINS, load_twin

torch = pytest.importorskip("torch")


def _gan_noise(task, keys):
    d_keys, g_keys = im.split_keys(keys)
    latent = (task.config.latent,)
    return {"z_d": per_example_normal(d_keys, latent), "z_g": per_example_normal(g_keys, latent)}


# How each family draws its per-example noise from batch["key"], so the twin can be fed the same
# draws (None: the step draws none). A family missing here is skipped until it is added.
JAX_NOISE = {
    "mlp": None,
    "cnn": None,
    "mlp_gan": _gan_noise,
    "vae": lambda task, keys: {"eps": per_example_normal(keys, (task.config.latent,))},
}


@pytest.mark.parametrize("family", [f for f in TWINS if f in registry.FAMILIES])
def test_twin_computes_the_jax_loss_for_the_same_weights(family):
    if family not in JAX_NOISE:
        pytest.skip(f"{family}: add its noise derivation to JAX_NOISE and a Twin.load_jax weight mapping")
    cls = registry.FAMILIES[family]
    config, _ = preset_config(cls, "tiny", "jit", "float32")
    task = cls(config)
    data = task.load_data()
    host = loop.host_batch(data.train, sampler.batch_indices(data.num_train, config.batch_size, 0, config.seed))
    keys = jax.random.split(jax.random.key(1), config.batch_size)
    state = loop.initial_state(task, data, jax.random.key(0))
    _, metrics = jax.jit(task.train_step)(state, {**host, "key": keys}, jax.random.key(2))

    twin = load_twin(family)(config.to_dict(), torch.device("cpu"), "float32")
    twin.load_jax(state)
    noise = JAX_NOISE[family]
    noise = None if noise is None else jax.tree.map(np.asarray, noise(task, keys))
    losses = twin.step(twin.from_host(host), noise)
    assert losses, "the twin returned no losses"
    for name, value in losses.items():
        np.testing.assert_allclose(value.item(), float(metrics[name]), rtol=1e-4, atol=1e-4, err_msg=name)


# Shapes small enough for a test; keys as the twins read them from a family config.
SMALL = {
    "mlp": {"hidden": (8,)}, "cnn": {"channels": (2, 4), "hidden": 8}, "mlp_gan": {"latent": 4, "g_hidden": (8,), "d_hidden": (8,)},
    "vae": {"hidden": 8, "latent": 2}, "dcgan": {"latent": 8, "features": (4, 8, 16)},
    "lstm_lm": {"vocab_size": 50, "embed": 8, "hidden": 16, "seq_len": 8},
    "gpt": {"vocab_size": 64, "context": 16, "width": 32, "layers": 2, "heads": 4},
    "transformer": {"vocab_size": 50, "width": 16, "heads": 2, "ff": 32, "src_len": 8, "tgt_len": 8},
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
    from benchmarks import records
    from benchmarks.torch_twins import runner

    def broken(self):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(load_twin("mlp"), "compile", broken)
    config, _ = preset_config(registry.FAMILIES["mlp"], "tiny", "jit", None)
    eager, compiled = runner.benchmark_twin("mlp", config.to_dict(), "tiny", 0.02, 1e6, 0, Peak(0.1, "t"), log=lambda *a: None)
    assert eager["status"] == "ok" and records.check(eager) == []
    assert compiled["status"] == "skipped" and compiled["reason"] == "torch.compile failed: RuntimeError: no C++ compiler found"
    assert records.check(compiled) == []
