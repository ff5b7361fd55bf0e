"""Train the digits classifier that scores MNIST-like samples, and ship it in the package.

    python scripts/train_mnist_classifier.py --data-root ../shared/data

Trains ganforge.metrics.mnist_classifier.MNISTClassifier on the MNIST training
set (random shifts of up to 2 pixels, Adam with a one-cycle schedule), reports
its accuracy on the 10,000 test images, and writes the weights (float16, under
2 MB) to src/ganforge/assets/mnist_classifier.pt. The accuracy printed is that
of the float16 weights as shipped.
"""

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from ganforge.metrics.mnist_classifier import WEIGHTS, MNISTClassifier, load_mnist_classifier

OUT = Path(__file__).parents[1] / "src" / "ganforge" / "assets" / WEIGHTS


def load_split(root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    mnist = torchvision.datasets.MNIST(root, train=train, download=False)
    return mnist.data[:, None].float() / 255, mnist.targets  # (N, 1, 28, 28) in [0, 1], (N,)


def random_shift(images: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Translate each image by up to ``pad`` pixels in each direction (zero fill)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dy, dx = (torch.randint(0, 2 * pad + 1, (2, n), generator=generator)).unbind(0)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (N, 1, W)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]  # (N, 1, H, W)


@torch.no_grad()
def accuracy(model: MNISTClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(batch).argmax(1) for batch in images.split(1000)])
    return (predictions == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="torchvision data root holding MNIST")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train_images, train_labels = load_split(args.data_root, train=True)
    test_images, test_labels = load_split(args.data_root, train=False)
    model = MNISTClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = len(train_images) // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * steps_per_epoch)
    started = time.monotonic()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            loss = F.cross_entropy(model(random_shift(train_images[index], generator)), train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        test_accuracy = accuracy(model, test_images, test_labels)
        print(f"epoch {epoch + 1}: test accuracy {test_accuracy:.4f} ({time.monotonic() - started:.0f} s)", flush=True)

    args_dict = {"width": 32, "feature_dim": 128, "num_classes": 10}
    weights = {
        name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in model.state_dict().items()
    }
    torch.save({"args": args_dict, "weights": weights, "test_accuracy": None}, args.out)
    shipped = accuracy(load_mnist_classifier(args.out), test_images, test_labels)
    torch.save({"args": args_dict, "weights": weights, "test_accuracy": shipped}, args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size:,} bytes); float16 weights: test accuracy {shipped:.4f}")


if __name__ == "__main__":
    main()
