"""`python -m benchmarks.claims`: README's measured table is its output, every claim names real
runs and figures, and a figure off by more than its tolerance (or an ordering that flips) fails."""

import json
import subprocess
import sys

import pytest

from aigc_jax.tasks import registry
from aigc_jax.benchmarks import claims
from aigc_jax.benchmarks.claims_table import CLAIMS, RELATIONS, Claim, Figure, by_name


def test_readme_table_is_written_from_docs_claims_json():
    assert claims.readme_in_sync(), "README's measured table differs from docs/claims.json: run " \
                                    "python -m benchmarks.claims --accept"


def test_every_claim_runs_registered_families_and_names_its_figures():
    documented = {r["name"]: r for r in claims.load(claims.DOCUMENTED)["claims"]}
    for claim in CLAIMS:
        for _, args in claim.runs:
            assert args.split()[0] in registry.FAMILIES, (claim.name, args)
        for figure in claim.figures:
            assert (figure.run or claim.runs[0][0]) in claim.run_names(), (claim.name, figure)
            assert claims.figure_key(claim, figure) in documented[claim.name]["figures"], (claim.name, figure)
        assert not claim.baseline or claim.baseline in claims.BASELINES
    names = by_name()
    for relation in RELATIONS:
        for path in relation.figures:
            name, run, metric = path.split(".", 2)
            assert run in names[name].run_names() and metric in {f.metric for f in names[name].figures}, path


def test_a_figure_holds_only_within_its_tolerance():
    bpb = Figure("eval_bpb", 0.02)
    assert claims.check_figure(bpb, 1.91, 1.899) is None
    assert "documented 1.899" in claims.check_figure(bpb, 1.93, 1.899)
    fd = Figure("eval_fd", 0.3, relative=True)
    assert claims.check_figure(fd, 45.0, 36.6) is None and claims.check_figure(fd, 50.0, 36.6)
    solved = Figure("eval_return", 25.0, at_least=475.0)
    assert claims.check_figure(solved, 470.0, 480.0) and claims.check_figure(solved, 490.0, 480.0) is None
    assert claims.check_figure(bpb, float("nan"), 1.9) == "eval_bpb not measured"


def test_an_ordering_that_flips_fails():
    def record(name, run, value):
        return {name: {"figures": {f"{run}.eval_bpb": value}}}

    right = {**record("gpt", "gpt", 1.9), **record("lstm_lm", "lstm_lm", 1.97), **record("rnn_lm", "rnn_lm", 2.08),
             **record("ngram", "ngram", 2.57)}
    assert claims.check_relations(right) == []
    wrong = {**right, **record("gpt", "gpt", 2.6)}
    (failure,) = claims.check_relations(wrong)
    assert "gpt.gpt.eval_bpb < lstm_lm" in failure and "2.6" in failure


def test_a_claim_runs_end_to_end_and_beats_its_baseline(tmp_path):
    claim = Claim("ngram", (("ngram", "ngram --config.steps=4"),), (Figure("eval_bpb", 0.01),), baseline="unigram")
    record = claims.run_claim(claim, str(tmp_path), [], log=lambda *_: None)
    bpb, unigram = record["figures"]["ngram.eval_bpb"], record["baseline"]["value"]
    assert record["steps"] == {"ngram": 4} and 0 < bpb < unigram - 0.5 < 8, (bpb, unigram)
    assert record["commands"] == ["python -m train ngram --config.steps=4"]
    assert record["environment"]["date"] and record["environment"]["backend"] == "cpu"
    json.dumps(record)  # what results.json stores


def test_accept_keeps_the_environment_each_claim_was_measured_in(tmp_path, monkeypatch):
    def record(name, date):
        return {"name": name, "figures": {f"{name}.eval_bpb": 2.0}, "environment": {"date": date}}

    documented, out = tmp_path / "claims.json", tmp_path / "out"
    claims.save({"claims": [record("ngram", "2026-01-01"), record("gpt", "2026-01-02")]}, str(documented))
    claims.save({"claims": [record("gpt", "2026-12-04")]}, str(out / "results.json"))
    monkeypatch.setattr(claims, "DOCUMENTED", str(documented))
    monkeypatch.setattr(claims, "write_readme", lambda doc: None)
    assert claims.main(["--accept", "--out", str(out)]) == 0
    doc = claims.load(str(documented))
    assert {r["name"]: r["environment"]["date"] for r in doc["claims"]} == {"ngram": "2026-01-01", "gpt": "2026-12-04"}
    assert "environment" not in doc  # no one machine for rows measured at different times


def test_bad_claim_name_is_one_line_and_exit_2():
    done = subprocess.run([sys.executable, "-m", "benchmarks.claims", "--only", "gpt,nope"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "'nope' is not a claim" in done.stderr


@pytest.mark.parametrize("value,digits,text", [(1.8987, 4, "1.899"), (0.0029, 2, "0.0029"), (165.5, 4, "165.5"),
                                               (-284.93, 4, "-284.9")])
def test_figures_print_with_their_digits(value, digits, text):
    assert claims._fmt(value, digits) == text
