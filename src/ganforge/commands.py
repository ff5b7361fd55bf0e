"""Commands over any task's runs that are not one task's own: ``evaluate`` (a run, or images in a file or folder).

A run is loaded once (``tasks.load``) and asked: its handle scores itself with
the options its task takes (``--cas`` for a GAN's samples, ``--reference`` a
translator's test folder, ...), and an option its task does not take is
refused in one line. ``export_generator`` (``export.py``) and ``serve``
(``serve.py``) dispatch the same way; ``generate``, ``interpolate`` and
``translate`` belong to the tasks that serve them.
"""

from pathlib import Path

from ganforge.checkpoint import is_hub_folder
from ganforge.errors import UsageError
from ganforge.rundir import is_run
from ganforge.tasks import Trained, load
from ganforge.tasks.base import check_options


def is_image_set(source: str | Path | Trained) -> bool:
    """Whether ``source`` names images to score (an .npz, or a folder that is neither a run nor an exported model)."""
    if isinstance(source, Trained):
        return False
    path = Path(source)
    return path.suffix == ".npz" or (path.is_dir() and not is_run(path) and not is_hub_folder(path))


def evaluate(source: str | Path | Trained, device: str = "auto", **options) -> dict:
    """Score a run (a run directory, checkpoint, exported folder or ``load``-ed run), or images (an .npz or a
    folder), and return the scores.

    A GAN's samples: FID, KID, IS, precision/recall, class coverage, a conditional one's label accuracy and,
    with ``cas``, the Classification Accuracy Score (options: n, reference, seed, noise_std, cas, cas_epochs, features,
    data_root, inception_weights, extractor, cache). A translator: L1, PSNR and SSIM against the test targets,
    the cycle error, SWD, and with ``features`` FID and KID (options: reference, features, inception_weights).
    Images: as a GAN's samples.
    """
    if is_image_set(source):
        from ganforge.metrics.evaluation import evaluate_image_set

        if "noise_std" in options:
            raise UsageError(f"--noise-std spreads a generator's noise, and {source} holds images")
        return evaluate_image_set(source, device=device, **options)
    model = load(source, device, command="evaluate")  # one read: a run still training may move its latest
    check_options(model.evaluate, options, "evaluate", model.task)
    return model.evaluate(**options)
