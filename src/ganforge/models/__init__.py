"""The model registry: one entry per architecture family, with its training recipe.

Every model is a plain ``nn.Module`` usable on its own
(``MLPGenerator(z_dim=100)(torch.randn(16, 100))``). Generators take
``(z_dim, width, channels, image_size, num_classes)`` and discriminators
``(width, channels, image_size, num_classes)``, so the registry can build any
pair from one set of arguments, and a checkpoint can rebuild it from the
arguments it stores. With ``num_classes > 0`` both are class-conditional:
``generator(z, labels)`` and ``discriminator(images, labels)``.
"""

from dataclasses import dataclass

from torch import nn

from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator
from ganforge.models.resnet import ResNetDiscriminator, ResNetGenerator


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
    # Miyato et al. (SNGAN): Adam(2e-4, betas=(0.0, 0.9)), 128 channels.
    "resnet": ModelSpec(ResNetGenerator, ResNetDiscriminator, width=128, lr=2e-4, betas=(0.0, 0.9)),
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
    "ResNetGenerator",
    "ResNetDiscriminator",
    "build_generator",
    "build_discriminator",
]
