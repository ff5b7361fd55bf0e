"""The image-to-image tasks: pix2pix (paired) and CycleGAN (unpaired), handed to the same loop as ``GANTask``.

Read ``pix2pix_step`` and ``cyclegan_step`` first: each is its paper's
algorithm box (Isola et al. 2017, Zhu et al. 2017), with the adversarial
loss taken from ``losses.LOSSES`` like every other GAN's. ``TranslationState``
is what a checkpoint holds; ``TranslationTask`` batches (random crops and
flips, as pix2pix's transforms, drawn from the state's generator so a resumed
run sees the same ones), draws the grids of input | output | target and scores
the held-out pairs. The loop (``training.loop``) owns everything else: time,
signals, NaN rollback, checkpoints, exact resume, DDP and logging.
"""

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.checkpoint import load_checkpoint, load_state
from ganforge.config import TrainConfig, resolve_translation_config, total_steps
from ganforge.data import EpochSampler, conform_images, scale_images
from ganforge.device import autocast, compile_module, grad_scaler, set_cpu_threads, to_fast_layout
from ganforge.distributed import Distributed
from ganforge.ema import EMA
from ganforge.errors import GanforgeError, UsageError
from ganforge.losses import LOSSES, GANLoss
from ganforge.metrics.translation import score_translator
from ganforge.models import build_discriminator, build_generator
from ganforge.pairs import TranslationData, load_translation_data
from ganforge.rundir import check_outside_data
from ganforge.training.state import counters, restore_counters
from ganforge.training.step import optimizer_step
from ganforge.translation import translate_images

log = logging.getLogger("ganforge")

GRID_ROWS = 8  # held-out examples in each grid (CycleGAN: half from each domain)


# ---------------------------------------------------------------- the state a checkpoint holds


