"""`word2vec`: skip-gram with negative sampling (Mikolov et al. 2013) on the words of `pydoc_text`.

An example is one (center, context) pair of the word view (`data/words.py`). Each train step
scores the true context and `negatives` words drawn from the unigram^0.75 distribution of the
train words, per example from `batch["key"]`, with the logistic loss
    -log sigmoid(s(c, o)) - sum_k log sigmoid(-s(c, w_k)),  s = word vector . context vector.

Evaluation, over every pair of the held-out topics: `loss` (the same loss, negatives drawn from
the eval keys) and a similarity check on the vectors (word + context vector, `SkipGram.embed`):
`cooccur_cos` (mean cosine of co-occurring test pairs), `random_cos` (mean cosine of the same
centers with a shuffled partner, pairs of a word with itself left out) and `cooccur_minus_random`,
their difference: about 0 for random vectors, positive once words that appear together get
similar vectors. Samples: the nearest neighbours (cosine) of `query_words`, as text.

l1/l2 (engine-wide) act on both tables (they are 2-D); l2's decay is learning_rate * l2 per
update, while the SGD step itself is learning_rate * batch_size (see `optimizer`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aigc_jax import flops
from aigc_jax.data.text import EMBEDDED
from aigc_jax.data.words import WordView, load_word_pairs, word_view
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.errors import UserError
from aigc_jax.models.word2vec import SkipGram
from aigc_jax.tasks.base import Task
from aigc_jax.tasks.optim import SCHEDULE_CHOICES, SCHEDULE_RANGES, add_schedule_keys, learning_rate_schedule


def negative_loss(logits: jax.Array) -> jax.Array:
    """[B]: the logistic loss of column 0 being the true context and the others sampled words."""
    return -jax.nn.log_sigmoid(logits[:, 0]) - jax.nn.log_sigmoid(-logits[:, 1:]).sum(-1)


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    a, b = (x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12) for x in (a, b))
    return (a * b).sum(-1)


class Word2VecTask(Task):
    name = "word2vec"
    summary = "skip-gram word2vec with negative sampling on the words of the Python docs (pydoc_text)"
    main_metric = "loss"
    config_ranges = {"vocab_size": (3, None), "dim": (1, None), "window": (1, None), "negatives": (1, None),
                     "subsample": (0.0, 1.0), "neighbours": (1, None), **SCHEDULE_RANGES}
    config_choices = {**SCHEDULE_CHOICES}
    benchmark_presets = {
        "tiny": {"vocab_size": 200, "dim": 8, "window": 1, "negatives": 2, "batch_size": 8},
        "cpu": {"vocab_size": 2000, "dim": 64, "window": 3, "negatives": 5, "batch_size": 512},
        # Benchmark shape: a web-scale vocabulary (rows past the corpus's words are never drawn).
        "gpu": {"vocab_size": 65536, "dim": 300, "window": 5, "negatives": 5, "batch_size": 65536,
                "dtype": "bfloat16"},
    }

    @staticmethod
    def default_config():
        c = base_config()
        c.dataset = EMBEDDED  # or a TFDS catalog text dataset prepared in array_record
        c.vocab_size = 2000  # <unk> + the most frequent train words (pydoc_text has ~3200)
        c.dim = 64  # vector size
        c.window = 3  # context words on each side of the center
        c.negatives = 5  # sampled words per pair
        c.subsample = 1e-3  # Mikolov's frequent-word subsampling threshold t; 0 = off
        c.steps = 4000
        c.batch_size = 512  # pairs per step
        c.eval_batch_size = 4096
        c.learning_rate = 0.1  # per pair, as word2vec.c's alpha (see `optimizer`)
        add_schedule_keys(c)  # cosine decay to 0 at `steps`
        c.clip_norm = 0.0
        c.query_words = ("list", "function", "class", "import", "string", "true")  # words the samples list neighbours of
        c.neighbours = 8  # nearest neighbours listed per query word
        c.log_every = 100
        c.eval_every = 1000
        c.ckpt_every = 1000
        c.sample_every = 0  # steps between sample files; 0 = only at the end
        return c

    def __init__(self, config, constants=None):
        if config.neighbours > config.vocab_size - 2:
            raise UserError(f"config.neighbours={config.neighbours}: expected at most vocab_size - 2 = "
                            f"{config.vocab_size - 2}")
        super().__init__(config, constants)

    @property
    def model(self) -> SkipGram:
        return SkipGram(self.config.vocab_size, self.config.dim, dtype=self.compute_dtype)

    @property
    def view(self) -> WordView:
        """The corpus's word view (read once per process): the vocabulary the steps and samples use."""
        c = self.config
        return word_view(c.dataset, c.data_dir, c.vocab_size)

    def load_data(self):
        return load_word_pairs(self.view, self.config.window, self.config.subsample)

    def negatives(self, keys: jax.Array) -> jax.Array:
        """[B, negatives] word ids from the unigram^0.75 distribution, one draw per example key."""
        probs = np.zeros(self.config.vocab_size)
        dist = self.view.negative_distribution()
        probs[:len(dist)] = dist
        cdf = jnp.asarray(np.cumsum(probs), jnp.float32)
        last = len(dist) - 1  # float rounding can leave the top of the cdf a hair below 1

        def draw(key):
            return jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(key, (self.config.negatives,)),
                                                side="right"), last)

        return jax.vmap(draw)(keys).astype(jnp.int32)

    def optimizer(self) -> optax.GradientTransformation:
        """Plain SGD, as word2vec.c: each pair's update is `learning_rate` times its gradient and a
        batch's updates add up, so the batch-mean gradient is applied with learning_rate * batch_size.
        (Adam moves rare and frequent words alike and left every vector on one shared direction.)"""
        schedule = learning_rate_schedule(self.config)
        sgd = optax.sgd(lambda count: schedule(count) * self.config.batch_size)
        return optax.chain(optax.clip_by_global_norm(self.config.clip_norm), sgd) if self.config.clip_norm else sgd

    def init(self, rng, batch):
        variables = self.model.init(rng, batch["center"][:1], batch["context"][:1, None])
        return create_train_state(self.model, variables, self.optimizer())

    def _loss(self, params, batch) -> jax.Array:
        candidates = jnp.concatenate([batch["context"][:, None], self.negatives(batch["key"])], axis=1)
        return negative_loss(self.model.apply({"params": params}, batch["center"], candidates))

    def train_step(self, state, batch, rng):
        loss, grads = jax.value_and_grad(lambda p: self._loss(p, batch).mean())(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss}

    def _vectors(self, state, ids):
        return self.model.apply({"params": state.params}, ids, method=SkipGram.embed)

    def eval_step(self, state, batch, rng):
        m = batch["mask"]
        center = self._vectors(state, batch["center"])
        together = cosine(center, self._vectors(state, batch["context"]))
        apart = cosine(center, self._vectors(state, batch["random"]))
        distinct = (batch["random"] != batch["center"]).astype(jnp.float32) * m
        return {"loss": (self._loss(state.params, batch) * m).sum(), "cooccur_cos": (together * m).sum(),
                "random_cos_sum": (apart * distinct).sum(), "random_pairs": distinct.sum()}

    def finalize_eval(self, means):
        random_cos = means["random_cos_sum"] / max(means["random_pairs"], 1e-12)
        return {"loss": means["loss"], "cooccur_cos": means["cooccur_cos"], "random_cos": random_cos,
                "cooccur_minus_random": means["cooccur_cos"] - random_cos}

    def query_ids(self) -> list[int]:
        view = self.view
        return [view.index(w) for w in self.config.query_words if view.index(w) is not None]

    def sample(self, state, rng, batch):
        ids = self.query_ids()
        if not ids:
            return {}
        table = self.model.apply({"params": state.params}, method=SkipGram.table).astype(jnp.float32)
        table = table / jnp.maximum(jnp.linalg.norm(table, axis=-1, keepdims=True), 1e-12)
        sims = table[jnp.asarray(ids)] @ table.T  # [Q, V]
        excluded = jnp.arange(self.config.vocab_size) >= len(self.view.vocab)  # padding rows
        excluded = excluded.at[0].set(True)  # <unk>
        sims = jnp.where(excluded[None] | (jnp.arange(sims.shape[1])[None] == jnp.asarray(ids)[:, None]),
                         -jnp.inf, sims)
        scores, neighbours = jax.lax.top_k(sims, self.config.neighbours)
        return {"neighbours": neighbours, "scores": scores}

    def render_samples(self, outputs):
        vocab, c = self.view.vocab, self.config
        lines = [f"nearest neighbours (cosine of word + context vectors) in the {len(vocab)}-word vocabulary"]
        rows = iter(zip(outputs.get("neighbours", []), outputs.get("scores", [])))
        for word in c.query_words:
            if word not in vocab:
                lines.append(f"{word}: not in the vocabulary")
                continue
            ids, scores = next(rows)
            found = [f"{vocab[i]} {s:.2f}" for i, s in zip(ids, scores) if np.isfinite(s)]  # not padding rows
            lines.append(f"{word}: " + ", ".join(found))
        return {"neighbours": "\n".join(lines) + "\n"}

    def flops_per_step(self):
        c = self.config
        # One dot product of `dim` per (pair, candidate), forward and backward.
        return flops.train(flops.dense(c.batch_size * (1 + c.negatives), c.dim, 1))
