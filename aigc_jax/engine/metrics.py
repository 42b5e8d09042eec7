"""Where metrics go: metrics.jsonl (one object per logged step), TensorBoard, and the progress bar."""

import json
import math
import os

import numpy as np
from tqdm import tqdm


def to_python(metrics: dict) -> dict:
    return {k: float(np.asarray(v)) for k, v in metrics.items()}


class MetricWriter:
    """Appends to `metrics.jsonl` and writes TensorBoard event files under `workdir`.

    On resume, lines past the restored step are dropped, so the file matches an uninterrupted run.
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
        with open(self.path) as f:
            rows = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        with open(self.path, "w") as f:
            f.writelines(rows)

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
