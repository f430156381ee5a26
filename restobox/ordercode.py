"""The order's code: what the barcode on every receipt says, and what the
counter's scanner types back. Pure, no I/O.

- ``R<YYYYMMDD><number>``: the order the hub numbered on that business
  day, e.g. ``R2026120517`` is number 17 of 5 December 2026.
- ``P<YYYYMMDD><provisional number>``: a receipt printed while the hub could
  not be reached (the kiosk's or the counter's provisional number, e.g.
  ``P20261205K1-007``); the hub knows the order by that number once it has it.

A number is unique only within its business day, so the day is part of the
code: yesterday's receipt is not mistaken for today's order 17.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = ["OrderCode", "order_code", "parse_order_code"]

_PROVISIONAL = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}")
_NUMBER = re.compile(r"[1-9][0-9]{0,4}")
_CODE = re.compile(r"(?P<kind>[RP])(?P<day>[0-9]{8})(?P<rest>.{1,16})")


@dataclass(frozen=True)
class OrderCode:
    business_date: str
    """ISO date, ``2026-12-05``."""
    number: int = 0
    """The hub's number; 0 for a provisional code."""
    provisional_number: str = ""

    @property
    def provisional(self) -> bool:
        return not self.number


def _day(business_date: str) -> str | None:
    try:
        return date.fromisoformat(business_date).strftime("%Y%m%d")
    except (TypeError, ValueError):
        return None


def order_code(business_date: str, number: int, provisional_number: str = "") -> str:
    """The code printed under a receipt's barcode; "" when there is nothing
    to scan (no business date, neither a number nor a provisional number
    that a scanner can type)."""
    day = _day(business_date)
    if day is None:
        return ""
    if 1 <= number <= 99_999:
        return f"R{day}{number}"
    if number == 0 and _PROVISIONAL.fullmatch(provisional_number or ""):
        return f"P{day}{provisional_number}"
    return ""


def parse_order_code(text: str) -> OrderCode | None:
    """What a scanned code names, or None when it is no order's code. A
    keyboard-wedge scanner may add a newline or a tab; case is ignored."""
    m = _CODE.fullmatch((text or "").strip().upper())
    if m is None:
        return None
    ds = m["day"]
    try:
        day = date(int(ds[:4]), int(ds[4:6]), int(ds[6:])).isoformat()
    except ValueError:
        return None
    rest = m["rest"]
    if m["kind"] == "R":
        if not _NUMBER.fullmatch(rest):
            return None
        return OrderCode(day, number=int(rest))
    if not _PROVISIONAL.fullmatch(rest):
        return None
    return OrderCode(day, provisional_number=rest)
