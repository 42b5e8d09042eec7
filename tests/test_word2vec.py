"""word2vec: the word view is deterministic, negatives follow unigram^0.75, a tiny run learns."""

import jax
import numpy as np
import pytest

from aigc_jax.data import sampler, words
from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.run import evaluate, initial_state, root_keys
from aigc_jax.errors import UserError
from aigc_jax.cli import build_task

TINY = dict(vocab_size=600, dim=16, window=1, batch_size=128, learning_rate=0.3, steps=200, parallel="jit")
STEPS = 200


def test_words_vocab_and_pairs():
    assert words.words("The __init__ method, 42 UTF8 x's") == ["the", "__init__", "method", "utf8", "x", "s"]
    vocab = words.build_vocab("b a c a b d".split(), 3)
    assert vocab == ("<unk>", "a", "b")  # most frequent first, ties alphabetical
    ids = words.encode("a b c a".split(), vocab)
    np.testing.assert_array_equal(ids, [1, 2, 0, 1])
    # distance-1 pairs both ways; the <unk> (c) and self pairs are dropped
    assert sorted(map(tuple, words.skipgram_pairs(np.array([1, 2, 2, 0, 1]), 1).tolist())) == [(1, 2), (2, 1)]


def test_word_view_is_deterministic():
    build = words.word_view.__wrapped__  # not the per-process cache
    a, b = build("pydoc_text", "", 500), build("pydoc_text", "", 500)
    assert a.vocab == b.vocab and len(a.vocab) == 500 and a.vocab[:3] == ("<unk>", "the", "a")
    np.testing.assert_array_equal(a.train_ids, b.train_ids)
    np.testing.assert_array_equal(a.test_ids, b.test_ids)
    x, y = words.load_word_pairs(a, 2, 1e-3), words.load_word_pairs(b, 2, 1e-3)
    for split in ("train", "test"):
        for key in getattr(x, split):
            np.testing.assert_array_equal(getattr(x, split)[key], getattr(y, split)[key])
    assert x.num_train < len(words.skipgram_pairs(a.train_ids, 2))  # subsampling dropped frequent words
    assert (x.train["center"] > 0).all() and (x.train["context"] > 0).all()


def test_negatives_follow_the_unigram_distribution():
    task = build_task("word2vec", {"vocab_size": "600", "negatives": "50"})
    task.load_data()
    drawn = np.asarray(jax.jit(task.negatives)(jax.random.split(jax.random.key(0), 2000))).ravel()
    assert drawn.min() >= 1 and drawn.max() < 600  # never <unk>
    freq = np.bincount(drawn, minlength=600) / len(drawn)
    np.testing.assert_allclose(freq[1:6], task.view.negative_distribution()[1:6], rtol=0.1)


def test_tiny_run_learns():
    task = build_task("word2vec", {k: str(v) for k, v in TINY.items()})
    data = task.load_data()
    compiled = compile_task(task, "jit", task.config.batch_size)
    keys = root_keys(0)
    state = compiled.place_state(initial_state(task, data, keys["init"]))
    at_init = evaluate(task, compiled, state, data.test, keys["eval"], 4096)
    losses = []
    for step in range(STEPS):
        batch = sampler.take(data.train, sampler.batch_indices(data.num_train, task.config.batch_size, step, 0))
        state, metrics = compiled.train_step(state, compiled.place_batch(batch),
                                             jax.random.fold_in(keys["train"], step))
        losses.append(metrics["loss"])
    losses = np.asarray(jax.device_get(losses))
    trained = evaluate(task, compiled, state, data.test, keys["eval"], 4096)
    assert losses[-20:].mean() < losses[:20].mean() - 0.5, losses
    assert trained["loss"] < at_init["loss"] - 0.5, (at_init, trained)
    # Co-occurring words score higher than random pairs after training, and not at init.
    assert abs(at_init["cooccur_minus_random"]) < 0.01, at_init
    assert trained["cooccur_minus_random"] > 0.02, trained

    text = task.render_samples(jax.device_get(compiled.sample(state, keys["sample"], {})))["neighbours"]
    for word in ("list", "function", "class", "import", "string", "true"):
        line = next(line for line in text.splitlines() if line.startswith(f"{word}: "))
        assert len(line.split(", ")) == task.config.neighbours, line


@pytest.mark.parametrize("key, value, words_", [
    ("neighbours", "599", "expected at most vocab_size - 2"),
    ("subsample", "2", "expected a value in"),
    ("vocab_size", "2", "expected a value >= 3"),
])
def test_bad_config_is_one_line(key, value, words_):
    with pytest.raises(UserError, match=words_) as e:
        build_task("word2vec", {"vocab_size": "600", key: value})
    assert "\n" not in str(e.value)
