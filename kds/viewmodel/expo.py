"""The expo screen (the pass): every order with each station's progress;
the expo bump completes a ready order, recall brings a completed one back.
Plain Python: no Kivy, no MQTT, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from kds.viewmodel.shared import (
    ActionRefused,
    Clock,
    ItemView,
    LazyMeasure,
    LinkState,
    TicketColour,
    Thresholds,
    Words,
    _check_device,
    _Gone,
    _iso,
    _item_view,
    _newest_mark,
    _PagedGrid,
    _Pager,
    _parse_ts,
    channel_text,
    elapsed_text,
    service_text,
    ticket_problem,
)
from restobox.contract import EXPO_STATION, OrderUpdate, StationEvent, StationTicket, topics
from restobox.orders import OPEN_STATES

@dataclass(frozen=True, slots=True)
class StationProgress:
    station: str
    state: Literal["open", "done"]
    done_items: int
    total_items: int  # 0 when only the order update told us about the station
    acked: bool
    items: tuple[ItemView, ...]


@dataclass(frozen=True, slots=True)
class ExpoRow:
    order_id: str
    number: int
    channel: str
    channel_text: Words
    service: str
    table: str | None
    service_text: Words
    note: str
    stations: tuple[StationProgress, ...]
    ready: bool  # every station done: the expo may bump it
    elapsed_s: int
    elapsed_text: str
    colour: TicketColour
    flashing: bool
    selected: bool
    is_new: bool
    unpaid: bool = False  # the order's payment state is "unpaid" (a "未付 UNPAID" badge)


@dataclass(frozen=True, slots=True)
class HeldRow:
    """An order waiting for its payment before the kitchen gets it
    ([hub.till] hold_unpaid): shown apart on the expo screen, not cooked."""

    order_id: str
    number: int
    channel: str
    channel_text: Words
    table: str | None
    total: int  # fen; 0 until an order update says
    waiting_s: int
    waiting_text: str


@dataclass(slots=True)
class _ExpoPending:
    target: Literal["completed", "ready"]
    sent_at: float


@dataclass(slots=True)
class _ExpoOrder:
    order_id: str
    number: int
    first_seen: float
    start: float
    channel: str = ""
    service: str = ""
    table: str | None = None
    note: str = ""
    tickets: dict[str, StationTicket] = field(default_factory=dict)  # station -> highest revision
    update: OrderUpdate | None = None
    update_ts: float | None = None
    pending: _ExpoPending | None = None
    state: str = "accepted"  # what the screen shows: the hub's state + pending ("held": waits for payment)
    payment: str = "unpaid"  # the latest of the tickets' and the updates' payment
    total: int = 0
    completed_at: float | None = None
    slots: int = 1  # card slots it takes on screen (see ExpoViewModel.set_measure)
    measured: object = None  # the progress ``slots`` was measured for


class ExpoViewModel(_PagedGrid):
    """The pass: every order with each station's progress; the expo bump
    completes a ready order, recall brings a completed one back."""

    def __init__(
        self,
        device: str,
        *,
        clock: Clock,
        thresholds: Thresholds | None = None,
        page_size: int = 8,
        new_highlight_s: float = 10.0,
        confirm_s: float = 30.0,
        completed_size: int = 20,
    ) -> None:
        self.event_topic = topics.station_event(EXPO_STATION)
        self.device = _check_device(device)
        self.clock = clock
        self.thresholds = thresholds or Thresholds()
        self.new_highlight_s = new_highlight_s
        self.confirm_s = confirm_s
        self.completed_size = completed_size
        self.link = LinkState()
        self.counters: dict[str, int] = {"duplicate": 0, "stale": 0, "expired": 0, "unusable": 0}
        self._orders: dict[str, _ExpoOrder] = {}
        self._revs: dict[str, int] = {}  # ticket_id -> highest revision, for orders on screen
        self._gone_orders = _Gone()  # order_id -> "voided" | "evicted"
        self._gone_tickets = _Gone()  # ticket_id -> revision
        self._completed: list[str] = []  # most recent first
        self._pager = _Pager(page_size)
        self._pager.weight = lambda oid: self._orders[oid].slots
        self._measure: Callable[[tuple[StationProgress, ...], str], int] | None = None
        self._lazy = LazyMeasure(self._measure_pending)
        self._order: list[str] | None = None
        self._pos: dict[str, int] = {}

    def set_measure(self, measure: Callable[[tuple[StationProgress, ...], str], int] | None) -> None:
        """How many card slots an order with this progress and note takes (the
        screen knows its cards; None: one each). An order longer than a card
        continues on the next slots. Those up to the page after the shown
        one are measured when the pages are laid out, the rest by
        :meth:`measure_more` (see shared.LazyMeasure)."""
        self._measure = measure
        for o in self._orders.values():
            o.measured = None
        self._lazy.reset([oid for oid, o in self._orders.items() if o.state in OPEN_STATES] if measure else ())
        self._order = None

    def _start_of(self, oid: str) -> float:
        return self._orders[oid].start

    def _measure_pending(self, oid: str) -> bool:
        o = self._orders[oid]
        if o.state not in OPEN_STATES:
            self._lazy.done(oid)
            return False
        return self._measure_order(o)

    def slots_of(self, order_id: str) -> int:
        o = self._orders.get(order_id)
        return 1 if o is None else o.slots

    # ------------------------------------------------------------ messages
    def on_ticket(self, t: StationTicket) -> bool:
        """A ticket of any station. True when the grid changed."""
        if ticket_problem(t) is not None:
            self.counters["unusable"] += 1
            return False
        known = self._revs.get(t.ticket_id, self._gone_tickets.get(t.ticket_id))
        if known is not None and t.revision <= known:
            self.counters["duplicate" if t.revision == known else "stale"] += 1
            o = self._orders.get(t.order_id)
            if o is not None and t.revision == known and t.payment != o.payment:
                # the hub's copy again (a resync) with the order's payment now
                before = self._shown(o)
                o.payment = t.payment
                return before != self._shown(o)
            return False
        if self._gone_orders.get(t.order_id) == "voided":
            self.counters["stale"] += 1
            return False
        now = self.clock()
        o = self._orders.get(t.order_id)
        before = self._shown(o)
        if t.state == "voided":  # the hub voids whole orders
            if o is not None:
                self._drop(o, voided=True)
            self._gone_orders.put(t.order_id, "voided")
            self._gone_tickets.put(t.ticket_id, t.revision)
            return before is not None
        self._revs[t.ticket_id] = t.revision
        if o is None:
            o = self._new_order(t.order_id, t.number, now)
        start = _parse_ts(t.accepted_at)
        if start is not None and start != o.start:
            o.start = start
            self._order = None
        o.number, o.channel, o.service, o.table, o.note = t.number, t.channel, t.service, t.table, t.note
        o.tickets[t.station] = t
        o.payment = t.payment
        self._refresh(o, now)
        return before != self._shown(o)

    def on_update(self, u: OrderUpdate) -> bool:
        """An order update. True when the grid changed."""
        if self._gone_orders.get(u.order_id) == "voided":
            self.counters["stale"] += 1
            return False
        now = self.clock()
        o = self._orders.get(u.order_id)
        ts = _parse_ts(u.at)
        if o is not None and o.update_ts is not None and ts is not None and ts < o.update_ts:
            self.counters["stale"] += 1  # the latest update wins; this one is older
            return False
        before = self._shown(o)
        if u.state == "voided":
            if o is not None:
                self._drop(o, voided=True)
            self._gone_orders.put(u.order_id, "voided")
            return before is not None
        if o is None:
            o = self._new_order(u.order_id, u.number, now)
        o.update, o.update_ts = u, _newest_mark(ts, now)
        o.payment = u.payment
        if u.total:
            o.total = u.total
        if u.channel:  # the hub's order updates say where the order came from
            o.channel, o.table = u.channel, u.table
        if o.pending is not None and o.pending.target == u.state:
            o.pending = None
        self._refresh(o, now)
        return before != self._shown(o)

    def on_link(self, connected: bool) -> None:
        was = self.link.connected
        self.link.connected = connected
        if connected:
            self.link.ever_connected = True
            if not was:
                now = self.clock()
                for o in self._orders.values():
                    if o.pending is not None:
                        o.pending.sent_at = now

    def on_hub_presence(self, online: bool) -> None:
        self.link.hub_online = online

    @property
    def banner(self) -> Words | None:
        return self.link.banner

    # ------------------------------------------------------------- the grid
    def rows_on_page(self) -> list[ExpoRow]:
        """Open orders on the shown page, oldest first."""
        now = self.clock()
        ids = self._sync(now)
        return [self._row(self._orders[oid], now) for oid in self._pager.window(ids)]

    def row(self, order_id: str) -> ExpoRow | None:
        o = self._orders.get(order_id)
        return None if o is None else self._row(o, self.clock())

    @property
    def selected_order_id(self) -> str | None:
        return self._selected()

    def held_rows(self) -> list[HeldRow]:
        """Orders waiting for their payment, the longest waiting first: not
        on the grid (nobody cooks them), shown apart until paid."""
        now = self.clock()
        held = sorted((o for o in self._orders.values() if o.state == "held"),
                      key=lambda o: (o.start, o.number, o.order_id))
        out = []
        for o in held:
            waiting = int(max(0.0, now - o.start))
            out.append(HeldRow(order_id=o.order_id, number=o.number, channel=o.channel,
                               channel_text=channel_text(o.channel), table=o.table, total=o.total,
                               waiting_s=waiting, waiting_text=elapsed_text(waiting)))
        return out

    def completed_numbers(self) -> list[int]:
        """Recently completed orders, most recent first (the recall list)."""
        self._sync(self.clock())
        return [self._orders[oid].number for oid in self._completed]

    # ------------------------------------------------------------ actions
    def bump(self, order_id: str) -> list[StationEvent]:
        """Hand a ready order over: the expo "bump" completes it."""
        now = self.clock()
        self._sync(now)
        o = self._orders.get(order_id)
        if o is None or o.state not in OPEN_STATES:
            raise ActionRefused("unknown_order", Words("这个订单不在出餐台上。", "That order is not on the expo screen."))
        progress = self._progress(o)
        waiting = [p.station for p in progress if p.state != "done"]
        if not progress or waiting:
            names = ", ".join(waiting) or "—"
            raise ActionRefused("not_ready", Words(
                f"{o.number}号单还没做好：{names} 还在做。",
                f"Order {o.number} is not ready yet: {names} still cooking."))
        o.pending = _ExpoPending("completed", now)
        self._refresh(o, now)
        return [self._event("bump", order_id, now)]

    def bump_selected(self) -> list[StationEvent]:
        oid = self.selected_order_id
        if oid is None:
            raise ActionRefused("no_selection", Words("请先选择一个订单。", "Select an order first."))
        return self.bump(oid)

    def recall(self, order_id: str) -> list[StationEvent]:
        """Bring a completed order back (it is ready again)."""
        now = self.clock()
        self._sync(now)
        o = self._orders.get(order_id)
        if o is None or o.state != "completed":
            raise ActionRefused("nothing_to_recall", Words("这个订单没有出餐，不能召回。", "That order is not completed; nothing to recall."))
        o.pending = _ExpoPending("ready", now)
        self._refresh(o, now)
        self._pager.select(self._sync(now), self._pos, order_id)
        return [self._event("recall", order_id, now)]

    def recall_last(self) -> list[StationEvent]:
        self._sync(self.clock())
        if not self._completed:
            raise ActionRefused("nothing_to_recall", Words("没有可以召回的订单。", "There is no completed order to recall."))
        return self.recall(self._completed[0])

    def undo(self) -> list[StationEvent]:
        raise ActionRefused("no_undo_at_expo", Words(
            "出餐台没有撤销；请用召回。", "The expo has no undo; use recall instead."))

    # ----------------------------------------------------------- internals
    def _new_order(self, order_id: str, number: int, now: float) -> _ExpoOrder:
        o = self._orders[order_id] = _ExpoOrder(order_id=order_id, number=number, first_seen=now, start=now)
        self._gone_orders.pop(order_id)
        return o

    def _event(self, kind: str, order_id: str, now: float) -> StationEvent:
        return StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id, device=self.device,
                            at=_iso(now))

    def _drop(self, o: _ExpoOrder, *, voided: bool) -> None:
        del self._orders[o.order_id]
        self._lazy.done(o.order_id)
        for t in o.tickets.values():
            self._revs.pop(t.ticket_id, None)
            self._gone_tickets.put(t.ticket_id, t.revision)
        if o.order_id in self._completed:
            self._completed.remove(o.order_id)
        self._gone_orders.put(o.order_id, "voided" if voided else "evicted")
        self._order = None

    def _refresh(self, o: _ExpoOrder, now: float) -> None:
        if o.update is not None:
            base = o.update.state
        else:  # tickets only (a resync): held while every one of them is
            base = "held" if o.tickets and all(t.state == "held" for t in o.tickets.values()) else "accepted"
        state = o.pending.target if o.pending is not None else base
        if state != o.state:
            self._order = None
        o.state = state
        if self._measure_order(o):
            self._order = None
        if state == "completed" and o.completed_at is None:
            o.completed_at = now
            self._completed.insert(0, o.order_id)
            for old in self._completed[self.completed_size:]:
                self._drop(self._orders[old], voided=False)
        elif state != "completed" and o.completed_at is not None:
            o.completed_at = None
            self._completed.remove(o.order_id)

    def _measure_order(self, o: _ExpoOrder) -> bool:
        """Update ``o.slots``; True when it changed."""
        self._lazy.done(o.order_id)
        if self._measure is None:
            return False
        progress = (self._progress(o), o.note)
        if o.measured == progress:
            return False
        o.measured = progress
        old, o.slots = o.slots, max(1, int(self._measure(*progress)))
        return o.slots != old

    def _expire(self, now: float) -> None:
        if not self.link.connected:
            return
        for o in list(self._orders.values()):
            if o.pending is not None and now - o.pending.sent_at > self.confirm_s:
                o.pending = None
                self.counters["expired"] += 1
                self._refresh(o, now)

    def _sync(self, now: float) -> list[str]:
        self._expire(now)
        if self._order is None:
            ods = self._orders
            ids = [oid for oid, o in ods.items() if o.state in OPEN_STATES]
            ids.sort(key=lambda oid: (ods[oid].start, ods[oid].number, oid))
            self._order = ids
            self._pos = {oid: k for k, oid in enumerate(ids)}
            self._pager.settle(ids, self._pos)
        self._measure_front()
        return self._order

    def _progress(self, o: _ExpoOrder) -> tuple[StationProgress, ...]:
        from_update = {s.station: s for s in o.update.stations} if o.update is not None else {}
        out = []
        for station in sorted(set(from_update) | set(o.tickets)):
            t = o.tickets.get(station)
            s = from_update.get(station)
            acked = bool(s and s.acked)
            if t is not None:  # the ticket has revisions: the finer, surer source
                done = sum(1 for i in t.items if i.state == "done")
                out.append(StationProgress(station, "done" if t.state == "done" else "open", done, len(t.items),
                                           acked, tuple(_item_view(i) for i in t.items)))
            elif s is not None:
                out.append(StationProgress(station, s.state, 0, 0, acked, ()))
        return tuple(out)

    def _shown(self, o: _ExpoOrder | None):
        if o is None:
            return None
        if o.state == "held":  # in the held list
            return ("held", o.number, o.table, o.channel, o.start, o.total)
        if o.state not in OPEN_STATES:
            return None
        return (o.number, o.table, o.start, self._progress(o), o.payment)

    def _row(self, o: _ExpoOrder, now: float) -> ExpoRow:
        progress = self._progress(o)
        elapsed = int(max(0.0, now - o.start))
        is_new = now - o.first_seen < self.new_highlight_s
        colour = self.thresholds.colour(elapsed, is_new)
        return ExpoRow(
            order_id=o.order_id, number=o.number, channel=o.channel, channel_text=channel_text(o.channel),
            service=o.service, table=o.table, service_text=service_text(o.service, o.table), note=o.note,
            stations=progress, ready=bool(progress) and all(p.state == "done" for p in progress),
            elapsed_s=elapsed, elapsed_text=elapsed_text(elapsed), colour=colour,
            flashing=self.thresholds.flashing(colour, now), selected=o.order_id == self._pager.selected,
            is_new=is_new, unpaid=o.payment == "unpaid",
        )

