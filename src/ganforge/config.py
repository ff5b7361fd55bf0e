"""TrainConfig: every setting of a training run, saved as YAML beside the run.

``TrainConfig`` holds the settings every task shares (the data, how long,
the optimiser, precision, checkpoints, logging); its ``settings`` field holds
the task's own (``TASKS[task].settings``: a GAN's noise length and penalties,
a translator's direction and loss weights, ...). The command line makes one
flag per field of both (the help text of each flag is the field's ``help``),
and ``config.yaml`` in a run directory holds the resolved config: every
``None`` ("the task's, the model's or the data's default") replaced by the
value the run actually used, the shared fields first, then a section named
for the task::

    task: TASK
    model: MODEL
    ...
    TASK:
      SETTING: VALUE

Config files written before the sections existed (every field flat) are read
as well: the task's fields move into its section, the others are dropped.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ganforge.errors import GanforgeError, UsageError
from ganforge.files import write_text
from ganforge.losses import LOSSES
from ganforge.models import MODELS
from ganforge.settings import (
    check_settings,
    check_types,
    field_names,
    flag,
    parse_interval,
    setting,
    short,
)
from ganforge.tasks import DEFAULT_TASK, TASKS

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("32", "bf16", "16-mixed", "auto")
ON_NAN = ("rollback", "stop")
DEFAULT_HOLDOUT = 0.1  # share of a folder or .npz held out as the evaluation reference

# The other commands' choices, here (torch-free) so that the command line offers them without importing torch.
FEATURE_EXTRACTORS = ("auto", "mnist", "cifar10", "inception", "swd")  # ganforge evaluate --features (swd: no network)
EXPORT_FORMATS = ("pt2", "onnx", "safetensors", "hub", "torchscript")  # ganforge export --format, every task's together
SERVE_MAX_N = 64  # ganforge serve: images per request, an 8x8 grid
# ganforge generate --dataset draws grayscale images' noise 1.5x wider than training did: a classifier trained only
# on the set learns more of the real data. benchmarks/cas.py on the default's three 10-minute MNIST runs (float32,
# AVX2, docs/quality.md): 97.6% of the real-data classifier's accuracy over their 8th to 10th minute against 94.9% at
# 1x, higher at every checkpoint; at the 10th minute 94.9%, 96.9%, 97.7%, 98.0% and 97.5% at 1, 1.25, 1.5, 1.75 and
# 2x, while the digits read as another class rose from 0.3% to 5% at 1.5x and 12% at 1.75x. Colour images keep 1x:
# on CIFAR-10 (the colour default at 30 minutes, 3 runs) 1.5x left CAS where it was (0.335 against 0.331) and cut
# the share drawn as the class asked for from 53% to 35%. Images other than a dataset's keep 1x.
GRAYSCALE_DATASET_NOISE_STD = 1.5


def dataset_noise_std(channels: int) -> float:
    """The noise's spread (a multiple of the standard normal) ``ganforge generate --dataset`` draws images of
    ``channels`` channels with: GRAYSCALE_DATASET_NOISE_STD for grayscale, 1 for colour."""
    return GRAYSCALE_DATASET_NOISE_STD if channels == 1 else 1.0


MAX_SEED = 2**32 - 1  # noise seeds of generate, interpolate and the page: unsigned 32-bit, safe in JavaScript


@dataclass(init=False)
class TrainConfig:
    """Settings of one training run. ``None`` means: the task's, the model's or the data's default.

    ``settings`` holds the task's own settings (``TASKS[task].settings``), its defaults when not given. They may
    be given by name too, as the shared ones (``TrainConfig(z_dim=64)``); a setting of another task is refused
    in one line that names its owner (``--z-dim belongs to --task gan, not --task ...``).
    """

    # What to train.
    task: str = setting(DEFAULT_TASK, "what the run learns", choices=TASKS)  # the registry itself
    model: str | None = setting(
        None,
        "architecture; each task trains some of them",
        choices=MODELS,  # the registries themselves: entries added later count
    )
    loss: str | None = setting(
        None, "adversarial loss; minimax is the saturating original, wgan-gp adds the gradient penalty", choices=LOSSES
    )
    width: int | None = setting(
        None, "capacity: hidden units (mlp) or base channels (the convolutional models)", bounds="[1, inf)"
    )
    # The data.
    data: str = setting(
        "mnist",
        "dataset: a built-in name (mnist, fashion-mnist, cifar10, cifar100, svhn, stl10, celeba), a folder of images "
        "(subfolders become labels), or an .npz with a uint8 'images' array; image-to-image tasks: a folder of "
        "pairs or of two domains",
    )
    image_size: int | None = setting(
        None,
        "image height and width in pixels; data are resized and center-cropped (image-to-image tasks: the "
        "training crop, also --crop-size)",
        default_help="the dataset's own: 28 for MNIST, 32 for CIFAR-10; for a folder its images' own (the most "
        "common shorter side) up to 64, else 64",
        bounds="[1, inf)",
        aliases=("crop-size",),
    )
    holdout: float | None = setting(
        None,
        "share of a folder's or .npz's images kept out of training as the evaluation reference",
        default_help=f"{DEFAULT_HOLDOUT} for folders and .npz files; built-in datasets and test splits are used "
        "as they are",
        bounds="[0, 1)",
    )
    channels: int | None = setting(
        None, "1 (grayscale) or 3 (RGB); data are converted", default_help="the dataset's own"
    )
    # How long: the first limit reached ends the run.
    epochs: int | None = setting(None, "passes over the data", default_help="none", resumable=True, bounds="[1, inf)")
    steps: int | None = setting(
        None,
        "total training steps of the run (one step = one D update; a GAN's G updates every --n-critic steps)",
        default_help="when neither --epochs nor --minutes is given, the task's default number of images at the "
        "run's batch ("
        + ", ".join(
            f"{name} {task.default_images:,}" + (f": {task.default_length_note}" if task.default_length_note else "")
            for name, task in TASKS.items()
        )
        + ")",
        resumable=True,
        bounds="[1, inf)",
    )
    minutes: float | None = setting(
        None,
        "stop cleanly after this many minutes of wall time of this invocation",
        default_help="none",
        resumable=True,
        bounds="(0, inf)",
    )
    # Optimisation.
    batch_size: int | None = setting(None, "images per step", bounds="[1, inf)")
    lr: float | None = setting(None, "Adam learning rate of both networks", bounds="(0, inf)")
    g_lr: float | None = setting(
        None, "the generators' learning rate (two time-scale updates)", default_help="--lr", bounds="(0, inf)"
    )
    d_lr: float | None = setting(None, "the discriminators' learning rate", default_help="--lr", bounds="(0, inf)")
    beta1: float | None = setting(None, "Adam beta1", bounds="[0, 1)")
    beta2: float | None = setting(None, "Adam beta2", bounds="[0, 1)")
    ema: bool | None = setting(
        None, "keep an exponential moving average of the generators; samples, scores and exports use it"
    )
    ema_half_life: float = setting(10000.0, "EMA half-life in training images", bounds="(0, inf)")
    ema_warmup: float = setting(
        0.05, "cap the EMA half-life at this share of the images seen so far (0: none)", bounds="[0, 1]"
    )
    precision: str | None = setting(
        None,
        "32: float32; bf16: bfloat16 autocast (fast on recent GPUs and on CPUs with AMX or AVX512-BF16, about 20x "
        "slower than float32 elsewhere); 16-mixed: float16 autocast with loss scaling (GPUs); auto: bf16 where the "
        "hardware computes in it (a GPU that supports it, a CPU with AMX or AVX512-BF16), else 32",
        choices=PRECISIONS,
    )
    compile: bool = setting(
        False, "compile the networks with torch.compile; falls back to eager with a warning", resumable=True
    )
    seed: int = setting(
        0,
        "random seed: the same seed on the same machine, device and --threads gives the same checkpoint",
        bounds="[0, 2**31)",
    )
    device: str = setting("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES, resumable=True)
    threads: int = setting(
        0,
        "torch threads of a CPU run (a GPU run keeps torch's own); 0: the cores free now, those of this process's "
        "CPU set that other processes leave idle, or $OMP_NUM_THREADS when set. The count changes results in the "
        "last bits: a bit-exact rerun or resume needs the same --threads",
        resumable=True,
        bounds="[0, inf)",
    )
    # Output.
    out: str | None = setting(None, "run directory", default_help="runs/MODEL-DATA-TIMESTAMP")
    log_every: int = setting(
        50, "steps between progress updates and metrics.jsonl lines", resumable=True, bounds="[1, inf)"
    )
    sample_every: str = setting(
        "30s",
        "how often a fixed-input sample grid goes to samples/: wall time ('30s', '5m') or steps ('500'); 0: at the end",
        resumable=True,
    )
    checkpoint_every: str = setting(
        "1m", "how often a checkpoint is written: wall time ('30s', '5m', '1h') or steps ('1000')", resumable=True
    )
    keep_checkpoints: int = setting(3, "how many of the newest checkpoints to keep", resumable=True, bounds="[1, inf)")
    snapshot_every: int = setting(
        5000,
        "steps whose checkpoints are kept for good, beyond --keep-checkpoints (0: none)",
        resumable=True,
        bounds="[0, inf)",
    )
    on_nan: str = setting(
        "rollback",
        "on a non-finite loss or weight: roll back to the last good checkpoint with halved learning rates, or stop",
        choices=ON_NAN,
        resumable=True,
    )
    max_rollbacks: int = setting(3, "rollbacks allowed before the run stops", resumable=True, bounds="[0, inf)")
    eval_every: str = setting(
        "0",
        "how often to score the run into metrics.jsonl and keep checkpoints/best.pt by the task's score: wall "
        "time ('5m') or steps ('1000'); 0: never",
        resumable=True,
    )
    overwrite: bool = setting(False, "replace the run (or write into the non-empty folder) that --out names")
    tensorboard: bool = setting(
        True, "write TensorBoard logs to tensorboard/ when tensorboard is installed", resumable=True
    )
    progress: bool = setting(True, "show a progress bar", resumable=True)
    # The task's own settings: an instance of TASKS[task].settings (its defaults when None is given).
    settings: Any = field(default=None, compare=True, metadata={"section": True})

    def __init__(self, *, settings=None, **values):
        """The shared fields by name (their defaults where not given), the task's own by name or as ``settings``."""
        own = {name: values.pop(name) for name in list(values) if name not in SHARED}
        for shared in dataclasses.fields(TrainConfig):
            if shared.name != "settings":
                setattr(self, shared.name, values.get(shared.name, shared.default))
        task = TASKS.get(self.task)
        if task is not None:
            for name in own:
                if name not in field_names(task.settings):
                    if owners(name):
                        raise foreign_setting(name, self.task)
                    raise TypeError(f"TrainConfig got an unexpected keyword argument {name!r}")
            if settings is None or not isinstance(settings, task.settings):
                settings = task.settings(**own) if settings is None else settings
            elif own:
                settings = dataclasses.replace(settings, **own)
        elif own:
            raise TypeError(f"TrainConfig got settings {', '.join(own)} of an unknown task {self.task!r}")
        self.settings = settings

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """A config from plain values: the shared fields, and the task's own settings flat or in its section
        (``config_from_dict``); a setting of another task is refused in one line that names its owner."""
        return config_from_dict(values, foreign="refuse")

    @property
    def task_spec(self):
        """The ``Task`` entry of ``task``."""
        return TASKS[self.task]

    def validate(self) -> None:
        """Raise UsageError naming the first setting that cannot work."""
        if self.task not in TASKS:
            raise UsageError(f"unknown --task {self.task!r}; choose from {', '.join(TASKS)}")
        task = TASKS[self.task]
        if not isinstance(self.settings, task.settings):
            raise UsageError(f"the config's settings are {type(self.settings).__name__}, not --task {self.task}'s")
        check_settings(self)
        check_settings(self.settings)
        if self.channels not in (None, 1, 3):
            raise UsageError(f"--channels must be 1 or 3, got {self.channels}")
        if self.model is not None and self.model not in task.models:
            tasks = [name for name, other in TASKS.items() if self.model in other.models]
            wanted = f"--task {' or '.join(tasks)}" if tasks else "no task"
            raise UsageError(f"--model {self.model} is for {wanted}, not --task {self.task}")
        parse_interval(self.checkpoint_every, "checkpoint-every")
        for name in ("sample_every", "eval_every"):
            if getattr(self, name) != "0":
                parse_interval(getattr(self, name), flag(name))
        task.validate(self)

    def resolved(self, data=None) -> "TrainConfig":
        """A copy with every None the task decides filled: without ``data`` (a ``tasks.RunData``) what needs
        none (``--print-config``), with it the rest (``Task.resolve``)."""
        return TASKS[self.task].resolve(self, data)


