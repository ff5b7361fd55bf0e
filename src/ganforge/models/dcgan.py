"""DCGAN (Radford, Metz & Chintala, 2016), sized for the data.

Strided transposed convolutions with BatchNorm and ReLU up to a tanh output in
the generator; strided convolutions with LeakyReLU(0.2) (BatchNorm after the
first layer) down to one logit in the discriminator; weights drawn from
N(0, 0.02). The stack starts from a small base resolution: 7x7 for the native
28x28 of MNIST-like data, 4x4 for 32 and 64 pixels, and doubles it until the
image size is reached, so MNIST is trained at 28x28 rather than upscaled to 64.

With ``num_classes``, the generator takes a learnt label embedding beside the
noise (Mirza & Osindero 2014) and the discriminator adds the projection term
<embed(y), sum-pooled features> to its logit (Miyato & Koyama 2018); with
``classifier`` too, it also reads the class from those features (AC-GAN's
auxiliary classifier, ``forward(..., classify=True)``).
"""

import torch
from torch import nn

from ganforge.models.layers import LabelEmbedding, Projection, base_resolution, check_labels, class_head


def init_dcgan_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """Noise (B, z_dim) -> images (B, C, H, W) in [-1, 1]."""

    output_range = (-1.0, 1.0)  # tanh output: data are scaled to [-1, 1]

    def __init__(
        self,
        z_dim: int = 100,  # length of the noise vector
        width: int = 64,  # channels of the last hidden layer; doubled at each lower resolution
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels: 28, 32, 64, ...
        num_classes: int = 0,  # classes to condition on (0: unconditional)
    ):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        base, doublings = base_resolution(image_size)
        hidden = width * 2 ** (doublings - 1)
        self.embed = LabelEmbedding(num_classes, z_dim) if num_classes else None
        label_dim = self.embed.embedding_dim if num_classes else 0
        # Project the noise to a (hidden, base, base) map.
        layers = [
            nn.ConvTranspose2d(z_dim + label_dim, hidden, base, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(True),
        ]
        for _ in range(doublings - 1):
            layers += [
                nn.ConvTranspose2d(hidden, hidden // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(hidden // 2),
                nn.ReLU(True),
            ]
            hidden //= 2
        layers += [nn.ConvTranspose2d(hidden, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.num_classes, labels)
        if self.embed is not None:
            z = self.embed.join(z, labels)  # (B, z_dim + label_dim)
        return self.net(z[:, :, None, None])  # (B, z_dim', 1, 1) -> (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """Images (B, C, H, W) -> real/fake logits (B,)."""

    def __init__(
        self,
        width: int = 64,  # channels of the first layer; doubled at each halving
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels: 28, 32, 64, ...
        num_classes: int = 0,  # classes to condition on (0: unconditional)
        classifier: bool = False,  # an auxiliary classifier beside the projection (conditional only)
    ):
        super().__init__()
        self.num_classes = num_classes
        base, doublings = base_resolution(image_size)
        # No BatchNorm on the input layer, as in the paper.
        layers = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        hidden = width
        for _ in range(doublings - 1):
            layers += [
                nn.Conv2d(hidden, hidden * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(hidden * 2),
                nn.LeakyReLU(0.2, True),
            ]
            hidden *= 2
        # A (hidden, base, base) map -> one logit.
        layers += [nn.Conv2d(hidden, 1, base, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.projection = Projection(hidden, num_classes) if num_classes else None
        self.classifier = class_head(hidden, num_classes, classifier)
        self.apply(init_dcgan_weights)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, classify: bool = False):
        """(B,) logits; with ``classify``, (logits, (B, num_classes) class logits of the auxiliary classifier)."""
        check_labels(self.num_classes, labels, classify, self.classifier)
        features = self.net[:-1](images)  # (B, hidden, base, base)
        logits = self.net[-1](features).flatten()  # (B,)
        if self.projection is None:
            return logits
        pooled = features.sum((2, 3))  # (B, hidden)
        logits = logits + self.projection(pooled, labels)
        return (logits, self.classifier(pooled)) if classify else logits
