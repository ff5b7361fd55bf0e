import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganforge.losses import (
    LOSSES,
    discriminator_bce_loss,
    discriminator_hinge_loss,
    discriminator_least_squares_loss,
    discriminator_wasserstein_loss,
    generator_hinge_loss,
    generator_least_squares_loss,
    generator_minimax_loss,
    generator_nonsaturating_loss,
    gradient_penalty,
    r1_penalty,
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


def test_hinge_loss_by_hand_and_its_margins():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, -0.5, 1.0])
    # max(0, 1 - [2, 0.5, -1]) = [0, 0.5, 2]; max(0, 1 + [-3, -0.5, 1]) = [0, 0.5, 2]
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx(2.5 / 3 + 2.5 / 3)
    assert generator_hinge_loss(fake).item() == pytest.approx(2.5 / 3)
    # Beyond the margins (real >= 1, fake <= -1) the discriminator has nothing left to learn.
    real, fake = torch.tensor([1.0, 5.0], requires_grad=True), torch.tensor([-1.0, -7.0], requires_grad=True)
    loss = discriminator_hinge_loss(real, fake)
    loss.backward()
    assert loss.item() == 0 and real.grad.abs().sum() == 0 and fake.grad.abs().sum() == 0


def test_least_squares_loss_by_hand():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    # 0.5 * mean([0, 1]) + 0.5 * mean([0, 4])
    assert discriminator_least_squares_loss(real, fake).item() == pytest.approx(0.25 + 1.0)
    # 0.5 * mean([1, 1])
    assert generator_least_squares_loss(fake).item() == pytest.approx(0.5)


def test_wasserstein_loss_is_the_difference_of_mean_scores():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])
    assert discriminator_wasserstein_loss(real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert LOSSES["wgan-gp"].penalties == (("gradient-penalty", 10.0),) and LOSSES["wgan-gp"].default_n_critic == 5


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_gradient_penalty_of_a_linear_critic_is_its_norm_minus_one_squared(scale):
    """D(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2 at every interpolate."""
    torch.manual_seed(0)
    w = torch.randn(1, 2, 4, 4)
    w = w * (scale / w.norm())

    def critic(images):
        return (images * w).flatten(1).sum(1)

    real, fake = torch.randn(8, 2, 4, 4), torch.randn(8, 2, 4, 4)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((scale - 1) ** 2, abs=1e-5)


def test_gradient_penalty_pushes_the_critic_towards_unit_gradient_norm():
    w = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)  # ||w|| = 4

    def critic(images):
        return (images * w).flatten(1).sum(1)

    penalty = gradient_penalty(critic, torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2))
    penalty.backward()
    assert penalty.item() == pytest.approx(9.0)
    assert (w.grad > 0).all()  # a step against the gradient shrinks ||w|| towards 1


def test_r1_penalty_of_a_known_function():
    """D(x) = sum(a * x^2) / 2 has gradient a * x: R1 = mean over the batch of ||a * x||^2."""
    a = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    real = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, -2.0]]).view(2, 3, 1, 1).requires_grad_(True)
    logits = (a * real**2).flatten(1).sum(1) / 2
    expected = ((1 + 4 + 9) + (0 + 4 + 36)) / 2
    assert r1_penalty(logits, real).item() == pytest.approx(expected)


def test_r1_penalty_is_zero_where_the_discriminator_is_flat():
    real = torch.randn(4, 1, 3, 3, requires_grad=True)
    logits = real.sum((1, 2, 3)) * 0 + 1.5
    assert r1_penalty(logits, real).item() == 0


def test_r1_under_float16_autocast_needs_the_loss_scale_to_survive():
    """An input gradient of 1e-8 underflows in float16; scaled as the loss is, it comes back intact."""
    critic = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False), torch.nn.Linear(8, 1, bias=False))
    with torch.no_grad():
        for layer in critic:
            layer.weight.fill_(1e-4)  # d logit / d x = 8e-8 per input
    real = torch.randn(4, 8).requires_grad_(True)
    exact = r1_penalty(critic(real).squeeze(1), real).item()
    with torch.autocast("cpu", dtype=torch.float16):
        logits = critic(real).squeeze(1)  # (4,) float16
    assert r1_penalty(logits, real).item() == 0  # underflowed
    assert r1_penalty(logits, real, torch.tensor(2.0**16)).item() == pytest.approx(exact, rel=1e-2)


def test_a_new_penalty_is_one_registry_entry(tmp_path, monkeypatch):
    """WGAN's drift penalty (Karras et al. 2018), registered from this file alone, is added to D's loss."""
    from ganforge import TrainConfig, train
    from ganforge.losses import PENALTIES, GANLoss, Penalty, discriminator_wasserstein_loss

    calls = []

    def drift(inputs):
        calls.append(inputs.real_logits.shape)
        return (inputs.real_logits.float() ** 2).mean()

    monkeypatch.setitem(PENALTIES, "drift", Penalty(drift))
    wasserstein = GANLoss(discriminator_wasserstein_loss, generator_hinge_loss)
    monkeypatch.setitem(LOSSES, "wgan", wasserstein)
    monkeypatch.setitem(LOSSES, "wgan-drift", dataclasses.replace(wasserstein, penalties=(("drift", 1e-3),)))
    np_path = tmp_path / "images.npz"
    np.savez(np_path, images=torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8).numpy())
    # float32: in bf16 (what auto picks on some CPUs) D's logit gradient, -1/16 + 2e-3 * logit / 16, rounds to
    # -1/16 in the first steps, and the drift's change to the update with it.
    common = dict(model="mlp", data=str(np_path), steps=3, batch_size=16, precision="32")
    common |= dict(progress=False, tensorboard=False)
    with_drift = train(TrainConfig(loss="wgan-drift", out=str(tmp_path / "drift"), **common))
    assert len(calls) == 3 and calls[0] == (16,)  # due at every step, on the batch's real logits
    plain = train(TrainConfig(loss="wgan", out=str(tmp_path / "plain"), **common))
    first = next(with_drift.discriminator.parameters())
    assert not torch.equal(first, next(plain.discriminator.parameters()))  # the penalty changed D's updates
