"""`python -m benchmarks.claims`: rerun every figure of README's measured table and check it.

Each claim (benchmarks/claims_table.py) is one or more `python -m train FAMILY` runs with the
family's defaults, as README documents them, each in a fresh workdir under `--out`. The figures
are read from each run's metrics.jsonl (its last evaluation), compared with the documented values
(docs/claims.json, the results README's table was written from) within each figure's stated
tolerance, and the claim's trivial baseline is measured beside the headline figure. The orderings
README states (gpt < lstm_lm < rnn_lm < ngram in held-out bits per byte, ...) are checked too.

    python -m benchmarks.claims                   # every claim, about 25 minutes on a quiet 2-core CPU
    python -m benchmarks.claims --only gpt,ngram  # some (results merge into --out/results.json)
    python -m benchmarks.claims --accept          # docs/claims.json := the results; README's table from it
    python -m benchmarks.claims --list

Writes `--out`/results.json and `--out`/claims.md (measured against documented, pass or fail);
exits 1 if a figure is off by more than its tolerance or an ordering fails. Claims whose results
are already in `--out`/results.json are not rerun (so an interrupted run continues) unless `--rerun`.
"""

import argparse
import json
import math
import re
import os
import resource
import shlex
import subprocess
import sys
import time

from aigc_jax.benchmarks.claims_table import CLAIMS, RELATIONS, Claim, Figure, by_name
from aigc_jax.benchmarks.cli import Parser, csv_list

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
DOCUMENTED = os.path.join(ROOT, "docs", "claims.json")
README = os.path.join(ROOT, "README.md")
BEGIN = "<!-- claims table: written by `python -m benchmarks.claims --accept` from docs/claims.json -->"
END = "<!-- end of claims table -->"


# ---- running ----------------------------------------------------------------------------------

def train_argv(claim: Claim, args: str, workdirs: dict[str, str]) -> list[str]:
    return [sys.executable, "-m", "train", *shlex.split(args.format(**workdirs))]


def last_eval_row(metrics_file: str) -> dict:
    rows = [json.loads(line) for line in open(metrics_file) if line.strip()]
    evals = [r for r in rows if any(k.startswith("eval_") for k in r)]
    if not evals:
        raise RuntimeError(f"{metrics_file} has no evaluation row")
    return evals[-1]


