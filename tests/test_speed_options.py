"""--precision 16-mixed (loss scaling) and --compile: they train, save plain checkpoints and resume."""

import logging

import pytest
import torch

import ganforge.device
from ganforge import load_checkpoint, resume, train
from ganforge.device import compile_module
from test_training import assert_equal_up_to_rounding, assert_same_tensors, recipe_config


def test_float16_mixed_precision_trains_with_r1_and_resumes_exactly_with_its_loss_scales(tmp_path):
    techniques = dict(precision="16-mixed", r1=1.0, r1_every=2, ema=True)
    straight = train(recipe_config(tmp_path, "straight", steps=6, **techniques))
    checkpoint = load_checkpoint(straight.run_dir)
    # GradScaler starts at 2**16 and halves on every overflow: it saved where it got to.
    for name in ("g_scaler", "d_scaler"):
        assert 0 < checkpoint[name]["scale"] <= 2.0**16
    assert all(torch.isfinite(t).all() for t in checkpoint["generator"].values())
    initial = load_checkpoint(straight.run_dir / "checkpoints" / "ckpt_00000000.pt")
    assert not torch.equal(initial["generator"]["net.0.weight"], checkpoint["generator"]["net.0.weight"])

    first = train(recipe_config(tmp_path, "resumed", steps=3, **techniques))
    resumed = load_checkpoint(resume(first.run_dir, steps=6).run_dir)
    for part in ("generator", "discriminator", "g_optimizer", "d_optimizer", "g_scaler", "d_scaler"):
        assert_same_tensors({part: checkpoint[part]}, {part: resumed[part]})
    assert checkpoint["g_scaler"] == resumed["g_scaler"]


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_the_plain_networks(tmp_path):
    eager = train(recipe_config(tmp_path, "eager", model="mlp", steps=4))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = train(recipe_config(tmp_path, "compiled", model="mlp", steps=4, compile=True))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # G and D really were compiled
    a, b = load_checkpoint(eager.run_dir), load_checkpoint(compiled.run_dir)
    assert a["generator"].keys() == b["generator"].keys()  # no "_orig_mod." from the compiled wrapper
    initial = load_checkpoint(eager.run_dir / "checkpoints" / "ckpt_00000000.pt")
    for network in ("generator", "discriminator"):  # the same steps, up to the kernels' rounding
        assert_equal_up_to_rounding(b[network], a[network], initial[network])


def test_compile_keeps_the_discriminator_eager_when_a_penalty_differentiates_it_twice(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        result = train(recipe_config(tmp_path, "run", model="mlp", steps=2, compile=True, r1=1.0, r1_every=1))
    assert result.step == 2
    assert "the discriminator stays eager" in caplog.text


def test_compile_falls_back_to_eager_with_a_warning_where_it_cannot_run(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(ganforge.device, "compile_problem", lambda device: "no C++ compiler here (test)")
    module = torch.nn.Linear(2, 2)
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        assert compile_module(module, torch.device("cpu")) is module
    assert "--compile: no C++ compiler here (test); training without it" in caplog.text
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        result = train(recipe_config(tmp_path, "run", model="mlp", steps=2, compile=True))
    assert result.step == 2 and caplog.text.count("training without it") == 3
