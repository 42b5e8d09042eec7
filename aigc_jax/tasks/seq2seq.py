"""What the encoder-decoder families share: data, teacher-forced loss, decoding metrics, samples.

A batch is {"source": [B, S], "target": [B, T + 1]}: the decoder reads target[:, :-1] (BOS first)
and is trained to predict target[:, 1:] (EOS last, PAD after it, PAD not scored). The loss is the
token cross-entropy averaged over each sequence's tokens, then over sequences, so it does not
depend on how the batch is split across devices.

Metrics: `loss`, `token_accuracy` (teacher-forced argmax), `exact_match` (the greedy decoding,
whole sequence equal to the target, EOS included) and, with beam_size > 1, `beam_exact_match`.
"""

import jax
import jax.numpy as jnp
import optax

from aigc_jax import decoding
from aigc_jax.data.tokenizer import PAD, join_words
from aigc_jax.data.translation import EMBEDDED, VOCABULARY, load_translation_splits, source_text
from aigc_jax.engine.config import base_config
from aigc_jax.engine.state import create_train_state
from aigc_jax.errors import UserError
from aigc_jax.tasks.base import Task
from aigc_jax.tasks.optim import SCHEDULE_CHOICES, SCHEDULE_RANGES, adam_optimizer, add_schedule_keys

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def seq2seq_config():
    """The keys both families share, with the defaults of their few-minute CPU runs."""
    c = base_config()
    c.dataset = EMBEDDED
    c.max_source_len = 8  # source positions: digits + EOS
    c.max_target_len = 16  # decoder positions: BOS + words (predicting words + EOS)
    c.vocab_size = 0  # 0 = the tokenizer's; larger only pads the embedding (benchmark shapes)
    c.dtype = "float32"  # compute dtype; parameters stay float32
    c.beam_size = 4  # > 1 also reports eval_beam_exact_match and writes beam samples
    c.num_samples = 32  # test translations written per sample file
    c.batch_size = 64
    add_schedule_keys(c)
    c.log_every = 50
    c.eval_every = 200
    c.ckpt_every = 200
    c.sample_every = 0  # steps between sample files; 0 = only at the end
    return c


def split_target(batch):
    return batch["source"], batch["target"][:, :-1], batch["target"][:, 1:]


class Seq2SeqTask(Task):
    main_metric = "loss"
    config_ranges = {"max_source_len": (2, None), "max_target_len": (2, None), "vocab_size": (0, None),
                     "beam_size": (1, None), "num_samples": (1, None), **SCHEDULE_RANGES}
    config_choices = {"dtype": tuple(DTYPES), **SCHEDULE_CHOICES}

    def __init__(self, config, constants=None):
        if 0 < config.vocab_size < len(VOCABULARY):
            raise UserError(f"config.vocab_size={config.vocab_size}: expected 0 (the tokenizer's) or "
                            f">= {len(VOCABULARY)} (the tokenizer's vocabulary)")
        super().__init__(config, constants)

    # --- what each family provides -------------------------------------------------------------
    @property
    def model(self):
        raise NotImplementedError

    def decoder_step(self, params, source, copies: int = 1):
        """(step_fn, initial state) for `aigc_jax.decoding`, each source repeated `copies` times."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size or len(VOCABULARY)

    @property
    def dtype(self):
        return DTYPES[self.config.dtype]

    def greedy(self, params, source):
        """[B, max_target_len] tokens: EOS included, PAD after it."""
        return decoding.greedy(*self.decoder_step(params, source), source.shape[0], self.config.max_target_len)

    def beam(self, params, source, beam_size: int):
        return decoding.beam_search(*self.decoder_step(params, source, beam_size), source.shape[0],
                                    self.config.max_target_len, beam_size)[0]

    def load_data(self):
        c = self.config
        return load_translation_splits(c.dataset, c.data_dir, c.max_source_len, c.max_target_len)

    def optimizer(self) -> optax.GradientTransformation:
        return adam_optimizer(self.config)

    def init(self, rng, batch):
        source, decoder_input, _ = split_target(batch)
        variables = self.model.init(rng, source[:1], decoder_input[:1])
        return create_train_state(self.model, variables, self.optimizer())

    def _scores(self, params, batch):
        """Per-example loss, per-token correctness and the mask of scored tokens."""
        source, decoder_input, labels = split_target(batch)
        logits = self.model.apply({"params": params}, source, decoder_input)
        scored = labels != PAD
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        loss = (ce * scored).sum(-1) / scored.sum(-1)
        correct = (logits.argmax(-1) == labels) & scored
        return loss, correct, scored

    def train_step(self, state, batch, rng):
        def loss_fn(params):
            loss, correct, scored = self._scores(params, batch)
            return loss.mean(), (correct, scored)

        (loss, (correct, scored)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        metrics = {"loss": loss,
                   "token_accuracy": (correct.sum(-1) / scored.sum(-1)).mean(),
                   # all teacher-forced argmaxes right <=> greedy decoding reproduces the target
                   "sequence_accuracy": (correct == scored).all(-1).mean()}
        return state.apply_gradients(grads=grads), metrics

    def eval_step(self, state, batch, rng):
        m = batch["mask"]
        loss, correct, scored = self._scores(state.params, batch)
        source, _, labels = split_target(batch)
        exact = (self.greedy(state.params, source) == labels).all(-1)
        out = {"loss": (loss * m).sum(), "token_correct": (correct.sum(-1) * m).sum(),
               "tokens": (scored.sum(-1) * m).sum(), "exact_match": (exact * m).sum()}
        if self.config.beam_size > 1:
            beam_exact = (self.beam(state.params, source, self.config.beam_size) == labels).all(-1)
            out["beam_exact_match"] = (beam_exact * m).sum()
        return out

    def finalize_eval(self, means):
        out = {k: v for k, v in means.items() if k not in ("token_correct", "tokens")}
        out["token_accuracy"] = means["token_correct"] / means["tokens"]
        return out

    def sample(self, state, rng, batch):
        n = min(self.config.num_samples, batch["source"].shape[0])
        source, _, labels = split_target({k: v[:n] for k, v in batch.items()})
        out = {"source": source, "target": labels, "greedy": self.greedy(state.params, source)}
        if self.config.beam_size > 1:
            out["beam"] = self.beam(state.params, source, self.config.beam_size)
        return out

    def render_samples(self, outputs):
        texts = {"translations": ("greedy", "greedy decoding")}
        if "beam" in outputs:
            texts["beam_translations"] = ("beam", f"beam search (beam {self.config.beam_size})")
        return {name: translation_lines(outputs, key, what) for name, (key, what) in texts.items()}

    def tokens_per_step(self):
        """Source and decoder positions of one train batch (padding included: it is computed)."""
        c = self.config
        return c.batch_size * (c.max_source_len + c.max_target_len)


def translation_lines(outputs: dict, key: str, what: str) -> str:
    """'source -> prediction' per test example; a wrong one also shows '-> target'."""
    lines, right = [], 0
    for src, pred, tgt in zip(outputs["source"], outputs[key], outputs["target"]):
        prediction, target = join_words(VOCABULARY.decode(pred)), join_words(VOCABULARY.decode(tgt))
        ok = list(pred) == list(tgt)
        right += ok
        lines.append(f"{source_text(src)} -> {prediction}" + ("" if ok else f"  (wrong) -> {target}"))
    header = f"test source -> {what} [-> target, where wrong]: {right}/{len(lines)} exact\n"
    return header + "\n".join(lines) + "\n"
