"""Translation per CPU-minute on CMP Facades (labels -> photo): pix2pix as its reference code trains it, against
ganforge's pix2pix and CycleGAN, at the same wall clock and resolution.

    python benchmarks/translation.py --data ../shared/data/facades                  # 10 and 30 minutes each
    python benchmarks/translation.py --data ../shared/data/facades --budgets 10 --pictures docs/images
    python benchmarks/translation.py --data ../shared/data/facades --budgets 0.5 --rows baseline,pix2pix
    python benchmarks/translation.py --data ../shared/data/facades --size 256 --rows baseline --out W &  # apart,
    python benchmarks/translation.py --data ../shared/data/facades --size 256 --rows pix2pix --out W    # a core each,
    python benchmarks/translation.py --data ../shared/data/facades --size 256 --rows baseline,pix2pix --out W \
        --assemble --pictures docs/images                                                                # one picture

Rows:

  baseline  (a) pix2pix as junyanz/pytorch-CycleGAN-and-pix2pix trains it by default, written here: U-Net
            (dropout, BatchNorm) and the basic PatchGAN (3 layers, 70x70), N(0, 0.02) init, batch 1,
            Adam 2e-4 / beta1 0.5, BCE (vanilla GAN) + 100 x L1, each image decoded, resized to --load-size,
            randomly cropped and flipped by torchvision transforms through a DataLoader (1 worker on these
            2 cores), D's loss halved; tested as its test.py does by default (train mode: batch statistics
            and dropout on). The networks are ganforge's classes with the reference's settings.
  pix2pix   (b) `ganforge train --task pix2pix` with its defaults (an EMA of the generator among them):
            scored with the moving average, and (pix2pix:latest) with the same run's latest weights.
  cyclegan  (c) `ganforge train --task cyclegan` with its defaults on the same pairs, the pairing thrown away
            in training; scored against the true pairs.
  pix2pix-no-ema  (b) with --no-ema, as pix2pix trained before the EMA was its default.
  pix2pix-bf16, cyclegan-bf16  (b), (c) with --precision auto: bf16 where the hardware computes in it (the
            translation tasks' default is float32 until these rows show bf16 training as well).
  pix2pix-b1/b4/b16, pix2pix-w64/w32, cyclegan-w64/w32  (b), (c) with that batch or generator width.

Every row trains once for the longest budget and keeps its generator at each budget; the scoring (L1, PSNR,
SSIM on the 106 test pairs at --size, metrics/translation.py, and the SWD of the outputs against the test
photos, which sees blur) is not part of the budget. Images per second
count training images over the whole budget. Run it alone on the machine: the budgets are wall-clock time.
Results go to --out/results.jsonl and a Markdown table on stdout; with --pictures, one picture per budget
of the same six test inputs for every row.
"""

import argparse
import json
import random
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

import ganforge
from ganforge.checkpoint import run_checkpoints
from ganforge.data import conform_images, list_images, scale_images, to_uint8
from ganforge.metrics.swd import swd
from ganforge.metrics.translation import pair_scores
from ganforge.models.translation import PatchDiscriminator, UNetGenerator
from ganforge.sampling import save_grid
from ganforge.tasks.translation.data import load_translation_data
from ganforge.tasks.translation.evaluate import score_translator
from ganforge.tasks.translation.handle import load_translator
from machine import describe_machine

ROWS = ("baseline", "pix2pix", "cyclegan")  # the default rows
GANFORGE_ROWS = {  # TrainConfig settings of each ganforge row
    "pix2pix": dict(task="pix2pix"),
    "cyclegan": dict(task="cyclegan"),
    "pix2pix-no-ema": dict(task="pix2pix", ema=False),
    "pix2pix-bf16": dict(task="pix2pix", precision="auto"),  # translation's default is float32 (--precision 32)
    "cyclegan-bf16": dict(task="cyclegan", precision="auto"),
    # Batches at 256 px: the batch of 16 was chosen at 64 px, where a step costs a sixteenth of one at 256 px.
    "pix2pix-b1": dict(task="pix2pix", batch_size=1),
    "pix2pix-b4": dict(task="pix2pix", batch_size=4),
    "pix2pix-b16": dict(task="pix2pix", batch_size=16),  # the batch before it followed the size (16 at every size)
    # Width at 256 px: a U-Net of width 32 costs a quarter of the FLOPs of the papers' 64.
    "pix2pix-w64": dict(task="pix2pix", width=64),
    "pix2pix-w32": dict(task="pix2pix", width=32),
    "cyclegan-w64": dict(task="cyclegan", width=64),
    "cyclegan-w32": dict(task="cyclegan", width=32),
}
SHOWN = 6  # test inputs in each picture


# ---------------------------------------------------------------- (a) the reference's pix2pix, as it trains


