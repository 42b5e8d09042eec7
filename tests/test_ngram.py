"""The byte n-gram family: exact counts, normalised Kneser-Ney, learning through the engine, the
same counts in every parallel mode, a decoder that matches eval, and a clear error for order 4."""

import collections
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aigc_jax.data import sampler
from aigc_jax.data.text import load_text_splits
from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.config import PARALLEL_MODES
from aigc_jax.engine.run import initial_state, root_keys
from aigc_jax.errors import UserError
from aigc_jax.models import ngram
from aigc_jax.cli import build_task

TEXT = b"def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\n" * 4


def text_windows(seq_len: int, text: bytes = TEXT) -> np.ndarray:
    stream = np.frombuffer(text, np.uint8).astype(np.int32)
    n = (len(stream) - 1) // seq_len
    return stream[np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)]


def reference_counts(windows: np.ndarray, k: int) -> dict:
    """(history bytes, next byte) -> count for order k, by hand: targets are window[1:], and a
    target is counted at order k only when its k-1 bytes of history lie inside the window."""
    out = collections.Counter()
    for row in windows.tolist():
        for t in range(max(1, k - 1), len(row)):
            out[(tuple(row[t - k + 1:t]), row[t])] += 1
    return dict(out)


def table_counts(table: np.ndarray, k: int) -> dict:
    """The nonzero entries of count table k as (history bytes, next byte) -> count."""
    out = {}
    for row, byte in np.argwhere(table):
        history = tuple(int(row) // 256 ** (k - 2 - j) % 256 for j in range(k - 1))
        out[(history, int(byte))] = int(table[row, byte])
    return out


def counted_task(order: int, windows: np.ndarray, **overrides):
    """The task and its state after one train step on `windows` (plus that step's metrics)."""
    task = build_task("ngram", {"order": str(order), "seq_len": str(windows.shape[1] - 1), **overrides})
    batch = {"tokens": jnp.asarray(windows)}
    state = task.init(jax.random.key(0), batch)
    state, metrics = jax.jit(task.train_step)(state, batch, jax.random.key(1))
    return task, state, metrics


@pytest.mark.parametrize("order", [1, 2, 3])
def test_counts_match_a_python_counter_for_every_order(order):
    windows = text_windows(16)
    task, state, metrics = counted_task(order, windows)
    assert len(state.counts) == order and int(state.step) == 1
    for k, table in enumerate(state.counts, start=1):
        assert table.shape == (256 ** (k - 1), 256) and table.dtype == jnp.int32
        assert table_counts(np.asarray(table), k) == reference_counts(windows, k), f"order {k}"
    # Prequential: the first batch is scored before anything was counted, i.e. uniform.
    assert float(metrics["bpb"]) == pytest.approx(8.0, abs=1e-4)
    assert float(metrics["loss"]) == pytest.approx(np.log(256), abs=1e-4)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_log_probs_are_normalised_and_favour_what_was_seen(order):
    windows = text_windows(32)
    task, state, _ = counted_task(order, windows, vocab_size="260")  # 4 padding ids: probability 0
    inputs = jnp.asarray(windows[:, :-1])
    log_probs = jax.jit(task.log_probs)
    lp = np.asarray(log_probs(state, inputs), np.float64)
    assert lp.shape == (*inputs.shape, 260)
    np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0, atol=1e-5)
    assert np.all(np.exp(lp[..., 256:]) == 0) and np.all(np.isfinite(lp[..., :256]))
    # After "retur" the corpus always has "n"; "Z" never occurs: it keeps a little mass, far less.
    prompt = jnp.asarray(np.frombuffer(b"retur", np.uint8).astype(np.int32)[None])
    last = np.asarray(log_probs(state, prompt))[0, -1]
    assert last[ord("n")] > last[ord("Z")] > -np.inf
    if order == 3:  # "ur" is always followed by "n"
        assert np.exp(last[ord("n")]) > 0.5


def test_an_unseen_context_backs_off_to_the_continuation_bigram():
    windows = text_windows(32)
    _, state, _ = counted_task(3, windows)
    # "Qr" never occurs: c("Qr") = 0, so P(.|"Qr") is the lower order: Kneser-Ney's continuation
    # bigram P(.|"r") (distinct bytes seen before "r w"), itself interpolated with the continuation
    # unigram and the uniform base.
    lp = jax.jit(ngram.log_probs, static_argnums=2)(state.counts, jnp.asarray([[ord("Q"), ord("r")]]), 0.75)
    cont = ngram.continuation_tables(state.counts)
    unigram = ngram.kn_level(cont[0][0], jnp.full((256,), 1 / 256), 0.75)
    bigram = ngram.kn_level(cont[1][ord("r")], unigram, 0.75)
    np.testing.assert_allclose(np.exp(lp[0, -1]), bigram, rtol=1e-6)
    assert float(bigram[ord("n")]) > float(bigram[ord("Z")]) > 0


