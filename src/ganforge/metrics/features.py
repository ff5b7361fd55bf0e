"""Feature extractors: uint8 images (N, C, H, W) -> (features (N, D), class probabilities (N, K) or None).

``EXTRACTORS`` names the built-in ones; ``make_extractor`` picks one for ``--features``.
Each extractor has a ``name`` (written beside every score) and a
``weights_hash`` (cached reference features are keyed by it).
"""

import hashlib
import logging

import torch
import torch.nn.functional as F

from ganforge.data import convert_channels
from ganforge.errors import GanforgeError
from ganforge.metrics.cifar10_classifier import load_cifar10_classifier
from ganforge.metrics.inception import InceptionFeatures
from ganforge.metrics.mnist_classifier import load_mnist_classifier
from ganforge.progress import progress_bar

log = logging.getLogger("ganforge")


def weights_hash(module: torch.nn.Module) -> str:
    """A short hash of a module's weights: cached reference features are keyed by it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:12]


def to_shape(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """(N, C, H, W) uint8 samples in ``channels`` and at ``size`` square, as the metrics compare them: the shorter
    side resized (bilinear, antialiased) and the centre cropped. Part of how a score is defined (every published
    score was computed this way), so it stays apart from how data are read (``data.images.fit``)."""
    images = convert_channels(images, channels)
    if images.shape[-2:] == (size, size):
        return images
    return torch.cat([resize_square(chunk, size) for chunk in images.split(4096)])


def resize_square(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize the shorter side to ``image_size`` (antialiased bilinear) and center-crop."""
    height, width = images.shape[-2:]
    scale = image_size / min(height, width)
    size = (max(image_size, round(height * scale)), max(image_size, round(width * scale)))
    resized = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    cropped = resized[..., top : top + image_size, left : left + image_size]
    return cropped.round().clamp(0, 255).to(torch.uint8)


class ClassifierFeatures:
    """A classifier shipped with ganforge as a feature extractor for (N, C, H, W) uint8 images.

    Its penultimate layer gives the features, its softmax the class
    probabilities. Images of another size or channel count are converted to
    the ``shape`` it was trained on, with a warning.
    """

    classifies_dataset = True  # its classes are the dataset's: class coverage is meaningful
    classes: tuple[str, ...] = ()  # its classes' names, in the order of its outputs

    def __init__(self, name: str, shape: tuple[int, int, int], model: torch.nn.Module, device: torch.device):
        self.name, self.shape = name, shape
        self.model = model.to(device).eval()
        self.device = device
        self.weights_hash = weights_hash(self.model)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, D), class probabilities (N, K)), on the CPU."""
        if tuple(images.shape[1:]) != self.shape:
            channels, size, _ = self.shape
            shape = "x".join(map(str, self.shape))
            log.warning(
                f"the {self.name} classifier scores {shape} images: converting {tuple(images.shape[1:])} samples"
            )
            images = to_shape(images, size, channels)
        features, probabilities = [], []
        with progress_bar(len(images), f"features ({self.name})") as bar:
            for batch in images.split(batch_size):
                batch_features = self.model.features(batch.to(self.device).float() / 255)
                features.append(batch_features.cpu())
                probabilities.append(self.model.head(batch_features).softmax(1).cpu())
                bar.update(len(batch))
        return torch.cat(features), torch.cat(probabilities)

    def reads_classes(self, names: list[str]) -> bool:
        """Whether a run's class names are this classifier's, in its order, so that it can tell whether a sample
        is the class it was asked for: "0 - zero" (torchvision's MNIST) reads as "0", a folder "Airplane" as
        "airplane"."""
        return tuple(str(name).split(" - ")[0].strip().lower() for name in names) == self.classes


class MNISTFeatures(ClassifierFeatures):
    """The shipped digits classifier (``metrics.mnist_classifier``): 1x28x28 images, 128 features, 10 digits."""

    classes = tuple(str(digit) for digit in range(10))

    def __init__(self, device: torch.device, model: torch.nn.Module | None = None):
        super().__init__("mnist", (1, 28, 28), model or load_mnist_classifier(), device)


class CIFAR10Features(ClassifierFeatures):
    """The shipped CIFAR-10 classifier (``metrics.cifar10_classifier``): 3x32x32 images, 256 features, 10 classes.
    Its scores are named "cifar10": they are not the Inception FIDs of papers."""

    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def __init__(self, device: torch.device, model: torch.nn.Module | None = None):
        super().__init__("cifar10", (3, 32, 32), model or load_cifar10_classifier(), device)


# Each built-in extractor by its --features name: (device, Inception weights file or None) -> extractor.
EXTRACTORS = {
    "mnist": lambda device, inception_weights: MNISTFeatures(device),
    "cifar10": lambda device, inception_weights: CIFAR10Features(device),
    "inception": InceptionFeatures,
}


def make_extractor(features: str, shape: tuple, device: torch.device, inception_weights: str | None = None):
    """The extractor ``features`` names; 'auto' picks the classifier trained on images of ``shape`` (digits for
    1x28x28, CIFAR-10 for 3x32x32), else Inception."""
    if features == "auto":
        features = auto_features(shape)
    if features not in EXTRACTORS:
        raise GanforgeError(f"unknown --features {features!r}; choose from auto, {', '.join(EXTRACTORS)}")
    return EXTRACTORS[features](device, inception_weights)


def auto_features(shape: tuple) -> str:
    """What ``--features auto`` means for images of ``shape`` (C, H, W)."""
    return {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}.get(tuple(shape), "inception")


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
        batches = []
        with progress_bar(len(images), "features") as bar:
            for batch in images.split(batch_size):
                batches.append(self.module(batch.to(self.device).float() / 255).cpu())
                bar.update(len(batch))
        return torch.cat(batches).flatten(1), None
