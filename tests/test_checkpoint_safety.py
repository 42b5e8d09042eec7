"""Restore never loses a good checkpoint: only proven damage is moved aside (never deleted), every
other failure stops with one line and leaves every checkpoint as it was; a checkpoint of another
model is named by its first differing array path and the config keys that differ."""

import errno
import os

import flax.linen as nn
import pytest

from aigc_jax.engine import loop
from aigc_jax.engine.checkpoint import Checkpointer
from aigc_jax.errors import UserError
from aigc_jax.models.classifier import MLP
from aigc_jax.tasks.classifier import MLPClassifier
from conftest import train_family
from test_reliability import corrupt
from aigc_jax.cli import build_task

TINY = dict(batch_size=16, hidden="32,16", log_every=1, eval_every=0, sample_every=0, ckpt_every=4)


def snapshot(directory) -> list:
    """Every file under `directory` with its size and modification time."""
    return sorted((os.path.relpath(os.path.join(root, name), directory), os.path.getsize(os.path.join(root, name)),
                   os.path.getmtime(os.path.join(root, name)))
                  for root, _, files in os.walk(directory) for name in files)


@pytest.fixture
def trained(tmp_path):
    train_family("mlp", tmp_path, steps=8, **TINY)
    return tmp_path


FAILURES = {
    "io": OSError(errno.EIO, "Input/output error"),
    "permission": PermissionError(errno.EACCES, "Permission denied"),
    "orbax version": ValueError("Unsupported checkpoint format version 99"),
}


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failure_that_is_not_damage_stops_and_touches_nothing(trained, monkeypatch, kind):
    before = snapshot(trained / "checkpoints")

    def fails(self, step, target_state):
        raise FAILURES[kind]

    monkeypatch.setattr(Checkpointer, "restore", fails)
    with pytest.raises(UserError) as info:
        train_family("mlp", trained, fresh=False, steps=12, **TINY)
    message = str(info.value)
    assert "checkpoint step 8" in message and str(trained / "checkpoints") in message
    assert type(FAILURES[kind]).__name__ in message and len(message.splitlines()) == 1
    assert snapshot(trained / "checkpoints") == before  # both steps still there, unchanged


def test_damage_is_moved_aside_never_deleted_and_resume_uses_the_newest_good_step(tmp_path, capfd):
    _, straight = train_family("mlp", tmp_path / "straight", steps=12, **TINY)
    train_family("mlp", tmp_path / "run", steps=8, **TINY)
    corrupt(tmp_path / "run" / "checkpoints" / "8")
    damaged = snapshot(tmp_path / "run" / "checkpoints" / "8")
    capfd.readouterr()
    summary, resumed = train_family("mlp", tmp_path / "run", fresh=False, steps=12, **TINY)
    warning = [line for line in capfd.readouterr().err.splitlines() if "checkpoint step 8" in line]
    assert len(warning) == 1 and "damaged" in warning[0] and "checkpoints/damaged/8" in warning[0]
    assert snapshot(tmp_path / "run" / "checkpoints" / "damaged" / "8") == damaged  # kept, byte for byte
    assert resumed == straight
    assert summary["checkpoint_steps"] == [4, 8, 12]


def test_damage_is_told_from_other_failures():
    from aigc_jax.engine.checkpoint import is_damage

    assert is_damage(ValueError('DATA_LOSS: Error opening "zarr" driver: Error decoding local file'))
    assert is_damage(ValueError("Error reading: ZSTD_decompressStream() failed: Data corruption detected"))
    assert is_damage(FileNotFoundError("File /w/checkpoints/8/meta/metadata not found."))
    assert not is_damage(PermissionError(errno.EACCES, "Permission denied"))
    assert not is_damage(OSError(errno.EIO, "Input/output error"))
    assert not is_damage(ValueError("PERMISSION_DENIED: Error opening file"))
    assert not is_damage(RuntimeError("anything else"))


class RenamedMLP(MLPClassifier):
    """The mlp family after a code change that renames its layers: same config, same shapes."""

    @property
    def model(self):
        return RenamedLayers(hidden=tuple(self.config.hidden))


class RenamedLayers(MLP):
    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden):
            x = nn.relu(nn.Dense(width, name=f"hidden_{i}")(x))
        return nn.Dense(self.num_classes, name="logits")(x)


def test_renamed_parameters_of_the_same_shapes_are_refused_by_path(trained):
    before = snapshot(trained / "checkpoints")
    config = build_task("mlp", {k: str(v) for k, v in {**TINY, "steps": 12}.items()}).config
    with pytest.raises(UserError, match=r"does not fit this model: .*params/(Dense_0|hidden_0)/.*the saved config "
                                        r"matches this one, so the model's code changed"):
        loop.train_and_evaluate(RenamedMLP(config), str(trained), log=lambda *a: None, show_progress=False)
    assert snapshot(trained / "checkpoints") == before


def test_another_model_size_names_the_config_keys_that_differ(trained):
    before = snapshot(trained / "checkpoints")
    with pytest.raises(UserError, match=r"hidden: \(32, 16\) -> \(64, 16\)"):
        train_family("mlp", trained, fresh=False, steps=12, **{**TINY, "hidden": "64,16"})
    assert snapshot(trained / "checkpoints") == before
