"""The four parallel modes compute the same losses (float32, 4 simulated devices, 20 steps)."""

import jax
import numpy as np
import pytest

from aigc_jax.engine.compile import compile_task
from aigc_jax.engine.config import PARALLEL_MODES
from aigc_jax.errors import UserError
from conftest import run_mode
from aigc_jax.cli import build_task

STEPS, BATCH = 20, 16
# Narrow models keep compile time down; the modes must agree whatever the widths.
SMALL = {"mlp": {"hidden": "64,32"}, "cnn": {"channels": "8,16", "hidden": "32"},
         "mlp_gan": {"g_hidden": "32,64", "d_hidden": "64,32"}, "vae": {"hidden": "64"}}


def losses(family: str, mode: str, data) -> np.ndarray:
    main_metric = build_task(family, {}).main_metric
    return np.array(run_mode(family, SMALL[family], mode, data, STEPS, BATCH, main_metric)[0])


@pytest.mark.parametrize("family", ["mlp", "cnn", "mlp_gan", "vae"])
def test_modes_agree(family):
    assert len(jax.devices()) == 4
    data = build_task(family, {}).load_data()
    reference = losses(family, "jit", data)
    for mode in PARALLEL_MODES[1:]:
        np.testing.assert_allclose(losses(family, mode, data), reference, rtol=1e-5, err_msg=mode)


def test_batch_not_divisible_by_devices_is_a_clear_error():
    task = build_task("mlp", {"batch_size": "30"})
    with pytest.raises(UserError, match="batch_size=30 is not divisible by the 4 devices"):
        compile_task(task, "sharded", 30)
    compile_task(task, "jit", 30)  # one device: any batch size


def test_gpt_dropout_draws_the_same_masks_in_every_mode():
    # Dropout masks come from the per-example keys, so splitting the batch over devices draws the
    # same ones; and they do change the loss (dropout is on).
    tiny = {"width": "32", "layers": "1", "heads": "2", "seq_len": "16", "sample_tokens": "8"}
    data = build_task("gpt", tiny).load_data()
    run = lambda mode, rate: np.array(run_mode("gpt", {**tiny, "dropout": str(rate)}, mode, data, 3, 8, "loss")[0])
    reference = run("jit", 0.3)
    assert not np.allclose(reference, run("jit", 0.0), rtol=1e-4)
    for mode in ("sharded", "shard_map"):
        np.testing.assert_allclose(run(mode, 0.3), reference, rtol=1e-5, err_msg=mode)
