"""The cashier's counter (Kivy), landscape 1280×800 (also 1920×1080).

    restobox counter --config /etc/restobox/counter.toml   (or python -m counter)

Layout lives in counter.kv; all state and logic in counter.viewmodel; the
bus, counter.db and the payment terminal in counter.controller. Every touch
goes to ``CounterViewModel.tap`` through the controller; every key typed
(a keyboard-wedge barcode scanner types the receipt's code and Enter) goes
to the find box, wherever the cashier is. Redraws are coalesced with a Clock
trigger.

Env: RESTOBOX_COUNTER_SIZE="1920x1080" (window size), RESTOBOX_COUNTER_STATE
(a JSON file saying what is where, for UI tests and diagnostics),
RESTOBOX_SCREENSHOT_DIR (F12 screenshots).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")

from kiosk.app import configure_window  # noqa: E402
from restobox import config as config_mod  # noqa: E402

BASE_WIDTH = 1280
ENTER_KEYS = (13, 271)  # Return, keypad Enter
BACKSPACE = 8
F12 = 293

# colours by role (counter.kv reads app.c_<role>): the kiosk's own look
COLOURS = {
    "ink": (0.13, 0.12, 0.12, 1), "muted": (0.42, 0.40, 0.38, 1), "paper": (0.973, 0.957, 0.933, 1),
    "card": (1, 1, 1, 1), "line": (0.88, 0.85, 0.81, 1), "green": (0.13, 0.55, 0.33, 1),
    "on_red": (1, 1, 1, 1), "bar": (0.757, 0.153, 0.176, 1), "warn": (0.72, 0.36, 0.0, 1),
    "red": (0.757, 0.153, 0.176, 1), "chosen": (1, 0.93, 0.75, 1), "offline": (0.45, 0.45, 0.45, 1),
}
STYLE_BG = {"primary": "green", "pay": "green", "warn": "red", "key": "card", "normal": "card",
            "order": "card", "chosen": "chosen", "toggle_on": "chosen"}
STYLE_INK = {"primary": "on_red", "pay": "on_red", "warn": "on_red"}
KEYS_AMOUNT = ("7", "8", "9", "del", "4", "5", "6", "clear", "1", "2", "3", "+50", "0", "00", ".", "+100")
KEYS_PIN = ("7", "8", "9", "del", "4", "5", "6", "clear", "1", "2", "3", "0")


def configure_kivy(cfg=None) -> tuple[int, int]:
    """The counter's window: [counter] width × height, or RESTOBOX_COUNTER_SIZE=WxH when set."""
    return configure_window(cfg.counter if cfg is not None else None, env="RESTOBOX_COUNTER_SIZE",
                            default=(1280, 800), base_width=BASE_WIDTH)


def run(cfg_path: str | None) -> int:
    cfg = config_mod.load(cfg_path)
    from restobox.migrations import check

    check(cfg.counter.database, "counter")  # a file from a newer release stops here, with the sentence
    configure_kivy(cfg)
    build_app(cfg).run()
    return 0


