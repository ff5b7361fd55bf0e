"""ganforge evaluate: score samples (from a run, an .npz or a folder) against a reference set.

The reference set's features are computed once and cached under
``~/.cache/ganforge/stats``, keyed by dataset, split, extractor, its weights'
hash and the number of images.
"""

import hashlib
import logging
import os
from pathlib import Path

import torch

from ganforge.checkpoint import load_checkpoint, resolve_checkpoint
from ganforge.config import BUILTIN_DATASETS
from ganforge.config import FEATURE_EXTRACTORS as EXTRACTORS
from ganforge.data import (
    ImageDataset,
    conform_images,
    load_image_folder,
    load_npz,
    load_torchvision_dataset,
    split_holdout,
)
from ganforge.device import resolve_device
from ganforge.errors import GanforgeError
from ganforge.metrics.cas import classification_accuracy_score
from ganforge.metrics.inception import InceptionFeatures
from ganforge.metrics.mnist_classifier import load_mnist_classifier
from ganforge.metrics.scores import class_coverage, fid, inception_score, kid, precision_recall
from ganforge.rundir import is_run
from ganforge.sampling import balanced_labels, generate, generate_images, sample_noise

log = logging.getLogger("ganforge")

MIN_SAMPLES = 10  # fewer gives a meaningless covariance (and k-NN radii with k = 3)


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


def make_extractor(features: str, shape: tuple, device: torch.device, inception_weights: str | None = None):
    """The extractor ``features`` names; 'auto' picks the digits classifier for 1x28x28 images, else Inception."""
    if features not in EXTRACTORS:
        raise GanforgeError(f"unknown --features {features!r}; choose from {', '.join(EXTRACTORS)}")
    if features == "mnist" or (features == "auto" and shape == (1, 28, 28)):
        return MNISTFeatures(device)
    return InceptionFeatures(device, inception_weights)


def load_samples(source: str | Path, n: int, seed: int, device: torch.device) -> torch.Tensor:
    """(N, C, H, W) uint8 samples: generated from a run/checkpoint, or read from an .npz or a folder."""
    path = Path(source)
    if path.suffix == ".npz":
        return load_npz(path).images[:n]
    if path.is_dir() and not is_run(path):
        return load_image_folder(path, image_size=None, channels=None).images[:n]
    return generate(path, n=n, seed=seed, device=str(device.type))


def default_reference(source: str | Path) -> tuple[str, float]:
    """(reference, held-out share): a run's own data (its held-out part for a folder or .npz), else mnist."""
    path = Path(source)
    if path.suffix == ".npz" or (path.is_dir() and not is_run(path)):
        return "mnist", 0.0
    config = load_checkpoint(resolve_checkpoint(path))["config"]
    data = config.get("data", "mnist")
    if data not in BUILTIN_DATASETS and not Path(data).exists():
        raise GanforgeError(f"the run's data {data} is gone: pass --reference")
    return data, config.get("holdout") or 0.0


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


