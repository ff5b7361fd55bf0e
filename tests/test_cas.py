import json

import numpy as np
import pytest
import torch

from ganforge.cli import main
from ganforge.data import load_torchvision_dataset
from ganforge.metrics.cas import SmallClassifier, classification_accuracy_score


def test_the_classifier_maps_any_image_size_to_class_logits():
    for channels, size in ((1, 28), (3, 32), (3, 64)):
        assert SmallClassifier(channels, num_classes=7)(torch.rand(2, channels, size, size)).shape == (2, 7)


@pytest.mark.slow
def test_cas_of_real_images_matches_the_real_baseline_and_wrong_labels_fall_to_chance(mnist_root):
    train = load_torchvision_dataset("mnist", mnist_root, download="never")
    test = load_torchvision_dataset("mnist", mnist_root, download="never", train=False)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(5))
    fake = (train.images[order[:3000]], train.labels[order[:3000]])  # "generated" images that are real
    test_set = (test.images[:2000], test.labels[:2000])
    good = classification_accuracy_score(fake, (train.images, train.labels), test_set, 10, epochs=4)
    assert good["cas_real"] > 0.85 and abs(good["cas"] - good["cas_real"]) < 0.05
    shuffled = (fake[0], fake[1][torch.randperm(3000, generator=torch.Generator().manual_seed(1))])
    bad = classification_accuracy_score(shuffled, (train.images, train.labels), test_set, 10, epochs=4)
    assert bad["cas"] < 0.3 and bad["cas_train_images"] == 3000


@pytest.mark.slow
def test_evaluate_cas_from_the_command_line(tmp_path, mnist_root, capsys):
    """`ganforge evaluate --cas` on a labelled .npz of real digits (CAS near the real baseline), on the same
    digits with their labels shuffled (chance), and its one-line refusals of unlabelled samples."""
    test = load_torchvision_dataset("mnist", mnist_root, download="never", train=False)
    images, labels = test.images[1000:3000], test.labels[1000:3000]
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    for name, these in (("labelled", labels), ("shuffled", shuffled)):
        np.savez(tmp_path / f"{name}.npz", images=images.numpy(), labels=these.numpy())
    np.savez(tmp_path / "unlabelled.npz", images=images.numpy())
    scores = {}
    for name in ("labelled", "shuffled"):
        args = ["evaluate", str(tmp_path / f"{name}.npz"), "--n", "2000", "--cas", "--cas-epochs", "4"]
        assert main([*args, "--json", "--data-root", str(mnist_root)]) == 0
        scores[name] = json.loads(capsys.readouterr().out)
    good, bad = scores["labelled"], scores["shuffled"]
    assert good["cas_real"] > 0.8 and good["cas"] > good["cas_real"] - 0.1  # measured: 0.85 and 0.88 (4 epochs)
    assert bad["cas"] < 0.3 < 0.7 < good["cas"]  # the labels are what CAS scores
    assert good["fid"] == pytest.approx(bad["fid"])  # the images are the same: only CAS may differ
    args = ["evaluate", str(tmp_path / "unlabelled.npz"), "--n", "2000", "--cas", "--data-root", str(mnist_root)]
    assert main(args) == 1
    error = capsys.readouterr().err.strip()
    assert error.endswith(f"--cas needs labelled samples: {tmp_path / 'unlabelled.npz'} has no 'labels' array")


@pytest.mark.slow
def test_evaluate_cas_of_a_run_trains_on_its_samples_as_a_dataset_draws_them(tiny_run, tmp_path, mnist_root):
    """A run's CAS scores the labelled set ``ganforge generate --dataset`` would write (the noise at
    GRAYSCALE_DATASET_NOISE_STD for MNIST) while its other scores stay on the standard noise; --noise-std sets both."""
    from ganforge.commands import evaluate
    from ganforge.config import GRAYSCALE_DATASET_NOISE_STD
    from ganforge.metrics.evaluation import cas_against, evaluate_images
    from ganforge.tasks import load

    run = tiny_run("dcgan", "--conditional")
    model, options = load(run), dict(n=200, cas=True, cas_epochs=1, data_root=str(mnist_root), cache=tmp_path)
    labels = model.labels(200)

    def cas_of(noise_std: float) -> float:
        samples = model.sample(200, seed=0, noise_std=noise_std)
        return cas_against(samples, labels, "mnist", str(mnist_root), 0.0, 1, 0, "cpu")["cas"]

    default = evaluate(run, **options)
    wide = GRAYSCALE_DATASET_NOISE_STD
    assert default["cas_noise_std"] == wide != 1.0 and default["cas"] == cas_of(wide)
    scored = evaluate_images(model.sample(200, seed=0), "mnist", data_root=str(mnist_root), cache=tmp_path)
    assert default["fid"] == pytest.approx(scored["fid"], rel=1e-6)  # FID of the standard noise's samples
    given = evaluate(run, noise_std=1.0, **options)
    assert given["cas_noise_std"] == 1.0 and given["cas"] == cas_of(1.0)
    assert given["fid"] == pytest.approx(default["fid"], rel=1e-6)
