"""The run directory: what a run writes, and the rules that keep one run from clobbering another."""

import logging
import os
import shutil
from pathlib import Path

from ganforge.checkpoint import BEST, POINTER, checkpoint_step, latest_checkpoint, load_checkpoint, run_checkpoints
from ganforge.config import read_config_values
from ganforge.errors import GanforgeError, UsageError

log = logging.getLogger("ganforge")

# What a run writes, as (path, glob of the files ganforge names there): --overwrite removes these and nothing else.
RUN_FILES = (
    ("config.yaml", None),
    ("metrics.jsonl", None),
    ("checkpoints", "ckpt_*.pt"),
    ("checkpoints", POINTER),
    ("checkpoints", BEST),
    ("checkpoints", ".*.tmp"),
    ("samples", "step_*.png"),
    ("samples", ".*.tmp"),
    ("tensorboard", "events.out.tfevents.*"),
    ("plots", "*.png"),
)
LOCK = ".lock"  # held (flock) by the one process writing the run; its text is that process's PID


def is_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a ganforge run: a checkpoint pointer, or a config.yaml that is a ganforge config."""
    if (run_dir / "checkpoints" / POINTER).is_file():
        return True
    try:
        return {"model", "data"} <= read_config_values(run_dir / "config.yaml").keys()
    except (OSError, GanforgeError):
        return False


def run_files(run_dir: Path) -> list[Path]:
    """The files in ``run_dir`` that a ganforge run wrote (by RUN_FILES)."""
    found = []
    for place, pattern in RUN_FILES:
        path = run_dir / place
        found += sorted(path.glob(pattern)) if pattern and path.is_dir() else [path] if path.is_file() else []
    return found


def occupied_names(run_dir: Path) -> list[str]:
    """The names a run writes (samples/, metrics.jsonl, ...) that already exist in a folder that is not a run."""
    return sorted({place + ("/" if pattern else "") for place, pattern in RUN_FILES if (run_dir / place).exists()})


def check_new_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse, before any work, to start a new run where it would replace something."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} is a file, not a folder")
    if not run_dir.is_dir():
        return
    if is_run(run_dir):
        if not overwrite:
            raise UsageError(
                f"{run_dir} already holds a run: continue it with --resume {run_dir}, "
                "replace it with --overwrite, or choose another --out"
            )
        return
    if overwrite and occupied_names(run_dir):  # the user's own samples/, metrics.jsonl ...: never ganforge's to remove
        raise UsageError(
            f"{run_dir} is not a ganforge run, and it holds {', '.join(occupied_names(run_dir))}, which a run "
            "would write into: choose another --out"
        )
    if not overwrite and any(path.name != LOCK for path in run_dir.iterdir()):
        raise UsageError(f"{run_dir} exists and is not a ganforge run: choose another --out, or --overwrite to use it")


def remove_run_files(run_dir: Path) -> None:
    """Remove what a run wrote in ``run_dir`` (RUN_FILES), and its folders once empty; keep everything else."""
    for path in run_files(run_dir):
        path.unlink(missing_ok=True)
    kept = []
    for place in dict.fromkeys(place for place, pattern in RUN_FILES if pattern):
        folder = run_dir / place
        if folder.is_dir():
            left = [path for path in folder.rglob("*") if path.is_file()]
            kept += left
            if not left:
                shutil.rmtree(folder)
    if kept:
        log.warning(f"kept {len(kept)} files in {run_dir} that ganforge did not write, e.g. {kept[0]}")


def prepare_run_dir(run_dir: Path, resuming: bool, overwrite: bool) -> Path:
    """Create the run directory; with ``overwrite``, first remove what an earlier run wrote there (only that)."""
    if not resuming:
        check_new_run_dir(run_dir, overwrite)
        if overwrite and is_run(run_dir):
            remove_run_files(run_dir)
    try:
        for sub in ("checkpoints", "samples"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanforgeError(f"cannot create run directory {run_dir}: {error.strerror or error}") from None
    return run_dir


def open_run_dir(run_dir: Path, resuming: bool, overwrite: bool) -> "RunLock":
    """Create and lock the run directory, then prepare it (``prepare_run_dir``); returns the held lock.

    The lock comes first, so that ``--overwrite`` never removes the files of a
    run another process is still writing.
    """
    existed = run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanforgeError(f"cannot create run directory {run_dir}: {error.strerror or error}") from None
    lock = RunLock(run_dir, created=not existed).acquire()
    try:
        prepare_run_dir(run_dir, resuming, overwrite)
    except BaseException:
        lock.release()
        discard_unstarted_run(run_dir, lock.created)
        raise
    return lock


def discard_unstarted_run(run_dir: Path, remove_folder: bool) -> None:
    """After a new run failed before its first training step was saved: remove what it wrote (and, with
    ``remove_folder``, the folder it created, if nothing else is there).

    A run with a checkpoint past step 0 is kept: that is work to resume.
    """
    if any(checkpoint_step(path) > 0 for path in run_checkpoints(run_dir / "checkpoints")):
        return
    remove_run_files(run_dir)
    (run_dir / LOCK).unlink(missing_ok=True)
    if remove_folder:
        try:
            run_dir.rmdir()  # only if nothing else is there
        except OSError:
            pass


class RunLock:
    """One writer per run: an exclusive ``flock`` on RUN/.lock, held until the process ends.

    The operating system drops the lock when its process dies, so a SIGKILLed
    run never blocks the next one. A second ``train``/``resume`` of the same
    run gets one line naming the PID that holds it. Where ``fcntl`` does not
    exist (Windows) nothing is locked.
    """

    def __init__(self, run_dir: Path, created: bool = False):
        self.path, self.file = run_dir / LOCK, None
        self.created = created  # whether this run created the folder (and may remove it if it fails at once)

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:
            return self
        try:
            self.file = open(self.path, "a+")
        except OSError as error:
            raise GanforgeError(f"cannot create {self.path}: {error.strerror or error}") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            raise GanforgeError(
                f"{self.path.parent} is being written by another ganforge process (PID {holder}): "
                "wait for it to finish, or stop it, before training or resuming this run"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()
        return self

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing drops the flock
            self.file = None


def check_outside_data(run_dir: Path, data_paths: list[str | Path]) -> None:
    """Training never writes into its data: refuse an --out inside the data root or folder."""
    out = run_dir.resolve()
    for data in data_paths:
        if data and Path(data).is_dir() and out.is_relative_to(Path(data).resolve()):
            raise UsageError(f"--out {run_dir} lies inside the data at {data}: ganforge never writes into its data")


def resume_checkpoint(run_dir: Path) -> tuple[Path, dict]:
    """(path, contents) of the checkpoint a resume of ``run_dir`` starts from: the newest one that reads.

    A newest checkpoint that does not read (a disk that failed under it, a
    copy cut short) is passed over for the newest intact earlier one, with a
    warning naming both; the run then retrains the steps between them.
    """
    if not (run_dir / "config.yaml").is_file():
        raise GanforgeError(f"{run_dir} is not a ganforge run directory (no config.yaml)")
    latest = latest_checkpoint(run_dir / "checkpoints")
    if latest is None:
        raise GanforgeError(f"{run_dir} has no checkpoint to resume from")
    try:
        return latest, load_checkpoint(latest)
    except GanforgeError as error:
        broken = error
    for path in run_checkpoints(run_dir / "checkpoints"):
        if path == latest:
            continue
        try:
            checkpoint = load_checkpoint(path)
        except GanforgeError:
            continue
        log.warning(f"{broken}: resuming from {path.name} instead, the newest checkpoint that reads")
        return path, checkpoint
    raise GanforgeError(f"{broken}, and the run has no earlier checkpoint that reads")
