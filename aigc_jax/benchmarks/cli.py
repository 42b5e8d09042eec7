"""Command line: python -m benchmarks [--preset tiny|cpu|gpu] [--families A,B] [--modes jit,sharded,...]
[--torch] [--torch-threads N] [--clock wall|process] [--seconds S] [--dtype float32|bfloat16] [--profile DIR]
[--json PATH] [--markdown PATH] [--plot PATH]

Bad input ends in one line on stderr and exit code 2. A measurement that fails is reported in the
outputs and makes the exit code 1; families or frameworks that cannot run here are skipped with
the reason, which is not a failure.
"""

import argparse
import os
import shlex
import sys

DEFAULT_OUT = os.path.join("runs", "benchmarks")


class Parser(argparse.ArgumentParser):
    """argparse, with bad arguments raised as a one-line UserError (exit 2 in `main`)."""

    def error(self, message):
        from aigc_jax.errors import UserError

        raise UserError(f"{message}; see {self.prog} --help")


def csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def check_families(families: list[str] | None) -> None:
    """`--families`: every name registered (UserError naming the known ones), and not empty."""
    from aigc_jax.errors import UserError
    from aigc_jax.tasks import registry

    for family in families or []:
        registry.get(family)  # raises UserError naming the known families
    if families == []:
        raise UserError("--families is empty; expected at least one of " + ", ".join(registry.names()))


def parse_args(argv: list[str]) -> argparse.Namespace:
    from aigc_jax.engine.config import DTYPES, PARALLEL_MODES
    from aigc_jax.benchmarks.presets import PRESETS

    p = Parser(prog="python -m benchmarks", description="Time every family's compiled train step.")
    p.add_argument("--preset", choices=PRESETS, help="default: gpu when an accelerator is present, else cpu")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: a module of yours that registers families (repeatable)")
    p.add_argument("--families", type=csv_list, help="comma-separated (default: every registered family)")
    p.add_argument("--modes", type=csv_list, default=["sharded"], help=f"comma-separated from {', '.join(PARALLEL_MODES)}")
    p.add_argument("--torch", action="store_true", help="add PyTorch eager and torch.compile rows (needs the torch extra)")
    p.add_argument("--torch-threads", type=int, help="torch.set_num_threads for the twins (default: torch's own)")
    p.add_argument("--clock", choices=("wall", "process"), default="wall",
                   help="time steps by wall clock, or by the process's CPU time (for pinned single-thread runs)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (default 2)")
    p.add_argument("--dtype", choices=DTYPES, help="compute dtype (default: the preset's; gpu is bfloat16)")
    p.add_argument("--profile", metavar="DIR",
                   help="write a jax.profiler trace of each JAX measurement's timed steps to DIR/FAMILY/MODE "
                        "(off by default: tracing slows the steps it times)")
    p.add_argument("--json", default=os.path.join(DEFAULT_OUT, "results.json"))
    p.add_argument("--markdown", default=os.path.join(DEFAULT_OUT, "results.md"))
    p.add_argument("--plot", default=os.path.join(DEFAULT_OUT, "results.png"))
    args = p.parse_args(argv)
    check_args(args)
    return args


def check_args(args) -> None:
    from aigc_jax.engine.config import PARALLEL_MODES
    from aigc_jax.errors import UserError
    from aigc_jax.tasks import registry

    registry.import_families(args.imports)
    for mode in args.modes:
        if mode not in PARALLEL_MODES:
            raise UserError(f"--modes {mode!r}: expected a comma-separated list of {', '.join(PARALLEL_MODES)}")
    if not args.modes:
        raise UserError("--modes is empty; expected at least one of " + ", ".join(PARALLEL_MODES))
    check_families(args.families)
    if args.torch_threads is not None and args.torch_threads < 1:
        raise UserError(f"--torch-threads {args.torch_threads}: expected an integer >= 1")
    if not args.seconds > 0:
        raise UserError(f"--seconds {args.seconds}: expected a number > 0")


