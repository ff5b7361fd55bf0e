import os
from pathlib import Path

import pytest
import torch

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
    """tiny_run(model) -> a finished run of a few steps of ``model`` on the embedded MNIST subset (made once)."""
    from ganforge.cli import main

    runs = {}
    empty_root = tmp_path_factory.mktemp("empty-root")

    def make(model: str = "mlp") -> Path:
        if model not in runs:
            run = tmp_path_factory.mktemp(f"tiny-{model}") / "run"
            args = ["train", "--model", model, "--steps", "6", "--batch-size", "16", "--log-every", "2", "--out", run]
            args += ["--data-root", empty_root, "--no-download", "--no-progress", "--no-tensorboard"]
            assert main([str(arg) for arg in args]) == 0
            runs[model] = run
        return runs[model]

    return make