def build_app(cfg):
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.factory import Factory
    from kivy.lang import Builder
    from kivy.properties import ListProperty, StringProperty
    from kivy.uix.button import Button

    from counter.controller import CounterController
    from counter.texts import T as CT
    from kds.common import window_rect, write_state
    from kiosk.app import TouchApp, use_screen_font, use_screen_text
    from restobox.service import ScreenWatchdog

    use_screen_text(faux_bold=use_screen_font())

    class CButton(Button):
        target = StringProperty("")

        def on_release(self):
            App.get_running_app().tap(self.target)

    Factory.register("CButton", cls=CButton)
    path = str(Path(__file__).with_name("counter.kv"))
    Builder.unload_file(path)
    Builder.load_file(path)

    state_file = os.environ.get("RESTOBOX_COUNTER_STATE")
    props = {f"c_{k}": ListProperty(list(v)) for k, v in COLOURS.items()}

    class CounterApp(TouchApp, App):
        SHOT_NAME = "counter"
        title = f"Restobox counter — {cfg.store.name_zh} {cfg.store.name_en}"
        locals().update(props)

        def load_kv(self, filename=None):
            return True  # counter.kv is loaded above (once: Kivy would load <app name>.kv again)

        def build(self):
            self._redraw = Clock.create_trigger(self.refresh, 0)
            self._dump = Clock.create_trigger(lambda dt: self._dump_state(), 0.08)
            self.ctl = CounterController(cfg, post=lambda fn: Clock.schedule_once(lambda dt: fn()),
                                         changed=lambda: self._redraw())
            Window.clearcolor = self.c_paper
            self.root_w = Factory.CounterRoot()
            self._specs: dict[int, list] = {}  # what each panel shows (_sync)
            Window.bind(on_key_down=self._on_key)
            signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda dt: self.stop()))
            self.watchdog = ScreenWatchdog(self.ctl.health_check).attach(self)
            Clock.schedule_interval(lambda dt: self.ctl.tick(), 0.5)
            self.refresh()
            self.ctl.start()
            return self.root_w

        def on_stop(self):
            self.ctl.stop()

        # ---------------------------------------------------------- input
        def _on_key(self, window, key, scancode, codepoint, modifiers):
            if key == F12:
                self.screenshot()
                return True
            if key in ENTER_KEYS:
                self.ctl.enter()
                return True
            if key == BACKSPACE:
                self.ctl.backspace()
                return True
            # a scanner types ASCII; a modifier (shift: 304) has a "codepoint" of its own to ignore
            if key < 256 and codepoint and len(codepoint) == 1 and codepoint.isprintable():
                self.ctl.key(codepoint)
                return True
            return False

        # -------------------------------------------------------- drawing
        def _button(self, target: str, text: str, style: str, *, height=None):
            b = CButton(target=target, text=text)
            b.background_color = getattr(self, f"c_{STYLE_BG.get(style, 'card')}")
            b.color = getattr(self, f"c_{STYLE_INK.get(style, 'ink')}")
            if style == "key":
                b.font_size = "28sp"
            if height is not None:
                b.height = height
            return b

        def _row_widget(self, spec):
            from kivy.metrics import dp

            target, text, style = spec
            if target:
                return self._button(target, text, style, height=dp(64))
            lab = Factory.CLabel(text=text, size_hint_y=None, height=dp(44), bold=style == "head")
            if style == "warn":
                lab.color = self.c_warn
            return lab

        def _sync(self, box, specs: list, make) -> None:
            """``box`` shows ``specs`` (target, text, style): the widgets
            there are kept when the targets are the same, in the same order
            (text and colours set in place); otherwise made again."""
            old = self._specs.get(id(box))
            if old == specs:
                return
            self._specs[id(box)] = specs
            kids = list(reversed(box.children))
            if old is not None and [s[0] for s in old] == [s[0] for s in specs] and len(kids) == len(specs):
                for wdg, (target, text, style) in zip(kids, specs):
                    wdg.text = text
                    if isinstance(wdg, CButton):
                        wdg.background_color = getattr(self, f"c_{STYLE_BG.get(style, 'card')}")
                        wdg.color = getattr(self, f"c_{STYLE_INK.get(style, 'ink')}")
                    else:
                        wdg.bold = style == "head"
                return
            box.clear_widgets()
            for spec in specs:
                box.add_widget(make(spec))

        def refresh(self, *_):
            from kivy.metrics import dp

            vm = self.ctl.vm
            v = vm.view()
            ids = self.root_w.ids
            ids.title.text = v.title
            ids.shift.text = v.shift
            ids.status.text = v.status
            ids.find.text = f"⌕ {v.find}" if v.find else vm.text(CT["find"])
            ids.lang.text = vm.text(CT["lang"])
            ids.notice.text = v.notice
            ids.big.text = v.big
            ids.sub.text = v.sub
            # each panel rebuilt only when what it holds changed, and a
            # button only restyled when its place is the same: a touch
            # going on is not lost to a redraw the bus asked for
            rows = [(r.target, r.text, r.style) for r in v.rows]
            self._sync(ids.rows, rows, self._row_widget)
            keys: list = []
            if v.keypad:
                pad = KEYS_PIN if vm.screen in ("refund", "orders") else KEYS_AMOUNT
                names = {"del": vm.text(CT["key.del"]), "clear": vm.text(CT["key.clear"]), "+50": "¥50",
                         "+100": "¥100"}
                keys = [(f"key:{k}", names.get(k, k), "key") for k in pad]
            self._sync(ids.keypad, keys, lambda spec: self._button(*spec, height=dp(64)))
            many = len(v.buttons) > 4
            ids.buttons.cols = 3 if many else 2
            self._sync(ids.buttons, [(b.target, b.text, b.style) for b in v.buttons],
                       lambda spec: self._button(*spec, height=dp(72 if many else 80)))
            if state_file:
                self._dump()

        def _dump_state(self):
            buttons = {}
            sx, sy, sw, sh = window_rect(self.root_w.ids.scroll)
            for wdg in self.root_w.walk(restrict=True):
                if isinstance(wdg, CButton) and wdg.target and wdg.get_root_window() is not None:
                    x, y, w, h = window_rect(wdg)
                    in_list = wdg.parent is self.root_w.ids.rows.__self__
                    if in_list and not (sy <= y + h / 2 <= sy + sh):
                        continue  # scrolled out of sight
                    buttons.setdefault(wdg.target, [x, y, w, h])
            vm = self.ctl.vm
            o = vm.order()
            write_state(state_file, {
                "screen": vm.screen, "lang": vm.lang, "menu": self.ctl.has_menu, "link": self.ctl.link_up,
                "reachable": self.ctl.reachable, "buttons": buttons, "at": time.time(),
                "notice": self.root_w.ids.notice.text, "big": self.root_w.ids.big.text,
                "sub": self.root_w.ids.sub.text, "find": vm.find, "entry": vm.entry,
                "pin_digits": len(vm.pin), "shift": vm.shift,
                "selected": vm.selected, "due": vm.due, "result_state": vm.result_state,
                "tenders": [[t.method, t.amount, t.tendered] for t in vm.tenders],
                "order": {"order_id": o.order_id, "number": o.number, "payment": o.payment, "paid": o.paid,
                          "total": o.total, "provisional": o.provisional, "lines": len(o.lines)} if o else None,
                "unpaid": [[x.number, x.order_id] for x in vm.unpaid()], "waiting": vm.waiting,
                "charging": vm.charging.state if vm.charging else None,
                "walkin": vm.walkin.screen if vm.walkin else None,
                "rows": [r.text for r in vm.view().rows],
            })

    return CounterApp()
