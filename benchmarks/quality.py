"""Quality per CPU-minute: ganforge's default recipe against the popular baselines, same wall clock.

    python benchmarks/quality.py --data-root ../shared/data                 # MNIST: 2.5, 5 and 10 minutes each
    python benchmarks/quality.py --data-root ../shared/data --quick         # 0.5 and 1 minute, to try it out
    python benchmarks/quality.py --data-root ../shared/data --recipes default,classic --grids docs/images
    python benchmarks/quality.py --data ../shared/data/cifar10/train        # CIFAR-10 at 32 px: 10 and 30 minutes
    python benchmarks/quality.py --data-root ../shared/data --recipes default,default-ac --seeds 0,1,2 --cas

Each recipe trains once for the longest budget; its generator is kept at every
budget (checkpoints on a wall-clock cadence), and each kept generator is scored
afterwards (the scoring is not part of the budget). MNIST: FID with the shipped
digits classifier on --n samples against the MNIST test set. CIFAR-10 (--data,
the training images in class folders): every recipe trains on the 45,000 images
``ganforge train`` keeps with its default --holdout 0.1, and is scored with the
shipped CIFAR-10 classifier against the 5,000 held out (FID and KID in its
features, not Inception's). Both: classes covered and the KL divergence of the
class histogram from the reference's (CIFAR-10: also the sliced Wasserstein distance to the held-out images,
per pyramid level, metrics/swd.py); for a conditional recipe also how often the classifier reads each
sample as the class it was asked for (the mean over classes, and the weakest class), and with --cas the
classification accuracy score of its labelled samples, drawn as ``ganforge generate --dataset`` draws them (a
small CNN trained on them, tested on the real test set, beside the same CNN trained on as many real images).
With --seeds each recipe trains once per seed and a last table gives every figure's mean and range over the
seeds. Recipes:

  classic    (a) the seed's MLP GAN: ganforge `mlp` with its classic defaults (BCE, Adam 1e-3, batch 128)
  pytorchgan (a) the PyTorch-GAN DCGAN (implementations/dcgan/dcgan.py), written here: 32 px, batch 64, BCE,
             Adam 2e-4 / beta1 0.5, upsampling + 3x3 convolutions, torchvision transforms through a DataLoader
  examples   (b) the pytorch/examples DCGAN, written here: 64x64 resize, nz 100, ngf = ndf = 64, batch 64,
             Adam 2e-4 / beta1 0.5, BCELoss on a sigmoid, torchvision transforms through a DataLoader
  default    (c) `ganforge train` with no flags but the data (and --image-size 32 for CIFAR-10)
  VARIANTS   the recipes compared to choose the default (see VARIANTS below)

Run it alone on the machine: the budgets are wall-clock time. Results go to
--out/results.jsonl (one line per recipe, seed and budget) and Markdown tables on stdout.

An AVX2 machine (float32) on a newer CPU: torch's own switches cap its kernels at AVX2, and one thread of a
Zen 5 then trains the default at the speed of two Zen 3 cores (docs/quality.md):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/quality.py --data-root ../shared/data --threads 1
"""

import argparse
import copy
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import ganforge
from ganforge.checkpoint import checkpoint_step, run_checkpoints
from ganforge.config import DEFAULT_HOLDOUT, dataset_noise_std
from ganforge.data import conform_images, holdout_indices
from ganforge.metrics import evaluate_images
from ganforge.metrics.evaluation import cas_against, swd_against
from ganforge.sampling import grid_columns, grid_size, save_grid
from ganforge.tasks import load
from ganforge.tasks.gan.handle import generate
from machine import describe_machine

