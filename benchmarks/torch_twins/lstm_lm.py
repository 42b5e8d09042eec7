"""Twin of `lstm_lm` (BENCHMARKS shapes): embedding 128, one LSTM layer 256, linear to a 5000-token
vocabulary, sequence 64, next-token cross-entropy, Adam 1e-3."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_twins.base import Twin, pick


class LSTMLM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        h, _ = self.lstm(self.embed(tokens))
        return self.out(h)


class LSTMLMTwin(Twin):
    modules = ("net",)

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.vocab = int(pick(cfg, 5000, "vocab_size", "vocab") or 256)  # 0: the family's 256 bytes
        self.embed = int(pick(cfg, 128, "embed", "embed_dim", "embedding"))
        self.hidden = int(pick(cfg, 256, "hidden", "hidden_size"))
        self.layers = int(pick(cfg, 1, "layers", "num_layers"))
        self.seq_len = int(pick(cfg, 64, "seq_len", "sequence_length", "context"))
        self.net = LSTMLM(self.vocab, self.embed, self.hidden, self.layers).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=float(cfg.get("learning_rate", 1e-3)))

    @property
    def shape(self):
        return {"vocab": self.vocab, "embed": self.embed, "hidden": self.hidden, "layers": self.layers,
                "seq_len": self.seq_len, "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        tokens = gen.integers(0, self.vocab, (self.batch_size, self.seq_len + 1))
        return {"tokens": self.tensor(tokens, torch.long)}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        tokens = batch["tokens"]
        self.opt.zero_grad()
        with self.autocast():
            logits = self.net(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, self.vocab), tokens[:, 1:].reshape(-1))
        loss.backward()
        self.opt.step()
        return {"loss": loss}
