"""Inception-v3 features for RGB and natural images, with the standard FID weights.

The network and its weights come from torch-fidelity (the TensorFlow FID
Inception converted to PyTorch, as pytorch-fid and torchmetrics use), so FIDs
computed with it are comparable with papers. On a machine with internet the
weights download into torch's hub cache on first use; offline, pass the
downloaded file with ``--inception-weights PATH`` or ``$GANFORGE_INCEPTION_WEIGHTS``.
"""

import hashlib
import logging
import os
from pathlib import Path

import torch

from ganforge.errors import GanforgeError
from ganforge.files import load_tensors
from ganforge.progress import progress_bar

log = logging.getLogger("ganforge")

WEIGHTS_ENV = "GANFORGE_INCEPTION_WEIGHTS"


class InceptionFeatures:
    """Inception-v3 as a feature extractor for (N, C, H, W) uint8 images: 2048-d pool features, 1008-way softmax."""

    name = "inception"
    classifies_dataset = False  # its classes are ImageNet's, not the dataset's: no class coverage

    def __init__(
        self,
        device: torch.device,
        weights: str | Path | None = None,  # the FID weights file; None: $GANFORGE_INCEPTION_WEIGHTS, else download
    ):
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

        weights = weights or os.environ.get(WEIGHTS_ENV)
        if weights:
            check_weights_file(Path(weights))  # torch-fidelity unpickles the file: let only plain tensors through
            self.weights_hash = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:12]
        else:
            self.weights_hash = URL_INCEPTION_V3.rsplit("-", 1)[-1].split(".")[0]  # the hash in the file name
        try:
            model = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=weights
            )
        except (OSError, RuntimeError, ValueError) as error:
            raise GanforgeError(
                f"the Inception-v3 FID weights could not be loaded ({str(error).splitlines()[0][:120]}); "
                f"offline, download {URL_INCEPTION_V3} on a machine with internet and pass it with "
                f"--inception-weights PATH or ${WEIGHTS_ENV} (or score with --features swd, which needs no weights)"
            ) from None
        self.model, self.device = model.to(device), device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, 2048), class probabilities (N, 1008)), on the CPU. Grayscale is repeated to RGB."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        features, probabilities = [], []
        with progress_bar(len(images), "features (inception)") as bar:
            for batch in images.split(batch_size):
                pool, logits = self.model(batch.to(self.device))  # resized to 299x299 inside, as TensorFlow did
                features.append(pool.cpu())
                probabilities.append(logits.softmax(1).cpu())
                bar.update(len(batch))
        return torch.cat(features), torch.cat(probabilities)


def check_weights_file(path: Path) -> None:
    """Refuse a weights file that is missing or holds anything but tensors and plain data."""
    if not path.is_file():
        raise GanforgeError(f"no Inception weights file at {path}")
    try:
        state = load_tensors(path, map_location="cpu")
    except Exception as error:  # torch raises several types for foreign or unsafe files
        raise GanforgeError(f"{path} is not a plain weights file ({str(error).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or "Conv2d_1a_3x3.conv.weight" not in state:
        raise GanforgeError(f"{path} does not hold Inception-v3 FID weights")
