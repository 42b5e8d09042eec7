"""The benchmark harness: every registered family on the tiny preset (two kinds of step; all four
parallel modes for two families), well-formed records, skips that say why, the CLI and its
writers. No timing assertions."""

import gzip
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
from aigc_jax.benchmarks import plot, records, report, traces
from aigc_jax.benchmarks.jax_runner import benchmark_family
from aigc_jax.benchmarks.peaks import Peak, table_peak
from aigc_jax.benchmarks.timing import CLOCKS, ROUNDS, Timed, Timing, measure, measure_side_by_side

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


# Every family through the harness in a step written per device over the bound data axis
# (shard_map, the same code pmap runs). The unbound step (jit, which sharded jit compiles for a
# mesh) is what every family's training test runs, and the harness's jit path is checked below on
# two families with every mode. Whether a family computes the *same numbers* in every mode is its
# own test: tests/test_parallel_modes.py, and the families with cross-device code (ngram, the RL
# agents, dcgan's BatchNorm, simclr and clip's gathered negatives, cyclegan's pool).
@pytest.mark.parametrize("family", list(registry.FAMILIES))
def test_tiny_preset_runs_over_a_bound_data_axis(family):
    modes = ("shard_map",)
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


class DriftingMachine:
    """A fake clock on a machine that slows down as the run goes on: a step of `cost` seconds takes
    cost * (1 + now / 40). The runs `step(name, cost)` makes advance it."""

    def __init__(self):
        self.now, self.calls = 0.0, []

    def clock(self) -> float:
        return self.now

    def step(self, name: str, cost: float):
        def run(n: int) -> None:
            self.calls.append(name)
            self.now += n * cost * (1 + self.now / 40)
        return run


def test_side_by_side_timing_cancels_the_machines_drift():
    # B's step costs twice A's. Timed one after the other, B runs on a slower machine than A did.
    alone = DriftingMachine()
    a = measure(alone.step("a", 0.1), seconds=10, clock=alone.clock)
    b = measure(alone.step("b", 0.2), seconds=10, clock=alone.clock)
    assert b.step_ms_median / a.step_ms_median > 2.4
    machine = DriftingMachine()
    a, b = measure_side_by_side([machine.step("a", 0.1), machine.step("b", 0.2)], seconds=10, clock=machine.clock)
    assert abs(b.step_ms_median / a.step_ms_median - 2.0) < 0.02
    for t in (a, b):
        assert t.windows >= 10 and t.steps_timed == t.windows * t.steps_per_window
        assert t.step_ms_p10 <= t.step_ms_median <= t.step_ms_p90
        assert len(t.round_medians_ms) == ROUNDS and t.round_medians_ms[0] < t.round_medians_ms[-1]  # the drift
    # After both warm-ups the runs take turns, A B in even rounds and B A in odd ones.
    timed_calls = machine.calls[a.warmup_steps + b.warmup_steps - 2 * ROUNDS:]
    turns = [name for i, name in enumerate(timed_calls) if i == 0 or timed_calls[i - 1] != name]
    expected = [name for r in range(ROUNDS) for name in ("ab" if r % 2 == 0 else "ba")]
    assert turns == [name for i, name in enumerate(expected) if i == 0 or expected[i - 1] != name]


