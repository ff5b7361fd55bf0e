"""Training: ``train(config)`` and ``resume(run_dir)``.

The package follows the training's own seams:

- ``step.py``: the algorithm box (one D and one G update) and the ``Recipe`` of its variants;
- ``state.py``: the ``TrainState`` a checkpoint saves and a resume restores;
- ``task.py``: the noise-to-image ``GANTask``: the step, the batches, the sample grid, the evaluation;
- ``loop.py``: the ``TrainingLoop`` every task shares: cadences, signals, rollback, checkpoints.

This file sets a run up: data, config, state, task, run directory; then hands the task to the loop.
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
    flag,
    load_config,
    resolve_config,
    resumable_fields,
    save_config,
    total_steps,
)
from ganforge.data import ImageDataset, load_dataset, resolve_source, split_holdout
from ganforge.device import describe_precision, resolve_device, set_cpu_threads
from ganforge.distributed import Distributed
from ganforge.errors import GanforgeError, UsageError
from ganforge.rundir import (
    check_new_run_dir,
    check_outside_data,
    discard_unstarted_run,
    open_run_dir,
    resume_checkpoint,
)
from ganforge.training.loop import TrainingLoop
from ganforge.training.state import TrainState, build_train_state
from ganforge.training.step import Batch, Recipe, build_recipe, training_step
from ganforge.training.task import GANTask
from ganforge.training.translation import TranslationState, TranslationTask, prepare_translation

log = logging.getLogger("ganforge")

__all__ = [
    "Batch",
    "GANTask",
    "Recipe",
    "TrainResult",
    "TrainState",
    "TrainingLoop",
    "TranslationState",
    "TranslationTask",
    "build_recipe",
    "build_train_state",
    "resume",
    "train",
    "training_step",
]


@dataclass
class TrainResult:
    """What ``train`` leaves behind."""

    run_dir: Path
    step: int  # steps trained in total, over every invocation
    generator: nn.Module
    discriminator: nn.Module
    stopped_early: bool  # by a signal or --minutes, before the run's total steps


def train(config: TrainConfig, resume_from: str | Path | None = None) -> TrainResult:
    """Train a GAN as ``config`` says; with ``resume_from`` (a checkpoint), continue that run.

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


def load_training_data(config: TrainConfig, context: Distributed) -> ImageDataset:
    """The training images, loaded first by each machine's first process; every rank checks that it has rank 0's."""
    first_on_machine = context.local_rank == 0  # loads (and may download) before the others on its machine
    if not first_on_machine:
        context.barrier()
    data = load_dataset(config.data, config.data_root, config.image_size, config.channels, config.download)
    if first_on_machine:
        context.barrier()
    loaded = (tuple(data.images.shape), data.classes)
    if (main_loaded := context.from_main(loaded)) != loaded:
        raise GanforgeError(
            f"rank {context.rank} loaded {data.description}, not the images rank 0 loaded "
            f"({main_loaded[0][0]:,} of {main_loaded[0][1:]}): every machine needs the same data (--data-root)"
        )
    log.info(f"data: {data.description}, {tuple(data.images.shape[1:])} uint8, {data.images.numel() / 2**20:.0f} MiB")
    return data


def train_process(config: TrainConfig, resume_from: str | Path | None, context: Distributed) -> TrainResult:
    """``train`` as one process of the run: ``context`` says which, and rank 0 writes the run directory."""
    started = time.monotonic()
    config.validate()
    resuming, is_main = resume_from is not None, context.is_main_process
    resume_from = context.from_main(resume_from)  # every rank continues from the checkpoint rank 0 found
    if config.out and not resuming and is_main:
        check_new_run_dir(Path(config.out), config.overwrite)  # before a possibly long decode of the data
    device = context.device(resolve_device(config.device))
    prepare = prepare_gan if config.task == "gan" else prepare_translation
    config, task = prepare(config, resume_from, context, device)
    run_dir = Path(config.out)
    lock = open_run_dir(run_dir, resuming, config.overwrite) if is_main else None  # one writer per run
    loop = TrainingLoop(config, task, run_dir, device, context)
    try:
        return run_loop(config, loop, task.state, run_dir, started, device, context)
    except Exception:
        if lock is not None and not resuming and loop.steps_taken == 0:
            discard_unstarted_run(run_dir, lock.created)  # a run that failed before training leaves nothing behind
        raise
    finally:
        if lock is not None:
            lock.release()