@dataclass
class TranslationState:
    """The translators and discriminators with their optimisers, the history of fakes and the run's counters.

    ``generators``: 'AtoB' (and 'BtoA' for CycleGAN); ``discriminators``: 'B' judges images of domain B
    (pix2pix's sees the input beside it), 'A' those of domain A (CycleGAN).
    """

    task: str  # 'pix2pix' or 'cyclegan'
    model: str  # the MODELS name of the generators
    generators: dict[str, nn.Module]
    discriminators: dict[str, nn.Module]
    generator_args: dict[str, dict]  # per generator: the constructor arguments that rebuild it
    discriminator_args: dict[str, dict]
    g_optimizer: torch.optim.Optimizer  # one Adam over every generator, as CycleGAN's
    d_optimizer: torch.optim.Optimizer
    g_scaler: torch.amp.GradScaler
    d_scaler: torch.amp.GradScaler
    noise_rng: torch.Generator  # draws the crops, flips, unpaired partners and history choices
    num_images: int  # training pairs (or A images): the batch order depends on it
    pools: dict[str, torch.Tensor] = field(default_factory=dict)  # CycleGAN's past fakes per domain
    averages: dict[str, EMA] = field(default_factory=dict)  # per direction, the generator's moving average (--ema)
    step: int = 0
    rollbacks: int = 0
    train_generators: dict[str, nn.Module] = field(default_factory=dict)  # compiled / DDP wrappers, or the nets
    train_discriminators: dict[str, nn.Module] = field(default_factory=dict)
    frozen_discriminators: dict[str, nn.Module] = field(default_factory=dict)  # compiled, never DDP

    def __post_init__(self):
        self.train_generators = self.train_generators or dict(self.generators)
        self.train_discriminators = self.train_discriminators or dict(self.discriminators)
        self.frozen_discriminators = self.frozen_discriminators or dict(self.discriminators)

    @property
    def generator(self) -> nn.Module:
        """The A -> B translator."""
        return self.generators["AtoB"]

    @property
    def discriminator(self) -> nn.Module:
        return self.discriminators["B"]

    @property
    def sampling_generators(self) -> dict[str, nn.Module]:
        """The translators that grids, scores and ``translate`` use: each one's moving average when kept."""
        return {k: self.averages[k].generator if k in self.averages else g for k, g in self.generators.items()}

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return self.g_optimizer, self.d_optimizer

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by name, whose weights must stay finite."""
        named = {f"{direction} generator": g for direction, g in self.generators.items()}
        return named | {f"discriminator of {domain}": d for domain, d in self.discriminators.items()}

    def state_dict(self) -> dict:
        scalers = {"g_scaler": self.g_scaler.state_dict(), "d_scaler": self.d_scaler.state_dict()}
        return {
            "task": self.task,
            "model": self.model,
            "generator_args": self.generator_args,
            "discriminator_args": self.discriminator_args,
            "generators": {name: g.state_dict() for name, g in self.generators.items()},
            "discriminators": {name: d.state_dict() for name, d in self.discriminators.items()},
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            **(scalers if self.g_scaler.is_enabled() else {}),
            "pools": {name: pool.cpu() for name, pool in self.pools.items()},
            **({"ema_generators": {k: e.state_dict() for k, e in self.averages.items()}} if self.averages else {}),
            **counters(self),
        }

    def load_state_dict(self, state: dict, source: str = "the checkpoint") -> None:
        if (state.get("task"), state["model"]) != (self.task, self.model):
            raise GanforgeError(
                f"{source} holds a {state.get('task', 'gan')} run of {state['model']!r}, "
                f"not {self.task} of {self.model!r}"
            )
        if state["num_images"] != self.num_images:
            raise GanforgeError(
                f"{source} was trained on {state['num_images']:,} images, but the data now hold {self.num_images:,}: "
                "point --data at the same folder to resume"
            )
        for kind in ("generators", "discriminators"):
            for name, module in getattr(self, kind).items():
                load_state(module, state[kind][name], f"{name} {kind[:-1]}", source)
        for name, average in self.averages.items():
            if name not in state.get("ema_generators", {}):
                raise GanforgeError(f"{source} holds no moving average (EMA) of its translators: resume without --ema")
            load_state(average.generator, state["ema_generators"][name], f"{name} EMA generator", source)
        load_state(self.g_optimizer, state["g_optimizer"], "generators' optimiser", source)
        load_state(self.d_optimizer, state["d_optimizer"], "discriminators' optimiser", source)
        if self.g_scaler.is_enabled() and "g_scaler" in state:
            self.g_scaler.load_state_dict(state["g_scaler"])
            self.d_scaler.load_state_dict(state["d_scaler"])
        device = next(self.generator.parameters()).device
        self.pools = {name: pool.to(device) for name, pool in state["pools"].items()}
        restore_counters(self, state)


def build_translation_state(config: TrainConfig, device: torch.device, channels: tuple[int, int], num_images: int):
    """The networks (initialised from ``config.seed``) and their Adam optimisers; ``channels``: (A's, B's)."""
    in_channels, out_channels = channels
    shape = dict(width=config.width, image_size=config.image_size, norm=config.norm)
    generator_args = {"AtoB": dict(in_channels=in_channels, out_channels=out_channels, dropout=config.dropout, **shape)}
    if config.task == "pix2pix":  # D sees the input beside the output: a conditional discriminator
        discriminator_args = {"B": dict(in_channels=in_channels + out_channels, **shape)}
    else:
        generator_args["BtoA"] = generator_args["AtoB"] | dict(in_channels=out_channels, out_channels=in_channels)
        discriminator_args = {"B": dict(in_channels=out_channels, **shape), "A": dict(in_channels=in_channels, **shape)}
    for args in discriminator_args.values():
        del args["width"], args["norm"]
        args.update(width=config.width, norm=config.norm)
    torch.manual_seed(config.seed)
    try:
        generators = {k: to_fast_layout(build_generator(config.model, a).to(device)) for k, a in generator_args.items()}
        discriminators = {
            k: to_fast_layout(build_discriminator(config.model, a).to(device)) for k, a in discriminator_args.items()
        }
    except ValueError as error:
        raise UsageError(f"--model {config.model}: {error}") from None
    betas, fused = (config.beta1, config.beta2), (True if device.type == "cuda" else None)
    parameters = lambda modules: [p for m in modules.values() for p in m.parameters()]  # noqa: E731
    return TranslationState(
        task=config.task,
        model=config.model,
        generators=generators,
        discriminators=discriminators,
        generator_args=generator_args,
        discriminator_args=discriminator_args,
        g_optimizer=torch.optim.Adam(parameters(generators), lr=config.g_lr, betas=betas, fused=fused),
        d_optimizer=torch.optim.Adam(parameters(discriminators), lr=config.d_lr, betas=betas, fused=fused),
        g_scaler=grad_scaler(device, config.precision),
        d_scaler=grad_scaler(device, config.precision),
        noise_rng=torch.Generator().manual_seed(config.seed + 1),
        num_images=num_images,
        averages={k: EMA(g, config.ema_half_life, config.ema_warmup) for k, g in generators.items()}
        if config.ema
        else {},
    )


def wrap_translation(state: TranslationState, config: TrainConfig, context: Distributed, device: torch.device) -> None:
    """The networks the steps call: compiled (--compile), then in DDP under torchrun, as ``wrap_for_training``."""
    if config.sync_bn:
        raise UsageError("--sync-bn is for --task gan; translators use instance norm by default")
    wrap = (lambda m: compile_module(m, device)) if config.compile else (lambda m: m)
    frozen = {name: wrap(d) for name, d in state.discriminators.items()}
    generators, discriminators = {k: wrap(g) for k, g in state.generators.items()}, dict(frozen)
    if context.enabled:
        ids = [device.index] if device.type == "cuda" else None
        generators = {k: DistributedDataParallel(g, device_ids=ids) for k, g in generators.items()}
        discriminators = {k: DistributedDataParallel(d, device_ids=ids) for k, d in discriminators.items()}
    state.train_generators, state.train_discriminators, state.frozen_discriminators = generators, discriminators, frozen


# ---------------------------------------------------------------- the steps


@dataclass
class TranslationRecipe:
    """How each step trains: the adversarial loss and the weights of the reconstruction terms."""

    loss: GANLoss
    amp: object  # autocast for the forward passes, or a null context
    lambda_l1: float = 0.0  # pix2pix: weight of |G(a) - b|
    lambda_cycle: float = 0.0  # CycleGAN: weight of |F(G(a)) - a| + |G(F(b)) - b|
    lambda_identity: float = 0.0  # CycleGAN: weight of |G(b) - b| + |F(a) - a|, as a share of lambda_cycle
    pool_size: int = 0  # CycleGAN: past fakes kept per domain


def frozen(state: TranslationState):
    """The discriminators as the generators' update sees them: weights not trained for this pass."""
    for d in state.discriminators.values():
        d.requires_grad_(False)
    return state.frozen_discriminators