def run(args, command: str, log=print) -> dict:
    """Every measurement the arguments ask for, as the JSON document the writers take."""
    import jax

    from aigc_jax.tasks import registry
    from aigc_jax.benchmarks import jax_runner, timing, torch_twins
    from aigc_jax.benchmarks.environment import jax_environment
    from aigc_jax.benchmarks.peaks import Peak, device_peak
    from aigc_jax.benchmarks.presets import default_preset
    from aigc_jax.benchmarks.records import new_record, rescaled_peak, skipped

    preset = args.preset or default_preset()
    # A fresh persistent compilation cache: the first compile of each step is cold, the second warm.
    from aigc_jax.engine.distributed import enable_fresh_compilation_cache

    enable_fresh_compilation_cache("aigc_jax_bench_cache_")
    clock = timing.CLOCKS[args.clock]
    env = {**jax_environment(), "clock": args.clock}
    torch_why = torch_twins.torch_missing() if args.torch else None
    if args.torch and torch_why is None:
        from aigc_jax.benchmarks.torch_twins.runner import torch_environment

        env.update(torch_environment(args.torch_threads))
    peak_matmul = 512 if preset == "tiny" else 2048
    peak = device_peak(jax.devices()[0], matmul_size=peak_matmul, clock=clock)
    log(f"preset {preset}, {env['device_count']} x {env['device_kind']} ({env['backend']}); "
        f"peak {peak.tflops_per_device:.3g} TFLOP/s per device ({peak.source})")

    out = []
    for name in args.families or registry.names():
        cls = registry.get(name)
        twins = _prepared_twins(args, cls, preset, peak, torch_why, log) if args.torch else []
        # Twins are timed side by side with the family's first mode (alternating rounds, so that the
        # ratio is not the machine's drift).
        out += jax_runner.benchmark_family(cls, preset, args.modes, args.dtype, args.seconds, peak,
                                           log=log, clock=clock, profile_root=args.profile,
                                           beside=[t for t in twins if not isinstance(t, dict)])
        out += [t for t in twins if isinstance(t, dict)]
    # Twins whose JAX family is not registered (yet) are not compared: say so.
    if args.torch and not args.families:
        for name in torch_twins.TWINS:
            if name not in registry.FAMILIES:
                for fw in ("torch-eager", "torch-compile"):
                    out.append(skipped(new_record(name, "single", fw, preset, dtype=args.dtype),
                                       f"JAX family {name!r} is not registered, so its twin has nothing to compare with"))
    if peak.source.startswith("measured"):
        # The measured peak is the best of two measurements, before and after the families: a host
        # busy during the first would understate it and overstate every MFU.
        again = device_peak(jax.devices()[0], matmul_size=peak_matmul, clock=clock)
        if again.tflops_per_device > peak.tflops_per_device:
            source = f"{again.source}, after the families (before them: {peak.tflops_per_device:.3g})"
            out = [rescaled_peak(r, again.tflops_per_device / peak.tflops_per_device, source) for r in out]
            peak = Peak(again.tflops_per_device, source)
            log(f"peak measured again after the families: {peak.tflops_per_device:.3g} TFLOP/s per device (MFU against it)")
    return {"command": command, "preset": preset, "dtype": args.dtype, "seconds": args.seconds,
            "profile": args.profile, "environment": env, "peak": {"tflops_per_device": peak.tflops_per_device, "source": peak.source},
            "records": out}


def _prepared_twins(args, cls, preset: str, peak, torch_why: str | None, log) -> list:
    """`cls`'s PyTorch twins ready to be timed (`timing.Timed`), or records saying why they cannot run."""
    from aigc_jax.benchmarks import torch_twins
    from aigc_jax.benchmarks.presets import preset_config
    from aigc_jax.benchmarks.records import new_record, skipped

    def skip_torch(reason):
        log(f"  {cls.name:<14} {'single':<10} torch: skipped ({reason})")
        return [skipped(new_record(cls.name, "single", fw, preset, dtype=args.dtype), reason)
                for fw in ("torch-eager", "torch-compile")]

    if cls.name not in torch_twins.TWINS:
        return skip_torch(f"no PyTorch twin for {cls.name!r} (twins: {', '.join(torch_twins.TWINS)})")
    if torch_why:
        return skip_torch(torch_why)
    config, why = preset_config(cls, preset, args.modes[0], args.dtype)
    if config is None:
        return skip_torch(why)
    from aigc_jax.benchmarks.torch_twins.runner import prepare_twins

    task = cls(config)
    return prepare_twins(cls.name, config.to_dict(), preset, task.flops_per_step(), task.tokens_per_step(), peak, log=log)


def main(argv: list[str]) -> int:
    from aigc_jax.errors import UserError

    try:
        args = parse_args(argv)
        from aigc_jax.cli import quiet_libraries

        quiet_libraries()
        doc = run(args, "python -m benchmarks " + shlex.join(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from aigc_jax.benchmarks import plot, report

    for path, write in ((args.json, report.write_json), (args.markdown, report.write_markdown),
                        (args.plot, plot.write_plot)):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write(doc, path)
    print()
    print(report.markdown(doc))
    print(f"wrote {args.json}, {args.markdown}, {args.plot}")
    if args.profile:
        print(f"traces in {args.profile}/FAMILY/MODE (tensorboard --logdir {args.profile}, or open a *.trace.json.gz "
              f"in ui.perfetto.dev); top XLA ops: python -m benchmarks.report --trace {args.profile}")
    errors = [r for r in doc["records"] if r["status"] == "error"]
    return 1 if errors else 0


def console() -> int:
    """The `aigc-bench` console script."""
    return main(sys.argv[1:])
