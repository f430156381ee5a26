"""The kiosk's screens are built once and their widgets reused: 30 orders in a
row on the real kiosk (real window under Xvfb, real X clicks, real broker and
hub), and after every change the menu's tiles show the right dish, price and
photo (the state dump reports each tile as drawn), the dish screen the right
dish, price and photo, and a dish without a photo a plain colour tile, never
the photo of the dish its widget showed before.

Photos: the hub serves a copy of the sample menu (an ``image`` for every
dish) with no photos of its own; the kiosk is given the sample's photo files
(RESTOBOX_KIOSK_PHOTOS) for all dishes but a few, so reused tiles move
between dishes with and without a photo.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from restobox.data import load_sample_menu, sample_menu_bytes
from kiosk.viewmodel import money
from tests.support import HubProcess, hub_config, kiosk_config
from tests.test_kiosk_ui import KioskProcess
from tests.ui_support import Xvfb

pytestmark = pytest.mark.integration

WITHOUT_PHOTO = {"mapo-tofu", "beef-chow-fun", "potstickers", "mango-pudding"}
SAMPLE_PHOTOS = Path(__file__).resolve().parent.parent / "restobox" / "data" / "menu_images"
WITH_PLAIN_DISHES = ("rice-noodles", "snacks", "desserts")  # dishes added as they are


@pytest.fixture
def photo_store(broker, monitor, tmp_path):
    """The hub with the sample menu and no photos of its; the photos for the kiosk on disk."""
    menu = load_sample_menu()
    menu_file = tmp_path / "hub-menu" / "menu.json"  # no images/ beside it: the hub publishes no photo
    menu_file.parent.mkdir()
    menu_file.write_bytes(sample_menu_bytes())
    given = tmp_path / "tile-photos"
    given.mkdir()
    photos = {}
    for i in menu.items:
        if i.id not in WITHOUT_PHOTO:
            photos[i.image] = str(shutil.copy(SAMPLE_PHOTOS / i.image, given / i.image))
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=tmp_path / "store.db", extra=f'menu = "{menu_file}"')
    hub = HubProcess(cfg, tmp_path / "hub.log")
    hub.start(monitor)
    yield menu, photos
    hub.stop()


def check_tiles(st: dict, menu, photos: dict[str, str], category: str, lang: str) -> None:
    want = [i for i in menu.items if i.category == category]
    tiles = st["tiles"]
    assert [t["item"] for t in tiles] == [i.id for i in want]
    for t, i in zip(tiles, want):
        assert t["target"] == f"item:{i.id}"
        assert t["price"] == money(i.price), (t, i.price)
        assert t["name"] == (i.name.en if lang == "en" else i.name.zh).replace("&", "&amp;")
        assert t["photo"] == photos.get(i.image, ""), t
        if not t["photo"]:
            assert not t["photo_shown"], f"{i.id} has no photo but its tile shows one"


def check_drawn_photos(k, st: dict, photos: dict[str, str], menu, shot_name: str) -> int:
    """The pixels on the screen are each dish's own photo (not another dish's,
    not sheared): every tile whose photo is wholly in sight, compared with its
    source photo cut to the same shape. Returns how many were compared."""
    from PIL import Image, ImageChops, ImageStat

    image_of = {i.id: i.image for i in menu.items}
    shot = Image.open(k.screenshot(shot_name)).convert("RGB")
    rects = [t["photo_rect"] for t in st["tiles"] if t["photo_shown"] and t["photo_rect"]]
    full = max((r[3] for r in rects), default=0)
    compared = 0
    for t in st["tiles"]:
        r = t["photo_rect"]
        if not (t["photo_shown"] and r and r[3] >= full - 1):
            continue
        x, y, w, h = (round(v) for v in r)
        with Image.open(photos[image_of[t["item"]]]) as src:
            src = src.convert("RGB")
            box_w = min(src.width, src.height * w / h)
            box_h = box_w * h / w
            left, top = (src.width - box_w) / 2, (src.height - box_h) / 2
            want = src.resize((w, h), Image.Resampling.BILINEAR, box=(left, top, left + box_w, top + box_h))
        got = shot.crop((x, y, x + w, y + h))
        inset = (w // 10, h // 10, w - w // 10, h - h // 10)  # the card's rounded corners aside
        diff = ImageStat.Stat(ImageChops.difference(got.crop(inset), want.crop(inset))).mean
        assert max(diff) < 20, f"{t['item']}: the drawn photo differs from its file by {diff} on average"
        compared += 1
    return compared


def test_thirty_orders_in_a_row_show_the_right_dish_price_and_photo(broker, monitor, photo_store, tmp_path):
    menu, photos = photo_store
    cats = [c.id for c in menu.categories]
    simple_groups = {g.id for g in menu.modifier_groups if not g.required}
    x = Xvfb(1080, 1920)
    k = KioskProcess(x, kiosk_config(tmp_path / "kiosk.toml", broker), tmp_path, "1080x1920",
                     env={"RESTOBOX_KIOSK_PHOTOS": str(tmp_path / "tile-photos")})
    try:
        k.start()
        k.wait(lambda st: st["menu"], 20)
        numbers = []
        for n in range(30):
            lang = "en" if n % 2 == 0 else "zh"
            k.on("attract")
            k.tap("start")
            k.on("language")
            k.tap(f"lang:{lang}")
            k.on("service", lang=lang)
            k.tap("service:takeaway")
            k.wait(lambda st: "next" in st["buttons"])
            k.tap("next")
            # three categories: the tiles of each are reused for the next
            for c in (cats[n % len(cats)], cats[(n + 1 + n // len(cats)) % len(cats)],
                      WITH_PLAIN_DISHES[n % len(WITH_PLAIN_DISHES)]):
                k.tap(f"category:{c}")
                st = k.wait(lambda st, c=c: st["screen"] == "menu" and st["tiles"]
                            and st["tiles"][0]["item"] in {i.id for i in menu.items if i.category == c}
                            and all(t["photo_shown"] == bool(t["photo"]) for t in st["tiles"]))
                check_tiles(st, menu, photos, c, lang)
                if n in (0, 29):
                    assert check_drawn_photos(k, st, photos, menu, f"tiles-{n}-{c}.png") >= 2
            # a dish on the screen that needs no choice, a different one each time
            by_id = {i.id: i for i in menu.items}
            plain = [by_id[t["item"]] for t in st["tiles"] if t["target"] not in st["clipped"]
                     and all(g in simple_groups for g in by_id[t["item"]].modifier_groups)]
            dish = plain[n % len(plain)]
            k.tap(f"item:{dish.id}")
            st = k.wait(lambda st: st["screen"] == "item" and st["item"]["id"] == dish.id
                        and st["item"]["photo_shown"] == bool(st["item"]["photo"]))
            assert st["item"]["price"] == money(dish.price)
            assert st["item"]["photo"] == photos.get(dish.image, "")
            k.tap("add")
            k.on("menu")
            k.wait(lambda st: "cart" in st["buttons"])
            k.tap("cart")
            k.on("cart")
            k.tap("checkout")
            k.on("pay")
            k.tap("pay:counter")
            st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)
            numbers.append(st["number"])
            k.tap("done")
        assert len(set(numbers)) == 30
    finally:
        k.stop()
        x.close()
