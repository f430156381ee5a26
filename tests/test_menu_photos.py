"""The menu's photos: the hub prepares each once and publishes it retained on
a topic named by its hash; a kiosk's shelf checks, cuts and keeps it on disk
at tile size. A missing, broken or huge photo is a clear fallback (a reason
code, counted), never a crash or a stall; a new menu replaces a photo and
clears the old one's topic; a photo whose bytes do not match its topic is
refused; the shelf on disk stays bounded. Real mosquitto, a real hub process."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import threading
import time
from pathlib import Path

import msgspec
import pytest
from PIL import Image

from restobox import contract
from restobox.bus import Bus
from restobox.contract import MenuMessage, topics
from restobox.data import load_sample_menu
from restobox.photos import PREPARED_MAX_PX, PhotoShelf
from tests.support import KUNG_PAO, Device, HubProcess, Kiosk, hub_config, new_order, wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SAMPLE_IMAGES = Path(__file__).resolve().parent.parent / "restobox" / "data" / "menu_images"


class Shelf:
    """A PhotoShelf fed from the broker as a kiosk (its credentials, its ACL)."""

    def __init__(self, broker, cache: Path, name: str = "kiosk-2", **kw) -> None:
        self.changes: list[dict[str, str]] = []
        self.bad: list[tuple[str, str]] = []
        self._cv = threading.Condition()
        self.shelf = PhotoShelf(cache, on_change=self._changed, on_bad=self._bad, **kw)
        self.shelf.start()
        cred = broker.creds[name]
        self.bus = Bus(device=name, role="kiosk", host=broker.host, port=broker.port, username=cred.username,
                       password=cred.password, keepalive=5, reconnect_max_s=1)
        for t in self.shelf.TOPICS:
            self.bus.subscribe(t, lambda m: self.shelf.feed(m.topic, m.payload))
        self.bus.start()
        assert self.bus.wait_connected(10)

    def _changed(self, photos):
        with self._cv:
            self.changes.append(photos)
            self._cv.notify_all()

    def _bad(self, topic, reason, detail):
        with self._cv:
            self.bad.append((topic, reason))
            self._cv.notify_all()

    def wait(self, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                if pred(self):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"changes {self.changes[-1:]!r}, bad {self.bad!r}")
                self._cv.wait(left)

    @property
    def photos(self) -> dict[str, str]:
        return self.changes[-1] if self.changes else {}

    def close(self):
        self.bus.stop()
        self.shelf.stop()


def index_of(monitor, pred=lambda d: True, timeout=20.0) -> dict:
    return monitor.wait_json(topics.MENU_IMAGES, pred, timeout)


def hub_health(monitor, pred, timeout=20.0) -> dict:
    return monitor.wait_json(topics.health("hub"), pred, timeout)


def photo_payload(monitor, sha: str) -> bytes:
    m = monitor.wait_for(lambda m: m.topic == topics.menu_image(sha) and m.payload, 20)
    return m.payload


def test_the_sample_menus_photos_reach_a_kiosks_shelf_on_disk_at_tile_size(broker, hub, monitor, tmp_path):
    menu = load_sample_menu()
    names = {i.image for i in menu.items}
    assert len(names) == 41 and all(names)
    index = index_of(monitor, lambda d: len(d["images"]) == 41)
    assert index["menu_version"] == menu.version and set(index["images"]) == names
    # as published: at most 640 px on the long side, the hash of its bytes
    for name in ("kung-pao-chicken.jpg", "bubble-milk-tea.jpg"):
        ref = index["images"][name]
        data = photo_payload(monitor, ref["sha256"])
        assert hashlib.sha256(data).hexdigest() == ref["sha256"] and len(data) == ref["bytes"]
        assert max(Image.open(io.BytesIO(data)).size) <= PREPARED_MAX_PX
    s = Shelf(broker, tmp_path / "photos")
    try:
        s.wait(lambda s: len(s.photos) == 41)
        for name, path in s.photos.items():
            with Image.open(path) as im:
                assert (im.format, im.size) == ("JPEG", (480, 360)), name
        assert s.shelf.cut == 41 and not s.bad
    finally:
        s.close()
    # a restart serves what is on disk at once, before any message
    got: list[dict] = []
    again = PhotoShelf(tmp_path / "photos", on_change=got.append)
    again.start()
    try:
        wait(lambda: got, what="the photos on disk")
        assert got[0] == s.photos and again.cut == 0
    finally:
        again.stop()


def _menu_with_photos(tmp_path: Path) -> Path:
    """The sample menu in a file of its own, its photos in images/ beside it:
    Kung Pao's missing, Mapo Tofu's a corrupt JPEG, the beef noodle soup's a
    6000x4000 camera photo, the rest the sample's."""
    folder = tmp_path / "menu"
    images = folder / "images"
    images.mkdir(parents=True)
    for f in SAMPLE_IMAGES.glob("*.jpg"):
        shutil.copy(f, images / f.name)
    (images / "kung-pao-chicken.jpg").unlink()
    good = (images / "mapo-tofu.jpg").read_bytes()
    (images / "mapo-tofu.jpg").write_bytes(good[:200] + b"\x00garbage" * 50)
    big = Image.open(SAMPLE_IMAGES / "beef-noodle-soup.jpg").resize((6000, 4000))
    big.save(images / "beef-noodle-soup.jpg", "JPEG", quality=90)
    path = folder / "menu.json"
    path.write_bytes(load_sample_menu().to_json())
    return path


