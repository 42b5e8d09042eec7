"""The judge: the project's own `cnn` digits classifier, as a feature space for generator metrics.

Inception weights cannot be downloaded here, so the image generators (`mlp_gan`, `vae`) are judged
by a small CNN trained on the same digits they learn from:

- `eval_fd`: the Fréchet distance between Gaussians fitted to the judge's penultimate-layer
  features (the hidden Dense layer's ReLU activations, 64 of them) of generated samples and of the
  real test images. It is **not comparable to published FID numbers** (another network, another
  feature space, 64 dimensions instead of 2048, a few hundred samples): compare it only between
  runs judged by the same judge (the cache name below carries a version).
- `eval_diversity`: the entropy, in nats, of the judge's mean predicted class distribution over
  generated samples. Its maximum is the log of the dataset's class count (every class equally
  often): log(10) ~ 2.303 on the digits, log(5) ~ 1.609 on the five shapes of `synthetic_images`
  (the judge keeps 10 outputs; the unused ones learn to stay near 0); a generator that collapses
  onto one class scores close to 0.

The judge is trained once with the engine itself (`train_and_evaluate` on a `cnn` task, a few
hundred steps, required to reach a test accuracy of at least `MIN_ACCURACY`) into
`<TFDS data dir>/judges/cnn_<dataset>_v1`, next to the prepared data, and later restored from that
workdir's orbax checkpoint. Several processes (test workers) may ask at once: each trains into a
temporary folder and renames it into place; when another got there first, its judge is used.
On several hosts (jax.distributed), train the judge once beforehand (call `judge_params()` in one
single-host process), so that every host only restores it.
"""

import json
import os
import shutil
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from aigc_jax.data.dirs import tfds_data_dir
from aigc_jax.eval.frechet import frechet_distance, moments
from aigc_jax.models.classifier import CNN

VERSION = "v1"
MIN_ACCURACY = 0.95
# The judge's own config: pinned here (not the cnn family's defaults), so the cache stays valid.
JUDGE_CONFIG = {"channels": "32,64", "hidden": "64", "steps": "400", "batch_size": "32",
                "learning_rate": "0.001", "seed": "0", "parallel": "jit", "log_every": "400",
                "eval_every": "0", "ckpt_every": "0", "sample_every": "0", "keep_checkpoints": "1",
                "image_size": "28"}  # what `images.to_judge_input` resizes every set's images to
# Steps per dataset: 400 reach 0.97 on the digits; the colour shapes of `synthetic_images` need
# about 1,500 for MIN_ACCURACY (0.86 after 400, 0.95 after 1,200).
JUDGE_STEPS = {"digits": "400"}
OTHER_STEPS = "1500"


def judge_config(dataset: str) -> dict:
    return {**JUDGE_CONFIG, "steps": JUDGE_STEPS.get(dataset, OTHER_STEPS)}


INFO_FILE = "judge.json"

_memo: dict = {}  # (dataset, cache dir) -> params: restoring once per process is enough


def judge_dir(dataset: str = "digits", data_dir: str = "") -> str:
    return os.path.join(tfds_data_dir(data_dir), "judges", f"cnn_{dataset}_{VERSION}")


def _judge_task(dataset: str, data_dir: str):
    from aigc_jax.tasks.registry import build  # every family's config path: defaults, overrides, validation

    return build("cnn", {**judge_config(dataset), "dataset": dataset, "data_dir": data_dir})


def _train(task, workdir: str) -> dict:
    from aigc_jax.engine.loop import train_and_evaluate

    start = time.perf_counter()
    summary = train_and_evaluate(task, workdir, fresh=True, log=lambda *a: None, show_progress=False)
    if summary["stopped_by"]:  # Ctrl-C while the judge trained: the run that needed it stops too
        from aigc_jax.engine.stopping import StopRequested

        raise StopRequested(f"stopped by {summary['stopped_by']} while training the judge")
    info = {"test_accuracy": summary["metrics"]["eval_accuracy"], "train_seconds": time.perf_counter() - start,
            "steps": summary["step"], "config": judge_config(task.config.dataset)}
    if info["test_accuracy"] < MIN_ACCURACY:
        raise RuntimeError(f"the judge classifier reached test accuracy {info['test_accuracy']:.3f} after "
                           f"{info['steps']} steps; expected at least {MIN_ACCURACY} (--config.judge_metrics=false "
                           "turns the judge metrics off)")
    with open(os.path.join(workdir, INFO_FILE), "w") as f:
        json.dump(info, f, indent=2)
    return info


