"""The view model's side of the menu's photos, and the view model package's
modules each importable alone with no Kivy and no peewee."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kiosk.viewmodel import ItemTile, MenuView
from tests.test_kiosk_viewmodel import MENU, clock, make_vm, tap, to_menu  # noqa: F401  (clock is a fixture)
from tests.ui_support import REPO


def tiles(vm) -> dict[str, ItemTile]:
    v = vm.view()
    assert isinstance(v, MenuView)
    return {t.id: t for t in v.items}


def test_a_tile_shows_the_photo_of_its_image_and_none_without_one(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    first = tiles(vm)
    assert all(t.photo == "" for t in first.values())  # no photos yet: colour tiles
    some = [i for i in MENU.items if i.category == vm.category][:2]
    redraws = []
    vm.on_change = lambda: redraws.append(1)
    vm.set_photos({some[0].image: "/var/lib/restobox/photos/a.jpg", "not-on-the-menu.jpg": "/x.jpg"})
    assert redraws == [1]
    now = tiles(vm)
    assert now[some[0].id].photo == "/var/lib/restobox/photos/a.jpg"
    assert now[some[1].id].photo == ""  # not delivered: its colour tile
    vm.set_photos({some[0].image: "/var/lib/restobox/photos/a.jpg", "not-on-the-menu.jpg": "/x.jpg"})
    assert redraws == [1]  # the same photos: no redraw
    tap(vm, clock, f"item:{some[0].id}")
    assert vm.view().photo == "/var/lib/restobox/photos/a.jpg"  # the dish screen shows it larger
    vm.set_photos({})
    assert redraws == [1, 1] and vm.view().photo == ""


def test_photos_outlive_an_order(clock) -> None:
    vm = make_vm(clock)
    item = MENU.items[0]
    vm.set_photos({item.image: "/p.jpg"})
    vm.reset("test")
    to_menu(vm, clock)
    vm.open_category(item.category)
    assert tiles(vm)[item.id].photo == "/p.jpg"


@pytest.mark.parametrize("module", ["model", "texts", "views", "cart", "member", "payment", "render", "navigator"])
def test_each_view_model_module_imports_alone_without_kivy_or_peewee(module: str) -> None:
    code = (f"import sys, kiosk.viewmodel.{module}; "
            "bad = [m for m in ('kivy', 'peewee', 'paho') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------ kiosk.tiles (no window)

def test_a_photo_is_cut_to_the_tiles_shape_and_size(tmp_path) -> None:
    from PIL import Image

    from kiosk.tiles import crop_to

    for size in ((480, 360), (6000, 4000), (300, 900)):
        p = tmp_path / f"{size[0]}x{size[1]}.jpg"
        Image.new("RGB", size, (200, 40, 30)).save(p, "JPEG")
        data, w, h = crop_to(str(p), 498, 230)
        assert (w, h) == (498, 230) and len(data) == 498 * 230 * 4  # RGBA: rows four-byte aligned
        assert abs(data[0] - 200) < 8 and data[1] < 60  # the photo's colour, not black


def test_a_broken_or_missing_photo_is_not_read_again_and_gives_no_texture(tmp_path) -> None:
    import threading

    from kiosk.tiles import PhotoTextures

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    done = threading.Event()
    posted = []

    def post(fn):  # the UI thread's queue, as Clock.schedule_once would run it
        posted.append(fn)
        done.set()

    pt = PhotoTextures(post)
    for path in (str(bad), str(tmp_path / "missing.jpg")):
        done.clear()
        assert pt.get(path, 498, 230) is None
        assert done.wait(10)
        posted.pop()()
        assert path in pt.broken
        assert pt.get(path, 498, 230) is None and not posted  # not asked for again
    pt.stop()
    assert len(pt) == 0
