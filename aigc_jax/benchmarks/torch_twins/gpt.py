"""Twin of `gpt` (BENCHMARKS shapes): byte vocabulary 256, context 128, width 256, 4 pre-LN blocks,
4 heads, MLP 4x GELU, causal; AdamW 3e-4. Attention through torch's fused
`scaled_dot_product_attention`, the fastest formulation torch offers.

The JAX model's math: LayerNorm epsilon 1e-6 (flax's; torch's default is 1e-5), GELU's tanh
approximation (flax's default), no output bias; the family's AdamW (weight decay 0.1 on every
parameter, as optax.adamw), gradient clipping and warm-up/cosine schedule when its config sets them.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import ScheduledAdam, Twin, array, attention, norm, pick, weight_bias

LN_EPS = 1e-6  # flax LayerNorm's


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width, eps=LN_EPS), nn.LayerNorm(width, eps=LN_EPS)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

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
        self.ln = nn.LayerNorm(width, eps=LN_EPS)
        self.head = nn.Linear(width, vocab, bias=False)
        for table in (self.tok.weight, self.pos.weight):
            nn.init.normal_(table, std=0.02)  # the JAX init (torch's N(0, 1) would swamp the blocks)

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
        self.opt = ScheduledAdam(self.net.parameters(), cfg, 3e-4, weight_decay=float(pick(cfg, 0.1, "weight_decay")))

    @property
    def shape(self):
        return {"vocab": self.vocab, "context": self.context, "width": self.width, "layers": self.layers,
                "heads": self.heads, "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        return {"tokens": self.tensor(gen.integers(0, self.vocab, (self.batch_size, self.context + 1)), torch.long)}

    def from_host(self, batch: dict) -> dict:
        return {"tokens": self.tensor(batch["tokens"], torch.long)}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        tokens = batch["tokens"]
        self.opt.zero_grad()
        with self.autocast():
            logits = self.net(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, self.vocab), tokens[:, 1:].reshape(-1))
        loss.backward()
        self.opt.step()
        return {"loss": loss}

    def jax_weights(self, tree):
        net = self.net
        out = {"wte": (net.tok.weight, array(tree["wte"]["embedding"])), "wpe": (net.pos.weight, array(tree["wpe"]))}
        for i, block in enumerate(net.blocks):
            p = tree[f"block_{i}"]
            out |= attention(f"block_{i}.attention", p["attention"], block.qkv.weight, block.qkv.bias, block.proj)
            out |= norm(f"block_{i}.ln_1", block.ln1, p["ln_1"]) | norm(f"block_{i}.ln_2", block.ln2, p["ln_2"])
            out |= weight_bias(f"block_{i}.up", block.mlp[0], p["mlp"]["up"])
            out |= weight_bias(f"block_{i}.down", block.mlp[2], p["mlp"]["down"])
        return out | norm("ln_f", net.ln, tree["ln_f"]) | weight_bias("head", net.head, tree["head"])

