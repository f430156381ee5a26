"""Menu photos as textures for the kiosk's tiles, and widget reuse.

:class:`PhotoTextures` turns the tile-sized files the view model names
(``ItemTile.photo``) into textures: the file is read and cropped to the area
it fills on a worker thread (Pillow; a JPEG larger than needed is decoded at
a reduced scale with ``draft``), the texture is made on the UI thread, and the
textures used last are kept up to ``limit_mb`` (4 bytes a pixel; 6 MB at
1080 px wide: the largest category's ten tiles, 0.46 MB each, and the dish
screen's photo, 1.3 MB), no more:
memory stays flat however long the kiosk runs; a photo dropped is read again
when it is shown again. A file that cannot be read is remembered as broken and its tile
keeps its colour.

:func:`sync_children` keeps a container's children and updates them in place:
a screen's widgets are built once and a change sets only the properties that
changed (Kivy dispatches, and redraws, only on a real change).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger("restobox.kiosk")

Key = tuple[str, int, int]  # path, width and height in pixels


def crop_to(path: str, width: int, height: int) -> tuple[bytes, int, int]:
    """The image at ``path`` cropped to ``width``:``height`` (centred) and scaled
    to that size: RGBA bytes, top row first (as the RoundedRectangle the tiles
    and the dish screen draw it with maps a texture: checked on screen by
    tests/test_kiosk_tiles_ui.py). Four
    bytes a pixel: a row of RGB is not a multiple of four bytes for most
    widths, and OpenGL reads rows four-byte aligned (GL_UNPACK_ALIGNMENT),
    which sheared the photo."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.draft("RGB", (width, height))  # a large JPEG: decoded at 1/2, 1/4 or 1/8 scale
        im = ImageOps.exif_transpose(im).convert("RGB")
        # the largest centred box of the wanted shape, scaled to the pixels it fills
        # on the screen: the texture is then drawn one texel to a pixel
        box_w = min(im.width, im.height * width / height)
        box_h = box_w * height / width
        left, top = (im.width - box_w) / 2, (im.height - box_h) / 2
        im = im.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + box_w, top + box_h))
        im = im.convert("RGBA")
        return im.tobytes(), width, height


class PhotoTextures:
    """Textures of tile photos by (path, size), those used last kept up to ``limit_mb``."""

    def __init__(self, post: Callable[[Callable[[], None]], None], limit_mb: float = 6.0,
                 loaded: Callable[[str], None] | None = None,
                 after_frame: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.post = post  # runs a function on the UI thread
        # runs a function on the UI thread once the frame being made is drawn:
        # the files are read then, not while that frame (a diner's tap) is
        # laid out and drawn on the same cores
        self.after_frame = after_frame
        self._asked: list[Key] = []
        self.limit = int(limit_mb * 1024 * 1024)
        self.kept = 0  # bytes of the textures kept
        self.loaded = loaded  # called on the UI thread with the path of a texture just made
        self._tex: OrderedDict[Key, object] = OrderedDict()
        self._pending: set[Key] = set()
        self.broken: set[str] = set()
        self.decoded = 0
        self._jobs: queue.SimpleQueue[Key | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._tex)

    def get(self, path: str, width: int, height: int):
        """The texture, or None while it is read (``loaded`` says when) or when the file is broken."""
        if not path or path in self.broken or width <= 0 or height <= 0:
            return None
        key = (path, int(width), int(height))
        tex = self._tex.get(key)
        if tex is not None:
            self._tex.move_to_end(key)
            return tex
        if key not in self._pending:
            self._pending.add(key)
            if self.after_frame is None:
                self._ask([key])
            else:
                if not self._asked:
                    self.after_frame(lambda: self._ask(self._take_asked()))
                self._asked.append(key)
        return None

    def _take_asked(self) -> list[Key]:
        asked, self._asked = self._asked, []
        return asked

    def _ask(self, keys: list[Key]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="kiosk-photos", daemon=True)
            self._thread.start()
        for key in keys:
            self._jobs.put(key)

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)

    def _work(self) -> None:
        while (key := self._jobs.get()) is not None:
            path, w, h = key
            try:
                pixels = crop_to(path, w, h)
            except Exception as e:  # noqa: BLE001  (a broken file: its tile keeps its colour)
                log.warning("menu photo %s cannot be shown: %s", path, e)
                self.post(lambda key=key: self._failed(key))
                continue
            self.post(lambda key=key, pixels=pixels: self._made(key, *pixels))

    def _failed(self, key: Key) -> None:
        self._pending.discard(key)
        self.broken.add(key[0])

    def _made(self, key: Key, data: bytes, w: int, h: int) -> None:
        from kivy.graphics.texture import Texture

        self._pending.discard(key)
        tex = Texture.create(size=(w, h), colorfmt="rgba")
        # one texel to a pixel: the nearest texel is the right one, and a software
        # renderer reads one texel a pixel instead of four
        tex.min_filter = tex.mag_filter = "nearest"
        tex.blit_buffer(data, colorfmt="rgba", bufferfmt="ubyte")
        self._tex[key] = tex
        self.kept += w * h * 4
        self.decoded += 1
        while self.kept > self.limit and len(self._tex) > 1:
            (_, ow, oh), _ = self._tex.popitem(last=False)
            self.kept -= ow * oh * 4
        if self.loaded is not None:
            self.loaded(key[0])


Spec = tuple[type, dict, "Callable[[object], None] | None"]


def sync_children(box, specs: list[Spec], pools: dict, pool_limit: int = 24) -> list:
    """Make ``box``'s children the widgets ``specs`` describe, in order, reusing
    the ones there (and those kept aside in ``pools`` for this box) when of the
    same class; each gets every property in its spec (so a reused widget never
    keeps the last item's data), then its spec's function, if any, is called.
    Returns the children."""
    kids = box.children[::-1]  # Kivy keeps them last first
    keep = 0
    while keep < min(len(kids), len(specs)) and type(kids[keep]) is specs[keep][0]:
        keep += 1
    pool = pools.setdefault(id(box), {})
    for w in kids[keep:]:
        box.remove_widget(w)
        spare = pool.setdefault(type(w), [])
        if len(spare) < pool_limit:
            spare.append(w)
    out = []
    for i, (cls, props, fn) in enumerate(specs):
        if i < keep:
            w = kids[i]
        else:
            spare = pool.get(cls)
            w = spare.pop() if spare else cls()
            box.add_widget(w)
        for k, v in props.items():
            setattr(w, k, v)
        if fn is not None:
            fn(w)
        out.append(w)
    return out
