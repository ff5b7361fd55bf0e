"""TrainConfig: every setting of a training run, saved as YAML beside the run.

The command line maps its flags one-to-one onto these fields (the help text
of each flag is the field's ``help``), and ``config.yaml`` in a run directory
holds the resolved config: every ``None`` ("use the model's or the data's
default") replaced by the value the run actually used.
"""

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from ganforge.augment import DEFAULT_POLICY, parse_policy
from ganforge.errors import GanforgeError, UsageError
from ganforge.files import write_text
from ganforge.losses import LOSSES
from ganforge.models import MODELS

DEVICES = ("auto", "cpu", "cuda", "mps")
TASKS = ("gan", "pix2pix", "cyclegan")  # noise -> image; paired and unpaired image -> image translation
DIRECTIONS = ("AtoB", "BtoA")
NORMS = ("instance", "batch")
# What each translation task takes by default where the user gave nothing (``TrainConfig.with_model_defaults``).
TASK_DEFAULTS = {
    # precision auto: bf16 where the hardware computes in it. On CIFAR-10 it reached float32's FID in 10 and 30
    # minutes with 1.45x the steps (docs/quality.md); on MNIST it is 1.4x (dcgan) and 1.5x (mlp) the images/s.
    "gan": dict(model="dcgan", loss="nonsaturating", precision="auto"),
    # Isola et al.: U-Net, BCE, lambda_L1 100, dropout; instance norm (see models/translation.py).
    "pix2pix": dict(
        model="unet",
        loss="nonsaturating",
        direction="AtoB",
        lambda_l1=100.0,
        dropout=True,
        norm="instance",
        lr_decay=0.5,
        precision="32",  # bf16: 1.39x the images/s, the same scores within one seed at 10 min (docs/translation.md)
        # Not in the paper: a moving average of the generator, which scored better held-out L1, PSNR and SSIM
        # than the same run's latest weights at 10 and 30 minutes on CMP Facades (docs/translation.md).
        ema=True,
    ),
    # Zhu et al.: ResNet blocks, LSGAN, lambda 10, identity 0.5, a history of 50 fakes, instance norm.
    "cyclegan": dict(
        model="resnet-blocks",
        loss="lsgan",
        direction="AtoB",
        lambda_cycle=10.0,
        lambda_identity=0.5,
        pool_size=50,
        dropout=False,
        norm="instance",
        lr_decay=0.5,
        precision="32",
    ),
}
# What a GAN (dcgan, resnet) on colour images takes where the user gave nothing: the best recipe of
# benchmarks/quality.py on CIFAR-10 at 32 px (docs/quality.md): hinge loss and DiffAugment gave 27 FID at
# 10 minutes against 40 for the grayscale default. The classic mlp keeps its recipe.
COLOUR_DEFAULTS = dict(loss="hinge", diffaug=True)
TRANSLATION_FIELDS = (  # the settings only translation tasks take
    "direction",
    "load_size",
    "lambda_l1",
    "lambda_cycle",
    "lambda_identity",
    "pool_size",
    "norm",
    "dropout",
    "lr_decay",
)
GAN_ONLY_FIELDS = ("conditional", "diffaug", "n_critic", "mirror")  # what translation tasks do not take
TRANSLATION_IMAGE_SIZE = 256  # pix2pix's and CycleGAN's crop size: the default --image-size of translation
LOAD_SIZE_RATIO = 286 / 256  # pix2pix's jitter: load 286 px, randomly crop 256
PRECISIONS = ("32", "bf16", "16-mixed", "auto")
ON_NAN = ("rollback", "stop")
DEFAULT_STEPS = (
    2000  # when none of epochs, steps and minutes is given: clean digits of every class in ~4 min on 2 cores
)
DEFAULT_HOLDOUT = 0.1  # share of a folder or .npz held out as the evaluation reference

# The other commands' choices, here (torch-free) so that the command line offers them without importing torch.
FEATURE_EXTRACTORS = ("auto", "mnist", "cifar10", "inception", "swd")  # ganforge evaluate --features (swd: no network)
EXPORT_FORMATS = ("torchscript", "onnx", "safetensors", "hub")  # ganforge export --format
SERVE_MAX_N = 64  # ganforge serve: images per request, an 8x8 grid
MAX_SEED = 2**32 - 1  # noise seeds of generate, interpolate and the page: unsigned 32-bit, safe in JavaScript


