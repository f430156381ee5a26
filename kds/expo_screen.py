"""The expo screen (Kivy): every open order with each station's progress; the
expo hands ready orders over.

    python -m kds.expo_screen --config /etc/restobox/kds.toml     ([kds] mode = "expo")

All state and logic live in :class:`kds.viewmodel.ExpoViewModel`; the bus
lives in :class:`ExpoController` (no Kivy); the layout in ``expo.kv``. MQTT
callbacks are posted to the UI thread, redraws are coalesced with a Clock
trigger and the timers tick once a second.

The expo's two actions are events on ``restobox/v1/station/expo/event``:
``bump`` completes a ready order (a tap on its card, or the bump bar's bump
key on the selected card), ``recall`` brings back the last completed one.

This module also holds the pieces the pickup board (``kds.board_screen``)
shares: :func:`configure_kivy`, :func:`register_cjk_font`, :func:`write_state`.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from typing import Callable

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")

from kds.health import ScreenMonitor, alert_rows, alert_strip, guarded, ignored, not_from_topic  # noqa: E402
from kds.cardkit import block, esc  # noqa: E402
from kds.common import load_kv, measure_rest, register_cjk_font, run_screen_clock, screen_settings, try_screenshot, window_rect, write_state  # noqa: E402
from kds.viewmodel import ActionRefused, ExpoRow, ExpoViewModel, HeldRow, StationProgress, Thresholds, ticket_problem  # noqa: E402
from restobox import contract  # noqa: E402
from restobox.bus import Bus, Incoming, bus_from_config, decode_or_none, refused  # noqa: E402
from restobox.config import Config  # noqa: E402
from restobox.contract import EXPO_STATION, MenuMessage, OrderUpdate, Presence, StationTicket, Words, topics  # noqa: E402

log = logging.getLogger("restobox.kds.expo")

# Every station's tickets (the expo ACL reads restobox/v1/station/+/ticket).
# contract.topics has no builder for this filter yet; it is used once it has one.
STATION_TICKET_ALL = topics.STATION_TICKET_ALL
NOTICE_S = 4.0
NAME_MAX = 40
"""Characters of a station's name shown on a card."""
COMPLETED_SHOWN = 10


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# =========================================================================
# Glue: bus <-> view model (no Kivy)
# =========================================================================


