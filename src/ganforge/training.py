"""The training loop: alternating discriminator and generator updates on in-memory data.

Read ``training_step`` first: it is the algorithm box of Goodfellow et al.
(2014), one generator forward shared by both updates as in the DCGAN reference
code, with the variants as parameters of a ``Recipe``: the loss (and its
gradient penalty), R1, several critic updates per generator update,
DiffAugment, and the generator's moving average (EMA). ``train`` only
orchestrates: data, models, optimisers, then steps, with reports, sample grids
and checkpoints on their cadences.
"""

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import make_grid

from ganforge import __version__, distributed
from ganforge.augment import diff_augment, parse_policy
from ganforge.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    global_rng_state,
    latest_checkpoint,
    load_checkpoint,
    load_state,
    save_checkpoint,
    save_run_checkpoint,
    set_global_rng_state,
)
from ganforge.config import (
    BUILTIN_DATASETS,
    DEFAULT_EPOCHS,
    DEFAULT_HOLDOUT,
    TrainConfig,
    flag,
    load_config,
    parse_interval,
    save_config,
)
from ganforge.data import (
    EpochSampler,
    ImageDataset,
    default_data_root,
    load_dataset,
    scale_images,
    split_holdout,
)
from ganforge.device import autocast, compile_module, grad_scaler, resolve_device, to_fast_layout
from ganforge.distributed import Distributed
from ganforge.ema import EMA
from ganforge.errors import GanforgeError, UsageError
from ganforge.losses import LOSSES, GANLoss, gradient_penalty, r1_penalty
from ganforge.metrics.evaluation import PeriodicEvaluator
from ganforge.models import MODELS, build_discriminator, build_generator
from ganforge.monitor import CollapseWatch, RunMonitor, StopSignal
from ganforge.rundir import check_new_run_dir, check_outside_data, prepare_run_dir, resume_checkpoint
from ganforge.sampling import balanced_labels, generate_images, grid_columns, sample_noise, save_grid

log = logging.getLogger("ganforge")

GRID_SIZE = 64  # images in each fixed-noise sample grid
ON_DEVICE_LIMIT = 2**30  # bytes of uint8 data kept on an accelerator rather than in host memory
BEST = "best.pt"  # checkpoints/best.pt: the checkpoint with the lowest FID of the periodic evaluations
STOP_ECHO_SECONDS = 5.0  # under torchrun, a second stop signal this soon after the first is torchrun's echo
NAN_LR_FACTOR = 0.5  # learning rates are multiplied by this at each rollback after a divergence
# Settings a resumed run may change; the rest would make it a different run.
RESUMABLE = (
    "data_root",
    "download",
    "epochs",
    "steps",
    "minutes",
    "device",
    "compile",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "snapshot_every",
    "keep_checkpoints",
    "on_nan",
    "max_rollbacks",
    "eval_every",
    "eval_samples",
    "tensorboard",
    "progress",
)


# ---------------------------------------------------------------- the step


@dataclass
class Batch:
    """One step's inputs: real images (and labels) and the noise (and labels) of the fakes."""

    real: torch.Tensor  # (B, C, H, W) float, in the generator's output range
    z: torch.Tensor  # (B, z_dim)
    real_labels: torch.Tensor | None = None  # (B,) int64, for conditional models
    fake_labels: torch.Tensor | None = None  # (B,) int64: the classes the generator is asked for


