"""Twin of `ddpm`: class-conditional U-Net over 2x2 patches, DDPM noise-prediction (or flow) loss, clipped Adam, EMA."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import ScheduledAdam, Twin, array, conv, heads_in, heads_out, norm, pick, weight_bias
from aigc_jax.tasks.ddpm import IMAGE_SIZE, NUM_CLASSES, cosine_alpha_bar  # the JAX task's constants and schedule

GN_EPS = 1e-6  # flax GroupNorm's (torch's default is 1e-5)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]  # the JAX model's order of products: same roundoff
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels, eps=GN_EPS)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_width: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.cond = nn.Linear(cond_width, 2 * c_out)
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, cond):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.cond(F.silu(cond))[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1.0 + scale) + shift))
        return (x if self.skip is None else self.skip(x)) + h


class SelfAttention(nn.Module):
    """Every pixel attends to every pixel of its image, one head per 32 channels, residual."""

    def __init__(self, channels: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.qkv, self.out = nn.Linear(channels, 3 * channels), nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        q, k, v = self.qkv(y).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        return x + self.out(y).transpose(1, 2).reshape(b, c, h, w)


class Block(nn.Module):
    """A ResBlock, then self-attention at the grid sizes that have it."""

    def __init__(self, c_in: int, c_out: int, cond_width: int, attend: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, cond_width)
        self.attn = SelfAttention(c_out) if attend else None

    def forward(self, x, cond):
        h = self.res(x, cond)
        return h if self.attn is None else self.attn(h)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # flax's "SAME" at stride 2 pads 0 before, 1 after


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, channels: tuple, blocks: int, attention_at: tuple, image_channels: int, patch: int):
        super().__init__()
        self.channels, self.patch = channels, patch
        width = 4 * channels[0]
        self.time = nn.Sequential(nn.Linear(channels[0], width), nn.SiLU(), nn.Linear(width, width))
        self.label = nn.Embedding(NUM_CLASSES + 1, width)
        self.input = nn.Conv2d(patch * patch * image_channels, channels[0], 3, padding=1)
        # Registered in the JAX model's order of creation (jax_weights numbers them so).
        self.down, self.mid, self.up = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        size, c, skips = IMAGE_SIZE // patch, channels[0], [channels[0]]
        for level, features in enumerate(channels):
            for _ in range(blocks):
                self.down.append(Block(c, features, width, size in attention_at))
                c = features
                skips.append(c)
            if level < len(channels) - 1:
                self.down.append(Downsample(c))
                skips.append(c)
                size //= 2
        self.mid.append(Block(c, c, width, True))
        self.mid.append(Block(c, c, width, False))
        for level, features in reversed(list(enumerate(channels))):
            for _ in range(blocks + 1):
                self.up.append(Block(c + skips.pop(), features, width, size in attention_at))
                c = features
            if level > 0:
                self.up.append(Upsample(c))
                size *= 2
        self.out_norm = group_norm(c)
        self.output = nn.Conv2d(c, patch * patch * image_channels, 3, padding=1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x, t, label):
        cond = self.time(timestep_embedding(t, self.channels[0])) + self.label(label)
        h = self.input(F.pixel_unshuffle(x, self.patch))
        skips = [h]
        for layer in self.down:
            h = layer(h) if isinstance(layer, Downsample) else layer(h, cond)
            skips.append(h)
        for block in self.mid:
            h = block(h, cond)
        for layer in self.up:
            h = layer(h) if isinstance(layer, Upsample) else layer(torch.cat([h, skips.pop()], dim=1), cond)
        return F.pixel_shuffle(self.output(F.silu(self.out_norm(h))), self.patch)


def patch_channels(kernel: np.ndarray, axis: int, patch: int) -> np.ndarray:
    """The JAX model folds a patch into channels (row, column, channel); torch's pixel_unshuffle
    into (channel, row, column): reorder `axis` of a weight from the first order to the second."""
    k = np.moveaxis(kernel, axis, 0)
    k = k.reshape(patch * patch, -1, *k.shape[1:]).swapaxes(0, 1).reshape(k.shape)
    return np.moveaxis(k, 0, axis)


class DDPMTwin(Twin):
    modules = ("net",)

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.patch = int(pick(cfg, 2, "patch"))
        self.channels = tuple(pick(cfg, (32, 64, 64), "channels"))
        self.blocks = int(pick(cfg, 1, "blocks"))
        self.attention_at = tuple(pick(cfg, (8,), "attention_at"))
        # The digits' one grey channel; a colour dataset's count is known from its data, not the config.
        self.image_channels = int(pick(cfg, 1, "image_channels"))
        self.objective = cfg.get("objective", "eps")
        if self.objective not in ("eps", "flow"):
            raise ValueError(f"objective={self.objective!r}: expected 'eps' or 'flow'")
        self.timesteps = int(cfg.get("timesteps", 1000))
        self.label_dropout = float(cfg.get("label_dropout", 0.1))
        self.alpha_bar = torch.as_tensor(cosine_alpha_bar(self.timesteps), device=device)
        self.net = UNet(self.channels, self.blocks, self.attention_at, self.image_channels, self.patch).to(device)
        self.opt = ScheduledAdam(self.net.parameters(), cfg, 1e-3)
        # The JAX step also updates the engine's EMA of the weights: same work here.
        self.ema_decay = float(cfg.get("ema_decay", 0.0))
        self.ema = [p.detach().clone() for p in self.opt.params] if self.ema_decay else None

    @property
    def shape(self):
        return {"patch": self.patch, "channels": list(self.channels), "blocks": self.blocks,
                "attention_at": list(self.attention_at), "image_channels": self.image_channels,
                "objective": self.objective, "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        b = self.batch_size
        return {"image": self.tensor(gen.random((b, self.image_channels, IMAGE_SIZE, IMAGE_SIZE), np.float32)),
                "label": self.tensor(gen.integers(0, NUM_CLASSES, b), torch.long)}

    def from_host(self, batch: dict) -> dict:
        images = np.asarray(batch["image"], np.float32)
        if images.shape[-1] != self.image_channels:
            raise ValueError(f"{images.shape[-1]}-channel images; the twin was built for {self.image_channels} "
                             "(pass image_channels in its config)")
        return {"image": self.tensor(images.transpose(0, 3, 1, 2)), "label": self.tensor(batch["label"], torch.long)}

    def _draws(self, b: int, noise: dict | None):
        """(time: the diffusion step, or flow's t in [0, 1]; eps NCHW; which labels are dropped)."""
        if noise is not None:
            time = (self.tensor(noise["t"]) if self.objective == "flow"
                    else self.tensor(noise["step"], torch.long))
            eps = self.tensor(np.asarray(noise["eps"], np.float32).transpose(0, 3, 1, 2))  # drawn NHWC by JAX
            return time, eps, self.tensor(noise["drop"], torch.bool)
        if self.objective == "flow":
            time = torch.rand(b, device=self.device)
        else:
            time = torch.randint(1, self.timesteps + 1, (b,), device=self.device)
        eps = torch.randn(b, self.image_channels, IMAGE_SIZE, IMAGE_SIZE, device=self.device)
        return time, eps, torch.rand(b, device=self.device) < self.label_dropout

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        x0 = batch["image"] * 2.0 - 1.0
        time, eps, dropped = self._draws(x0.shape[0], noise)
        if self.objective == "flow":
            s = time[:, None, None, None]
            x_t, target = (1.0 - s) * x0 + s * eps, eps - x0
        else:
            a = self.alpha_bar[time][:, None, None, None]
            x_t, target = torch.sqrt(a) * x0 + torch.sqrt(1.0 - a) * eps, eps
            time = time.float() / self.timesteps
        label = torch.where(dropped, NUM_CLASSES, batch["label"])
        self.opt.zero_grad()
        with self.autocast():
            prediction = self.net(x_t, time, label)
        loss = F.mse_loss(prediction.float(), target)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, self.opt.params, 1.0 - self.ema_decay)
        return {"loss": loss}

    def jax_weights(self, tree):
        net, p = self.net, self.patch
        out = (weight_bias("Dense_0", net.time[0], tree["Dense_0"]) | weight_bias("Dense_1", net.time[2], tree["Dense_1"])
               | {"Embed_0": (net.label.weight, array(tree["Embed_0"]["embedding"]))})
        out |= weight_bias("Conv_0", net.input, tree["Conv_0"], lambda k: patch_channels(conv(k), 1, p))
        res = attn = 0
        convs = 1
        for layer in (*net.down, *net.mid, *net.up):
            if isinstance(layer, (Downsample, Upsample)):
                out |= weight_bias(f"Conv_{convs}", layer.conv, tree[f"Conv_{convs}"], conv)
                convs += 1
                continue
            out |= _res_weights(f"ResBlock_{res}", layer.res, tree[f"ResBlock_{res}"])
            res += 1
            if layer.attn is not None:
                out |= _attention_weights(f"SelfAttention_{attn}", layer.attn, tree[f"SelfAttention_{attn}"])
                attn += 1
        out |= norm("GroupNorm_0", net.out_norm, tree["GroupNorm_0"])
        last = tree[f"Conv_{convs}"]
        return out | {f"Conv_{convs}.weight": (net.output.weight, patch_channels(conv(last["kernel"]), 0, p)),
                      f"Conv_{convs}.bias": (net.output.bias, patch_channels(array(last["bias"]), 0, p))}


