"""Checkpoints: one dict of plain data and tensors, written atomically, read safely.

A checkpoint holds everything needed to rebuild and continue a run: its task,
the model name and every network's constructor arguments (so the networks can
be rebuilt without the code that trained them), the networks', optimisers' and
loss scalers' states, the step, the resolved config and the random streams
(``training.state.TrainState.state_dict``). It never holds pickled classes,
and it is only ever read with ``torch.load(weights_only=True)``. Checkpoints
of older formats are upgraded on reading (``upgrade_checkpoint``), and a folder
written by ``export --format hub`` reads as a checkpoint of its one set of
weights (``read_hub_folder``), so no reader needs to know either.
"""

import json
import logging
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganforge.config import config_to_dict, upgrade_config
from ganforge.device import to_fast_layout
from ganforge.errors import GanforgeError, first_line
from ganforge.files import atomic_write, load_tensors
from ganforge.models import MODELS, build_generator
from ganforge.pretrained import PRETRAINED, card, pretrained_file
from ganforge.settings import short
from ganforge.tasks import DEFAULT_TASK
from ganforge.version import __version__

log = logging.getLogger("ganforge")

FORMAT = "ganforge-checkpoint"
# 2: optional ema_generator and classes; num_classes in the models' arguments.
# 3: the task; networks, their arguments, averages, optimisers and scalers by name; the task's extras; the
#    config in sections.
FORMAT_VERSION = 3
POINTER = "latest"  # a run's checkpoints/latest names its newest complete checkpoint file
BEST = "best.pt"  # checkpoints/best.pt: the checkpoint with the best score of the periodic evaluations
HUB_FORMATS = ("ganforge-generator", "ganforge-translator")  # config.json's "format" in an export --format hub folder
HUB_CONFIG, HUB_WEIGHTS = "config.json", "model.safetensors"  # a Hugging Face model repository's layout


def make_checkpoint(state: dict, config: dict, **extra) -> dict:
    """The envelope around a train state's ``state_dict()``: format, version and the run's config.

    ``extra``: plain data about the run (the classes' names).
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

    Format 1 (ganforge 0.1.0) had no class-conditional models, no EMA and no class names. Format 2 had no task
    where it was a noise-to-image run, whose one generator, discriminator, average, optimisers and scalers were
    keys of their own, and a flat config.
    """
    checkpoint = dict(checkpoint)
    if checkpoint.get("format_version", 1) < 2:
        for args in ("generator_args", "discriminator_args"):
            checkpoint[args] = {"num_classes": 0} | checkpoint[args]
        checkpoint["classes"] = checkpoint.get("classes") or []
        checkpoint["config"] = {"conditional": False, "ema": False} | checkpoint.get("config", {})
    if checkpoint.get("format_version", 1) < 3:
        if "generators" not in checkpoint:  # one network of each kind, each under its own key
            for kind in ("generator", "discriminator"):
                if kind in checkpoint:
                    checkpoint[f"{kind}s"] = {kind: checkpoint.pop(kind)}
                if f"{kind}_args" in checkpoint:
                    checkpoint[f"{kind}_args"] = {kind: checkpoint[f"{kind}_args"]}
            if "ema_generator" in checkpoint:
                checkpoint["ema_generators"] = {"generator": checkpoint.pop("ema_generator")}
        for part in ("optimizer", "scaler"):
            saved = {key: checkpoint.pop(f"{key}_{part}") for key in ("g", "d") if f"{key}_{part}" in checkpoint}
            if saved:
                checkpoint[f"{part}s"] = saved
        checkpoint["extras"] = {"pools": checkpoint.pop("pools")} if "pools" in checkpoint else {}
        checkpoint.setdefault("task", DEFAULT_TASK)
    if "config" in checkpoint:
        checkpoint["config"] = config_to_dict(upgrade_config(checkpoint["config"])) if checkpoint["config"] else {}
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
        raise GanforgeError(
            f"no such run directory or checkpoint: {source} (pretrained models by name: {', '.join(PRETRAINED)})"
        )
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


