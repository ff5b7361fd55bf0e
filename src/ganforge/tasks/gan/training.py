"""A GAN run's data, networks and ``Trainer``: what one step trains, what a sample grid shows, what evaluation means.

``load_data`` reads the dataset ``--data`` names and keeps its held-out share
apart; ``networks`` gives the generator's and discriminator's constructor
arguments; ``GANTrainer`` is what the loop (``training.loop``) drives: the
batches (real images, noise and labels, as a pure function of the step), the
step (``step.training_step``), the fixed-noise grids and the periodic FID.
"""

import logging

import torch

from ganforge.config import DEFAULT_HOLDOUT, TrainConfig
from ganforge.data import EpochSampler, ImageDataset, load_dataset, resolve_source, scale_images, split_holdout
from ganforge.distributed import Distributed
from ganforge.errors import UsageError
from ganforge.metrics.evaluation import PeriodicEvaluator
from ganforge.monitor import CollapseWatch
from ganforge.sampling import balanced_labels, generate_images, grid_columns, grid_size, sample_noise
from ganforge.tasks.base import RunData, Trainer
from ganforge.tasks.gan.step import Batch, D, G, build_recipe, training_step
from ganforge.training.state import TrainState, wrap_for_training

log = logging.getLogger("ganforge")

GRID_SIZE = 64  # images in each fixed-noise sample grid, about (whole rows: grid_size)
ON_DEVICE_LIMIT = 2**30  # bytes of uint8 data kept on an accelerator rather than in host memory


def load_data(config: TrainConfig) -> RunData:
    """The images of ``config.data`` at the given size and channels (else their own), less the held-out share
    (``--holdout``: a folder's or .npz's evaluation reference; built-in datasets have their test split)."""
    gan, source = config.settings, resolve_source(config.data)
    data = load_dataset(config.data, gan.data_root, config.image_size, config.channels, gan.download)
    labelled = data.labels is not None and len(data.classes) >= 2
    shape = tuple(data.images.shape[1:])
    description = f"{data.description}, {shape} uint8, {data.images.numel() / 2**20:.0f} MiB"
    holdout = 0.0 if source.has_test_split else (config.holdout if config.holdout is not None else DEFAULT_HOLDOUT)
    signature = (tuple(data.images.shape), data.classes)  # what rank 0 loaded, every rank must have loaded
    train, held_out = split_holdout(data, holdout)
    if len(held_out):
        log.info(f"holding out {len(held_out):,} images ({holdout:.0%}) as the evaluation reference")
    return RunData(
        train=train,
        held_out=held_out,
        description=description,
        signature=signature,
        num_images=len(train),
        protected_paths=source.protected_paths(config.data, gan.data_root),
        facts={"image_shape": shape, "labelled": labelled},
    )


def networks(config: TrainConfig, data: RunData) -> tuple[dict[str, dict], dict[str, dict]]:
    """The generator's and the discriminator's constructor arguments, with the classes when conditional."""
    gan = config.settings
    if gan.conditional and data.train.labels is None:
        raise UsageError(
            f"--conditional needs labelled data; {config.data} has no labels (a folder needs class subfolders)"
        )
    num_classes = len(data.train.classes) if gan.conditional else 0
    shape = dict(width=config.width, channels=config.channels, image_size=config.image_size, num_classes=num_classes)
    return {G: dict(z_dim=gan.z_dim, **shape)}, {D: dict(shape, classifier=bool(num_classes and gan.class_loss > 0))}


