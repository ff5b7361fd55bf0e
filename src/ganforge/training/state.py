"""The train state of any task: all a run needs to continue exactly, with ``state_dict()`` / ``load_state_dict()``.

The networks by name (generators and discriminators: a GAN's one of each, an
unpaired translator's two of each) with the arguments that rebuild them, one
Adam optimiser and loss scaler per group ("g" over every generator, "d" over
every discriminator), each generator's moving average, the task's extras (a
history of fakes), the noise generator, the step, the rollbacks so far and the
number of training images (the batch order is a pure function of the step and
of it). Only the plain networks are saved, never their compiled or DDP
wrappers; the checkpoint's envelope (format, version, task, config) is
``checkpoint.make_checkpoint``'s. ``build_train_state`` and
``wrap_for_training`` build and wrap it, whatever the task.
"""

import logging
from dataclasses import dataclass, field

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

GROUPS = {"g": "generators", "d": "discriminators"}  # each optimiser's key, and the networks it updates


@dataclass
class TrainState:
    """A run's networks and optimisers with the arguments that rebuild them, and the run's counters."""

    task: str  # the TASKS name
    model: str  # the MODELS name of every network
    generators: dict[str, nn.Module]  # by name: a GAN's "generator"; a translator's "AtoB" (and "BtoA")
    discriminators: dict[str, nn.Module]  # a GAN's "discriminator"; a translator's by the domain it judges
    generator_args: dict[str, dict]  # per network: the constructor arguments that rebuild it
    discriminator_args: dict[str, dict]
    optimizers: dict[str, torch.optim.Optimizer]  # "g" over every generator, "d" over every discriminator
    scalers: dict[str, torch.amp.GradScaler]  # loss scaling under 16-mixed, per optimiser; a pass-through otherwise
    noise_rng: torch.Generator  # draws the task's randomness: noise, labels, crops, flips, history choices
    num_images: int  # training images: the batch order depends on it
    averages: dict[str, EMA] = field(default_factory=dict)  # per generator, its moving average (--ema)
    extras: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # tensors a task keeps (image pools)
    step: int = 0  # steps trained (discriminator updates)
    rollbacks: int = 0  # divergences recovered from so far
    # What the steps call: the networks above, or their compiled and DDP wrappers (``wrap_for_training``).
    train_generators: dict[str, nn.Module] = field(default_factory=dict)
    train_discriminators: dict[str, nn.Module] = field(default_factory=dict)  # for D's update
    frozen_discriminators: dict[str, nn.Module] = field(default_factory=dict)  # for G's: compiled, never DDP

    def __post_init__(self):
        self.train_generators = self.train_generators or dict(self.generators)
        self.train_discriminators = self.train_discriminators or dict(self.discriminators)
        self.frozen_discriminators = self.frozen_discriminators or dict(self.discriminators)

    @property
    def sampling_generators(self) -> dict[str, nn.Module]:
        """The generators that sample, translate and score: each one's moving average when it is kept."""
        averages = self.averages
        return {name: averages[name].generator if name in averages else g for name, g in self.generators.items()}

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by a name to show, whose weights must stay finite."""
        return {label(name, "generator"): g for name, g in self.generators.items()} | {
            label(name, "discriminator"): d for name, d in self.discriminators.items()
        }

    def state_dict(self) -> dict:
        """Plain data and tensors: what ``load_state_dict`` needs, and what a checkpoint holds beside its envelope."""
        enabled = {key: scaler.state_dict() for key, scaler in self.scalers.items() if scaler.is_enabled()}
        return {
            "task": self.task,
            "model": self.model,
            "generator_args": self.generator_args,
            "discriminator_args": self.discriminator_args,
            "generators": {name: g.state_dict() for name, g in self.generators.items()},
            "discriminators": {name: d.state_dict() for name, d in self.discriminators.items()},
            **({"ema_generators": {k: e.state_dict() for k, e in self.averages.items()}} if self.averages else {}),
            "optimizers": {key: optimizer.state_dict() for key, optimizer in self.optimizers.items()},
            **({"scalers": enabled} if enabled else {}),
            "extras": {kind: {k: t.cpu() for k, t in tensors.items()} for kind, tensors in self.extras.items()},
            **counters(self),
        }

    def load_state_dict(self, state: dict, source: str = "the checkpoint") -> None:
        """Continue from ``state`` (a ``state_dict()`` or a checkpoint); one-line errors when it does not fit."""
        if (state["task"], state["model"]) != (self.task, self.model):
            raise GanforgeError(
                f"{source} holds a {state['task']} run of {state['model']!r}, not {self.task} of {self.model!r}"
            )
        if state.get("num_images", self.num_images) != self.num_images:
            raise GanforgeError(
                f"{source} was trained on {state['num_images']:,} images, but the data now hold {self.num_images:,}: "
                "point --data (and --data-root) at the same dataset to resume"
            )
        for kind in ("generators", "discriminators"):
            for name, module in getattr(self, kind).items():
                if name not in state[kind]:
                    raise GanforgeError(f"{source} holds no {label(name, kind[:-1])}")
                load_state(module, state[kind][name], label(name, kind[:-1]), source)
        for name, average in self.averages.items():
            if name not in state.get("ema_generators", {}):
                raise GanforgeError(f"{source} holds no moving average (EMA) of its generators: resume without --ema")
            load_state(average.generator, state["ema_generators"][name], f"{label(name, 'generator')} EMA", source)
        for key, optimizer in self.optimizers.items():
            load_state(optimizer, state["optimizers"][key], f"{GROUPS[key][:-1]}s' optimiser", source)
        for key, saved in state.get("scalers", {}).items():
            if self.scalers[key].is_enabled():
                self.scalers[key].load_state_dict(saved)
        device = parameters(self.generators)[0].device
        self.extras = {kind: {k: t.to(device) for k, t in tensors.items()} for kind, tensors in state["extras"].items()}
        restore_counters(self, state)


def label(name: str, kind: str) -> str:
    """How a network is named in messages: 'generator', 'AtoB generator', 'B discriminator'."""
    return name if kind in name else f"{name} {kind}"


def counters(state: TrainState) -> dict:
    """What a state saves beside its networks: the step, the random streams, the number of training images and
    the rollbacks so far."""
    return {
        "step": state.step,
        "noise_rng": state.noise_rng.get_state(),
        "global_rng": global_rng_state(),
        "num_images": state.num_images,
        "rollbacks": state.rollbacks,
    }


def restore_counters(state: TrainState, saved: dict) -> None:
    """``counters``' inverse (older checkpoints may lack the global stream and the rollbacks)."""
    state.noise_rng.set_state(saved["noise_rng"])
    if "global_rng" in saved:
        set_global_rng_state(saved["global_rng"])
    state.step, state.rollbacks = saved["step"], saved.get("rollbacks", 0)


