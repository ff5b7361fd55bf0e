import math

import pytest
import torch

from ganforge.metrics.scores import (
    class_coverage,
    feature_statistics,
    fid,
    frechet_distance,
    inception_score,
    kid,
    precision_recall,
    psd_sqrt,
)


def random_covariance(dim: int, seed: int) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_fid_of_a_set_against_itself_is_zero():
    features = torch.randn(500, 32, generator=torch.Generator().manual_seed(0))
    assert fid(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    dim = 16
    cov = random_covariance(dim, seed=1)
    mean_a = torch.zeros(dim, dtype=torch.float64)
    mean_b = torch.full((dim,), 0.5, dtype=torch.float64)
    # same covariance: only the means differ
    assert frechet_distance(mean_a, cov, mean_b, cov) == pytest.approx(0.25 * dim, rel=1e-9)
    # S_b = c^2 S_a: Tr(S_a + c^2 S_a - 2 c S_a) = (1 - c)^2 Tr(S_a)
    c = 3.0
    expected = 0.25 * dim + (1 - c) ** 2 * cov.trace().item()
    assert frechet_distance(mean_a, cov, mean_b, c**2 * cov) == pytest.approx(expected, rel=1e-9)
    # diagonal covariances: sum of (sqrt(s_a) - sqrt(s_b))^2
    s_a, s_b = torch.rand(dim, dtype=torch.float64) + 0.5, torch.rand(dim, dtype=torch.float64) + 0.5
    expected = ((s_a.sqrt() - s_b.sqrt()) ** 2).sum().item()
    assert frechet_distance(mean_a, torch.diag(s_a), mean_a, torch.diag(s_b)) == pytest.approx(expected, rel=1e-9)


def test_fid_is_stable_with_fewer_samples_than_dimensions():
    features = torch.randn(40, 128, generator=torch.Generator().manual_seed(2))  # rank <= 39
    shift = torch.full((128,), 0.1)
    assert fid(features, features) == pytest.approx(0.0, abs=1e-6)
    assert fid(features, features + shift) == pytest.approx(128 * 0.01, rel=1e-4)


def test_matrix_square_root_is_float64_and_squares_back():
    cov = random_covariance(8, seed=3).float()
    root = psd_sqrt(cov)
    assert root.dtype == torch.float64
    assert torch.allclose(root @ root, cov.double(), atol=1e-5)


def test_feature_statistics_are_the_sample_mean_and_unbiased_covariance():
    features = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    mean, cov = feature_statistics(features)
    assert mean.tolist() == [3.0, 6.0]
    assert torch.allclose(cov, torch.tensor([[4.0, 8.0], [8.0, 16.0]], dtype=torch.float64))


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
    generator = torch.Generator().manual_seed(4)
    a, b = torch.randn(600, 16, generator=generator), torch.randn(600, 16, generator=generator)
    mean, std = kid(a, b, subsets=20, subset_size=300)
    assert abs(mean) < 3 * std + 1e-3
    far_mean, _ = kid(a, b + 1.0, subsets=20, subset_size=300)
    assert far_mean > 100 * max(abs(mean), std)


def test_inception_score_of_confident_even_classes_is_their_number():
    k = 10
    confident_even = torch.eye(k).repeat(50, 1)  # every class equally often, each sample certain
    assert inception_score(confident_even, splits=5)[0] == pytest.approx(k, rel=1e-6)
    one_class = torch.zeros(500, k)
    one_class[:, 3] = 1
    assert inception_score(one_class, splits=5)[0] == pytest.approx(1.0, rel=1e-6)
    uniform = torch.full((500, k), 1 / k)
    assert inception_score(uniform, splits=5)[0] == pytest.approx(1.0, rel=1e-6)


def test_precision_and_recall_tell_quality_from_diversity():
    generator = torch.Generator().manual_seed(5)
    real = torch.randn(400, 8, generator=generator)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    collapsed = real[:5].repeat(80, 1) + 1e-3 * torch.randn(400, 8, generator=generator)
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.95 and recall < 0.1  # good-looking but not diverse
    far = real + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)


def test_class_coverage_by_hand():
    predicted = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2])
    result = class_coverage(predicted, torch.tensor([10, 10, 10, 10]))
    assert result["class_histogram"] == [2, 4, 2, 0]
    assert result["classes_covered"] == 3
    expected = sum(p * math.log(p / 0.25) for p in (0.25, 0.5, 0.25))
    assert result["class_kl"] == pytest.approx(expected)
