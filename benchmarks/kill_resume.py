"""Kill or interrupt a training run at random moments, resume it each time, and check nothing was lost.

    python benchmarks/kill_resume.py --recipe default --kills 20 --seed 0 --out docs/kill_resume.md

Trains on the embedded MNIST subset with a checkpoint after every step (so
signals often land in the middle of a save): ``--recipe default`` is what
``ganforge train`` does with no flags (the conditional DCGAN with EMA),
``--recipe mlp`` the small MLP. Once each (re)started run has saved a new
checkpoint, and after a further random delay, it sends SIGKILL, SIGINT
(a graceful stop that saves) or SIGINT twice in quick succession (the second
one interrupts at once, wherever the first left it, a save included), checks
that every checkpoint file in the run loads, resumes, and repeats. Finally it
lets the run finish and compares every tensor of its networks, EMA and
optimisers with an uninterrupted run of the same length: they must be equal,
bit for bit.
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganforge.checkpoint import checkpoint_step, load_checkpoint, run_checkpoints
from ganforge.device import describe_precision, usable_cores
from ganforge.errors import GanforgeError
from machine import cpu_name

RECIPES = {"default": [], "mlp": ["--model", "mlp", "--batch-size", "64"]}  # default: `ganforge train`'s own
SIGNALS = ("SIGKILL", "SIGINT", "SIGINT twice")
PARTS = ("generators", "discriminators", "ema_generators", "optimizers", "extras", "noise_rng")


def train_command(run: Path, data_root: Path, steps: int, resume: bool, recipe: str, threads: int) -> list[str]:
    common = ["--steps", str(steps), "--data-root", str(data_root), "--no-progress", "--no-tensorboard"]
    common += ["--threads", str(threads)]  # the same in every invocation: the count changes results in the last bits
    if resume:
        return [sys.executable, "-m", "ganforge", "resume", str(run), *common]
    every_step = ["--checkpoint-every", "1", "--sample-every", "0", "--no-download"]
    return [sys.executable, "-m", "ganforge", "train", *RECIPES[recipe], *every_step, "--out", str(run), *common]


def corrupt_checkpoints(run: Path) -> list[str]:
    """Checkpoint files in the run that do not load (must be none)."""
    bad = []
    for path in run_checkpoints(run / "checkpoints"):
        try:
            load_checkpoint(path)
        except GanforgeError as error:
            bad.append(f"{path.name}: {error}")
    return bad


def latest_step(run: Path) -> int | None:
    """The step of the run's latest checkpoint, or None before the first one."""
    try:
        return checkpoint_step(Path((run / "checkpoints" / "latest").read_text().strip()))
    except (OSError, ValueError, IndexError):
        return None


def resumable(run: Path) -> bool:
    return (run / "config.yaml").is_file() and bool(run_checkpoints(run / "checkpoints"))


