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

from kds.cardkit import JOIN, block, esc as _esc  # noqa: E402
from restobox import config as config_mod  # noqa: E402

log = logging.getLogger("restobox.kds")

HEADER_RGBA = {
    "new": (0.10, 0.46, 0.82, 1),
    "normal": (0.18, 0.49, 0.20, 1),
    "warning": (0.96, 0.60, 0.00, 1),
    "late": (0.78, 0.16, 0.16, 1),
}
FLASH_RGBA = (1.0, 0.35, 0.35, 1)
# The CJK font's own line spacing is generous; a card's lines sit a little closer.
BODY_LINE_HEIGHT = 0.9
AHEAD_CARDS = 2  # card parts after the page drawn ahead, off screen
AHEAD_DELAY_S = 0.05  # after a change: that frame has drawn, the next bump is not yet due
UNPAID_BADGE = "未付\nUNPAID"  # on the header of an order not paid yet (the ticket's payment, order/update's)
ALLERGEN_ZH = {
    "celery": "芹菜", "gluten": "麸质", "crustaceans": "甲壳类", "egg": "蛋类", "fish": "鱼类",
    "lupin": "羽扇豆", "milk": "牛奶", "molluscs": "软体动物", "mustard": "芥末", "peanut": "花生",
    "sesame": "芝麻", "soy": "大豆", "sulphites": "亚硫酸盐", "tree-nut": "坚果",
}


def run(cfg_path: str | None) -> int:
    from kds.common import map_large_buffers

    map_large_buffers()
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
        # a ticket cache from a newer release stops the screen here, with
        # the sentence, rather than from inside the window's start
        from restobox.migrations import check

        check(k.cache, "cache")
        app = build_app(cfg)
    app.run()
    return 0


def item_rows(it) -> list[str]:
    """The rows of one item line of a station card, as markup: name
    (Chinese, then English), its modifiers on one wrapped row, combo, note,
    allergens; struck through and grey once done. Every row but the first
    starts with its newline, inside its own size: a newline sets the height
    of the line it starts."""
    name = f"{it.qty}× {_esc(it.name_zh)}"
    rows = [f"[size=22sp][b]{'[s]' + name + '[/s]' if it.done else name}[/b][/size] {_esc(it.name_en)}"]
    if it.modifiers:
        rows.append("\n• " + " · ".join(f"{_esc(m.zh)} {_esc(m.en)}" for m in it.modifiers))
    if it.part_of:
        rows.append(f"\n套餐 for {_esc(it.part_of_zh or it.part_of)}")
    if it.note:
        rows.append(f"\n[b][color=#1565c0]{_esc(it.note)}[/color][/b]")
    if it.allergens:
        zh = "、".join(ALLERGEN_ZH.get(a, a) for a in it.allergens)
        rows.append(f"\n[b][color=#c62828]▲ {zh} {' '.join(it.allergens)}[/color][/b]")
    return rows


def ticket_blocks(items, note: str) -> list[tuple[str, int | None, list[str], bool, str]]:
    """(markup, line, rows, done, continuation row) of each block of a
    ticket, in order; the note's line is None. A line's block is a ref
    ``L<line>``: a touch on it bumps that line."""
    out = []
    if note:
        rows = [f"[b][color=#1565c0]备注 Note: {_esc(note)}[/color][/b]"]
        out.append((block("note", rows), None, rows, False, ""))
    for it in items:
        rows = item_rows(it)
        out.append((block(f"L{it.line}", rows, it.done), it.line, rows, it.done, ""))
    return out


