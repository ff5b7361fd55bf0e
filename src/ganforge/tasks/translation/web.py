"""A translation run's web page: pick an image, see its translation (``POST /api/translate``), download it.

The upload is read as training reads its test images (``handle.read_input``: upright, 16 bits scaled, resized
by the one kernel) and translated by the run's translator (its moving average when kept), one at a time.
"""

import io
import threading

from ganforge.data.images import to_picture
from ganforge.errors import GanforgeError
from ganforge.serve import import_fastapi, new_page_app, png_response
from ganforge.tasks import Trained
from ganforge.tasks.translation import DIRECTIONS
from ganforge.tasks.translation.handle import MAX_PIXELS, read_input

MAX_UPLOAD_BYTES = 20 * 2**20  # the largest image file POST /api/translate takes


class Translator:
    """A translation run's translators, loaded once, with the lock ``Sampler`` has."""

    def __init__(self, model: Trained):
        self.model = model
        generator = model.generators["AtoB"]
        self.info = {
            "task": model.task,
            "run": model.run_name,
            "directions": list(model.generators),
            "image_size": model.config["image_size"],
            "in_channels": generator.in_channels,
            "out_channels": generator.out_channels,
        }
        self.lock = threading.Lock()

    def png(self, upload: bytes, direction: str, size: int) -> bytes:
        """The translation of an uploaded image file, as PNG bytes; GanforgeError for what is not an image."""
        channels = self.model.generator(direction).in_channels
        image = read_input(io.BytesIO(upload), channels, size, name="the upload")  # (1, C, H, W) uint8
        with self.lock:
            translated = self.model.translate(image, direction)[0]  # (C, H, W) uint8
        buffer = io.BytesIO()
        to_picture(translated).save(buffer, format="PNG")
        return buffer.getvalue()


def create_app(model: Trained, allowed_hosts: list[str] | None = None):
    """The app for a loaded translation run (``TrainedTranslator.app``): a page that translates an uploaded image,
    and ``POST /api/translate`` (the image file as the request body; a PNG back). Uploads over
    ``MAX_UPLOAD_BYTES`` get 413, anything that is not an image or is over ``MAX_PIXELS`` pixels 422."""
    fastapi = import_fastapi()
    from fastapi import Query, Request
    from starlette.concurrency import run_in_threadpool

    translator = Translator(model)
    info = translator.info | {"max_bytes": MAX_UPLOAD_BYTES, "max_pixels": MAX_PIXELS}
    app = new_page_app("translate.html", info, allowed_hosts)
    app.state.translator = translator

    @app.post("/api/translate")
    async def translate(
        request: Request,
        direction: str = Query("AtoB", pattern=f"^({'|'.join(DIRECTIONS)})$", description="which generator"),
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