def tensors(checkpoint: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a (nested) checkpoint part, by path."""
    if isinstance(checkpoint, torch.Tensor):
        return {prefix: checkpoint}
    if not isinstance(checkpoint, (dict, list, tuple)):
        return {}
    items = checkpoint.items() if isinstance(checkpoint, dict) else enumerate(checkpoint)
    return {path: t for key, value in items for path, t in tensors(value, f"{prefix}/{key}").items()}


def interrupt(process: subprocess.Popen, how: str, rng: random.Random) -> None:
    """Send ``how`` (one of SIGNALS) and wait for the process to end."""
    if how == "SIGKILL":
        process.send_signal(signal.SIGKILL)
    else:
        process.send_signal(signal.SIGINT)
        if how == "SIGINT twice":
            time.sleep(rng.uniform(0.0, 0.5))
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:  # a stop that never came is a failure of its own
        process.kill()
        raise SystemExit(f"the run did not stop within 120 s of {how}") from None


def kill_and_resume(work: Path, recipe: str, kills: int, seed: int, steps: int, max_delay: float) -> dict:
    """Run the experiment in ``work``; returns its figures."""
    data_root = work / "empty-root"  # no MNIST here: the embedded subset is used, nothing is downloaded
    data_root.mkdir()
    rng = random.Random(seed)
    run, reference = work / "killed", work / "reference"
    threads = usable_cores()
    subprocess.run(train_command(reference, data_root, steps, False, recipe, threads), check=True, capture_output=True)

    figures = {"signals": {how: 0 for how in SIGNALS}, "mid_run": 0, "corrupt": [], "steps": [], "tracebacks": 0}
    figures["threads"] = threads
    for _ in range(kills):
        log = (work / "stderr.txt").open("w+")  # a file, not a pipe: a full pipe would stall the run
        process = subprocess.Popen(
            train_command(run, data_root, steps, resumable(run), recipe, threads), stdout=subprocess.DEVNULL, stderr=log
        )
        started_at = latest_step(run)
        while process.poll() is None and latest_step(run) == started_at:  # wait until it has trained and saved
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, max_delay))
        if process.poll() is not None:  # finished before the signal: nothing more to test
            break
        how = rng.choice(SIGNALS)
        interrupt(process, how, rng)
        log.seek(0)
        figures["tracebacks"] += "Traceback" in log.read()
        log.close()
        figures["signals"][how] += 1
        figures["corrupt"] += corrupt_checkpoints(run)
        if resumable(run):
            figures["mid_run"] += 1
            figures["steps"].append(f"{load_checkpoint(run)['step']} ({how})")
    subprocess.run(
        train_command(run, data_root, steps, resumable(run), recipe, threads), check=True, capture_output=True
    )
    final, expected = load_checkpoint(run), load_checkpoint(reference)
    figures["final_step"] = final["step"]
    got, want = tensors({p: final.get(p) for p in PARTS}), tensors({p: expected.get(p) for p in PARTS})
    figures["tensors"] = len(want)
    figures["identical"] = got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    figures["model"] = f"{final['model']}, {'conditional' if final['config'].get('conditional') else 'unconditional'}"
    figures["model"] += ", EMA" if "ema_generators" in final else ""
    figures["model"] += f", batch {final['config'].get('batch_size')}"
    figures["model"] += (
        f", precision {describe_precision(final['config'].get('precision') or '32', torch.device('cpu'))}"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=RECIPES, default="default", help="what to train (default: default)")
    parser.add_argument("--kills", type=int, default=20, help="how many times to signal the run (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the delays and signals (default: 0)")
    parser.add_argument("--steps", type=int, default=6000, help="length of the run (default: 6000)")
    parser.add_argument(
        "--max-delay", type=float, default=8.0, help="longest wait after a run's first new checkpoint, s (default: 8)"
    )
    parser.add_argument("--out", help="also write the report as Markdown to this file")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        figures = kill_and_resume(Path(work), args.recipe, args.kills, args.seed, args.steps, args.max_delay)
    command = (
        f"python benchmarks/kill_resume.py --recipe {args.recipe} --kills {args.kills} --seed {args.seed} "
        f"--steps {args.steps} --max-delay {args.max_delay:g}"
    )
    sent = ", ".join(f"{count} {how}" for how, count in figures["signals"].items())
    report = "\n".join(
        [
            f"## `--recipe {args.recipe}`: {figures['model']}",
            "",
            f"`{command}`",
            f"on {cpu_name()} ({os.cpu_count()} cores, --threads {figures['threads']}), torch {torch.__version__}, "
            f"{time.monotonic() - started:.0f} s in all.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| signals sent | {sum(figures['signals'].values())}: {sent} |",
            f"| signals after the first checkpoint (then resumed) | {figures['mid_run']} |",
            f"| step of the latest checkpoint after each (signal) | {', '.join(figures['steps'])} |",
            f"| corrupt checkpoint files found | {len(figures['corrupt'])} |",
            f"| runs that printed a traceback | {figures['tracebacks']} |",
            f"| final step | {figures['final_step']} of {args.steps} |",
            f"| the {figures['tensors']} tensors of networks, EMA and optimisers equal an uninterrupted run's, "
            f"bit for bit | {'yes' if figures['identical'] else 'NO'} |",
        ]
    )
    print(report)
    for problem in figures["corrupt"]:
        print("corrupt:", problem)
    if args.out:
        Path(args.out).write_text(report + "\n")
    if figures["corrupt"] or not figures["identical"] or figures["tracebacks"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
