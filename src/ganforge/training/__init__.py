"""Training any task: ``train(config)`` and ``resume(run_dir)``.

The package follows the training's own seams:

- ``state.py``: the ``TrainState`` a checkpoint saves and a resume restores, for any number of networks, and
  the one way it is built (``build_train_state``) and wrapped for compile and DDP (``wrap_for_training``);
- ``loop.py``: the ``TrainingLoop`` every task shares: cadences, signals, rollback, checkpoints, learning rates.

This file sets a run up, the same way for every task (``prepare_run``): the task's data, the resolved config,
threads, the agreement of a torchrun run's processes, the state (resumed if asked), the task's ``Trainer``; then
hands the trainer to the loop. What is particular to a task is asked of its ``tasks.TASKS`` entry.
"""

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganforge import distributed
from ganforge.checkpoint import load_checkpoint
from ganforge.config import (
    TrainConfig,
    flat_values,
    load_config,
    resumable_fields,
    save_config,
    total_steps,
)
from ganforge.device import describe_precision, resolve_device, set_cpu_threads
from ganforge.distributed import Distributed
from ganforge.errors import GanforgeError, UsageError
from ganforge.progress import progress_shown
from ganforge.rundir import (
    check_new_run_dir,
    check_outside_data,
    discard_unstarted_run,
    open_run_dir,
    resume_checkpoint,
)
from ganforge.settings import flag
from ganforge.tasks import TASKS, RunData, Trainer
from ganforge.training.loop import TrainingLoop
from ganforge.training.state import TrainState, build_train_state, wrap_for_training

log = logging.getLogger("ganforge")

__all__ = [
    "TrainResult",
    "TrainState",
    "TrainingLoop",
    "build_train_state",
    "prepare_run",
    "resume",
    "train",
    "wrap_for_training",
]


@dataclass
class TrainResult:
    """What ``train`` leaves behind."""

    run_dir: Path
    step: int  # steps trained in total, over every invocation
    generators: dict[str, nn.Module]  # by name: a GAN's "generator"; a translator's "AtoB" (and "BtoA")
    discriminators: dict[str, nn.Module]
    stopped_early: bool  # by a signal or --minutes, before the run's total steps

    @property
    def generator(self) -> nn.Module:
        """The first generator: a GAN's only one, a translator's A to B."""
        return next(iter(self.generators.values()))

    @property
    def discriminator(self) -> nn.Module:
        """The first discriminator."""
        return next(iter(self.discriminators.values()))


def train(config: TrainConfig, resume_from: str | Path | None = None) -> TrainResult:
    """Train a run of ``config.task`` as ``config`` says; with ``resume_from`` (a checkpoint), continue that run.

    Writes the run directory (config.yaml, metrics.jsonl, samples/, checkpoints/)
    and returns the trained models. SIGINT/SIGTERM stop it cleanly after the
    current step, with a checkpoint. Under torchrun, every process calls it
    and trains its share of each batch (``ganforge.distributed``).
    """
    context = distributed.setup(config.device)
    threads = torch.get_num_threads()
    try:
        return train_process(config, resume_from, context)
    finally:
        torch.set_num_threads(threads)  # train_process sets them for a CPU run (--threads): the caller's again
        distributed.teardown(context)


def train_process(config: TrainConfig, resume_from: str | Path | None, context: Distributed) -> TrainResult:
    """``train`` as one process of the run: ``context`` says which, and rank 0 writes the run directory."""
    started = time.monotonic()
    config.validate()
    resuming, is_main = resume_from is not None, context.is_main_process
    resume_from = context.from_main(resume_from)  # every rank continues from the checkpoint rank 0 found
    if config.out and not resuming and is_main:
        check_new_run_dir(Path(config.out), config.overwrite)  # before a possibly long decode of the data
    device = context.device(resolve_device(config.device))
    config, trainer = prepare_run(config, resume_from, context, device)
    run_dir = Path(config.out)
    lock = open_run_dir(run_dir, resuming, config.overwrite) if is_main else None  # one writer per run
    loop = TrainingLoop(config, trainer, run_dir, device, context)
    try:
        return run_loop(config, loop, trainer.state, run_dir, started, device, context)
    except Exception:
        if lock is not None and not resuming and loop.steps_taken == 0:
            discard_unstarted_run(run_dir, lock.created)  # a run that failed before training leaves nothing behind
        raise
    finally:
        if lock is not None:
            lock.release()


def load_on_each_machine(config: TrainConfig, context: Distributed) -> RunData:
    """The task's data, loaded (and perhaps downloaded) first by each machine's first process; every rank checks
    that it has what rank 0 has."""
    first_on_machine = context.local_rank == 0
    if not first_on_machine:
        context.barrier()
    data = TASKS[config.task].load_data(config)
    if first_on_machine:
        context.barrier()
    if (main_loaded := context.from_main(data.signature)) != data.signature:
        raise GanforgeError(
            f"rank {context.rank} loaded {data.description}, not what rank 0 loaded ({main_loaded}): every machine "
            "needs the same data"
        )
    log.info(f"data: {data.description}")
    return data