def run_claim(claim: Claim, out: str, extra: list[str], log=print) -> dict:
    """Run the claim's commands in order; its figures, baseline, wall time and the machine it ran on."""
    workdirs = {name: os.path.join(out, claim.name, name) for name in claim.run_names()}
    env = environment()  # before the runs: its load average is the other work on the machine
    figures, seconds, steps = {}, {}, {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for name, args in claim.runs:
        argv = train_argv(claim, args, workdirs) + ["--workdir", workdirs[name], "--fresh", "--quiet", *extra]
        log(f"[{claim.name}] {' '.join(shlex.quote(a) for a in argv[1:])}")
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        seconds[name] = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{claim.name}: `{args}` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        row = last_eval_row(os.path.join(workdirs[name], "metrics.jsonl"))
        steps[name] = row["step"]
        figures.update({f"{name}.{k}": v for k, v in row.items() if k.startswith("eval_")})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    record = {"name": claim.name, "commands": [f"python -m train {args}" for _, args in claim.runs],
              "figures": figures, "steps": steps, "seconds": seconds, "cpu_s": cpu, "environment": env}
    if claim.baseline:
        record["baseline"] = {"kind": claim.baseline, "value": BASELINES[claim.baseline](claim)}
    return record


# ---- trivial baselines (aigc_jax.eval.baselines), measured in this process ---------------------

def _default_task(family: str):
    from aigc_jax.tasks.registry import build

    return build(family)


def _at_init(claim: Claim) -> float:
    """The run's own evaluation of its initial state: same seed, same network, no step taken."""
    from aigc_jax.engine.run import Run

    return Run(_default_task(claim.name)).evaluate()[headline(claim).metric]


def _text_streams(claim: Claim):
    from aigc_jax.data import text
    from aigc_jax.data.dirs import tfds_data_dir

    config = _default_task(claim.name).config
    return text.split_streams(config.dataset, tfds_data_dir(config.data_dir))


def _unigram(claim: Claim) -> float:
    from aigc_jax.eval.baselines import unigram_bits

    streams = _text_streams(claim)
    return unigram_bits(streams["train"], streams["test"])


def _most_frequent_byte(claim: Claim) -> float:
    from aigc_jax.eval.baselines import most_frequent_accuracy

    streams = _text_streams(claim)
    return most_frequent_accuracy(streams["train"], streams["test"])


def _majority_class(claim: Claim) -> float:
    from aigc_jax.eval.baselines import most_frequent_accuracy

    data = _default_task(claim.name).load_data()
    return most_frequent_accuracy(data.train["label"], data.test["label"])


BASELINES = {"init": _at_init, "unigram": _unigram, "most_frequent_byte": _most_frequent_byte,
             "majority_class": _majority_class}
BASELINE_LABELS = {"init": "same network at its initial weights", "unigram": "train byte frequencies",
                   "most_frequent_byte": "always the most frequent byte", "majority_class": "always the majority class"}


# ---- checking ---------------------------------------------------------------------------------

def headline(claim: Claim) -> Figure:
    return claim.figures[0]


def figure_key(claim: Claim, figure: Figure) -> str:
    return f"{figure.run or claim.runs[0][0]}.{figure.metric}"


def check_figure(figure: Figure, measured: float | None, documented: float | None) -> str | None:
    """None if the figure holds, else why not (one line)."""
    if measured is None or not math.isfinite(measured):
        return f"{figure.metric} not measured"
    if figure.at_least is not None and measured < figure.at_least:
        return f"{figure.metric} {measured:.4g} < {figure.at_least:g}"
    if documented is None:
        return None  # a new figure: nothing documented to agree with yet
    allowed = figure.tolerance * abs(documented) if figure.relative else figure.tolerance
    if abs(measured - documented) > allowed:
        return f"{figure.metric} {measured:.4g}, documented {documented:.4g} +- {allowed:.3g}"
    return None


def check_relations(records: dict[str, dict]) -> list[str]:
    failures = []
    for relation in RELATIONS:
        values = []
        for path in relation.figures:
            claim, run, metric = path.split(".", 2)
            values.append(records.get(claim, {}).get("figures", {}).get(f"{run}.{metric}"))
        if None in values:
            continue  # not all measured in this run
        if any(a >= b for a, b in zip(values, values[1:])):
            failures.append(f"{relation.why}: expected {' < '.join(relation.figures)}, measured "
                            f"{' , '.join(f'{v:.4g}' for v in values)}")
    return failures


def check_all(records: dict[str, dict], documented: dict[str, dict]) -> list[str]:
    failures = []
    for claim in CLAIMS:
        if claim.name not in records:
            continue
        for figure in claim.figures:
            key = figure_key(claim, figure)
            why = check_figure(figure, records[claim.name]["figures"].get(key),
                               documented.get(claim.name, {}).get("figures", {}).get(key))
            if why:
                failures.append(f"{claim.name}: {why}")
    return failures + check_relations(records)


# ---- tables -----------------------------------------------------------------------------------

def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"  # significant digits


def _tolerance(figure: Figure) -> str:
    band = f"{figure.tolerance:.0%}" if figure.relative else f"{figure.tolerance:g}"
    return band + (f", at least {figure.at_least:g}" if figure.at_least is not None else "")


def _figure_text(claim: Claim, figure: Figure, value: float | None, bold: bool) -> str:
    shown = _fmt(value, figure.digits)
    run = f"{figure.run} " if figure.run and figure.run != claim.runs[0][0] else ""
    return f"{run}`{figure.metric}` {f'**{shown}**' if bold else shown} (±{_tolerance(figure)})"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def readme_table(documented: dict) -> str:
    """README's measured table, one row per claim, from docs/claims.json."""
    lines = ["| command | result (tolerance of a rerun) | trivial baseline | wall time |", "|---|---|---|---|"]
    records = {r["name"]: r for r in documented["claims"]}
    for claim in CLAIMS:
        record = records.get(claim.name)
        if record is None:
            continue
        # A run named in another's command is the workdir `python -m train NAME` writes by default.
        commands = "; then ".join("`" + re.sub(r"{(\w+)}", r"runs/\1", c) + "`" for c in record["commands"])
        result = ", ".join(_figure_text(claim, f, record["figures"].get(figure_key(claim, f)), i == 0)
                           for i, f in enumerate(claim.figures))
        if claim.note:
            result += f"; {claim.note}"
        baseline = record.get("baseline")
        base = f"{_fmt(baseline['value'], headline(claim).digits)} ({BASELINE_LABELS[baseline['kind']]})" if baseline else "-"
        lines.append(f"| {commands} | {result} | {base} | {_minutes(sum(record['seconds'].values()))} |")
    return "\n".join(lines)


def check_table(records: dict[str, dict], documented: dict[str, dict], failures: list[str]) -> str:
    lines = ["| claim | figure | documented | measured | tolerance | |", "|---|---|---|---|---|---|"]
    for claim in CLAIMS:
        if claim.name not in records:
            continue
        for figure in claim.figures:
            key = figure_key(claim, figure)
            measured = records[claim.name]["figures"].get(key)
            known = documented.get(claim.name, {}).get("figures", {}).get(key)
            ok = check_figure(figure, measured, known) is None
            lines.append(f"| {claim.name} | {key} | {_fmt(known, 4)} | {_fmt(measured, 4)} | {_tolerance(figure)} | "
                         f"{'ok' if ok else '**off**'} |")
    lines += ["", *(f"- {f}" for f in failures)] if failures else ["", "Every figure within tolerance."]
    return "\n".join(lines)


def write_readme(documented: dict, path: str = README) -> None:
    text = open(path).read()
    if BEGIN not in text or END not in text:
        from aigc_jax.errors import UserError

        raise UserError(f"{path} has no claims table markers; expected {BEGIN!r} ... {END!r}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{BEGIN}\n{readme_table(documented)}\n{END}{tail}")


def readme_in_sync(path: str = README, claims_file: str = DOCUMENTED) -> bool:
    text = open(path).read()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip() if BEGIN in text else ""
    return table == readme_table(load(claims_file)).strip()


# ---- files ------------------------------------------------------------------------------------

def load(path: str) -> dict:
    if not os.path.exists(path):
        return {"claims": []}
    with open(path) as f:
        return json.load(f)


def save(doc: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def environment() -> dict:
    from aigc_jax.benchmarks.environment import jax_environment

    env = jax_environment()
    env["date"] = time.strftime("%Y-%m-%d")
    return env


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="python -m benchmarks.claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=csv_list, default=None, help="comma-separated claim names (default: all)")
    parser.add_argument("--out", default=os.path.join("runs", "claims"))
    parser.add_argument("--rerun", action="store_true", help="rerun claims already in --out/results.json")
    parser.add_argument("--accept", action="store_true",
                        help="no runs: copy --out/results.json into docs/claims.json and rewrite README's table")
    parser.add_argument("--list", action="store_true", help="list the claims and their commands")
    parser.add_argument("--extra", default="", help="more `python -m train` arguments for every run "
                                                    "(e.g. --extra=--config.steps=2 to check the commands quickly)")
    args = parser.parse_args(argv)
    names = by_name()
    for name in args.only or []:
        if name not in names:
            parser.error(f"--only {name!r} is not a claim; expected some of {', '.join(names)}")
    return args


def main(argv: list[str]) -> int:
    from aigc_jax.errors import UserError

    try:
        return _main(parse_args(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args) -> int:
    results_file = os.path.join(args.out, "results.json")
    if args.list:
        for claim in CLAIMS:
            print(f"{claim.name:<14} " + "; ".join(f"python -m train {a}" for _, a in claim.runs))
        return 0
    if args.accept:
        results = load(results_file)
        if not results["claims"]:
            from aigc_jax.errors import UserError

            raise UserError(f"{results_file} holds no results; expected a python -m benchmarks.claims run first")
        documented = load(DOCUMENTED)
        merged = {r["name"]: r for r in documented["claims"]} | {r["name"]: r for r in results["claims"]}
        # Each claim keeps the environment it was measured in: rows accepted at different times
        # come from different machines.
        save({"claims": [merged[c.name] for c in CLAIMS if c.name in merged]}, DOCUMENTED)
        write_readme(load(DOCUMENTED))
        print(f"wrote {DOCUMENTED} and README's table")
        return 0
    results = load(results_file)
    records = {r["name"]: r for r in results["claims"]}
    for claim in CLAIMS:
        if args.only and claim.name not in args.only or (claim.name in records and not args.rerun):
            continue
        records[claim.name] = run_claim(claim, args.out, shlex.split(args.extra))
        results["claims"] = [records[c.name] for c in CLAIMS if c.name in records]
        save(results, results_file)  # after every claim: an interrupted run keeps what it measured
    documented = {r["name"]: r for r in load(DOCUMENTED)["claims"]}
    failures = check_all(records, documented)
    table = check_table(records, documented, failures)
    with open(os.path.join(args.out, "claims.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
