"""The sliced Wasserstein distance on Laplacian-pyramid patches (metrics/swd.py) and `evaluate --features swd`."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.metrics.evaluation import evaluate_images
from ganforge.metrics.swd import (
    laplacian_pyramid,
    levels,
    normalise,
    pyramid_down,
    pyramid_up,
    random_patches,
    sliced_wasserstein,
    swd,
)
from test_cli import run_cli


def textured(n: int, size: int = 32, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """(n, C, size, size) uint8 images with detail at every scale: random blobs of colour over a gradient."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = (x + y).float().expand(n, channels, -1, -1) * (100 / (2 * size))
    for _ in range(6):
        cy, cx = torch.randint(0, size, (2, n, 1, 1, 1), generator=g)
        radius = torch.randint(2, max(3, size // 3), (n, 1, 1, 1), generator=g)
        colour = torch.randint(0, 155, (n, channels, 1, 1), generator=g)
        inside = ((y - cy) ** 2 + (x - cx) ** 2 < radius**2).float()
        images = images * (1 - inside) + colour * inside
    return images.round().clamp(0, 255).to(torch.uint8)


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = (k[:, None] * k[None, :] / k.sum() ** 2).expand(images.shape[1], 1, -1, -1)
    padded = F.pad(images.float(), (radius,) * 4, mode="reflect")
    return F.conv2d(padded, k, groups=images.shape[1]).round().clamp(0, 255).to(torch.uint8)


def numpy_pyr_down(image: np.ndarray) -> np.ndarray:
    """OpenCV's pyrDown written out: the 5x5 binomial filter over mirrored edges, then every second pixel."""
    f = np.array([1, 4, 6, 4, 1], dtype=np.float64)
    kernel = np.outer(f, f) / 256
    padded = np.pad(image, 2, mode="reflect")
    out = np.zeros_like(image, dtype=np.float64)
    for dy in range(5):
        for dx in range(5):
            out += kernel[dy, dx] * padded[dy : dy + image.shape[0], dx : dx + image.shape[1]]
    return out[::2, ::2]


def test_pyramid_down_is_opencvs_pyrdown_by_hand():
    images = torch.rand(2, 3, 20, 14, dtype=torch.float64) * 255
    mine = pyramid_down(images)
    for n in range(2):
        for c in range(3):
            expected = numpy_pyr_down(images[n, c].numpy())
            np.testing.assert_allclose(mine[n, c].numpy(), expected, atol=1e-9)


def test_a_constant_image_has_no_detail_and_a_laplacian_pyramid_adds_back_to_the_image():
    flat = torch.full((1, 3, 32, 32), 77.0)
    pyramid = laplacian_pyramid(flat, 2)
    assert pyramid[0].abs().max() < 1e-4  # pyrUp(pyrDown(c)) = c: no detail
    assert torch.allclose(pyramid[1], flat[:, :, ::2, ::2])
    images = textured(3, size=64).float()
    pyramid = laplacian_pyramid(images, len(levels(64)))
    assert [level.shape[-1] for level in pyramid] == [64, 32, 16]
    rebuilt = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        rebuilt = detail + pyramid_up(rebuilt, detail.shape[-2:])
    assert torch.allclose(rebuilt, images, atol=1e-3)


def test_patches_are_7x7_windows_of_the_image_they_come_from():
    height, width = 20, 24
    position = torch.arange(height * width, dtype=torch.float32).view(1, 1, height, width)
    images = torch.cat([position, position + 10_000], dim=1).repeat(3, 1, 1, 1)  # 3 images, 2 channels
    images = images + 100_000 * torch.arange(3).view(3, 1, 1, 1)
    patches = random_patches(images, 50, torch.Generator().manual_seed(0))
    assert patches.shape == (150, 2, 7, 7)
    corner = patches[:, :1, :1, :1]
    offsets = torch.arange(7)[:, None] * width + torch.arange(7)[None, :]
    assert torch.equal(patches[:, 0] - corner[:, 0], offsets.float().expand(150, -1, -1))
    assert torch.equal(patches[:, 1] - patches[:, 0], torch.full((150, 7, 7), 10_000.0))
    image = (patches[:, 0, 0, 0] // 100_000).long()
    assert torch.equal(image, torch.arange(3).repeat_interleave(50))  # each image gives its own patches
    assert len(patches[:, 0, 0, 0].unique()) > 30  # at many places


def test_normalised_patches_have_zero_mean_and_unit_spread_per_channel():
    patches = torch.randn(500, 3, 7, 7, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1) + 4
    vectors = normalise(patches).view(500, 3, 7, 7)
    assert torch.allclose(vectors.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(vectors.std(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-9)


def test_sliced_wasserstein_of_a_shifted_set_is_the_mean_projected_shift():
    a = torch.randn(300, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert sliced_wasserstein(a, a[torch.randperm(300)], torch.Generator().manual_seed(0)) == 0.0
    shift = torch.zeros(10, dtype=torch.float64)
    shift[3] = 2.0
    directions = torch.randn(4, 10, 128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    expected = (shift @ directions).abs().mean().item()  # sorting keeps a shift a shift
    assert sliced_wasserstein(a, a + shift, torch.Generator().manual_seed(0)) == pytest.approx(expected, rel=1e-9)


def test_swd_grows_with_blur_and_noise_and_repeats_with_its_seed():
    real, other = textured(200, seed=1), textured(200, seed=2)
    same = swd(real, other)
    assert set(same) == {"swd", "swd_32", "swd_16"}
    assert same == swd(real, other)  # the seed fixes the patches and directions
    assert same["swd"] == pytest.approx((same["swd_32"] + same["swd_16"]) / 2)
    blur_1, blur_2 = swd(real, blurred(other, 1.0)), swd(real, blurred(other, 2.0))
    noise = (other.float() + 40 * torch.randn(other.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 255)
    noisy = swd(real, noise.to(torch.uint8))
    assert same["swd_32"] < blur_1["swd_32"] < blur_2["swd_32"]  # fine detail goes first
    assert same["swd"] * 3 < noisy["swd"]


def test_swd_refuses_different_shapes_and_images_under_16_px():
    with pytest.raises(ValueError, match="one shape"):
        swd(textured(20, 32), textured(20, 32, channels=1))
    with pytest.raises(ValueError, match="at least 16 px"):
        swd(textured(20, 8), textured(20, 8))


def test_evaluate_features_swd_scores_a_folder_without_a_network(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    for index, image in enumerate(textured(60, seed=5)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(real / f"{index:03d}.png")
    samples = textured(60, seed=6)
    close = evaluate_images(samples, str(real), features="swd")
    far = evaluate_images(blurred(samples, 1.5), str(real), features="swd")
    assert close["features"] == "swd" and close["samples"] == 60
    assert close["swd"] < far["swd"] and close["swd_32"] * 2 < far["swd_32"]
    fake = tmp_path / "fake.npz"
    np.savez(fake, images=samples.numpy())
    code, out, err = run_cli(capsys, "evaluate", fake, "--reference", real, "--features", "swd", "--json")
    assert code == 0, err
    assert json.loads(out)["swd"] == pytest.approx(close["swd"])
    code, out, err = run_cli(capsys, "evaluate", fake, "--reference", real, "--features", "swd", "--n", "20")
    assert code == 0 and "swd_16" in out
    with pytest.raises(GanforgeError, match="--features swd: SWD needs images of at least 16 px"):
        evaluate_images(textured(20, 8), str(real), features="swd")
