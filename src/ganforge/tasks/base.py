"""The face of a task: what every entry of ``TASKS`` says about itself and does, and what it hands the loop.

A task is what a run learns: images from noise (``gan``), or images from
images, paired or not (``pix2pix``, ``cyclegan``). ``Task`` is everything
about it from the flag to the web page: its own settings (the config's section
that bears its name), the defaults it gives the shared ones, the models it
trains, how it reads its data and which networks it builds, the ``Trainer``
the loop drives, the statistics its step reports, and the handle
``ganforge.load`` returns for one of its runs, which evaluates, serves and
exports it. Declaring a task needs no torch: the command line's ``--help``
lists every task's flags without it, and the work is imported when it is done.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ganforge.errors import UsageError
from ganforge.pretrained import FOLDER as PRETRAINED_FOLDER
from ganforge.settings import flag

if TYPE_CHECKING:
    import torch

    from ganforge.config import TrainConfig
    from ganforge.distributed import Distributed
    from ganforge.training.state import TrainState

# The commands every task serves; a task lists the others it serves (``Task.commands``).
COMMON_COMMANDS = frozenset({"train", "resume", "evaluate", "serve", "export", "plot"})


@dataclass(frozen=True)
class Statistic:
    """One number a task's training step reports: its key in metrics.jsonl, what it is, and how to draw it."""

    name: str  # the key in the step's statistics, metrics.jsonl and TensorBoard
    label: str  # what it is, in words: the plots' legends
    short: str  # its name on the progress bar: d_loss, D(x)
    plot: str  # the plot it is drawn in: "losses" or "discriminator" (losses.png, discriminator.png)
    axis: str = "loss"  # the plot's y-axis label
    range: tuple[float, float] | None = None  # the values it can take (a probability: (0, 1)); None: any
    reference: tuple[float, str] | None = None  # a level worth a line, and what it means


@dataclass
class RunData:
    """What a task's ``load_data`` gives the shared set-up: its training and evaluation data, and plain facts."""

    train: Any  # the task's training data (an ImageDataset, a TranslationData, ...)
    held_out: Any  # what it evaluates against (a held-out share, a test split; possibly empty)
    description: str  # for the log
    signature: tuple  # what every process of a torchrun run must have loaded alike (shapes, classes)
    num_images: int  # training images: the batch order depends on it, and a resume checks it
    protected_paths: list[Path] = field(default_factory=list)  # what a run must never write into
    facts: dict = field(default_factory=dict)  # what the task's ``resolve`` reads of the data


class Trainer:
    """The face a task shows the loop (``training.loop.TrainingLoop``), which never looks inside.

    The loop owns time, signals, NaN rollback, checkpoints, exact resume, DDP
    agreements, logging and the learning rates (``base_learning_rates`` times
    ``learning_rate_scale`` times the rollback factor); the trainer owns its
    data, its step and its pictures.
    """

    state: TrainState  # what a checkpoint holds
    statistics: tuple[Statistic, ...] = ()  # what ``train_step`` reports
    metric: str = ""  # the evaluation score that keeps checkpoints/best.pt: lower is better
    evaluates: bool = False  # whether ``evaluate`` is to be called (--eval-every, on rank 0)
    watches_discriminator: bool = False  # warn when D(G(z)) stays near 0 (the GAN's d_fake)

    @property
    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def base_learning_rates(self) -> dict[str, float]:
        """Each optimiser's learning rate (by its key in ``state.optimizers``) before any schedule."""
        raise NotImplementedError

    def learning_rate_scale(self, step: int) -> float:
        """The schedule: the share of the base learning rates that step ``step`` trains with."""
        return 1.0

    def train_step(self, step: int) -> dict:
        """Train step ``step``; returns its detached scalar statistics (``statistics``' names)."""
        raise NotImplementedError

    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """(images (N, C, H, W) uint8, images per row) for samples/step_N.png."""
        raise NotImplementedError

    def evaluate(self) -> dict:
        """Scores for metrics.jsonl; holds ``metric``."""
        raise NotImplementedError

    def describe(self, results: dict) -> str:
        """One line of an evaluation for the log."""
        return ", ".join(f"{name} {value:.4g}" for name, value in results.items() if isinstance(value, float))

    def watch(self, step: int, results: dict) -> list[str]:
        """Warnings an evaluation calls for."""
        return []

    def checkpoint_extra(self) -> dict:
        """Plain data a checkpoint carries beside the state (a GAN's class names)."""
        return {}


