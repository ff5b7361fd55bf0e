"""The image-to-image steps: ``pix2pix_step`` and ``cyclegan_step``, each its paper's algorithm box.

Isola et al. (2017) and Zhu et al. (2017), with the adversarial loss taken
from ``losses.LOSSES`` like every other GAN's. Each is a pure function of the
train state, the recipe and one batch (a, b), shaped as the GAN's
(``tasks/gan/step.py``): networks never compute losses; losses never touch
optimisers; the step joins them.
"""

from dataclasses import dataclass

import torch

from ganforge.losses import GANLoss
from ganforge.training.state import TrainState, optimizer_step


@dataclass
class TranslationRecipe:
    """How each step trains: the adversarial loss and the weights of the reconstruction terms."""

    loss: GANLoss
    amp: object  # autocast for the forward passes, or a null context
    lambda_l1: float = 0.0  # pix2pix: weight of |G(a) - b|
    lambda_cycle: float = 0.0  # CycleGAN: weight of |F(G(a)) - a| + |G(F(b)) - b|
    lambda_identity: float = 0.0  # CycleGAN: weight of |G(b) - b| + |F(a) - a|, as a share of lambda_cycle
    pool_size: int = 0  # CycleGAN: past fakes kept per domain


def frozen(state: TrainState):
    """The discriminators as the generators' update sees them: weights not trained for this pass."""
    for d in state.discriminators.values():
        d.requires_grad_(False)
    return state.frozen_discriminators


def unfreeze(state: TrainState) -> None:
    for d in state.discriminators.values():
        d.requires_grad_(True)


def pix2pix_step(state: TrainState, recipe: TranslationRecipe, a: torch.Tensor, b: torch.Tensor) -> dict:
    """One update of D on (a, b) against (a, G(a)); then one of G: fool D, and stay near b in L1.

    ``a``, ``b``: (B, C, H, W) in [-1, 1], a's target is b. Returns detached scalars.
    """
    generator, discriminator = state.train_generators["AtoB"], state.train_discriminators["B"]
    with recipe.amp:
        fake = generator(a)  # (B, C_out, H, W)
        real_logits = discriminator(torch.cat([a, b], 1))  # (B, 1, h, w) patch logits
        fake_logits = discriminator(torch.cat([a, fake.detach()], 1))
    d_loss = recipe.loss.discriminator(real_logits.float(), fake_logits.float())
    optimizer_step(d_loss, state.optimizers["d"], state.scalers["d"])
    with recipe.amp:
        fooled = frozen(state)["B"](torch.cat([a, fake], 1))
    adversarial = recipe.loss.generator(fooled.float())
    l1 = (fake.float() - b).abs().mean()
    optimizer_step(adversarial + recipe.lambda_l1 * l1, state.optimizers["g"], state.scalers["g"])
    unfreeze(state)
    return {
        "d_loss": d_loss.detach(),
        "g_loss": adversarial.detach(),
        "l1": l1.detach(),
        "d_real_logit": real_logits.detach().float().mean(),
        "d_fake_logit": fake_logits.detach().float().mean(),
    }


def from_history(state: TrainState, domain: str, fakes: torch.Tensor, size: int) -> torch.Tensor:
    """CycleGAN's image pool: each fake is shown as is, or (once the pool is full, half the time) swapped for a
    past one, which it replaces. Keeps the discriminator from chasing only the generator's newest mode."""
    if size == 0:
        return fakes
    coins = torch.rand(len(fakes), generator=state.noise_rng)  # drawn every step, so the stream never drifts
    slots = torch.randint(size, (len(fakes),), generator=state.noise_rng)
    pools = state.extras.setdefault("pools", {})
    pool = pools.get(domain, fakes[:0])
    shown = []
    for fake, coin, slot in zip(fakes, coins.tolist(), slots.tolist()):
        if len(pool) < size:
            pool = torch.cat([pool, fake[None]])
            shown.append(fake)
        elif coin > 0.5:
            shown.append(pool[slot].clone())
            pool[slot] = fake
        else:
            shown.append(fake)
    pools[domain] = pool
    return torch.stack(shown)


def cyclegan_step(state: TrainState, recipe: TranslationRecipe, a: torch.Tensor, b: torch.Tensor) -> dict:
    """One update of both generators (fool both discriminators, translate back to where they started, leave a
    target-domain image unchanged); then one of both discriminators on real images and the history of fakes.

    ``a``, ``b``: (B, C, H, W) in [-1, 1], unrelated images of the two domains. Returns detached scalars.
    """
    to_b, to_a = state.train_generators["AtoB"], state.train_generators["BtoA"]
    identity = recipe.lambda_identity > 0 and a.shape[1] == b.shape[1]  # only between domains of equal channels
    with recipe.amp:
        fake_b, fake_a = to_b(a), to_a(b)
        cycle = (to_a(fake_b).float() - a).abs().mean() + (to_b(fake_a).float() - b).abs().mean()
        same = (to_b(b).float() - b).abs().mean() + (to_a(a).float() - a).abs().mean() if identity else 0.0
        judges = frozen(state)
        adversarial = recipe.loss.generator(judges["B"](fake_b).float()) + recipe.loss.generator(
            judges["A"](fake_a).float()
        )
    g_loss = adversarial + recipe.lambda_cycle * (cycle + recipe.lambda_identity * same)
    optimizer_step(g_loss, state.optimizers["g"], state.scalers["g"])
    unfreeze(state)
    shown_b = from_history(state, "B", fake_b.detach(), recipe.pool_size)
    shown_a = from_history(state, "A", fake_a.detach(), recipe.pool_size)
    with recipe.amp:
        real_b, seen_b = state.train_discriminators["B"](b), state.train_discriminators["B"](shown_b)
        real_a, seen_a = state.train_discriminators["A"](a), state.train_discriminators["A"](shown_a)
    d_loss = recipe.loss.discriminator(real_b.float(), seen_b.float()) + recipe.loss.discriminator(
        real_a.float(), seen_a.float()
    )
    optimizer_step(d_loss, state.optimizers["d"], state.scalers["d"])
    return {
        "d_loss": d_loss.detach(),
        "g_loss": adversarial.detach(),
        "cycle": cycle.detach(),
        "d_real_logit": real_b.detach().float().mean(),
        "d_fake_logit": seen_b.detach().float().mean(),
    }


STEPS = {"pix2pix": pix2pix_step, "cyclegan": cyclegan_step}
