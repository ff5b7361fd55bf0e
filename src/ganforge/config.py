"""TrainConfig: every setting of a training run, saved as YAML beside the run.

The command line maps its flags one-to-one onto these fields (the help text
of each flag is the field's ``help``), and ``config.yaml`` in a run directory
holds the resolved config: every ``None`` ("use the model's or the data's
default") replaced by the value the run actually used.
"""

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ganforge.errors import GanforgeError, UsageError
from ganforge.losses import LOSSES
from ganforge.models import MODELS

BUILTIN_DATASETS = ("mnist", "fashion-mnist", "cifar10")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("32", "bf16")
DEFAULT_EPOCHS = 5  # when none of epochs, steps and minutes is given
DEFAULT_HOLDOUT = 0.1  # share of a folder or .npz held out as the evaluation reference


def _field(default, help: str, choices=None, default_help: str | None = None):
    metadata = {"help": help, "choices": choices, "default_help": default_help}
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Settings of one training run. ``None`` means: the model's or the data's default."""

    # What to train.
    model: str = _field("dcgan", "architecture", choices=tuple(MODELS))
    loss: str = _field("nonsaturating", "adversarial loss; minimax is the saturating original", choices=tuple(LOSSES))
    z_dim: int = _field(100, "length of the generator's noise vector")
    width: int | None = _field(
        None, "capacity: hidden units (mlp) or base channels (dcgan)", default_help="mlp 128, dcgan 64"
    )
    # The data.
    data: str = _field(
        "mnist",
        f"dataset: {', '.join(BUILTIN_DATASETS)}, a folder of images (subfolders become labels), "
        "or an .npz with a uint8 'images' array",
    )
    data_root: str | None = _field(
        None,
        "torchvision data root holding the dataset; ganforge never downloads into a root you name",
        default_help="$GANFORGE_DATA_ROOT, else ~/.cache/ganforge/data",
    )
    download: bool = _field(True, "download a missing built-in dataset into ganforge's cache folder")
    image_size: int | None = _field(
        None,
        "image height and width in pixels; data are resized and center-cropped",
        default_help="the dataset's own: 28 for MNIST, 32 for CIFAR-10, 64 for folders",
    )
    holdout: float | None = _field(
        None,
        "share of a folder's or .npz's images kept out of training as the evaluation reference",
        default_help="0.1 for folders and .npz files; built-in datasets use their test split",
    )
    channels: int | None = _field(
        None, "1 (grayscale) or 3 (RGB); data are converted", default_help="the dataset's own"
    )
    # How long: the first limit reached ends the run.
    epochs: int | None = _field(
        None, "passes over the data", default_help=f"{DEFAULT_EPOCHS} when neither --steps nor --minutes is given"
    )
    steps: int | None = _field(
        None, "total training steps of the run (one step = one D and one G update)", default_help="none"
    )
    minutes: float | None = _field(
        None, "stop cleanly after this many minutes of wall time of this invocation", default_help="none"
    )
    # Optimisation.
    batch_size: int = _field(128, "images per step")
    lr: float | None = _field(None, "Adam learning rate of both networks", default_help="mlp 1e-3, dcgan 2e-4")
    beta1: float | None = _field(None, "Adam beta1", default_help="mlp 0.9, dcgan 0.5")
    beta2: float | None = _field(None, "Adam beta2", default_help="0.999")
    precision: str = _field(
        "32", "float32, or bfloat16 autocast (fast on CPUs with AMX and on recent GPUs)", choices=PRECISIONS
    )
    seed: int = _field(0, "random seed: the same seed on the same machine and device gives the same checkpoint")
    device: str = _field("auto", "auto picks cuda, then mps, then cpu", choices=DEVICES)
    # Output.
    out: str | None = _field(None, "run directory", default_help="runs/MODEL-DATA-TIMESTAMP")
    log_every: int = _field(50, "steps between progress updates and metrics.jsonl lines")
    sample_every: str = _field(
        "30s",
        "how often a fixed-noise sample grid goes to samples/: wall time ('30s', '5m') or steps ('500'); 0: at the end",
    )
    checkpoint_every: str = _field(
        "1m", "how often a checkpoint is written: wall time ('30s', '5m', '1h') or steps ('1000')"
    )
    keep_checkpoints: int = _field(3, "how many of the newest checkpoints to keep")
    snapshot_every: int = _field(5000, "steps whose checkpoints are kept for good, beyond --keep-checkpoints (0: none)")
    on_nan: str = _field(
        "rollback",
        "on a non-finite loss or weight: roll back to the last good checkpoint with halved learning rates, or stop",
        choices=("rollback", "stop"),
    )
    max_rollbacks: int = _field(3, "rollbacks allowed before the run stops")
    eval_every: str = _field(
        "0",
        "how often to score the generator (FID, recall, classes covered) into metrics.jsonl "
        "and keep checkpoints/best.pt: wall time ('5m') or steps ('1000'); 0: never",
    )
    eval_samples: int = _field(2000, "samples generated at each --eval-every evaluation")
    overwrite: bool = _field(False, "replace the run (or write into the non-empty folder) that --out names")
    tensorboard: bool = _field(True, "write TensorBoard logs to tensorboard/ when tensorboard is installed")
    progress: bool = _field(True, "show a progress bar")

    def validate(self) -> None:
        """Raise UsageError naming the first setting that cannot work."""
        for name in ("z_dim", "width", "image_size", "epochs", "steps", "batch_size", "log_every", "keep_checkpoints"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{flag(name)} must be at least 1, got {value}")
        for name in ("snapshot_every", "max_rollbacks"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{flag(name)} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**31:
            raise UsageError(f"--seed must be in [0, 2**31), got {self.seed}")
        for name in ("minutes", "lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"--{flag(name)} must be positive, got {value}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise UsageError(f"--{flag(name)} must be in [0, 1), got {value}")
        if self.holdout is not None and not 0 <= self.holdout < 1:
            raise UsageError(f"--holdout must be in [0, 1), got {self.holdout}")
        if self.channels not in (None, 1, 3):
            raise UsageError(f"--channels must be 1 or 3, got {self.channels}")
        for name, allowed in (("model", MODELS), ("loss", LOSSES), ("device", DEVICES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise UsageError(f"unknown --{name} {getattr(self, name)!r}; choose from {', '.join(allowed)}")
        if self.data not in BUILTIN_DATASETS and not (Path(self.data).is_dir() or Path(self.data).suffix == ".npz"):
            raise UsageError(
                f"--data {self.data!r} is neither a known dataset ({', '.join(BUILTIN_DATASETS)}), "
                "a folder nor an .npz file"
            )
        if self.on_nan not in ("rollback", "stop"):
            raise UsageError(f"unknown --on-nan {self.on_nan!r}; choose from rollback, stop")
        parse_interval(self.checkpoint_every, "checkpoint-every")
        for name in ("sample_every", "eval_every"):
            if getattr(self, name) != "0":
                parse_interval(getattr(self, name), flag(name))
        if self.eval_samples < 10:
            raise UsageError(f"--eval-samples must be at least 10, got {self.eval_samples}")

    def with_model_defaults(self) -> "TrainConfig":
        """A copy with the model's recipe filled in where the user gave nothing."""
        spec = MODELS[self.model]
        return dataclasses.replace(
            self,
            width=self.width if self.width is not None else spec.width,
            lr=self.lr if self.lr is not None else spec.lr,
            beta1=self.beta1 if self.beta1 is not None else spec.betas[0],
            beta2=self.beta2 if self.beta2 is not None else spec.betas[1],
        )


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


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the config as YAML, one field per line in declaration order."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def load_config(path: Path) -> TrainConfig:
    """Read a config written by ``save_config`` (safe YAML loader only)."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GanforgeError(f"cannot read config {path}: {error}") from None
    if not isinstance(values, dict):
        raise GanforgeError(f"{path} does not hold a ganforge config")
    return config_from_dict(values)
