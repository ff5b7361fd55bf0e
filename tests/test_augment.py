import pytest
import torch

from ganforge.augment import AUGMENTATIONS, cutout, diff_augment, parse_policy, translation


def test_diffaugment_is_differentiable_and_keeps_the_shape():
    images = torch.randn(6, 3, 16, 16, requires_grad=True)
    augmented = diff_augment(images)
    assert augmented.shape == images.shape
    augmented.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_real_and_fake_batches_get_the_same_kind_of_augmentation(policy):
    torch.manual_seed(0)
    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    real_view, fake_view = diff_augment(real, policy), diff_augment(fake, policy)
    assert real_view.shape == fake_view.shape == real.shape
    assert not torch.equal(real_view, real) and not torch.equal(fake_view, fake)


def test_translation_moves_pixels_and_fills_with_zeros():
    torch.manual_seed(1)
    images = torch.zeros(64, 1, 8, 8)
    images[:, :, 4, 4] = 1.0
    moved = translation(images, ratio=0.125)  # shifts of -1, 0 or +1 pixel
    assert torch.all(moved.sum((1, 2, 3)) == 1)  # the dot stays inside the image, moved by at most a pixel
    positions = moved[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 8, positions % 8
    assert rows.min() >= 3 and rows.max() <= 5 and cols.min() >= 3 and cols.max() <= 5
    assert len(set(positions.tolist())) > 3  # per-image shifts, not one shift for the batch
    edge = torch.zeros(200, 1, 8, 8)
    edge[:, :, :, 0] = 1.0  # the left column can be pushed out, leaving zeros
    assert (translation(edge).sum((1, 2, 3)) < 8).any()


def test_cutout_zeroes_one_square_per_image():
    torch.manual_seed(0)
    masked = cutout(torch.ones(100, 2, 8, 8), ratio=0.5)  # 4x4 squares, clipped at the borders
    zeros = (masked[:, 0] == 0).sum((1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4
    assert torch.equal(masked[:, 0], masked[:, 1])  # the same square in every channel


def test_policies_are_parsed_and_checked():
    assert parse_policy("color, cutout") == ("color", "cutout")
    assert set(AUGMENTATIONS) == {"color", "translation", "cutout"}
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        parse_policy("color,flip")
    with pytest.raises(ValueError):
        parse_policy("")
