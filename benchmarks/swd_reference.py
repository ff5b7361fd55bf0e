"""Reference values of the colour metrics on a folder of images: SWD (metrics/swd.py), or the CIFAR-10 classifier.

    python benchmarks/swd_reference.py --data ../shared/data/cifar10/train --n 4096
    python benchmarks/swd_reference.py --data ../shared/data/cifar10/train --n 5000 --features cifar10

Draws 2 x --n different images from a folder of class folders (ImageFolder's
layout, such as the CIFAR-10 JPEGs), keeps the first --n as the reference and
scores against it: the other --n real images (the floor: what sampling alone
gives), degraded versions of them (Gaussian blur, Gaussian noise, a colour
shift), images of half the classes, one image repeated and uniform noise.
With --features cifar10 the reference is instead the 5,000 images
``ganforge train`` holds out of the folder (--holdout 0.1), which the shipped
classifier never saw, the sets are drawn from the other 45,000, and every set
is scored as ``ganforge evaluate`` scores a CIFAR-10 run: FID, KID,
precision/recall, classes covered and class KL in the classifier's features.
Prints the tables of docs/metrics.md, with the machine and the time it took.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from ganforge.config import DEFAULT_HOLDOUT
from ganforge.data import find_images, holdout_indices
from ganforge.metrics import evaluate_images
from ganforge.metrics.swd import levels, swd
from machine import describe_machine


def read_images(files: list[Path]) -> torch.Tensor:
    """(N, 3, H, W) uint8 from image files of one size."""
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def degraded_sets(folder: Path, n: int, seed: int, training_part: bool) -> tuple[torch.Tensor, dict]:
    """(the reference images, {row: images}) drawn from ``folder``'s class folders (only from the part
    ``ganforge train`` trains on, with ``training_part``)."""
    paths, labels, names = find_images(folder)
    files = list(zip(paths, labels, strict=True))
    if training_part:
        kept, _ = holdout_indices(len(files), DEFAULT_HOLDOUT)
        files = [files[i] for i in kept]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(files), generator=generator).tolist()
    chosen = [files[i] for i in order[: 2 * n]]
    reference, other = read_images([p for p, _ in chosen[:n]]), read_images([p for p, _ in chosen[n:]])
    used = {p for p, _ in chosen}
    half = [p for i in order[2 * n :] for p, label in [files[i]] if label < len(names) // 2 and p not in used][:n]
    noise = torch.randn(other.shape, generator=generator) * 25
    shift = torch.tensor([25.0, 0.0, -25.0]).view(1, 3, 1, 1)  # redder, less blue
    to_uint8 = lambda t: t.round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    return reference, {
        "real: other training images": other,
        "blurred (Gaussian, sigma 1)": to_uint8(gaussian_blur(other.float(), kernel_size=5, sigma=1.0)),
        "noise (Gaussian, sigma 25 of 255)": to_uint8(other.float() + noise),
        "colour shift (red +25, blue -25)": to_uint8(other.float() + shift),
        f"half the classes ({', '.join(names[: len(names) // 2])})": read_images(half),
        "one image repeated": other[:1].expand(n, -1, -1, -1).contiguous(),
        "uniform noise": torch.randint(0, 256, other.shape, generator=generator, dtype=torch.uint8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of class folders of images of one size")
    parser.add_argument("--n", type=int, default=10000, help="images per set (default: 10000)")
    parser.add_argument("--features", choices=("swd", "cifar10"), default="swd")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    classifier = args.features == "cifar10"
    reference, sets = degraded_sets(Path(args.data), args.n, args.seed, training_part=classifier)
    lines = classifier_table(args.data, sets) if classifier else swd_table(reference, sets, args.seed)
    command = f"python benchmarks/swd_reference.py --data DATA --n {args.n}"
    command += " --features cifar10" if classifier else ""
    print(
        "\n" + "\n".join(lines) + f"\n\n`{command}` on {describe_machine()}; {time.monotonic() - started:.0f} s in all."
    )


def swd_table(reference: torch.Tensor, sets: dict, seed: int) -> list[str]:
    """The rows' SWD against ``reference``, overall and per pyramid level."""
    sizes = levels(min(reference.shape[-2:]))
    header = "| set | SWD (mean) | " + " | ".join(f"{size} px" for size in sizes) + " |"
    lines = [header, "|---" * (len(sizes) + 2) + "|"]
    for name, images in sets.items():
        scores = swd(reference, images, seed=seed)
        lines.append(
            f"| {name} | {scores['swd']:.1f} | " + " | ".join(f"{scores[f'swd_{s}']:.1f}" for s in sizes) + " |"
        )
        print(lines[-1], flush=True)
    return lines


def classifier_table(folder: str, sets: dict) -> list[str]:
    """The rows' scores in the CIFAR-10 classifier's features against the folder's held-out images."""
    lines = [
        "| set | FID | KID | precision | recall | classes covered | class KL |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, images in sets.items():
        r = evaluate_images(images, folder, features="cifar10", holdout=DEFAULT_HOLDOUT)
        lines.append(
            f"| {name} | {r['fid']:.2f} | {r['kid']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['classes_covered']} | {r['class_kl']:.3f} |"
        )
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
