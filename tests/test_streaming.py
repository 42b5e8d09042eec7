"""Datasets larger than memory: `synthetic_images`, train splits read from disk batch by batch
(`data/records.py`) and read ahead (`engine/input_pipeline.py`), colour images, text on disk."""

import numpy as np
import pytest

import aigc_jax
from aigc_jax.data import images, sampler, synthetic_images
from aigc_jax.data.records import RecordSplit
from aigc_jax.data.splits import Splits
from aigc_jax.eval.baselines import most_frequent_accuracy

SMALL = 300  # train examples (test: 500, the minimum)


def test_synthetic_images_are_a_pure_function_of_split_and_index():
    a, label_a = synthetic_images.draw(0, 7)
    b, label_b = synthetic_images.draw(0, 7)
    c, _ = synthetic_images.draw(1, 7)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and label_a == label_b
    assert not np.array_equal(a, c)  # the test split draws other examples
    labels = [synthetic_images.draw(0, i)[1] for i in range(200)]
    assert set(labels) == set(range(len(synthetic_images.SHAPES)))
    assert max(np.bincount(labels)) < 0.35 * len(labels)  # five shapes, none dominant


def test_a_larger_set_starts_with_the_examples_of_a_smaller_one():
    small = images.load_image_splits("synthetic_images", image_size=32, num_examples=SMALL, colour=True)
    larger = images.load_image_splits("synthetic_images", image_size=32, num_examples=SMALL + 100, colour=True,
                                      in_memory_mb=0)
    assert small.num_train == SMALL and larger.num_train == SMALL + 100 and small.num_test == 500
    head = larger.train.take(np.arange(SMALL))
    np.testing.assert_array_equal(head["image"], small.train["image"])
    np.testing.assert_array_equal(head["label"], small.train["label"])


def test_a_streamed_split_is_never_read_whole(monkeypatch):
    """Only the test split is read whole; the train split is read at the indices a batch asks for,
    in colour (the dataset's 3 channels) or grey."""
    whole = []
    real_read_all = images.read_all
    monkeypatch.setattr(images, "read_all", lambda source, *a: whole.append(len(source)) or real_read_all(source, *a))
    data = images.load_image_splits("synthetic_images", image_size=28, num_examples=SMALL, colour=True, in_memory_mb=0)
    assert isinstance(data.train, RecordSplit) and whole == [500]
    batch = data.train.take(np.array([5, 0, 5]))
    assert batch["image"].shape == (3, 28, 28, 3) and batch["image"].dtype == np.float32
    np.testing.assert_array_equal(batch["image"][0], batch["image"][2])
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert data.constants["image_channels"] == 3
    grey = images.load_image_splits("synthetic_images", image_size=28, num_examples=SMALL, in_memory_mb=0)
    assert grey.train.take(np.array([5]))["image"].shape == (1, 28, 28, 1)
    np.testing.assert_allclose(grey.train.take(np.array([5]))["image"][0, ..., 0], batch["image"][0].mean(-1),
                               atol=1e-6)


def _run(**overrides):
    """A cnn run on synthetic_images, its train split read from disk (in_memory_mb=0) unless overridden."""
    settings = {"num_examples": SMALL, "batch_size": 16, "channels": "8,8", "hidden": "16", "in_memory_mb": 0,
                **overrides}
    task = aigc_jax.build("cnn", dataset="synthetic_images", parallel="jit", **settings)
    return aigc_jax.Run(task)


def test_streamed_batches_are_the_in_memory_batches_and_resume_exactly(tmp_path):
    """The read-ahead stream yields batch s of (seed, s) in step order: the same metrics as the
    whole split in memory, and a run saved and loaded mid-way continues on the exact next batch."""
    streamed = _run()
    assert isinstance(streamed.data.train, RecordSplit)
    in_memory = _run(in_memory_mb=1024)  # the default: a set this small is read whole
    assert isinstance(in_memory.data.train, dict)
    a = [streamed.step() for _ in range(6)]
    b = [in_memory.step() for _ in range(6)]
    assert a == b

    first = _run()
    first.train(3)
    first.save(str(tmp_path / "w"))
    resumed = aigc_jax.load(str(tmp_path / "w"))
    assert isinstance(resumed.data.train, RecordSplit) and resumed.steps_done == 3
    assert [resumed.step() for _ in range(3)] == a[3:]


def test_cnn_learns_the_colour_shapes():
    """Above the majority class (the trivial baseline) on the held-out split, from a streamed set."""
    run = _run(num_examples=2000, batch_size=32, channels="32,64", hidden="64")
    run.train(300)
    accuracy = run.evaluate()["eval_accuracy"]
    majority = most_frequent_accuracy(np.asarray([synthetic_images.draw(0, i)[1] for i in range(2000)]),
                                      run.data.test["label"])
    assert majority < 0.3
    assert accuracy > majority + 0.2, (accuracy, majority)


