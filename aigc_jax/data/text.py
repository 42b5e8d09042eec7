"""Byte-level language-model data: the embedded `pydoc_text` (help pages, 0.47 MB, the default) or
`python_stdlib` (the standard library's source, about 10 MB) corpus, or a TFDS catalog text set.

Each split's records are joined (a blank line between them) into one byte stream, vocabulary 256,
and cut into windows of `seq_len + 1` bytes that start every `seq_len` bytes: a model reads
window[:-1] and predicts window[1:], so every byte of the stream after the first is a target
exactly once. Train and the evaluated split are {"tokens": int32 [N, seq_len + 1]}; the engine's
sampler shuffles the train windows, and evaluation scores every window of `config.eval_split`
(`test` by default, for reporting; `validation` for choosing settings), so
held-out bits per byte are taken over the same bytes by every family that uses the same `seq_len`.
"""

import dataclasses
import functools
import os
from typing import Any

import numpy as np

from aigc_jax.data import pydoc_text, python_stdlib
from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.data.embedded import catalog_sources, prepare, read_all
from aigc_jax.data.records import RecordSplit, stays_on_disk
from aigc_jax.data.split_cache import cached_arrays
from aigc_jax.data.splits import Splits
from aigc_jax.errors import UserError

EMBEDDED = "pydoc_text"  # the default
EMBEDDED_BUILDERS = {"pydoc_text": pydoc_text.PydocText, "python_stdlib": python_stdlib.PythonStdlib}
VOCAB_SIZE = 256  # bytes
SEPARATOR = b"\n\n"
EVAL_SPLITS = ("validation", "test")
INDEX_DIR = "text_index"  # under the TFDS data dir: each on-disk split's record index
INDEX_NAME = "record_index_v1"  # the cached index's name and layout version (data/split_cache.py)


@functools.lru_cache(maxsize=2)
def split_streams(dataset: str, data_dir: str) -> dict[str, np.ndarray]:
    """uint8 byte stream of each split the dataset has (train, and validation and/or test), read
    once per process (the records never change)."""
    sources = _text_sources(dataset, data_dir)
    out = {}
    for split in ("train", *EVAL_SPLITS):
        if split not in sources:
            continue
        records = read_all(sources[split], dataset, data_dir)
        if records and "text" not in records[0]:
            raise UserError(f"dataset {dataset!r} has features {sorted(records[0])}; expected a text dataset "
                            "with a 'text' feature (e.g. tiny_shakespeare, lm1b)")
        texts = [r["text"] if isinstance(r["text"], bytes) else str(r["text"]).encode() for r in records]
        out[split] = np.frombuffer(SEPARATOR.join(texts), np.uint8)
    return out


def windows(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """int32 [N, seq_len + 1]: window i is stream[i * seq_len : i * seq_len + seq_len + 1]."""
    n = (len(stream) - 1) // seq_len
    if n < 1:
        raise UserError(f"config.seq_len={seq_len} is longer than the text ({len(stream)} bytes); "
                        f"expected seq_len < {len(stream)}")
    return stream[np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)].astype(np.int32)


def _text_sources(dataset: str, data_dir: str):
    if dataset in EMBEDDED_BUILDERS:
        return prepare(EMBEDDED_BUILDERS[dataset], data_dir).as_data_source()
    return catalog_sources(dataset, data_dir, EMBEDDED)


def _record_bytes(record: dict) -> bytes:
    text = record["text"]
    return text if isinstance(text, bytes) else str(text).encode()


def _read_index(source, chunk: int) -> dict[str, np.ndarray]:
    """starts and seen from one pass over the records, keeping only their lengths and byte counts."""
    lengths, counts = [], np.zeros(VOCAB_SIZE, np.int64)
    for begin in range(0, len(source), chunk):
        for record in source.__getitems__(list(range(begin, min(begin + chunk, len(source))))):
            data = _record_bytes(record)
            lengths.append(len(data))
            counts += np.bincount(np.frombuffer(data, np.uint8), minlength=VOCAB_SIZE)
    starts = np.concatenate([[0], np.cumsum(np.asarray(lengths, np.int64) + len(SEPARATOR))])
    return {"starts": starts, "seen": np.flatnonzero(counts)}


