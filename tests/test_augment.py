import pytest
import torch

from ganforge.augment import AUGMENTATIONS, cutout, diff_augment, parse_policy, translation


def test_diffaugment_is_differentiable_and_keeps_the_shape():
    images = torch.randn(6, 3, 16, 16, requires_grad=True)
    augmented = diff_augment(images)
    assert augmented.shape == images.shape
    augmented.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def recoloured(image: torch.Tensor, view: torch.Tensor) -> bool:
    """Whether ``view`` is ``image`` (C, H, W) under one brightness and contrast change: a * image + b, a != 1."""
    centred = image - image.mean()
    a = ((view - view.mean()) * centred).sum() / centred.square().sum()
    b = view.mean() - a * image.mean()
    return torch.allclose(view, a * image + b, atol=1e-5) and abs(a - 1) > 1e-4


def moved(image: torch.Tensor, view: torch.Tensor, most: int = 4) -> bool:
    """Whether ``view`` is ``image`` shifted by at most ``most`` pixels each way, zeros filled in."""
    height, width = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (most,) * 4)
    shifts = [(dy, dx) for dy in range(2 * most + 1) for dx in range(2 * most + 1)]
    return any(torch.equal(view, padded[:, dy : dy + height, dx : dx + width]) for dy, dx in shifts)


def cut_out(image: torch.Tensor, view: torch.Tensor, side: int = 14) -> bool:
    """Whether ``view`` is ``image`` with one rectangle, at most ``side`` a side, zeroed in every channel."""
    changed = (view != image).any(0)  # (H, W)
    rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
    if not len(rows):
        return False
    box = torch.zeros_like(changed)
    box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    small = rows.max() - rows.min() < side and cols.max() - cols.min() < side
    return bool(small and torch.equal(changed, box) and (view[:, box] == 0).all())


@pytest.mark.parametrize("policy, kind", [("color", recoloured), ("translation", moved), ("cutout", cut_out)])
def test_real_and_fake_batches_get_the_same_kind_of_augmentation(policy, kind):
    """Each image of both batches changes as its policy says, and only so; each by its own random amount."""
    torch.manual_seed(0)
    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    real_view, fake_view = diff_augment(real, policy), diff_augment(fake, policy)
    assert real_view.shape == fake_view.shape == real.shape
    for images, views in ((real, real_view), (fake, fake_view)):
        assert all(kind(image, view) for image, view in zip(images, views))
        others = [other for other in (recoloured, moved, cut_out) if other is not kind]
        assert not any(other(images[0], views[0]) for other in others)
    # Per-image draws: the same image in every row of a batch is changed in more than one way.
    same = diff_augment(real[:1].expand(8, -1, -1, -1), policy)
    assert len({view.sum().item() for view in same}) > 1


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
