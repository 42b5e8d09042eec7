"""The neural language models (gpt, lstm_lm, rnn_lm): they learn through the engine, their masks and
step-wise decoders are exact, sampling is checked, and bad prompts are one-line errors.

Each family is trained once per module on a tiny run; the exactness tests reuse its weights.
"""

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aigc_jax import decoding
from aigc_jax.data import text
from aigc_jax.errors import UserError
from aigc_jax.eval.baselines import unigram_bits
from conftest import train_family
from aigc_jax.cli import build_task

# One worker runs this whole file, so its module-scoped trained models are built once.
pytestmark = pytest.mark.xdist_group("language_models")

SEQ = 32
TINY = {
    "gpt": {"width": 32, "layers": 2, "heads": 2, "learning_rate": 3e-3, "warmup_steps": 10},
    "lstm_lm": {"embed": 16, "hidden": 64, "bptt": 16, "learning_rate": 3e-2},
    "rnn_lm": {"embed": 16, "hidden": 64, "bptt": 16, "learning_rate": 1e-2},
}
RUN = {"seq_len": SEQ, "sample_tokens": 20, "num_samples": 2, "steps": 60, "batch_size": 16, "log_every": 10,
       "eval_every": 20, "ckpt_every": 60, "sample_every": 60, "eval_batch_size": 512, "parallel": "jit"}
FAMILIES = list(TINY)


def config(family, **extra):
    return {k: str(v) for k, v in {**TINY[family], **RUN, **extra}.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """family -> (task, state, summary, metric rows, workdir); each trained on first use."""

    @functools.cache
    def run(family):
        workdir = tmp_path_factory.mktemp(family)
        summary, rows = train_family(family, workdir, **TINY[family], **RUN)
        task = build_task(family, config(family))
        data = task.load_data()
        from aigc_jax.engine.run import initial_state, root_keys

        template = initial_state(task, data, root_keys(0)["init"])
        state = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(RUN["steps"]), "state"),
                                                   template)
        return task, state, summary, rows, workdir

    return run


@functools.cache
def unigram_bpb() -> float:
    """The trivial baseline: held-out bits per byte of the train split's byte frequencies (add-one),
    over the same target bytes evaluation scores (about 4.9; uniform would be 8)."""
    data = text.load_text_splits(text.EMBEDDED, "", SEQ)
    return unigram_bits(data.train["tokens"][:, 1:], data.test["tokens"][:, 1:])


def held_out(n=4):
    return jnp.asarray(text.load_text_splits(text.EMBEDDED, "", SEQ).test["tokens"][:n])


@functools.cache
def compiled_log_probs(task):
    return jax.jit(task.log_probs)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_learns_and_writes_samples(trained, family):
    task, _, summary, rows, workdir = trained(family)
    bpb = [r["eval_bpb"] for r in rows if "eval_bpb" in r]
    assert len(bpb) == 3
    assert bpb[-1] < bpb[0] - 0.3 and bpb[-1] < unigram_bpb() - 0.2, (bpb, unigram_bpb())
    sample = (workdir / "samples" / f"text_{RUN['steps']:06d}.txt").read_text()
    assert sample.count("--- sample") == RUN["num_samples"] and sample.count(f"\n{task.config.prompt}") == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_a_future_byte_cannot_change_earlier_predictions(trained, family):
    task, state = trained(family)[:2]
    inputs = held_out()[:, :-1]
    changed = inputs.at[:, 10:].set((inputs[:, 10:] + 7) % 256)
    before, after = compiled_log_probs(task)(state, inputs), compiled_log_probs(task)(state, changed)
    np.testing.assert_allclose(before[:, :10], after[:, :10], atol=1e-5)
    assert np.abs(before[:, 10:] - after[:, 10:]).max() > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_step_wise_decoder_equals_the_full_pass(trained, family):
    """The GPT's key/value cache (the RNNs' carried state) gives the logits of recomputing everything."""
    task, state = trained(family)[:2]
    inputs = held_out()[:, :-1]
    full = compiled_log_probs(task)(state, inputs)
    step_fn, cache = task.decoder(state, inputs.shape[0])
    step_fn = jax.jit(step_fn)
    for t in range(inputs.shape[1]):
        logits, cache = step_fn(cache, inputs[:, t], t)
        np.testing.assert_allclose(jax.nn.log_softmax(logits), full[:, t], atol=1e-4, rtol=1e-4)


def test_kv_cache_sampling_equals_recomputation_token_for_token(trained):
    task, state = trained("gpt")[:2]
    prompt = jnp.asarray(np.frombuffer(b"def ", np.uint8).astype(np.int32))[None].repeat(3, 0)
    new = SEQ - prompt.shape[1]

    @jax.jit
    def both(state, rng):
        cached = decoding.sample(*task.decoder(state, 3), prompt, new, rng, temperature=1.0)
        recomputed = decoding.sample(*task.recompute_decoder(state, 3), prompt, new, rng, temperature=1.0)
        return cached, recomputed

    cached, recomputed = both(state, jax.random.key(3))
    np.testing.assert_array_equal(cached[:, :4], prompt)
    np.testing.assert_array_equal(cached, recomputed)
    assert len(set(map(tuple, np.asarray(cached[:, 4:]).tolist()))) == 3  # rows draw their own bytes


