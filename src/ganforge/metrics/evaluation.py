"""Scoring generated images against a reference set: a GAN run's samples, an .npz or a folder of images.

The reference set's features are computed once and cached under
``~/.cache/ganforge/stats``, keyed by the reference's name, split, extractor,
its weights' hash, the number of images and a hash of the images themselves.
"""

import hashlib
import logging
from pathlib import Path

import torch

from ganforge.config import dataset_noise_std
from ganforge.data import (
    ImageDataset,
    cache_home,
    load_image_folder,
    load_npz,
    load_reference,
    load_training_part,
    resolve_source,
)
from ganforge.device import resolve_device
from ganforge.errors import GanforgeError, first_line
from ganforge.files import atomic_write
from ganforge.metrics.cas import classification_accuracy_score
from ganforge.metrics.features import ModuleFeatures, make_extractor, to_shape
from ganforge.metrics.scores import class_coverage, fid, inception_score, kid, label_accuracy, precision_recall
from ganforge.metrics.swd import swd
from ganforge.sampling import balanced_labels, generate_images, sample_noise

log = logging.getLogger("ganforge")

MIN_SAMPLES = 10  # fewer gives a meaningless covariance (and k-NN radii with k = 3)


def default_reference(config: dict) -> tuple[str, float]:
    """(reference, held-out share) of a run whose config is ``config``: its own data (the held-out part of a
    folder or .npz), else mnist."""
    data = config.get("data", "mnist")
    try:
        gone = resolve_source(data).is_path and not Path(data).exists()
    except GanforgeError:
        gone = True
    if gone:
        raise GanforgeError(f"the run's data {data} is gone: pass --reference")
    return data, config.get("holdout") or 0.0


def reference_features(
    extractor, reference: str, data_root: str | None, n: int, cache: Path, holdout: float = 0.0
) -> dict:
    """Features, probabilities and labels of up to ``n`` reference images, cached on disk.

    The cache key holds a hash of the images themselves (and their labels), so
    two references that share a name (two ``test.npz``, two ``refs/``
    folders) never share an entry, and an edited folder gets a new one. An
    entry that does not load (a write cut short) is discarded with a warning
    naming it, and rebuilt.
    """
    dataset, split = load_reference(reference, data_root, holdout)
    chosen = reference_subset(len(dataset), n)
    images = dataset.images[chosen]
    labels = dataset.labels[chosen] if dataset.labels is not None else None
    part = f"-heldout{holdout:g}" if holdout else ""
    key = f"{Path(reference).name}{part}-{extractor.name}-{extractor.weights_hash}-{n}-{content_hash(images, labels)}"
    path = cache / f"{key}.pt"
    entry = read_cached_features(path, len(images))
    if entry is not None:
        log.info(f"reference features: {path} (cached)")
        return entry
    log.info(f"reference features: {len(images):,} {reference} {split} images, cached to {path}")
    features, probabilities = extractor(images)
    entry = {"features": features, "probabilities": probabilities, "split": split, "labels": labels}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: torch.save(entry, file))
    except (OSError, GanforgeError) as error:  # a cache that cannot be written costs time, not the scores
        log.warning(f"could not cache the reference features: {error}")
    return entry


def reference_subset(count: int, n: int) -> torch.Tensor | slice:
    """Which of ``count`` reference images to compare ``n`` samples with: all when n >= count, else a fixed random
    n of them (in their order). Not the first n: a folder lists its images class by class, so those would be the
    first classes only."""
    if n >= count:
        return slice(None)
    return torch.randperm(count, generator=torch.Generator().manual_seed(0))[:n].sort().values


def content_hash(images: torch.Tensor, labels: torch.Tensor | None) -> str:
    """A short hash of uint8 images (and their labels): what a reference-feature cache entry is keyed by."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().data)
    if labels is not None:
        digest.update(labels.to(torch.int64).contiguous().numpy().data)
    return digest.hexdigest()[:16]


def read_cached_features(path: Path, count: int) -> dict | None:
    """The cache entry at ``path``, or None when there is none or it is unreadable (then it is removed)."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, weights_only=True)
        if len(entry["features"]) != count:
            raise ValueError(f"it holds {len(entry['features'])} images' features, not {count}")
        return entry
    except Exception as error:  # torch raises RuntimeError, EOFError, pickle and zip errors for a cut-short file
        reason = first_line(error)
        log.warning(f"discarding the unreadable reference-feature cache {path} ({reason}); rebuilding it")
        path.unlink(missing_ok=True)
        return None


