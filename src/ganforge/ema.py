"""An exponential moving average of the generator's weights (G_ema, as in Karras et al.'s StyleGAN2-ADA).

Sampling from the average of the recent generators rather than the latest
one smooths out the oscillation of adversarial training and usually gives
clearly better samples. The decay is set by a half-life in images seen, with a
warm-up: early on the half-life is capped at a fraction of the images seen so
far, so the average does not drag the random initial weights along.
"""

import copy

import torch
from torch import nn


class EMA:
    """``ema.generator`` follows ``generator``: w_ema <- beta w_ema + (1 - beta) w after each generator update."""

    def __init__(
        self,
        generator: nn.Module,
        half_life: float = 10_000,  # images after which an old weight's share has halved
        warmup: float = 0.05,  # cap the half-life at this share of the images seen so far (0: no warm-up)
    ):
        self.generator = copy.deepcopy(generator).eval().requires_grad_(False)
        self.half_life, self.warmup = half_life, warmup

    def beta(self, batch_size: int, images_seen: int) -> float:
        """The decay for one update of ``batch_size`` images, after ``images_seen`` in all."""
        half_life = min(self.half_life, images_seen * self.warmup) if self.warmup else self.half_life
        return 0.5 ** (batch_size / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, generator: nn.Module, batch_size: int, images_seen: int) -> None:
        """Move the average towards ``generator``.

        Floating-point buffers (BatchNorm's running statistics) are averaged
        like the weights, so the averaged weights are normalised with matching
        statistics; integer ones (batch counters) are copied.
        """
        beta = self.beta(batch_size, images_seen)
        averaged = list(self.generator.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in generator.parameters()], 1.0 - beta)
        for average, buffer in zip(self.generator.buffers(), generator.buffers()):
            if average.is_floating_point():
                average.lerp_(buffer, 1.0 - beta)
            else:
                average.copy_(buffer)

    def state_dict(self) -> dict:
        """The averaged generator's weights: a generator state dict like any other."""
        return self.generator.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore the averaged weights from ``state_dict()``."""
        self.generator.load_state_dict(state)
