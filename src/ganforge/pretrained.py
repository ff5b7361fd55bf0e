"""Pretrained generators shipped inside the package, so that ``ganforge serve mnist`` shows a real model with no
data, no network and no training. Each is one file in ``assets/pretrained``: the generator's moving average in
float16 with its config (read like any checkpoint, with ``weights_only=True``), beside a card (``NAME.md``) that
says how it was trained, on which machine and how it scores; ``scripts/train_pretrained.py`` makes both.

A command's SOURCE is a path first: a run directory, checkpoint or exported folder that exists wins over a name
here, so a folder called ``mnist`` in the working directory is read as that folder.
"""

from pathlib import Path

FOLDER = Path(__file__).parent / "assets" / "pretrained"

# name -> what it is, in a few words (the card has the rest)
PRETRAINED = {
    "mnist": "a class-conditional DCGAN of MNIST digits, 28x28, the default recipe",
    "cifar10": "a class-conditional DCGAN of CIFAR-10, 32x32 colour",
}


def pretrained_file(name: str) -> Path | None:
    """The shipped checkpoint of ``name`` when it is a pretrained model's name and no path of that name exists."""
    if name not in PRETRAINED or Path(name).exists():
        return None
    path = FOLDER / f"{name}.pt"
    return path if path.is_file() else None


def card(name: str) -> Path:
    """The card of a pretrained model: how it was trained and how it scores."""
    return FOLDER / f"{name}.md"
