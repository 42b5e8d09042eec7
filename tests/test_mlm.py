"""mlm and mlm_finetune: BERT masking rates, a tiny pretraining run that learns, and the partial
restore of only the encoder into the downstream classifier."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data.scrambled_words import scramble
from aigc_jax.data.text import EMBEDDED
from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.engine.run import initial_state, root_keys
from aigc_jax.errors import UserError
from aigc_jax.eval.baselines import most_frequent_accuracy
from aigc_jax.models.bert import MASK_ID
from aigc_jax.tasks.mlm import byte_windows, mask_batch
from conftest import train_family
from aigc_jax.cli import build_task

# One worker runs this whole file, so its module-scoped trained models are built once.
pytestmark = pytest.mark.xdist_group("mlm")

TINY = {"seq_len": 16, "width": 32, "layers": 1, "heads": 2, "batch_size": 8}


def test_masking_selects_15_percent_and_splits_them_80_10_10_per_key():
    rows, length = 512, 100  # 7680 selected positions: the fractions' sd is <= 0.005
    tokens = jax.random.randint(jax.random.key(1), (rows, length), 0, 256, jnp.int32)
    keys = jax.random.split(jax.random.key(2), rows)
    inputs, selected = (np.asarray(x) for x in mask_batch(keys, tokens, 0.15))
    tokens = np.asarray(tokens)
    assert (selected.sum(-1) == 15).all()  # exactly 15% of every window
    assert (inputs[~selected] == tokens[~selected]).all()  # unselected bytes are never touched
    chosen_in, chosen_tok = inputs[selected], tokens[selected]
    masked = (chosen_in == MASK_ID).mean()
    random = ((chosen_in != MASK_ID) & (chosen_in != chosen_tok)).mean()  # a random byte may equal the original
    assert masked == pytest.approx(0.8, abs=0.02)
    assert random == pytest.approx(0.1 * 255 / 256, abs=0.02)
    assert (chosen_in == chosen_tok).mean() == pytest.approx(0.1 + 0.1 / 256, abs=0.02)
    again_in, again_sel = mask_batch(keys[:4], jnp.asarray(tokens[:4]), 0.15)
    assert (np.asarray(again_in) == inputs[:4]).all() and (np.asarray(again_sel) == selected[:4]).all()
    other_in, _ = mask_batch(keys[4:8], jnp.asarray(tokens[:4]), 0.15)
    assert (np.asarray(other_in) != inputs[:4]).any()


def test_scramble_keeps_bytes_and_word_ends():
    window = np.frombuffer(b"The statement specifies handlers, x = 1", np.uint8).astype(np.int32)
    out = scramble(window, 0)
    assert sorted(out.tolist()) == sorted(window.tolist()) and (out != window).sum() >= 4
    text = bytes(out.astype(np.uint8).tolist())
    assert text.startswith(b"The s") and text.endswith(b"s, x = 1") and text[12:14] == b"t "


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A finished tiny mlm run: (workdir, its metrics.jsonl rows)."""
    workdir = tmp_path_factory.mktemp("mlm")
    _, rows = train_family("mlm", workdir, **{**TINY, "batch_size": 16}, parallel="jit", steps=120, learning_rate=3e-3,
                           warmup_steps=0, log_every=10, eval_every=0, ckpt_every=120, num_samples=2)
    return workdir, rows


def test_mlm_tiny_run_learns(pretrained):
    _, rows = pretrained
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0] - 1.0, losses  # from ~ln 256 = 5.5 nats towards the byte statistics
    final = next(r for r in reversed(rows) if "eval_mlm_accuracy" in r)
    assert final["eval_mlm_accuracy"] > most_frequent_byte_accuracy() + 0.03 and final["eval_mlm_loss"] < losses[0]


def most_frequent_byte_accuracy() -> float:
    """The trivial baseline: always guess the train split's most frequent byte (a space), scored on
    the held-out bytes; masked positions are drawn uniformly, so this is its expected accuracy."""
    data = byte_windows(EMBEDDED, "", TINY["seq_len"])
    return most_frequent_accuracy(data.train["tokens"], data.test["tokens"])


def _state(task):
    data = task.load_data()
    return initial_state(task.bind(data), data, root_keys(task.config.seed)["init"])


def test_finetune_restores_exactly_the_encoder_and_a_fresh_head(pretrained):
    workdir, _ = pretrained
    mlm = build_task("mlm", {k: str(v) for k, v in TINY.items()})
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        # The pretraining run's own settings differ from TINY's: only the arrays must fit.
        _, saved, _ = ckpt.restore_latest(_state(mlm), mlm.config.to_dict(), resumable=tuple(mlm.config.keys()))
    finally:
        ckpt.close()
    overrides = {**{k: str(v) for k, v in TINY.items()}, "label_budget": "8"}
    scratch = _state(build_task("mlm_finetune", overrides))
    started = _state(build_task("mlm_finetune", {**overrides, "pretrained": str(workdir)}))

    def same(a, b):
        return jax.tree.all(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b))

    assert same(started.params["encoder"], saved.params["encoder"])
    assert not same(scratch.params["encoder"], saved.params["encoder"])
    assert same(started.params["head"], scratch.params["head"])  # freshly initialised, as from scratch
    assert set(started.params) == {"encoder", "head"} and int(started.step) == 0


def test_finetune_rejects_a_checkpoint_of_another_shape_or_family(pretrained, trained_workdir, tmp_path):
    workdir, _ = pretrained
    base = {**{k: str(v) for k, v in TINY.items()}, "label_budget": "8"}
    cases = [({"width": "16", "pretrained": str(workdir)}, "does not fit"),
             ({"layers": "2", "pretrained": str(workdir)}, "does not fit"),
             ({"pretrained": str(trained_workdir)}, "of family 'mlp'"),
             ({"pretrained": str(tmp_path)}, "no checkpoint")]
    for overrides, message in cases:
        with pytest.raises(UserError, match=message) as info:
            build_task("mlm_finetune", {**base, **overrides}).load_data()
        assert "\n" not in str(info.value)