def test_truncated_bptt_makes_one_update_per_segment(trained):
    task, state = trained("lstm_lm")[:2]
    from optax import tree_utils

    counts = tree_utils.tree_get_all_with_path(state.opt_state, "count")
    segments = SEQ // TINY["lstm_lm"]["bptt"]
    assert {int(c) for _, c in counts} == {RUN["steps"] * segments}


def test_filter_logits_keeps_the_top_k_and_the_nucleus():
    logits = jnp.log(jnp.array([[0.5, 0.25, 0.15, 0.1]]))
    kept = lambda f: np.isfinite(np.asarray(f))[0].tolist()  # noqa: E731
    assert kept(decoding.filter_logits(logits, 1.0, top_k=2)) == [True, True, False, False]
    assert kept(decoding.filter_logits(logits, 1.0, top_p=0.7)) == [True, True, False, False]
    assert kept(decoding.filter_logits(logits, 1.0, top_p=0.75)) == [True, True, False, False]
    assert kept(decoding.filter_logits(logits, 1.0, top_p=0.76)) == [True, True, True, False]
    assert kept(decoding.filter_logits(logits, 1.0, top_p=0.1)) == [True, False, False, False]
    np.testing.assert_allclose(decoding.filter_logits(logits, 2.0), logits / 2.0)


@pytest.mark.parametrize("prompt, message", [
    ("", "config.prompt is empty"),
    ("café", "byte 0xa9"),  # "é" is C3 A9 in UTF-8; A9 never occurs in the Python docs
])
def test_bad_prompts_are_one_line_errors(prompt, message):
    task = build_task("gpt", config("gpt", prompt=prompt))
    with pytest.raises(UserError, match=message) as e:
        task.load_data()
    assert "\n" not in str(e.value)


def test_prompt_longer_than_the_context_is_an_error():
    with pytest.raises(UserError, match="longer than the model's context of 32"):
        build_task("gpt", config("gpt", sample_tokens=29))


def test_sample_command_continues_a_prompt_from_the_checkpoint(trained):
    workdir = trained("gpt")[4]
    cmd = [sys.executable, "-m", "train", "sample", "gpt", "--workdir", str(workdir), "--prompt", "class ",
           "--tokens", "12", "--temperature", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    path = out.stdout.split("samples:")[1].split()[0]
    body = open(path).read()
    assert "12 bytes after the prompt 'class '" in body and body.count("\nclass ") == RUN["num_samples"]
    greedy = [line for line in body.splitlines() if line.startswith("class ")]
    assert greedy[0] == greedy[1]  # temperature 0: every sample is the argmax continuation


def test_resume_equals_uninterrupted(tmp_path):
    # A constant learning rate: a cosine schedule would decay to 0 at the first run's shorter `steps`.
    small = {**config("lstm_lm"), "lr_schedule": "constant", "log_every": "1", "eval_every": "5", "ckpt_every": "5",
             "sample_every": "0"}
    _, straight = train_family("lstm_lm", tmp_path / "straight", **{**small, "steps": "10"})
    train_family("lstm_lm", tmp_path / "resumed", **{**small, "steps": "5"})
    _, resumed = train_family("lstm_lm", tmp_path / "resumed", fresh=False, **{**small, "steps": "10"})
    assert resumed == straight  # every logged metric at every step, bit for bit


def test_gru_cell_step_wise_decoder_equals_the_full_pass():
    """The optional GRU cell of rnn_lm, untrained: its carried state is the same recurrence."""
    from aigc_jax.engine.run import initial_state, root_keys

    task = build_task("rnn_lm", config("rnn_lm", cell="gru"))
    state = initial_state(task, task.load_data(), root_keys(0)["init"])
    inputs = held_out(2)[:, :-1]
    full = jax.jit(task.log_probs)(state, inputs)
    step_fn, carries = task.decoder(state, 2)
    step_fn = jax.jit(step_fn)
    for t in range(inputs.shape[1]):
        logits, carries = step_fn(carries, inputs[:, t], t)
        np.testing.assert_allclose(jax.nn.log_softmax(logits), full[:, t], atol=1e-5)


def test_a_catalog_text_dataset_that_is_not_prepared_says_how_to_prepare_it(tmp_path):
    task = build_task("ngram", {"dataset": "tiny_shakespeare", "data_dir": str(tmp_path)})
    with pytest.raises(UserError, match="tfds build tiny_shakespeare .*--file_format array_record") as e:
        task.load_data()
    assert "\n" not in str(e.value)
