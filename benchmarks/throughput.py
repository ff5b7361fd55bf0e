"""Training throughput on MNIST: ganforge's training loop against plain PyTorch loops of the same networks.

    python benchmarks/throughput.py --data-root ../shared/data                  # ~40 s of measurement per row
    python benchmarks/throughput.py --data-root ../shared/data --quick          # a few seconds per row, to try it out
    python benchmarks/throughput.py --data-root ../shared/data --models dcgan --precisions 32,bf16 --json out.json

For each model (ganforge's `mlp` and `dcgan`, unconditional, no EMA, at the model's batch size: mlp 128,
dcgan 64, or --batch-size for both) it measures images/s in these rows:

  examples (a)   the baseline: the pytorch/examples DCGAN `main.py` loop around ganforge's networks.
                 torchvision MNIST with ToTensor + Normalize (onto the generator's output range) through a
                 DataLoader (shuffle, drop_last, --num-workers), BCELoss on sigmoid(D(x)), Adam; per step D on
                 real, D on G(z).detach(), D step, then the G step through D. The ratio column divides by it.
  memory (a')    the same networks in a lean hand-written loop: MNIST as one uint8 tensor on the device, random
                 index batches scaled on the fly, BCE with logits, channels-last, D frozen for the G step, no
                 host sync: what the hardware gives without framework overhead. One row per precision.
  ganforge (b)   `python -m ganforge train` itself on the baseline's networks (--no-conditional --no-ema, and no
                 sampling, checkpoints or evaluation while timed: "plain", in float32 like the baseline), then
                 --compile, then each --precision other than 32; images/s from the run's metrics.jsonl, the
                 reports of the first --warmup seconds (start-up, compilation) left out. The run is stopped with
                 SIGINT once enough is measured, as a user would stop it.

Every row runs in its own process (the plain loops re-invoke this script with a hidden --worker), so its
peak resident memory (ru_maxrss from wait4) is its own. GFLOP/s is the matmul and convolution FLOPs of one
ganforge training step (torch.utils.flop_counter.FlopCounterMode) times the row's steps/s: useful work, the
same count for every loop (the baseline does a little more, D's weight gradients in its G step). "% of peak"
compares it with a large matmul measured in this run at the row's precision (float32 where no faster peak
is measured). bf16 is left out by default on a CPU without native bf16 (AMX / AVX512-BF16), where it is
~20x slower than float32 (--precisions 32,bf16 forces it); on CUDA 16-mixed is measured too. ganforge
options it does not know yet (a usage error) are reported as unavailable.

Run it alone on the machine: these are wall-clock figures. Prints the machine, a Markdown table and a
PASS/FAIL line for each of the issue's targets (ganforge with its default flags >= 2x the baseline's
images/s for each model: the row of the precision `--precision auto` picks on the device; peak RSS <= 1.5 GB
for every ganforge row); --json PATH writes the rows too, --logs DIR keeps every row's log and run directory,
--loops and --models measure a subset.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.device import resolve_device, resolve_precision
from ganforge.models import MODELS, build_discriminator, build_generator
from machine import describe_machine

Z_DIM = 100  # ganforge's default noise length
AUTOCAST_DTYPES = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}
MATMUL_DTYPES = {"32": torch.float32, "bf16": torch.bfloat16, "16-mixed": torch.float16}
PEAK_MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}  # square matmul measuring the machine's peak FLOP/s
TARGET_RATIO = 2.0  # the issue: ganforge >= 2x the baseline's images/s, for mlp and for dcgan
TARGET_RSS_MIB = 1.5e9 / 2**20  # the issue: peak resident memory <= 1.5 GB per ganforge run
START_LIMIT_S = 600  # a row may take this long beyond --warmup + --seconds (imports, data, compilation)
POLL_S = 0.25  # how often a running ganforge row's metrics.jsonl is read


# ---------------------------------------------------------------- workers: one measurement per process


def build_networks(model: str, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """ganforge's unconditional generator and discriminator of ``model`` for 1x28x28 MNIST, at the model's width."""
    shape = dict(width=MODELS[model].width, channels=1, image_size=28, num_classes=0)
    torch.manual_seed(0)
    generator = build_generator(model, dict(z_dim=Z_DIM, **shape)).to(device)
    return generator, build_discriminator(model, shape).to(device)


def adam(module: nn.Module, model: str) -> torch.optim.Adam:
    """Adam with the model's recipe, as ganforge builds it."""
    return torch.optim.Adam(module.parameters(), lr=MODELS[model].lr, betas=MODELS[model].betas)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that the clock covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(train_step: Callable, batches: Iterator, task: dict) -> dict:
    """Run ``train_step(batch)`` for task["warmup"] seconds (3 steps at least), then count steps for task["seconds"]."""
    device = torch.device(task["device"])

    def run_for(duration: float, min_steps: int) -> tuple[int, float]:
        started, steps = time.perf_counter(), 0
        while steps < min_steps or time.perf_counter() - started < duration:
            train_step(next(batches))
            steps += 1
        synchronize(device)
        return steps, time.perf_counter() - started

    run_for(task["warmup"], 3)
    steps, seconds = run_for(task["seconds"], 1)
    return {"steps": steps, "seconds": seconds, "steps_per_sec": steps / seconds}


