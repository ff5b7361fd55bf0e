"""Write tests/data/checkpoint_v1.pt and the samples it must keep giving.

    python scripts/make_checkpoint_fixture.py

Run once per checkpoint format version: later ganforge versions must load the
file and reproduce the samples (tests/test_checkpoint.py).
"""

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import ganforge
from ganforge.checkpoint import FORMAT_VERSION, resolve_checkpoint

FIXTURES = Path(__file__).parents[1] / "tests" / "data"


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "images" / "only"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for index in range(16):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(folder / f"{index}.png")
        config = ganforge.TrainConfig(
            model="mlp",
            data=str(folder.parent),
            width=4,
            z_dim=8,
            image_size=8,
            batch_size=8,
            steps=3,
            out=str(Path(work) / "run"),
            progress=False,
            tensorboard=False,
        )
        run = ganforge.train(config).run_dir
        FIXTURES.mkdir(exist_ok=True)
        target = FIXTURES / f"checkpoint_v{FORMAT_VERSION}.pt"
        target.write_bytes(resolve_checkpoint(run).read_bytes())
    np.save(FIXTURES / f"checkpoint_v{FORMAT_VERSION}_samples.npy", ganforge.generate(target, n=8, seed=0).numpy())
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
