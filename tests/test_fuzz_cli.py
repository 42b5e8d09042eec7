"""Fuzzed bad input (hypothesis): exit 2, one line naming the value, no traceback, nothing written over."""

import os
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigc_jax.engine.config import base_config
from aigc_jax.cli import main

KNOWN = set(base_config().keys()) | {"hidden", "channels", "latent", "g_hidden", "d_hidden", "beta1"}
INT_KEYS = ["steps", "batch_size", "eval_batch_size", "log_every", "seed"]
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda k: k not in KNOWN)
not_ints = st.from_regex(r"[A-Za-z][A-Za-z0-9.]{0,8}", fullmatch=True).filter(
    lambda t: t.lower() not in ("true", "false", "inf", "nan", "infinity"))


@st.composite
def bad_argv(draw):
    """(argv, text the error must name): one guaranteed-bad item among valid ones."""
    family = draw(st.sampled_from(["mlp", "cnn", "vae", "mlp_gan"]))
    good = draw(st.lists(st.sampled_from(["--config.seed=3", "--config.log_every=5", "--config.parallel=shard_map"]),
                         max_size=2, unique=True))
    kind = draw(st.sampled_from(["unknown_key", "wrong_type", "non_positive", "indivisible", "dataset", "family"]))
    if kind == "unknown_key":
        key = draw(identifiers)
        return [family, f"--config.{key}=1", *good], repr(key)
    if kind == "wrong_type":
        key, text = draw(st.sampled_from(INT_KEYS)), draw(not_ints)
        return [family, *good, f"--config.{key}={text}"], repr(text)
    if kind == "non_positive":
        key = draw(st.sampled_from(["steps", "batch_size", "eval_batch_size", "log_every"]))
        value = draw(st.integers(-10**6, 0))
        return [family, f"--config.{key}={value}"], f"{key}={value}"
    if kind == "indivisible":
        size = draw(st.integers(1, 999).filter(lambda b: b % 4))
        return [family, f"--config.batch_size={size}", *good], f"batch_size={size}"
    if kind == "dataset":
        name = draw(identifiers.filter(lambda n: n != "digits"))
        return [family, f"--config.dataset={name}"], repr(name)
    name = draw(identifiers.filter(lambda n: n not in ("mlp", "cnn", "vae", "mlp_gan", "sample")))
    return [name, *good], repr(name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bad_argv())
def test_fuzzed_bad_input(trained_workdir, capsys, case):
    argv, named = case
    before = snapshot(trained_workdir)
    # The trained workdir holds an mlp run: another family there would be refused for that alone,
    # so other families get a workdir that does not exist yet, and must not create it.
    workdir = trained_workdir if argv[0] == "mlp" else trained_workdir.parent / "not_created" / argv[0]
    assert main(argv + ["--workdir", str(workdir), "--quiet", "--compile_cache", "off"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert named in err, (argv, err)
    assert snapshot(trained_workdir) == before
    assert not (trained_workdir.parent / "not_created").exists()


def snapshot(workdir):
    return sorted((os.path.relpath(os.path.join(r, f), workdir), os.path.getmtime(os.path.join(r, f)))
                  for r, _, files in os.walk(workdir) for f in files)


def test_corrupt_dataset_files(tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "tfds"
    shutil.copytree(os.environ["TFDS_DATA_DIR"] + "/digits", data_dir / "digits")
    for root, _, files in os.walk(data_dir):
        for name in files:
            if "array_record" in name:
                with open(os.path.join(root, name), "r+b") as f:
                    f.seek(100)
                    f.write(b"\0" * 4000)
    assert main(["mlp", "--workdir", str(tmp_path / "run"), "--quiet", f"--config.data_dir={data_dir}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dataset 'digits'" in err and "unreadable" in err
