"""Training plots: the PNGs a run's metrics.jsonl makes, and the errors without one."""

import json
import logging

import pytest
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.plots import plot_run, read_metrics


def write_metrics(run_dir, records, tail: str = ""):
    run_dir.mkdir(exist_ok=True)
    text = "".join(json.dumps(record) + "\n" for record in records) + tail
    (run_dir / "metrics.jsonl").write_text(text)
    return run_dir


def training_record(step: int, d_loss: float = 0.7) -> dict:
    return {"step": step, "d_loss": d_loss, "g_loss": 1.0, "d_real": 0.6, "d_fake": 0.4, "images_per_sec": 100.0}


def assert_png(path, size=(700, 400)):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size
        image.verify()


def test_a_trained_run_gets_a_loss_and_a_discriminator_plot_and_no_fid_plot(tiny_run):
    written = plot_run(tiny_run("mlp"))
    assert [path.name for path in written] == ["losses.png", "discriminator.png"]
    for path in written:
        assert path.parent == tiny_run("mlp") / "plots"
        assert_png(path)
    assert not (tiny_run("mlp") / "plots" / "fid.png").exists()


def test_eval_lines_add_the_fid_plot(tmp_path):
    records = [training_record(step) for step in (10, 20, 30)]
    records += [{"event": "eval", "step": 20, "fid": 80.0}, {"event": "eval", "step": 30, "fid": 60.0}]
    written = plot_run(write_metrics(tmp_path / "run", records))
    assert [path.name for path in written] == ["losses.png", "discriminator.png", "fid.png"]
    assert_png(written[2])


def test_records_after_a_rollback_replace_the_steps_trained_again_and_a_cut_line_is_skipped(tmp_path, caplog):
    records = [training_record(10), training_record(20, d_loss=9.0), training_record(30, d_loss=9.0)]
    records += [{"event": "rollback", "at_step": 30, "to_step": 10, "g_lr": 1e-4, "d_lr": 1e-4}]
    records += [training_record(20, d_loss=0.5), training_record(30, d_loss=0.4)]
    run = write_metrics(tmp_path / "run", records, tail='{"step": 40, "d_lo')
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        training, evaluations, rollbacks = read_metrics(run)
    assert [(r["step"], r["d_loss"]) for r in training] == [(10, 0.7), (20, 0.5), (30, 0.4)]
    assert evaluations == [] and [r["step"] for r in rollbacks] == [10]
    assert "skipped 1 unreadable line" in caplog.text
    assert len(plot_run(run)) == 2


def test_a_folder_without_metrics_or_no_folder_at_all_is_a_clear_error(tmp_path):
    with pytest.raises(GanforgeError, match="has no metrics.jsonl: is it a ganforge run directory"):
        plot_run(tmp_path)
    with pytest.raises(GanforgeError, match="no such run directory"):
        plot_run(tmp_path / "missing")
    with pytest.raises(GanforgeError, match="holds no training records yet"):
        plot_run(write_metrics(tmp_path / "run", [{"event": "eval", "step": 0, "fid": 1.0}]))
