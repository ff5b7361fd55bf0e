"""Writing files: whole or not at all, and never over a file the user did not offer.

Every file ganforge writes (checkpoints, config.yaml, grids, generated images
and arrays, GIFs, exports, cached features, plots) goes through
``atomic_write``: the bytes go to a temporary name beside the target and are
renamed over it only once complete, so a crash, a Ctrl-C or a full disk leaves
the old file or the new one, never half of one. ``refuse_to_replace`` is the
one rule for outputs that may already exist: a command replaces a file only
when the user passed ``--overwrite``.
"""

import os
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

from ganforge.errors import GanforgeError, UsageError

SHOWN = 3  # existing files named in a refusal
TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")  # atomic_write's temporary beside a target: .NAME.PID.tmp


def load_tensors(path: str | Path, **options):
    """``torch.load(path, weights_only=True)``: tensors and plain data only, never an unpickled object. A raw
    pickle of Python's default protocol (4) is refused like any other without torch's warning about it first."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, weights_only=True, **options)


class RecordingFile:
    """A binary file that remembers the first OSError its ``write`` raised.

    Writers built on C++ streams (``torch.save``'s zip writer) turn a full disk
    into ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``;
    the OSError underneath is the one the user needs to see.
    """

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def __getattr__(self, name):  # seek, tell, flush, fileno ...: the real file's
        return getattr(self.file, name)


def atomic_write(path: str | Path, write: Callable, durable: bool = True) -> Path:
    """Call ``write(file)`` on a temporary binary file beside ``path``, then rename it over ``path``.

    ``durable`` also fsyncs the file and its folder, so the rename survives a
    power cut (checkpoints, configs); a folder of thousands of generated PNGs
    skips that. A failed write (a full disk, a read-only folder) removes the
    temporary file, leaves any previous file untouched and raises one
    GanforgeError line saying so.
    """
    path = Path(path)
    existed = path.exists()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # TEMPORARY
    try:
        with open(temporary, "wb") as raw:
            file = RecordingFile(raw)
            try:
                write(file)
            except RuntimeError:
                if file.error is None:
                    raise  # not a disk error: a bug worth its traceback
                raise file.error from None
            raw.flush()
            if durable:
                os.fsync(raw.fileno())
        os.replace(temporary, path)
    except OSError as error:
        kept = "; the previous file is intact" if existed else ""
        raise GanforgeError(f"cannot write {path} ({error.strerror or error}){kept}") from None
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:  # a read-only folder refuses even this; the error above is the one to show
            pass
    if durable:
        sync_folder(path.parent)
    return path


def sync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable, where the platform can."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError:
        pass


def write_text(path: str | Path, text: str) -> Path:
    """``atomic_write`` of a UTF-8 text file."""
    return atomic_write(path, lambda file: file.write(text.encode()))


def refuse_to_replace(paths: Iterable[Path], overwrite: bool, flag: str = "--out", other: str = "") -> None:
    """Raise one line naming the files among ``paths`` that exist, unless ``overwrite``; ``other`` is one more
    way out, said before the last ("--skip-existing to keep them")."""
    if overwrite:
        return
    existing = [path for path in paths if path.exists()]
    if not existing:
        return
    names = ", ".join(str(path) for path in existing[:SHOWN])
    more = f" and {len(existing) - SHOWN:,} more" if len(existing) > SHOWN else ""
    raise UsageError(
        f"{flag} would replace {names}{more}: pass --overwrite to replace {'it' if len(existing) == 1 else 'them'}, "
        f"{other + ', ' if other else ''}or choose another {flag}"
    )