def is_pickle(path: Path) -> bool:
    """Whether the file at ``path`` starts as a pickle of protocol 2 or later does (PROTO, then its number)."""
    with open(path, "rb") as file:
        head = file.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load_checkpoint(source: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a ganforge checkpoint (file or run directory) without unpickling any object."""
    path = resolve_checkpoint(source)
    try:
        checkpoint = load_tensors(path, map_location=map_location)
    except Exception as error:  # torch raises several types for foreign or corrupt files
        reason = first_line(error)
        if "Weights only load failed" in str(error):  # not torch's advice to unpickle it after all
            reason = (
                "it holds pickled Python objects, which ganforge never unpickles"
                if is_pickle(path)
                else "its bytes are neither a torch file nor a pickle"
            )
        raise GanforgeError(f"{path} is not a readable ganforge checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise GanforgeError(f"{path} is not a ganforge checkpoint")
    if checkpoint.get("format_version", 0) > FORMAT_VERSION:
        raise GanforgeError(
            f"{path} was written by ganforge {checkpoint.get('ganforge_version', '?')} "
            f"(checkpoint format {checkpoint['format_version']}); upgrade ganforge to read it"
        )
    if checkpoint.get("model") not in MODELS:
        raise GanforgeError(f"{path} holds a model {short(checkpoint.get('model'))} that this ganforge does not know")
    checkpoint = upgrade_checkpoint(checkpoint)
    args, weights = checkpoint.get("generator_args"), checkpoint.get("generators")
    if not (isinstance(args, dict) and isinstance(weights, dict) and args and set(args) <= set(weights)):
        raise GanforgeError(f"{path} is a ganforge checkpoint without its generators' weights: nothing to load")
    return checkpoint


def load_state(module: nn.Module, state: dict, what: str, path: str | Path) -> None:
    """``module.load_state_dict(state)`` with a one-line error when they do not match."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        detail = str(error).strip().splitlines()[0]
        raise GanforgeError(f"{path}: the {what} weights do not fit the architecture ({detail[:200]})") from None


def generator_weights(checkpoint: dict, ema: bool, path: Path) -> tuple[dict[str, dict], bool]:
    """(each generator's weights by name, whether they are moving averages): with ``ema``, the averages where the
    run kept them. An exported folder holds one set, the averages where the run kept them (then ``ema`` False
    is refused)."""
    if "exported_ema" in checkpoint:
        if not ema and checkpoint["exported_ema"]:
            raise GanforgeError(
                f"{path.parent} holds only the generators' moving average (EMA); --no-ema needs the run itself"
            )
        return checkpoint["generators"], checkpoint["exported_ema"]
    if ema and "ema_generators" in checkpoint:
        return checkpoint["ema_generators"], True
    return checkpoint["generators"], False


def rebuild_generators(
    checkpoint: dict, weights: dict[str, dict], path: Path, device: str | torch.device
) -> dict[str, nn.Module]:
    """Each generator of ``checkpoint`` (its ``model``, its ``generator_args``) holding ``weights``, in eval mode
    on ``device``."""
    model, generators = checkpoint["model"], {}
    for name, args in checkpoint["generator_args"].items():
        what = name if "generator" in name else f"{name} generator"
        try:
            generator = build_generator(model, args)
        except (KeyError, TypeError, ValueError) as error:
            raise GanforgeError(f"{path}: cannot rebuild the {model} {what} ({error})") from None
        if name not in weights:
            raise GanforgeError(f"{path} holds no weights of the {what}")
        load_state(generator, weights[name], what, path)
        generators[name] = to_fast_layout(generator.to(device)).eval()
    return generators


def read_source(source: str | Path) -> tuple[dict, Path]:
    """(checkpoint, the file read) of a run directory, a checkpoint file or an ``export --format hub`` folder,
    each read once: a run still training cannot move its latest checkpoint between two reads. A name of
    ``pretrained.PRETRAINED`` that is no path reads the generator shipped in the package."""
    shipped = pretrained_file(source) if isinstance(source, str) else None
    if shipped is not None:
        log.info(f"{source}: ganforge's pretrained {PRETRAINED[source]} (how it was made: {card(source)})")
        return load_checkpoint(shipped), shipped
    if is_hub_folder(source):
        return read_hub_folder(Path(source))
    path = resolve_checkpoint(source)
    return load_checkpoint(path), path


def is_hub_folder(source: str | Path) -> bool:
    """Whether ``source`` is a folder written by ``ganforge export --format hub``."""
    source = Path(source)
    return (source / HUB_CONFIG).is_file() and (source / HUB_WEIGHTS).is_file()


def read_weights(path: Path, load_file) -> dict:
    """The tensors of a safetensors file (``load_file``: safetensors' reader), or one line saying why not."""
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own error types for a foreign or truncated file
        raise GanforgeError(f"{path} is not a readable safetensors file ({first_line(error)})") from None


def read_hub_folder(folder: Path) -> tuple[dict, Path]:
    """(a checkpoint of the one set of weights, the weights file) of an ``export --format hub`` folder:
    config.json (the task, model, constructor arguments, config; older GAN exports: no task, and one
    generator's arguments) and model.safetensors (one generator's weights, or several prefixed by name)."""
    config_path, weights_path = folder / HUB_CONFIG, folder / HUB_WEIGHTS
    try:
        description = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise GanforgeError(f"{config_path} does not read as JSON ({first_line(error)})") from None
    if not isinstance(description, dict) or description.get("format") not in HUB_FORMATS:
        raise GanforgeError(f"{config_path} is not the config.json of a ganforge model")
    if description.get("model") not in MODELS:
        model = description.get("model")
        raise GanforgeError(f"{config_path} holds a model {model!r} that this ganforge does not know")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise GanforgeError(f'reading {weights_path} needs safetensors: pip install "ganforge[export]"') from None
    state = read_weights(weights_path, load_file)
    args = description.get("generator_args") or {}
    if not all(isinstance(value, dict) for value in args.values()):  # one generator's arguments, not by name
        args = {"generator": args}
    first, *others = args
    if others and all(key.startswith(tuple(f"{name}." for name in args)) for key in state):  # one file, prefixed
        weights = {
            name: {key.removeprefix(f"{name}."): t for key, t in state.items() if key.startswith(f"{name}.")}
            for name in args
        }
    else:  # the first network's weights, each other one's in a subfolder of its name (BtoA/, say)
        weights = {first: state} | {name: read_weights(folder / name / HUB_WEIGHTS, load_file) for name in others}
    checkpoint = {
        "task": description.get("task", DEFAULT_TASK),
        "model": description["model"],
        "generator_args": args,
        "generators": weights,
        "exported_ema": bool(description.get("ema")),
        "config": config_to_dict(upgrade_config(description["config"])) if description.get("config") else {},
        "classes": list(description.get("classes") or []),
        "side_by_side": description.get("side_by_side"),
        "step": description.get("step", 0),
    }
    return checkpoint, weights_path
