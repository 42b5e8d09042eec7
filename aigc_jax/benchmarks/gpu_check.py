"""python -m benchmarks.gpu_check [--dry-run] [--families A,B] [--seconds S] [--check-seconds S]
[--gpt2-batch N] [--budget-s S] [--json PATH] [--markdown PATH]

The GPU acceptance run, one command, meant to finish within 8 minutes on one H100/H200:

1. Two checks against targets, timed first and longest (`--check-seconds`):
   - GPT-2 small's shape on the `gpt` family, bfloat16: MFU (analytic FLOPs, `task.flops_per_step()`,
     against the peak table's dense bf16 989 TFLOP/s) >= 50%;
   - PPO with 256 seeds: env steps/s (seeds x envs x rollout steps x steps/s) >= 1e7.
2. Every registered family's `gpu` benchmark preset in bfloat16 for `--seconds` each, with the
   machinery of `python -m benchmarks` (same records). Families not started within `--budget-s`
   of the start are recorded as skipped, so the run stays bounded whatever the compile times are.
   A family whose preset config is exactly a check's (today: gpt, ppo) reuses that measurement.

Writes JSON and markdown (default runs/gpu_check/results.{json,md}) and prints the markdown.
`--dry-run` runs the same code at the `tiny` presets (tiny stand-ins for the checks) in seconds on
CPU; its targets are not judged. Bad input: one line on stderr, exit 2. A measurement that fails
is reported and makes the exit status 1; a missed target does not (the table says so).
"""

import argparse
import dataclasses
import os
import shlex
import sys
import time
import traceback

from aigc_jax.benchmarks.cli import Parser, check_families, csv_list

MODE = "sharded"  # the engine's default parallel mode
DTYPE = "bfloat16"
DEFAULT_OUT = os.path.join("runs", "gpu_check")
DRY_RUN_OUT = os.path.join("runs", "gpu_check_dry_run")  # never over a GPU run's results


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    family: str
    what: str
    shape: dict  # config overrides on the family's `gpu` preset
    tiny_shape: dict  # the dry run's stand-in, on the `tiny` preset
    metric: str  # the record field the target is for
    target: float
    unit: str


CHECKS = (
    Check("gpt2_small", "gpt",
          "GPT-2 small's shape: 12 layers x 768 wide, 12 heads, context 1024, vocabulary 50304",
          {"width": 768, "layers": 12, "heads": 12, "seq_len": 1024, "vocab_size": 50304, "batch_size": 32},
          {"vocab_size": 320},  # a padded vocabulary, as in the real check
          "mfu", 0.5, "MFU"),
    Check("ppo_256_seeds", "ppo",
          "PPO on CartPole, 256 seeds x 4 envs x 128 rollout steps per update",
          {"num_seeds": 256, "batch_size": 4, "num_steps": 128},
          {},  # the tiny preset as it is: the sweep then reuses this measurement (that path, tested)
          "env_steps_per_s", 1e7, "env steps/s"),
)

# What a check's record carries besides a benchmark record's fields.
CHECK_FIELDS = ("check", "what", "metric", "target", "unit", "value", "met")

VOCAB_NOTE = ("The GPT-2 check reads byte data (256 symbols) through a {vocab}-entry vocabulary: the tokens are "
              "bytes, but the embedding, the output layer and its softmax have the vocabulary's shapes and FLOPs, "
              "which is what a timing needs.")


