"""What every kitchen screen shares: Kivy settings, the Chinese font, .kv
loading, screenshots and the state file for tests and diagnostics."""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from restobox.config import Config

log = logging.getLogger("restobox.kds")


def configure_kivy(cfg: Config) -> None:
    """The window settings ``kds.app.run`` uses; call before Kivy opens its
    window. The kitchen screens clip nothing with a stencil and test no
    depth: their window has neither buffer (restobox/glvisual.py)."""
    from kivy.config import Config as KivyConfig

    from restobox.glvisual import use_plain_visual

    log.info(use_plain_visual())

    k = cfg.kds
    KivyConfig.set("graphics", "width", str(k.width))
    KivyConfig.set("graphics", "height", str(k.height))
    KivyConfig.set("graphics", "fullscreen", "auto" if k.fullscreen else "0")
    KivyConfig.set("graphics", "resizable", "0")
    KivyConfig.set("kivy", "exit_on_escape", "0")
    # one input provider: a touch screen seen twice (mtdev + hid) would
    # deliver every tap twice
    KivyConfig.set("input", "mouse", "mouse,disable_multitouch")


SCREEN_FONT_ENV = "RESTOBOX_SCREEN_FONT"
SCREEN_FONT_PACKAGE = "fonts-wqy-microhei"
# TrueType outlines first. Kivy draws text through SDL_ttf, which opens the
# font file again for every size and weight a screen uses (a kiosk uses
# about 20): a face of Noto Sans CJK (CFF outlines) holds about 2.8 MB of
# heap, one of WenQuanYi Micro Hei about 0.5 MB (measured with Kivy's own
# text provider; docs/performance.md).
SCREEN_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",  # fonts-droid-fallback
)
BOLD_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",  # fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
)


def find_screen_font() -> tuple[str, str]:
    """(regular, bold) font files for the screens: ``RESTOBOX_SCREEN_FONT``,
    else the first of SCREEN_FONT_CANDIDATES installed, else the printer
    preview's Chinese font (Noto Sans CJK, which costs more memory). Bold:
    the font's own bold face, else Noto Sans CJK Bold, else the regular."""
    from restobox.printing.preview import FontNotFound, _covers_chinese, find_cjk_font

    env = os.environ.get(SCREEN_FONT_ENV)
    if env:
        if not Path(env).is_file() or not _covers_chinese(env):
            raise FontNotFound(f"{SCREEN_FONT_ENV}={env} is not a font file with Chinese characters")
        font = env
    else:
        font = next((p for p in SCREEN_FONT_CANDIDATES if Path(p).is_file() and _covers_chinese(p)), "")
        if not font:
            font = str(find_cjk_font())
            log.warning("drawing with %s: install %s for a screen that needs about 2 MB less memory "
                        "for each text size it shows", font, SCREEN_FONT_PACKAGE)
    bold = font.replace("-Regular.", "-Bold.")
    bold = bold if bold != font and Path(bold).is_file() else font
    if bold == font and not env:
        # SDL_ttf as Kivy drives it never emboldens a face itself: with no
        # bold face a dish name in bold would look like any other line.
        # Noto's bold costs its 2.8 MB per size, only for the bold sizes.
        noto_bold = [p for p in BOLD_CANDIDATES if Path(p).is_file()]
        bold = noto_bold[0] if noto_bold else font
    return font, bold


def map_large_buffers(threshold: int = 64 * 1024) -> None:
    """Buffers of ``threshold`` and more (text textures' pixels, Mesa's
    per-frame blocks) mapped on their own and returned to the system when
    freed. glibc otherwise raises its mmap threshold after the first large
    frees and serves them from the heap, where buffers of ever new sizes,
    between allocations that live on, leave holes the heap keeps: the
    station grew 8-9 MB over its first 20 bumps, 2-4 MB with this. The
    price is page faults on fresh mappings, about 2-4 ms of CPU per drawn
    frame under Mesa's software rasteriser (65 KB, above its 64 KB
    blocks, cost less but left the growth at 2-9 MB). Set once, before
    Kivy allocates."""
    try:
        _libc().mallopt(-3, threshold)  # M_MMAP_THRESHOLD, fixed from now on
    except (OSError, AttributeError):  # not glibc: its own allocator's policy
        log.info("mallopt not available; large buffers left to the allocator")


