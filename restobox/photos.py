"""The menu's photos: prepared once at the hub, tiled once on each screen.

An item's ``image`` is the name of a photo file. The hub (:class:`MenuPhotos`)
prepares each photo of the menu once per menu version, on a thread of its
own (never in the worker that commits orders): decoded with Pillow, reduced
to at most :data:`PREPARED_MAX_PX` on its long side and re-encoded as JPEG,
so a camera's 6000x4000 photo never travels nor is decoded by a screen. Each
prepared photo is published retained, binary, on
``menu/image/<sha256 of its bytes>``, then the index ``menu/images`` (a
:class:`~restobox.contract.MenuImages`) names them; the photos of an older
menu no longer listed are cleared (an empty retained payload).

A screen's :class:`PhotoShelf` takes the index and the photos from the bus
(on any thread), checks each photo's bytes against the hash in its topic,
cuts it once to the tile's size on a worker thread of its own, keeps the tile
on disk and tells its owner which tile file shows which image name. On a
restart it serves the tiles already on disk at once.

A photo that is missing, unreadable or does not match its hash gets a
reason code (:data:`PHOTO_REASONS`), is logged once, counted, and its item
shows its colour tile instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from restobox import contract
from restobox.contract import MenuImageRef, MenuImages, Rejection, Words, topics
from restobox.menu import Menu

log = logging.getLogger("restobox.photos")

PREPARED_MAX_PX = 640
"""The long side of a photo as the hub publishes it."""
PREPARED_QUALITY = 85
SOURCE_MAX_BYTES = 64 * 1024 * 1024
"""A source photo file larger than this is not read (image_broken)."""
TILE_MAX_SOURCE_PX = 4096
"""A screen refuses to decode a published photo larger than this (image_too_large)."""
PREP_TAG = f"p{PREPARED_MAX_PX}q{PREPARED_QUALITY}"  # in the hub's cache names: a change of either redoes them

PHOTO_REASONS: dict[str, Words] = {
    "image_missing": Words("菜品图片文件不存在，显示颜色块。",
                           "The item's photo file is not there; its colour tile is shown."),
    "image_broken": Words("菜品图片无法读取，显示颜色块。",
                          "The item's photo cannot be read as a picture; its colour tile is shown."),
    "image_too_large": Words("菜品图片太大，未使用。", "The photo is larger than a screen decodes; it was not used."),
    "image_hash_mismatch": Words("图片内容与其校验值不符，已丢弃。",
                                 "The photo's bytes do not match the hash its topic names; it was dropped."),
    "image_overloaded": Words("图片来得太多，稍后再取。", "Too many photos at once; this one was dropped."),
}


class PhotoRefused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in PHOTO_REASONS or reason in contract.REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ====================================================================== hub
def prepare(data: bytes) -> bytes:
    """A source photo as the hub publishes it: at most PREPARED_MAX_PX on
    its long side, JPEG, under contract.MAX_MENU_BYTES. Raises PhotoRefused
    (image_broken) for anything Pillow cannot read."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            # a JPEG decodes straight at 1/2, 1/4 or 1/8 of its size: a
            # 6000x4000 photo is never held at full size
            im.draft("RGB", (PREPARED_MAX_PX, PREPARED_MAX_PX))
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            im.thumbnail((PREPARED_MAX_PX, PREPARED_MAX_PX), Image.Resampling.LANCZOS)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoRefused("image_broken", f"{type(exc).__name__}: {exc}") from None
    for quality in (PREPARED_QUALITY, 70, 55, 40):
        out = io.BytesIO()
        im.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= contract.MAX_MENU_BYTES:
            return out.getvalue()
    raise PhotoRefused("image_broken", "it does not fit in a message even at JPEG quality 40")


def source_dir(menu_spec: str, images: str) -> Path:
    """Where the hub finds the menu's photos: ``[hub] menu_images``, else
    the bundled sample photos for the sample menu, else ``images/`` next to
    the menu file."""
    if images:
        return Path(images)
    if menu_spec == "sample":
        return Path(__file__).resolve().parent / "data" / "menu_images"
    return Path(menu_spec).resolve().parent / "images"