# --- arguments ----------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m benchmarks.gpu_check",
                description="GPT-2 small MFU, PPO 256-seed env steps/s and every family's gpu preset, in bfloat16.")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes, targets not judged: the CPU test of this path")
    p.add_argument("--families", type=csv_list, help="comma-separated (default: every registered family)")
    p.add_argument("--seconds", type=float, help="timed seconds per family (default 1; dry run 0.05)")
    p.add_argument("--check-seconds", type=float, help="timed seconds per check (default 5; dry run 0.1)")
    p.add_argument("--gpt2-batch", type=int, help="sequences per GPT-2 step (default 32)")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="families not started this many seconds after the start are skipped (default 420)")
    p.add_argument("--json", help=f"default {DEFAULT_OUT}/results.json ({DRY_RUN_OUT}/ for a dry run)")
    p.add_argument("--markdown", help=f"default {DEFAULT_OUT}/results.md ({DRY_RUN_OUT}/ for a dry run)")
    args = p.parse_args(argv)
    out = DRY_RUN_OUT if args.dry_run else DEFAULT_OUT
    args.preset = "tiny" if args.dry_run else "gpu"
    args.seconds = args.seconds if args.seconds is not None else (0.05 if args.dry_run else 1.0)
    args.check_seconds = args.check_seconds if args.check_seconds is not None else (0.1 if args.dry_run else 5.0)
    args.json = args.json or os.path.join(out, "results.json")
    args.markdown = args.markdown or os.path.join(out, "results.md")
    check_args(args)
    return args


def check_args(args) -> None:
    from aigc_jax.errors import UserError

    check_families(args.families)
    for flag, value in (("--seconds", args.seconds), ("--check-seconds", args.check_seconds), ("--budget-s", args.budget_s)):
        if not value > 0:
            raise UserError(f"{flag} {value}: expected a number > 0")
    if args.gpt2_batch is not None and args.gpt2_batch < 1:
        raise UserError(f"--gpt2-batch {args.gpt2_batch}: expected an integer >= 1")


# --- measuring ----------------------------------------------------------------------------------

def check_config(check: Check, preset: str, gpt2_batch: int | None = None):
    """(config, "") for `check` at `preset` (its shape over the family's preset), or (None, why not)."""
    from aigc_jax.engine.config import validate
    from aigc_jax.tasks import registry
    from aigc_jax.benchmarks.presets import preset_config

    cls = registry.get(check.family)
    config, why = preset_config(cls, preset, MODE, DTYPE)
    if config is None:
        return None, why
    shape = dict(check.shape if preset == "gpu" else check.tiny_shape)
    if gpt2_batch is not None and check.name == "gpt2_small":
        shape["batch_size"] = gpt2_batch
    unknown = sorted(set(shape) - set(config.keys()))
    if unknown:  # a ConfigDict would silently add them
        return None, f"check {check.name!r} sets unknown config keys {unknown}"
    for key, value in shape.items():
        config[key] = value
    validate(config, cls.config_ranges, cls.config_choices)
    return config, ""


def judge(check: Check, value: float | None, dry_run: bool) -> bool | None:
    """Whether `value` meets the check's target; None when not judged (dry run, or no value)."""
    if dry_run or value is None:
        return None
    return value >= check.target


def with_env_steps(record: dict, task) -> dict:
    """RL families: env steps per engine step (all seeds) and per second."""
    if not hasattr(task, "env_steps_per_step") or record.get("steps_per_s") is None:
        return record
    per_step = task.env_steps_per_step()
    return {**record, "env_steps_per_step": per_step, "env_steps_per_s": per_step * record["steps_per_s"]}


def measure_check(check: Check, args, peak, clock, log=print) -> dict:
    """The check's record: a timed record of `benchmark_task`, plus the check, its value and verdict."""
    from aigc_jax.errors import UserError
    from aigc_jax.tasks import registry
    from aigc_jax.benchmarks import jax_runner, records

    base = dict(zip(CHECK_FIELDS, (check.name, check.what, check.metric, check.target, check.unit, None, None)))
    try:
        config, why = check_config(check, args.preset, args.gpt2_batch)
        if config is None:
            return {**records.skipped(records.new_record(check.family, MODE, "jax", args.preset, dtype=DTYPE), why), **base}
        task = registry.get(check.family)(config)
        record = jax_runner.benchmark_task(task, MODE, args.preset, args.check_seconds, peak, clock=clock)
        shape = check.shape if args.preset == "gpu" else check.tiny_shape
        record = with_env_steps({**record, "shape": {**(record["shape"] or {}), **shape,
                                                     "batch_size": config.batch_size}}, task)
        value = record.get(check.metric)
        record = {**record, **base, "value": value, "met": judge(check, value, args.dry_run),
                  "config": config.to_dict()}
        log(f"  check {check.name:<14} {record['steps_per_s']:9.2f} steps/s  {format_value(check, value)}  "
            f"compile {record['compile_s']:.1f} s")
        return record
    except UserError as e:
        reason, status = str(e), "skipped"
    except Exception as e:  # keep the other measurements; the exit status reports it
        reason, status = f"{type(e).__name__}: {e}".splitlines()[0][:300], "error"
        log(traceback.format_exc())
    log(f"  check {check.name:<14} {status}: {reason}")
    return {**records.skipped(records.new_record(check.family, MODE, "jax", args.preset, dtype=DTYPE), reason, status), **base}


