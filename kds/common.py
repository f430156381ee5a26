"""What every kitchen screen shares: Kivy settings, the Chinese font, .kv
loading, screenshots and the state file for tests and diagnostics."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from restobox.config import Config

log = logging.getLogger("restobox.kds")


def configure_kivy(cfg: Config) -> None:
    """The window settings ``kds.app.run`` uses; call before Kivy opens its window."""
    from kivy.config import Config as KivyConfig

    k = cfg.kds
    KivyConfig.set("graphics", "width", str(k.width))
    KivyConfig.set("graphics", "height", str(k.height))
    KivyConfig.set("graphics", "fullscreen", "auto" if k.fullscreen else "0")
    KivyConfig.set("graphics", "resizable", "0")
    KivyConfig.set("kivy", "exit_on_escape", "0")
    # one input provider: a touch screen seen twice (mtdev + hid) would
    # deliver every tap twice
    KivyConfig.set("input", "mouse", "mouse,disable_multitouch")


def register_cjk_font() -> None:
    """Make the Chinese font Kivy's default (regular and bold)."""
    from kivy.core.text import DEFAULT_FONT, LabelBase

    from restobox.printing.preview import find_cjk_font

    font = str(find_cjk_font())
    bold = font.replace("-Regular.", "-Bold.")
    bold = bold if bold != font and Path(bold).is_file() else font
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


def write_state(path: str, state: dict) -> None:
    """For automated UI tests and diagnostics (RESTOBOX_KDS_STATE): what is where."""
    from kivy.core.window import Window

    state = {"window": [Window.width, Window.height], "window_pos": [Window.left, Window.top], **state}
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


def run_screen_clock(app, picture: str | Path) -> None:
    """What every screen app does at build time (after making ``app.ctl``):
    its keys, a clean stop on SIGTERM (systemd: save the cache, say
    "offline"), systemd's READY and watchdog (the controller's health check,
    from the UI loop), the once-a-second refresh (timers), and a picture
    every RESTOBOX_SCREENSHOT_EVERY seconds when that is set (remote
    support, the demo)."""
    import signal

    from kivy.clock import Clock
    from kivy.core.window import Window

    from restobox.service import ScreenWatchdog

    Window.bind(on_key_down=app._on_key)
    app.watchdog = ScreenWatchdog(app.ctl.health_check).attach(app)
    signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda dt: app.stop()))
    Clock.schedule_interval(lambda dt: app.refresh(), 1.0)
    every = float(os.environ.get("RESTOBOX_SCREENSHOT_EVERY", "0") or 0)
    if every > 0:
        Clock.schedule_interval(lambda dt: try_screenshot(picture), every)