class ExpoController:
    """The expo screen's bus, without Kivy.

    ``post`` runs a function on the UI thread; ``changed`` asks for a
    (coalesced) redraw. paho's callbacks only decode and post, so the view
    model is touched from one thread only.
    """

    def __init__(self, cfg: Config, *, post: Callable[[Callable[[], None]], None],
                 changed: Callable[[], None], bus: Bus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        #: messages ignored at the boundary, by reason code (never silent);
        #: ``unusable``: decoded, but not what the hub makes, or applying it raised
        self.rejected: dict[str, int] = {}
        self.post = guarded(post, self.rejected, log, on_refusal=lambda: self.monitor.refused_soon())
        self.changed = changed
        self.clock = clock
        k = cfg.kds
        self.vm = ExpoViewModel(
            cfg.device.id, clock=clock,
            thresholds=Thresholds(warn_s=k.warn_s, late_s=k.late_s, flash=k.flash_late),
            page_size=k.columns * k.rows,
        )
        self.bus = bus or bus_from_config(cfg)
        #: station id -> its name from the hub's menu (retained); the id until it comes
        self.station_names: dict[str, Words] = {}
        self.notice: Words | None = None
        self.notice_until = 0.0
        #: what this screen sent, by event kind, for its health
        self.sent: dict[str, int] = {}
        self.monitor = ScreenMonitor(cfg, self.bus, post=self.post, changed=changed, figures=self._figures)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.bus.on_connection_change = lambda up, why: self.post(lambda: self._link(up))
        self.bus.subscribe(STATION_TICKET_ALL, self._on_ticket)
        self.bus.subscribe(topics.ORDER_UPDATE, self._on_update)
        self.bus.subscribe(topics.presence("hub"), self._on_hub_presence)
        self.bus.subscribe(topics.MENU, self._on_menu)
        self.monitor.subscribe()
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
        vm = self.vm
        rows = vm.rows_on_page()
        counters = {"open": vm.open_count, "ready_on_page": sum(1 for r in rows if r.ready),
                    **{f"sent_{k}": n for k, n in self.sent.items()},
                    **ignored(vm.counters, self.rejected)}
        details = {"page": vm.page + 1, "pages": vm.pages, "hub_online": vm.link.hub_online}
        return counters, details

    # ------------------------------------------------------------- incoming
    def _reject(self, m: Incoming, reason: str, detail: str) -> None:
        refused(m.topic, reason, detail, self.rejected, logger=log)
        self.monitor.refused_soon()

    def _decode(self, m: Incoming, type_, **kw):
        msg = decode_or_none(m, type_, self.rejected, **kw)
        if msg is None:
            self.monitor.refused_soon()
        return msg

    def _on_ticket(self, m: Incoming) -> None:
        t = self._decode(m, StationTicket)
        if t is None:
            return
        parsed = contract.parse_topic(m.topic)
        # a held order's tickets come on the expo's own topic, each naming
        # the station that will make it once the order is paid
        held_here = parsed is not None and parsed[1] == EXPO_STATION and t.state == "held"
        if parsed is None or (parsed[1] != t.station and not held_here):
            self._reject(m, "bad_topic", f"a {t.station[:40]!r} ticket on another station's topic")
            return
        problem = ticket_problem(t)
        if problem is not None:
            self._reject(m, "unusable", problem)
            return
        self.post(lambda: self._apply(lambda: self.vm.on_ticket(t)))

    def _on_update(self, m: Incoming) -> None:
        u = self._decode(m, OrderUpdate)
        if u is not None:
            self.post(lambda: self._apply(lambda: self.vm.on_update(u)))

    def _on_hub_presence(self, m: Incoming) -> None:
        p = self._decode(m, Presence)
        if p is None:
            return
        problem = not_from_topic(m.topic, p.device)
        if problem is not None:
            self._reject(m, "unusable", problem)
            return
        self.post(lambda: self._apply(lambda: self.vm.on_hub_presence(p.state == "online")))

    def _on_menu(self, m: Incoming) -> None:
        mm = self._decode(m, MenuMessage, max_bytes=contract.MAX_MENU_BYTES)
        if mm is not None:
            try:  # a menu the hub would not use names nothing here either
                mm.menu.check()
            except Exception as exc:
                self._reject(m, "bad_menu", repr(exc))
                return
            names = {s.id: Words(s.name.zh[:NAME_MAX], s.name.en[:NAME_MAX]) for s in mm.menu.stations}
            self.post(lambda: self._apply(lambda: self.station_names.update(names)))

    def _link(self, up: bool) -> None:
        self.vm.on_link(up)
        if up:
            self.monitor.publish_soon()
            # every open ticket of every station again (fills in what was missed)
            self.bus.publish(topics.station_sync(EXPO_STATION), contract.encode(
                contract.SyncRequest(device=self.cfg.device.id, at=_iso_now())))
        self.changed()

    def _apply(self, fn: Callable[[], object]) -> None:
        if fn() is not False:  # the view models answer False for "nothing to redraw"
            self.changed()

    # -------------------------------------------------------------- actions
    def act(self, fn: Callable[[], list]) -> bool:
        """Run a view-model action; publish its events; show a refusal."""
        try:
            events = fn()
        except ActionRefused as r:
            self.notice, self.notice_until = r.words, self.clock() + NOTICE_S
            self.changed()
            return False
        for ev in events:
            self.sent[ev.kind] = self.sent.get(ev.kind, 0) + 1
            self.bus.publish(self.vm.event_topic, contract.encode(ev))
        self.notice = None
        self.changed()
        return True

    def complete(self, order_id: str) -> bool:
        """The diner has the food: complete a ready order."""
        return self.act(lambda: self.vm.bump(order_id))

    def recall_last(self) -> bool:
        return self.act(self.vm.recall_last)

    def perform(self, action: str) -> bool:
        """A bump bar action (kds.viewmodel.BUMP_BAR_ACTIONS)."""
        return self.act(lambda: self.vm.perform(action))

    def page(self, delta: int) -> None:
        (self.vm.next_page if delta > 0 else self.vm.prev_page)()
        self.changed()

    def current_notice(self) -> Words | None:
        if self.notice and self.clock() < self.notice_until:
            return self.notice
        return None

    def station_name(self, station: str) -> Words:
        return self.station_names.get(station) or Words(station, station.replace("-", " ").title())


# =========================================================================
# What a card says (plain functions: the .kv file only lays them out)
# =========================================================================


def progress_text(p: StationProgress) -> str:
    """``"2/3"``; ``"✓ 3/3"`` when the station is done."""
    if p.total_items:
        count = f"{p.done_items}/{p.total_items}"
        return f"✓ {count}" if p.state == "done" else count
    return "✓ 完成" if p.state == "done" else "…"


def ack_text(p: StationProgress) -> str:
    # Acks reach the expo only with the hub's next order update (the first
    # bump), so "not yet" is a neutral word here, not an alarm; the hub's
    # fallback print and alert cover a screen that never draws a ticket.
    if p.state == "done":
        return "✓ 已出单 bumped"
    return "✓ 已接单 acked" if p.acked else "○ 待接单 not acked yet"


def items_markup(p: StationProgress) -> str:
    """One line per item; done items greyed and struck through."""
    lines = []
    for i in p.items:
        text = f"{i.qty}× {esc(i.name_zh)}  [size=14sp]{esc(i.name_en)}[/size]"
        if i.part_of:
            text += "  [size=14sp](套餐)[/size]"
        lines.append(f"[color=#9aa0a6][s]{text}[/s][/color]" if i.done else text)
    return "\n".join(lines)


def status_text(row: ExpoRow) -> str:
    """The card's footer."""
    if row.ready:
        return "✓ 可取餐  READY"
    done = sum(1 for p in row.stations if p.state == "done")
    return f"制作中 Preparing  ·  {done}/{len(row.stations)}"


UNPAID_BADGE = "未付\nUNPAID"
HELD_SHOWN = 8


def held_text(rows: list[HeldRow]) -> str:
    """The held list beside the grid: each order waiting for its payment,
    with its table or channel, what is due and how long it has waited."""
    lines = []
    for h in rows[:HELD_SHOWN]:
        where = f"{h.table}号桌" if h.table else h.channel_text.zh
        due = f" ¥{h.total // 100}.{h.total % 100:02d}" if h.total else ""
        lines.append(f"[b]#{h.number}[/b] [size=15sp]{esc(where)}{due} · {h.waiting_text}[/size]")
    if len(rows) > HELD_SHOWN:
        lines.append(f"[size=15sp]+{len(rows) - HELD_SHOWN} 单 more[/size]")
    return "\n".join(lines)


def service_line(row: ExpoRow) -> str:
    """``"12号桌 · Table 12"`` (a table means dine in), ``"外带 Takeaway"``."""
    if row.table:
        return f"{row.table}号桌 · Table {row.table}"
    return f"{row.service_text.zh} {row.service_text.en}"


def station_rows(p: StationProgress, name: Words) -> list[str]:
    """A station's rows on an expo card, as markup: its name, progress and
    acknowledgement, then one row per item (done ones greyed, struck)."""
    done = p.state == "done"
    tone = "#1b7a3a" if done else ("#c77700" if p.done_items else "#1c1f24")
    ack = "#1b7a3a" if (done or p.acked) else "#666b73"
    rows = [f"[b]{esc(name.zh)}[/b] [size=14sp][color=#5f6368]{esc(name.en)}[/color][/size] "
            f"[b][color={tone}]{progress_text(p)}[/color][/b] "
            f"[size=14sp][color={ack}]{ack_text(p)}[/color][/size]"]
    for i in p.items:
        text = f"{i.qty}× {esc(i.name_zh)}  [size=14sp]{esc(i.name_en)}[/size]"
        if i.part_of:
            text += "  [size=14sp](套餐)[/size]"
        mark = f"[anchor=I:{p.station}:{i.line}]"  # where the line is drawn, for the state dump
        rows.append(f"[size=18sp]\n{mark}[color=#9aa0a6][s]{text}[/s][/color][/size]" if i.done
                    else f"[size=18sp]\n{mark}{text}[/size]")
    return rows


def order_blocks(stations, note: str, names) -> list[tuple[str, str, list[str], bool, str]]:
    """(markup, key, rows, done, continuation row) of each block of an expo
    card: the order's note, then one block per station (ref ``S:<station>``)."""
    out = []
    if note:
        rows = [f"[size=17sp][b][color=#1557b0]备注 Note: {esc(note)}[/color][/b][/size]"]
        out.append((block("note", rows), "note", rows, False, ""))
    for p in stations:
        name = names(p.station)
        rows = station_rows(p, name)
        cont = f"[b]{esc(name.zh)}[/b] [size=15sp]{esc(name.en)} · 续 cont'd[/size]"
        out.append((block(f"S:{p.station}", rows), p.station, rows, False, cont))
    return out


# =========================================================================
# Kivy
# =========================================================================


def build_expo_app(cfg: Config):
    """The expo screen as a Kivy App (call ``.run()``). Configure Kivy first
    (:func:`configure_kivy`), as ``kds.app.run`` does."""
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, OptionProperty, StringProperty
    from kivy.core.window import Window
    from kivy.metrics import dp, sp
    from kivy.uix.boxlayout import BoxLayout

    from kds.cardkit import (JOIN, STRIP_DP, Measure, anchors_report, body_height, cut, lines_report, part_text, place,
                             register_lines_label, resize_cards)

    register_cjk_font()
    Window.clearcolor = (0.05, 0.06, 0.07, 1)  # the backdrop: no rectangle drawn over the whole screen

    class ExpoCard(BoxLayout):
        app = ObjectProperty(None)
        order_id = StringProperty("")
        number_text = StringProperty("")
        timer_text = StringProperty("")
        service_text = StringProperty("")
        channel_text = StringProperty("")
        status_text = StringProperty("")
        unpaid_text = StringProperty("")  # the badge: "" when the order is paid
        part_text = StringProperty("")
        body_text = StringProperty("")
        key = ObjectProperty(None, allownone=True)  # (order_id, part, parts) shown
        body_h = NumericProperty(0)
        colour = OptionProperty("normal", options=["new", "normal", "warning", "late"])
        flashing = BooleanProperty(False)
        ready = BooleanProperty(False)
        selected = BooleanProperty(False)

        def on_touch_down(self, touch):
            if self.order_id and self.collide_point(*touch.pos):
                touch.ud["expo_card"] = self.order_id
                return True
            return super().on_touch_down(touch)

        def on_touch_up(self, touch):
            oid = touch.ud.get("expo_card")
            if oid and oid == self.order_id and self.collide_point(*touch.pos):
                self.app.tap(oid)
                return True
            return super().on_touch_up(touch)

    class ExpoRoot(BoxLayout):
        app = ObjectProperty(None)
        title_text = StringProperty("出餐台  Expo")
        count_text = StringProperty("")
        clock_text = StringProperty("")
        banner_text = StringProperty("")
        notice_text = StringProperty("")
        hidden_text = StringProperty("")
        completed_text = StringProperty("")
        held_text = StringProperty("")  # orders waiting for their payment, apart from the grid
        recall_hint = StringProperty("")
        alert_text = StringProperty("")
        alert_severity = StringProperty("")
        columns = NumericProperty(5)
        rows = NumericProperty(2)

    register_lines_label()  # before expo.kv, which draws with it
    load_kv("alerts.kv")
    load_kv("expo.kv")
    bump_keys, keynames, state_file, shot_dir = screen_settings(cfg)

    class ExpoApp(App):
        title = "Restobox — 出餐台 Expo"

        def build(self):
            self._redraw = Clock.create_trigger(self.refresh, 0)
            self.ctl = ExpoController(cfg, post=lambda fn: Clock.schedule_once(lambda dt: fn()),
                                      changed=self._redraw)
            self.root_w = ExpoRoot(app=self, columns=cfg.kds.columns, rows=cfg.kds.rows)
            keys = bump_keys.keys_for("recall")
            self.root_w.recall_hint = f"{keys[0].upper()} = 召回 Recall" if keys else ""
            # the state dump reads the cards once their text and layout are
            # updated (Kivy does both just before the next frame)
            self._dump_soon = Clock.create_trigger(lambda dt: self._dump_state(), 0)
            self.measure_body = Measure(sp(18))
            self.card_box = None  # (text width, body height) of a card, once laid out
            self._names = None  # the station names the cards were measured with
            self._measuring = None  # the per-frame measuring of the orders after the next page
            self._drawn = ([], [], (0, 1, 0), [])
            self.cards = []
            self.slots = cfg.kds.columns * cfg.kds.rows
            for _ in range(self.slots):
                c = ExpoCard(app=self, opacity=0, disabled=True)
                self.cards.append(c)
                self.root_w.ids.grid.add_widget(c)
            self.root_w.ids.grid.bind(size=self._grid_sized)
            run_screen_clock(self, shot_dir / "kds-expo.png")
            self.ctl.start()
            self.refresh()
            return self.root_w

        def load_kv(self, filename=None):
            return True  # expo.kv is loaded above; App would load it a second time by its name

        def on_start(self):
            self._redraw()  # once laid out, so the state file has real positions

        def on_stop(self):
            self.ctl.stop()

        # ------------------------------------------------------ actions
        def tap(self, order_id: str) -> None:
            self.ctl.complete(order_id)

        def recall(self) -> None:
            self.ctl.recall_last()

        def page(self, delta: int) -> None:
            self.ctl.page(delta)

        def _on_key(self, window, key, scancode, codepoint, modifiers):
            name = keynames.get(key, codepoint or "")
            if name == "f12":
                self.screenshot()
                return True
            action = bump_keys.action_for(name)
            if action is None:
                return False
            self.ctl.perform(action)
            return True

        def screenshot(self, path: str | None = None) -> str | None:
            return try_screenshot(path or shot_dir / f"kds-expo-{int(time.time())}.png")

        # ---------------------------------------------------- card parts
        def _grid_sized(self, grid, size):
            """Once the grid has its size: as many cards as fit at a size
            staff can read, and how tall a card's body is, so each order
            takes as many cards as its lines need."""
            # card padding 4 each side, header 80, footer 40 (72 once ready: see split), body padding 12
            if resize_cards(self, grid, cfg.kds.columns, cfg.kds.rows,
                            dp(8) + dp(80) + dp(40) + dp(12), dp(8) + dp(20)):
                self._names = None
                self.refresh()

        def split(self, stations, note):
            """An order's blocks cut into card parts: [[(markup, key), ...], ...]."""
            blocks = order_blocks(stations, note, self.ctl.station_name)
            if self.card_box is None:
                return [[(m, key) for m, key, *_ in blocks]]
            width, height = self.card_box
            if stations and all(p.state == "done" for p in stations):
                height -= dp(72) - dp(40)  # a ready card's footer is taller
            return cut(blocks, lambda m: self.measure_body(m, width), height)

        # ------------------------------------------------------- drawing
        def refresh(self, *_):
            vm = self.ctl.vm
            names = tuple(sorted(self.ctl.station_names.items()))
            if self.card_box is not None and names != self._names:  # names are on the cards: measure again
                self._names = names
                vm.set_measure(lambda stations, note: len(self.split(stations, note)))
                measure_rest(self, self._dump_soon if state_file else None)
            rows = vm.rows_on_page()
            r = self.root_w
            r.clock_text = time.strftime("%H:%M")
            total = vm.open_count
            r.count_text = f"{total} 单进行中 open"
            banner = vm.banner
            r.banner_text = f"{banner.zh}    {banner.en}" if banner else ""
            notice = self.ctl.current_notice()
            r.notice_text = f"{notice.zh}\n{notice.en}" if notice else ""
            r.alert_text, r.alert_severity = alert_strip(self.ctl.monitor.alerts)
            r.hidden_text = (f"第 {vm.page + 1}/{vm.pages} 页 · 另有 {vm.hidden_count} 单\n"
                             f"page {vm.page + 1}/{vm.pages} · {vm.hidden_count} more"
                             if vm.hidden_count else "")
            shown = {oid: (first, n) for oid, first, n in vm.page_parts()}
            cut_short = [oid for oid, first, n in vm.page_parts() if first + n < vm.slots_of(oid)]
            if cut_short:  # an order longer than the page goes on over the next
                number = next((row.number for row in rows if row.order_id == cut_short[-1]), "")
                r.hidden_text = (f"#{number} 续下页 cont'd ▶\npage {vm.page + 1}/{vm.pages}")
            done = vm.completed_numbers()[:COMPLETED_SHOWN]
            r.completed_text = "\n".join(
                f"[b]#{n}[/b]" if k == 0 else f"[color=#9aa0a6]#{n}[/color]" for k, n in enumerate(done))
            held = vm.held_rows()
            r.held_text = held_text(held)
            parts = []
            for row in rows:
                split = self.split(row.stations, row.note)
                first, n = shown.get(row.order_id, (0, len(split)))
                for k in range(first, min(len(split), first + n)):
                    parts.append(((row.order_id, k, len(split)), row, split[k]))
            place(r.ids.grid, self.cards, parts, self.slots, self._fill)
            self._drawn = (rows, done, (vm.page, vm.pages, vm.hidden_count), held)
            if state_file:
                self._dump_soon()

        def _fill(self, card, key, row: ExpoRow | None = None, blocks=None) -> None:
            """Update one card part; only properties that changed redraw."""
            if row is None:
                if card.key is not None:
                    card.order_id, card.key, card.opacity, card.disabled = "", None, 0, True
                    card.body_text = card.part_text = card.unpaid_text = ""
                    card.body_h = 0
                return
            card.order_id, card.key, card.opacity, card.disabled = row.order_id, key, 1, False
            card.number_text = f"#{row.number}"
            card.timer_text = row.elapsed_text
            card.service_text = service_line(row)
            card.channel_text = f"{row.channel_text.zh} {row.channel_text.en}"
            card.colour, card.flashing = row.colour, row.flashing
            card.ready, card.selected = row.ready, row.selected
            card.status_text = status_text(row)
            card.unpaid_text = UNPAID_BADGE if row.unpaid else ""
            _, k, n = key
            card.part_text = part_text(k, n)
            if self.card_box is not None:
                width, height = self.card_box
                if row.ready:
                    height -= dp(72) - dp(40)
                card.body_h = body_height([self.measure_body(b, width) for b, _ in blocks], dp(12),
                                          height + dp(12) - (dp(STRIP_DP) if n > 1 else 0))
            else:
                card.body_h = 0
            card.body_text = JOIN.join(b for b, _ in blocks)

        def _dump_state(self) -> None:
            rows, completed, (page, pages, hidden), held = self._drawn
            first, cards = {}, []
            for c in reversed(self.root_w.ids.grid.children):
                if not c.order_id:
                    continue
                _, k, n = c.key
                entry = {"order_id": c.order_id, "number": c.number_text, "part": k + 1, "parts": n,
                         "part_text": c.part_text, "rect": window_rect(c), "lines": lines_report(c, c.ids.body),
                         "items": anchors_report(c, c.ids.body)}
                cards.append(entry)
                first.setdefault(c.order_id, (c, entry))
            orders = []
            for row in rows:
                if row.order_id not in first:
                    continue
                card, entry = first[row.order_id]
                stations = []
                for p in row.stations:
                    name = self.ctl.station_name(p.station)
                    stations.append({"station": p.station, "state": p.state, "done": p.done_items,
                                     "total": p.total_items, "acked": p.acked,
                                     "text": f"{name.zh} {name.en} {progress_text(p)} {ack_text(p)}"})
                orders.append({"order_id": row.order_id, "number": row.number, "ready": row.ready,
                               "selected": row.selected, "colour": row.colour, "flashing": row.flashing,
                               "elapsed_s": row.elapsed_s,
                               "unpaid": card.unpaid_text.replace("\n", " "),
                               "status": card.status_text, "parts": entry["parts"],
                               "stations": stations, "rect": entry["rect"]})
            ids = self.root_w.ids
            write_state(state_file, {
                "screen": "expo", "orders": orders, "cards": cards, "completed": completed,
                "held": [{"order_id": h.order_id, "number": h.number} for h in held],
                "held_text": ids.held.text, "held_rect": window_rect(ids.held),
                "banner": self.root_w.banner_text, "notice": self.root_w.notice_text,
                "alerts": alert_rows(self.ctl.monitor.alerts), "alert_strip": self.root_w.alert_text,
                "alert_rect": window_rect(ids.alerts), "grid_rect": window_rect(ids.grid),
                "hidden": hidden, "page": page, "pages": pages, "hidden_text": self.root_w.hidden_text,
                "measuring": self.ctl.vm.measuring,
                "buttons": {k: window_rect(ids[k]) for k in ("prev_page", "recall", "next_page")},
            })

    return ExpoApp()


# =========================================================================
# Entry point
# =========================================================================
