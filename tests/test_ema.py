import pytest
import torch
from torch import nn

from ganforge.ema import EMA


def test_update_is_a_lerp_with_the_half_life_decay():
    generator = nn.Linear(3, 2)
    ema = EMA(generator, half_life=1000, warmup=0)
    start = ema.generator.weight.detach().clone()
    with torch.no_grad():
        generator.weight.add_(1.0)
    beta = ema.beta(batch_size=100, images_seen=10_000)
    assert beta == pytest.approx(0.5**0.1)
    ema.update(generator, batch_size=100, images_seen=10_000)
    assert torch.allclose(ema.generator.weight, beta * start + (1 - beta) * generator.weight)


def test_after_one_half_life_an_old_weight_keeps_half_its_share():
    generator = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(generator.weight)
    ema = EMA(generator, half_life=640, warmup=0)
    with torch.no_grad():
        generator.weight.fill_(1.0)
    for step in range(10):  # 10 updates of 64 images = one half-life
        ema.update(generator, batch_size=64, images_seen=(step + 1) * 64)
    assert ema.generator.weight.item() == pytest.approx(0.5)


def test_warm_up_shortens_the_half_life_early_on():
    ema = EMA(nn.Linear(1, 1), half_life=10_000, warmup=0.05)
    assert ema.beta(64, images_seen=1_000) == pytest.approx(0.5 ** (64 / 50))  # 5% of 1,000 images
    assert ema.beta(64, images_seen=10**7) == pytest.approx(0.5 ** (64 / 10_000))  # capped at the half-life


def test_batchnorm_statistics_are_averaged_like_the_weights_and_the_average_is_frozen():
    generator = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    ema = EMA(generator, half_life=100, warmup=0)
    before = ema.generator[1].running_mean.clone()
    generator(torch.randn(16, 2) * 5 + 3)  # moves BatchNorm's running statistics
    ema.update(generator, batch_size=16, images_seen=16)
    beta = ema.beta(16, 16)
    expected = beta * before + (1 - beta) * generator[1].running_mean
    assert torch.allclose(ema.generator[1].running_mean, expected)
    assert ema.generator[1].num_batches_tracked == generator[1].num_batches_tracked == 1
    assert not any(p.requires_grad for p in ema.generator.parameters())
    assert not ema.generator.training


def test_state_dict_round_trips():
    generator = nn.Linear(3, 3)
    ema = EMA(generator)
    with torch.no_grad():
        generator.weight.mul_(2)
    ema.update(generator, 32, 320)
    other = EMA(nn.Linear(3, 3))
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.generator.weight, ema.generator.weight)