# ganforge recipes: TrainConfig changes on top of the defaults. "default" is `ganforge train` as it is, whose
# --precision auto is bf16 on hardware that computes in it; every other recipe names its precision, so that a
# published row keeps its meaning on any machine (the float32 ones were measured before auto was the default).
F32 = dict(precision="32")
LR2 = dict(lr=2e-4)  # the paper's Adam rate, which dcgan on grayscale images trained at until 1.6e-3
AC02 = dict(class_loss=0.2)  # the class term of grayscale dcgan until 0.5: the rows measured with it keep it
HINGE_DIFFAUG = dict(model="dcgan", loss="hinge", diffaug=True)  # the colour dcgan's loss and augmentation
VARIANTS = {
    "classic": dict(model="mlp", **F32),
    "default": dict(),
    "default-32": dict(**F32),
    "default-bf16": dict(precision="auto"),
    "dcgan": dict(model="dcgan", conditional=False, ema=False, **F32),
    "dcgan-ema": dict(model="dcgan", conditional=False, ema=True, **F32),
    "cond-dcgan": dict(model="dcgan", conditional=True, ema=False, **F32),
    "cond-dcgan-ema-b64": dict(model="dcgan", conditional=True, ema=True, batch_size=64, **F32),
    "cond-dcgan-ema-hinge": dict(model="dcgan", conditional=True, ema=True, loss="hinge", **F32),
    "cond-dcgan-ema-b128": dict(model="dcgan", conditional=True, ema=True, batch_size=128, **F32),
    # The previous MNIST defaults and the candidates that replaced them (docs/quality.md), all at the paper's Adam
    # 2e-4: batch 64 without the class-consistency term (an auxiliary classifier in D beside the projection), the
    # term at three weights, batch 32, 16 and 8; then the learning rates at batch 16 with the term at 0.2.
    "default-noac": dict(batch_size=64, class_loss=0.0, **LR2),
    "default-ac": dict(batch_size=64, class_loss=1.0, **LR2),
    "default-ac05": dict(batch_size=64, class_loss=0.5, **LR2),
    "default-ac02": dict(batch_size=64, class_loss=0.2, **LR2),
    "default-b32": dict(batch_size=32, class_loss=0.0, **LR2),
    "default-b32-ac02": dict(batch_size=32, class_loss=0.2, **LR2),
    "default-b16": dict(batch_size=16, **AC02, **LR2),  # the MNIST default from #29 to Adam at 1.6e-3
    "default-b16-noac": dict(batch_size=16, class_loss=0.0, **LR2),
    "default-b16-ac05": dict(batch_size=16, class_loss=0.5, **LR2),
    "default-b16-ac1": dict(batch_size=16, class_loss=1.0, **LR2),
    "default-b8": dict(batch_size=8, **AC02, **LR2),
    "default-b64": dict(batch_size=64, class_loss=0.0, **LR2),  # on colour data the default until #29's term
    "default-w32": dict(batch_size=16, width=32, **AC02, **LR2),  # half the channels: 2.3x the steps
    "default-lr2": dict(batch_size=16, **AC02, **LR2),  # default-b16 under the name of the learning-rate tables
    "default-lr4": dict(batch_size=16, lr=4e-4, **AC02),  # twice the paper's rate
    "default-lr8": dict(batch_size=16, lr=8e-4, **AC02),
    "default-lr16": dict(batch_size=16, lr=1.6e-3, **AC02),  # 8x the paper's rate: the default until the term at 0.5
    "default-lr32": dict(batch_size=16, lr=3.2e-3, **AC02),
    "default-lr16-ac05": dict(batch_size=16, lr=1.6e-3, class_loss=0.5),  # the MNIST default now
    "default-lr32-ac05": dict(batch_size=16, lr=3.2e-3, class_loss=0.5),
    # Colour (CIFAR-10) candidates. On colour data "default" is colour-lr8-ac05 (COLOUR_DEFAULTS and COLOUR_DCGAN
    # in tasks/gan); nonsat is the grayscale recipe (the colour default until this benchmark chose hinge and
    # DiffAugment), dcgan-hinge-diffaug the colour default until #29 (Adam 2e-4, no class term).
    "nonsat": dict(loss="nonsaturating", diffaug=False, class_loss=0.0, **LR2, **F32),
    "nonsat-bf16": dict(loss="nonsaturating", diffaug=False, class_loss=0.0, **LR2, precision="auto"),
    "dcgan-hinge-diffaug": dict(**HINGE_DIFFAUG, class_loss=0.0, **LR2, **F32),
    "dcgan-hinge-diffaug-bf16": dict(**HINGE_DIFFAUG, class_loss=0.0, **LR2, precision="auto"),
    "resnet-hinge-diffaug": dict(model="resnet", loss="hinge", diffaug=True, **F32),
    "resnet-hinge-diffaug-bf16": dict(model="resnet", loss="hinge", diffaug=True, precision="auto"),
    "resnet-hinge": dict(model="resnet", loss="hinge", **F32),
    # #29's colour candidates on a float32 AVX2 machine: dcgan-hinge-diffaug with the class term (an auxiliary
    # classifier in D beside the projection), with Adam at 4x and 8x the paper's rate, and with both.
    "colour-ac05": dict(**HINGE_DIFFAUG, class_loss=0.5, **LR2, **F32),
    "colour-lr8": dict(**HINGE_DIFFAUG, lr=8e-4, class_loss=0.0, **F32),
    "colour-lr16": dict(**HINGE_DIFFAUG, lr=1.6e-3, class_loss=0.0, **F32),
    "colour-lr8-ac05": dict(**HINGE_DIFFAUG, lr=8e-4, class_loss=0.5, **F32),
    # The colour default (colour-lr8-ac05) with half its batch (twice the steps per CPU-minute, as batch 16 gave
    # on MNIST), or with the class term at 1.
    "colour-b32": dict(**HINGE_DIFFAUG, batch_size=32, lr=8e-4, class_loss=0.5, **F32),
    "colour-lr8-ac1": dict(**HINGE_DIFFAUG, lr=8e-4, class_loss=1.0, **F32),
}