def unfreeze(state: TranslationState) -> None:
    for d in state.discriminators.values():
        d.requires_grad_(True)


def pix2pix_step(state: TranslationState, recipe: TranslationRecipe, a: torch.Tensor, b: torch.Tensor) -> dict:
    """One update of D on (a, b) against (a, G(a)); then one of G: fool D, and stay near b in L1.

    ``a``, ``b``: (B, C, H, W) in [-1, 1], a's target is b. Returns detached scalars.
    """
    generator, discriminator = state.train_generators["AtoB"], state.train_discriminators["B"]
    with recipe.amp:
        fake = generator(a)  # (B, C_out, H, W)
        real_logits = discriminator(torch.cat([a, b], 1))  # (B, 1, h, w) patch logits
        fake_logits = discriminator(torch.cat([a, fake.detach()], 1))
    d_loss = recipe.loss.discriminator(real_logits.float(), fake_logits.float())
    optimizer_step(d_loss, state.d_optimizer, state.d_scaler)
    with recipe.amp:
        fooled = frozen(state)["B"](torch.cat([a, fake], 1))
    adversarial = recipe.loss.generator(fooled.float())
    l1 = (fake.float() - b).abs().mean()
    optimizer_step(adversarial + recipe.lambda_l1 * l1, state.g_optimizer, state.g_scaler)
    unfreeze(state)
    return {
        "d_loss": d_loss.detach(),
        "g_loss": adversarial.detach(),
        "l1": l1.detach(),
        "d_real": real_logits.detach().float().mean(),
        "d_fake": fake_logits.detach().float().mean(),
    }


