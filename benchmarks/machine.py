"""The machine a benchmark ran on, named beside every figure it prints (the session machines differ)."""

import contextlib
import os
import platform

import torch


def cpu_name() -> str:
    """The CPU's model name, and whether it has AMX (bf16 matmuls about 6x fp32 with it, 20x slower without)."""
    name, amx = platform.processor() or platform.machine(), False
    with contextlib.suppress(OSError):
        lines = open("/proc/cpuinfo").read().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        name = names[0] if names else name
        amx = any(line.startswith("flags") and "amx_tile" in line for line in lines)
    return f"{name}, {'AMX' if amx else 'no AMX'}"


def describe_machine(device: str = "cpu") -> str:
    """'GPU, CPU (AMX or not), N cores, T threads, torch V': one line for a figure's caption."""
    parts = [cpu_name(), f"{len(os.sched_getaffinity(0))} cores", f"{torch.get_num_threads()} threads"]
    if device == "cuda" and torch.cuda.is_available():
        parts.insert(0, torch.cuda.get_device_name())
    return ", ".join(parts + [f"torch {torch.__version__}"])
