"""Orders: validation and pricing against the menu, the order state machine,
and the split of an order into station tickets.

Pure domain code: no I/O. The hub calls :func:`price_order` with the menu it
holds and the current 86 list; the kiosk's own prices are never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from restobox.contract import (
    OrderSubmit,
    PricedLine,
    PricedModifier,
    Rejection,
    StationStatus,
    TicketItem,
    Words,
)
from restobox.menu import MenuIndex

# Limits for one order; a kiosk that sends more is refused with a reason code.
MAX_LINES = 50
MAX_QTY_PER_LINE = 99
MAX_ITEMS_PER_ORDER = 200


@dataclass(frozen=True)
class PricedOrder:
    lines: tuple[PricedLine, ...]
    subtotal: int
    tax: int
    total: int
    currency: str
    discount: int = 0  # taken off the lines' sum before tax (points redeemed)


def tax_of(amount: int, rate_bp: int, inclusive: bool) -> int:
    """Tax in minor units, rounded half up.

    Inclusive prices (China): the tax is the part of ``amount`` that is tax,
    amount * r / (1 + r). Exclusive: amount * r.
    """
    if rate_bp == 0 or amount == 0:
        return 0
    if inclusive:
        num, den = amount * rate_bp, 10_000 + rate_bp
    else:
        num, den = amount * rate_bp, 10_000
    return (2 * num + den) // (2 * den)


def price_order(
    order: OrderSubmit,
    idx: MenuIndex,
    sold_out: frozenset[str] | set[str] = frozenset(),
    *,
    max_lines: int = MAX_LINES,
    max_qty: int = MAX_QTY_PER_LINE,
    max_items: int = MAX_ITEMS_PER_ORDER,
    discount: int = 0,
) -> PricedOrder:
    """Validate ``order`` against the menu and price it, or raise Rejection.

    ``discount`` (fen, points redeemed, priced by the hub) comes off the sum
    of the lines; tax is of what is left."""
    if not order.lines:
        raise Rejection("empty_order")
    if len(order.lines) > max_lines:
        raise Rejection("too_many_lines", f"{len(order.lines)} lines, limit {max_lines}")
    if order.service == "dine_in" and order.channel == "qr" and not order.table:
        # A QR code is printed per table; the scan always knows its table.
        raise Rejection("table_required")
    lines: list[PricedLine] = []
    count = 0
    for n, sl in enumerate(order.lines, start=1):
        where = {"line": str(n), "item_id": sl.item_id}
        if not isinstance(sl.qty, int) or sl.qty < 1 or sl.qty > max_qty:
            raise Rejection("bad_quantity", f"line {n}: qty {sl.qty} not in 1..{max_qty}", **where)
        count += sl.qty
        if count > max_items:
            raise Rejection("bad_quantity", f"more than {max_items} items in one order", **where)
        item = idx.items.get(sl.item_id)
        if item is None:
            raise Rejection("unknown_item", f"line {n}: {sl.item_id!r}", **where)
        if not item.available or item.id in sold_out:
            raise Rejection("item_unavailable", f"line {n}: {item.id} is sold out", **where)
        chosen: dict[str, list[str]] = {}
        seen: set[str] = set()
        mods: list[PricedModifier] = []
        allergens = set(item.allergens)
        unit = item.price
        for mid in sl.modifiers:
            opt = idx.options.get(mid)
            if opt is None:
                raise Rejection("unknown_modifier", f"line {n}: {mid!r}", modifier=mid, **where)
            group = idx.option_group[mid]
            if group.id not in item.modifier_groups:
                raise Rejection(
                    "modifier_not_allowed", f"line {n}: {mid} is not an option of {item.id}",
                    modifier=mid, **where,
                )
            if mid in seen:
                raise Rejection("modifier_duplicate", f"line {n}: {mid} twice", modifier=mid, **where)
            if mid in sold_out:
                raise Rejection("modifier_unavailable", f"line {n}: {mid} is sold out", modifier=mid, **where)
            seen.add(mid)
            chosen.setdefault(group.id, []).append(mid)
            unit += opt.price_delta
            allergens.update(opt.allergens)
            mods.append(
                PricedModifier(
                    id=opt.id, name_zh=opt.name.zh, name_en=opt.name.en,
                    price_delta=opt.price_delta, station=opt.station,
                    allergens=tuple(sorted(opt.allergens)),
                )
            )
        for gid in item.modifier_groups:
            group = idx.groups[gid]
            k = len(chosen.get(gid, ()))
            if k < group.min_choices:
                raise Rejection(
                    "modifier_missing",
                    f"line {n}: {item.id} needs {group.min_choices} of {gid}, got {k}",
                    group=gid, **where,
                )
            if k > group.max_choices:
                raise Rejection(
                    "modifier_too_many",
                    f"line {n}: {item.id} allows {group.max_choices} of {gid}, got {k}",
                    group=gid, **where,
                )
        lines.append(
            PricedLine(
                line=n, item_id=item.id, name_zh=item.name.zh, name_en=item.name.en,
                qty=sl.qty, unit_price=unit, line_total=unit * sl.qty, station=item.station,
                modifiers=tuple(mods), allergens=tuple(sorted(allergens)), note=sl.note,
            )
        )
    menu = idx.menu
    gross = sum(line.line_total for line in lines)
    if discount < 0 or discount > gross:
        raise Rejection("points_not_allowed", f"discount {discount} on an order of {gross}")
    gross -= discount
    tax = tax_of(gross, menu.tax_rate_bp, menu.tax_inclusive)
    if menu.tax_inclusive:
        subtotal, total = gross - tax, gross
    else:
        subtotal, total = gross, gross + tax
    if order.expected_total is not None and order.expected_total != total:
        raise Rejection(
            "price_mismatch", f"shown {order.expected_total}, hub total {total}",
            expected=str(order.expected_total), total=str(total),
        )
    pay = order.payment
    if pay.status == "approved" and pay.amount != total:
        raise Rejection(
            "payment_mismatch", f"paid {pay.amount}, total {total}",
            paid=str(pay.amount), total=str(total),
        )
    return PricedOrder(tuple(lines), subtotal, tax, total, menu.currency, discount)


# =========================================================================
# Station tickets
# =========================================================================


def split_by_station(lines: Iterable[PricedLine]) -> dict[str, list[TicketItem]]:
    """Which station makes what. Modifier options with their own station (a
    combo's drink, its side) become ticket items at that station, under the
    same order line: bumping line N at a station bumps all of line N there."""
    out: dict[str, list[TicketItem]] = {}
    for pl in lines:
        own_mods = tuple(Words(m.name_zh, m.name_en) for m in pl.modifiers if m.station is None)
        out.setdefault(pl.station, []).append(
            TicketItem(
                line=pl.line, item_id=pl.item_id, name_zh=pl.name_zh, name_en=pl.name_en,
                qty=pl.qty, modifiers=own_mods, allergens=pl.allergens, note=pl.note,
            )
        )
        for m in pl.modifiers:
            if m.station is not None:
                out.setdefault(m.station, []).append(
                    TicketItem(
                        line=pl.line, item_id=m.id, name_zh=m.name_zh, name_en=m.name_en,
                        qty=pl.qty, allergens=m.allergens,
                        part_of=pl.name_en if m.station != pl.station else "",
                        part_of_zh=pl.name_zh if m.station != pl.station else "",
                    )
                )
    return out


# =========================================================================
# The order state machine
# =========================================================================

# submitted -> accepted -> in_progress -> ready -> completed; rejected and
# voided are final. "submitted" exists only on the device (before the hub's
# answer); the hub stores orders from "accepted" on. "held": accepted but
# waiting for its payment ([hub.till] hold_unpaid) before the kitchen gets
# it; the payment releases it to "accepted".
TRANSITIONS: dict[str, dict[str, str]] = {
    "submitted": {"accept": "accepted", "hold": "held", "reject": "rejected"},
    "held": {"release": "accepted", "void": "voided"},
    "accepted": {"start": "in_progress", "all_done": "ready", "void": "voided"},
    "in_progress": {"all_done": "ready", "void": "voided", "reopen": "in_progress"},
    "ready": {"complete": "completed", "reopen": "in_progress", "void": "voided"},
    "completed": {"recall": "ready"},
    "rejected": {},
    "voided": {},
}
OPEN_STATES = frozenset({"accepted", "in_progress", "ready"})
"""The kitchen works on these (stations, the pickup board's "preparing"
and "ready"). A held order is not among them: no station makes it and the
diner's number is not on the board until it is paid."""
HELD_STATES = frozenset({"held"})
LIVE_STATES = OPEN_STATES | HELD_STATES
"""Not finished: what the expo screen follows and retention keeps."""
FINAL_STATES = frozenset({"rejected", "voided"})


def transition(state: str, event: str) -> str:
    """The next state, or Rejection(bad_transition)."""
    nxt = TRANSITIONS.get(state, {}).get(event)
    if nxt is None:
        raise Rejection("bad_transition", f"cannot {event} an order that is {state}", state=state)
    return nxt


class OrderProgress:
    """Item-level state of one order across its stations.

    ``tickets``: station -> list of TicketItem (with ``state`` open/done).
    The order's state follows from its stations: any work done -> in progress,
    every station done -> ready.
    """

    def __init__(self, state: str, tickets: dict[str, list[TicketItem]], acked: set[str] | None = None):
        self.state = state
        self.tickets = tickets
        self.acked = set(acked or ())

    def station_done(self, station: str) -> bool:
        return all(i.state == "done" for i in self.tickets[station])

    def all_done(self) -> bool:
        return all(self.station_done(s) for s in self.tickets)

    def statuses(self) -> tuple[StationStatus, ...]:
        return tuple(
            StationStatus(station=s, state="done" if self.station_done(s) else "open", acked=s in self.acked)
            for s in sorted(self.tickets)
        )

    def _require_station(self, station: str) -> list[TicketItem]:
        if station not in self.tickets:
            raise Rejection("not_on_station", f"station {station}", station=station)
        if self.state not in OPEN_STATES:
            raise Rejection("bad_transition", f"order is {self.state}", state=self.state)
        return self.tickets[station]

    def _set(self, station: str, lines: Iterable[int] | None, value: str) -> bool:
        items = self.tickets[station]
        changed = False
        wanted = None if lines is None else set(lines)
        new = []
        for it in items:
            if (wanted is None or it.line in wanted) and it.state != value:
                it = TicketItem(**{**_fields(it), "state": value})
                changed = True
            new.append(it)
        self.tickets[station] = new
        return changed

    def _settle(self) -> None:
        if self.all_done():
            if self.state in ("accepted", "in_progress"):
                self.state = transition(self.state, "all_done")
        elif self.state == "ready":
            self.state = transition(self.state, "reopen")
        elif self.state == "accepted" and any(
            i.state == "done" for items in self.tickets.values() for i in items
        ):
            self.state = transition(self.state, "start")

    def bump(self, station: str) -> bool:
        self._require_station(station)
        changed = self._set(station, None, "done")
        self._settle()
        return changed

    def bump_line(self, station: str, line: int) -> bool:
        items = self._require_station(station)
        if not any(i.line == line for i in items):
            raise Rejection("bad_line", f"line {line} at {station}", line=str(line))
        changed = self._set(station, [line], "done")
        self._settle()
        return changed

    def recall(self, station: str, line: int | None = None) -> bool:
        if station not in self.tickets:
            raise Rejection("not_on_station", f"station {station}", station=station)
        if self.state not in OPEN_STATES:
            raise Rejection("bad_transition", f"order is {self.state}", state=self.state)
        if line is not None and not any(i.line == line for i in self.tickets[station]):
            raise Rejection("bad_line", f"line {line} at {station}", line=str(line))
        changed = self._set(station, None if line is None else [line], "open")
        self._settle()
        return changed

    def complete(self) -> None:
        """Expo bump: the diner has the food."""
        self.state = transition(self.state, "complete")

    def recall_completed(self) -> None:
        self.state = transition(self.state, "recall")

    def void(self) -> None:
        self.state = transition(self.state, "void")

    def release(self) -> None:
        """A held order is paid: the kitchen gets it."""
        self.state = transition(self.state, "release")


def _fields(s) -> dict:
    return {f: getattr(s, f) for f in s.__struct_fields__}
