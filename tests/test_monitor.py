import json
import logging
import signal

import pytest
import torch

from ganforge.monitor import D_WINS_STEPS, CollapseWatch, RunMonitor, StopSignal


def feed(monitor: RunMonitor, steps: range, d_fake: float) -> None:
    stats = {
        "d_loss": torch.tensor(1.0),
        "g_loss": torch.tensor(5.0),
        "d_real": torch.tensor(0.99),
        "d_fake": torch.tensor(d_fake),
    }
    for step in steps:
        monitor.step(step, stats)


def test_a_discriminator_that_wins_for_long_is_reported_once_per_stretch(tmp_path, caplog):
    monitor = RunMonitor(tmp_path, None, 0, 8, 100, log_every=50, tensorboard=False, progress=False)
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        feed(monitor, range(1, D_WINS_STEPS), d_fake=0.001)
        assert "D(G(z)) has stayed below" not in caplog.text  # not long enough yet
        feed(monitor, range(D_WINS_STEPS, 3 * D_WINS_STEPS), d_fake=0.001)
        assert caplog.text.count("D(G(z)) has stayed below") == 1
        feed(monitor, range(3 * D_WINS_STEPS, 3 * D_WINS_STEPS + 100), d_fake=0.3)  # recovers
        feed(monitor, range(3 * D_WINS_STEPS + 100, 5 * D_WINS_STEPS), d_fake=0.001)  # and loses again
        assert caplog.text.count("D(G(z)) has stayed below") == 2
    monitor.close()


def test_reports_average_the_steps_since_the_last_one(tmp_path):
    monitor = RunMonitor(tmp_path, 100, 0, 8, 10, log_every=2, tensorboard=False, progress=False)
    rest = {"g_loss": torch.tensor(0.5), "d_real": torch.tensor(0.5), "d_fake": torch.tensor(0.5)}
    monitor.step(1, {"d_loss": torch.tensor(1.0)} | rest)
    monitor.step(2, {"d_loss": torch.tensor(3.0)} | rest)
    monitor.event({"event": "rollback", "at_step": 2})
    monitor.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 2 and lines[0]["d_loss"] == 2.0 and lines[0]["epoch"] == 0.2
    assert lines[1] == {"event": "rollback", "at_step": 2}


def evaluation(fid: float, recall: float = 0.6, spread: float = 1.0, classes: int = 10) -> dict:
    return {"fid": fid, "recall": recall, "feature_spread": spread, "classes_covered": classes}


def test_collapse_watch_warns_when_fid_stays_well_above_its_best():
    watch = CollapseWatch()
    assert watch.update(100, evaluation(20.0)) == []
    assert watch.update(200, evaluation(10.0)) == []
    assert watch.update(300, evaluation(16.0)) == []  # above 1.5x best, once
    assert watch.update(400, evaluation(12.0)) == []  # back under: the count restarts
    assert watch.update(500, evaluation(16.0)) == []
    assert watch.update(600, evaluation(17.0)) == []
    warnings = watch.update(700, evaluation(18.0))
    assert len(warnings) == 1 and "above 1.5x its best (10.00, step 200) for 3 evaluations" in warnings[0]
    assert watch.update(800, evaluation(19.0)) == []  # once per episode


def test_collapse_watch_warns_when_diversity_falls():
    watch = CollapseWatch()
    assert watch.update(100, evaluation(10.0, recall=0.6, classes=10)) == []
    warnings = watch.update(200, evaluation(9.0, recall=0.2, classes=7))
    assert len(warnings) == 1
    assert "recall 0.2 (best 0.6)" in warnings[0] and "classes covered 7 (best 10)" in warnings[0]
    assert watch.update(300, evaluation(9.0, recall=0.2, classes=7)) == []  # still collapsed: said already
    assert watch.update(400, evaluation(9.0, recall=0.6, classes=10)) == []  # recovered
    assert len(watch.update(500, evaluation(9.0, spread=0.3))) == 1  # collapsed again


def test_first_signal_asks_to_stop_and_a_second_quits_at_once():
    # raise_signal delivers to this thread before it returns; os.kill may land on another thread of the
    # process (onnxruntime's, torch's), and the handler then runs a few bytecodes later.
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with StopSignal() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    # The handlers found are restored: Python's default, or SIG_IGN where the shell started us in the background.
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_signal_echoed_within_the_grace_period_is_the_same_request():
    with StopSignal(repeat_grace=60.0) as stop:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)  # torchrun passing the terminal's Ctrl-C on
        assert stop.requested