@pytest.fixture
def photo_hub(broker, monitor, tmp_path):
    menu = _menu_with_photos(tmp_path)
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=tmp_path / "store.db", extra=f'menu = "{menu}"')
    proc = HubProcess(cfg, tmp_path / "hub.log")
    proc.start(monitor)
    yield proc
    proc.stop()


def test_a_missing_a_corrupt_and_a_huge_photo_fall_back_clearly_without_a_crash_or_a_stall(
        broker, monitor, photo_hub, tmp_path):
    kiosk = Kiosk(broker, "kiosk-1")
    try:
        # the hub answers orders while it prepares the photos
        for _ in range(5):
            assert kiosk.submit(new_order(KUNG_PAO), timeout=5).status == "accepted"
        index = index_of(monitor, lambda d: len(d["images"]) == 39)
        assert "kung-pao-chicken.jpg" not in index["images"] and "mapo-tofu.jpg" not in index["images"]
        huge = index["images"]["beef-noodle-soup.jpg"]
        with Image.open(io.BytesIO(photo_payload(monitor, huge["sha256"]))) as im:
            assert im.size == (640, 427)
        # a health record after the photos are published (an earlier one may
        # already count the missing and broken photo, the index not yet)
        health = hub_health(monitor, lambda d: d["counters"].get("image_missing") == 1
                            and d["counters"].get("image_broken") == 1 and d["details"].get("menu_images") == 39)
        assert health["state"] == "ready"
        assert kiosk.submit(new_order(KUNG_PAO), timeout=5).status == "accepted"
    finally:
        kiosk.close()
    log = (tmp_path / "hub.log").read_text()
    assert log.count("(image_missing)") == 1 and log.count("(image_broken)") == 1, log[-2000:]
    assert "Traceback" not in log
    # the kiosk's shelf: the 39 photos, the two others left to their colour tiles
    s = Shelf(broker, tmp_path / "photos")
    try:
        s.wait(lambda s: len(s.photos) == 39)
        assert "kung-pao-chicken.jpg" not in s.photos and not s.bad
    finally:
        s.close()
    # a restart prepares nothing again: the prepared photos are on disk
    cache = tmp_path / "menu-photos"
    before = {f.name: f.stat().st_mtime_ns for f in cache.glob("*.jpg")}
    assert len(before) == 39
    photo_hub.stop()
    photo_hub.start(monitor)
    index_of(monitor, lambda d: len(d["images"]) == 39 and d["at"] != index["at"])
    assert {f.name: f.stat().st_mtime_ns for f in cache.glob("*.jpg")} == before


