"""The loop: steps with reports, sample grids, checkpoints and evaluations on their cadences, and recovery.

It owns everything every task shares (time, ``--minutes``, signals, NaN
rollback, checkpoints, exact resume, DDP agreements, the learning rates,
logging, TensorBoard, best-by-metric) and is handed the task's ``Trainer``
(``tasks.base.Trainer``), which owns the data, the step and the pictures.
"""

import logging
import os
import time
from pathlib import Path

import torch
from torch import nn
from torchvision.utils import make_grid

from ganforge.checkpoint import (
    BEST,
    best_score,
    latest_checkpoint,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
    save_run_checkpoint,
)
from ganforge.config import TrainConfig, config_to_dict, flat_values
from ganforge.device import ThreadFollower
from ganforge.distributed import Distributed
from ganforge.errors import GanforgeError
from ganforge.monitor import RunMonitor, StopSignal
from ganforge.sampling import save_grid
from ganforge.settings import parse_interval
from ganforge.tasks import Trainer

log = logging.getLogger("ganforge")

STOP_ECHO_SECONDS = 5.0  # under torchrun, a second stop signal this soon after the first is torchrun's echo
NAN_LR_FACTOR = 0.5  # learning rates are multiplied by this at each rollback after a divergence


class Cadence:
    """When something periodic is due: every N steps ('500') or every T of wall time ('30s', '5m').

    '0' means never (the loop still does it once at the end).
    """

    def __init__(self, interval: str, name: str):
        self.unit, self.every = ("never", 0) if interval == "0" else parse_interval(interval, name)
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        """Whether it is due after ``step``; a time cadence restarts its clock when it says yes."""
        if self.unit == "steps":
            return step % self.every == 0
        if self.unit == "seconds" and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            return True
        return False


class Diverged(Exception):
    """A loss or weight became NaN or infinite: at ``step``, or after ``since`` and by ``step``."""

    def __init__(self, step: int, what: str, since: int | None = None):
        when = f"at step {step}" if since is None or since + 1 >= step else f"between steps {since + 1} and {step}"
        super().__init__(f"{what} became non-finite {when}")
        self.step, self.what = step, what