def _restore(task, workdir: str):
    from aigc_jax.engine.checkpoint import Checkpointer
    from aigc_jax.engine.run import Run

    run = Run(task, mode="jit")
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=1)
    try:
        step = run.restore(ckpt, resumable=(), move_damaged=False)
    finally:
        ckpt.close()
    if step is None:
        raise RuntimeError(f"no judge checkpoint in {workdir}; delete that folder to train the judge again")
    return jax.device_get(run.canonical_state().params)


def ensure_judge(dataset: str = "digits", data_dir: str = "") -> str:
    """The judge's workdir, training it first (atomically installed) when it is not there yet."""
    dest = judge_dir(dataset, data_dir)
    if os.path.isfile(os.path.join(dest, INFO_FILE)):
        return dest
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.tmp-", dir=parent)
    try:
        _train(_judge_task(dataset, data_dir), tmp)
        try:
            os.rename(tmp, dest)  # atomic; fails when another process installed its judge first
        except OSError:
            if not os.path.isfile(os.path.join(dest, INFO_FILE)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def judge_info(dataset: str = "digits", data_dir: str = "") -> dict:
    """What the judge's training reported: test accuracy, training seconds, steps, config."""
    with open(os.path.join(ensure_judge(dataset, data_dir), INFO_FILE)) as f:
        return json.load(f)


def judge_params(dataset: str = "digits", data_dir: str = ""):
    """The trained judge's params (a host pytree), training it once per data dir if needed."""
    dest = ensure_judge(dataset, data_dir)
    if (dataset, dest) not in _memo:
        _memo[(dataset, dest)] = _restore(_judge_task(dataset, data_dir), dest)
    return _memo[(dataset, dest)]


def judge_model() -> CNN:
    return CNN(channels=tuple(int(c) for c in JUDGE_CONFIG["channels"].split(",")),
               hidden=int(JUDGE_CONFIG["hidden"]))


def judge_outputs(params, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(logits [B, 10], penultimate features [B, hidden]) of images [B, 28, 28, 1] in [0, 1]."""
    return judge_model().apply({"params": params}, images, return_features=True)


def judge_channels(params) -> int:
    """The image channels the judge was trained on (1 for the digits, 3 for a colour set)."""
    return int(params["Conv_0"]["kernel"].shape[-2])


def entropy_of_mean(mean_probs) -> float:
    """Entropy in nats of a (mean) class distribution; max log(num_classes)."""
    p = np.asarray(mean_probs, np.float64)
    p = p / p.sum()
    return float(-(p * np.log(np.clip(p, 1e-12, None))).sum())


# Host-side helpers on whole image sets (tests, the real-vs-real floor); the tasks accumulate the
# same statistics as masked sums inside their compiled eval steps (`aigc_jax.tasks.images`).

def features_and_probs(params, images, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    apply = jax.jit(judge_outputs)
    feats, probs = [], []
    for start in range(0, len(images), batch_size):
        logits, f = apply(params, jnp.asarray(images[start:start + batch_size], jnp.float32))
        feats.append(np.asarray(f, np.float64))
        probs.append(np.asarray(jax.nn.softmax(logits), np.float64))
    return np.concatenate(feats), np.concatenate(probs)


def fd_of_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two feature sets [N, D] (the same formula as the eval metric)."""
    stats = [moments(x.mean(0), x.T @ x / len(x)) for x in (a, b)]
    return frechet_distance(*stats[0], *stats[1])


def fd_of_images(params, a, b) -> float:
    return fd_of_features(features_and_probs(params, a)[0], features_and_probs(params, b)[0])


def diversity_of_images(params, images) -> float:
    return entropy_of_mean(features_and_probs(params, images)[1].mean(0))


def real_vs_real_fd(dataset: str = "digits", data_dir: str = "", seed: int = 0) -> float:
    """The floor: judge FD between two disjoint random halves of the test split (180 vs 180 on the
    digits). A generator's `eval_fd` (360 fakes vs the 360 test images) near this is as good as this
    judge can tell; with fewer samples per side this floor is, if anything, a little high."""
    from aigc_jax.data.images import load_image_splits

    test = load_image_splits(dataset, data_dir, 28).test["image"]
    order = np.random.default_rng(seed).permutation(len(test))
    half = len(test) // 2
    return fd_of_images(judge_params(dataset, data_dir), test[order[:half]], test[order[half:2 * half]])
