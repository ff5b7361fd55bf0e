"""--threads: the cores free now (auto), the warning on a busy machine, and the count the training step runs with."""

import json
import logging
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ganforge.device
import ganforge.tasks.gan.training
from ganforge import train
from ganforge.config import TrainConfig
from ganforge.device import count_cores
from ganforge.errors import UsageError
from test_training import recipe_config

MEASURE = ganforge.device.busy_elsewhere  # the real one: conftest's _idle_machine replaces it in every test


def stat_line(cpu: int, busy: int, idle: int, iowait: int = 0, steal: int = 0) -> str:
    """One CPU's line of /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice."""
    return f"cpu{cpu} {busy} 0 0 {idle} {iowait} 0 0 {steal} 0 0"


def proc_stat(*cpus: tuple[int, int]) -> str:
    """A /proc/stat with one line per (busy, idle) ticks of cpu0, cpu1, ..., the total line and others around them."""
    total = f"cpu  {sum(busy for busy, _ in cpus)} 0 0 {sum(idle for _, idle in cpus)} 0 0 0 0 0 0"
    lines = [stat_line(number, busy, idle) for number, (busy, idle) in enumerate(cpus)]
    return "\n".join([total, *lines, "intr 12345 0 0", "ctxt 678", "btime 1700000000", ""])


def fake_machine(monkeypatch, path, before: str, after: str, cpus=frozenset({0, 1}), own: float = 0.0) -> None:
    """/proc/stat at ``path`` reads ``before``, then ``after`` 0.2 s later; the real measurement, not conftest's.

    ``cpus``: this process's affinity mask; ``own``: the CPU seconds this process itself used meanwhile.
    """
    monkeypatch.setattr(ganforge.device, "busy_elsewhere", MEASURE)
    monkeypatch.setattr(ganforge.device, "PROC_STAT", str(path))
    path.write_text(before)
    clock = {"now": 0.0, "own": 0.0}

    def sleep(seconds: float) -> None:
        path.write_text(after)
        clock["now"] += seconds
        clock["own"] += own

    fake_time = types.SimpleNamespace(sleep=sleep, monotonic=lambda: clock["now"], process_time=lambda: clock["own"])
    monkeypatch.setattr(ganforge.device, "time", fake_time)
    monkeypatch.setattr(ganforge.device.os, "sched_getaffinity", lambda pid: set(cpus), raising=False)
    monkeypatch.setattr(ganforge.device.os, "cpu_count", lambda: max(cpus) + 1)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """machine(before, after, cpus={0, 1}, own=0.0): ``fake_machine`` in this test's folder."""
    return lambda *args, **kwargs: fake_machine(monkeypatch, tmp_path / "stat", *args, **kwargs)


START = proc_stat((5000, 9000), (4000, 8000))  # ticks since boot


def test_an_idle_machine_leaves_every_allowed_core_free(machine):
    machine(START, proc_stat((5000, 9020), (4000, 8020)))  # 20 idle ticks on each CPU
    cores = count_cores()
    assert cores == ganforge.device.CoreCount(allowed=2, busy=0, source="/proc/stat") and cores.free == 2


def test_a_core_kept_busy_by_another_process_is_not_free(machine):
    machine(START, proc_stat((5020, 9000), (4000, 8020)))  # cpu0 busy throughout, cpu1 idle
    cores = count_cores()
    assert (cores.allowed, cores.busy, cores.free) == (2, 1, 1)


def test_this_process_own_work_is_not_counted_as_busy(machine):
    machine(START, proc_stat((5020, 9000), (4000, 8020)), own=0.2)  # this process kept cpu0 busy itself
    assert count_cores().busy == 0


def test_a_fully_busy_machine_still_leaves_one_thread(machine):
    machine(START, proc_stat((5020, 9000), (4020, 8000)))
    cores = count_cores()
    assert (cores.busy, cores.free) == (2, 1)


def test_only_the_cpus_of_the_affinity_mask_count(machine):
    busy_cpu0 = proc_stat((5020, 9000), (4000, 8020), (3000, 7020), (3000, 7020))
    machine(proc_stat((5000, 9000), (4000, 8000), (3000, 7000), (3000, 7000)), busy_cpu0, cpus={1, 2, 3})
    cores = count_cores()
    assert (cores.allowed, cores.busy) == (3, 0)


