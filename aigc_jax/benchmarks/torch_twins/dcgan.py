"""Twin of `dcgan` (BENCHMARKS shapes): transposed-conv generator and conv discriminator with
BatchNorm, no conv bias, LeakyReLU(0.2), Adam 2e-4 / b1 0.5, BCE on logits, 32x32x1 images.

As in the DCGAN tutorial, D sees the real and the fake batch in separate calls (its BatchNorm
statistics update twice per step). BatchNorm's defaults (momentum 0.1, eps 1e-5) are the JAX
model's (flax momentum 0.9 = torch 0.1). Only the running averages differ, and training never
reads them: torch also updates them in the passes whose updates JAX drops (G's while D trains,
D's while G trains), and keeps the unbiased batch variance where flax keeps the biased one.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import Twin, conv, conv_transpose, norm, pick, weight_bias

IMAGE_SIZE = 32


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(), target))


def generator(latent: int, widths: tuple, channels: int) -> nn.Sequential:
    """z [B, latent, 1, 1] -> 4x4 x widths[0] -> 8x8 x widths[1] -> 16x16 x widths[2] -> 32x32 x channels, tanh."""
    layers = [nn.ConvTranspose2d(latent, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
    layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(widths: tuple, channels: int) -> nn.Sequential:
    """image 32x32 -> 16x16 x widths[0] -> 8x8 -> 4x4 x widths[-1] -> 1 logit (4x4 valid conv)."""
    layers = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
    layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False), nn.Flatten()]
    return nn.Sequential(*layers)


def conv_bn_weights(name: str, net: nn.Sequential, params: dict, kind: str, layout) -> dict:
    """flax's auto-named `kind`_i (Conv or ConvTranspose) and BatchNorm_i and the torch layers, in order."""
    convs = [m for m in net if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in net if isinstance(m, nn.BatchNorm2d)]
    out = {}
    for i, layer in enumerate(convs):
        out |= weight_bias(f"{name}.{kind}_{i}", layer, params[f"{kind}_{i}"], layout)
    for i, layer in enumerate(norms):
        out |= norm(f"{name}.BatchNorm_{i}", layer, params[f"BatchNorm_{i}"])
    return out


class DCGANTwin(Twin):
    modules = ("G", "D")

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.latent = int(pick(cfg, 100, "latent"))
        self.g_channels = tuple(pick(cfg, (512, 256, 128), "g_channels"))  # G's widths at 4, 8, 16 pixels
        self.d_channels = tuple(pick(cfg, (128, 256, 512), "d_channels"))  # D's widths at 16, 8, 4 pixels
        self.channels = 1
        self.G = generator(self.latent, self.g_channels, self.channels).to(device)
        self.D = discriminator(self.d_channels, self.channels).to(device)
        for m in (*self.G.modules(), *self.D.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.02)  # the paper's (and the JAX model's) init
        lr, b1 = float(cfg.get("learning_rate", 2e-4)), float(cfg.get("beta1", 0.5))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(b1, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(b1, 0.999))

    @property
    def shape(self):
        return {"latent": self.latent, "g_channels": list(self.g_channels), "d_channels": list(self.d_channels),
                "channels": self.channels, "image_size": IMAGE_SIZE, "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        shape = (self.batch_size, self.channels, IMAGE_SIZE, IMAGE_SIZE)
        return {"image": self.tensor(gen.random(shape, np.float32))}

    def from_host(self, batch: dict) -> dict:
        return {"image": self.tensor(np.asarray(batch["image"], np.float32).transpose(0, 3, 1, 2))}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        real = batch["image"] * 2.0 - 1.0
        b = real.shape[0]
        if noise is None:
            z_d = torch.randn(b, self.latent, 1, 1, device=self.device)
            z_g = torch.randn(b, self.latent, 1, 1, device=self.device)
        else:
            z_d = self.tensor(noise["z_d"]).reshape(b, self.latent, 1, 1)
            z_g = self.tensor(noise["z_g"]).reshape(b, self.latent, 1, 1)

        self.opt_d.zero_grad()
        with self.autocast():
            fake = self.G(z_d).detach()
            d_loss = bce(self.D(real)[:, 0], 1.0) + bce(self.D(fake)[:, 0], 0.0)
        d_loss.backward()
        self.opt_d.step()

        self.opt_g.zero_grad()
        with self.autocast():
            g_loss = bce(self.D(self.G(z_g))[:, 0], 1.0)
        g_loss.backward()
        self.opt_g.step()
        return {"d_loss": d_loss, "g_loss": g_loss}

    def jax_weights(self, tree):
        return (conv_bn_weights("g", self.G, tree["g"], "ConvTranspose", conv_transpose)
                | conv_bn_weights("d", self.D, tree["d"], "Conv", conv))
