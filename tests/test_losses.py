import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganforge.losses import (
    LOSSES,
    discriminator_bce_loss,
    generator_minimax_loss,
    generator_nonsaturating_loss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_discriminator_loss_by_hand():
    # -log sigmoid(2) - log(1 - sigmoid(-1)) = softplus(-2) + softplus(-1), averaged over the batch
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.0])
    expected = (softplus(-2) + softplus(0)) / 2 + (softplus(-1) + softplus(0)) / 2
    assert discriminator_bce_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_undecided_discriminator_costs_log_two_per_term():
    zeros = torch.zeros(4)
    assert discriminator_bce_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert generator_nonsaturating_loss(zeros).item() == pytest.approx(math.log(2))
    assert generator_minimax_loss(zeros).item() == pytest.approx(-math.log(2))


def test_generator_losses_by_hand():
    fake = torch.tensor([3.0, -2.0])
    assert generator_nonsaturating_loss(fake).item() == pytest.approx((softplus(-3) + softplus(2)) / 2, rel=1e-6)
    # log(1 - sigmoid(x)) = -softplus(x)
    assert generator_minimax_loss(fake).item() == pytest.approx(-(softplus(3) + softplus(-2)) / 2, rel=1e-6)


def test_minimax_saturates_where_nonsaturating_does_not():
    """When D confidently rejects the fakes, log(1 - D(G(z))) has almost no gradient."""
    fake = torch.tensor([-10.0], requires_grad=True)
    (grad_minimax,) = torch.autograd.grad(generator_minimax_loss(fake), fake)
    (grad_nonsat,) = torch.autograd.grad(generator_nonsaturating_loss(fake), fake)
    assert abs(grad_minimax.item()) < 1e-4
    assert abs(grad_nonsat.item()) > 0.99


@settings(deadline=None)
@given(st.floats(-200, 200), st.floats(-200, 200))
def test_losses_stay_finite_for_extreme_logits(real, fake):
    real_t, fake_t = torch.tensor([real]), torch.tensor([fake])
    for loss in LOSSES.values():
        assert torch.isfinite(loss.discriminator(real_t, fake_t))
        assert torch.isfinite(loss.generator(fake_t))
