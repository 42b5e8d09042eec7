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

import functools

import numpy as np

from aigc_jax.data import pydoc_text, python_stdlib
from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.data.embedded import catalog_sources, prepare, read_all
from aigc_jax.data.splits import Splits
from aigc_jax.errors import UserError

EMBEDDED = "pydoc_text"  # the default
EMBEDDED_BUILDERS = {"pydoc_text": pydoc_text.PydocText, "python_stdlib": python_stdlib.PythonStdlib}
VOCAB_SIZE = 256  # bytes
SEPARATOR = b"\n\n"
EVAL_SPLITS = ("validation", "test")


@functools.lru_cache(maxsize=2)
def split_streams(dataset: str, data_dir: str) -> dict[str, np.ndarray]:
    """uint8 byte stream of each split the dataset has (train, and validation and/or test), read
    once per process (the records never change)."""
    if dataset in EMBEDDED_BUILDERS:
        sources = prepare(EMBEDDED_BUILDERS[dataset], data_dir).as_data_source()
    else:
        sources = catalog_sources(dataset, data_dir, EMBEDDED)
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


def load_text_splits(dataset: str, data_dir: str, seq_len: int, eval_split: str = "test") -> Splits:
    """Train windows, and the windows of `eval_split` in the evaluated slot (`Splits.test`)."""
    streams = split_streams(dataset, tfds_data_dir(data_dir))
    if eval_split not in streams or eval_split == "train":
        held_out = [s for s in EVAL_SPLITS if s in streams]
        raise UserError(f"config.eval_split={eval_split!r}: dataset {dataset!r} has held-out splits {held_out}; "
                        f"expected one of them")
    return Splits(train={"tokens": windows(streams["train"], seq_len)},
                  test={"tokens": windows(streams[eval_split], seq_len)})


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