def test_a_new_menu_that_changes_a_photo_replaces_it_on_the_kiosk_and_clears_the_old_topic(
        broker, monitor, photo_hub, tmp_path):
    s = Shelf(broker, tmp_path / "photos")
    try:
        s.wait(lambda s: len(s.photos) == 39)
        old_path = s.photos["lemon-tea.jpg"]
        old = index_of(monitor, lambda d: len(d["images"]) == 39)["images"]["lemon-tea.jpg"]["sha256"]
        v1 = load_sample_menu()
        items = tuple(msgspec.structs.replace(i, image="jasmine-green-tea.jpg") if i.id == "lemon-tea" else i
                      for i in v1.items)
        v2 = msgspec.structs.replace(v1, version="2026-12-01.1", items=items)
        sync = Device(broker, "sync", role="sync")
        try:
            sync.publish(topics.CLOUD_MENU, contract.encode(MenuMessage(menu=v2, at="2026-12-01T00:00:00Z")))
        finally:
            sync.close()
        new = index_of(monitor, lambda d: d["menu_version"] == "2026-12-01.1")
        assert "lemon-tea.jpg" not in new["images"] and len(new["images"]) == 38
        # the old photo's retained topic is cleared
        monitor.wait_for(lambda m: m.topic == topics.menu_image(old) and m.payload == b"", 10)
        s.wait(lambda s: "lemon-tea.jpg" not in s.photos and len(s.photos) == 38)
        assert not Path(old_path).exists()
        # a kiosk that connects now gets no trace of it
        late = Device(broker, "kiosk-1", (topics.MENU_IMAGE_ALL,), role="kiosk")
        try:
            late.wait_for(lambda m: m.topic.startswith("restobox/v1/menu/image/"), 10)
            assert topics.menu_image(old) not in late.by_topic
        finally:
            late.close()
    finally:
        s.close()


def test_a_photo_whose_bytes_do_not_match_its_topic_is_refused_and_counted(broker, tmp_path):
    s = Shelf(broker, tmp_path / "photos")
    hub = Device(broker, "hub", role="hub")
    try:
        data = (SAMPLE_IMAGES / "fries.jpg").read_bytes()
        good = hashlib.sha256(data).hexdigest()
        wrong = hashlib.sha256(b"another photo").hexdigest()
        hub.publish(topics.menu_image(wrong), data, retain=True)
        hub.publish(topics.menu_image(good), data, retain=True)
        hub.publish(topics.MENU_IMAGES, contract.encode(contract.MenuImages(
            menu_version="x", images={"fries.jpg": contract.MenuImageRef(sha256=good, bytes=len(data)),
                                      "bad.jpg": contract.MenuImageRef(sha256=wrong, bytes=len(data))})),
                    retain=True)
        s.wait(lambda s: "fries.jpg" in s.photos and s.bad)
        assert s.bad == [(topics.menu_image(wrong), "image_hash_mismatch")]
        assert s.shelf.counters == {"image_hash_mismatch": 1}
        assert "bad.jpg" not in s.photos and not s.shelf.tile_path(wrong).exists()
    finally:
        hub.close()
        s.close()


def _jpeg(seed: int) -> bytes:
    im = Image.effect_noise((320, 240), 60 + seed).convert("RGB")
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_the_shelf_on_disk_stays_bounded_and_drops_what_the_index_no_longer_lists(tmp_path):
    cache = tmp_path / "photos"
    bound = 0.5  # MB: five tiles of noise (about 92 KB each)
    shelf = PhotoShelf(cache, bound_mb=bound, on_change=lambda p: None)
    shelf.start()

    def on_disk() -> int:
        return sum(f.stat().st_size for f in cache.glob("*.jpg"))

    try:
        photos = [_jpeg(i) for i in range(30)]
        shas = [hashlib.sha256(p).hexdigest() for p in photos]
        for p, sha in zip(photos, shas):
            shelf.feed(topics.menu_image(sha), p)
        wait(lambda: shelf.cut >= 30, 30, "30 photos cut")
        assert shelf.cut == 30
        assert on_disk() <= bound * 1024 * 1024
        assert len(list(cache.glob("*.jpg"))) < 30
        # an index of the last three: everything else goes
        idx = {f"p{i}.jpg": contract.MenuImageRef(sha256=shas[i], bytes=len(photos[i])) for i in (27, 28, 29)}
        shelf.feed(topics.MENU_IMAGES, contract.encode(contract.MenuImages(menu_version="v", images=idx)))
        wait(lambda: len(shelf.photos) == 3, what="the index's three photos")
        assert set(shelf.photos) == {"p27.jpg", "p28.jpg", "p29.jpg"}
        assert sorted(f.name.split("-")[0] for f in cache.glob("*.jpg")) == sorted(shas[27:])
        assert json.loads((cache / "index.json").read_text())["menu_version"] == "v"
    finally:
        shelf.stop()