def examples_loop(task: dict) -> dict:
    """(a) The pytorch/examples DCGAN main.py loop, with ganforge's networks and batch size."""
    import torchvision
    from torchvision import transforms

    model, batch_size, device = task["model"], task["batch_size"], torch.device(task["device"])
    netG, netD = build_networks(model, device)
    low, high = netG.output_range
    # ToTensor gives [0, 1]; this Normalize maps it onto the generator's range: [-1, 1] for dcgan, [0, 1] for mlp.
    normalize = transforms.Normalize((-low / (high - low),), (1 / (high - low),))
    transform = transforms.Compose([transforms.ToTensor(), normalize])
    dataset = torchvision.datasets.MNIST(task["data_root"], download=False, transform=transform)
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=task["num_workers"], drop_last=True
    )
    criterion = nn.BCELoss()
    optimizerD, optimizerG = adam(netD, model), adam(netG, model)

    def train_step(data: list) -> tuple:
        netD.zero_grad()
        real = data[0].to(device)  # (B, 1, 28, 28)
        label = torch.full((batch_size,), 1.0, device=device)
        output = torch.sigmoid(netD(real))  # (B,)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        fake = netG(torch.randn(batch_size, Z_DIM, device=device))  # (B, 1, 28, 28)
        label.fill_(0.0)
        output = torch.sigmoid(netD(fake.detach()))
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        netG.zero_grad()
        label.fill_(1.0)
        output = torch.sigmoid(netD(fake))
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        # What main.py prints every step: reading them (a host sync each) is part of its loop.
        return errD.item(), errG.item(), D_x, D_G_z1, D_G_z2

    def forever() -> Iterator:
        while True:
            yield from dataloader

    return time_steps(train_step, forever(), task)


def memory_loop(task: dict) -> dict:
    """(a') The same networks in a lean loop on in-memory uint8 MNIST: the hardware without framework overhead."""
    import torchvision

    model, batch_size, device = task["model"], task["batch_size"], torch.device(task["device"])
    mnist = torchvision.datasets.MNIST(task["data_root"], download=False)
    images = mnist.data[:, None].to(device)  # (N, 1, 28, 28) uint8
    generator, discriminator = build_networks(model, device)
    generator = generator.to(memory_format=torch.channels_last)
    discriminator = discriminator.to(memory_format=torch.channels_last)
    low, high = generator.output_range
    g_optimizer, d_optimizer = adam(generator, model), adam(discriminator, model)
    dtype = AUTOCAST_DTYPES[task["precision"]]
    amp = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    ones = torch.ones(batch_size, device=device)
    zeros = torch.zeros(batch_size, device=device)

    def batches() -> Iterator:
        while True:
            indices = torch.randint(len(images), (batch_size,), device=device)
            real = images[indices].float() * ((high - low) / 255) + low  # (B, 1, 28, 28)
            yield real.contiguous(memory_format=torch.channels_last), torch.randn(batch_size, Z_DIM, device=device)

    def train_step(batch: tuple) -> None:
        real, z = batch
        with amp:
            fake = generator(z)  # (B, 1, 28, 28)
            real_logits, fake_logits = discriminator(real), discriminator(fake.detach())  # (B,)
        d_loss = F.binary_cross_entropy_with_logits(real_logits.float(), ones)
        d_loss = d_loss + F.binary_cross_entropy_with_logits(fake_logits.float(), zeros)
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        discriminator.requires_grad_(False)  # the G step needs no gradients of D's weights
        with amp:
            fake_logits = discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(fake_logits.float(), ones)
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)

    return time_steps(train_step, batches(), task)


