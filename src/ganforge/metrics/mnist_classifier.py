"""A digits classifier for MNIST-like 28x28 grayscale images: the feature extractor for their metrics.

Inception-v3 features mean little on 28x28 digits, so ganforge scores MNIST-like
data with this small CNN, trained by ``scripts/train_mnist_classifier.py`` on
the MNIST training set and shipped with the package. Its penultimate layer gives
the features for FID, KID and precision/recall; its softmax gives the Inception
Score analogue and the class histogram. Numbers computed with it are comparable
with each other, not with Inception FIDs in papers.
"""

from importlib import resources

import torch
from torch import nn

WEIGHTS = "mnist_classifier.pt"  # in ganforge/assets


class MNISTClassifier(nn.Module):
    """Images (B, 1, 28, 28) in [0, 1] -> class logits (B, 10); ``features`` gives (B, feature_dim)."""

    def __init__(
        self,
        width: int = 32,  # channels of the first block; doubled in the second
        feature_dim: int = 128,  # size of the penultimate layer (the features)
        num_classes: int = 10,
    ):
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(1, width),
            *block(width, width),
            nn.MaxPool2d(2),  # (B, w, 14, 14)
            *block(width, 2 * width),
            *block(2 * width, 2 * width),
            nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            nn.Flatten(),
            nn.Linear(2 * width * 49, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, feature_dim) penultimate activations."""
        return self.body((images - 0.1307) / 0.3081)  # MNIST's mean and standard deviation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(images)))  # (B, 10)


def load_mnist_classifier(path=None) -> MNISTClassifier:
    """The shipped classifier (or the weights at ``path``), in eval mode, loaded with weights_only=True."""
    return load_classifier(MNISTClassifier, WEIGHTS, path)


def load_classifier(model_class: type[nn.Module], asset: str, path=None) -> nn.Module:
    """A shipped classifier: ``model_class(**args)`` with the (float16) weights saved as its training script saves
    them, from ``asset`` in ganforge/assets or from ``path``; in float32 and eval mode, read with weights_only=True."""
    if path is None:
        with resources.files("ganforge.assets").joinpath(asset).open("rb") as file:
            state = torch.load(file, map_location="cpu", weights_only=True)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = model_class(**state["args"])
    model.load_state_dict({name: tensor.float() for name, tensor in state["weights"].items()})
    return model.eval()