@dataclass
class Recipe:
    """How each step trains: the loss, its regularisers and the update schedule."""

    loss: GANLoss
    amp: contextlib.AbstractContextManager  # autocast for the forward passes, or a null context
    world_size: int = 1  # processes that share each batch (DDP): the EMA counts all their images
    n_critic: int = 1  # discriminator updates per generator update
    r1_gamma: float = 0.0  # R1 weight (0: off)
    r1_every: int = 16  # lazy R1: every this many steps, scaled by it
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None  # DiffAugment, applied to everything D sees

    def view(self, images: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees of ``images``: augmented when DiffAugment is on."""
        return images if self.augment is None else self.augment(images)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Backpropagate ``loss`` and update: through the loss scaler, which only passes through unless 16-mixed."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)  # skipped when float16 gradients overflowed
    scaler.update()


def discriminator_step(models: "Models", recipe: Recipe, batch: Batch, fake: torch.Tensor, step: int) -> tuple:
    """Push D(x) up and D(G(z)) down (plus the gradient penalty or R1). The fakes are detached."""
    discriminator, loss = models.train_discriminator, recipe.loss
    with_r1 = recipe.r1_gamma > 0 and step % recipe.r1_every == 0
    real = batch.real.detach().requires_grad_(with_r1)
    with recipe.amp:
        real_logits = discriminator(recipe.view(real), batch.real_labels)  # (B,)
        fake_logits = discriminator(recipe.view(fake.detach()), batch.fake_labels)  # (B,)
    d_loss = loss.discriminator(real_logits.float(), fake_logits.float())
    penalty = torch.zeros((), device=real.device)
    if loss.gradient_penalty:
        critic = functools.partial(discriminator, labels=batch.real_labels)
        penalty = penalty + loss.gradient_penalty * gradient_penalty(critic, batch.real, fake.detach())
    if with_r1:
        # Under 16-mixed, R1's gradient goes through float16 layers: scale it as the loss is scaled.
        grad_scale = models.d_scaler.scale(torch.ones((), device=real.device))
        penalty = penalty + (recipe.r1_gamma / 2) * recipe.r1_every * r1_penalty(real_logits, real, grad_scale)
    optimizer_step(d_loss + penalty, models.d_optimizer, models.d_scaler)
    return d_loss, real_logits, fake_logits


def generator_step(models: "Models", recipe: Recipe, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
    """Push the updated discriminator's D(G(z)) up. D's weights are frozen for this pass.

    D runs without its DDP wrapper here: nothing of D is updated, so nothing of D is synchronised.
    """
    models.discriminator.requires_grad_(False)
    with recipe.amp:
        fake_logits = models.frozen_discriminator(recipe.view(fake), batch.fake_labels)  # (B,)
    g_loss = recipe.loss.generator(fake_logits.float())
    optimizer_step(g_loss, models.g_optimizer, models.g_scaler)
    models.discriminator.requires_grad_(True)
    return g_loss


def training_step(models: "Models", recipe: Recipe, batch: Batch, step: int) -> dict:
    """One discriminator update; then, every ``n_critic``-th step, one generator update on the same fakes.

    ``step`` counts discriminator updates from 0. Returns detached scalar
    tensors: d_loss, g_loss (on generator steps), d_real = mean D(x) and
    d_fake = mean D(G(z)) (as probabilities, before D's update).
    """
    update_generator = (step + 1) % recipe.n_critic == 0
    with recipe.amp, torch.set_grad_enabled(update_generator):
        fake = models.train_generator(batch.z, batch.fake_labels)  # (B, C, H, W)
    d_loss, real_logits, fake_logits = discriminator_step(models, recipe, batch, fake, step)
    stats = {
        "d_loss": d_loss.detach(),
        "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach().float()).mean(),
    }
    if update_generator:
        stats["g_loss"] = generator_step(models, recipe, batch, fake).detach()
        if models.ema is not None:
            batch_size = batch.z.shape[0] * recipe.world_size
            models.ema.update(models.generator, batch_size, images_seen=(step + 1) * batch_size)
    return stats


# ---------------------------------------------------------------- the run


@dataclass
class TrainResult:
    """What ``train`` leaves behind."""

    run_dir: Path
    step: int  # steps trained in total, over every invocation
    generator: nn.Module
    discriminator: nn.Module
    stopped_early: bool  # by a signal or --minutes, before the run's total steps


@dataclass
class Models:
    """The networks and optimisers of a run, with the arguments that rebuild them."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    generator_args: dict
    discriminator_args: dict
    g_scaler: torch.amp.GradScaler  # loss scaling under 16-mixed; a pass-through otherwise
    d_scaler: torch.amp.GradScaler
    ema: EMA | None = None  # the generator's moving average, with --ema
    # What the step calls: the networks above, or their compiled and DDP wrappers (``wrap_for_training``).
    # Checkpoints and samples always use the plain networks.
    train_generator: nn.Module | None = None  # None: the generator itself
    train_discriminator: nn.Module | None = None  # for D's update
    frozen_discriminator: nn.Module | None = None  # for G's update: compiled, but never DDP (D is not updated)

    def __post_init__(self):
        for wrapper, plain in (
            ("train_generator", self.generator),
            ("train_discriminator", self.discriminator),
            ("frozen_discriminator", self.discriminator),
        ):
            if getattr(self, wrapper) is None:
                setattr(self, wrapper, plain)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples and scores: the moving average when there is one."""
        return self.ema.generator if self.ema is not None else self.generator


def build_models(config: TrainConfig, device: torch.device, num_classes: int = 0) -> Models:
    """Both networks (initialised from ``config.seed``), their Adam optimisers and the EMA if asked for."""
    shape = dict(width=config.width, channels=config.channels, image_size=config.image_size, num_classes=num_classes)
    generator_args, discriminator_args = dict(z_dim=config.z_dim, **shape), shape
    torch.manual_seed(config.seed)
    try:
        generator = to_fast_layout(build_generator(config.model, generator_args).to(device))
        discriminator = to_fast_layout(build_discriminator(config.model, discriminator_args).to(device))
    except ValueError as error:
        raise UsageError(str(error)) from None
    betas = (config.beta1, config.beta2)
    fused = True if device.type == "cuda" else None  # one kernel per update on GPUs; PyTorch's default elsewhere
    return Models(
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), lr=config.g_lr, betas=betas, fused=fused),
        torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=betas, fused=fused),
        generator_args,
        discriminator_args,
        grad_scaler(device, config.precision),
        grad_scaler(device, config.precision),
        EMA(generator, config.ema_half_life, config.ema_warmup) if config.ema else None,
    )


def wrap_for_training(models: Models, config: TrainConfig, context: Distributed, device: torch.device) -> None:
    """Set the networks the step calls: SyncBatchNorm (--sync-bn), then torch.compile (--compile), then DDP.

    Compiling before wrapping in DDP is the order DDP's graph-break
    optimiser expects (as in nanoGPT). The plain networks stay in ``models``
    for checkpoints, samples and the EMA.
    """
    if config.sync_bn and context.enabled:
        if device.type != "cuda":
            raise UsageError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        for name in ("generator", "discriminator"):
            setattr(models, name, nn.SyncBatchNorm.convert_sync_batchnorm(getattr(models, name)))
    elif config.sync_bn:
        log.info("--sync-bn has no effect in a single process")
    generator, discriminator = models.generator, models.discriminator
    if config.compile:
        generator = compile_module(generator, device)
        if config.r1 > 0 or LOSSES[config.loss].gradient_penalty:
            log.warning(
                "--compile: the discriminator stays eager, since torch.compile cannot backpropagate twice "
                "through it (R1, gradient penalty); the generator is compiled"
            )
        else:
            discriminator = compile_module(discriminator, device)
    models.frozen_discriminator = discriminator
    if context.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        generator = DistributedDataParallel(generator, device_ids=device_ids)
        discriminator = DistributedDataParallel(discriminator, device_ids=device_ids)
    models.train_generator, models.train_discriminator = generator, discriminator


def build_recipe(config: TrainConfig, device: torch.device, world_size: int = 1) -> Recipe:
    """The step's settings from the config."""
    policy = parse_policy(config.diffaug_policy)
    return Recipe(
        loss=LOSSES[config.loss],
        amp=autocast(device, config.precision),
        world_size=world_size,
        n_critic=config.n_critic,
        r1_gamma=config.r1,
        r1_every=config.r1_every,
        augment=functools.partial(diff_augment, policy=policy) if config.diffaug else None,
    )


def make_checkpoint(models: Models, config: TrainConfig, step: int, noise_rng: torch.Generator, extra: dict) -> dict:
    """Everything needed to rebuild the models and continue the run, as plain data and tensors."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ganforge_version": __version__,
        "model": config.model,
        "generator_args": models.generator_args,
        "discriminator_args": models.discriminator_args,
        "generator": models.generator.state_dict(),
        "discriminator": models.discriminator.state_dict(),
        **({"ema_generator": models.ema.state_dict()} if models.ema is not None else {}),
        "g_optimizer": models.g_optimizer.state_dict(),
        "d_optimizer": models.d_optimizer.state_dict(),
        **(
            {"g_scaler": models.g_scaler.state_dict(), "d_scaler": models.d_scaler.state_dict()}
            if models.g_scaler.is_enabled()
            else {}
        ),
        "step": step,
        "config": dataclasses.asdict(config),
        "noise_rng": noise_rng.get_state(),
        "global_rng": global_rng_state(),
        **extra,  # num_images (the data order depends on it), rollbacks, classes
    }


def restore_checkpoint(models: Models, config: TrainConfig, path: Path, noise_rng: torch.Generator, num_images: int):
    """Load a run's checkpoint into ``models``, ``noise_rng`` and the global RNGs; returns the checkpoint."""
    checkpoint = load_checkpoint(path)
    if checkpoint["model"] != config.model:
        raise GanforgeError(f"{path} holds a {checkpoint['model']!r} model, not {config.model!r}")
    if checkpoint.get("num_images", num_images) != num_images:
        raise GanforgeError(
            f"{path} was trained on {checkpoint['num_images']:,} images, but the data now hold {num_images:,}: "
            "point --data-root at the same dataset to resume"
        )
    for name in ("generator", "discriminator", "g_optimizer", "d_optimizer"):
        load_state(getattr(models, name), checkpoint[name], name, path)
    if models.ema is not None:
        load_state(models.ema.generator, checkpoint["ema_generator"], "EMA generator", path)
    if models.g_scaler.is_enabled() and "g_scaler" in checkpoint:
        models.g_scaler.load_state_dict(checkpoint["g_scaler"])
        models.d_scaler.load_state_dict(checkpoint["d_scaler"])
    noise_rng.set_state(checkpoint["noise_rng"])
    if "global_rng" in checkpoint:
        set_global_rng_state(checkpoint["global_rng"])
    return checkpoint


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int | None:
    """The run's length in steps: the smaller of --steps and --epochs; None if only --minutes bounds it."""
    limits = [config.steps] if config.steps else []
    if config.epochs:
        limits.append(config.epochs * steps_per_epoch)
    return min(limits) if limits else None


def resolve_config(config: TrainConfig, data: ImageDataset) -> TrainConfig:
    """Fill every None with what the run uses, so config.yaml says exactly what ran."""
    config = config.with_model_defaults()
    _, channels, height, _ = data.images.shape
    labelled = data.labels is not None and len(data.classes) >= 2
    data_name = config.data if config.data in BUILTIN_DATASETS else Path(config.data).stem
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return dataclasses.replace(
        config,
        # Absolute paths, so the run can be resumed from any working directory.
        data=config.data if config.data in BUILTIN_DATASETS else str(Path(config.data).resolve()),
        data_root=str(Path(config.data_root).resolve()) if config.data_root else None,
        image_size=height,
        channels=channels,
        holdout=0.0
        if config.data in BUILTIN_DATASETS
        else (DEFAULT_HOLDOUT if config.holdout is None else config.holdout),
        epochs=config.epochs if (config.epochs or config.steps or config.minutes) else DEFAULT_EPOCHS,
        conditional=config.conditional
        if config.conditional is not None
        else MODELS[config.model].conditional and labelled,
        out=config.out or str(Path("runs") / f"{config.model}-{data_name}-{stamp}"),
    )


def train(config: TrainConfig, resume_from: str | Path | None = None) -> TrainResult:
    """Train a GAN as ``config`` says; with ``resume_from`` (a checkpoint), continue that run.

    Writes the run directory (config.yaml, metrics.jsonl, samples/, checkpoints/)
    and returns the trained models. SIGINT/SIGTERM stop it cleanly after the
    current step, with a checkpoint. Under torchrun, every process calls it
    and trains its share of each batch (``ganforge.distributed``).
    """
    context = distributed.setup(config.device)
    try:
        return train_process(config, resume_from, context)
    finally:
        distributed.teardown(context)


def train_process(config: TrainConfig, resume_from: str | Path | None, context: Distributed) -> TrainResult:
    """``train`` as one process of the run: ``context`` says which, and rank 0 writes the run directory."""
    started = time.monotonic()
    config.validate()
    resuming, main = resume_from is not None, context.is_main_process
    resume_from = context.from_main(resume_from)  # every rank continues from the checkpoint rank 0 found
    if config.out and not resuming and main:
        check_new_run_dir(Path(config.out), config.overwrite)  # before a possibly long decode of the data
    device = context.device(resolve_device(config.device))
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
    config = resolve_config(config, data)
    config = dataclasses.replace(config, out=context.from_main(config.out))  # its default holds the time
    if config.batch_size % context.world_size:
        raise UsageError(
            f"--batch-size {config.batch_size} is the global batch and must divide evenly "
            f"among the {context.world_size} processes"
        )
    data, heldout = split_holdout(data, config.holdout)
    if len(heldout):
        log.info(f"holding out {len(heldout):,} images ({config.holdout:.0%}) as the evaluation reference")
    data_paths = [config.data] if config.data not in BUILTIN_DATASETS else [config.data_root or default_data_root()]
    check_outside_data(Path(config.out), data_paths)

    if config.conditional and data.labels is None:
        raise UsageError(
            f"--conditional needs labelled data; {config.data} has no labels (a folder needs class subfolders)"
        )
    models = build_models(config, device, num_classes=len(data.classes) if config.conditional else 0)
    sampler = EpochSampler(len(data), config.batch_size, config.seed)
    noise_rng = torch.Generator().manual_seed(config.seed + 1)
    checkpoint = restore_checkpoint(models, config, Path(resume_from), noise_rng, len(data)) if resuming else {}
    wrap_for_training(models, config, context, device)
    run_dir = Path(config.out)
    if main:
        prepare_run_dir(run_dir, resuming, config.overwrite)
        save_config(config, run_dir / "config.yaml")
    context.barrier()  # the run directory exists before any rank goes on
    total = total_steps(config, sampler.steps_per_epoch)
    deadline = started + config.minutes * 60 if config.minutes else float("inf")
    step = checkpoint.get("step", 0)
    processes = f" x {context.world_size} processes" if context.enabled else ""
    log.info(
        f"run: {run_dir}; {config.model} on {device}{processes}, {f'{total:,} steps' if total else 'until --minutes'}"
        + (f", resuming at step {step:,}" if step else "")
    )

    loop = TrainingLoop(config, models, data, heldout, sampler, run_dir, device, noise_rng, context)
    loop.rollbacks = checkpoint.get("rollbacks", 0)
    step, stopped = loop.run(step, total, deadline)
    return TrainResult(run_dir, step, models.generator, models.discriminator, stopped)


def best_fid(run_dir: Path) -> float:
    """The FID of a run's checkpoints/best.pt, or infinity when it has none."""
    path = run_dir / "checkpoints" / BEST
    return load_checkpoint(path).get("eval", {}).get("fid", float("inf")) if path.is_file() else float("inf")


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
        self,
        config: TrainConfig,
        models: Models,
        data: ImageDataset,
        heldout: ImageDataset,  # the images kept out of training (empty for built-in datasets)
        sampler: EpochSampler,  # the global batch indices of each step
        run_dir: Path,
        device: torch.device,
        noise_rng: torch.Generator,  # draws the training noise; saved in every checkpoint
        context: Distributed,  # this process's rank in a torchrun run (one process: rank 0 of 1)
    ):
        self.config, self.models, self.sampler, self.run_dir = config, models, sampler, run_dir
        self.device, self.noise_rng, self.context = device, noise_rng, context
        self.main = context.is_main_process
        on_device = device.type != "cpu" and data.images.numel() <= ON_DEVICE_LIMIT
        self.images = data.images.to(device) if on_device else data.images  # (N, C, H, W) uint8
        self.num_classes = models.generator_args["num_classes"]
        self.labels = data.labels.to(self.images.device) if self.num_classes else None  # (N,) int64
        self.classes = data.classes
        self.recipe = build_recipe(config, device, context.world_size)
        self.fixed_noise = sample_noise(GRID_SIZE, config.z_dim, config.seed + 2)
        self.fixed_labels = balanced_labels(GRID_SIZE, self.num_classes)  # a column per class in the grid
        self.checkpoint_cadence = Cadence(config.checkpoint_every, "checkpoint-every")
        self.sample_cadence = Cadence(config.sample_every, "sample-every")
        self.rollbacks = 0  # divergences recovered from so far in this run
        self.eval_cadence = Cadence(config.eval_every, "eval-every")
        self.evaluator = None
        if config.eval_every != "0" and self.main:
            self.evaluator = PeriodicEvaluator(
                heldout,
                data,
                config.data,
                config.data_root,
                config.eval_samples,
                config.z_dim,
                config.seed + 3,
                device,
                self.num_classes,
            )
        self.collapse = CollapseWatch()
        self.best_fid = best_fid(run_dir)
        # The losses' finiteness is gathered on the device and read only at reports and before saves:
        # reading it every step would wait for the device every step.
        self.losses_finite = torch.ones((), dtype=torch.bool, device=device)
        self.checked_step = 0  # the last step whose losses were read as finite

    def next_batch(self, step: int) -> Batch:
        """This rank's share of the step's real images (scaled) and labels, noise and fake labels."""
        indices = self.context.shard(self.sampler.indices(step)).to(self.images.device)
        real = self.images[indices].to(self.device, non_blocking=True)
        real = scale_images(real, self.models.generator.output_range)  # (B, C, H, W) float
        real = real.contiguous(memory_format=torch.channels_last)
        # Every rank draws the whole batch's noise and keeps its slice: the run takes the same steps
        # whatever the number of processes.
        batch_size = self.config.batch_size
        z = self.context.shard(torch.randn(batch_size, self.config.z_dim, generator=self.noise_rng)).to(self.device)
        if not self.num_classes:
            return Batch(real, z)
        real_labels = self.labels[indices].to(self.device)
        fake_labels = torch.randint(self.num_classes, (batch_size,), generator=self.noise_rng)
        return Batch(real, z, real_labels, self.context.shard(fake_labels).to(self.device))

    def run(self, step: int, total: int | None, deadline: float) -> tuple[int, bool]:
        """Train from ``step`` until ``total``, the deadline or a stop signal; returns (step, stopped early)."""
        config = self.config
        monitor = RunMonitor(
            self.run_dir,
            total,
            step,
            config.batch_size,
            self.sampler.steps_per_epoch,
            config.log_every,
            config.tensorboard and self.main,
            config.progress and self.main,
            writes=self.main,
        )
        self.checked_step = step
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
            monitor.close()
        stopped = stopping or (total is not None and step < total)
        where = self.run_dir / "checkpoints"
        if stopped:
            launcher = "torchrun ... -m ganforge train --resume" if self.context.enabled else "ganforge resume"
            again = f"{launcher} {self.run_dir}"
            log.info(f"stopped at step {step:,}; checkpoint in {where}; continue with: {again}")
        else:
            log.info(f"done: {step:,} steps; checkpoint in {where}; samples in {self.run_dir / 'samples'}")
        return step, stopped

    def train_one_step(self, step: int, monitor: RunMonitor, stop: StopSignal, deadline: float) -> tuple[int, bool]:
        """Train step ``step`` and do whatever is due after it; returns the next step and whether to stop."""
        stats = training_step(self.models, self.recipe, self.next_batch(step), step)
        self.losses_finite &= torch.isfinite(stats["d_loss"] + stats.get("g_loss", 0))
        step += 1
        # Rank 0's clock decides what is due; a signal or the deadline on any rank stops every rank.
        stopping, sample, checkpoint, evaluate = self.context.any(
            [
                stop.requested or time.monotonic() >= deadline,
                self.main and self.sample_cadence.due(step),
                self.main and (self.checkpoint_cadence.due(step) or self.snapshot_due(step)),
                self.evaluator is not None and self.eval_cadence.due(step),
            ]
        )
        saving = sample or checkpoint or evaluate
        if saving or step % self.config.log_every == 0:
            self.check_finite(step, weights=saving)  # nothing non-finite is saved or reported
        monitor.step(step, stats)
        if sample:
            self.save_samples(step, monitor)
        if checkpoint:
            self.save(step)
        if evaluate and self.main:
            self.evaluate(step, monitor)  # the other ranks wait at the next gradient synchronisation
        return step, stopping

    def check_finite(self, step: int, weights: bool = False) -> None:
        """Raise Diverged if a loss since the last check (or, with ``weights``, a weight) is not finite, on any rank."""
        flags = [self.losses_finite]
        if weights:
            flags += [all_finite(self.models.generator), all_finite(self.models.discriminator)]
        finite = self.context.all_true(torch.stack(flags))
        self.losses_finite = torch.ones((), dtype=torch.bool, device=self.device)
        since, self.checked_step = self.checked_step, step
        if not finite[0]:
            raise Diverged(step, "the losses", since)
        for name, ok in zip(("generator", "discriminator"), finite[1:]):
            if not ok:
                raise Diverged(step, f"the {name}'s weights")

    def evaluate(self, step: int, monitor: RunMonitor) -> None:
        """Score the generator, log the scores, keep checkpoints/best.pt by FID, and watch for collapse."""
        results = self.evaluator(self.models.sampling_generator)
        monitor.event({"event": "eval", "step": step} | results)
        monitor.add_scalars("eval", {k: v for k, v in results.items() if isinstance(v, (int, float))}, step)
        best = self.run_dir / "checkpoints" / BEST
        if results["fid"] < self.best_fid:
            self.best_fid = results["fid"]
            self.save(step, also_best=results)
        log.info(
            f"step {step:,}: FID {results['fid']:.2f}, recall {results['recall']:.2f}"
            + (f", {results['classes_covered']} classes" if "classes_covered" in results else "")
        )
        for warning in self.collapse.update(step, results):
            log.warning(f"{warning}; the best checkpoint is {best} (FID {self.best_fid:.2f})")

    def recover(self, divergence: Diverged, monitor: RunMonitor) -> int:
        """Roll back to the last good checkpoint with halved learning rates, or stop; returns the step to go on from.

        Every rank gets here together (the finiteness checks are agreed) and reads the same checkpoint.
        """
        latest = self.context.from_main(latest_checkpoint(self.run_dir / "checkpoints"))  # the file rank 0 wrote
        if self.config.on_nan == "stop" or self.rollbacks >= self.config.max_rollbacks or latest is None:
            why = "--on-nan stop" if self.config.on_nan == "stop" else f"{self.rollbacks} rollbacks already"
            raise GanforgeError(
                f"{divergence} ({why}); nothing non-finite was saved: the last good checkpoint is {latest}. "
                "Try a lower --lr"
            )
        checkpoint = restore_checkpoint(self.models, self.config, latest, self.noise_rng, len(self.images))
        for optimizer in (self.models.g_optimizer, self.models.d_optimizer):
            for group in optimizer.param_groups:
                group["lr"] *= NAN_LR_FACTOR
        self.rollbacks += 1
        self.checked_step = checkpoint["step"]
        monitor.discard(checkpoint["step"])
        lrs = [optimizer.param_groups[0]["lr"] for optimizer in (self.models.g_optimizer, self.models.d_optimizer)]
        log.warning(
            f"{divergence}: rolled back to step {checkpoint['step']:,} ({latest.name}) with learning rates "
            f"G {lrs[0]:.3g}, D {lrs[1]:.3g} (rollback {self.rollbacks} of {self.config.max_rollbacks})"
        )
        monitor.event(
            {
                "event": "rollback",
                "at_step": divergence.step,
                "to_step": checkpoint["step"],
                "g_lr": lrs[0],
                "d_lr": lrs[1],
            }
        )
        return checkpoint["step"]

    def snapshot_due(self, step: int) -> bool:
        """Whether ``step`` is one whose checkpoint is kept for good."""
        return bool(self.config.snapshot_every) and step % self.config.snapshot_every == 0

    def save(self, step: int, also_best: dict | None = None) -> None:
        """Write the step's checkpoint (rank 0) and point checkpoints/latest at it.

        The caller has checked the weights (``check_finite``). ``also_best``:
        the evaluation that makes this checkpoint the best so far; it is copied to best.pt too.
        """
        if not self.main:
            return
        extra = {"num_images": len(self.images), "rollbacks": self.rollbacks, "classes": self.classes}
        checkpoint = make_checkpoint(self.models, self.config, step, self.noise_rng, extra)
        save_run_checkpoint(
            self.run_dir / "checkpoints", checkpoint, self.config.keep_checkpoints, self.config.snapshot_every
        )
        if also_best is not None:
            save_checkpoint(checkpoint | {"eval": also_best}, self.run_dir / "checkpoints" / BEST)

    def save_samples(self, step: int, monitor: RunMonitor) -> None:
        """The fixed noise through the current generator, as samples/step_NNNNNNN.png (rank 0)."""
        if not self.main:
            return
        images = generate_images(self.models.sampling_generator, self.fixed_noise, labels=self.fixed_labels)
        nrow = grid_columns(GRID_SIZE, self.num_classes)
        save_grid(images, self.run_dir / "samples" / f"step_{step:07d}.png", nrow)  # (64, C, H, W) uint8
        monitor.add_grid(make_grid(images, nrow=nrow, padding=2), step)


def resume(run_dir: str | Path, **overrides) -> TrainResult:
    """Continue the run in ``run_dir`` from its latest checkpoint.

    ``overrides`` may change only how long and where it runs (``RESUMABLE``,
    e.g. ``steps=20000`` or ``minutes=10``); anything else would make it a
    different run and is refused.
    """
    run_dir = Path(run_dir)
    start = resume_checkpoint(run_dir)
    config = load_config(run_dir / "config.yaml")
    if "out" in overrides:
        raise UsageError(f"--out cannot be given with --resume: the run stays in {run_dir}")
    # A new --steps or --epochs replaces the run's length (and its time limit) rather than competing with it.
    if "steps" in overrides or "epochs" in overrides:
        overrides = {"steps": None, "epochs": None, "minutes": None, **overrides}
    for name, value in overrides.items():
        if name not in RESUMABLE and value != getattr(config, name):
            raise UsageError(
                f"--{flag(name)} cannot change when resuming (the run used {getattr(config, name)!r}); "
                f"only {', '.join('--' + flag(n) for n in RESUMABLE)} can"
            )
    config = dataclasses.replace(config, **overrides, out=str(run_dir))
    return train(config, resume_from=start)
