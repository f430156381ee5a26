"""The all-day panel: how many of each item a station's open tickets still
need, and the panel's pages (it never cuts a row off unannounced). Plain
Python: no Kivy, no MQTT, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from restobox.contract import TicketItem


class AllDayCount(NamedTuple):
    name_zh: str
    name_en: str
    qty: int


def all_day_counts(open_tickets: Iterable[Sequence[TicketItem]]) -> list[AllDayCount]:
    """Open lines of the given tickets' items summed by name, most first."""
    counts: dict[tuple[str, str], int] = {}
    for items in open_tickets:
        for i in items:
            if i.state == "open":
                key = (i.name_zh, i.name_en)
                counts[key] = counts.get(key, 0) + i.qty
    rows = [AllDayCount(zh, en, q) for (zh, en), q in counts.items()]
    rows.sort(key=lambda r: (-r.qty, r.name_en, r.name_zh))
    return rows


def _tally(items: Sequence[TicketItem]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for i in items:
        if i.state == "open":
            key = (i.name_zh, i.name_en)
            out[key] = out.get(key, 0) + i.qty
    return out


class AllDayTally:
    """:func:`all_day_counts` kept up to date instead of recounted: a bump
    changes one ticket, and the station asks for the panel on every redraw
    (recounting 300 tickets took about 1.5 ms of the bump's frame). Each
    ticket's share is kept with its items, which are replaced, never changed
    in place, when the ticket changes."""

    def __init__(self) -> None:
        self._shares: dict[str, tuple[Sequence[TicketItem], dict[tuple[str, str], int]]] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._rows: list[AllDayCount] | None = []

    def _add(self, share: dict[tuple[str, str], int], sign: int) -> None:
        counts = self._counts
        for key, q in share.items():
            n = counts.get(key, 0) + sign * q
            if n:
                counts[key] = n
            else:
                counts.pop(key, None)
        self._rows = None

    def counts(self, open_tickets: dict[str, Sequence[TicketItem]]) -> list[AllDayCount]:
        """The rows of :func:`all_day_counts` for ``open_tickets`` (ticket id ->
        items), updated for the tickets whose items changed since the last call."""
        shares = self._shares
        for tid in [t for t in shares if t not in open_tickets]:
            self._add(shares.pop(tid)[1], -1)
        for tid, items in open_tickets.items():
            had = shares.get(tid)
            if had is not None and had[0] is items:
                continue
            if had is not None:
                self._add(had[1], -1)
            share = _tally(items)
            shares[tid] = (items, share)
            self._add(share, +1)
        if self._rows is None:
            rows = [AllDayCount(zh, en, q) for (zh, en), q in self._counts.items()]
            rows.sort(key=lambda r: (-r.qty, r.name_en, r.name_zh))
            self._rows = rows
        return list(self._rows)


class AllDayPage(NamedTuple):
    rows: tuple[AllDayCount, ...]
    page: int  # from 0
    pages: int
    more: int  # rows on later pages (the "more" sign)


class AllDayPager:
    """The panel shows the rows that fit; the rest are on later pages,
    announced by how many rows follow. A tap turns the page (past the last,
    back to the first). ``bounds`` are the pages' (start, end) row indexes
    (:func:`kds.viewmodel.cards.pack` of the rows' heights)."""

    def __init__(self) -> None:
        self.page = 0

    def view(self, rows: Sequence[AllDayCount], bounds: Sequence[tuple[int, int]]) -> AllDayPage:
        bounds = list(bounds) or [(0, len(rows))]
        self.page = min(self.page, len(bounds) - 1)
        start, end = bounds[self.page]
        return AllDayPage(tuple(rows[start:end]), self.page, len(bounds), max(0, len(rows) - end))

    def turn(self, pages: int) -> None:
        self.page = (self.page + 1) % max(1, pages)
