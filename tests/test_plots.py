"""Training plots: the PNGs a run's metrics.jsonl makes, and the errors without one."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from ganforge.cli import main
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
    """A PNG of the plots' size with curves drawn: coloured pixels (axes and text are black and gray)."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size
        pixels = np.asarray(image.convert("RGB")).astype(int)
    coloured = (np.abs(pixels[..., 0] - pixels[..., 1]) + np.abs(pixels[..., 1] - pixels[..., 2])) > 60
    assert coloured.sum() > 50, f"{path} has no curve drawn"  # one point's marker alone is ~180


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
    with pytest.raises(GanforgeError, match="holds no plottable training records yet"):
        plot_run(write_metrics(tmp_path / "run", [{"event": "eval", "step": 0, "fid": 1.0}]))


@pytest.mark.parametrize(
    "tail",
    [
        '{"step": Infinity, "d_loss": 0.7}',
        '{"step": 30, "d_loss": "bad", "g_loss": NaN, "d_real": 1e400, "d_fake": -Infinity}',
        "not json at all",
    ],
    ids=["bad-step", "bad-values", "not-json"],
)
def test_metrics_with_no_plottable_training_record_are_one_clear_error(tmp_path, tail):
    with pytest.raises(GanforgeError, match="holds no plottable training records yet"):
        plot_run(write_metrics(tmp_path / "run", [], tail=tail))


@pytest.mark.parametrize(
    "tail, lines, values",
    [
        ('{"step": Infinity, "d_loss": 0.7}', 1, 0),
        ('{"step": 1e400, "d_loss": 0.7}', 1, 0),
        ('{"step": -5, "d_loss": 0.7}', 1, 0),
        ('{"step": 2.5, "d_loss": 0.7}', 1, 0),
        ('{"event": "eval", "step": 20, "fid": "bad"}', 0, 1),  # the only eval record: no fid.png
        ('{"step": 30, "d_loss": 1e308, "g_loss": -1e308, "d_real": 0.6, "d_fake": 0.4}', 0, 2),
        ('{"step": 30, "d_loss": NaN, "g_loss": 1.0, "d_real": 0.6, "d_fake": 0.4}', 0, 1),
        ('{"step": 30, "d_lo', 1, 0),  # cut short by a crash
        ("this line is not JSON", 1, 0),
    ],
    ids=["step-inf", "step-1e400", "step-negative", "step-2.5", "fid-text", "loss-1e308", "loss-nan", "cut", "text"],
)
def test_a_bad_metrics_line_is_skipped_with_one_warning_and_the_plots_still_come(tmp_path, caplog, tail, lines, values):
    run = write_metrics(tmp_path / "run", [training_record(10), training_record(20)], tail=tail)
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        written = plot_run(run)
    assert [path.name for path in written] == ["losses.png", "discriminator.png"]
    for path in written:
        assert_png(path)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        f"{run / 'metrics.jsonl'}: skipped {lines} unreadable line(s) and {values} value(s) "
        "that are not finite numbers; the first at line 3"
    ]


def test_plot_through_the_cli_skips_every_kind_of_bad_line_and_keeps_the_good_values(capsys, tmp_path):
    lines = [
        json.dumps(training_record(10)),
        '{"step": Infinity, "d_loss": 0.7}',  # line 2: the first bad one
        json.dumps(training_record(20)),
        '{"event": "eval", "step": 20, "fid": 80.0}',
        '{"event": "eval", "step": 30, "fid": "bad"}',
        '{"step": 30, "d_loss": 1e308, "g_loss": -1e308, "d_real": 0.6, "d_fake": 0.4}',
        "not JSON",
        json.dumps(training_record(40)),
        '{"step": 50, "d_lo',
    ]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("\n".join(lines))
    code = main(["plot", str(run)])
    out, err = capsys.readouterr()
    assert code == 0 and out.count("wrote") == 3
    assert err == (
        f"ganforge: {run / 'metrics.jsonl'}: skipped 3 unreadable line(s) and 3 value(s) "
        "that are not finite numbers; the first at line 2\n"
    )
    for name in ("losses.png", "discriminator.png", "fid.png"):
        assert_png(run / "plots" / name)
    training, evaluations, _ = read_metrics(run)
    assert [record["step"] for record in training] == [10, 20, 30, 40]
    assert "d_loss" not in training[2] and "g_loss" not in training[2] and training[2]["d_real"] == 0.6
    assert [(record["step"], record.get("fid")) for record in evaluations] == [(20, 80.0), (30, None)]


@pytest.mark.parametrize("task", ["gan", "pix2pix"])
def test_each_task_draws_what_its_step_reports_on_its_own_axis(tmp_path, task):
    """A pix2pix run's discriminator outputs are mean patch logits: drawn as logits, on an axis that holds them,
    not on a 0..1 "probability of 'real'" axis (a logit of -3 fell off it)."""
    import yaml

    from ganforge.config import TrainConfig, config_to_dict
    from ganforge.plots import draw_run

    run = tmp_path / "run"
    if task == "gan":
        records = [training_record(step) for step in (10, 20, 30)]
    else:
        records = [
            {"step": step, "d_loss": 0.5, "g_loss": 2.0, "l1": 0.3, "d_real_logit": 2.5, "d_fake_logit": -3.0}
            for step in (10, 20, 30)
        ]
    write_metrics(run, records)
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(TrainConfig(task=task))))
    axes = {name: figure.axes[0] for name, figure in draw_run(run).items()}
    discriminator = axes["discriminator.png"]
    labels = [line.get_label() for line in discriminator.get_lines()]
    low, high = discriminator.get_ylim()
    if task == "gan":
        assert discriminator.get_ylabel() == "probability of 'real'" and (low, high) == (0.0, 1.0)
        assert labels[:2] == ["D(x), real images", "D(G(z)), generated images"]
    else:
        assert discriminator.get_ylabel() == "mean patch logit" and low < -3.0 and high > 2.5
        assert labels[:2] == ["D(a, b): real pairs", "D(a, G(a)): translated pairs"]
        assert "generator, L1 to the target" in [line.get_label() for line in axes["losses.png"].get_lines()]


def test_the_progress_bar_names_each_statistic_as_its_task_declares(tmp_path):
    """The bar called a translator's patch logits D(x) and D(G(z)), as if they were a GAN's probabilities."""
    from ganforge.monitor import RunMonitor
    from ganforge.tasks import TASKS

    record = {"d_loss": 0.5, "g_loss": 2.0, "l1": 0.3, "d_real_logit": 2.5, "d_fake_logit": -3.0}
    statistics = TASKS["pix2pix"].statistics
    monitor = RunMonitor(tmp_path, None, 0, 8, 10, 5, tensorboard=False, progress=False, statistics=statistics)
    shown = monitor.postfix(record)
    monitor.close()
    assert shown == "d_loss=0.500 g_loss=2.000 L1=0.300 D real=2.500 D fake=-3.000" and "D(x)" not in shown
    gan = TASKS["gan"].statistics
    monitor = RunMonitor(tmp_path, None, 0, 8, 10, 5, tensorboard=False, progress=False, statistics=gan)
    assert monitor.postfix(training_record(10)) == "d_loss=0.700 g_loss=1.000 D(x)=0.60 D(G(z))=0.40"
    monitor.close()