def test_a_core_counts_as_busy_from_half_its_time(machine):
    machine(START, proc_stat((5008, 9012), (4000, 8020)))  # 40% of cpu0
    assert count_cores().busy == 0
    machine(START, proc_stat((5012, 9008), (4000, 8020)))  # 60% of cpu0
    assert count_cores().busy == 1


def test_waiting_for_a_disk_is_idle_and_time_stolen_by_the_hypervisor_is_busy(machine):
    before = "\n".join([stat_line(0, 100, 100, iowait=100, steal=100), stat_line(1, 100, 100)])
    after = "\n".join([stat_line(0, 100, 100, iowait=120, steal=100), stat_line(1, 100, 100, steal=20)])
    machine(before, after)
    assert count_cores().busy == 1  # cpu1's stolen time, not cpu0's iowait


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=8), st.floats(0, 2))
def test_never_fewer_than_one_core_nor_more_than_allowed(tmp_path_factory, ticks, own):
    with pytest.MonkeyPatch.context() as monkeypatch:
        after = proc_stat(*[(1000 + busy, 1001 + idle) for busy, idle in ticks])
        path = tmp_path_factory.mktemp("stat") / "stat"
        fake_machine(monkeypatch, path, proc_stat(*[(1000, 1000)] * len(ticks)), after, set(range(len(ticks))), own)
        cores = count_cores()
    assert 1 <= cores.free <= cores.allowed == len(ticks)
    assert 0 <= cores.busy <= cores.allowed


