"""View models of the kitchen display: a station screen, the expo screen, the
customer pickup board and the bump bar.

Plain Python: no Kivy, no MQTT, no database, no threads. A view model takes
decoded contract messages (``restobox.contract``) and a clock, and returns
the :class:`~restobox.contract.StationEvent` messages the app must publish on
``vm.event_topic``. The app does every piece of I/O: it decodes at the
boundary, publishes what it is given, stores :meth:`StationViewModel.snapshot`
in its SQLite cache and redraws from :meth:`StationViewModel.tickets_on_page`
(timers need a redraw about once a second).

The rules the screens follow (docs/protocol.md 3.3-3.7):

- per ``ticket_id`` the copy with the highest ``revision`` wins; a lower or
  equal one is a repeat and is ignored; ``"voided"`` takes the ticket off;
- a cook's action is shown at once (optimistically) and kept as *pending*
  until the hub's re-published ticket shows its effect, so the hub's copy
  never makes a bumped ticket flicker back. A pending action the hub does not
  confirm within ``confirm_s`` of connected time is dropped and the hub's copy
  shows again: the hub, not the screen, is the truth;
- a cook's refused action raises :class:`ActionRefused`, whose ``words`` are
  meant for the screen.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

import msgspec

from restobox.contract import (
    DEVICE_PATTERN,
    EXPO_STATION,
    UUID_PATTERN,
    Board,
    OrderUpdate,
    StationEvent,
    StationTicket,
    TicketItem,
    Words,
    topics,
)
from restobox.orders import OPEN_STATES

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); tests pass a fake."""

TicketColour = Literal["new", "normal", "warning", "late"]

_DEVICE_RE = re.compile(DEVICE_PATTERN)
_UUID_RE = re.compile(UUID_PATTERN)
# Ids of tickets and orders that left the screen, remembered so that a late
# or repeated copy of them cannot bring them back (a day is a few thousand).
_GONE_LIMIT = 5000
# A ticket's revision counts the hub's changes to it (a few per order).
MAX_REVISION = 1_000_000


# The hub's clock and a screen's agree to within seconds.
CLOCK_SLACK_S = 60.0


def _newest_mark(ts: float | None, now: float) -> float | None:
    """A message's time as the mark later copies must not be older than;
    none for one dated more than a minute ahead of this screen's clock: it
    must not make every later message look older (that would freeze the
    board, or an order, for good). A screen whose clock is far behind the
    hub's only loses the check, not the messages."""
    return ts if ts is not None and ts <= now + CLOCK_SLACK_S else None


