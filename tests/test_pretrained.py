"""The pretrained generators shipped in the package: every command and ``ganforge.load`` take their names, with
no data, no network and no training; a path of the same name wins; each says what it is and has its card."""

import json
import logging
import os

import pytest
import torch
from PIL import Image

import ganforge
from ganforge.pretrained import FOLDER, PRETRAINED, card, pretrained_file
from test_cli import run_cli

# What the test machine must never reach for: a data root that is not there, and no downloads.
OFFLINE = {"GANFORGE_DATA_ROOT": "/nonexistent", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def test_every_name_has_its_file_and_a_card_naming_its_command_machine_and_scores():
    for name in PRETRAINED:
        assert (FOLDER / f"{name}.pt").is_file(), name
        text = card(name).read_text()
        assert f"scripts/train_pretrained.py {name}" in text and "**Machine:**" in text and "| fid |" in text
        assert (FOLDER / f"{name}.pt").stat().st_size < 5e6  # a few MB at most: float16


@pytest.mark.parametrize("name, shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_load_by_name_samples_every_class_offline(name, shape, caplog):
    with caplog.at_level(logging.INFO, logger="ganforge"):
        model = ganforge.load(name)
    assert f"{name}: ganforge's pretrained" in caplog.text  # it says what it is
    assert model.num_classes == 10 and len(model.classes) == 10
    images = model.sample(20, seed=0)
    assert images.shape == (20, *shape) and images.dtype == torch.uint8
    assert images.float().std() > 10  # not a blank: a trained generator's images vary
    assert torch.equal(model.sample(20, seed=0), images)


def test_generate_by_name_writes_a_grid(capsys, tmp_path):
    code, _, err = run_cli(capsys, "generate", "cifar10", "--n", 64, "--out", tmp_path / "grid.png")
    assert code == 0, err
    grid = Image.open(tmp_path / "grid.png")
    assert grid.mode == "RGB" and grid.size[0] > 300


def test_a_path_of_the_same_name_wins(tiny_run, tmp_path, capsys):
    os.symlink(tiny_run("mlp"), tmp_path / "mnist")  # a run directory called mnist, in the working directory
    assert pretrained_file("mnist") is None
    assert ganforge.load("mnist").description["model"] == "mlp"
    code, _, err = run_cli(capsys, "generate", "nosuchname", "--out", tmp_path / "x.png")
    assert code == 1 and "pretrained models by name: mnist, cifar10" in err


def test_serve_by_name_answers_with_the_shipped_model():
    pytest.importorskip("fastapi", reason="ganforge serve needs fastapi: pip install -e '.[serve]'")
    from fastapi.testclient import TestClient

    from ganforge.serve import create_app

    with TestClient(create_app("mnist")) as client:
        about = client.get("/api/model").json()
        assert about["run"] == "mnist"
        assert about["num_classes"] == 10 and about["image_shape"] == [1, 28, 28]
        assert client.get("/api/samples?n=16&seed=1&label=3").status_code == 200
        assert json.loads(json.dumps(about))["model"] == "dcgan"


def test_evaluate_by_name_scores_against_the_test_split(mnist_root, capsys, monkeypatch):
    monkeypatch.setenv("GANFORGE_DATA_ROOT", str(mnist_root))  # the test split, here: never a download
    code, out, err = run_cli(capsys, "evaluate", "mnist", "--n", 500, "--json")
    assert code == 0, err
    scores = json.loads(out.splitlines()[-1])
    assert scores["features"] == "mnist" and scores["classes_covered"] == 10 and scores["fid"] < 50
    assert scores["label_acc"] > 0.95  # the conditional model draws the digit it is asked for


def test_the_wheel_ships_every_pretrained_file():
    import fnmatch
    from pathlib import Path

    import tomllib

    patterns = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = patterns["package-data"]["ganforge.assets"]
    for path in FOLDER.iterdir():
        relative = f"pretrained/{path.name}"
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), f"{relative} is not in the wheel"
