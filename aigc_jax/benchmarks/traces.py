"""Where a profiled step's time went: the top XLA ops of the traces `python -m benchmarks --profile`
writes (Chrome-format `*.trace.json.gz`), read with gzip and json alone.
"""

import dataclasses
import gzip
import json
import os
from collections import defaultdict

@dataclasses.dataclass(frozen=True)
class OpTime:
    op: str
    module: str
    self_us: float  # time in this op, less the ops nested in it (a while loop's body, say)
    calls: int


def trace_files(directory: str) -> list[str]:
    """The Chrome-format traces jax.profiler wrote under `directory` (plugins/profile/RUN/HOST.trace.json.gz)."""
    found = []
    for root, _, names in os.walk(directory):
        found += [os.path.join(root, n) for n in names if n.endswith(".trace.json.gz")]
    return sorted(found)


def _op_events(events: list[dict]) -> list[dict]:
    """Complete events that carry an XLA op; on an accelerator, the device's (not the host's launches)."""
    ops = [e for e in events if e.get("ph") == "X" and "hlo_op" in (e.get("args") or {})]
    process = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    on_device = [e for e in ops if process.get(e["pid"], "").startswith("/device:")]
    return on_device or ops


def _self_times(ops: list[dict]) -> list[tuple[dict, float]]:
    """(event, its duration less the op events nested inside it on the same thread)."""
    by_thread = defaultdict(list)
    for e in ops:
        by_thread[(e["pid"], e.get("tid"))].append(e)
    out = []
    for events in by_thread.values():
        events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[list] = []  # [event, self time so far]
        for e in events:
            while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= e["ts"]:
                out.append(tuple(stack.pop()))
            if stack:
                stack[-1][1] -= e["dur"]
            stack.append([e, float(e["dur"])])
        out += [tuple(item) for item in stack]
    return out


def op_times(trace_path: str) -> list[OpTime]:
    """Every XLA op in one trace with its total self time, most first."""
    with gzip.open(trace_path, "rt") as f:
        events = json.load(f)["traceEvents"]
    totals, calls = defaultdict(float), defaultdict(int)
    for e, self_us in _self_times(_op_events(events)):
        key = (e["args"]["hlo_op"], e["args"].get("hlo_module", ""))
        totals[key] += self_us
        calls[key] += 1
    ranked = sorted(totals, key=totals.get, reverse=True)
    return [OpTime(op, module, totals[(op, module)], calls[(op, module)]) for op, module in ranked]


def format_top_ops(trace_path: str, n: int = 15) -> str:
    ops = op_times(trace_path)
    total = sum(o.self_us for o in ops) or 1.0  # shares are of all op time, not of the top n
    lines = [f"{trace_path}: {total / 1e3:.1f} ms in XLA ops", f"{'self ms':>10} {'share':>6} {'calls':>7}  op (module)"]
    lines += [f"{o.self_us / 1e3:10.2f} {100 * o.self_us / total:5.1f}% {o.calls:7d}  {o.op} ({o.module})" for o in ops[:n]]
    return "\n".join(lines)
