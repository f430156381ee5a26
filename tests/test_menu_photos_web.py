"""The menu's photos on the table QR page: served at an immutable URL named
by the photo's hash, shown on the item tiles in a real Chromium, a colour
tile where a photo is missing, broken or fails to load, and a new menu's
photo replacing the old one live. Real mosquitto, hub and `restobox web`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import msgspec
import pytest

from restobox import contract
from restobox.contract import MenuMessage, topics
from restobox.data import load_sample_menu
from tests.support import Device
from tests.test_menu_photos import index_of, photo_hub  # noqa: F401 (fixture)
from tests.test_web_qr import browser, phone, start_web  # noqa: F401 (fixtures)

SHOT = Path(__file__).resolve().parent.parent / "build" / "web-menu-photos.png"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def photo_web(broker, monitor, photo_hub, tmp_path):  # noqa: F811
    index_of(monitor, lambda d: len(d["images"]) == 39)
    w = start_web(broker, monitor, tmp_path)
    yield w
    w.proc.stop()


def wait_photo(page, item_id: str, src: str | None = None) -> None:
    """Until the item's photo has loaded (``src``: that one). Photos load
    lazily, as the diner scrolls to them: the item is scrolled to while
    waiting (the page may draw the menu again meanwhile)."""
    page.wait_for_function("""([id, want]) => {
        const item = document.querySelector(`.item[data-item="${id}"]`);
        if (!item) return false;
        item.scrollIntoView({block: "center"});
        const img = item.querySelector("img.photo");
        return !!img && img.complete && img.naturalWidth > 0 && (want === null || img.getAttribute("src") === want);
    }""", arg=[item_id, src])


def photo_src(page, item_id: str) -> str | None:
    return page.evaluate("""(id) => {
        const img = document.querySelector(`.item[data-item="${id}"] img.photo`);
        return img && img.complete && img.naturalWidth > 0 ? img.getAttribute("src") : null; }""", item_id)


def test_the_page_shows_each_dishs_photo_and_a_colour_tile_where_there_is_none(photo_web, monitor, phone):
    index = index_of(monitor, lambda d: len(d["images"]) == 39)["images"]
    fries = index["fries.jpg"]["sha256"]
    # the photo's URL: its hash; cached for good
    r = httpx.get(f"{photo_web.url}/photos/{fries}.jpg", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert hashlib.sha256(r.content).hexdigest() == fries
    assert httpx.get(f"{photo_web.url}/photos/{'0' * 64}.jpg", timeout=5).status_code == 404
    assert httpx.get(f"{photo_web.url}/photos/..%2Fapp.js", timeout=5).status_code == 404

    page = phone
    page.goto(photo_web.table("5"))
    wait_photo(page, "fries")
    assert photo_src(page, "fries") == f"/photos/{fries}.jpg"
    page.wait_for_function("() => document.querySelectorAll('.item img.photo').length === 39")
    # the missing and the broken photo: the colour tile with the dish's first character
    for item, char in (("kung-pao-chicken", "宫"), ("mapo-tofu", "麻")):
        tile = page.locator(f'.item[data-item="{item}"] .badge-round')
        assert tile.locator("img").count() == 0 and tile.inner_text() == char
        assert page.evaluate("(el) => getComputedStyle(el).backgroundColor", tile.element_handle()) != \
            "rgba(0, 0, 0, 0)"
    # a photo that fails to load leaves the colour tile
    page.evaluate("""() => { const b = document.querySelector('.item[data-item="fries"] .badge-round');
        b.querySelector('img').src = '/photos/' + '1'.repeat(64) + '.jpg'; }""")
    page.wait_for_function("() => !document.querySelector('.item[data-item=\"fries\"] img.photo')")


def test_a_new_menu_that_changes_a_photo_shows_the_new_one_on_the_open_page(photo_web, broker, monitor, phone):
    index = index_of(monitor, lambda d: len(d["images"]) == 39)["images"]
    old, new = index["lemon-tea.jpg"]["sha256"], index["jasmine-green-tea.jpg"]["sha256"]
    page = phone
    page.goto(photo_web.table("5"))
    wait_photo(page, "lemon-tea", f"/photos/{old}.jpg")
    v1 = load_sample_menu()
    items = tuple(msgspec.structs.replace(i, image="jasmine-green-tea.jpg") if i.id == "lemon-tea" else i
                  for i in v1.items)
    sync = Device(broker, "sync", role="sync")
    try:
        sync.publish(topics.CLOUD_MENU, contract.encode(MenuMessage(
            menu=msgspec.structs.replace(v1, version="2026-12-01.1", items=items), at="2026-12-01T00:00:00Z")))
    finally:
        sync.close()
    wait_photo(page, "lemon-tea", f"/photos/{new}.jpg")
    page.screenshot(path=str(SHOT))
    # the page had it from the new index, which dropped the old photo: no longer served
    assert httpx.get(f"{photo_web.url}/photos/{old}.jpg", timeout=5).status_code == 404