def load_reference(
    reference: str, data_root: str | None, holdout: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(images, labels, split) of the reference set: a built-in dataset's test split, an .npz or a folder.

    With ``holdout``, only the part of a folder or .npz that training held out (``data.split_holdout``).
    """
    if reference in BUILTIN_DATASETS:
        root = data_root or os.environ.get("GANFORGE_DATA_ROOT")
        if not root or not Path(root).is_dir():
            raise GanforgeError(f"the {reference} reference needs its test split: pass --data-root DIR")
        dataset = load_torchvision_dataset(reference, Path(root), download="never", train=False)
        return dataset.images, dataset.labels, "test"
    path = Path(reference)
    if path.suffix == ".npz":
        dataset = load_npz(path)
    elif path.is_dir():
        dataset = load_image_folder(path, image_size=None, channels=None)
    else:
        raise GanforgeError(f"--reference {reference!r} is neither {', '.join(BUILTIN_DATASETS)}, an .npz nor a folder")
    if holdout:
        dataset = split_holdout(dataset, holdout)[1]
        return dataset.images, dataset.labels, "held-out"
    return dataset.images, dataset.labels, "all"


def reference_features(
    extractor, reference: str, data_root: str | None, n: int, cache: Path, holdout: float = 0.0
) -> dict:
    """Features, probabilities and labels of up to ``n`` reference images, cached on disk."""
    part = f"-heldout{holdout:g}" if holdout else ""
    key = f"{Path(reference).name}{part}-{extractor.name}-{extractor.weights_hash}-{n}"
    path = cache / f"{key}.pt"
    if path.is_file():
        log.info(f"reference features: {path} (cached)")
        return torch.load(path, weights_only=True)
    images, labels, split = load_reference(reference, data_root, holdout)
    log.info(f"reference features: {min(n, len(images)):,} {reference} {split} images, cached to {path}")
    features, probabilities = extractor(images[:n])
    entry = {
        "features": features,
        "probabilities": probabilities,
        "split": split,
        "labels": labels[:n] if labels is not None else None,
    }
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(entry, path)
    return entry


def evaluate(
    source: str | Path,
    n: int = 10000,  # samples to score (and reference images to compare with)
    reference: str | None = None,  # dataset name, .npz or folder; None: the run's dataset, else mnist
    seed: int = 0,  # noise seed when sampling a generator
    device: str = "auto",
    cas: bool = False,  # also the Classification Accuracy Score (labelled samples: a conditional run or .npz)
    cas_epochs: int = 3,  # epochs of each CAS classifier
    **options,  # features, data_root, extractor, cache: as for evaluate_images
) -> dict:
    """Score samples from a run, a checkpoint, an .npz or a folder: FID, KID, IS, precision/recall, coverage.

    With ``cas``, also the Classification Accuracy Score (``metrics.cas``)
    against a classifier trained on as many real training images.
    """
    samples = load_samples(source, n, seed, resolve_device(device))
    log.info(f"scoring {len(samples):,} samples {tuple(samples.shape[1:])} from {source}")
    reference, holdout = (reference, 0.0) if reference else default_reference(source)
    results = evaluate_images(samples, reference, device=device, holdout=holdout, **options)
    if cas:
        labels = sample_labels(source, len(samples))
        results |= cas_against(samples, labels, reference, options.get("data_root"), holdout, cas_epochs, seed, device)
    return results


def sample_labels(source: str | Path, n: int) -> torch.Tensor:
    """The labels of ``load_samples``' images: an .npz's own, or the balanced classes a conditional run samples."""
    path = Path(source)
    if path.suffix == ".npz":
        labels = load_npz(path).labels
        if labels is None:
            raise GanforgeError(f"--cas needs labelled samples: {source} has no 'labels' array")
        return labels[:n]
    if path.is_dir() and not is_run(path):
        raise GanforgeError("--cas needs labelled samples: a conditional run, a checkpoint or an .npz with labels")
    num_classes = load_checkpoint(resolve_checkpoint(path))["generator_args"].get("num_classes", 0)
    if not num_classes:
        raise GanforgeError(f"--cas needs labelled samples, and {source} holds an unconditional generator")
    return balanced_labels(n, num_classes)


def cas_against(
    samples: torch.Tensor,
    labels: torch.Tensor,
    reference: str,
    data_root: str | None,
    holdout: float,
    epochs: int,
    seed: int,
    device: str,
) -> dict:
    """CAS of labelled samples: the reference's training part to compare with, its test part to test on."""
    test_images, test_labels, _ = load_reference(reference, data_root, holdout)
    if test_labels is None:
        raise GanforgeError(f"--cas needs a labelled reference; {reference} has no labels")
    if reference in BUILTIN_DATASETS:
        train_set = load_torchvision_dataset(reference, Path(data_root or os.environ["GANFORGE_DATA_ROOT"]), "never")
    else:
        train_set = split_holdout(
            load_npz(Path(reference)) if reference.endswith(".npz") else load_image_folder(Path(reference), None, None),
            holdout,
        )[0]
    num_classes = max(int(test_labels.max()), int(labels.max())) + 1
    log.info(f"CAS: training classifiers on {len(samples):,} generated and {len(samples):,} real images")
    return classification_accuracy_score(
        (samples, labels),
        (train_set.images, train_set.labels),
        (conform_images(test_images, samples.shape[-1], samples.shape[1]), test_labels),
        num_classes,
        epochs,
        seed,
        resolve_device(device),
    )


def evaluate_images(
    samples: torch.Tensor,  # (N, C, H, W) uint8
    reference: str = "mnist",  # dataset name (its test split), .npz or folder
    features: str = "auto",  # feature extractor: auto (mnist for 1x28x28 images, else inception), mnist, inception
    data_root: str | None = None,  # torchvision data root holding the reference dataset
    device: str = "auto",
    inception_weights: str | None = None,  # the Inception FID weights file (offline machines)
    holdout: float = 0.0,  # score against this held-out share of a folder or .npz reference, as training kept out
    extractor=None,  # an nn.Module (float images in [0, 1] -> features) or a callable uint8 images ->
    # (features, probabilities or None); overrides ``features``
    cache: str | Path | None = None,  # folder for cached reference features
) -> dict:
    """Score uint8 images against ``reference`` (as many reference images as samples)."""
    if len(samples) < MIN_SAMPLES:
        raise GanforgeError(
            f"scoring needs at least {MIN_SAMPLES} samples for the feature covariance; got {len(samples)}"
        )
    if extractor is None:
        extractor = make_extractor(features, tuple(samples.shape[1:]), resolve_device(device), inception_weights)
    elif isinstance(extractor, torch.nn.Module):
        extractor = ModuleFeatures(extractor, resolve_device(device))
    cache = Path(cache) if cache else default_cache()
    real = reference_features(extractor, reference, data_root, len(samples), cache, holdout)
    results = {
        "samples": len(samples),
        "reference": f"{reference} ({real['split']}, {len(real['features'])} images)",
        "features": extractor.name,
    }
    return results | score(extractor, samples, real)


def default_cache() -> Path:
    """Where reference features are cached: ~/.cache/ganforge/stats (or under $XDG_CACHE_HOME)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganforge" / "stats"


def score(extractor, samples: torch.Tensor, real: dict) -> dict:
    """Every score of (N, C, H, W) uint8 ``samples`` against reference features ``real``."""
    fake_features, fake_probabilities = extractor(samples)
    kid_mean, kid_std = kid(fake_features, real["features"], subset_size=min(1000, len(samples)))
    precision, recall = precision_recall(real["features"], fake_features)
    results = {
        "fid": fid(fake_features, real["features"]),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "feature_spread": fake_features.double().std(0).mean().item(),  # falls when samples collapse
    }
    if fake_probabilities is not None:
        results["inception_score"] = inception_score(fake_probabilities)[0]
    if real["labels"] is not None and getattr(extractor, "classifies_dataset", False):
        reference_histogram = torch.bincount(real["labels"], minlength=fake_probabilities.shape[1])
        results |= class_coverage(fake_probabilities.argmax(1), reference_histogram)
    return results


class PeriodicEvaluator:
    """Scores the generator during training: fixed noise, the ``auto`` extractor, reference features.

    The reference is the built-in dataset's test split, else the images
    training held out; with neither (the embedded MNIST subset, or --holdout 0)
    a fixed random part of the training data, which flatters the scores.
    """

    def __init__(
        self,
        heldout: ImageDataset,  # the images training kept out (empty for built-in datasets)
        data: ImageDataset,  # the training data
        dataset: str,  # its name or path, as in TrainConfig.data
        data_root: str | None,
        samples: int,  # images generated at each evaluation
        z_dim: int,
        seed: int,
        device: torch.device,
        num_classes: int = 0,  # a conditional generator is scored on every class equally
    ):
        # The digits classifier for 1x28x28 data, Inception (weights from $GANFORGE_INCEPTION_WEIGHTS or a download)
        # for the rest.
        self.extractor = make_extractor("auto", tuple(data.images.shape[1:]), device)
        self.noise = sample_noise(samples, z_dim, seed)
        self.labels = balanced_labels(samples, num_classes)
        self.reference = None
        if dataset in BUILTIN_DATASETS:
            try:
                self.reference = reference_features(self.extractor, dataset, data_root, samples, default_cache())
            except GanforgeError:  # no readable test split (the embedded MNIST subset)
                pass
        if self.reference is None:
            source, split = (heldout, "held-out") if len(heldout) >= MIN_SAMPLES else (data, "train")
            order = torch.randperm(len(source), generator=torch.Generator().manual_seed(seed))[:samples]
            features, probabilities = self.extractor(source.images[order])
            labels = source.labels[order] if source.labels is not None else None
            self.reference = {"features": features, "probabilities": probabilities, "labels": labels, "split": split}
        split = self.reference["split"]
        log.info(f"periodic evaluation: {samples} samples against {len(self.reference['features'])} {split} images")

    def __call__(self, generator: torch.nn.Module) -> dict:
        """Scores of the generator's images for the fixed noise."""
        return score(self.extractor, generate_images(generator, self.noise, labels=self.labels), self.reference)
