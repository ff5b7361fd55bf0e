"""The noise-to-image GAN (``--task gan``): a generator learns to turn noise (and a class) into images.

Goodfellow et al. (2014), with the variants as settings: the loss, R1 and
the gradient penalty, several critic updates, DiffAugment, class conditioning,
the generator's moving average. Where its parts live:

- ``GANSettings`` and ``GAN`` below: its settings (config.yaml's ``gan:``
  section), its defaults and how they follow the data, its models;
- ``step.py``: the algorithm box (one D update, then one G update);
- ``training.py``: its data (a dataset source and the held-out share), its
  networks, and the ``Trainer`` the loop drives (batches, grids, FID);
- ``handle.py``: ``TrainedGenerator``, what ``ganforge.load`` returns for a
  run: sampling, ``generate``, ``interpolate``, a labelled dataset, and its
  evaluation (``metrics.evaluation``), web page (``web.py``) and exports
  (``export.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ganforge.augment import DEFAULT_POLICY, parse_policy
from ganforge.errors import UsageError
from ganforge.losses import LOSSES
from ganforge.models import MODELS
from ganforge.settings import setting
from ganforge.tasks.base import RunData, Statistic, Task

if TYPE_CHECKING:
    from ganforge.config import TrainConfig


@dataclass
class GANSettings:
    """A noise-to-image GAN's own settings: config.yaml's ``gan:`` section. ``None``: from the data or the loss."""

    conditional: bool | None = setting(
        None,
        "class-conditional generator and projection discriminator, trained on the data's labels",
        default_help="dcgan and resnet: on when the data has two classes or more; mlp: off",
    )
    class_loss: float | None = setting(
        None,
        "class consistency of a conditional model: an auxiliary classifier in D learns the real images' classes "
        "and the generator is pushed to make fakes it reads as the class asked for, each cross-entropy at this "
        "weight (AC-GAN's term beside the projection; 0: off)",
        default_help="0.5 for dcgan, else 0",
        bounds="[0, inf)",
    )
    z_dim: int = setting(100, "length of the generator's noise vector", bounds="[1, inf)")
    data_root: str | None = setting(
        None,
        "torchvision data root holding the dataset; ganforge never downloads into a root you name",
        default_help="$GANFORGE_DATA_ROOT, else ~/.cache/ganforge/data",
        resumable=True,
    )
    download: bool = setting(True, "download a missing built-in dataset into ganforge's cache folder", resumable=True)
    n_critic: int | None = setting(
        None, "discriminator updates per generator update", default_help="5 for wgan-gp, else 1", bounds="[1, inf)"
    )
    r1: float = setting(0.0, "R1 penalty weight gamma on real images' gradients (0: off)", bounds="[0, inf)")
    r1_every: int = setting(
        16, "apply R1 every this many steps, scaled up to match (lazy regularisation)", bounds="[1, inf)"
    )
    mirror: bool = setting(
        False,
        "x-flip each training image at random, half the time, as StyleGAN2-ADA's --mirror (for data whose "
        "mirror images are as real: faces, objects, scenes; not digits or text)",
    )
    diffaug: bool | None = setting(
        None,
        "differentiable augmentation (DiffAugment) of real and fake images in D",
        default_help="on for colour images (dcgan, resnet), off for grayscale",
    )
    diffaug_policy: str = setting(DEFAULT_POLICY, "DiffAugment's augmentations, comma-separated")
    sync_bn: bool = setting(
        False, "synchronise BatchNorm statistics across the processes of a torchrun run (CUDA only)"
    )
    eval_samples: int = setting(
        2000, "samples generated at each --eval-every evaluation", resumable=True, bounds="[10, inf)"
    )


# What a GAN (dcgan, resnet) on colour images takes where the user gave nothing: the best recipe of
# benchmarks/quality.py on CIFAR-10 at 32 px (docs/quality.md): hinge loss and DiffAugment gave 27 FID at
# 10 minutes against 40 for the grayscale default. The classic mlp keeps its recipe.
COLOUR_DEFAULTS = dict(loss="hinge", diffaug=True)
GRAYSCALE_DEFAULTS = dict(loss="nonsaturating", diffaug=False)
# dcgan on grayscale images (MNIST's 28 px) learns most per CPU-minute at batch 16 with the class term at 0.5
# and Adam at 1.6e-3, 8x the paper's rate (benchmarks/quality.py in float32 on AVX2 machines, docs/quality.md).
# Batch 16 and the class term: at 2.5 minutes, 3 seeds, FID 7.7 against 24.2 for the default before them (batch
# 64, no class term), the class asked for drawn 91% of the time against 66%; batch 32 fell between. The rate: at
# 3 minutes, 3 seeds, FID 12.2, 6.2, 2.9 and 2.2 at 2e-4, 4e-4, 8e-4 and 1.6e-3, the class drawn 85%, 91%, 96%
# and 98% of the time (the generator is sampled through its moving average, which these runs all kept). The
# term at 0.5 rather than 0.2, on a real AVX2 machine's 2 cores, 3 seeds: the class drawn 99.1% of the time at
# 3 minutes against 98.8% (the weakest class 97.5% against 95.5%), FID 1.59 against 1.67, 1.17 against 1.28 at
# 10 minutes, and the same CAS (94.0% of real against 94.2%, over each run's 8th to 10th minute).
GRAYSCALE_DCGAN = dict(batch_size=16, class_loss=0.5)
# Its rate, with the EMA only (--no-ema keeps the model's): 1.6e-3 left a plain DCGAN's discriminator unable to
# tell digits from noise after 1,000 steps (tests/test_training.py), and the sweep ran with the EMA only.
GRAYSCALE_DCGAN_EMA = dict(lr=1.6e-3)
# dcgan on colour images (CIFAR-10's 32 px; batch 64, hinge and DiffAugment as above) with the same two changes,
# measured the same way (float32, one core of a real AVX2 machine, 10 minutes, 3 seeds, docs/quality.md): the
# class term at 0.5 and Adam at 8e-4, 4x the paper's rate, gave FID 40.2 against 66.9 for the paper's rate without
# the term (at seed 0 the term alone 51.1, the rate alone 42.9, 1.6e-3 49.8), and drew the class asked for 46% of
# the time against 25%. The rate again with the EMA only.
COLOUR_DCGAN = dict(class_loss=0.5)
COLOUR_DCGAN_EMA = dict(lr=8e-4)
# What these decide of the model's recipe (the learning rates follow --lr): unknown until the channels are,
# so a config resolved without the data (--print-config) leaves them unset.
CHANNEL_DEPENDENT = ("batch_size", "lr", "g_lr", "d_lr")

PROBABILITY = "probability of 'real'"


class GAN(Task):
    name = "gan"
    summary = "images from noise (and class labels)"
    settings = GANSettings
    models = ("mlp", "dcgan", "resnet")
    # precision auto: bf16 where the hardware computes in it. On CIFAR-10 it reached float32's FID in 10 and 30
    # minutes with 1.45x the steps (docs/quality.md); on MNIST it is 1.4x (dcgan) and 1.5x (mlp) the images/s.
    defaults = dict(model="dcgan", precision="auto")
    default_help = dict(
        loss="nonsaturating; hinge for colour images (dcgan, resnet)",
        batch_size="dcgan on grayscale images 16",
        lr="dcgan 0.0016 on grayscale images, 0.0008 on colour ones",
    )
    # What runs from before a setting existed trained with: unconditional (a flat config), no class term.
    legacy_defaults = dict(conditional=False, class_loss=0.0)
    commands = frozenset({"generate", "interpolate"})
    # A run given no length: 2,000 steps of 64, the default's length before #29 made its batch 16 (8,000 steps),
    # where the README's grid has every class (~2 minutes on 2 cores in bf16).
    default_images = 128_000
    default_length_note = "{:,} steps of {} on MNIST".format(
        default_images // GRAYSCALE_DCGAN["batch_size"], GRAYSCALE_DCGAN["batch_size"]
    )
    statistics = (
        Statistic("d_loss", "discriminator", "d_loss", "losses"),
        Statistic("g_loss", "generator", "g_loss", "losses"),
        Statistic(
            "d_real",
            "D(x), real images",
            "D(x)",
            "discriminator",
            PROBABILITY,
            (0.0, 1.0),
            (0.5, "cannot tell them apart"),
        ),
        Statistic(
            "d_fake", "D(G(z)), generated images", "D(G(z))", "discriminator", PROBABILITY, (0.0, 1.0), (0.5, "")
        ),
    )

    def resolve(self, config: TrainConfig, data: RunData | None = None) -> TrainConfig:
        """The model and precision by default; hinge loss and DiffAugment for colour images (but on mlp), the
        nonsaturating loss without for grayscale; for dcgan the class term, with Adam at 1.6e-3 and batch 16 on
        grayscale and at 8e-4 on colour, once the channels are known; the model's recipe; with the data, its
        size, channels, classes, held-out share, the run's length and name."""
        from ganforge.config import DEFAULT_HOLDOUT, fill, with_model_recipe, with_run_defaults
        from ganforge.data import resolve_source

        config = fill(config, self.defaults)
        channels = data.facts["image_shape"][0] if data is not None else config.channels
        if channels is not None:
            colour = channels == 3 and config.model != "mlp"
            config = fill(config, COLOUR_DEFAULTS if colour else GRAYSCALE_DEFAULTS)
            if config.model == "dcgan":
                config = fill(config, COLOUR_DCGAN if colour else GRAYSCALE_DCGAN)
                if config.ema is not False:  # the model's default EMA, or --ema
                    config = fill(config, COLOUR_DCGAN_EMA if colour else GRAYSCALE_DCGAN_EMA)
            config = fill(config, dict(class_loss=0.0))
        undecided = channels is None and config.model == "dcgan"
        unset = [name for name in CHANNEL_DEPENDENT if undecided and getattr(config, name) is None]
        config = dataclasses.replace(with_model_recipe(config), **dict.fromkeys(unset))
        if config.loss is not None:
            config = fill(config, dict(n_critic=LOSSES[config.loss].default_n_critic))
        if data is None:
            return config
        gan, source = config.settings, resolve_source(config.data)
        channels, height, _ = data.facts["image_shape"]
        name = f"{config.model}-{source.short_name(config.data)}"
        config = with_run_defaults(config, name, source.canonical(config.data))
        conditional = gan.conditional
        if conditional is None:
            conditional = MODELS[config.model].conditional and data.facts["labelled"]
        return dataclasses.replace(
            config,
            image_size=height,
            channels=channels,
            holdout=0.0 if source.has_test_split else DEFAULT_HOLDOUT if config.holdout is None else config.holdout,
            settings=dataclasses.replace(
                gan,
                conditional=conditional,
                data_root=str(Path(gan.data_root).resolve()) if gan.data_root else None,
            ),
        )

    def validate(self, config: TrainConfig) -> None:
        """DiffAugment's policy parses, and ``--data`` names a kind of source."""
        try:
            parse_policy(config.settings.diffaug_policy)
        except ValueError as error:
            raise UsageError(f"--diffaug-policy: {error}") from None
        from ganforge.data import resolve_source  # the kinds of source live with the data, which need torch

        resolve_source(config.data)

    def load_data(self, config: TrainConfig) -> RunData:
        from ganforge.tasks.gan.training import load_data

        return load_data(config)

    def networks(self, config: TrainConfig, data: RunData) -> tuple[dict[str, dict], dict[str, dict]]:
        from ganforge.tasks.gan.training import networks

        return networks(config, data)

    def trainer(self, config, state, data, device, context):
        from ganforge.tasks.gan.training import GANTrainer

        return GANTrainer(config, state, data, device, context)

    def handle(self, checkpoint, path, device, ema):
        from ganforge.tasks.gan.handle import TrainedGenerator

        return TrainedGenerator.from_checkpoint(checkpoint, path, device, ema)


GAN_TASK = GAN()
