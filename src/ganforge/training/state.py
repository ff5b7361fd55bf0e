"""The train state: everything a run needs to continue exactly, with ``state_dict()`` / ``load_state_dict()``.

The networks, their optimisers and loss scalers, the generator's moving
average, the noise generator, the step, the rollbacks so far and the number of
training images (the batch order is a pure function of the step and of it).
Only the plain networks are saved, never their compiled or DDP wrappers; the
checkpoint's envelope (format, version, config) is ``checkpoint.make_checkpoint``'s.
"""

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.checkpoint import global_rng_state, load_state, set_global_rng_state
from ganforge.config import TrainConfig
from ganforge.device import compile_module, grad_scaler, to_fast_layout
from ganforge.distributed import Distributed
from ganforge.ema import EMA
from ganforge.errors import GanforgeError, UsageError
from ganforge.models import build_discriminator, build_generator

log = logging.getLogger("ganforge")


@dataclass
class TrainState:
    """A noise-to-image GAN's networks and optimisers with the arguments that rebuild them, and the run's counters."""

    model: str  # the MODELS name
    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    generator_args: dict
    discriminator_args: dict
    g_scaler: torch.amp.GradScaler  # loss scaling under 16-mixed; a pass-through otherwise
    d_scaler: torch.amp.GradScaler
    noise_rng: torch.Generator  # draws the training noise and fake labels
    num_images: int  # training images: the batch order depends on it
    ema: EMA | None = None  # the generator's moving average, with --ema
    step: int = 0  # steps trained (discriminator updates)
    rollbacks: int = 0  # divergences recovered from so far
    # What the step calls: the networks above, or their compiled and DDP wrappers (``wrap_for_training``).
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

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return self.g_optimizer, self.d_optimizer

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by name, whose weights must stay finite."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    def state_dict(self) -> dict:
        """Plain data and tensors: what ``load_state_dict`` needs, and what a checkpoint holds beside its envelope."""
        scalers = {"g_scaler": self.g_scaler.state_dict(), "d_scaler": self.d_scaler.state_dict()}
        return {
            "model": self.model,
            "generator_args": self.generator_args,
            "discriminator_args": self.discriminator_args,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            **({"ema_generator": self.ema.state_dict()} if self.ema is not None else {}),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            **(scalers if self.g_scaler.is_enabled() else {}),
            **counters(self),
        }

    def load_state_dict(self, state: dict, source: str = "the checkpoint") -> None:
        """Continue from ``state`` (a ``state_dict()`` or a checkpoint); one-line errors when it does not fit."""
        if state["model"] != self.model:
            raise GanforgeError(f"{source} holds a {state['model']!r} model, not {self.model!r}")
        if state.get("num_images", self.num_images) != self.num_images:
            raise GanforgeError(
                f"{source} was trained on {state['num_images']:,} images, but the data now hold {self.num_images:,}: "
                "point --data-root at the same dataset to resume"
            )
        for name in ("generator", "discriminator", "g_optimizer", "d_optimizer"):
            load_state(getattr(self, name), state[name], name, source)
        if self.ema is not None:
            load_state(self.ema.generator, state["ema_generator"], "EMA generator", source)
        if self.g_scaler.is_enabled() and "g_scaler" in state:
            self.g_scaler.load_state_dict(state["g_scaler"])
            self.d_scaler.load_state_dict(state["d_scaler"])
        restore_counters(self, state)


def counters(state) -> dict:
    """What every task's state saves beside its networks: the step, the random streams, the number of training
    images and the rollbacks so far."""
    return {
        "step": state.step,
        "noise_rng": state.noise_rng.get_state(),
        "global_rng": global_rng_state(),
        "num_images": state.num_images,
        "rollbacks": state.rollbacks,
    }


def restore_counters(state, saved: dict) -> None:
    """``counters``' inverse (older checkpoints may lack the global stream and the rollbacks)."""
    state.noise_rng.set_state(saved["noise_rng"])
    if "global_rng" in saved:
        set_global_rng_state(saved["global_rng"])
    state.step, state.rollbacks = saved["step"], saved.get("rollbacks", 0)


def build_train_state(config: TrainConfig, device: torch.device, num_images: int, num_classes: int = 0) -> TrainState:
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
    return TrainState(
        model=config.model,
        generator=generator,
        discriminator=discriminator,
        g_optimizer=torch.optim.Adam(generator.parameters(), lr=config.g_lr, betas=betas, fused=fused),
        d_optimizer=torch.optim.Adam(discriminator.parameters(), lr=config.d_lr, betas=betas, fused=fused),
        generator_args=generator_args,
        discriminator_args=discriminator_args,
        g_scaler=grad_scaler(device, config.precision),
        d_scaler=grad_scaler(device, config.precision),
        noise_rng=torch.Generator().manual_seed(config.seed + 1),
        num_images=num_images,
        ema=EMA(generator, config.ema_half_life, config.ema_warmup) if config.ema else None,
    )


def wrap_for_training(
    state: TrainState, config: TrainConfig, context: Distributed, device: torch.device, double_backward: bool
) -> None:
    """Set the networks the step calls: SyncBatchNorm (--sync-bn), then torch.compile (--compile), then DDP.

    Compiling before wrapping in DDP is the order DDP's graph-break optimiser
    expects (as in nanoGPT). ``double_backward``: a penalty backpropagates
    twice through D, which torch.compile cannot, so D stays eager. The plain
    networks stay in ``state`` for checkpoints, samples and the EMA.
    """
    if config.sync_bn and context.enabled:
        if device.type != "cuda":
            raise UsageError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        for name in ("generator", "discriminator"):
            setattr(state, name, nn.SyncBatchNorm.convert_sync_batchnorm(getattr(state, name)))
    elif config.sync_bn:
        log.info("--sync-bn has no effect in a single process")
    generator, discriminator = state.generator, state.discriminator
    if config.compile:
        generator = compile_module(generator, device)
        if double_backward:
            log.warning(
                "--compile: the discriminator stays eager, since torch.compile cannot backpropagate twice "
                "through it (R1, gradient penalty); the generator is compiled"
            )
        else:
            discriminator = compile_module(discriminator, device)
    state.frozen_discriminator = discriminator
    if context.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        generator = DistributedDataParallel(generator, device_ids=device_ids)
        discriminator = DistributedDataParallel(discriminator, device_ids=device_ids)
    state.train_generator, state.train_discriminator = generator, discriminator
