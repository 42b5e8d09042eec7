"""dcgan: it learns, its BatchNorm statistics are the same in every parallel mode, and the sample
command draws from its checkpoint with the running averages."""

import jax
import numpy as np

from aigc_jax.engine.config import PARALLEL_MODES
from aigc_jax.engine.run import initial_state, root_keys
from aigc_jax.engine.sampling import sample_from_workdir
from conftest import run_mode, train_family
from aigc_jax.cli import build_task

SMALL = {"latent": "16", "g_channels": "32,16,8", "d_channels": "8,16,32"}


def run_steps(mode: str, data, steps: int = 4, batch: int = 16):
    losses, state = run_mode("dcgan", {**SMALL, "judge_metrics": "false"}, mode, data, steps, batch, "d_loss")
    return losses, {"g": state.g.batch_stats, "d": state.d.batch_stats}


def test_batchnorm_statistics_agree_across_parallel_modes():
    data = build_task("dcgan", {}).load_data()
    losses, stats = run_steps("jit", data)
    init = jax.device_get(initial_state(build_task("dcgan", {**SMALL, "batch_size": "16"}), data, root_keys(0)["init"]))
    moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(), stats["g"], init.g.batch_stats)
    assert min(jax.tree.leaves(moved)) > 0  # every running mean/var was updated
    for mode in PARALLEL_MODES[1:]:
        other_losses, other = run_steps(mode, data)
        np.testing.assert_allclose(other_losses, losses, rtol=1e-5, err_msg=mode)
        # Per-device statistics would differ from the global batch's by far more than this.
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=mode), other, stats)


def test_dcgan_learns_and_samples_from_its_checkpoint(tmp_path):
    _, rows = train_family("dcgan", tmp_path, **SMALL, steps=120, batch_size=32, learning_rate=1e-3,
                           log_every=20, eval_every=20, ckpt_every=120, sample_every=0, parallel="jit")
    fd = [r["eval_fd"] for r in rows if "eval_fd" in r]
    losses = [r[k] for r in rows for k in ("d_loss", "g_loss") if k in r]
    assert np.isfinite(losses).all()
    assert min(fd[-2:]) < 0.7 * fd[0], fd  # judge-feature FD falls from the first evaluation
    task = build_task("dcgan", {**SMALL, "batch_size": "32"})
    paths = sample_from_workdir(task, str(tmp_path), out_dir=str(tmp_path / "drawn"))
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["interpolation_000120_seed0.png", "samples_000120_seed0.png"]