@dataclass(frozen=True)
class Benchmark:
    """What differs between the MNIST and the CIFAR-10 benchmark."""

    data: str  # "mnist", or a folder of images in class folders (CIFAR-10)
    data_root: str | None  # torchvision's root for mnist

    @property
    def is_folder(self) -> bool:
        return self.data != "mnist"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, 32, 32) if self.is_folder else (1, 28, 28)

    @property
    def holdout(self) -> float:
        return DEFAULT_HOLDOUT if self.is_folder else 0.0  # the folder's part ganforge train keeps out

    def torchvision_dataset(self, image_size: int, center_crop: bool = False):
        """The training images as the baselines read them: a torchvision dataset with their transforms (for a
        folder, ImageFolder restricted to the images ganforge train keeps)."""
        import torchvision.datasets as dset
        import torchvision.transforms as transforms

        channels = self.shape[0]
        steps = [transforms.Resize(image_size)] + ([transforms.CenterCrop(image_size)] if center_crop else [])
        transform = transforms.Compose(
            [*steps, transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)]
        )
        if not self.is_folder:
            return dset.MNIST(root=self.data_root, download=False, transform=transform)
        folder = dset.ImageFolder(self.data, transform=transform)
        kept, _ = holdout_indices(len(folder), self.holdout)
        return torch.utils.data.Subset(folder, kept.tolist())

    @property
    def features(self) -> str:
        return "cifar10" if self.is_folder else "mnist"

    def score(self, images: torch.Tensor, labels: torch.Tensor | None = None, classes: list | None = None) -> dict:
        """FID, KID, classes covered, class KL, precision and recall of uint8 samples in the benchmark's features;
        for a conditional recipe's samples (``labels``: the class each was asked for, ``classes``: the run's class
        names), how often the classifier reads a sample as its class: the mean over classes ('label_acc') and the
        weakest class's ('label_acc_min'), where the classifier's classes are the run's."""
        channels, size, _ = self.shape
        images = conform_images(images, size, channels)  # the pytorch/examples DCGAN draws 64 px
        results = evaluate_images(
            images, self.data, self.features, self.data_root, holdout=self.holdout, labels=labels, classes=classes
        )
        kept = ("fid", "kid", "classes_covered", "class_kl", "precision", "recall", "label_acc", "label_acc_min")
        scores = {k: results[k] for k in kept if k in results}
        if self.is_folder:  # and the sliced Wasserstein distance per pyramid level (32 and 16 px): texture, no network
            swd = swd_against(images, self.data, self.data_root, self.holdout)
            scores |= {k: v for k, v in swd.items() if k.startswith("swd")}
        return scores

    def cas(self, images: torch.Tensor, labels: torch.Tensor, seed: int, epochs: int = 3) -> dict:
        """CAS of labelled samples: a small CNN trained ``epochs`` on them, and on as many real images, each
        tested on the real test set (MNIST's test split; the held-out share of a folder)."""
        return cas_against(images, labels, self.data, self.data_root, self.holdout, epochs, seed, "cpu")


# ---------------------------------------------------------------- the baselines' shared loop


