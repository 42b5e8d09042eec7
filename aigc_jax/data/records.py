"""`RecordSplit`: a split that stays on disk, read by random access one batch at a time.

The in-memory splits (`Splits.train` as a dict of arrays) suit the embedded sets of a few thousand
examples. A set larger than memory (a catalog dataset, or `synthetic_images` at a million
examples) is read from its array_record files through `tfds.data_source`: a batch reads only the
records of its indices and decodes them, so host memory stays bounded whatever the set's size.
The indices still come from `data/sampler.py`, so batch `s` is the same pure function of
(seed, s) as for an in-memory split, and each host reads only its own slice of it.
"""

import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from tensorflow_datasets.proto import tf_example_pb2

from aigc_jax.data.example_layout import Layout
from aigc_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class RecordSplit:
    """Records of one split on disk. `decode` turns the records read (a list, or where the source
    has `read_columns`, a dict of feature columns) into the batch's arrays; it and `source` pickle,
    so worker processes can read batches too."""

    source: Any  # a tfds.data_source split: len() and __getitems__(indices)
    decode: Callable[[list | dict[str, np.ndarray]], dict[str, np.ndarray]]
    name: str = ""  # the dataset, for error messages

    def __len__(self) -> int:
        return len(self.source)

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        try:
            read_columns = getattr(self.source, "read_columns", None)  # a batch parsed at once
            if read_columns is not None:
                records = read_columns(indices)
            else:
                records = list(self.source.__getitems__([int(i) for i in indices]))
        except Exception as e:  # a truncated or overwritten array_record file
            raise UserError(f"dataset {self.name!r} is unreadable ({type(e).__name__}: {str(e)[:120]}); expected "
                            "intact array_record files: delete its folder in the data dir to rebuild it") from None
        return self.decode(records)


def split_files(source) -> list[str] | None:
    """The files of a `tfds.data_source` split, or None where it lists none (another format, a
    split slice)."""
    try:
        return [os.fspath(f) for f in source.dataset_info.splits[source.split].filepaths]
    except Exception:  # TFDS raises several types for a split without a file list
        return None


def stays_on_disk(source, in_memory_mb: float | None) -> bool:
    """Whether a split is read batch by batch rather than whole: never with `in_memory_mb=None`;
    otherwise when its files hold more than `in_memory_mb` MiB (or their size is unknown)."""
    if in_memory_mb is None:
        return False
    files = split_files(source)
    try:
        size = sum(os.path.getsize(f) for f in files)
    except (TypeError, OSError):  # no file list, or a file gone: stream to be safe
        return True
    return size > in_memory_mb * 2**20


def split_size(split) -> int:
    """Examples in a split: a dict of arrays (example axis first) or a `RecordSplit`."""
    return len(split) if isinstance(split, RecordSplit) else len(next(iter(split.values())))


_readers = threading.local()  # path -> reader, per thread: a reader's position is its own


def _reader(path: str):
    """This thread's reader of `path` (opened once). Reads are `seek` + `read`: a record costs about
    12 us that way, while the batched `read(indices)` costs about 4 ms a call before its first record."""
    cache = _readers.__dict__.setdefault("by_path", {})
    if path not in cache:
        cache[path] = array_record_module.ArrayRecordReader(path, "readahead_buffer_size:0,max_parallelism:1")
    return cache[path]


