"""The CIFAR-10 classifier (metrics/cifar10_classifier.py): the network, its training script's augmentation, the
shipped weights' accuracy on the images ``--holdout 0.1`` keeps out, and ``--features cifar10`` (auto for 3x32x32)."""

import importlib.util
import os
from importlib import resources
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import REPO, unavailable
from ganforge.config import DEFAULT_HOLDOUT
from ganforge.data import decode_images, find_images, holdout_indices, load_dataset, split_holdout
from ganforge.metrics import CIFAR10Features, evaluate_images
from ganforge.metrics.cifar10_classifier import WEIGHTS, CIFAR10Classifier, load_cifar10_classifier
from ganforge.metrics.features import auto_features, make_extractor


def find_cifar10() -> Path | None:
    """CIFAR-10's training images in class folders under $GANFORGE_DATA_ROOT or ../shared/data, if there."""
    for root in (os.environ.get("GANFORGE_DATA_ROOT"), REPO.parent / "shared" / "data"):
        if root and (Path(root) / "cifar10" / "train" / "airplane").is_dir():
            return Path(root) / "cifar10" / "train"
    return None


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


SHIPPED_SHA256 = "542d35de3ae8967b58a907e16831c22c93c83c69016721f2ed230efb04b09fca"  # the asset of 7ac2f08 (#17)
# Its logits for golden_images(), measured when it shipped; a retrained classifier must update both.
SHIPPED_LOGITS = [
    [1.263, -0.787, 0.206, 1.326, -0.229, -0.204, -0.303, -0.358, -0.265, -0.719],
    [2.324, -0.432, -0.263, -0.092, -0.603, 0.002, -0.769, -0.700, 0.735, -0.249],
    [-0.707, 0.884, -0.119, 0.680, -1.033, -0.157, 1.190, -0.191, -0.842, 0.203],
    [0.695, -0.934, 0.064, 0.967, 0.332, -0.119, 1.319, -0.447, -0.869, -1.107],
]


