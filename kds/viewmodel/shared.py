"""Pieces every kitchen view model shares: thresholds, refusals, the link
banner, paging and selection, the rows a station card draws, and the small
parsers of the contract's fields. Plain Python: no Kivy, no MQTT, no I/O."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from restobox.contract import DEVICE_PATTERN, UUID_PATTERN, StationEvent, StationTicket, TicketItem, Words

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

    A page holds ``size`` card slots; an id takes ``weight(id)`` of them (a
    ticket too long for one card continues on the next ones; one longer than
    a page, on the next pages). The selection is always on the shown page, or
    None. When the selected ticket leaves, the one that took its place is
    selected.
    """

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"page_size must be a whole number of at least 1, got {size!r}")
        self.size = size
        self.page = 0
        self.selected: str | None = None
        self._hint = 0  # index of the selection in the last order
        self.weight: Callable[[str], int] | None = None
        self._for: list[str] | None = None  # the ids ``_pages`` was laid out for
        self._pages: list[list[tuple[int, int, int]]] = [[]]
        self._first_page: list[int] = []

    def layout(self, ids: list[str]) -> list[list[tuple[int, int, int]]]:
        """The pages, each a list of ``(index in ids, first slot, slots)``:
        an id that fits a page is never split between pages; one longer
        than a page fills the rest of its page and goes on over the next."""
        if ids is not self._for:
            self._for = ids
            size = self.size
            pages: list[list[tuple[int, int, int]]] = [[]]
            first_page: list[int] = []
            used = 0
            page = pages[-1]
            weights = [1] * len(ids) if self.weight is None else [max(1, self.weight(key)) for key in ids]
            for k, w in enumerate(weights):
                if w <= size:  # the common case: the id fits a page, on this one or the next
                    if used + w > size:
                        page = []
                        pages.append(page)
                        used = 0
                    first_page.append(len(pages) - 1)
                    page.append((k, 0, w))
                    used += w
                    continue
                # longer than a page: the rest of this page, then on over the next
                first_page.append(len(pages) - 1)
                part = 0
                while True:
                    n = min(size - used, w - part)
                    pages[-1].append((k, part, n))
                    used += n
                    part += n
                    if part >= w:
                        break
                    pages.append([])
                    used = 0
                page = pages[-1]
            self._pages, self._first_page = pages, first_page
        return self._pages

    def starts(self, ids: list[str]) -> list[int]:
        """Index of each page's first id."""
        return [p[0][0] if p else 0 for p in self.layout(ids)]

    def pages(self, ids: list[str]) -> int:
        return len(self.layout(ids))

    def page_of(self, ids: list[str], index: int) -> int:
        """The page where the id at ``index`` starts."""
        self.layout(ids)
        return self._first_page[index] if 0 <= index < len(self._first_page) else 0

    def parts(self, ids: list[str]) -> list[tuple[str, int, int]]:
        """``(id, first slot, slots)`` shown on the current page."""
        pages = self.layout(ids)
        return [(ids[k], first, n) for k, first, n in pages[min(self.page, len(pages) - 1)]]

    def settle(self, ids: list[str], pos: dict[str, int]) -> None:
        if self.selected is not None and self.selected not in pos:
            self.selected = ids[min(self._hint, len(ids) - 1)] if ids else None
        if self.selected is not None:
            self._hint = pos[self.selected]
            self.page = self.page_of(ids, self._hint)
        else:
            self.page = min(self.page, self.pages(ids) - 1)

    def window(self, ids: list[str]) -> list[str]:
        return [key for key, _, _ in self.parts(ids)]

    def select(self, ids: list[str], pos: dict[str, int], key: str) -> None:
        self.selected = key
        self.settle(ids, pos)

    def step(self, ids: list[str], pos: dict[str, int], delta: int) -> bool:
        if not ids:
            return False
        if self.selected is None:
            i = min(self.starts(ids)[min(self.page, self.pages(ids) - 1)], len(ids) - 1)
        else:
            i = max(0, min(len(ids) - 1, pos[self.selected] + delta))
        changed = ids[i] != self.selected
        self.selected = ids[i]
        self._hint = i
        self.page = self.page_of(ids, i)
        return changed

    def turn(self, ids: list[str], delta: int) -> bool:
        new = max(0, min(self.pages(ids) - 1, self.page + delta))
        if new == self.page:
            return False
        self.page = new
        if self.selected is not None:  # the bump bar's cursor goes with the page
            self._hint = self.starts(ids)[new]
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
    unpaid: bool = False  # the order's payment state is "unpaid" (a "未付 UNPAID" badge)


