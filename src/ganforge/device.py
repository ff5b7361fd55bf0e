"""Choosing the device, the CPU threads, the numeric precision, and whether the networks are compiled."""

import contextlib
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass

import torch
from torch import nn

from ganforge.errors import GanforgeError

log = logging.getLogger("ganforge")

PROC_STAT = "/proc/stat"  # Linux: each CPU's busy and idle time since boot, in clock ticks
SAMPLE_SECONDS = 0.2  # how long count_cores watches /proc/stat at a time: 20 ticks of each CPU at Linux's usual 100 Hz
WINDOW_SAMPLES = 5  # count_cores looks this many times in a row (1 s) and believes the calmest: a burst is no load
FOLLOW_EVERY = 10.0  # seconds between a training's looks at how busy other processes keep its cores
FOLLOW_AFTER = 2  # looks in a row that must agree on another count before the training's threads change
BUSY_CORE_SHARE = 0.5  # other processes' use of a core (share of it) from which it counts as taken


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda, then mps, then cpu; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError("--device mps was asked for, but this PyTorch has no MPS (Apple GPU) support here")
    return torch.device(name)


@dataclass(frozen=True)
class CoreCount:
    """The CPU cores this process may run on, and how many of them other processes keep busy now."""

    allowed: int  # cores in this process's affinity mask (os.sched_getaffinity), else os.cpu_count()
    busy: int  # of those, how many other processes keep busy, in whole cores; 0 when unknown
    source: str  # how ``busy`` was measured: "/proc/stat", "the load average" or "nothing" (unknown)

    @property
    def free(self) -> int:
        """The cores usable now: the allowed ones less the busy ones, never less than 1."""
        return max(1, self.allowed - self.busy)


def count_cores(sample_seconds: float = SAMPLE_SECONDS) -> CoreCount:
    """The cores this process may run on, less those other processes keep busy now.

    The busy cores come from a short sample of /proc/stat (``sample_seconds``):
    the CPU time the cores of this process's affinity mask spent busy, less
    this process's own CPU time in the same interval, in cores, rounded to
    whole cores (``BUSY_CORE_SHARE``). A sample sees the machine as it is now,
    only the cores this process may use, and none of this process's own work;
    the 1-minute load average lags a minute behind, counts the whole machine
    (and, on Linux, processes waiting for a disk) and this process too. It is
    the fallback where there is no /proc/stat (macOS, BSD), scaled to the share
    of the machine's cores this process may use; where neither exists, every
    allowed core counts as free. The CPU quota of a cgroup (a container's
    ``--cpus``) is not taken into account.
    """
    cpus, allowed = allowed_cpus()
    others, source = busy_elsewhere(cpus, sample_seconds)
    return CoreCount(allowed=allowed, busy=0 if others is None else busy_cores(others, allowed), source=source)


