"""Scores of a translation: L1, PSNR and SSIM against the true targets, and the cycle-consistency error.

Every score is on images in [0, 1] (uint8 / 255), averaged over the images:
L1 is the mean absolute difference per pixel and channel; PSNR is
10 log10(1 / MSE) in dB per image; SSIM is Wang et al. (2004)'s with an 11x11
Gaussian window of sigma 1.5, K1 = 0.01 and K2 = 0.03 (the usual constants;
scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)``), over the valid windows, per
channel and then averaged. The cycle error is L1 between an image and its
translation there and back. SWD (``metrics.swd``) compares the outputs with
the target domain's test images as sets of patches, which needs no network and
works unpaired; FID and KID do the same in a feature extractor's space. A
translation run's evaluation joins them: ``tasks/translation/evaluate.py``.
"""

import math

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
PSNR_CAP = 100.0  # dB of an image identical to its target (MSE 0), instead of infinity


def as_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float64 in [0, 1]."""
    return images.double() / 255.0


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(size, size) Gaussian weights summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) SSIM of each pair of (N, C, H, W) uint8 images (sides of at least 11 px)."""
    x, y = as_unit(x), as_unit(y)
    channels = x.shape[1]
    window = gaussian_window().to(x).expand(channels, 1, -1, -1)
    blur = lambda t: F.conv2d(t, window, groups=channels)  # noqa: E731  (valid windows only)
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(1, 2, 3))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) peak signal-to-noise ratio in dB of each pair of (N, C, H, W) uint8 images (peak 1)."""
    mse = ((as_unit(x) - as_unit(y)) ** 2).mean(dim=(1, 2, 3))
    return torch.where(mse > 0, -10 * torch.log10(mse.clamp_min(1e-300)), torch.full_like(mse, PSNR_CAP))


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) mean absolute difference in [0, 1] of each pair of (N, C, H, W) uint8 images."""
    return (as_unit(x) - as_unit(y)).abs().mean(dim=(1, 2, 3))


def pair_scores(outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    """Mean L1, PSNR and SSIM of ``outputs`` against ``targets`` (uint8, same shapes)."""
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in shape")
    scores = {"l1": l1(outputs, targets).mean().item(), "psnr": psnr(outputs, targets).mean().item()}
    if min(outputs.shape[-2:]) >= SSIM_WINDOW:
        scores["ssim"] = ssim(outputs, targets).mean().item()
    else:
        scores["ssim"] = math.nan  # no whole window fits
    return scores