def test_family_timed_side_by_side_with_other_steps(tmp_path):
    calls = []

    def other_run(n):
        calls.append(n)

    def finish(timing):
        return records.with_timing(records.new_record("mlp", "single", "torch-eager", "tiny", batch_size=8),
                                   timing, 0, 0, None)

    out = benchmark_family(registry.FAMILIES["mlp"], "tiny", ["jit", "sharded"], None, 0.02, PEAK,
                           log=lambda *a: None, beside=[Timed(other_run, finish)])
    assert [(r["framework"], r["mode"], len(r["round_medians_ms"] or ())) for r in out] == [
        ("jax", "jit", ROUNDS), ("jax", "sharded", 0), ("torch-eager", "single", ROUNDS)]
    assert out[-1]["step_ms_median"] > 0 and len(calls) > 10
    assert len(out[0]["round_medians_ms"]) == ROUNDS and out[1]["round_medians_ms"] is None
    # The ratios compare the twins with the JAX step timed beside them, not the default mode's.
    assert report.reference_jax(out, "mlp")["mode"] == "jit"
    # Profiled, the JAX windows run under a trace: the other steps are timed alone, after them.
    calls.clear()
    jax_row, other = benchmark_family(registry.FAMILIES["mlp"], "tiny", ["jit"], None, 0.02, PEAK, log=lambda *a: None,
                                      profile_root=str(tmp_path), beside=[Timed(other_run, finish)])
    assert jax_row["round_medians_ms"] is None and other["round_medians_ms"] is None and len(calls) >= 10


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
    """mlp: JAX in two modes, torch eager the faster twin; vae: JAX sharded only, its twin skipped;
    cnn: torch.compile the faster twin."""
    def ok(family, mode, framework, steps_per_s):
        r = records.new_record(family, mode, framework, "cpu", dtype="float32", batch_size=32)
        timing = Timing(step_ms_median=1000 / steps_per_s, step_ms_p10=900 / steps_per_s,
                        step_ms_p90=1100 / steps_per_s, steps_timed=100, windows=10, steps_per_window=10,
                        warmup_steps=2)
        return records.with_timing({**r, "compile_s": 1.0, "first_call_s": 0.1}, timing, 1e9, 0, 0.1)

    recs = [ok("mlp", "jit", "jax", 300.0), ok("mlp", "sharded", "jax", 400.0),
            ok("mlp", "single", "torch-eager", 200.0), ok("mlp", "single", "torch-compile", 100.0),
            ok("vae", "sharded", "jax", 50.0),
            records.skipped(records.new_record("vae", "single", "torch-eager", "cpu"), "torch is not installed"),
            ok("cnn", "jit", "jax", 96.0), ok("cnn", "single", "torch-eager", 30.0),
            ok("cnn", "single", "torch-compile", 60.0)]
    env = {"backend": "cpu", "device_count": 1, "device_kind": "cpu", "cpu_count": 2, "process_count": 1,
           "jax": "x", "jaxlib": "x", "flax": "x", "torch": "y", "torch_threads": 1, "clock": "process",
           "xla_flags": "--xla_cpu_multi_thread_eigen=false --xla_gpu_enable_triton_gemm=false",
           "engine_xla_flags": {"defaults_added": ["--xla_gpu_enable_triton_gemm=false"]}}
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


def test_comparisons_divide_jax_by_the_faster_twin_of_the_same_family():
    by_family = {c.family: c for c in report.comparisons(_synthetic_doc()["records"])}
    assert by_family["mlp"].jax["mode"] == "jit" and by_family["mlp"].ratio == pytest.approx(300 / 200)  # eager faster
    assert by_family["cnn"].best_torch["framework"] == "torch-compile" and by_family["cnn"].ratio == pytest.approx(96 / 60)
    assert by_family["vae"].jax["mode"] == "sharded" and by_family["vae"].ratio is None  # no twin ran
    sharded = {c.family: c for c in report.comparisons(_synthetic_doc()["records"], "sharded")}
    assert sharded["mlp"].ratio == pytest.approx(400 / 200)


def test_ratio_plot_draws_jax_over_the_faster_twin_and_writes_a_png(tmp_path):
    doc = _synthetic_doc()
    fig = plot.comparison_figure(doc)
    ratio_ax, mfu_ax = fig.axes
    # Bars start at 1x and end at each family's ratio (mlp, then cnn; vae has no twin).
    ends = [bar.get_x() + bar.get_width() for bar in ratio_ax.patches]
    assert ends == pytest.approx([300 / 200, 96 / 60])
    assert {line.get_xdata()[0] for line in ratio_ax.get_lines()} == {1.0, report.GOAL_RATIO}
    labels = [t.get_text() for t in ratio_ax.texts]
    assert "1.50x vs eager, MFU 300%" in labels and "1.60x vs compile, MFU 96%" in labels
    assert [t.get_text() for t in mfu_ax.get_yticklabels()] == ["vae (sharded)"]  # MFU alone, its own axis
    title = fig.get_suptitle()
    for fact in ("2-core CPU host", "torch threads 1", "XLA:CPU one thread", "dtype float32", "preset cpu",
                 "clock process", "--xla_cpu_multi_thread_eigen=false", "1 engine default flags"):
        assert fact in title, (fact, title)
    plot._pyplot().close(fig)

    path = tmp_path / "chart.png"
    plot.write_plot(doc, str(path))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        assert np.asarray(im.convert("L")).std() > 0  # not a blank image


