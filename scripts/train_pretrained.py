"""Train a pretrained generator shipped in the package (src/ganforge/assets/pretrained/NAME.pt) and write its
card (NAME.md): the command, the machine, the time and the scores, so that every figure on it can be made again.

    python scripts/train_pretrained.py mnist --data-root ../shared/data --minutes 5
    python scripts/train_pretrained.py cifar10 --data ../shared/data/cifar10/train --minutes 10

Each is the default recipe of its data (``ganforge train`` with nothing but the data and the time), seed 0. The
file keeps the generator's moving average (EMA) in float16 with the run's config and class names: what
``ganforge.load("mnist")`` and every command read (``ganforge serve mnist``), weights-only, a few MB.
"""

import argparse
import datetime
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, resolve_checkpoint
from ganforge.device import describe_precision
from ganforge.pretrained import FOLDER, PRETRAINED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from machine import describe_machine  # noqa: E402

SCORES = ("fid", "kid", "precision", "recall", "classes_covered", "class_kl", "label_acc", "label_acc_min")


def portable(config: dict) -> dict:
    """The run's config as it reads on another machine: no paths of this one. A folder of a built-in dataset's
    images (CIFAR-10's JPEGs) becomes that dataset's name, so ``evaluate`` scores against its test split there."""
    config = dict(config) | {"out": None}
    data = Path(str(config.get("data")))
    if data.exists():
        config["data"] = next((name for name in PRETRAINED if name in data.parts), data.name)
    config["gan"] = dict(config.get("gan") or {}) | {"data_root": None, "download": True}
    return config


def shipped_checkpoint(run: Path) -> dict:
    """The run's latest checkpoint cut to what sampling needs: the generator's average in float16, its config."""
    checkpoint = load_checkpoint(resolve_checkpoint(run))
    weights = checkpoint.get("ema_generators") or checkpoint["generators"]
    to_half = lambda state: {key: t.half() if t.is_floating_point() else t for key, t in state.items()}  # noqa: E731
    half = {name: to_half(state) for name, state in weights.items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ganforge_version": ganforge.__version__,
        "task": checkpoint["task"],
        "model": checkpoint["model"],
        "generator_args": checkpoint["generator_args"],
        "generators": half,
        "exported_ema": "ema_generators" in checkpoint,
        "config": portable(checkpoint["config"]),
        "classes": checkpoint.get("classes", []),
        "step": checkpoint["step"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(PRETRAINED))
    parser.add_argument("--data", help="the training data (default: the name, a built-in dataset)")
    parser.add_argument("--data-root", help="torchvision data root holding the built-in dataset")
    parser.add_argument("--minutes", type=float, required=True, help="training budget")
    parser.add_argument("--n", type=int, default=10000, help="samples the card's scores are computed from")
    parser.add_argument("--out", type=Path, default=FOLDER, help="folder for NAME.pt and NAME.md")
    args = parser.parse_args()

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        config = ganforge.TrainConfig(
            data=args.data or args.name, data_root=args.data_root, minutes=args.minutes, seed=0,
            out=str(Path(work) / "run"), progress=False, tensorboard=False, download=False,
        )  # fmt: skip
        result = ganforge.train(config)
        trained = time.monotonic() - started
        scores = ganforge.evaluate(result.run_dir, n=args.n, data_root=args.data_root, seed=0)
        shipped = shipped_checkpoint(result.run_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(shipped, args.out / f"{args.name}.pt")
    size = (args.out / f"{args.name}.pt").stat().st_size
    again = ganforge.load(args.out / f"{args.name}.pt")  # what a user gets: it must sample
    assert again.sample(4, seed=0).shape[0] == 4

    precision = describe_precision(shipped["config"].get("precision") or "32", torch.device("cpu"))
    class_loss = (shipped["config"].get("gan") or {}).get("class_loss")
    table = [f"| {name} | {scores[name]:.4g} |" for name in SCORES if isinstance(scores.get(name), (int, float))]
    card = [
        f"# `{args.name}`: {PRETRAINED[args.name]}",
        "",
        f'`ganforge.load("{args.name}")`, `ganforge generate {args.name} --n 64 --out grid.png`, '
        f"`ganforge serve {args.name}`: no data, no network, no training.",
        "",
        f"- **Recipe:** `ganforge train` on `{config.data}` with its defaults ({shipped['model']}, "
        f"{'conditional, ' if shipped['generator_args']['generator'].get('num_classes') else ''}"
        f"EMA, batch {shipped['config'].get('batch_size')}, Adam {shipped['config'].get('lr'):g}, "
        f"{f'class term {class_loss:g}, ' if class_loss else ''}precision {precision}), "
        f"seed 0, {args.minutes:g} minutes: {shipped['step']:,} steps.",
        f"- **Machine:** {describe_machine()}; training took {trained / 60:.1f} minutes.",
        f"- **File:** the generator's moving average in float16 with the run's config, {size / 1e6:.1f} MB.",
        f"- **Made by:** `python scripts/train_pretrained.py {shlex.join(sys.argv[1:])}` on "
        f"{datetime.date.today().isoformat()}.",
        "",
        f"Scores of {args.n:,} samples (seed 0) against the data's test split or held-out part, in the "
        f"`{scores.get('features')}` features (not Inception-v3: compare with ganforge's other figures, not "
        "papers'):",
        "",
        "| score | value |",
        "|---|---|",
        *table,
    ]
    (args.out / f"{args.name}.md").write_text("\n".join(card) + "\n")
    print("\n".join(card))


if __name__ == "__main__":
    main()
