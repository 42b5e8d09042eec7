"""`printed_digits`: synthetic printed digits 0-9, rendered from fonts, made to look like `digits`.

A generated (synthetic) dataset, the second domain of `cyclegan` (handwritten `digits` <->
printed digits). Every example is one digit drawn with a font that ships inside an installed
package: Pillow's scalable default font (`ImageFont.load_default(size=...)`, Pillow >= 10.1) and
the TrueType fonts in matplotlib's data folder (DejaVu, STIX, Computer Modern; matplotlib is a
dependency), with random jitter: font, height, width, stroke width, rotation and shift.

Each glyph goes through the UCI digits' own preprocessing, so the two domains differ in style and
not in format: a binary 32x32 bitmap with the digit filling the height (as in the UCI set), 4x4
blocks counted into an 8x8 image of levels 0-16, then upsampled bilinearly to 28x28 (`image`) and
32x32 (`image32`) exactly as `digits` is (`digits._upsample`), uint8 in [0, 255].

The split is fixed: example `i` of split `s` shows digit `i % 10` and draws its font and jitter
from `numpy.random.default_rng([SEED, s, i])` (s = 0 train, 1 test): 2,000 train and 400 test
examples, every class equally often. No network and no TensorFlow are needed (array_record).
"""

import functools
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageDraw, ImageFont

from aigc_jax.data.digits import _upsample

SEED = 0
SPLITS = {"train": (0, 2000), "test": (1, 400)}  # name -> (split id in the seed, examples)
BITMAP = 32  # the UCI bitmaps are 32x32, counted in 4x4 blocks into 8x8
RENDER = 128  # glyphs are drawn at 4x the bitmap size, then reduced
GLYPH_PX = 96  # font size of the first drawing, before the glyph is cropped and rescaled
# matplotlib's TrueType fonts with digit glyphs (its symbol-only STIX fonts and DejaVuSerifDisplay,
# which has no digits, are left out).
MATPLOTLIB_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf",
)
PILLOW_DEFAULT = "pillow-default"


def font_names() -> tuple[str, ...]:
    """The fonts examples draw from: Pillow's default and every listed matplotlib font installed."""
    folder = _matplotlib_font_dir()
    return (PILLOW_DEFAULT, *(n for n in MATPLOTLIB_FONTS if os.path.isfile(os.path.join(folder, n))))


def _matplotlib_font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@functools.lru_cache(maxsize=None)
def _font(name: str) -> ImageFont.FreeTypeFont:
    if name == PILLOW_DEFAULT:
        return ImageFont.load_default(size=GLYPH_PX)
    return ImageFont.truetype(os.path.join(_matplotlib_font_dir(), name), GLYPH_PX)


def _crop(glyph: Image.Image) -> Image.Image:
    box = glyph.getbbox()
    return glyph.crop(box) if box else glyph


def render_bitmap(digit: int, rng: np.random.Generator, fonts: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """(binary [32, 32] bitmap of `digit` with random font and jitter, the font's name)."""
    name = fonts[int(rng.integers(len(fonts)))]
    stroke = int(rng.integers(0, 5))  # pixels at GLYPH_PX: thin print to pen-like strokes
    canvas = Image.new("L", (2 * GLYPH_PX, 2 * GLYPH_PX), 0)
    ImageDraw.Draw(canvas).text((GLYPH_PX // 2, GLYPH_PX // 4), str(digit), fill=255, font=_font(name),
                                stroke_width=stroke, stroke_fill=255)
    glyph = _crop(_crop(canvas).rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR,
                                       expand=True, fillcolor=0))
    # The UCI bitmaps are scaled to fill the height; widths vary with the writer.
    height = int(round(RENDER * rng.uniform(0.85, 1.0)))
    width = int(round(glyph.width / glyph.height * height * rng.uniform(0.8, 1.25)))
    width = max(8, min(width, RENDER))
    glyph = glyph.resize((width, height), Image.Resampling.BILINEAR)
    bitmap = Image.new("L", (RENDER, RENDER), 0)
    dx, dy = int(rng.integers(-10, 11)), int(rng.integers(-(RENDER - height) // 2, (RENDER - height) // 2 + 1))
    bitmap.paste(glyph, ((RENDER - width) // 2 + dx, (RENDER - height) // 2 + dy))
    small = np.asarray(bitmap.resize((BITMAP, BITMAP), Image.Resampling.BOX))
    return small >= 128, name


def to_8x8(bitmap: np.ndarray) -> np.ndarray:
    """The UCI reduction: on-pixels counted in 4x4 blocks, [32, 32] bool -> [8, 8] levels 0..16."""
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float64)


def render_example(split_id: int, index: int, seed: int = SEED, fonts: tuple[str, ...] | None = None) -> dict:
    """Example `index` of a split: digit `index % 10`, font and jitter from (seed, split, index)."""
    rng = np.random.default_rng([seed, split_id, index])
    digit = index % 10
    bitmap, name = render_bitmap(digit, rng, fonts or font_names())
    image8 = to_8x8(bitmap)
    return {"image": _upsample(image8, 28), "image32": _upsample(image8, 32), "label": digit, "font": name}


class PrintedDigits(tfds.core.GeneratorBasedBuilder):
    """Synthetic printed digits (installed fonts, random jitter) in the style of the UCI digits."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 2000 train / 400 test, Pillow + matplotlib fonts."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "image32": tfds.features.Tensor(shape=(32, 32, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
                "font": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # generated data: nothing is downloaded
        return {name: self._generate_examples(split_id, n) for name, (split_id, n) in SPLITS.items()}

    def _generate_examples(self, split_id, num_examples):
        fonts = font_names()
        for i in range(num_examples):
            yield i, render_example(split_id, i, fonts=fonts)