def keep_at_budgets(budgets: list[float], batches, step, netG: nn.Module) -> dict[float, tuple[nn.Module, int]]:
    """Run ``step(batch)`` over ``batches`` (an iterable, replayed epoch after epoch) until the longest budget;
    {budget: (a copy of netG in eval mode at that moment, iterations)}."""
    kept, pending, iterations = {}, sorted(budgets), 0
    started = time.monotonic()
    while pending:
        for batch in batches:
            step(batch)
            iterations += 1
            while pending and time.monotonic() - started >= pending[0] * 60:
                kept[pending.pop(0)] = (copy.deepcopy(netG).eval(), iterations)
            if not pending:
                break
    return kept


@torch.no_grad()
def baseline_samples(netG: nn.Module, n: int, seed: int, z_shape: tuple[int, ...]) -> torch.Tensor:
    """(n, C, H, W) uint8 from a baseline generator (tanh output), for noise of shape (n, *z_shape)."""
    noise = torch.randn(n, *z_shape, generator=torch.Generator().manual_seed(seed))
    images = torch.cat([netG(z) for z in noise.split(500)])
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


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


def train_examples_dcgan(bench: Benchmark, budgets: list[float], seed: int) -> dict[float, tuple[nn.Module, int]]:
    """The pytorch/examples loop (its mnist transforms, or its folder ones with a centre crop); returns
    {budget: (a copy of netG at that moment, iterations)}."""
    torch.manual_seed(seed)
    dataset = bench.torchvision_dataset(64, center_crop=bench.is_folder)
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=2)
    netG, netD = ExamplesGenerator(nc=bench.shape[0]), ExamplesDiscriminator(nc=bench.shape[0])
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(batch):
        data, _ = batch
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

    return keep_at_budgets(budgets, dataloader, step, netG)


# ---------------------------------------------------------------- (a) the PyTorch-GAN DCGAN, as written there


class PyTorchGANGenerator(nn.Module):
    def __init__(self, latent_dim=100, img_size=32, channels=3):
        super().__init__()
        self.init_size = img_size // 4
        self.l1 = nn.Sequential(nn.Linear(latent_dim, 128 * self.init_size**2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 128, 3, stride=1, padding=1),
            nn.BatchNorm2d(128, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, stride=1, padding=1),
            nn.BatchNorm2d(64, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, channels, 3, stride=1, padding=1),
            nn.Tanh(),
        )

    def forward(self, z):
        out = self.l1(z)
        out = out.view(out.shape[0], 128, self.init_size, self.init_size)
        return self.conv_blocks(out)


