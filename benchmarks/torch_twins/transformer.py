"""Twin of `transformer` (BENCHMARKS shapes): encoder-decoder, vocabulary 1000, width 128, 4 heads,
2 + 2 layers, feed-forward 512, source and target length 32, teacher forcing, Adam 1e-4."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_twins.base import Twin, pick


def sinusoids(length: int, width: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    rate = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)
    return table


class Seq2SeqTransformer(nn.Module):
    def __init__(self, vocab: int, width: int, heads: int, enc_layers: int, dec_layers: int, ff: int, max_len: int):
        super().__init__()
        self.scale = math.sqrt(width)
        self.src_embed, self.tgt_embed = nn.Embedding(vocab, width), nn.Embedding(vocab, width)
        self.register_buffer("positions", sinusoids(max_len, width), persistent=False)
        self.transformer = nn.Transformer(width, heads, enc_layers, dec_layers, ff, dropout=0.0, batch_first=True)
        self.out = nn.Linear(width, vocab)

    def forward(self, src, tgt_in):
        s = self.src_embed(src) * self.scale + self.positions[: src.shape[1]]
        t = self.tgt_embed(tgt_in) * self.scale + self.positions[: tgt_in.shape[1]]
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1], device=src.device)
        return self.out(self.transformer(s, t, tgt_mask=causal, tgt_is_causal=True))


class TransformerTwin(Twin):
    modules = ("net",)

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.vocab = int(pick(cfg, 1000, "vocab_size", "vocab"))
        self.width = int(pick(cfg, 128, "width", "d_model", "emb_dim"))
        self.heads = int(pick(cfg, 4, "heads", "num_heads"))
        self.enc_layers = int(pick(cfg, 2, "encoder_layers", "enc_layers", "num_encoder_layers"))
        self.dec_layers = int(pick(cfg, 2, "decoder_layers", "dec_layers", "num_decoder_layers"))
        self.ff = int(pick(cfg, 512, "ff", "mlp_dim", "ff_dim", "dim_feedforward"))
        self.src_len = int(pick(cfg, 32, "src_len", "source_length", "max_src_len"))
        self.tgt_len = int(pick(cfg, 32, "tgt_len", "target_length", "max_tgt_len"))
        self.net = Seq2SeqTransformer(self.vocab, self.width, self.heads, self.enc_layers, self.dec_layers,
                                      self.ff, max(self.src_len, self.tgt_len)).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=float(cfg.get("learning_rate", 1e-4)))

    @property
    def shape(self):
        return {"vocab": self.vocab, "width": self.width, "heads": self.heads, "enc_layers": self.enc_layers,
                "dec_layers": self.dec_layers, "ff": self.ff, "src_len": self.src_len, "tgt_len": self.tgt_len,
                "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        b = self.batch_size
        return {"src": self.tensor(gen.integers(0, self.vocab, (b, self.src_len)), torch.long),
                "tgt": self.tensor(gen.integers(0, self.vocab, (b, self.tgt_len + 1)), torch.long)}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        tgt = batch["tgt"]
        self.opt.zero_grad()
        with self.autocast():
            logits = self.net(batch["src"], tgt[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, self.vocab), tgt[:, 1:].reshape(-1))
        loss.backward()
        self.opt.step()
        return {"loss": loss}