def trim_heap() -> None:
    """The C heap's free pages back to the system (glibc's malloc_trim)."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@functools.cache
def _libc():
    """The C library, found once (find_library runs ldconfig): trim_heap is
    called on the UI thread after every order."""
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def register_cjk_font() -> None:
    """Make the screens' Chinese font Kivy's default (regular and bold)."""
    from kivy.core.text import DEFAULT_FONT, LabelBase

    font, bold = find_screen_font()
    LabelBase.register(DEFAULT_FONT, font, None, bold, None)


def load_kv(name: str) -> None:
    from kivy.lang import Builder

    path = str(Path(__file__).with_name(name))
    Builder.unload_file(path)  # building a second app in one process must not double the rules
    Builder.load_file(path)


def window_rect(widget) -> list[float]:
    """``[x, y, w, h]`` of a widget in window pixels, origin top left (as X sees it)."""
    from kivy.core.window import Window

    x, y = widget.to_window(widget.x, widget.y)
    return [x, Window.height - y - widget.height, widget.width, widget.height]


@functools.cache
def _buffer_bits() -> dict[str, int]:
    from restobox.glvisual import buffer_bits

    return buffer_bits()


def write_state(path: str, state: dict) -> None:
    """For automated UI tests and diagnostics (RESTOBOX_KDS_STATE): what is where."""
    from kivy.core.window import Window

    state = {"window": [Window.width, Window.height], "window_pos": [Window.left, Window.top],
             "gl": _buffer_bits(), **state}
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, ensure_ascii=False)
        os.replace(tmp, path)
    except OSError as exc:  # diagnostics only: never a reason to stop the screen
        log.warning("could not write the screen state to %s: %s", path, exc)


def save_screenshot(target: str | Path) -> str:
    """The window as a PNG at exactly ``target`` (Kivy adds a counter to the name)."""
    from kivy.core.window import Window

    target = Path(target)
    # Kivy writes PNG bytes whatever the name ends with; ".part" keeps a
    # half-written file from looking like a finished picture.
    made = Window.screenshot(name=f"{target}.part")
    if not made:
        raise OSError(f"the window could not be saved to {target}")
    os.replace(made, target)
    return str(target)


def try_screenshot(target: str | Path) -> str | None:
    """F12: a screenshot, or a log line (a full disk must not close the screen)."""
    try:
        path = save_screenshot(target)
    except OSError:
        log.exception("screenshot failed")
        return None
    log.info("screenshot saved to %s", path)
    return path


def screen_settings(cfg: Config):
    """(bump bar keys, Kivy key names, state file, screenshot folder) for a screen."""
    from kivy.core.window import Keyboard

    from kds.viewmodel import BumpBarMap

    return (BumpBarMap(cfg.kds.bump_keys), {v: k for k, v in Keyboard.keycodes.items()},
            os.environ.get("RESTOBOX_KDS_STATE"), Path(os.environ.get("RESTOBOX_SCREENSHOT_DIR", ".")))


def clear_colour_only() -> None:
    """Each frame, clear the window's colour only. Kivy clears the colour,
    depth and stencil buffers before every frame; the screens test neither
    depth nor stencil, and their window usually has neither buffer
    (restobox/glvisual.py). Where it has them (Kivy's own window,
    ``RESTOBOX_GL_VISUAL=default``), Mesa's software rasteriser spent about
    7 ms of a 45 ms station frame at 1920x1080 clearing them
    (docs/performance.md); a GPU next to nothing."""
    from kivy.core.window import Window
    from kivy.graphics import opengl as gl

    def clear():
        gl.glClearColor(*Window.clearcolor)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)

    Window.clear = clear


def measure_rest(app, after=None) -> None:
    """After the cards' size changed: the view model's entries after the
    next page measured 15 ms a frame (kds.viewmodel.shared.LazyMeasure),
    the screen refreshed when a card count changed (the page count), and
    ``after()`` called once all are measured. The screen is up and takes
    bumps meanwhile. ``app._measuring`` holds the running schedule."""
    from kivy.clock import Clock

    if not app.ctl.vm.measuring or app._measuring is not None:
        return

    def step(dt):
        vm = app.ctl.vm
        if vm.measure_more(0.015):
            app.refresh()
        if not vm.measuring:
            app._measuring = None
            if after is not None:
                after()
            return False
    app._measuring = Clock.schedule_interval(step, 0)


def run_screen_clock(app, picture: str | Path) -> None:
    """What every screen app does at build time (after making ``app.ctl``):
    its window cleared of its colour only, its keys, a clean stop on SIGTERM (systemd: save the cache, say
    "offline"), systemd's READY and watchdog (the controller's health check,
    from the UI loop), the once-a-second refresh (timers), and a picture
    every RESTOBOX_SCREENSHOT_EVERY seconds when that is set (remote
    support, the demo)."""
    import signal

    from kivy.clock import Clock
    from kivy.core.window import Window

    from restobox.service import ScreenWatchdog

    clear_colour_only()
    Window.bind(on_key_down=app._on_key)
    app.watchdog = ScreenWatchdog(app.ctl.health_check).attach(app)
    signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda dt: app.stop()))
    Clock.schedule_interval(lambda dt: app.refresh(), 1.0)
    every = float(os.environ.get("RESTOBOX_SCREENSHOT_EVERY", "0") or 0)
    if every > 0:
        Clock.schedule_interval(lambda dt: try_screenshot(picture), every)