def test_family_learns_through_the_engine_and_samples_from_its_checkpoint(tmp_path, train):
    from aigc_jax.engine.sampling import sample_from_workdir, trained_config

    summary, rows = train("ngram", tmp_path, parallel="jit", order=3, seq_len=64, batch_size=16, steps=6,
                          eval_every=2, log_every=1, ckpt_every=6, sample_every=0, sample_tokens=40, num_samples=2)
    evals = [r["eval_bpb"] for r in rows if "eval_bpb" in r]
    train_bpb = [r["bpb"] for r in rows if "bpb" in r]
    assert len(evals) == 3 and evals[-1] < evals[0] and evals[-1] < 8.0, evals
    assert train_bpb[0] == pytest.approx(8.0, abs=1e-4) and train_bpb[-1] < train_bpb[0], train_bpb
    assert summary["checkpoint_steps"] == [6] and summary["samples"]
    with open(summary["samples"][0]) as f:
        assert f.read().count("--- sample") == 2
    # `python -m train sample ngram`: restore the NGramState from orbax and sample from it.
    task = build_task("ngram", {}, trained=trained_config(str(tmp_path), "ngram"))
    paths = sample_from_workdir(task, str(tmp_path), out_dir=str(tmp_path / "again"))
    assert paths and all(os.path.getsize(p) > 0 for p in paths)


def test_every_parallel_mode_counts_the_same():
    assert len(jax.devices()) == 4
    batch_size, steps = 8, 3
    overrides = {"order": "3", "seq_len": "32", "batch_size": str(batch_size)}
    data = load_text_splits("pydoc_text", "", 32)
    keys = root_keys(0)
    results = {}
    for mode in PARALLEL_MODES:
        task = build_task("ngram", {**overrides, "parallel": mode})
        compiled = compile_task(task, mode, batch_size)
        state = compiled.place_state(initial_state(task, data, keys["init"]))
        bpb = []
        for step in range(steps):
            batch = sampler.take(data.train, sampler.batch_indices(data.num_train, batch_size, step, 0))
            rng = jax.random.fold_in(keys["train"], step)
            state, metrics = compiled.train_step(state, compiled.place_batch(batch), rng)
            bpb.append(float(metrics["bpb"]))
        results[mode] = (jax.device_get(compiled.canonical(state)), np.array(bpb))
    ref_state, ref_bpb = results["jit"]
    assert int(ref_state.step) == steps and int(ref_state.counts[0].sum()) == steps * batch_size * 32
    for mode in PARALLEL_MODES[1:]:
        state, bpb = results[mode]
        assert int(state.step) == steps, mode
        for k, (a, b) in enumerate(zip(state.counts, ref_state.counts), start=1):
            np.testing.assert_array_equal(a, b, err_msg=f"{mode} order {k}")
        np.testing.assert_allclose(bpb, ref_bpb, rtol=1e-5, err_msg=mode)


def test_sharded_jit_gathers_the_batch_instead_of_all_reducing_the_tables():
    """Counting scatters sorted ids: XLA cannot split a sort along its axis, so it all-gathers the
    few thousand ids rather than scattering per device and all-reducing 64 MiB of increments."""
    task = build_task("ngram", {"order": "3", "seq_len": "32", "batch_size": "8"})
    data = load_text_splits("pydoc_text", "", 32)
    compiled = compile_task(task, "sharded", 8)
    state = compiled.place_state(initial_state(task, data, root_keys(0)["init"]))
    batch = compiled.place_batch(sampler.take(data.train, np.arange(8)))
    hlo = compiled.train_step.lower(state, batch, jax.random.key(0)).compile().as_text()
    results = [re.split(r"\sall-reduce(?:-start)?\(", line)[0] for line in hlo.splitlines()
               if re.search(r"\sall-reduce(-start)?\(", line)]  # what each all-reduce returns
    sizes = [math.prod(map(int, dims.split(","))) for r in results for dims in re.findall(r"\[([\d,]+)\]", r)]
    assert results and max(sizes, default=0) < 256 ** 2, sizes  # only the metrics and the guard's flag


@pytest.mark.parametrize("order", [1, 2, 3])
def test_decoder_steps_give_the_same_log_probs_as_eval(order):
    windows = text_windows(32)
    task, state, _ = counted_task(order, windows)
    tokens = jnp.asarray(windows[:3, :20])

    @jax.jit
    def stepped(state, tokens):  # one position per call, in a scan, as `decoding.sample` runs it
        step_fn, start = task.decoder(state, tokens.shape[0])

        def body(decoder_state, t):
            logits, decoder_state = step_fn(decoder_state, tokens[:, t], t)
            return decoder_state, logits

        return jax.lax.scan(body, start, jnp.arange(tokens.shape[1]))[1].transpose(1, 0, 2)

    np.testing.assert_allclose(stepped(state, tokens), jax.jit(task.log_probs)(state, tokens), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("override, expected", [
    ({"order": "4"}, "config.order=4: expected 1..3 (dense int32 count tables; order 4 would need 16 GiB)"),
    ({"order": "0"}, "config.order=0"),
    ({"discount": "1.0"}, "config.discount=1.0: expected a value in (0, 1)"),
    ({"discount": "0"}, "config.discount=0.0: expected a value in (0, 1)"),
])
def test_bad_order_or_discount_is_a_one_line_error(override, expected):
    with pytest.raises(UserError) as info:
        build_task("ngram", override)
    message = str(info.value)
    assert expected in message and len(message.splitlines()) == 1, message
