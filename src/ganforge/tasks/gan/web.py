"""A GAN run's web page: a grid of samples, a seed box, a class picker, a latent walk slider, a PNG download.

``create_app`` builds the FastAPI app around one generator, loaded once (``serve.create_app`` loads the run and
asks its handle); ``serve.serve`` runs it. Requests carry numbers only, each validated against declared bounds.
Same parameters, same bytes: the noise comes from ``sample_noise(n, z_dim, seed)``, the generator runs in eval
mode, and PNG encoding is deterministic, so nothing is cached and nothing needs to be.
"""

import io
import threading
from pathlib import Path

import torch

from ganforge.config import MAX_SEED
from ganforge.config import SERVE_MAX_N as MAX_N
from ganforge.errors import UsageError
from ganforge.sampling import balanced_labels, generate_images, grid_columns, grid_image, sample_noise, slerp
from ganforge.serve import import_fastapi, new_page_app, png_response
from ganforge.tasks import Trained, load


class Sampler:
    """The generator, loaded once, and a lock so that one forward pass runs at a time.

    One pass at a time uses every core for that pass (torch's intra-op
    threads) instead of splitting them between requests, and keeps the
    module's state safe from concurrent calls.
    """

    def __init__(self, source: str | Path | Trained, device: str = "cpu"):
        model = load(source, device, command="serve")  # one read: a run still training cannot move its latest
        self.generator = model.generator
        self.info = model.description | {"run": model.run_name}  # a name to show, never a path
        self.num_classes = self.info["num_classes"]
        self.lock = threading.Lock()
        self.grid_png(sample_noise(1, self.generator.z_dim, 0), None)  # first pass: kernels chosen before requests

    def labels(self, n: int, label: int | None) -> torch.Tensor | None:
        """(n,) labels: ``label`` throughout, else the classes in turn; None for an unconditional model."""
        return balanced_labels(n, self.num_classes, None if label is None else [label])

    def grid_png(self, noise: torch.Tensor, labels: torch.Tensor | None) -> bytes:
        """The images of (n, z_dim) noise as one PNG grid laid out as ``ganforge generate`` lays it out.

        Square, or one column per class for a conditional model; 2-pixel padding.
        """
        with self.lock:
            images = generate_images(self.generator, noise, labels=labels)  # (n, C, H, W) uint8
        buffer = io.BytesIO()
        grid_image(images, grid_columns(len(images), self.num_classes)).save(buffer, format="PNG")
        return buffer.getvalue()


def create_app(model: Trained, allowed_hosts: list[str] | None = None, max_n: int = MAX_N):
    """The FastAPI app for a loaded GAN run (``TrainedGenerator.app``).

    ``max_n`` caps the images per request; ``allowed_hosts`` (default: any)
    lists the Host headers answered, the rest get 400. Endpoints: see the
    README's "Look at a run: plots, latent walks, a web page".
    """
    fastapi = import_fastapi()
    from fastapi import Query
    from fastapi.responses import Response

    if max_n < 1:
        raise UsageError(f"--max-n must be at least 1, got {max_n}")
    sampler = Sampler(model)
    app = new_page_app("index.html", sampler.info | {"max_n": max_n, "max_seed": MAX_SEED}, allowed_hosts)
    app.state.sampler = sampler

    def check_label(label: int | None) -> None:
        if label is None:
            return
        if not sampler.num_classes:
            raise fastapi.HTTPException(422, "label: this model is unconditional; leave the label out")
        if label >= sampler.num_classes:
            raise fastapi.HTTPException(
                422, f"label: must be below the model's {sampler.num_classes} classes (got {label})"
            )

    def png(data: bytes, download: bool, name: str) -> Response:
        return png_response(data, name if download else None)

    n_query = Query(16, ge=1, le=max_n, description="images in the grid")
    seed_query = Query(0, ge=0, le=MAX_SEED, description="noise seed")
    label_query = Query(None, ge=0, description="class of every image (conditional models only)")
    download_query = Query(False, description="send as an attachment")

    @app.get("/api/samples")
    def samples(
        n: int = n_query, seed: int = seed_query, label: int | None = label_query, download: bool = download_query
    ) -> Response:
        check_label(label)
        noise = sample_noise(n, sampler.generator.z_dim, seed)  # (n, z_dim)
        name = f"samples-seed{seed}-n{n}" + ("" if label is None else f"-label{label}")
        return png(sampler.grid_png(noise, sampler.labels(n, label)), download, name)

    @app.get("/api/walk")
    def walk(
        seed_a: int = Query(0, ge=0, le=MAX_SEED, description="noise seed at t=0"),
        seed_b: int = Query(1, ge=0, le=MAX_SEED, description="noise seed at t=1"),
        t: float = Query(0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="position along the walk"),
        n: int = n_query,
        label: int | None = label_query,
        download: bool = download_query,
    ) -> Response:
        check_label(label)
        z_dim = sampler.generator.z_dim
        noise = slerp(sample_noise(n, z_dim, seed_a), sample_noise(n, z_dim, seed_b), t)  # (n, z_dim)
        name = f"walk-{seed_a}-{seed_b}-t{t:g}-n{n}" + ("" if label is None else f"-label{label}")
        return png(sampler.grid_png(noise, sampler.labels(n, label)), download, name)

    return app