def test_dcgan_makes_colour_images():
    task = aigc_jax.build("dcgan", dataset="synthetic_images", num_examples=SMALL, judge_metrics=False,
                          in_memory_mb=0, parallel="jit", latent=8, g_channels="16,8,8", d_channels="8,8,16", batch_size=8)
    run = aigc_jax.Run(task)
    run.train(2)
    samples = run.sample_outputs(seed=0)["samples"]
    assert samples.shape[1:] == (32, 32, 3)
    assert np.std(np.asarray(samples), axis=-1).mean() > 0  # the channels differ: colour, not grey


@pytest.mark.parametrize("family,settings", [
    ("autoencoder", {"channels": "4,8", "code": 8}),
    ("conv_vae", {"channels": "4,8", "latent": 4, "judge_metrics": False}),
    ("vae_gan", {"channels": "4,8", "latent": 4, "d_channels": "4,8", "d_hidden": 8, "judge_metrics": False}),
])  # cyclegan at A's size (B resized to it): tests/test_cyclegan.py, the colour domain beside a grey one
def test_a_convolutional_family_trains_at_the_sets_own_size(family, settings):
    """32x32x3 in (synthetic_images as stored), 32x32x3 out; the digits stay 28x28x1."""
    task = aigc_jax.build(family, dataset="synthetic_images", num_examples=SMALL, in_memory_mb=0, parallel="jit",
                          batch_size=8, **settings)
    run = aigc_jax.Run(task)
    assert run.task.image_size == 32 and run.data.test["image"].shape[1:] == (32, 32, 3)
    run.train(2)
    grids = [v for v in run.sample_outputs(seed=0).values() if np.ndim(v) == 4]  # reconstructions, samples
    assert grids and all(v.shape[-3:] == (32, 32, 3) for v in grids), [np.shape(v) for v in grids]
    digits = aigc_jax.build(family, parallel="jit", batch_size=8, **settings)
    assert digits.load_data().test["image"].shape[1:] == (28, 28, 1)


@pytest.mark.parametrize("family", ["mlp_gan"])
def test_a_grey_family_reads_a_colour_set_in_grey(family):
    task = aigc_jax.build(family, dataset="synthetic_images", num_examples=SMALL, judge_metrics=False,
                          parallel="jit", batch_size=8)
    data = task.load_data()
    assert data.test["image"].shape[-1] == 1 and task.bind(data).image_channels == 1


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_a_classifier_reads_a_set_at_its_own_size(family):
    """The classifiers take size and channels from the dataset: 32x32x3 for synthetic_images (no
    resize), the digits at 28x28x1 as before; config.image_size resizes (the judge's 28)."""
    for dataset, size, shape in (("synthetic_images", 0, (32, 32, 3)), ("digits", 0, (28, 28, 1)),
                                 ("synthetic_images", 28, (28, 28, 3))):
        task = aigc_jax.build(family, dataset=dataset, num_examples=SMALL, parallel="jit", batch_size=8,
                              in_memory_mb=0, image_size=size)
        data = task.load_data()
        assert data.test["image"].shape[1:] == shape
        assert sampler.take(data.train, np.arange(4))["image"].shape == (4, *shape)


@pytest.mark.parametrize("dataset,size", [("synthetic_images", 32), ("digits", 28)])
def test_the_batched_reader_reads_what_tfds_reads(dataset, size):
    """`ArrayRecordExamples` (batched reads per shard, its own parse) against tfds.data_source, for a
    tensor stored as raw bytes (synthetic_images) and as an int64 list (the digits)."""
    from aigc_jax.data.dirs import tfds_data_dir
    from aigc_jax.data.records import ArrayRecordExamples

    _, sources = images.image_sources(dataset, tfds_data_dir(), size, SMALL)
    fast = ArrayRecordExamples.of(sources["train"])
    assert fast is not None and len(fast) == len(sources["train"])
    indices = np.random.default_rng(0).permutation(len(fast))[:40]
    theirs = sources["train"].__getitems__([int(i) for i in indices])
    for ours, their in zip(fast.__getitems__(indices), theirs):
        assert ours.keys() == their.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], their[key])
    columns = fast.read_columns(indices)  # the batch parse (or, for the digits' int lists, protobuf's)
    assert columns.keys() == theirs[0].keys()
    for key, column in columns.items():
        np.testing.assert_array_equal(column, np.stack([t[key] for t in theirs]))
    with pytest.raises(IndexError):
        fast.__getitems__([len(fast)])