def golden_images() -> torch.Tensor:
    """(4, 3, 32, 32) in [0, 1], drawn without a random stream: a grey ramp, a red square on blue, a checkerboard,
    a green ramp on red."""
    ramp = torch.linspace(0, 1, 32)
    images = torch.zeros(4, 3, 32, 32)
    images[0] = ramp.view(1, 1, 32)
    images[1, 2], images[1, 0, 8:24, 8:24] = 0.8, 0.9
    images[2] = ((torch.arange(32).view(32, 1) // 4 + torch.arange(32) // 4) % 2).float()
    images[3, 1], images[3, 0] = ramp.view(32, 1), 0.35
    return images


def test_the_shipped_weights_are_the_trained_ones():
    """A fast check of what --features cifar10 loads (review turn 3, row 26: without CIFAR-10's images, an
    untrained network passed every test): the asset's bytes, and the logits of four fixed images."""
    import hashlib

    with resources.files("ganforge.assets").joinpath(WEIGHTS).open("rb") as file:
        assert hashlib.sha256(file.read()).hexdigest() == SHIPPED_SHA256
    with torch.no_grad():
        logits = load_cifar10_classifier()(golden_images())
    assert logits.tolist() == [pytest.approx(row, abs=2e-3) for row in SHIPPED_LOGITS]
    extractor = make_extractor("cifar10", (3, 32, 32), torch.device("cpu"))
    _, probabilities = extractor((golden_images() * 255).round().to(torch.uint8))
    assert probabilities.argmax(1).tolist() == [3, 0, 6, 6]


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


@pytest.mark.slow
def test_the_shipped_classifier_is_small_and_reaches_88_percent_on_the_held_out_images():
    folder = find_cifar10()
    if folder is None:
        unavailable("needs CIFAR-10's training images in ../shared/data/cifar10/train")
    assert resources.files("ganforge.assets").joinpath(WEIGHTS).stat().st_size < 5_000_000
    files, labels, classes = find_images(folder)
    assert len(files) == 50_000 and len(classes) == 10
    _, held = holdout_indices(len(files), DEFAULT_HOLDOUT)  # the 5,000 images ganforge train keeps out
    images, decoded = decode_images([files[i] for i in held], channels=3, image_size=32)
    assert len(decoded) == 5000
    model = load_cifar10_classifier()
    with torch.no_grad():
        predictions = torch.cat([model(batch.float() / 255).argmax(1) for batch in images.split(500)])
    accuracy = (predictions == torch.tensor(labels)[held]).float().mean().item()
    assert accuracy >= 0.88


def test_holdout_indices_are_the_parts_split_holdout_makes():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous()
    from ganforge.data import ImageDataset

    kept_part, held_part = split_holdout(ImageDataset(images, None, [], "numbers"), 0.25)
    kept, held = holdout_indices(40, 0.25)
    assert len(held) == 10 and sorted(kept.tolist() + held.tolist()) == list(range(40))
    assert torch.equal(kept_part.images[:, 0, 0, 0].long(), kept) and torch.equal(
        held_part.images[:, 0, 0, 0].long(), held
    )


def draw_colour_folder(root: Path, per_class: int = 12) -> Path:
    """Two classes of 32x32 colour images: red-ish and blue-ish squares with noise, in class folders."""
    generator = torch.Generator().manual_seed(0)
    for index, name in enumerate(("red", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = torch.randint(0, 60, (32, 32, 3), generator=generator, dtype=torch.uint8)
            image[..., 0 if index == 0 else 2] += 180
            Image.fromarray(image.numpy()).save(root / name / f"{i}.png")
    return root


def test_auto_scores_3x32x32_images_with_the_cifar10_classifier_and_names_it(tmp_path):
    folder = draw_colour_folder(tmp_path / "colours")
    extractor = make_extractor("auto", (3, 32, 32), torch.device("cpu"))
    assert isinstance(extractor, CIFAR10Features) and extractor.name == "cifar10"
    assert auto_features((3, 64, 64)) == "inception" and auto_features((1, 28, 28)) == "mnist"
    reference = load_dataset(str(folder), image_size=32, channels=3)
    same = evaluate_images(reference.images, str(folder), cache=tmp_path / "cache")
    grey = evaluate_images(
        reference.images.float().mean(1, keepdim=True).expand(-1, 3, -1, -1).to(torch.uint8),
        str(folder),
        cache=tmp_path / "cache",
    )
    assert same["features"] == grey["features"] == "cifar10"
    assert same["fid"] < 1e-3 < grey["fid"]  # the same images score zero; their grey versions do not
    assert {"classifier_score", "classes_covered", "class_kl"} <= same.keys()  # the reference is labelled
    assert "inception_score" not in same


def test_images_of_another_size_are_converted_for_the_classifier_with_a_warning(caplog):
    extractor = CIFAR10Features(torch.device("cpu"), model=CIFAR10Classifier(width=4))
    images = torch.randint(0, 256, (3, 1, 64, 64), dtype=torch.uint8)
    features, probabilities = extractor(images)
    assert features.shape == (3, 32) and probabilities.shape == (3, 10)
    assert torch.allclose(probabilities.sum(1), torch.ones(3))
    assert "the cifar10 classifier scores 3x32x32 images: converting (1, 64, 64)" in caplog.text


def test_fewer_samples_than_reference_images_compare_with_a_random_part_of_every_class(tmp_path):
    """A folder lists its images class by class: the reference for n samples is not its first n images."""
    from ganforge.metrics.evaluation import reference_features

    folder = draw_colour_folder(tmp_path / "colours")  # 12 red, then 12 blue
    extractor = CIFAR10Features(torch.device("cpu"), model=CIFAR10Classifier(width=4))
    entry = reference_features(extractor, str(folder), None, 12, tmp_path / "cache")
    assert len(entry["labels"]) == 12 and 3 <= int(entry["labels"].sum()) <= 9  # both classes, about half each
    again = reference_features(extractor, str(folder), None, 12, tmp_path / "other")
    assert torch.equal(entry["features"], again["features"])  # the same part every time
