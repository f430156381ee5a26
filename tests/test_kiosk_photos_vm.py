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
