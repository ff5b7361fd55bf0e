"""Progress bars for the commands that take a while outside training: on stderr where it is a terminal, never
under --no-progress or --json, never into a pipe or a log file."""

import io
import json

import numpy as np
import pytest
from PIL import Image

import ganforge.progress
from ganforge.cli import main


class Terminal(io.StringIO):
    """stderr as a terminal: tqdm shows a bar only where ``isatty()`` says so."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run("dcgan")


def as_terminal(monkeypatch, stream: io.StringIO | None = None) -> io.StringIO:
    """sys.stderr replaced by ``stream`` (a terminal by default), and bars shown at once (not after ``DELAY``).
    Called in the test's body: pytest's capture sets sys.stderr again between a fixture and the test."""
    stream = Terminal() if stream is None else stream
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(ganforge.progress, "DELAY", 0)
    return stream


def run(*args) -> int:
    return main([str(arg) for arg in args])


def test_generate_shows_a_bar_on_a_terminal_and_none_with_no_progress(run_dir, tmp_path, monkeypatch):
    terminal = as_terminal(monkeypatch)
    assert run("generate", run_dir, "--n", 300, "--batch-size", 50, "--out", tmp_path / "a.npz") == 0
    shown = terminal.getvalue()
    assert "generate:" in shown and "/300" in shown
    terminal.seek(0), terminal.truncate()
    assert run("generate", run_dir, "--n", 300, "--out", tmp_path / "b.npz", "--no-progress") == 0
    assert "generate:" not in terminal.getvalue()


def test_no_bar_goes_into_a_pipe(run_dir, tmp_path, monkeypatch):
    stream = as_terminal(monkeypatch, io.StringIO())  # not a terminal: a pipe, a log file
    assert run("generate", run_dir, "--n", 300, "--out", tmp_path / "a.npz") == 0
    assert "generate:" not in stream.getvalue()


def test_evaluate_shows_its_stages_and_json_asks_for_none(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(40):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(images / f"{index}.png")
    args = ("evaluate", run_dir, "--n", 40, "--reference", images, "--features", "mnist")
    terminal = as_terminal(monkeypatch)
    assert run(*args) == 0
    shown = terminal.getvalue()
    assert "generate:" in shown and "features (mnist):" in shown
    terminal.seek(0), terminal.truncate()
    assert run(*args, "--json") == 0
    assert "features (mnist):" not in terminal.getvalue() and "generate:" not in terminal.getvalue()
    assert "fid" in json.loads(capsys.readouterr().out.splitlines()[-1])


def test_translate_shows_a_bar_over_its_inputs(tmp_path, monkeypatch):
    from ganforge import train
    from test_translation import side_by_side_folder, translation_config

    pairs = side_by_side_folder(tmp_path / "pairs", train=4, test=3)
    train(translation_config(pairs, tmp_path / "run", steps=1, batch_size=2))
    terminal = as_terminal(monkeypatch)
    assert run("translate", tmp_path / "run", pairs / "test", "--out", tmp_path / "out") == 0
    assert "translate:" in terminal.getvalue() and "/3" in terminal.getvalue()


def test_a_training_shows_no_bars_of_its_evaluations(mnist_root, tmp_path, monkeypatch):
    from ganforge import TrainConfig, train

    config = TrainConfig(
        model="mlp", data_root=str(mnist_root), steps=2, batch_size=16, eval_every="2", eval_samples=64,
        progress=False, tensorboard=False, out=str(tmp_path / "run"), threads=1,
    )  # fmt: skip
    terminal = as_terminal(monkeypatch)
    train(config)  # its evaluation generates and scores 64 samples: bars inside the training's own would clutter it
    shown = terminal.getvalue()
    assert "generate:" not in shown and "features (mnist):" not in shown and "it/s" not in shown, shown