# Settings that say where or how often, not what is learnt: left out of TensorBoard's HPARAMS view.
NOT_HYPERPARAMETERS = {"out", "data_root", "download", "device", "threads", "compile", "overwrite", "progress"}
NOT_HYPERPARAMETERS |= {"tensorboard", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints"}
NOT_HYPERPARAMETERS |= {"snapshot_every", "on_nan", "max_rollbacks", "eval_every", "eval_samples"}


def hyperparameters(config: TrainConfig) -> dict:
    """What TensorBoard's HPARAMS view compares runs by: every setting of the run (shared and its task's) that
    decides what is learnt, as a number, a switch or a word."""
    values = {name: value for name, value in flat_values(config).items() if name not in NOT_HYPERPARAMETERS}
    return {name: value if isinstance(value, (int, float, str, bool)) else str(value) for name, value in values.items()}


def all_finite(module: nn.Module) -> torch.Tensor:
    """Whether every weight of ``module`` is finite, as a bool tensor on its device (no sync)."""
    return torch.stack([torch.isfinite(p).all() for p in module.parameters()]).all()


class TrainingLoop:
    """Steps with reports, sample grids and checkpoints on their cadences, and recovery from divergence.

    Under torchrun every rank runs the loop; rank 0 alone writes, and the
    decisions that hang on a clock or a signal are agreed (``Distributed.any``)
    so that every rank saves, evaluates and stops at the same step.
    """

    def __init__(
        self, config: TrainConfig, trainer: Trainer, run_dir: Path, device: torch.device, context: Distributed
    ):
        self.config, self.trainer, self.run_dir, self.device, self.context = config, trainer, run_dir, device, context
        self.is_main = context.is_main_process
        self.checkpoint_cadence = Cadence(config.checkpoint_every, "checkpoint-every")
        self.sample_cadence = Cadence(config.sample_every, "sample-every")
        self.eval_cadence = Cadence(config.eval_every, "eval-every")
        self.best = best_score(run_dir / "checkpoints", trainer.metric)  # of best.pt: lower is better
        self.base_lrs = trainer.base_learning_rates()  # by optimiser: the loop sets the rates of every step
        # The losses' finiteness is gathered on the device and read only at reports and before saves:
        # reading it every step would wait for the device every step.
        self.losses_finite = torch.ones((), dtype=torch.bool, device=device)
        self.checked_step = 0  # the last step whose losses were read as finite
        self.steps_taken = 0  # by this process: 0 means nothing was trained yet

    @property
    def state(self):
        return self.trainer.state

    def set_learning_rates(self, step: int) -> None:
        """Each optimiser's rate for ``step``: its base rate times the trainer's schedule, halved per rollback."""
        factor = self.trainer.learning_rate_scale(step) * NAN_LR_FACTOR**self.state.rollbacks
        for key, optimizer in self.state.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_lrs[key] * factor

    def run(self, step: int, total: int | None, deadline: float) -> tuple[int, bool]:
        """Train from ``step`` until ``total``, the deadline or a stop signal; returns (step, stopped early)."""
        config = self.config
        monitor = RunMonitor(
            self.run_dir,
            total_steps=total,
            start_step=step,
            batch_size=config.batch_size,
            steps_per_epoch=self.trainer.steps_per_epoch,
            log_every=config.log_every,
            tensorboard=config.tensorboard and self.is_main,
            progress=config.progress and self.is_main,
            writes=self.is_main,
            watch_d=self.trainer.watches_discriminator,
            statistics=self.trainer.statistics,
        )
        self.checked_step = step
        self.follower = ThreadFollower(torch.get_num_threads()) if self.follows_the_machine() else None
        stopping = False
        try:
            with StopSignal(repeat_grace=STOP_ECHO_SECONDS if self.context.enabled else 0.0) as stop:
                if step == 0:
                    self.save(0)  # a good state to roll back to
                while True:
                    try:
                        while (total is None or step < total) and not stopping:
                            step, stopping = self.train_one_step(step, monitor, stop, deadline)
                        self.check_finite(step, weights=True)
                        monitor.report(step)
                        self.save_samples(step, monitor)
                        self.save(step)
                        break
                    except Diverged as divergence:
                        step, stopping = self.recover(divergence, monitor), False
        finally:
            monitor.close(hyperparameters=hyperparameters(config))
        stopped = stopping or (total is not None and step < total)
        self.say_how_it_ended(step, stopped, interrupted=stop.requested or (stopped and not config.minutes))
        return step, stopped

    def follows_the_machine(self) -> bool:
        """Whether the thread count follows the load while training (``device.ThreadFollower``): a CPU run of
        one process with ``--threads`` auto and no $OMP_NUM_THREADS, which the user set on purpose."""
        auto = self.config.threads == 0 and not os.environ.get("OMP_NUM_THREADS")
        return self.device.type == "cpu" and auto and not self.context.enabled

    def say_how_it_ended(self, step: int, stopped: bool, interrupted: bool) -> None:
        """One line: finished (its --steps, --epochs or --minutes) or interrupted, where the grid and checkpoint are."""
        launcher = "torchrun ... -m ganforge train --resume" if self.context.enabled else "ganforge resume"
        grid = self.run_dir / "samples" / f"step_{step:07d}.png"
        where = f"checkpoint in {self.run_dir / 'checkpoints'}" + (f"; samples: {grid}" if grid.is_file() else "")
        if interrupted:
            log.info(f"stopped at step {step:,}; {where}; continue with: {launcher} {self.run_dir}")
        elif stopped:  # the run's own --minutes
            log.info(
                f"finished: --minutes {self.config.minutes:g} reached at step {step:,}; {where}; "
                f"train on with: {launcher} {self.run_dir} --minutes M"
            )
        else:
            log.info(f"finished: {step:,} steps; {where}")

    def train_one_step(self, step: int, monitor: RunMonitor, stop: StopSignal, deadline: float) -> tuple[int, bool]:
        """Train step ``step`` and do whatever is due after it; returns the next step and whether to stop."""
        self.set_learning_rates(step)
        stats = self.trainer.train_step(step)
        self.steps_taken += 1
        self.losses_finite &= torch.isfinite(sum(stats.values()))
        step += 1
        # Rank 0's clock decides what is due; a signal or the deadline on any rank stops every rank.
        stopping, sample, checkpoint, evaluate = self.context.any(
            [
                stop.requested or time.monotonic() >= deadline,
                self.is_main and self.sample_cadence.due(step),
                self.is_main and (self.checkpoint_cadence.due(step) or self.snapshot_due(step)),
                self.trainer.evaluates and self.eval_cadence.due(step),
            ]
        )
        saving = sample or checkpoint or evaluate
        if saving or step % self.config.log_every == 0:
            self.check_finite(step, weights=saving)  # nothing non-finite is saved or reported
        monitor.step(step, stats)
        if self.follower is not None:
            self.follower.poll()  # between steps: the other processes' load, and threads to match it
        if sample:
            self.save_samples(step, monitor)
        if checkpoint:
            self.save(step)
        if evaluate and self.is_main:
            self.evaluate(step, monitor)  # the other ranks wait at the next gradient synchronisation
        return step, stopping

    def check_finite(self, step: int, weights: bool = False) -> None:
        """Raise Diverged if a loss since the last check (or, with ``weights``, a weight) is not finite, on any rank."""
        networks = self.state.networks if weights else {}
        flags = [self.losses_finite] + [all_finite(network) for network in networks.values()]
        finite = self.context.all_true(torch.stack(flags))
        self.losses_finite = torch.ones((), dtype=torch.bool, device=self.device)
        since, self.checked_step = self.checked_step, step
        if not finite[0]:
            raise Diverged(step, "the losses", since)
        for name, ok in zip(networks, finite[1:]):
            if not ok:
                raise Diverged(step, f"the {name}'s weights")

    def evaluate(self, step: int, monitor: RunMonitor) -> None:
        """Score the task, log the scores, keep checkpoints/best.pt by its metric, and pass on its warnings."""
        results = self.trainer.evaluate()
        monitor.event({"event": "eval", "step": step} | results)
        scalars = {k: v for k, v in results.items() if isinstance(v, (int, float)) and k != "samples"}
        monitor.add_scalars("eval", scalars, step)
        best = self.run_dir / "checkpoints" / BEST
        metric = self.trainer.metric
        if results[metric] < self.best:
            self.best = results[metric]
            self.save(step, also_best=results)
        log.info(f"step {step:,}: {self.trainer.describe(results)}")
        for warning in self.trainer.watch(step, results):
            log.warning(f"{warning}; the best checkpoint is {best} ({metric} {self.best:.4g})")

    def recover(self, divergence: Diverged, monitor: RunMonitor) -> int:
        """Roll back to the last good checkpoint with halved learning rates, or stop; returns the step to go on from.

        Every rank gets here together (the finiteness checks are agreed) and reads the same checkpoint.
        """
        latest = self.context.from_main(latest_checkpoint(self.run_dir / "checkpoints"))  # the file rank 0 wrote
        rollbacks = self.state.rollbacks
        if self.config.on_nan == "stop" or rollbacks >= self.config.max_rollbacks or latest is None:
            why = "--on-nan stop" if self.config.on_nan == "stop" else f"{rollbacks} rollbacks already"
            raise GanforgeError(
                f"{divergence} ({why}); nothing non-finite was saved: the last good checkpoint is {latest}. "
                "Try a lower --lr"
            )
        self.state.load_state_dict(load_checkpoint(latest), str(latest))
        self.state.rollbacks = rollbacks + 1
        step = self.state.step
        self.checked_step = step
        monitor.discard(step)
        self.set_learning_rates(step)  # halved once more: the next step's rates
        lrs = {key: optimizer.param_groups[0]["lr"] for key, optimizer in self.state.optimizers.items()}
        rates = ", ".join(f"{key.upper()} {lr:.3g}" for key, lr in lrs.items())
        log.warning(
            f"{divergence}: rolled back to step {step:,} ({latest.name}) with learning rates "
            f"{rates} (rollback {self.state.rollbacks} of {self.config.max_rollbacks})"
        )
        rollback = {"event": "rollback", "at_step": divergence.step, "to_step": step}
        monitor.event(rollback | {f"{key}_lr": lr for key, lr in lrs.items()})
        return step

    def snapshot_due(self, step: int) -> bool:
        """Whether ``step`` is one whose checkpoint is kept for good."""
        return bool(self.config.snapshot_every) and step % self.config.snapshot_every == 0

    def save(self, step: int, also_best: dict | None = None) -> None:
        """Write the step's checkpoint (rank 0) and point checkpoints/latest at it.

        The caller has checked the weights (``check_finite``). ``also_best``:
        the evaluation that makes this checkpoint the best so far; it is copied to best.pt too.
        """
        if not self.is_main:
            return
        self.state.step = step
        config = config_to_dict(self.config)
        checkpoint = make_checkpoint(self.state.state_dict(), config, **self.trainer.checkpoint_extra())
        folder = self.run_dir / "checkpoints"
        save_run_checkpoint(folder, checkpoint, self.config.keep_checkpoints, self.config.snapshot_every)
        if also_best is not None:
            save_checkpoint(checkpoint | {"eval": also_best}, folder / BEST)

    def save_samples(self, step: int, monitor: RunMonitor) -> None:
        """The task's sample grid as samples/step_NNNNNNN.png (rank 0)."""
        if not self.is_main:
            return
        images, nrow = self.trainer.sample_grid()
        save_grid(images, self.run_dir / "samples" / f"step_{step:07d}.png", nrow)  # (64, C, H, W) uint8
        monitor.add_grid(make_grid(images, nrow=nrow, padding=2), step)
