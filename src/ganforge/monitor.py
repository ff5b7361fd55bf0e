"""Watching a run: progress bar, metrics.jsonl, TensorBoard, and stop signals."""

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganforge.errors import GanforgeError

log = logging.getLogger("ganforge")

D_WINS_BELOW = 0.02  # mean D(G(z)) under this means the discriminator rejects every fake
D_WINS_STEPS = 2000  # ... and for this many steps in a row is worth a warning
# What a report holds beside the statistics; threads: torch's count then, which follows the free cores on a CPU.
REPORT_KEYS = ("step", "epoch", "time", "images_per_sec", "threads")


class RunMonitor:
    """Sums per-step statistics on the device and reports them every ``log_every`` steps.

    Reading a tensor's value waits for the device, so values are read only at
    report time: the step itself never synchronises.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int | None,
        start_step: int,
        batch_size: int,
        steps_per_epoch: int,
        log_every: int,
        tensorboard: bool,
        progress: bool,
        writes: bool = True,  # False: only sums (ranks other than 0 of a torchrun run)
        watch_d: bool = True,  # warn when D(G(z)) stays near 0 (``watch_discriminator``)
        statistics: tuple = (),  # the task's ``Statistic``s: what the progress bar shows, and how (default: all)
    ):
        self.metrics_path = run_dir / "metrics.jsonl" if writes else Path(os.devnull)
        try:
            self.metrics_file = open(self.metrics_path, "a")
        except OSError as error:
            raise GanforgeError(f"cannot open {self.metrics_path} ({error.strerror or error})") from None
        self.batch_size, self.steps_per_epoch, self.log_every = batch_size, steps_per_epoch, log_every
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, disable=not progress)
        self.writer = TensorBoardLog.open(run_dir / "tensorboard") if tensorboard else None
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0  # steps since the last report
        self.counts: dict[str, int] = {}  # steps that reported each statistic (g_loss: generator steps only)
        self.started = self.last_time = time.monotonic()
        self.last_step = start_step
        self.last: dict = {}  # the latest report
        self.d_wins_since: int | None = None  # first step of the current stretch with D(G(z)) ~ 0
        self.watch_d = watch_d
        self.statistics = statistics
        self.last_eval: dict = {}  # the scores of the latest evaluation, for the HPARAMS view

    def step(self, step: int, stats: dict[str, torch.Tensor]) -> None:
        """Add one step's statistics; report when ``step`` is a multiple of ``log_every``."""
        for name, value in stats.items():
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
            self.counts[name] = self.counts.get(name, 0) + 1
        self.count += 1
        if step % self.log_every == 0:
            self.report(step)

    def report(self, step: int) -> None:
        """Write the averages since the last report to every sink."""
        if self.count == 0:
            return
        now = time.monotonic()
        record = {"step": step, "epoch": round(step / self.steps_per_epoch, 3), "time": round(now - self.started, 2)}
        record.update({name: round(value.item() / self.counts[name], 5) for name, value in self.sums.items()})
        record["images_per_sec"] = round((step - self.last_step) * self.batch_size / max(now - self.last_time, 1e-9), 1)
        record["threads"] = torch.get_num_threads()
        self.sums, self.counts, self.count, self.last_step, self.last_time, self.last = {}, {}, 0, step, now, record
        self.write_record(record)
        if self.writer is not None:
            self.writer.add_scalars(
                {f"train/{name}": value for name, value in record.items() if name not in ("step", "time")}, step
            )
        self.bar.set_postfix_str(f"{self.postfix(record)} {record['images_per_sec']:,.0f} img/s", refresh=False)
        self.bar.update(step - self.bar.n)
        if self.watch_d:
            self.watch_discriminator(step, record["d_fake"])

    def postfix(self, record: dict) -> str:
        """The progress bar's statistics, each by its short name: 'd_loss=0.693 ... D(x)=0.51'."""
        shown = [(s.short, s.name, ".2f" if s.range else ".3f") for s in self.statistics]
        shown = shown or [(name, name, ".3f") for name in record if name not in REPORT_KEYS]
        return " ".join(f"{short}={record.get(name, float('nan')):{spec}}" for short, name, spec in shown)

    def watch_discriminator(self, step: int, d_fake: float) -> None:
        """Warn once per stretch when the discriminator has won completely for D_WINS_STEPS steps."""
        if d_fake >= D_WINS_BELOW:
            self.d_wins_since = None
        elif self.d_wins_since is None:
            self.d_wins_since = step - self.log_every
        elif step - self.d_wins_since >= D_WINS_STEPS > step - self.log_every - self.d_wins_since:
            log.warning(
                f"D(G(z)) has stayed below {D_WINS_BELOW} for {step - self.d_wins_since:,} steps (step {step:,}): "
                "the discriminator rejects every fake and the generator learns little; look at the samples, "
                "and consider a lower discriminator learning rate or going back to an earlier checkpoint"
            )

    def add_scalars(self, prefix: str, values: dict, step: int) -> None:
        """Log numbers (an evaluation's scores, say) to TensorBoard as PREFIX/NAME."""
        if prefix == "eval":
            self.last_eval = dict(values)
        if self.writer is not None:
            self.writer.add_scalars({f"{prefix}/{name}": value for name, value in values.items()}, step)

    def discard(self, step: int) -> None:
        """Forget the statistics gathered since the last report (after a rollback to ``step``)."""
        self.sums, self.counts, self.count, self.last_step, self.last_time = {}, {}, 0, step, time.monotonic()
        self.bar.n = step
        self.bar.refresh()

    def event(self, record: dict) -> None:
        """Write a one-off record (a rollback, say) to metrics.jsonl."""
        self.write_record(record)

    def write_record(self, record: dict) -> None:
        """One line of metrics.jsonl, on disk at once (a full disk stops the run with one line)."""
        try:
            self.metrics_file.write(json.dumps(record) + "\n")
            self.metrics_file.flush()
        except OSError as error:
            raise GanforgeError(f"cannot write {self.metrics_path} ({error.strerror or error})") from None

    def add_grid(self, grid: torch.Tensor, step: int) -> None:
        """Log a (C, H, W) uint8 sample grid to TensorBoard."""
        if self.writer is not None:
            self.writer.add_image("train/samples", grid, step)

    def close(self, hyperparameters: dict | None = None) -> None:
        """Close the progress bar, metrics.jsonl and TensorBoard writer; with ``hyperparameters``, first record
        them in TensorBoard's HPARAMS view beside the run's last scores (its last evaluation, else its losses)."""
        if self.writer is not None and hyperparameters:
            scores = self.last_eval or {k: v for k, v in self.last.items() if k not in REPORT_KEYS}
            self.writer.add_hparams(hyperparameters, {f"final/{name}": value for name, value in scores.items()})
        self.bar.close()
        try:
            self.metrics_file.close()
        except OSError:  # its last line failed to flush, and write_record has said so
            pass
        if self.writer is not None:
            self.writer.close()


