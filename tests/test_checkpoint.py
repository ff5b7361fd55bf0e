import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from conftest import gan_models
from ganforge.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    global_rng_state,
    latest_checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
    save_run_checkpoint,
    set_global_rng_state,
)
from ganforge.errors import GanforgeError
from ganforge.models import build_generator
from ganforge.sampling import generate_images, sample_noise
from ganforge.tasks.gan.handle import generate, load_generator


def fake_checkpoint(model: str, **generator_args) -> tuple[dict, torch.nn.Module]:
    """A checkpoint of today's format holding only a GAN's generator, and the generator."""
    args = dict(z_dim=12, width=8, channels=1, image_size=28) | generator_args
    torch.manual_seed(1)
    generator = build_generator(model, args)
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": "gan",
        "model": model,
        "generator_args": {"generator": args},
        "generators": {"generator": generator.state_dict()},
    }
    return checkpoint, generator


@pytest.mark.parametrize("model", gan_models())
def test_every_model_round_trips_to_the_same_samples(tmp_path, model):
    checkpoint, generator = fake_checkpoint(model, channels=3, image_size=32)
    save_checkpoint(checkpoint, tmp_path / "model.pt")
    loaded = load_generator(tmp_path / "model.pt")
    assert not loaded.training
    noise = sample_noise(6, 12, seed=0)
    assert torch.equal(generate_images(generator, noise), generate_images(loaded, noise))
    assert torch.equal(generate(tmp_path / "model.pt", n=6, seed=0), generate_images(generator, noise))


def test_atomic_save_leaves_only_the_finished_file(tmp_path):
    checkpoint, _ = fake_checkpoint("mlp")
    save_checkpoint(checkpoint, tmp_path / "latest.pt")
    save_checkpoint(checkpoint, tmp_path / "latest.pt")  # overwrite
    assert os.listdir(tmp_path) == ["latest.pt"]


