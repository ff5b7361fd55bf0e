"""The training step: one discriminator update, then one generator update on the same fakes.

Read ``training_step`` first: it is the algorithm box of Goodfellow et al.
(2014), one generator forward shared by both updates as in the DCGAN reference
code, with the variants as parameters of a ``Recipe``: the loss, the
discriminator's penalties (gradient penalty, R1, each due on its own steps),
several critic updates per generator update, DiffAugment, the class-consistency
term of a conditional model (an auxiliary classifier in D, as AC-GAN's, beside
the projection) and the generator's moving average (EMA). Networks never
compute losses; losses never touch optimisers; this file joins them. Every
other task's step is shaped the same way (``tasks/translation/steps.py``).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ganforge.augment import diff_augment, parse_policy
from ganforge.config import TrainConfig
from ganforge.device import autocast
from ganforge.losses import LOSSES, PENALTIES, GANLoss, Penalty, PenaltyInputs
from ganforge.training.state import TrainState, optimizer_step

G, D = "generator", "discriminator"  # the state's one network of each kind


@dataclass
class Batch:
    """One step's inputs: real images (and labels) and the noise (and labels) of the fakes."""

    real: torch.Tensor  # (B, C, H, W) float, in the generator's output range
    z: torch.Tensor  # (B, z_dim)
    real_labels: torch.Tensor | None = None  # (B,) int64, for conditional models
    fake_labels: torch.Tensor | None = None  # (B,) int64: the classes the generator is asked for


@dataclass(frozen=True)
class ScheduledPenalty:
    """A penalty of the discriminator with its weight and lazy interval."""

    penalty: Penalty
    weight: float
    every: int = 1  # due on steps divisible by this, and then scaled by it (lazy regularisation)


@dataclass
class Recipe:
    """How each step trains: the loss, its penalties and the update schedule."""

    loss: GANLoss
    amp: object  # autocast for the forward passes, or a null context
    world_size: int = 1  # processes that share each batch (DDP): the EMA counts all their images
    n_critic: int = 1  # discriminator updates per generator update
    d_penalties: tuple[ScheduledPenalty, ...] = field(default_factory=tuple)  # added to D's loss when due
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None  # DiffAugment, applied to everything D sees
    class_loss: float = 0.0  # weight of the auxiliary classifier's cross-entropy in both losses (0: off)

    def augment_for_discriminator(self, images: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees of ``images``: augmented when DiffAugment is on."""
        return images if self.augment is None else self.augment(images)


def discriminator_penalties(config: TrainConfig) -> tuple[ScheduledPenalty, ...]:
    """The loss's own penalties (WGAN-GP's gradient penalty) at every step, then R1 when --r1 asks for it."""
    penalties = [ScheduledPenalty(PENALTIES[name], weight) for name, weight in LOSSES[config.loss].penalties]
    gan = config.settings
    if gan.r1 > 0:
        penalties.append(ScheduledPenalty(PENALTIES["r1"], gan.r1 / 2, gan.r1_every))
    return tuple(penalties)


def build_recipe(config: TrainConfig, device: torch.device, world_size: int = 1) -> Recipe:
    """The step's settings from the config."""
    gan = config.settings
    policy = parse_policy(gan.diffaug_policy)
    return Recipe(
        loss=LOSSES[config.loss],
        amp=autocast(device, config.precision),
        world_size=world_size,
        n_critic=gan.n_critic,
        d_penalties=discriminator_penalties(config),
        augment=functools.partial(diff_augment, policy=policy) if gan.diffaug else None,
        class_loss=gan.class_loss if gan.conditional else 0.0,
    )


def judge(discriminator, images: torch.Tensor, labels: torch.Tensor | None, recipe: Recipe) -> tuple:
    """(D's logits (B,), its classifier's class logits (B, K) when the recipe has the class term, else None)."""
    if recipe.class_loss > 0:
        return discriminator(images, labels, classify=True)
    return discriminator(images, labels), None


