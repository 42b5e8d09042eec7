"""`simclr`: contrastive representation learning on digits (SimCLR, Chen et al. 2020).

Each training image gets two random views (`data/augment.py`: rotation, zoom, shift, elastic
warp, noise; one key per example from `batch["key"]`). The encoder and projection head
(`models/simclr.py`) map both views to z, and the NT-Xent loss asks each view to pick its partner
out of the other 2B - 2 views of the *global* batch (cosine similarity / temperature, softmax
cross-entropy). Labels are never used in training.

Quality is the linear probe evaluator (`evaluators = (LinearProbe(),)`): ridge regression from the frozen
encoder features h (before the head) fitted on the train split, accuracy on the test split
(`eval_probe_accuracy`). `Run(task).evaluate()` measures the same probe on the encoder as
initialised, the baseline a trained encoder has to beat. `eval_loss` / `eval_pair_accuracy` are NT-Xent and
partner retrieval on augmented test views within each eval batch (they depend on its size).
"""

import jax
import jax.numpy as jnp
import optax
from jax import lax

from aigc_jax import flops
from aigc_jax.data.augment import Augmentation, two_views
from aigc_jax.data.images import load_image_splits
from aigc_jax.engine import parallel
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.models.simclr import SimCLR
from aigc_jax.tasks.base import Task
from aigc_jax.eval.linear_probe import LinearProbe

IMAGE_SIZE = 28
EXCLUDED = -1e9  # logit of a candidate that is not one (the anchor itself, eval padding)


def _device_offset(rows: int):
    """Index in the global batch of this device's first row (0 when the batch is not split by hand)."""
    axis = parallel.bound_data_axis()
    return 0 if axis is None else lax.axis_index(axis) * rows


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float, mask: jax.Array | None = None):
    """Per-example NT-Xent loss and partner-retrieval hit rate of this device's examples: ([b], [b]).

    z1, z2: [b, d] projections of the two views of the local examples. The candidates are the views
    of the global batch (gathered under shard_map/pmap); each device scores its own anchors only, so
    the device mean of the loss is the global batch's loss and `TrainState.apply_gradients`' pmean
    of the gradients is its gradient (all_gather's transpose returns every device's share of the
    gradient to the rows' own device). `mask` [b] (eval padding, 0 = absent) drops rows from the
    candidates; their own losses are left for the caller to mask.
    """
    z1, z2 = (z.astype(jnp.float32) for z in (z1, z2))
    z1, z2 = (z * lax.rsqrt(jnp.maximum((z * z).sum(-1, keepdims=True), 1e-12)) for z in (z1, z2))
    mask = jnp.ones(z1.shape[0]) if mask is None else mask
    all1, all2, all_mask = parallel.data_all_gather((z1, z2, mask))
    b, n = z1.shape[0], all1.shape[0]
    rows = _device_offset(b) + jnp.arange(b)
    anchors, candidates = jnp.concatenate([z1, z2]), jnp.concatenate([all1, all2])  # [2b, d], [2n, d]
    self_index, partner = jnp.concatenate([rows, rows + n]), jnp.concatenate([rows + n, rows])
    logits = anchors @ candidates.T / temperature
    excluded = (jnp.arange(2 * n)[None, :] == self_index[:, None]) | (jnp.tile(all_mask, 2) == 0)[None, :]
    logits = jnp.where(excluded, EXCLUDED, logits)
    positive = jnp.take_along_axis(logits, partner[:, None], axis=1)[:, 0]
    loss = jax.nn.logsumexp(logits, axis=-1) - positive
    hit = (logits.argmax(-1) == partner).astype(jnp.float32)
    return loss.reshape(2, b).mean(0), hit.reshape(2, b).mean(0)


