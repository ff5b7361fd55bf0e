"""How long a large image folder takes to load: the first time (decoding every file into the decode cache)
and every time after (from the cache).

    python benchmarks/folder_start.py --data ../shared/data/cifar10/train
    python benchmarks/folder_start.py --data ../shared/data/cifar10/train --stream

Loads --data as ``ganforge train --data`` does (``load_dataset``), twice, with
an empty cache folder of its own, and prints both times with the machine. The
second load still lists and stats every file: that is how it knows the folder
is unchanged.

--stream sets the memory budget to nothing, so the folder takes the path of
one too big for memory: decoded to disk and read memory-mapped, its training
part (``split_holdout``, --holdout 0.1) written once more beside it. It also
times the split (first and second time) and gathering random batches of 64
from the mapped training part against the same from a copy in memory (the
mapped file sits in the page cache here: what a machine with the memory to
cache it sees, not a cold disk).
"""

import argparse
import os
import tempfile
import time

import torch

import ganforge.data
from ganforge.config import DEFAULT_HOLDOUT
from ganforge.data import load_dataset, split_holdout
from machine import describe_machine


def batches_per_second(images: torch.Tensor, seconds: float = 5.0, batch: int = 64) -> float:
    """Random batches of ``batch`` images gathered from ``images`` per second, over about ``seconds``."""
    generator, count, started = torch.Generator().manual_seed(0), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        images[torch.randint(len(images), (batch,), generator=generator)].float()
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of images")
    parser.add_argument("--image-size", type=int, default=None, help="as train's --image-size (default: typical)")
    parser.add_argument("--stream", action="store_true", help="as a folder too big for memory (memory-mapped)")
    args = parser.parse_args()
    print(describe_machine())
    if args.stream:
        ganforge.data.memory_budget = lambda: 0
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        times, loaded = [], []
        for _ in range(2):
            started = time.perf_counter()
            loaded.append(load_dataset(args.data, image_size=args.image_size))
            times.append(time.perf_counter() - started)
        assert torch.equal(loaded[0].images, loaded[1].images)
        if args.stream:
            assert loaded[1].streamed_from is not None
            splits = []
            for _ in range(2):
                started = time.perf_counter()
                train = split_holdout(loaded[1], DEFAULT_HOLDOUT)[0]
                splits.append(time.perf_counter() - started)
            mapped, in_memory = batches_per_second(train.images), batches_per_second(train.images.clone())
        size = sum(entry.stat().st_size for entry in os.scandir(os.path.join(cache, "ganforge", "folders")))
    print(f"{loaded[0].description}, {tuple(loaded[0].images.shape[1:])}; cache {size / 2**20:.0f} MiB")
    print(f"first load (decode): {times[0]:.1f} s; second load (cache): {times[1]:.1f} s ({times[0] / times[1]:.0f}x)")
    if args.stream:
        print(f"streamed: the training part written in {splits[0]:.1f} s the first time, mapped in {splits[1]:.2f} s")
        print(
            f"batches of 64 gathered per second: {mapped:,.0f} from the mapped file, {in_memory:,.0f} from memory "
            f"({mapped / in_memory:.2f}x)"
        )


if __name__ == "__main__":
    main()
