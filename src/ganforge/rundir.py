"""The run directory: what a run writes, and the rules that keep one run from clobbering another."""

import shutil
from pathlib import Path

from ganforge.checkpoint import latest_checkpoint
from ganforge.errors import GanforgeError, UsageError

ARTEFACTS = ("config.yaml", "metrics.jsonl", "checkpoints", "samples", "tensorboard")  # what a run writes


def is_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a ganforge run (its config or checkpoints)."""
    return (run_dir / "config.yaml").is_file() or (run_dir / "checkpoints").is_dir()


def check_new_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse, before any work, to start a new run where it would replace something."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} is a file, not a folder")
    if overwrite or not run_dir.is_dir():
        return
    if is_run(run_dir):
        raise UsageError(
            f"{run_dir} already holds a run: continue it with --resume {run_dir}, "
            "replace it with --overwrite, or choose another --out"
        )
    if any(run_dir.iterdir()):
        raise UsageError(f"{run_dir} exists and is not a ganforge run: choose another --out, or --overwrite to use it")


def prepare_run_dir(run_dir: Path, resuming: bool, overwrite: bool) -> Path:
    """Create the run directory; with ``overwrite``, first remove the run artefacts (only those) it holds."""
    if not resuming:
        check_new_run_dir(run_dir, overwrite)
        if overwrite:
            for name in ARTEFACTS:
                path = run_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    try:
        for sub in ("checkpoints", "samples"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanforgeError(f"cannot create run directory {run_dir}: {error.strerror or error}") from None
    return run_dir


def check_outside_data(run_dir: Path, data_paths: list[str | Path]) -> None:
    """Training never writes into its data: refuse an --out inside the data root or folder."""
    out = run_dir.resolve()
    for data in data_paths:
        if data and Path(data).is_dir() and out.is_relative_to(Path(data).resolve()):
            raise UsageError(f"--out {run_dir} lies inside the data at {data}: ganforge never writes into its data")


def resume_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a resume of ``run_dir`` starts from."""
    if not (run_dir / "config.yaml").is_file():
        raise GanforgeError(f"{run_dir} is not a ganforge run directory (no config.yaml)")
    latest = latest_checkpoint(run_dir / "checkpoints")
    if latest is None:
        raise GanforgeError(f"{run_dir} has no checkpoint to resume from")
    return latest
