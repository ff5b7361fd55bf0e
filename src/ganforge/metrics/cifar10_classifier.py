"""A CIFAR-10 classifier for 32x32 colour images: the feature extractor for their metrics, with no download.

The Inception-v3 FID weights cannot be had on machines without internet, so
ganforge ships this small residual network, trained by
``scripts/train_cifar10_classifier.py`` on the 45,000 CIFAR-10 training images
that ``--holdout 0.1`` leaves for training. Its penultimate layer gives the
features for FID, KID and precision/recall, its softmax the class histogram.
Numbers computed with it are comparable with each other, not with the
Inception FIDs of papers: every result names it (``"features": "cifar10"``).

The architecture is the ResNet-9 of Myrtle.ai's DAWNBench entry (Page 2018) at
half its width: a 3x3 stem, three stages that double the channels and halve the
size (the first and last with a residual pair of convolutions), a global max
pool and a linear head scaled by 1/8.
"""

import torch
from torch import nn

from ganforge.metrics.mnist_classifier import load_classifier

WEIGHTS = "cifar10_classifier.pt"  # in ganforge/assets
MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10's per-channel mean and standard deviation
STD = (0.2470, 0.2435, 0.2616)


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + two 3x3 convolutions of x."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CIFAR10Classifier(nn.Module):
    """Images (B, 3, 32, 32) in [0, 1] -> class logits (B, 10); ``features`` gives (B, 8 * width)."""

    def __init__(self, width: int = 32, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(3, width),  # (B, w, 32, 32)
            conv_bn(width, 2 * width),
            nn.MaxPool2d(2),  # (B, 2w, 16, 16)
            Residual(2 * width),
            conv_bn(2 * width, 4 * width),
            nn.MaxPool2d(2),  # (B, 4w, 8, 8)
            conv_bn(4 * width, 8 * width),
            nn.MaxPool2d(2),  # (B, 8w, 4, 4)
            Residual(8 * width),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),  # (B, 8w)
        )
        self.head = nn.Linear(8 * width, num_classes, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 32, 32) in [0, 1] -> (B, 8 * width) penultimate activations."""
        return self.body((images - self.mean) / self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)) * 0.125  # (B, 10)


def load_cifar10_classifier(path=None) -> CIFAR10Classifier:
    """The shipped classifier (or the weights at ``path``), in eval mode, loaded with weights_only=True."""
    return load_classifier(CIFAR10Classifier, WEIGHTS, path)
