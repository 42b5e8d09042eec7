"""The seq2seq families: they learn (through the engine), and their masks, padding and decoding are exact.

Each family is trained once per session on a tiny run; the exactness tests reuse its weights (a
trained model emits varied tokens and EOS, so its decodings are not degenerate).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from aigc_jax import decoding
from aigc_jax.data import translation
from aigc_jax.data.tokenizer import BOS, EOS, PAD, SPECIALS
from conftest import train_family
from aigc_jax.cli import build_task

# One worker runs this whole file, so its module-scoped trained models are built once.
pytestmark = pytest.mark.xdist_group("seq2seq")

# Two layers each, so masks are checked through stacked layers; the transformer run also evaluates
# and samples with beam search. One device (parallel=jit): the parallel modes are the engine's tests.
TINY = {
    "transformer": {"width": 32, "heads": 4, "encoder_layers": 2, "decoder_layers": 2, "ff": 64,
                    "learning_rate": 3e-3, "warmup_steps": 20, "beam_size": 2},
    "lstm_seq2seq": {"embed": 16, "hidden": 64, "layers": 2, "learning_rate": 1e-2, "beam_size": 1},
}
RUN = {"steps": 150, "batch_size": 32, "log_every": 10, "eval_every": 150, "ckpt_every": 150,
       "sample_every": 150, "num_samples": 8, "eval_batch_size": 400, "parallel": "jit"}
EXTRA_PAD = 5  # PAD columns the padding test appends (sources are 8 wide; positions go up to 16)
N = 8  # test examples the exactness checks use


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """family -> (task, trained params, summary, metric rows, workdir); each trained on first use."""

    @functools.cache
    def run(family):
        workdir = tmp_path_factory.mktemp(family)
        summary, rows = train_family(family, workdir, **TINY[family], **RUN)
        task = build_task(family, {k: str(v) for k, v in {**TINY[family], **RUN}.items()})
        state = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(RUN["steps"]), "state"))
        return task, jax.tree.map(jnp.asarray, state["params"]), summary, rows, workdir

    return run


@functools.cache
def trivial_translator() -> tuple[float, float]:
    """The source-blind baselines on the test split: token accuracy of answering, at each target
    position, the train split's most frequent token there; exact match of always answering the
    train split's most frequent whole target (0 when every number is different)."""
    data = translation.load_translation_splits("number_words", "", 8, 16)
    train, test = data.train["target"][:, 1:], data.test["target"][:, 1:]  # after BOS
    majority = np.array([np.bincount(col).argmax() for col in train.T])
    real = test != PAD
    token = float(((test == majority) & real).sum() / real.sum())
    rows, counts = np.unique(train, axis=0, return_counts=True)
    exact = float((test == rows[counts.argmax()]).all(axis=1).mean())
    return token, exact


def examples():
    """The first N test examples: sources [N, 8] and targets [N, 17]."""
    test = translation.load_translation_splits("number_words", "", 8, 16).test
    return jnp.asarray(test["source"][:N]), jnp.asarray(test["target"][:N])


def other_tokens(tokens):
    """A different real (non-special) token at every position."""
    first, span = len(SPECIALS), len(translation.VOCABULARY) - len(SPECIALS)
    return first + (tokens - first + 1 + jnp.arange(tokens.shape[1])) % span


@functools.cache
def compiled_logits(task):
    return jax.jit(lambda params, source, decoder_input: task.model.apply({"params": params}, source, decoder_input))


@functools.cache
def compiled_greedy(task):
    return jax.jit(task.greedy)


def random_learned_positions_model():
    """An untrained transformer with learned positions (weights drawn on the host: nothing to compile)."""
    task = build_task("transformer", {k: str(v) for k, v in {**TINY["transformer"], "positions": "learned"}.items()})
    source, target = examples()
    shapes = jax.eval_shape(task.model.init, jax.random.key(0), source, target[:, :-1])["params"]
    rng = np.random.default_rng(0)

    def draw(path, leaf):
        scale = leaf.shape[0] ** -0.5 if len(leaf.shape) >= 2 else 0.3
        return jnp.asarray((path[-1].key == "scale") + scale * rng.standard_normal(leaf.shape), leaf.dtype)

    return task, jax.tree_util.tree_map_with_path(draw, shapes)


def model(trained, which):
    return random_learned_positions_model() if which == "learned" else trained(which)[:2]


@pytest.mark.parametrize("family", ["transformer", "lstm_seq2seq"])
def test_family_learns_and_writes_translations(trained, family):
    _, _, summary, rows, workdir = trained(family)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    final = summary["metrics"]
    token_baseline, exact_baseline = trivial_translator()
    assert final["eval_token_accuracy"] > token_baseline + 0.1, (final, token_baseline)
    assert final["eval_exact_match"] > exact_baseline, (final, exact_baseline)
    samples = [workdir / "samples" / f"translations_{RUN['steps']:06d}.txt"]
    if TINY[family]["beam_size"] > 1:
        assert final["eval_beam_exact_match"] > exact_baseline, (final, exact_baseline)
        samples.append(workdir / "samples" / f"beam_translations_{RUN['steps']:06d}.txt")
    for path in samples:
        text = path.read_text().splitlines()
        assert len(text) == 1 + RUN["num_samples"] and all(" -> " in line for line in text[1:])


