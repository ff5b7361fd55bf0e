"""Building blocks shared by the models: the label embedding, class-conditional BatchNorm, the projection head
and the auxiliary classifier."""

import torch
from torch import nn


def base_resolution(image_size: int) -> tuple[int, int]:
    """Split image_size into (base, doublings): 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)."""
    base, doublings = image_size, 0
    while base > 7 and base % 2 == 0:
        base, doublings = base // 2, doublings + 1
    if doublings == 0:
        raise ValueError(
            f"dcgan and resnet need an image size that halves to 7 pixels or fewer (e.g. 28, 32, 64); got {image_size}"
        )
    return base, doublings


class LabelEmbedding(nn.Embedding):
    """A short learnt code per class, put beside the generator's noise.

    min(num_classes, z_dim) numbers: long enough to tell the classes apart,
    short enough that the noise still carries most of the first layer's input
    (a long one lets G ignore the noise).
    """

    def __init__(
        self,
        num_classes: int,
        z_dim: int,  # the noise's length, which bounds the code's
    ):
        super().__init__(num_classes, min(num_classes, z_dim))

    def join(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) noise, (B,) labels -> (B, z_dim + embedding_dim)."""
        return torch.cat([z, self(labels)], dim=1)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017; SNGAN, BigGAN)."""

    def __init__(
        self,
        num_features: int,  # channels
        num_classes: int,  # one (scale, shift) pair per class
    ):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.scale = nn.Embedding(num_classes, num_features)
        self.shift = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale(labels)[:, :, None, None], self.shift(labels)[:, :, None, None]  # (B, C, 1, 1)
        return self.norm(x) * scale + shift


class Projection(nn.Module):
    """The projection discriminator's class term <embed(y), h> (Miyato & Koyama 2018), added to D's logit."""

    def __init__(
        self,
        num_features: int,  # length of the pooled features h
        num_classes: int,
    ):
        super().__init__()
        self.embed = nn.Embedding(num_classes, num_features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, F) pooled features, (B,) labels -> (B,) class term."""
        return (self.embed(labels) * features).sum(1)


def class_head(num_features: int, num_classes: int, classifier: bool) -> nn.Linear | None:
    """The discriminator's auxiliary classifier (Odena et al. 2017, AC-GAN), beside the projection: class logits
    from the pooled features, trained on the real images' labels, which the generator's fakes must then match
    (the step's class-consistency term). None when unconditional or not asked for."""
    if not (num_classes and classifier):
        return None
    return nn.Linear(num_features, num_classes)


def check_labels(
    num_classes: int, labels: torch.Tensor | None, classify: bool = False, classifier: nn.Module | None = None
) -> None:
    """A conditional model needs labels; an unconditional one takes none; only a discriminator built with its
    auxiliary classifier can ``classify``."""
    if num_classes and labels is None:
        raise ValueError(f"this model is conditional ({num_classes} classes): pass labels")
    if not num_classes and labels is not None:
        raise ValueError("this model is unconditional: it takes no labels")
    if classify and classifier is None:
        raise ValueError("this discriminator has no auxiliary classifier: build it with classifier=True")
