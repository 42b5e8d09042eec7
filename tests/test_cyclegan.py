"""cyclegan: the synthetic printed digits, the networks' shapes, the image pool, and a tiny run."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data import printed_digits
from aigc_jax.data.images import load_image_splits
from aigc_jax.engine.run import initial_state
from aigc_jax.tasks.image_pool import empty_pool, pool_draws, query, query_batch
from aigc_jax.cli import build_task

# One worker runs this whole file, so its module-scoped trained models are built once.
pytestmark = pytest.mark.xdist_group("cyclegan")

TINY = {"g_width": "4", "g_blocks": "1", "d_width": "4", "d_layers": "1", "identity_weight": "0", "pool_size": "4",
        "batch_size": "8", "judge_metrics": "false"}


def test_printed_digits_format_and_balance():
    splits = load_image_splits("printed_digits", image_size=28)
    assert splits.num_train == 2000 and splits.num_test == 400
    for split in (splits.train, splits.test):
        assert split["image"].shape[1:] == (28, 28, 1) and split["image"].dtype == np.float32
        assert split["image"].min() >= 0.0 and split["image"].max() <= 1.0
        assert (np.bincount(split["label"], minlength=10) == len(split["label"]) // 10).all()
        assert (split["image"].reshape(len(split["image"]), -1).max(-1) > 0.5).all()  # no blank glyphs
    assert load_image_splits("printed_digits", image_size=32).test["image"].shape == (400, 32, 32, 1)


def test_printed_digits_are_deterministic_and_jittered():
    a, again = printed_digits.render_example(0, 7), printed_digits.render_example(0, 7)
    assert (a["image"] == again["image"]).all() and a["label"] == 7
    other_seed = printed_digits.render_example(0, 7, seed=1)
    other_index = printed_digits.render_example(0, 17)  # the same digit, its own font and jitter
    assert not (a["image"] == other_seed["image"]).all() and not (a["image"] == other_index["image"]).all()
    assert printed_digits.font_names()[0] == printed_digits.PILLOW_DEFAULT and len(printed_digits.font_names()) > 5


@pytest.fixture(scope="module")
def tiny():
    """The tiny task, its data and a fresh state (its compiled init is shared with the tiny run)."""
    task = build_task("cyclegan", TINY)
    data = task.load_data()
    return task, data, initial_state(task, data, jax.random.key(0))


def test_generators_round_trip_shapes_and_patch_scores(tiny):
    task, data, state = tiny
    a, b = data.test["image"][:2], data.test["image_b"][:2]
    ab, aba, ba, bab = task.translations(state, a, b)  # hand -> printed -> hand and back
    for x in (ab, aba, ba, bab):
        assert x.shape == a.shape and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # One real/fake score per overlapping patch (28 -> 14 -> 13 -> 12 with d_layers=1).
    assert task.score(state.disc.params["b"], ab * 2 - 1).shape == (2, 12, 12, 1)


def test_pool_fills_then_swaps_keeps_its_size_and_is_deterministic():
    pool = empty_pool(4, (2, 2, 1))
    images = jnp.arange(1, 11, dtype=jnp.float32)[:, None, None, None] * jnp.ones((10, 2, 2, 1))
    keys = jax.random.split(jax.random.key(0), 10)
    new, out = query(pool, images, *pool_draws(keys, 4))
    again, out2 = query(pool, images, *pool_draws(keys, 4))
    assert new.images.shape == (4, 2, 2, 1) and int(new.count) == 4
    assert (out == out2).all() and (new.images == again.images).all()
    np.testing.assert_array_equal(out[:4, 0, 0, 0], [1, 2, 3, 4])  # filling: passed through
    # Afterwards every output is the new image or a stored one, and the pool holds only seen images.
    assert set(np.asarray(out[:, 0, 0, 0]).tolist()) <= set(range(1, 11))
    assert set(np.asarray(new.images[:, 0, 0, 0]).tolist()) <= set(range(1, 11))
    swapped, _ = query(new, images, *pool_draws(jax.random.split(jax.random.key(1), 10), 4))
    assert not (swapped.images == new.images).all()
    disabled, same = query_batch(empty_pool(0, (2, 2, 1)), images, keys)
    assert disabled.size == 0 and (same == images).all()


def test_pool_is_the_same_when_the_batch_is_split_over_devices():
    """Under shard_map each device gathers the global batch's fakes and draws, so every device
    updates one identical pool and gets its own rows of what the global query returns."""
    from jax.sharding import Mesh, PartitionSpec as P

    from aigc_jax.engine.parallel import DATA_AXIS

    pool = empty_pool(4, (2, 2, 1))
    images = jax.random.uniform(jax.random.key(0), (8, 2, 2, 1))
    keys = jax.random.split(jax.random.key(1), 8)
    mesh = Mesh(np.asarray(jax.devices()[:4]), (DATA_AXIS,))
    split = jax.jit(jax.shard_map(lambda p, x, k: query_batch(p, x, k), mesh=mesh, check_vma=False,
                                  in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)), out_specs=(P(), P(DATA_AXIS))))
    (ref_pool, ref_out), (got_pool, got_out) = jax.jit(query_batch)(pool, images, keys), split(pool, images, keys)
    np.testing.assert_array_equal(got_pool.images, ref_pool.images)
    np.testing.assert_array_equal(got_out, ref_out)
    assert int(got_pool.count) == 4


def test_tiny_run_learns_to_reconstruct(train, tmp_path, tiny):
    summary, rows = train("cyclegan", tmp_path, steps=30, log_every=1, eval_every=0, ckpt_every=0, sample_every=0,
                          parallel="jit", learning_rate=2e-3, **TINY)
    cycle = [r["cycle_loss"] for r in rows if "cycle_loss" in r]
    assert len(cycle) == 30
    assert all(np.isfinite([r[k] for r in rows for k in ("g_loss", "d_loss") if k in r]))
    assert np.mean(cycle[-5:]) < 0.6 * np.mean(cycle[:5])
    # Against the trivial reconstruction, an all-black image (the digits are mostly black): its
    # error is the mean pixel value.
    black = float(np.mean(tiny[1].test["image"]))
    assert summary["metrics"]["eval_cycle_ab"] < 0.8 * black, (summary["metrics"]["eval_cycle_ab"], black)
    assert {os.path.basename(p) for p in summary["samples"]} == {"hand_to_printed_000030.png", "printed_to_hand_000030.png"}


def test_samples_are_triptychs_of_both_directions(tiny):
    task, data, state = tiny
    batch = {k: v[:8] for k, v in data.test.items()}
    out = task.sample(state, jax.random.key(1), batch)
    assert set(out) == {"hand_to_printed", "printed_to_hand"}
    for images in out.values():
        assert images.shape == (81, 28, 28, 1)
    np.testing.assert_allclose(out["hand_to_printed"][0], batch["image"][0])  # input first in each triptych
    np.testing.assert_allclose(out["printed_to_hand"][3], batch["image_b"][1])


@pytest.mark.parametrize("key, value", [("pool_size", "-1"), ("d_layers", "9"), ("cycle_weight", "-1")])
def test_bad_config_is_a_user_error(key, value):
    from aigc_jax.errors import UserError

    with pytest.raises(UserError, match=f"config.{key}"):
        build_task("cyclegan", {key: value})


def test_the_identity_translator_keeps_every_class_but_not_below_its_fd_baseline():
    # The trivial translator G(a) = a, F(b) = b scores perfect class_kept and cycle error; its FD to
    # the target domain is eval_fd_identity, the figure a real translator must get below.
    from aigc_jax.engine.run import Run

    cls = type(build_task("cyclegan", TINY))
    identity = type("IdentityCycleGAN", (cls,), {"translations": lambda self, state, a, b: (a, a, b, b)})
    run = Run(identity(build_task("cyclegan", {**TINY, "judge_metrics": "true", "parallel": "jit"}).config))
    m = {k.removeprefix("eval_"): v for k, v in run.evaluate().items()}
    assert m["class_kept_ab"] == m["class_kept_ba"] == 1.0 and m["cycle_ab"] == m["cycle_ba"] == 0.0
    assert m["fd_ab"] == pytest.approx(m["fd_identity"], rel=1e-6) and m["fd_identity"] > 10.0, m


def test_a_colour_domain_trains_in_colour_beside_a_grey_one():
    """synthetic_images (colour, 32x32) <-> printed_digits (grey, shown as three equal channels, resized
    to 32x32): G, F, D and the pools work in 3 channels, and a train step on the colour batch changes G."""
    task = build_task("cyclegan", {**TINY, "dataset": "synthetic_images", "num_examples": "500"})
    data = task.load_data()
    assert data.train["image"].shape[1:] == data.train["image_b"].shape[1:] == (32, 32, 3)  # A's size
    grey = data.train["image_b"]
    assert (grey[..., 0] == grey[..., 2]).all() and not (data.train["image"][..., 0] == data.train["image"][..., 2]).all()
    task = task.bind(data)
    state = initial_state(task, data, jax.random.key(0))
    a, b = data.test["image"][:2], data.test["image_b"][:2]
    ab, _, ba, _ = task.translations(state, a, b)
    assert ab.shape == ba.shape == (2, 32, 32, 3) and state.pool_a.images.shape[1:] == (32, 32, 3)
    batch = {**{k: v[:8] for k, v in data.train.items()}, "key": jax.random.split(jax.random.key(1), 8)}
    new, metrics = jax.jit(task.train_step)(state, batch, jax.random.key(1))
    assert np.isfinite(float(metrics["g_loss"])) and np.isfinite(float(metrics["d_loss"]))
    moved = jax.tree.map(lambda x, y: float(np.abs(np.asarray(x) - np.asarray(y)).max()), new.gen.params["g"], state.gen.params["g"])
    assert max(jax.tree.leaves(moved)) > 0
