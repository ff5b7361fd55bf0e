"""Checkpoints: one dict of plain data and tensors, written atomically, read safely.

A checkpoint holds everything needed to rebuild and continue a run: the model
name and constructor arguments (so the networks can be rebuilt without the
code that trained them), both networks' and both optimisers' states, the step,
the resolved config and the noise generator's state. It never holds pickled
classes, and it is only ever read with ``torch.load(weights_only=True)``.
"""

import json
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganforge.device import to_fast_layout
from ganforge.errors import GanforgeError, first_line
from ganforge.files import atomic_write
from ganforge.models import MODELS, build_generator
from ganforge.version import __version__

FORMAT = "ganforge-checkpoint"
FORMAT_VERSION = 2  # 2: optional ema_generator and classes; num_classes in the models' arguments
POINTER = "latest"  # a run's checkpoints/latest names its newest complete checkpoint file
BEST = "best.pt"  # checkpoints/best.pt: the checkpoint with the lowest FID of the periodic evaluations
HUB_FORMAT = "ganforge-generator"  # config.json's "format" in an export --format hub folder
HUB_CONFIG, HUB_WEIGHTS = "config.json", "model.safetensors"  # a Hugging Face model repository's layout


def make_checkpoint(state: dict, config: dict, **extra) -> dict:
    """The envelope around a train state's ``state_dict()``: format, version and the run's config.

    ``extra``: plain data about the run (the classes' names, the number of images).
    """
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ganforge_version": __version__,
        **state,
        "config": config,
        **extra,
    }


def upgrade_checkpoint(checkpoint: dict) -> dict:
    """A checkpoint of an older format in today's form, so that no reader needs to know the old ones.

    Format 1 (ganforge 0.1.0) had no class-conditional models, no EMA and no class names.
    """
    if checkpoint.get("format_version", 1) < 2:
        checkpoint = dict(checkpoint)
        for args in ("generator_args", "discriminator_args"):
            checkpoint[args] = {"num_classes": 0} | checkpoint[args]
        checkpoint["classes"] = checkpoint.get("classes") or []
        checkpoint["config"] = {"conditional": False, "ema": False} | checkpoint["config"]
        checkpoint["format_version"] = FORMAT_VERSION
    return checkpoint


def best_score(folder: Path, metric: str = "fid") -> float:
    """The score (``metric``: lower is better) of a run's checkpoints/best.pt, or infinity when it has none."""
    path = folder / BEST
    return load_checkpoint(path).get("eval", {}).get(metric, float("inf")) if path.is_file() else float("inf")


def checkpoint_name(step: int) -> str:
    """The file name of a run's checkpoint at ``step``."""
    return f"ckpt_{step:08d}.pt"


def checkpoint_step(path: Path) -> int:
    """The step a run's checkpoint file is named for (the inverse of ``checkpoint_name``)."""
    return int(path.stem.split("_")[1])