def count_step_flops(task: dict) -> dict:
    """Matmul and convolution FLOPs of one ganforge training step (forward and backward of both updates)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ganforge.config import TrainConfig
    from ganforge.tasks import RunData
    from ganforge.tasks.gan.step import Batch, build_recipe, training_step
    from ganforge.training import build_train_state

    config = TrainConfig(
        model=task["model"], conditional=False, ema=False, batch_size=task["batch_size"], channels=1, image_size=28
    ).resolved(RunData(None, None, "", (), 0, facts={"image_shape": (1, 28, 28), "labelled": False}))
    device = torch.device("cpu")  # the count does not depend on the device
    networks = config.task_spec.networks(config, None)
    state, recipe = build_train_state(config, device, *networks, task["batch_size"]), build_recipe(config, device)
    real = torch.rand(task["batch_size"], 1, 28, 28).contiguous(memory_format=torch.channels_last)
    batch = Batch(real, torch.randn(task["batch_size"], config.settings.z_dim))
    with FlopCounterMode(display=False) as counter:
        training_step(state, recipe, batch, step=0)
    return {"flops": counter.get_total_flops()}


def matmul_peak(task: dict) -> dict:
    """The best FLOP/s of a large square matmul at the task's precision, over a few repetitions."""
    device = torch.device(task["device"])
    size, dtype = PEAK_MATMUL_SIZE[device.type], MATMUL_DTYPES[task["precision"]]
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    per_rep = 10 if device.type == "cuda" else 1  # enough work per timing to hide the launch
    best = float("inf")
    for _ in range(1 + task["reps"]):  # the first one warms up
        synchronize(device)
        started = time.perf_counter()
        for _ in range(per_rep):
            a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return {"flops_per_sec": 2 * size**3 * per_rep / best}


WORKER_TASKS = {"examples": examples_loop, "memory": memory_loop, "flops": count_step_flops, "peak": matmul_peak}


# ---------------------------------------------------------------- processes


def run_process(command: list[str], log_path: Path, limit_s: float, should_stop: Callable | None = None) -> tuple:
    """Run ``command`` (output to ``log_path``) until it exits; returns (exit code, peak RSS in MiB).

    ``should_stop()`` is asked every POLL_S seconds; once it says yes, or ``limit_s`` has passed, the
    process gets SIGINT (ganforge stops cleanly after the step), then SIGKILL a minute later.
    The process is reaped with wait4 for its own rusage, so the peak RSS is this process's alone.
    """
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    started, interrupted = time.monotonic(), None
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if interrupted is None and (time.monotonic() - started > limit_s or (should_stop and should_stop())):
            process.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
        elif interrupted is not None and time.monotonic() - interrupted > 60:
            process.kill()
        time.sleep(POLL_S)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped above; tells Popen not to wait again
    return process.returncode, usage.ru_maxrss / 1024  # Linux: KiB


def last_line(path: Path) -> str:
    """The last non-blank line of a log file: the error message of a process that failed."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def log_warnings(path: Path) -> list[str]:
    """Warnings in a ganforge run's log (a --compile that fell back to eager, say), without the expected SIGINT one."""
    lines = path.read_text(errors="replace").splitlines()
    warnings = [line.strip() for line in lines if "warn" in line.lower() or "training without" in line]
    return [line[:200] for line in warnings if "SIGINT received" not in line][:3]