class Task(ABC):
    """One entry of ``TASKS``: a kind of run, from its flags to its web page."""

    name: ClassVar[str]  # the --task value, and the name of its section in config.yaml
    summary: ClassVar[str]  # what it learns, in a few words (the --task help)
    settings: ClassVar[type]  # the dataclass of its own settings, declared with settings.setting
    models: ClassVar[tuple[str, ...]]  # the MODELS it trains; the first is its default
    defaults: ClassVar[dict] = {}  # what it gives the shared fields left None (model, loss, precision, ...)
    default_help: ClassVar[dict[str, str]] = {}  # --help's words for defaults that a value cannot say
    legacy_defaults: ClassVar[dict] = {}  # what its runs used for settings older config files lack
    commands: ClassVar[frozenset[str]] = frozenset()  # what it serves beyond COMMON_COMMANDS
    default_images: ClassVar[int] = 128_000  # a run given no length trains this many images, in steps of its batch
    default_length_note: ClassVar[str] = ""  # those images in steps, for --steps' help
    statistics: ClassVar[tuple[Statistic, ...]] = ()  # what its step reports

    @abstractmethod
    def resolve(self, config: TrainConfig, data: RunData | None = None) -> TrainConfig:
        """``config`` with every None that the task decides filled: without ``data``, what needs none (the
        model's recipe, the run's length and name, ...; ``--print-config``), with it the rest."""

    def validate(self, config: TrainConfig) -> None:  # noqa: B027  (a task may have nothing to add)
        """Raise UsageError for settings that cannot work together; the shared checks are done."""

    @abstractmethod
    def load_data(self, config: TrainConfig) -> RunData:
        """Read the run's data (the config resolved without data)."""

    @abstractmethod
    def networks(self, config: TrainConfig, data: RunData) -> tuple[dict[str, dict], dict[str, dict]]:
        """(generators' constructor arguments by name, discriminators' by name) of the resolved config's model."""

    @abstractmethod
    def trainer(
        self, config: TrainConfig, state: TrainState, data: RunData, device: torch.device, context: Distributed
    ) -> Trainer:
        """The ``Trainer`` the loop drives for this run."""

    @abstractmethod
    def handle(self, checkpoint: dict, path: Path, device: torch.device, ema: bool) -> Trained:
        """The loaded run (``ganforge.load``) from one read of its checkpoint (or an exported folder, read as
        one): with ``ema``, each generator's moving average where the run kept one."""

    def serves(self, command: str) -> bool:
        """Whether ``ganforge COMMAND`` works on this task's runs."""
        return command in COMMON_COMMANDS or command in self.commands


class Trained:
    """A loaded run of any task: what every command asks of it. Each task's handle adds its own uses
    (a GAN's ``sample``, a translator's ``translate``)."""

    task: str  # the TASKS name
    path: Path  # the checkpoint (or exported weights) read
    config: dict  # the run's TrainConfig as plain data (config.config_from_dict rebuilds it); {} if none
    description: dict  # plain data about the model: what export writes as metadata
    export_formats: ClassVar[tuple[str, ...]] = ()  # what ``export`` writes

    @property
    def run_name(self) -> str:
        """A name to show, never a path: the run directory's name, an exported folder's, else the checkpoint file's."""
        if self.path.parent.name == "checkpoints":
            return self.path.parent.parent.name
        if self.path.parent == PRETRAINED_FOLDER:  # a generator shipped in the package: its name
            return self.path.stem
        if self.path.suffix == ".safetensors" and (self.path.parent / "config.json").is_file():
            return self.path.resolve().parent.name  # a model-repository folder (export --format hub)
        return self.path.name

    def evaluate(self, **options) -> dict:
        raise NotImplementedError

    def app(self, allowed_hosts: list[str] | None = None, **options):
        raise NotImplementedError

    def export(self, format: str, out: Path, overwrite: bool = False, **options) -> Path:
        raise NotImplementedError


def check_options(method, options: dict, command: str, task: str) -> None:
    """One line for an option that ``method`` (a handle's ``evaluate``, ``app``, ``export``) does not take: the
    command's flags that another task's runs use (``--cas`` for a GAN's samples, ``--direction`` for CycleGAN)."""
    accepted = inspect.signature(method).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for name in options:
        if name not in accepted and not takes_any:
            raise UsageError(f"--{flag(name)} is not an option of ganforge {command} for a {task} run")