def test_a_batch_is_resized_as_pillow_resizes_each_image():
    from PIL import Image

    batch = np.stack([synthetic_images.draw(0, i)[0] for i in range(4)])
    ours = images.ImageDecoder("image", 28, colour=True).to_float(batch)
    theirs = np.stack([np.stack([np.asarray(Image.fromarray(im[..., c].astype(np.float32)).resize(
        (28, 28), Image.Resampling.BILINEAR)) for c in range(3)], -1) for im in batch]) / 255.0
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_text_windows_read_from_disk_are_the_windows_in_memory():
    """A corpus on disk is read window by window (records joined by the separator, as in memory),
    and a language model trains on it step for step as on the whole corpus in memory, and scores
    held-out windows read from disk as those in memory."""
    from aigc_jax.data import text
    from aigc_jax.data.dirs import tfds_data_dir

    seq_len = 32
    in_memory = text.load_text_splits("pydoc_text", "", seq_len)
    windows = text.TextWindows.of(text._text_sources("pydoc_text", tfds_data_dir())["train"], seq_len)
    assert len(windows) == in_memory.num_train
    picked = np.concatenate([np.random.default_rng(0).permutation(len(windows))[:300], [0, len(windows) - 1]])
    np.testing.assert_array_equal(text.stack_windows(windows.__getitems__(picked))["tokens"],
                                  in_memory.train["tokens"][picked])
    np.testing.assert_array_equal(windows.seen, np.unique(in_memory.train["tokens"]))

    task = aigc_jax.build("gpt", seq_len=seq_len, width=16, layers=1, heads=2, batch_size=8, parallel="jit",
                          sample_tokens=8)
    constants = task.load_data().constants  # the encoded prompt
    held_out = text.TextWindows.of(text._text_sources("pydoc_text", tfds_data_dir())["test"], seq_len)
    runs = [aigc_jax.Run(task, data=Splits(train=train, test=test, constants=constants))
            for train, test in ((in_memory.train, in_memory.test),
                                (RecordSplit(windows, text.stack_windows, "pydoc_text"),
                                 RecordSplit(held_out, text.stack_windows, "pydoc_text")))]
    assert [runs[0].step() for _ in range(3)] == [runs[1].step() for _ in range(3)]
    assert runs[0].evaluate() == runs[1].evaluate()  # the held-out windows read from disk score the same


class _CountingSource:
    """A data source that counts the records read through it."""

    def __init__(self, source):
        self.source, self.read = source, 0
        self.dataset_info, self.split = source.dataset_info, source.split

    def __len__(self):
        return len(self.source)

    def __getitems__(self, indices):
        self.read += len(indices)
        return self.source.__getitems__(indices)


def test_a_text_splits_record_index_is_read_once_and_kept_beside_the_data(tmp_path, monkeypatch):
    """A corpus on disk is not read whole again at every start: its record index is cached under
    its files' fingerprint, read again when a file changes or the cache is damaged, and a cache
    that cannot be written costs only the read."""
    import os

    from aigc_jax.data import text
    from aigc_jax.data.dirs import tfds_data_dir

    raw = text._text_sources("pydoc_text", tfds_data_dir())["train"]
    expected = text.TextWindows.of(raw, 32)
    cache = str(tmp_path / "text_index")

    first = _CountingSource(raw)
    windows = text.TextWindows.of(first, 32, cache)
    assert first.read == len(raw)
    np.testing.assert_array_equal(windows.starts, expected.starts)
    np.testing.assert_array_equal(windows.seen, expected.seen)
    (index_file,) = os.listdir(cache)

    again = _CountingSource(raw)
    reused = text.TextWindows.of(again, 64, cache)  # another seq_len: the same index
    assert again.read == 0 and len(reused) == (expected.stream_length - 1) // 64
    np.testing.assert_array_equal(reused.starts, expected.starts)

    with open(os.path.join(cache, index_file), "wb") as f:
        f.write(b"torn")
    damaged = _CountingSource(raw)
    np.testing.assert_array_equal(text.TextWindows.of(damaged, 32, cache).starts, expected.starts)
    assert damaged.read == len(raw) and os.listdir(cache) == [index_file]

    shard = sorted(raw.dataset_info.splits["train"].filepaths)[0]
    stat = os.stat(shard)
    try:
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # the data changed
        changed = _CountingSource(raw)
        text.TextWindows.of(changed, 32, cache)
        assert changed.read == len(raw)
    finally:
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    blocked = tmp_path / "not_a_dir"
    blocked.write_text("")
    unwritable = _CountingSource(raw)
    np.testing.assert_array_equal(text.TextWindows.of(unwritable, 32, str(blocked)).starts, expected.starts)
    assert unwritable.read == len(raw)

    # A catalog corpus larger than in_memory_mb keeps its index in <data dir>/text_index.
    monkeypatch.delitem(text.EMBEDDED_BUILDERS, "pydoc_text")  # read it as a catalog set is read
    on_disk = text.load_text_splits("pydoc_text", tfds_data_dir(), 32, in_memory_mb=0)
    assert isinstance(on_disk.train, RecordSplit) and isinstance(on_disk.test, RecordSplit)
    assert len(on_disk.train) == len(expected)
    cached = os.listdir(os.path.join(tfds_data_dir(), text.INDEX_DIR))
    assert {"train", "test"} <= {name.split("-")[-2] for name in cached if name.startswith("pydoc_text")}