@dataclasses.dataclass(frozen=True)
class ArrayRecordExamples:
    """A TFDS split in array_record, read record by record with this thread's reader of each shard
    and parsed straight to arrays: `read_columns` about 6 us per 3 KB image record here (the read
    5, the batch parse of `data/example_layout.py` 1), `__getitems__` (protobuf per record) about
    18, against 140 us through `tfds.data_source` (which reads a batch with one `read(indices)`
    call and parses generically). Only for features stored as tensors (raw bytes or int lists:
    `synthetic_images`, the digits); `of` returns None for others (encoded PNGs, text), which keep
    TFDS's own reader."""

    files: tuple[str, ...]
    starts: tuple[int, ...]  # index of each file's first record in the split
    total: int
    specs: tuple[tuple[str, tuple[int, ...], str], ...]  # (feature, shape, numpy dtype)
    layouts: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)  # record length -> Layout

    @classmethod
    def of(cls, source) -> "ArrayRecordExamples | None":
        """The fast reader of a `tfds.data_source` split, or None where it does not apply."""
        info, split = getattr(source, "dataset_info", None), getattr(source, "split", None)
        if info is None or not isinstance(split, str) or split not in info.splits:
            return None
        if "array_record" not in str(info.file_format).lower():
            return None
        specs = []
        for name, feature in info.features.items():
            if not isinstance(feature, tfds.features.Tensor):
                return None
            specs.append((name, tuple(feature.shape), np.dtype(feature.np_dtype).str))
        lengths = info.splits[split].shard_lengths
        return cls(files=tuple(os.fspath(f) for f in info.splits[split].filepaths),
                   starts=tuple(int(x) for x in np.cumsum([0, *lengths[:-1]])), total=int(sum(lengths)),
                   specs=tuple(specs))

    def __len__(self) -> int:
        return self.total

    def __getitems__(self, indices) -> list[dict]:
        return [self._parse(raw) for raw in self._read(indices)]

    def read_columns(self, indices) -> dict[str, np.ndarray]:
        """{feature: [len(indices), *shape] array}: the records at `indices` parsed as a batch where
        they share a layout (`data/example_layout.py`), by protobuf where they do not."""
        raws = self._read(indices)
        n = len(raws)
        out = {name: np.empty((n, *shape), dtype) for name, shape, dtype in self.specs}
        lengths = np.fromiter(map(len, raws), np.int64, count=n)
        for length in np.unique(lengths).tolist():
            where = np.flatnonzero(lengths == length)
            layout = self._layout(raws[where[0]])
            if layout is not None:
                rows = np.frombuffer(b"".join([raws[i] for i in where]), np.uint8).reshape(len(where), length)
                ok = layout.match(rows)
                for name, values in layout.values(rows if ok.all() else rows[ok]).items():
                    out[name][where[ok]] = values
                where = where[~ok]
            for i in where.tolist():
                for name, value in self._parse(raws[i]).items():
                    out[name][i] = value
        return out

    def _layout(self, raw: bytes) -> Layout | None:
        if len(raw) not in self.layouts:  # a benign race between threads: both store the same layout
            self.layouts[len(raw)] = Layout.of(raw, self.specs)
        return self.layouts[len(raw)]

    def _read(self, indices) -> list[bytes]:
        indices = np.asarray(indices, np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.total):
            raise IndexError(f"record index out of range [0, {self.total})")
        shard = np.searchsorted(self.starts, indices, side="right") - 1
        shards = shard.tolist()
        readers = {f: _reader(self.files[f]) for f in set(shards)}
        out = []
        for f, i in zip(shards, (indices - np.asarray(self.starts)[shard]).tolist()):
            reader = readers[f]
            reader.seek(i)
            out.append(reader.read())
        return out

    def _parse(self, raw: bytes) -> dict:
        feature = tf_example_pb2.Example.FromString(raw).features.feature
        out = {}
        for name, shape, dtype in self.specs:
            value = feature[name]
            kind = value.WhichOneof("kind")
            if kind == "bytes_list":  # a tensor stored as raw bytes
                out[name] = np.frombuffer(value.bytes_list.value[0], dtype).reshape(shape)
            elif not shape:  # a scalar (a label): np.asarray on a proto list costs 10 us
                out[name] = np.dtype(dtype).type(getattr(value, kind).value[0])
            else:  # int64_list / float_list
                out[name] = np.asarray(getattr(value, kind).value, dtype).reshape(shape)
        return out