class GANTrainer(Trainer):
    """An unconditional or class-conditional GAN trained on in-memory images from noise (and labels)."""

    metric = "fid"  # what keeps checkpoints/best.pt: lower is better
    watches_discriminator = True  # D(G(z)) near 0 for long means G learns little: the log warns

    def __init__(
        self,
        config: TrainConfig,
        state: TrainState,
        run_data: RunData,  # ``load_data``'s: the training images, and those kept out of training
        device: torch.device,
        context: Distributed,  # this process's rank in a torchrun run (one process: rank 0 of 1)
    ):
        from ganforge.tasks.gan import GAN_TASK

        self.config, self.state, self.device, self.context = config, state, device, context
        self.statistics = GAN_TASK.statistics
        data: ImageDataset = run_data.train
        heldout: ImageDataset = run_data.held_out  # empty for built-in datasets
        gan = config.settings
        self.recipe = build_recipe(config, device, context.world_size)
        wrap_for_training(
            state, context, device, config.compile, gan.sync_bn, double_backward=bool(self.recipe.d_penalties)
        )
        on_device = device.type != "cpu" and data.images.numel() <= ON_DEVICE_LIMIT
        self.images = data.images.to(device) if on_device else data.images  # (N, C, H, W) uint8
        self.num_classes = state.generator_args[G]["num_classes"]
        self.labels = data.labels.to(self.images.device) if self.num_classes else None  # (N,) int64
        self.classes = data.classes
        self.sampler = EpochSampler(len(data), config.batch_size, config.seed)  # the global indices of each step
        count = grid_size(GRID_SIZE, self.num_classes)  # whole rows: 60 for digits, one class per column
        self.fixed_noise = sample_noise(count, gan.z_dim, config.seed + 2)
        self.fixed_labels = balanced_labels(count, self.num_classes)
        self.collapse = CollapseWatch()
        self.evaluator = None
        if config.eval_every != "0" and context.is_main_process:
            self.evaluator = PeriodicEvaluator(
                heldout=heldout,
                data=data,
                dataset=config.data,
                data_root=gan.data_root,
                samples=gan.eval_samples,
                z_dim=gan.z_dim,
                seed=config.seed + 3,
                device=device,
                num_classes=self.num_classes,
                classes=self.classes,
            )
        self.evaluates = self.evaluator is not None

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def base_learning_rates(self) -> dict[str, float]:
        return {"g": self.config.g_lr, "d": self.config.d_lr}

    def next_batch(self, step: int) -> Batch:
        """This rank's share of the step's real images (scaled) and labels, noise and fake labels."""
        indices = self.context.shard(self.sampler.indices(step)).to(self.images.device)
        real = self.images[indices].to(self.device, non_blocking=True)
        if self.config.settings.mirror:
            flips = self.context.shard(self.sampler.flips(step)).to(self.device).view(-1, 1, 1, 1)
            real = torch.where(flips, real.flip(-1), real)
        real = scale_images(real, self.state.generators[G].output_range)  # (B, C, H, W) float
        real = real.contiguous(memory_format=torch.channels_last)
        # Every rank draws the whole batch's noise and keeps its slice: the run takes the same steps
        # whatever the number of processes.
        batch_size, noise_rng = self.config.batch_size, self.state.noise_rng
        z = self.context.shard(torch.randn(batch_size, self.config.settings.z_dim, generator=noise_rng)).to(self.device)
        if not self.num_classes:
            return Batch(real, z)
        real_labels = self.labels[indices].to(self.device)
        fake_labels = torch.randint(self.num_classes, (batch_size,), generator=noise_rng)
        return Batch(real, z, real_labels, self.context.shard(fake_labels).to(self.device))

    def train_step(self, step: int) -> dict:
        """Train step ``step``; returns its detached scalar statistics (d_loss, g_loss, d_real, d_fake)."""
        return training_step(self.state, self.recipe, self.next_batch(step), step)

    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """(images (64, C, H, W) uint8, images per row): the fixed noise through the sampling generator."""
        images = generate_images(self.state.sampling_generators[G], self.fixed_noise, labels=self.fixed_labels)
        return images, grid_columns(len(images), self.num_classes)

    def evaluate(self) -> dict:
        """Scores of the sampling generator (FID, recall, ...); only where ``evaluator`` is set (rank 0)."""
        return self.evaluator(self.state.sampling_generators[G])

    def describe(self, results: dict) -> str:
        """One line of an evaluation for the log."""
        classes = f", {results['classes_covered']} classes" if "classes_covered" in results else ""
        obeys = f", {results['label_acc']:.1%} the class asked for" if "label_acc" in results else ""
        return f"FID {results['fid']:.2f}, recall {results['recall']:.2f}{classes}{obeys}"

    def watch(self, step: int, results: dict) -> list[str]:
        """Warnings an evaluation calls for: a run that looks collapsed or diverging (``CollapseWatch``)."""
        return self.collapse.update(step, results)

    def checkpoint_extra(self) -> dict:
        """Plain data a checkpoint carries beside the state: the classes' names."""
        return {"classes": self.classes}
