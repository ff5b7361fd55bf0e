"""Training images/s on the CPU with torch's default threads, one thread and ganforge's auto count, idle and busy.

    python benchmarks/threads.py --data-root ../shared/data                        # 10 s measured per row
    python benchmarks/threads.py --data-root ../shared/data --quick                # 3 s per row, to try it out
    python benchmarks/threads.py --data-root ../shared/data --models mlp --neighbours idle,numpy

For each model (mlp and dcgan, as benchmarks/throughput.py runs them: unconditional, no EMA, the model's batch
size) and each neighbour, it runs `python -m ganforge train` three times:

  default        --threads N, N being torch's own default in a fresh process (one thread per core): what
                 ganforge did before it chose a count itself;
  1              --threads 1;
  auto           no --threads: ganforge counts the cores that other processes leave free (the count it chose
                 is shown, and whether it warned that the machine is busy).

The neighbours, each started by this script before the group's runs and stopped after them:

  idle           none (whatever else runs on the machine still counts: run it alone);
  numpy          a numpy float64 matmul loop with one BLAS thread, pinned to the last core of this process's
                 CPU set where the OS allows it;
  python         a pure-Python busy loop, pinned the same way.

images/s come from each run's metrics.jsonl, the reports of its first --warmup seconds left out, and every
ratio divides by the default row of the same model next to the same neighbour, measured in the same run of
this script. Prints the CPU (its model name from /proc/cpuinfo), then a Markdown table; --json PATH writes
the rows too.
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ganforge.device import count_cores
from ganforge.models import MODELS
from throughput import machine_line, measure_ganforge

# What each neighbour runs, in its own Python process; {cpu} is the core it is pinned to.
NEIGHBOURS = {
    "idle": None,
    "numpy": "import numpy as np\na = np.random.rand(512, 512)\nwhile True:\n    a @ a",
    "python": "while True:\n    pass",
}
PIN = "import os\nif hasattr(os, 'sched_setaffinity'):\n    os.sched_setaffinity(0, {{{cpu}}})\n"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
STEPS_PER_SECOND = {"mlp": 10.0, "dcgan": 2.0}  # a low guess for the report cadence: a report every 5 and 1 steps
SETTLE_S = 1.0  # the neighbour runs this long before the first row, so that auto sees it


@contextlib.contextmanager
def neighbour(name: str) -> Iterator[str]:
    """Run the neighbour ``name`` until the block ends; yields where it runs, in words."""
    if NEIGHBOURS[name] is None:
        yield "nothing started"
        return
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
    pinned = cpus[-1] is not None
    code = (PIN.format(cpu=cpus[-1]) if pinned else "") + NEIGHBOURS[name]
    process = subprocess.Popen([sys.executable, "-c", code], env=os.environ | ONE_THREAD)
    try:
        time.sleep(SETTLE_S)
        if process.poll() is not None:
            raise SystemExit(f"the {name} neighbour exited at once (code {process.returncode})")
        yield f"pid {process.pid}, " + (f"pinned to CPU {cpus[-1]}" if pinned else "not pinned (no sched_setaffinity)")
    finally:
        process.kill()
        process.wait()


def thread_options(default_threads: int) -> list[tuple[str, list[str], str]]:
    """(label, flags, precision) of each row of a group, as measure_ganforge takes them."""
    return [
        (f"default ({default_threads})", ["--threads", str(default_threads), "--precision", "32"], "32"),
        ("1", ["--threads", "1", "--precision", "32"], "32"),
        ("auto", ["--precision", "32"], "32"),
    ]


def what_auto_chose(log: Path) -> str:
    """The thread count a run logged, and whether it warned that the machine was busy."""
    text = log.read_text(errors="replace") if log.exists() else ""
    chosen = re.search(r"threads: (\d+)", text)
    return (f"auto ({chosen.group(1)})" if chosen else "auto (?)") + (", warned" if "machine is busy" in text else "")


def measure_group(model: str, name: str, args: argparse.Namespace, work: Path) -> list[dict]:
    """The three rows of ``model`` next to the neighbour ``name``, each printed as it is measured."""
    work.mkdir()
    rows = []
    with neighbour(name) as where:
        cores = count_cores()
        print(f"# {model} next to {name} ({where}): {cores.busy} of {cores.allowed} cores busy", flush=True)
        for option in thread_options(args.default_threads):
            row = measure_ganforge(model, MODELS[model].batch_size, option, STEPS_PER_SECOND[model], args, work)
            if option[0] == "auto":
                row["options"] = what_auto_chose(work / f"ganforge-{model}-auto.log")
            rows.append(row | {"neighbour": name})
            print(json.dumps(rows[-1]), flush=True)
    default = rows[0]["images_per_sec"]
    for row in rows:
        row["vs_default"] = row["images_per_sec"] / default if default and row["images_per_sec"] else None
    return rows


def print_table(rows: list[dict]) -> None:
    """The Markdown table, then why any row has no figures."""
    print("\n| model | next to | threads | images/s | vs default |")
    print("|---|---|---|---|---|")
    for row in rows:
        speed = f"{row['images_per_sec']:,.0f}" if row["images_per_sec"] else row["status"].split(":")[0]
        ratio = f"{row['vs_default']:.2f}x" if row["vs_default"] else "–"
        print(f"| {row['model']} | {row['neighbour']} | {row['options']} | {speed} | {ratio} |")
    for row in rows:
        if row["status"] != "ok":
            print(f"\n{row['model']} next to {row['neighbour']}, threads {row['options']}: {row['status']}")


def parse_args() -> argparse.Namespace:
    """The command line, with --quick resolved and what measure_ganforge reads (--device cpu) set."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="torchvision data root holding MNIST (never downloaded)")
    parser.add_argument("--models", default="mlp,dcgan", help="ganforge models, comma-separated (default: mlp,dcgan)")
    parser.add_argument(
        "--neighbours", default=",".join(NEIGHBOURS), help=f"from {', '.join(NEIGHBOURS)} (default: all)"
    )
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per row (default: 10)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out per row (default: 3)")
    parser.add_argument("--quick", action="store_true", help="3 measured seconds and 1 of warm-up per row")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON to PATH")
    args = parser.parse_args()
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    args.models, args.neighbours = args.models.split(","), args.neighbours.split(",")
    unknown = [m for m in args.models if m not in MODELS] + [n for n in args.neighbours if n not in NEIGHBOURS]
    if unknown:
        parser.error(f"unknown model or neighbour: {', '.join(unknown)}")
    if os.environ.get("OMP_NUM_THREADS"):
        parser.error("OMP_NUM_THREADS is set: it fixes the thread count this benchmark varies; unset it")
    args.device = "cpu"
    args.default_threads = torch.get_num_threads()  # torch's default: no OMP_NUM_THREADS, nothing set yet
    return args


def main() -> None:
    """Measure every group, each row in its own `ganforge train` process, then print the table."""
    args = parse_args()
    machine = machine_line(args)
    print(f"# {machine}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ganforge-threads-") as folder:
        rows = [
            row
            for model in args.models
            for name in args.neighbours
            for row in measure_group(model, name, args, Path(folder) / f"{model}-{name}")
        ]
    print(f"\n{machine}; {args.seconds:g} s measured per row after {args.warmup:g} s of warm-up")
    print_table(rows)
    if args.json:
        summary = dict(machine=machine, seconds=args.seconds, warmup=args.warmup, rows=rows)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