def run_worker_task(task: dict, work: Path, limit_s: float) -> tuple[dict | None, float, str]:
    """Run one worker task in a fresh process of this script; returns (its result or None, peak RSS MiB, status)."""
    name = "-".join(str(task[key]) for key in ("task", "model", "precision") if key in task)  # memory-mlp-32
    result_path, log_path = work / f"{name}.json", work / f"{name}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(task)]
    command += ["--result", str(result_path)]
    code, rss = run_process(command, log_path, limit_s)
    if code != 0 or not result_path.exists():
        return None, rss, f"failed: {last_line(log_path)}"
    return json.loads(result_path.read_text()), rss, "ok"


def read_reports(path: Path) -> list[dict]:
    """The progress reports in a run's metrics.jsonl (a line still being written is skipped)."""
    reports = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "images_per_sec" in record:
            reports.append(record)
    return reports


def measured_window(reports: list[dict], warmup: float) -> tuple[dict, dict] | None:
    """(start, end) reports of the measured part: from the first report ``warmup`` seconds after the first
    (which holds start-up and compilation) to the last; None while there is no such pair yet."""
    if not reports:
        return None
    start = next((report for report in reports if report["time"] >= reports[0]["time"] + warmup), None)
    return (start, reports[-1]) if start is not None and start is not reports[-1] else None


# ---------------------------------------------------------------- rows


def make_row(model: str, loop: str, options: str, precision: str, batch_size: int, **measured) -> dict:
    """One table row; ``measured`` holds steps_per_sec, peak_rss_mib, status and notes (warnings in its log)."""
    row = dict(model=model, loop=loop, options=options, precision=precision, batch_size=batch_size)
    row |= dict(steps_per_sec=None, peak_rss_mib=None, status="ok", notes=[]) | measured
    row["images_per_sec"] = row["steps_per_sec"] * batch_size if row["steps_per_sec"] else None
    return row


def measure_plain_loop(
    loop: str, model: str, batch_size: int, precision: str, args: argparse.Namespace, work: Path
) -> dict:
    """A row of the examples (a) or memory (a') loop, measured in its own process."""
    task = dict(task=loop, model=model, batch_size=batch_size, precision=precision, device=args.device)
    task |= dict(data_root=args.data_root, num_workers=args.num_workers, seconds=args.seconds, warmup=args.warmup)
    result, rss, status = run_worker_task(task, work, args.warmup + args.seconds + START_LIMIT_S)
    options = f"num_workers={args.num_workers}" if loop == "examples" else f"precision {precision}"
    measured = dict(steps_per_sec=result["steps_per_sec"] if result else None, peak_rss_mib=rss, status=status)
    return make_row(model, loop, options, precision, batch_size, **measured)


def ganforge_command(
    model: str, batch_size: int, flags: list[str], log_every: int, out: Path, args: argparse.Namespace
) -> list[str]:
    """`ganforge train` for one row: unconditional, no EMA, no sampling, checkpoints or evaluation while timed.
    ``model`` pix2pix: pix2pix (its default U-Net, with its EMA) on ``args.facades`` at 64 px, labels to photo."""
    if model == "pix2pix":
        return [
            *(sys.executable, "-m", "ganforge", "train", "--task", "pix2pix", "--data", args.facades),
            *("--direction", "BtoA", "--image-size", "64", "--device", args.device, "--batch-size", str(batch_size)),
            *("--steps", str(10**9), "--log-every", str(log_every), "--sample-every", "0"),
            *("--checkpoint-every", str(10**9), "--snapshot-every", "0", "--eval-every", "0"),
            *("--no-progress", "--no-tensorboard", "--out", str(out), *flags),
        ]
    return [
        *(sys.executable, "-m", "ganforge", "train", "--model", model, "--data", "mnist"),
        *("--data-root", args.data_root, "--device", args.device, "--batch-size", str(batch_size)),
        *("--no-conditional", "--no-ema", "--steps", str(10**9), "--log-every", str(log_every)),
        *("--sample-every", "0", "--checkpoint-every", str(10**9), "--snapshot-every", "0", "--eval-every", "0"),
        *("--no-progress", "--no-tensorboard", "--out", str(out), *flags),
    ]


