"""Adversarial losses and regularisers: pure functions of discriminator logits (and, for the penalties, of D).

Every loss works on logits (``binary_cross_entropy_with_logits`` is the
numerically stable form of BCE on a sigmoid). A new loss is one function here
and one entry in ``LOSSES``; a penalty (WGAN-GP's gradient penalty, R1) is one
function and one entry in ``PENALTIES``, added to the discriminator's loss by
the training step on the steps it is due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ganforge.lazy import LazyModule

if TYPE_CHECKING:
    from torch import Tensor

# Imported on first use, so that LOSSES (and with it TrainConfig and the command line) loads without torch.
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


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


def discriminator_hinge_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017; SNGAN, BigGAN).

    Logits beyond the margins (real above 1, fake below -1) cost nothing and give no gradient.
    """
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_hinge_loss(fake_logits: Tensor) -> Tensor:
    """-D(G(z)): the generator raises the critic's score of its fakes, with no margin."""
    return -fake_logits.mean()


def discriminator_least_squares_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """(D(x) - 1)^2 / 2 + D(G(z))^2 / 2: LSGAN's 0-1 coding (Mao et al. 2017)."""
    return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits**2).mean()


def generator_least_squares_loss(fake_logits: Tensor) -> Tensor:
    """(D(G(z)) - 1)^2 / 2: the generator pulls its fakes' scores to the real target."""
    return 0.5 * ((fake_logits - 1) ** 2).mean()


def discriminator_wasserstein_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D(G(z)) - D(x): the critic's estimate of the Wasserstein-1 distance, negated (Arjovsky et al. 2017).

    Only meaningful with a Lipschitz constraint: ganforge pairs it with the gradient penalty (``wgan-gp``).
    """
    return fake_logits.mean() - real_logits.mean()


def gradient_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP's penalty E[(||grad_x D(x_hat)||_2 - 1)^2] on random points x_hat between real and fake.

    (Gulrajani et al. 2017.) ``discriminator`` maps images to logits (B,);
    ``fake`` should be detached. Computed in float32, outside autocast, since
    the penalty's second-order gradient is sensitive to rounding.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)  # (B, 1, 1, 1)
    mixed = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(mixed).float().sum(), mixed, create_graph=True)
    return ((gradient.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(real_logits: Tensor, real: Tensor, grad_scale: Tensor | float = 1.0) -> Tensor:
    """R1: E[||grad_x D(x)||^2] on real images (Mescheder et al. 2018).

    ``real`` must have ``requires_grad`` set before ``real_logits = D(real)``.
    The training step scales it by gamma / 2. ``grad_scale``: the float16 loss
    scale under mixed precision, so that the input gradient does not underflow
    on its way back through float16 layers (it is divided out again).
    """
    # d(mean)/d(logit) = scale / B stays inside float16's range where d(sum)/d(logit) = scale may not.
    (gradient,) = torch.autograd.grad(real_logits.float().mean() * grad_scale, real, create_graph=True)
    gradient = gradient.float() * (real.shape[0] / grad_scale)  # (B, C, H, W): the gradient of the sum
    return gradient.flatten(1).pow(2).sum(1).mean()


@dataclass
class PenaltyInputs:
    """What a discriminator penalty may look at, in one discriminator update."""

    critic: Callable[[Tensor], Tensor]  # images -> logits (B,), with the real images' labels
    real: Tensor  # (B, C, H, W); requires grad when a due penalty has ``needs_real_grad``
    fake: Tensor  # (B, C, H, W), detached
    real_logits: Tensor  # (B,): critic(real) as D's loss saw it (augmented when DiffAugment is on)
    scaler: torch.amp.GradScaler  # D's loss scaler: a pass-through unless 16-mixed


@dataclass(frozen=True)
class Penalty:
    """A regulariser added to the discriminator's loss as ``weight * every * fn(inputs)`` on the steps it is due.

    Every penalty here differentiates D's output with respect to its input,
    so D's graph is backpropagated twice (torch.compile cannot do that).
    """

    fn: Callable[[PenaltyInputs], Tensor]  # -> scalar
    needs_real_grad: bool = False  # the real images need requires_grad before D(x) (R1 differentiates that pass)


def gradient_penalty_term(inputs: PenaltyInputs) -> Tensor:
    """WGAN-GP's penalty between the step's real and fake images."""
    return gradient_penalty(inputs.critic, inputs.real, inputs.fake)


def r1_term(inputs: PenaltyInputs) -> Tensor:
    """R1 on the step's real images; under 16-mixed its input gradient is scaled as the loss is."""
    grad_scale = inputs.scaler.scale(torch.ones((), device=inputs.real.device))
    return r1_penalty(inputs.real_logits, inputs.real, grad_scale)


# A new penalty is one function above and one entry here; a loss names its default ones in ``GANLoss.penalties``.
PENALTIES: dict[str, Penalty] = {
    "gradient-penalty": Penalty(gradient_penalty_term),
    "r1": Penalty(r1_term, needs_real_grad=True),  # turned on by --r1 GAMMA (weight gamma / 2), every --r1-every
}


@dataclass(frozen=True)
class GANLoss:
    """The pair of objectives one training run minimises, with the penalties that come with it."""

    discriminator: Callable[[Tensor, Tensor], Tensor]  # (real_logits, fake_logits) -> scalar
    generator: Callable[[Tensor], Tensor]  # fake_logits -> scalar
    penalties: tuple[tuple[str, float], ...] = ()  # (PENALTIES name, weight) added to D's loss at every step
    default_n_critic: int = 1  # discriminator updates per generator update, unless --n-critic says otherwise


LOSSES: dict[str, GANLoss] = {
    "nonsaturating": GANLoss(discriminator_bce_loss, generator_nonsaturating_loss),
    "minimax": GANLoss(discriminator_bce_loss, generator_minimax_loss),
    "hinge": GANLoss(discriminator_hinge_loss, generator_hinge_loss),
    "lsgan": GANLoss(discriminator_least_squares_loss, generator_least_squares_loss),
    # Gulrajani et al.: lambda = 10, five critic updates per generator update.
    "wgan-gp": GANLoss(
        discriminator_wasserstein_loss,
        generator_hinge_loss,
        penalties=(("gradient-penalty", 10.0),),
        default_n_critic=5,
    ),
}
