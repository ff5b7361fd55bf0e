"""The classic MLP GAN: the first network most people train on MNIST.

Generator 100 -> 128 -> 784 (ReLU, then sigmoid, reshaped to 1x28x28) and
discriminator 784 -> 128 -> 1. The discriminator returns a logit; the sigmoid
lives in the loss. Other image sizes and channel counts change only the input
and output sizes. With ``num_classes`` the generator takes a learnt label
embedding beside the noise and the discriminator adds a projection term.
"""

import torch
from torch import nn

from ganforge.models.layers import LabelEmbedding, Projection, check_labels, class_head


class MLPGenerator(nn.Module):
    """Noise (B, z_dim) -> images (B, C, H, W) in [0, 1]."""

    output_range = (0.0, 1.0)  # sigmoid output: data are scaled to [0, 1]

    def __init__(
        self,
        z_dim: int = 100,  # length of the noise vector
        width: int = 128,  # hidden units
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels
        num_classes: int = 0,  # classes to condition on (0: unconditional)
    ):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.image_shape = (channels, image_size, image_size)
        self.embed = LabelEmbedding(num_classes, z_dim) if num_classes else None  # a short code beside the noise
        label_dim = self.embed.embedding_dim if num_classes else 0
        self.net = nn.Sequential(
            nn.Linear(z_dim + label_dim, width),
            nn.ReLU(),
            nn.Linear(width, channels * image_size * image_size),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.num_classes, labels)
        if self.embed is not None:
            z = self.embed.join(z, labels)  # (B, z_dim + label_dim)
        return self.net(z).view(-1, *self.image_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    """Images (B, C, H, W) -> real/fake logits (B,)."""

    def __init__(
        self,
        width: int = 128,  # hidden units
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels
        num_classes: int = 0,  # classes to condition on (0: unconditional)
        classifier: bool = False,  # an auxiliary classifier beside the projection (conditional only)
    ):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(channels * image_size * image_size, width),
            nn.ReLU(),
            nn.Linear(width, 1),
        )

        self.projection = Projection(width, num_classes) if num_classes else None
        self.classifier = class_head(width, num_classes, classifier)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, classify: bool = False):
        """(B,) logits; with ``classify``, (logits, (B, num_classes) class logits of the auxiliary classifier)."""
        check_labels(self.num_classes, labels, classify, self.classifier)
        hidden = self.net[:-1](images.flatten(1))  # (B, width)
        logits = self.net[-1](hidden).squeeze(1)  # (B,)
        if self.projection is None:
            return logits
        logits = logits + self.projection(hidden, labels)
        return (logits, self.classifier(hidden)) if classify else logits
