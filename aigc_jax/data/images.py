"""Image classification datasets as float arrays: the embedded digits, `synthetic_images` or a TFDS catalog
set, in memory or (a large train split) read from disk batch by batch."""

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from aigc_jax.data import digits, printed_digits, synthetic_images
from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.data.embedded import catalog_sources, prepare, read_all
from aigc_jax.data.records import ArrayRecordExamples, RecordSplit, stays_on_disk
from aigc_jax.data.splits import Splits
from aigc_jax.errors import UserError

EMBEDDED = "digits"
DEFAULT_SIZE = 28  # the digits' size, every 28x28 family's default (`Task.image_size`)
# Other embedded image sets: built here like the digits (no network), same features and sizes.
EMBEDDED_OTHERS = {"printed_digits": printed_digits.PrintedDigits}


def prepare_digits(data_dir: str) -> tfds.core.DatasetBuilder:
    """Build the embedded digits into `data_dir` once (about a second); later calls only open it."""
    return prepare(digits.Digits, data_dir)


@dataclasses.dataclass(frozen=True)
class ImageDecoder:
    """Records -> {"image": float32 [N, size, size, C] in [0, 1], "label": int32 [N]}: the stored
    `key` image, resized if needed (`size` None: kept at its stored size), in colour (the dataset's
    channels) or averaged to one grey channel."""

    key: str
    size: int | None
    colour: bool

    def __call__(self, records: list[dict] | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Records as a list of dicts, or as columns (`ArrayRecordExamples.read_columns`)."""
        if isinstance(records, dict):
            images, labels = records[self.key], records["label"]
        else:
            images, labels = np.stack([r[self.key] for r in records]), [r["label"] for r in records]
        return {"image": self.to_float(images), "label": np.asarray(labels, np.int32)}

    def to_float(self, images: np.ndarray) -> np.ndarray:
        images = images.astype(np.float32)
        if images.ndim == 3:
            images = images[..., None]
        if images.shape[-1] > 1 and not self.colour:  # a sum of channel slices: mean(axis=-1) is 8x slower
            images = sum(images[..., c:c + 1] for c in range(images.shape[-1])) / images.shape[-1]
        if self.size is not None and images.shape[1:3] != (self.size, self.size):
            rows, cols = _bilinear(images.shape[1], self.size), _bilinear(images.shape[2], self.size)
            # Products per image: 4x an einsum's speed. (One product over all images' rows is 1.3x
            # faster alone but large enough for OpenBLAS to wake its threads, whose spinning after
            # it slowed the train step that followed by 3 ms on two cores.)
            images = (rows @ images.transpose(0, 3, 1, 2) @ cols.T).transpose(0, 2, 3, 1)
        return images / 255.0


@functools.lru_cache(maxsize=16)
def _bilinear(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in]: Pillow's bilinear resize along one axis as a matrix (its columns are the
    resized unit vectors). Pillow resizes separably and linearly, so applying it to rows and then
    columns of a whole batch at once equals resizing image by image (to float rounding)."""
    eye = np.eye(size_in, dtype=np.float32)
    return np.stack([np.asarray(Image.fromarray(eye[i][None, :]).resize((size_out, 1), Image.Resampling.BILINEAR))[0]
                     for i in range(size_in)], axis=1)


def image_sources(dataset: str, data_dir: str, image_size: int | None, num_examples: int = 0):
    """(stored image key, {split: tfds data source}) of an embedded, synthetic or catalog image set
    (the embedded digits are stored at 28 and 32 pixels; `image_size` None takes 28)."""
    if dataset == EMBEDDED or dataset in EMBEDDED_OTHERS:
        key = {None: "image", 28: "image", 32: "image32"}.get(image_size, "image32")
        builder = EMBEDDED_OTHERS.get(dataset)
        return key, (prepare(builder, data_dir) if builder else prepare_digits(data_dir)).as_data_source()
    if dataset == synthetic_images.NAME:
        config = synthetic_images.config_for(num_examples)
        builder = functools.partial(synthetic_images.SyntheticImages, config=config)
        return "image", prepare(builder, data_dir).as_data_source()
    return "image", catalog_sources(dataset, data_dir, EMBEDDED)


def load_image_splits(dataset: str, data_dir: str = "", image_size: int | None = 28, *, num_examples: int = 0,
                      colour: bool = False, in_memory_mb: float | None = None) -> Splits:
    """{"image": float32 [N, S, S, C] in [0, 1], "label": int32 [N]} for train and test.

    S is `image_size`, or with None the size the images are stored at (28 for the embedded digits).
    C is 1 (grey) unless `colour`, then the dataset's channels (3 for `synthetic_images` or cifar10).
    `in_memory_mb`: a non-embedded train split whose files hold more than this many MiB stays on
    disk as a `RecordSplit`, read batch by batch (None: always read whole; the test split always is). `num_examples` sizes `synthetic_images` (0 = its default).
    The constant "image_channels" (set when it is not 1) tells a generator how many channels to make,
    "image_size" (set with `image_size` None, when it is not DEFAULT_SIZE) how large. Like grey, 28
    needs no constant: a task without constants is not rebuilt by `Task.bind`.
    """
    data_dir = tfds_data_dir(data_dir)
    key, sources = image_sources(dataset, data_dir, image_size, num_examples)
    decode = ImageDecoder(key, image_size, colour)
    records = read_all(sources["test"], dataset, data_dir)
    if records and ("label" not in records[0] or key not in records[0]):
        raise UserError(f"dataset {dataset!r} has features {sorted(records[0])}; "
                        f"expected an image dataset with 'image' and 'label'")
    test = decode(records)
    embedded = dataset == EMBEDDED or dataset in EMBEDDED_OTHERS
    if not embedded and stays_on_disk(sources["train"], in_memory_mb):
        train = RecordSplit(ArrayRecordExamples.of(sources["train"]) or sources["train"], decode, dataset)
    else:
        train = decode(read_all(sources["train"], dataset, data_dir))
    channels = int(test["image"].shape[-1])  # grey (1) is every family's default: no constant needed
    constants = {"image_channels": channels} if channels != 1 else {}
    if image_size is None and test["image"].shape[1] != DEFAULT_SIZE:  # read as stored: the layers follow it
        constants["image_size"] = int(test["image"].shape[1])
    return Splits(train=train, test=test, constants=constants)


def with_channels(splits: Splits, channels: int) -> Splits:
    """In-memory image splits with grey images repeated into `channels` equal channels (a colour
    split is returned as it is; colour to grey is `load_image_splits(colour=False)`'s job)."""
    def widen(split: dict) -> dict:
        c = split["image"].shape[-1]
        if c == channels:
            return split
        if c != 1:
            raise UserError(f"cannot show {c}-channel images in {channels} channels; expected grey (1) or {channels}")
        return {**split, "image": np.repeat(split["image"], channels, axis=-1)}
    return dataclasses.replace(splits, train=widen(splits.train), test=widen(splits.test))


VALIDATION_SEED = 0  # fixed: every run holds out the same train images


def validation_split(splits: Splits) -> Splits:
    """Splits for choosing settings: as many train images as the test split has, drawn once with a
    fixed seed, become the evaluated split (`Splits.test`) and leave the train split; the test split
    is not read. (The judge classifier was trained on the whole train split, these images too: its
    features of them are still those of real digits, which is all FD and diversity ask of it.)"""
    if isinstance(splits.train, RecordSplit):
        raise UserError("config.eval_split='validation' with a train split read from disk; expected a dataset "
                        "small enough to hold in memory (or a larger config.in_memory_mb)")
    n = splits.num_train
    held = splits.num_test
    if held >= n:
        raise UserError(f"config.eval_split='validation': the train split has {n} examples; expected more than "
                        f"the {held} a validation split holds out")
    order = np.random.default_rng(VALIDATION_SEED).permutation(n)
    keep, out = np.sort(order[held:]), np.sort(order[:held])
    train = {k: v[keep] for k, v in splits.train.items()}
    validation = {k: v[out] for k, v in splits.train.items()}
    return dataclasses.replace(splits, train=train, test=validation)
