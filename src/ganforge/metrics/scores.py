"""Sample-quality scores computed from features and class probabilities: pure functions of tensors.

FID (Heusel et al., 2017), KID (Binkowski et al., 2018), Inception Score
(Salimans et al., 2016), precision and recall (Kynkaanniemi et al., 2019) and
class coverage. Everything is computed in float64 on the CPU, so the numbers
do not depend on the device that produced the features.
"""

import math

import torch

Tensor = torch.Tensor


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and covariance (D, D) of (N, D) features, in float64."""
    features = features.double()
    mean = features.mean(0)
    centred = features - mean
    return mean, centred.T @ centred / (len(features) - 1)


def psd_sqrt(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix, by eigendecomposition (float64).

    Tiny negative eigenvalues from round-off are clamped to zero, which keeps
    rank-deficient covariances (fewer samples than dimensions) stable.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix.double())
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the Frechet distance of two Gaussians.

    Tr((S_a S_b)^(1/2)) is computed as Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)): the
    same number, but the square root of a symmetric PSD matrix.
    """
    sqrt_a = psd_sqrt(cov_a)
    cross = psd_sqrt(sqrt_a @ cov_b.double() @ sqrt_a)
    distance = (mean_a.double() - mean_b.double()).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross.trace()
    return max(distance.item(), 0.0)


def fid(features_a: Tensor, features_b: Tensor) -> float:
    """Frechet Inception Distance between two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def kid(
    features_a: Tensor,
    features_b: Tensor,
    subsets: int = 100,  # random subsets the estimate is averaged over
    subset_size: int = 1000,  # samples per subset (capped by the smaller set)
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: mean and std over subsets of the unbiased MMD^2 with kernel (x.y/D + 1)^3.

    The std is the population std (ddof=0), as in torch-fidelity's
    ``kid_features_to_metric`` and the original MMD-GAN code. The subsets are
    drawn with torch's RNG, not torch-fidelity's, so only ``subsets=1`` with
    ``subset_size`` equal to both set sizes gives torch-fidelity's number exactly.
    """
    a, b = features_a.double(), features_b.double()
    size = min(subset_size, len(a), len(b))
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:size]]
        y = b[torch.randperm(len(b), generator=generator)[:size]]
        estimates.append(unbiased_mmd2(x, y))
    values = torch.tensor(estimates, dtype=torch.float64)
    return values.mean().item(), values.std(correction=0).item()


def unbiased_mmd2(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 between (m, D) samples x and y with the cubic polynomial kernel.

    The within-set terms drop the kernel's diagonal, the cross term keeps it:
    torch-fidelity's ``mmd2(..., mmd_est="unbiased")`` with ``kernel_poly``
    (degree 3, gamma 1/D, coef0 1).
    """
    m, dim = x.shape
    assert y.shape == (m, dim), "the estimator's normalisation assumes two sets of the same size"
    kernel = lambda p, q: (p @ q.T / dim + 1) ** 3  # noqa: E731
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return (within - 2 * k_xy.mean()).item()


def inception_score(probabilities: Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))): mean and std over ``splits`` parts of (N, K) class probabilities.

    Part i is rows [i N // splits, (i + 1) N // splits), and the std is the
    population std (ddof=0), as in the original code (Salimans et al.) and
    torch-fidelity's ``isc_features_to_metric`` with ``shuffle=False``. Fewer
    than ``splits`` samples give one part per sample.
    """
    p = probabilities.double().clamp(min=1e-12)
    n, splits = len(p), min(splits, len(p))
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]  # (about N / splits, K)
        marginal = part.mean(0, keepdim=True)
        scores.append(math.exp((part * (part.log() - marginal.log())).sum(1).mean().item()))
    values = torch.tensor(scores, dtype=torch.float64)
    return values.mean().item(), values.std(correction=0).item()


def knn_radii(features: Tensor, k: int, batch_size: int = 1024) -> Tensor:
    """Distance from each of (N, D) features to its k-th nearest neighbour in the same set (itself excluded)."""
    radii = [torch.cdist(chunk, features).kthvalue(k + 1, dim=1).values for chunk in features.split(batch_size)]
    return torch.cat(radii)


def covered_fraction(points: Tensor, centres: Tensor, radii: Tensor, batch_size: int = 1024) -> float:
    """Share of ``points`` inside at least one ball (centre, radius)."""
    inside = [(torch.cdist(chunk, centres) <= radii).any(1) for chunk in points.split(batch_size)]
    return torch.cat(inside).double().mean().item()


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019) with k-nearest-neighbour manifolds.

    Precision: the share of fakes inside the real manifold (quality). Recall:
    the share of reals inside the fake manifold (diversity). A point on a
    ball's boundary is inside. torch-fidelity takes the sets the other way
    round: ``prc_features_to_metric(fake, real)``.
    """
    real, fake = real.double(), fake.double()
    precision = covered_fraction(fake, real, knn_radii(real, k))
    recall = covered_fraction(real, fake, knn_radii(fake, k))
    return precision, recall


def class_coverage(predicted: Tensor, reference_histogram: Tensor, min_share: float = 0.1) -> dict:
    """Histogram of predicted classes, how many classes are covered, and KL(samples || reference).

    A class counts as covered when it holds at least ``min_share`` of its fair
    share (1/K) of the samples.
    """
    num_classes = len(reference_histogram)
    histogram = torch.bincount(predicted, minlength=num_classes).double()
    share = histogram / histogram.sum()
    reference = reference_histogram.double() / reference_histogram.sum()
    kl = (share * (share.clamp(min=1e-12).log() - reference.clamp(min=1e-12).log())).sum()
    return {
        "class_histogram": histogram.long().tolist(),
        "classes_covered": int((share >= min_share / num_classes).sum()),
        "class_kl": kl.item(),
    }


def label_accuracy(predicted: Tensor, asked: Tensor) -> dict:
    """How often a conditional generator draws the class it was asked for, as a classifier of the dataset reads
    its samples: the mean over the classes asked for ('label_acc') and the weakest class's ('label_acc_min')."""
    right = (predicted == asked).double()
    per_class = [right[asked == k].mean().item() for k in asked.unique()]
    return {"label_acc": sum(per_class) / len(per_class), "label_acc_min": min(per_class)}
