"""Twin of `mlp_gan`: MLP generator and discriminator, two Adam optimizers, non-saturating BCE.

As the seed documents write a GAN step: update D on a real and a detached fake batch, then update
G through D with fresh noise.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import Twin, dense_stack, mlp, pick

PIXELS = 28 * 28


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(), target))


class MLPGANTwin(Twin):
    modules = ("G", "D")

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.latent = int(pick(cfg, 100, "latent"))
        self.g_hidden = tuple(pick(cfg, (256, 512), "g_hidden"))
        self.d_hidden = tuple(pick(cfg, (512, 256), "d_hidden"))
        if float(cfg.get("d_dropout", 0.0)):
            raise ValueError(f"d_dropout={cfg['d_dropout']}: the twin is the seeds' MLP GAN, without dropout; expected 0")
        self.G = mlp((self.latent, *self.g_hidden, PIXELS), nn.ReLU, nn.Tanh).to(device)
        self.D = nn.Sequential(nn.Flatten(), mlp((PIXELS, *self.d_hidden, 1), lambda: nn.LeakyReLU(0.2))).to(device)
        lr, b1 = float(cfg.get("learning_rate", 2e-4)), float(cfg.get("beta1", 0.5))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(b1, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(b1, 0.999))

    @property
    def shape(self):
        return {"latent": self.latent, "g_hidden": list(self.g_hidden), "d_hidden": list(self.d_hidden),
                "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        return {"image": self.tensor(gen.random((self.batch_size, PIXELS), np.float32))}

    def from_host(self, batch: dict) -> dict:
        return {"image": self.tensor(np.asarray(batch["image"]).reshape(len(batch["image"]), -1))}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        real = batch["image"] * 2.0 - 1.0
        b = real.shape[0]
        if noise is None:
            z_d = torch.randn(b, self.latent, device=self.device)
            z_g = torch.randn(b, self.latent, device=self.device)
        else:
            z_d, z_g = self.tensor(noise["z_d"]), self.tensor(noise["z_g"])

        self.opt_d.zero_grad()
        with self.autocast():
            fake = self.G(z_d).detach()
            d_loss = bce(self.D(real)[:, 0], 1.0) + bce(self.D(fake)[:, 0], 0.0)
        d_loss.backward()
        self.opt_d.step()

        self.opt_g.zero_grad()
        with self.autocast():
            g_loss = bce(self.D(self.G(z_g))[:, 0], 1.0)  # non-saturating
        g_loss.backward()
        self.opt_g.step()
        return {"d_loss": d_loss, "g_loss": g_loss}

    def jax_weights(self, tree):
        return dense_stack("g", self.G, tree["g"]) | dense_stack("d", self.D, tree["d"])
