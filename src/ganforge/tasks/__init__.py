"""The task registry: what a run learns, one entry each, from its flags to its web page.

``TASKS`` maps each ``--task`` name to its ``Task`` (``tasks/base.py`` says
what an entry holds). A run records its task in every checkpoint and exported
folder; ``load`` reads one of them once and returns that task's handle, which
every command asks (``require`` refuses, in one line, a command the task does
not serve). A new task is one more entry: its module, and a line here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ganforge.errors import UsageError
from ganforge.tasks.base import COMMON_COMMANDS, RunData, Statistic, Task, Trained, Trainer
from ganforge.tasks.gan import GAN_TASK
from ganforge.tasks.translation import CYCLEGAN, PIX2PIX

if TYPE_CHECKING:
    import torch

TASKS: dict[str, Task] = {task.name: task for task in (GAN_TASK, PIX2PIX, CYCLEGAN)}
DEFAULT_TASK = GAN_TASK.name  # what runs and exports from before tasks were recorded are

__all__ = [
    "COMMON_COMMANDS",
    "DEFAULT_TASK",
    "TASKS",
    "RunData",
    "Statistic",
    "Task",
    "Trained",
    "Trainer",
    "load",
    "require",
    "serving",
]


def serving(command: str) -> list[str]:
    """The tasks whose runs ``ganforge COMMAND`` works on."""
    return [name for name, task in TASKS.items() if task.serves(command)]


def require(model: Trained, command: str) -> Trained:
    """``model``, if its task serves ``command``; else one line saying which tasks it serves."""
    if TASKS[model.task].serves(command):
        return model
    raise UsageError(
        f"ganforge {command} serves {' and '.join(serving(command))} runs; {model.path} is a {model.task} run "
        f"(it serves: {', '.join(sorted(TASKS[model.task].commands | COMMON_COMMANDS - {'train', 'resume'}))})"
    )


def load(
    source: str | Path | Trained, device: str | torch.device = "cpu", ema: bool = True, command: str | None = None
) -> Trained:
    """The trained run at ``source`` (a run directory, a checkpoint file or an ``export --format hub`` folder),
    read once, as its task's handle; a handle is returned as it is, so every command takes one in place of a
    path. ``device`` may be "auto". With ``ema`` (the default), the generators' moving averages where the run
    kept them. With ``command``, a task that does not serve it is refused in one line.

    >>> model = ganforge.load("runs/my-run")   # a GAN's TrainedGenerator, a translator's TrainedTranslator
    >>> model.task
    'gan'
    """
    if not isinstance(source, Trained):
        from ganforge.checkpoint import read_source
        from ganforge.device import resolve_device

        checkpoint, path = read_source(source)
        task = TASKS.get(checkpoint["task"])
        if task is None:
            raise UsageError(f"{path} is a {checkpoint['task']!r} run, a task this ganforge does not know")
        source = task.handle(checkpoint, path, resolve_device(str(device)), ema)
    return require(source, command) if command else source


def task_of_run(run_dir: Path) -> Task:
    """The task of the run directory ``run_dir``, from its config.yaml (older runs, and a run without one:
    ``DEFAULT_TASK``)."""
    from ganforge.config import read_config_values

    path = Path(run_dir) / "config.yaml"
    name = read_config_values(path).get("task", DEFAULT_TASK) if path.is_file() else DEFAULT_TASK
    if name not in TASKS:
        raise UsageError(f"{run_dir} is a {name!r} run, a task this ganforge does not know")
    return TASKS[name]
