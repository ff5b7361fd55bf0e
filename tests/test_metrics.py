import math

import pytest
import torch
from torch_fidelity import metric_kid
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from ganforge.metrics import scores
from ganforge.metrics.scores import (
    class_coverage,
    feature_statistics,
    fid,
    frechet_distance,
    inception_score,
    kid,
    knn_radii,
    label_accuracy,
    precision_recall,
    psd_sqrt,
    unbiased_mmd2,
)

AGREEMENT = 1e-6  # relative, ganforge against torch-fidelity on the same features (issue #15)


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


def test_label_accuracy_by_hand_is_the_mean_over_classes_and_the_weakest():
    asked = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    drawn = torch.tensor([0, 0, 0, 1, 1, 1, 0, 0])
    result = label_accuracy(drawn, asked)
    # per class 3/4, 2/2 and 0/2: their mean, not the share of all samples (5/8)
    assert result["label_acc"] == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert result["label_acc_min"] == 0.0
    assert label_accuracy(asked, asked) == {"label_acc": 1.0, "label_acc_min": 1.0}


def independent_sets(n_real: int, n_fake: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent float64 draws: real ~ N(0, I), fake ~ N(0.1, 1.2^2 I), neither a copy of the other."""
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(n_real, dim, generator=generator, dtype=torch.float64)
    fake = 1.2 * torch.randn(n_fake, dim, generator=generator, dtype=torch.float64) + 0.1
    return real, fake


SIZES = [(300, 350, 16), (400, 400, 64), (40, 50, 64)]  # the last: fewer samples than dimensions


@pytest.mark.parametrize("n_real, n_fake, dim", SIZES)
def test_fid_agrees_with_torch_fidelity(n_real, n_fake, dim):
    real, fake = independent_sets(n_real, n_fake, dim, seed=10)
    statistics = [fid_features_to_statistics(features) for features in (fake, real)]
    expected = fid_statistics_to_metric(*statistics, verbose=False)[KEY_METRIC_FID]
    assert expected > 1.0  # two different distributions: a relative comparison means something
    assert fid(fake, real) == pytest.approx(expected, rel=AGREEMENT)


@pytest.mark.parametrize("n, dim", [(300, 16), (400, 64)])
def test_unbiased_mmd2_and_kid_agree_with_torch_fidelity_on_the_whole_sets(n, dim):
    real, fake = independent_sets(n, n, dim, seed=11)
    # torch-fidelity's defaults: kernel_poly with degree 3, gamma 1/D, coef0 1, and the unbiased estimator
    kernel = dict(kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    expected = metric_kid.kernel_mmd(fake.numpy(), real.numpy(), **kernel)
    assert expected > 1e-2
    assert unbiased_mmd2(fake, real) == pytest.approx(expected, rel=AGREEMENT)
    # one subset holding every sample: the random draws of either library are only a permutation
    theirs = metric_kid.kid_features_to_metric(fake, real, kid_subsets=1, kid_subset_size=n, verbose=False, **kernel)
    mean, std = kid(fake, real, subsets=1, subset_size=n)
    assert mean == pytest.approx(theirs[metric_kid.KEY_METRIC_KID_MEAN], rel=AGREEMENT)
    assert std == theirs[metric_kid.KEY_METRIC_KID_STD] == 0.0


def test_kid_aggregates_subsets_as_torch_fidelity_does(monkeypatch):
    # The two libraries draw different subsets; give both the same per-subset estimates instead.
    estimates = [0.5, 1.0, 2.0, 4.5]
    ours_left, theirs_left = iter(estimates), iter(estimates)
    monkeypatch.setattr(scores, "unbiased_mmd2", lambda x, y: next(ours_left))
    monkeypatch.setattr(metric_kid, "kernel_mmd", lambda f1, f2, **kwargs: next(theirs_left))
    real, fake = independent_sets(20, 20, 4, seed=12)
    theirs = metric_kid.kid_features_to_metric(fake, real, kid_subsets=4, kid_subset_size=10, verbose=False)
    mean, std = kid(fake, real, subsets=4, subset_size=10)
    assert mean == pytest.approx(theirs[metric_kid.KEY_METRIC_KID_MEAN], rel=AGREEMENT)
    assert std == pytest.approx(theirs[metric_kid.KEY_METRIC_KID_STD], rel=AGREEMENT)
    assert std == pytest.approx(math.sqrt(9.5 / 4))  # population std (ddof=0): squared deviations from 2 sum to 9.5


def test_unbiased_mmd2_by_hand():
    # 1-D, kernel (xy + 1)^3. k(0,1) = 1 and k(2,3) = 343 off the diagonals: (2 + 686) / (2 * 1) = 344.
    # Cross terms k(0,2), k(0,3), k(1,2), k(1,3) = 1, 1, 27, 64: mean 23.25. MMD^2 = 344 - 2 * 23.25.
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
    assert unbiased_mmd2(x, y) == 297.5
    # 2-D, kernel (x.y / 2 + 1)^3. Within: k(x1, x2) = k(y1, y2) = 1, so (2 + 2) / 2 = 2 (the diagonals,
    # 3.375 and 27, are left out). Cross: x.y = 2, 0, 0, 2 give 8, 1, 1, 8, mean 4.5. MMD^2 = 2 - 9.
    x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    assert unbiased_mmd2(x, y) == -7.0  # the unbiased estimate may be negative
    assert kid(x, y, subsets=3, subset_size=2) == (-7.0, 0.0)  # every subset is the whole set


@pytest.mark.parametrize("n_real, n_fake, dim", [(300, 350, 16), (400, 400, 64), (50, 40, 8)])
def test_precision_and_recall_agree_with_torch_fidelity(n_real, n_fake, dim):
    real, fake = independent_sets(n_real, n_fake, dim, seed=13)
    theirs = prc_features_to_metric(fake, real, prc_neighborhood=3, verbose=False)  # generated first, then real
    precision, recall = precision_recall(real, fake, k=3)
    assert 0 < precision < 1 and 0 < recall < 1
    assert precision == pytest.approx(theirs[KEY_METRIC_PRECISION], rel=AGREEMENT)
    assert recall == pytest.approx(theirs[KEY_METRIC_RECALL], rel=AGREEMENT)


def test_precision_and_recall_by_hand():
    # k = 1. Fake: a tight pair (radii 1, 1) and a looser pair on the y axis (radii 4, 4).
    fake = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 6.0], [0.0, 10.0]])
    # Real radii: (2,0) -> (5,0) at 3; (0,3) -> (2,0) at sqrt(13); (5,0) -> (2,0) at 3; (20,0) -> (5,0) at 15.
    real = torch.tensor([[2.0, 0.0], [0.0, 3.0], [5.0, 0.0], [20.0, 0.0]])
    assert knn_radii(fake, k=1).tolist() == [1.0, 1.0, 4.0, 4.0]
    assert torch.allclose(knn_radii(real, k=1), torch.tensor([3.0, math.sqrt(13), 3.0, 15.0]))
    # Precision: (0,0) and (1,0) lie within 3 of (2,0), (0,6) within sqrt(13) of (0,3); (0,10) is 7 from
    # (0,3) and sqrt(500) > 15 from (20,0): 3 of 4.
    # Recall: (2,0) is at distance 1 from (1,0), on the ball's boundary, so inside; (0,3) is 3 < 4 from
    # (0,6); (5,0) and (20,0) lie in no fake ball: 2 of 4.
    assert precision_recall(real, fake, k=1) == (0.75, 0.5)
    theirs = prc_features_to_metric(fake, real, prc_neighborhood=1, verbose=False)
    assert (theirs[KEY_METRIC_PRECISION], theirs[KEY_METRIC_RECALL]) == (0.75, 0.5)


@pytest.mark.parametrize("n, splits", [(400, 10), (397, 10), (397, 7), (45, 1)])
@pytest.mark.parametrize("confidence", [3.0, 30.0])  # logit scale; at 30 most probabilities are below 1e-12
def test_inception_score_agrees_with_torch_fidelity(n, splits, confidence):
    logits = confidence * torch.randn(n, 10, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    theirs = isc_features_to_metric(logits, splits=splits, shuffle=False)  # it takes logits, ganforge probabilities
    mean, std = inception_score(logits.softmax(1), splits=splits)
    assert mean == pytest.approx(theirs[KEY_METRIC_ISC_MEAN], rel=AGREEMENT)
    assert std == pytest.approx(theirs[KEY_METRIC_ISC_STD], rel=AGREEMENT, abs=1e-12)