def measure_ganforge(
    model: str,
    batch_size: int,
    option: tuple[str, list[str], str],  # (label, flags, precision), from ganforge_options
    expected_steps_per_sec: float,  # sets the report cadence
    args: argparse.Namespace,
    work: Path,  # folder for the run and its log
) -> dict:
    """A row of `python -m ganforge train` with ``option``, stopped by SIGINT once measured."""
    label, flags, precision = option
    out = work / f"ganforge-{model}-{label.strip('-').replace(' ', '-')}"  # ganforge-dcgan-precision-bf16
    # A report every ~1/20 of the measured time: several to average over, few enough to cost nothing.
    log_every = max(1, round(expected_steps_per_sec * max(0.5, args.seconds / 20)))
    metrics = out / "metrics.jsonl"

    def measured_enough() -> bool:
        window = measured_window(read_reports(metrics), args.warmup)
        return window is not None and window[1]["time"] - window[0]["time"] >= args.seconds

    command = ganforge_command(model, batch_size, flags, log_every, out, args)
    log_path = work / f"{out.name}.log"
    code, rss = run_process(command, log_path, args.warmup + args.seconds + START_LIMIT_S, measured_enough)
    window, notes = measured_window(read_reports(metrics), args.warmup), log_warnings(log_path)
    if code == 2 and window is None:  # argparse or config validation: this ganforge lacks the option
        status = f"unavailable: {last_line(log_path)}"
    elif code != 0 or window is None:
        status = f"failed (exit {code}): {last_line(log_path)}"
    else:
        start, end = window
        steps_per_sec = (end["step"] - start["step"]) / (end["time"] - start["time"])
        measured = dict(steps_per_sec=steps_per_sec, peak_rss_mib=rss, notes=notes)
        return make_row(model, "ganforge", label, precision, batch_size, **measured)
    return make_row(model, "ganforge", label, precision, batch_size, peak_rss_mib=rss, status=status, notes=notes)


def ganforge_options(precisions: list[str]) -> list[tuple[str, list[str], str]]:
    """(label, flags, precision) of each ganforge row: plain (the baseline's networks, float32 as the baseline),
    --compile, each other precision."""
    options = [("plain", ["--precision", "32"], "32"), ("--compile", ["--compile", "--precision", "32"], "32")]
    return options + [(f"--precision {p}", ["--precision", p], p) for p in precisions if p != "32"]


def measure_model(model: str, args: argparse.Namespace, work: Path) -> list[dict]:
    """Every row of one model, each printed as it is measured."""
    batch_size = args.batch_size or MODELS[model].batch_size
    rows = []
    if "examples" in args.loops:
        rows.append(measure_plain_loop("examples", model, batch_size, "32", args, work))
        print(json.dumps(rows[-1]), flush=True)
    for precision in args.precisions if "memory" in args.loops else []:
        rows.append(measure_plain_loop("memory", model, batch_size, precision, args, work))
        print(json.dumps(rows[-1]), flush=True)
    # The fastest plain loop at the same precision sets the report cadence of a ganforge run.
    speeds = {}
    for row in rows:
        speeds[row["precision"]] = max(speeds.get(row["precision"], 0.0), row["steps_per_sec"] or 0.0)
    for option in ganforge_options(args.precisions) if "ganforge" in args.loops else []:
        expected = speeds.get(option[2]) or max(speeds.values(), default=0.0) or 10.0
        rows.append(measure_ganforge(model, batch_size, option, expected, args, work))
        print(json.dumps(rows[-1]), flush=True)
    return rows


# ---------------------------------------------------------------- the machine, FLOPs and the report


