from conftest import train_family


def test_cnn_tiny_run_writes_outputs(tmp_path):
    summary, rows = train_family("cnn", tmp_path, steps=8, batch_size=8, log_every=4, eval_every=8,
                                 sample_every=8, ckpt_every=8)
    assert summary["step"] == 8
    assert [r["step"] for r in rows if "loss" in r] == [4, 8]
    assert "eval_accuracy" in rows[-1]
    assert (tmp_path / "checkpoints" / "8").is_dir()
    assert (tmp_path / "samples" / "test_images_000008.png").is_file()
