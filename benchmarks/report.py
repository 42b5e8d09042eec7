"""Writers: the JSON document, the markdown tables and the PNG bar chart."""

import json
import math

REFERENCE_MODE = "sharded"  # the engine's default mode: the JAX column the ratios use


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
    """The JAX record the torch ratios compare with: the default mode if it ran, else the first that did."""
    jax_rows = [r for r in _ok(records) if r["family"] == family and r["framework"] == "jax"]
    return next((r for r in jax_rows if r["mode"] == REFERENCE_MODE), jax_rows[0] if jax_rows else None)


def ratio(records, family: str, framework: str) -> float | None:
    ref = reference_jax(records, family)
    peer = next((r for r in _ok(records) if r["family"] == family and r["framework"] == framework), None)
    if ref is None or peer is None:
        return None
    return ref["steps_per_s"] / peer["steps_per_s"]


def _num(value, fmt: str = "{:.3g}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _mem(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


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
    ]


def markdown(doc: dict) -> str:
    records = doc["records"]
    cols = [c for c in columns(records) if any(r["status"] == "ok" for r in records if (r["framework"], r["mode"]) == c)]
    torch_cols = [c for c in cols if c[0] != "jax"]
    lines = ["# aigc-jax benchmarks", "", *header_lines(doc), "", "## Steps per second (median)", ""]
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
        lines += ["", f"Ratios: JAX steps/s (mode `{REFERENCE_MODE}`, else the first mode measured) over the "
                      "PyTorch twin's; above 1 means JAX is faster."]

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
    if any((r["mfu"] or 0) > 1 for r in _ok(records)):
        lines += ["", "An MFU above 100% means the measured peak is too low: it was taken while other work "
                      "slowed the machine (see the load average above)."]
    others = [r for r in records if r["status"] != "ok"]
    if others:
        lines += ["", "## Not measured", ""]
        lines += [f"- {r['family']} / {r['mode']} / {r['framework']}: {r['status']}: {r['reason']}" for r in others]
    return "\n".join(lines) + "\n"


def write_json(doc: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False, default=str)


def write_markdown(doc: dict, path: str) -> None:
    with open(path, "w") as f:
        f.write(markdown(doc))


def write_plot(doc: dict, path: str) -> None:
    """Grouped bars: steps/s per family (log scale), one bar per JAX mode and torch framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = _ok(doc["records"])
    fams, cols = families(records), columns(records)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(fams) * max(1, len(cols)) ** 0.5 + 2), 4.5))
    width = 0.8 / max(1, len(cols))
    for i, c in enumerate(cols):
        values = []
        for family in fams:
            r = next((r for r in records if r["family"] == family and (r["framework"], r["mode"]) == c), None)
            values.append(r["steps_per_s"] if r else 0.0)
        ax.bar([x + (i - (len(cols) - 1) / 2) * width for x in range(len(fams))], values, width, label=_label(c))
    ax.set_xticks(range(len(fams)), fams, rotation=30 if len(fams) > 6 else 0)
    ax.set_yscale("log")
    ax.set_ylabel("train steps / s (median, higher is better)")
    env = doc["environment"]
    ax.set_title(f"preset {doc['preset']}, {env['device_kind']} ({env['backend']}), dtype {doc['dtype'] or 'preset'}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
