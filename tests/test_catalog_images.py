"""A TFDS catalog image set once prepared (`--config.dataset=cifar10`), without the network: TFDS's
own cifar10 builder writes its array_record files with its own features (PNG-encoded 32x32x3
images, 10 labels, ids), fed with synthetic_images drawings in place of the download. So the
files are cifar10's format; the pictures are synthetic."""

import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import aigc_jax
from aigc_jax.data import images, synthetic_images
from aigc_jax.data.records import RecordSplit

TRAIN, TEST = 96, 48


def _png(image: np.ndarray) -> io.BytesIO:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    out.seek(0)
    return out


def _examples(split: int, n: int):
    for i in range(n):
        image, label = synthetic_images.draw(split, i)
        yield f"{split}_{i}", {"id": f"{split}_{i:05d}", "image": _png(image), "label": int(label)}


@pytest.fixture(scope="module")
def cifar10_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = tfds.builder("cifar10", data_dir=data_dir, file_format="array_record")
    with pytest.MonkeyPatch.context() as patch:  # the download replaced by drawings, the rest TFDS's own
        patch.setattr(type(builder), "_split_generators",
                      lambda self, dl_manager: {"train": _examples(0, TRAIN), "test": _examples(1, TEST)})
        builder.download_and_prepare()
    return data_dir


def _as_bytes(batch: np.ndarray) -> set[bytes]:
    return {np.round(image * 255).astype(np.uint8).tobytes() for image in batch}


def test_a_prepared_catalog_set_is_read_in_colour_and_streamed(cifar10_dir):
    splits = images.load_image_splits("cifar10", cifar10_dir, image_size=32, colour=True, in_memory_mb=0)
    assert isinstance(splits.train, RecordSplit) and splits.num_train == TRAIN
    assert splits.test["image"].shape == (TEST, 32, 32, 3) and splits.constants == {"image_channels": 3}
    # TFDS shuffles records as it writes them: compare the images as sets, with their labels.
    drawn = {image.tobytes(): label for image, label in (synthetic_images.draw(1, i) for i in range(TEST))}
    assert _as_bytes(splits.test["image"]) == set(drawn)
    for image, label in zip(splits.test["image"], splits.test["label"]):
        assert drawn[np.round(image * 255).astype(np.uint8).tobytes()] == label
    train = splits.train.take(np.arange(TRAIN))
    assert _as_bytes(train["image"]) == {synthetic_images.draw(0, i)[0].tobytes() for i in range(TRAIN)}

    grey = images.load_image_splits("cifar10", cifar10_dir, image_size=28)
    assert grey.test["image"].shape == (TEST, 28, 28, 1) and grey.num_train == TRAIN


def test_dcgan_trains_on_a_prepared_catalog_set_in_colour(cifar10_dir):
    task = aigc_jax.build("dcgan", dataset="cifar10", data_dir=cifar10_dir, judge_metrics=False, in_memory_mb=0,
                          parallel="jit", latent=8, g_channels="16,8,8", d_channels="8,8,16", batch_size=8)
    run = aigc_jax.Run(task)
    before = run.sample_outputs(seed=0)["samples"]
    run.train(2)
    samples = np.asarray(run.sample_outputs(seed=0)["samples"])
    assert samples.shape[1:] == (32, 32, 3)
    assert np.std(samples, axis=-1).mean() > 0  # the channels differ: colour, not grey
    assert not np.allclose(samples, np.asarray(before))  # the generator moved
