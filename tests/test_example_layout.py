"""The batch parse of tf.Example records (`data/example_layout.py`) gives what protobuf gives, for
records that share a layout and for those that only look alike."""

import numpy as np
import pytest
from array_record.python import array_record_module
from tensorflow_datasets.proto import tf_example_pb2

from aigc_jax.data.example_layout import Layout
from aigc_jax.data.records import ArrayRecordExamples

SPECS = (("image", (2, 3), "|u1"), ("label", (), "<i8"), ("score", (2,), "<f4"))


def varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


def example(image, label, score=(0.5, -1.0), order=("image", "label", "score"), labels=None) -> bytes:
    """A serialized tf.Example, its features on the wire in `order` (protobuf would choose its own)."""
    entries = []
    for name in order:
        one = tf_example_pb2.Example()
        feature = one.features.feature[name]
        if name == "image":
            feature.bytes_list.value.append(bytes(image))
        elif name == "label":
            feature.int64_list.value.extend([label] if labels is None else labels)
        else:
            feature.float_list.value.extend(score)
        entries.append(one.features.SerializeToString())  # one map entry
    body = b"".join(entries)
    return b"\n" + varint(len(body)) + body  # Example.features (field 1, length-delimited)


def records() -> list[bytes]:
    rng = np.random.default_rng(0)
    image = lambda: rng.integers(0, 256, 6, dtype=np.uint8)  # noqa: E731
    out = [example(image(), int(k % 10), (k, -k)) for k in range(12)]  # one layout
    out += [example(image(), 200), example(image(), 300)]  # a two-byte varint: another length
    out += [example(image(), -5)]  # a negative label: ten bytes
    out += [example(image(), 7, order=("label", "score", "image"))]  # same length, another order
    out += [example(image(), 0, labels=[1, 2]), example(image(), 0, labels=[3])]  # two one-byte varints where
    return out                                              # the two-byte layout has one


def written(tmp_path, raws: list[bytes]) -> ArrayRecordExamples:
    path = str(tmp_path / "set-train.array_record-00000-of-00001")
    writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
    for raw in raws:
        writer.write(raw)
    writer.close()
    return ArrayRecordExamples(files=(path,), starts=(0,), total=len(raws), specs=SPECS)


def test_the_batch_parse_equals_protobufs_record_by_record(tmp_path):
    raws = records()
    source = written(tmp_path, raws)
    indices = np.random.default_rng(1).permutation(len(raws))
    columns = source.read_columns(indices)
    by_protobuf = source.__getitems__(indices)
    for name, shape, dtype in SPECS:
        assert columns[name].dtype == np.dtype(dtype) and columns[name].shape == (len(raws), *shape)
        np.testing.assert_array_equal(columns[name], np.stack([r[name] for r in by_protobuf]))
    assert columns["label"][list(indices).index(14)] == -5
    # The layouts walked: one per record length, every feature found in each.
    assert all(layout is not None and [s[0] for s in layout.spans] == ["image", "label", "score"]
               for layout in source.layouts.values())


def test_records_that_only_look_alike_do_not_match():
    raws = records()
    layout = Layout.of(raws[0], SPECS)
    reordered = np.frombuffer(raws[15], np.uint8)[None]
    assert len(raws[15]) == len(raws[0]) and not layout.match(reordered)[0]
    two_byte = Layout.of(raws[12], SPECS)
    two_varints = np.frombuffer(raws[16], np.uint8)[None]  # [1, 2] packed in the span of one 200
    assert len(raws[16]) == len(raws[12]) and not two_byte.match(two_varints)[0]
    assert two_byte.match(np.frombuffer(raws[13], np.uint8)[None])[0]  # 300: one two-byte varint


@pytest.mark.parametrize("specs", [
    (("image", (2, 3), "|u1"), ("label", (), "<i8")),  # a feature the specs do not name
    (("image", (3, 3), "|u1"), ("label", (), "<i8"), ("score", (2,), "<f4")),  # bytes of another size
    (("image", (2, 3), "|u1"), ("label", (2,), "<i8"), ("score", (2,), "<f4")),  # an int list, not one varint
])
def test_a_record_the_parser_does_not_slice_has_no_layout(specs):
    assert Layout.of(records()[0], specs) is None