def fast_bf16_cpu() -> bool:
    """Whether this CPU runs bf16 natively (AMX / AVX512-BF16) rather than ~20x slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def choose_precisions(requested: str | None, device: str) -> list[str]:
    """--precisions, or: 32, plus bf16 where it is fast, plus 16-mixed on CUDA (saying what is skipped and why)."""
    if requested:
        return [p.strip() for p in requested.split(",") if p.strip()]
    if device == "cuda":
        return ["32", "bf16", "16-mixed"] if torch.cuda.is_bf16_supported() else ["32", "16-mixed"]
    if fast_bf16_cpu():
        return ["32", "bf16"]
    print("# skipping bf16: this CPU has no native bf16 (AMX / AVX512-BF16) and runs it ~20x slower than float32;")
    print("# --precisions 32,bf16 measures it anyway")
    return ["32"]


def measure_peaks(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """The machine's matmul FLOP/s at each precision that is fast here (never bf16 on a CPU without it)."""
    peaks = {}
    for precision in args.precisions:
        fast = precision == "32" or args.device == "cuda" or (precision == "bf16" and fast_bf16_cpu())
        if fast:
            task = dict(task="peak", precision=precision, device=args.device, reps=3 if args.quick else 6)
            result, _, status = run_worker_task(task, work, START_LIMIT_S)
            if result:
                peaks[precision] = result["flops_per_sec"]
            else:
                print(f"# matmul peak at {precision}: {status}")
    return peaks


def add_flop_rates(rows: list[dict], flops_per_step: dict[str, int], peaks: dict[str, float]) -> None:
    """Fill in each row's GFLOP/s (ganforge's step FLOPs x steps/s) and its share of the matching peak."""
    for row in rows:
        flops, steps_per_sec = flops_per_step.get(row["model"]), row["steps_per_sec"]
        row["gflops_per_sec"] = row["peak_share"] = None
        if flops and steps_per_sec:
            row["gflops_per_sec"] = flops * steps_per_sec / 1e9
            peak = peaks.get(row["precision"], peaks.get("32"))
            row["peak_share"] = flops * steps_per_sec / peak if peak else None


def machine_line(args: argparse.Namespace) -> str:
    """What ran it: GPU or CPU model (AMX or not), cores, threads, torch version, bf16 support."""
    bf16 = "native bf16" if fast_bf16_cpu() else "no native bf16 on the CPU"
    return f"{describe_machine(args.device)}, {bf16}"