def test_comparison_table_rows_from_one_run():
    table = report.comparison_table(_synthetic_doc()).splitlines()
    assert table[0] == "| family | JAX steps/s | torch eager | torch.compile | JAX / best torch | JAX MFU |"
    # MFU: 1 GFLOP/step x steps/s over the 0.1 TFLOP/s peak of the synthetic records.
    assert table[2:] == ["| mlp | 300 | 200 | 100 | 1.50x | 300% |",
                         "| vae | 50.0 (sharded) | - | - | - | 50% |",
                         "| cnn | 96.0 | 30.0 | 60.0 | 1.60x | 96% |"]


def test_report_command_prints_the_table_and_the_flags_from_a_results_file(tmp_path, capsys):
    path = tmp_path / "results.json"
    report.write_json(_synthetic_doc(), str(path))
    assert report.main([str(path), "--mode", "sharded"]) == 0
    out = capsys.readouterr().out
    assert "| mlp | 400 | 200 | 100 | 2.00x | 400% |" in out
    assert ("XLA flags: `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`; the engine's defaults added "
            "`--xla_gpu_enable_triton_gemm=false`.") in out
    assert report.main([str(tmp_path / "missing.json")]) == 2


def test_trace_summary_counts_time_in_nested_ops_once(tmp_path):
    """A while op of 10 us whose body ran two ops of 3 us: 4 us of its own."""
    def op(name, ts, dur, tid=1):
        return {"ph": "X", "pid": 1, "tid": tid, "ts": ts, "dur": dur, "name": name,
                "args": {"hlo_op": name, "hlo_module": "jit_step"}}

    events = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
              op("while", 0, 10), op("dot", 1, 3), op("add", 5, 3), op("dot", 20, 3), op("dot", 21, 2, tid=2),
              {"ph": "X", "pid": 1, "tid": 1, "ts": 30, "dur": 50, "name": "python"}]  # not an XLA op
    trace = tmp_path / "run" / "host.trace.json.gz"
    trace.parent.mkdir()
    with gzip.open(trace, "wt") as f:
        json.dump({"traceEvents": events}, f)
    assert traces.trace_files(str(tmp_path)) == [str(trace)]
    assert [(o.op, o.self_us, o.calls) for o in traces.op_times(str(trace))] == [
        ("dot", 8.0, 3), ("while", 4.0, 1), ("add", 3.0, 1)]


@pytest.fixture
def restore_compilation_cache():
    """The benchmark CLI points JAX at a fresh compilation cache; give the session's back."""
    import jax

    directory = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", directory)


def test_profile_traces_the_timed_steps_of_each_jax_measurement(tmp_path, capsys, restore_compilation_cache):
    from aigc_jax.benchmarks.cli import main

    out = {k: str(tmp_path / f"out.{k}") for k in ("json", "md", "png")}
    argv = ["--preset", "tiny", "--families", "mlp", "--modes", "jit", "--seconds", "0.02",
            "--profile", str(tmp_path / "profile"), "--json", out["json"], "--markdown", out["md"], "--plot", out["png"]]
    assert main(argv) == 0
    (record,) = json.load(open(out["json"]))["records"]
    assert record["profile_dir"] == str(tmp_path / "profile" / "mlp" / "jit")
    assert record["xla_flags"] == os.environ["XLA_FLAGS"]  # the flags the step ran with
    (trace,) = traces.trace_files(record["profile_dir"])
    assert [f for f in os.listdir(os.path.dirname(trace)) if f.endswith(".xplane.pb")]  # TensorBoard's format
    ops = traces.op_times(trace)
    assert ops and all(o.self_us >= 0 for o in ops)
    # Ops that run once per step ran as often as the steps timed: the trace holds the timed windows,
    # not the warm-up or the compiling call.
    assert record["steps_timed"] in {o.calls for o in ops}, (record["steps_timed"], sorted({o.calls for o in ops}))
    md = open(out["md"]).read()
    assert f"mlp/jit in `{record['profile_dir']}`" in md
    assert "--xla_force_host_platform_device_count=4" in md.split("## Steps per second")[0]


