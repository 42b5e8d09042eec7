"""Where metrics go: metrics.jsonl (one object per logged step), TensorBoard, and the progress bar."""

import json
import math
import os

import numpy as np
from tqdm import tqdm

from aigc_jax.errors import UserError


def to_python(metrics: dict) -> dict:
    return {k: float(np.asarray(v)) for k, v in metrics.items()}


def write_atomically(path: str, text: str) -> None:
    """Replace `path` by `text` so that a crash leaves either the old file or the new one whole."""
    temp = f"{path}.tmp"
    with open(temp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def rows_through(path: str, step: int) -> tuple[list[str], bool]:
    """(the lines of a metrics.jsonl with "step" <= `step`, whether anything else was there).

    A torn last line (power lost mid-write) is dropped; a malformed line before it is not ours to
    guess about: UserError naming it."""
    with open(path, "rb") as f:
        lines = f.read().replace(b"\0", b"").decode("utf-8", errors="replace").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    kept, dropped = [], False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            dropped = True
            continue
        try:
            row_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                dropped = True  # torn trailing line
                continue
            raise UserError(f"{path} line {number} is not a metrics row ({line[:60]!r}); expected one JSON "
                            "object with a step per line (repair or remove the file)") from None
        if row_step <= step:
            kept.append(line + "\n")
        else:
            dropped = True
    return kept, dropped


class MetricWriter:
    """Appends to `metrics.jsonl` and writes TensorBoard event files under `workdir`.

    The file is only ever appended to. On resume, rows past the restored step (and a torn last
    line) are dropped by writing the kept rows to a new file and renaming it over the old one, so
    the file matches an uninterrupted run and a crash at any moment leaves a whole file.
    """

    def __init__(self, workdir: str, start_step: int, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        if not enabled:
            return
        self._truncate_after(start_step)
        self.jsonl = open(self.path, "a")
        # Imported only when a run writes logs: tensorboardX imports torch whenever it is installed,
        # which would slow every import of the engine and break the benchmarks' JAX-only side.
        from tensorboardX import SummaryWriter

        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=start_step or None)

    def _truncate_after(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        kept, dropped = rows_through(self.path, step)
        if dropped:
            write_atomically(self.path, "".join(kept))

    def write(self, step: int, scalars: dict) -> None:
        if not self.enabled:
            return
        clean = {k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()}
        self.jsonl.write(json.dumps({"step": step, **clean}) + "\n")
        self.jsonl.flush()
        for k, v in scalars.items():
            self.tb.add_scalar(k, v, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.enabled:
            self.tb.add_image(tag, image, step, dataformats="HWC")

    def text(self, tag: str, text: str, step: int) -> None:
        if self.enabled:
            self.tb.add_text(tag, text, step)

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.tb.close()


def progress_bar(start: int, total: int, family: str, enabled: bool = True) -> tqdm:
    return tqdm(total=total, initial=start, desc=family, unit="step", dynamic_ncols=True,
                disable=not enabled, smoothing=0.1)
