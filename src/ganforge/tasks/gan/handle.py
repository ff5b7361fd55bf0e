"""A trained GAN run, loaded: ``TrainedGenerator`` (what ``ganforge.load`` returns for one), and the commands
that sample it: ``generate`` (grids, .npz files, PNG folders), ``export_dataset`` (a labelled synthetic dataset)
and ``interpolate`` (latent walks as a GIF). Each reads the run once, whatever it is given: a run directory, a
checkpoint, an exported folder or a handle.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ganforge.checkpoint import generator_weights, rebuild_generators
from ganforge.config import SERVE_MAX_N, dataset_noise_std
from ganforge.data import check_fits_in_memory
from ganforge.errors import GanforgeError, UsageError
from ganforge.files import refuse_to_replace
from ganforge.sampling import (
    MAX_FPS,
    MAX_FRAMES,
    MAX_WALKS,
    MIN_FPS,
    balanced_labels,
    check_noise_std,
    class_folder_names,
    generate_images,
    grid_columns,
    interpolation_frames,
    output_paths,
    png_paths,
    sample_noise,
    save_gif,
    write_images,
)
from ganforge.tasks import Trained, load
from ganforge.tasks.gan import GAN_TASK
from ganforge.tasks.gan.step import G

log = logging.getLogger("ganforge")


@dataclass(frozen=True)
class TrainedGenerator(Trained):
    """A trained GAN run: its generator and what was saved with it, from one read of one checkpoint
    (``ganforge.load``). It samples; ``evaluate``, ``app`` and ``export`` score, serve and export it.

    >>> gen = ganforge.load("runs/my-run")
    >>> images = gen.sample(64)  # (64, C, H, W) uint8; a conditional model's cycle through its classes
    """

    path: Path  # the checkpoint read: a run's latest is resolved once, when loading
    generator: nn.Module  # in eval mode, on the device asked for
    config: dict  # the run's TrainConfig as plain data (config.config_from_dict rebuilds it); {} if none was saved
    classes: list[str]  # the training data's class names, label order; [] when unknown
    description: dict  # describe_generator's: model, generator_args, z_dim, image_shape, ...
    task: ClassVar[str] = GAN_TASK.name
    export_formats: ClassVar[tuple[str, ...]] = ("pt2", "onnx", "safetensors", "hub", "torchscript")

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, path: Path, device: torch.device, ema: bool) -> "TrainedGenerator":
        """The handle of a GAN checkpoint (or exported folder): with ``ema``, the moving average when kept."""
        weights, averaged = generator_weights(checkpoint, ema, path)
        generator = rebuild_generators(checkpoint, weights, path, device)[G]
        description = describe_generator(checkpoint, generator) | {"ema": averaged}
        config, classes = dict(checkpoint.get("config") or {}), list(checkpoint.get("classes") or [])
        return cls(path, generator, config, classes, description)

    @property
    def z_dim(self) -> int:
        """The length of the generator's noise vector."""
        return self.description["z_dim"]

    @property
    def num_classes(self) -> int:
        """0 for an unconditional generator."""
        return self.description["num_classes"]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.description["image_shape"])

    def labels(self, n: int, labels: int | Sequence[int] | None = None) -> torch.Tensor | None:
        """(n,) labels: ``labels`` for every image (an int) or in turn (a sequence), default every class in turn.

        None for an unconditional generator, which takes no labels.
        """
        if labels is not None and not self.num_classes:
            raise GanforgeError(f"{self.path} holds an unconditional generator: it takes no --label/--labels")
        return balanced_labels(n, self.num_classes, [labels] if isinstance(labels, int) else labels)

    def sample(
        self,
        n: int,
        labels: int | Sequence[int] | None = None,  # conditional models: one class, or classes in turn (default: all)
        seed: int = 0,  # the same seed gives the same images as ``generate``
        dtype: torch.dtype | str = torch.uint8,  # "float" (or a float dtype): in the generator's output_range
        batch_size: int = 256,
        noise_std: float = 1.0,  # the noise's spread: below 1 more typical images, above 1 more varied ones
    ) -> torch.Tensor:
        """(n, C, H, W) images on the CPU: uint8 in [0, 255], or floats as the generator gives them."""
        if n < 1:
            raise GanforgeError(f"--n must be at least 1, got {n}")
        dtype = torch.float32 if dtype == "float" else dtype
        if not isinstance(dtype, torch.dtype):
            raise GanforgeError(f"dtype must be torch.uint8, 'float' or a float torch dtype, not {dtype!r}")
        noise = sample_noise(n, self.z_dim, seed, noise_std)  # (n, z_dim)
        return generate_images(self.generator, noise, batch_size, self.labels(n, labels), dtype)

    def evaluate(
        self,
        n: int = 10000,  # samples to score (and reference images to compare with)
        reference: str | None = None,  # dataset name, .npz or folder; None: the run's dataset
        seed: int = 0,  # noise seed
        cas: bool = False,  # also the Classification Accuracy Score (a conditional run's labelled samples)
        cas_epochs: int = 3,  # epochs of each CAS classifier
        features: str = "auto",  # mnist, cifar10, inception, swd; auto: by the images' shape
        data_root: str | None = None,  # torchvision data root holding the reference
        inception_weights: str | None = None,  # the Inception FID weights file (offline machines)
        extractor=None,  # a feature extractor of your own (``metrics.evaluation.evaluate_images``)
        cache: str | Path | None = None,  # folder for cached reference features
        noise_std: float | None = None,  # the noise's spread (``sample``); None: 1, and for CAS export_dataset's
    ) -> dict:
        """FID, KID, IS, precision/recall, class coverage, label accuracy and optionally CAS of ``n`` samples
        (``metrics.evaluation.evaluate_generator``), on the device the generator is on."""
        from ganforge.metrics.evaluation import evaluate_generator

        device = str(next(self.generator.parameters()).device)
        extra = dict(features=features, data_root=data_root, inception_weights=inception_weights)
        extra |= dict(extractor=extractor, cache=cache)
        return evaluate_generator(self, n, reference, seed, device, cas, cas_epochs, noise_std, **extra)

    def app(self, allowed_hosts: list[str] | None = None, max_n: int = SERVE_MAX_N):
        """The web page to explore it (``tasks/gan/web.py``): grids of up to ``max_n`` images a request."""
        from ganforge.tasks.gan.web import create_app

        return create_app(self, allowed_hosts=allowed_hosts, max_n=max_n)

    def export(self, format: str, out: Path, overwrite: bool = False, license: str = "other") -> Path:
        """Its generator as TorchScript, ONNX, safetensors or a hub folder (``tasks/gan/export.py``); ``license``
        goes into a hub folder's model card."""
        from ganforge.tasks.gan.export import export

        return export(self, format, Path(out), overwrite, license)


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
        "generator_args": dict(checkpoint["generator_args"][G]),
        "z_dim": generator.z_dim,
        "num_classes": num_classes,
        "image_shape": list(generator(*inputs).shape[1:]),  # (C, H, W)
        "output_range": list(generator.output_range),
        "step": checkpoint.get("step", 0),
    }