@pytest.mark.parametrize("before, after", [(0.05, 0.1), (0.1, 0.05)])
def test_a_measured_peak_is_the_best_of_before_and_after_the_families(tmp_path, monkeypatch, restore_compilation_cache,
                                                                      before, after):
    """A host busy while the peak was first measured would overstate every MFU: the CLI measures
    again after the families and, when that is higher, states every record against it."""
    from aigc_jax.benchmarks import peaks
    from aigc_jax.benchmarks.cli import main

    measured = iter([before, after])  # TFLOP/s
    monkeypatch.setattr(peaks, "measure_matmul_peak", lambda *a, **k: next(measured))
    out = {k: str(tmp_path / f"out.{k}") for k in ("json", "md", "png")}
    argv = ["--preset", "tiny", "--families", "mlp", "--modes", "jit", "--seconds", "0.02",
            "--json", out["json"], "--markdown", out["md"], "--plot", out["png"]]
    assert main(argv) == 0
    doc = json.load(open(out["json"]))
    (record,) = doc["records"]
    assert doc["peak"]["tflops_per_device"] == record["peak_tflops"] == 0.1
    assert record["mfu"] == pytest.approx(record["tflops"] / 0.1)
    assert record["peak_source"] == doc["peak"]["source"]
    assert ("after the families (before them: 0.05)" in record["peak_source"]) == (after > before)


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
    from aigc_jax.benchmarks.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_sampling_benchmark_times_both_decoders():
    from aigc_jax.benchmarks import sampling

    doc = sampling.measure("tiny", tokens=8, prompt_bytes=4, batches=[2], repeats=1, log=lambda *a: None)
    (row,) = doc["rows"]
    assert doc["shape"]["seq_len"] == 12 and row["batch"] == 2
    for name in ("kv_cache", "recompute"):
        assert row[name]["tokens_per_s"] > 0 and row[name]["compile_s"] > 0
    assert row["speedup"] == row["kv_cache"]["tokens_per_s"] / row["recompute"]["tokens_per_s"]


def test_diffusion_sampling_benchmark_times_each_sampler():
    from aigc_jax.benchmarks import diffusion_sampling

    doc = diffusion_sampling.measure("tiny", images=2, step_counts=[2, 3], full=False, repeats=1, log=lambda *a: None)
    assert [(r["sampler"], r["steps"], r["network_calls_per_image"]) for r in doc["rows"]] == [
        ("dpmpp_2m_sde", 2, 4), ("ddim", 2, 4), ("dpmpp_2m_sde", 3, 6), ("ddim", 3, 6)]
    for row in doc["rows"]:
        assert row["seconds_per_image"] == row["seconds"] / 2 > 0 and row["compile_s"] > 0


def test_the_caption_names_the_measurements_whose_rounds_disagree():
    doc = _synthetic_doc()
    assert "round medians" not in report.comparison_caption(doc).lower()  # no rounds timed: nothing said
    steady, unsteady = (1.0, 1.1, 1.05, 1.2), (3.3, 4.4, 3.4, 3.5)  # spreads 1.2 and 1.33
    for r in doc["records"]:
        if r["family"] == "mlp" and r["framework"] in ("jax", "torch-eager"):
            r["round_medians_ms"] = list(steady)
        if r["family"] == "cnn" and r["framework"] == "torch-compile":
            r["round_medians_ms"] = list(unsteady)
    caption = report.comparison_caption(doc)
    assert "more than 25% apart" in caption and "cnn torch-compile 3.3-4.4 ms" in caption
    assert "mlp JAX" not in caption and "mlp torch-eager" not in caption  # within 25%: not named
    for r in doc["records"]:
        if r.get("round_medians_ms") == list(unsteady):
            r["round_medians_ms"] = list(steady)
    assert "within 25% of each other" in report.comparison_caption(doc)
    assert "within 25% of each other" in report.markdown(doc)
