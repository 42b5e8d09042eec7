"""`digits`: the real UCI handwritten digits that scikit-learn ships inside its wheel, as a TFDS dataset.

1,797 grey 8x8 images of the digits 0-9 (16 grey levels): scikit-learn's copy is the test part of
the UCI "Optical Recognition of Handwritten Digits" set, written by 13 people (its 30 training
writers are not included). Stored at 28x28 (`image`, the MNIST size) and 32x32
(`image32`, for convolutional GANs), upsampled bilinearly from 8x8 with Pillow, uint8 in [0, 255].

The split is fixed and documented: a permutation of the 1,797 examples drawn with
`numpy.random.default_rng(0)`; the first 1,437 are `train`, the last 360 are `test` (80/20). It
is by image, so the two splits share writers.
The builder needs no network and no TensorFlow: it writes array_record files that
`tfds.data_source` reads.
"""

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

NUM_EXAMPLES = 1797
NUM_TRAIN = 1437
NUM_TEST = NUM_EXAMPLES - NUM_TRAIN
SPLIT_SEED = 0


def _upsample(image8: np.ndarray, size: int) -> np.ndarray:
    grey = Image.fromarray((image8 * (255.0 / 16.0)).round().astype(np.uint8))
    return np.asarray(grey.resize((size, size), Image.Resampling.BILINEAR))[..., None]


def split_indices() -> dict[str, np.ndarray]:
    order = np.random.default_rng(SPLIT_SEED).permutation(NUM_EXAMPLES)
    return {"train": order[:NUM_TRAIN], "test": order[NUM_TRAIN:]}


class Digits(tfds.core.GeneratorBasedBuilder):
    """UCI handwritten digits (scikit-learn's copy) at 28x28 and 32x32."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: fixed 1437/360 split, 28x28 and 32x32 images."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "image32": tfds.features.Tensor(shape=(32, 32, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the data ships inside scikit-learn; nothing is downloaded
        return {name: self._generate_examples(idx) for name, idx in split_indices().items()}

    def _generate_examples(self, indices):
        from sklearn.datasets import load_digits

        digits = load_digits()
        for i in indices:
            yield int(i), {
                "image": _upsample(digits.images[i], 28),
                "image32": _upsample(digits.images[i], 32),
                "label": int(digits.target[i]),
            }
