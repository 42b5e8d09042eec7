"""Twin of `vae`: 784-400-(mu, logvar 20); 20-400-784 Bernoulli logits; loss (BCE sum + KL) / batch."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import Twin, pick, weight_bias

PIXELS = 28 * 28


class VAENet(nn.Module):
    def __init__(self, hidden: int, latent: int):
        super().__init__()
        self.fc1 = nn.Linear(PIXELS, hidden)
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.fc2 = nn.Linear(latent, hidden)
        self.fc3 = nn.Linear(hidden, PIXELS)

    def forward(self, x, eps):
        h = F.relu(self.fc1(x))
        mu, logvar = self.mu(h).float(), self.logvar(h).float()
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.fc3(F.relu(self.fc2(z))).float(), mu, logvar


class VAETwin(Twin):
    modules = ("net",)

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.hidden, self.latent = int(pick(cfg, 400, "hidden")), int(pick(cfg, 20, "latent"))
        self.net = VAENet(self.hidden, self.latent).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=float(cfg.get("learning_rate", 1e-3)))

    @property
    def shape(self):
        return {"hidden": self.hidden, "latent": self.latent, "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        return {"image": self.tensor(gen.random((self.batch_size, PIXELS), np.float32))}

    def from_host(self, batch: dict) -> dict:
        return {"image": self.tensor(np.asarray(batch["image"]).reshape(len(batch["image"]), -1))}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        x = batch["image"]
        eps = torch.randn(x.shape[0], self.latent, device=self.device) if noise is None else self.tensor(noise["eps"])
        self.opt.zero_grad()
        with self.autocast():
            logits, mu, logvar = self.net(x, eps)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(logvar.exp() + mu.pow(2) - 1.0 - logvar)
        loss = (rec + kl) / x.shape[0]
        loss.backward()
        self.opt.step()
        return {"loss": loss}

    def jax_weights(self, tree):
        enc, dec, net = tree["encoder"], tree["decoder"], self.net
        return (weight_bias("fc1", net.fc1, enc["Dense_0"]) | weight_bias("mu", net.mu, enc["mu"])
                | weight_bias("logvar", net.logvar, enc["logvar"]) | weight_bias("fc2", net.fc2, dec["Dense_0"])
                | weight_bias("fc3", net.fc3, dec["Dense_1"]))
