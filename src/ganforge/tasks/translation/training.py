"""A translation run's data, networks and ``Trainer``: random crops and flips (as pix2pix's transforms, drawn
from the state's generator so a resumed run sees the same ones), the step (``steps.py``), grids of
input | output | target, and the held-out scores (``evaluate.py``).
"""

import logging
from pathlib import Path

import torch

from ganforge.config import TrainConfig, total_steps
from ganforge.data import EpochSampler, conform_images, scale_images
from ganforge.device import autocast
from ganforge.distributed import Distributed
from ganforge.losses import LOSSES
from ganforge.tasks.base import RunData, Task, Trainer
from ganforge.tasks.translation.data import TranslationData, load_translation_data
from ganforge.tasks.translation.evaluate import score_translator
from ganforge.tasks.translation.handle import translate_images
from ganforge.tasks.translation.steps import TranslationRecipe, cyclegan_step, pix2pix_step
from ganforge.training.state import TrainState, wrap_for_training

log = logging.getLogger("ganforge")

GRID_ROWS = 8  # held-out examples in each grid (CycleGAN: half from each domain)


def load_data(config: TrainConfig, need_pairs: bool) -> RunData:
    """The folder's training images at --load-size and its test split (or held-out share) at --image-size."""
    settings = config.settings
    data, test, split = load_translation_data(
        config.data,
        settings.direction,
        settings.load_size,
        config.image_size,
        config.channels,
        config.holdout,
        need_pairs=need_pairs,
    )
    return RunData(
        train=data,
        held_out=test,
        description=f"{data.description}; {len(test.a):,} {split} images for the grids and scores",
        signature=(tuple(data.a.shape), tuple(data.b.shape)),
        num_images=len(data.a),
        protected_paths=[Path(config.data)],
        facts={"split": split, "channels": (data.a.shape[1], data.b.shape[1]), "side_by_side": data.side_by_side},
    )


def networks(config: TrainConfig, data: RunData, both_ways: bool) -> tuple[dict[str, dict], dict[str, dict]]:
    """The translators' and discriminators' constructor arguments: A -> B (and B -> A with ``both_ways``); pix2pix's
    discriminator sees the input beside the output (a conditional discriminator), CycleGAN's one domain each."""
    in_channels, out_channels = data.facts["channels"]
    settings = config.settings
    shape = dict(width=config.width, image_size=config.image_size, norm=settings.norm)
    one_way = dict(in_channels=in_channels, out_channels=out_channels, dropout=settings.dropout, **shape)
    generator_args = {"AtoB": one_way}
    if not both_ways:
        discriminator_args = {"B": dict(in_channels=in_channels + out_channels, **shape)}
    else:
        generator_args["BtoA"] = generator_args["AtoB"] | dict(in_channels=out_channels, out_channels=in_channels)
        discriminator_args = {"B": dict(in_channels=out_channels, **shape), "A": dict(in_channels=in_channels, **shape)}
    for args in discriminator_args.values():  # the order of the arguments as checkpoints have always held them
        del args["width"], args["norm"]
        args.update(width=config.width, norm=settings.norm)
    return generator_args, discriminator_args


def random_crops(
    images: torch.Tensor, size: int, tops: torch.Tensor, lefts: torch.Tensor, flips: torch.Tensor
) -> torch.Tensor:
    """(B, C, size, size): each image cropped at its (top, left) and mirrored where ``flips`` says."""
    crops = [image[:, t : t + size, x : x + size] for image, t, x in zip(images, tops.tolist(), lefts.tolist())]
    crops = torch.stack(crops)
    return torch.where(flips.view(-1, 1, 1, 1).to(crops.device), crops.flip(-1), crops)


class TranslationTrainer(Trainer):
    """pix2pix or CycleGAN on in-memory images, as the loop drives it."""

    # pix2pix's D often rejects every fake for thousands of steps while L1 (or the cycle) carries the generator
    # on: no warning about D(G(z)) near 0 (the 30-minute facades run gave one, and learnt all along).
    watches_discriminator = False

    def __init__(
        self,
        config: TrainConfig,
        state: TrainState,
        run_data: RunData,  # ``load_data``'s: training images at --load-size, held-out ones at --image-size
        device: torch.device,
        context: Distributed,
        task: Task,  # its entry: paired (pix2pix) or not (CycleGAN), and its statistics
    ):
        self.config, self.state, self.device, self.context = config, state, device, context
        self.statistics = task.statistics
        settings = config.settings
        self.recipe = TranslationRecipe(
            loss=LOSSES[config.loss],
            amp=autocast(device, config.precision),
            lambda_l1=getattr(settings, "lambda_l1", 0.0),
            lambda_cycle=getattr(settings, "lambda_cycle", 0.0),
            lambda_identity=getattr(settings, "lambda_identity", 0.0),
            pool_size=getattr(settings, "pool_size", 0),
        )
        data: TranslationData = run_data.train
        test: TranslationData = run_data.held_out
        if self.recipe.lambda_identity and data.a.shape[1] != data.b.shape[1]:
            log.info("no identity loss: the two domains have different numbers of channels")
        wrap_for_training(state, context, device, config.compile)
        self.paired_training = task.paired  # CycleGAN throws the pairing away, if there is one
        self.step_fn = pix2pix_step if task.paired else cyclegan_step
        self.data, self.test = data, test
        self.sampler = EpochSampler(len(data.a), config.batch_size, config.seed)
        self.b_sampler = EpochSampler(len(data.b), config.batch_size, config.seed + 1)
        self.total = total_steps(config, self.sampler.steps_per_epoch)
        if settings.lr_decay and self.total is None:
            log.info("--lr-decay needs --steps or --epochs: the learning rates stay constant under --minutes alone")
        self.metric = "l1" if test.paired else "cycle_l1"  # lower is better
        self.evaluates = context.is_main_process and config.eval_every != "0"

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def base_learning_rates(self) -> dict[str, float]:
        return {"g": self.config.g_lr, "d": self.config.d_lr}

    def learning_rate_scale(self, step: int) -> float:
        """Linear decay to zero over the last ``--lr-decay`` share of the steps."""
        decay = self.config.settings.lr_decay
        if not (decay and self.total):
            return 1.0
        start = self.total * (1 - decay)
        return 1 - max(0.0, step - start) / (self.total - start + 1)

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
        a, b = self.next_batch(step)
        stats = self.step_fn(self.state, self.recipe, a, b)
        images_seen = (step + 1) * self.config.batch_size
        for direction, average in self.state.averages.items():
            average.update(self.state.generators[direction], self.config.batch_size, images_seen)
        return stats

    def rows(self) -> list[tuple[str, int]]:
        """The held-out examples of the grid: (direction, index), half each way for CycleGAN."""
        if "BtoA" not in self.state.generators:
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

    def checkpoint_extra(self) -> dict:
        """Plain data a checkpoint carries beside the state: whether each training file held a pair side by side
        (what ``translate`` reads an input's half by)."""
        return {"side_by_side": self.data.side_by_side}

    def describe(self, results: dict) -> str:
        """One line of an evaluation for the log."""
        parts = []
        if "l1" in results:
            parts.append(f"L1 {results['l1']:.4f}, PSNR {results['psnr']:.2f} dB, SSIM {results['ssim']:.3f}")
        if "cycle_l1" in results:
            parts.append(f"cycle L1 {results['cycle_l1']:.4f}")
        return ", ".join(parts)
