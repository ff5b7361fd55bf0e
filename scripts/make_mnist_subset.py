"""Make src/ganforge/assets/mnist_subset.npz: 10,000 MNIST training images, 1,000 per digit.

    python scripts/make_mnist_subset.py --data-root ../shared/data

The subset is drawn with a fixed seed, so rerunning gives the same file.
"""

import argparse
from pathlib import Path

import numpy as np
import torchvision

PER_CLASS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="torchvision data root holding MNIST")
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "src/ganforge/assets/mnist_subset.npz"))
    args = parser.parse_args()
    mnist = torchvision.datasets.MNIST(args.data_root, train=True, download=False)
    images, labels = mnist.data.numpy(), mnist.targets.numpy()
    rng = np.random.default_rng(0)
    chosen = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(labels == d), PER_CLASS, replace=False) for d in range(10)])
    )
    np.savez_compressed(args.out, images=images[chosen], labels=labels[chosen].astype(np.uint8))
    print(f"wrote {len(chosen)} images to {args.out} ({Path(args.out).stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
