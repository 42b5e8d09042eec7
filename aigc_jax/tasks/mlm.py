"""`mlm`: a small BERT-style encoder pretrained by masked-byte prediction on the embedded corpus.

Each example is a window of `seq_len` bytes of `pydoc_text` (`aigc_jax/data/text.py`; windows do
not overlap). Masking is drawn per example from `batch["key"]` (so every parallel mode masks
the same bytes): exactly round(mask_rate * seq_len) positions are selected; of those, 80% become
the [MASK] id, 10% a uniformly random byte and 10% stay as they are (BERT's recipe: the model
cannot tell which unmasked bytes are targets, so every position's features must describe it).
The loss is the cross-entropy at the selected positions only.

Metrics: `loss` and `accuracy` (of the selected bytes) on the train batch; `eval_mlm_loss` and
`eval_mlm_accuracy` over every held-out window (whole help topics the model never read), masked
from the fixed eval keys, so evaluations at different steps score the same masked bytes.
`mlm_finetune` starts a classifier from the `encoder` of this family's checkpoint.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aigc_jax import flops
from aigc_jax.data.splits import Splits
from aigc_jax.data.text import EMBEDDED, decode_bytes, load_text_splits
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.errors import UserError
from aigc_jax.models.bert import BYTES, MASK_ID, Encoder, MaskedByteModel
from aigc_jax.tasks.base import Task, check_heads
from aigc_jax.tasks.optim import SCHEDULE_CHOICES, SCHEDULE_RANGES, add_schedule_keys, adam_optimizer

REPLACE_WITH_MASK, REPLACE_WITH_RANDOM = 0.8, 0.1  # of the selected positions; the rest are kept
MASK_SHOWN = "\u2588"  # how samples print the [MASK] id

# The encoder's keys, shared with mlm_finetune: a checkpoint fits only the same values.
ENCODER_KEYS = ("seq_len", "width", "layers", "heads")
ENCODER_RANGES = {"seq_len": (2, None), "width": (1, None), "layers": (1, None), "heads": (1, None)}


def encoder_config():
    """The keys both BERT families share, with the defaults of the few-minute CPU runs."""
    c = base_config()
    c.dataset = EMBEDDED
    c.seq_len = 64  # bytes per window (the encoder's context)
    c.width = 64  # model width (a few-minute CPU run; the cpu preset is BERT's shape scaled down)
    c.layers = 3  # encoder blocks
    c.heads = 4  # attention heads (width must divide by it)
    c.dtype = "float32"
    c.weight_decay = 0.01  # AdamW's, decoupled
    add_schedule_keys(c)
    return c


def byte_windows(dataset: str, data_dir: str, seq_len: int) -> Splits:
    """Non-overlapping windows of `seq_len` bytes of each split: {"tokens": int32 [N, seq_len]}."""
    data = load_text_splits(dataset, data_dir, seq_len)  # windows of seq_len + 1 every seq_len bytes
    return Splits(train={"tokens": data.train["tokens"][:, :-1]}, test={"tokens": data.test["tokens"][:, :-1]})


def encoder_flops(batch: int, t: int, d: int, layers: int) -> float:
    """Forward FLOPs of the encoder's blocks over [batch, t] positions."""
    block = (flops.dense(batch * t, d, 3 * d) + flops.dense(batch * t, d, d) + flops.attention(batch, t, t, d)
             + flops.mlp(batch * t, (d, 4 * d, d)))
    return layers * block


def mask_example(key: jax.Array, tokens: jax.Array, rate: float) -> tuple[jax.Array, jax.Array]:
    """(inputs, selected) for one window `tokens` [T]: `selected` [T] marks the round(rate * T)
    positions to predict; `inputs` has 80% of them replaced by MASK_ID, 10% by a random byte."""
    t = tokens.shape[-1]
    count = max(1, round(rate * t))
    pick, kind, byte = jax.random.split(key, 3)
    selected = jnp.zeros(t, bool).at[jax.random.permutation(pick, t)[:count]].set(True)
    u = jax.random.uniform(kind, (t,))
    random_bytes = jax.random.randint(byte, (t,), 0, BYTES, tokens.dtype)
    inputs = jnp.where(selected & (u < REPLACE_WITH_MASK), MASK_ID,
                       jnp.where(selected & (u < REPLACE_WITH_MASK + REPLACE_WITH_RANDOM), random_bytes, tokens))
    return inputs, selected


def mask_batch(keys: jax.Array, tokens: jax.Array, rate: float) -> tuple[jax.Array, jax.Array]:
    """`mask_example` for every row of `tokens` [B, T] with its own key of `keys` [B]."""
    return jax.vmap(mask_example, in_axes=(0, 0, None))(keys, tokens, rate)


