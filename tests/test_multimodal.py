"""`multimodal` and `clip`: synthetic digit captions, negatives, the gathered contrastive loss, learning."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from aigc_jax.data import digit_captions as dc
from aigc_jax.data.splits import Splits
from aigc_jax.data.tokenizer import words
from aigc_jax.engine import parallel
from aigc_jax.tasks.clip import symmetric_info_nce
from conftest import train_family
from aigc_jax.cli import build_task

TINY = {"channels": "4,8", "hidden": 16, "text_width": 16, "embed": 16, "batch_size": 32, "learning_rate": 3e-3}


def test_captions_are_deterministic_and_name_their_digit():
    labels = np.random.default_rng(1).integers(10, size=200)
    captions = dc.paired_captions(labels, seed=0)
    assert captions == dc.paired_captions(labels, seed=0)
    assert captions != dc.paired_captions(labels, seed=1)
    for digit, text in zip(labels, captions):
        named = [w for w in words(text) if w in dc.NUMBER_WORDS or w.isdigit()]
        assert named in ([dc.NUMBER_WORDS[digit]], [str(digit)]), text
    assert not set(dc.HELD_OUT_TEMPLATES) & set(dc.TRAIN_TEMPLATES)
    assert dc.caption(7, dc.HELD_OUT_TEMPLATES[0]) == "a photo of the number seven"
    # The tokens the tasks see decode back to the same captions.
    images = np.zeros((200, 1, 1, 1), np.float32)
    split = {"image": images, "label": labels}
    data = dc.with_captions(Splits(train=split, test=split), 0)
    assert [" ".join(dc.VOCAB.decode(t)) for t in data.train["caption"]] == captions


def test_negatives_name_another_digit_and_depend_only_on_the_keys():
    task = build_task("multimodal", {})
    labels = np.arange(64) % 10
    keys = jax.random.split(jax.random.key(0), 64)
    negatives = np.asarray(jax.jit(task.negatives)(keys, labels))
    np.testing.assert_array_equal(negatives, jax.jit(task.negatives)(keys, labels))
    named = [next(w for w in dc.VOCAB.decode(t) if w in dc.NUMBER_WORDS or w.isdigit()) for t in negatives]
    digits = [int(w) if w.isdigit() else dc.NUMBER_WORDS.index(w) for w in named]
    assert all(d != y for d, y in zip(digits, labels))
    assert len(set(digits)) == 10


def test_clip_loss_over_the_gathered_batch_agrees_with_the_whole_batch():
    """Under shard_map each device scores its rows against every device's gathered embeddings; its
    loss, averaged over devices, and its device-averaged gradient are the whole-batch ones."""
    mesh = Mesh(np.asarray(jax.devices()), (parallel.DATA_AXIS,))
    x_image, x_text = jax.random.normal(jax.random.key(1), (2, 16, 4))
    w = jax.random.normal(jax.random.key(2), (4, 4))

    def loss(w, xi, xt):  # a shared linear "encoder", unit rows, scale 5
        unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
        return symmetric_info_nce(unit(xi @ w), unit(xt @ w), 5.0)

    def per_device(w, xi, xt):
        value, grad = jax.value_and_grad(loss)(w, xi, xt)
        return parallel.data_mean((value, grad))

    spec = P(parallel.DATA_AXIS)
    mapped = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), spec, spec), out_specs=(P(), P()),
                                   check_vma=False))
    whole = jax.jit(jax.value_and_grad(loss))(w, x_image, x_text)
    for a, b in zip(mapped(w, x_image, x_text), whole):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _last(rows, key):
    return [r[key] for r in rows if key in r][-1]


def test_multimodal_learns_to_match(tmp_path):
    # The matcher sits on a plateau (loss log 2) for ~120 steps before image and text features align.
    _, rows = train_family("multimodal", tmp_path, steps=200, log_every=10, eval_every=0, ckpt_every=0, sample_every=0,
                           parallel="jit", **{**TINY, "embed": 32, "text_width": 32}, fusion_hidden=32)
    loss = [r["loss"] for r in rows if "loss" in r]
    assert np.mean(loss[-3:]) < np.mean(loss[:3]) - 0.1
    assert _last(rows, "eval_match_accuracy") > 0.65  # chance 0.5: a model blind to either input stays there


def test_clip_learns_zero_shot_digits(tmp_path):
    _, rows = train_family("clip", tmp_path, steps=120, log_every=10, eval_every=0, ckpt_every=0,
                           sample_every=0, parallel="jit", **TINY)
    loss = [r["loss"] for r in rows if "loss" in r]
    assert np.mean(loss[-3:]) < np.mean(loss[:3]) - 0.5
    assert _last(rows, "eval_zero_shot_accuracy") > 0.4  # chance 0.1, held-out prompt template
    assert _last(rows, "eval_recall_at_1") > 0.4