def sweep(args, peak, clock, checks: list[dict], deadline: float, log=print) -> list[dict]:
    """One record per family at its preset in bfloat16; a family whose config is a check's reuses it."""
    from aigc_jax.tasks import registry
    from aigc_jax.benchmarks import jax_runner, records
    from aigc_jax.benchmarks.presets import preset_config

    measured = {_config_key(r["config"]): r for r in checks if r["status"] == "ok"}
    out = []
    for name in args.families or registry.names():
        cls = registry.get(name)
        try:
            config, _ = preset_config(cls, args.preset, MODE, DTYPE)
        except Exception:  # an invalid preset: benchmark_family below records why
            config = None
        reused = measured.get(_config_key(config.to_dict())) if config is not None else None
        if reused is not None:
            out.append({**{k: v for k, v in reused.items() if k not in CHECK_FIELDS}, "reused_from_check": reused["check"]})
            log(f"  {name:<14} {MODE:<10} jax: the {reused['check']} check's measurement (the same config)")
        elif time.monotonic() > deadline:
            reason = f"not started: --budget-s {args.budget_s:g} was spent before its turn"
            out.append(records.skipped(records.new_record(name, MODE, "jax", args.preset, dtype=DTYPE), reason))
            log(f"  {name:<14} {MODE:<10} jax: skipped ({reason})")
        else:
            out += [with_env_steps(r, cls(config)) if r["status"] == "ok" else r
                    for r in jax_runner.benchmark_family(cls, args.preset, [MODE], DTYPE, args.seconds, peak,
                                                         log=log, clock=clock)]
    return out


def _config_key(config: dict) -> str:
    import json

    return json.dumps(config, sort_keys=True, default=str)


def run(args, command: str, log=print) -> dict:
    """Both checks, then the family sweep, as one JSON document."""
    import jax

    from aigc_jax.engine.distributed import enable_fresh_compilation_cache
    from aigc_jax.engine.xla_flags import xla_flags_in_effect
    from aigc_jax.errors import UserError
    from aigc_jax.benchmarks import timing
    from aigc_jax.benchmarks.environment import jax_environment
    from aigc_jax.benchmarks.peaks import device_peak

    start = time.monotonic()
    if jax.default_backend() == "cpu" and not args.dry_run:
        raise UserError("JAX sees no accelerator (backend cpu); run this on a GPU, or pass --dry-run "
                        "for the tiny CPU run of the same code")
    # A fresh persistent cache, as `python -m benchmarks` uses: compile cold, then warm. Before
    # the first compile: JAX decides once whether the cache is on.
    enable_fresh_compilation_cache("aigc_jax_gpu_check_cache_")
    clock = timing.CLOCKS["wall"]
    env = {**jax_environment(), "clock": "wall"}
    peak = device_peak(jax.devices()[0], matmul_size=512 if args.dry_run else 2048, clock=clock)
    log(f"gpu check{' (dry run)' if args.dry_run else ''}: preset {args.preset}, {env['device_count']} x "
        f"{env['device_kind']} ({env['backend']}); peak {peak.tflops_per_device:.3g} TFLOP/s per device ({peak.source})")
    checks = [measure_check(c, args, peak, clock, log) for c in CHECKS]
    families = sweep(args, peak, clock, checks, start + args.budget_s, log)
    return {"command": command, "preset": args.preset, "dtype": DTYPE, "seconds": args.seconds,
            "check_seconds": args.check_seconds, "budget_s": args.budget_s, "dry_run": args.dry_run,
            "environment": env, "xla_flags_in_effect": xla_flags_in_effect(),
            "peak": {"tflops_per_device": peak.tflops_per_device, "source": peak.source},
            "checks": checks, "records": families, "elapsed_s": time.monotonic() - start}