# ---------------------------------------------------------------- defaults that every task fills the same way


def fill(config: TrainConfig, defaults: dict) -> TrainConfig:
    """``config`` with each field named in ``defaults`` set where it is None (shared fields and the task's own)."""
    shared = {name: value for name, value in defaults.items() if name in SHARED and getattr(config, name) is None}
    own = {
        name: value
        for name, value in defaults.items()
        if name not in SHARED and getattr(config.settings, name, 0) is None
    }
    return dataclasses.replace(config, **shared, settings=dataclasses.replace(config.settings, **own))


def with_model_recipe(config: TrainConfig) -> TrainConfig:
    """``config`` with the model's published recipe (``ModelSpec``: width, batch size, Adam's learning rate and
    betas, the EMA) where the user gave nothing; both learning rates default to --lr."""
    spec = MODELS[config.model]
    lr = config.lr if config.lr is not None else spec.lr
    return dataclasses.replace(
        config,
        width=config.width if config.width is not None else spec.width,
        batch_size=config.batch_size if config.batch_size is not None else spec.batch_size,
        ema=config.ema if config.ema is not None else spec.ema,
        lr=lr,
        g_lr=config.g_lr if config.g_lr is not None else lr,
        d_lr=config.d_lr if config.d_lr is not None else lr,
        beta1=config.beta1 if config.beta1 is not None else spec.betas[0],
        beta2=config.beta2 if config.beta2 is not None else spec.betas[1],
    )


