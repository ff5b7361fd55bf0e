"""Train the CIFAR-10 classifier that scores 32x32 colour samples, and ship it in the package.

    python scripts/train_cifar10_classifier.py --data ../shared/data/cifar10/train

Loads the folder as ``ganforge train --data`` does and splits it as
``--holdout 0.1`` does: the classifier trains on the 45,000 images a run
trains on, and is tested on the 5,000 that ``ganforge evaluate`` scores against.
Trains ganforge.metrics.cifar10_classifier.CIFAR10Classifier (random crops
from 4 reflected pixels and x-flips, SGD with Nesterov momentum and a
one-cycle schedule, label smoothing 0.2), in bf16 autocast where the hardware
computes in it, and writes the weights (float16, under 5 MB) to
src/ganforge/assets/cifar10_classifier.pt. The accuracy printed last is that of
the float16 weights as shipped, in float32.
"""

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.data import load_dataset, split_holdout
from ganforge.device import autocast, set_cpu_threads
from ganforge.metrics.cifar10_classifier import WEIGHTS, CIFAR10Classifier, load_cifar10_classifier

OUT = Path(__file__).parents[1] / "src" / "ganforge" / "assets" / WEIGHTS
HOLDOUT = 0.1  # TrainConfig's default for folders


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops of the images padded by reflection, and x-flips of half of them."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (N, 1, 1, W)
    crops = padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    flips = torch.rand(n, generator=generator) < 0.5
    return torch.where(flips.view(-1, 1, 1, 1), crops.flip(-1), crops)


@torch.no_grad()
def accuracy(model: CIFAR10Classifier, images: torch.Tensor, labels: torch.Tensor, precision: str) -> float:
    model.eval()
    with autocast(torch.device("cpu"), precision):
        predictions = torch.cat([model(batch.float() / 255).argmax(1) for batch in images.split(500)])
    return (predictions == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CIFAR-10's training images in class folders")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--precision", default="auto", help="as train's --precision (default: auto)")
    parser.add_argument("--limit", type=int, default=0, help="train on this many images only (a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    set_cpu_threads()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train, test = split_holdout(load_dataset(args.data, image_size=32, channels=3), HOLDOUT)
    images, labels = train.images, train.labels
    if args.limit:  # a random subset: the folder's images come class by class
        subset = torch.randperm(len(images), generator=generator)[: args.limit]
        images, labels = images[subset], labels[subset]
    print(f"{len(images):,} training images, {len(test):,} test images; classes {', '.join(train.classes)}")
    model = CIFAR10Classifier(args.width).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = len(images) // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.25
    )
    started = time.monotonic()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            batch = augment(images[index].float() / 255, generator).contiguous(memory_format=torch.channels_last)
            with autocast(torch.device("cpu"), args.precision):
                loss = F.cross_entropy(model(batch), labels[index], label_smoothing=0.2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        test_accuracy = accuracy(model, test.images, test.labels, args.precision)
        print(f"epoch {epoch + 1}: test accuracy {test_accuracy:.4f} ({time.monotonic() - started:.0f} s)", flush=True)

    args_dict = {"width": args.width, "num_classes": 10}
    weights = {
        name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in model.state_dict().items()
    }
    torch.save({"args": args_dict, "weights": weights, "test_accuracy": None}, args.out)
    shipped = accuracy(load_cifar10_classifier(args.out), test.images, test.labels, "32")
    torch.save({"args": args_dict, "weights": weights, "test_accuracy": shipped}, args.out)
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out} ({size:,} bytes); float16 weights in float32: test accuracy {shipped:.4f}")


if __name__ == "__main__":
    main()
