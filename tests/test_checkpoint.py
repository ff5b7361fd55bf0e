import os
import pickle

import pytest
import torch

from ganforge.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, load_generator, save_checkpoint
from ganforge.errors import GanforgeError
from ganforge.models import MODELS, build_generator
from ganforge.sampling import generate, generate_images, sample_noise


def fake_checkpoint(model: str, **generator_args) -> tuple[dict, torch.nn.Module]:
    args = dict(z_dim=12, width=8, channels=1, image_size=28) | generator_args
    torch.manual_seed(1)
    generator = build_generator(model, args)
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model,
        "generator_args": args,
        "generator": generator.state_dict(),
    }
    return checkpoint, generator


@pytest.mark.parametrize("model", list(MODELS))
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