def print_table(rows: list[dict]) -> None:
    """The Markdown table, then why any row has no figures and the warnings the runs logged."""
    print("\n| model | loop | options | batch | images/s | vs baseline (a) | peak RSS MiB | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    baselines = {r["model"]: r["images_per_sec"] for r in rows if r["loop"] == "examples" and r["images_per_sec"]}
    for row in rows:
        speed = row["images_per_sec"]
        baseline = baselines.get(row["model"])
        cells = [
            f"{speed:,.0f}" if speed else row["status"].split(":")[0],
            f"{speed / baseline:.2f}x" if speed and baseline else "–",
            f"{row['peak_rss_mib']:,.0f}" if row["peak_rss_mib"] else "–",
            f"{row['gflops_per_sec']:.2f}" if row["gflops_per_sec"] else "–",
            f"{row['peak_share']:.1%}" if row["peak_share"] else "–",
        ]
        print(f"| {row['model']} | {row['loop']} | {row['options']} | {row['batch_size']} | {' | '.join(cells)} |")
    for row in rows:
        for note in ([row["status"]] if row["status"] != "ok" else []) + row["notes"]:
            print(f"\n{row['model']} {row['loop']} {row['options']}: {note}")


def target_lines(rows: list[dict], models: list[str], auto_precision: str) -> list[str]:
    """PASS/FAIL for the issue's targets: ganforge with its default flags (``auto_precision``: what its default
    --precision auto picks here) >= 2x the baseline; peak RSS <= 1.5 GB."""
    lines = []
    for model in models:
        measured = [r for r in rows if r["model"] == model and r["images_per_sec"]]
        baseline = next((r for r in measured if r["loop"] == "examples"), None)
        # ganforge's default flags: the plain row at the precision --precision auto picks on this device.
        options = "plain" if auto_precision == "32" else f"--precision {auto_precision}"
        default = next((r for r in measured if r["loop"] == "ganforge" and r["options"] == options), None)
        best = max((r for r in measured if r["loop"] == "ganforge"), key=lambda r: r["images_per_sec"], default=None)
        if baseline is None or default is None:
            lines.append(f"n/a  {model}: ganforge >= {TARGET_RATIO:g}x the baseline's images/s (a row is missing)")
            continue
        ratio = default["images_per_sec"] / baseline["images_per_sec"]
        best_ratio = best["images_per_sec"] / baseline["images_per_sec"]
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        lines.append(
            f"{verdict} {model}: ganforge (default flags) {ratio:.2f}x the baseline's images/s, target >= "
            f"{TARGET_RATIO:g}x (best ganforge row: {best['options']}, {best_ratio:.2f}x)"
        )
    rss = [r["peak_rss_mib"] for r in rows if r["loop"] == "ganforge" and r["status"] == "ok"]
    if rss:
        verdict = "PASS" if max(rss) <= TARGET_RSS_MIB else "FAIL"
        lines.append(f"{verdict} peak RSS: at most {max(rss):,.0f} MiB over the ganforge rows, target <= 1.5 GB")
    return lines


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    """The command line, with --quick, --device and --precisions resolved."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="torchvision data root holding MNIST (read only, never downloaded)")
    parser.add_argument("--models", default="mlp,dcgan", help="ganforge models, comma-separated (default: mlp,dcgan)")
    parser.add_argument("--loops", default="examples,memory,ganforge", help="which loops to measure (default: all)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if present")
    parser.add_argument(
        "--precisions", default=None, help="32, bf16, 16-mixed (default: 32, bf16 where fast, 16-mixed on CUDA)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="for every model (default: mlp 128, dcgan 64)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="DataLoader workers of the baseline; its peak RSS is then the largest of its processes' (default: 0)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per row (default: 40)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out per row (default: 5)")
    parser.add_argument("--quick", action="store_true", help="5 measured seconds and 2 of warm-up per row")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument("--logs", default=None, metavar="DIR", help="keep every row's log and run here (default: not)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one measurement, in a child process
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)  # where the worker writes it
    args = parser.parse_args()
    if args.worker is not None:
        return args
    if args.data_root is None:
        parser.error("--data-root is required")
    args.seconds = args.seconds or (5.0 if args.quick else 40.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    args.models, args.loops = args.models.split(","), args.loops.split(",")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.precisions = choose_precisions(args.precisions, args.device)
    unknown = [p for p in args.precisions if p not in AUTOCAST_DTYPES] + [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown precision or model: {', '.join(unknown)}")
    return args


def work_folder(logs: str | None) -> contextlib.AbstractContextManager:
    """A fresh folder for the rows' logs and runs: a new one kept under ``logs`` when given, else a temporary one."""
    if logs is None:
        return tempfile.TemporaryDirectory(prefix="ganforge-throughput-")
    Path(logs).mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(tempfile.mkdtemp(prefix="throughput-", dir=logs))


def main() -> None:
    """Measure every row, each in its own process, then print the table and the targets."""
    args = parse_args()
    if args.worker is not None:
        task = json.loads(args.worker)
        Path(args.result).write_text(json.dumps(WORKER_TASKS[task["task"]](task)))
        return
    machine = machine_line(args)
    print(f"# {machine}", flush=True)
    with work_folder(args.logs) as folder:
        work = Path(folder)
        peaks = measure_peaks(args, work)
        print(f"# matmul peak: {', '.join(f'{p} {v / 1e9:,.1f} GFLOP/s' for p, v in peaks.items())}", flush=True)
        flops = {}
        for model in args.models:
            batch_size = args.batch_size or MODELS[model].batch_size
            task = dict(task="flops", model=model, batch_size=batch_size)
            result, _, status = run_worker_task(task, work, START_LIMIT_S)
            flops[model] = result["flops"] if result else None
            print(f"# {model}: {flops[model] or 0:,} FLOPs per training step at batch {batch_size} ({status})")
        rows = [row for model in args.models for row in measure_model(model, args, work)]
    add_flop_rates(rows, flops, peaks)
    print(f"\n{machine}; {args.seconds:g} s measured per row after {args.warmup:g} s of warm-up")
    print_table(rows)
    targets = target_lines(rows, args.models, resolve_precision("auto", resolve_device(args.device)))
    print("\n" + "\n".join(targets))
    if args.json:
        summary = dict(machine=machine, seconds=args.seconds, warmup=args.warmup, peaks=peaks, flops_per_step=flops)
        Path(args.json).write_text(json.dumps(summary | dict(rows=rows, targets=targets), indent=2) + "\n")


if __name__ == "__main__":
    main()
