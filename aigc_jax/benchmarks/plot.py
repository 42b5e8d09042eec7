"""The PNG chart of a benchmark run: JAX steps/s over the faster PyTorch twin's, per family.

Parity and the project's goal are drawn as lines, JAX's MFU is written beside each bar, and the
families without a twin get a panel of their own by MFU alone.
"""

import textwrap

from aigc_jax.benchmarks.report import (GOAL_RATIO, Comparison, comparison_mode, comparisons, machine_summary, percent,
                               peak_summary, settings_summary, xla_flags_short)

_FASTER, _BEHIND, _SLOWER = "#2e7d32", "#f2a900", "#c62828"  # >= goal, between parity and goal, < parity


def _ratio_colour(ratio: float) -> str:
    return _FASTER if ratio >= GOAL_RATIO else _BEHIND if ratio >= 1.0 else _SLOWER


def _family_label(c: Comparison, mode: str) -> str:
    return c.family if c.jax["mode"] == mode else f"{c.family} ({c.jax['mode']})"


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    candidates = [1 / 8, 1 / 4, 1 / 2, 1.0, GOAL_RATIO, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    return [t for t in candidates if lo <= t <= hi]


def _draw_ratios(ax, rows: list[Comparison], mode: str) -> None:
    """Bars from 1x to each family's ratio on a log axis, so 2x faster and 2x slower look alike."""
    ratios = [c.ratio for c in rows]
    y = range(len(rows))
    ax.barh(y, [r - 1.0 for r in ratios], left=1.0, height=0.6, color=[_ratio_colour(r) for r in ratios])
    ax.set_xscale("log")
    # Room beside the bars for their labels, and the goal line always in view.
    lo, hi = min(ratios + [1.0]) / 3.0, max(ratios + [GOAL_RATIO]) * 3.0
    ax.set_xlim(lo, hi)
    ticks = _ratio_ticks(lo, hi)
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.axvline(1.0, color="black", lw=1.2)
    ax.axvline(GOAL_RATIO, color=_FASTER, lw=1.2, ls="--")
    ax.text(1.0, 1.0, "parity ", transform=ax.get_xaxis_transform(), ha="right", va="bottom", fontsize=8)
    ax.text(GOAL_RATIO, 1.0, f" goal {GOAL_RATIO:g}x", transform=ax.get_xaxis_transform(), ha="left",
            va="bottom", fontsize=8, color=_FASTER)
    for i, c in enumerate(rows):
        peer = "eager" if c.best_torch is c.eager else "compile"
        text = f"{c.ratio:.2f}x vs {peer}" + (f", MFU {percent(c.mfu)}" if c.mfu is not None else "")
        faster = c.ratio >= 1.0
        ax.text(c.ratio * (1.04 if faster else 1 / 1.04), i, text, va="center", ha="left" if faster else "right",
                fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})  # legible over the goal line
    ax.set_yticks(list(y), [_family_label(c, mode) for c in rows])
    ax.invert_yaxis()
    together = all(c.jax.get("round_medians_ms") for c in rows)
    ax.set_xlabel("JAX steps/s / the faster PyTorch twin's (eager or torch.compile), "
                  + ("timed side by side in alternating rounds" if together else "same run")
                  + ": right of 1x, JAX is faster", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def _draw_mfus(ax, rows: list[Comparison], mode: str) -> None:
    """Families with no twin to compare with: JAX's MFU, in its own panel and unit."""
    percents = [100 * c.mfu for c in rows]
    y = range(len(rows))
    ax.barh(y, percents, height=0.6, color="#5c6bc0")
    ax.set_xlim(0, max(percents) * 1.3)
    for i, c in enumerate(rows):
        ax.text(100 * c.mfu, i, f" MFU {percent(c.mfu)}", va="center", ha="left", fontsize=8)
    if max(percents) * 1.3 > 100:
        ax.axvline(100, color="grey", lw=1, ls=":")  # above it, the measured peak was low
    ax.set_yticks(list(y), [_family_label(c, mode) for c in rows])
    ax.invert_yaxis()
    ax.set_xlabel("JAX MFU, % of the peak (no PyTorch twin in this run)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def plot_title(doc: dict, mode: str) -> str:
    """What ran where, one fact per line; long XLA_FLAGS wrap rather than run off the image."""
    flags = textwrap.wrap(xla_flags_short(doc["environment"]), 140)
    return "\n".join([f"aigc-jax train step: JAX (mode {mode}) against the faster PyTorch twin",
                      f"{machine_summary(doc['environment'])}; {peak_summary(doc)}", settings_summary(doc), *flags])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def comparison_figure(doc: dict, mode: str | None = None):
    """Per family, JAX steps/s over the faster PyTorch twin's (lines at parity and the goal), with
    JAX's MFU beside each bar; families without a twin in a second panel, by MFU alone (a ratio
    and an MFU are different units, so they never share an axis). A matplotlib Figure."""
    plt = _pyplot()
    mode = mode or comparison_mode(doc["records"])
    rows = comparisons(doc["records"], mode)
    panels = [(draw, items) for draw, items in (
        (_draw_ratios, [c for c in rows if c.ratio is not None]),
        (_draw_mfus, [c for c in rows if c.ratio is None and c.mfu is not None])) if items]
    unplotted = [c.family for c in rows if c.ratio is None and c.mfu is None]
    heights = [len(items) + 1.5 for _, items in panels] or [2]
    fig, axes = plt.subplots(len(heights), 1, figsize=(10, 1.6 + 0.32 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (draw, items) in zip(axes[:, 0], panels):
        draw(ax, items, mode)
    if not panels:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no JAX measurement ran", ha="center", va="center")
    fig.suptitle(plot_title(doc, mode), fontsize=9)
    if unplotted:
        fig.text(0.01, 0.005, "Not shown (no twin, no FLOP count): " + ", ".join(unplotted), fontsize=7)
    fig.tight_layout(rect=(0, 0.02 if unplotted else 0, 1, 1))
    return fig


def write_plot(doc: dict, path: str, mode: str | None = None) -> None:
    fig = comparison_figure(doc, mode)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
