"""``ganforge translate`` on files that hold a pair side by side (pix2pix's layout, A | B): the natural command,
``translate RUN DATA/test``, translates each file's input half, as training read it, and says so."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import train
from ganforge.checkpoint import latest_checkpoint
from ganforge.tasks.translation.handle import load_translator, translate
from test_cli import run_cli
from test_translation import domains_folder, side_by_side_folder, translation_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(pix2pix run trained BtoA on pairs side by side, its data, pix2pix run trained on A/ and B/, its data)."""
    root = tmp_path_factory.mktemp("pairs")
    pairs = side_by_side_folder(root / "pairs", train=8, test=3)
    train(translation_config(pairs, root / "side", steps=2, batch_size=2, direction="BtoA"))
    folders = domains_folder(root / "folders", count=8)
    train(translation_config(folders, root / "apart", steps=2, batch_size=2))
    return root / "side", pairs, root / "apart", folders


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def halves_of(folder, out, side: str):
    """Each file of ``folder`` cut to its ``side`` half, saved under the same name in ``out``."""
    out.mkdir()
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            width, height = image.size
            box = (0, 0, width // 2, height) if side == "left" else (width // 2, 0, width, height)
            image.crop(box).save(out / path.name)
    return out


def test_the_test_split_of_pairs_side_by_side_is_translated_by_its_input_half(runs, tmp_path, capsys):
    side, pairs, _, _ = runs
    code, out, err = run_cli(capsys, "translate", side, pairs / "test", "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    # BtoA: the translator reads B, the right half of each file; the log says so, once, naming the way back.
    assert "3 of the 3 inputs are twice as wide as tall" in err and "right halves (B)" in err
    assert "--side-by-side no" in err
    right = halves_of(pairs / "test", tmp_path / "right", "right")
    code, _, err = run_cli(capsys, "translate", side, right, "--out", tmp_path / "by-hand", "--no-progress")
    assert code == 0, err
    for name in ("0.png", "1.png", "2.png"):
        np.testing.assert_array_equal(read(tmp_path / "out" / name), read(tmp_path / "by-hand" / name))
    # The whole file, squashed into the square, is something else; and at its own size the output is one half.
    code, _, err = run_cli(
        capsys, "translate", side, pairs / "test", "--out", tmp_path / "whole", "--side-by-side", "no", "--no-progress"
    )
    assert code == 0 and "twice as wide" not in err
    assert not np.array_equal(read(tmp_path / "whole" / "0.png"), read(tmp_path / "out" / "0.png"))
    code, _, err = run_cli(
        capsys, "translate", side, pairs / "test" / "0.png", "--out", tmp_path / "own", "--size", "0", "--no-progress"
    )
    assert code == 0, err
    with Image.open(pairs / "test" / "0.png") as pair:
        assert Image.open(tmp_path / "own" / "0.png").size == (pair.width // 2, pair.height)


def test_a_run_trained_on_separate_folders_translates_a_wide_image_whole(runs, tmp_path, capsys, caplog):
    _, pairs, apart, _ = runs
    with caplog.at_level(logging.INFO, logger="ganforge"):
        translate(apart, [pairs / "test" / "1.png"], tmp_path / "auto", progress=False)
    translate(apart, [pairs / "test" / "1.png"], tmp_path / "whole", side_by_side="no", progress=False)
    assert "side by side" not in caplog.text
    np.testing.assert_array_equal(read(tmp_path / "auto" / "1.png"), read(tmp_path / "whole" / "1.png"))
    # Asked for, the halves are taken whatever the run trained on: A's, the run's own direction.
    translate(apart, [pairs / "test" / "1.png"], tmp_path / "yes", side_by_side="yes", progress=False)
    left = halves_of(pairs / "test", tmp_path / "left", "left")
    translate(apart, [left / "1.png"], tmp_path / "left-out", side_by_side="no", progress=False)
    np.testing.assert_array_equal(read(tmp_path / "yes" / "1.png"), read(tmp_path / "left-out" / "1.png"))


def a_pair_and(other: Image.Image, name: str, pairs, folder):
    """``folder`` holding a test pair of ``pairs`` (pair.png) and ``other`` (``name``)."""
    folder.mkdir()
    Image.open(pairs / "test" / "0.png").save(folder / "pair.png")
    other.save(folder / name)
    return folder


def test_an_input_of_another_shape_is_translated_whole_beside_pairs(runs, tmp_path, caplog):
    side, pairs, _, _ = runs
    square = Image.open(pairs / "test" / "0.png").crop((0, 0, 36, 36))
    inputs = a_pair_and(square, "square.png", pairs, tmp_path / "in")
    with caplog.at_level(logging.INFO, logger="ganforge"):
        translate(side, [inputs], tmp_path / "auto", progress=False)
    assert "1 of the 2 inputs are twice as wide as tall" in caplog.text
    translate(side, [inputs / "square.png"], tmp_path / "whole", side_by_side="no", progress=False)
    np.testing.assert_array_equal(read(tmp_path / "auto" / "square.png"), read(tmp_path / "whole" / "square.png"))


def test_side_by_side_yes_on_an_odd_width_is_one_line_and_writes_nothing(runs, tmp_path, capsys):
    side, pairs, _, _ = runs
    inputs = a_pair_and(Image.new("RGB", (37, 20)), "odd.png", pairs, tmp_path / "in")
    code, _, err = run_cli(
        capsys, "translate", side, inputs, "--out", tmp_path / "out", "--side-by-side", "yes", "--no-progress"
    )
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "odd.png is 37x20: it cannot hold a pair side by side" in err and "--side-by-side no" in err
    assert not (tmp_path / "out").exists()


def test_the_layout_travels_with_the_checkpoint_the_hub_folder_and_an_old_run(runs, tmp_path, capsys):
    pytest.importorskip("safetensors")
    side, pairs, apart, _ = runs
    checkpoint = torch.load(latest_checkpoint(side / "checkpoints"), weights_only=True)
    assert checkpoint["side_by_side"] is True
    assert torch.load(latest_checkpoint(apart / "checkpoints"), weights_only=True)["side_by_side"] is False
    code, _, err = run_cli(capsys, "export", side, "--format", "hub", "--out", tmp_path / "hub")
    assert code == 0, err
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["side_by_side"] is True
    assert load_translator(tmp_path / "hub").description["side_by_side"] is True
    translate(tmp_path / "hub", [pairs / "test" / "2.png"], tmp_path / "from-hub", progress=False)
    translate(side, [pairs / "test" / "2.png"], tmp_path / "from-run", progress=False)
    np.testing.assert_array_equal(read(tmp_path / "from-hub" / "2.png"), read(tmp_path / "from-run" / "2.png"))
    # A checkpoint written before the layout was recorded: the run's data folder says it.
    del checkpoint["side_by_side"]
    torch.save(checkpoint, tmp_path / "old.pt")
    translate(tmp_path / "old.pt", [pairs / "test" / "2.png"], tmp_path / "from-old", progress=False)
    np.testing.assert_array_equal(read(tmp_path / "from-old" / "2.png"), read(tmp_path / "from-run" / "2.png"))