def evaluate_generator(
    model,  # a loaded GAN run (``tasks.gan.handle.TrainedGenerator``): its ``sample``, config and classes
    n: int = 10000,  # samples to score (and reference images to compare with)
    reference: str | None = None,  # dataset name, .npz or folder; None: the run's dataset
    seed: int = 0,  # noise seed
    device: str = "auto",
    cas: bool = False,  # also the Classification Accuracy Score (a conditional run's labelled samples)
    cas_epochs: int = 3,  # epochs of each CAS classifier
    noise_std: float | None = None,  # the noise's spread (``sampling.sample_noise``); None: 1, and for CAS the
    # spread of ``ganforge generate --dataset`` (``config.dataset_noise_std``)
    **options,  # features, data_root, inception_weights, extractor, cache: as for evaluate_images
) -> dict:
    """Score ``n`` samples of a generator: FID, KID, IS, precision/recall, class coverage; a conditional one's
    label accuracy where the classifier's classes are the run's; with ``cas``, also the Classification Accuracy
    Score (``metrics.cas``) against a classifier trained on as many real images, of samples drawn as a labelled
    dataset is unless ``noise_std`` is given."""
    if cas and not model.num_classes:
        raise GanforgeError(f"--cas needs labelled samples, and {model.path} holds an unconditional generator")
    spread = 1.0 if noise_std is None else noise_std
    samples = model.sample(n, seed=seed, noise_std=spread)
    cas_std = dataset_noise_std(model.image_shape[0]) if noise_std is None else spread
    cas_samples = samples
    if cas and cas_std != spread:
        log.info(f"CAS: samples drawn as ganforge generate --dataset draws them, the noise at {cas_std:g}x")
        cas_samples = model.sample(n, seed=seed, noise_std=cas_std)
    labels = balanced_labels(n, model.num_classes)
    reference, holdout = (reference, 0.0) if reference else default_reference(model.config)
    shown, classes = model.path, model.classes
    results = score_samples(
        samples, labels, shown, reference, holdout, seed, device, cas, cas_epochs, classes, cas_samples, **options
    )
    return results | (dict(cas_noise_std=cas_std) if cas else {})


def evaluate_image_set(
    source: str | Path,  # an .npz (images, and labels for CAS) or a folder of images
    n: int = 10000,
    reference: str | None = None,  # None: mnist
    seed: int = 0,
    device: str = "auto",
    cas: bool = False,
    cas_epochs: int = 3,
    **options,
) -> dict:
    """Score up to ``n`` images read from an .npz or a folder, as ``evaluate_generator`` scores samples."""
    path = Path(source)
    dataset = load_npz(path) if path.suffix == ".npz" else load_image_folder(path, image_size=None, channels=None)
    if cas and (path.suffix != ".npz" or dataset.labels is None):
        npz = path.suffix == ".npz"
        where = f"{source} has no 'labels' array" if npz else "a conditional run or an .npz with labels"
        raise GanforgeError(f"--cas needs labelled samples: {where}")
    samples = dataset.images[:n]
    labels = dataset.labels[:n] if dataset.labels is not None else None
    return score_samples(samples, labels, source, reference or "mnist", 0.0, seed, device, cas, cas_epochs, **options)


def score_samples(
    samples, labels, shown, reference, holdout, seed, device, cas, cas_epochs, classes=None, cas_samples=None, **options
) -> dict:
    """``evaluate_images`` of (N, C, H, W) uint8 ``samples`` (from ``shown``) against ``reference``, with their
    ``labels`` and the ``classes`` those name, and with ``cas`` the CAS of ``cas_samples`` (default: ``samples``)
    with the same labels."""
    log.info(f"scoring {len(samples):,} samples {tuple(samples.shape[1:])} from {shown}")
    options |= dict(labels=labels, classes=classes)
    results = evaluate_images(samples, reference, device=device, holdout=holdout, **options)
    if cas:
        trained_on = samples if cas_samples is None else cas_samples
        root = options.get("data_root")
        results |= cas_against(trained_on, labels, reference, root, holdout, cas_epochs, seed, device)
    return results


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
    test_set, _ = load_reference(reference, data_root, holdout)
    test_images, test_labels = test_set.images, test_set.labels
    if test_labels is None:
        raise GanforgeError(f"--cas needs a labelled reference; {reference} has no labels")
    train_set = load_training_part(reference, data_root, holdout)
    num_classes = max(int(test_labels.max()), int(labels.max())) + 1
    log.info(f"CAS: training classifiers on {len(samples):,} generated and {len(samples):,} real images")
    return classification_accuracy_score(
        (samples, labels),
        (train_set.images, train_set.labels),
        (to_shape(test_images, samples.shape[-1], samples.shape[1]), test_labels),
        num_classes,
        epochs,
        seed,
        resolve_device(device),
    )