def from_history(state: TranslationState, domain: str, fakes: torch.Tensor, size: int) -> torch.Tensor:
    """CycleGAN's image pool: each fake is shown as is, or (once the pool is full, half the time) swapped for a
    past one, which it replaces. Keeps the discriminator from chasing only the generator's newest mode."""
    if size == 0:
        return fakes
    coins = torch.rand(len(fakes), generator=state.noise_rng)  # drawn every step, so the stream never drifts
    slots = torch.randint(size, (len(fakes),), generator=state.noise_rng)
    pool = state.pools.get(domain, fakes[:0])
    shown = []
    for fake, coin, slot in zip(fakes, coins.tolist(), slots.tolist()):
        if len(pool) < size:
            pool = torch.cat([pool, fake[None]])
            shown.append(fake)
        elif coin > 0.5:
            shown.append(pool[slot].clone())
            pool[slot] = fake
        else:
            shown.append(fake)
    state.pools[domain] = pool
    return torch.stack(shown)


def cyclegan_step(state: TranslationState, recipe: TranslationRecipe, a: torch.Tensor, b: torch.Tensor) -> dict:
    """One update of both generators (fool both discriminators, translate back to where they started, leave a
    target-domain image unchanged); then one of both discriminators on real images and the history of fakes.

    ``a``, ``b``: (B, C, H, W) in [-1, 1], unrelated images of the two domains. Returns detached scalars.
    """
    to_b, to_a = state.train_generators["AtoB"], state.train_generators["BtoA"]
    identity = recipe.lambda_identity > 0 and a.shape[1] == b.shape[1]  # only between domains of equal channels
    with recipe.amp:
        fake_b, fake_a = to_b(a), to_a(b)
        cycle = (to_a(fake_b).float() - a).abs().mean() + (to_b(fake_a).float() - b).abs().mean()
        same = (to_b(b).float() - b).abs().mean() + (to_a(a).float() - a).abs().mean() if identity else 0.0
        judges = frozen(state)
        adversarial = recipe.loss.generator(judges["B"](fake_b).float()) + recipe.loss.generator(
            judges["A"](fake_a).float()
        )
    g_loss = adversarial + recipe.lambda_cycle * (cycle + recipe.lambda_identity * same)
    optimizer_step(g_loss, state.g_optimizer, state.g_scaler)
    unfreeze(state)
    shown_b = from_history(state, "B", fake_b.detach(), recipe.pool_size)
    shown_a = from_history(state, "A", fake_a.detach(), recipe.pool_size)
    with recipe.amp:
        real_b, seen_b = state.train_discriminators["B"](b), state.train_discriminators["B"](shown_b)
        real_a, seen_a = state.train_discriminators["A"](a), state.train_discriminators["A"](shown_a)
    d_loss = recipe.loss.discriminator(real_b.float(), seen_b.float()) + recipe.loss.discriminator(
        real_a.float(), seen_a.float()
    )
    optimizer_step(d_loss, state.d_optimizer, state.d_scaler)
    return {
        "d_loss": d_loss.detach(),
        "g_loss": adversarial.detach(),
        "cycle": cycle.detach(),
        "d_real": real_b.detach().float().mean(),
        "d_fake": seen_b.detach().float().mean(),
    }


STEPS = {"pix2pix": pix2pix_step, "cyclegan": cyclegan_step}


# ---------------------------------------------------------------- the task the loop is handed


def random_crops(
    images: torch.Tensor, size: int, tops: torch.Tensor, lefts: torch.Tensor, flips: torch.Tensor
) -> torch.Tensor:
    """(B, C, size, size): each image cropped at its (top, left) and mirrored where ``flips`` says."""
    crops = [image[:, t : t + size, x : x + size] for image, t, x in zip(images, tops.tolist(), lefts.tolist())]
    crops = torch.stack(crops)
    return torch.where(flips.view(-1, 1, 1, 1).to(crops.device), crops.flip(-1), crops)


