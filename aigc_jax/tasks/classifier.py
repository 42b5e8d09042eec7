"""`mlp` and `cnn`: digit classifiers (seed 004), softmax cross-entropy, test accuracy."""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import flops
from aigc_jax.data.images import load_image_splits
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.models.classifier import CNN, MLP
from aigc_jax.tasks.base import Task

IMAGE_SIZE = 28  # the digits' size (the FLOP counts assume it)


def with_image_size(c):
    c.image_size = 0  # images resized to this size; 0: the size the dataset stores (28 digits, 32 cifar10)
    return c


class _Classifier(Task):
    main_metric = "loss"
    config_ranges = {"image_size": (0, None)}

    def load_data(self):
        # Colour kept (3 channels on colour sets); a large set read from disk batch by batch.
        c = self.config
        return load_image_splits(c.dataset, c.data_dir, c.image_size or None, num_examples=c.num_examples,
                                 colour=True, in_memory_mb=c.in_memory_mb)

    def init(self, rng, batch):
        variables = self.model.init(rng, batch["image"])
        return create_train_state(self.model, variables, optax.adam(self.config.learning_rate))

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            logits = state.apply_fn({"params": params}, batch["image"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        accuracy = (logits.argmax(-1) == batch["label"]).mean()
        return state.apply_gradients(grads=grads), {"loss": loss, "accuracy": accuracy}

    def eval_step(self, state, batch, rng):
        logits = state.apply_fn({"params": state.params}, batch["image"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = (logits.argmax(-1) == batch["label"]).astype(jnp.float32)
        return {"loss": (loss * batch["mask"]).sum(), "accuracy": (correct * batch["mask"]).sum()}

    def sample(self, state, rng, batch):
        images = batch["image"][:64]
        return {"test_images": images, "predicted": state.apply_fn({"params": state.params}, images).argmax(-1),
                "label": batch["label"][:64]}

    def render_samples(self, outputs):
        rows = [" ".join(f"{p}{'' if p == t else '!'}" for p, t in zip(outputs["predicted"][i:i + 8],
                                                                    outputs["label"][i:i + 8]))
                for i in range(0, len(outputs["predicted"]), 8)]
        text = "predicted class per test image, row by row as in the grid ('!' = wrong)\n" + "\n".join(rows) + "\n"
        return {"test_images": outputs["test_images"], "predictions": text}


class MLPClassifier(_Classifier):
    name = "mlp"
    summary = "multilayer perceptron digit classifier (seed 004)"
    benchmark_presets = {
        "tiny": {"hidden": (32,), "batch_size": 8},
        "cpu": {"hidden": (256, 128), "batch_size": 128},
        "gpu": {"hidden": (4096, 4096), "batch_size": 4096, "dtype": "bfloat16"},
    }

    @staticmethod
    def default_config():
        c = base_config()
        c.hidden = (256, 128)  # hidden layer widths of the MLP
        c.steps = 1500
        c.batch_size = 32
        c.learning_rate = 1e-3
        c.eval_every = 500
        c.sample_every = 0
        return with_image_size(c)

    @property
    def model(self):
        return MLP(hidden=tuple(self.config.hidden), dtype=self.compute_dtype)

    def flops_per_step(self):
        widths = (IMAGE_SIZE * IMAGE_SIZE, *self.config.hidden, 10)
        return flops.train(flops.mlp(self.config.batch_size, widths))


class CNNClassifier(_Classifier):
    name = "cnn"
    summary = "convolutional digit classifier: 2 conv + 2 dense layers (seed 004)"
    benchmark_presets = {
        "tiny": {"channels": (4, 8), "hidden": 16, "batch_size": 8},
        "cpu": {"channels": (32, 64), "hidden": 64, "batch_size": 32},  # BENCHMARKS.md
        "gpu": {"channels": (128, 256), "hidden": 1024, "batch_size": 1024, "dtype": "bfloat16"},
    }

    @staticmethod
    def default_config():
        c = base_config()
        c.channels = (32, 64)  # output channels of the two 3x3 convolutions
        c.hidden = 64  # width of the dense layer after the convolutions
        c.steps = 1000
        c.batch_size = 32
        c.learning_rate = 1e-3
        c.eval_every = 250
        c.sample_every = 0
        return with_image_size(c)

    @property
    def model(self):
        return CNN(channels=tuple(self.config.channels), hidden=self.config.hidden, dtype=self.compute_dtype)

    def flops_per_step(self):
        b, size, c_in, total = self.config.batch_size, IMAGE_SIZE, 1, 0.0
        for ch in self.config.channels:  # 'SAME' 3x3 conv, then 2x2 max-pool
            total += flops.conv2d(b, size, size, 3, 3, c_in, ch)
            size, c_in = size // 2, ch
        total += flops.mlp(b, (size * size * c_in, self.config.hidden, 10))
        return flops.train(total)

