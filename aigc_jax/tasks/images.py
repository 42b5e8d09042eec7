"""Helpers shared by the image-generation tasks."""

import jax
import jax.numpy as jnp

from aigc_jax.eval.frechet import frechet_from_sums

POOL = 4  # pixel statistics are taken on 4x4-average-pooled images (28x28 -> 7x7 = 49 features)


def pooled_pixels(images: jax.Array) -> jax.Array:
    """[B, H, W, 1] in [0, 1] -> [B, (H/4)*(W/4)] features for a pixel-space Fréchet distance."""
    b, h, w, c = images.shape
    pooled = images.reshape(b, h // POOL, POOL, w // POOL, POOL, c).mean(axis=(2, 4))
    return pooled.reshape(b, -1)


def feature_sums(name: str, features: jax.Array, mask: jax.Array) -> dict:
    """Masked sums of features and of their outer products, for `frechet_from_sums`."""
    weighted = features * mask[:, None]
    return {f"{name}_sum": weighted.sum(0), f"{name}_outer": weighted.T @ features}


def pixel_fd(means: dict) -> float:
    return frechet_from_sums(means, "fake", "real")


def split_keys(keys: jax.Array, n: int = 2):
    """Per-example keys [B] -> n independent per-example key arrays [B] each."""
    split = jax.vmap(lambda k: jax.random.split(k, n))(keys)
    return tuple(split[:, i] for i in range(n))


def to_unit(images: jax.Array) -> jax.Array:
    """[-1, 1] -> [0, 1]."""
    return jnp.clip((images + 1.0) / 2.0, 0.0, 1.0)


# Judge metrics: the features and class probabilities of the project's own digits classifier
# (`aigc_jax.eval.judge`), accumulated as masked sums like the pixel statistics above.

def judge_sums(judge_params, fake: jax.Array, real: jax.Array, mask: jax.Array) -> dict:
    """Sums for `judge_metrics`: judge features of fakes and reals, and the fakes' class probabilities.

    `fake` and `real` are [B, 28, 28, 1] in [0, 1], as the judge was trained on; `judge_params` are
    constants closed over by the compiled eval step.
    """
    from aigc_jax.eval.judge import judge_outputs

    fake_logits, fake_features = judge_outputs(judge_params, fake)
    _, real_features = judge_outputs(judge_params, real)
    probs = jax.nn.softmax(fake_logits) * mask[:, None]
    return {**feature_sums("judge_fake", fake_features, mask), **feature_sums("judge_real", real_features, mask),
            "judge_probs": probs.sum(0)}


def judge_metrics(means: dict) -> dict:
    """{"fd": judge-feature Fréchet distance fake vs real, "diversity": entropy (nats) of the mean
    predicted class distribution of the fakes, at most log(10)}."""
    from aigc_jax.eval.judge import entropy_of_mean

    return {"fd": frechet_from_sums(means, "judge_fake", "judge_real"),
            "diversity": entropy_of_mean(means["judge_probs"])}


def without_judge_sums(means: dict) -> dict:
    return {k: v for k, v in means.items() if not k.startswith("judge_")}


def require_judge(task):
    """The judge params that `load_data()` loaded (they must exist before eval_step is traced)."""
    params = getattr(task, "judge", None)
    if params is None:
        raise RuntimeError(f"{task.name}: call load_data() before eval_step (it loads the judge classifier), "
                           "or set config.judge_metrics=false")
    return params
