import os
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def find_mnist_root() -> Path | None:
    """$GANFORGE_DATA_ROOT, else ../shared/data beside the checkout, if it holds MNIST."""
    for candidate in (os.environ.get("GANFORGE_DATA_ROOT"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    root = find_mnist_root()
    if root is None:
        pytest.skip("real MNIST not found: set GANFORGE_DATA_ROOT to a torchvision data root holding MNIST")
    return root


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep each test's torch thread count as it found it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


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
    from ganforge.checkpoint import describe_generator, load_checkpoint
    from ganforge.sampling import load

    mlp = load(tiny_run("mlp"))
    description = describe_generator(load_checkpoint(mlp.path), conditional_generator)
    model = dataclasses.replace(mlp, generator=conditional_generator, description=description)
    return ganforge.serve.create_app(model)


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
