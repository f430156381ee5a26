"""The kitchen screen (Kivy): a station's tickets, bumped by touch or bump bar.

    restobox kds --config /etc/restobox/kds.toml      (or python -m kds)

Layout lives in station.kv; all state and logic in kds.viewmodel; the bus and the
cache in kds.controller. Redraws are coalesced with a Clock trigger; the
timers tick once a second.
"""

from __future__ import annotations

import logging
import os
import time

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")

from restobox import config as config_mod  # noqa: E402

log = logging.getLogger("restobox.kds")

HEADER_RGBA = {
    "new": (0.10, 0.46, 0.82, 1),
    "normal": (0.18, 0.49, 0.20, 1),
    "warning": (0.96, 0.60, 0.00, 1),
    "late": (0.78, 0.16, 0.16, 1),
}
FLASH_RGBA = (1.0, 0.35, 0.35, 1)
ALLERGEN_ZH = {
    "celery": "芹菜", "gluten": "麸质", "crustaceans": "甲壳类", "egg": "蛋类", "fish": "鱼类",
    "lupin": "羽扇豆", "milk": "牛奶", "molluscs": "软体动物", "mustard": "芥末", "peanut": "花生",
    "sesame": "芝麻", "soy": "大豆", "sulphites": "亚硫酸盐", "tree-nut": "坚果",
}


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")


def run(cfg_path: str | None) -> int:
    cfg = config_mod.load(cfg_path)
    k = cfg.kds
    from kds.common import configure_kivy

    configure_kivy(cfg)
    if k.mode == "expo":
        from kds.expo_screen import build_expo_app

        app = build_expo_app(cfg)
    elif k.mode == "board":
        from kds.board_screen import build_board_app

        app = build_board_app(cfg)
    else:
        app = build_app(cfg)
    app.run()
    return 0


