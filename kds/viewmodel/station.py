"""A station's wall screen: the ticket grid, bumps, recalls, undo,
acknowledgements, the link banner and the ticket cache (docs/protocol.md
3.3-3.5). Plain Python: no Kivy, no MQTT, no I/O."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from kds.viewmodel.allday import AllDayCount, AllDayTally
from kds.viewmodel.shared import (
    ActionRefused,
    Clock,
    ItemView,
    LazyMeasure,
    LinkState,
    Thresholds,
    TicketView,
    Words,
    _check_device,
    _Gone,
    _iso,
    _item_view,
    _PagedGrid,
    _Pager,
    _parse_ts,
    channel_text,
    elapsed_text,
    service_text,
    ticket_problem,
)
from restobox.contract import EXPO_STATION, OrderUpdate, StationEvent, StationTicket, TicketItem, topics

PendingKind = Literal["bump", "item_bump", "recall"]


class _Pending(msgspec.Struct):
    """A cook's action shown before the hub confirmed it, with the event
    that asked for it (kept so it can be sent again after a restart: the
    hub ignores an event id it has already applied)."""

    kind: PendingKind
    line: int | None
    sent_at: float
    event: StationEvent

    def apply(self, state: str, items: tuple[TicketItem, ...]) -> tuple[str, tuple[TicketItem, ...]]:
        if self.kind == "bump":
            return "done", tuple(msgspec.structs.replace(i, state="done") for i in items)
        if self.kind == "item_bump":
            items = tuple(msgspec.structs.replace(i, state="done") if i.line == self.line else i for i in items)
            return ("done" if items and all(i.state == "done" for i in items) else "open"), items
        items = tuple(  # recall: the ticket, or one line, is open again
            msgspec.structs.replace(i, state="open") if self.line is None or i.line == self.line else i
            for i in items
        )
        return "open", items

    def shown_by(self, t: StationTicket) -> bool:
        """Does the hub's copy already show this action's effect?"""
        if self.kind == "bump":
            return t.state == "done"
        if self.kind == "item_bump":
            return t.state == "done" or all(i.state == "done" for i in t.items if i.line == self.line)
        return t.state == "open" and all(
            i.state == "open" for i in t.items if self.line is None or i.line == self.line
        )


@dataclass(slots=True)
class _Entry:
    hub: StationTicket  # the hub's copy with the highest revision
    first_seen: float
    start: float  # the timer's origin: accepted_at, or first_seen if unreadable
    acked: bool = False
    pending: list[_Pending] = field(default_factory=list)
    state: str = ""  # what the screen shows: the hub's copy + pending ("" until computed)
    items: tuple[TicketItem, ...] = ()
    done_at: float | None = None  # when it left the grid (the recall list's order)
    slots: int = 1  # card slots it takes on screen (see StationViewModel.set_measure)
    measured: object = None  # the items ``slots`` was measured for


@dataclass(slots=True)
class _LastBump:
    ticket_id: str
    lines: tuple[int, ...] | None  # the lines it closed; None: the whole ticket
    at: float


class _CachedTicket(msgspec.Struct, forbid_unknown_fields=True):
    ticket: StationTicket
    first_seen: float
    acked: bool = False
    done_at: float | None = None
    pending: list[_Pending] = []


class _Snapshot(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    station: str
    tickets: list[_CachedTicket]
    # tickets that left the screen: ticket_id -> [revision, acked]
    gone: dict[str, tuple[int, bool]] = {}


_SNAPSHOT_FORMAT = "restobox-kds-station/1"


class StationViewModel(_PagedGrid):
    """One station's wall screen: the ticket grid, bumps, recalls, undo,
    all-day counts, acknowledgements, the link banner and the cache."""

    def __init__(
        self,
        station: str,
        device: str,
        *,
        clock: Clock,
        thresholds: Thresholds | None = None,
        page_size: int = 8,
        undo_s: float = 5.0,
        new_highlight_s: float = 10.0,
        confirm_s: float = 30.0,
        recall_size: int = 20,
    ) -> None:
        self.event_topic = topics.station_event(station)  # also checks the id
        if station == EXPO_STATION:
            raise ValueError("the expo screen is ExpoViewModel, not a station")
        self.station = station
        self.device = _check_device(device)
        self.clock = clock
        self.thresholds = thresholds or Thresholds()
        self.undo_s = undo_s
        self.new_highlight_s = new_highlight_s
        self.confirm_s = confirm_s
        if recall_size < 1:
            raise ValueError(f"recall_size must be at least 1, got {recall_size}")
        self.recall_size = recall_size
        self.link = LinkState()
        # Counted, never silent: tickets ignored as repeats or as older copies.
        # ``unusable``: a ticket the hub cannot have made (see ticket_problem).
        # ``held``: a ticket of an order waiting for its payment, which only
        # the expo screen shows (the hub sends it to the station once paid).
        self.counters: dict[str, int] = {"duplicate": 0, "stale": 0, "other_station": 0, "expired": 0,
                                         "unusable": 0, "held": 0}
        #: Set by :meth:`restore` when the cache could not be used.
        self.cache_problem: str | None = None
        self._entries: dict[str, _Entry] = {}
        self._gone = _Gone()  # ticket_id -> (revision, acked)
        self._recall: list[str] = []  # most recent first
        self._order_states: dict[str, str] = {}  # order_id -> state, from order updates
        self._last_bump: _LastBump | None = None
        self._pager = _Pager(page_size)
        self._pager.weight = lambda tid: self._entries[tid].slots
        self._order: list[str] | None = None
        self._pos: dict[str, int] = {}
        self._measure: Callable[[tuple[ItemView, ...], str], int] | None = None
        self._lazy = LazyMeasure(self._measure_pending)
        self._allday = AllDayTally()
        # no pending event expires before this (a bound, not the exact time:
        # _expire looks at every ticket only once it has passed)
        self._next_expiry = float("-inf")

    def set_measure(self, measure: Callable[[tuple[ItemView, ...], str], int] | None) -> None:
        """How many card slots a ticket with these items and note takes (the
        screen knows its cards' size and fonts; None: one each). A ticket
        longer than a card continues on the next slots, so a page holds
        fewer tickets and none is cut short.

        Only the tickets up to the page after the shown one are measured
        now (:meth:`_sync`); the others keep their last count until
        :meth:`measure_more` comes to them: 300 tickets from the cache
        measured at once kept the screen from its first frame for most of
        a second here, several on a Pi."""
        self._measure = measure
        for e in self._entries.values():
            e.measured = None
        self._lazy.reset([tid for tid, e in self._entries.items() if e.state == "open"] if measure else ())
        self._order = None

    def _start_of(self, tid: str) -> float:
        return self._entries[tid].start

    def _measure_pending(self, tid: str) -> bool:
        e = self._entries[tid]
        if e.state != "open":
            self._lazy.done(tid)
            return False
        return self._measure_entry(e)

    def slots_of(self, ticket_id: str) -> int:
        e = self._entries.get(ticket_id)
        return 1 if e is None else e.slots

    # ------------------------------------------------------------ messages
    def on_ticket(self, t: StationTicket) -> bool:
        """Take a ticket from the hub. True when the open grid changed."""
        if t.station != self.station:
            self.counters["other_station"] += 1
            return False
        if ticket_problem(t) is not None:
            self.counters["unusable"] += 1
            return False
        if t.state == "held":
            self.counters["held"] += 1
            return False
        tid = t.ticket_id
        e = self._entries.get(tid)
        known = e.hub.revision if e else self._gone_rev(tid)
        if known is not None and t.revision <= known:
            self.counters["duplicate" if t.revision == known else "stale"] += 1
            if e is not None and t.revision == known and t.payment != e.hub.payment:
                # the hub's copy again (a resync) with the order's payment now:
                # an order/update missed while away
                return self._set_payment(e, t.payment)
            return False
        now = self.clock()
        before = self._shown(e)
        if t.state == "voided":
            if e is None:
                self._gone.put(tid, (t.revision, False))
                return False
            self._remove(e, t.revision)
            return before[0]
        if e is None:
            start = _parse_ts(t.accepted_at)
            gone = self._gone.get(tid)  # e.g. it left the recall list, then someone recalled it
            e = self._entries[tid] = _Entry(hub=t, first_seen=now, start=now if start is None else start,
                                            acked=bool(gone and gone[1]))
            self._gone.pop(tid)
        else:
            old_start = e.hub.accepted_at
            e.hub = t
            if t.accepted_at != old_start:
                start = _parse_ts(t.accepted_at)
                e.start = e.first_seen if start is None else start
                self._order = None
            # Pending actions up to the last one the hub's copy shows are
            # confirmed (the hub applies events in order).
            shown = [k for k, p in enumerate(e.pending) if p.shown_by(t)]
            if shown:
                del e.pending[: shown[-1] + 1]
        self._refresh(e, now)
        return self._grid_changed(before, self._shown(e), tid)

    def on_update(self, u: OrderUpdate) -> bool:
        """Order updates: the order's payment (the "unpaid" badge), and its
        state to refuse a recall the hub would refuse. True when a ticket on
        the shown page changed."""
        changed = False
        for e in self._entries.values():
            if e.hub.order_id == u.order_id:
                self._order_states[u.order_id] = u.state
                if u.payment != e.hub.payment:
                    changed = self._set_payment(e, u.payment) or changed
        return changed

    def on_link(self, connected: bool) -> None:
        """The broker connection went up or down."""
        was = self.link.connected
        self.link.connected = connected
        if connected:
            self.link.ever_connected = True
            if not was:  # events queued while away go out now: their wait starts now
                now = self.clock()
                for e in self._entries.values():
                    for p in e.pending:
                        p.sent_at = now

    def on_hub_presence(self, online: bool) -> None:
        self.link.hub_online = online

    @property
    def banner(self) -> Words | None:
        """None when all is well, else what the cooks must know."""
        return self.link.banner

    # ------------------------------------------------------------- the grid
    def tickets_on_page(self) -> list[TicketView]:
        """The open tickets on the shown page, oldest first."""
        now = self.clock()
        ids = self._sync(now)
        return [self._view(self._entries[tid], now) for tid in self._pager.window(ids)]

    def tickets_after_page(self, n: int) -> list[TicketView]:
        """The first ``n`` open tickets after the shown page, oldest first:
        what a bump brings onto the page next (the screen draws their cards
        ahead, off screen)."""
        now = self.clock()
        ids = self._sync(now)
        shown = self._pager.window(ids)
        if not shown or n <= 0:
            return []
        k = self._pos[shown[-1]] + 1
        return [self._view(self._entries[tid], now) for tid in ids[k:k + n]]

    @property
    def unacked_count(self) -> int:
        """Open tickets not yet drawn, so not acknowledged (on a later page)."""
        return sum(1 for tid in self._sync(self.clock()) if not self._entries[tid].acked)

    @property
    def selected_ticket_id(self) -> str | None:
        return self._selected()

    def select(self, ticket_id: str | None) -> None:
        """Select a ticket by touch (None: no selection)."""
        ids = self._sync(self.clock())
        if ticket_id is not None and ticket_id not in self._pos:
            raise self._refuse_unknown(ticket_id)
        self._pager.select(ids, self._pos, ticket_id)

    def recall_list(self) -> list[TicketView]:
        """Bumped tickets that can be recalled, most recently bumped first."""
        now = self.clock()
        self._sync(now)
        return [self._view(self._entries[tid], now) for tid in self._recall]

    def all_day(self) -> list[AllDayCount]:
        """How many of each item the open tickets still need, most first."""
        self._sync(self.clock())
        return self._allday.counts({tid: e.items for tid, e in self._entries.items() if e.state == "open"})

    # --------------------------------------------------------------- acks
    def drawn(self, ticket_ids: Iterable[str]) -> list[StationEvent]:
        """Call after each redraw with the ids drawn: the "ack" events for
        tickets drawn for the first time (each ticket is acknowledged once)."""
        out = []
        now = self.clock()
        for tid in ticket_ids:
            e = self._entries.get(tid)
            if e is not None and not e.acked:
                e.acked = True
                out.append(self._event("ack", e.hub.order_id, None, now))
        return out

    # ------------------------------------------------------------ actions
    def bump(self, ticket_id: str) -> list[StationEvent]:
        """The whole ticket is done."""
        now = self.clock()
        self._sync(now)
        e = self._open_entry(ticket_id)
        open_lines = tuple(sorted({i.line for i in e.items if i.state == "open"}))
        whole = len(open_lines) == len({i.line for i in e.items})
        ev = self._act(e, "bump", None, now)
        # Undo reopens only what this bump closed, not lines bumped before it.
        self._last_bump = _LastBump(ticket_id, None if whole else open_lines, now)
        return [ev]

    def bump_item(self, ticket_id: str, line: int) -> list[StationEvent]:
        """One line of the ticket is done."""
        now = self.clock()
        self._sync(now)
        e = self._open_entry(ticket_id)
        lines = [i for i in e.items if i.line == line]
        if not lines:
            raise ActionRefused("unknown_line", Words(
                f"{e.hub.number}号单没有第 {line} 行。", f"Order {e.hub.number} has no line {line} here."))
        if all(i.state == "done" for i in lines):
            raise ActionRefused("line_done", Words(
                f"{e.hub.number}号单的这一行已经做好了。", f"That line of order {e.hub.number} is already done."))
        ev = self._act(e, "item_bump", line, now)
        self._last_bump = _LastBump(ticket_id, (line,), now)
        return [ev]

    def bump_selected(self) -> list[StationEvent]:
        tid = self.selected_ticket_id
        if tid is None:
            raise ActionRefused("no_selection", Words("请先选择一张单。", "Select a ticket first."))
        return self.bump(tid)

    def recall(self, ticket_id: str) -> list[StationEvent]:
        """Bring a bumped ticket back to the grid (and select it)."""
        now = self.clock()
        self._sync(now)
        e = self._entries.get(ticket_id)
        if e is None:
            raise self._refuse_unknown(ticket_id)
        if e.state != "done":
            raise ActionRefused("ticket_open", Words(
                f"{e.hub.number}号单还在做，不用召回。", f"Order {e.hub.number} is still open here."))
        if self._order_states.get(e.hub.order_id) in ("completed", "voided"):
            raise ActionRefused("order_closed", Words(
                f"{e.hub.number}号单已经出餐，请先在出餐台召回。",
                f"Order {e.hub.number} was already handed over; recall it at the expo first."))
        if self._last_bump is not None and self._last_bump.ticket_id == ticket_id:
            self._last_bump = None
        out = self._send_recall(e, None, now)
        self._pager.select(self._sync(now), self._pos, ticket_id)
        return out

    def recall_last(self) -> list[StationEvent]:
        """Recall the most recently bumped ticket."""
        self._sync(self.clock())
        if not self._recall:
            raise ActionRefused("nothing_to_recall", Words("没有可以召回的单。", "There is no bumped ticket to recall."))
        return self.recall(self._recall[0])

    def undo(self) -> list[StationEvent]:
        """Undo the last bump or item bump, within ``undo_s`` of it.

        Raises ActionRefused (nothing_to_undo, undo_expired, unknown_ticket).
        """
        now = self.clock()
        self._sync(now)
        last, self._last_bump = self._last_bump, None
        if last is None:
            raise ActionRefused("nothing_to_undo", Words("没有可以撤销的操作。", "Nothing to undo."))
        if now - last.at > self.undo_s:
            n = f"{self.undo_s:g}"
            raise ActionRefused("undo_expired", Words(
                f"只能在出单后 {n} 秒内撤销；请用召回。",
                f"Undo is only possible within {n} s of a bump; use recall instead."))
        e = self._entries.get(last.ticket_id)
        if e is None:
            raise self._refuse_unknown(last.ticket_id)
        if last.lines is None:
            return self._send_recall(e, None, now)
        return [ev for line in last.lines for ev in self._send_recall(e, line, now)]

    def unconfirmed_events(self) -> list[StationEvent]:
        """Actions the hub has not confirmed yet, oldest first. Publish them
        again after :meth:`restore`: the hub ignores an event id it has
        already applied, so this cannot bump anything twice."""
        pending = [p for e in self._entries.values() for p in e.pending]
        return [p.event for p in sorted(pending, key=lambda p: p.sent_at)]

    # -------------------------------------------------------------- cache
    def snapshot(self) -> bytes:
        """The tickets on screen and in the recall list, for the app's cache."""
        return msgspec.json.encode(_Snapshot(
            format=_SNAPSHOT_FORMAT,
            station=self.station,
            tickets=[_CachedTicket(e.hub, e.first_seen, e.acked, e.done_at, list(e.pending))
                     for e in self._entries.values()],
            gone=dict(self._gone.d),
        ))

    @classmethod
    def restore(cls, data: bytes | None, station: str, device: str, **kwargs) -> StationViewModel:
        """A view model showing the cached tickets at once.

        A cache that cannot be read (damaged, another station's, an older
        format) is not used: the screen starts empty and says why in
        ``cache_problem``; the hub's tickets come as usual.
        """
        vm = cls(station, device, **kwargs)
        if not data:
            return vm
        try:
            snap = msgspec.json.decode(data, type=_Snapshot)
        except msgspec.DecodeError as exc:
            vm.cache_problem = f"the ticket cache could not be read ({exc}); starting empty"
            return vm
        if snap.format != _SNAPSHOT_FORMAT:
            vm.cache_problem = f"the ticket cache has format {snap.format!r}, not {_SNAPSHOT_FORMAT!r}; starting empty"
            return vm
        if snap.station != station:
            vm.cache_problem = f"the ticket cache belongs to station {snap.station!r}, not {station!r}; starting empty"
            return vm
        for tid, (rev, acked) in snap.gone.items():
            vm._gone.put(tid, (rev, acked))
        now = vm.clock()
        # Oldest bump first, so the recall list ends most recent first.
        for c in sorted(snap.tickets, key=lambda c: -math.inf if c.done_at is None else c.done_at):
            t = c.ticket
            if t.station != station or t.state == "voided":
                continue
            start = _parse_ts(t.accepted_at)
            e = vm._entries[t.ticket_id] = _Entry(
                hub=t, first_seen=c.first_seen, start=c.first_seen if start is None else start, acked=c.acked,
                pending=list(c.pending))
            vm._gone.pop(t.ticket_id)
            vm._refresh(e, now)
            if c.done_at is not None and e.done_at is not None:
                e.done_at = c.done_at
        return vm

    # ----------------------------------------------------------- internals
    def _set_payment(self, e: _Entry, payment: str) -> bool:
        """The order's payment on the hub's copy (so the cache keeps it too);
        True when the ticket is on the shown page."""
        e.hub = msgspec.structs.replace(e.hub, payment=payment)
        return e.state == "open" and e.hub.ticket_id in self._pager.window(self._sync(self.clock()))

    def _gone_rev(self, tid: str) -> int | None:
        v = self._gone.get(tid)
        return None if v is None else v[0]

    def _event(self, kind: str, order_id: str, line: int | None, now: float) -> StationEvent:
        return StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id, device=self.device,
                            line=line, at=_iso(now))

    def _refuse_unknown(self, tid: str) -> ActionRefused:
        return ActionRefused("unknown_ticket", Words("这张单已经不在屏幕上。", f"Ticket {tid} is not on this screen."))

    def _open_entry(self, tid: str) -> _Entry:
        e = self._entries.get(tid)
        if e is None:
            raise self._refuse_unknown(tid)
        if e.state != "open":
            raise ActionRefused("ticket_done", Words(
                f"{e.hub.number}号单已经出单了。", f"Order {e.hub.number} is already bumped here."))
        return e

    def _act(self, e: _Entry, kind: PendingKind, line: int | None, now: float) -> StationEvent:
        ev = self._event(kind, e.hub.order_id, line, now)
        e.pending.append(_Pending(kind, line, now, ev))
        self._next_expiry = min(self._next_expiry, now + self.confirm_s)
        self._refresh(e, now)
        return ev

    def _send_recall(self, e: _Entry, line: int | None, now: float) -> list[StationEvent]:
        return [self._act(e, "recall", line, now)]

    def _refresh(self, e: _Entry, now: float) -> None:
        """Recompute what the screen shows for one ticket."""
        state, items = e.hub.state, tuple(e.hub.items)
        for p in e.pending:
            state, items = p.apply(state, items)
        was = e.state
        e.items = items
        e.state = state
        # only an open ticket takes room on the pages: a bumped one is not
        # measured (its greyed lines laid out for nothing in the bump's own
        # frame); recalled, it is measured then
        if state == "open" and self._measure_entry(e):
            self._order = None
        tid = e.hub.ticket_id
        if state == "done" and e.done_at is None:
            e.done_at = now
            self._recall.insert(0, tid)
            for old in self._recall[self.recall_size:]:
                self._remove(self._entries[old], None)
        elif state == "open" and e.done_at is not None:
            e.done_at = None
            self._recall.remove(tid)
        if was != state:
            self._order = None

    def _measure_entry(self, e: _Entry) -> bool:
        """Update ``e.slots``; True when it changed."""
        self._lazy.done(e.hub.ticket_id)
        if self._measure is None or e.measured is e.items:
            return False
        e.measured = e.items
        old, e.slots = e.slots, max(1, int(self._measure(tuple(_item_view(i) for i in e.items), e.hub.note)))
        return e.slots != old

    def _remove(self, e: _Entry, revision: int | None) -> None:
        tid = e.hub.ticket_id
        del self._entries[tid]
        self._lazy.done(tid)
        if tid in self._recall:
            self._recall.remove(tid)
        self._gone.put(tid, (e.hub.revision if revision is None else revision, e.acked))
        if self._last_bump is not None and self._last_bump.ticket_id == tid:
            self._last_bump = None
        if not any(x.hub.order_id == e.hub.order_id for x in self._entries.values()):
            self._order_states.pop(e.hub.order_id, None)
        self._order = None

    def _expire(self, now: float) -> None:
        # Only connected time counts: while the link is down our events wait
        # in the client's queue and the hub cannot have answered.
        if not self.link.connected or now <= self._next_expiry:
            return
        nxt = float("inf")
        for e in list(self._entries.values()):
            if not e.pending:
                continue
            if any(now - p.sent_at > self.confirm_s for p in e.pending):
                kept = [p for p in e.pending if now - p.sent_at <= self.confirm_s]
                self.counters["expired"] += len(e.pending) - len(kept)
                e.pending = kept
                self._refresh(e, now)
            for p in e.pending:
                nxt = min(nxt, p.sent_at + self.confirm_s)
        self._next_expiry = nxt

    def _sync(self, now: float) -> list[str]:
        self._expire(now)
        if self._order is None:
            ids = [tid for tid, e in self._entries.items() if e.state == "open"]
            ents = self._entries
            ids.sort(key=lambda tid: (ents[tid].start, ents[tid].hub.number, tid))
            self._order = ids
            self._pos = {tid: k for k, tid in enumerate(ids)}
            self._pager.settle(ids, self._pos)
        self._measure_front()
        return self._order

    @staticmethod
    def _shown(e: _Entry | None) -> tuple[bool, object]:
        if e is None or e.state != "open":
            return False, None
        h = e.hub
        return True, (e.items, h.number, h.note, h.table, h.service, h.channel, h.accepted_at,
                      h.provisional_number, h.payment)

    def _grid_changed(self, before, after, tid: str) -> bool:
        if before[0] != after[0]:
            return True
        if not after[0] or before[1] == after[1]:
            return False
        return tid in self._pager.window(self._sync(self.clock()))

    def _view(self, e: _Entry, now: float) -> TicketView:
        h = e.hub
        elapsed = int(max(0.0, now - e.start))
        is_new = now - e.first_seen < self.new_highlight_s
        colour = self.thresholds.colour(elapsed, is_new)
        return TicketView(
            ticket_id=h.ticket_id, order_id=h.order_id, number=h.number, station=h.station,
            channel=h.channel, channel_text=channel_text(h.channel),
            service=h.service, table=h.table, service_text=service_text(h.service, h.table),
            items=tuple(_item_view(i) for i in e.items), note=h.note,
            allergens=tuple(sorted({a for i in e.items for a in i.allergens})),
            done=e.state == "done", elapsed_s=elapsed, elapsed_text=elapsed_text(elapsed),
            colour=colour, flashing=self.thresholds.flashing(colour, now),
            selected=h.ticket_id == self._pager.selected, is_new=is_new, provisional=h.provisional_number,
            unpaid=h.payment == "unpaid",
        )

