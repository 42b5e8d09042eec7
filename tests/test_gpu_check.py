"""`python -m benchmarks.gpu_check`: its dry run end to end on CPU, the GPU run's shapes (without
running them), its bad input, and the bfloat16 train step it relies on, against float32."""

import json
import math
import time
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from aigc_jax.engine.run import Run
from aigc_jax.tasks import registry
from aigc_jax.benchmarks import gpu_check, records
from aigc_jax.benchmarks.peaks import Peak
from aigc_jax.benchmarks.presets import preset_config

CHECKS = {c.name: c for c in gpu_check.CHECKS}


def test_dry_run_writes_a_record_per_family_and_both_checks(tmp_path, capsys):
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    start = time.monotonic()
    rc = gpu_check.main(["--dry-run", "--families", "mlp,ppo", "--json", str(out_json), "--markdown", str(out_md)])
    printed = capsys.readouterr().out
    assert rc == 0, printed[-3000:]
    assert time.monotonic() - start < 120  # seconds on a busy 2-core CPU; the point of a dry run

    doc = json.loads(out_json.read_text())
    assert doc["dry_run"] and doc["preset"] == "tiny" and doc["dtype"] == "bfloat16"
    assert [r["family"] for r in doc["records"]] == ["mlp", "ppo"]
    for r in doc["records"] + doc["checks"]:
        assert records.check(r) == [] and r["status"] == "ok", (r["family"], r["reason"])
        assert r["dtype"] == "bfloat16" and r["mode"] == "sharded"
    # ppo's tiny preset is its check's config: measured once, by the check.
    ppo = doc["records"][1]
    assert ppo["reused_from_check"] == "ppo_256_seeds" and "reused_from_check" not in doc["records"][0]

    gpt2, ppo_check = (next(r for r in doc["checks"] if r["check"] == name) for name in ("gpt2_small", "ppo_256_seeds"))
    assert gpt2["family"] == "gpt" and gpt2["config"]["vocab_size"] == 320 and gpt2["shape"]["vocab_size"] == 320
    assert gpt2["value"] == gpt2["mfu"] > 0
    assert gpt2["mfu"] == pytest.approx(gpt2["tflops"] / gpt2["peak_tflops"])
    c = ppo_check["config"]
    assert ppo_check["env_steps_per_step"] == c["num_seeds"] * c["batch_size"] * c["num_steps"]
    assert ppo_check["value"] == ppo_check["env_steps_per_s"] == pytest.approx(
        ppo_check["steps_per_s"] * ppo_check["env_steps_per_step"])
    assert gpt2["met"] is None and ppo_check["met"] is None  # tiny shapes: targets not judged
    assert doc["xla_flags_in_effect"]["defaults_enabled"] is True

    md = out_md.read_text()
    for text in ("| gpt2_small |", "| ppo_256_seeds |", ">= 50% MFU", ">= 1e+07 env steps/s", "not judged",
                 "320-entry vocabulary", "| mlp |", "| ppo |"):
        assert text in md, text
    assert md in printed  # the table is printed as well as written


def test_the_gpu_run_reuses_the_checks_and_skips_families_past_the_budget():
    # The GPU run's configs, without running them: every family's gpu preset is valid in bf16, the
    # gpt and ppo presets are exactly the checks' shapes (reused, not timed twice), and a family
    # whose turn comes after the budget is a skipped record that says why.
    args = SimpleNamespace(preset="gpu", families=None, budget_s=1.0, seconds=1.0)
    checks = []
    for check in gpu_check.CHECKS:
        config, why = gpu_check.check_config(check, "gpu")
        assert config is not None, why
        checks.append({**records.new_record(check.family, "sharded", "jax", "gpu"), "check": check.name,
                       "config": config.to_dict()})
    out = gpu_check.sweep(args, Peak(989.0, "table"), time.perf_counter, checks, deadline=time.monotonic() - 1,
                          log=lambda *a: None)
    assert [r["family"] for r in out] == list(registry.FAMILIES)
    reused = {r["family"]: r["reused_from_check"] for r in out if r.get("reused_from_check")}
    assert reused == {"gpt": "gpt2_small", "ppo": "ppo_256_seeds"}
    for r in out:
        if r["family"] not in reused:
            assert r["status"] == "skipped" and "--budget-s 1" in r["reason"] and records.check(r) == []


