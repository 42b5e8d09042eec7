"""The benchmark harness: every registered family on the tiny preset (two kinds of step; all four
parallel modes for two families), well-formed records, skips that say why, the CLI and its
writers. No timing assertions."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from aigc_jax.engine.config import PARALLEL_MODES
from aigc_jax.tasks import registry
from aigc_jax.tasks.classifier import MLPClassifier
from benchmarks import records, report
from benchmarks.jax_runner import benchmark_family
from benchmarks.peaks import Peak, table_peak
from benchmarks.timing import CLOCKS, measure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEAK = Peak(0.1, "fixed for the tests")


@pytest.mark.parametrize("family", list(registry.FAMILIES))
def test_every_family_declares_the_three_presets(family):
    presets = registry.FAMILIES[family].benchmark_presets
    assert set(presets) >= {"tiny", "cpu", "gpu"}, f"{family} presets: {sorted(presets)}"


def check_records(out, modes) -> None:
    assert [r["mode"] for r in out] == list(modes)
    for r in out:
        assert records.check(r) == [], (r["mode"], records.check(r), r["reason"])
        assert r["status"] == "ok", (r["mode"], r["reason"])
        assert r["framework"] == "jax" and r["preset"] == "tiny" and r["n_devices"] == (1 if r["mode"] == "jit" else 4)
        assert r["compile_s"] > 0 and r["first_call_s"] > 0
        assert r["step_compiles"] in (1, None), (r["mode"], r["step_compiles"])  # None: pmap's wrapper
        assert r["flops_per_step"] > 0 and r["tflops"] > 0 and r["mfu"] == pytest.approx(r["tflops"] / PEAK.tflops_per_device)
        assert r["examples_per_s"] == pytest.approx(r["steps_per_s"] * r["batch_size"])
        json.dumps(r)  # JSON-serialisable as written
    lowered = [r for r in out if r["compile_method"] == "lower+compile"]
    assert {r["mode"] for r in lowered} == {"jit", "sharded", "shard_map"} & set(modes)
    assert all(r["xla_flops_per_step"] > 0 for r in lowered)


# Every family through the harness in the two kinds of step: one device with no bound axis (jit,
# the same code sharded jit compiles for a mesh) and a step written per device over the bound data
# axis (shard_map, the same code pmap runs). Whether a family computes the *same numbers* in every
# mode is its own test: tests/test_parallel_modes.py, and the families with cross-device code
# (ngram, the RL agents, dcgan's BatchNorm, simclr and clip's gathered negatives, cyclegan's pool).
@pytest.mark.parametrize("family", list(registry.FAMILIES))
def test_tiny_preset_runs_with_and_without_a_bound_data_axis(family):
    modes = ("jit", "shard_map")
    check_records(benchmark_family(registry.FAMILIES[family], "tiny", modes, None, 0.02, PEAK, log=lambda *a: None), modes)


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_tiny_preset_runs_in_every_mode(family):
    out = benchmark_family(registry.FAMILIES[family], "tiny", PARALLEL_MODES, None, 0.02, PEAK, log=lambda *a: None)
    check_records(out, PARALLEL_MODES)


def test_family_without_the_preset_is_skipped_with_the_reason():
    no_presets = type("NoPresets", (MLPClassifier,), {"name": "no_presets", "benchmark_presets": {}})
    (r,) = benchmark_family(no_presets, "cpu", ["sharded"], None, 0.02, PEAK, log=lambda *a: None)
    assert r["status"] == "skipped" and "no 'cpu' benchmark preset" in r["reason"]
    assert records.check(r) == []


def test_batch_the_devices_do_not_divide_is_skipped_with_the_reason():
    odd = type("Odd", (MLPClassifier,), {"name": "odd", "benchmark_presets": {"tiny": {"hidden": (8,), "batch_size": 6}}})
    (sharded,) = benchmark_family(odd, "tiny", ["sharded"], None, 0.02, PEAK, log=lambda *a: None)
    assert sharded["status"] == "skipped" and "not divisible" in sharded["reason"]


def test_check_flags_malformed_records():
    bad = records.new_record("mlp", "jit", "jax", "tiny", batch_size=8, steps_per_s=-1.0)
    assert any("steps_per_s" in p for p in records.check(bad))
    assert records.check({"family": "mlp"})  # missing fields
    assert any("say why" in p for p in records.check(records.skipped(records.new_record("a", "jit", "jax", "cpu"), "")))


@pytest.mark.parametrize("clock", ["wall", "process"])
def test_measure_counts_steps_in_windows(clock):
    calls = []
    timing = measure(lambda n: calls.append(n), seconds=0.01, warmup_s=0.0, min_windows=5, clock=CLOCKS[clock])
    assert timing.windows >= 5 and timing.steps_timed == timing.windows * timing.steps_per_window
    assert sum(calls) == timing.warmup_steps + timing.steps_timed
    assert timing.step_ms_p10 <= timing.step_ms_median <= timing.step_ms_p90


def test_peak_table_by_device_kind():
    assert table_peak("NVIDIA H100 80GB HBM3") == 989.0
    assert table_peak("NVIDIA H200") == 989.0
    assert table_peak("NVIDIA A100-SXM4-40GB") == 312.0
    assert table_peak("TPU v5 lite") == 197.0
    assert table_peak("TPU v5p") == 459.0
    assert table_peak("TPU v4") == 275.0
    assert table_peak("cpu") is None
    assert Peak(100.0, "t").total(4, "gpu") == 400.0 and Peak(0.1, "t").total(4, "cpu") == 0.1


def _synthetic_doc() -> dict:
    """Two families, JAX in two modes and both torch rows; one skipped row."""
    def ok(family, mode, framework, steps_per_s):
        r = records.new_record(family, mode, framework, "cpu", dtype="float32", batch_size=32)
        timing = type("T", (), {"steps_per_s": steps_per_s, "step_ms_median": 1000 / steps_per_s,
                                "step_ms_p10": 900 / steps_per_s, "step_ms_p90": 1100 / steps_per_s,
                                "steps_timed": 100, "steps_per_window": 10})()
        return records.with_timing({**r, "compile_s": 1.0, "first_call_s": 0.1}, timing, 1e9, 0, 0.1)

    recs = [ok("mlp", "jit", "jax", 300.0), ok("mlp", "sharded", "jax", 400.0),
            ok("mlp", "single", "torch-eager", 200.0), ok("mlp", "single", "torch-compile", 100.0),
            ok("vae", "sharded", "jax", 50.0),
            records.skipped(records.new_record("vae", "single", "torch-eager", "cpu"), "torch is not installed")]
    env = {"backend": "cpu", "device_count": 1, "device_kind": "cpu", "cpu_count": 2, "process_count": 1,
           "jax": "x", "jaxlib": "x", "flax": "x"}
    return {"command": "python -m benchmarks --torch", "preset": "cpu", "dtype": None, "seconds": 1.0,
            "environment": env, "peak": {"tflops_per_device": 0.1, "source": "measured"}, "records": recs}


def test_markdown_has_families_as_rows_modes_and_frameworks_as_columns_and_ratios():
    md = report.markdown(_synthetic_doc())
    table = md.split("## Steps per second (median)")[1].split("\n\n")[1].splitlines()
    assert table[0] == ("| family | batch | dtype | jax jit | jax sharded | torch-compile | torch-eager | "
                        "jax / torch-compile | jax / torch-eager |")
    assert table[2] == "| mlp | 32 | float32 | 300.0 | 400.0 | 100.0 | 200.0 | 4.00x | 2.00x |"
    assert table[3].startswith("| vae | 32 | float32 | - | 50.0 | - | - |")
    assert "vae / single / torch-eager: skipped: torch is not installed" in md


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "chart.png"
    report.write_plot(_synthetic_doc(), str(path))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        assert np.asarray(im.convert("L")).std() > 0  # not a blank image


def test_cli_writes_its_outputs_without_importing_torch(tmp_path):
    """The whole command in a fresh interpreter: outputs written, and the JAX side never imports torch."""
    paths = {k: str(tmp_path / f"out.{k}") for k in ("json", "md", "png")}
    code = ("import runpy, sys\n"
            "sys.argv = ['benchmarks', '--preset', 'tiny', '--families', 'mlp', '--modes', 'jit', '--seconds',"
            f" '0.02', '--json', {paths['json']!r}, '--markdown', {paths['md']!r}, '--plot', {paths['png']!r}]\n"
            "try:\n    runpy.run_module('benchmarks', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'the JAX side imported torch'\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.load(open(paths["json"]))
    assert {"jax", "jaxlib", "flax", "backend", "device_kind", "device_count", "process_count"} <= set(doc["environment"])
    assert [(r["family"], r["mode"], r["status"]) for r in doc["records"]] == [("mlp", "jit", "ok")]
    assert all(r["peak_tflops"] > 0 and r["peak_source"].startswith("measured") for r in doc["records"])
    assert "| mlp |" in open(paths["md"]).read()
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, expected", [
    (["--modes", "jit,fast"], "--modes 'fast'"),
    (["--families", "nope"], "unknown family 'nope'"),
    (["--seconds", "0"], "--seconds 0.0"),
    (["--preset", "huge"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(argv, expected, capsys):
    from benchmarks.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_sampling_benchmark_times_both_decoders():
    from benchmarks import sampling

    doc = sampling.measure("tiny", tokens=8, prompt_bytes=4, batches=[2], repeats=1, log=lambda *a: None)
    (row,) = doc["rows"]
    assert doc["shape"]["seq_len"] == 12 and row["batch"] == 2
    for name in ("kv_cache", "recompute"):
        assert row[name]["tokens_per_s"] > 0 and row[name]["compile_s"] > 0
    assert row["speedup"] == row["kv_cache"]["tokens_per_s"] / row["recompute"]["tokens_per_s"]
