"""CAS along a run: the classification accuracy score of a quality.py run's checkpoints at several minutes.

    python benchmarks/cas.py bench-runs/avx2/default/default-seed0 --minutes 8,9,10
    python benchmarks/cas.py RUN [RUN ...] --minutes 8,9,10 --epochs 3 --classifier-seeds 0,1

One checkpoint's CAS is a noisy figure: between two checkpoints a minute apart the same run can
score 95% and 90% of the real-data classifier (docs/quality.md), which is more than the gap between two
recipes. This script scores a run (a folder quality.py trained, with its wall-clock checkpoints) at each
of --minutes, by the checkpoint nearest that time in the run's metrics.jsonl, exactly as quality.py's
--cas does (10,000 samples drawn with the run's seed, classes cycled; the same small CNN trained
--epochs on them and on as many real images, both tested on the real test set), and prints a row per
checkpoint, then each run's mean and the mean over runs: a recipe's CAS over its seeds and over time.
"""

import argparse
import json
import statistics
from pathlib import Path

import yaml

from ganforge.checkpoint import run_checkpoints
from ganforge.sampling import balanced_labels
from ganforge.tasks import load
from ganforge.tasks.gan.handle import generate
from machine import describe_machine
from quality import Benchmark


def checkpoint_near(run: Path, seconds: float) -> tuple[Path, float]:
    """The run's checkpoint whose step was reached nearest ``seconds`` of training, and that time."""
    clock = [(r["step"], r["time"]) for r in map(json.loads, open(run / "metrics.jsonl")) if "time" in r]
    times = []
    for path in sorted(run_checkpoints(run / "checkpoints")):
        step = int(path.stem.split("_")[1])
        logged = [t for s, t in clock if s <= step]  # the last logged time at or before the checkpoint's step
        times.append((abs((logged[-1] if logged else 0.0) - seconds), path, logged[-1] if logged else 0.0))
    _, path, at = min(times)
    return path, at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders that quality.py trained (under its --out)")
    parser.add_argument("--minutes", default="8,9,10", help="the training times to score, comma-separated")
    parser.add_argument("--epochs", type=int, default=3, help="the classifier's epochs (quality.py's --cas: 3)")
    parser.add_argument("--classifier-seeds", default="0", help="classifier seeds, comma-separated, averaged")
    parser.add_argument("--n", type=int, default=10000, help="samples per checkpoint")
    parser.add_argument("--data-root", default="../shared/data", help="torchvision's data root holding MNIST")
    args = parser.parse_args()
    bench = Benchmark("mnist", args.data_root)
    minutes = [float(m) for m in args.minutes.split(",")]
    classifier_seeds = [int(s) for s in args.classifier_seeds.split(",")]
    print(f"# {describe_machine()}")
    print(f"# CAS: {args.n:,} samples, a small CNN trained {args.epochs} epochs, classifier seeds {classifier_seeds}")
    print("\n| run | minutes | steps | CAS | CAS, real | of real |")
    print("|---|---|---|---|---|---|")
    means = {}
    for run in map(Path, args.runs):
        seed = yaml.safe_load(open(run / "config.yaml"))["seed"]
        ratios = []
        for minute in minutes:
            path, at = checkpoint_near(run, minute * 60)
            images = generate(path, n=args.n, seed=seed)
            labels = balanced_labels(args.n, load(path).num_classes)
            scores = [bench.cas(images, labels, s, args.epochs) for s in classifier_seeds]
            cas = statistics.mean(s["cas"] for s in scores)
            real = statistics.mean(s["cas_real"] for s in scores)
            ratios.append(cas / real)
            print(
                f"| {run.name} | {at / 60:.1f} | {int(path.stem.split('_')[1]):,} | {cas:.3f} | {real:.3f} | "
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
