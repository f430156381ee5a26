"""The diner's self-order kiosk (Kivy), portrait 1080×1920 (also 800×1280).

    python -m kiosk --config /etc/restobox/kiosk.toml

Layout lives in screens.kv; all state and logic in kiosk.viewmodel; the bus and
the payment worker in kiosk.controller. Every touch goes to
``KioskViewModel.tap`` through the controller; redraws are coalesced with a
Clock trigger and rebuild only the screen whose view changed. The view model
ticks once a second (idle "still there?", confirm timeout).

Env: RESTOBOX_KIOSK_SIZE="800x1280" (window size), RESTOBOX_KIOSK_STATE (a
JSON file saying which button is where, for UI tests and diagnostics),
RESTOBOX_SCREENSHOT_DIR (F12 screenshots).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")

from restobox import config as config_mod  # noqa: E402

log = logging.getLogger("restobox.kiosk")

BASE_WIDTH = 1080


def window_size(cfg=None) -> tuple[int, int]:
    """[kiosk] width × height, or RESTOBOX_KIOSK_SIZE=WxH when set."""
    default = (cfg.kiosk.width, cfg.kiosk.height) if cfg is not None else (1080, 1920)
    raw = os.environ.get("RESTOBOX_KIOSK_SIZE")
    if not raw:
        return default
    try:
        w, h = (int(v) for v in raw.lower().split("x"))
    except ValueError:
        log.warning("RESTOBOX_KIOSK_SIZE=%r is not WIDTHxHEIGHT; using %dx%d", raw, *default)
        return default
    return w, h


def configure_kivy(cfg=None) -> tuple[int, int]:
    """Window settings; call before Kivy opens its window. Sizes in the .kv
    are in dp for a 1080 wide screen: the density scales them to the width."""
    w, h = window_size(cfg)
    os.environ.setdefault("KIVY_METRICS_DENSITY", f"{w / BASE_WIDTH:.4f}")
    from kivy.config import Config as KivyConfig

    KivyConfig.set("graphics", "width", str(w))
    KivyConfig.set("graphics", "height", str(h))
    KivyConfig.set("graphics", "fullscreen", "auto" if cfg is not None and cfg.kiosk.fullscreen else "0")
    KivyConfig.set("graphics", "resizable", "0")
    KivyConfig.set("graphics", "position", "custom")
    KivyConfig.set("graphics", "left", "0")
    KivyConfig.set("graphics", "top", "0")
    KivyConfig.set("kivy", "exit_on_escape", "0")
    # one input provider: a touch screen seen twice would deliver every tap twice
    KivyConfig.set("input", "mouse", "mouse,disable_multitouch")
    return w, h


def run(cfg_path: str | None) -> int:
    cfg = config_mod.load(cfg_path)
    configure_kivy(cfg)
    build_app(cfg).run()
    return 0


def rgba(hex_colour: str, alpha: float = 1.0) -> list[float]:
    h = hex_colour.lstrip("#")
    if len(h) != 6:
        return [0.38, 0.49, 0.55, alpha]
    return [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)] + [alpha]


def build_app(cfg):
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.factory import Factory
    from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
    from kivy.uix.behaviors import ButtonBehavior
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.floatlayout import FloatLayout
    from kivy.uix.label import Label

    from kds.common import register_cjk_font, save_screenshot, window_rect, write_state
    from kiosk.controller import KioskController

    register_cjk_font()

    class KButton(ButtonBehavior, Label):
        """A touch target: ``target`` is what goes to the view model's tap()."""

        target = StringProperty("")
        bg = ListProperty([0.78, 0.16, 0.16, 1])
        fg = ListProperty([1, 1, 1, 1])
        selected = BooleanProperty(False)
        radius = NumericProperty(18)
        base_font = NumericProperty(30)

        def on_release(self):
            if self.target:
                App.get_running_app().tap(self.target)

    class ItemTileW(KButton):
        name_text = StringProperty("")
        price_text = StringProperty("")
        badge_text = StringProperty("")
        sub_text = StringProperty("")
        sold_out = BooleanProperty(False)

    class OptionW(KButton):
        name_text = StringProperty("")
        delta_text = StringProperty("")

    class GroupW(BoxLayout):
        name_text = StringProperty("")
        rule_text = StringProperty("")
        error_text = StringProperty("")
        required = BooleanProperty(False)

    class CartLineW(BoxLayout):
        name_text = StringProperty("")
        mods_text = StringProperty("")
        qty_text = StringProperty("")
        total_text = StringProperty("")
        problem_text = StringProperty("")

    class ScreenBase(BoxLayout):
        pass

    for cls in (KButton, ItemTileW, OptionW, GroupW, CartLineW):
        Factory.register(cls.__name__, cls=cls)

    class KioskRoot(FloatLayout):
        store_zh = StringProperty(cfg.store.name_zh)
        store_en = StringProperty(cfg.store.name_en)
        notice_text = StringProperty("")
        link_text = StringProperty("")
        show_chrome = BooleanProperty(False)
        lang_label = StringProperty("")
        lang_target = StringProperty("")
        cancel_label = StringProperty("")
        large_label = StringProperty("")
        large_on = BooleanProperty(False)
        staff_text = StringProperty("")

    Factory.register("KioskRoot", cls=KioskRoot)
    from kivy.lang import Builder

    path = str(Path(__file__).with_name("screens.kv"))
    Builder.unload_file(path)
    Builder.load_file(path)

    state_file = os.environ.get("RESTOBOX_KIOSK_STATE")
    shot_dir = Path(os.environ.get("RESTOBOX_SCREENSHOT_DIR", "."))

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")

    class KioskApp(App):
        title = f"Restobox — {cfg.store.name_zh} {cfg.store.name_en}"
        text_scale = NumericProperty(1.0)
        store_zh = StringProperty(cfg.store.name_zh)
        store_en = StringProperty(cfg.store.name_en)

        def build(self):
            self._redraw = Clock.create_trigger(self.refresh, 0)
            self._dump = Clock.create_trigger(lambda dt: self._dump_state(), 0.15)
            self.ctl = KioskController(cfg, post=lambda fn: Clock.schedule_once(lambda dt: fn()),
                                       changed=lambda: self._redraw())
            self.root_w = Factory.KioskRoot()
            self._still = self.root_w.ids.still.__self__  # a strong reference: it is off the tree when hidden
            self._shown = None  # (screen, view, lang flags) last drawn
            self._screen_w = None
            Window.bind(on_key_down=self._on_key)
            signal.signal(signal.SIGTERM, lambda *_: Clock.schedule_once(lambda dt: self.stop()))
            Clock.schedule_interval(lambda dt: self.ctl.tick(), 1.0)
            every = float(os.environ.get("RESTOBOX_SCREENSHOT_EVERY", "0") or 0)
            if every > 0:  # a picture of the screen for remote support and the demo
                Clock.schedule_interval(lambda dt: self.screenshot(str(shot_dir / "kiosk.png")), every)
            self.refresh()
            self.ctl.start()
            return self.root_w

        def on_stop(self):
            self.ctl.stop()

        # ------------------------------------------------------ input
        def tap(self, target: str) -> None:
            self.ctl.tap(target)

        def _on_key(self, window, key, scancode, codepoint, modifiers):
            if key == 293:  # F12
                self.screenshot()
                return True
            return False

        def screenshot(self, path: str | None = None) -> str | None:
            target = path or str(shot_dir / f"kiosk-{int(time.time() * 1000)}.png")
            try:
                return save_screenshot(target)
            except OSError:
                log.exception("screenshot failed")
                return None

        # ---------------------------------------------------- drawing
        def refresh(self, *_):
            vm, ctl, r = self.ctl.vm, self.ctl, self.root_w
            self.text_scale = 1.2 if vm.large_text else 1.0
            chrome = vm.chrome()
            r.show_chrome = vm.screen != "attract"
            r.lang_label, r.lang_target = chrome.language.label, chrome.language.id
            r.cancel_label = chrome.cancel.label if chrome.cancel else ""
            r.large_label, r.large_on = chrome.large_text.label, chrome.large_text.selected
            r.notice_text = ctl.current_notice() or ""
            if not ctl.has_menu:
                r.link_text = "" if ctl.link_up else "正在连接门店主机…  Connecting to the store…"
            elif not ctl.reachable:
                # still selling: orders wait in this kiosk's outbox
                r.link_text = "门店网络中断，订单先保存在本机  ·  Store network down: orders are kept on this kiosk"
            else:
                r.link_text = ""
            staff = ctl.staff.words() if ctl.staff is not None else None
            r.staff_text = f"{staff.zh}  ·  {staff.en}" if staff is not None and vm.screen == "attract" else ""
            view = vm.view()
            key = (vm.screen, view, vm.lang, vm.large_text)
            if key != self._shown:
                self._shown = key
                self._show(vm.screen, view)
            ov = vm.overlay()
            still = self._still
            if ov is None:
                if still.parent is not None:  # hidden, it must not catch touches
                    r.remove_widget(still)
            else:
                if still.parent is None:
                    r.add_widget(still)
                still.ids.title.text, still.ids.text.text = ov.title, ov.text
                still.ids.yes.text, still.ids.yes.target = ov.yes.label, ov.yes.id
                still.ids.no.text, still.ids.no.target = ov.no.label, ov.no.id
            if state_file:
                self._dump()

        def _show(self, screen: str, v) -> None:
            host = self.root_w.ids.content
            host.clear_widgets()
            w = getattr(Factory, f"{screen.capitalize()}Screen")()
            getattr(self, f"_fill_{screen}")(w, v)
            host.add_widget(w)
            self._screen_w = w

        def _btn(self, b, cls=None, **kw):
            w = (cls or KButton)(text=esc(b.label), target=b.id, selected=b.selected, disabled=not b.enabled, **kw)
            return w

        def _fill_attract(self, w, v):
            w.ids.title.text = v.title
            w.ids.touch.text = v.touch
            w.ids.start.target = v.start.id
            for b in v.languages:
                w.ids.langs.add_widget(self._btn(b, bg=[1, 1, 1, 1], fg=[0.55, 0.1, 0.1, 1], base_font=38, bold=True))

        def _fill_language(self, w, v):
            w.ids.title.text = v.title
            for b in v.languages:
                w.ids.langs.add_widget(self._btn(b))
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_service(self, w, v):
            w.ids.title.text = v.title
            for b in v.options:
                w.ids.options.add_widget(self._btn(b, cls=Factory.BigChoice))
            w.ids.table_prompt.text = v.table_prompt or ""
            w.ids.table.text = v.table if v.table_prompt else ""
            w.ids.table_note.text = v.table_note or ""
            w.ids.table_box.opacity = 1 if v.table_prompt else 0
            w.ids.table_box.disabled = not v.table_prompt
            for b in v.keys:
                w.ids.keypad.add_widget(self._btn(b, cls=Factory.KeyButton))
            w.ids.next.text, w.ids.next.target, w.ids.next.disabled = v.next.label, v.next.id, not v.next.enabled
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_menu(self, w, v):
            w.ids.title.text = v.title
            for c in v.categories:
                w.ids.tabs.add_widget(Factory.TabButton(
                    text=esc(c.name), target=c.tap, selected=c.selected,
                    bg=rgba(c.color) if c.selected else [1, 1, 1, 1],
                    fg=[1, 1, 1, 1] if c.selected else [0.13, 0.12, 0.12, 1]))
            for it in v.items:
                w.ids.grid.add_widget(ItemTileW(
                    target=it.tap, name_text=esc(it.name), price_text=it.price, badge_text=it.badge or "",
                    sub_text=esc(it.allergens), sold_out=it.sold_out,
                    bg=[0.62, 0.62, 0.62, 1] if it.sold_out else rgba(it.color)))
            w.ids.cart.text, w.ids.cart.target, w.ids.cart.disabled = (
                esc(v.cart.label), v.cart.id, not v.cart.enabled)
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_item(self, w, v):
            w.ids.name.text = esc(v.name)
            w.ids.description.text = esc(v.description)
            w.ids.allergens.text = f"⚠ {esc(v.allergens)}" if v.allergens else ""
            w.ids.base_price.text = v.base_price
            for g in v.groups:
                gw = GroupW(name_text=esc(g.name), rule_text=g.rule, error_text=g.error or "", required=g.required)
                for o in g.options:
                    gw.ids.options.add_widget(OptionW(
                        target=o.tap, name_text=esc(o.name), delta_text=o.delta, selected=o.selected,
                        disabled=not o.enabled))
                w.ids.groups.add_widget(gw)
            w.ids.qty.text = str(v.qty)
            w.ids.minus.target, w.ids.minus.disabled = v.minus.id, not v.minus.enabled
            w.ids.plus.target, w.ids.plus.disabled = v.plus.id, not v.plus.enabled
            w.ids.add.text, w.ids.add.target = esc(v.add.label), v.add.id
            w.ids.back.text, w.ids.back.target = v.back.label, v.back.id

        def _fill_cart(self, w, v):
            w.ids.title.text = v.title
            w.ids.empty.text = v.empty or ""
            for ln in v.lines:
                lw = CartLineW(name_text=esc(ln.name), mods_text=esc(" · ".join(ln.modifiers)),
                               qty_text=str(ln.qty), total_text=ln.line_total, problem_text=esc(ln.problem or ""))
                lw.ids.minus.target, lw.ids.minus.disabled = ln.minus.id, not ln.minus.enabled
                lw.ids.plus.target, lw.ids.plus.disabled = ln.plus.id, not ln.plus.enabled
                for a in ln.actions:
                    lw.ids.actions.add_widget(self._btn(a, cls=Factory.SmallButton))
                w.ids.lines.add_widget(lw)
            w.ids.subtotal.text, w.ids.tax.text, w.ids.total.text = v.subtotal, v.tax, v.total
            w.ids.blocked.text = v.blocked or ""
            if v.upsell is not None:
                w.ids.upsell.text, w.ids.upsell.target, w.ids.upsell.opacity = esc(v.upsell.label), v.upsell.id, 1
            else:
                w.ids.upsell.opacity, w.ids.upsell.disabled, w.ids.upsell.height = 0, True, 0
            w.ids.checkout.text, w.ids.checkout.target = v.checkout.label, v.checkout.id
            w.ids.checkout.disabled = not v.checkout.enabled
            w.ids.more.text, w.ids.more.target = v.more.label, v.more.id

        def _fill_pay(self, w, v):
            w.ids.title.text = v.title
            w.ids.total.text = v.total
            w.ids.prompt.text = v.prompt if v.phase == "choose" else ""
            w.ids.message.text = esc(v.message or "")
            w.ids.spinner.opacity = 1 if v.busy else 0
            for b in v.methods:
                w.ids.methods.add_widget(self._btn(b, cls=Factory.BigChoice))
            for b in v.actions:
                w.ids.actions.add_widget(self._btn(b, cls=Factory.SmallButton))
            if v.back is not None:
                w.ids.back.text, w.ids.back.target = v.back.label, v.back.id
            else:
                w.ids.back.opacity, w.ids.back.disabled = 0, True

        def _fill_confirm(self, w, v):
            w.ids.title.text = v.title
            w.ids.label.text = v.label
            w.ids.number.text = v.number
            w.ids.note.text = v.note
            w.ids.payment.text = v.payment
            w.ids.total.text = v.total
            w.ids.done.text, w.ids.done.target = v.done.label, v.done.id

        def _fill_help(self, w, v):
            w.ids.title.text = v.title
            w.ids.message.text = esc(v.message)
            w.ids.reference.text = v.reference
            w.ids.done.text, w.ids.done.target = v.done.label, v.done.id

        # ---------------------------------------------------- state file
        def _dump_state(self):
            buttons = {}
            for wdg in self.root_w.walk(restrict=True):
                if isinstance(wdg, KButton) and wdg.target and not wdg.disabled and wdg.opacity > 0 \
                        and wdg.get_root_window() is not None:
                    rect = window_rect(wdg)
                    buttons.setdefault(wdg.target, rect)
            vm = self.ctl.vm
            write_state(state_file, {
                "screen": vm.screen, "lang": vm.lang, "menu": self.ctl.has_menu, "link": self.ctl.link_up,
                "notice": self.root_w.notice_text, "number": vm.number, "order_id": vm.order_id,
                "still_there": vm.still_there, "buttons": buttons, "at": time.time(),
                "provisional": vm.provisional, "reachable": self.ctl.reachable,
                "staff": self.root_w.staff_text,
            })

    return KioskApp()