def build_train_state(
    config: TrainConfig,
    device: torch.device,
    generator_args: dict[str, dict],  # per generator, its constructor arguments (``Task.networks``)
    discriminator_args: dict[str, dict],
    num_images: int,
) -> TrainState:
    """The networks (initialised from ``config.seed``: the generators in order, then the discriminators), one
    Adam optimiser over every generator and one over every discriminator, and the moving averages if asked for."""
    torch.manual_seed(config.seed)
    try:
        build = lambda make, args: to_fast_layout(make(config.model, args).to(device))  # noqa: E731
        generators = {name: build(build_generator, args) for name, args in generator_args.items()}
        discriminators = {name: build(build_discriminator, args) for name, args in discriminator_args.items()}
    except ValueError as error:
        raise UsageError(f"--model {config.model}: {error}") from None
    # fused: one kernel over every tensor, on CUDA and on the CPU too, where torch's per-tensor loop over pix2pix's
    # networks at 256 px took 159 ms a step and fused takes 27 (benchmarks/optimizer.py, docs/performance.md).
    betas, fused = (config.beta1, config.beta2), (True if device.type in ("cuda", "cpu") else None)
    networks = {"g": generators, "d": discriminators}
    learning_rates = {"g": config.g_lr, "d": config.d_lr}
    optimizers = {
        key: torch.optim.Adam(parameters(modules), lr=learning_rates[key], betas=betas, fused=fused)
        for key, modules in networks.items()
        if parameters(modules)
    }
    return TrainState(
        task=config.task,
        model=config.model,
        generators=generators,
        discriminators=discriminators,
        generator_args=generator_args,
        discriminator_args=discriminator_args,
        optimizers=optimizers,
        scalers={key: grad_scaler(device, config.precision) for key in optimizers},
        noise_rng=torch.Generator().manual_seed(config.seed + 1),
        num_images=num_images,
        averages={name: EMA(g, config.ema_half_life, config.ema_warmup) for name, g in generators.items()}
        if config.ema
        else {},
    )


def parameters(modules: dict[str, nn.Module]) -> list[nn.Parameter]:
    """Every parameter of ``modules``, in order."""
    return [p for module in modules.values() for p in module.parameters()]


def wrap_for_training(
    state: TrainState,
    context: Distributed,
    device: torch.device,
    compile: bool = False,  # torch.compile every network
    sync_bn: bool = False,  # SyncBatchNorm across the processes of a torchrun run (CUDA only)
    double_backward: bool = False,  # a penalty backpropagates twice through D: it stays eager
) -> None:
    """Set the networks the steps call: SyncBatchNorm, then torch.compile, then DDP.

    Compiling before wrapping in DDP is the order DDP's graph-break optimiser
    expects (as in nanoGPT). torch.compile cannot backpropagate twice through a
    network, so with ``double_backward`` the discriminators stay eager. The
    discriminators as the generators' update sees them (``frozen_discriminators``)
    are compiled but never DDP: nothing of them is updated, so nothing is
    synchronised. The plain networks stay in ``state`` for checkpoints, samples and the EMA.
    """
    if sync_bn and context.enabled:
        if device.type != "cuda":
            raise UsageError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        for networks in (state.generators, state.discriminators):
            for name in networks:
                networks[name] = nn.SyncBatchNorm.convert_sync_batchnorm(networks[name])
    elif sync_bn:
        log.info("--sync-bn has no effect in a single process")
    wrap = (lambda m: compile_module(m, device)) if compile else (lambda m: m)
    if compile and double_backward:
        log.warning(
            "--compile: the discriminator stays eager, since torch.compile cannot backpropagate twice "
            "through it (R1, gradient penalty); the generator is compiled"
        )
    generators = {name: wrap(g) for name, g in state.generators.items()}
    frozen = {name: d if double_backward else wrap(d) for name, d in state.discriminators.items()}
    discriminators = dict(frozen)
    if context.enabled:
        ids = [device.index] if device.type == "cuda" else None
        generators = {name: DistributedDataParallel(g, device_ids=ids) for name, g in generators.items()}
        discriminators = {name: DistributedDataParallel(d, device_ids=ids) for name, d in discriminators.items()}
    state.train_generators, state.train_discriminators, state.frozen_discriminators = generators, discriminators, frozen


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Backpropagate ``loss`` and update: through the loss scaler, which only passes through unless 16-mixed."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)  # skipped when float16 gradients overflowed
    scaler.update()