def _item_view(i: TicketItem) -> ItemView:
    return ItemView(
        line=i.line, name_zh=i.name_zh, name_en=i.name_en, qty=i.qty, modifiers=tuple(i.modifiers),
        note=i.note, allergens=tuple(i.allergens), part_of=i.part_of, part_of_zh=i.part_of_zh,
        done=i.state == "done",
    )

class LazyMeasure:
    """The entries (tickets, orders) whose card count is still to be
    measured since the cards' size changed. Those up to the page after the
    shown one are measured when the pages are laid out (:meth:`front`), the
    rest a little at a time (:meth:`more`, once a frame): measured all at
    once, 300 tickets kept a screen from its first frame for most of a
    second here, several on a Pi. ``measure(key)`` measures one entry (or
    drops one no longer shown) and calls :meth:`done`; it says whether the
    entry's card count changed."""

    def __init__(self, measure: Callable[[str], bool]) -> None:
        self.pending: set[str] = set()
        self._measure = measure

    def reset(self, keys) -> None:
        self.pending = set(keys)

    def done(self, key: str) -> None:
        self.pending.discard(key)

    def front(self, ids: list[str], pager: "_Pager", slots_of: Callable[[str], int]) -> bool:
        """Measure the pending entries among ``ids`` (in page order) until
        the pages up to the one after the shown one are full."""
        want = (pager.page + 2) * pager.size
        used, changed = 0, False
        for key in ids:
            if key in self.pending:
                changed = self._measure(key) or changed
            used += slots_of(key)
            if used >= want:
                break
        return changed

    def more(self, budget_s: float, order: Callable[[str], Any]) -> bool:
        """Measure pending entries in ``order`` for about ``budget_s``."""
        changed = False
        deadline = time.perf_counter() + budget_s
        for key in sorted(self.pending, key=order):
            changed = self._measure(key) or changed
            if time.perf_counter() >= deadline:
                break
        return changed


class _PagedGrid:
    """Paging and selection shared by the station and expo screens. The
    class provides ``clock``, ``_pager``, ``_pos``, ``_sync(now)`` (the
    ids shown, in order), ``_lazy`` (a LazyMeasure), ``_order`` and
    ``_start_of(id)`` (when an entry started: the order it is measured in)."""

    @property
    def measuring(self) -> bool:
        """Open entries are still to be measured (the page count may grow)."""
        return bool(self._lazy.pending)

    def _measure_front(self) -> None:
        """In ``_sync``: the entries not measured yet, up to the page after
        the shown one (LazyMeasure.front); when a card count changed, the
        pages are laid out again."""
        if self._lazy.pending and self._lazy.front(self._order, self._pager, self.slots_of):
            self._order = list(self._order)  # a new list: the pager lays the pages out again
            self._pager.settle(self._order, self._pos)

    def measure_more(self, budget_s: float = 0.02) -> bool:
        """Measure entries not measured yet for about ``budget_s`` of CPU,
        oldest first. True when one's card count changed (the pages after
        the shown one, and their count, are then laid out again)."""
        if self._lazy.more(budget_s, self._start_of):
            self._order = None
            return True
        return False

    @property
    def page(self) -> int:
        self._sync(self.clock())
        return self._pager.page

    @property
    def pages(self) -> int:
        return self._pager.pages(self._sync(self.clock()))

    def set_page_size(self, size: int) -> None:
        """Card slots on a page (the screen may show fewer, larger cards
        than configured on a small display)."""
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"page_size must be a whole number of at least 1, got {size!r}")
        self._pager.size = size
        self._pager._for = None
        self._order = None

    def page_parts(self) -> list[tuple[str, int, int]]:
        """``(id, first card part, parts)`` of each entry on the shown page
        (a ticket longer than a page shows some of its parts on each)."""
        return self._pager.parts(self._sync(self.clock()))

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