def test_a_failed_save_keeps_the_old_checkpoint(tmp_path):
    checkpoint, _ = fake_checkpoint("mlp")
    save_checkpoint(checkpoint, tmp_path / "latest.pt")
    before = (tmp_path / "latest.pt").read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError)):  # torch.save cannot pickle a lambda
        save_checkpoint({"not picklable": lambda: 0}, tmp_path / "latest.pt")
    assert (tmp_path / "latest.pt").read_bytes() == before
    assert os.listdir(tmp_path) == ["latest.pt"]


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(GanforgeError, match="not a readable ganforge checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(GanforgeError, match="not a ganforge checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


class RunsCode:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    checkpoint, _ = fake_checkpoint("mlp")
    checkpoint["extra"] = RunsCode(str(marker))
    with open(tmp_path / "evil.pt", "wb") as file:
        torch.save(checkpoint, file, pickle_module=pickle)
    with pytest.raises(GanforgeError, match="not a readable ganforge checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_weights_of_another_architecture_are_refused(tmp_path):
    checkpoint, _ = fake_checkpoint("mlp")
    checkpoint["model"] = "dcgan"  # mlp weights claiming to be a DCGAN
    save_checkpoint(checkpoint, tmp_path / "mixed.pt")
    with pytest.raises(GanforgeError, match="do not fit the architecture"):
        load_generator(tmp_path / "mixed.pt")


def test_newer_format_and_unknown_model_are_named(tmp_path):
    checkpoint, _ = fake_checkpoint("mlp")
    save_checkpoint(checkpoint | {"format_version": 99, "ganforge_version": "9.0"}, tmp_path / "new.pt")
    with pytest.raises(GanforgeError, match="ganforge 9.0"):
        load_checkpoint(tmp_path / "new.pt")
    save_checkpoint(checkpoint | {"model": "stylegan9"}, tmp_path / "unknown.pt")
    with pytest.raises(GanforgeError, match="stylegan9"):
        load_checkpoint(tmp_path / "unknown.pt")


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(GanforgeError, match="no such run directory or checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(GanforgeError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)


def run_checkpoint(step: int) -> dict:
    checkpoint, _ = fake_checkpoint("mlp")
    return checkpoint | {"step": step}


def test_run_checkpoints_keep_the_newest_and_the_snapshots(tmp_path):
    for step in range(11):
        save_run_checkpoint(tmp_path, run_checkpoint(step), keep=2, keep_every=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt_00000000.pt",
        "ckpt_00000004.pt",
        "ckpt_00000008.pt",
        "ckpt_00000009.pt",
        "ckpt_00000010.pt",
        "latest",
    ]
    assert (tmp_path / "latest").read_text() == "ckpt_00000010.pt\n"
    assert load_checkpoint(tmp_path)["step"] == 10


def test_the_pointer_wins_and_a_missing_pointer_falls_back_to_the_newest_file(tmp_path):
    for step in (1, 2, 3):
        save_run_checkpoint(tmp_path, run_checkpoint(step), keep=5)
    (tmp_path / "latest").write_text("ckpt_00000002.pt\n")  # e.g. a kill between two saves
    assert latest_checkpoint(tmp_path).name == "ckpt_00000002.pt"
    (tmp_path / "latest").unlink()
    (tmp_path / ".ckpt_00000004.pt.999.tmp").write_bytes(b"half a checkpoint")  # a write cut short
    assert latest_checkpoint(tmp_path).name == "ckpt_00000003.pt"
    (tmp_path / "latest").write_text("ckpt_00000042.pt\n")  # names a file that is gone
    assert latest_checkpoint(tmp_path).name == "ckpt_00000003.pt"


def test_a_full_disk_keeps_the_previous_checkpoint(small_disk):
    """A real full filesystem: torch's zip writer fails inside C++, and the user still sees the OSError."""
    folder = small_disk(1)
    save_run_checkpoint(folder, run_checkpoint(1), keep=3)
    small_disk.fill(folder, leave=4096)
    with pytest.raises(
        GanforgeError, match=r"00002.pt \(No space left on device\); the run's last checkpoint, ckpt_00000001"
    ):
        save_run_checkpoint(folder, run_checkpoint(2), keep=3)
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt_00000001.pt", "filler", "latest"]  # no temp file
    assert load_checkpoint(folder)["step"] == 1
    (folder / "filler").unlink()
    save_checkpoint(run_checkpoint(1), folder / "ckpt_00000001.pt")  # replaced: now the old file is named intact
    small_disk.fill(folder, leave=4096)
    with pytest.raises(GanforgeError, match=r"ckpt_00000001.pt \(No space left on device\); the previous file is"):
        save_checkpoint(run_checkpoint(3), folder / "ckpt_00000001.pt")
    assert load_checkpoint(folder / "ckpt_00000001.pt")["step"] == 1


def test_global_random_states_survive_a_checkpoint(tmp_path):
    import random

    import numpy as np

    torch.cuda.is_available()  # noqa: B018  (CUDA state is saved only where CUDA is in use)
    checkpoint = run_checkpoint(1) | {"global_rng": global_rng_state()}
    expected = (random.random(), np.random.rand(), torch.rand(1))
    save_checkpoint(checkpoint, tmp_path / "rng.pt")
    random.random(), np.random.rand(), torch.rand(1)  # move every generator on
    set_global_rng_state(load_checkpoint(tmp_path / "rng.pt")["global_rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_a_version_1_checkpoint_still_loads_and_samples_the_same(tmp_path):
    """tests/data/checkpoint_v1.pt was written by ganforge 0.1.0 (scripts/make_checkpoint_fixture.py)."""
    import numpy as np

    fixture = Path(__file__).parent / "data"
    images = generate(fixture / "checkpoint_v1.pt", n=8, seed=0)
    assert np.array_equal(images.numpy(), np.load(fixture / "checkpoint_v1_samples.npy"))


FIXTURES = Path(__file__).parent / "data"


def format2_run(tmp_path: Path, fixture: str, name: str) -> Path:
    """A copy of the committed run ``fixture`` whose config.yaml points at its data (remade, or committed)."""
    import numpy as np
    import yaml

    run = tmp_path / name
    shutil.copytree(FIXTURES / fixture, run)
    if fixture == "run_format2":
        generator = torch.Generator().manual_seed(7)
        images = torch.randint(0, 256, (48, 1, 8, 8), generator=generator, dtype=torch.uint8).numpy()
        data = tmp_path / "images.npz"
        np.savez(data, images=images, labels=(torch.arange(48) % 3).numpy())
    else:
        data = FIXTURES / "pairs"  # tests/data/pairs: scripts/make_translation_fixtures.py wrote it and the runs
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump(config | {"data": str(data), "out": str(run), "threads": 1}))
    return run


@pytest.mark.parametrize("fixture", ["run_format2", "run_pix2pix_format2", "run_cyclegan_format2"])
def test_a_format_2_run_resumes_bit_exactly(tmp_path, fixture):
    """tests/data/run_format2 is a format-2 run (conditional dcgan, EMA, lazy R1) that ganforge at ec06dff stopped
    at step 3 (its images are remade below); run_pix2pix_format2 and run_cyclegan_format2 (EMA, a history of
    fakes) are format-2 runs that ganforge at e078c8a stopped at step 3 on tests/data/pairs. Each state loads
    whole, and resumed to step 6 it gives exactly what the same state saved by today's code (format 3) gives.
    (Not runs trained here from step 0: their first 3 steps ran on another CPU, whose kernels round differently.)"""
    from ganforge import resume
    from test_training import assert_same_tensors

    runs = {name: format2_run(tmp_path, fixture, name) for name in ("old", "resaved")}
    raw = torch.load(resolve_checkpoint(runs["old"]), weights_only=True)
    fixture_state = load_checkpoint(runs["old"])  # upgraded on reading
    saved = runs["resaved"] / "checkpoints" / "ckpt_00000003.pt"
    written = saved.stat().st_mtime_ns
    resume(runs["resaved"], steps=3)  # no step to take: loads the format-2 state and saves it as today's code does
    assert saved.stat().st_mtime_ns != written
    resaved = load_checkpoint(runs["resaved"])
    assert raw["format_version"] == 2 and torch.load(saved, weights_only=True)["format_version"] == FORMAT_VERSION
    assert resaved["step"] == 3 and resaved["task"] == fixture_state["task"] == raw.get("task", "gan")
    parts = ("generators", "discriminators", "ema_generators", "optimizers", "extras", "noise_rng")
    assert_same_tensors({p: fixture_state.get(p) for p in parts}, {p: resaved.get(p) for p in parts})
    for run in runs.values():
        resume(run, steps=6)
    old, new = load_checkpoint(runs["old"]), load_checkpoint(runs["resaved"])
    assert old["step"] == new["step"] == 6
    assert_same_tensors({p: old.get(p) for p in parts}, {p: new.get(p) for p in parts})
    trained, started = old["generators"], fixture_state["generators"]
    assert not all(torch.equal(trained[n][k], started[n][k]) for n in trained for k in trained[n])  # it trained
