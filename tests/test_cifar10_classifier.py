"""The CIFAR-10 classifier (metrics/cifar10_classifier.py) and its training script's augmentation; the weights are
not shipped yet (scripts/train_cifar10_classifier.py trains them)."""

import importlib.util

import torch
import torch.nn.functional as F

from conftest import REPO
from ganforge.metrics.cifar10_classifier import CIFAR10Classifier, load_cifar10_classifier


def load_script():
    spec = importlib.util.spec_from_file_location("train_cifar10", REPO / "scripts" / "train_cifar10_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_classifier_gives_features_and_logits_and_loads_as_the_script_saves_it(tmp_path):
    torch.manual_seed(0)
    model = CIFAR10Classifier(width=8).eval()
    images = torch.rand(5, 3, 32, 32)
    assert model.features(images).shape == (5, 64) and model(images).shape == (5, 10)
    weights = {name: t.half() if t.is_floating_point() else t for name, t in model.state_dict().items()}
    torch.save({"args": {"width": 8, "num_classes": 10}, "weights": weights}, tmp_path / "c.pt")
    loaded = load_cifar10_classifier(tmp_path / "c.pt")
    assert not loaded.training
    rounded = CIFAR10Classifier(width=8).eval()
    rounded.load_state_dict({name: t.float() for name, t in weights.items()})
    assert torch.equal(loaded(images), rounded(images))  # float16 weights, computed in float32
    assert (loaded(images) - model(images)).abs().max() < 0.05


def test_augment_gives_a_crop_of_the_reflected_image_or_its_mirror():
    augment = load_script().augment
    images = torch.rand(6, 3, 32, 32)
    out = augment(images, torch.Generator().manual_seed(0))
    padded = F.pad(images, (4,) * 4, mode="reflect")
    flipped = 0
    for image, crop in zip(padded, out, strict=True):
        windows = [image[:, y : y + 32, x : x + 32] for y in range(9) for x in range(9)]
        plain = any(torch.equal(crop, window) for window in windows)
        mirrored = any(torch.equal(crop, window.flip(-1)) for window in windows)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 0 < flipped < 6
