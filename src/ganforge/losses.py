"""Adversarial losses: pure functions of discriminator logits.

Every loss works on logits (``binary_cross_entropy_with_logits`` is the
numerically stable form of BCE on a sigmoid). A new loss is one function here
and one entry in ``LOSSES``.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def discriminator_bce_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-log D(x) - log(1 - D(G(z))): real labelled 1, fake labelled 0 (Goodfellow et al., 2014)."""
    real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real_loss + fake_loss


def generator_nonsaturating_loss(fake_logits: Tensor) -> Tensor:
    """-log D(G(z)): the generator labels its fakes real. Strong gradients early in training."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def generator_minimax_loss(fake_logits: Tensor) -> Tensor:
    """log(1 - D(G(z))): the game's original (saturating) form, for teaching.

    Its gradient vanishes when the discriminator confidently rejects the fakes,
    which is why the non-saturating form is the default.
    """
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


@dataclass(frozen=True)
class GANLoss:
    """The pair of objectives one training run minimises."""

    discriminator: Callable[[Tensor, Tensor], Tensor]  # (real_logits, fake_logits) -> scalar
    generator: Callable[[Tensor], Tensor]  # fake_logits -> scalar


LOSSES: dict[str, GANLoss] = {
    "nonsaturating": GANLoss(discriminator_bce_loss, generator_nonsaturating_loss),
    "minimax": GANLoss(discriminator_bce_loss, generator_minimax_loss),
}
