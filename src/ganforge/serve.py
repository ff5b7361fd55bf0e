"""The web page: explore a trained generator in a browser, and the small PNG/JSON API behind it.

``create_app(source)`` builds a FastAPI app around one generator, loaded once
(``torch.load(weights_only=True)``, like every checkpoint); ``serve(source)``
runs it with uvicorn, on 127.0.0.1 unless told otherwise. Requests carry
numbers only: every parameter is validated against declared bounds (422 with
a one-line ``detail`` saying what was wrong), and none names a file.

Same parameters, same bytes: the noise comes from ``sample_noise(n, z_dim,
seed)``, the generator runs in eval mode, and PNG encoding is deterministic,
so nothing is cached and nothing needs to be.

Slow and idle clients are let go, so that they cannot hold connections (and
file descriptors) for ever: a client has ``HEADER_TIMEOUT`` (10) seconds from
connecting, or from its previous answer, to send a whole request head,
however slowly it trickles it in (slowloris); a kept-alive connection idle for
``KEEP_ALIVE_TIMEOUT`` (5) seconds is closed; and a request that arrives while
``MAX_CONNECTIONS`` (100) connections are open, its own included, gets 503 at
once (uvicorn's ``limit_concurrency``).
"""

import io
import ipaddress
import logging
import socket
import threading
from importlib import resources
from pathlib import Path

import torch
from PIL import Image

from ganforge.checkpoint import TranslationRunError
from ganforge.config import MAX_SEED
from ganforge.config import SERVE_MAX_N as MAX_N
from ganforge.device import usable_cores
from ganforge.errors import GanforgeError, UsageError
from ganforge.sampling import (
    TrainedGenerator,
    balanced_labels,
    generate_images,
    grid_columns,
    grid_image,
    load,
    sample_noise,
    slerp,
)
from ganforge.translation import MAX_PIXELS

log = logging.getLogger("ganforge")


PAGE_HEADERS = {
    # The page loads nothing from elsewhere; its one script is inline.
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]  # Host headers a loopback server answers: no DNS rebinding
# Read when the server starts (HEADER_TIMEOUT: when each connection starts), so tests can patch them.
HEADER_TIMEOUT = 10.0  # seconds a client has to send a whole request head, from connecting or from its last answer
KEEP_ALIVE_TIMEOUT = 5.0  # seconds an idle kept-alive connection stays open
NEEDS_EXTRA = 'ganforge serve needs FastAPI and uvicorn: pip install "ganforge[serve]"'
MAX_CONNECTIONS = 100  # open connections (or requests in progress), its own included, at which a request gets 503
MAX_UPLOAD_BYTES = 20 * 2**20  # the largest image file POST /api/translate takes


def import_fastapi():
    """FastAPI, or a one-line error saying how to install it."""
    try:
        import fastapi
    except ImportError:
        raise GanforgeError(NEEDS_EXTRA) from None
    return fastapi


class Sampler:
    """The generator, loaded once, and a lock so that one forward pass runs at a time.

    One pass at a time uses every core for that pass (torch's intra-op
    threads) instead of splitting them between requests, and keeps the
    module's state safe from concurrent calls.
    """

    def __init__(self, source: str | Path | TrainedGenerator, device: str = "cpu"):
        model = load(source, device)  # one read: a run still training cannot move its latest checkpoint under us
        self.generator = model.generator
        # A name to show, never a path: the run directory's name, else the checkpoint file's.
        run = model.path.parent.parent if model.path.parent.name == "checkpoints" else model.path
        self.info = model.description | {"run": run.name}
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


class Translator:
    """A translation run's translators, loaded once, with the lock ``Sampler`` has."""

    def __init__(self, source: str | Path, device: str = "cpu"):
        from ganforge.translation import load_translator

        model = load_translator(source, device)
        self.model = model
        run = model.path.parent.parent if model.path.parent.name == "checkpoints" else model.path
        generator = model.generators["AtoB"]
        self.info = {
            "task": model.task,
            "run": run.name,
            "directions": list(model.generators),
            "image_size": model.config["image_size"],
            "in_channels": generator.in_channels,
            "out_channels": generator.out_channels,
        }
        self.lock = threading.Lock()

    def png(self, upload: bytes, direction: str, size: int) -> bytes:
        """The translation of an uploaded image file, as PNG bytes; GanforgeError for what is not an image."""
        from ganforge.translation import read_input

        image = read_input(io.BytesIO(upload), size, name="the upload")  # (1, C, H, W) uint8
        with self.lock:
            translated = self.model.translate(image, direction)[0]  # (C, H, W) uint8
        pixels = translated[0] if len(translated) == 1 else translated.permute(1, 2, 0)
        buffer = io.BytesIO()
        Image.fromarray(pixels.numpy()).save(buffer, format="PNG")
        return buffer.getvalue()


