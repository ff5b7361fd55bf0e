"""The machine a benchmark ran on, named beside every figure it prints (the session machines differ)."""

import contextlib
import os
import platform

import torch

from ganforge.device import cpu_flags


def cpu_name() -> str:
    """The CPU's model name and its bf16 matmul support: AMX (bf16 about 6x fp32), else AVX512-BF16 (native
    bf16, nearer 2x on dcgan), else AVX-512 or AVX2 alone (bf16 about 20x slower than fp32)."""
    name, flags = platform.processor() or platform.machine(), cpu_flags()
    with contextlib.suppress(OSError):
        fields = {}
        for line in open("/proc/cpuinfo").read().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first CPU's
        name = fields.get("model name", name)
        if "cpu family" in fields:  # "AMD EPYC" alone does not say which generation: family 25 Zen 3/4, 26 Zen 5
            name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    if "amx_tile" in flags:
        return f"{name}, AMX"
    vector = "AVX512-BF16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else "AVX2"
    return f"{name}, {vector}, no AMX"


def instruction_caps() -> str | None:
    """The instruction sets torch was told to stop at ('ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2'), or
    None. With both at AVX2 (and so float32 for --precision auto) a newer CPU computes as an AVX2 one: the
    stand-in for an AVX2 machine in docs/quality.md."""
    caps = [
        f"{name}={os.environ[name]}" for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if os.environ.get(name)
    ]
    return ", ".join(caps) or None


def describe_machine(device: str = "cpu") -> str:
    """'GPU, CPU (AMX or not), [instruction caps,] N cores, T threads, torch V': one line for a figure's caption."""
    parts = [cpu_name(), f"{len(os.sched_getaffinity(0))} cores", f"{torch.get_num_threads()} threads"]
    if caps := instruction_caps():
        parts.insert(1, f"capped at {caps}")
    if device == "cuda" and torch.cuda.is_available():
        parts.insert(0, torch.cuda.get_device_name())
    return ", ".join(parts + [f"torch {torch.__version__}"])