def save_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Write ``checkpoint`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(Path(path), lambda file: torch.save(checkpoint, file))


def save_run_checkpoint(folder: Path, checkpoint: dict, keep: int, keep_every: int = 0) -> Path:
    """Save a run's checkpoint as ckpt_<step>.pt, then point ``latest`` at it, then prune old ones.

    The pointer moves only once the file is complete. Pruning keeps the newest
    ``keep`` files and every one whose step is a multiple of ``keep_every``.
    """
    path = folder / checkpoint_name(checkpoint["step"])
    try:
        save_checkpoint(checkpoint, path)
    except GanforgeError as error:
        previous = latest_checkpoint(folder)
        kept = f"; the run's last checkpoint, {previous.name}, is intact" if previous and previous != path else ""
        raise GanforgeError(f"{error}{kept}") from None
    atomic_write(folder / POINTER, lambda file: file.write(f"{path.name}\n".encode()))
    for old in run_checkpoints(folder)[keep:]:
        step = checkpoint_step(old)
        if old != path and not (keep_every and step % keep_every == 0):
            old.unlink(missing_ok=True)
    return path


def run_checkpoints(folder: Path) -> list[Path]:
    """A run's checkpoint files, newest first. Temporary files are never among them."""
    return sorted(folder.glob("ckpt_*.pt"), reverse=True)


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint ``folder/latest`` names, else the newest ckpt_*.pt, else None."""
    try:
        named = folder / (folder / POINTER).read_text().strip()
        if named.name.startswith("ckpt_") and named.is_file():
            return named
    except OSError:
        pass
    files = run_checkpoints(folder)
    return files[0] if files else None


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint file, or a run directory -> its latest checkpoint."""
    source = Path(source)
    if source.is_dir():
        folder = source / "checkpoints" if (source / "checkpoints").is_dir() else source
        latest = latest_checkpoint(folder)
        if latest is None:
            raise GanforgeError(f"{source} holds no checkpoint (looked in {folder})")
        return latest
    if not source.is_file():
        raise GanforgeError(f"no such run directory or checkpoint: {source}")
    return source


def global_rng_state() -> dict:
    """Python's, NumPy's, torch's CPU and (where used) CUDA random states, as checkpoint-safe data."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # The device this process trains on: under torchrun, rank k's GPU k, whose state rank 0's matches.
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_global_rng_state(state: dict) -> None:
    """Restore what ``global_rng_state`` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]  # one state; older checkpoints held a list, one per GPU
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, list) else cuda)


def load_checkpoint(source: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a ganforge checkpoint (file or run directory) without unpickling any object."""
    path = resolve_checkpoint(source)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for foreign or corrupt files
        reason = first_line(error)
        if "Weights only load failed" in str(error):  # not torch's advice to unpickle it after all
            reason = "it holds pickled Python objects, which ganforge never unpickles"
        raise GanforgeError(f"{path} is not a readable ganforge checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise GanforgeError(f"{path} is not a ganforge checkpoint")
    if checkpoint.get("format_version", 0) > FORMAT_VERSION:
        raise GanforgeError(
            f"{path} was written by ganforge {checkpoint.get('ganforge_version', '?')} "
            f"(checkpoint format {checkpoint['format_version']}); upgrade ganforge to read it"
        )
    if checkpoint.get("model") not in MODELS:
        raise GanforgeError(f"{path} holds a model {checkpoint.get('model')!r} that this ganforge does not know")
    return upgrade_checkpoint(checkpoint)


def load_state(module: nn.Module, state: dict, what: str, path: str | Path) -> None:
    """``module.load_state_dict(state)`` with a one-line error when they do not match."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        detail = str(error).strip().splitlines()[0]
        raise GanforgeError(f"{path}: the {what} weights do not fit the architecture ({detail[:200]})") from None


def read_generator(source: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> dict:
    """Everything someone sampling a run needs, from one read of one checkpoint, as plain data.

    ``source`` (a run directory, a checkpoint file, or a folder written by
    ``export --format hub``) is resolved once, so a run
    still training cannot move its latest checkpoint between two reads. Returns
    ``path`` (the checkpoint read), ``generator`` (eval mode, on ``device``; with
    ``ema``, the moving average when the run kept one), ``config`` (the run's
    TrainConfig as a dict, empty when the checkpoint holds none), ``classes``
    (the training data's class names, possibly empty) and ``description``
    (``describe_generator``'s dict).
    """
    if is_hub_folder(source):
        return read_hub_folder(Path(source), device, ema)
    path = resolve_checkpoint(source)
    checkpoint = load_checkpoint(path)
    if checkpoint.get("task", "gan") != "gan":
        raise TranslationRunError(path, checkpoint["task"])
    which = "ema_generator" if ema and "ema_generator" in checkpoint else "generator"
    generator = rebuild_generator(checkpoint, checkpoint[which], which.replace("_", " "), path, device)
    return {
        "path": path,
        "generator": generator,
        "config": dict(checkpoint.get("config") or {}),
        "classes": list(checkpoint.get("classes") or []),
        "description": describe_generator(checkpoint, generator) | {"ema": which == "ema_generator"},
    }


class TranslationRunError(GanforgeError):
    """A command for noise-to-image generators was given a translation run (its ``path`` is the checkpoint)."""

    def __init__(self, path: Path, task: str):
        super().__init__(
            f"{path} is a {task} run: it translates images rather than sampling noise; "
            "use ganforge translate (or evaluate, serve, export) on it"
        )
        self.path, self.task = path, task


def read_translator(source: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> dict:
    """``read_generator``'s counterpart for a translation run (pix2pix, CycleGAN): one read of one checkpoint.

    Returns ``path``, ``generators`` (by direction, 'AtoB' and for CycleGAN 'BtoA'; eval mode, on ``device``;
    with ``ema``, each one's moving average when the run kept one), ``config`` (the run's TrainConfig as a
    dict) and ``task``.
    """
    path = resolve_checkpoint(source)
    checkpoint = load_checkpoint(path)
    if checkpoint.get("task", "gan") == "gan":
        raise GanforgeError(f"{path} is a noise-to-image GAN, not a translation run: use ganforge generate on it")
    generators = {}
    weights = checkpoint["ema_generators"] if ema and "ema_generators" in checkpoint else checkpoint["generators"]
    for direction, args in checkpoint["generator_args"].items():
        description = {"model": checkpoint["model"], "generator_args": args}
        state = weights[direction]
        generators[direction] = rebuild_generator(description, state, f"{direction} generator", path, device)
    return {"path": path, "generators": generators, "config": dict(checkpoint["config"]), "task": checkpoint["task"]}


def rebuild_generator(description: dict, state: dict, what: str, path: Path, device: str | torch.device) -> nn.Module:
    """The generator ``description["model"]`` with ``description["generator_args"]``, holding ``state``, in eval
    mode on ``device``."""
    try:
        generator = build_generator(description["model"], description["generator_args"])
    except (KeyError, TypeError, ValueError) as error:
        raise GanforgeError(f"{path}: cannot rebuild the {description.get('model')} generator ({error})") from None
    load_state(generator, state, what, path)
    return to_fast_layout(generator.to(device)).eval()


def is_hub_folder(source: str | Path) -> bool:
    """Whether ``source`` is a folder written by ``ganforge export --format hub``."""
    source = Path(source)
    return (source / HUB_CONFIG).is_file() and (source / HUB_WEIGHTS).is_file()


def read_hub_folder(folder: Path, device: str | torch.device = "cpu", ema: bool = True) -> dict:
    """``read_generator``'s dict from an ``export --format hub`` folder: config.json and model.safetensors.

    The folder holds one generator: the moving average when the run kept one, so ``ema=False`` is refused then.
    """
    config_path, weights_path = folder / HUB_CONFIG, folder / HUB_WEIGHTS
    try:
        description = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise GanforgeError(f"{config_path} does not read as JSON ({error})") from None
    if not isinstance(description, dict) or description.get("format") != HUB_FORMAT:
        raise GanforgeError(f"{config_path} is not the config.json of a ganforge generator")
    if description.get("model") not in MODELS:
        model = description.get("model")
        raise GanforgeError(f"{config_path} holds a model {model!r} that this ganforge does not know")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise GanforgeError(f'reading {weights_path} needs safetensors: pip install "ganforge[export]"') from None
    try:
        state = load_file(weights_path)
    except Exception as error:  # safetensors raises its own error types for a foreign or truncated file
        reason = first_line(error)
        raise GanforgeError(f"{weights_path} is not a readable safetensors file ({reason})") from None
    if not ema and description.get("ema"):
        raise GanforgeError(f"{folder} holds only the generator's moving average (EMA); --no-ema needs the run itself")
    generator = rebuild_generator(description, state, "generator", weights_path, device)
    return {
        "path": weights_path,
        "generator": generator,
        "config": dict(description.get("config") or {}),
        "classes": list(description.get("classes") or []),
        "description": describe_generator(description, generator) | {"ema": bool(description.get("ema"))},
    }


def load_generator(source: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> nn.Module:
    """The trained generator of a run directory or checkpoint, in eval mode on ``device``.

    With ``ema`` (the default), the generator's moving average when the run kept one.
    ``ganforge.load(source)`` gives it together with its config, classes and a ``sample`` method.

    >>> generator = load_generator("runs/my-run")
    >>> images = generator(torch.randn(16, generator.z_dim))  # (16, C, H, W)
    """
    return read_generator(source, device, ema)["generator"]


@torch.no_grad()
def describe_generator(checkpoint: dict, generator: nn.Module) -> dict:
    """Plain data about a checkpoint's generator: what someone sampling it, or using an export of it, needs.

    The image shape comes from one forward pass, so it holds for any architecture.
    """
    num_classes = getattr(generator, "num_classes", 0) or 0
    device = next(generator.parameters()).device
    inputs = [torch.zeros(1, generator.z_dim, device=device)]
    if num_classes:
        inputs.append(torch.zeros(1, dtype=torch.long, device=device))
    return {
        "model": checkpoint["model"],
        "generator_args": dict(checkpoint["generator_args"]),
        "z_dim": generator.z_dim,
        "num_classes": num_classes,
        "image_shape": list(generator(*inputs).shape[1:]),  # (C, H, W)
        "output_range": list(generator.output_range),
        "step": checkpoint.get("step", 0),
    }