def validation_message(errors: list[dict]) -> str:
    """FastAPI's validation errors as one line: 'n: Input should be less than or equal to 64 (got 65)'."""
    parts = []
    for error in errors:
        name = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        got = f" (got {error['input']!r})" if "input" in error and error["input"] is not None else ""
        parts.append(f"{name}: {error.get('msg', 'invalid')}{got}")
    return "; ".join(parts)


def create_app(
    source: str | Path | TrainedGenerator,
    device: str = "cpu",
    max_n: int = MAX_N,
    allowed_hosts: list[str] | None = None,
):
    """The FastAPI app for the generator of a run directory, checkpoint or ``load``-ed generator.

    ``max_n`` caps the images per request; ``allowed_hosts`` (default: any)
    lists the Host headers answered, the rest get 400. Endpoints: see the
    README's "Look at a run: plots, latent walks, a web page".
    """
    fastapi = import_fastapi()
    from fastapi import Query
    from fastapi.responses import HTMLResponse, Response

    if max_n < 1:
        raise UsageError(f"--max-n must be at least 1, got {max_n}")
    try:
        sampler = Sampler(source, device)
    except TranslationRunError as run:  # the same checkpoint file, read as the translation run it is
        return create_translation_app(run.path, device, allowed_hosts)
    page = resources.files("ganforge").joinpath("web/index.html").read_text(encoding="utf-8")
    app = new_app(allowed_hosts)
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

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/api/model")
    def model() -> dict:
        return sampler.info | {"max_n": max_n, "max_seed": MAX_SEED}

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


def new_app(allowed_hosts: list[str] | None):
    """A FastAPI app with no docs pages, answering only ``allowed_hosts`` (None: any), its 422s in one line."""
    fastapi = import_fastapi()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = fastapi.FastAPI(title="ganforge", docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error: RequestValidationError):
        return JSONResponse({"detail": validation_message(error.errors())}, status_code=422)

    return app


def png_response(data: bytes, attachment: str | None = None):
    """PNG bytes as a response; ``attachment``: sent as a download of that name (.png added)."""
    from fastapi.responses import Response

    headers = {"Content-Disposition": f'attachment; filename="{attachment}.png"'} if attachment else {}
    return Response(data, media_type="image/png", headers=headers | {"X-Content-Type-Options": "nosniff"})


def create_translation_app(source: str | Path, device: str = "cpu", allowed_hosts: list[str] | None = None):
    """The app for a translation run (pix2pix, CycleGAN): a page that translates an uploaded image, and
    ``POST /api/translate`` (the image file as the request body; a PNG back). Uploads over ``MAX_UPLOAD_BYTES``
    get 413, anything that is not an image or is over ``translation.MAX_PIXELS`` pixels 422."""
    fastapi = import_fastapi()
    from fastapi import Query, Request
    from fastapi.responses import HTMLResponse
    from starlette.concurrency import run_in_threadpool

    translator = Translator(source, device)
    page = resources.files("ganforge").joinpath("web/translate.html").read_text(encoding="utf-8")
    app = new_app(allowed_hosts)
    app.state.translator = translator

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/api/model")
    def model() -> dict:
        return translator.info | {"max_bytes": MAX_UPLOAD_BYTES, "max_pixels": MAX_PIXELS}

    @app.post("/api/translate")
    async def translate(
        request: Request,
        direction: str = Query("AtoB", pattern="^(AtoB|BtoA)$", description="which generator"),
        size: int | None = Query(None, ge=0, le=4096, description="resize to this square first; 0: keep"),
    ):
        if direction not in translator.info["directions"]:
            raise fastapi.HTTPException(422, f"direction: this {translator.info['task']} run translates AtoB only")
        upload, received = bytearray(), 0
        async for chunk in request.stream():  # counted as it arrives: a huge body is refused, never held
            received += len(chunk)
            if received > MAX_UPLOAD_BYTES:
                raise fastapi.HTTPException(413, f"image: over the {MAX_UPLOAD_BYTES:,}-byte limit")
            upload += chunk
        if not upload:
            raise fastapi.HTTPException(422, "image: the request body is empty; send an image file")
        size = translator.info["image_size"] if size is None else size
        try:
            data = await run_in_threadpool(translator.png, bytes(upload), direction, size)
        except GanforgeError as error:
            raise fastapi.HTTPException(422, f"image: {error}") from None
        return png_response(data)

    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_listener(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (0: a free port), or a one-line error."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it each
    # response on a kept-alive connection waits about 40 ms for a delayed ACK (Nagle's algorithm).
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)  # connections queue from now on, so the URL can be announced
    except (OSError, UnicodeError) as error:
        listener.close()
        raise GanforgeError(f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}") from None
    return listener


