"""simclr: augmentations, the NT-Xent loss over the global batch, and a tiny run that learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from aigc_jax.data import sampler
from aigc_jax.data.augment import Augmentation, augment_batch, two_views
from aigc_jax.engine import parallel
from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.config import PARALLEL_MODES
from aigc_jax.engine.run import Run, initial_state, root_keys
from aigc_jax.tasks.simclr import nt_xent
from conftest import train_family
from aigc_jax.cli import build_task

# One worker runs this whole file, so its module-scoped trained models are built once.
pytestmark = pytest.mark.xdist_group("simclr")

# Small enough to compile fast, big enough to beat its own random-init probe in 200 steps; the
# modes test uses the same model and optimizer, so the run below reuses its compiled sharded step.
SMALL = {"channels": "8,16", "hidden": "64", "head_hidden": "32", "projection": "16", "batch_size": "64",
         "temperature": "0.2", "learning_rate": "0.003"}


@pytest.fixture(scope="module")
def digits():
    return build_task("simclr", {}).load_data()


def test_augmentations_keep_shape_and_range_and_follow_the_key(digits):
    images = jnp.asarray(digits.train["image"][:4])
    keys = jax.random.split(jax.random.key(0), 4)
    off = Augmentation(rotation=0.0, scale=0.0, shift=0.0, elastic=0.0, noise=0.0)

    @jax.jit
    def views(keys):  # one compile for every view the test looks at
        return augment_batch(keys, images), two_views(keys, images), augment_batch(keys, images, off)

    one, (v1, v2), unchanged = views(keys)
    again, _, _ = views(keys)
    assert one.shape == images.shape and one.dtype == jnp.float32
    for v in (one, v1, v2):
        assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
    np.testing.assert_array_equal(np.asarray(one), np.asarray(again))  # same key, same view
    assert all(float(jnp.abs(v1[i] - v2[i]).mean()) > 0.02 for i in range(4))  # the pair differs
    assert all(float(jnp.abs(one[i] - one[i + 1]).mean()) > 0.02 for i in range(3))  # so do other keys
    assert float(jnp.abs(v1 - images).mean()) > 0.02
    # With every transformation off, a view is the image itself.
    np.testing.assert_allclose(np.asarray(unchanged), np.asarray(images), atol=1e-5)


def nt_xent_numpy(z1, z2, temperature):
    """The paper's loss, term by term: l(i, j) = -log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t))."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n, sim = len(z1), z @ z.T / temperature
    losses = [-np.log(np.exp(sim[i, (i + n) % (2 * n)]) / sum(np.exp(sim[i, k]) for k in range(2 * n) if k != i))
              for i in range(2 * n)]
    return np.mean(losses)


def test_nt_xent_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=(8, 5)).astype(np.float32)
    for t in (0.1, 0.5):
        loss, _ = nt_xent(jnp.asarray(z1), jnp.asarray(z2), t)
        np.testing.assert_allclose(float(loss.mean()), nt_xent_numpy(z1, z2, t), rtol=1e-5)
    # Masked rows (eval padding) are no one's negatives: the loss of the rest is that of the subset.
    mask = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)
    loss, _ = nt_xent(jnp.asarray(z1), jnp.asarray(z2), 0.5, jnp.asarray(mask))
    np.testing.assert_allclose(float(loss[:5].mean()), nt_xent_numpy(z1[:5], z2[:5], 0.5), rtol=1e-5)
    # Two views that are the same point find each other.
    _, hit = nt_xent(jnp.asarray(z1), jnp.asarray(z1), 0.5)
    assert float(hit.mean()) == 1.0


def test_nt_xent_over_devices_is_the_global_batch_loss_and_gradient():
    """Under shard_map each device scores its own rows against the gathered batch; the device mean
    of losses and of gradients (what TrainState does) equals the one-device computation."""
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=(8, 5)).astype(np.float32)
    mean_loss = lambda a, b: nt_xent(a, b, 0.5)[0].mean()  # noqa: E731
    ref_loss, ref_grads = jax.value_and_grad(mean_loss, argnums=(0, 1))(z1, z2)

    def per_device(a, b):
        loss, grads = jax.value_and_grad(mean_loss, argnums=(0, 1))(a, b)
        # Each row's gradient, summed over the devices' losses; pmean of parameter gradients divides by 4.
        return parallel.data_mean(loss), jax.tree.map(lambda g: g / 4, grads)

    mesh = Mesh(np.asarray(jax.devices()), (parallel.DATA_AXIS,))
    spec = P(parallel.DATA_AXIS)
    loss, grads = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec), out_specs=(P(), spec),
                                        check_vma=False))(z1, z2)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
    for g, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(np.asarray(g), np.asarray(ref), rtol=1e-5, atol=1e-7)


def test_parallel_modes_agree(digits):
    """The four modes compute the same losses: the loss is taken over the global batch in each."""
    assert len(jax.devices()) == 4
    keys = root_keys(0)
    host_state = jax.device_get(initial_state(build_task("simclr", SMALL), digits, keys["init"]))
    out = {}
    for mode in PARALLEL_MODES:
        task = build_task("simclr", {**SMALL, "parallel": mode})
        compiled = compile_task(task, mode, task.config.batch_size)
        state, losses = compiled.place_state(host_state), []
        for step in range(2):
            batch = sampler.take(digits.train, sampler.batch_indices(digits.num_train, task.config.batch_size, step, 0))
            state, metrics = compiled.train_step(state, compiled.place_batch(batch), jax.random.fold_in(keys["train"], step))
            losses.append(float(metrics["loss"]))
        out[mode] = losses
    for mode in PARALLEL_MODES[1:]:
        np.testing.assert_allclose(out[mode], out["jit"], rtol=1e-5, err_msg=mode)


def test_tiny_run_learns_and_beats_the_random_init_probe(tmp_path, digits):
    at_init = Run(build_task("simclr", SMALL), digits).evaluate()
    _, rows = train_family("simclr", tmp_path, **SMALL, steps=200, log_every=10, eval_every=200, ckpt_every=0,
                           sample_every=0)
    losses = [r["loss"] for r in rows if "loss" in r]
    (trained,) = [r for r in rows if "eval_probe_accuracy" in r]
    assert np.mean(losses[-3:]) < np.mean(losses[:2]) - 0.3, losses
    assert trained["eval_loss"] < at_init["eval_loss"] - 0.3
    # The same ridge probe, the same encoder: only training differs (random init ~0.93 here).
    assert trained["eval_probe_accuracy"] > at_init["eval_probe_accuracy"] + 0.015, (trained, at_init)
