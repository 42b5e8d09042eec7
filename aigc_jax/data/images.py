"""Image classification datasets as in-memory float arrays: the embedded digits or a TFDS catalog set."""

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from aigc_jax.data import digits, printed_digits
from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.data.embedded import catalog_sources, prepare, read_all
from aigc_jax.data.splits import Splits
from aigc_jax.errors import UserError

EMBEDDED = "digits"
# Other embedded image sets: built here like the digits (no network), same features and sizes.
EMBEDDED_OTHERS = {"printed_digits": printed_digits.PrintedDigits}


def prepare_digits(data_dir: str) -> tfds.core.DatasetBuilder:
    """Build the embedded digits into `data_dir` once (about a second); later calls only open it."""
    return prepare(digits.Digits, data_dir)


def _to_float(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, C] -> float32 [N, size, size, 1] in [0, 1] (grey, resized if needed)."""
    images = images.astype(np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] > 1:
        images = images.mean(axis=-1, keepdims=True)
    if images.shape[1:3] != (size, size):
        images = np.stack([
            np.asarray(Image.fromarray(im[..., 0]).resize((size, size), Image.Resampling.BILINEAR))
            for im in images])[..., None]
    return images / 255.0


def load_image_splits(dataset: str, data_dir: str = "", image_size: int = 28) -> Splits:
    """{"image": float32 [N, S, S, 1] in [0, 1], "label": int32 [N]} for train and test."""
    data_dir = tfds_data_dir(data_dir)
    if dataset == EMBEDDED or dataset in EMBEDDED_OTHERS:
        key = {28: "image", 32: "image32"}.get(image_size, "image32")
        builder = EMBEDDED_OTHERS.get(dataset)
        sources = (prepare(builder, data_dir) if builder else prepare_digits(data_dir)).as_data_source()
    else:
        key = "image"
        sources = catalog_sources(dataset, data_dir, EMBEDDED)
    out = {}
    for split in ("train", "test"):
        records = read_all(sources[split], dataset, data_dir)
        if records and ("label" not in records[0] or key not in records[0]):
            raise UserError(f"dataset {dataset!r} has features {sorted(records[0])}; "
                            f"expected an image dataset with 'image' and 'label'")
        out[split] = {
            "image": _to_float(np.stack([r[key] for r in records]), image_size),
            "label": np.asarray([r["label"] for r in records], np.int32),
        }
    return Splits(train=out["train"], test=out["test"])