def test_gpu_shapes_are_gpt2_small_and_256_ppo_seeds():
    config, _ = gpu_check.check_config(CHECKS["gpt2_small"], "gpu")
    assert (config.width, config.layers, config.heads, config.seq_len, config.vocab_size) == (768, 12, 12, 1024, 50304)
    assert config.dtype == "bfloat16" and config.batch_size == 32
    task = registry.get("gpt")(config)  # the family's own checks (context, prompt) accept it
    assert task.model.context == 1024 and task.vocab_size == 50304
    assert gpu_check.check_config(CHECKS["gpt2_small"], "gpu", gpt2_batch=16)[0].batch_size == 16
    ppo, _ = gpu_check.check_config(CHECKS["ppo_256_seeds"], "gpu")
    assert registry.get("ppo")(ppo).env_steps_per_step() == 256 * 4 * 128


def test_targets_are_judged_only_on_the_gpu_run():
    gpt2, ppo = CHECKS["gpt2_small"], CHECKS["ppo_256_seeds"]
    assert gpu_check.judge(gpt2, 0.5, dry_run=False) is True
    assert gpu_check.judge(gpt2, 0.499, dry_run=False) is False
    assert gpu_check.judge(ppo, 0.99e7, dry_run=False) is False
    assert gpu_check.judge(ppo, 0.99e7, dry_run=True) is None
    assert gpu_check.judge(ppo, None, dry_run=False) is None


@pytest.mark.parametrize("argv, expected", [
    (["--dry-run", "--seconds", "0"], "--seconds 0.0: expected a number > 0"),
    (["--dry-run", "--families", "nope"], "unknown family 'nope'"),
    (["--dry-run", "--families", ","], "--families is empty"),
    (["--dry-run", "--gpt2-batch", "0"], "--gpt2-batch 0: expected an integer >= 1"),
    (["--dry-run", "--budget-s", "-1"], "--budget-s -1.0"),
    (["--no-such-option"], "unrecognized arguments"),
    ([], "JAX sees no accelerator"),  # the GPU run on this CPU-only machine
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv, expected, capsys):
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err


# --- bfloat16 against float32 --------------------------------------------------------------------
# One train step of the tiny preset in each dtype, from the same initial state, batch and keys.
# Parameters stay float32 and losses are taken in float32; bf16 rounds the modules' activations
# and matmul inputs to 8 significant bits (relative 2^-9 per rounding), which over a few tiny
# layers moves an initial loss by well under 1%. rtol 5e-2 leaves room for that and still fails
# on what breaks a bf16 path: a NaN/Inf, a loss reduced in bf16 over many terms, a wrong cast.
BF16_FAMILIES = ("vae", "gpt")  # sampling + KL, attention (bf16 transposed convolutions: test_conv_transpose.py)
RTOL = 5e-2


def one_step(cls, dtype: str):
    config, why = preset_config(cls, "tiny", "jit", dtype)
    assert config is not None, why
    run = Run(cls(config), mode="jit")
    initial = jax.device_get(run.canonical_state())
    metrics = run.step()  # the loop's first batch and key
    losses = {k: v for k, v in metrics.items() if "loss" in k}
    return initial, jax.device_get(run.canonical_state()), losses


@pytest.mark.parametrize("family", BF16_FAMILIES)
def test_bfloat16_step_is_close_to_float32(family):
    cls = registry.FAMILIES[family]
    init32, _, loss32 = one_step(cls, "float32")
    init16, new16, loss16 = one_step(cls, "bfloat16")
    for a, b in zip(jax.tree.leaves(init32), jax.tree.leaves(init16), strict=True):  # the same start
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert loss32 and loss16.keys() == loss32.keys()
    for key in loss32:
        assert math.isfinite(loss16[key]), (key, loss16[key])
        assert loss16[key] == pytest.approx(loss32[key], rel=RTOL), (key, loss16[key], loss32[key])
    assert loss16 != loss32, "bfloat16 computed exactly the float32 numbers: the dtype was not applied"
    # Mixed precision: what the step keeps (parameters, optimizer moments, statistics) stays float32.
    kept = {str(np.asarray(x).dtype) for x in jax.tree.leaves(new16) if np.issubdtype(np.asarray(x).dtype, np.floating)}
    assert kept == {"float32"}, kept