# =========================================================================
# Shared pieces
# =========================================================================


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a ticket's timer turns colour (seconds since the hub accepted it)."""

    warn_s: float = 300
    late_s: float = 480
    flash: bool = True
    flash_period_s: float = 1.0  # a late ticket is lit for one period, dark the next

    def __post_init__(self) -> None:
        if not 0 <= self.warn_s <= self.late_s:
            raise ValueError(
                f"thresholds need 0 <= warn_s <= late_s, got warn_s={self.warn_s}, late_s={self.late_s}"
            )
        if self.flash_period_s <= 0:
            raise ValueError(f"flash_period_s must be more than 0, got {self.flash_period_s}")

    def colour(self, elapsed_s: int, is_new: bool) -> TicketColour:
        """Late and warning win over new: a ticket that arrives late is late."""
        if elapsed_s >= self.late_s:
            return "late"
        if elapsed_s >= self.warn_s:
            return "warning"
        return "new" if is_new else "normal"

    def flashing(self, colour: TicketColour, now: float) -> bool:
        # From the clock, not the ticket: every late ticket flashes in step.
        return self.flash and colour == "late" and int(now // self.flash_period_s) % 2 == 0


class ActionRefused(Exception):
    """A cook's action that cannot be done; ``words`` are for the screen.

    ``code`` is one of: unknown_ticket, ticket_done, ticket_open, unknown_line,
    line_done, nothing_to_undo, undo_expired, nothing_to_recall,
    order_closed, unknown_order, not_ready, no_selection, no_undo_at_expo.
    """

    def __init__(self, code: str, words: Words) -> None:
        self.code = code
        self.words = words
        super().__init__(words.en)


class AllDayCount(NamedTuple):
    name_zh: str
    name_en: str
    qty: int


_SERVICE = {"dine_in": ("堂食", "Dine in"), "takeaway": ("外带", "Takeaway")}
_CHANNEL = {
    "kiosk": ("自助点餐", "Kiosk"),
    "counter": ("柜台", "Counter"),
    "qr": ("扫码点餐", "QR"),
    "preorder": ("预订", "Pre-order"),
    "delivery": ("外卖", "Delivery"),
}


def service_text(service: str, table: str | None) -> Words:
    """``("堂食 · 12号桌", "Dine in · Table 12")``, ``("外带", "Takeaway")``."""
    zh, en = _SERVICE.get(service, (service, service))
    if table:
        return Words(f"{zh} · {table}号桌", f"{en} · Table {table}")
    return Words(zh, en)


def channel_text(channel: str) -> Words:
    zh, en = _CHANNEL.get(channel, (channel, channel))
    return Words(zh, en)


def elapsed_text(seconds: int) -> str:
    """``"m:ss"``; minutes go past 59 (``"61:40"``)."""
    return f"{seconds // 60}:{seconds % 60:02d}"


def _parse_ts(iso: str) -> float | None:
    try:
        dt = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:  # the contract's times are UTC
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def ticket_problem(t: StationTicket) -> str | None:
    """Why a ticket that decoded cannot be one the hub made (None: it can).
    The hub's ticket ids are ``<order_id>:<station>``, its order ids UUIDs
    (every event the screen sends names one), its revisions count from 1."""
    if not 1 <= t.revision <= MAX_REVISION:  # one near 2**53 would freeze the ticket: no later copy is newer
        return f"revision {t.revision}"
    if not _UUID_RE.fullmatch(t.order_id):
        return f"order id {t.order_id[:40]!r} is not a UUID"
    if t.ticket_id != f"{t.order_id}:{t.station}":
        return f"ticket id {t.ticket_id[:80]!r} is not <order id>:<station>"
    return None


def _check_device(device: str) -> str:
    if not _DEVICE_RE.fullmatch(device):
        raise ValueError(f"bad device name {device!r}: 1-32 of a-z, 0-9 and '-', not starting with '-'")
    return device


class _Gone:
    """Bounded memory of ids that left the screen: id -> value (FIFO)."""

    def __init__(self, limit: int = _GONE_LIMIT) -> None:
        self.limit = limit
        self.d: OrderedDict[str, Any] = OrderedDict()

    def put(self, key: str, value: Any) -> None:
        self.d[key] = value
        self.d.move_to_end(key)
        while len(self.d) > self.limit:
            self.d.popitem(last=False)

    def get(self, key: str, default=None):
        return self.d.get(key, default)

    def pop(self, key: str) -> None:
        self.d.pop(key, None)


# Banner texts: what the cook must know when the screen may be out of date.
BANNER_CONNECTING = Words("正在连接门店主机……", "Connecting to the store hub…")
BANNER_LINK_LOST = Words(
    "与门店网络的连接已断开，正在重连——新单可能延迟",
    "Connection to the store network lost — reconnecting; tickets may be late",
)
BANNER_HUB_LOST = Words(
    "与门店主机的连接已断开——新单可能延迟",
    "Connection to the store hub lost — tickets may be late",
)


class LinkState:
    """The broker link and the hub's presence, as one banner (or None)."""

    def __init__(self) -> None:
        self.connected = False
        self.ever_connected = False
        # None: not heard yet. Kept over a broker outage: the retained
        # presence comes again when we resubscribe.
        self.hub_online: bool | None = None

    @property
    def banner(self) -> Words | None:
        if not self.connected:
            return BANNER_LINK_LOST if self.ever_connected else BANNER_CONNECTING
        if self.hub_online is False:
            return BANNER_HUB_LOST
        return None


class _Pager:
    """Paging and the bump bar's selection over an ordered list of ids.

    The selection is always on the shown page, or None. When the selected
    ticket leaves, the one that took its place is selected.
    """

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"page_size must be a whole number of at least 1, got {size!r}")
        self.size = size
        self.page = 0
        self.selected: str | None = None
        self._hint = 0  # index of the selection in the last order

    def pages(self, n: int) -> int:
        return max(1, -(-n // self.size))

    def settle(self, ids: list[str], pos: dict[str, int]) -> None:
        if self.selected is not None and self.selected not in pos:
            self.selected = ids[min(self._hint, len(ids) - 1)] if ids else None
        if self.selected is not None:
            self._hint = pos[self.selected]
            self.page = self._hint // self.size
        else:
            self.page = min(self.page, self.pages(len(ids)) - 1)

    def window(self, ids: list[str]) -> list[str]:
        start = self.page * self.size
        return ids[start:start + self.size]

    def select(self, ids: list[str], pos: dict[str, int], key: str) -> None:
        self.selected = key
        self.settle(ids, pos)

    def step(self, ids: list[str], pos: dict[str, int], delta: int) -> bool:
        if not ids:
            return False
        if self.selected is None:
            i = min(self.page * self.size, len(ids) - 1)
        else:
            i = max(0, min(len(ids) - 1, pos[self.selected] + delta))
        changed = ids[i] != self.selected
        self.selected = ids[i]
        self._hint = i
        self.page = i // self.size
        return changed

    def turn(self, ids: list[str], delta: int) -> bool:
        new = max(0, min(self.pages(len(ids)) - 1, self.page + delta))
        if new == self.page:
            return False
        self.page = new
        if self.selected is not None:  # the bump bar's cursor goes with the page
            self._hint = new * self.size
            self.selected = ids[self._hint]
        return True


# =========================================================================
# Views (immutable rows the screens draw)
# =========================================================================


@dataclass(frozen=True, slots=True)
class ItemView:
    line: int
    name_zh: str
    name_en: str
    qty: int
    modifiers: tuple[Words, ...]
    note: str
    allergens: tuple[str, ...]
    part_of: str
    part_of_zh: str
    done: bool


@dataclass(frozen=True, slots=True)
class TicketView:
    ticket_id: str
    order_id: str
    number: int
    station: str
    channel: str
    channel_text: Words
    service: str
    table: str | None
    service_text: Words
    items: tuple[ItemView, ...]
    note: str
    allergens: tuple[str, ...]  # of every item, for the ticket's allergen flag
    done: bool
    elapsed_s: int
    elapsed_text: str
    colour: TicketColour
    flashing: bool
    selected: bool
    is_new: bool
    provisional: str = ""  # the number the diner holds, for an order placed offline


def _item_view(i: TicketItem) -> ItemView:
    return ItemView(
        line=i.line, name_zh=i.name_zh, name_en=i.name_en, qty=i.qty, modifiers=tuple(i.modifiers),
        note=i.note, allergens=tuple(i.allergens), part_of=i.part_of, part_of_zh=i.part_of_zh,
        done=i.state == "done",
    )


# =========================================================================
# Station screen
# =========================================================================

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


class _PagedGrid:
    """Paging and selection shared by the station and expo screens. The
    class provides ``clock``, ``_pager``, ``_pos`` and ``_sync(now)`` (the
    ids shown, in order)."""

    @property
    def page(self) -> int:
        self._sync(self.clock())
        return self._pager.page

    @property
    def pages(self) -> int:
        return self._pager.pages(len(self._sync(self.clock())))

    @property
    def hidden_count(self) -> int:
        """Open entries not on the shown page."""
        ids = self._sync(self.clock())
        return len(ids) - len(self._pager.window(ids))

    @property
    def open_count(self) -> int:
        return len(self._sync(self.clock()))

    def next_page(self) -> bool:
        return self._pager.turn(self._sync(self.clock()), +1)

    def prev_page(self) -> bool:
        return self._pager.turn(self._sync(self.clock()), -1)

    def _selected(self) -> str | None:
        self._sync(self.clock())
        return self._pager.selected

    def select_next(self) -> bool:
        return self._pager.step(self._sync(self.clock()), self._pos, +1)

    def select_prev(self) -> bool:
        return self._pager.step(self._sync(self.clock()), self._pos, -1)

    def perform(self, action: str) -> list[StationEvent]:
        """Do a bump bar action (see :data:`BUMP_BAR_ACTIONS`)."""
        if action == "select_next":
            self.select_next()
        elif action == "select_prev":
            self.select_prev()
        elif action == "page_next":
            self.next_page()
        elif action == "page_prev":
            self.prev_page()
        elif action == "bump":
            return self.bump_selected()
        elif action == "recall":
            return self.recall_last()
        elif action == "undo":
            return self.undo()
        else:
            raise ValueError(f"unknown bump bar action {action!r}")
        return []


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
        self.counters: dict[str, int] = {"duplicate": 0, "stale": 0, "other_station": 0, "expired": 0,
                                         "unusable": 0}
        #: Set by :meth:`restore` when the cache could not be used.
        self.cache_problem: str | None = None
        self._entries: dict[str, _Entry] = {}
        self._gone = _Gone()  # ticket_id -> (revision, acked)
        self._recall: list[str] = []  # most recent first
        self._order_states: dict[str, str] = {}  # order_id -> state, from order updates
        self._last_bump: _LastBump | None = None
        self._pager = _Pager(page_size)
        self._order: list[str] | None = None
        self._pos: dict[str, int] = {}

    # ------------------------------------------------------------ messages
    def on_ticket(self, t: StationTicket) -> bool:
        """Take a ticket from the hub. True when the open grid changed."""
        if t.station != self.station:
            self.counters["other_station"] += 1
            return False
        if ticket_problem(t) is not None:
            self.counters["unusable"] += 1
            return False
        tid = t.ticket_id
        e = self._entries.get(tid)
        known = e.hub.revision if e else self._gone_rev(tid)
        if known is not None and t.revision <= known:
            self.counters["duplicate" if t.revision == known else "stale"] += 1
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

    def on_update(self, u: OrderUpdate) -> None:
        """Order updates: used only to refuse a recall the hub would refuse."""
        if any(e.hub.order_id == u.order_id for e in self._entries.values()):
            self._order_states[u.order_id] = u.state

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
        counts: dict[tuple[str, str], int] = {}
        for e in self._entries.values():
            if e.state != "open":
                continue
            for i in e.items:
                if i.state == "open":
                    key = (i.name_zh, i.name_en)
                    counts[key] = counts.get(key, 0) + i.qty
        rows = [AllDayCount(zh, en, q) for (zh, en), q in counts.items()]
        rows.sort(key=lambda r: (-r.qty, r.name_en, r.name_zh))
        return rows

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

    def _remove(self, e: _Entry, revision: int | None) -> None:
        tid = e.hub.ticket_id
        del self._entries[tid]
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
        if not self.link.connected:
            return
        for e in list(self._entries.values()):
            if e.pending and any(now - p.sent_at > self.confirm_s for p in e.pending):
                kept = [p for p in e.pending if now - p.sent_at <= self.confirm_s]
                self.counters["expired"] += len(e.pending) - len(kept)
                e.pending = kept
                self._refresh(e, now)

    def _sync(self, now: float) -> list[str]:
        self._expire(now)
        if self._order is None:
            ids = [tid for tid, e in self._entries.items() if e.state == "open"]
            ents = self._entries
            ids.sort(key=lambda tid: (ents[tid].start, ents[tid].hub.number, tid))
            self._order = ids
            self._pos = {tid: k for k, tid in enumerate(ids)}
            self._pager.settle(ids, self._pos)
        return self._order

    @staticmethod
    def _shown(e: _Entry | None) -> tuple[bool, object]:
        if e is None or e.state != "open":
            return False, None
        h = e.hub
        return True, (e.items, h.number, h.note, h.table, h.service, h.channel, h.accepted_at,
                      h.provisional_number)

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
        )


# =========================================================================
# Expo screen
# =========================================================================


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
    state: str = "accepted"  # what the screen shows: the hub's state + pending
    completed_at: float | None = None


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
        self._order: list[str] | None = None
        self._pos: dict[str, int] = {}

    # ------------------------------------------------------------ messages
    def on_ticket(self, t: StationTicket) -> bool:
        """A ticket of any station. True when the grid changed."""
        if ticket_problem(t) is not None:
            self.counters["unusable"] += 1
            return False
        known = self._revs.get(t.ticket_id, self._gone_tickets.get(t.ticket_id))
        if known is not None and t.revision <= known:
            self.counters["duplicate" if t.revision == known else "stale"] += 1
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
        for t in o.tickets.values():
            self._revs.pop(t.ticket_id, None)
            self._gone_tickets.put(t.ticket_id, t.revision)
        if o.order_id in self._completed:
            self._completed.remove(o.order_id)
        self._gone_orders.put(o.order_id, "voided" if voided else "evicted")
        self._order = None

    def _refresh(self, o: _ExpoOrder, now: float) -> None:
        base = o.update.state if o.update is not None else "accepted"
        state = o.pending.target if o.pending is not None else base
        if state != o.state:
            self._order = None
        o.state = state
        if state == "completed" and o.completed_at is None:
            o.completed_at = now
            self._completed.insert(0, o.order_id)
            for old in self._completed[self.completed_size:]:
                self._drop(self._orders[old], voided=False)
        elif state != "completed" and o.completed_at is not None:
            o.completed_at = None
            self._completed.remove(o.order_id)

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
        if o is None or o.state not in OPEN_STATES:
            return None
        return (o.number, o.table, o.start, self._progress(o))

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
            is_new=is_new,
        )


