"""Reference values of the sliced Wasserstein distance (metrics/swd.py) on a folder of colour images.

    python benchmarks/swd_reference.py --data ../shared/data/cifar10/train --n 10000

Draws 2 x --n different images from a folder of class folders (ImageFolder's
layout, such as the CIFAR-10 JPEGs), keeps the first --n as the reference and
scores against it: the other --n real images (the floor: what sampling alone
gives), degraded versions of them (Gaussian blur, Gaussian noise, a colour
shift), images of half the classes, one image repeated and uniform noise.
Prints the table of docs/metrics.md, with the machine and the time it took.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from ganforge.metrics.swd import levels, swd
from machine import describe_machine

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def read_images(files: list[Path]) -> torch.Tensor:
    """(N, 3, H, W) uint8 from image files of one size."""
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def degraded_sets(folder: Path, n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(the reference images, {row: images}) drawn from ``folder``'s class folders."""
    classes = sorted(path for path in folder.iterdir() if path.is_dir())
    files = [
        (path, index)
        for index, c in enumerate(classes)
        for path in sorted(c.iterdir())
        if path.suffix.lower() in SUFFIXES
    ]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(files), generator=generator).tolist()
    chosen = [files[i] for i in order[: 2 * n]]
    reference, other = read_images([p for p, _ in chosen[:n]]), read_images([p for p, _ in chosen[n:]])
    used = {p for p, _ in chosen}
    half = [p for i in order[2 * n :] for p, label in [files[i]] if label < len(classes) // 2 and p not in used][:n]
    noise = torch.randn(other.shape, generator=generator) * 25
    shift = torch.tensor([25.0, 0.0, -25.0]).view(1, 3, 1, 1)  # redder, less blue
    to_uint8 = lambda t: t.round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    return reference, {
        "real: other training images": other,
        "blurred (Gaussian, sigma 1)": to_uint8(gaussian_blur(other.float(), kernel_size=5, sigma=1.0)),
        "noise (Gaussian, sigma 25 of 255)": to_uint8(other.float() + noise),
        "colour shift (red +25, blue -25)": to_uint8(other.float() + shift),
        f"half the classes ({', '.join(c.name for c in classes[: len(classes) // 2])})": read_images(half),
        "one image repeated": other[:1].expand(n, -1, -1, -1).contiguous(),
        "uniform noise": torch.randint(0, 256, other.shape, generator=generator, dtype=torch.uint8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of class folders of images of one size")
    parser.add_argument("--n", type=int, default=10000, help="images per set (default: 10000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    reference, sets = degraded_sets(Path(args.data), args.n, args.seed)
    sizes = levels(min(reference.shape[-2:]))
    header = "| set | SWD (mean) | " + " | ".join(f"{size} px" for size in sizes) + " |"
    lines = [header, "|---" * (len(sizes) + 2) + "|"]
    for name, images in sets.items():
        scores = swd(reference, images, seed=args.seed)
        lines.append(
            f"| {name} | {scores['swd']:.1f} | " + " | ".join(f"{scores[f'swd_{s}']:.1f}" for s in sizes) + " |"
        )
        print(lines[-1], flush=True)
    command = f"python benchmarks/swd_reference.py --data DATA --n {args.n}"
    print(
        "\n" + "\n".join(lines) + f"\n\n`{command}` on {describe_machine()}; {time.monotonic() - started:.0f} s in all."
    )


if __name__ == "__main__":
    main()
