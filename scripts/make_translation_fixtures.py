"""Write tests/data/pairs (tiny side-by-side pairs) and a pix2pix and a CycleGAN run stopped at step 3 on them.

    python scripts/make_translation_fixtures.py

Run once per checkpoint format version, with the ganforge of that version: later versions must resume the
runs bit-exactly (tests/test_checkpoint.py). The runs in tests/data/run_pix2pix_format2 and
tests/data/run_cyclegan_format2 were written by ganforge at e078c8a (checkpoint format 2).
"""

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import ganforge
from ganforge.checkpoint import FORMAT_VERSION

FIXTURES = Path(__file__).parents[1] / "tests" / "data"
SIZE = 16  # each half is SIZE x SIZE


def write_pairs(root: Path) -> Path:
    """pix2pix's layout, train/ (8 pairs) and test/ (2): A | B side by side, B a function of A."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 2)):
        (root / split).mkdir(parents=True)
        for index in range(count):
            a = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            b = 255 - a[:, ::-1]  # the mirrored negative
            Image.fromarray(np.concatenate([a, b], axis=1)).save(root / split / f"{index}.png")
    return root


def main() -> None:
    pairs = FIXTURES / "pairs"
    if not pairs.is_dir():
        write_pairs(pairs)
    for task, extra in (("pix2pix", {}), ("cyclegan", dict(pool_size=3, ema=True, width=2))):
        target = FIXTURES / f"run_{task}_format{FORMAT_VERSION}"
        with tempfile.TemporaryDirectory() as work:
            config = ganforge.TrainConfig(
                task=task,
                data=str(pairs.resolve()),
                image_size=SIZE,
                load_size=SIZE + 2,
                **({"width": 4} | extra),
                batch_size=2,
                steps=3,
                checkpoint_every="1",
                keep_checkpoints=1,
                snapshot_every=0,
                sample_every="0",
                threads=1,
                out=str(Path(work) / "run"),
                progress=False,
                tensorboard=False,
            )
            run = ganforge.train(config).run_dir
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            shutil.copy(run / "config.yaml", target / "config.yaml")
            (target / "checkpoints").mkdir()
            latest = (run / "checkpoints" / "latest").read_text().strip()
            shutil.copy(run / "checkpoints" / latest, target / "checkpoints" / latest)
            shutil.copy(run / "checkpoints" / "latest", target / "checkpoints" / "latest")
        print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