def prepare_gan(config: TrainConfig, resume_from, context: Distributed, device: torch.device):
    """(the resolved config, the ``GANTask``) of a noise-to-image run: its data, its state, resumed if asked."""
    resuming = resume_from is not None
    data = load_training_data(config, context)
    if device.type == "cpu":
        set_cpu_threads(config.threads)  # after the data, so that a bad --data stays a one-line error
    labelled = data.labels is not None and len(data.classes) >= 2
    source = resolve_source(config.data)
    config = resolve_config(config, tuple(data.images.shape[1:]), labelled, source)
    config = dataclasses.replace(config, out=context.from_main(config.out))  # its default holds the time
    if config.batch_size % context.world_size:
        raise UsageError(
            f"--batch-size {config.batch_size} is the global batch and must divide evenly "
            f"among the {context.world_size} processes"
        )
    data, heldout = split_holdout(data, config.holdout)
    if len(heldout):
        log.info(f"holding out {len(heldout):,} images ({config.holdout:.0%}) as the evaluation reference")
    check_outside_data(Path(config.out), source.protected_paths(config.data, config.data_root))
    if config.conditional and data.labels is None:
        raise UsageError(
            f"--conditional needs labelled data; {config.data} has no labels (a folder needs class subfolders)"
        )

    state = build_train_state(config, device, len(data), num_classes=len(data.classes) if config.conditional else 0)
    if resuming:
        state.load_state_dict(load_checkpoint(resume_from), str(resume_from))
    return config, GANTask(config, state, data, heldout, device, context)


def run_loop(config, loop: TrainingLoop, state, run_dir: Path, started: float, device, context) -> TrainResult:
    """Record the config, then run the shared training loop to the run's end."""
    if context.is_main_process:
        save_config(config, run_dir / "config.yaml")
    context.barrier()  # the run directory exists before any rank goes on
    total = total_steps(config, loop.task.steps_per_epoch)
    deadline = started + config.minutes * 60 if config.minutes else float("inf")
    step = state.step
    processes = f" x {context.world_size} processes" if context.enabled else ""
    precision = describe_precision(config.precision, device)
    log.info(
        f"run: {run_dir}; {config.model} on {device}{processes}, precision {precision}, "
        + (f"{total:,} steps" if total else "until --minutes")
        + (f", resuming at step {step:,}" if step else "")
    )
    step, stopped = loop.run(step, total, deadline)
    return TrainResult(run_dir, step, state.generator, state.discriminator, stopped)


def resume(run_dir: str | Path, **overrides) -> TrainResult:
    """Continue the run in ``run_dir`` from its latest checkpoint.

    ``overrides`` may change only how long and where it runs (the fields
    marked ``resumable`` in ``TrainConfig``, e.g. ``steps=20000`` or
    ``minutes=10``); anything else would make it a different run and is refused.
    """
    run_dir = Path(run_dir)
    start, checkpoint = resume_checkpoint(run_dir)
    config = load_config(run_dir / "config.yaml")
    if "out" in overrides:
        raise UsageError(f"--out cannot be given with --resume: the run stays in {run_dir}")
    # A new --steps or --epochs replaces the run's length (and its time limit) rather than competing with it.
    if "steps" in overrides or "epochs" in overrides:
        overrides = {"steps": None, "epochs": None, "minutes": None, **overrides}
    resumable = resumable_fields()
    for name, value in overrides.items():
        if name not in resumable and value != getattr(config, name):
            raise UsageError(
                f"--{flag(name)} cannot change when resuming (the run used {getattr(config, name)!r}); "
                f"only {', '.join('--' + flag(n) for n in resumable)} can"
            )
    check_unedited(config, checkpoint["config"], run_dir)
    config = dataclasses.replace(config, **overrides, out=str(run_dir))
    return train(config, resume_from=start)


def check_unedited(config: TrainConfig, trained: dict, run_dir: Path) -> None:
    """Refuse a config.yaml whose settings were edited by hand since the run's checkpoint (its own config) was saved.

    What a resume may change is what ``--flag`` may change (``resumable``), and where the data now lie.
    """
    may_change = {*resumable_fields(), "out", "overwrite", "data"}
    for name, value in trained.items():
        if name not in may_change and hasattr(config, name) and getattr(config, name) != value:
            raise UsageError(
                f"{run_dir / 'config.yaml'} says {name}: {getattr(config, name)!r}, but the run was trained with "
                f"{value!r} (its checkpoint's config): put it back, or start a new run to change it"
            )
