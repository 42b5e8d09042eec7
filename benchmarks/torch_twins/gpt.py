"""Twin of `gpt` (BENCHMARKS shapes): byte vocabulary 256, context 128, width 256, 4 pre-LN blocks,
4 heads, MLP 4x GELU, causal; AdamW 3e-4. Attention through torch's fused
`scaled_dot_product_attention`, the fastest formulation torch offers."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_twins.base import Twin, pick


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (y.view(b, t, self.heads, c // self.heads).transpose(1, 2) for y in (q, k, v))
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, context: int, width: int, layers: int, heads: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.head(self.ln(self.blocks(self.tok(tokens) + self.pos(positions))))


class GPTTwin(Twin):
    modules = ("net",)

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.vocab = int(pick(cfg, 256, "vocab_size", "vocab") or 256)  # 0: the family's 256 bytes
        self.context = int(pick(cfg, 128, "context", "seq_len", "block_size", "max_len"))
        self.width = int(pick(cfg, 256, "width", "d_model", "emb_dim", "embed_dim"))
        self.layers = int(pick(cfg, 4, "layers", "num_layers", "n_layer", "depth"))
        self.heads = int(pick(cfg, 4, "heads", "num_heads", "n_head"))
        self.net = GPT(self.vocab, self.context, self.width, self.layers, self.heads).to(device)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=float(cfg.get("learning_rate", 3e-4)))

    @property
    def shape(self):
        return {"vocab": self.vocab, "context": self.context, "width": self.width, "layers": self.layers,
                "heads": self.heads, "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        return {"tokens": self.tensor(gen.integers(0, self.vocab, (self.batch_size, self.context + 1)), torch.long)}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        tokens = batch["tokens"]
        self.opt.zero_grad()
        with self.autocast():
            logits = self.net(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, self.vocab), tokens[:, 1:].reshape(-1))
        loss.backward()
        self.opt.step()
        return {"loss": loss}