class TensorBoardLog:
    """TensorBoard's SummaryWriter as a side channel: when it cannot write, the run goes on without it.

    A full disk or a vanished folder gives one warning and stops the logging,
    never a traceback: the writer's thread raises into its own excepthook
    (silenced here for OSError) and again on the next call in the main thread,
    where it is caught.
    """

    def __init__(self, writer, log_dir: Path):
        self.writer, self.log_dir = writer, log_dir

    @classmethod
    def open(cls, log_dir: Path) -> "TensorBoardLog | None":
        """A log writing into ``log_dir`` (None when tensorboard is not installed)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
            return None
        quiet_writer_threads()
        board = cls(None, log_dir)
        try:
            board.writer = SummaryWriter(str(log_dir))
        except OSError as error:
            board.stop(error)
        return board

    def stop(self, error: OSError) -> None:
        log.warning(
            f"TensorBoard logging stopped: cannot write {self.log_dir} ({error.strerror or error}); the run goes on"
        )
        self.writer = None

    def guarded(self, call) -> None:
        try:
            call()
        except OSError as error:
            self.stop(error)

    def add_scalars(self, values: dict, step: int) -> None:
        if self.writer is not None:
            self.guarded(lambda: [self.writer.add_scalar(name, value, step) for name, value in values.items()])

    def add_image(self, tag: str, image: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.guarded(lambda: self.writer.add_image(tag, image, step))

    def add_hparams(self, hyperparameters: dict, scores: dict) -> None:
        """One row of TensorBoard's HPARAMS view, written into the run's own log folder."""
        if self.writer is not None:
            self.guarded(lambda: self.writer.add_hparams(hyperparameters, scores, run_name="."))

    def close(self) -> None:
        if self.writer is not None:
            self.guarded(self.writer.close)


def quiet_writer_threads() -> None:
    """Keep TensorBoard's writer thread from printing a traceback for an OSError (the main thread reports it)."""
    previous = threading.excepthook
    if getattr(previous, "ganforge", False):
        return

    def hook(args) -> None:
        if not (type(args.thread).__name__ == "_AsyncWriterThread" and issubclass(args.exc_type, OSError)):
            previous(args)

    hook.ganforge = True
    threading.excepthook = hook