def build_app(cfg):
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.metrics import dp, sp
    from kivy.properties import NumericProperty, ObjectProperty, StringProperty
    from kivy.uix.boxlayout import BoxLayout

    from kds.controller import StationController
    from kds.health import alert_rows, alert_strip
    from kds.viewmodel import AllDayPager, BumpBarMap
    from kds.boxlayer import BoxLayer, register_opaque
    from kds.cardkit import (PAPER, STRIP_DP, Measure, body_height, cut, lines_report, part_text, place, place_ahead,
                             resize_cards)
    from kds.viewmodel.cards import pack
    from kds.common import (load_kv, measure_rest, register_cjk_font, run_screen_clock, screen_settings,
                            try_screenshot, window_rect, write_state)

    register_cjk_font()
    # The cards' paper is the window's clear colour; the backdrop is painted
    # around them (see station.kv and kds.boxlayer: the gaps are CardGrid's)
    Window.clearcolor = PAPER

    from kds.ticketcard import all_day_row_class, ticket_card_class

    # drawn by hand (kds.ticketcard): moving one is not laying it out again
    TicketCard = ticket_card_class()  # one card part
    AllDayRow = all_day_row_class()  # one dish on the all-day panel

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
        allday_text = StringProperty("")  # the rows shown, as plain text (the state dump)
        allday_more = StringProperty("")
        allday_h = NumericProperty(0)
        columns = NumericProperty(5)
        rows = NumericProperty(2)

    register_opaque()  # before station.kv, which draws with them
    load_kv("alerts.kv")
    load_kv("station.kv")
    bump_keys, keynames, state_file, shot_dir = screen_settings(cfg)

    class KdsApp(App):
        title = f"Restobox KDS — {cfg.kds.station}"

        def build(self):
            self.ctl = StationController(cfg, post=lambda fn: Clock.schedule_once(lambda dt: fn()),
                                         changed=lambda: self._redraw())
            self._redraw = Clock.create_trigger(self.refresh, 0)
            # the state dump reads the cards once their text and layout are
            # updated (Kivy does both just before the next frame)
            self._dump_soon = Clock.create_trigger(lambda dt: self._dump_state(), 0)
            # every opaque box of the screen in one mesh, drawn first (kds.boxlayer)
            self.boxes = BoxLayer()
            self.boxes.make_current()
            self.root_w = StationRoot(app=self, columns=cfg.kds.columns, rows=cfg.kds.rows)
            self.boxes.attach(self.root_w.canvas.before)
            st = self.ctl.station
            names = {"wok": "炒锅 Wok", "fryer": "炸炉烧烤 Fryer & Grill", "drinks": "饮品 Drinks"}
            self.root_w.title_text = names.get(st, st)
            self.measure_body = Measure(sp(15), BODY_LINE_HEIGHT)
            self.measure_allday = Measure(sp(15))
            self.allday_rows = []  # AllDayRow widgets, kept with their dish while shown
            self.card_box = None  # (text width, body height) of a card, once laid out
            self._splits = {}  # ticket_id -> (items, note, card_box, card parts): see split_view
            self.allday_pager = AllDayPager()
            self.allday_pages = 1
            self.cards = []
            self.slots = cfg.kds.columns * cfg.kds.rows
            for _ in range(self.slots):
                c = TicketCard(self)  # empty until a ticket comes
                self.cards.append(c)
                self.root_w.ids.grid.add_widget(c)
            # cards off the grid holding the tickets after the page, drawn ahead
            self.spares = [TicketCard(self) for _ in range(AHEAD_CARDS)]
            self._measuring = None  # the per-frame measuring of the tickets after the next page
            self._ahead = Clock.create_trigger(self._fill_ahead, AHEAD_DELAY_S)
            self.root_w.ids.grid.bind(size=self._grid_sized)
            self.root_w.ids.allday_panel.bind(on_touch_up=self._allday_touch)
            self.root_w.ids.allday.bind(pos=self._stack_allday, size=self._stack_allday)
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
            self.boxes.uninstall()
            if self.bumpbar is not None:
                self.bumpbar.stop()
            self.ctl.stop()

        # ------------------------------------------------------ card parts
        def _grid_sized(self, grid, size):
            """Once the grid has its size: as many cards as fit at a size a
            cook can read, and how tall a card's body is, so each ticket takes
            as many cards as its lines need."""
            # card padding 4 each side, body padding 10 / 6, header 74
            if resize_cards(self, grid, cfg.kds.columns, cfg.kds.rows, dp(8) + dp(74) + dp(12), dp(8) + dp(20)):
                self.ctl.vm.set_measure(lambda items, note: len(self.split(items, note)))
                self.refresh()
                measure_rest(self, self._dump_soon if state_file else None)

        def split(self, items, note):
            """The ticket's blocks cut into card parts: [[(markup, line), ...], ...]."""
            width, height = self.card_box
            return cut(ticket_blocks(items, note), lambda m: self.measure_body(m, width), height)

        def split_view(self, v):
            """split() of a shown ticket, kept while its items, note and the
            cards' size stay the same: a bump's refresh builds the markup of
            none of the tickets that only moved."""
            hit = self._splits.get(v.ticket_id)
            if hit is not None and hit[0] == v.items and hit[1] == v.note and hit[2] == self.card_box:
                return hit[3]
            parts = self.split(v.items, v.note)
            if len(self._splits) >= 256:  # bounded: the oldest half goes
                for k in list(self._splits)[:128]:
                    del self._splits[k]
            self._splits[v.ticket_id] = (v.items, v.note, self.card_box, parts)
            return parts

        def _allday_touch(self, panel, touch):
            if panel.collide_point(*touch.pos) and self.allday_pages > 1:
                self.allday_pager.turn(self.allday_pages)
                self._redraw()
                return True
            return False

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
            self._draw_now()
            return True

        def _draw_now(self) -> None:
            """The screen after a key drawn in the key's own pass of the event
            loop: what Kivy's EventLoop.idle does after its tick (the pending
            layouts and texts, then the frame), without the tick's wait for
            the next frame slot, up to a 60th of a second after the key."""
            from kivy.base import EventLoop
            from kivy.lang import Builder

            self._redraw.cancel()
            self.refresh()
            Builder.sync()
            Clock.tick_draw()
            Builder.sync()
            win = EventLoop.window
            if win is not None and win.canvas.needs_redraw:
                win.dispatch("on_draw")
                win.dispatch("on_flip")

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
            cut = [tid for tid, first, n in vm.page_parts() if first + n < vm.slots_of(tid)]
            if cut:  # a ticket longer than the page goes on over the next
                number = next((v.number for v in views if v.ticket_id == cut[-1]), "")
                r.hidden_text = f"#{number} 续下页 cont'd ▶ · 第 {vm.page + 1}/{vm.pages} 页"
            self._fill_allday(vm.all_day())
            self._place(views)
            self._drawn_page = (vm.page, vm.pages, vm.open_count)
            self._drawn_age = {v.ticket_id: (v.colour, v.elapsed_s) for v in views}
            if self.card_box is not None:  # drawn only once laid out at the card's real size
                self.ctl.drawn([v.ticket_id for v in views])
            if state_file:
                self._dump_soon()

        def _fill_allday(self, rows):
            panel = self.root_w.ids.allday
            width = int(panel.width)
            room = self.root_w.ids.allday_panel.height - dp(40 + 52 + 20 + 6)  # title, "more", padding
            names = [f"{_esc(c.name_zh)}  [color=#5f6368]{_esc(c.name_en)}[/color]" for c in rows]
            # the names wrap beside the counts' column (kds.ticketcard.AllDayRow)
            name_w = max(1, width - AllDayRow.column())
            line_h = self.measure_allday("国", name_w)
            heights = ([AllDayRow.height_for(self.measure_allday(t, name_w), line_h) + dp(2) for t in names]
                       if width > 1 else [])
            if heights and room > 1:
                bounds = pack(heights, room)
            else:
                bounds = [(0, len(names))]
            page = self.allday_pager.view(rows, bounds)
            self.allday_pages = page.pages
            start, end = bounds[page.page]
            r = self.root_w
            r.allday_h = sum(heights[start:end]) if heights else 0
            self._place_allday(rows[start:end], names[start:end], heights[start:end])
            r.allday_text = "\n".join(f"{c.qty:>3}  {c.name_zh}  {c.name_en}" for c in rows[start:end])
            r.allday_more = (f"▼ 还有 {page.more} 项 · {page.more} more\n点按翻页 tap: page {page.page + 1}/{page.pages}"
                             if page.pages > 1 else "")

        def _place_allday(self, rows, names, heights):
            """The shown rows on AllDayRow widgets: a row keeps its dish while
            shown (a count that changes renders no text); a dish newly shown
            takes a row no longer needed."""
            box = self.root_w.ids.allday
            want = {(c.name_zh, c.name_en) for c in rows}
            by_key = {w.key: w for w in self.allday_rows if w.key in want}
            free = [w for w in self.allday_rows if w.key not in want]
            order = []
            for c, name, h in zip(rows, names, heights):
                key = (c.name_zh, c.name_en)
                w = by_key.get(key)
                if w is None:
                    if free:
                        w = free.pop(0)
                    else:
                        w = AllDayRow()
                        self.allday_rows.append(w)
                    w.key = key
                w.set(c.qty, name)
                w.height = h
                order.append(w)
            self.allday_rows = order + free
            for w in free:  # rows belong to the panel or to nothing
                if w.parent is not None:
                    box.remove_widget(w)
            for w in order:
                if w.parent is None:
                    box.add_widget(w)
            self._stack_allday()

        def _stack_allday(self, *_):
            """The shown rows top down in the panel: a row that moves only
            changes its position (no widgets removed and added again)."""
            box = self.root_w.ids.allday
            top = box.top
            for w in self.allday_rows:  # the shown ones in the order of the last refresh
                if w.parent is not None:
                    w.width, w.x = box.width, box.x
                    top -= w.height
                    w.y = top

        def _place(self, views):
            """Each ticket's parts on the cards, in order (see cardkit.place)."""
            parts = []
            shown = {tid: (first, n) for tid, first, n in self.ctl.vm.page_parts()}
            for v in views:
                split = (self.split_view(v) if self.card_box is not None
                         else [[(m, line) for m, line, *_ in ticket_blocks(v.items, v.note)]])
                first, n = shown.get(v.ticket_id, (0, len(split)))
                for k in range(first, min(len(split), first + n)):
                    parts.append(((v.ticket_id, k, len(split)), v, split[k]))
            pool = self.cards + self.spares
            grid = self.root_w.ids.grid
            self.spares = place(grid, pool, parts, self.slots, self._fill)
            grid.lay()  # the cards where they go now: each laid out once, before the frame
            self.cards = [c for c in pool if c not in self.spares]
            self._ahead()

        def _fill_ahead(self, *_):
            """The card parts after the page on the spare cards, a moment
            after a change (in a frame of their own, which draws nothing on
            screen): a bump then moves in a card already drawn."""
            if self.card_box is None or not self.spares or not self.cards:
                return
            parts = []
            for v in self.ctl.vm.tickets_after_page(len(self.spares)):
                split = self.split_view(v)
                parts += [((v.ticket_id, k, len(split)), v, blocks) for k, blocks in enumerate(split)]
            place_ahead(self.spares, parts, self._fill, self.cards[0].size)

        def _fill(self, card, key, v=None, blocks=None):
            """Update one card part; only the texts that changed are rendered."""
            if v is None:
                card.blank()
                return
            _, k, n = key
            body_h = 0
            if self.card_box is not None:
                width, height = self.card_box
                body_h = body_height([self.measure_body(b, width) for b, _ in blocks], dp(12),
                                     height + dp(12) - (dp(STRIP_DP) if n > 1 else 0))
            card.show(v.ticket_id, key,
                      f"#{v.number} · {v.provisional}" if v.provisional else f"#{v.number}",
                      v.elapsed_text, f"{v.service_text.zh} {v.channel_text.zh}",
                      UNPAID_BADGE if v.unpaid else "", v.selected,
                      FLASH_RGBA if v.flashing else HEADER_RGBA[v.colour], part_text(k, n), body_h,
                      JOIN.join(b for b, _ in blocks), [line for _, line in blocks if line is not None])

        def _dump_state(self):
            """For automated UI tests and diagnostics: where each ticket is,
            and per card part the lines it shows and whether each is
            wholly inside the card and the window."""
            cards, first = [], {}
            for c in reversed(self.root_w.ids.grid.children):
                if not c.ticket_id:
                    continue
                rect = window_rect(c)
                lines = lines_report(c, c.ids.body)
                for ln in lines:
                    ln["line"] = int(ln["ref"][1:].split("~")[0]) if ln["ref"].startswith("L") else None
                _, k, n = c.key
                entry = {"ticket_id": c.ticket_id, "number": c.number_text.split(" · ")[0],
                         "unpaid": c.unpaid_text.replace("\n", " "),
                         "part": k + 1, "parts": n, "rect": rect, "header": window_rect(c.ids.header),
                         "lines": lines, "part_text": c.part_text,
                         "body": [c.ids.body.width, c.ids.body.texture_size[1]], "room": self.card_box}
                cards.append(entry)
                first.setdefault(c.ticket_id, entry)
            vm = self.ctl.vm
            out = [{"ticket_id": e["ticket_id"], "number": e["number"], "rect": e["rect"], "header": e["header"],
                    "parts": e["parts"], "slots": vm.slots_of(e["ticket_id"]),
                    **dict(zip(("colour", "elapsed_s"), self._drawn_age.get(e["ticket_id"], (None, None)))),
                    } for e in first.values()]
            ids = self.root_w.ids
            write_state(state_file, {"tickets": out, "cards": cards, "banner": self.root_w.banner_text,
                                     "alerts": alert_rows(self.ctl.monitor.alerts),
                                     "alert_strip": self.root_w.alert_text,
                                     "alert_rect": window_rect(ids.alerts),
                                     "grid_rect": window_rect(ids.grid),
                                     "allday": {"text": self.root_w.allday_text, "more": self.root_w.allday_more,
                                                "rect": window_rect(ids.allday),
                                                "rows": [window_rect(w) for w in self.allday_rows if w.parent is not None]},
                                     # as drawn: a ticket that came after the last
                                     # refresh counts once it is on the screen
                                     "open": self._drawn_page[2],
                                     "page": self._drawn_page[0], "pages": self._drawn_page[1],
                                     "measuring": self.ctl.vm.measuring,
                                     "hidden_text": self.root_w.hidden_text,
                                     "recall": [t.ticket_id for t in self.ctl.vm.recall_list()]})

    return KdsApp()
