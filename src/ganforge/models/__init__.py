"""The model registry: one entry per architecture family, with its training recipe.

Every model is a plain ``nn.Module`` usable on its own
(``MLPGenerator(z_dim=100)(torch.randn(16, 100))``). Generators take
``(z_dim, width, channels, image_size, num_classes)`` and discriminators
``(width, channels, image_size, num_classes)``, so the registry can build any
pair from one set of arguments, and a checkpoint can rebuild it from the
arguments it stores. With ``num_classes > 0`` both are class-conditional:
``generator(z, labels)`` and ``discriminator(images, labels)``. The
translators (``unet``, ``resnet-blocks``) map images to images instead:
``generator(images)``, with ``(in_channels, out_channels, width, image_size,
norm, dropout)``, and a PatchGAN discriminator of patch logits. Which task
trains which model is the task's to say (``tasks.TASKS[...].models``).

The registry names its classes and imports their modules on use, so that
``MODELS`` (and with it ``TrainConfig`` and the command line) loads without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ganforge.lazy import import_object

if TYPE_CHECKING:
    from torch import nn

CLASSES = {  # each public class and its module, imported when the class is first used
    "MLPGenerator": "ganforge.models.mlp",
    "MLPDiscriminator": "ganforge.models.mlp",
    "DCGANGenerator": "ganforge.models.dcgan",
    "DCGANDiscriminator": "ganforge.models.dcgan",
    "ResNetGenerator": "ganforge.models.resnet",
    "ResNetDiscriminator": "ganforge.models.resnet",
    "UNetGenerator": "ganforge.models.translation",
    "ResNetTranslator": "ganforge.models.translation",
    "PatchDiscriminator": "ganforge.models.translation",
}


def model_class(name: str) -> type[nn.Module]:
    """'DCGANGenerator' -> the class (imports its module, and torch)."""
    return import_object(f"{CLASSES[name]}:{name}")


@dataclass(frozen=True)
class ModelSpec:
    """An architecture family and the optimiser recipe it was published with."""

    generator_name: str  # a key of CLASSES
    discriminator_name: str  # a key of CLASSES
    width: int  # default capacity (hidden units or base channels)
    lr: float  # Adam learning rate for both networks
    betas: tuple[float, float]  # Adam betas
    batch_size: int = 128  # images per step
    ema: bool = False  # sample from the generator's moving average
    conditional: bool = False  # condition on the labels when the data has them (two classes or more)

    @property
    def generator(self) -> type[nn.Module]:
        """The generator class (imports its module, and torch)."""
        return model_class(self.generator_name)

    @property
    def discriminator(self) -> type[nn.Module]:
        """The discriminator class (imports its module, and torch)."""
        return model_class(self.discriminator_name)


MODELS: dict[str, ModelSpec] = {
    # The classic recipe: Adam(1e-3) with default betas, batch 128, nothing else.
    "mlp": ModelSpec("MLPGenerator", "MLPDiscriminator", width=128, lr=1e-3, betas=(0.9, 0.999)),
    # Radford et al.: Adam(2e-4, betas=(0.5, 0.999)); batch 64, EMA and class conditioning chosen by
    # benchmarks/quality.py (docs/quality.md): the best MNIST quality per CPU-minute measured.
    "dcgan": ModelSpec(
        "DCGANGenerator",
        "DCGANDiscriminator",
        width=64,
        lr=2e-4,
        betas=(0.5, 0.999),
        batch_size=64,
        ema=True,
        conditional=True,
    ),
    # Miyato et al. (SNGAN): Adam(2e-4, betas=(0.0, 0.9)), 128 channels, batch 64, conditional with projection.
    "resnet": ModelSpec(
        "ResNetGenerator",
        "ResNetDiscriminator",
        width=128,
        lr=2e-4,
        betas=(0.0, 0.9),
        batch_size=64,
        ema=True,
        conditional=True,
    ),
    # Image-to-image translators (--task pix2pix, cyclegan): Adam(2e-4, betas=(0.5, 0.999)) as Isola et al. and
    # Zhu et al. Batches of 16 and 4 at 64 px rather than their 1: instance norm makes the batch size no part of
    # the model, and at 64 px on 2 CPU cores a batch of 16 trains 5x the images per second of a batch of 1
    # (benchmarks/translation.py, docs/translation.md). The tasks scale them by the crop's pixels
    # (tasks/translation's batch_for_size): 1 at 256 px, as the papers; from 256 px they halve the width too
    # (width_for_size: 32), which at batch 1 on a CPU trains 4x the updates (docs/translation.md).
    "unet": ModelSpec("UNetGenerator", "PatchDiscriminator", width=64, lr=2e-4, betas=(0.5, 0.999), batch_size=16),
    "resnet-blocks": ModelSpec(
        "ResNetTranslator", "PatchDiscriminator", width=64, lr=2e-4, betas=(0.5, 0.999), batch_size=4
    ),
}


def build_generator(model: str, args: dict) -> nn.Module:
    """Build the generator of registered ``model`` from its constructor arguments."""
    return MODELS[model].generator(**args)


def build_discriminator(model: str, args: dict) -> nn.Module:
    """Build the discriminator of registered ``model`` from its constructor arguments."""
    return MODELS[model].discriminator(**args)


def __getattr__(name: str):
    """``from ganforge.models import DCGANGenerator`` imports that architecture's module (PEP 562)."""
    if name in CLASSES:
        return model_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(CLASSES))


__all__ = [
    "MODELS",
    "ModelSpec",
    *CLASSES,
    "build_generator",
    "build_discriminator",
]