# =========================================================================
# Customer pickup board
# =========================================================================


class BoardViewModel:
    """"Preparing" and "Ready" numbers; numbers ready within the last
    ``just_ready_s`` seconds are highlighted."""

    def __init__(self, *, clock: Clock, just_ready_s: float = 10.0) -> None:
        self.clock = clock
        self.just_ready_s = just_ready_s
        self.preparing: tuple[int, ...] = ()
        self._ready_since: dict[int, float] = {}
        self._business_date: str | None = None
        self._at: float | None = None

    def on_board(self, b: Board) -> bool:
        """True when either list changed."""
        ts = _parse_ts(b.at)
        if self._at is not None and ts is not None and ts < self._at and b.business_date == self._business_date:
            return False  # an older board than the one shown
        now = self.clock()
        first = self._business_date is None
        if b.business_date != self._business_date:
            self._ready_since = {}  # numbers start again each business day
        before = (self.preparing, self.ready)
        self._business_date, self._at = b.business_date, _newest_mark(ts, now)
        since = {}
        for n in b.ready:
            # Numbers already ready when the board starts did not just become ready.
            since[n] = self._ready_since.get(n, -math.inf if first else now)
        self._ready_since = since
        self.preparing = tuple(sorted(b.preparing))
        return before != (self.preparing, self.ready)

    @property
    def ready(self) -> tuple[int, ...]:
        """Newest first."""
        return tuple(sorted(self._ready_since, key=lambda n: (self._ready_since[n], n), reverse=True))

    @property
    def just_ready(self) -> frozenset[int]:
        now = self.clock()
        return frozenset(n for n, t in self._ready_since.items() if now - t < self.just_ready_s)


