"""Classification Accuracy Score (Ravuri & Vinyals 2019): how useful a conditional GAN's samples are as data.

A small classifier is trained only on generated, labelled images and tested on
the real test set; the same classifier trained on as many real images, for as
long, gives the number to compare with. A generator whose classes look right
but lack the real data's variety scores well below the real-data classifier.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.progress import progress_bar


class SmallClassifier(nn.Module):
    """Images (B, C, H, W) in [0, 1] -> class logits (B, num_classes): two conv blocks and an MLP head."""

    def __init__(
        self,
        channels: int = 1,  # image channels
        num_classes: int = 10,
        width: int = 32,  # channels of the first block; doubled in the second
    ):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),  # (B, 2w, 4, 4) whatever the image size
            nn.Flatten(),
            nn.Linear(2 * width * 16, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def train_classifier(
    images: torch.Tensor,  # (N, C, H, W) uint8
    labels: torch.Tensor,  # (N,) int64
    num_classes: int,
    epochs: int = 3,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> SmallClassifier:
    """A ``SmallClassifier`` trained with Adam(1e-3) on ``images``; the same seed gives the same classifier."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallClassifier(images.shape[1], num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with progress_bar(epochs * len(images), "CAS: training a classifier") as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(images), batch_size):
                index = order[start : start + batch_size]
                batch = images[index].to(device).float() / 255  # (B, C, H, W)
                loss = F.cross_entropy(model(batch), labels[index].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update(len(index))
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """The share of ``images`` that ``model`` puts in their ``labels``' class."""
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device).float() / 255
        correct += (model(batch).argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    return correct / len(images)


def classification_accuracy_score(
    fake: tuple[torch.Tensor, torch.Tensor],  # generated (images uint8, labels)
    real: tuple[torch.Tensor, torch.Tensor],  # real training (images, labels): as many are used as there are fakes
    test: tuple[torch.Tensor, torch.Tensor],  # the real test set
    num_classes: int,
    epochs: int = 3,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict:
    """{'cas': test accuracy of the classifier trained on ``fake``, 'cas_real': of the one trained on real images}."""
    count = len(fake[0])
    subset = torch.randperm(len(real[0]), generator=torch.Generator().manual_seed(seed))[:count]
    real_images, real_labels = real[0][subset], real[1][subset]
    on_fake = train_classifier(*fake, num_classes, epochs, seed=seed, device=device)
    on_real = train_classifier(real_images, real_labels, num_classes, epochs, seed=seed, device=device)
    return {
        "cas": accuracy(on_fake, *test),
        "cas_real": accuracy(on_real, *test),
        "cas_train_images": count,
        "cas_epochs": epochs,
    }
