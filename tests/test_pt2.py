"""``ganforge export --format pt2``: a ``torch.export`` program that ``torch.export.load`` reads and runs without
ganforge, equal to the generator (any batch) or the translator (any batch, height and width) to 1e-5."""

import json

import pytest
import torch

from ganforge import load
from ganforge.export import export_generator
from test_cli import run_cli


def load_pt2(path):
    """(the program's module, the metadata ganforge wrote beside it)."""
    extra = {"ganforge.json": ""}
    program = torch.export.load(str(path), extra_files=extra)
    return program.module(), json.loads(extra["ganforge.json"])


@pytest.mark.parametrize("model", ["mlp", "dcgan-conditional"])
def test_a_generator_exports_to_pt2_and_runs_at_any_batch_size(model, tiny_run, tmp_path, capsys):
    run = tiny_run("dcgan", "--conditional") if model == "dcgan-conditional" else tiny_run(model)
    code, _, err = run_cli(capsys, "export", run, "--format", "pt2", "--out", tmp_path / "g.pt2")
    assert code == 0, err
    module, about = load_pt2(tmp_path / "g.pt2")
    gen = load(run)
    assert about["model"] == gen.description["model"] and about["z_dim"] == gen.z_dim
    for batch in (1, 5):
        z = torch.randn(batch, gen.z_dim, generator=torch.Generator().manual_seed(batch))
        inputs = (z, torch.arange(batch) % gen.num_classes) if gen.num_classes else (z,)
        with torch.no_grad():
            torch.testing.assert_close(module(*inputs), gen.generator(*inputs), rtol=0, atol=1e-5)


def test_a_translator_exports_to_pt2_and_runs_at_any_size(tmp_path):
    from ganforge import train
    from test_translation import side_by_side_folder, translation_config

    pairs = side_by_side_folder(tmp_path / "pairs", train=4, test=1)
    train(translation_config(pairs, tmp_path / "run", steps=1, batch_size=2))
    export_generator(tmp_path / "run", "pt2", tmp_path / "t.pt2")
    module, about = load_pt2(tmp_path / "t.pt2")
    translator = load(tmp_path / "run").generator()
    stride = about["stride"]
    for batch, height, width in ((1, 2 * stride, 5 * stride), (3, 4 * stride, 2 * stride)):
        images = torch.rand(batch, 3, height, width) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(module(images), translator(images), rtol=0, atol=1e-5)


def test_torchscript_says_it_is_deprecated_and_names_pt2(tiny_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", tiny_run("mlp"), "--format", "torchscript", "--out", tmp_path / "g.pt")
    assert code == 0 and "TorchScript is deprecated" in err and "--format pt2" in err
