"""How long a large image folder takes to load: the first time (decoding every file into the decode cache)
and every time after (from the cache).

    python benchmarks/folder_start.py --data ../shared/data/cifar10/train

Loads --data as ``ganforge train --data`` does (``load_dataset``), twice, with
an empty cache folder of its own, and prints both times with the machine. The
second load still lists and stats every file: that is how it knows the folder
is unchanged.
"""

import argparse
import os
import tempfile
import time

import torch

from ganforge.data import load_dataset
from machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of images")
    parser.add_argument("--image-size", type=int, default=None, help="as train's --image-size (default: typical)")
    args = parser.parse_args()
    print(describe_machine())
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        times, loaded = [], []
        for _ in range(2):
            started = time.perf_counter()
            loaded.append(load_dataset(args.data, image_size=args.image_size))
            times.append(time.perf_counter() - started)
        assert torch.equal(loaded[0].images, loaded[1].images)
        size = sum(entry.stat().st_size for entry in os.scandir(os.path.join(cache, "ganforge", "folders")))
    print(f"{loaded[0].description}, {tuple(loaded[0].images.shape[1:])}; cache entry {size / 2**20:.0f} MiB")
    print(f"first load (decode): {times[0]:.1f} s; second load (cache): {times[1]:.1f} s ({times[0] / times[1]:.0f}x)")


if __name__ == "__main__":
    main()
