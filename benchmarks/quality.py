"""Quality per CPU-minute on MNIST: ganforge's default recipe against the popular baselines, same wall clock.

    python benchmarks/quality.py --data-root ../shared/data                 # 2.5, 5 and 10 minutes each
    python benchmarks/quality.py --data-root ../shared/data --quick         # 0.5 and 1 minute, to try it out
    python benchmarks/quality.py --data-root ../shared/data --recipes default,classic --grids docs/images

Each recipe trains once for the longest budget; its generator is kept at every
budget (checkpoints on a wall-clock cadence), and each kept generator is scored
afterwards (the scoring is not part of the budget): FID with the shipped digits
classifier on --n samples against the MNIST test set, classes covered and the
KL divergence of the class histogram from the test set's (close to uniform).
Recipes:

  classic    (a) the seed's MLP GAN: ganforge `mlp` with its classic defaults (BCE, Adam 1e-3, batch 128)
  examples   (b) the pytorch/examples DCGAN, written here: 64x64 resize, nz 100, ngf = ndf = 64, batch 64,
             Adam 2e-4 / beta1 0.5, BCELoss on a sigmoid, torchvision transforms through a DataLoader
  default    (c) `ganforge train` with no flags: the default MNIST recipe
  VARIANTS   the recipes compared to choose the default (see VARIANTS below)

Run it alone on the machine: the budgets are wall-clock time. Results go to
--out/results.jsonl (one line per recipe and budget) and a Markdown table on stdout.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

import ganforge
from ganforge.checkpoint import run_checkpoints
from ganforge.metrics import evaluate_images
from ganforge.sampling import generate, grid_columns, grid_size, load, save_grid
from machine import describe_machine

# ganforge recipes: TrainConfig changes on top of the defaults. "default" is `ganforge train` as it is.
VARIANTS = {
    "classic": dict(model="mlp"),
    "default": dict(),
    "dcgan": dict(model="dcgan", conditional=False, ema=False),
    "dcgan-ema": dict(model="dcgan", conditional=False, ema=True),
    "cond-dcgan": dict(model="dcgan", conditional=True, ema=False),
    "cond-dcgan-ema-b64": dict(model="dcgan", conditional=True, ema=True, batch_size=64),
    "cond-dcgan-ema-hinge": dict(model="dcgan", conditional=True, ema=True, loss="hinge"),
    "cond-dcgan-ema-b128": dict(model="dcgan", conditional=True, ema=True, batch_size=128),
}


# ---------------------------------------------------------------- (b) the pytorch/examples DCGAN, as written there


class ExamplesGenerator(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


class ExamplesDiscriminator(nn.Module):
    def __init__(self, ndf=64, nc=1):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


def train_examples_dcgan(data_root: str, budgets: list[float], seed: int) -> dict[float, tuple[nn.Module, int]]:
    """The pytorch/examples loop; returns {budget: (a copy of netG at that moment, iterations)}."""
    import copy

    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    torch.manual_seed(seed)
    dataset = dset.MNIST(
        root=data_root,
        download=False,
        transform=transforms.Compose(
            [transforms.Resize(64), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]
        ),
    )
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=2)
    netG, netD = ExamplesGenerator(), ExamplesDiscriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    kept, pending, iterations = {}, sorted(budgets), 0
    started = time.monotonic()
    while pending:
        for data, _ in dataloader:
            netD.zero_grad()
            real = data
            label = torch.full((real.size(0),), 1.0)
            errD_real = criterion(netD(real), label)
            errD_real.backward()
            noise = torch.randn(real.size(0), 100, 1, 1)
            fake = netG(noise)
            label.fill_(0.0)
            errD_fake = criterion(netD(fake.detach()), label)
            errD_fake.backward()
            optimizerD.step()
            netG.zero_grad()
            label.fill_(1.0)
            errG = criterion(netD(fake), label)
            errG.backward()
            optimizerG.step()
            iterations += 1
            while pending and time.monotonic() - started >= pending[0] * 60:
                kept[pending.pop(0)] = (copy.deepcopy(netG).eval(), iterations)
            if not pending:
                break
    return kept


@torch.no_grad()
def examples_samples(netG: nn.Module, n: int, seed: int) -> torch.Tensor:
    """(n, 1, 64, 64) uint8 from the pytorch/examples generator (scored after resizing to 28x28)."""
    noise = torch.randn(n, 100, 1, 1, generator=torch.Generator().manual_seed(seed))
    images = torch.cat([netG(z) for z in noise.split(500)])
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- ganforge recipes


def train_ganforge(name: str, data_root: str, budgets: list[float], work: Path, seed: int) -> dict:
    """Train recipe ``name`` for the longest budget with a checkpoint at every budget; {budget: (path, steps)}."""
    every = min(budgets) if all(b % min(budgets) < 1e-9 for b in budgets) else None
    assert every, "budgets must be multiples of the shortest"
    config = ganforge.TrainConfig(
        data="mnist",
        data_root=data_root,
        minutes=max(budgets),
        seed=seed,
        out=str(work / name),
        overwrite=True,
        checkpoint_every=f"{every * 60:g}s",
        keep_checkpoints=1000,
        snapshot_every=0,  # only the wall-clock checkpoints: the budgets are picked from them by position
        sample_every="0",
        progress=False,
        tensorboard=False,
        **VARIANTS[name],
    )
    result = ganforge.train(config)
    files = sorted(run_checkpoints(result.run_dir / "checkpoints"))[1:]  # without step 0: one per cadence, then the end
    kept = {}
    for budget in sorted(budgets):
        index = round(budget / every) - 1
        path = files[min(index, len(files) - 1)] if budget < max(budgets) else files[-1]
        kept[budget] = (path, int(path.stem.split("_")[1]))
    return kept


def score(images: torch.Tensor, data_root: str) -> dict:
    results = evaluate_images(images, "mnist", features="mnist", data_root=data_root)
    return {k: results[k] for k in ("fid", "classes_covered", "class_kl", "precision", "recall")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--budgets", default="2.5,5,10", help="minutes, each a multiple of the shortest")
    parser.add_argument("--quick", action="store_true", help="budgets 0.5,1 and 2,000 samples")
    parser.add_argument("--recipes", default="classic,examples,default", help=f"examples, {', '.join(VARIANTS)}")
    parser.add_argument("--n", type=int, default=10000, help="samples scored per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/quality", help="work folder: runs and results.jsonl")
    parser.add_argument("--grids", default=None, help="folder for a 64-sample grid of every row")
    args = parser.parse_args()
    budgets = [0.5, 1.0] if args.quick else [float(b) for b in args.budgets.split(",")]
    n = 2000 if args.quick else args.n
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {describe_machine()}")
    rows = []
    for recipe in args.recipes.split(","):
        if recipe == "examples":
            kept = train_examples_dcgan(args.data_root, budgets, args.seed)
            for budget, (netG, steps) in kept.items():
                images = examples_samples(netG, n, args.seed)
                rows.append(dict(recipe=recipe, minutes=budget, steps=steps) | score(images, args.data_root))
                grid = examples_samples(netG, 64, args.seed)
                write_row(rows[-1], work, args.grids, grid)
        else:
            for budget, (path, steps) in train_ganforge(recipe, args.data_root, budgets, work, args.seed).items():
                images = generate(path, n=n, seed=args.seed)
                rows.append(dict(recipe=recipe, minutes=budget, steps=steps) | score(images, args.data_root))
                classes = load(path).num_classes  # a conditional recipe's grid: one class per column
                grid = generate(path, n=grid_size(64, classes), seed=args.seed)
                write_row(rows[-1], work, args.grids, grid, grid_columns(len(grid), classes))
    print("\n| recipe | minutes | steps | FID | classes covered | class KL | precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['recipe']} | {row['minutes']:g} | {row['steps']:,} | {row['fid']:.2f} | "
            f"{row['classes_covered']} | {row['class_kl']:.4f} | {row['precision']:.2f} | {row['recall']:.2f} |"
        )


def write_row(row: dict, work: Path, grids: str | None, grid: torch.Tensor, columns: int | None = None) -> None:
    """Append the row to results.jsonl and print it; save its sample grid when asked."""
    with open(work / "results.jsonl", "a") as file:
        file.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    if grids:
        Path(grids).mkdir(parents=True, exist_ok=True)
        save_grid(grid, Path(grids) / f"quality-{row['recipe']}-{row['minutes']:g}min.png", columns)


if __name__ == "__main__":
    main()
