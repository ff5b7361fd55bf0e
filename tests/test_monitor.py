import json
import logging

import torch

from ganforge.monitor import D_WINS_STEPS, RunMonitor


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
