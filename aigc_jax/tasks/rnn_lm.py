"""`rnn_lm` and `lstm_lm`: recurrent byte language models on the embedded corpus (seeds 001, 002).

Truncated backpropagation through time: each window of `seq_len` bytes is cut into segments of
`bptt` bytes; segment k starts from the state segment k - 1 ended in (its gradient stopped there)
and makes one optimizer update, inside one compiled `lax.scan`. So one engine step is
seq_len / bptt updates, the state flows over the whole window, and gradients reach back at most
`bptt` bytes. Evaluation reads each held-out window in one pass from a zero state, as sampling
does from the prompt.
"""

import jax
import jax.numpy as jnp
import optax
from jax import lax

from aigc_jax import flops
from aigc_jax.engine.state import create_train_state
from aigc_jax.errors import UserError
from aigc_jax.models.rnn_lm import CELLS, RecurrentLM
from aigc_jax.tasks.language import LN2, NeuralLanguageModelTask, lm_config
from aigc_jax.tasks.optim import adam_optimizer


class RecurrentLMTask(NeuralLanguageModelTask):
    config_ranges = {**NeuralLanguageModelTask.config_ranges, "embed": (1, None), "hidden": (1, None),
                     "layers": (1, None), "bptt": (1, None)}
    config_choices = {**NeuralLanguageModelTask.config_choices, "cell": tuple(CELLS)}

    @staticmethod
    def recurrent_config(cell: str, learning_rate: float):
        c = lm_config()
        c.cell = cell  # rnn (Elman) | lstm | gru
        c.embed = 64  # byte embedding width
        c.hidden = 256  # recurrent state width
        c.layers = 1  # stacked recurrent layers
        c.bptt = 64  # truncation: bytes per segment, one update each; seq_len / bptt segments per step
        c.steps = 500
        c.batch_size = 32
        c.learning_rate = learning_rate
        return c

    def __init__(self, config, constants=None):
        if config.seq_len % config.bptt:
            raise UserError(f"config.seq_len={config.seq_len} is not a multiple of config.bptt={config.bptt}; "
                            "expected the window to split into whole truncation segments")
        super().__init__(config, constants)

    @property
    def model(self) -> RecurrentLM:
        c = self.config
        return RecurrentLM(vocab_size=self.vocab_size, cell=c.cell, embed=c.embed, hidden=c.hidden,
                           layers=c.layers, dtype=self.compute_dtype)

    def init(self, rng, batch):
        inputs = batch["tokens"][:1, :-1]
        variables = self.model.init(rng, inputs, self.model.initial_carries(1))
        segments = self.config.seq_len // self.config.bptt
        return create_train_state(self.model, variables, adam_optimizer(self.config, updates_per_step=segments))

    def logits(self, params, inputs):
        return self.model.apply({"params": params}, inputs, self.model.initial_carries(inputs.shape[0]))[1]

    def train_step(self, state, batch, rng):
        tokens, bptt = batch["tokens"], self.config.bptt
        segments = self.config.seq_len // bptt  # segment k reads bytes [k*bptt, (k+1)*bptt] of seq_len + 1

        def segment_loss(params, carries, k):
            window = lax.dynamic_slice_in_dim(tokens, k * bptt, bptt + 1, axis=1)
            carries, logits = self.model.apply({"params": params}, window[:, :-1], carries)
            return optax.softmax_cross_entropy_with_integer_labels(logits, window[:, 1:]).mean(), carries

        def update(carry, k):
            state, carries = carry
            (loss, carries), grads = jax.value_and_grad(segment_loss, has_aux=True)(state.params, carries, k)
            return (state.apply_gradients(grads=grads), lax.stop_gradient(carries)), loss

        start = self.model.initial_carries(tokens.shape[0])
        (state, _), losses = lax.scan(update, (state, start), jnp.arange(segments))
        loss = losses.mean()
        return state, {"loss": loss, "bpb": loss / LN2}

    def decoder(self, state, batch):
        params = state.params

        def step_fn(carries, token, t):
            carries, logits = self.model.apply({"params": params}, token[:, None], carries)
            return logits[:, 0], carries

        return step_fn, self.model.initial_carries(batch)

    def flops_per_step(self):
        c = self.config
        b, t, h = c.batch_size, c.seq_len, c.hidden
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[c.cell]
        recurrent = (flops.recurrent(b, t, c.embed, h, gates) + (c.layers - 1) * flops.recurrent(b, t, h, h, gates))
        return flops.train(recurrent + flops.dense(b * t, h, self.vocab_size))


class RNNLMTask(RecurrentLMTask):
    name = "rnn_lm"
    summary = "Elman RNN (or GRU) byte language model, truncated BPTT (seed 002)"

    @staticmethod
    def default_config():
        return RecurrentLMTask.recurrent_config("rnn", learning_rate=3e-3)

    benchmark_presets = {
        "tiny": {"embed": 16, "hidden": 32, "seq_len": 32, "bptt": 16, "batch_size": 8},
        "cpu": {"embed": 128, "hidden": 256, "seq_len": 64, "bptt": 64, "learning_rate": 1e-3,
                "lr_schedule": "constant", "batch_size": 32},
        "gpu": {"embed": 512, "hidden": 2048, "layers": 2, "seq_len": 256, "bptt": 256, "learning_rate": 1e-3,
                "lr_schedule": "constant", "batch_size": 256, "dtype": "bfloat16"},
    }


class LSTMLMTask(RecurrentLMTask):
    name = "lstm_lm"
    summary = "LSTM byte language model, truncated BPTT (seeds 001, 002)"

    @staticmethod
    def default_config():
        return RecurrentLMTask.recurrent_config("lstm", learning_rate=1e-2)

    benchmark_presets = {
        "tiny": {"embed": 16, "hidden": 32, "seq_len": 32, "bptt": 16, "batch_size": 8},
        # BENCHMARKS.md: vocab 5000, embedding 128, one LSTM layer 256, sequence 64; Adam 1e-3, batch 32
        "cpu": {"vocab_size": 5000, "embed": 128, "hidden": 256, "seq_len": 64, "bptt": 64, "learning_rate": 1e-3,
                "lr_schedule": "constant", "clip_norm": 0.0, "batch_size": 32},
        "gpu": {"vocab_size": 32000, "embed": 1024, "hidden": 2048, "layers": 2, "seq_len": 256, "bptt": 256,
                "learning_rate": 1e-3, "lr_schedule": "constant", "batch_size": 256, "dtype": "bfloat16"},
    }
