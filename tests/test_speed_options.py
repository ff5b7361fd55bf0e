"""--precision 16-mixed (loss scaling), bf16 and --compile: they train, save plain checkpoints and resume."""

import collections
import contextlib
import logging
import math

import pytest
import torch

import ganforge.device
from conftest import unavailable
from ganforge import load_checkpoint, resume, train
from ganforge.device import compile_module
from test_training import assert_equal_up_to_rounding, assert_same_tensors, recipe_config


@contextlib.contextmanager
def output_dtypes():
    """Record the dtype of every convolution's and linear layer's output while the block runs (a global hook)."""
    seen = collections.Counter()
    layers = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)

    def record(module, inputs, output):
        if isinstance(module, layers):
            seen[type(module).__name__, output.dtype] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.mark.slow
def test_float16_mixed_precision_trains_with_r1_and_resumes_exactly_with_its_loss_scales(tmp_path):
    techniques = dict(precision="16-mixed", r1=1.0, r1_every=2, ema=True)
    with output_dtypes() as seen:
        straight = train(recipe_config(tmp_path, "straight", steps=6, **techniques))
    # float16 autocast ran the training's convolutions: G's transposed ones and D's.
    assert seen["ConvTranspose2d", torch.float16] >= 6 and seen["Conv2d", torch.float16] >= 12, seen
    checkpoint = load_checkpoint(straight.run_dir)
    # Each scaler started at 2**16 and stepped 6 times: at that scale the first float16 gradients overflow, so
    # it halved (backoff) at least once, and counted the good updates since its last overflow. Measured (AMD EPYC):
    # g_scaler 2**14 with 4 good updates since, d_scaler 2**13 with 1 (the R1 term overflows more).
    for name in ("g", "d"):
        scaler = checkpoint["scalers"][name]
        halvings = math.log2(2.0**16 / scaler["scale"])
        assert halvings >= 1 and halvings == int(halvings), scaler
        assert 1 <= scaler["_growth_tracker"] and halvings + scaler["_growth_tracker"] <= 6, scaler
    assert all(torch.isfinite(t).all() for t in checkpoint["generators"]["generator"].values())
    initial = load_checkpoint(straight.run_dir / "checkpoints" / "ckpt_00000000.pt")
    assert not torch.equal(
        initial["generators"]["generator"]["net.0.weight"], checkpoint["generators"]["generator"]["net.0.weight"]
    )

    first = train(recipe_config(tmp_path, "resumed", steps=3, **techniques))
    resumed = load_checkpoint(resume(first.run_dir, steps=6).run_dir)
    for part in ("generators", "discriminators", "optimizers"):
        assert_same_tensors({part: checkpoint[part]}, {part: resumed[part]})
    # The scalers hold Python numbers, not tensors: compared whole.
    assert checkpoint["scalers"] == resumed["scalers"]


def test_bfloat16_autocast_trains_and_resumes_exactly(tmp_path):
    """--precision bf16: bfloat16 autocast (no loss scaler), on the CPU too; a resumed run matches an unbroken one."""
    with output_dtypes() as seen:
        straight = train(recipe_config(tmp_path, "straight", model="mlp", steps=4, precision="bf16"))
    assert seen["Linear", torch.bfloat16] >= 4 * 3, seen  # G's and D's layers in every step's forwards
    first = train(recipe_config(tmp_path, "resumed", model="mlp", steps=2, precision="bf16"))
    resumed = resume(first.run_dir, steps=4)
    a, b = load_checkpoint(straight.run_dir), load_checkpoint(resumed.run_dir)
    assert a["step"] == b["step"] == 4 and "scalers" not in a
    for part in ("generators", "discriminators", "optimizers", "noise_rng"):
        assert_same_tensors({part: a[part]}, {part: b[part]})
    initial = load_checkpoint(straight.run_dir / "checkpoints" / "ckpt_00000000.pt")
    assert not torch.equal(
        initial["generators"]["generator"]["net.0.weight"], a["generators"]["generator"]["net.0.weight"]
    )


@pytest.mark.parametrize(
    "flags, chosen",
    [({"avx2", "avx512_bf16"}, "bf16"), ({"amx_bf16", "amx_tile"}, "bf16"), ({"avx2", "avx512f"}, "32"), (set(), "32")],
)
def test_auto_precision_is_the_default_and_bf16_only_where_the_cpu_computes_in_it(
    tmp_path, monkeypatch, caplog, flags, chosen
):
    monkeypatch.setattr(ganforge.device, "cpu_flags", lambda: flags)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # a cap decides too (the test below)
    cpu = torch.device("cpu")
    assert ganforge.device.resolve_precision("auto", cpu) == chosen
    assert ganforge.device.resolve_precision("32", cpu) == "32"  # asked for: as asked
    with output_dtypes() as seen, caplog.at_level(logging.INFO, logger="ganforge"):
        run = train(recipe_config(tmp_path, "auto", model="mlp", steps=2))  # no --precision: the default
    assert "precision: auto\n" in (run.run_dir / "config.yaml").read_text()
    if chosen == "bf16":
        assert seen["Linear", torch.bfloat16] >= 2 * 3, seen  # the training steps' forwards
    else:
        assert seen["Linear", torch.float32] >= 2 * 3 and seen["Linear", torch.bfloat16] == 0, seen
    assert f"precision {chosen} (auto)" in caplog.text


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_the_plain_networks(tmp_path):
    # Without a compiler ganforge trains eagerly, with a warning (the fallback test below): nothing to compare here.
    if (problem := ganforge.device.compile_problem(torch.device("cpu"))) is not None:
        unavailable(f"--compile cannot run here: {problem}")
    # float32: bf16 (what auto picks on some machines) rounds each kernel's output too coarsely for this bound.
    eager = train(recipe_config(tmp_path, "eager", model="mlp", steps=4, precision="32"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = train(recipe_config(tmp_path, "compiled", model="mlp", steps=4, compile=True, precision="32"))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # G and D really were compiled
    a, b = load_checkpoint(eager.run_dir), load_checkpoint(compiled.run_dir)
    assert (
        a["generators"]["generator"].keys() == b["generators"]["generator"].keys()
    )  # no "_orig_mod." from the compiled wrapper
    initial = load_checkpoint(eager.run_dir / "checkpoints" / "ckpt_00000000.pt")
    for kind, network in (("generators", "generator"), ("discriminators", "discriminator")):  # up to rounding
        assert_equal_up_to_rounding(b[kind][network], a[kind][network], initial[kind][network])


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


@pytest.mark.parametrize(
    "cap, chosen",
    [(None, "bf16"), ("AVX2", "32"), ("avx512_core", "32"), ("AVX512_CORE_BF16", "bf16"), ("ALL", "bf16")],
)
def test_auto_precision_is_float32_where_onednn_is_capped_below_bf16(monkeypatch, cap, chosen):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes a bf16 CPU compute as an AVX2 one (docs/quality.md's stand-in), where bf16
    is emulated: auto then trains in float32, as on a real AVX2 machine."""
    monkeypatch.setattr(ganforge.device, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert ganforge.device.resolve_precision("auto", torch.device("cpu")) == chosen
