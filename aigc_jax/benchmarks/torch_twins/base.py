"""What every twin shares: device and dtype handling, torch.compile, the JAX optimizers' torch
equivalents, and the mapping between JAX and torch weights.

A twin holds its modules and optimizers. `step(batch, noise=None)` is one full engine step (for
GANs: a discriminator and a generator update; with truncated BPTT: one update per segment) and
returns its losses as tensors; `noise` lets a test feed the JAX task's own random draws so both
frameworks compute the same numbers.

`jax_weights(tree)` is each twin's one weight mapping: {name: (torch parameter, the JAX array it
mirrors, in torch's layout)}. `load_jax` copies through it; the tests read the updated JAX state
and Adam's moments back through it. The layout helpers below are elementwise rearrangements
(transpose, reshape, flip, concatenate), so the mapping applies to any tree shaped like the
parameters, Adam's moments included.
"""

import contextlib
import math

import numpy as np
import torch
from torch import nn

Weights = dict[str, tuple[torch.Tensor, np.ndarray]]


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

    def jax_weights(self, tree) -> Weights:
        """{name: (torch parameter, its JAX counterpart in torch's layout)} for `tree`: the JAX
        family's parameters as `jax_tree` gives them, or a tree shaped like them."""
        raise NotImplementedError

    @torch.no_grad()
    def load_jax(self, state) -> None:
        """Copy the weights of a JAX train state into the twin's modules."""
        for name, (param, value) in self.jax_weights(jax_tree(state)).items():
            if tuple(param.shape) != value.shape:  # copy_ would broadcast a wrong shape silently
                raise ValueError(f"{name}: torch {tuple(param.shape)} vs JAX {value.shape}")
            param.copy_(torch.from_numpy(np.array(value, np.float32)))  # a writable copy


def jax_tree(state, part=lambda train_state: train_state.params):
    """`part` of a JAX family's TrainState (its params by default); {"g": ..., "d": ...} for a GAN."""
    if hasattr(state, "g") and hasattr(state, "d"):
        return {"g": part(state.g), "d": part(state.d)}
    return part(state)


def images_nchw(twin: Twin, images) -> torch.Tensor:
    return twin.tensor(np.asarray(images, np.float32).transpose(0, 3, 1, 2))


# --- JAX layouts -> torch layouts ----------------------------------------------------------------

def array(x) -> np.ndarray:
    return np.asarray(x, np.float32)


def dense(kernel) -> np.ndarray:
    """flax Dense [in, out] -> torch Linear [out, in]."""
    return array(kernel).T


def conv(kernel) -> np.ndarray:
    """flax Conv HWIO -> torch Conv2d OIHW."""
    return array(kernel).transpose(3, 2, 0, 1)


def conv_transpose(kernel) -> np.ndarray:
    """flax ConvTranspose [kh, kw, in, out] -> torch ConvTranspose2d [in, out, kh, kw]. flax (with its
    default transpose_kernel=False) correlates the stride-dilated input with the kernel as stored;
    torch's is the gradient of a convolution, which correlates with the kernel flipped spatially."""
    return array(kernel)[::-1, ::-1].transpose(2, 3, 0, 1)


def flat_rows(kernel, hwc: tuple) -> np.ndarray:
    """A Dense after flattening NHWC features (JAX) -> a Linear after flattening NCHW ones (torch)."""
    h, w, c = hwc
    return dense(array(kernel).reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1))


def heads_in(kernel) -> np.ndarray:
    """flax attention's query/key/value kernel [width, heads, head_dim] -> Linear [heads*head_dim, width]."""
    k = array(kernel)
    return k.reshape(k.shape[0], -1).T


def heads_out(kernel) -> np.ndarray:
    """flax attention's output kernel [heads, head_dim, width] -> Linear [width, heads*head_dim]."""
    k = array(kernel)
    return k.reshape(-1, k.shape[-1]).T


def weight_bias(name: str, module: nn.Module, params: dict, layout=dense) -> Weights:
    """A flax layer's {"kernel", "bias"} (bias optional) and the torch module's {weight, bias};
    `layout` rearranges the kernel (dense for nn.Linear, conv for nn.Conv2d, ...)."""
    out = {f"{name}.weight": (module.weight, layout(params["kernel"]))}
    if module.bias is not None:
        out[f"{name}.bias"] = (module.bias, array(params["bias"]))
    return out


def norm(name: str, module: nn.Module, params: dict) -> Weights:
    """A flax LayerNorm/BatchNorm {"scale", "bias"} and torch's {weight, bias}."""
    return {f"{name}.weight": (module.weight, array(params["scale"])), f"{name}.bias": (module.bias, array(params["bias"]))}


def attention(name: str, params: dict, qkv_weight: torch.Tensor, qkv_bias: torch.Tensor, out: nn.Linear) -> Weights:
    """flax MultiHeadDotProductAttention's separate query/key/value and out DenseGenerals -> a fused
    [3 * width, width] input projection (q, k, v stacked, heads major as torch splits them) and
    an output nn.Linear."""
    qkv = [params[part] for part in ("query", "key", "value")]
    return {f"{name}.qkv.weight": (qkv_weight, np.concatenate([heads_in(p["kernel"]) for p in qkv])),
            f"{name}.qkv.bias": (qkv_bias, np.concatenate([array(p["bias"]).reshape(-1) for p in qkv])),
            **weight_bias(f"{name}.out", out, params["out"], heads_out)}


def dense_stack(name: str, module: nn.Module, params: dict) -> Weights:
    """flax's auto-named Dense_0, Dense_1, ... and the nn.Linear layers of `module`, in order."""
    out = {}
    for i, layer in enumerate(linears(module)):
        out |= weight_bias(f"{name}.Dense_{i}", layer, params[f"Dense_{i}"])
    return out


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


# --- the sequence families' optimizer (aigc_jax/tasks/optim.py) ----------------------------------

def schedule(cfg: dict, updates_per_step: int = 1):
    """The family's learning-rate schedule as a multiplier of the base rate at update n (LambdaLR's
    form): linear warm-up from 0 over `warmup_steps`, then cosine decay to 0 at `steps`, or constant.
    Counted in optimizer updates, as optax counts them. Without the keys: constant, no warm-up."""
    warmup = int(cfg.get("warmup_steps", 0)) * updates_per_step
    cosine = cfg.get("lr_schedule", "constant") == "cosine"
    decay = max(int(cfg.get("steps", 1)) * updates_per_step - warmup, 1)

    def factor(n: int) -> float:
        if n < warmup:
            return n / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(n - warmup, decay) / decay)) if cosine else 1.0

    return factor


class ScheduledAdam:
    """`adam_optimizer`'s torch twin: global-norm gradient clipping (`clip_norm`, 0 = off), then
    Adam, or AdamW with decoupled `weight_decay`, at the config's scheduled learning rate."""

    def __init__(self, params, cfg: dict, default_lr: float, weight_decay: float = 0.0, updates_per_step: int = 1):
        self.params = [p for p in params if p.requires_grad]
        lr = float(cfg.get("learning_rate", default_lr))
        self.opt = (torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay) if weight_decay
                    else torch.optim.Adam(self.params, lr=lr))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule(cfg, updates_per_step))
        self.clip_norm = float(cfg.get("clip_norm", 0.0))

    def zero_grad(self) -> None:
        self.opt.zero_grad()

    def step(self) -> None:
        if self.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        self.opt.step()
        self.scheduler.step()