@pytest.mark.parametrize("which", ["transformer", "learned", "lstm_seq2seq"])
def test_a_future_target_token_cannot_change_earlier_logits(trained, which):
    task, params = model(trained, which)
    source, target = examples()
    decoder_input = target[:, :-1]
    changed = decoder_input.at[:, 5:].set(other_tokens(decoder_input[:, 5:]))
    before = compiled_logits(task)(params, source, decoder_input)
    after = compiled_logits(task)(params, source, changed)
    np.testing.assert_allclose(before[:, :5], after[:, :5], atol=1e-5)
    assert np.abs(before[:, 5:] - after[:, 5:]).max() > 1e-3  # the change is visible where it may be


@pytest.mark.parametrize("family", ["transformer", "lstm_seq2seq"])
def test_source_padding_cannot_change_the_output(trained, family):
    task, params = trained(family)[:2]
    source, target = examples()
    padded = jnp.pad(source, ((0, 0), (0, EXTRA_PAD)), constant_values=PAD)  # the same sources, more PAD
    logits = compiled_logits(task)
    np.testing.assert_allclose(logits(params, source, target[:, :-1]), logits(params, padded, target[:, :-1]),
                               atol=1e-5)
    greedy = compiled_greedy(task)
    np.testing.assert_array_equal(greedy(params, source), greedy(params, padded))
    other = source.at[:, 0].set(jnp.where(source[:, 0] == 4, 5, 4))  # ...while a real token does change it
    assert np.abs(logits(params, source, target[:, :-1]) - logits(params, other, target[:, :-1])).max() > 1e-3


@pytest.mark.parametrize("family", ["transformer", "lstm_seq2seq"])
def test_step_wise_decoder_equals_the_full_teacher_forced_pass(trained, family):
    """The key/value cache (transformer) or carried state (LSTM) gives the same logits as recomputing."""
    task, params = trained(family)[:2]
    source, target = examples()
    decoder_input = target[:, :-1].at[:, 3:].set(other_tokens(target[:, 3:-1]))  # not just the answer
    full = compiled_logits(task)(params, source, decoder_input)
    step_fn, state = task.decoder_step(params, source)
    step_fn = jax.jit(step_fn)
    for t in range(decoder_input.shape[1]):
        logits, state = step_fn(state, decoder_input[:, t], t)
        np.testing.assert_allclose(logits, full[:, t], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["transformer", "lstm_seq2seq"])
def test_greedy_decoding_is_the_argmax_of_teacher_forcing_on_its_own_output(trained, family):
    task, params = trained(family)[:2]
    source, _ = examples()
    tokens = np.asarray(compiled_greedy(task)(params, source))
    assert (tokens == EOS).any(axis=1).all()  # a trained model ends its sequences
    decoder_input = jnp.concatenate([jnp.full((N, 1), BOS), tokens[:, :-1]], axis=1)
    argmax = np.asarray(compiled_logits(task)(params, source, decoder_input).argmax(-1))
    for pred, best in zip(tokens, argmax):
        stop = list(pred).index(EOS) + 1
        np.testing.assert_array_equal(pred[:stop], best[:stop])
        assert (pred[stop:] == PAD).all()


@pytest.mark.parametrize("family", ["transformer", "lstm_seq2seq"])
def test_beam_search_with_one_beam_is_greedy_and_its_score_is_the_log_probability(trained, family):
    task, params = trained(family)[:2]
    source, _ = examples()
    length = task.config.max_target_len

    @jax.jit
    def search(params, source):
        one = decoding.beam_search(*task.decoder_step(params, source, 1), N, length, 1)[0]
        return one, decoding.beam_search(*task.decoder_step(params, source, 3), N, length, 3)

    one_beam, (tokens, score) = search(params, source)
    np.testing.assert_array_equal(one_beam, compiled_greedy(task)(params, source))
    # With 3 beams the decoder state is reordered every step; the score kept for the best sequence
    # must equal its log-probability under teacher forcing (up to and including EOS).
    decoder_input = jnp.concatenate([jnp.full((N, 1), BOS), tokens[:, :-1]], axis=1)
    log_probs = jax.nn.log_softmax(compiled_logits(task)(params, source, decoder_input))
    picked = jnp.take_along_axis(log_probs, tokens[..., None], -1)[..., 0]
    up_to_eos = (jnp.cumsum(tokens == EOS, axis=1) - (tokens == EOS)) == 0
    np.testing.assert_allclose((picked * up_to_eos).sum(-1), score, rtol=1e-4, atol=1e-4)


def test_bad_config_values_are_user_errors():
    from aigc_jax.errors import UserError

    with pytest.raises(UserError, match="vocab_size=10"):
        build_task("transformer", {"vocab_size": "10"})
    with pytest.raises(UserError, match="width=30"):
        build_task("transformer", {"width": "30", "heads": "4"})
    with pytest.raises(UserError, match="positions"):
        build_task("transformer", {"positions": "rotary"})
