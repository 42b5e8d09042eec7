"""Writes what a person looks at: image grids as PNG, generated text as .txt."""

import math
import os

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """[N, H, W, C] floats in [0, 1] -> one uint8 [rows*(H+pad)+pad, ..., C] grid image."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = image
    return (grid * 255).round().astype(np.uint8)


def save_png(path: str, grid: np.ndarray, scale: int = 3) -> str:
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path)
    return path


def write_samples(sample_dir: str, step: int, outputs: dict, writer=None, suffix: str = "") -> list[str]:
    """Write each output as `{name}_{step:06d}{suffix}.png` (images) or `.txt` (text); return the paths."""
    paths = []
    for name, value in outputs.items():
        stem = os.path.join(sample_dir, f"{name}_{step:06d}{suffix}")
        if isinstance(value, str):
            os.makedirs(sample_dir, exist_ok=True)
            with open(stem + ".txt", "w") as f:
                f.write(value)
            paths.append(stem + ".txt")
            if writer is not None:
                writer.text(name, value, step)
        else:
            grid = image_grid(np.asarray(value))
            # Small images (digit grids) are enlarged 3x to be seen; plots and strips already are.
            paths.append(save_png(stem + ".png", grid, scale=3 if max(grid.shape[:2]) < 512 else 1))
            if writer is not None:
                writer.image(name, grid, step)
    return paths
