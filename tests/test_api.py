"""The public Python API: README's example block and docs/your_family.md's family run as written,
from a directory outside the repository; a user family trains, resumes, samples and benchmarks
through the command line with --import; Run.save/load resumes exactly."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

import aigc_jax
from aigc_jax.errors import UserError
from aigc_jax.eval.baselines import most_frequent_accuracy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_block(doc: str, after: str, lang: str = "python") -> str:
    """The first ```lang block after the heading or text `after` in a file of the repository."""
    text = open(os.path.join(ROOT, doc)).read()
    return re.search(rf"```{lang}\n(.*?)```", text[text.index(after):], re.S).group(1)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    """A directory outside the repository holding docs/your_family.md's my_family.py."""
    directory = tmp_path_factory.mktemp("user")
    (directory / "my_family.py").write_text(code_block("docs/your_family.md", "Save this as"))
    return directory


def run_in(directory, *argv, timeout=600):
    """`argv` in `directory` with the installed package only (nothing of the checkout on the path);
    a first word aigc-train or aigc-bench is the console script installed beside this Python."""
    env = {**os.environ, "PYTHONPATH": ""}
    command = list(argv)
    if command[0] in ("aigc-train", "aigc-bench"):
        command[0] = os.path.join(os.path.dirname(sys.executable), command[0])
    else:
        command.insert(0, sys.executable)
    return subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_readme_api_block_and_a_user_family_run_as_written(user_dir):
    labels = aigc_jax.build("cnn").load_data()
    majority = most_frequent_accuracy(labels.train["label"], labels.test["label"])
    script = code_block("README.md", "## Python API") + """
import my_family  # docs/your_family.md, registered on import
assert "softmax_regression" in aigc_jax.families() and "vae" in aigc_jax.families()
user = aigc_jax.Run(aigc_jax.build("softmax_regression"))
user.train(300)
import json
print("RESULT", json.dumps({"vae_steps": run.steps_done, "summary_step": summary["step"],
                            "vae_eval": summary["eval_metrics"], "user": user.evaluate(),
                            "samples": sorted(samples)}))
"""
    (user_dir / "api_block.py").write_text(script)
    done = run_in(user_dir, "api_block.py")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["vae_steps"] == 101 and result["summary_step"] == 200 and result["samples"]
    assert np.isfinite(result["vae_eval"]["eval_elbo"])
    assert result["user"]["eval_accuracy"] > majority + 0.6, (result["user"], majority)
    assert (user_dir / "runs" / "api_vae" / "config.json").exists()


def test_user_family_trains_resumes_samples_and_benchmarks_through_the_cli(user_dir):
    workdir = "runs/softmax_cli"
    common = ["--import", "my_family"]
    first = run_in(user_dir, "aigc-train", *common, "softmax_regression", "--workdir", workdir, "--quiet",
                   "--config.steps=60", "--config.eval_every=0")
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_in(user_dir, "aigc-train", *common, "softmax_regression", "--workdir", workdir, "--quiet",
                   "--config.steps=90", "--config.eval_every=0")
    assert again.returncode == 0 and "resumed from step 60" in again.stdout, again.stderr[-3000:]
    sample = run_in(user_dir, "aigc-train", *common, "sample", "softmax_regression", "--workdir", workdir)
    assert sample.returncode == 0 and "templates_000090_seed0.png" in sample.stdout, sample.stderr[-3000:]
    bench = run_in(user_dir, "aigc-bench", *common, "--families", "softmax_regression", "--preset", "tiny",
                   "--modes", "jit", "--seconds", "0.2", "--json", "b.json", "--markdown", "b.md", "--plot", "b.png")
    assert bench.returncode == 0, bench.stderr[-3000:]
    (record,) = json.loads((user_dir / "b.json").read_text())["records"]
    assert record["family"] == "softmax_regression" and record["status"] == "ok" and record["steps_per_s"] > 0
    missing = run_in(user_dir, "aigc-train", "--import", "not_a_module", "softmax_regression")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "not_a_module" in missing.stderr


def test_save_and_load_continue_exactly(tmp_path):
    task = aigc_jax.build("mlp", hidden=(16,), batch_size=16, steps=20, parallel="jit")
    run = aigc_jax.Run(task)
    run.train(5)
    run.save(str(tmp_path / "w"))
    on = [run.step() for _ in range(3)]
    loaded = aigc_jax.load(str(tmp_path / "w"))
    assert loaded.steps_done == 5 and loaded.config.hidden == (16,)
    assert [loaded.step() for _ in range(3)] == on
    for a, b in zip(jax.tree.leaves(run.canonical_state()), jax.tree.leaves(loaded.canonical_state())):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_run_equals_the_cli_loop(tmp_path):
    """Run(task).train(n) is what `python -m train` computes for its first n steps."""
    from conftest import train_family

    overrides = {"hidden": "16", "batch_size": "16", "parallel": "jit"}
    _, rows = train_family("mlp", tmp_path, steps=6, log_every=6, eval_every=0, ckpt_every=0, sample_every=0,
                           **overrides)
    run = aigc_jax.Run(aigc_jax.build("mlp", overrides))
    (logged,) = [r for r in rows if "loss" in r]
    assert logged["step"] == 6 and run.train(6)["loss"] == pytest.approx(logged["loss"], rel=1e-6)


def test_bad_values_and_registrations_are_one_line_errors():
    with pytest.raises(UserError, match="unknown config key 'latnt'"):
        aigc_jax.build("vae", latnt=8)
    with pytest.raises(UserError, match=r"config.batch_size=0: expected"):
        aigc_jax.build("vae", batch_size=0)
    with pytest.raises(UserError, match="expected a subclass of aigc_jax.Task"):
        aigc_jax.register(dict)
    cnn = type(aigc_jax.build("cnn"))
    with pytest.raises(UserError, match="family 'cnn' is already"):
        aigc_jax.register(type("AnotherCNN", (cnn,), {"name": "cnn"}))
    assert aigc_jax.register(cnn) is cnn  # the same class again: nothing changes


def test_the_wheel_holds_only_the_library():
    """pyproject's package list: aigc_jax and its subpackages; the checkout's train/ and benchmarks/
    shims stay out of site-packages (installed, the commands are aigc-train and aigc-bench)."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads(open(os.path.join(ROOT, "pyproject.toml")).read())
    packages = find_packages(ROOT, include=config["tool"]["setuptools"]["packages"]["find"]["include"])
    assert "aigc_jax" in packages and "aigc_jax.benchmarks" in packages
    assert all(p == "aigc_jax" or p.startswith("aigc_jax.") for p in packages), packages
    assert set(config["project"]["scripts"]) == {"aigc-train", "aigc-bench"}


def test_bind_hands_constants_to_the_documented_family_and_names_a_constructor_that_cannot_take_them(user_dir, monkeypatch):
    import importlib.util

    import numpy as np

    from aigc_jax.data.splits import Splits
    from aigc_jax.errors import UserError

    monkeypatch.setattr(aigc_jax, "register", lambda cls: cls)  # this process's registry stays as it was
    spec = importlib.util.spec_from_file_location("my_family_bind", user_dir / "my_family.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    family = next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, aigc_jax.Task)
                  and v is not aigc_jax.Task)
    data = Splits(train={"x": np.zeros(2)}, test={"x": np.zeros(2)}).with_constants(image_channels=3)
    bound = family(family.default_config()).bind(data)  # as for a colour set
    assert bound.image_channels == 3 and bound.model is not None

    class OnlyConfig(family):
        def __init__(self, config):
            super().__init__(config)

    with pytest.raises(UserError, match=r"OnlyConfig.__init__ must take \(config, constants=None\).*image_channels"):
        OnlyConfig(family.default_config()).bind(data)
    assert OnlyConfig(family.default_config()).bind(Splits(train={}, test={})) is not None  # no constants: itself