class TranslationTask:
    """pix2pix or CycleGAN on in-memory images; the face the loop needs is ``GANTask``'s."""

    metric = "l1"  # lower is better: the held-out L1 of paired data, else the cycle-consistency error
    # pix2pix's D often rejects every fake for thousands of steps while L1 (or the cycle) carries the generator
    # on: no warning about D(G(z)) near 0 (the 30-minute facades run gave one, and learnt all along).
    watches_discriminator = False

    def __init__(
        self,
        config: TrainConfig,
        state: TranslationState,
        data: TranslationData,  # training images at --load-size
        test: TranslationData,  # held-out images at --image-size
        device: torch.device,
        context: Distributed,
    ):
        self.config, self.state, self.device, self.context = config, state, device, context
        self.recipe = TranslationRecipe(
            loss=LOSSES[config.loss],
            amp=autocast(device, config.precision),
            lambda_l1=config.lambda_l1 or 0.0,
            lambda_cycle=config.lambda_cycle or 0.0,
            lambda_identity=config.lambda_identity or 0.0,
            pool_size=config.pool_size or 0,
        )
        if config.task == "cyclegan" and self.recipe.lambda_identity and data.a.shape[1] != data.b.shape[1]:
            log.info("no identity loss: the two domains have different numbers of channels")
        wrap_translation(state, config, context, device)
        self.step_fn = STEPS[config.task]
        self.data, self.test = data, test
        self.paired_training = config.task == "pix2pix"  # CycleGAN throws the pairing away, if there is one
        self.sampler = EpochSampler(len(data.a), config.batch_size, config.seed)
        self.b_sampler = EpochSampler(len(data.b), config.batch_size, config.seed + 1)
        self.total = total_steps(config, self.sampler.steps_per_epoch)
        if config.lr_decay and self.total is None:
            log.info("--lr-decay needs --steps or --epochs: the learning rates stay constant under --minutes alone")
        self.metric = "l1" if test.paired else "cycle_l1"
        self.evaluator = self.evaluate if context.is_main_process and config.eval_every != "0" else None

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def learning_rate_scale(self, step: int) -> float:
        """Linear decay to zero over the last ``--lr-decay`` share of the steps, halved at each rollback."""
        scale = 0.5**self.state.rollbacks
        if self.config.lr_decay and self.total:
            start = self.total * (1 - self.config.lr_decay)
            scale *= 1 - max(0.0, step - start) / (self.total - start + 1)
        return scale

    def next_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the step's (a, b): random crops and flips, in [-1, 1]."""
        config, rng, shard = self.config, self.state.noise_rng, self.context.shard
        indices_a = self.sampler.indices(step)
        indices_b = indices_a if self.paired_training else self.b_sampler.indices(step)
        room = self.data.a.shape[-1] - config.image_size
        # Drawn for the whole batch on every rank, then sliced: the same run whatever the number of processes.
        corners = torch.randint(room + 1, (4, config.batch_size), generator=rng)  # A's top, left; B's top, left
        flips = torch.rand(2, config.batch_size, generator=rng) < 0.5
        j = 0 if self.paired_training else 1  # a pair shares its crop and flip; unpaired images do not
        a = random_crops(self.data.a[shard(indices_a)], config.image_size, *shard(corners[:2].T).T, shard(flips[0]))
        b = random_crops(
            self.data.b[shard(indices_b)], config.image_size, *shard(corners[2 * j : 2 * j + 2].T).T, shard(flips[j])
        )
        scale = lambda x: scale_images(x.to(self.device), (-1.0, 1.0)).contiguous(memory_format=torch.channels_last)  # noqa: E731
        return scale(a), scale(b)

    def train_step(self, step: int) -> dict:
        """Train step ``step``; returns its detached scalar statistics."""
        for optimizer, lr in zip(self.state.optimizers, (self.config.g_lr, self.config.d_lr)):
            for group in optimizer.param_groups:
                group["lr"] = lr * self.learning_rate_scale(step)
        a, b = self.next_batch(step)
        stats = self.step_fn(self.state, self.recipe, a, b)
        images_seen = (step + 1) * self.config.batch_size
        for direction, average in self.state.averages.items():
            average.update(self.state.generators[direction], self.config.batch_size, images_seen)
        return stats

    def rows(self) -> list[tuple[str, int]]:
        """The held-out examples of the grid: (direction, index), half each way for CycleGAN."""
        if self.config.task == "pix2pix":
            return [("AtoB", i) for i in range(min(GRID_ROWS, len(self.test.a)))]
        half = GRID_ROWS // 2
        return [("AtoB", i) for i in range(min(half, len(self.test.a)))] + [
            ("BtoA", i) for i in range(min(half, len(self.test.b)))
        ]

    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """(images (3 x rows, 3, S, S) uint8, 3): input | output | target (unpaired: | the way back) per row."""
        cells = []
        for direction, index in self.rows():
            source, other = (self.test.a, self.test.b) if direction == "AtoB" else (self.test.b, self.test.a)
            image = source[index : index + 1]
            output = translate_images(self.state.sampling_generators[direction], image)
            if self.test.paired:
                last = other[index : index + 1]
            else:  # no target: the output translated back
                back = "BtoA" if direction == "AtoB" else "AtoB"
                last = translate_images(self.state.sampling_generators[back], output)
            cells += [conform_images(x, None, 3) for x in (image, output, last)]
        return torch.cat(cells), 3

    def evaluate(self) -> dict:
        """L1, PSNR and SSIM of the held-out translations against their targets (paired), the cycle error."""
        return score_translator(self.state.sampling_generators, self.test)

    def describe(self, results: dict) -> str:
        """One line of an evaluation for the log."""
        parts = []
        if "l1" in results:
            parts.append(f"L1 {results['l1']:.4f}, PSNR {results['psnr']:.2f} dB, SSIM {results['ssim']:.3f}")
        if "cycle_l1" in results:
            parts.append(f"cycle L1 {results['cycle_l1']:.4f}")
        return ", ".join(parts)

    def watch(self, step: int, results: dict) -> list[str]:
        """Warnings an evaluation calls for: none for translation, whose L1 is its own plain signal."""
        return []

    def checkpoint_extra(self) -> dict:
        return {"classes": []}