def default_steps(default_images: int, batch_size: int) -> int:
    """The steps of a run given no length: its task's ``default_images`` at the run's batch (at least one), so
    that a recipe's smaller batch does not shorten its first run."""
    return max(1, math.ceil(default_images / batch_size))


def with_run_defaults(config: TrainConfig, name: str, data_path: str) -> TrainConfig:
    """``config`` with the run's length (its task's ``default_images`` at its batch when no limit is given), its
    directory (runs/NAME-TIMESTAMP) and its data recorded as ``data_path`` (absolute for a file or folder, so that
    the run resumes from any working directory)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    unbounded = not (config.epochs or config.steps or config.minutes)
    return dataclasses.replace(
        config,
        data=data_path,
        steps=default_steps(config.task_spec.default_images, config.batch_size) if unbounded else config.steps,
        out=config.out or str(Path("runs") / f"{name}-{stamp}"),
    )


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int | None:
    """The run's length in steps: the smaller of --steps and --epochs; None if only --minutes bounds it."""
    limits = [config.steps] if config.steps else []
    if config.epochs:
        limits.append(config.epochs * steps_per_epoch)
    return min(limits) if limits else None


# ---------------------------------------------------------------- which fields exist, and who owns them

SHARED = tuple(name for name in field_names(TrainConfig) if name != "settings")  # the fields every task has
# (TrainConfig.__init__ reads SHARED and owners when it is called, long after both are defined.)