def _field(
    default,
    help: str,
    choices=None,
    default_help: str | None = None,
    resumable: bool = False,
    bounds: str | None = None,
    aliases: tuple[str, ...] = (),
):
    """A config field with its help text.

    ``resumable``: a resumed run may change it (how long, where, logging). ``bounds``: the interval its value
    (when not None) must lie in, as "[1, inf)", "(0, inf)" or "[0, 1)"; ``TrainConfig.validate`` checks it.
    """
    metadata = {"help": help, "choices": choices, "default_help": default_help, "resumable": resumable}
    return field(default=default, metadata=metadata | {"bounds": bounds, "aliases": aliases})


def check_bounds(name: str, value: float, bounds: str) -> None:
    """UsageError unless ``value`` lies in ``bounds`` ("[low, high)" and the like; inf for no upper end)."""
    low, high = (bound_value(end) for end in bounds[1:-1].split(","))
    above = value >= low if bounds[0] == "[" else value > low
    below = value <= high if bounds[-1] == "]" else value < high
    if above and below:
        return
    if high == math.inf:
        wanted = f"at least {low:g}" if bounds[0] == "[" else "positive" if low == 0 else f"above {low:g}"
        wanted = "0 or more" if wanted == "at least 0" else wanted
    else:
        wanted = f"in {bounds}"
    raise UsageError(f"--{flag(name)} must be {wanted}, got {value}")


def bound_value(text: str) -> float:
    """One end of a ``bounds`` interval: a number, a power such as 2**31, or inf."""
    base, _, power = text.strip().partition("**")
    return float(base) ** float(power or 1)


