"""Helpers shared by the image-generation tasks."""

import jax
import jax.numpy as jnp

from aigc_jax.eval.frechet import frechet_from_sums

JUDGE_SIZE = 28  # the judge classifier's input size (tasks/judge.py)
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
# (`aigc_jax.tasks.judge`), accumulated as masked sums like the pixel statistics above.

def judge_sums(judge_params, fake: jax.Array, real: jax.Array, mask: jax.Array, prompts: jax.Array | None = None) -> dict:
    """Sums for `judge_metrics`: judge features of fakes and reals, and the fakes' class probabilities;
    with `prompts` [B] (the classes a conditional generator was asked for), "prompt_hits": how many
    fakes the judge reads as their class (its mean is the prompt accuracy).

    `fake` and `real` are [B, H, W, 1] in [0, 1]; other sizes than the judge's 28x28 (the 32x32
    generators) are resized to it, both sets alike. `judge_params` are constants closed over by the
    compiled eval step.
    """
    from aigc_jax.tasks.judge import judge_outputs

    fake, real = to_judge_input(judge_params, fake), to_judge_input(judge_params, real)
    fake_logits, fake_features = judge_outputs(judge_params, fake)
    _, real_features = judge_outputs(judge_params, real)
    probs = jax.nn.softmax(fake_logits) * mask[:, None]
    sums = {**feature_sums("judge_fake", fake_features, mask), **feature_sums("judge_real", real_features, mask),
            "judge_probs": probs.sum(0)}
    if prompts is not None:
        sums["prompt_hits"] = ((fake_logits.argmax(-1) == prompts) * mask).sum()
    return sums


def to_judge_input(judge_params, images: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, 28, 28, C'], the size and channels the judge classifier was trained on:
    resized, and grey images repeated into a colour judge's channels (fakes and reals alike)."""
    from aigc_jax.tasks.judge import judge_channels

    b, h, w, c = images.shape
    channels = judge_channels(judge_params)
    if c != channels:
        images = jnp.broadcast_to(images.mean(-1, keepdims=True), (b, h, w, channels))
    if (h, w) == (JUDGE_SIZE, JUDGE_SIZE):
        return images
    return jax.image.resize(images, (b, JUDGE_SIZE, JUDGE_SIZE, channels), method="linear", antialias=True)


def judge_metrics(means: dict) -> dict:
    """{"fd": judge-feature Fréchet distance fake vs real, "diversity": entropy (nats) of the mean
    predicted class distribution of the fakes, at most log(10)}."""
    from aigc_jax.tasks.judge import entropy_of_mean

    return {"fd": frechet_from_sums(means, "judge_fake", "judge_real"),
            "diversity": entropy_of_mean(means["judge_probs"])}


def without_judge_sums(means: dict) -> dict:
    return {k: v for k, v in means.items() if not k.startswith("judge_")}


def load_judged_images(task, image_size: int | None, colour: bool = False):
    """The task's image splits at `image_size` (None: as stored; grey, or the dataset's channels with `colour`; a large
    train split read from disk batch by batch); with `config.judge_metrics`, the judge classifier's
    params (trained once, then restored) as the constant "judge": the bound task's eval_step closes
    over them. They depend only on the config, so the task stays a pure function of it."""
    from aigc_jax.data.images import load_image_splits, validation_split
    from aigc_jax.tasks.judge import judge_params

    c = task.config
    data = load_image_splits(c.dataset, c.data_dir, image_size, num_examples=c.num_examples, colour=colour,
                             in_memory_mb=c.in_memory_mb)
    if c.get("eval_split", "test") == "validation":  # a family that offers the key: settings chosen on it
        data = validation_split(data)
    if task.config.judge_metrics:
        data = data.with_constants(judge=judge_params(task.config.dataset, task.config.data_dir))
    return data


def generator_eval_sums(task, fake: jax.Array, batch: dict, prompts: jax.Array | None = None) -> dict:
    """A generator's eval sums for as many fakes as real test images in `batch`: pixel statistics
    and (config.judge_metrics) the judge classifier's features and class probabilities (and its
    prompt hits, for fakes asked to be of the classes `prompts`)."""
    sums = {**feature_sums("fake", pooled_pixels(fake), batch["mask"]),
            **feature_sums("real", pooled_pixels(batch["image"]), batch["mask"])}
    if task.config.judge_metrics:
        sums.update(judge_sums(require_judge(task), fake, batch["image"], batch["mask"], prompts))
    return sums


def generator_metrics(task, means: dict) -> dict:
    """`pixel_fd`, and `fd` / `diversity` (and `prompt_accuracy` for a conditional generator) with
    config.judge_metrics, from `generator_eval_sums`' means."""
    if not task.config.judge_metrics:
        return {"pixel_fd": pixel_fd(means)}
    prompted = {"prompt_accuracy": means["prompt_hits"]} if "prompt_hits" in means else {}
    return {"pixel_fd": pixel_fd(means), **judge_metrics(means), **prompted}


def require_judge(task):
    """The judge params that `load_data()` prepared (they must exist before eval_step is traced)."""
    return task.constant("judge")


def interpolation_latents(rng: jax.Array, latent: int, rows: int = 8, steps: int = 8) -> jax.Array:
    """[rows * steps, latent]: each row walks from one N(0, I) draw to another along the great
    circle (slerp), which keeps the norm typical of the prior, unlike a straight line through 0."""
    a_key, b_key = jax.random.split(rng)
    a, b = jax.random.normal(a_key, (rows, 1, latent)), jax.random.normal(b_key, (rows, 1, latent))
    t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
    cos = (a * b).sum(-1, keepdims=True) / (jnp.linalg.norm(a, axis=-1, keepdims=True) * jnp.linalg.norm(b, axis=-1, keepdims=True))
    omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    so = jnp.sin(omega)
    z = (jnp.sin((1.0 - t) * omega) * a + jnp.sin(t * omega) * b) / so
    return z.reshape(rows * steps, latent)


def reconstruction_pairs(images: jax.Array, reconstructions: jax.Array, columns: int = 8) -> jax.Array:
    """[N, H, W, C] images and their reconstructions -> [2N, H, W, C] whose grid rows (of `columns`)
    alternate: `columns` images, then their reconstructions."""
    n = images.shape[0]
    rows = lambda x: x.reshape(n // columns, columns, *x.shape[1:])  # noqa: E731
    return jnp.stack([rows(images), rows(reconstructions)], axis=1).reshape(2 * n, *images.shape[1:])