def owners(name: str) -> list[str]:
    """The tasks whose own settings have a field ``name``."""
    return [task_name for task_name, task in TASKS.items() if name in field_names(task.settings)]


def foreign_setting(name: str, task: str) -> UsageError:
    """The one-line error for a setting of another task than ``task``."""
    takers = owners(name)
    return UsageError(f"--{flag(name)} belongs to --task {' or '.join(takers)}, not --task {task}")


def resumable_fields(task: str = DEFAULT_TASK) -> tuple[str, ...]:
    """The settings a resumed run of ``task`` may change (how long, where, logging); the rest would make it
    another run."""
    fields = [*dataclasses.fields(TrainConfig), *dataclasses.fields(TASKS[task].settings)]
    return tuple(f.name for f in fields if f.metadata.get("resumable"))


def flat_values(config: TrainConfig) -> dict:
    """The shared fields and the task's own settings in one flat dict (as the flags name them)."""
    return {name: getattr(config, name) for name in SHARED} | dataclasses.asdict(config.settings)


# ---------------------------------------------------------------- plain data, YAML


def config_to_dict(config: TrainConfig) -> dict:
    """Plain data (str, int, float, bool, None) for YAML and checkpoints: the shared fields, then the task's own
    settings under its name."""
    return {name: getattr(config, name) for name in SHARED} | {config.task: dataclasses.asdict(config.settings)}


