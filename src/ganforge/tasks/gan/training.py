"""The noise-to-image task: what one step trains, what a sample grid shows and what evaluation means.

The loop (``training.loop``) is handed a task and never looks inside it: it
asks for ``train_step``, ``sample_grid``, ``evaluate`` and the ``state`` to
checkpoint. A second kind of GAN (image-to-image translation) is a second
class with the same methods, not a copy of the loop.
"""

import torch

from ganforge.config import TrainConfig
from ganforge.data import EpochSampler, ImageDataset, scale_images
from ganforge.distributed import Distributed
from ganforge.metrics.evaluation import PeriodicEvaluator
from ganforge.monitor import CollapseWatch
from ganforge.sampling import balanced_labels, generate_images, grid_columns, grid_size, sample_noise
from ganforge.training.state import TrainState, wrap_for_training
from ganforge.training.step import Batch, build_recipe, training_step

GRID_SIZE = 64  # images in each fixed-noise sample grid, about (whole rows: grid_size)
ON_DEVICE_LIMIT = 2**30  # bytes of uint8 data kept on an accelerator rather than in host memory


class GANTask:
    """An unconditional or class-conditional GAN trained on in-memory images from noise (and labels)."""

    metric = "fid"  # what keeps checkpoints/best.pt: lower is better
    watches_discriminator = True  # D(G(z)) near 0 for long means G learns little: the log warns

    def __init__(
        self,
        config: TrainConfig,
        state: TrainState,
        data: ImageDataset,  # the training images
        heldout: ImageDataset,  # the images kept out of training (empty for built-in datasets)
        device: torch.device,
        context: Distributed,  # this process's rank in a torchrun run (one process: rank 0 of 1)
    ):
        self.config, self.state, self.device, self.context = config, state, device, context
        self.recipe = build_recipe(config, device, context.world_size)
        wrap_for_training(state, config, context, device, double_backward=bool(self.recipe.d_penalties))
        on_device = device.type != "cpu" and data.images.numel() <= ON_DEVICE_LIMIT
        self.images = data.images.to(device) if on_device else data.images  # (N, C, H, W) uint8
        self.num_classes = state.generator_args["num_classes"]
        self.labels = data.labels.to(self.images.device) if self.num_classes else None  # (N,) int64
        self.classes = data.classes
        self.sampler = EpochSampler(len(data), config.batch_size, config.seed)  # the global indices of each step
        count = grid_size(GRID_SIZE, self.num_classes)  # whole rows: 60 for digits, one class per column
        self.fixed_noise = sample_noise(count, config.z_dim, config.seed + 2)
        self.fixed_labels = balanced_labels(count, self.num_classes)
        self.collapse = CollapseWatch()
        self.evaluator = None
        if config.eval_every != "0" and context.is_main_process:
            self.evaluator = PeriodicEvaluator(
                heldout=heldout,
                data=data,
                dataset=config.data,
                data_root=config.data_root,
                samples=config.eval_samples,
                z_dim=config.z_dim,
                seed=config.seed + 3,
                device=device,
                num_classes=self.num_classes,
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def next_batch(self, step: int) -> Batch:
        """This rank's share of the step's real images (scaled) and labels, noise and fake labels."""
        indices = self.context.shard(self.sampler.indices(step)).to(self.images.device)
        real = self.images[indices].to(self.device, non_blocking=True)
        if self.config.mirror:
            flips = self.context.shard(self.sampler.flips(step)).to(self.device).view(-1, 1, 1, 1)
            real = torch.where(flips, real.flip(-1), real)
        real = scale_images(real, self.state.generator.output_range)  # (B, C, H, W) float
        real = real.contiguous(memory_format=torch.channels_last)
        # Every rank draws the whole batch's noise and keeps its slice: the run takes the same steps
        # whatever the number of processes.
        batch_size, noise_rng = self.config.batch_size, self.state.noise_rng
        z = self.context.shard(torch.randn(batch_size, self.config.z_dim, generator=noise_rng)).to(self.device)
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
        images = generate_images(self.state.sampling_generator, self.fixed_noise, labels=self.fixed_labels)
        return images, grid_columns(len(images), self.num_classes)

    def evaluate(self) -> dict:
        """Scores of the sampling generator (FID, recall, ...); only where ``evaluator`` is set (rank 0)."""
        return self.evaluator(self.state.sampling_generator)

    def describe(self, results: dict) -> str:
        """One line of an evaluation for the log."""
        classes = f", {results['classes_covered']} classes" if "classes_covered" in results else ""
        return f"FID {results['fid']:.2f}, recall {results['recall']:.2f}{classes}"

    def watch(self, step: int, results: dict) -> list[str]:
        """Warnings an evaluation calls for: a run that looks collapsed or diverging (``CollapseWatch``)."""
        return self.collapse.update(step, results)

    def checkpoint_extra(self) -> dict:
        """Plain data a checkpoint carries beside the state: the classes' names."""
        return {"classes": self.classes}
