"""`mlm_finetune`: a byte-window classifier whose encoder starts from a pretrained `mlm` run.

The downstream task is `scrambled_words` (synthetic labels on real text, see
`aigc_jax/data/scrambled_words.py`): original docs window vs. the same window with the inner
letters of its words shuffled, trained on only `label_budget` windows per class.

`pretrained` names the workdir of a trained `mlm` run; "" trains the same classifier from
scratch. With it, `load_data` (host side, before anything is compiled) restores *only* the
`params/encoder` subtree of that run's newest checkpoint through orbax's partial restore
(`engine/checkpoint.restore_subtree`): the MLM head and the optimizer state are never read. `init`
puts those arrays in place of the fresh encoder; the classification head stays freshly
initialised. A checkpoint of another family or encoder shape is a one-line UserError. The whole
network is then fine-tuned. Once this run has its own checkpoints, resuming restores those.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aigc_jax import flops
from aigc_jax.data.scrambled_words import CLASSES, scrambled_words_splits
from aigc_jax.data.text import decode_bytes
from aigc_jax.engine.checkpoint import restore_subtree
from aigc_jax.engine.state import create_train_state
from aigc_jax.models.bert import Encoder, SequenceClassifier
from aigc_jax.tasks.base import Task, check_heads
from aigc_jax.tasks.mlm import ENCODER_RANGES, MLMTask, byte_windows, encoder_config, encoder_flops
from aigc_jax.tasks.optim import SCHEDULE_CHOICES, SCHEDULE_RANGES, adam_optimizer


class MLMFinetuneTask(Task):
    name = "mlm_finetune"
    summary = "classifier fine-tuned from a pretrained mlm encoder (orbax partial restore), few labels"
    main_metric = "loss"
    config_ranges = {**ENCODER_RANGES, **SCHEDULE_RANGES, "label_budget": (1, None), "weight_decay": (0.0, None),
                     "num_samples": (1, None)}
    config_choices = {**SCHEDULE_CHOICES}

    benchmark_presets = {
        "tiny": {"seq_len": 16, "width": 32, "layers": 1, "heads": 2, "batch_size": 8, "label_budget": 8,
                 "num_samples": 2},
        "cpu": {"seq_len": 128, "width": 128, "layers": 4, "heads": 4, "batch_size": 32, "label_budget": 256,
                "warmup_steps": 0, "lr_schedule": "constant"},
        "gpu": {"seq_len": 512, "width": 768, "layers": 12, "heads": 12, "batch_size": 128, "label_budget": 64,
                "learning_rate": 1e-4, "warmup_steps": 0, "lr_schedule": "constant", "dtype": "bfloat16"},
    }

    @staticmethod
    def default_config():
        c = encoder_config()
        c.pretrained = ""  # workdir of a trained mlm run whose encoder to start from; "" = from scratch
        c.label_budget = 64  # labelled train windows per class (of ~6000 in the train topics)
        c.steps = 150
        c.batch_size = 32
        c.eval_batch_size = 128
        c.learning_rate = 1e-3
        c.warmup_steps = 10
        c.num_samples = 8  # test windows written per sample file
        c.log_every = 25
        c.eval_every = 50
        c.ckpt_every = 150
        c.sample_every = 0
        return c

    def __init__(self, config, constants=None):
        check_heads(config)
        super().__init__(config, constants)

    @property
    def model(self) -> SequenceClassifier:
        c = self.config
        encoder = Encoder(context=c.seq_len, width=c.width, layers=c.layers, heads=c.heads, dtype=self.compute_dtype)
        return SequenceClassifier(encoder, classes=len(CLASSES))

    def encoder_shapes(self) -> dict:
        """The encoder's parameters as ShapeDtypeStructs: the subtree the checkpoint must hold."""
        ids = jax.ShapeDtypeStruct((1, self.config.seq_len), jnp.int32)
        return jax.eval_shape(self.model.init, jax.random.key(0), ids)["params"]["encoder"]

    def load_data(self):
        c = self.config
        windows = byte_windows(c.dataset, c.data_dir, c.seq_len)
        data = scrambled_words_splits(windows.train["tokens"], windows.test["tokens"], c.label_budget, c.seed)
        if c.pretrained:
            _, restored = restore_subtree(os.path.join(c.pretrained, "checkpoints"),
                                          {"params": {"encoder": self.encoder_shapes()}}, MLMTask.name)
            data = data.with_constants(pretrained_encoder=restored["params"]["encoder"])  # numpy arrays
        return data

    def init(self, rng, batch):
        params = self.model.init(rng, batch["tokens"][:1])["params"]
        if self.config.pretrained:
            params = {**params, "encoder": jax.tree.map(jnp.asarray, self.constant("pretrained_encoder"))}
        return create_train_state(self.model, {"params": params},
                                  adam_optimizer(self.config, self.config.weight_decay))

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            logits = self.model.apply({"params": params}, batch["tokens"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean(), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        accuracy = (logits.argmax(-1) == batch["label"]).mean()
        return state.apply_gradients(grads=grads), {"loss": loss, "accuracy": accuracy}

    def eval_step(self, state, batch, rng):
        logits = self.model.apply({"params": state.params}, batch["tokens"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = (logits.argmax(-1) == batch["label"]).astype(jnp.float32)
        return {"loss": (loss * batch["mask"]).sum(), "accuracy": (correct * batch["mask"]).sum()}

    def sample(self, state, rng, batch):
        n = self.config.num_samples
        logits = self.model.apply({"params": state.params}, batch["tokens"][:n])
        return {"tokens": batch["tokens"][:n], "label": batch["label"][:n], "predicted": logits.argmax(-1)}

    def render_samples(self, outputs):
        lines = [f"[{'ok' if p == t else 'WRONG'}] predicted {CLASSES[p]}, is {CLASSES[t]}: "
                 f"{decode_bytes(tokens)!r}"
                 for tokens, t, p in zip(outputs["tokens"], np.asarray(outputs["label"]), np.asarray(outputs["predicted"]))]
        return {"predictions": "held-out windows, scrambled_words (synthetic: original vs inner letters shuffled)\n"
                               + "\n".join(lines) + "\n"}

    def flops_per_step(self):
        c = self.config
        b, t = c.batch_size, c.seq_len
        return flops.train(encoder_flops(b, t, c.width, c.layers) + flops.dense(b, c.width, len(CLASSES)))

    def tokens_per_step(self):
        return self.config.batch_size * self.config.seq_len