def discriminator_step(state: TrainState, recipe: Recipe, batch: Batch, fake: torch.Tensor, step: int) -> tuple:
    """Push D(x) up and D(G(z)) down, plus the penalties due at ``step``, plus (with ``class_loss``) the
    cross-entropy of D's classifier on the real images' labels. The fakes are detached."""
    discriminator, view = state.train_discriminators[D], recipe.augment_for_discriminator
    due = [p for p in recipe.d_penalties if step % p.every == 0]
    real = batch.real.detach().requires_grad_(any(p.penalty.needs_real_grad for p in due))
    with recipe.amp:
        real_logits, real_classes = judge(discriminator, view(real), batch.real_labels, recipe)
        fake_logits = discriminator(view(fake.detach()), batch.fake_labels)  # (B,)
    d_loss = recipe.loss.discriminator(real_logits.float(), fake_logits.float())
    d_class = None if real_classes is None else F.cross_entropy(real_classes.float(), batch.real_labels)
    added = torch.zeros((), device=real.device) if d_class is None else recipe.class_loss * d_class  # + penalties
    if due:
        critic = functools.partial(discriminator, labels=batch.real_labels)
        inputs = PenaltyInputs(critic, real, fake.detach(), real_logits, state.scalers["d"])
        for scheduled in due:
            added = added + scheduled.weight * scheduled.every * scheduled.penalty.fn(inputs)
    optimizer_step(d_loss + added, state.optimizers["d"], state.scalers["d"])
    return d_loss, real_logits, fake_logits, d_class


def generator_step(state: TrainState, recipe: Recipe, batch: Batch, fake: torch.Tensor) -> tuple:
    """Push the updated discriminator's D(G(z)) up, and (with ``class_loss``) its classifier's reading of each
    fake towards the class asked for. D's weights are frozen for this pass. Returns (g_loss, the share of fakes
    the classifier reads as their class, or None).

    D runs without its DDP wrapper here: nothing of D is updated, so nothing of D is synchronised.
    """
    state.discriminators[D].requires_grad_(False)
    images = recipe.augment_for_discriminator(fake)
    with recipe.amp:
        fake_logits, fake_classes = judge(state.frozen_discriminators[D], images, batch.fake_labels, recipe)
    g_loss = recipe.loss.generator(fake_logits.float())
    total, obeyed = g_loss, None
    if fake_classes is not None:
        total = g_loss + recipe.class_loss * F.cross_entropy(fake_classes.float(), batch.fake_labels)
        obeyed = (fake_classes.detach().argmax(1) == batch.fake_labels).float().mean()
    optimizer_step(total, state.optimizers["g"], state.scalers["g"])
    state.discriminators[D].requires_grad_(True)
    return g_loss, obeyed


def training_step(state: TrainState, recipe: Recipe, batch: Batch, step: int) -> dict:
    """One discriminator update; then, every ``n_critic``-th step, one generator update on the same fakes.

    ``step`` counts discriminator updates from 0. Returns detached scalar
    tensors: d_loss, g_loss (on generator steps), d_real = mean D(x) and
    d_fake = mean D(G(z)) (as probabilities, before D's update); with the
    class-consistency term also d_class (D's classifier's cross-entropy on the
    real images) and g_class (the share of fakes it reads as the class asked for).
    """
    update_generator = (step + 1) % recipe.n_critic == 0
    with recipe.amp, torch.set_grad_enabled(update_generator):
        fake = state.train_generators[G](batch.z, batch.fake_labels)  # (B, C, H, W)
    d_loss, real_logits, fake_logits, d_class = discriminator_step(state, recipe, batch, fake, step)
    stats = {
        "d_loss": d_loss.detach(),
        "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
    }
    if d_class is not None:
        stats["d_class"] = d_class.detach()
    if update_generator:
        g_loss, obeyed = generator_step(state, recipe, batch, fake)
        stats["g_loss"] = g_loss.detach()
        if obeyed is not None:
            stats["g_class"] = obeyed
        if G in state.averages:
            batch_size = batch.z.shape[0] * recipe.world_size
            state.averages[G].update(state.generators[G], batch_size, images_seen=(step + 1) * batch_size)
    return stats
