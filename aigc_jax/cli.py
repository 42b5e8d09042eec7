"""Command line: python -m train FAMILY [--workdir DIR] [--fresh] [--config.KEY=VALUE ...]

Every bad input ends in one line on stderr and exit code 2, before anything is trained or any
checkpoint is touched.
"""

import argparse
import logging
import os
import sys
import time
import warnings

USAGE = ("python -m train [--import MODULE] FAMILY [--workdir DIR] [--fresh] [--config.KEY=VALUE ...]\n"
         "       python -m train sample FAMILY [--workdir DIR] [--seed N] [--prompt TEXT] [--tokens N] "
         "[--config.KEY=VALUE ...]\n"
         "       python -m train --list")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        from aigc_jax.errors import UserError

        raise UserError(f"{message}; usage: python -m train FAMILY [--workdir DIR] [--fresh] [--config.KEY=VALUE ...]")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    """Split argv into the named options and the `--config.KEY=VALUE` overrides."""
    from aigc_jax.errors import UserError

    parser = _Parser(prog="python -m train", usage=USAGE, add_help=True,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog=family_help(argv) if any(a in ("-h", "--help") for a in argv) else None)
    parser.add_argument("family", nargs="?")
    parser.add_argument("sample_family", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help="default: runs/FAMILY")
    parser.add_argument("--fresh", action="store_true", help="delete the workdir's checkpoints and start over")
    parser.add_argument("--list", action="store_true", help="list the families and exit")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first: a module of yours that registers families (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--seed", type=int, default=0, help="sample: a different draw for each seed")
    text = parser.add_argument_group("language models (shorthands for --config.prompt, --config.sample_tokens, "
                                     "--config.temperature)")
    text.add_argument("--prompt", default=None, help="text the samples continue")
    text.add_argument("--tokens", default=None, help="new bytes per sample")
    text.add_argument("--temperature", default=None, help="sampling temperature; 0 = greedy")
    parser.add_argument("--compile_cache", default=None,
                        help="persistent compilation cache dir (default under ~/.cache; 'off' disables)")
    hosts = parser.add_argument_group("several hosts (see README: Running on many hosts)")
    hosts.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    hosts.add_argument("--num_processes", type=int, default=None)
    hosts.add_argument("--process_id", type=int, default=None)
    hosts.add_argument("--distributed", action="store_true",
                       help="let JAX detect the cluster (Cloud TPU, Slurm, MPI) and join it")
    args, rest = parser.parse_known_args(argv)
    if args.sample_family and args.family != "sample":
        raise UserError(f"unexpected argument {args.sample_family!r}; expected --config.KEY=VALUE")
    overrides = {}
    i = 0
    while i < len(rest):
        item = rest[i]
        if not item.startswith("--config."):
            raise UserError(f"unexpected argument {item!r}; expected --config.KEY=VALUE")
        key, eq, value = item[len("--config."):].partition("=")
        if not eq:
            if i + 1 >= len(rest):
                raise UserError(f"{item} has no value; expected --config.{key}=VALUE")
            value, i = rest[i + 1], i + 1
        overrides[key] = value
        i += 1
    for key, value in (("prompt", args.prompt), ("sample_tokens", args.tokens), ("temperature", args.temperature)):
        if value is not None:
            overrides[key] = value
    return args, overrides


def family_help(argv: list[str]) -> str | None:
    """For `python -m train [--import M] FAMILY --help`: the family's config keys (defaults, accepted
    values, help); None without a family."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("family", nargs="?")
    pre.add_argument("sample_family", nargs="?")
    pre.add_argument("--import", dest="imports", action="append", default=[])
    known, _ = pre.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    name = known.sample_family if known.family == "sample" else known.family
    if not name:
        return "python -m train FAMILY --help lists the family's config keys."
    from aigc_jax.tasks import config_help, registry

    registry.import_families(known.imports)
    return config_help.describe(registry.get(name), name)


def quiet_libraries() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    logging.getLogger("jax").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*donated buffers.*")


def start_runtime(args) -> None:
    """Join the process group (several hosts) and turn on the persistent compilation cache."""
    from aigc_jax.engine import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    distributed.enable_compilation_cache(args.compile_cache)


def check_batch_fits_devices(config) -> None:
    """The batch must split evenly over the devices of its parallel mode: said before a workdir is read."""
    from aigc_jax.engine.compile import check_fits

    check_fits(config.parallel, config.batch_size)


def check_parallel_for_processes(parallel: str) -> None:
    import jax

    from aigc_jax.errors import UserError

    if jax.process_count() > 1 and parallel not in ("sharded", "shard_map"):
        raise UserError(f"config.parallel={parallel!r} with {jax.process_count()} processes: "
                        "expected sharded or shard_map (their mesh spans every host)")


def list_families() -> str:
    from aigc_jax.tasks import registry

    names = registry.names()
    width = max(len(n) for n in names)
    return "\n".join(f"{name:<{width}}  {registry.get(name).summary}" for name in names)


def build_task(family: str, overrides: dict[str, str], trained: dict | None = None):
    """The family's task: default config, then a trained run's saved config, then CLI overrides."""
    from aigc_jax.tasks import registry

    return registry.build(family, overrides, trained=trained)


def _scalars(metrics: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())


def report(summary: dict, seconds: float) -> str:
    if summary["stopped_by"] and not summary.get("started", True):
        return (f"stopped by {summary['stopped_by']} before training started (step {summary['step']}); nothing "
                "was written; run the same command again to start")
    lines = []
    if summary.get("skipped_updates"):
        lines.append(f"skipped {len(summary['skipped_updates'])} non-finite updates (nan_policy=skip)")
    if summary["stopped_by"]:
        lines.append(f"stopped by {summary['stopped_by']} after step {summary['step']}; checkpoint saved in "
                     f"{summary['checkpoints']}; run the same command again to resume")
    lines += [
        f"{summary['family']}: step {summary['step']} in {seconds:.1f} s "
        f"({summary['steps_per_s']:.1f} steps/s after compile)",
    ]
    # Each group of metrics says the step it is from: after a stop, the last eval is older.
    if summary.get("train_metrics"):
        lines.append(f"train metrics (step {summary['train_step']}): {_scalars(summary['train_metrics'])}")
    if summary.get("eval_metrics"):
        lines.append(f"eval metrics (step {summary['eval_step']}):  {_scalars(summary['eval_metrics'])}")
    lines += [
        f"checkpoints:   {summary['checkpoints']} (steps {', '.join(map(str, summary['checkpoint_steps']))})",
        f"metrics:       {summary['metrics_file']}",
        f"tensorboard:   tensorboard --logdir {summary['tensorboard']}",
    ]
    if summary["samples"]:
        lines.append("samples:       " + "\n               ".join(summary["samples"]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from aigc_jax.engine.guard import NonFiniteError
    from aigc_jax.errors import UserError

    try:
        args, overrides = parse_args(argv)
        from aigc_jax.tasks import registry

        registry.import_families(args.imports)
        if args.list:
            print(list_families())
            return 0
        if args.family == "sample":
            return sample(args, overrides)
        if not args.family:
            raise UserError(f"no family given; expected one of: {', '.join(_family_names())}")
        given = build_task(args.family, overrides)  # every override checked before anything starts
        quiet_libraries()
        start_runtime(args)
        check_batch_fits_devices(given.config)
        from aigc_jax.engine.loop import saved_config, train_and_evaluate

        workdir = args.workdir or os.path.join("runs", args.family)
        # Resuming: the saved config, then the overrides given now (train_and_evaluate refuses any
        # that would change what the run trains on).
        trained = None if args.fresh else saved_config(workdir, args.family)
        task = build_task(args.family, overrides, trained=trained)
        check_parallel_for_processes(task.config.parallel)
        started = time.perf_counter()
        summary = train_and_evaluate(task, workdir, fresh=args.fresh, show_progress=not args.quiet)
        print(report(summary, time.perf_counter() - started))
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the engine's handler was installed: nothing started
        print("error: interrupted before training started; nothing was written", file=sys.stderr)
        return 130


def sample(args, overrides: dict[str, str]) -> int:
    """`python -m train sample FAMILY`: write samples from the newest checkpoint of a workdir."""
    from aigc_jax.errors import UserError

    family = args.sample_family
    if not family:
        raise UserError(f"no family given to sample; expected one of: {', '.join(_family_names())}")
    from aigc_jax.tasks import registry

    registry.get(family)
    quiet_libraries()
    from aigc_jax.engine.sampling import sample_from_workdir, trained_config

    workdir = args.workdir or os.path.join("runs", family)
    task = build_task(family, overrides, trained=trained_config(workdir, family))
    paths = sample_from_workdir(task, workdir, seed_offset=args.seed)
    print("samples:\n  " + "\n  ".join(os.path.abspath(p) for p in paths))
    return 0


def _family_names():
    from aigc_jax.tasks import registry

    return registry.names()


def console() -> int:
    """The `aigc-train` console script."""
    return main(sys.argv[1:])