def interrupt_now(signum, frame):
    """The command line's SIGINT handler until a training loop installs ``StopSignal``: KeyboardInterrupt, as
    Python's default, but remembered, so that a loop starting after a library swallowed it (a bare ``except:``
    around a lazy import) still stops at once instead of training on."""
    StopSignal.interrupted_early = True
    raise KeyboardInterrupt


def stop_if_interrupted_early() -> None:
    """Raise KeyboardInterrupt if ``interrupt_now`` saw a Ctrl-C during this command that something swallowed: a
    training loop on entering and a progress bar at each update stop, instead of running to their end."""
    if StopSignal.interrupted_early:
        raise KeyboardInterrupt


class StopSignal:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step.

    A second signal raises KeyboardInterrupt at once, unless it comes within
    ``repeat_grace`` seconds of the first: a scheduler (SLURM) may signal every
    process of a torchrun run and torchrun pass the signal on again, and that
    echo must not cut the final checkpoint short. Outside the main thread (where Python
    allows no handlers) it does nothing. A Ctrl-C that ``interrupt_now`` saw before the loop
    began, and that something swallowed, raises KeyboardInterrupt on entering.
    """

    interrupted_early = False  # set by interrupt_now

    def __init__(self, repeat_grace: float = 0.0):
        self.requested = False
        self.repeat_grace = repeat_grace  # seconds after the first signal in which a second is the same request
        self._first = 0.0
        self._previous = {}

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:
            if time.monotonic() - self._first < self.repeat_grace:
                return
            raise KeyboardInterrupt
        self.requested, self._first = True, time.monotonic()
        log.warning(f"{name} received: stopping after this step and saving a checkpoint (again to quit at once)")

    def __enter__(self):
        stop_if_interrupted_early()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


class CollapseWatch:
    """Reads periodic evaluations and says when a run looks collapsed or diverging.

    Two signs, each warned once per episode: FID above FID_RISE times its best
    for PATIENCE evaluations in a row; diversity falling sharply from its best
    (recall or the spread of the sample features below DIVERSITY_DROP times
    their best, or CLASSES_DROP or more classes lost).
    """

    FID_RISE = 1.5
    PATIENCE = 3
    DIVERSITY_DROP = 0.5
    CLASSES_DROP = 2

    def __init__(self):
        self.best: dict = {}  # best value of each score so far, and best_step for the FID
        self.fid_high = 0  # evaluations in a row with FID above FID_RISE x best
        self.diversity_warned = False

    def update(self, step: int, results: dict) -> list[str]:
        """Record one evaluation; returns the warnings it calls for."""
        warnings = []
        best_fid = self.best.get("fid", float("inf"))
        self.fid_high = self.fid_high + 1 if results["fid"] > self.FID_RISE * best_fid else 0
        if self.fid_high == self.PATIENCE:
            warnings.append(
                f"FID {results['fid']:.2f} has stayed above {self.FID_RISE}x its best ({best_fid:.2f}, step "
                f"{self.best['best_step']:,}) for {self.PATIENCE} evaluations: the run may be collapsing or diverging"
            )
        fell = [
            f"{name} {results[name]:.3g} (best {self.best[name]:.3g})"
            for name in ("recall", "feature_spread")
            if name in self.best and results[name] < self.DIVERSITY_DROP * self.best[name]
        ]
        if (
            "classes_covered" in self.best
            and results["classes_covered"] <= self.best["classes_covered"] - self.CLASSES_DROP
        ):
            fell.append(f"classes covered {results['classes_covered']} (best {self.best['classes_covered']})")
        if fell and not self.diversity_warned:
            warnings.append(
                f"sample diversity fell sharply at step {step:,}: {', '.join(fell)}; signs of mode collapse"
            )
        self.diversity_warned = bool(fell)
        if results["fid"] < best_fid:
            self.best.update(fid=results["fid"], best_step=step)
        for name in ("recall", "feature_spread", "classes_covered"):
            if name in results:
                self.best[name] = max(self.best.get(name, results[name]), results[name])
        return warnings