def build_app(cfg):
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.properties import BooleanProperty, ListProperty, NumericProperty, ObjectProperty, StringProperty
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.label import Label

    from kds.controller import StationController
    from kds.health import alert_rows, alert_strip
    from kds.viewmodel import BumpBarMap
    from kds.common import (load_kv, register_cjk_font, run_screen_clock, screen_settings, try_screenshot,
                            window_rect, write_state)

    register_cjk_font()

    class ItemRow(Label):
        done = BooleanProperty(False)
        line = NumericProperty(0)

    class TicketCard(BoxLayout):
        ticket_id = StringProperty("")
        number_text = StringProperty("")
        timer_text = StringProperty("")
        service_text = StringProperty("")
        header_rgba = ListProperty([0.2, 0.5, 0.2, 1])
        selected = BooleanProperty(False)
        app = ObjectProperty(None)
        content = ObjectProperty(None, allownone=True)

        def on_touch_down(self, touch):
            if self.ticket_id and self.collide_point(*touch.pos):
                touch.ud["card"] = self.ticket_id
                return True
            return super().on_touch_down(touch)

        def on_touch_up(self, touch):
            if not self.ticket_id or touch.ud.get("card") != self.ticket_id or not self.collide_point(*touch.pos):
                return super().on_touch_up(touch)
            header = self.ids.header
            if header.collide_point(*touch.pos):
                self.app.bump(self.ticket_id)
                return True
            for row in self.ids.item_box.children:
                if isinstance(row, ItemRow) and row.line and row.collide_point(*row.parent.to_widget(*touch.pos)):
                    self.app.bump_item(self.ticket_id, row.line)
                    return True
            self.app.select(self.ticket_id)
            return True

    class StationRoot(BoxLayout):
        app = ObjectProperty(None)
        title_text = StringProperty("")
        count_text = StringProperty("")
        clock_text = StringProperty("")
        banner_text = StringProperty("")
        notice_text = StringProperty("")
        hidden_text = StringProperty("")
        alert_text = StringProperty("")
        alert_severity = StringProperty("")
        allday_title = StringProperty("全天数量 All day")
        allday_text = StringProperty("")
        columns = NumericProperty(5)
        rows = NumericProperty(2)

    load_kv("alerts.kv")
    load_kv("station.kv")
    bump_keys, keynames, state_file, shot_dir = screen_settings(cfg)

    class KdsApp(App):
        title = f"Restobox KDS — {cfg.kds.station}"

        def build(self):
            self.ctl = StationController(cfg, post=lambda fn: Clock.schedule_once(lambda dt: fn()),
                                         changed=lambda: self._redraw())
            self._redraw = Clock.create_trigger(self.refresh, 0)
            self.root_w = StationRoot(app=self, columns=cfg.kds.columns, rows=cfg.kds.rows)
            st = self.ctl.station
            names = {"wok": "炒锅 Wok", "fryer": "炸炉烧烤 Fryer & Grill", "drinks": "饮品 Drinks"}
            self.root_w.title_text = names.get(st, st)
            self.cards = []
            for _ in range(cfg.kds.columns * cfg.kds.rows):
                c = TicketCard(app=self, opacity=0, disabled=True)  # empty until a ticket comes
                self.cards.append(c)
                self.root_w.ids.grid.add_widget(c)
            run_screen_clock(self, shot_dir / f"kds-{cfg.kds.station}.png")
            self.bumpbar = None
            if cfg.kds.serial_bump_bar:
                from kds.bumpbar import SerialBumpBar

                self.bumpbar = SerialBumpBar(
                    cfg.kds.serial_bump_bar, BumpBarMap(cfg.kds.serial_bump_keys),
                    lambda action: Clock.schedule_once(lambda dt: self.ctl.act(lambda: self.ctl.vm.perform(action))),
                    baudrate=cfg.kds.serial_bump_baudrate)
                self.bumpbar.start()
            Clock.schedule_interval(lambda dt: self.ctl.save_if_dirty(), 2.0)
            self.refresh()
            self.ctl.start()
            return self.root_w

        def on_stop(self):
            if self.bumpbar is not None:
                self.bumpbar.stop()
            self.ctl.stop()

        # ------------------------------------------------------ actions
        def bump(self, ticket_id):
            self.ctl.act(lambda: self.ctl.vm.bump(ticket_id))

        def bump_item(self, ticket_id, line):
            self.ctl.act(lambda: self.ctl.vm.bump_item(ticket_id, line))

        def select(self, ticket_id):
            self.ctl.act(lambda: self.ctl.vm.select(ticket_id) or [])

        def recall(self):
            self.ctl.act(self.ctl.vm.recall_last)

        def undo(self):
            self.ctl.act(self.ctl.vm.undo)

        def page(self, delta):
            (self.ctl.vm.next_page if delta > 0 else self.ctl.vm.prev_page)()
            self._redraw()

        def _on_key(self, window, key, scancode, codepoint, modifiers):
            name = keynames.get(key, codepoint or "")
            if name == "f12":
                self.screenshot()
                return True
            action = bump_keys.action_for(name)
            if action is None:
                return False
            self.ctl.act(lambda: self.ctl.vm.perform(action))
            return True

        def screenshot(self, path: str | None = None) -> str | None:
            """Save what the screen shows (never a reason to stop the screen)."""
            return try_screenshot(path or shot_dir / f"kds-{cfg.kds.station}-{int(time.time())}.png")

        # ------------------------------------------------------- drawing
        def refresh(self, *_):
            vm = self.ctl.vm
            views = vm.tickets_on_page()
            r = self.root_w
            r.clock_text = time.strftime("%H:%M")
            r.count_text = f"{vm.open_count} 张单 open"
            banner = vm.banner
            r.banner_text = f"{banner.zh}   {banner.en}" if banner else ""
            notice = self.ctl.current_notice()
            r.notice_text = f"{notice.zh}  {notice.en}" if notice else ""
            r.alert_text, r.alert_severity = alert_strip(self.ctl.monitor.alerts)
            r.hidden_text = (f"第 {vm.page + 1}/{vm.pages} 页 · 另有 {vm.hidden_count} 张"
                             if vm.hidden_count else "")
            lines = [f"[b]{c.qty:>3}[/b]  {_esc(c.name_zh)}  [color=#9aa0a6]{_esc(c.name_en)}[/color]"
                     for c in vm.all_day()[:24]]
            r.allday_text = "\n".join(lines)  # a property: unchanged text redraws nothing
            for card, v in zip(self.cards, views + [None] * len(self.cards)):
                self._fill(card, v)
            self.ctl.drawn([v.ticket_id for v in views])
            if state_file:
                self._dump_state(views)

        def _fill(self, card, v):
            """Update one card. Its item rows are rebuilt only when its content
            changed; the once-a-second tick only touches the header."""
            if v is None:
                if card.ticket_id:
                    card.ids.item_box.clear_widgets()
                    card.opacity, card.ticket_id, card.disabled = 0, "", True
                    card.content = None
                return
            card.opacity, card.disabled = 1, False
            card.ticket_id = v.ticket_id
            card.number_text = f"#{v.number} · {v.provisional}" if v.provisional else f"#{v.number}"
            card.timer_text = v.elapsed_text
            card.service_text = f"{v.service_text.zh} {v.channel_text.zh}"
            card.selected = v.selected
            card.header_rgba = list(FLASH_RGBA if v.flashing else HEADER_RGBA[v.colour])
            content = (v.ticket_id, v.items, v.note)
            if card.content == content:
                return
            card.content = content
            items = card.ids.item_box
            items.clear_widgets()
            if v.note:
                items.add_widget(ItemRow(text=f"[b]备注 Note: {_esc(v.note)}[/b]", font_size="17sp"))
            for it in v.items:
                name = f"{it.qty}× {_esc(it.name_zh)}"
                text = f"[b]{'[s]' + name + '[/s]' if it.done else name}[/b]\n[size=16sp]{_esc(it.name_en)}[/size]"
                for m in it.modifiers:
                    text += f"\n  [size=17sp]• {_esc(m.zh)} {_esc(m.en)}[/size]"
                if it.part_of:
                    text += f"\n  [size=15sp]套餐 for {_esc(it.part_of_zh or it.part_of)}[/size]"
                if it.note:
                    text += f"\n  [b][color=#1565c0]{_esc(it.note)}[/color][/b]"
                if it.allergens:
                    zh = "、".join(ALLERGEN_ZH.get(a, a) for a in it.allergens)
                    text += (f"\n  [size=17sp][b][color=#c62828]⚠ {zh} / "
                             f"{', '.join(it.allergens)}[/color][/b][/size]")
                items.add_widget(ItemRow(text=text, font_size="22sp", done=it.done, line=it.line))

        def _dump_state(self, views):
            """For automated UI tests and diagnostics: where each ticket is."""
            out = [{"ticket_id": c.ticket_id, "number": c.number_text, "rect": window_rect(c),
                    "header": window_rect(c.ids.header)} for c in self.cards if c.ticket_id]
            write_state(state_file, {"tickets": out, "banner": self.root_w.banner_text,
                                     "alerts": alert_rows(self.ctl.monitor.alerts),
                                     "alert_strip": self.root_w.alert_text,
                                     "alert_rect": window_rect(self.root_w.ids.alerts),
                                     "grid_rect": window_rect(self.root_w.ids.grid),
                                     "open": self.ctl.vm.open_count,
                                     "recall": [t.ticket_id for t in self.ctl.vm.recall_list()]})

    return KdsApp()