# --- writing ------------------------------------------------------------------------------------

def format_value(check: Check, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}% {check.unit}" if check.metric == "mfu" else f"{value:.3g} {check.unit}"


def format_target(check: Check) -> str:
    return f">= {100 * check.target:g}% {check.unit}" if check.metric == "mfu" else f">= {check.target:.3g} {check.unit}"


def _how(check: Check, r: dict) -> str:
    """How the value was reached, from the record's own numbers."""
    if check.metric == "mfu":
        return f"{r['tflops']:.4g} TFLOP/s of {r['peak_tflops']:.4g}" if r.get("tflops") and r.get("peak_tflops") else ""
    if check.metric == "env_steps_per_s" and r.get("env_steps_per_step"):
        c = r["config"]
        return f"{c['num_seeds']} seeds x {c['batch_size']} envs x {c['num_steps']} steps x {r['steps_per_s']:.3g} steps/s"
    return ""


def _verdict(met: bool | None, doc: dict) -> str:
    if met is None:
        return "not judged (dry run, tiny shapes)" if doc["dry_run"] else "no value"
    return "yes" if met else "**no**"


def checks_table(doc: dict) -> list[str]:
    lines = ["| check | shape | batch | dtype | step ms | result | how | target | met |", "|" + "---|" * 9]
    for r in doc["checks"]:
        check = next(c for c in CHECKS if c.name == r["check"])
        if r["status"] != "ok":
            lines.append(f"| {check.name} | {check.what} | - | {r['dtype']} | - | {r['status']}: {r['reason']} | | "
                         f"{format_target(check)} | - |")
            continue
        shape = ", ".join(f"{k} {v}" for k, v in r["shape"].items() if k != "batch_size")
        lines.append(f"| {check.name} | {shape} | {r['batch_size']} | {r['dtype']} | {r['step_ms_median']:.2f} | "
                     f"{format_value(check, r['value'])} | {_how(check, r)} | {format_target(check)} | "
                     f"{_verdict(r['met'], doc)} |")
    return lines


def markdown(doc: dict) -> str:
    """The checks beside their targets, then the family sweep as `python -m benchmarks` writes it."""
    from aigc_jax.benchmarks import report

    lines = ["# aigc-jax GPU check", ""]
    if doc["dry_run"]:
        lines += ["Dry run: the tiny presets and tiny stand-ins for the checks; the targets are for the GPU run "
                  "and are not judged here.", ""]
    gpt2 = next((r for r in doc["checks"] if r["check"] == "gpt2_small" and r["status"] == "ok"), None)
    lines += ["## Checks", "", *checks_table(doc), ""]
    if gpt2:
        lines.append(VOCAB_NOTE.format(vocab=gpt2["config"]["vocab_size"]))
    lines += [f"MFU = analytic FLOPs per step (`task.flops_per_step()`) x steps/s over the peak "
              f"({doc['peak']['source']}). Env steps/s = seeds x envs x rollout steps x steps/s.",
              f"Whole run: {doc['elapsed_s']:.0f} s (families not started after --budget-s "
              f"{doc['budget_s']:g} s are skipped).", ""]
    # The sweep's own report, one heading level down.
    sweep = report.markdown(doc).splitlines()
    lines += ["#" + line if line.startswith("#") else line for line in sweep]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from aigc_jax.errors import UserError

    try:
        args = parse_args(argv)
        from aigc_jax.cli import quiet_libraries

        quiet_libraries()
        doc = run(args, "python -m benchmarks.gpu_check " + shlex.join(argv),
                  log=lambda *a: print(*a, flush=True))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from aigc_jax.benchmarks import report

    text = markdown(doc)
    for path in (args.json, args.markdown):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    report.write_json(doc, args.json)
    with open(args.markdown, "w") as f:
        f.write(text)
    print()
    print(text)
    print(f"wrote {args.json}, {args.markdown}")
    failed = [r for r in doc["checks"] + doc["records"] if r["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
