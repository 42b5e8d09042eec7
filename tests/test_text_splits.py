"""The embedded text sets' held-out splits are text the models never read, nor copies of it: fewer
than 1% of the 64-byte windows of validation or test occur anywhere in train (pydoc_text's old
topic split had 26%)."""

import numpy as np
import pytest

from aigc_jax.data import near_duplicates, pydoc_text, python_stdlib, text
from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.errors import UserError

LEAK_LIMIT = 0.01


def read_streams(dataset):
    return {split: bytes(s) for split, s in text.split_streams(dataset, tfds_data_dir("")).items()}


@pytest.fixture(scope="module")
def streams():
    return read_streams(text.EMBEDDED)


@pytest.mark.parametrize("dataset", sorted(text.EMBEDDED_BUILDERS))
def test_held_out_windows_do_not_occur_in_train(dataset):
    streams = read_streams(dataset)
    for held_out in ("validation", "test"):
        assert near_duplicates.shared_fraction(streams[held_out], streams["train"]) < LEAK_LIMIT, held_out
        assert len(streams[held_out]) > 0.04 * sum(map(len, streams.values())), held_out


def test_python_stdlib_is_real_source_without_the_test_suites():
    sources = python_stdlib.modules()
    assert sum(map(len, sources.values())) > 5e6 and "asyncio" in sources and "json" in sources
    assert not {"test", "pydoc_data", "encodings"} & set(sources)
    assert b"def " in sources["json"] and b'"""' in sources["json"]  # code and docstrings


def test_the_topic_split_alone_would_leak_so_the_check_can_fail():
    # The check above is not vacuous: a topic and the topic that reproduces it, split apart.
    pages = {name: page.encode() for name, page in pydoc_text.topics().items()}
    assert near_duplicates.shared_fraction(pages["attribute-access"], pages["specialnames"]) > 0.9


def test_splits_are_disjoint_topics_each_at_least_a_tenth_of_the_bytes():
    pages = pydoc_text.topics()
    splits = pydoc_text.split_topics(pages)
    names = [n for s in splits.values() for n in s]
    assert sorted(names) == sorted(pages) and len(set(names)) == len(names)
    total = sum(len(p.encode()) for p in pages.values())
    for held_out in ("validation", "test"):
        share = sum(len(pages[n].encode()) for n in splits[held_out]) / total
        assert 0.10 <= share < 0.25, (held_out, share)
    for group in near_duplicates.groups({n: p.encode() for n, p in pages.items()}):
        assert len({s for s, members in splits.items() for n in group if n in members}) == 1, group


def test_eval_split_chooses_what_evaluation_reads(streams):
    val = text.load_text_splits(text.EMBEDDED, "", 64, "validation")
    test = text.load_text_splits(text.EMBEDDED, "", 64, "test")
    assert (val.train["tokens"] == test.train["tokens"]).all()
    assert len(val.test["tokens"]) == (len(streams["validation"]) - 1) // 64
    assert len(test.test["tokens"]) == (len(streams["test"]) - 1) // 64
    with pytest.raises(UserError, match=r"config.eval_split='train'.*expected one of them"):
        text.load_text_splits(text.EMBEDDED, "", 64, "train")


def test_shared_windows_counts_what_a_substring_search_counts():
    rng = np.random.default_rng(0)
    base = rng.integers(97, 100, 900, dtype=np.uint8).tobytes()  # three letters: many repeats
    docs = [base[:300], base[250:700] + base[:100], rng.integers(97, 123, 500, dtype=np.uint8).tobytes(), base[600:]]
    size = 16
    expected = np.array([[0 if a == b else len({w for w in map(bytes, (docs[a][i:i + size] for i in range(0, len(docs[a]) - size + 1, size)))
                                                  if w in docs[b]})
                          for b in range(len(docs))] for a in range(len(docs))])
    np.testing.assert_array_equal(near_duplicates.shared_windows(docs, size), expected)
