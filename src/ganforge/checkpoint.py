"""Checkpoints: one dict of plain data and tensors, written atomically, read safely.

A checkpoint holds everything needed to rebuild and continue a run: the model
name and constructor arguments (so the networks can be rebuilt without the
code that trained them), both networks' and both optimisers' states, the step,
the resolved config and the noise generator's state. It never holds pickled
classes, and it is only ever read with ``torch.load(weights_only=True)``.
"""

import os
from pathlib import Path

import torch
from torch import nn

from ganforge.device import to_fast_layout
from ganforge.errors import GanforgeError
from ganforge.models import MODELS, build_generator

FORMAT = "ganforge-checkpoint"
FORMAT_VERSION = 1
LATEST = "latest.pt"


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a temporary file, fsync, then rename.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    try:  # make the rename itself durable, where the platform can
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or a run directory -> its ``checkpoints/latest.pt``."""
    source = Path(source)
    if source.is_dir():
        for candidate in (source / "checkpoints" / LATEST, source / LATEST):
            if candidate.is_file():
                return candidate
        raise GanforgeError(f"{source} holds no checkpoint (looked for checkpoints/{LATEST})")
    if not source.is_file():
        raise GanforgeError(f"no such run directory or checkpoint: {source}")
    return source


def load_checkpoint(source: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a ganforge checkpoint (file or run directory) without unpickling any object."""
    path = resolve_checkpoint(source)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for foreign or corrupt files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise GanforgeError(f"{path} is not a readable ganforge checkpoint ({reason[:200]})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise GanforgeError(f"{path} is not a ganforge checkpoint")
    if checkpoint.get("format_version", 0) > FORMAT_VERSION:
        raise GanforgeError(
            f"{path} was written by ganforge {checkpoint.get('ganforge_version', '?')} "
            f"(checkpoint format {checkpoint['format_version']}); upgrade ganforge to read it"
        )
    if checkpoint.get("model") not in MODELS:
        raise GanforgeError(f"{path} holds a model {checkpoint.get('model')!r} that this ganforge does not know")
    return checkpoint


def load_state(module: nn.Module, state: dict, what: str, path: str | Path) -> None:
    """``module.load_state_dict(state)`` with a one-line error when they do not match."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        detail = str(error).strip().splitlines()[0]
        raise GanforgeError(f"{path}: the {what} weights do not fit the architecture ({detail[:200]})") from None


def load_generator(source: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained generator of a run directory or checkpoint, in eval mode on ``device``.

    >>> generator = load_generator("runs/my-run")
    >>> images = generator(torch.randn(16, generator.z_dim))  # (16, C, H, W)
    """
    checkpoint = load_checkpoint(source)
    try:
        generator = build_generator(checkpoint["model"], checkpoint["generator_args"])
    except (KeyError, TypeError, ValueError) as error:
        raise GanforgeError(f"{source}: cannot rebuild the {checkpoint['model']} generator ({error})") from None
    load_state(generator, checkpoint["generator"], "generator", source)
    return to_fast_layout(generator.to(device)).eval()
