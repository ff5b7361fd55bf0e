"""ganforge.load: one handle for a trained generator, read once, sampling as ``generate`` does."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge
import ganforge.checkpoint
import ganforge.metrics.evaluation
from ganforge.checkpoint import (
    POINTER,
    checkpoint_name,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from ganforge.config import GRAYSCALE_DATASET_NOISE_STD
from ganforge.errors import GanforgeError
from ganforge.export import export_generator
from ganforge.sampling import generate_images, sample_noise, to_uint8
from ganforge.tasks import load
from ganforge.tasks.gan.handle import TrainedGenerator, describe_generator, export_dataset, generate
from ganforge.tasks.gan.web import Sampler


@pytest.mark.parametrize("flags", [("mlp",), ("dcgan", "--conditional")], ids=" ".join)
def test_load_samples_what_generate_samples(tiny_run, flags):
    run = tiny_run(*flags)
    model = ganforge.load(run)
    assert model.path == resolve_checkpoint(run)
    assert not model.generator.training
    assert model.config["model"] == flags[0] and model.config["steps"] == 6
    assert model.image_shape == (1, 28, 28) and model.z_dim == model.generator.z_dim == 100
    assert model.num_classes == (10 if "--conditional" in flags else 0)
    assert len(model.classes) == 10 and model.classes[7] == "7 - seven"  # the data's, conditional or not
    assert model.description["step"] == 6
    for seed in (0, 3):
        assert torch.equal(model.sample(12, seed=seed), generate(run, n=12, seed=seed, device="cpu"))
    if model.num_classes:
        assert torch.equal(model.sample(5, labels=[2, 7], seed=1), generate(run, n=5, seed=1, labels=[2, 7]))
    assert ganforge.load(model) is model  # a handle is taken wherever a path is


def tiny_handle(conditional_generator) -> TrainedGenerator:
    """A handle around TinyConditionalGenerator: an image's pixels are all 60 * (label + 1) / 255."""
    checkpoint = {"model": "tiny", "generator_args": {"generator": {"z_dim": 8, "num_classes": 3}}}
    description = describe_generator(checkpoint, conditional_generator)
    return TrainedGenerator(Path("tiny.pt"), conditional_generator, {}, ["a", "b", "c"], description)


def test_labels_default_to_cycling_through_the_classes(conditional_generator):
    model = tiny_handle(conditional_generator)
    levels = lambda images: images[:, 0, 0, 0].tolist()  # noqa: E731
    assert levels(model.sample(7)) == [60, 120, 180, 60, 120, 180, 60]
    assert levels(model.sample(3, labels=2)) == [180] * 3
    assert levels(model.sample(5, labels=[2, 0])) == [180, 60, 180, 60, 180]
    with pytest.raises(GanforgeError, match=r"labels must be in \[0, 2\]"):
        model.sample(2, labels=3)


