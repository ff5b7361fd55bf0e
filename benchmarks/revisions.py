"""Is the training loop slower than it was? `ganforge train` images/s of this checkout against an earlier commit.

    python benchmarks/revisions.py --data-root ../shared/data --base ec06dff             # 3 rounds, 30 s a row
    python benchmarks/revisions.py --data-root ../shared/data --base HEAD~5 --rounds 5 --models dcgan
    python benchmarks/revisions.py --data-root ../shared/data --base e078c8a --models mlp,dcgan,pix2pix

``pix2pix`` is a row of pix2pix (its defaults: U-Net, batch 16, EMA) on CMP Facades at 64 px, labels to photo
(``--facades``, default ../shared/data/facades), timed the same way.

The earlier commit's src/ is taken with `git archive` into a temporary folder and run with PYTHONPATH pointing
at it; this checkout's src/ runs the same way, so both are `python -m ganforge train` with the same flags:
throughput.py's "plain" ganforge row (unconditional, no EMA, no sampling, checkpoints or evaluation while
timed). The two trees alternate within each round (base first in odd rounds, head first in even ones), so a
machine whose speed drifts over minutes drifts under both. Prints each row as measured, then per model the
median images/s of each tree and their ratio (head / base), and the machine. Run it alone on the machine.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ganforge.models import MODELS
from machine import describe_machine
from throughput import ganforge_options, measure_ganforge

REPO = Path(__file__).resolve().parents[1]


def export_src(revision: str, folder: Path) -> Path:
    """``revision``'s src/ written into ``folder``; returns the folder to put on PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], check=True, capture_output=True)
    folder.mkdir(parents=True, exist_ok=True)
    archive_path = folder / "src.tar"
    archive_path.write_bytes(archive.stdout)
    with tarfile.open(archive_path) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


@contextlib.contextmanager
def python_path(src: Path):
    """Child processes import ganforge from ``src`` (PYTHONPATH comes before the installed package)."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def imported_from(src: Path) -> str:
    """Where a child process with ``src`` on PYTHONPATH imports ganforge from (a check that the base is run)."""
    with python_path(src):
        code = "import ganforge.training, sys; print(sys.modules['ganforge.training'].__file__)"
        return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="torchvision data root holding MNIST (read only)")
    parser.add_argument("--base", required=True, help="the earlier commit to compare with (any git revision)")
    parser.add_argument(
        "--models", default="mlp,dcgan", help="ganforge models, or pix2pix, comma-separated (default: mlp,dcgan)"
    )
    parser.add_argument("--facades", default=str(REPO.parent / "shared" / "data" / "facades"), help="pix2pix's data")
    parser.add_argument("--rounds", type=int, default=3, help="rows per tree and model (default: 3)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per row (default: 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out per row (default: 5)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON to PATH")
    args = parser.parse_args()
    args.device, args.models = "cpu", args.models.split(",")
    return args


def main() -> None:
    args = parse_args()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    base = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True)
    names = {"base": base.stdout.strip(), "head": head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")}
    plain = ganforge_options([])[0]  # ("plain", ["--precision", "32"], "32"): a base older than auto took 32 too
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganforge-revisions-") as temporary:
        work = Path(temporary)
        trees = {"base": export_src(args.base, work / "base"), "head": REPO / "src"}
        for name, src in trees.items():
            print(f"{name} {names[name]}: ganforge from {imported_from(src)}", flush=True)
        for round_number in range(1, args.rounds + 1):
            order = ["base", "head"] if round_number % 2 else ["head", "base"]
            for model in args.models:
                for name in order:
                    folder = work / f"{name}-{model}-{round_number}"
                    folder.mkdir()
                    with python_path(trees[name]):
                        batch_size = MODELS["unet" if model == "pix2pix" else model].batch_size
                        expected = 2.0 if model == "pix2pix" else 10.0  # steps/s: how often it reports
                        row = measure_ganforge(model, batch_size, plain, expected, args, folder)
                    row |= {"tree": name, "revision": names[name], "round": round_number}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\nmachine: {describe_machine('cpu')}")
    print(f"`ganforge train` plain, images/s: median of {args.rounds} rows of {args.seconds:.0f} s each\n")
    print(f"| model | base {names['base']} | head {names['head']} | head / base | every row (base; head) |")
    print("|---|---|---|---|---|")
    for model in args.models:
        ok = [row for row in rows if row["model"] == model and row["status"] == "ok"]
        speeds = {name: [row["images_per_sec"] for row in ok if row["tree"] == name] for name in ("base", "head")}
        if not speeds["base"] or not speeds["head"]:
            print(f"| {model} | failed: see the rows above | | | |")
            continue
        medians = {name: statistics.median(values) for name, values in speeds.items()}
        each = "; ".join(", ".join(f"{value:,.0f}" for value in speeds[name]) for name in ("base", "head"))
        print(
            f"| {model} | {medians['base']:,.0f} | {medians['head']:,.0f} | "
            f"{medians['head'] / medians['base']:.3f}x | {each} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
