import os
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def gan_models() -> list[str]:
    """The noise-to-image models: those the gan task trains (the tests of noise -> image networks)."""
    from ganforge.tasks import TASKS

    return list(TASKS["gan"].models)


def task_models() -> list[tuple[str, str]]:
    """Every (task, model) the registries hold: what the registry-wide tests (tests/test_tasks.py) iterate."""
    from ganforge.tasks import TASKS

    return [(name, model) for name, task in TASKS.items() for model in task.models]


IN_CI = os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    """Skip the test for want of ``reason``; under CI=true fail instead, so a green CI never hides an unrun test."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the test must run, not skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def find_mnist_root() -> Path | None:
    """$GANFORGE_DATA_ROOT, else ../shared/data beside the checkout, if it holds MNIST."""
    for candidate in (os.environ.get("GANFORGE_DATA_ROOT"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            return Path(candidate).resolve()
    return None


EMBEDDED_TRAIN = 6000  # of the embedded subset's 10,000 digits (1,000 a class)


def write_idx(path: Path, array) -> None:
    """MNIST's own file format (idx): magic number, big-endian sizes, then the uint8 data."""
    import numpy as np

    magic = 0x0800 | array.ndim
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def embedded_mnist_root(folder: Path) -> Path:
    """A torchvision MNIST data root made from the embedded subset: 6,000 train and 4,000 test digits."""
    from importlib import resources

    import numpy as np

    with resources.files("ganforge.assets").joinpath("mnist_subset.npz").open("rb") as file:
        subset = np.load(file)
        images, labels = subset["images"], subset["labels"]
    order = np.random.default_rng(0).permutation(len(images))  # both splits hold every class
    train, test = order[:EMBEDDED_TRAIN], order[EMBEDDED_TRAIN:]
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, rows in (("train", train), ("t10k", test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[rows])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[rows])
    return folder


@pytest.fixture(scope="session")
def real_mnist_root() -> Path:
    """The real MNIST (60,000 + 10,000), for the tests about MNIST itself."""
    root = find_mnist_root()
    if root is None:
        unavailable("real MNIST not found: set GANFORGE_DATA_ROOT to a torchvision data root holding MNIST")
    return root


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """A torchvision data root holding MNIST: the real one if found, else one made from the embedded subset,
    so that a fresh clone's ``pytest`` runs the end-to-end tests too (CI has the real one)."""
    return find_mnist_root() or embedded_mnist_root(tmp_path_factory.mktemp("embedded-mnist"))


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep each test's torch thread count as it found it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _idle_machine(monkeypatch):
    """Training with --threads 0 (auto) sees an idle machine: every core this process may use.

    Auto counts the cores that other processes leave free, and the thread count changes results in the last
    bits; tests that compare runs bit for bit must not depend on what else the machine runs meanwhile.
    tests/test_threads.py measures the load itself, from a /proc/stat or load average it mocks.
    """
    import ganforge.device

    monkeypatch.setattr(ganforge.device, "busy_elsewhere", lambda cpus, sample_seconds: (None, "nothing"))
    monkeypatch.setattr(ganforge.device, "busy_since", lambda cpus, mark: (None, mark))  # nor does it follow a load


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """tiny_run(model, *flags) -> a finished run of a few steps of ``model`` on the embedded MNIST subset.

    Each (model, flags) is trained once per session; ``tiny_run("dcgan", "--conditional")`` is class-conditional.
    """
    from ganforge.cli import main

    runs = {}
    empty_root = tmp_path_factory.mktemp("empty-root")

    def make(model: str = "mlp", *flags: str) -> Path:
        key = (model, *flags)
        if key not in runs:
            run = tmp_path_factory.mktemp(f"tiny-{model}") / "run"
            args = ["train", "--model", model, "--steps", "6", "--batch-size", "16", "--log-every", "2", "--out", run]
            args += ["--data-root", empty_root, "--no-download", "--no-progress", "--no-tensorboard"]
            # Unconditional unless asked: main's newer defaults make dcgan conditional on labelled data.
            args += list(flags) if "--conditional" in flags else ["--no-conditional", *flags]
            assert main([str(arg) for arg in args]) == 0
            runs[key] = run
        return runs[key]

    return make


class TinyConditionalGenerator(nn.Module):
    """A stand-in conditional generator: every pixel of an image is its class's gray level, 60 * (label + 1)."""

    output_range = (0.0, 1.0)

    def __init__(self, z_dim: int = 8, num_classes: int = 3):
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.gain = nn.Parameter(torch.tensor(0.001))  # the noise moves pixels by less than half a gray level

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        level = (labels.float() + 1) * 60 / 255  # (B,)
        return (level[:, None, None, None] + self.gain * z[:, :1, None, None].tanh()).expand(-1, 1, 8, 8)


@pytest.fixture
def conditional_generator() -> TinyConditionalGenerator:
    """A TinyConditionalGenerator in eval mode."""
    return TinyConditionalGenerator().eval()


@pytest.fixture
def conditional_app(tiny_run, conditional_generator):
    """The app around TinyConditionalGenerator (the checkpoint's other data come from a tiny mlp run)."""
    import dataclasses

    import ganforge.serve
    from ganforge.checkpoint import load_checkpoint
    from ganforge.tasks import load
    from ganforge.tasks.gan.handle import describe_generator

    mlp = load(tiny_run("mlp"))
    description = describe_generator(load_checkpoint(mlp.path), conditional_generator)
    model = dataclasses.replace(mlp, generator=conditional_generator, description=description)
    return ganforge.serve.create_app(model)


class SmallDisk:
    """small_disk(megabytes) -> a folder on a real filesystem of that size (a tmpfs); small_disk.fill(folder) fills it.

    Mounting needs root and a kernel that allows it: elsewhere the test is skipped with the reason (under CI=true,
    it fails: ``unavailable``).
    """

    def __init__(self, tmp_path: Path):
        self.tmp_path, self.mounts = tmp_path, []

    def __call__(self, megabytes: float = 2) -> Path:
        import subprocess

        folder = self.tmp_path / f"disk{len(self.mounts)}"
        folder.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k", "tmpfs", str(folder)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            unavailable(f"cannot mount a small tmpfs here ({result.stderr.strip() or 'not root'})")
        self.mounts.append(folder)
        return folder

    @staticmethod
    def free(folder: Path) -> int:
        stats = os.statvfs(folder)
        return stats.f_bavail * stats.f_frsize

    def fill(self, folder: Path, leave: int = 0) -> Path:
        """Fill the filesystem holding ``folder`` until at most ``leave`` bytes are free; returns the filler file."""
        filler = folder / "filler"
        with open(filler, "ab") as file:
            while self.free(folder) > leave:
                try:
                    file.write(b"\0" * min(self.free(folder) - leave, 1 << 20))
                    file.flush()
                except OSError:
                    break
        return filler

    def unmount(self) -> None:
        import subprocess

        for folder in self.mounts:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A SmallDisk: real full disks for the tests of what ganforge does when one fills up."""
    disk = SmallDisk(tmp_path)
    yield disk
    disk.unmount()


class ServerThread:
    """uvicorn serving ``app`` as ``ganforge serve`` does (``server_config``) on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app):
        import uvicorn

        from ganforge.serve import open_listener, server_config

        self.listener = open_listener("127.0.0.1", 0)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = uvicorn.Server(server_config(app))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.listener]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.listener.close()


@pytest.fixture
def server_thread():
    """server_thread(app) -> a ServerThread: ``with server_thread(app) as server:`` serves at server.url."""
    return ServerThread