def test_without_proc_stat_the_load_average_says_how_busy(machine, monkeypatch):
    machine(START, START, cpus={0, 1})
    monkeypatch.setattr(ganforge.device, "PROC_STAT", "/nonexistent/stat")
    monkeypatch.setattr(ganforge.device.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(ganforge.device.os, "getloadavg", lambda: (2.2, 0.0, 0.0))  # 4 cores, 2 of them ours
    assert count_cores() == ganforge.device.CoreCount(allowed=2, busy=1, source="the load average")
    monkeypatch.setattr(ganforge.device.os, "getloadavg", lambda: (0.3, 3.0, 3.0))  # the last minute counts
    assert count_cores().busy == 0


def test_without_proc_stat_getloadavg_or_an_affinity_mask_every_core_is_free(machine, monkeypatch):
    machine(START, START)
    monkeypatch.setattr(ganforge.device, "PROC_STAT", "/nonexistent/stat")
    monkeypatch.delattr(ganforge.device.os, "getloadavg", raising=False)
    monkeypatch.delattr(ganforge.device.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(ganforge.device.os, "cpu_count", lambda: 3)
    assert count_cores() == ganforge.device.CoreCount(allowed=3, busy=0, source="nothing")


def test_a_garbled_proc_stat_falls_back_to_the_load_average(machine, monkeypatch):
    machine("cpu0 one two three\n", "cpu0 one two three\n")
    monkeypatch.setattr(ganforge.device.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert count_cores().source == "the load average"


def test_the_real_machine_gives_a_count_in_range(monkeypatch):
    monkeypatch.setattr(ganforge.device, "busy_elsewhere", MEASURE)
    cores = count_cores(sample_seconds=0.05)
    assert 1 <= cores.free <= cores.allowed and cores.source in ("/proc/stat", "the load average", "nothing")


def test_a_negative_thread_count_is_refused_in_one_line():
    with pytest.raises(UsageError) as error:
        TrainConfig(threads=-1).validate()
    assert str(error.value) == "--threads must be 0 or more, got -1"


@pytest.fixture
def step_threads(monkeypatch):
    """The torch thread count each training step ran with, in a list."""
    seen, step = [], ganforge.tasks.gan.training.training_step

    def recording_step(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(*args, **kwargs)

    monkeypatch.setattr(ganforge.tasks.gan.training, "training_step", recording_step)
    return seen


def busy_machine(monkeypatch, busy: float, cpus: set[int] = frozenset({0, 1, 2})) -> list:
    """Mock a machine with ``cpus`` on which other processes use ``busy`` cores; returns the list of measurements."""
    measured = []

    def busy_elsewhere(cpu_set, sample_seconds):
        measured.append(cpu_set)
        return busy, "/proc/stat"

    monkeypatch.setattr(ganforge.device, "busy_elsewhere", busy_elsewhere)
    monkeypatch.setattr(ganforge.device.os, "sched_getaffinity", lambda pid: set(cpus), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return measured


def test_threads_1_trains_with_one_thread_and_gives_torch_its_count_back(tmp_path, step_threads, caplog):
    torch.set_num_threads(2)
    with caplog.at_level(logging.INFO, logger="ganforge"):
        run = train(recipe_config(tmp_path, "run", model="mlp", steps=3, threads=1, device="cpu", log_every=1)).run_dir
    assert step_threads == [1, 1, 1]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["threads"] for r in records] == [1, 1, 1]  # the log says what each stretch trained with
    assert torch.get_num_threads() == 2
    assert "threads: 1 (--threads)" in caplog.messages
    assert "busy" not in caplog.text


def test_auto_on_a_busy_machine_trains_with_the_free_cores_and_warns(tmp_path, monkeypatch, step_threads, caplog):
    measured = busy_machine(monkeypatch, busy=1.0)
    torch.set_num_threads(3)
    with caplog.at_level(logging.INFO, logger="ganforge"):
        train(recipe_config(tmp_path, "run", model="mlp", steps=2, device="cpu"))
    assert step_threads == [2, 2] and measured == [{0, 1, 2}]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the machine is busy: 1 of the 3 cores this process may use are in use by other processes; "
        "ganforge trains with 2 threads (--threads overrides)"
    ]
    assert "threads: 2, the cores free now: 3 this process may use, 1 kept busy by other processes" in caplog.text


def test_auto_on_an_idle_machine_uses_every_allowed_core_without_a_warning(tmp_path, monkeypatch, step_threads, caplog):
    busy_machine(monkeypatch, busy=0.2)
    torch.set_num_threads(1)
    with caplog.at_level(logging.INFO, logger="ganforge"):
        train(recipe_config(tmp_path, "run", model="mlp", steps=2, device="cpu"))
    assert step_threads == [3, 3]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "threads: 3, the cores free now: 3 this process may use, 0 kept busy" in caplog.text


def test_auto_keeps_the_count_omp_num_threads_gave_torch(tmp_path, monkeypatch, step_threads, caplog):
    measured = busy_machine(monkeypatch, busy=2.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)  # what torch starts with under OMP_NUM_THREADS=3
    with caplog.at_level(logging.INFO, logger="ganforge"):
        train(recipe_config(tmp_path, "run", model="mlp", steps=2, device="cpu"))
    assert step_threads == [3, 3] and measured == []  # nothing sampled, nothing overridden
    assert "threads: 3 (OMP_NUM_THREADS=3; --threads overrides it)" in caplog.messages
    assert "busy" not in caplog.text
    step_threads.clear()
    train(recipe_config(tmp_path, "explicit", model="mlp", steps=2, device="cpu", threads=1))
    assert step_threads == [1, 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_run_keeps_torch_own_thread_count(tmp_path, monkeypatch, step_threads, caplog):
    measured = busy_machine(monkeypatch, busy=2.0)
    torch.set_num_threads(3)
    with caplog.at_level(logging.INFO, logger="ganforge"):
        train(recipe_config(tmp_path, "run", model="mlp", steps=2, device="cuda", threads=1))
    assert step_threads == [3, 3] and measured == []
    assert "threads:" not in caplog.text


# ---------------------------------------------------------------- following the machine while training


def test_a_burst_at_the_start_is_not_a_load(machine, monkeypatch):
    # Of count_cores' five looks, the first sees another process busy on a core and the rest see it gone: the
    # calmest look wins, so a process busy for a moment when the run starts does not halve it.
    looks = iter([1.0, 0.0, 0.0, 0.0, 0.0])
    monkeypatch.setattr(ganforge.device, "busy_elsewhere", MEASURE)
    monkeypatch.setattr(ganforge.device, "sample_cpu_use", lambda cpus, seconds: next(looks))
    monkeypatch.setattr(ganforge.device.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert count_cores().free == 2


class Machine:
    """A clock and a /proc/stat for ``ThreadFollower``: ``advance(seconds, others)`` lets ``others`` cores' worth of
    other processes' work pass on 2 cores."""

    def __init__(self, monkeypatch, path):
        self.now, self.busy, self.idle, self.path = 0.0, 0, 0, path
        self.write()
        monkeypatch.setattr(ganforge.device, "PROC_STAT", str(path))
        monkeypatch.setattr(ganforge.device, "busy_since", BUSY_SINCE)
        fake_time = types.SimpleNamespace(monotonic=lambda: self.now, process_time=lambda: 0.0)
        monkeypatch.setattr(ganforge.device, "time", fake_time)
        monkeypatch.setattr(ganforge.device.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)

    def write(self):
        half = self.busy // 2
        self.path.write_text(proc_stat((half, self.idle // 2), (self.busy - half, self.idle - self.idle // 2)))

    def advance(self, seconds: float, others: float):
        ticks = round(seconds * 100 * 2)  # 2 CPUs at 100 Hz
        self.busy += round(ticks * others / 2)
        self.idle += ticks - round(ticks * others / 2)
        self.now += seconds
        self.write()


BUSY_SINCE = ganforge.device.busy_since  # the real one: conftest's _idle_machine replaces it in every test


def test_the_thread_count_follows_a_load_that_stays_and_one_that_goes(tmp_path, monkeypatch, caplog):
    board = Machine(monkeypatch, tmp_path / "stat")
    monkeypatch.setattr(torch, "set_num_threads", lambda n: setattr(board, "threads", n))
    follower = ganforge.device.ThreadFollower(threads=2)
    every = ganforge.device.FOLLOW_EVERY
    board.advance(every / 2, others=1.0)
    assert follower.poll() is None  # not time to look yet
    board.advance(every / 2, others=1.0)
    assert follower.poll() is None  # one look at a busy core: perhaps a burst
    board.advance(every, others=0.0)
    assert follower.poll() is None and follower.threads == 2  # gone again: nothing changes
    with caplog.at_level(logging.INFO, logger="ganforge"):
        for _ in range(ganforge.device.FOLLOW_AFTER):
            board.advance(every, others=1.0)
            changed = follower.poll()
        assert changed == 1 and board.threads == 1 and "threads: 2 -> 1" in caplog.text
        for _ in range(ganforge.device.FOLLOW_AFTER):
            board.advance(every, others=0.0)
            changed = follower.poll()
    assert changed == 2 and board.threads == 2 and "threads: 1 -> 2" in caplog.text


@pytest.mark.slow
def test_a_busy_loop_beside_a_run_takes_a_thread_and_gives_it_back(tmp_path, monkeypatch, caplog):
    import subprocess
    import sys
    import threading

    if len(ganforge.device.os.sched_getaffinity(0)) != 2:
        pytest.skip("measured on a 2-core machine, as the development machines are")
    monkeypatch.setattr(ganforge.device, "busy_since", BUSY_SINCE)  # the real machine, not conftest's idle one
    monkeypatch.setattr(ganforge.device, "FOLLOW_EVERY", 0.5)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    busy = {}

    def start_and_stop():  # a busy loop for 4 s, from 1.5 s into the run
        threading.Event().wait(1.5)
        busy["process"] = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        threading.Event().wait(4.0)
        busy["process"].kill()

    timer = threading.Thread(target=start_and_stop)
    config = recipe_config(tmp_path, "follow", model="mlp", minutes=0.15, threads=0, log_every=20)  # 9 s
    timer.start()
    try:
        with caplog.at_level(logging.INFO, logger="ganforge"):
            run = train(config).run_dir
    finally:
        timer.join()
        if "process" in busy:
            busy["process"].kill()
    assert "threads: 2 -> 1" in caplog.text and "threads: 1 -> 2" in caplog.text, caplog.text
    threads = [json.loads(line)["threads"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert threads[0] == 2 and 1 in threads and threads[-1] == 2, threads  # metrics.jsonl tells the same story
