"""The model registry: one entry per architecture family, with its training recipe.

Every model is a plain ``nn.Module`` usable on its own
(``MLPGenerator(z_dim=100)(torch.randn(16, 100))``). Generators take
``(z_dim, width, channels, image_size)`` and discriminators
``(width, channels, image_size)``, so the registry can build any pair from
one set of arguments, and a checkpoint can rebuild it from the arguments it
stores.
"""

from dataclasses import dataclass

from torch import nn

from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator


@dataclass(frozen=True)
class ModelSpec:
    """An architecture family and the optimiser recipe it was published with."""

    generator: type[nn.Module]
    discriminator: type[nn.Module]
    width: int  # default capacity (hidden units or base channels)
    lr: float  # Adam learning rate for both networks
    betas: tuple[float, float]  # Adam betas


MODELS: dict[str, ModelSpec] = {
    # The classic recipe: Adam(1e-3) with default betas.
    "mlp": ModelSpec(MLPGenerator, MLPDiscriminator, width=128, lr=1e-3, betas=(0.9, 0.999)),
    # Radford et al.: Adam(2e-4, betas=(0.5, 0.999)).
    "dcgan": ModelSpec(DCGANGenerator, DCGANDiscriminator, width=64, lr=2e-4, betas=(0.5, 0.999)),
}


def build_generator(model: str, args: dict) -> nn.Module:
    """Build the generator of registered ``model`` from its constructor arguments."""
    return MODELS[model].generator(**args)


def build_discriminator(model: str, args: dict) -> nn.Module:
    """Build the discriminator of registered ``model`` from its constructor arguments."""
    return MODELS[model].discriminator(**args)


__all__ = [
    "MODELS",
    "ModelSpec",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "build_generator",
    "build_discriminator",
]