def test_float_samples_are_the_generators_own_output(tiny_run):
    model = load(tiny_run("mlp"))
    floats = model.sample(8, seed=2, dtype="float")
    assert floats.dtype == torch.float32 and floats.device.type == "cpu" and floats.shape == (8, 1, 28, 28)
    low, high = model.description["output_range"]
    assert low <= floats.min() and floats.max() <= high
    with torch.no_grad():
        assert torch.equal(floats, model.generator(sample_noise(8, model.z_dim, 2)))
    assert torch.equal(to_uint8(floats, (low, high)), model.sample(8, seed=2))
    assert model.sample(2, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(GanforgeError, match="unconditional"):
        model.sample(2, labels=1)
    with pytest.raises(GanforgeError, match="uint8 or floats"):
        model.sample(2, dtype=torch.int32)


@pytest.fixture
def moving_run(tiny_run, tmp_path, monkeypatch):
    """A conditional run whose ``latest`` moves to its other checkpoint each time a command resolves it.

    Returns (run, first, other, reads): ``first`` (step 6) is what ``latest`` names when a command
    starts, ``other`` (step 99) holds a different generator, and ``reads`` lists the names of the
    run's checkpoint files that torch.load read.
    """
    run = tmp_path / "run"
    shutil.copytree(tiny_run("dcgan", "--conditional"), run)
    first = resolve_checkpoint(run)
    checkpoint = load_checkpoint(first)
    for key in ("generators", "ema_generators"):
        if key in checkpoint:
            weights = checkpoint[key]["generator"]
            checkpoint[key] = {
                "generator": {name: t + 0.5 if t.is_floating_point() else t for name, t in weights.items()}
            }
    other = first.parent / checkpoint_name(99)
    save_checkpoint(checkpoint | {"step": 99}, other)
    assert not torch.equal(generate(first, n=4), generate(other, n=4))

    resolve_latest = ganforge.checkpoint.latest_checkpoint

    def moving_latest(folder: Path) -> Path | None:
        found = resolve_latest(folder)
        # The run moves on the moment a reader has looked: a second look finds another file.
        (folder / POINTER).write_text(f"{(other if found == first else first).name}\n")
        return found

    reads = []
    torch_load = torch.load

    def counting_load(path, *args, **kwargs):
        if isinstance(path, str | Path) and Path(path).parent == first.parent:
            reads.append(Path(path).name)
        return torch_load(path, *args, **kwargs)

    monkeypatch.setattr(ganforge.checkpoint, "latest_checkpoint", moving_latest)
    monkeypatch.setattr(torch, "load", counting_load)
    return run, first, other, reads


def start(moving_run) -> Path:
    """Point ``latest`` at the first checkpoint and forget the reads so far; returns the run."""
    run, first, _, reads = moving_run
    (first.parent / POINTER).write_text(f"{first.name}\n")
    reads.clear()
    return run


# torch deprecates torch.jit.load: a FutureWarning in 2.14, a DeprecationWarning in 2.13; not ganforge's to test.
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_a_run_still_training_never_makes_a_command_mix_two_checkpoints(moving_run, tmp_path, monkeypatch):
    run, first, other, reads = moving_run
    expected = generate(first, n=10, seed=0)  # a checkpoint file: no pointer to follow
    expected_wide = generate(first, n=10, seed=0, noise_std=GRAYSCALE_DATASET_NOISE_STD)  # what CAS trains on
    expected_set, _ = export_dataset(first, tmp_path / "expected.npz", per_class=2)
    reads.clear()

    assert torch.equal(generate(start(moving_run), n=10, seed=0), expected) and reads == [first.name]

    images, labels = export_dataset(start(moving_run), tmp_path / "synthetic", per_class=2)
    assert torch.equal(images, expected_set) and reads == [first.name]
    assert sorted(path.name for path in (tmp_path / "synthetic").iterdir()) == load(first).classes

    ganforge.interpolate(start(moving_run), tmp_path / "walk.gif", steps=2, n=1, device="cpu")
    assert reads == [first.name]

    scored = {}
    monkeypatch.setattr(ganforge.metrics.evaluation, "evaluate_images", lambda samples, *_, **__: {"fid": 0.0})

    def cas_against(samples, labels, reference, data_root, holdout, *_):
        scored.update(samples=samples, labels=labels, reference=reference)
        return {}

    monkeypatch.setattr(ganforge.metrics.evaluation, "cas_against", cas_against)
    ganforge.evaluate(start(moving_run), n=10, seed=0, device="cpu", cas=True)
    assert reads == [first.name] and scored["reference"] == "mnist"
    assert torch.equal(scored["samples"], expected_wide) and scored["labels"].tolist() == [*range(10)]

    export_generator(start(moving_run), "torchscript", tmp_path / "g.pt")
    extra = {"ganforge.json": ""}
    torch.jit.load(str(tmp_path / "g.pt"), _extra_files=extra)
    assert reads == [first.name] and json.loads(extra["ganforge.json"])["step"] == 6

    sampler = Sampler(start(moving_run))
    assert reads == [first.name] and sampler.info["step"] == 6 and sampler.info["run"] == "run"
    noise, labels = sample_noise(10, 100, 0), torch.arange(10)
    assert np.array_equal(generate_images(sampler.generator, noise, labels=labels), expected)