def allowed_cpus() -> tuple[set[int] | None, int]:
    """(the CPUs of this process's affinity mask, None where there is none; how many cores it may use)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return cpus, len(cpus) if cpus else os.cpu_count() or 1


def busy_cores(others: float, allowed: int) -> int:
    """Cores' worth of other processes' CPU time as whole busy cores: one from ``BUSY_CORE_SHARE`` of a core on,
    at most ``allowed``."""
    return max(0, min(allowed, math.floor(others + 1 - BUSY_CORE_SHARE)))


def usable_cores() -> int:
    """The CPU cores usable now: those this process may run on less those other processes keep busy (at least 1)."""
    return count_cores().free


def busy_elsewhere(cpus: set[int] | None, sample_seconds: float) -> tuple[float | None, str]:
    """(cores' worth of CPU time other processes use on ``cpus`` now, how it was measured); None: unknown.

    ``cpus`` are CPU numbers (None: all of them); see ``count_cores``.
    """
    samples = [sample_cpu_use(cpus, sample_seconds) for _ in range(WINDOW_SAMPLES)]
    samples = [sample for sample in samples if sample is not None]
    if samples:
        return min(samples), "/proc/stat"
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no getloadavg (Windows), or it could not be read
        return None, "nothing"
    machine = os.cpu_count() or 1
    return load * (len(cpus) / machine if cpus else 1.0), "the load average"


def sample_cpu_use(cpus: set[int] | None, seconds: float) -> float | None:
    """Cores' worth of CPU time that processes other than this one used on ``cpus`` over ``seconds``; None: no data."""
    mark = cpu_mark(cpus)
    if mark[0] is None:
        return None
    time.sleep(seconds)
    return used_between(mark, cpu_mark(cpus))


def busy_since(cpus: set[int] | None, mark: tuple) -> tuple[float | None, tuple]:
    """(cores' worth of CPU time other processes used on ``cpus`` since ``mark``, a new mark), without waiting:
    ``mark`` is an earlier call's (or ``cpu_mark``'s). None where it cannot tell."""
    now = cpu_mark(cpus)
    return used_between(mark, now), now


def used_between(mark: tuple, now: tuple) -> float | None:
    """Cores' worth of CPU time other processes used between two ``cpu_mark``s: the busy ticks of the CPUs less
    this process's own CPU time; None when /proc/stat vanished, a CPU went on or off line, or no tick passed."""
    (before, own_before, started), (after, own, ended) = mark, now
    if before is None or after is None or after[2] != before[2] or after[1] <= before[1]:
        return None
    busy, total, count = after[0] - before[0], after[1] - before[1], after[2]
    return max(0.0, busy / total * count - (own - own_before) / max(ended - started, 1e-9))


def cpu_mark(cpus: set[int] | None) -> tuple:
    """(/proc/stat's ticks of ``cpus``, this process's CPU time, the clock): where ``busy_since`` measures from."""
    return read_cpu_times(cpus), time.process_time(), time.monotonic()


class ThreadFollower:
    """With ``--threads`` auto, a CPU training's thread count follows the machine: between steps, every
    ``FOLLOW_EVERY`` seconds, it reads how busy other processes kept this process's cores since its last look
    (``busy_since``: no waiting, no sampling inside the step), and when the free cores differ from its threads
    for ``FOLLOW_AFTER`` looks in a row, it sets torch's count to them and says so in the log. A load of a
    moment changes nothing; one that stays, or goes, is followed within about ``FOLLOW_EVERY * FOLLOW_AFTER``."""

    def __init__(self, threads: int):
        self.cpus, self.allowed = allowed_cpus()
        self.threads, self.mark, self.pending, self.agreed = threads, cpu_mark(self.cpus), None, 0

    def poll(self) -> int | None:
        """Between steps: the new thread count when it changed now, else None (almost always: one clock read)."""
        if time.monotonic() - self.mark[2] < FOLLOW_EVERY:
            return None
        others, self.mark = busy_since(self.cpus, self.mark)
        if others is None:
            return None
        free = CoreCount(self.allowed, busy_cores(others, self.allowed), "/proc/stat").free
        if free == self.threads:
            self.pending, self.agreed = None, 0
            return None
        self.agreed = self.agreed + 1 if free == self.pending else 1
        self.pending = free
        if self.agreed < FOLLOW_AFTER:
            return None
        log.info(
            f"threads: {self.threads} -> {free}: other processes kept {self.allowed - free} of the {self.allowed} "
            f"cores this process may use busy for the last {FOLLOW_EVERY * FOLLOW_AFTER:.0f} s (--threads fixes "
            "the count)"
        )
        torch.set_num_threads(free)
        self.threads, self.pending, self.agreed = free, None, 0
        return free


def read_cpu_times(cpus: set[int] | None) -> tuple[int, int, int] | None:
    """(busy ticks, all ticks, CPUs counted) since boot of ``cpus`` (None: all), from /proc/stat; None without it."""
    busy = total = count = 0
    try:
        with open(PROC_STAT) as file:
            for line in file:
                name, _, rest = line.partition(" ")
                number = name[3:]
                if not (name.startswith("cpu") and number.isdigit()) or (cpus is not None and int(number) not in cpus):
                    continue  # "cpu" alone sums every CPU; other lines are no CPU's
                # user nice system idle iowait irq softirq steal (guest time is counted in user already). Idle and
                # iowait are idle; steal (the hypervisor ran another machine) is busy, as far as this process goes.
                ticks = [int(value) for value in rest.split()[:8]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
                count += 1
    except (OSError, ValueError, IndexError):  # no /proc (macOS, Windows), or a format this does not know
        return None
    return (busy, total, count) if count else None


def set_cpu_threads(requested: int = 0) -> None:
    """Set torch's intra-op threads for a CPU run, logging how many and why.

    ``requested``: that many threads; 0 (auto): the cores free now
    (``count_cores``), with a warning when that is fewer than this process may
    use. Next to a busy process, one thread per core (torch's default) trained
    3x to 60x slower than one thread on 2 cores (issue #14): each step waits for
    its slowest thread, and one of them keeps losing its core. In auto mode a
    set $OMP_NUM_THREADS wins (torch follows it already; torchrun sets it to 1
    when it starts several processes on a machine); a count set earlier with
    ``torch.set_num_threads`` does not. The count changes the order of the
    kernels' sums, so results on the CPU differ in the last bits between
    thread counts: bit-exact reruns and resumes need the same count.
    """
    if requested:
        log.info(f"threads: {requested} (--threads)")
        torch.set_num_threads(requested)
        return
    if os.environ.get("OMP_NUM_THREADS"):
        threads = os.environ["OMP_NUM_THREADS"]
        log.info(f"threads: {torch.get_num_threads()} (OMP_NUM_THREADS={threads}; --threads overrides it)")
        return
    cores = count_cores()
    if cores.free < cores.allowed:
        log.warning(
            f"the machine is busy: {cores.busy} of the {cores.allowed} cores this process may use are in use by "
            f"other processes; ganforge trains with {cores.free} thread{'s' * (cores.free > 1)} (--threads overrides)"
        )
    if cores.source == "nothing":
        log.info(f"threads: {cores.free}, the cores this process may use (how busy they are is unknown here)")
    else:
        log.info(
            f"threads: {cores.free}, the cores free now: {cores.allowed} this process may use, {cores.busy} kept busy "
            f"by other processes ({cores.source}; --threads sets the count)"
        )
    torch.set_num_threads(cores.free)


def to_fast_layout(module: nn.Module) -> nn.Module:
    """Store 4-D (convolution) weights channels-last: about 25% faster DCGAN steps on CPU.

    Linear layers are unaffected. Training and loading both use it, so a loaded
    generator computes exactly what the trained one did.
    """
    return module.to(memory_format=torch.channels_last)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) under which its kernels still compute in bf16.
BF16_ISAS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16"}


def onednn_isa_cap() -> str | None:
    """The instruction set oneDNN is capped at (``ONEDNN_MAX_CPU_ISA``, or the older ``DNNL_MAX_CPU_ISA``), or None."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return cap if cap not in ("", "ALL", "DEFAULT") else None


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 in hardware: a CUDA GPU that supports it (Ampere on), or a CPU with
    AMX or AVX512-BF16 that oneDNN may use (``ONEDNN_MAX_CPU_ISA=AVX2`` makes such a CPU compute as an AVX2
    one). Elsewhere bf16 is emulated, and slower than float32 (about 20x on an AVX2 CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cap = onednn_isa_cap()
        return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"}) and (cap is None or cap in BF16_ISAS)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``--precision`` as trained: 'auto' is bf16 where ``native_bf16``, else '32'; the others as they are."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "32"


def describe_precision(precision: str, device: torch.device) -> str:
    """What a run trains in, as its log says it: 'bf16 (auto)' when auto chose it, '32', 'bf16', '16-mixed'."""
    return resolve_precision(precision, device) + (" (auto)" if precision == "auto" else "")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward-pass context for ``precision``: '32' (none), 'bf16' or '16-mixed' (float16) autocast; 'auto'
    as ``resolve_precision`` says."""
    precision = resolve_precision(precision, device)
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for '16-mixed' (float16 gradients underflow without it); a pass-through otherwise.

    Each optimiser gets its own: D's and G's losses differ in scale, and a step
    skipped for an overflow in one must not skip the other.
    """
    return torch.amp.GradScaler(device.type, enabled=resolve_precision(precision, device) == "16-mixed")


def compile_problem(device: torch.device) -> str | None:
    """Why torch.compile cannot run here, or None when it can."""
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python or platform"
    if device.type == "mps":
        return "torch.compile does not support MPS well yet"
    if device.type == "cpu" and not shutil.which(os.environ.get("CXX", "c++")):
        return "torch.compile needs a C++ compiler on the CPU (install g++ or set $CXX)"
    return None


def compile_module(module: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(module)``, or ``module`` itself with a warning where compiling cannot work.

    A graph that fails to compile later, at its first call, runs eagerly
    (dynamo's ``suppress_errors``). Compiled modules cannot be differentiated
    twice (R1, the gradient penalty): ``wrap_for_training`` keeps D eager then.
    """
    problem = compile_problem(device)
    if problem is not None:
        log.warning(f"--compile: {problem}; training without it")
        return module
    torch._dynamo.config.suppress_errors = True
    return torch.compile(module)