@dataclass
class TrainConfig:
    """Settings of one training run. ``None`` means: the model's or the data's default."""

    # What to train.
    task: str = _field(
        "gan",
        "what the GAN learns: images from noise (gan), or image-to-image translation from paired (pix2pix) or "
        "unpaired (cyclegan) examples",
        choices=TASKS,
    )
    model: str | None = _field(
        None,
        "architecture: mlp, dcgan, resnet (gan); unet, resnet-blocks (pix2pix, cyclegan)",
        choices=MODELS,  # the registries themselves: entries added later count
        default_help="dcgan; unet for pix2pix, resnet-blocks for cyclegan",
    )
    loss: str | None = _field(
        None,
        "adversarial loss; minimax is the saturating original, wgan-gp adds the gradient penalty",
        choices=LOSSES,
        default_help="nonsaturating; hinge for colour images (dcgan, resnet); lsgan for cyclegan",
    )
    conditional: bool | None = _field(
        None,
        "class-conditional generator and projection discriminator, trained on the data's labels",
        default_help="dcgan and resnet: on when the data has two classes or more; mlp: off",
    )
    # Translation (--task pix2pix, cyclegan).
    direction: str | None = _field(
        None, "translate the data's A images into its B images, or B into A", choices=DIRECTIONS, default_help="AtoB"
    )
    load_size: int | None = _field(
        None,
        "translation: images are resized to this square size, then randomly cropped to --image-size and flipped",
        default_help="286/256 of --image-size, as pix2pix",
        bounds="[1, inf)",
    )
    lambda_l1: float | None = _field(
        None, "pix2pix: weight of the L1 distance to the target", default_help="100", bounds="[0, inf)"
    )
    lambda_cycle: float | None = _field(
        None, "cyclegan: weight of the cycle-consistency loss", default_help="10", bounds="[0, inf)"
    )
    lambda_identity: float | None = _field(
        None,
        "cyclegan: weight of the identity loss, as a share of --lambda-cycle",
        default_help="0.5",
        bounds="[0, inf)",
    )
    pool_size: int | None = _field(
        None,
        "cyclegan: past fakes kept to show the discriminators (0: only the newest)",
        default_help="50",
        bounds="[0, inf)",
    )
    norm: str | None = _field(
        None,
        "translators' normalisation: instance (the same in training and translation) or batch (pix2pix's original)",
        choices=NORMS,
        default_help="instance",
    )
    dropout: bool | None = _field(
        None, "translators: dropout 0.5 in training", default_help="on for unet (pix2pix), off for resnet-blocks"
    )
    lr_decay: float | None = _field(
        None,
        "translation: share of the run's steps, at its end, over which the learning rates fall linearly to zero "
        "(as pix2pix and CycleGAN do over half their epochs); needs --steps or --epochs",
        default_help="0.5",
        bounds="[0, 1]",
    )
    z_dim: int = _field(100, "length of the generator's noise vector", bounds="[1, inf)")
    width: int | None = _field(
        None,
        "capacity: hidden units (mlp) or base channels (dcgan, resnet)",
        default_help="mlp 128, dcgan 64, resnet 128",
        bounds="[1, inf)",
    )
    # The data.
    data: str = _field(
        "mnist",
        "dataset: a built-in name (mnist, fashion-mnist, cifar10, cifar100, svhn, stl10, celeba), a folder of images (subfolders become labels), "
        "or an .npz with a uint8 'images' array",
    )
    data_root: str | None = _field(
        None,
        "torchvision data root holding the dataset; ganforge never downloads into a root you name",
        default_help="$GANFORGE_DATA_ROOT, else ~/.cache/ganforge/data",
        resumable=True,
    )
    download: bool = _field(True, "download a missing built-in dataset into ganforge's cache folder", resumable=True)
    image_size: int | None = _field(
        None,
        "image height and width in pixels; data are resized and center-cropped (translation: the training crop, "
        "also --crop-size)",
        default_help="the dataset's own: 28 for MNIST, 32 for CIFAR-10; for a folder its images' own (the most "
        "common shorter side) up to 64, else 64; 256 for translation",
        bounds="[1, inf)",
        aliases=("crop-size",),
    )
    holdout: float | None = _field(
        None,
        "share of a folder's or .npz's images kept out of training as the evaluation reference",
        default_help="0.1 for folders and .npz files; built-in datasets use their test split",
        bounds="[0, 1)",
    )
    channels: int | None = _field(
        None, "1 (grayscale) or 3 (RGB); data are converted", default_help="the dataset's own"
    )
    # How long: the first limit reached ends the run.
    epochs: int | None = _field(
        None,
        "passes over the data",
        default_help="none",
        resumable=True,
        bounds="[1, inf)",
    )
    steps: int | None = _field(
        None,
        "total training steps of the run (one step = one D update; G updates every --n-critic steps)",
        default_help=f"{DEFAULT_STEPS:,} when neither --epochs nor --minutes is given",
        resumable=True,
        bounds="[1, inf)",
    )
    minutes: float | None = _field(
        None,
        "stop cleanly after this many minutes of wall time of this invocation",
        default_help="none",
        resumable=True,
        bounds="(0, inf)",
    )
    # Optimisation.
    batch_size: int | None = _field(
        None, "images per step", default_help="mlp 128, dcgan and resnet 64", bounds="[1, inf)"
    )
    lr: float | None = _field(
        None,
        "Adam learning rate of both networks",
        default_help="mlp 1e-3, dcgan and resnet 2e-4",
        bounds="(0, inf)",
    )
    g_lr: float | None = _field(
        None, "the generator's learning rate (two time-scale updates)", default_help="--lr", bounds="(0, inf)"
    )
    d_lr: float | None = _field(None, "the discriminator's learning rate", default_help="--lr", bounds="(0, inf)")
    beta1: float | None = _field(None, "Adam beta1", default_help="mlp 0.9, dcgan 0.5, resnet 0.0", bounds="[0, 1)")
    beta2: float | None = _field(None, "Adam beta2", default_help="0.999, resnet 0.9", bounds="[0, 1)")
    n_critic: int | None = _field(
        None,
        "discriminator updates per generator update",
        default_help="5 for wgan-gp, else 1",
        bounds="[1, inf)",
    )
    r1: float = _field(0.0, "R1 penalty weight gamma on real images' gradients (0: off)", bounds="[0, inf)")
    r1_every: int = _field(
        16, "apply R1 every this many steps, scaled up to match (lazy regularisation)", bounds="[1, inf)"
    )
    ema: bool | None = _field(
        None,
        "keep an exponential moving average of the generator; samples and scores use it",
        default_help="dcgan, resnet and pix2pix on; mlp and CycleGAN off",
    )
    ema_half_life: float = _field(10000.0, "EMA half-life in training images", bounds="(0, inf)")
    ema_warmup: float = _field(
        0.05, "cap the EMA half-life at this share of the images seen so far (0: none)", bounds="[0, 1]"
    )
    mirror: bool = _field(
        False,
        "x-flip each training image at random, half the time, as StyleGAN2-ADA's --mirror (for data whose "
        "mirror images are as real: faces, objects, scenes; not digits or text)",
    )
    diffaug: bool | None = _field(
        None,
        "differentiable augmentation (DiffAugment) of real and fake images in D",
        default_help="on for colour images (dcgan, resnet), off for grayscale",
    )
    diffaug_policy: str = _field(DEFAULT_POLICY, "DiffAugment's augmentations, comma-separated")
    precision: str | None = _field(
        None,
        "32: float32; bf16: bfloat16 autocast (fast on recent GPUs and on CPUs with AMX or AVX512-BF16, about 20x "
        "slower than float32 elsewhere); 16-mixed: float16 autocast with loss scaling (GPUs); auto: bf16 where the "
        "hardware computes in it (a GPU that supports it, a CPU with AMX or AVX512-BF16), else 32",
        choices=PRECISIONS,
        default_help="auto for --task gan; 32 for pix2pix and cyclegan",
    )
    compile: bool = _field(
        False, "compile both networks with torch.compile; falls back to eager with a warning", resumable=True
    )
    sync_bn: bool = _field(False, "synchronise BatchNorm statistics across the processes of a torchrun run (CUDA only)")
    seed: int = _field(
        0,
        "random seed: the same seed on the same machine, device and --threads gives the same checkpoint",
        bounds="[0, 2**31)",
    )
    device: str = _field("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES, resumable=True)
    threads: int = _field(
        0,
        "torch threads of a CPU run (a GPU run keeps torch's own); 0: the cores free now, those of this process's "
        "CPU set that other processes leave idle, or $OMP_NUM_THREADS when set. The count changes results in the "
        "last bits: a bit-exact rerun or resume needs the same --threads",
        resumable=True,
        bounds="[0, inf)",
    )
    # Output.
    out: str | None = _field(None, "run directory", default_help="runs/MODEL-DATA-TIMESTAMP")
    log_every: int = _field(
        50, "steps between progress updates and metrics.jsonl lines", resumable=True, bounds="[1, inf)"
    )
    sample_every: str = _field(
        "30s",
        "how often a fixed-noise sample grid goes to samples/: wall time ('30s', '5m') or steps ('500'); 0: at the end",
        resumable=True,
    )
    checkpoint_every: str = _field(
        "1m",
        "how often a checkpoint is written: wall time ('30s', '5m', '1h') or steps ('1000')",
        resumable=True,
    )
    keep_checkpoints: int = _field(3, "how many of the newest checkpoints to keep", resumable=True, bounds="[1, inf)")
    snapshot_every: int = _field(
        5000,
        "steps whose checkpoints are kept for good, beyond --keep-checkpoints (0: none)",
        resumable=True,
        bounds="[0, inf)",
    )
    on_nan: str = _field(
        "rollback",
        "on a non-finite loss or weight: roll back to the last good checkpoint with halved learning rates, or stop",
        choices=ON_NAN,
        resumable=True,
    )
    max_rollbacks: int = _field(3, "rollbacks allowed before the run stops", resumable=True, bounds="[0, inf)")
    eval_every: str = _field(
        "0",
        "how often to score the generator (FID, recall, classes covered) into metrics.jsonl "
        "and keep checkpoints/best.pt: wall time ('5m') or steps ('1000'); 0: never",
        resumable=True,
    )
    eval_samples: int = _field(
        2000, "samples generated at each --eval-every evaluation", resumable=True, bounds="[10, inf)"
    )
    overwrite: bool = _field(False, "replace the run (or write into the non-empty folder) that --out names")
    tensorboard: bool = _field(
        True, "write TensorBoard logs to tensorboard/ when tensorboard is installed", resumable=True
    )
    progress: bool = _field(True, "show a progress bar", resumable=True)

    def validate(self) -> None:
        """Raise UsageError naming the first setting that cannot work."""
        for name in (setting.name for setting in dataclasses.fields(self)):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{flag(name)} must be a finite number, got {value}")
        for setting in dataclasses.fields(self):
            value, bounds = getattr(self, setting.name), setting.metadata.get("bounds")
            if bounds and value is not None:
                check_bounds(setting.name, value, bounds)
        try:
            parse_policy(self.diffaug_policy)
        except ValueError as error:
            raise UsageError(f"--diffaug-policy: {error}") from None
        if self.channels not in (None, 1, 3):
            raise UsageError(f"--channels must be 1 or 3, got {self.channels}")
        for setting in dataclasses.fields(self):
            allowed, value = setting.metadata.get("choices"), getattr(self, setting.name)
            if allowed and value is not None and value not in allowed:
                raise UsageError(f"unknown --{flag(setting.name)} {value!r}; choose from {', '.join(allowed)}")
        self.validate_task()
        parse_interval(self.checkpoint_every, "checkpoint-every")
        for name in ("sample_every", "eval_every"):
            if getattr(self, name) != "0":
                parse_interval(getattr(self, name), flag(name))

    def validate_task(self) -> None:
        """Raise UsageError when the model, the settings or the data do not fit the task."""
        translating = self.task != "gan"
        if self.model is not None and MODELS[self.model].translates != translating:
            wanted = "--task pix2pix or cyclegan" if MODELS[self.model].translates else "--task gan"
            raise UsageError(f"--model {self.model} is for {wanted}, not --task {self.task}")
        if not translating:
            for name in TRANSLATION_FIELDS:
                if getattr(self, name) is not None:
                    raise UsageError(f"--{flag(name)} is for --task pix2pix or cyclegan (image-to-image translation)")
            # The kinds of data source live in data.py, which needs torch: imported here, not when the CLI starts.
            from ganforge.data import resolve_source

            resolve_source(self.data)
            return
        task_fields = set(TASK_DEFAULTS[self.task]) | {"load_size"}
        for name in TRANSLATION_FIELDS:
            if getattr(self, name) is not None and name not in task_fields:
                raise UsageError(f"--{flag(name)} is not a setting of --task {self.task}")
        for name in GAN_ONLY_FIELDS:
            value = getattr(self, name)
            if value is True or (type(value) is int and value > 1):  # --ema, --diffaug, ...; --n-critic 2
                raise UsageError(f"--{flag(name)} is for --task gan; --task {self.task} does not take it")
        if self.r1 or (self.loss is not None and LOSSES[self.loss].penalties):
            raise UsageError(f"--task {self.task} takes no discriminator penalty (--r1, --loss wgan-gp)")
        if not Path(self.data).is_dir():
            raise UsageError(
                f"--task {self.task} needs --data DIR: a folder of image pairs or of two domains; "
                f"{self.data!r} is not a folder"
            )

    def with_model_defaults(self) -> "TrainConfig":
        """A copy with the task's and the model's recipe filled in where the user gave nothing."""
        given = {name: value for name, value in TASK_DEFAULTS[self.task].items() if getattr(self, name) is None}
        self = dataclasses.replace(self, **given)
        spec = MODELS[self.model]
        lr = self.lr if self.lr is not None else spec.lr
        return dataclasses.replace(
            self,
            width=self.width if self.width is not None else spec.width,
            batch_size=self.batch_size if self.batch_size is not None else spec.batch_size,
            ema=self.ema if self.ema is not None else spec.ema,
            lr=lr,
            g_lr=self.g_lr if self.g_lr is not None else lr,
            d_lr=self.d_lr if self.d_lr is not None else lr,
            n_critic=self.n_critic if self.n_critic is not None else LOSSES[self.loss].default_n_critic,
            beta1=self.beta1 if self.beta1 is not None else spec.betas[0],
            beta2=self.beta2 if self.beta2 is not None else spec.betas[1],
            diffaug=bool(self.diffaug),
        )


def resumable_fields() -> tuple[str, ...]:
    """The settings a resumed run may change (how long, where, logging); the rest would make it another run."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["resumable"])


def resolve_config(config: TrainConfig, image_shape: tuple[int, int, int], labelled: bool, source) -> TrainConfig:
    """Fill every None with what the run uses, so config.yaml says what it starts with.

    ``image_shape`` is the loaded data's (C, H, W); ``labelled``: it has two classes or more;
    ``source``: the ``data.DataSource`` that ``config.data`` names.
    """
    channels, height, _ = image_shape
    if config.task == "gan" and channels == 3 and (config.model or TASK_DEFAULTS["gan"]["model"]) != "mlp":
        colour = {name: value for name, value in COLOUR_DEFAULTS.items() if getattr(config, name) is None}
        config = dataclasses.replace(config, **colour)
    config = config.with_model_defaults()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return dataclasses.replace(
        config,
        # Absolute paths, so the run can be resumed from any working directory.
        data=source.canonical(config.data),
        data_root=str(Path(config.data_root).resolve()) if config.data_root else None,
        image_size=height,
        channels=channels,
        holdout=0.0 if source.has_test_split else (DEFAULT_HOLDOUT if config.holdout is None else config.holdout),
        steps=config.steps if (config.epochs or config.steps or config.minutes) else DEFAULT_STEPS,
        conditional=config.conditional
        if config.conditional is not None
        else MODELS[config.model].conditional and labelled,
        out=config.out or str(Path("runs") / f"{config.model}-{source.short_name(config.data)}-{stamp}"),
    )


def resolve_translation_config(config: TrainConfig) -> TrainConfig:
    """``resolve_config`` for translation, before the data are read: the task's recipe, the sizes, the name.

    The held-out share is recorded as 0 once the data turn out to have a test split of their own.
    """
    config = config.with_model_defaults()
    image_size = config.image_size or TRANSLATION_IMAGE_SIZE
    load_size = config.load_size or round(image_size * LOAD_SIZE_RATIO)
    if load_size < image_size:
        raise UsageError(f"--load-size {load_size} is smaller than the crop, --image-size {image_size}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return dataclasses.replace(
        config,
        data=str(Path(config.data).resolve()),
        image_size=image_size,
        load_size=load_size,
        holdout=DEFAULT_HOLDOUT if config.holdout is None else config.holdout,
        steps=config.steps if (config.epochs or config.steps or config.minutes) else DEFAULT_STEPS,
        conditional=False,
        out=config.out or str(Path("runs") / f"{config.task}-{Path(config.data).resolve().name}-{stamp}"),
    )


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int | None:
    """The run's length in steps: the smaller of --steps and --epochs; None if only --minutes bounds it."""
    limits = [config.steps] if config.steps else []
    if config.epochs:
        limits.append(config.epochs * steps_per_epoch)
    return min(limits) if limits else None


def flag(name: str) -> str:
    """The command-line flag of a config field: batch_size -> batch-size."""
    return name.replace("_", "-")


def parse_interval(text: str, name: str = "checkpoint-every") -> tuple[str, float]:
    """'90s' -> ('seconds', 90), '5m' -> ('seconds', 300), '1000' -> ('steps', 1000)."""
    match = re.fullmatch(r"\s*(?:(\d+)|(\d+(?:\.\d+)?)\s*([smh]))\s*", str(text))
    if not match or float(match.group(1) or match.group(2)) <= 0:
        raise UsageError(f"--{name} must be a duration like '30s', '5m', '1h' or a whole number of steps; got {text!r}")
    if match.group(1):
        return "steps", int(match.group(1))
    return "seconds", float(match.group(2)) * {"s": 1, "m": 60, "h": 3600}[match.group(3)]


def config_to_dict(config: TrainConfig) -> dict:
    """Plain data (str, int, float, bool, None) for YAML and checkpoints."""
    return dataclasses.asdict(config)


def config_from_dict(values: dict) -> TrainConfig:
    """The inverse of ``config_to_dict``; unknown keys are an error."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise GanforgeError(f"unknown config keys: {', '.join(unknown)}")
    hints = typing.get_type_hints(TrainConfig)
    for name, value in values.items():
        allowed = typing.get_args(hints[name]) or (hints[name],)
        allowed += (int,) if float in allowed else ()  # a user may write 1 for 1.0
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise GanforgeError(f"config value {name}: {value!r} is not of type {hints[name]}")
    return TrainConfig(**values)


def config_to_yaml(config: TrainConfig) -> str:
    """The config as YAML, one field per line in declaration order."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the config as YAML (``config_to_yaml``), atomically."""
    write_text(path, config_to_yaml(config))


def read_config_values(path: Path) -> dict:
    """The fields a YAML config file sets, as written (safe YAML loader only); ``config_from_dict`` checks them."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise GanforgeError(f"cannot read config {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:  # one line: the problem and where, not the parser's context lines
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise GanforgeError(f"cannot read config {path}: {problem}{where}; it is not valid YAML") from None
    if not isinstance(values, dict):
        raise GanforgeError(f"{path} does not hold a ganforge config")
    return values


def load_config(path: Path) -> TrainConfig:
    """Read a run's config written by ``save_config``."""
    # Runs written before these settings existed trained without them (and with batch 128).
    return config_from_dict({"conditional": False, "ema": False} | read_config_values(path))
