"""Twins of `mlp` and `cnn`: digit classifiers, softmax cross-entropy, Adam (seed 004)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import Twin, conv, dense_stack, flat_rows, images_nchw, linears, mlp, pick, weight_bias

IMAGE_SIZE = 28
CLASSES = 10


class _ClassifierTwin(Twin):
    modules = ("net",)

    def _optimizer(self):
        self.opt = torch.optim.Adam(self.net.parameters(), lr=float(self.cfg.get("learning_rate", 1e-3)))

    def random_batch(self, gen: np.random.Generator) -> dict:
        b = self.batch_size
        return {"image": self.tensor(gen.random((b, 1, IMAGE_SIZE, IMAGE_SIZE), np.float32)),
                "label": self.tensor(gen.integers(0, CLASSES, b), torch.long)}

    def from_host(self, batch: dict) -> dict:
        return {"image": images_nchw(self, batch["image"]), "label": self.tensor(batch["label"], torch.long)}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        self.opt.zero_grad()
        with self.autocast():
            logits = self.net(batch["image"])
        loss = F.cross_entropy(logits.float(), batch["label"])
        loss.backward()
        self.opt.step()
        return {"loss": loss}


class MLPTwin(_ClassifierTwin):
    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.hidden = tuple(pick(cfg, (256, 128), "hidden"))
        self.net = nn.Sequential(nn.Flatten(), mlp((IMAGE_SIZE * IMAGE_SIZE, *self.hidden, CLASSES), nn.ReLU)).to(device)
        self._optimizer()

    @property
    def shape(self):
        return {"hidden": list(self.hidden), "batch_size": self.batch_size}

    def jax_weights(self, tree):
        return dense_stack("net", self.net, tree)


class CNNTwin(_ClassifierTwin):
    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.channels = tuple(pick(cfg, (32, 64), "channels"))
        self.hidden = int(pick(cfg, 64, "hidden"))
        layers, c_in, size = [], 1, IMAGE_SIZE
        for ch in self.channels:
            layers += [nn.Conv2d(c_in, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in, size = ch, size // 2
        self.features_hwc = (size, size, c_in)
        layers += [nn.Flatten(), nn.Linear(size * size * c_in, self.hidden), nn.ReLU(), nn.Linear(self.hidden, CLASSES)]
        self.net = nn.Sequential(*layers).to(device)
        self._optimizer()

    @property
    def shape(self):
        return {"channels": list(self.channels), "hidden": self.hidden, "batch_size": self.batch_size}

    def jax_weights(self, tree):
        convs = [m for m in self.net if isinstance(m, nn.Conv2d)]
        first, last = linears(self.net)
        out = {}
        for i, layer in enumerate(convs):
            out |= weight_bias(f"Conv_{i}", layer, tree[f"Conv_{i}"], conv)
        out |= weight_bias("Dense_0", first, tree["Dense_0"], lambda k: flat_rows(k, self.features_hwc))  # after a flatten
        return out | weight_bias("Dense_1", last, tree["Dense_1"])
