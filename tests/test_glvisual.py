"""The kitchen screens' window without depth and stencil buffers
(restobox/glvisual.py), on a real X server (Xvfb with Mesa's GLX). That the
station's window really is drawn so, and paints what it should, is checked
by tests/test_kds_station_ui.py (its state dump's ``gl``)."""

from __future__ import annotations

import pytest

from restobox import glvisual
from tests.ui_support import Xvfb

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def xvfb():
    x = Xvfb()
    yield x
    x.close()


def test_the_plain_visual_has_double_buffered_rgba_and_nothing_else(xvfb):
    every = glvisual.visuals(xvfb.display)
    v = glvisual.find_plain_visual(xvfb.display)
    assert v is not None and v in every
    a = v.attrs
    assert (a["double"], a["rgba"], a["red"], a["green"], a["blue"], a["alpha"]) == (1, 1, 8, 8, 8, 8)
    assert (a["depth"], a["stencil"], a["accum_red"], a["sample_buffers"]) == (0, 0, 0, 0)
    # what Kivy is given when nobody chooses: a depth and a stencil buffer
    assert any(x.attrs["depth"] > 0 and x.attrs["stencil"] > 0 for x in every)
    assert not any(glvisual.plain(x) for x in every if x.attrs["depth"] or x.attrs["stencil"])


def test_sdl_is_told_the_plain_visual(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.delenv(glvisual.SDL_VISUAL_ENV, raising=False)
    monkeypatch.delenv(glvisual.CHOICE_ENV, raising=False)
    said = glvisual.use_plain_visual()
    chosen = glvisual.find_plain_visual(xvfb.display)
    assert glvisual.os.environ[glvisual.SDL_VISUAL_ENV] == chosen.hex_id
    assert chosen.hex_id in said and "without depth and stencil" in said


@pytest.mark.parametrize("env, words", [
    ({glvisual.CHOICE_ENV: "default"}, "Kivy's own"),
    ({glvisual.SDL_VISUAL_ENV: "0x21"}, "set already"),
    ({"DISPLAY": ""}, "no X display"),
    ({"DISPLAY": ":6999"}, "none without depth and stencil on :6999"),  # no server there
])
def test_the_window_is_left_to_kivy_when_it_should_be(env, words, xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    monkeypatch.delenv(glvisual.SDL_VISUAL_ENV, raising=False)
    monkeypatch.delenv(glvisual.CHOICE_ENV, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = glvisual.os.environ.get(glvisual.SDL_VISUAL_ENV)
    assert words in glvisual.use_plain_visual()
    assert glvisual.os.environ.get(glvisual.SDL_VISUAL_ENV) == before


def test_no_kitchen_screen_clips_with_a_stencil():
    """Their window has no stencil buffer: a StencilView (a ScrollView is
    one) would clip nothing there."""
    from pathlib import Path

    kds = Path(__file__).resolve().parent.parent / "kds"
    users = [str(p.relative_to(kds.parent)) for p in sorted(kds.rglob("*")) if p.suffix in (".py", ".kv")
             and any(w in p.read_text(encoding="utf-8") for w in ("StencilView", "ScrollView", "StencilPush"))]
    assert users == []
