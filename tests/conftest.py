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