def config_from_dict(values: dict, foreign: str = "drop-unset") -> TrainConfig:
    """The inverse of ``config_to_dict``; unknown keys are an error.

    The task's own settings may also be given flat (as flags, and as config files before the sections were).
    A setting of another task is, by ``foreign``: "refuse"d (one line naming its owner: flags, Python); dropped
    where "drop-unset" and it is None or its owner's default (a hand-written file; a flat config.yaml of an
    older ganforge used as --config); or always "drop"ped (a run's own config.yaml and checkpoints, upgraded).
    """
    values = dict(values)
    task_name = values.get("task", DEFAULT_TASK)
    if task_name not in TASKS:
        raise GanforgeError(f"config value task: unknown task {short(task_name)}; choose from {', '.join(TASKS)}")
    task = TASKS[task_name]
    own_names = field_names(task.settings)
    section = values.pop(task_name, None)
    if section is not None and not isinstance(section, dict):
        raise GanforgeError(f"config value {task_name}: the task's settings must be a mapping, not {short(section)}")
    section = dict(section or {})
    unknown = []
    for name in [name for name in values if name not in SHARED]:
        value = values.pop(name)
        if name in own_names:
            if name in section and section[name] != value:
                raise GanforgeError(f"config value {name} is given twice: {short(value)} and {short(section[name])}")
            section[name] = value
        elif name in TASKS:  # another task's section
            if foreign != "drop":
                raise GanforgeError(f"the config has a section {name}: but its task is {task_name}")
        elif owners(name):
            if foreign == "refuse" or (foreign == "drop-unset" and value is not None and value != owner_default(name)):
                raise foreign_setting(name, task_name)
        else:
            unknown.append(name)
    unknown += sorted(set(section) - set(own_names))
    if unknown:
        shown = ", ".join(str(name)[:60] for name in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise GanforgeError(f"unknown config keys: {shown}")
    check_types(TrainConfig, values)
    check_types(task.settings, section)
    return TrainConfig(**values, settings=task.settings(**section))


def owner_default(name: str):
    """The default of the setting ``name`` in the first task that has it."""
    settings = TASKS[owners(name)[0]].settings
    return next(f.default for f in dataclasses.fields(settings) if f.name == name)


def config_to_yaml(config: TrainConfig) -> str:
    """The config as YAML, one field per line in declaration order, the task's section last."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the config as YAML (``config_to_yaml``), atomically."""
    write_text(path, config_to_yaml(config))


MAX_CONFIG_BYTES = 2**20  # a config file of more than this is refused: a config is a few hundred bytes
MAX_CONFIG_DEPTH = 8  # nesting a config may have (it has two levels: the fields, and the task's section)


class ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing what no config needs and what can exhaust the machine: aliases (a few hundred
    bytes of them expand to billions of nodes) and deep nesting (the parser recurses once per level)."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "a config may not use YAML aliases (*name)", mark)
        if self.depth >= MAX_CONFIG_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_CONFIG_DEPTH} levels", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def read_config_values(path: Path) -> dict:
    """The fields a YAML config file sets, as written; ``config_from_dict`` checks them. Read with a safe loader
    (``ConfigLoader``), from a file of at most ``MAX_CONFIG_BYTES`` of UTF-8 text; one line for anything else."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise GanforgeError(f"cannot read config {path}: {error.strerror or error}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise GanforgeError(f"cannot read config {path}: it is over {MAX_CONFIG_BYTES:,} bytes, not a config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise GanforgeError(f"cannot read config {path}: it is not UTF-8 text (byte {error.start:,})") from None
    try:
        values = yaml.load(text, Loader=ConfigLoader)  # noqa: S506 -- a SafeLoader
    except yaml.YAMLError as error:  # one line: the problem and where, not the parser's context lines
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise GanforgeError(f"cannot read config {path}: {problem}{where}; it is not valid YAML") from None
    if not isinstance(values, dict):
        raise GanforgeError(f"{path} does not hold a ganforge config")
    return values


def upgrade_config(values: dict) -> TrainConfig:
    """A run's own config (its config.yaml, or a checkpoint's) of any ganforge version, as a TrainConfig.

    Runs written before a setting existed trained without it: without an EMA, and with what their task says
    such runs used (``Task.legacy_defaults``) for each of its settings the config lacks (a flat config, from
    before the sections, lacks them all).
    """
    values = dict(values)
    task = TASKS.get(values.get("task", DEFAULT_TASK))
    if task is not None and isinstance(values.get(task.name), dict):
        values[task.name] = task.legacy_defaults | values[task.name]
    elif task is not None:
        values = task.legacy_defaults | values
    values.setdefault("ema", False)
    return config_from_dict(values, foreign="drop")


def load_config(path: Path) -> TrainConfig:
    """Read a run's config written by ``save_config`` (or by an older ganforge: ``upgrade_config``)."""
    return upgrade_config(read_config_values(path))