def evaluate_images(
    samples: torch.Tensor,  # (N, C, H, W) uint8
    reference: str = "mnist",  # dataset name (its test split), .npz or folder
    features: str = "auto",  # feature extractor: mnist, cifar10, inception; auto: mnist for 1x28x28 images,
    # cifar10 for 3x32x32, else inception;
    # or swd: the sliced Wasserstein distance on image patches, which needs no network
    data_root: str | None = None,  # torchvision data root holding the reference dataset
    device: str = "auto",
    inception_weights: str | None = None,  # the Inception FID weights file (offline machines)
    holdout: float = 0.0,  # score against this held-out share of a folder or .npz reference, as training kept out
    extractor=None,  # an nn.Module (float images in [0, 1] -> features) or a callable uint8 images ->
    # (features, probabilities or None); overrides ``features``
    cache: str | Path | None = None,  # folder for cached reference features
    labels: torch.Tensor | None = None,  # the class each sample was asked for (a conditional generator's)
    classes: list[str] | None = None,  # the names of those classes: label accuracy where the classifier's match
) -> dict:
    """Score uint8 images against ``reference`` (as many reference images as samples)."""
    if len(samples) < MIN_SAMPLES:
        raise GanforgeError(
            f"scoring needs at least {MIN_SAMPLES} samples for the feature covariance; got {len(samples)}"
        )
    if extractor is None and features == "swd":
        return swd_against(samples, reference, data_root, holdout)
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
    return results | score(extractor, samples, real, asked_classes(extractor, labels, classes))


def asked_classes(extractor, labels: torch.Tensor | None, classes: list[str] | None) -> torch.Tensor | None:
    """``labels`` where the extractor is a classifier of exactly these classes (a digits run read by the digits
    classifier), else None: a classifier of other classes, or in another order, cannot say which were obeyed."""
    reads = getattr(extractor, "reads_classes", None)
    return labels if labels is not None and classes and reads and reads(classes) else None


def swd_against(samples: torch.Tensor, reference: str, data_root: str | None, holdout: float) -> dict:
    """``--features swd``: the sliced Wasserstein distance (``metrics.swd``) against as many reference images,
    brought to the samples' size and channels. No network, so nothing to download or cache."""
    dataset, split = load_reference(reference, data_root, holdout)
    count = min(len(samples), len(dataset))
    real = dataset.images[torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count]]
    real = to_shape(real, samples.shape[-1], samples.shape[1])
    results = {"samples": count, "reference": f"{reference} ({split}, {count} images)", "features": "swd"}
    try:
        return results | swd(real, samples[:count])
    except ValueError as error:
        raise GanforgeError(f"--features swd: {error}") from None


def default_cache() -> Path:
    """Where reference features are cached: ~/.cache/ganforge/stats (or under $XDG_CACHE_HOME)."""
    return cache_home() / "stats"


def score(extractor, samples: torch.Tensor, real: dict, asked: torch.Tensor | None = None) -> dict:
    """Every score of (N, C, H, W) uint8 ``samples`` against reference features ``real``; with ``asked`` (the
    class each sample was asked for, in the classifier's order) the label accuracy too."""
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
    if (
        fake_probabilities is not None
    ):  # Inception's own score only on Inception: a digits-classifier IS is another number
        key = "inception_score" if extractor.name == "inception" else "classifier_score"
        results[key] = inception_score(fake_probabilities)[0]
    if real["labels"] is not None and getattr(extractor, "classifies_dataset", False):
        reference_histogram = torch.bincount(real["labels"], minlength=fake_probabilities.shape[1])
        results |= class_coverage(fake_probabilities.argmax(1), reference_histogram)
    if asked is not None and fake_probabilities is not None:
        results |= label_accuracy(fake_probabilities.argmax(1), asked)
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
        classes: list[str] | None = None,  # their names: label accuracy where the classifier's classes match
    ):
        # The digits classifier for 1x28x28 data, the CIFAR-10 classifier for 3x32x32, Inception (weights from
        # $GANFORGE_INCEPTION_WEIGHTS or a download) for the rest.
        self.extractor = make_extractor("auto", tuple(data.images.shape[1:]), device)
        self.noise = sample_noise(samples, z_dim, seed)
        self.labels = balanced_labels(samples, num_classes)
        self.asked = asked_classes(self.extractor, self.labels, classes)
        self.reference = None
        if resolve_source(dataset).has_test_split:
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
        """Scores of the generator's images for the fixed noise, and the extractor and number that made them."""
        images = generate_images(generator, self.noise, labels=self.labels)
        scores = score(self.extractor, images, self.reference, self.asked)
        return {"features": self.extractor.name, "samples": len(images)} | scores
