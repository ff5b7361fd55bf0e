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
works unpaired; FID and KID do the same in a feature extractor's space.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.data import conform_images
from ganforge.errors import GanforgeError
from ganforge.metrics.evaluation import MIN_SAMPLES
from ganforge.metrics.features import make_extractor
from ganforge.metrics.scores import fid, kid
from ganforge.metrics.swd import MIN_LEVEL, swd
from ganforge.pairs import TranslationData
from ganforge.translation import translate_images

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


def translate_all(generator: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Every image through ``generator``, in batches (uint8 in, uint8 out)."""
    return torch.cat([translate_images(generator, batch) for batch in images.split(batch_size)])


def score_translator(generators: dict[str, nn.Module], test: TranslationData, extractor=None) -> dict:
    """The scores of a run's translators on its test data: against the targets where ``test`` is paired
    (A -> B), the cycle error A -> B -> A where there is a way back (CycleGAN), and how far the outputs lie
    from the target domain's test images as a set: SWD (``metrics.swd``, no network needed) and, with a
    feature ``extractor`` (``metrics.features``), FID and KID."""
    results = {"pairs" if test.paired else "images": len(test.a)}
    outputs = translate_all(generators["AtoB"], test.a)
    targets = conform_images(test.b, None, outputs.shape[1])  # a test split may be mostly of another mode
    if test.paired:
        results |= pair_scores(outputs, targets)
    if "BtoA" in generators:
        back = translate_all(generators["BtoA"], outputs)
        results["cycle_l1"] = l1(back, conform_images(test.a, None, back.shape[1])).mean().item()
    if targets.shape[1:] == outputs.shape[1:] and min(outputs.shape[-2:]) >= MIN_LEVEL and len(outputs) > 1:
        results["swd"] = swd(targets, outputs)["swd"]
    if extractor is not None:
        results |= set_scores(extractor, outputs, targets)
    return results


def set_scores(extractor, outputs: torch.Tensor, targets: torch.Tensor) -> dict:
    """FID and KID of the outputs against the targets in ``extractor``'s features, named by it."""
    if len(outputs) < MIN_SAMPLES or len(targets) < MIN_SAMPLES:
        raise GanforgeError(
            f"FID and KID need at least {MIN_SAMPLES} test images; this run has {min(len(outputs), len(targets))}"
        )
    fake, _ = extractor(outputs)
    real, _ = extractor(targets)
    kid_mean, _ = kid(fake, real, subset_size=min(1000, len(fake), len(real)))
    return {"features": extractor.name, "fid": fid(fake, real), "kid": kid_mean}


def evaluate_translation(
    source,
    device: str = "auto",
    data: str | None = None,  # the data to take the test split from (default: the run's)
    features: str = "auto",  # FID/KID features: mnist, cifar10, inception; auto: mnist for 1x28x28 outputs, else none
    inception_weights: str | None = None,
) -> dict:
    """``ganforge evaluate`` of a translation run: its scores on the test split of its data (or ``data``)."""
    from ganforge.pairs import load_translation_data
    from ganforge.translation import load_translator

    translator = load_translator(source, device)
    config = translator.config
    _, test, split = load_translation_data(
        data or config["data"],
        config["direction"],
        config["load_size"],
        config["image_size"],
        config.get("channels"),
        config["holdout"],
        need_pairs=False,
        test_only=True,
    )
    shape = (translator.generators["AtoB"].out_channels, *test.b.shape[-2:])
    if features == "auto":
        features = "mnist" if shape == (1, 28, 28) else "swd"
    on = next(translator.generators["AtoB"].parameters()).device
    extractor = None if features == "swd" else make_extractor(features, shape, on, inception_weights)
    return {"task": translator.task, "split": split} | score_translator(translator.generators, test, extractor)