# =========================================================================
# Bump bar
# =========================================================================

BUMP_BAR_ACTIONS = ("select_next", "select_prev", "bump", "recall", "page_next", "page_prev", "undo")

DEFAULT_BUMP_BAR = {
    "select_next": "right", "select_prev": "left", "bump": "enter", "recall": "r",
    "page_next": "pagedown", "page_prev": "pageup", "undo": "u",
}


class BumpBarMap:
    """Keys of a keyboard-style bump bar -> actions, from config.

    ``{"bump": "enter", "recall": ["r", "numpad0"], ...}``; keys are matched
    without regard to case. An action may be left out; an unknown action, an
    empty key or a key given to two actions is a ValueError.
    """

    def __init__(self, mapping: Mapping[str, str | Sequence[str]]) -> None:
        self._by_key: dict[str, str] = {}
        self._by_action: dict[str, tuple[str, ...]] = {}
        for action, keys in mapping.items():
            if action not in BUMP_BAR_ACTIONS:
                raise ValueError(
                    f"unknown bump bar action {action!r}; the actions are: {', '.join(BUMP_BAR_ACTIONS)}")
            if isinstance(keys, str):
                keys = [keys]
            norm = []
            for k in keys:
                if not isinstance(k, str) or not k.strip():
                    raise ValueError(f"bump bar action {action!r} has an empty or non-text key {k!r}")
                k = k.strip().lower()
                other = self._by_key.get(k)
                if other is not None:
                    raise ValueError(f"bump bar key {k!r} is mapped to both {other!r} and {action!r}")
                self._by_key[k] = action
                norm.append(k)
            self._by_action[action] = tuple(norm)

    @classmethod
    def default(cls) -> BumpBarMap:
        return cls(DEFAULT_BUMP_BAR)

    def action_for(self, key: str) -> str | None:
        return self._by_key.get(key.strip().lower())

    def keys_for(self, action: str) -> tuple[str, ...]:
        return self._by_action.get(action, ())
