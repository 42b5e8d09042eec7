"""What every twin shares: device and dtype handling, torch.compile, and copying JAX weights.

A twin holds its modules and optimizers. `step(batch, noise=None)` is one full optimizer update
(for GANs: a discriminator and a generator update) and returns its losses as tensors; `noise`
lets a test feed the JAX task's own random draws so both frameworks compute the same numbers.
Weights are copied from a JAX train state by `load_jax` (flax Dense kernels are [in, out], torch
Linear weights [out, in]; flax convolutions are HWIO, torch's OIHW).
"""

import contextlib

import numpy as np
import torch
from torch import nn


def pick(cfg: dict, default, *names):
    """The first of `names` present in the JAX family's config, else `default` (the reference shape)."""
    return next((cfg[n] for n in names if n in cfg), default)


class Twin:
    modules: tuple[str, ...] = ()  # attribute names of the nn.Modules that `compile` wraps

    def __init__(self, cfg: dict, device: torch.device, dtype: str = "float32"):
        self.cfg, self.device, self.dtype = cfg, device, dtype
        self.batch_size = int(cfg.get("batch_size", 32))

    @property
    def shape(self) -> dict:
        """The twin's sizes, recorded beside its timings."""
        return {}

    def autocast(self):
        """bfloat16 compute with float32 parameters, as the JAX families' `dtype` does."""
        if self.dtype == "bfloat16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def compile(self) -> None:
        for name in self.modules:
            setattr(self, name, torch.compile(getattr(self, name)))

    def tensor(self, array, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.array(array), dtype=dtype, device=self.device)  # a copy: torch wants writable memory

    def random_batch(self, gen: np.random.Generator) -> dict:
        raise NotImplementedError

    def from_host(self, batch: dict) -> dict:
        """A JAX-side host batch (numpy, NHWC images) -> this twin's tensors."""
        raise NotImplementedError

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        raise NotImplementedError

    def load_jax(self, state) -> None:
        raise NotImplementedError


def images_nchw(twin: Twin, images) -> torch.Tensor:
    return twin.tensor(np.asarray(images, np.float32).transpose(0, 3, 1, 2))


@torch.no_grad()
def set_linear(linear: nn.Linear, params: dict, rows_from_hwc: tuple | None = None) -> None:
    """Copy a flax Dense's {"kernel" [in, out], "bias"}. `rows_from_hwc=(h, w, c)`: the Dense follows a
    flatten of NHWC features in JAX and of NCHW features in torch, so reorder its input rows."""
    kernel = np.asarray(params["kernel"], np.float32)
    if rows_from_hwc is not None:
        h, w, c = rows_from_hwc
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
    if linear.bias is not None:
        linear.bias.copy_(torch.from_numpy(np.array(params["bias"], np.float32)))


@torch.no_grad()
def set_conv(conv: nn.Conv2d, params: dict) -> None:
    """Copy a flax Conv's {"kernel" HWIO, "bias"} into a torch Conv2d (OIHW)."""
    conv.weight.copy_(torch.from_numpy(np.asarray(params["kernel"], np.float32).transpose(3, 2, 0, 1).copy()))
    if conv.bias is not None:
        conv.bias.copy_(torch.from_numpy(np.array(params["bias"], np.float32)))


def set_dense_stack(linears, params: dict, prefix: str = "Dense_") -> None:
    """Copy flax's auto-named Dense_0, Dense_1, ... into a sequence of nn.Linear, in order."""
    for i, linear in enumerate(linears):
        set_linear(linear, params[f"{prefix}{i}"])


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def mlp(widths, hidden_act, out_act=None) -> nn.Sequential:
    """Linear layers through `widths`, `hidden_act()` between them, `out_act()` at the end if given."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(hidden_act())
    if out_act is not None:
        layers.append(out_act())
    return nn.Sequential(*layers)
