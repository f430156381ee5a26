"""The customer pickup board (Kivy): "制作中 Preparing" and "请取餐 Ready".

    python -m kds.board_screen --config /etc/restobox/board.toml     ([kds] mode = "board")

Display only: it reads the hub's retained board (``restobox/v1/board/ready``)
and the hub's presence, and sends nothing but its own presence. State lives
in :class:`kds.viewmodel.BoardViewModel`, the bus in :class:`BoardController`
(no Kivy), the layout in ``board.kv``. Ready numbers are shown newest first;
a number that has just become ready is lit and pulses for a few seconds.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")

from kds.common import load_kv, register_cjk_font, run_screen_clock, screen_settings, try_screenshot, write_state  # noqa: E402
from kds.health import ScreenMonitor, guarded, ignored, not_from_topic  # noqa: E402
from kds.viewmodel import BoardViewModel, LinkState  # noqa: E402
from restobox.bus import Bus, Incoming, bus_from_config, decode_or_none, refused  # noqa: E402
from restobox.config import Config  # noqa: E402
from restobox.contract import Board, Presence, Words, topics  # noqa: E402

log = logging.getLogger("restobox.kds.board")

# For the diners: what the board cannot promise while it is cut off.
NOTICE_CONNECTING = Words("正在连接……", "Connecting…")
NOTICE_OFFLINE = Words("正在重新连接 · 号码可能不是最新", "Reconnecting — numbers may not be up to date")
FOOTER = Words("请留意屏幕上的取餐号，凭小票到柜台取餐",
               "Please watch for your number and collect your order at the counter")


class BoardController:
    """The board's bus, without Kivy (``post`` runs on the UI thread,
    ``changed`` asks for a coalesced redraw)."""

    def __init__(self, cfg: Config, *, post: Callable[[Callable[[], None]], None],
                 changed: Callable[[], None], bus: Bus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        #: messages ignored, by reason code (``unusable``: applying it raised)
        self.rejected: dict[str, int] = {}
        self.post = guarded(post, self.rejected, log, on_refusal=lambda: self.monitor.refused_soon())
        self.changed = changed
        self.vm = BoardViewModel(clock=clock)
        self.link = LinkState()
        self.bus = bus or bus_from_config(cfg)
        # the diners' board shows no staff alerts
        self.monitor = ScreenMonitor(cfg, self.bus, post=self.post, changed=changed, figures=self._figures,
                                     alerts=False)

    def start(self) -> None:
        self.bus.on_connection_change = lambda up, why: self.post(lambda: self._link(up))
        self.bus.subscribe(topics.BOARD, self._on_board)
        self.bus.subscribe(topics.presence("hub"), self._on_hub_presence)
        self.bus.start()
        self.bus.announce()
        self.monitor.start()

    def stop(self) -> None:
        self.monitor.stop()
        self.bus.stop()

    def health_check(self) -> tuple[bool, str]:
        """For the watchdog (UI thread)."""
        return self.monitor.check()

    def _figures(self):
        counters = {"preparing": len(self.vm.preparing), "ready": len(self.vm.ready),
                    **ignored(self.rejected)}
        return counters, {"hub_online": self.link.hub_online}

    def _decode(self, m: Incoming, type_):
        msg = decode_or_none(m, type_, self.rejected)
        if msg is None:
            self.monitor.refused_soon()
        return msg

    def _on_board(self, m: Incoming) -> None:
        b = self._decode(m, Board)
        if b is not None:
            self.post(lambda: self.vm.on_board(b) and self.changed())

    def _on_hub_presence(self, m: Incoming) -> None:
        p = self._decode(m, Presence)
        if p is None:
            return
        problem = not_from_topic(m.topic, p.device)
        if problem is not None:
            refused(m.topic, "unusable", problem, self.rejected, logger=log)
            self.monitor.refused_soon()
            return
        self.post(lambda: self._hub(p.state == "online"))

    def _hub(self, online: bool) -> None:
        self.link.hub_online = online
        self.changed()

    def _link(self, up: bool) -> None:
        if up:
            self.monitor.publish_soon()
        self.link.connected = up
        self.link.ever_connected |= up
        self.changed()  # the board is retained: it comes again with the subscription

    @property
    def notice(self) -> Words | None:
        """None while the numbers are live; else why they may be stale."""
        if self.link.banner is None:
            return None
        return NOTICE_OFFLINE if self.link.ever_connected else NOTICE_CONNECTING


def build_board_app(cfg: Config):
    """The pickup board as a Kivy App (call ``.run()``). Configure Kivy
    first (:func:`kds.common.configure_kivy`), as ``kds.app.run`` does."""
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.properties import BooleanProperty, ColorProperty, ObjectProperty, StringProperty
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.label import Label

    register_cjk_font()

    class BoardTile(Label):
        ready = BooleanProperty(False)
        fresh = BooleanProperty(False)  # just became ready
        pulse = BooleanProperty(False)  # the fresh tile's second light level

    class BoardHead(BoxLayout):
        zh = StringProperty("")
        en = StringProperty("")
        fill = ColorProperty([0.2, 0.2, 0.2, 1])
        accent = ColorProperty([1, 1, 1, 1])

    class BoardRoot(BoxLayout):
        app = ObjectProperty(None)
        store_zh = StringProperty("")
        store_en = StringProperty("")
        clock_text = StringProperty("")
        preparing_more = StringProperty("")
        ready_more = StringProperty("")
        footer_text = StringProperty("")
        offline = BooleanProperty(False)

    load_kv("board.kv")
    _, keynames, state_file, shot_dir = screen_settings(cfg)

    class BoardApp(App):
        title = "Restobox — 取餐 Pickup"

        def build(self):
            self._redraw = Clock.create_trigger(self.refresh, 0)
            self.ctl = BoardController(cfg, post=lambda fn: Clock.schedule_once(lambda dt: fn()),
                                       changed=self._redraw)
            r = self.root_w = BoardRoot(app=self, store_zh=cfg.store.name_zh, store_en=cfg.store.name_en)
            self.tiles = {}
            for key, ready in (("preparing_grid", False), ("ready_grid", True)):
                grid = r.ids[key]
                self.tiles[key] = [BoardTile(ready=ready) for _ in range(grid.cols * grid.rows)]
                for t in self.tiles[key]:
                    grid.add_widget(t)
            run_screen_clock(self, shot_dir / "board.png")
            self.ctl.start()
            self.refresh()
            return r

        def load_kv(self, filename=None):
            return True  # board.kv is loaded above; App would load it a second time by its name

        def on_start(self):
            self._redraw()

        def on_stop(self):
            self.ctl.stop()

        def _on_key(self, window, key, scancode, codepoint, modifiers):
            if keynames.get(key) == "f12":
                self.screenshot()
                return True
            return False

        def screenshot(self, path: str | None = None) -> str | None:
            return try_screenshot(path or shot_dir / f"ready-board-{int(time.time())}.png")

        def refresh(self, *_):
            vm, r = self.ctl.vm, self.root_w
            r.clock_text = time.strftime("%H:%M")
            notice = self.ctl.notice
            r.offline = notice is not None
            shown = notice or FOOTER
            r.footer_text = f"{shown.zh}    {shown.en}"
            fresh = vm.just_ready
            pulse = int(time.time()) % 2 == 0
            prep = self._fill("preparing_grid", vm.preparing, fresh, pulse)
            ready = self._fill("ready_grid", vm.ready, fresh, pulse)
            r.preparing_more = self._more(len(vm.preparing) - len(prep))
            r.ready_more = self._more(len(vm.ready) - len(ready))
            if state_file:
                write_state(state_file, {
                    "screen": "board", "preparing": list(prep), "ready": list(ready),
                    "just_ready": sorted(fresh & set(ready)), "footer": r.footer_text, "offline": r.offline,
                    "connected": self.ctl.link.connected, "hub_online": self.ctl.link.hub_online,
                })

        @staticmethod
        def _more(n: int) -> str:
            return f"+{n} 更多 more" if n > 0 else ""

        def _fill(self, key, numbers, fresh, pulse) -> tuple[int, ...]:
            tiles = self.tiles[key]
            shown = tuple(numbers[:len(tiles)])
            for tile, n in zip(tiles, shown + (None,) * len(tiles)):
                tile.text = "" if n is None else str(n)
                tile.opacity = 0 if n is None else 1
                tile.fresh = n is not None and n in fresh
                tile.pulse = tile.fresh and pulse
            return shown

    return BoardApp()
