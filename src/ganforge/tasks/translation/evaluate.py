"""A translation run's evaluation: L1, PSNR and SSIM of its held-out translations against their targets, the
cycle error, and how far its outputs lie from the target domain as a set (SWD; FID and KID in a feature
extractor's space). The scores themselves are pure functions in ``metrics/``.
"""

from pathlib import Path

import torch
from torch import nn

from ganforge.data import conform_images
from ganforge.errors import GanforgeError
from ganforge.metrics.evaluation import MIN_SAMPLES
from ganforge.metrics.features import make_extractor
from ganforge.metrics.scores import fid, kid
from ganforge.metrics.swd import MIN_LEVEL, swd
from ganforge.metrics.translation import l1, pair_scores
from ganforge.tasks.base import Trained
from ganforge.tasks.translation.data import TranslationData, load_translation_data
from ganforge.tasks.translation.handle import translate_images


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


def evaluate_translator(
    translator: Trained,  # a loaded translation run (``handle.TrainedTranslator``)
    reference: str | None = None,  # the folder to take the test split from (default: the run's data)
    features: str = "auto",  # FID/KID features: mnist, cifar10, inception; auto: mnist for 1x28x28 outputs, else none
    inception_weights: str | None = None,
) -> dict:
    """``ganforge evaluate`` of a translation run: its scores on the test split of its data (or ``reference``)."""
    config, settings = translator.config, translator.settings
    data = reference or config.get("data")
    if not data or not Path(data).is_dir():
        raise GanforgeError(f"the run's data {data} is gone: pass --reference DIR, a folder in the run's layout")
    _, test, split = load_translation_data(
        data,
        settings["direction"],
        settings["load_size"],
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