class MenuPhotos:
    """The hub's side: prepares and publishes the photos of the menu it is
    offered, on its own thread. ``publish(topic, payload, retain)`` is the
    bus's; ``now()`` an ISO timestamp. Prepared photos are kept in
    ``cache_dir`` by the sha256 of their source, so a restart does not
    prepare them again; the hashes published last are kept there too, so the
    photos of a menu replaced while the hub was down are still cleared."""

    def __init__(self, source: Path, cache_dir: Path, *, publish: Callable[[str, bytes, bool], object],
                 now: Callable[[], str], count: Callable[[str], None] = lambda reason: None) -> None:
        self.source = Path(source)
        self.cache_dir = Path(cache_dir)
        self._publish = publish
        self._now = now
        self._count = count  # image_missing, image_broken, image_publish_errors
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._offered: tuple[Menu, bool] | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._told: set[tuple[str, str, str]] = set()
        #: the index published last (None: none yet)
        self.index: MenuImages | None = None
        self.rounds = 0  # menus done (for health and tests)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hub-photos", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(5)

    def offer(self, menu: Menu, *, again: bool = False) -> None:
        """Any thread, never waits: publish ``menu``'s photos (the newest
        offer wins). ``again``: publish them even if already published (after
        a reconnect)."""
        with self._wake:
            prev_again = self._offered[1] if self._offered else False
            self._offered = (menu, again or prev_again)
            self._wake.notify()

    def _run(self) -> None:
        published: set[str] | None = None  # what this process has published since its last offer with again
        while True:
            with self._wake:
                while self._offered is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                menu, again = self._offered
                self._offered = None
            try:
                published = self._round(menu, set() if again or published is None else published)
            except Exception:
                log.exception("publishing the photos of menu %s failed", menu.version)
                published = None
                self._count("image_publish_errors")

    def _round(self, menu: Menu, sent: set[str]) -> set[str]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        names = sorted({i.image for i in menu.items if i.image})
        refs: dict[str, MenuImageRef] = {}
        used_cache: set[str] = set()
        for name in names:
            got = self._prepared(name)
            if got is None:
                continue
            data, cache_name = got
            used_cache.add(cache_name)
            sha = hashlib.sha256(data).hexdigest()
            refs[name] = MenuImageRef(sha256=sha, bytes=len(data))
            if sha not in sent:
                self._publish(topics.menu_image(sha), data, True)
                sent.add(sha)
        index = MenuImages(menu_version=menu.version, images=refs, at=self._now())
        self._publish(topics.MENU_IMAGES, contract.encode(index), True)
        live = {r.sha256 for r in refs.values()}
        state = self.cache_dir / "published.json"
        try:
            before = set(json.loads(state.read_text()))
        except (OSError, ValueError, TypeError):
            before = set()
        for sha in sorted((before | sent) - live):
            if contract._SHA256_RE.fullmatch(sha):
                self._publish(topics.menu_image(sha), b"", True)  # clears the retained photo
        _write_atomic(state, json.dumps(sorted(live)).encode())
        for f in self.cache_dir.glob("*.jpg"):  # prepared photos of menus gone
            if f.name not in used_cache:
                f.unlink(missing_ok=True)
        with self._lock:
            self.index = index
            self.rounds += 1
        log.info("menu %s: %d photos published, %d items without one", menu.version, len(refs),
                 sum(1 for i in menu.items if not i.image or i.image not in refs))
        return live

    def _prepared(self, name: str) -> tuple[bytes, str] | None:
        """The prepared photo for ``name`` and its cache file name, or None
        (told once, counted)."""
        if not contract._IMAGE_NAME_RE.fullmatch(name):
            self._tell(name, "image_missing", "", "it is not a plain file name")
            return None
        path = self.source / name
        try:
            size = path.stat().st_size
            if size > SOURCE_MAX_BYTES:
                self._tell(name, "image_broken", str(size), f"{size:,} bytes, at most {SOURCE_MAX_BYTES:,} are read")
                return None
            data = path.read_bytes()
        except FileNotFoundError:
            self._tell(name, "image_missing", "", f"no file {path}")
            return None
        except OSError as exc:
            self._tell(name, "image_missing", "", f"{path}: {exc}")
            return None
        src = hashlib.sha256(data).hexdigest()
        cache_name = f"{src}-{PREP_TAG}.jpg"
        cached = self.cache_dir / cache_name
        try:
            return cached.read_bytes(), cache_name
        except OSError:
            pass
        try:
            out = prepare(data)
        except PhotoRefused as r:
            self._tell(name, r.reason, src, f"{path}: {r.detail}")
            return None
        _write_atomic(cached, out)
        return out, cache_name

    def _tell(self, name: str, reason: str, sig: str, detail: str) -> None:
        key = (name, reason, sig)
        with self._lock:
            if key in self._told:
                return
            self._told.add(key)
        self._count(reason)
        log.warning("photo %s not used (%s): %s. %s", name, reason, detail, PHOTO_REASONS[reason].en)


