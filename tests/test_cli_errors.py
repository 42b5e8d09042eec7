"""Every bad input: exit code 2, one line on stderr naming the value, no traceback, no checkpoint touched."""

import os
import subprocess
import sys

import pytest

from aigc_jax.cli import main


@pytest.fixture
def trained(trained_workdir):
    return trained_workdir


def snapshot(workdir):
    return sorted((p, os.path.getmtime(os.path.join(r, p))) for r, _, files in os.walk(workdir / "checkpoints")
                  for p in files)


BAD = [
    (["gpt2000"], "unknown family 'gpt2000'"),
    (["mlp", "--config.stepz=3"], "unknown config key 'stepz'"),
    (["mlp", "--config.steps=many"], "--config.steps='many': expected an integer"),
    (["mlp", "--config.steps=-1"], "config.steps=-1: expected a value >= 1"),
    (["mlp", "--config.learning_rate=0"], "config.learning_rate=0.0: expected a number > 0"),
    (["mlp", "--config.parallel=magic"], "config.parallel='magic'"),
    (["mlp", "--config.hidden=64,0"], "config.hidden=(64, 0): expected positive sizes"),
    (["mlp", "stray"], "unexpected argument 'stray'"),
    (["sample", "vae"], "no checkpoint in"),
]


@pytest.mark.parametrize("argv, words", BAD)
def test_bad_input_is_one_line_and_exit_2(trained, capsys, argv, words):
    before = snapshot(trained)
    workdir = str(trained) if argv[0] != "sample" else str(trained / "nothing_here")
    assert main(argv + ["--workdir", workdir, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert snapshot(trained) == before


# Found only once the run starts (devices, datasets): still before anything is written, and a new
# workdir is not even created.
LATE = [
    (["mlp", "--config.batch_size=30"], "batch_size=30 is not divisible by the 4 devices"),
    (["mlp", "--config.dataset=no_such_dataset"], "dataset 'no_such_dataset' is not prepared"),
]


@pytest.mark.parametrize("argv, words", LATE)
def test_late_bad_input_leaves_no_new_workdir(tmp_path, capsys, argv, words):
    workdir = tmp_path / "new" / "run"
    assert main(argv + ["--workdir", str(workdir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(trained, capsys, value):
    assert main(["mlp", "--workdir", str(trained), "--quiet", f"--config.learning_rate={value}"]) == 2
    assert "expected a finite number" in capsys.readouterr().err


def test_every_float_key_of_every_family_refuses_nan_inf_and_negatives():
    from aigc_jax.errors import UserError
    from aigc_jax.tasks import registry
    from aigc_jax.cli import build_task

    checked = 0
    for family, cls in registry.FAMILIES.items():
        for key, value in cls.default_config().items():
            if not isinstance(value, float):
                continue
            for bad in ("nan", "inf", "-inf", "-0.5"):
                with pytest.raises(UserError, match=f"config.{key}="):
                    build_task(family, {key: bad})
                checked += 1
    assert checked > 100  # every family's float keys, not a handful


def test_checkpoint_of_another_family_is_refused(trained, capsys):
    before = snapshot(trained)
    assert main(["cnn", "--workdir", str(trained), "--quiet", "--config.steps=4"]) == 2
    assert "is of family 'mlp'; expected 'cnn'" in capsys.readouterr().err
    assert snapshot(trained) == before


def test_unwritable_workdir(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["mlp", "--workdir", str(blocker / "run"), "--quiet"]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_no_traceback_from_the_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train", "mlp", "--config.batch_size=abc",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --config.batch_size='abc': expected an integer"
    assert "Traceback" not in proc.stderr
