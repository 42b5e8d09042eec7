"""Twin of `transformer` (BENCHMARKS shapes): encoder-decoder, vocabulary 1000, width 128, 4 heads,
2 + 2 layers, feed-forward 512, source and target length 32, teacher forcing, Adam 1e-4.

torch's nn.TransformerEncoder/Decoder set up as the JAX model: pre-LayerNorm layers (`norm_first`)
and a final LayerNorm per stack, LayerNorm epsilon 1e-6 (flax's), ReLU feed-forward, no dropout;
one embedding table shared by source, target and the output layer, scaled by sqrt(width), plus
the sinusoids (or a learned table); PAD source tokens masked as keys of the encoder and the
cross-attention. The loss is the JAX family's: each sequence's mean over its non-PAD targets,
then the mean over sequences. The optimizer is the family's: Adam, with clipping and warm-up /
cosine schedule when its config sets them.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aigc_jax.benchmarks.torch_twins.base import ScheduledAdam, Twin, array, attention, norm, pick, weight_bias

PAD = 0  # aigc_jax.data.tokenizer.PAD
LN_EPS = 1e-6  # flax LayerNorm's


def sinusoids(length: int, width: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    rate = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)[:, : width // 2]
    return table


class Seq2SeqTransformer(nn.Module):
    def __init__(self, vocab: int, width: int, heads: int, enc_layers: int, dec_layers: int, ff: int, max_len: int,
                 learned_positions: bool = False):
        super().__init__()
        self.scale = math.sqrt(width)
        self.embed = nn.Embedding(vocab, width)
        nn.init.normal_(self.embed.weight, std=width ** -0.5)  # the JAX init: tied to the output, N(0, 1) would give huge logits
        if learned_positions:
            self.positions = nn.Parameter(torch.randn(max_len, width) * 0.02)
        else:
            self.register_buffer("positions", sinusoids(max_len, width), persistent=False)
        layer = dict(d_model=width, nhead=heads, dim_feedforward=ff, dropout=0.0, layer_norm_eps=LN_EPS,
                     batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), enc_layers,
                                             norm=nn.LayerNorm(width, eps=LN_EPS), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), dec_layers,
                                             norm=nn.LayerNorm(width, eps=LN_EPS))

    def _embed(self, tokens):
        return self.embed(tokens) * self.scale + self.positions[: tokens.shape[1]]

    def forward(self, source, decoder_input):
        pad = source == PAD
        encoded = self.encoder(self._embed(source), src_key_padding_mask=pad)
        causal = nn.Transformer.generate_square_subsequent_mask(decoder_input.shape[1], device=source.device)
        y = self.decoder(self._embed(decoder_input), encoded, tgt_mask=causal, tgt_is_causal=True,
                         memory_key_padding_mask=pad)
        return F.linear(y, self.embed.weight)  # the output layer is the embedding table, no bias


class TransformerTwin(Twin):
    modules = ("net",)

    def __init__(self, cfg, device, dtype="float32"):
        super().__init__(cfg, device, dtype)
        self.vocab = int(pick(cfg, 1000, "vocab_size", "vocab")) or tokenizer_vocab_size()
        self.width = int(pick(cfg, 128, "width", "d_model", "emb_dim"))
        self.heads = int(pick(cfg, 4, "heads", "num_heads"))
        self.enc_layers = int(pick(cfg, 2, "encoder_layers", "enc_layers", "num_encoder_layers"))
        self.dec_layers = int(pick(cfg, 2, "decoder_layers", "dec_layers", "num_decoder_layers"))
        self.ff = int(pick(cfg, 512, "ff", "mlp_dim", "ff_dim", "dim_feedforward"))
        self.src_len = int(pick(cfg, 32, "max_source_len", "src_len"))
        self.tgt_len = int(pick(cfg, 32, "max_target_len", "tgt_len"))
        self.learned_positions = pick(cfg, "sinusoidal", "positions") == "learned"
        self.net = Seq2SeqTransformer(self.vocab, self.width, self.heads, self.enc_layers, self.dec_layers, self.ff,
                                      max(self.src_len, self.tgt_len), self.learned_positions).to(device)
        self.opt = ScheduledAdam(self.net.parameters(), cfg, 1e-4)

    @property
    def shape(self):
        return {"vocab": self.vocab, "width": self.width, "heads": self.heads, "enc_layers": self.enc_layers,
                "dec_layers": self.dec_layers, "ff": self.ff, "src_len": self.src_len, "tgt_len": self.tgt_len,
                "batch_size": self.batch_size}

    def random_batch(self, gen: np.random.Generator) -> dict:
        b = self.batch_size  # no PAD drawn: every position is real and scored
        return {"source": self.tensor(gen.integers(PAD + 1, self.vocab, (b, self.src_len)), torch.long),
                "target": self.tensor(gen.integers(PAD + 1, self.vocab, (b, self.tgt_len + 1)), torch.long)}

    def from_host(self, batch: dict) -> dict:
        return {k: self.tensor(batch[k], torch.long) for k in ("source", "target")}

    def step(self, batch: dict, noise: dict | None = None) -> dict:
        target = batch["target"]
        labels = target[:, 1:]
        self.opt.zero_grad()
        with self.autocast():
            logits = self.net(batch["source"], target[:, :-1])
        token_loss = F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none")
        scored = (labels != PAD).float()
        loss = ((token_loss * scored).sum(1) / scored.sum(1)).mean()
        loss.backward()
        self.opt.step()
        return {"loss": loss}

    def jax_weights(self, tree):
        net = self.net
        out = {"embed": (net.embed.weight, array(tree["embed"]["embedding"]))}
        if self.learned_positions:
            out["position_table"] = (net.positions, array(tree["position_table"]))
        for i, layer in enumerate(net.encoder.layers):
            out |= layer_weights(f"encoder_{i}", layer, tree[f"encoder_{i}"], ("self_attention",))
        for i, layer in enumerate(net.decoder.layers):
            out |= layer_weights(f"decoder_{i}", layer, tree[f"decoder_{i}"], ("self_attention", "cross_attention"))
        return (out | norm("encoder_norm", net.encoder.norm, tree["encoder_norm"])
                | norm("decoder_norm", net.decoder.norm, tree["decoder_norm"]))


def layer_weights(name: str, layer: nn.Module, p: dict, attentions: tuple) -> dict:
    """One flax EncoderLayer/DecoderLayer -> torch's: attention sublayers in order (self, then
    cross), LayerNorm_i before sublayer i (torch's norm1, norm2, norm3), FeedForward's two Dense."""
    modules = [layer.self_attn, getattr(layer, "multihead_attn", None)][: len(attentions)]
    out = {}
    for key, mha in zip(attentions, modules):
        out |= attention(f"{name}.{key}", p[key], mha.in_proj_weight, mha.in_proj_bias, mha.out_proj)
    for i in range(len(attentions) + 1):
        out |= norm(f"{name}.LayerNorm_{i}", getattr(layer, f"norm{i + 1}"), p[f"LayerNorm_{i}"])
    ff = p["FeedForward_0"]
    out |= weight_bias(f"{name}.ff0", layer.linear1, ff["Dense_0"])
    return out | weight_bias(f"{name}.ff1", layer.linear2, ff["Dense_1"])


def tokenizer_vocab_size() -> int:
    """vocab_size 0: the JAX family's own tokenizer's vocabulary."""
    from aigc_jax.data.translation import VOCABULARY

    return len(VOCABULARY)
