"""Writers: the JSON document and the markdown tables of a benchmark run (the chart: plot.py).

`python -m benchmarks.report [results.json]` prints the headline table (family | JAX steps/s |
torch eager | torch.compile | JAX / best torch | JAX MFU) from a finished run; `--trace DIR`
prints where the time of `--profile` traces went instead.
"""

import argparse
import dataclasses
import json
import math
import os
import re
import sys

REFERENCE_MODE = "sharded"  # the engine's default mode: the JAX column the per-twin ratios use
# The headline compares JAX on one device with the twins, which run on one device.
COMPARISON_MODE = "jit"
GOAL_RATIO = 1.5  # the project's goal: JAX at least 1.5x the faster PyTorch twin
TORCH_FRAMEWORKS = ("torch-eager", "torch-compile")
# Round medians of one measurement further apart than this (slowest over fastest): the host's speed
# moved while that row ran, so its ratio is worth less than the steadier rows'.
UNSTEADY_SPREAD = 1.25
DEFAULT_RESULTS = os.path.join("runs", "benchmarks", "results.json")


def _ok(records):
    return [r for r in records if r["status"] == "ok"]


def columns(records) -> list[tuple[str, str]]:
    """(framework, mode) columns in a stable order: JAX modes as asked, then torch eager, compile."""
    seen = []
    for r in records:
        key = (r["framework"], r["mode"])
        if key not in seen:
            seen.append(key)
    return sorted(seen, key=lambda k: (k[0] != "jax", k[0]))


def _label(column) -> str:
    framework, mode = column
    return f"jax {mode}" if framework == "jax" else framework


def families(records) -> list[str]:
    return list(dict.fromkeys(r["family"] for r in records))


def reference_jax(records, family: str) -> dict | None:
    """The JAX record the torch ratios compare with: the one timed side by side with the twins if
    any, else the default mode's if it ran, else the first that did."""
    jax_rows = [r for r in _ok(records) if r["family"] == family and r["framework"] == "jax"]
    side_by_side = [r for r in jax_rows if r.get("round_medians_ms")]
    return next((r for r in side_by_side + [r for r in jax_rows if r["mode"] == REFERENCE_MODE]),
                jax_rows[0] if jax_rows else None)


def _framework_record(records, family: str, framework: str) -> dict | None:
    return next((r for r in _ok(records) if r["family"] == family and r["framework"] == framework), None)


def ratio(records, family: str, framework: str) -> float | None:
    ref, peer = reference_jax(records, family), _framework_record(records, family, framework)
    if ref is None or peer is None:
        return None
    return ref["steps_per_s"] / peer["steps_per_s"]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One family's headline: its JAX record beside its PyTorch twins' from the same run."""
    family: str
    jax: dict
    eager: dict | None
    compiled: dict | None

    @property
    def best_torch(self) -> dict | None:
        rows = [r for r in (self.eager, self.compiled) if r is not None]
        return max(rows, key=lambda r: r["steps_per_s"]) if rows else None

    @property
    def ratio(self) -> float | None:
        """JAX steps/s over the faster twin's: above 1, JAX is faster."""
        best = self.best_torch
        return self.jax["steps_per_s"] / best["steps_per_s"] if best else None

    @property
    def mfu(self) -> float | None:
        return self.jax.get("mfu")


def jax_in_mode(records, family: str, mode: str) -> dict | None:
    """JAX's record in `mode`; a family not measured in that mode falls back to `reference_jax`."""
    return next((r for r in _ok(records) if r["family"] == family and r["framework"] == "jax"
                 and r["mode"] == mode), None) or reference_jax(records, family)


def comparison_mode(records) -> str:
    """The JAX mode a headline compares when none is asked: `jit` if the run measured it, else the
    mode the per-twin ratios use (so a default `--modes sharded` run is not labelled as a fallback)."""
    measured = list(dict.fromkeys(r["mode"] for r in _ok(records) if r["framework"] == "jax"))
    preferred = [m for m in (COMPARISON_MODE, REFERENCE_MODE) if m in measured]
    return (preferred or measured or [COMPARISON_MODE])[0]


def comparisons(records, mode: str | None = None) -> list[Comparison]:
    """One Comparison per family with a JAX measurement, in the run's order."""
    mode = mode or comparison_mode(records)
    out = []
    for family in families(records):
        jax_record = jax_in_mode(records, family, mode)
        if jax_record is not None:
            out.append(Comparison(family, jax_record, *(_framework_record(records, family, fw) for fw in TORCH_FRAMEWORKS)))
    return out