# ================================================================= screens
def check_photo(topic: str, payload: bytes) -> str:
    """The sha256 a photo's topic names, once ``payload`` is checked against
    it. Raises PhotoRefused (bad_topic, payload_too_large,
    image_hash_mismatch)."""
    sha = topics.parse_menu_image(topic)
    if sha is None:
        raise PhotoRefused("bad_topic", topic[:200])
    if len(payload) > contract.MAX_MENU_BYTES:
        raise PhotoRefused("payload_too_large", f"{len(payload)} bytes, limit {contract.MAX_MENU_BYTES}")
    got = hashlib.sha256(payload).hexdigest()
    if got != sha:
        raise PhotoRefused("image_hash_mismatch", f"the topic names {sha[:12]}…, the bytes are {got[:12]}…")
    return sha


def cut_tile(data: bytes, tile: tuple[int, int]) -> bytes:
    """A published photo cut to ``tile`` (cover: scaled to fill, the middle
    kept), as JPEG. Raises PhotoRefused (image_broken, image_too_large)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > TILE_MAX_SOURCE_PX:
                raise PhotoRefused("image_too_large", f"{im.size[0]}x{im.size[1]}")
            im.draft("RGB", tile)
            im = im.convert("RGB")
            im = ImageOps.fit(im, tile, Image.Resampling.LANCZOS)
    except PhotoRefused:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoRefused("image_broken", f"{type(exc).__name__}: {exc}") from None
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()


class PhotoShelf:
    """A screen's photos on disk, cut once to its tile size.

    ``feed(topic, payload)`` takes the index and the photos from any thread
    and never waits; a worker thread checks, cuts and writes them. Whenever
    the photos it can show change, ``on_change({image name: tile file path})``
    is called on that worker thread (hand it to the UI thread yourself).
    ``on_bad(topic, reason, detail)`` is called for each payload refused (a
    reason of PHOTO_REASONS or contract.decode's). At most ``bound_mb`` of
    tiles stay on disk: tiles the index no longer lists go first, oldest
    first.
    """

    QUEUE_MAX = 256

    def __init__(self, cache_dir: str | Path, *, tile: tuple[int, int] = (480, 360), bound_mb: float = 32.0,
                 on_change: Callable[[dict[str, str]], None] | None = None,
                 on_bad: Callable[[str, str, str], None] | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.tile = (int(tile[0]), int(tile[1]))
        self.bound = int(bound_mb * 1024 * 1024)
        self.on_change = on_change
        self.on_bad = on_bad
        self._q: queue.Queue[tuple[str, bytes] | None] = queue.Queue(self.QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._index: MenuImages | None = None
        self._tiles: dict[str, tuple[int, float]] = {}  # sha -> (bytes, mtime) on disk
        self._shown: dict[str, str] = {}
        self.counters: dict[str, int] = {}
        self.cut = 0  # tiles cut by this process (tests: each photo once)

    # -------------------------------------------------------------- any thread
    TOPICS = (topics.MENU_IMAGES, topics.MENU_IMAGE_ALL)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="photo-shelf", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        try:
            self._q.put(None, timeout=2)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(5)

    def feed(self, topic: str, payload: bytes) -> None:
        try:
            self._q.put_nowait((topic, payload))
        except queue.Full:
            self._refuse(topic, "image_overloaded", f"{self.QUEUE_MAX} waiting")

    @property
    def photos(self) -> dict[str, str]:
        return dict(self._shown)

    def tile_path(self, sha: str) -> Path:
        return self.cache_dir / f"{sha}-{self.tile[0]}x{self.tile[1]}.jpg"

    # ------------------------------------------------------------ the worker
    def _run(self) -> None:
        try:
            self._load()
        except Exception:
            log.exception("the photo cache %s could not be read", self.cache_dir)
        while True:
            item = self._q.get()
            if item is None:
                return
            topic, payload = item
            try:
                if topic == topics.MENU_IMAGES:
                    self._take_index(topic, payload)
                else:
                    self._take_photo(topic, payload)
            except PhotoRefused as r:
                self._refuse(topic, r.reason, r.detail)
            except Rejection as r:
                self._refuse(topic, r.reason, r.detail)
            except Exception as exc:
                log.exception("photo from %s not used", topic[:200])
                self._refuse(topic, "unusable", repr(exc)[:300])

    def _refuse(self, topic: str, reason: str, detail: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1
        if self.on_bad is not None:
            self.on_bad(topic, reason, detail)
        else:
            log.warning("photo on %s refused (%s): %s", topic[:200], reason, detail[:300])

    def _load(self) -> None:
        """What is already on disk: the last index and its tiles, shown at once."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        suffix = f"-{self.tile[0]}x{self.tile[1]}.jpg"
        for f in self.cache_dir.iterdir():
            if f.name.endswith(".tmp"):
                f.unlink(missing_ok=True)  # a write cut short by a crash
            elif f.name.endswith(suffix):
                st = f.stat()
                self._tiles[f.name[: -len(suffix)]] = (st.st_size, st.st_mtime)
            elif f.name.endswith(".jpg"):  # another tile size
                f.unlink(missing_ok=True)
        try:
            raw = (self.cache_dir / "index.json").read_bytes()
            self._index = contract.decode(raw, MenuImages)
        except (OSError, Rejection):
            self._index = None
        self._changed()

    def _take_index(self, topic: str, payload: bytes) -> None:
        if not payload:
            return
        index = contract.decode(payload, MenuImages)
        self._index = index
        _write_atomic(self.cache_dir / "index.json", payload)
        self._bound(new_index=True)
        self._changed()

    def _take_photo(self, topic: str, payload: bytes) -> None:
        if not payload:  # a photo cleared by the hub: its tile goes when the index drops it
            return
        sha = check_photo(topic, payload)
        path = self.tile_path(sha)
        if sha not in self._tiles:
            data = cut_tile(payload, self.tile)
            _write_atomic(path, data)
            self.cut += 1
            self._tiles[sha] = (len(data), time.time())
            self._bound()
        self._changed()

    def _bound(self, *, new_index: bool = False) -> None:
        """A new index drops every tile it does not list; past the bound,
        tiles go oldest first, those the index does not list before the rest
        (a photo may arrive just before the index that lists it)."""
        wanted = {r.sha256 for r in self._index.images.values()} if self._index is not None else None
        drop = [sha for sha in self._tiles if new_index and wanted is not None and sha not in wanted]
        total = sum(n for sha, (n, _) in self._tiles.items() if sha not in drop)
        if total > self.bound:
            order = sorted((kv for kv in self._tiles.items() if kv[0] not in drop),
                           key=lambda kv: (wanted is None or kv[0] in wanted, kv[1][1]))
            for sha, (n, _) in order:
                if total <= self.bound:
                    break
                drop.append(sha)
                total -= n
        for sha in drop:
            self.tile_path(sha).unlink(missing_ok=True)
            self._tiles.pop(sha, None)

    def _changed(self) -> None:
        shown: dict[str, str] = {}
        if self._index is not None:
            for name, ref in self._index.images.items():
                if ref.sha256 in self._tiles:
                    shown[name] = str(self.tile_path(ref.sha256))
        if shown != self._shown:
            self._shown = shown
            if self.on_change is not None:
                self.on_change(dict(shown))