def header_timeout_protocol() -> type:
    """uvicorn's h11 protocol, closing a connection whose client takes over ``HEADER_TIMEOUT`` s to send a request head.

    uvicorn has no such timeout: its keep-alive timer starts only after an
    answer and stops at the first byte received, so a client that connects and
    sends nothing, or sends its head a byte at a time, is kept for ever. A
    subclass is the smallest fix: the protocol's own hooks are exactly where
    waiting for a head starts (connection made, answer sent) and stops (head
    parsed, connection lost), and the deadline is not moved by bytes that
    trickle in. h11, not httptools: ``ganforge[serve]`` installs no httptools,
    so uvicorn's "auto" would pick h11 anyway.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        header_timer = None  # asyncio.TimerHandle while waiting for a request head, else None

        def wait_for_header(self) -> None:
            self.stop_header_timer()
            self.header_timer = self.loop.call_later(HEADER_TIMEOUT, self.header_timed_out)

        def stop_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def header_timed_out(self) -> None:
            self.header_timer = None
            if not self.transport.is_closing():
                self.transport.close()  # without an answer, as uvicorn's keep-alive timeout closes

        def handling_request(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.wait_for_header()

        def handle_events(self) -> None:
            super().handle_events()
            if self.handling_request():  # a whole head arrived: the app's turn, however long it takes
                self.stop_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start on a pipelined request already received
            if not self.handling_request():
                self.wait_for_header()

        def connection_lost(self, exc: Exception | None) -> None:
            self.stop_header_timer()
            super().connection_lost(exc)

    return HeaderTimeoutH11Protocol


def server_config(app):
    """The ``uvicorn.Config`` that ``serve`` runs ``app`` with: the timeouts and connection cap above, quiet logs."""
    import uvicorn

    return uvicorn.Config(
        app,
        http=header_timeout_protocol(),
        ws="none",  # the page needs no WebSocket, and the header timer must not outlive a hand-over to one
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        limit_concurrency=MAX_CONNECTIONS,
        log_level="warning",
        access_log=False,
    )


def serve(
    source: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    max_n: int = MAX_N,
    threads: int | None = None,
) -> None:
    """Serve the page for the generator of ``source`` at http://host:port/ until Ctrl-C.

    Port 0 picks a free port; the line printed on start names the one taken.
    ``threads`` sets torch's threads for the forward pass (default: half the cores free now, ``usable_cores``).
    """
    try:
        import uvicorn
    except ImportError:
        raise GanforgeError(NEEDS_EXTRA) from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL or Host header
    listener = open_listener(host, port)
    if not is_loopback(host):
        log.warning(f"serving on {host}: anyone who can reach this machine on port {port} can use the page")
    # Half the cores for the (locked, one at a time) forward pass, the rest for the requests' PNG encoding and
    # HTTP: on 2 cores, 1 thread served 4 concurrent clients ~35% faster than 2 (benchmarks/serve_latency.py).
    torch.set_num_threads(threads or max(1, usable_cores() // 2))
    try:
        allowed_hosts = [*LOOPBACK_HOSTS, shown] if is_loopback(host) else None
        app = create_app(source, device, max_n, allowed_hosts=allowed_hosts)
    except BaseException:
        listener.close()
        raise
    run = (getattr(app.state, "sampler", None) or app.state.translator).info["run"]
    print(f"ganforge: serving {run} at http://{shown}:{listener.getsockname()[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        uvicorn.Server(server_config(app)).run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises Ctrl-C: the normal way to stop
        pass
    print("ganforge: server stopped", flush=True)
