"""The classic MLP GAN: the first network most people train on MNIST.

Generator 100 -> 128 -> 784 (ReLU, then sigmoid, reshaped to 1x28x28) and
discriminator 784 -> 128 -> 1. The discriminator returns a logit; the sigmoid
lives in the loss. Other image sizes and channel counts change only the input
and output sizes.
"""

import torch
from torch import nn


class MLPGenerator(nn.Module):
    """Noise (B, z_dim) -> images (B, C, H, W) in [0, 1]."""

    output_range = (0.0, 1.0)  # sigmoid output: data are scaled to [0, 1]

    def __init__(
        self,
        z_dim: int = 100,  # length of the noise vector
        width: int = 128,  # hidden units
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels
    ):
        super().__init__()
        self.z_dim = z_dim
        self.image_shape = (channels, image_size, image_size)
        self.net = nn.Sequential(
            nn.Linear(z_dim, width),
            nn.ReLU(),
            nn.Linear(width, channels * image_size * image_size),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    """Images (B, C, H, W) -> real/fake logits (B,)."""

    def __init__(
        self,
        width: int = 128,  # hidden units
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels
    ):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(channels * image_size * image_size, width),
            nn.ReLU(),
            nn.Linear(width, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.flatten(1)).squeeze(1)  # (B,)
