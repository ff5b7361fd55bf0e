"""ganforge's image scores against the references a user of the field would reach for: SSIM and PSNR against
scikit-image's, the sliced Wasserstein distance against a NumPy restatement of the progressive-GAN code
(tkarras/progressive_growing_of_gans, metrics/sliced_wasserstein.py) that it follows."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganforge.metrics.swd import MIN_LEVEL, laplacian_pyramid, levels, swd
from ganforge.metrics.translation import psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics", reason="the reference scores need scikit-image")
ndimage = pytest.importorskip("scipy.ndimage", reason="the SWD reference needs scipy")


def smooth_images(n: int, size: int, seed: int, channels: int = 3) -> torch.Tensor:
    """(n, C, size, size) uint8 images with structure at every scale: upsampled noise of several sizes, summed."""
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(n, channels, size, size)
    for cells in (2, 4, 8, size):
        noise = torch.rand(n, channels, cells, cells, generator=generator)
        total += F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    return (total / 4 * 255).round().clamp(0, 255).to(torch.uint8)


def degrade(images: torch.Tensor, seed: int) -> torch.Tensor:
    """The same images with noise: a pair of each, neither equal nor unrelated."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * 20
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("channels, size", [(3, 37), (1, 28), (3, 64)])
def test_ssim_and_psnr_equal_scikit_images(channels, size):
    x = smooth_images(6, size, seed=channels, channels=channels)
    y = degrade(x, seed=size)
    ours_ssim, ours_psnr = ssim(x, y), psnr(x, y)
    for index in range(len(x)):
        a, b = x[index].double().numpy() / 255, y[index].double().numpy() / 255
        theirs = skimage_metrics.structural_similarity(
            a, b, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert ours_ssim[index].item() == pytest.approx(theirs, abs=1e-5)
        assert ours_psnr[index].item() == pytest.approx(
            skimage_metrics.peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-4
        )


# ---------------------------------------------------------------- the progressive-GAN SWD, restated in NumPy

GAUSSIAN = np.float32([[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]])
GAUSSIAN = GAUSSIAN / 256.0


def pyr_down(minibatch):  # cv2.pyrDown
    return ndimage.convolve(minibatch, GAUSSIAN[np.newaxis, np.newaxis], mode="mirror")[:, :, ::2, ::2]


def pyr_up(minibatch):  # cv2.pyrUp
    s = minibatch.shape
    res = np.zeros((s[0], s[1], s[2] * 2, s[3] * 2), minibatch.dtype)
    res[:, :, ::2, ::2] = minibatch
    return ndimage.convolve(res, GAUSSIAN[np.newaxis, np.newaxis] * 4.0, mode="mirror")


def generate_laplacian_pyramid(minibatch, num_levels):
    pyramid = [np.float32(minibatch)]
    for _ in range(1, num_levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] -= pyr_up(pyramid[-1])
    return pyramid


def get_descriptors_for_minibatch(minibatch, nhood_size, nhoods_per_image, rng):
    s = minibatch.shape
    n = nhoods_per_image * s[0]
    h = nhood_size // 2
    nhood, chan, x, y = np.ogrid[0:n, 0 : s[1], -h : h + 1, -h : h + 1]
    img = nhood // nhoods_per_image
    x = x + rng.integers(h, s[3] - h, size=(n, 1, 1, 1))
    y = y + rng.integers(h, s[2] - h, size=(n, 1, 1, 1))
    idx = ((img * s[1] + chan) * s[2] + y) * s[3] + x
    return minibatch.flat[idx]


def finalize_descriptors(desc):
    desc = np.concatenate(desc, axis=0)
    desc -= np.mean(desc, axis=(0, 2, 3), keepdims=True)
    desc /= np.std(desc, axis=(0, 2, 3), keepdims=True)
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein(a, b, dir_repeats, dirs_per_repeat, rng):
    results = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((a.shape[1], dirs_per_repeat))
        dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
        dirs = dirs.astype(np.float32)
        proj_a, proj_b = np.sort(np.matmul(a, dirs), axis=0), np.sort(np.matmul(b, dirs), axis=0)
        results.append(np.mean(np.abs(proj_a - proj_b)))
    return np.mean(results)


def reference_swd(real: np.ndarray, fake: np.ndarray, seed: int) -> list[float]:
    """Per level, x 1e3, as the progressive-GAN API computes it (7x7 patches, 128 per image, 4 x 128 dirs)."""
    rng = np.random.default_rng(seed)
    count = len(levels(real.shape[-1]))
    descriptors = []
    for images in (real, fake):
        pyramid = generate_laplacian_pyramid(images, count)
        descriptors.append(
            [finalize_descriptors([get_descriptors_for_minibatch(level, 7, 128, rng)]) for level in pyramid]
        )
    return [1e3 * sliced_wasserstein(a, b, 4, 128, rng) for a, b in zip(*descriptors, strict=True)]


def test_the_laplacian_pyramid_is_the_references():
    images = smooth_images(4, 64, seed=1)
    ours = laplacian_pyramid(images.float(), 3)
    theirs = generate_laplacian_pyramid(images.numpy(), 3)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-3)


@pytest.mark.parametrize("what", ["same distribution", "blurred"])
def test_swd_agrees_with_the_reference_within_its_seed_spread(what):
    real, other = smooth_images(64, 32, seed=0), smooth_images(64, 32, seed=1)
    if what == "blurred":
        other = F.avg_pool2d(other.float(), 3, stride=1, padding=1, count_include_pad=False).round().to(torch.uint8)
    seeds = range(3)
    ours = np.array([[swd(real, other, seed=seed)[f"swd_{level}"] for level in (32, 16)] for seed in seeds])
    theirs = np.array([reference_swd(real.numpy(), other.numpy(), seed) for seed in seeds])
    spread = np.maximum(ours.std(axis=0), theirs.std(axis=0))
    gap = np.abs(ours.mean(axis=0) - theirs.mean(axis=0))
    assert (gap <= 3 * spread + 0.05 * theirs.mean(axis=0)).all(), (ours.mean(axis=0), theirs.mean(axis=0), spread)
    assert MIN_LEVEL == 16