class AlignedPairs(Dataset):
    """The reference's AlignedDataset: A | B files, resized to load_size, one random crop and flip for both."""

    def __init__(self, folder: Path, load_size: int, crop_size: int, direction: str):
        from torchvision import transforms

        self.files, self.load_size, self.crop_size = list_images(folder), load_size, crop_size
        self.direction = direction
        self.to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        pair = Image.open(self.files[index]).convert("RGB")
        w, h = pair.size
        a, b = pair.crop((0, 0, w // 2, h)), pair.crop((w // 2, 0, w, h))
        x, y = (random.randint(0, self.load_size - self.crop_size) for _ in range(2))
        flip = random.random() > 0.5

        def transform(image):
            image = TF.resize(image, [self.load_size, self.load_size], InterpolationMode.BICUBIC)
            image = image.crop((x, y, x + self.crop_size, y + self.crop_size))
            return self.to_tensor(TF.hflip(image) if flip else image)

        a, b = transform(a), transform(b)
        return (b, a) if self.direction == "BtoA" else (a, b)


def train_baseline(folder: Path, size: int, load_size: int, budgets: list[float], seed: int) -> dict:
    """Train the reference's pix2pix for the longest budget; {budget: (generator state, images trained)}."""
    torch.manual_seed(seed)
    random.seed(seed)
    generator = UNetGenerator(3, 3, width=64, image_size=size, norm="batch", dropout=True)
    discriminator = PatchDiscriminator(6, width=64, image_size=256, norm="batch")  # netD basic: 3 layers
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce, l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()
    pairs = AlignedPairs(folder / "train", load_size, size, "BtoA")
    loader = DataLoader(pairs, batch_size=1, shuffle=True, num_workers=1, persistent_workers=True)
    kept, images, start, pending = {}, 0, time.monotonic(), sorted(budgets)
    while pending:
        for real_a, real_b in loader:
            fake_b = generator(real_a)
            # D: real pairs labelled 1, fake pairs 0, loss halved (the reference's backward_D).
            d_opt.zero_grad()
            pred_fake = discriminator(torch.cat([real_a, fake_b.detach()], 1))
            pred_real = discriminator(torch.cat([real_a, real_b], 1))
            loss_d = 0.5 * (bce(pred_fake, torch.zeros_like(pred_fake)) + bce(pred_real, torch.ones_like(pred_real)))
            loss_d.backward()
            d_opt.step()
            # G: fool D, plus 100 x L1 (backward_G), with D's weights frozen.
            discriminator.requires_grad_(False)
            g_opt.zero_grad()
            pred_fake = discriminator(torch.cat([real_a, fake_b], 1))
            loss_g = bce(pred_fake, torch.ones_like(pred_fake)) + 100.0 * l1(fake_b, real_b)
            loss_g.backward()
            g_opt.step()
            discriminator.requires_grad_(True)
            images += 1
            if time.monotonic() - start >= pending[0] * 60:
                kept[pending.pop(0)] = ({k: v.clone() for k, v in generator.state_dict().items()}, images)
                if not pending:
                    break
    return kept


@torch.no_grad()
def baseline_outputs(state: dict, size: int, inputs: torch.Tensor) -> torch.Tensor:
    """The reference's test.py by default: batch 1, the network left in train mode (batch statistics, dropout)."""
    generator = UNetGenerator(3, 3, width=64, image_size=size, norm="batch", dropout=True)
    generator.load_state_dict(state)
    generator.train()
    torch.manual_seed(0)
    outputs = [generator(scale_images(image[None], (-1.0, 1.0))) for image in inputs]
    return to_uint8(torch.cat(outputs), (-1.0, 1.0))


# ---------------------------------------------------------------- (b), (c) ganforge


def train_ganforge(row: str, folder: Path, size: int, budgets: list[float], work: Path, seed: int, threads: int):
    """``ganforge train`` with the row's settings for the longest budget; {budget: (checkpoint, images trained)}."""
    every = min(budgets)
    config = ganforge.TrainConfig(
        **GANFORGE_ROWS[row],
        threads=threads,
        data=str(folder),
        direction="BtoA",
        image_size=size,
        minutes=max(budgets),
        seed=seed,
        out=str(work / row),
        overwrite=True,
        checkpoint_every=f"{every * 60:g}s",
        keep_checkpoints=1000,
        snapshot_every=0,
        sample_every="0",
        progress=False,
        tensorboard=False,
    )
    result = ganforge.train(config)
    batch = ganforge.config.load_config(result.run_dir / "config.yaml").batch_size
    files = sorted(run_checkpoints(result.run_dir / "checkpoints"))[1:]  # one per cadence, then the end
    kept = {}
    for budget in sorted(budgets):
        index = round(budget / every) - 1
        path = files[min(index, len(files) - 1)] if budget < max(budgets) else files[-1]
        kept[budget] = (path, int(path.stem.split("_")[1]) * batch)
    return kept


def save_pictures(folder: Path, rows: list[str], budgets: list[float], test, outputs: dict) -> None:
    """One picture per budget: the first test inputs in rows; columns the labels, the photo and each row's output."""
    for budget in budgets:
        columns = [test.a[:SHOWN], test.b[:SHOWN]] + [outputs[row, budget] for row in rows]
        cells = torch.stack([conform_images(c, None, 3) for c in columns], 1).flatten(0, 1)
        name = "" if rows == list(ROWS) else "+".join(rows) + "-"  # rows run apart get pictures apart
        suffix = ".jpg" if test.a.shape[-1] >= 256 else ".png"  # six rows of 256-px photos: 2.6 MB as a PNG
        path = folder / f"translation-{name}{budget:g}min{suffix}"
        save_grid(cells, path, nrow=len(columns))
        print(f"{path}: rows are test inputs; columns: labels, photo, {', '.join(rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CMP Facades in pix2pix's layout (train/, test/)")
    parser.add_argument("--budgets", default="10,30", help="minutes of wall clock, comma-separated (default: 10,30)")
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"which of baseline, {', '.join(GANFORGE_ROWS)} (default: {','.join(ROWS)})",
    )
    parser.add_argument("--size", type=int, default=64, help="crop size in pixels (default: 64; 256 on a GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="threads for every row (default 0: ganforge's choice)")
    parser.add_argument("--out", default="bench-runs/translation", help="work folder (default: bench-runs/...)")
    parser.add_argument(
        "--pictures",
        default=None,
        help="folder for translation-[<rows>-]<budget>min.png (.jpg from 256 px; default: none)",
    )
    parser.add_argument(
        "--assemble",
        action="store_true",
        help="train nothing: make --pictures of --rows from the outputs that earlier runs of them (side by side, "
        "one invocation per row, the same --out) saved",
    )
    args = parser.parse_args()
    folder, work = Path(args.data), Path(args.out)
    (work / "outputs").mkdir(parents=True, exist_ok=True)  # each row's outputs: --assemble draws rows run apart
    if args.pictures:  # made now: a folder missing at the end would lose the pictures of the whole run
        Path(args.pictures).mkdir(parents=True, exist_ok=True)
    budgets = [float(b) for b in args.budgets.split(",")]
    rows = args.rows.split(",")
    if unknown := set(rows) - {"baseline", *GANFORGE_ROWS}:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    load_size = round(args.size * 286 / 256)
    if args.threads:
        torch.set_num_threads(args.threads)  # the baseline's count; ganforge's rows take it as --threads
    print(describe_machine())
    _, test, _ = load_translation_data(folder, "BtoA", load_size, args.size, None, 0.0, True, test_only=True)
    if args.assemble:
        if not args.pictures:
            parser.error("--assemble makes --pictures: name their folder")
        outputs = {(row, b): torch.load(work / "outputs" / f"{row}-{b:g}min.pt") for row in rows for b in budgets}
        save_pictures(Path(args.pictures), rows, budgets, test, outputs)
        return
    results, outputs = [], {}
    for row in rows:
        if row == "baseline":
            kept = train_baseline(folder, args.size, load_size, budgets, args.seed)
        else:
            kept = train_ganforge(row, folder, args.size, budgets, work, args.seed, args.threads)
        for budget, (weights, images) in kept.items():
            if row == "baseline":
                made = baseline_outputs(weights, args.size, test.a)
                scores = pair_scores(made, test.b) | {"swd": swd(test.b, made)["swd"]}  # as score_translator
            else:
                translator = load_translator(weights, "cpu")
                scores = score_translator(translator.generators, test)
                made = translator.translate(test.a[:SHOWN])
            outputs[row, budget] = made[:SHOWN]
            torch.save(made[:SHOWN].clone(), work / "outputs" / f"{row}-{budget:g}min.pt")  # for --assemble
            line = {"row": row, "minutes": budget, "images": images, "images_per_second": images / (budget * 60)}
            lines = [line | scores]
            if row != "baseline" and translator.config["ema"]:  # the same run's latest weights, beside the average
                latest = score_translator(load_translator(weights, "cpu", ema=False).generators, test)
                lines.append(line | {"row": f"{row}:latest"} | latest)
            results += lines
            with open(work / "results.jsonl", "a") as file:
                file.writelines(json.dumps(r) + "\n" for r in lines)
    print("\n| row | minutes | images/s | test L1 | PSNR (dB) | SSIM | SWD |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        speed, quality = r["images_per_second"], f"{r['l1']:.4f} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['swd']:.1f}"
        print(f"| {r['row']} | {r['minutes']:g} | {speed:.2f} | {quality} |")
    if args.pictures:
        save_pictures(Path(args.pictures), rows, budgets, test, outputs)


if __name__ == "__main__":
    main()
