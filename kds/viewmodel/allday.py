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
