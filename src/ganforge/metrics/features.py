"""Feature extractors: uint8 images (N, C, H, W) -> (features (N, D), class probabilities (N, K) or None).

``EXTRACTORS`` names the built-in ones; ``make_extractor`` picks one for ``--features``.
Each extractor has a ``name`` (written beside every score) and a
``weights_hash`` (cached reference features are keyed by it).
"""

import hashlib
import logging

import torch

from ganforge.data import conform_images
from ganforge.errors import GanforgeError
from ganforge.metrics.inception import InceptionFeatures
from ganforge.metrics.mnist_classifier import load_mnist_classifier

log = logging.getLogger("ganforge")


def weights_hash(module: torch.nn.Module) -> str:
    """A short hash of a module's weights: cached reference features are keyed by it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:12]


class MNISTFeatures:
    """The shipped digits classifier as a feature extractor for (N, C, H, W) uint8 images."""

    name = "mnist"
    classifies_dataset = True  # its classes are MNIST's digits: class coverage is meaningful

    def __init__(self, device: torch.device, model: torch.nn.Module | None = None):
        self.model = (model or load_mnist_classifier()).to(device).eval()
        self.device = device
        self.weights_hash = weights_hash(self.model)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, 128), class probabilities (N, 10)), on the CPU."""
        if tuple(images.shape[1:]) != (1, 28, 28):
            log.warning(f"the digits classifier scores 1x28x28 images: converting {tuple(images.shape[1:])} samples")
            images = conform_images(images, 28, 1)  # (N, 1, 28, 28) uint8
        features, probabilities = [], []
        for batch in images.split(batch_size):
            batch = batch.to(self.device).float() / 255
            batch_features = self.model.features(batch)
            features.append(batch_features.cpu())
            probabilities.append(self.model.head(batch_features).softmax(1).cpu())
        return torch.cat(features), torch.cat(probabilities)


# Each built-in extractor by its --features name: (device, Inception weights file or None) -> extractor.
EXTRACTORS = {
    "mnist": lambda device, inception_weights: MNISTFeatures(device),
    "inception": InceptionFeatures,
}


def make_extractor(features: str, shape: tuple, device: torch.device, inception_weights: str | None = None):
    """The extractor ``features`` names; 'auto' picks the digits classifier for 1x28x28 images, else Inception."""
    if features == "auto":
        features = "mnist" if shape == (1, 28, 28) else "inception"
    if features not in EXTRACTORS:
        raise GanforgeError(f"unknown --features {features!r}; choose from auto, {', '.join(EXTRACTORS)}")
    return EXTRACTORS[features](device, inception_weights)


class ModuleFeatures:
    """Any ``nn.Module`` mapping (N, C, H, W) float images in [0, 1] to (N, D) features, as an extractor."""

    name = "module"
    classifies_dataset = False

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.module, self.device = module.to(device).eval(), device
        self.weights_hash = f"{type(module).__name__}-{weights_hash(module)}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, None]:
        """(features, None): a plain module gives no class probabilities."""
        batches = [self.module(batch.to(self.device).float() / 255).cpu() for batch in images.split(batch_size)]
        return torch.cat(batches).flatten(1), None
