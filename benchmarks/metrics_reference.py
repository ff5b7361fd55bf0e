"""The reference table of docs/metrics.md: what the MNIST metrics say about real, degraded and generated sets.

    python benchmarks/metrics_reference.py --data-root ../shared/data --minutes 0 --out docs/metrics.md

Every row is scored with the shipped digits classifier against the MNIST test
set, with --n images: the real-data floor (training images), three degraded
sets (blurred, noise, half the classes, one image repeated), then, with --minutes M,
each ganforge model trained for M minutes on this machine with its default recipe.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torchvision.transforms.functional import gaussian_blur

import ganforge
from ganforge.data import load_torchvision_dataset
from ganforge.metrics import evaluate_images
from ganforge.tasks import TASKS
from machine import describe_machine

COLUMNS = ("fid", "kid", "classifier_score", "precision", "recall", "classes_covered", "class_kl")


def degraded_sets(root: Path, n: int, seed: int) -> dict[str, torch.Tensor]:
    """Real training images and degraded versions of them, (n, 1, 28, 28) uint8 each."""
    train = load_torchvision_dataset("mnist", root, download="never")
    generator = torch.Generator().manual_seed(seed)
    real = train.images[torch.randperm(len(train), generator=generator)[:n]]
    low_digits = train.images[train.labels < 5]
    return {
        "real: MNIST training images": real,
        "blurred (Gaussian, sigma 1.5)": gaussian_blur(real.float(), kernel_size=7, sigma=1.5).round().to(torch.uint8),
        "half the classes (digits 0-4)": low_digits[torch.randperm(len(low_digits), generator=generator)[:n]],
        "one image repeated": real[:1].expand(n, -1, -1, -1).contiguous(),
        "uniform noise": torch.randint(0, 256, real.shape, generator=generator, dtype=torch.uint8),
    }


def trained_sets(root: Path, n: int, minutes: float, work: Path) -> dict[str, torch.Tensor]:
    """Samples from each model trained for ``minutes`` with its defaults."""
    sets = {}
    for model in TASKS["gan"].models:  # the noise-to-image models (MODELS also holds the translators)
        config = ganforge.TrainConfig(
            model=model, data_root=str(root), minutes=minutes, out=str(work / model), progress=False, tensorboard=False
        )
        result = ganforge.train(config)
        label = f"`{model}`, {minutes:g} minutes ({result.step:,} steps)"
        sets[label] = ganforge.generate(result.run_dir, n=n, seed=0)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="torchvision data root holding MNIST")
    parser.add_argument("--n", type=int, default=10000, help="images per set (default: 10000)")
    parser.add_argument("--minutes", type=float, default=10, help="training budget per model; 0 skips (default: 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table as Markdown to this file")
    args = parser.parse_args()
    root = Path(args.data_root)
    started = time.monotonic()
    sets = degraded_sets(root, args.n, args.seed)
    with tempfile.TemporaryDirectory() as work:
        if args.minutes > 0:
            sets |= trained_sets(root, args.n, args.minutes, Path(work))
        rows = {
            name: evaluate_images(images, "mnist", data_root=str(root), cache=work) for name, images in sets.items()
        }
    lines = [
        "| set | FID | KID | classifier score | precision | recall | classes covered | class KL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['fid']:.2f} | {r['kid']:.4f} | {r['classifier_score']:.2f} | {r['precision']:.3f} "
            f"| {r['recall']:.3f} | {r['classes_covered']} | {r['class_kl']:.3f} |"
        )
    command = f"python benchmarks/metrics_reference.py --data-root DATA --n {args.n} --minutes {args.minutes:g}"
    machine = describe_machine()
    footer = f"`{command}` on {machine}; {time.monotonic() - started:.0f} s in all."
    print("\n".join(lines) + "\n\n" + footer)
    if args.out:  # the MNIST table; the file's later sections (## ...) are kept
        out = Path(args.out)
        rest = out.read_text().partition("\n## ")[1:] if out.exists() else ("", "")
        out.write_text(HEADER + "\n".join(lines) + "\n\n" + footer + "\n" + "".join(rest))


HEADER = """# MNIST metrics: a reference table

What `ganforge evaluate` reports for sets whose quality is known, so that a
run's numbers can be read against them. Every row: 10,000 images scored with
ganforge's digits classifier (penultimate-layer features for FID, KID and
precision/recall with k = 3; softmax for the classifier score, the
Inception-Score formula on this classifier, and the class histogram) against
the 10,000 MNIST test images. **These are not Inception FIDs: compare them
with each other, not with papers.** What the models reach at equal wall clock
is in [quality.md](quality.md); `--minutes M` adds a row for each model
trained M minutes here.

"""


if __name__ == "__main__":
    main()
