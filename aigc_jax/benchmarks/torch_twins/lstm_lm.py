"""Twin of `lstm_lm` (BENCHMARKS shapes): embedding 128, one LSTM layer 256, linear to a 5000-token
vocabulary, sequence 64, next-token cross-entropy, Adam 1e-3.

As the JAX family does, one step is truncated BPTT: the window of `seq_len` tokens is cut into
segments of `bptt`, each one Adam update, the LSTM state carried over (detached) from the last.
The optimizer is the family's: clipping, warm-up and cosine decay when its config sets them.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import ScheduledAdam, Twin, array, dense, pick, weight_bias

GATES = "ifgo"  # flax OptimizedLSTMCell's gate order, and torch's


class LSTMLM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)
        # Flax's cell has one bias per gate (on the hidden side); torch adds two. The input-side
        # one stays zero and untrained, or each gate would move by two Adam steps per update.
        for name, param in self.lstm.named_parameters():
            if name.startswith("bias_ih"):
                nn.init.zeros_(param)
                param.requires_grad_(False)

    def forward(self, tokens, state=None):
        h, state = self.lstm(self.embed(tokens), state)
        return self.out(h), state


class LSTMLMTwin(Twin):
    modules = ("net",)

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.vocab = int(pick(cfg, 5000, "vocab_size", "vocab") or 256)  # 0: the family's 256 bytes
        self.embed = int(pick(cfg, 128, "embed", "embed_dim", "embedding"))
        self.hidden = int(pick(cfg, 256, "hidden", "hidden_size"))
        self.layers = int(pick(cfg, 1, "layers", "num_layers"))
        self.seq_len = int(pick(cfg, 64, "seq_len", "sequence_length", "context"))
        self.bptt = int(pick(cfg, self.seq_len, "bptt"))
        if self.seq_len % self.bptt:
            raise ValueError(f"seq_len {self.seq_len} is not a multiple of bptt {self.bptt}")
        self.net = LSTMLM(self.vocab, self.embed, self.hidden, self.layers).to(device)
        self.opt = ScheduledAdam(self.net.parameters(), cfg, 1e-3, updates_per_step=self.seq_len // self.bptt)

    @property
    def shape(self):
        return {"vocab": self.vocab, "embed": self.embed, "hidden": self.hidden, "layers": self.layers,
                "seq_len": self.seq_len, "bptt": self.bptt, "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        tokens = gen.integers(0, self.vocab, (self.batch_size, self.seq_len + 1))
        return {"tokens": self.tensor(tokens, torch.long)}

    def from_host(self, batch: dict) -> dict:
        return {"tokens": self.tensor(batch["tokens"], torch.long)}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        tokens, state, losses = batch["tokens"], None, []
        for start in range(0, self.seq_len, self.bptt):
            window = tokens[:, start:start + self.bptt + 1]
            self.opt.zero_grad()
            with self.autocast():
                logits, state = self.net(window[:, :-1], state)
            loss = F.cross_entropy(logits.float().reshape(-1, self.vocab), window[:, 1:].reshape(-1))
            loss.backward()
            self.opt.step()
            state = tuple(s.detach() for s in state)  # truncation: no gradient into the previous segment
            losses.append(loss.detach())
        return {"loss": torch.stack(losses).mean()}

    def jax_weights(self, tree):
        """flax's four input kernels (no bias) and four hidden Dense per layer -> torch's stacked
        weight_ih / weight_hh [4 * hidden, in] and bias_hh, gates in the same order."""
        out = {"embedding": (self.net.embed.weight, array(tree["embedding"]["embedding"]))}
        for i in range(self.layers):
            cell, lstm = tree[f"recurrent_{i}"]["cell"], self.net.lstm
            out[f"recurrent_{i}.ih"] = (getattr(lstm, f"weight_ih_l{i}"),
                                        np.concatenate([dense(cell[f"i{g}"]["kernel"]) for g in GATES]))
            out[f"recurrent_{i}.hh"] = (getattr(lstm, f"weight_hh_l{i}"),
                                        np.concatenate([dense(cell[f"h{g}"]["kernel"]) for g in GATES]))
            out[f"recurrent_{i}.bias"] = (getattr(lstm, f"bias_hh_l{i}"),
                                          np.concatenate([array(cell[f"h{g}"]["bias"]) for g in GATES]))
        return out | weight_bias("head", self.net.out, tree["head"])