def prepare_run(
    config: TrainConfig, resume_from: str | Path | None, context: Distributed, device: torch.device
) -> tuple[TrainConfig, Trainer]:
    """(the resolved config, the task's ``Trainer``) of a run: its data, threads, state (resumed if asked)."""
    task = TASKS[config.task]
    config = task.resolve(config)  # what reading the data needs (a translator's sizes)
    data = load_on_each_machine(config, context)
    if device.type == "cpu":
        set_cpu_threads(config.threads)  # after the data, so that a bad --data stays a one-line error
    config = task.resolve(config, data)
    config = dataclasses.replace(config, out=context.from_main(config.out))  # its default holds the time
    if config.batch_size % context.world_size:
        raise UsageError(
            f"--batch-size {config.batch_size} is the global batch and must divide evenly "
            f"among the {context.world_size} processes"
        )
    check_outside_data(Path(config.out), data.protected_paths)
    generator_args, discriminator_args = task.networks(config, data)
    state = build_train_state(config, device, generator_args, discriminator_args, data.num_images)
    with progress_shown(False):  # its evaluator's reference features, like its evaluations, show no bar
        trainer = task.trainer(config, state, data, device, context)
    if resume_from is not None:  # after the trainer, whose making may draw from the random streams the state restores
        state.load_state_dict(load_checkpoint(resume_from), str(resume_from))
    return config, trainer


def run_loop(config, loop: TrainingLoop, state, run_dir: Path, started: float, device, context) -> TrainResult:
    """Record the config, then run the shared training loop to the run's end."""
    if context.is_main_process:
        save_config(config, run_dir / "config.yaml")
    context.barrier()  # the run directory exists before any rank goes on
    total = total_steps(config, loop.trainer.steps_per_epoch)
    deadline = started + config.minutes * 60 if config.minutes else float("inf")
    step = state.step
    processes = f" x {context.world_size} processes" if context.enabled else ""
    precision = describe_precision(config.precision, device)
    log.info(
        f"run: {run_dir}; {config.task} {config.model} on {device}{processes}, precision {precision}, "
        + (f"{total:,} steps" if total else "until --minutes")
        + (f", resuming at step {step:,}" if step else "")
    )
    with progress_shown(False):  # the training's own bar only: no bars of its evaluations' sampling inside it
        step, stopped = loop.run(step, total, deadline)
    return TrainResult(run_dir, step, state.generators, state.discriminators, stopped)


def resume(run_dir: str | Path, **overrides) -> TrainResult:
    """Continue the run in ``run_dir`` from its latest checkpoint.

    ``overrides`` may change only how long and where it runs (the fields
    marked ``resumable`` in ``TrainConfig`` and the task's settings, e.g.
    ``steps=20000`` or ``minutes=10``); anything else would make it a
    different run and is refused.
    """
    run_dir = Path(run_dir)
    start, checkpoint = resume_checkpoint(run_dir)
    config = load_config(run_dir / "config.yaml")
    if "out" in overrides:
        raise UsageError(f"--out cannot be given with --resume: the run stays in {run_dir}")
    # A new --steps or --epochs replaces the run's length (and its time limit) rather than competing with it.
    if "steps" in overrides or "epochs" in overrides:
        overrides = {"steps": None, "epochs": None, "minutes": None, **overrides}
    values, resumable = flat_values(config), resumable_fields(config.task)
    for name, value in overrides.items():
        if name not in values:
            raise UsageError(f"--{flag(name)} is not a setting of --task {config.task}, whose run this is")
        if name not in resumable and value != values[name]:
            raise UsageError(
                f"--{flag(name)} cannot change when resuming (the run used {values[name]!r}); "
                f"only {', '.join('--' + flag(n) for n in resumable)} can"
            )
    check_unedited(config, checkpoint["config"], run_dir)
    config = dataclasses.replace(config, **overrides, out=str(run_dir))
    return train(config, resume_from=start)


def check_unedited(config: TrainConfig, trained: dict, run_dir: Path) -> None:
    """Refuse a config.yaml whose settings were edited by hand since the run's checkpoint (its own config) was saved.

    What a resume may change is what ``--flag`` may change (``resumable``), and where the data now lie.
    """
    may_change = {*resumable_fields(config.task), "out", "overwrite", "data"}
    now = flat_values(config)
    saved = dict(trained)
    saved |= saved.pop(config.task, None) or {}
    for name, value in saved.items():
        if name not in may_change and name in now and now[name] != value:
            raise UsageError(
                f"{run_dir / 'config.yaml'} says {name}: {now[name]!r}, but the run was trained with "
                f"{value!r} (its checkpoint's config): put it back, or start a new run to change it"
            )
