"""Sample-quality metrics: feature extractors, scores, and the scoring of images against a reference set
(``ganforge.evaluate`` scores any run with them: ``ganforge.commands``)."""

from ganforge.metrics.cifar10_classifier import CIFAR10Classifier, load_cifar10_classifier
from ganforge.metrics.evaluation import evaluate_images
from ganforge.metrics.features import EXTRACTORS, CIFAR10Features, ClassifierFeatures, MNISTFeatures, ModuleFeatures
from ganforge.metrics.mnist_classifier import MNISTClassifier, load_mnist_classifier
from ganforge.metrics.scores import (
    class_coverage,
    fid,
    frechet_distance,
    inception_score,
    kid,
    precision_recall,
)

__all__ = [
    "CIFAR10Classifier",
    "CIFAR10Features",
    "ClassifierFeatures",
    "EXTRACTORS",
    "ModuleFeatures",
    "MNISTClassifier",
    "MNISTFeatures",
    "class_coverage",
    "evaluate_images",
    "fid",
    "frechet_distance",
    "inception_score",
    "kid",
    "load_cifar10_classifier",
    "load_mnist_classifier",
    "precision_recall",
]
