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
    """The panel shows ``rows_per_page`` rows; the rest are on later pages,
    announced by the count of rows below. The page turns on a tap on the
    panel (past the last page, back to the first)."""

    def __init__(self, rows_per_page: int = 12) -> None:
        self.rows_per_page = max(1, rows_per_page)
        self.page = 0

    def resize(self, rows_per_page: int) -> None:
        self.rows_per_page = max(1, rows_per_page)

    def view(self, rows: Sequence[AllDayCount]) -> AllDayPage:
        n = self.rows_per_page
        pages = max(1, -(-len(rows) // n))
        self.page = min(self.page, pages - 1)
        start = self.page * n
        shown = tuple(rows[start:start + n])
        return AllDayPage(shown, self.page, pages, max(0, len(rows) - start - len(shown)))

    def turn(self, total: int) -> None:
        pages = max(1, -(-total // self.rows_per_page))
        self.page = (self.page + 1) % pages
