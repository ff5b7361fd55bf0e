"""Building blocks shared by the conditional models: class-conditional BatchNorm and the projection head."""

import torch
from torch import nn


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


def check_labels(num_classes: int, labels: torch.Tensor | None) -> None:
    """A conditional model needs labels; an unconditional one takes none."""
    if num_classes and labels is None:
        raise ValueError(f"this model is conditional ({num_classes} classes): pass labels")
    if not num_classes and labels is not None:
        raise ValueError("this model is unconditional: it takes no labels")
