"""CAS along a run: the classification accuracy score of a quality.py run's checkpoints at several minutes.

    python benchmarks/cas.py runs/quality/default-seed0 --minutes 8,9,10
    python benchmarks/cas.py RUN [RUN ...] --minutes 8,9,10 --epochs 3 --classifier-seeds 0,1
    python benchmarks/cas.py RUN [RUN ...] --no-ema   # the generator's latest weights, not its moving average
    python benchmarks/cas.py RUN [RUN ...] --keep agreed  # only samples the discriminator's class head agrees with
    python benchmarks/cas.py RUN [RUN ...] --noise-std 1  # the noise as training drew it, not as --dataset does

One checkpoint's CAS is a noisy figure: between two checkpoints a minute apart the same run can
score 95% and 90% of the real-data classifier (docs/quality.md), which is more than the gap between two
recipes. This script scores a run (a folder quality.py trained, with its wall-clock checkpoints) at each
of --minutes, by the checkpoint nearest that time in the run's metrics.jsonl, exactly as quality.py's
--cas does (10,000 samples drawn with the run's seed, classes cycled, the noise as wide as
``ganforge generate --dataset`` draws it; the same small CNN trained
--epochs on them and on as many real images, both tested on the real test set), and prints a row per
checkpoint, then each run's mean and the mean over runs: a recipe's CAS over its seeds and over time.
"""

import argparse
import json
import statistics
from pathlib import Path

import torch
import yaml

from ganforge.checkpoint import checkpoint_step, load_checkpoint, run_checkpoints
from ganforge.config import GRAYSCALE_DATASET_NOISE_STD
from ganforge.models import build_discriminator
from ganforge.tasks import load
from ganforge.tasks.gan.handle import generate
from machine import describe_machine
from quality import Benchmark


def checkpoint_times(run: Path) -> list[tuple[float, Path]]:
    """The run's checkpoints, oldest first, each with the training time (seconds) last logged at or before its step."""
    clock = [(r["step"], r["time"]) for r in map(json.loads, open(run / "metrics.jsonl")) if "time" in r]
    timed = []
    for path in sorted(run_checkpoints(run / "checkpoints")):
        logged = [t for s, t in clock if s <= checkpoint_step(path)]
        timed.append((logged[-1] if logged else 0.0, path))
    return timed


def discriminator_of(path: Path) -> torch.nn.Module:
    """The discriminator saved in the checkpoint at ``path``, in eval mode on the CPU."""
    checkpoint = load_checkpoint(path)
    discriminator = build_discriminator(checkpoint["model"], checkpoint["discriminator_args"]["discriminator"])
    discriminator.load_state_dict(checkpoint["discriminators"]["discriminator"])
    return discriminator.eval()


@torch.no_grad()
def kept_samples(
    model, path: Path, n: int, seed: int, keep: str, pool: int, noise_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled samples, classes cycled, the noise at ``noise_std``: with ``keep`` 'all' the first ``n``
    generated; else drawn from ``pool`` times as many, each class's first n/K where the run's discriminator agrees
    ('agreed': its class head reads the class asked for) or its n/K it finds most real ('realest': the highest
    logits), as discriminator rejection sampling does (Azadi et al. 2019). 'agreed' fills a class short of agreed
    samples with the rest."""
    if keep == "all":
        return generate(model, n=n, seed=seed, noise_std=noise_std), model.labels(n)
    images, labels = generate(model, n=n * pool, seed=seed, noise_std=noise_std), model.labels(n * pool)
    discriminator, (low, high) = discriminator_of(path), model.description["output_range"]
    logits, classes = [], []
    for start in range(0, len(images), 500):
        x = low + images[start : start + 500].float() / 255 * (high - low)
        logit, class_logits = discriminator(x, labels[start : start + 500], classify=True)
        logits.append(logit)
        classes.append(class_logits.argmax(1))
    logits, agreed = torch.cat(logits), torch.cat(classes) == labels
    kept = []
    for label in range(model.num_classes):
        members = (labels == label).nonzero().flatten()
        quota = n // model.num_classes + (label < n % model.num_classes)
        if keep == "agreed":
            order = torch.cat([members[agreed[members]], members[~agreed[members]]])
        else:
            order = members[logits[members].argsort(descending=True)]
        kept.append(order[:quota])
    kept = torch.cat(kept)
    print(f"# {path.name}: {agreed.float().mean():.1%} of the pool agreed with the class head", flush=True)
    return images[kept], labels[kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders that quality.py trained (under its --out)")
    parser.add_argument("--minutes", default="8,9,10", help="the training times to score, comma-separated")
    parser.add_argument("--epochs", type=int, default=3, help="the classifier's epochs (quality.py's --cas: 3)")
    parser.add_argument("--classifier-seeds", default="0", help="classifier seeds, comma-separated, averaged")
    parser.add_argument("--n", type=int, default=10000, help="samples per checkpoint")
    parser.add_argument(
        "--no-ema", dest="ema", action="store_false", help="sample the latest weights, not the moving average"
    )
    parser.add_argument(
        "--keep", default="all", choices=("all", "agreed", "realest"), help="which samples to keep (kept_samples)"
    )
    parser.add_argument("--pool", type=int, default=4, help="with --keep, draw this many times --n to choose from")
    parser.add_argument(
        "--noise-std",
        type=float,
        default=GRAYSCALE_DATASET_NOISE_STD,
        help=f"the noise's spread (default: {GRAYSCALE_DATASET_NOISE_STD}, as generate --dataset draws MNIST)",
    )
    parser.add_argument("--data-root", default="../shared/data", help="torchvision's data root holding MNIST")
    args = parser.parse_args()
    bench = Benchmark("mnist", args.data_root)
    minutes = [float(m) for m in args.minutes.split(",")]
    classifier_seeds = [int(s) for s in args.classifier_seeds.split(",")]
    print(f"# {describe_machine()}")
    weights = "the moving average" if args.ema else "the latest weights"
    print(
        f"# CAS: {args.n:,} samples ({weights}; the noise at {args.noise_std:g}x; kept: {args.keep}), "
        f"a small CNN trained {args.epochs} epochs, "
        f"classifier seeds {classifier_seeds}"
    )
    print("\n| run | minutes | steps | CAS | CAS, real | of real |")
    print("|---|---|---|---|---|---|")
    means = {}
    for run in map(Path, args.runs):
        seed = yaml.safe_load(open(run / "config.yaml"))["seed"]
        timed = checkpoint_times(run)
        ratios = []
        for minute in minutes:
            at, path = min(timed, key=lambda checkpoint: abs(checkpoint[0] - minute * 60))  # the nearest in time
            model = load(path, "auto", ema=args.ema, command="generate")  # as generate(path) would
            images, labels = kept_samples(model, path, args.n, seed, args.keep, args.pool, args.noise_std)
            scores = [bench.cas(images, labels, s, args.epochs) for s in classifier_seeds]
            cas = statistics.mean(s["cas"] for s in scores)
            real = statistics.mean(s["cas_real"] for s in scores)
            ratios.append(cas / real)
            print(
                f"| {run.name} | {at / 60:.1f} | {checkpoint_step(path):,} | {cas:.3f} | {real:.3f} | "
                f"{cas / real:.1%} |",
                flush=True,
            )
        means[run.name] = statistics.mean(ratios)
    print("\n| run | mean of real over the minutes |\n|---|---|")
    for name, ratio in means.items():
        print(f"| {name} | {ratio:.1%} |")
    values = list(means.values())
    print(f"| all runs | {statistics.mean(values):.1%} ({min(values):.1%}-{max(values):.1%}) |")


if __name__ == "__main__":
    main()
