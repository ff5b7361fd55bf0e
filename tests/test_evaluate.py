import json

import numpy as np
import pytest
import torch

import ganforge.metrics.evaluation as evaluate_module
from ganforge.cli import main
from ganforge.data import load_torchvision_dataset
from ganforge.metrics import MNISTClassifier, MNISTFeatures, evaluate, load_mnist_classifier
from ganforge.sampling import write_images


@pytest.fixture(scope="module")
def mnist_test(mnist_root):
    return load_torchvision_dataset("mnist", mnist_root, download="never", train=False)


@pytest.mark.slow
def test_the_shipped_classifier_reaches_its_accuracy(mnist_test):
    model = load_mnist_classifier()
    with torch.no_grad():
        predictions = torch.cat([model(b.float() / 255).argmax(1) for b in mnist_test.images.split(1000)])
    assert (predictions == mnist_test.labels).float().mean() >= 0.993


def test_real_images_score_as_real(tmp_path, mnist_root, mnist_test, capsys, monkeypatch):
    """The test set scored against itself: FID ~ 0, precision = recall = 1, all ten classes."""
    write_images(mnist_test.images[:2000], tmp_path / "real.npz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = main(["evaluate", str(tmp_path / "real.npz"), "--n", "2000", "--json", "--data-root", str(mnist_root)])
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert results["fid"] < 1e-6 and results["kid"] < 1e-6
    assert results["precision"] == 1.0 and results["recall"] == 1.0
    assert results["classes_covered"] == 10 and results["class_kl"] < 1e-3  # the classifier errs on a few
    assert {"kid_std", "inception_score", "class_histogram"} <= results.keys()
    assert list((tmp_path / "cache" / "ganforge" / "stats").glob("mnist-mnist-*-2000.pt"))


def test_noise_scores_far_worse_than_digits(tmp_path, mnist_root, mnist_test):
    digits = mnist_test.images[5000:6000]
    noise = torch.randint(0, 256, digits.shape, dtype=torch.uint8)
    write_images(digits, tmp_path / "digits.npz")
    write_images(noise, tmp_path / "noise.npz")
    scores = {
        name: evaluate(tmp_path / f"{name}.npz", n=1000, data_root=str(mnist_root), cache=tmp_path)
        for name in ("digits", "noise")
    }
    assert scores["noise"]["fid"] > 10 * scores["digits"]["fid"]
    assert scores["noise"]["precision"] < 0.1 < 0.7 < scores["digits"]["precision"]
    assert scores["digits"]["inception_score"] > 5 > scores["noise"]["inception_score"]


def test_reference_features_are_cached(tmp_path, mnist_root, mnist_test, monkeypatch):
    write_images(mnist_test.images[:300], tmp_path / "s.npz")
    first = evaluate(tmp_path / "s.npz", n=300, data_root=str(mnist_root), cache=tmp_path)
    monkeypatch.setattr(evaluate_module, "load_reference", lambda *a: pytest.fail("the cache was not used"))
    assert evaluate(tmp_path / "s.npz", n=300, data_root=str(mnist_root), cache=tmp_path) == first


def test_any_extractor_can_be_passed_from_python(tmp_path, mnist_root, mnist_test):
    torch.manual_seed(0)
    extractor = MNISTFeatures(torch.device("cpu"), model=MNISTClassifier(width=4, feature_dim=16))
    write_images(mnist_test.images[:200], tmp_path / "s.npz")
    results = evaluate(tmp_path / "s.npz", n=200, data_root=str(mnist_root), extractor=extractor, cache=tmp_path)
    assert results["fid"] < 1e-6
    assert extractor.weights_hash != MNISTFeatures(torch.device("cpu")).weights_hash


def test_a_trained_run_is_scored_against_its_dataset(tmp_path, mnist_root, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "mlp",
                "--steps",
                "50",
                "--data-root",
                str(mnist_root),
                "--out",
                str(out),
                "--no-progress",
                "--no-tensorboard",
            ]
        )
        == 0
    )
    results = evaluate(out, n=500, data_root=str(mnist_root), cache=tmp_path)
    assert results["reference"].startswith("mnist (test")
    assert results["samples"] == 500 and np.isfinite(results["fid"])
