import pytest
import torch

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