def record_index(source, cache_dir: str | None = None, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(starts, seen) of a split's records: one pass over them, kept in `cache_dir` beside the
    prepared data so a multi-GB corpus is not read whole again at every start."""
    index = cached_arrays(source, cache_dir, INDEX_NAME, lambda: _read_index(source, chunk))
    return index["starts"], index["seen"]


@dataclasses.dataclass(frozen=True)
class TextWindows:
    """The windows of a split's byte stream, read from its records on disk: window i is
    stream[i * seq_len : i * seq_len + seq_len + 1], the same as `windows` gives in memory, where
    the stream is the records joined by SEPARATOR. `starts` (each record's offset in the stream)
    comes from one pass over the records that keeps only their lengths (`record_index`, cached
    beside the data), so memory holds 8 bytes per record, never the corpus. A source for
    `RecordSplit`."""

    source: Any  # a tfds.data_source split of records with a "text" feature
    seq_len: int
    starts: np.ndarray  # int64 [R + 1]: record r's first byte; starts[R] = stream length + len(SEPARATOR)
    seen: np.ndarray  # the byte values that occur in the split (for the prompt check)

    @classmethod
    def of(cls, source, seq_len: int, cache_dir: str | None = None) -> "TextWindows":
        out = cls(source, seq_len, *record_index(source, cache_dir))
        if len(out) < 1:
            raise UserError(f"config.seq_len={seq_len} is longer than the text ({out.stream_length} bytes); "
                            f"expected seq_len < {out.stream_length}")
        return out

    @property
    def stream_length(self) -> int:
        return int(self.starts[-1]) - len(SEPARATOR)

    def __len__(self) -> int:
        return (self.stream_length - 1) // self.seq_len

    def __getitems__(self, indices) -> list[dict]:
        begin = np.asarray(indices, np.int64) * self.seq_len
        first = np.searchsorted(self.starts, begin, side="right") - 1
        last = np.searchsorted(self.starts, begin + self.seq_len + 1, side="left") - 1
        needed = sorted({r for a, b in zip(first, last) for r in range(a, b + 1)})
        texts = dict(zip(needed, (_record_bytes(r) for r in self.source.__getitems__(needed))))
        out = []
        for start, a, b in zip(begin, first, last):
            joined = SEPARATOR.join(texts[r] for r in range(a, b + 1))
            offset = int(start - self.starts[a])
            window = np.frombuffer(joined[offset:offset + self.seq_len + 1], np.uint8)
            out.append({"tokens": window.astype(np.int32)})
        return out


def stack_windows(records: list[dict]) -> dict[str, np.ndarray]:
    return {"tokens": np.stack([r["tokens"] for r in records])}


def load_text_splits(dataset: str, data_dir: str, seq_len: int, eval_split: str = "test",
                     in_memory_mb: float | None = None) -> Splits:
    """Train windows, and the windows of `eval_split` in the evaluated slot (`Splits.test`).

    `in_memory_mb`: a catalog dataset's train split whose files hold more than this many MiB stays
    on disk (`TextWindows` in a `RecordSplit`), read window by window (None: always in memory), and
    so does its evaluated split if that too is larger; the embedded corpora (at most 10 MB) are held
    in memory."""
    data_dir = tfds_data_dir(data_dir)
    sources = None if dataset in EMBEDDED_BUILDERS else _text_sources(dataset, data_dir)
    if sources is not None and stays_on_disk(sources["train"], in_memory_mb):
        _check_eval_split(dataset, eval_split, [s for s in EVAL_SPLITS if s in sources])
        index_dir = os.path.join(data_dir, INDEX_DIR)
        train = RecordSplit(TextWindows.of(sources["train"], seq_len, index_dir), stack_windows, dataset)
        evaluated = TextWindows.of(sources[eval_split], seq_len, index_dir)
        if stays_on_disk(sources[eval_split], in_memory_mb):  # evaluation reads it batch by batch too
            return Splits(train=train, test=RecordSplit(evaluated, stack_windows, dataset))
        return Splits(train=train, test=stack_windows(evaluated.__getitems__(np.arange(len(evaluated)))))
    streams = split_streams(dataset, data_dir)
    _check_eval_split(dataset, eval_split, [s for s in EVAL_SPLITS if s in streams])
    return Splits(train={"tokens": windows(streams["train"], seq_len)},
                  test={"tokens": windows(streams[eval_split], seq_len)})


def _check_eval_split(dataset: str, eval_split: str, held_out: list[str]) -> None:
    if eval_split not in held_out:
        raise UserError(f"config.eval_split={eval_split!r}: dataset {dataset!r} has held-out splits {held_out}; "
                        f"expected one of them")


def train_bytes(data: Splits) -> np.ndarray:
    """The byte values that occur in the train split, in memory or on disk."""
    if isinstance(data.train, RecordSplit):
        return data.train.source.seen
    return np.unique(data.train["tokens"])


def encode_prompt(prompt: str, known: np.ndarray) -> np.ndarray:
    """The prompt's UTF-8 bytes (int32), checked against `known`: the bytes the model was trained on."""
    if not prompt:
        raise UserError("config.prompt is empty; expected at least one character to start from "
                        "(e.g. --prompt 'def ')")
    data = np.frombuffer(prompt.encode(), np.uint8).astype(np.int32)
    unseen = sorted(set(data.tolist()) - set(np.asarray(known).tolist()))
    if unseen:
        bad = bytes([unseen[0]])
        raise UserError(f"config.prompt={prompt!r} has byte 0x{unseen[0]:02x} ({bad!r}), which never occurs in "
                        f"the training text; expected bytes of the corpus's {len(known)}-byte vocabulary")
    return data


def decode_bytes(tokens) -> str:
    """Bytes -> text for people (invalid UTF-8 shown as U+FFFD)."""
    return bytes(np.asarray(tokens, np.uint8).tolist()).decode("utf-8", errors="replace")
