"""metrics.jsonl survives a crash: append-only, a torn last line is dropped on resume, rewrites go
through a new file renamed over the old one."""

import os

import pytest

from aigc_jax.engine.metrics import MetricWriter
from aigc_jax.errors import UserError
from conftest import read_metrics, train_family

TINY = dict(batch_size=16, hidden="32,16", log_every=1, eval_every=4, sample_every=0, ckpt_every=4)


def test_a_torn_last_line_is_dropped_on_resume(tmp_path):
    _, straight = train_family("mlp", tmp_path / "straight", steps=8, **TINY)
    train_family("mlp", tmp_path / "run", steps=4, **TINY)
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 2.3')  # power lost in the middle of a write
    _, resumed = train_family("mlp", tmp_path / "run", fresh=False, steps=8, **TINY)
    assert resumed == straight


def test_rows_past_the_restored_step_are_dropped_by_a_rename(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(1, 7)))
    inode = os.stat(path).st_ino
    MetricWriter(str(tmp_path), start_step=4).close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    assert os.stat(path).st_ino != inode  # a new file took the old one's place: never half-rewritten
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_file_with_nothing_to_drop_is_only_appended_to(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 1.0}\n')
    inode = os.stat(path).st_ino
    writer = MetricWriter(str(tmp_path), start_step=1)
    writer.write(2, {"loss": 0.5})
    writer.close()
    assert os.stat(path).st_ino == inode and [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_a_malformed_line_before_the_end_is_an_error_not_a_guess(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(UserError, match="metrics.jsonl line 2 is not a metrics row"):
        MetricWriter(str(tmp_path), start_step=2)
