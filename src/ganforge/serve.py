"""The web page of a trained run: the server every task's page runs in, and what the pages share.

``create_app(source)`` loads the run once (``torch.load(weights_only=True)``,
like every checkpoint) and asks its task's handle for its page: a GAN's
explores its generator (``tasks/gan/web.py``), a translator's translates an
uploaded image (``tasks/translation/web.py``). ``serve(source)`` runs it with
uvicorn, on 127.0.0.1 unless told otherwise. Every page validates each
parameter against declared bounds (422 with a one-line ``detail`` saying what
was wrong), and no request names a file (``new_app``).

Slow and idle clients are let go, so that they cannot hold connections (and
file descriptors) for ever: a client has ``HEADER_TIMEOUT`` (10) seconds from
connecting, or from its previous answer, to send a whole request head,
however slowly it trickles it in (slowloris); a kept-alive connection idle for
``KEEP_ALIVE_TIMEOUT`` (5) seconds is closed; and a request that arrives while
``MAX_CONNECTIONS`` (100) connections are open, its own included, gets 503 at
once (uvicorn's ``limit_concurrency``). SIGTERM or Ctrl-C stops the server
within a few seconds, whatever is in progress: requests have ``SHUTDOWN_GRACE``
(2) seconds to finish, then work still running is told to stop (each page's
``app.state.on_stop``: a translation ends at its next layer) and its request
answered 503; the command says "server stopped" and exits 0.
"""

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from importlib import resources
from pathlib import Path

import torch

from ganforge.device import usable_cores
from ganforge.errors import GanforgeError, UsageError
from ganforge.tasks import Trained, load
from ganforge.tasks.base import check_options

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
SHUTDOWN_GRACE = 2.0  # seconds a stopping server (SIGTERM, Ctrl-C) waits for the requests in progress, then ends them


def import_fastapi():
    """FastAPI, or a one-line error saying how to install it."""
    try:
        import fastapi
    except ImportError:
        raise GanforgeError(NEEDS_EXTRA) from None
    return fastapi


def validation_message(errors: list[dict]) -> str:
    """FastAPI's validation errors as one line: 'n: Input should be less than or equal to 64 (got 65)'."""
    parts = []
    for error in errors:
        name = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        got = f" (got {error['input']!r})" if "input" in error and error["input"] is not None else ""
        parts.append(f"{name}: {error.get('msg', 'invalid')}{got}")
    return "; ".join(parts)


def create_app(source: str | Path | Trained, device: str = "cpu", allowed_hosts: list[str] | None = None, **options):
    """The FastAPI app of the run at ``source`` (a run directory, checkpoint, exported folder or ``load``-ed
    handle): its task's page. ``allowed_hosts`` (default: any) lists the Host headers answered, the rest get
    400; ``options`` are the page's own (a GAN's ``max_n``). Endpoints: see the README's "A web page"."""
    model = load(source, device, command="serve")  # one read: a run still training cannot move its latest under us
    check_options(model.app, options, "serve", model.task)
    app = model.app(allowed_hosts=allowed_hosts, **options)
    app.state.model = model
    return app


def new_app(allowed_hosts: list[str] | None):
    """A FastAPI app with no docs pages, answering only ``allowed_hosts`` (None: any), its 422s in one line."""
    fastapi = import_fastapi()
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = fastapi.FastAPI(title="ganforge", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.on_stop = []  # what ``serve`` calls when the server stops: each returns whether its work has ended
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, error: RequestValidationError):
        return JSONResponse({"detail": validation_message(error.errors())}, status_code=422)

    return app


def new_page_app(page: str, info: dict, allowed_hosts: list[str] | None):
    """``new_app`` serving ``GET /`` (the page ``web/PAGE``, with PAGE_HEADERS) and ``GET /api/model`` (``info``,
    what the page shows of the model): what every task's page has; the task adds its own endpoints."""
    from fastapi.responses import HTMLResponse

    html = resources.files("ganforge").joinpath(f"web/{page}").read_text(encoding="utf-8")
    app = new_app(allowed_hosts)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @app.get("/api/model")
    def model() -> dict:
        return info

    return app


def png_response(data: bytes, attachment: str | None = None):
    """PNG bytes as a response; ``attachment``: sent as a download of that name (.png added)."""
    from fastapi.responses import Response

    headers = {"Content-Disposition": f'attachment; filename="{attachment}.png"'} if attachment else {}
    return Response(data, media_type="image/png", headers=headers | {"X-Content-Type-Options": "nosniff"})


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
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        log_level="warning",
        access_log=False,
    )


class WithoutCancelNotice(logging.Filter):
    """Drops uvicorn's "Cancel N running task(s)" error: the stop is ganforge's to report (``serve``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Cancel %s running task")


@contextlib.contextmanager
def terminate_as_ctrl_c():
    """SIGTERM stops the server as Ctrl-C does: uvicorn shuts down, then raises the signal again once its own
    handlers are gone, and here that is a KeyboardInterrupt (a clean stop, exit 0) instead of death by signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    source: str | Path | Trained,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    threads: int | None = None,
    **options,
) -> None:
    """Serve the page of the run at ``source`` at http://host:port/ until Ctrl-C.

    Port 0 picks a free port; the line printed on start names the one taken.
    ``threads`` sets torch's threads for the forward pass (default: half the cores free now, ``usable_cores``);
    ``options`` are the page's own (a GAN's ``max_n``).
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
        app = create_app(source, device, allowed_hosts, **options)
        model = app.state.model
    except BaseException:
        listener.close()
        raise
    url = f"http://{shown}:{listener.getsockname()[1]}/"
    print(f"ganforge: serving {model.run_name} at {url} (Ctrl-C to stop)", flush=True)
    config = server_config(app)
    cancel_notice = WithoutCancelNotice()
    logging.getLogger("uvicorn.error").addFilter(cancel_notice)
    try:
        with terminate_as_ctrl_c():
            uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises Ctrl-C: the normal way to stop
        pass
    finally:
        logging.getLogger("uvicorn.error").removeFilter(cancel_notice)
        ended = all([stop() for stop in app.state.on_stop])
    print("ganforge: server stopped", flush=True)
    if not ended:  # torch still computing in a thread would abort the process at exit ("terminate called ...")
        log.warning("work in progress did not stop in time; the process ends without waiting for it")
        sys.stderr.flush()
        os._exit(0)
