"""Image-to-image translation: pix2pix (``--task pix2pix``, from pairs) and CycleGAN (``--task cyclegan``,
from two unpaired domains), two entries of ``TASKS`` that share their data, handle, page and exports.

Isola et al. (2017) and Zhu et al. (2017), with the adversarial loss taken
from ``losses.LOSSES`` like every other GAN's. Where their parts live:

- the settings and entries below (config.yaml's ``pix2pix:`` and ``cyclegan:``
  sections, defaults, models, statistics);
- ``data.py``: the folder layouts (pairs side by side, two domains), decoded once;
- ``steps.py``: each paper's algorithm box (``pix2pix_step``, ``cyclegan_step``);
- ``training.py``: the ``Trainer`` the loop drives (random crops and flips, the
  grids of input | output | target, the held-out scores, the learning-rate decay);
- ``handle.py``: ``TrainedTranslator``, what ``ganforge.load`` returns for a
  run, and ``translate``; ``evaluate.py``, ``web.py`` and ``export.py``: its
  scores, web page and exports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ganforge.errors import UsageError
from ganforge.losses import LOSSES
from ganforge.models import MODELS
from ganforge.settings import setting, short
from ganforge.tasks.base import RunData, Statistic, Task

if TYPE_CHECKING:
    from ganforge.config import TrainConfig

DIRECTIONS = ("AtoB", "BtoA")
SIDE_BY_SIDE = ("auto", "yes", "no")  # translate's --side-by-side: whether an input holds a pair, A | B
NORMS = ("instance", "batch")
IMAGE_SIZE = 256  # pix2pix's and CycleGAN's crop size: the default --image-size of translation
LOAD_SIZE_RATIO = 286 / 256  # pix2pix's jitter: load 286 px, randomly crop 256
BATCH_CHOSEN_AT = 64  # px: the crop at which the translators' batches (ModelSpec.batch_size) were measured
HALF_WIDTH_FROM = 256  # px: from this crop on the translators' width is half the papers' (width_for_size)


def batch_for_size(model: str, image_size: int) -> int:
    """The model's batch at 64 px scaled by the crop's pixels, at least 1: pix2pix's U-Net 16 at 64 px, 4 at 128
    and 1 at 256 (the papers' batch at their size), so that a step costs about the same at every size. At 256 px
    a batch of 16 made 35 updates in 8 minutes on 2 CPU cores and drew a blur (benchmarks/translation.py)."""
    return max(1, round(MODELS[model].batch_size * (BATCH_CHOSEN_AT / image_size) ** 2))


def width_for_size(model: str, image_size: int) -> int:
    """The papers' width (64) below 256 px, half of it from there: at 256 px and batch 1, a step of pix2pix's
    U-Net at width 64 took 1.0 s on one core of a Zen 5 capped at AVX2 (float32) and at width 32 0.25 s; on a
    real AVX2 EPYC the narrower one trained 3.4x the reference code's images/s and beat it on L1, SSIM and SWD
    at 10 and 30 minutes, three seeds (benchmarks/translation.py, docs/translation.md). ``--width 64`` trains
    the papers' networks."""
    width = MODELS[model].width
    return width // 2 if image_size >= HALF_WIDTH_FROM else width


@dataclass
class TranslationSettings:
    """What every translation task sets: which way, how images are jittered, the translators' norm and dropout,
    and the learning-rate decay."""

    direction: str = setting("AtoB", "translate the data's A images into its B images, or B into A", choices=DIRECTIONS)
    load_size: int | None = setting(
        None,
        "images are resized to this square size, then randomly cropped to --image-size and flipped",
        default_help="286/256 of --image-size, as pix2pix",
        bounds="[1, inf)",
    )
    norm: str = setting(
        "instance",
        "the translators' normalisation: instance (the same in training and translation) or batch (pix2pix's original)",
        choices=NORMS,
    )
    dropout: bool = setting(True, "dropout 0.5 in the generators in training")
    lr_decay: float = setting(
        0.5,
        "share of the run's steps, at its end, over which the learning rates fall linearly to zero (as pix2pix and "
        "CycleGAN do over half their epochs); needs --steps or --epochs",
        bounds="[0, 1]",
    )


@dataclass
class Pix2PixSettings(TranslationSettings):
    """pix2pix's own settings: config.yaml's ``pix2pix:`` section."""

    lambda_l1: float = setting(100.0, "weight of the L1 distance to the target", bounds="[0, inf)")


@dataclass
class CycleGANSettings(TranslationSettings):
    """CycleGAN's own settings: config.yaml's ``cyclegan:`` section."""

    dropout: bool = setting(False, "dropout 0.5 in the generators in training")
    lambda_cycle: float = setting(10.0, "weight of the cycle-consistency loss", bounds="[0, inf)")
    lambda_identity: float = setting(
        0.5, "weight of the identity loss, as a share of --lambda-cycle", bounds="[0, inf)"
    )
    pool_size: int = setting(50, "past fakes kept to show the discriminators (0: only the newest)", bounds="[0, inf)")


LOGIT = "mean patch logit"


def is_folder(path: str) -> bool:
    """Whether ``path`` names a folder (False for what no path can be: too long, a NUL byte)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


class Translation(Task):
    """What pix2pix and CycleGAN share: the translators, the data layouts, the handle, page and exports."""

    models = ("unet", "resnet-blocks")
    commands = frozenset({"translate"})
    default_help = dict(
        image_size=str(IMAGE_SIZE),
        batch_size="scaled by the crop's pixels from 64 px, 1 at 256",
        width=f"half from {HALF_WIDTH_FROM} px",
    )
    default_images = 32_000  # a run given no length: 2,000 steps of 16 at 64 px, 32,000 of one at 256 px
    paired: bool  # trained on pairs (the L1 to the target): pix2pix

    def resolve(self, config: TrainConfig, data: RunData | None = None) -> TrainConfig:
        """The task's recipe and the model's, the crop (256) and load size (286/256 of it), the batch and width by
        the crop's size (``batch_for_size``, ``width_for_size``), the held-out share;
        with the data, none held out where they have a test split of their own, the run's length and name."""
        from ganforge.config import DEFAULT_HOLDOUT, fill, with_model_recipe, with_run_defaults

        config = fill(config, self.defaults | dict(image_size=IMAGE_SIZE))
        size = config.image_size
        by_size = dict(batch_size=batch_for_size(config.model, size), width=width_for_size(config.model, size))
        config = with_model_recipe(fill(config, by_size))
        load_size = config.settings.load_size or round(config.image_size * LOAD_SIZE_RATIO)
        if load_size < config.image_size:
            raise UsageError(f"--load-size {load_size} is smaller than the crop, --image-size {config.image_size}")
        holdout = DEFAULT_HOLDOUT if config.holdout is None else config.holdout
        config = dataclasses.replace(config, load_size=load_size, holdout=holdout)
        if data is None:
            return config
        folder = Path(config.data).resolve()
        config = with_run_defaults(config, f"{self.name}-{folder.name}", str(folder))
        return dataclasses.replace(config, holdout=0.0 if data.facts["split"] == "test" else config.holdout)

    def validate(self, config: TrainConfig) -> None:
        if config.loss is not None and LOSSES[config.loss].penalties:
            raise UsageError(f"--task {self.name} takes no discriminator penalty (--loss {config.loss})")
        if not is_folder(config.data):
            unset = config.data == next(f.default for f in dataclasses.fields(config) if f.name == "data")
            why = "" if unset else f"; {short(config.data)} is not a folder"  # the GAN's default, not the user's
            raise UsageError(f"--task {self.name} needs --data DIR: a folder of image pairs or of two domains{why}")
        if config.image_size is not None:
            from ganforge.models.translation import check_image_size

            try:
                check_image_size(config.image_size)
            except ValueError as error:
                raise UsageError(f"--image-size {config.image_size}: {error}") from None

    def load_data(self, config: TrainConfig) -> RunData:
        from ganforge.tasks.translation.training import load_data

        return load_data(config, need_pairs=self.paired)

    def networks(self, config: TrainConfig, data: RunData) -> tuple[dict[str, dict], dict[str, dict]]:
        from ganforge.tasks.translation.training import networks

        return networks(config, data, both_ways=not self.paired)

    def trainer(self, config, state, data, device, context):
        from ganforge.tasks.translation.training import TranslationTrainer

        return TranslationTrainer(config, state, data, device, context, self)

    def handle(self, checkpoint, path, device, ema):
        from ganforge.tasks.translation.handle import TrainedTranslator

        return TrainedTranslator.from_checkpoint(checkpoint, path, device, ema)


class Pix2Pix(Translation):
    name = "pix2pix"
    summary = "image-to-image translation from paired examples (pix2pix)"
    settings = Pix2PixSettings
    paired = True
    # Isola et al.: U-Net, BCE, lambda_L1 100, dropout; instance norm (see models/translation.py). Not in the
    # paper: a moving average of the generator, which scored better held-out L1, PSNR and SSIM than the same
    # run's latest weights at 10 and 30 minutes on CMP Facades (docs/translation.md). float32: bf16 gave 1.39x
    # the images/s and the same scores within one seed at 10 minutes (docs/translation.md).
    defaults = dict(model="unet", loss="nonsaturating", precision="32", ema=True)
    statistics = (
        Statistic("d_loss", "discriminator", "d_loss", "losses"),
        Statistic("g_loss", "generator, adversarial part", "g_loss", "losses"),
        Statistic("l1", "generator, L1 to the target", "L1", "losses"),
        Statistic("d_real_logit", "D(a, b): real pairs", "D real", "discriminator", LOGIT, None, (0.0, "")),
        Statistic("d_fake_logit", "D(a, G(a)): translated pairs", "D fake", "discriminator", LOGIT, None, (0.0, "")),
    )


class CycleGAN(Translation):
    name = "cyclegan"
    summary = "image-to-image translation between two unpaired domains (CycleGAN)"
    settings = CycleGANSettings
    paired = False
    # Zhu et al.: ResNet blocks, LSGAN, lambda 10, identity 0.5, a history of 50 fakes, instance norm.
    defaults = dict(model="resnet-blocks", loss="lsgan", precision="32")
    statistics = (
        Statistic("d_loss", "discriminators", "d_loss", "losses"),
        Statistic("g_loss", "generators, adversarial part", "g_loss", "losses"),
        Statistic("cycle", "generators, cycle-consistency L1", "cycle", "losses"),
        Statistic("d_real_logit", "D_B(b): real B images", "D real", "discriminator", LOGIT, None, (0.0, "")),
        Statistic("d_fake_logit", "D_B(G(a)): translated A images", "D fake", "discriminator", LOGIT, None, (0.0, "")),
    )


PIX2PIX, CYCLEGAN = Pix2Pix(), CycleGAN()
