"""The optimiser's share of a CPU step: Adam's per-tensor loop (torch's default on a CPU) against fused Adam.

    python benchmarks/optimizer.py                  # pix2pix's U-Net and PatchGAN at 256 px, the MNIST dcgan
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/optimizer.py --threads 1   # an AVX2 stand-in

For each network pair it times (median of --repeats) one Adam step over the generator's and the discriminator's
parameters with random gradients, per-tensor (``fused=None``: what a CPU got before ganforge asked for fused) and
fused (``fused=True``: what training/state.py asks for on CPU and CUDA), beside one forward and backward pass of
the pair (G, then D on its output), so that the saving reads as a share of a step (a training step makes about
two such passes and two Adam steps). Both optimisers start
from the same state and are checked to agree (max relative difference of the parameters after the steps).
"""

import argparse
import statistics
import time

import torch

from ganforge.models import build_discriminator, build_generator
from machine import describe_machine


def translator(width: int):
    """pix2pix's U-Net and PatchGAN at 256 px, batch 1; D sees the input beside the output."""
    g = build_generator("unet", dict(in_channels=3, out_channels=3, width=width, image_size=256))
    d = build_discriminator("unet", dict(in_channels=6, width=width))
    x = torch.randn(1, 3, 256, 256)
    return g, d, lambda: d(torch.cat([x, g(x)], 1)).mean().backward()


def digits():
    """The MNIST default: the conditional dcgan at 28 px with the class head, batch 16."""
    g = build_generator("dcgan", dict(z_dim=100, width=64, channels=1, image_size=28, num_classes=10))
    d = build_discriminator("dcgan", dict(width=64, channels=1, image_size=28, num_classes=10, classifier=True))
    z, labels = torch.randn(16, 100), torch.randint(0, 10, (16,))
    return g, d, lambda: d(g(z, labels), labels).mean().backward()


PAIRS = {
    "pix2pix U-Net + PatchGAN, 256 px, batch 1": lambda: translator(64),
    "the same at width 32 (the default at 256 px)": lambda: translator(32),
    "MNIST conditional dcgan, batch 16": digits,
}


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up: allocations, oneDNN primitives
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, repeats: int) -> dict:
    torch.manual_seed(0)
    g, d, pass_ = PAIRS[name]()
    params = [*g.parameters(), *d.parameters()]
    step_seconds = median_seconds(pass_, repeats)
    start = [p.detach().clone() for p in params]
    results, final = {}, {}
    for fused in (None, True):
        with torch.no_grad():
            for p, p0 in zip(params, start, strict=True):
                p.copy_(p0)
        torch.manual_seed(1)
        for p in params:
            p.grad = torch.randn_like(p)
        adam = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), fused=fused)
        results[fused] = median_seconds(adam.step, repeats)
        final[fused] = [p.detach().clone() for p in params]
    agree = max(
        ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
        for a, b in zip(final[None], final[True], strict=True)
    )
    return dict(
        pair=name,
        parameters=sum(p.numel() for p in params),
        forward_backward=step_seconds,
        per_tensor=results[None],
        fused=results[True],
        max_relative_difference=agree,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    print("\n| networks | parameters | forward + backward (ms) | Adam per-tensor (ms) | Adam fused (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    for name in PAIRS:
        r = measure(name, args.repeats)
        print(
            f"| {r['pair']} | {r['parameters'] / 1e6:.1f} M | {r['forward_backward'] * 1e3:.1f} "
            f"| {r['per_tensor'] * 1e3:.1f} | {r['fused'] * 1e3:.1f} | {r['per_tensor'] / r['fused']:.1f}x |"
        )
        if r["max_relative_difference"] > 1e-5:
            print(f"  the two disagree: max relative difference {r['max_relative_difference']:.2e}")


if __name__ == "__main__":
    main()