class SimCLRTask(Task):
    name = "simclr"
    summary = "SimCLR contrastive learning on digits: augmentations, NT-Xent, linear probe of the encoder"
    main_metric = "loss"
    evaluators = (LinearProbe(),)

    @staticmethod
    def default_config():
        c = base_config()
        c.channels = (16, 32)  # encoder convolution widths
        # The representation h that the probe reads. Wider random ReLU features are already nearly as
        # separable as trained ones on these digits (128: 0.972 at init vs 0.975 after 400 steps);
        # at 64 training shows (0.917 -> 0.958).
        c.hidden = 64  # encoder output width h (what the probe reads)
        c.head_hidden = 128  # projection head hidden width
        c.projection = 64  # projection z width (what NT-Xent compares)
        c.temperature = 0.2  # NT-Xent temperature
        aug = Augmentation()
        c.aug_rotation = aug.rotation  # degrees
        c.aug_scale = aug.scale  # zoom in [1 - s, 1 + s]
        c.aug_shift = aug.shift  # pixels
        c.aug_elastic = aug.elastic  # pixels (std of the smooth displacement)
        c.aug_noise = aug.noise  # std of the Gaussian noise augmentation
        c.steps = 400
        c.batch_size = 128
        c.learning_rate = 2e-3
        c.log_every = 50
        c.eval_every = 100
        c.ckpt_every = 400
        c.sample_every = 400
        return c

    config_ranges = {"hidden": (1, None), "head_hidden": (1, None), "projection": (1, None),
                     "temperature": (0.01, 100.0), "aug_rotation": (0.0, 180.0), "aug_scale": (0.0, 0.9),
                     "aug_shift": (0.0, IMAGE_SIZE / 2), "aug_elastic": (0.0, IMAGE_SIZE / 4),
                     "aug_noise": (0.0, 1.0)}
    benchmark_presets = {
        "tiny": {"channels": (4, 8), "hidden": 16, "head_hidden": 16, "projection": 8, "batch_size": 8},
        "cpu": {"channels": (16, 32), "hidden": 64, "head_hidden": 128, "projection": 64, "batch_size": 128},
        "gpu": {"channels": (128, 256), "hidden": 1024, "head_hidden": 1024, "projection": 128,
                "batch_size": 4096, "dtype": "bfloat16"},
    }

    @property
    def model(self):
        c = self.config
        return SimCLR(channels=tuple(c.channels), hidden=c.hidden, head_hidden=c.head_hidden,
                      projection=c.projection, dtype=self.compute_dtype)

    @property
    def augmentation(self) -> Augmentation:
        c = self.config
        return Augmentation(rotation=c.aug_rotation, scale=c.aug_scale, shift=c.aug_shift,
                            elastic=c.aug_elastic, noise=c.aug_noise)

    def load_data(self):
        return load_image_splits(self.config.dataset, self.config.data_dir, IMAGE_SIZE)

    def init(self, rng, batch):
        variables = self.model.init(rng, batch["image"][:1])
        return create_train_state(self.model, variables, optax.adam(self.config.learning_rate))

    def _terms(self, params, batch, mask=None):
        v1, v2 = two_views(batch["key"], batch["image"], self.augmentation)
        _, z = self.model.apply({"params": params}, jnp.concatenate([v1, v2]))  # one pass over both views
        z1, z2 = jnp.split(z, 2)
        return nt_xent(z1, z2, self.config.temperature, mask)

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            loss, hit = self._terms(params, batch)
            return loss.mean(), hit.mean()

        (loss, hit), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss, "pair_accuracy": hit}

    def eval_step(self, state, batch, rng):
        m = batch["mask"]
        loss, hit = self._terms(state.params, batch, m)
        return {"loss": (loss * m).sum(), "pair_accuracy": (hit * m).sum()}

    def probe_features(self, state, batch):
        return self.model.apply({"params": state.params}, batch["image"], method=SimCLR.features)

    def sample(self, state, rng, batch):
        """27 test digits as (original, view 1, view 2) triples, three triples per row of the grid."""
        x = jnp.take(batch["image"], jnp.arange(27) % batch["image"].shape[0], axis=0)
        v1, v2 = two_views(jax.random.split(rng, 27), x, self.augmentation)
        return {"augmented_pairs": jnp.stack([x, v1, v2], axis=1).reshape(81, *x.shape[1:])}

    def flops_per_step(self):
        c = self.config
        views, size, c_in, forward = 2 * c.batch_size, IMAGE_SIZE, 1, 0.0
        for ch in c.channels:  # 'SAME' 3x3 conv, then 2x2 max-pool
            forward += flops.conv2d(views, size, size, 3, 3, c_in, ch)
            size, c_in = size // 2, ch
        forward += flops.mlp(views, (size * size * c_in, c.hidden, c.head_hidden, c.projection))
        forward += flops.dense(views, c.projection, views)  # the similarity matrix of all views
        return flops.train(forward)  # the augmentations' resampling is not counted