class MLMTask(Task):
    name = "mlm"
    summary = "BERT-style encoder pretrained by masked-byte prediction (15%, 80/10/10) on the Python docs"
    main_metric = "loss"
    config_ranges = {**ENCODER_RANGES, **SCHEDULE_RANGES, "mask_rate": (0.0, 1.0), "weight_decay": (0.0, None),
                     "num_samples": (1, None)}
    config_choices = {**SCHEDULE_CHOICES}

    benchmark_presets = {
        "tiny": {"seq_len": 16, "width": 32, "layers": 1, "heads": 2, "batch_size": 8, "num_samples": 2},
        # the GPT seed's shape, bidirectional: context 128, width 128, 4 blocks, 4 heads
        "cpu": {"seq_len": 128, "width": 128, "layers": 4, "heads": 4, "batch_size": 32, "warmup_steps": 0,
                "lr_schedule": "constant"},
        # BERT-base's shape (12 x 768, 12 heads) at context 512, bf16
        "gpu": {"seq_len": 512, "width": 768, "layers": 12, "heads": 12, "batch_size": 128, "learning_rate": 1e-4,
                "warmup_steps": 0, "lr_schedule": "constant", "dtype": "bfloat16"},
    }

    @staticmethod
    def default_config():
        c = encoder_config()
        c.mask_rate = 0.15  # fraction of bytes masked (80% [MASK], 10% random, 10% kept)
        c.steps = 1000
        c.batch_size = 32
        c.eval_batch_size = 128
        c.learning_rate = 2e-3
        c.warmup_steps = 50
        c.num_samples = 4  # windows written per sample file
        c.log_every = 50
        c.eval_every = 500
        c.ckpt_every = 500
        c.sample_every = 0
        return c

    def __init__(self, config, constants=None):
        check_heads(config)
        if config.mask_rate == 0.0:
            raise UserError("config.mask_rate=0.0: expected a fraction in (0, 1] of the bytes to predict")
        super().__init__(config, constants)

    @property
    def model(self) -> MaskedByteModel:
        c = self.config
        return MaskedByteModel(Encoder(context=c.seq_len, width=c.width, layers=c.layers, heads=c.heads,
                                       dtype=self.compute_dtype))

    def load_data(self):
        return byte_windows(self.config.dataset, self.config.data_dir, self.config.seq_len)

    def init(self, rng, batch):
        variables = self.model.init(rng, batch["tokens"][:1])
        return create_train_state(self.model, variables, adam_optimizer(self.config, self.config.weight_decay))

    def _scores(self, params, batch):
        """Per example: (mean cross-entropy, accuracy) over its selected positions; and the parts."""
        inputs, selected = mask_batch(batch["key"], batch["tokens"], self.config.mask_rate)
        logits = self.model.apply({"params": params}, inputs)
        weight = selected / selected.sum(-1, keepdims=True)
        nats = optax.softmax_cross_entropy_with_integer_labels(logits, batch["tokens"])
        correct = logits.argmax(-1) == batch["tokens"]
        return (nats * weight).sum(-1), (correct * weight).sum(-1), inputs, selected, logits

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            loss, accuracy, *_ = self._scores(params, batch)
            return loss.mean(), accuracy.mean()

        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "accuracy": accuracy}

    def eval_step(self, state, batch, rng):
        loss, accuracy, *_ = self._scores(state.params, batch)
        return {"mlm_loss": (loss * batch["mask"]).sum(), "mlm_accuracy": (accuracy * batch["mask"]).sum()}

    def sample(self, state, rng, batch):
        n = self.config.num_samples
        small = {"tokens": batch["tokens"][:n], "key": jax.random.split(rng, n)}
        *_, inputs, selected, logits = self._scores(state.params, small)
        return {"tokens": small["tokens"], "inputs": inputs, "selected": selected, "predicted": logits.argmax(-1)}

    def render_samples(self, outputs):
        def show(ids):  # NUL never occurs in the corpus: it stands in for [MASK] while decoding UTF-8
            text = decode_bytes(np.where(np.asarray(ids) == MASK_ID, 0, ids))
            return text.replace("\x00", MASK_SHOWN).replace("\n", "\u21b5")

        parts = []
        for i, (tokens, inputs, selected, predicted) in enumerate(zip(
                outputs["tokens"], outputs["inputs"], outputs["selected"], outputs["predicted"])):
            filled = np.where(selected, predicted, tokens)
            right = int((predicted[selected] == tokens[selected]).sum())
            parts.append(f"--- window {i}: {right}/{int(selected.sum())} selected bytes right ---\n"
                         f"original:  {show(tokens)}\ninput:     {show(inputs)}\npredicted: {show(filled)}\n")
        header = (f"held-out windows; input: {MASK_SHOWN} = [MASK] (selected bytes may also be random or kept); "
                  "predicted: the input with the selected bytes as the model predicts them; \u21b5 = newline\n")
        return {"text": header + "".join(parts)}

    def flops_per_step(self):
        c = self.config
        b, t = c.batch_size, c.seq_len
        return flops.train(encoder_flops(b, t, c.width, c.layers) + flops.dense(b * t, c.width, BYTES))

    def tokens_per_step(self):
        return self.config.batch_size * self.config.seq_len
