"""SNGAN's ResNet GAN (Miyato et al. 2018): residual generator and spectrally normalised residual discriminator.

Generator: a linear map from the noise to a (width, base, base) map, then one
up-sampling residual block per doubling (BatchNorm, ReLU, nearest up-sampling,
3x3 convolutions, a 1x1 shortcut), then BatchNorm, ReLU, a 3x3 convolution and
tanh. Discriminator: down-sampling residual blocks with spectral normalisation
on every weight, ReLU, global sum pooling and a linear logit. With
``num_classes``, the generator's BatchNorms become class-conditional and the
discriminator adds the projection term (Miyato & Koyama 2018). The base is 7x7
for 28 px and 4x4 for 32 and 64 px, as in ``dcgan``.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge.models.layers import ConditionalBatchNorm2d, Projection, base_resolution, check_labels, class_head


class GeneratorBlock(nn.Module):
    """x -> x up-sampled 2x through two 3x3 convolutions, plus a 1x1-convolved up-sampled shortcut."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int):
        super().__init__()
        norm = (lambda c: ConditionalBatchNorm2d(c, num_classes)) if num_classes else nn.BatchNorm2d
        self.norm1, self.norm2 = norm(in_channels), norm(out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        self.conditional = bool(num_classes)

    def _norm(self, norm: nn.Module, x: torch.Tensor, labels) -> torch.Tensor:
        return norm(x, labels) if self.conditional else norm(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self._norm(self.norm1, x, labels)), scale_factor=2.0)  # (B, C_in, 2H, 2W)
        h = self.conv2(F.relu(self._norm(self.norm2, self.conv1(h), labels)))  # (B, C_out, 2H, 2W)
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0))


class DiscriminatorBlock(nn.Module):
    """x -> x through two spectrally normalised 3x3 convolutions and 2x average pooling, plus a shortcut.

    The first block (``first``) takes the raw image: no ReLU before its first convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True, first: bool = False):
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.shortcut = spectral_norm(nn.Conv2d(in_channels, out_channels, 1))
        self.downsample, self.first = downsample, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        shortcut = x
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            # The first block pools before its shortcut convolution, as in SNGAN's OptimizedBlock.
            shortcut = self.shortcut(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.shortcut(x), 2)
        else:
            shortcut = self.shortcut(x)
        return h + shortcut


class ResNetGenerator(nn.Module):
    """Noise (B, z_dim) [and labels (B,)] -> images (B, C, H, W) in [-1, 1]."""

    output_range = (-1.0, 1.0)  # tanh output: data are scaled to [-1, 1]

    def __init__(
        self,
        z_dim: int = 128,  # length of the noise vector
        width: int = 128,  # channels of every residual block
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels: 28, 32, 64, ...
        num_classes: int = 0,  # classes to condition on (0: unconditional)
    ):
        super().__init__()
        self.z_dim, self.num_classes, self.width = z_dim, num_classes, width
        self.base, doublings = base_resolution(image_size)
        self.project = nn.Linear(z_dim, width * self.base * self.base)
        self.blocks = nn.ModuleList(GeneratorBlock(width, width, num_classes) for _ in range(doublings))
        self.to_image = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, padding=1))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.num_classes, labels)
        x = self.project(z).view(-1, self.width, self.base, self.base)  # (B, width, base, base)
        for block in self.blocks:
            x = block(x, labels)  # doubles H and W
        return torch.tanh(self.to_image(x))  # (B, C, H, W)


class ResNetDiscriminator(nn.Module):
    """Images (B, C, H, W) [and labels (B,)] -> real/fake logits (B,)."""

    def __init__(
        self,
        width: int = 128,  # channels of every residual block
        channels: int = 1,  # image channels: 1 grayscale, 3 RGB
        image_size: int = 28,  # height and width in pixels: 28, 32, 64, ...
        num_classes: int = 0,  # classes to condition on (0: unconditional)
        classifier: bool = False,  # an auxiliary classifier beside the projection (conditional only)
    ):
        super().__init__()
        self.num_classes = num_classes
        _, doublings = base_resolution(image_size)
        # Halve the resolution down to the base, then two blocks at the base resolution (SNGAN's 32 px layout).
        blocks = [DiscriminatorBlock(channels, width, first=True)]
        blocks += [DiscriminatorBlock(width, width) for _ in range(doublings - 1)]
        blocks += [DiscriminatorBlock(width, width, downsample=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = spectral_norm(nn.Linear(width, 1))
        self.projection = Projection(width, num_classes) if num_classes else None
        if self.projection is not None:
            spectral_norm(self.projection.embed)  # in place: the class embedding is normalised too
        self.classifier = class_head(width, num_classes, classifier)
        if self.classifier is not None:
            spectral_norm(self.classifier)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, classify: bool = False):
        """(B,) logits; with ``classify``, (logits, (B, num_classes) class logits of the auxiliary classifier)."""
        check_labels(self.num_classes, labels, classify, self.classifier)
        features = F.relu(self.blocks(images)).sum((2, 3))  # (B, width): global sum pooling
        logits = self.linear(features).squeeze(1)  # (B,)
        if self.projection is None:
            return logits
        logits = logits + self.projection(features, labels)
        return (logits, self.classifier(features)) if classify else logits
