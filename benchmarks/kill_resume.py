"""SIGKILL a training run at random moments, resume it each time, and check nothing was lost.

    python benchmarks/kill_resume.py --kills 20 --seed 0 --out docs/kill_resume.md

Trains a small mlp on the embedded MNIST subset with a checkpoint after every
step (so kills often land in the middle of a save), kills it with SIGKILL
after a random delay, checks that every checkpoint file in the run loads and
that the run resumes, and repeats. Finally it lets the run finish and compares
its weights with an uninterrupted run of the same length: they must be equal,
bit for bit.
"""

import argparse
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganforge.checkpoint import load_checkpoint, run_checkpoints
from ganforge.device import usable_cores
from ganforge.errors import GanforgeError


def train_command(run: Path, data_root: Path, steps: int, resume: bool, threads: int) -> list[str]:
    common = ["--steps", str(steps), "--data-root", str(data_root), "--no-progress", "--no-tensorboard"]
    common += ["--threads", str(threads)]  # the same in every invocation: the count changes results in the last bits
    if resume:
        return [sys.executable, "-m", "ganforge", "resume", str(run), *common]
    return [
        sys.executable,
        "-m",
        "ganforge",
        "train",
        "--model",
        "mlp",
        "--batch-size",
        "64",
        "--no-download",
        "--checkpoint-every",
        "1",
        "--sample-every",
        "0",
        "--out",
        str(run),
        "--overwrite",
        *common,
    ]


def corrupt_checkpoints(run: Path) -> list[str]:
    """Checkpoint files in the run that do not load (must be none)."""
    bad = []
    for path in run_checkpoints(run / "checkpoints"):
        try:
            load_checkpoint(path)
        except GanforgeError as error:
            bad.append(f"{path.name}: {error}")
    return bad


def resumable(run: Path) -> bool:
    return (run / "config.yaml").is_file() and bool(run_checkpoints(run / "checkpoints"))


def kill_and_resume(work: Path, kills: int, seed: int, steps: int, max_delay: float) -> dict:
    """Run the experiment in ``work``; returns its figures."""
    data_root = work / "empty-root"  # no MNIST here: the embedded subset is used, nothing is downloaded
    data_root.mkdir()
    rng = random.Random(seed)
    run, reference = work / "killed", work / "reference"
    threads = usable_cores()
    subprocess.run(train_command(reference, data_root, steps, False, threads), check=True, capture_output=True)

    figures = {"kills": 0, "kills_mid_run": 0, "resumes": 0, "corrupt": [], "steps_at_kills": [], "threads": threads}
    for _ in range(kills):
        process = subprocess.Popen(
            train_command(run, data_root, steps, resumable(run), threads),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, max_delay))
        if process.poll() is not None:  # finished before the kill: nothing more to test
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        figures["kills"] += 1
        figures["corrupt"] += corrupt_checkpoints(run)
        if resumable(run):
            figures["kills_mid_run"] += 1
            figures["steps_at_kills"].append(load_checkpoint(run)["step"])
    subprocess.run(train_command(run, data_root, steps, resumable(run), threads), check=True, capture_output=True)
    figures["resumes"] = figures["kills_mid_run"]
    final, expected = load_checkpoint(run), load_checkpoint(reference)
    figures["final_step"] = final["step"]
    figures["identical"] = all(
        torch.equal(final[part][name], expected[part][name])
        for part in ("generator", "discriminator")
        for name in expected[part]
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="how many times to SIGKILL the run (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays (default: 0)")
    parser.add_argument("--steps", type=int, default=6000, help="length of the run (default: 6000)")
    parser.add_argument("--max-delay", type=float, default=8.0, help="longest wait before a kill, s (default: 8)")
    parser.add_argument("--out", help="also write the report as Markdown to this file")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        figures = kill_and_resume(Path(work), args.kills, args.seed, args.steps, args.max_delay)
    steps_at_kills = ", ".join(map(str, figures["steps_at_kills"]))
    report = "\n".join(
        [
            "# kill_resume: SIGKILL at random moments, then resume",
            "",
            f"`python benchmarks/kill_resume.py --kills {args.kills} --seed {args.seed} --steps {args.steps}`",
            f"on {platform.machine()} with {figures['threads']} threads, torch {torch.__version__}, "
            f"{time.monotonic() - started:.0f} s in all.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| SIGKILLs sent | {figures['kills']} |",
            f"| kills after the first checkpoint (then resumed) | {figures['kills_mid_run']} |",
            f"| step of the latest checkpoint after each such kill | {steps_at_kills} |",
            f"| corrupt checkpoint files found | {len(figures['corrupt'])} |",
            f"| final step | {figures['final_step']} of {args.steps} |",
            f"| final weights equal an uninterrupted run's, bit for bit | {'yes' if figures['identical'] else 'NO'} |",
        ]
    )
    print(report)
    for problem in figures["corrupt"]:
        print("corrupt:", problem)
    if args.out:
        Path(args.out).write_text(report + "\n")
    if figures["corrupt"] or not figures["identical"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