def test_the_kiosk_hands_its_view_model_the_photos_on_its_disk(broker, hub, monitor, tmp_path):
    """The kiosk's controller (headless: its UI thread a stand-in for Kivy's
    clock): the shelf beside kiosk.db, the view model's photos set on the UI
    thread, every dish's tile at tile size; after a restart they are there
    again without a photo cut anew."""
    from kiosk.controller import PHOTO_TILE, KioskController
    from restobox import config
    from tests.support import UIThread, kiosk_config

    cfg = config.load(kiosk_config(tmp_path / "kiosk" / "kiosk.toml", broker))
    menu = load_sample_menu()

    def run_kiosk() -> tuple[dict[str, str], int]:
        ui = UIThread()
        ctl = KioskController(cfg, post=ui.post, changed=lambda: None)
        ctl.start()
        try:
            def all_photos() -> dict[str, str] | None:
                photos = ui.call(lambda: dict(ctl.vm.photos))
                return photos if len(photos) == 41 else None

            photos = wait(all_photos, 30, "the 41 photos in the view model")
            item = next(i for i in menu.items if i.id == "kung-pao-chicken")
            assert ui.call(lambda: ctl.vm.photo(item)) == photos["kung-pao-chicken.jpg"]
            assert not ui.errors and ctl.bad_counters()["bad_messages"] == 0
            return photos, ctl.photos.cut
        finally:
            ctl.stop()

    photos, cut = run_kiosk()
    assert len(photos) == 41 and cut == 41
    for path in photos.values():
        assert Path(path).parent == tmp_path / "kiosk" / "photos"
        with Image.open(path) as im:
            assert im.size == PHOTO_TILE
    again, cut = run_kiosk()
    assert again == photos and cut == 0


def test_only_the_hub_may_publish_the_menus_photos(broker, monitor, tmp_path):
    """The ACL: kiosks and the web page read the photos and their index,
    and may write neither. "Not delivered" is proven with a barrier: each
    then writes its own health, which the monitor may receive, and MQTT
    keeps one publisher's messages in order."""
    data = (SAMPLE_IMAGES / "fries.jpg").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    for name, role in (("kiosk-1", "kiosk"), ("web", "web")):
        dev = Device(broker, name, role=role)
        try:
            dev.bus.publish(topics.menu_image(sha), data, retain=True)
            dev.bus.publish(topics.MENU_IMAGES, b'{"v":1}', retain=True)
            dev.publish(topics.health(name), b'{"barrier":true}')
            monitor.wait_for(lambda m: m.topic == topics.health(name) and b"barrier" in m.payload)
        finally:
            dev.close()
    assert topics.menu_image(sha) not in monitor.by_topic and topics.MENU_IMAGES not in monitor.by_topic
    s = Shelf(broker, tmp_path / "photos")  # a kiosk: it reads what the hub publishes
    hub = Device(broker, "hub", role="hub")
    try:
        hub.publish(topics.menu_image(sha), data, retain=True)
        hub.publish(topics.MENU_IMAGES, contract.encode(contract.MenuImages(
            menu_version="x", images={"fries.jpg": contract.MenuImageRef(sha256=sha, bytes=len(data))})), retain=True)
        s.wait(lambda s: "fries.jpg" in s.photos)
        assert s.bad == []
    finally:
        hub.close()
        s.close()