def load_generator(source: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> nn.Module:
    """The trained generator of a GAN run directory, checkpoint or exported folder, in eval mode on ``device``.

    With ``ema`` (the default), the generator's moving average when the run kept one.
    ``ganforge.load(source)`` gives it together with its config, classes and a ``sample`` method.

    >>> generator = load_generator("runs/my-run")  # the default recipe: conditional, 10 classes
    >>> labels = torch.arange(16) % generator.num_classes  # an unconditional model takes none
    >>> images = generator(torch.randn(16, generator.z_dim), labels)  # (16, C, H, W) floats
    """
    return load(source, device, ema, command="generate").generator


def generate(
    source: str | Path | Trained,
    n: int = 64,
    seed: int = 0,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 256,
    labels: int | Sequence[int] | None = None,  # conditional models: one class, or classes to cycle through
    ema: bool = True,  # sample the generator's moving average when the run kept one
    overwrite: bool = False,  # replace files already at ``out``
    noise_std: float = 1.0,  # the noise's spread: below 1 more typical images, above 1 more varied ones
) -> torch.Tensor:
    """Sample ``n`` images from a run directory, checkpoint or ``load``-ed generator; write them to ``out`` if given.

    Returns (n, C, H, W) uint8. The same seed gives the same images. A
    conditional model's images cycle through ``labels`` (default: every class);
    an .npz output then holds ``labels`` too. Files already at ``out`` are
    replaced only with ``overwrite`` (checked before any sampling).
    """
    if n < 1:
        raise GanforgeError(f"--n must be at least 1, got {n}")
    if out is not None:
        refuse_to_replace(output_paths(out, n), overwrite)
    model = load(source, device, ema=ema, command="generate")
    images = model.sample(n, labels, seed, batch_size=batch_size, noise_std=noise_std)
    if out is not None:
        chosen = [labels] if isinstance(labels, int) else labels
        columns = len(chosen) if chosen is not None and len(chosen) > 1 else grid_columns(n, model.num_classes)
        label_tensor = model.labels(n, labels)
        write_images(images, out, label_tensor, nrow=columns if label_tensor is not None else None, overwrite=overwrite)
    return images


def export_dataset(
    source: str | Path | Trained,
    out: str | Path,
    per_class: int = 1000,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 256,
    ema: bool = True,
    overwrite: bool = False,  # replace files already at ``out``
    noise_std: float | None = None,  # the noise's spread; None: ``config.dataset_noise_std`` (grayscale 1.5)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Write a labelled synthetic dataset from a conditional generator: ``per_class`` images of every class.

    ``out`` ending in .npz gets ``images`` (N, C, H, W) uint8 and ``labels`` (N,);
    any other path becomes a folder in ImageFolder layout, one subfolder per
    class (named as in the training data) holding PNGs. Returns (images, labels).
    """
    if per_class < 1:
        raise GanforgeError(f"--per-class must be at least 1, got {per_class}")
    if noise_std is not None:
        check_noise_std(noise_std)
    model = load(source, device, ema=ema, command="generate")
    if not model.num_classes:
        raise GanforgeError(f"{model.path} holds an unconditional generator: a labelled dataset needs --conditional")
    out = Path(out)
    folders = [] if out.suffix.lower() == ".npz" else class_folder_names(model.classes, model.num_classes)
    planned = [out] if not folders else [path for name in folders for path in png_paths(out / name, per_class)]
    refuse_to_replace(planned, overwrite)
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)  # (K * per_class,): class by class
    noise_std = dataset_noise_std(model.image_shape[0]) if noise_std is None else noise_std
    if noise_std != 1.0:
        log.info(
            f"drawing the noise at {noise_std:g}x the spread the generator trained on: more varied, less typical "
            "images (--noise-std 1 for the typical ones)"
        )
    noise = sample_noise(len(labels), model.z_dim, seed, noise_std)  # (N, z_dim)
    images = generate_images(model.generator, noise, batch_size, labels)
    if not folders:
        write_images(images, out, labels, overwrite=overwrite)
    for label, name in enumerate(folders):
        write_images(images[labels == label], f"{out / name}/", overwrite=overwrite)
    return images, labels


def interpolate(
    source: str | Path | Trained,
    out: str | Path = "walk.gif",
    steps: int = 60,
    n: int = 8,
    seed: int = 0,
    fps: float = 20.0,
    device: str = "auto",
    overwrite: bool = False,  # replace a file already at ``out``
) -> Path:
    """Write an animated GIF of ``n`` latent walks (per-class rows for a conditional model) of ``steps`` frames."""
    if not 2 <= steps <= MAX_FRAMES:
        raise UsageError(f"--steps must be between 2 and {MAX_FRAMES:,} frames, got {steps:,}")
    if not 1 <= n <= MAX_WALKS:
        raise UsageError(f"--n must be between 1 and {MAX_WALKS} walks, got {n:,}")
    if not MIN_FPS <= fps <= MAX_FPS:  # a GIF stores each frame's delay in 1/100 s, at most 655 s
        raise UsageError(f"--fps must be between {MIN_FPS} and {MAX_FPS}, got {fps}")
    if Path(out).suffix.lower() != ".gif":
        raise UsageError(f"--out {str(out)!r}: interpolate writes an animated .gif")
    refuse_to_replace([Path(out)], overwrite)
    model = load(source, device, command="interpolate")
    check_fits_in_memory(
        steps * n * max(model.num_classes, 1), *model.image_shape, "interpolate", "use fewer --steps or --n"
    )
    return save_gif(interpolation_frames(model.generator, steps, n, seed), out, fps)
