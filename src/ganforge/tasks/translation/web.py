"""A translation run's web page: pick an image, see its translation (``POST /api/translate``), download it.

The upload is read as training reads its test images (``handle.read_input``: upright, 16 bits scaled, resized
by the one kernel) and translated by the run's translator (its moving average when kept), one at a time.
"""

import asyncio
import contextlib
import io
import threading

from ganforge.data.images import probe_image, to_picture
from ganforge.errors import GanforgeError, UsageError
from ganforge.serve import import_fastapi, new_page_app, png_response
from ganforge.tasks import Trained
from ganforge.tasks.translation import DIRECTIONS
from ganforge.tasks.translation.handle import MAX_PIXELS, input_half, is_pair, read_input, trained_side_by_side

MAX_UPLOAD_BYTES = 20 * 2**20  # the largest image file POST /api/translate takes
# The most pixels one request may translate by default (--max-pixels): at 256 px training size, 2 MP takes a
# second or two of a CPU core and well under a GiB; 4096x4096 took 78 s and 8.3 GB (reliability review, turn 3).
SERVE_MAX_PIXELS = 2**21
STOP_WAIT = 1.5  # seconds a stopping server waits for a translation to reach its next layer (one takes well under)


class Translator:
    """A translation run's translators, loaded once; one translation at a time, of at most ``max_pixels``."""

    def __init__(self, model: Trained, max_pixels: int = SERVE_MAX_PIXELS):
        self.model, self.max_pixels = model, max_pixels
        generator = model.generators["AtoB"]
        self.info = {
            "task": model.task,
            "run": model.run_name,
            "directions": list(model.generators),
            "image_size": model.config["image_size"],
            "in_channels": generator.in_channels,
            "out_channels": generator.out_channels,
        }
        self.busy = asyncio.Lock()  # one forward pass at a time: every core for it, and the modules left alone
        self.stopping = threading.Event()  # the server is stopping: a translation in progress ends at its next layer
        self.worker: threading.Thread | None = None  # the thread of the latest translation
        self.side_by_side = trained_side_by_side(model)  # an upload twice as wide as tall is a pair, as translate reads

    def plan(self, upload: bytes, direction: str, size: int) -> tuple[str | None, int]:
        """(the half of ``upload`` to translate when it is a pair side by side as the run trained on, 'left' or
        'right', else None; how many pixels translating it at ``size``, 0: its own, computes). Its header is read
        once, where either needs it; GanforgeError for what is not an image."""
        if size and not self.side_by_side:
            return None, size * size
        width, height = probe_image(io.BytesIO(upload), name="the upload", max_pixels=MAX_PIXELS)
        half = input_half(self.model, direction)[0] if self.side_by_side and is_pair(width, height) else None
        return half, size * size if size else (width // 2 if half else width) * height

    def png(self, upload: bytes, direction: str, size: int, half: str | None = None) -> bytes:
        """The translation of an uploaded image file (its ``half``), as PNG bytes; GanforgeError for what is not
        an image."""
        channels = self.model.generator(direction).in_channels
        image = read_input(io.BytesIO(upload), channels, size, name="the upload", half=half)  # (1, C, H, W) uint8
        with stoppable(self.model.generator(direction), self.stopping):
            translated = self.model.translate(image, direction)[0]  # (C, H, W) uint8
        buffer = io.BytesIO()
        to_picture(translated).save(buffer, format="PNG")
        return buffer.getvalue()

    async def png_in_thread(self, upload: bytes, direction: str, size: int, half: str | None = None) -> bytes:
        """``png`` in a daemon thread, awaited: the event loop stays free, and a server that stops (SIGTERM,
        Ctrl-C) is not held by a translation, as it would be by a worker of the thread pool (``stop``)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(outcome: str, value) -> None:
            if not future.done():  # the request may have been cancelled meanwhile (the server stopping)
                future.set_result(value) if outcome == "result" else future.set_exception(value)

        def run() -> None:
            try:
                result = self.png(upload, direction, size, half)
            except BaseException as error:  # handed to the awaiting request, which answers with it
                if not loop.is_closed():
                    loop.call_soon_threadsafe(settle, "error", error)
            else:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(settle, "result", result)

        self.worker = threading.Thread(target=run, name="ganforge translation", daemon=True)
        self.worker.start()
        return await future

    def stop(self, seconds: float = STOP_WAIT) -> bool:
        """End the translation in progress at its next layer, waiting up to ``seconds`` for it (the server is
        stopping: a process that exits while torch computes in a thread aborts); whether none runs now."""
        self.stopping.set()
        if self.worker is not None:
            self.worker.join(seconds)
        return self.worker is None or not self.worker.is_alive()


class Stopped(Exception):
    """Raised in a translation's forward pass when the server stops: the work ends at its next layer."""


@contextlib.contextmanager
def stoppable(network, stopping: threading.Event):
    """While in the block, each layer of ``network`` raises ``Stopped`` before it computes once ``stopping`` is set."""

    def check(module, inputs) -> None:
        if stopping.is_set():
            raise Stopped("the server is stopping")

    hooks = [module.register_forward_pre_hook(check) for module in network.modules()]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def create_app(model: Trained, allowed_hosts: list[str] | None = None, max_pixels: int = SERVE_MAX_PIXELS):
    """The app for a loaded translation run (``TrainedTranslator.app``): a page that translates an uploaded image,
    and ``POST /api/translate`` (the image file as the request body; a PNG back). Uploads over
    ``MAX_UPLOAD_BYTES`` get 413; anything that is not an image, or whose translation would compute more than
    ``max_pixels`` pixels (the requested size squared, or the image's own at size=0), 422 at once. A request
    whose client has gone while it waited for its turn is dropped."""
    fastapi = import_fastapi()
    from fastapi import Query, Request
    from fastapi.responses import Response
    from starlette.requests import ClientDisconnect

    if max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {max_pixels}")
    translator = Translator(model, max_pixels)
    info = translator.info | {"max_bytes": MAX_UPLOAD_BYTES, "max_pixels": max_pixels}
    app = new_page_app("translate.html", info, allowed_hosts)
    app.state.translator = translator
    app.state.on_stop.append(translator.stop)

    @app.post("/api/translate")
    async def translate(
        request: Request,
        direction: str = Query("AtoB", pattern=f"^({'|'.join(DIRECTIONS)})$", description="which generator"),
        size: int | None = Query(None, ge=0, le=4096, description="resize to this square first; 0: keep"),
    ):
        if direction not in translator.info["directions"]:
            raise fastapi.HTTPException(422, f"direction: this {translator.info['task']} run translates AtoB only")
        upload, received = bytearray(), 0
        try:
            async for chunk in request.stream():  # counted as it arrives: a huge body is refused, never held
                received += len(chunk)
                if received > MAX_UPLOAD_BYTES:
                    raise fastapi.HTTPException(413, f"image: over the {MAX_UPLOAD_BYTES:,}-byte limit")
                upload += chunk
        except ClientDisconnect:  # the client left mid-upload: nobody to answer, nothing to log
            return Response(status_code=400)
        if not upload:
            raise fastapi.HTTPException(422, "image: the request body is empty; send an image file")
        size = translator.info["image_size"] if size is None else size
        try:
            half, pixels = translator.plan(bytes(upload), direction, size)
        except GanforgeError as error:
            raise fastapi.HTTPException(422, f"image: {error}") from None
        if pixels > translator.max_pixels:
            raise fastapi.HTTPException(
                422,
                f"image: translating it would compute {pixels:,} pixels, over this server's {translator.max_pixels:,} "
                "(ganforge serve --max-pixels)",
            )
        try:
            async with translator.busy:
                if await request.is_disconnected():  # gone while it waited: the work is dropped
                    return Response(status_code=400)
                data = await translator.png_in_thread(bytes(upload), direction, size, half)
        except GanforgeError as error:
            raise fastapi.HTTPException(422, f"image: {error}") from None
        except (asyncio.CancelledError, Stopped):  # the server stopping past its grace: an answer, not a traceback
            return Response("the server is stopping", status_code=503, media_type="text/plain")
        response = png_response(data)
        if half:  # the page says so beside the picture
            response.headers["X-Ganforge-Input-Half"] = half
        return response

    return app