class PyTorchGANDiscriminator(nn.Module):
    def __init__(self, img_size=32, channels=3):
        super().__init__()

        def discriminator_block(in_filters, out_filters, bn=True):
            block = [nn.Conv2d(in_filters, out_filters, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if bn:
                block.append(nn.BatchNorm2d(out_filters, 0.8))
            return block

        self.model = nn.Sequential(
            *discriminator_block(channels, 16, bn=False),
            *discriminator_block(16, 32),
            *discriminator_block(32, 64),
            *discriminator_block(64, 128),
        )
        ds_size = img_size // 2**4
        self.adv_layer = nn.Sequential(nn.Linear(128 * ds_size**2, 1), nn.Sigmoid())

    def forward(self, img):
        out = self.model(img)
        return self.adv_layer(out.view(out.shape[0], -1))


def train_pytorchgan_dcgan(bench: Benchmark, budgets: list[float], seed: int) -> dict[float, tuple[nn.Module, int]]:
    """The PyTorch-GAN dcgan.py loop (G step, then D step on the same fakes); {budget: (netG copy, iterations)}."""
    torch.manual_seed(seed)
    dataloader = torch.utils.data.DataLoader(bench.torchvision_dataset(32), batch_size=64, shuffle=True)
    generator = PyTorchGANGenerator(channels=bench.shape[0])
    discriminator = PyTorchGANDiscriminator(channels=bench.shape[0])
    generator.apply(weights_init)
    discriminator.apply(weights_init)
    adversarial_loss = nn.BCELoss()
    optimizer_G = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(batch):
        imgs, _ = batch
        valid = torch.ones(imgs.size(0), 1)
        fake = torch.zeros(imgs.size(0), 1)
        optimizer_G.zero_grad()
        z = torch.randn(imgs.shape[0], 100)
        gen_imgs = generator(z)
        g_loss = adversarial_loss(discriminator(gen_imgs), valid)
        g_loss.backward()
        optimizer_G.step()
        optimizer_D.zero_grad()
        real_loss = adversarial_loss(discriminator(imgs), valid)
        fake_loss = adversarial_loss(discriminator(gen_imgs.detach()), fake)
        d_loss = (real_loss + fake_loss) / 2
        d_loss.backward()
        optimizer_D.step()

    return keep_at_budgets(budgets, dataloader, step, generator)


# Each baseline: (train(bench, budgets, seed) -> {budget: (netG, steps)}, the shape of its noise)
BASELINES = {
    "examples": (train_examples_dcgan, (100, 1, 1)),
    "pytorchgan": (train_pytorchgan_dcgan, (100,)),
}


# ---------------------------------------------------------------- ganforge recipes


def train_ganforge(name: str, bench: Benchmark, budgets: list[float], work: Path, seed: int, threads: int) -> dict:
    """Train recipe ``name`` for the longest budget with a checkpoint at every budget; {budget: (path, steps)}."""
    every = math.gcd(*(round(budget * 60) for budget in budgets))  # seconds: one checkpoint lands on every budget
    config = ganforge.TrainConfig(
        data=bench.data,
        data_root=bench.data_root,
        image_size=bench.shape[-1] if bench.is_folder else None,  # a folder's default is 64 px
        minutes=max(budgets),
        seed=seed,
        threads=threads,
        out=str(work / f"{name}-seed{seed}"),
        overwrite=True,
        checkpoint_every=f"{every}s",
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
        index = round(budget * 60 / every) - 1
        path = files[min(index, len(files) - 1)] if budget < max(budgets) else files[-1]
        kept[budget] = (path, checkpoint_step(path))
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="mnist", help="mnist, or CIFAR-10's training images in class folders")
    parser.add_argument("--data-root", default=None, help="torchvision's data root holding MNIST")
    parser.add_argument(
        "--budgets",
        default=None,
        help="minutes, whole seconds each (default: 2.5,5,10 for MNIST, 10,30 for CIFAR-10)",
    )
    parser.add_argument("--quick", action="store_true", help="budgets 0.5,1 and 2,000 samples")
    parser.add_argument(
        "--recipes",
        default=None,
        help=f"{', '.join(BASELINES)}, {', '.join(VARIANTS)} "
        "(default: classic,examples,default for MNIST; pytorchgan,examples,default for CIFAR-10)",
    )
    parser.add_argument(
        "--n", type=int, default=10000, help="samples scored per row (CIFAR-10: at most 5,000, the held-out images)"
    )
    parser.add_argument("--seeds", default="0", help="seeds, comma-separated: each recipe trains once per seed")
    parser.add_argument(
        "--threads", type=int, default=0, help="threads for every recipe (default 0: ganforge's choice)"
    )
    parser.add_argument(
        "--cas",
        action="store_true",
        help="also the CAS of each conditional row, drawn as generate --dataset draws it (about a minute each)",
    )
    parser.add_argument("--out", default="runs/quality", help="work folder: runs and results.jsonl")
    parser.add_argument("--grids", default=None, help="folder for a 64-sample grid of every row")
    args = parser.parse_args()
    bench = Benchmark(args.data, args.data_root)
    budgets = args.budgets or ("10,30" if bench.is_folder else "2.5,5,10")
    budgets = [0.5, 1.0] if args.quick else [float(b) for b in budgets.split(",")]
    n = 2000 if args.quick else min(args.n, 5000) if bench.is_folder else args.n
    recipes = args.recipes or ("pytorchgan,examples,default" if bench.is_folder else "classic,examples,default")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)  # the baselines' count; ganforge's recipes take it as --threads
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {describe_machine()}")
    print(f"# {args.data}: budgets {budgets} minutes, {n:,} samples scored per row, seeds {seeds}")
    rows = []
    for recipe in recipes.split(","):
        for seed in seeds:
            rows += run_recipe(recipe, bench, budgets, n, seed, args, work)
    print(
        "\n| recipe | seed | minutes | steps | FID | KID | classes covered | class KL | precision | recall | "
        "label acc (mean, weakest) | CAS (real) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['recipe']} | {row['seed']} | {row['minutes']:g} | {row['steps']:,} | {row['fid']:.2f} | "
            f"{row['kid']:.4f} | {row['classes_covered']} | {row['class_kl']:.4f} | {row['precision']:.2f} | "
            f"{row['recall']:.2f} | {obedience_cell(row)} | {cas_cell(row)} |"
        )
    if len(seeds) > 1:
        print_spread(rows)


def run_recipe(recipe: str, bench: Benchmark, budgets: list[float], n: int, seed: int, args, work: Path) -> list:
    """Train ``recipe`` once with ``seed`` and score its generator at every budget: one row per budget."""
    rows = []
    if recipe in BASELINES:
        train, z_shape = BASELINES[recipe]
        for budget, (netG, steps) in train(bench, budgets, seed).items():
            images = baseline_samples(netG, n, seed, z_shape)
            rows.append(dict(recipe=recipe, seed=seed, minutes=budget, steps=steps) | bench.score(images))
            grid = baseline_samples(netG, 64, seed, z_shape)
            write_row(rows[-1], work, args.grids, grid, prefix=bench)
        return rows
    for budget, (path, steps) in train_ganforge(recipe, bench, budgets, work, seed, args.threads).items():
        model = load(path, "auto", command="generate")  # read once: the scored samples, the labels and the grid
        images = generate(model, n=n, seed=seed)
        classes = model.num_classes  # a conditional recipe's grid: one class per column
        labels = model.labels(n) if classes else None  # the classes generate cycled through
        scores = bench.score(images, labels, model.classes if classes else None)
        rows.append(dict(recipe=recipe, seed=seed, minutes=budget, steps=steps) | scores)
        if classes and args.cas:  # the labelled set as generate --dataset draws it (colour: the images above)
            wide = dataset_noise_std(model.image_shape[0])
            dataset = images if wide == 1.0 else generate(model, n=n, seed=seed, noise_std=wide)
            rows[-1] |= bench.cas(dataset, labels, seed)
        grid = generate(model, n=grid_size(64, classes), seed=seed)
        write_row(rows[-1], work, args.grids, grid, grid_columns(len(grid), classes), prefix=bench)
    return rows


def obedience_cell(row: dict) -> str:
    return f"{row['label_acc']:.1%}, {row['label_acc_min']:.1%}" if "label_acc" in row else ""


def cas_cell(row: dict) -> str:
    return f"{row['cas']:.3f} ({row['cas_real']:.3f})" if "cas" in row else ""


# The figures of the spread table, each with its format.
SPREAD = (
    ("steps", ",.0f"),
    ("fid", ".2f"),
    ("class_kl", ".4f"),
    ("recall", ".2f"),
    ("label_acc", ".1%"),
    ("label_acc_min", ".1%"),
    ("cas", ".3f"),
    ("cas_real", ".3f"),
    ("swd", ".1f"),
    ("swd_32", ".1f"),
    ("swd_16", ".1f"),
)


def print_spread(rows: list[dict]) -> None:
    """A table of each recipe and budget over its seeds: 'mean (min-max)' of every figure it has."""
    print("\n| recipe | minutes | seeds | " + " | ".join(key for key, _ in SPREAD) + " |")
    print("|---|---|---|" + "---|" * len(SPREAD))
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["minutes"]), []).append(row)
    for (recipe, minutes), group in groups.items():
        cells = []
        for key, spec in SPREAD:
            values = [row[key] for row in group if key in row]
            cells.append(
                f"{statistics.mean(values):{spec}} ({min(values):{spec}}-{max(values):{spec}})" if values else ""
            )
        print(f"| {recipe} | {minutes:g} | {len(group)} | " + " | ".join(cells) + " |")


def write_row(row: dict, work: Path, grids: str | None, grid: torch.Tensor, columns=None, prefix=None) -> None:
    """Append the row to results.jsonl and print it; save its sample grid when asked."""
    with open(work / "results.jsonl", "a") as file:
        file.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    if grids:
        Path(grids).mkdir(parents=True, exist_ok=True)
        name = "quality-cifar10" if prefix.is_folder else "quality"
        seed = f"-seed{row['seed']}" if row["seed"] else ""
        save_grid(grid, Path(grids) / f"{name}-{row['recipe']}-{row['minutes']:g}min{seed}.png", columns)


if __name__ == "__main__":
    main()