def _res_weights(name: str, block: ResBlock, params: dict) -> dict:
    out = (norm(f"{name}.GroupNorm_0", block.norm1, params["GroupNorm_0"])
           | weight_bias(f"{name}.Conv_0", block.conv1, params["Conv_0"], conv)
           | weight_bias(f"{name}.Dense_0", block.cond, params["Dense_0"])
           | norm(f"{name}.GroupNorm_1", block.norm2, params["GroupNorm_1"])
           | weight_bias(f"{name}.Conv_1", block.conv2, params["Conv_1"], conv))
    if block.skip is not None:
        out |= weight_bias(f"{name}.Conv_2", block.skip, params["Conv_2"], conv)
    return out


def _attention_weights(name: str, attn: SelfAttention, params: dict) -> dict:
    """DenseGeneral [C, 3, heads, head_dim] -> the fused qkv Linear; [heads, head_dim, C] -> out."""
    qkv = params["DenseGeneral_0"]
    return (norm(f"{name}.GroupNorm_0", attn.norm, params["GroupNorm_0"])
            | {f"{name}.qkv.weight": (attn.qkv.weight, heads_in(qkv["kernel"])),
               f"{name}.qkv.bias": (attn.qkv.bias, array(qkv["bias"]).reshape(-1))}
            | weight_bias(f"{name}.out", attn.out, params["DenseGeneral_1"], heads_out))