# ---------------------------------------------------------------- setting a run up


def prepare_translation(config: TrainConfig, resume_from, context: Distributed, device: torch.device):
    """(the resolved config, the ``TranslationTask``) of a pix2pix or CycleGAN run, resumed if asked."""
    config = resolve_translation_config(config)
    config = dataclasses.replace(config, out=context.from_main(config.out))  # its default holds the time
    data, test, split = load_translation_data(
        config.data,
        config.direction,
        config.load_size,
        config.image_size,
        config.channels,
        config.holdout,
        need_pairs=config.task == "pix2pix",
    )
    if split == "test":
        config = dataclasses.replace(config, holdout=0.0)
    if device.type == "cpu":
        set_cpu_threads(config.threads)  # after the data, so that a bad --data stays a one-line error
    loaded = (tuple(data.a.shape), tuple(data.b.shape))
    if (main_loaded := context.from_main(loaded)) != loaded:
        raise GanforgeError(
            f"rank {context.rank} loaded {data.description}, not what rank 0 loaded ({main_loaded}): "
            "every machine needs the same data"
        )
    log.info(f"data: {data.description}; {len(test.a):,} {split} images for the grids and scores")
    if config.batch_size % context.world_size:
        raise UsageError(
            f"--batch-size {config.batch_size} is the global batch and must divide evenly "
            f"among the {context.world_size} processes"
        )
    check_outside_data(Path(config.out), [Path(config.data)])
    state = build_translation_state(config, device, (data.a.shape[1], data.b.shape[1]), len(data.a))
    if resume_from is not None:
        state.load_state_dict(load_checkpoint(resume_from), str(resume_from))
    return config, TranslationTask(config, state, data, test, device, context)