def _num(value, fmt: str = "{:.3g}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _mem(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _rate(value) -> str:
    """Steps/s with about three significant figures and no exponent."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.3g}"


def percent(fraction) -> str:
    if fraction is None:
        return "-"
    value = 100 * fraction
    return f"{value:.0f}%" if value >= 10 else f"{value:.2g}%"


def _xla_cpu_threading(xla_flags: str) -> str:
    """What XLA:CPU's threading was, read from XLA_FLAGS (the last setting wins, as in XLA)."""
    settings = re.findall(r"--xla_cpu_multi_thread_eigen=(\S+)", xla_flags or "")
    if settings and settings[-1].lower() in ("false", "0"):
        return "XLA:CPU one thread"
    return "XLA:CPU multi-threaded"


def machine_summary(env: dict) -> str:
    if env["backend"] == "cpu":
        machine = f"{env['cpu_count']}-core CPU host, {env['device_count']} XLA device(s)"
    else:
        machine = f"{env['device_count']} x {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPU cores"
    load = env.get("load_average")
    return machine + (f", load {load[0]:.1f} at the start" if load else "")


def threads_summary(env: dict) -> str:
    torch = f"torch threads {env['torch_threads']}" if env.get("torch_threads") else "no torch"
    if env["backend"] != "cpu":
        return torch
    return f"{torch}, {_xla_cpu_threading(env.get('xla_flags', ''))}"


def _dtypes(doc: dict) -> str:
    found = sorted({r["dtype"] for r in _ok(doc["records"]) if r.get("dtype")})
    return "/".join(found) or doc.get("dtype") or "preset's"


def settings_summary(doc: dict) -> str:
    env = doc["environment"]
    return f"{threads_summary(env)}; dtype {_dtypes(doc)}, preset {doc['preset']}, clock {env.get('clock', 'wall')}"


def run_summary(doc: dict) -> str:
    """Machine, threads, dtype, preset and clock of a run, in one line (the table's caption)."""
    return f"{machine_summary(doc['environment'])}; {settings_summary(doc)}"


def peak_summary(doc: dict) -> str:
    peak = doc.get("peak") or {}
    source = (peak.get("source") or "-").split(":")[0]  # "measured" or "table"
    return f"MFU against {_num(peak.get('tflops_per_device'))} TFLOP/s per device ({source})"


def _split_xla_flags(env: dict) -> tuple[list[str], list[str]]:
    """(flags from the environment, flags the engine's defaults added), both as run."""
    added = (env.get("engine_xla_flags") or {}).get("defaults_added") or []
    return [f for f in (env.get("xla_flags") or "").split() if f not in added], added


def xla_flags_line(env: dict) -> str:
    """Every XLA flag a run ran with, the engine's defaults told apart from the user's."""
    outside, added = _split_xla_flags(env)
    engine = env.get("engine_xla_flags") or {}
    text = f"XLA flags: `XLA_FLAGS={' '.join(outside)}`" if outside else "XLA flags: none from the environment"
    if added:
        text += f"; the engine's defaults added `{' '.join(added)}`"
        if engine.get("too_late"):
            text += " (too late: a JAX backend had already started, so XLA never read them)"
    elif engine.get("defaults_enabled") is False:
        text += "; the engine's defaults were turned off"
    return text + "."


def xla_flags_short(env: dict) -> str:
    """The flags in a few words, for the chart's title: the environment's in full, the engine's counted."""
    outside, added = _split_xla_flags(env)
    text = f"XLA_FLAGS {' '.join(outside)}" if outside else "XLA_FLAGS unset"
    return text + (f" + {len(added)} engine default flags (listed in results.md)" if added else "")


def header_lines(doc: dict) -> list[str]:
    env = doc["environment"]
    versions = f"jax {env['jax']}, jaxlib {env['jaxlib']}, flax {env['flax']}"
    if env.get("torch"):
        versions += f", torch {env['torch']} ({env['torch_threads']} threads)"
    peak = doc.get("peak") or {}
    return [
        f"Command: `{doc['command']}`",
        "",
        f"Machine: {env['backend']} backend, {env['device_count']} x {env['device_kind']}, "
        f"{env['cpu_count']} CPU cores, {env['process_count']} process(es); {versions}."
        + (f" Load average at the start (1/5/15 min): {', '.join(f'{x:.1f}' for x in env['load_average'])}."
           if env.get("load_average") else ""),
        f"Preset `{doc['preset']}`, seconds per measurement {doc['seconds']}, clock {env.get('clock', 'wall')}. "
        f"Peak used for MFU: "
        f"{_num(peak.get('tflops_per_device'))} TFLOP/s per device ({peak.get('source', '-')}).",
        xla_flags_line(env),
    ]


def comparison_table(doc: dict, mode: str | None = None) -> str:
    """The headline table: per family, JAX (mode `mode`, default `comparison_mode`) against the
    faster PyTorch twin, with JAX's MFU."""
    mode = mode or comparison_mode(doc["records"])
    lines = ["| family | JAX steps/s | torch eager | torch.compile | JAX / best torch | JAX MFU |", "|" + "---|" * 6]
    for c in comparisons(doc["records"], mode):
        jax_cell = _rate(c.jax["steps_per_s"]) + ("" if c.jax["mode"] == mode else f" ({c.jax['mode']})")
        eager, compiled = (_rate(r and r["steps_per_s"]) for r in (c.eager, c.compiled))
        lines.append(f"| {c.family} | {jax_cell} | {eager} | {compiled} | {_num(c.ratio, '{:.2f}x')} | {percent(c.mfu)} |")
    return "\n".join(lines)


def _round_medians(comparisons_: list[Comparison]):
    """(family, framework label, round medians) of each measurement timed side by side in rounds."""
    for c in comparisons_:
        for r in (c.jax, c.eager, c.compiled):
            if r and r.get("round_medians_ms"):
                yield c.family, "JAX" if r["framework"] == "jax" else r["framework"], r["round_medians_ms"]


def unsteady_rounds(comparisons_: list[Comparison]) -> list[str]:
    """'family framework fastest-slowest ms' for each side-by-side measurement whose round medians
    lie more than UNSTEADY_SPREAD apart."""
    return [f"{family} {name} {min(rounds):.3g}-{max(rounds):.3g} ms"
            for family, name, rounds in _round_medians(comparisons_) if max(rounds) > UNSTEADY_SPREAD * min(rounds)]


def steadiness_summary(comparisons_: list[Comparison]) -> str:
    """One sentence on whether the host held still while the rows ran ('' when no round was timed)."""
    if not any(_round_medians(comparisons_)):
        return ""
    unsteady = unsteady_rounds(comparisons_)
    limit = f"{round((UNSTEADY_SPREAD - 1) * 100)}%"
    if not unsteady:
        return f"Every measurement's round medians lie within {limit} of each other. "
    return (f"Round medians more than {limit} apart, so the host's speed moved while these ran and their "
            f"rows' ratios are less sure: {', '.join(unsteady)}. ")


def comparison_caption(doc: dict, mode: str | None = None) -> str:
    mode = mode or comparison_mode(doc["records"])
    return (f"Median train steps/s from one run (`{doc['command']}`): JAX in mode `{mode}` (another mode, "
            f"where named, when `{mode}` was not measured), PyTorch twins on one device; JAX / best torch "
            f"is JAX over the faster twin (above 1: JAX faster; goal {GOAL_RATIO}x); {peak_summary(doc)}. "
            f"{steadiness_summary(comparisons(doc['records'], mode))}"
            f"{run_summary(doc)}. {xla_flags_line(doc['environment'])}")


def markdown(doc: dict) -> str:
    records = doc["records"]
    cols = [c for c in columns(records) if any(r["status"] == "ok" for r in records if (r["framework"], r["mode"]) == c)]
    torch_cols = [c for c in cols if c[0] != "jax"]
    lines = ["# aigc-jax benchmarks", "", *header_lines(doc), ""]
    if torch_cols:
        lines += [f"## JAX (mode `{comparison_mode(records)}`) against the faster PyTorch twin", "",
                  comparison_table(doc), "",
                  f"JAX steps/s over the faster of torch eager and torch.compile; goal {GOAL_RATIO}x. "
                  f"{steadiness_summary(comparisons(records))}".rstrip(), ""]
    lines += ["## Steps per second (median)", ""]
    head = ["family", "batch", "dtype", *(_label(c) for c in cols)]
    head += [f"jax / {c[0]}" for c in torch_cols]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for family in families(records):
        rows = [r for r in _ok(records) if r["family"] == family]
        if not rows:
            continue
        cells = [family, _num(rows[0]["batch_size"], "{}"), rows[0]["dtype"]]
        for c in cols:
            r = next((r for r in rows if (r["framework"], r["mode"]) == c), None)
            cells.append(_num(r and r["steps_per_s"], "{:.1f}"))
        cells += [_num(ratio(records, family, c[0]), "{:.2f}x") for c in torch_cols]
        lines.append("| " + " | ".join(cells) + " |")
    if torch_cols:
        lines += ["", f"Ratios: JAX steps/s (the mode timed side by side with the twins, else `{REFERENCE_MODE}`, "
                      "else the first mode measured) over the PyTorch twin's; above 1 means JAX is faster."]

    lines += ["", "## Every measurement", "",
              "| family | mode | framework | step ms median [p10, p90] | steps/s | examples/s | tokens/s | "
              "compile s cold / warm | first call s | GFLOP/step (XLA) | TFLOP/s | MFU | memory |",
              "|" + "---|" * 13]
    for r in _ok(records):
        xla = f" ({_num(r['xla_flops_per_step'] and r['xla_flops_per_step'] / 1e9)})" if r["xla_flops_per_step"] else ""
        lines.append(
            f"| {r['family']} | {r['mode']} | {r['framework']} | {r['step_ms_median']:.3f} "
            f"[{r['step_ms_p10']:.3f}, {r['step_ms_p90']:.3f}] | {r['steps_per_s']:.1f} | "
            f"{_num(r['examples_per_s'], '{:.0f}')} | {_num(r['tokens_per_s'], '{:.0f}')} | "
            f"{_num(r['compile_s'], '{:.2f}')} / {_num(r.get('compile_warm_s'), '{:.2f}')} | "
            f"{_num(r['first_call_s'], '{:.2f}')} | "
            f"{_num(r['flops_per_step'] and r['flops_per_step'] / 1e9)}{xla} | {_num(r['tflops'])} | "
            f"{_num(r['mfu'] and 100 * r['mfu'], '{:.1f}%')} | {_mem(r['compiled_memory_bytes'])} |")
    profiled = [r for r in _ok(records) if r.get("profile_dir")]
    if profiled:
        lines += ["", "Profiled (a jax.profiler trace ran during the timed steps, which it slows): "
                      + ", ".join(f"{r['family']}/{r['mode']} in `{r['profile_dir']}`" for r in profiled) + "."]
    if any((r["mfu"] or 0) > 1 for r in _ok(records)):
        lines += ["", "An MFU above 100% means the measured peak is too low: it was taken while other work "
                      "slowed the machine (see the load average above)."]
    others = [r for r in records if r["status"] != "ok"]
    if others:
        lines += ["", "## Not measured", ""]
        lines += [f"- {r['family']} / {r['mode']} / {r['framework']}: {r['status']}: {r['reason']}" for r in others]
    return "\n".join(lines) + "\n"


def write_json(doc: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False, default=str)


def write_markdown(doc: dict, path: str) -> None:
    with open(path, "w") as f:
        f.write(markdown(doc))


# --- The chart --------------------------------------------------------------------------------


# --- python -m benchmarks.report ------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                description="Print the headline table of a benchmark run, or where traced steps spent their time.")
    p.add_argument("results", nargs="?", default=DEFAULT_RESULTS, help=f"a run's JSON (default {DEFAULT_RESULTS})")
    p.add_argument("--mode", help=f"the JAX mode compared with the twins (default {COMPARISON_MODE} when the run measured it)")
    p.add_argument("--full", action="store_true", help="print the whole markdown report instead of the headline table")
    p.add_argument("--plot", metavar="PNG", help="also redraw the chart there")
    p.add_argument("--trace", metavar="DIR", help="instead: the top XLA ops of every trace under DIR (from --profile)")
    p.add_argument("--top", type=int, default=15, help="ops listed per trace (default 15)")
    return p.parse_args(argv)


def print_traces(directory: str, n: int) -> int:
    from aigc_jax.benchmarks.traces import format_top_ops, trace_files

    paths = trace_files(directory)
    if not paths:
        print(f"error: no *.trace.json.gz under {directory}; write some with python -m benchmarks --profile DIR",
              file=sys.stderr)
        return 2
    print("\n\n".join(format_top_ops(p, n) for p in paths))
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.trace:
        return print_traces(args.trace, args.top)
    try:
        with open(args.results) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: cannot read {args.results}: {e}", file=sys.stderr)
        return 2
    print(markdown(doc) if args.full else f"{comparison_table(doc, args.mode)}\n\n{comparison_caption(doc, args.mode)}")
    if args.plot:
        from aigc_jax.benchmarks.plot import write_plot

        write_plot(doc, args.plot, args.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
