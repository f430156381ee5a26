"""What every message handler of the hub shares: the request it is given,
the effects it may have besides the database, and small helpers.

A handler changes the store database inside its message's savepoint and
says everything else it wants to happen — messages to publish, the pickup
board, the till's unpaid orders, the 86 list, a new menu, counters — in its
:class:`Effects`. The
dispatcher (restobox/hub/service.py) merges those into the batch only when
the handler returned: a message that fails leaves no trace but its refusal.
"""

from __future__ import annotations

from collections import ChainMap, Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import msgspec

from restobox import contract, db
from restobox.bus import Incoming
from restobox.contract import OrderUpdate, PricedLine, RejectNotice, StationTicket, TicketItem, UnpaidOrder, topics
from restobox.menu import Menu, MenuIndex
from restobox.orders import OPEN_STATES, OrderProgress

if TYPE_CHECKING:
    from restobox.hub.service import Hub

lines_dec = msgspec.json.Decoder(tuple[PricedLine, ...])
items_dec = msgspec.json.Decoder(list[TicketItem])
json_enc = msgspec.json.Encoder()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


@dataclass(slots=True)
class Out:
    """A message to publish once the batch has committed. ``answer``: a
    reply to a request, which the broker must have before the request is
    acknowledged."""

    topic: str
    payload: bytes
    retain: bool = False
    correlation: bytes | None = None
    answer: bool = False


@dataclass(slots=True)
class Request:
    """One message as its handler gets it: decoded once, its device (or
    station) read from the topic once."""

    incoming: Incoming
    device: str
    msg: Any

    @property
    def correlation(self) -> bytes | None:
        return self.incoming.correlation


@dataclass
class Effects:
    """What one message does besides the database, kept apart until its
    savepoint is released. ``sold_out`` and ``board`` start as copies of the
    batch's, so a handler sees what the messages before it did. The till's
    unpaid orders (every unpaid order of the day: too many to copy per
    message) are the hub's map under the batch's changes (``unpaid_base``)
    and this message's changes (``unpaid``: order id -> its entry, or None
    when it left the list); :func:`unpaid_changed` keeps them."""

    sold_out: set[str]
    board: dict[str, tuple[int, str]]  # order_id -> (number, state), open orders
    unpaid_base: Mapping[str, UnpaidOrder | None] = field(default_factory=dict)
    unpaid_date: str = ""  # the business day the unpaid list is of
    unpaid: dict[str, UnpaidOrder | None] = field(default_factory=dict)
    out: list[Out] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    rejects: list[RejectNotice] = field(default_factory=list)
    board_changed: bool = False
    sold_out_changed: bool = False
    menu: tuple[Menu, MenuIndex] | None = None  # a new menu, in use from the next message on
    stock_limited: bool | None = None

    def publish(self, topic: str, msg: msgspec.Struct, *, correlation: bytes | None = None,
                answer: bool = False) -> None:
        self.out.append(Out(topic, contract.encode(msg), correlation=correlation, answer=answer))


@dataclass
class Batch:
    """The messages committed in one transaction, and what they did."""

    sold_out: set[str]
    board: dict[str, tuple[int, str]]
    unpaid_of: Mapping[str, UnpaidOrder] = field(default_factory=dict)  # the hub's, as committed
    unpaid_date: str = ""
    unpaid: dict[str, UnpaidOrder | None] = field(default_factory=dict)  # this batch's changes to it
    out: list[Out] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    rejects: list[RejectNotice] = field(default_factory=list)
    board_changed: bool = False
    sold_out_changed: bool = False
    menu_changed: bool = False
    menu_before: tuple | None = None  # (menu, idx, previous versions) to restore if the batch fails

    def begin(self) -> Effects:
        return Effects(sold_out=set(self.sold_out), board=dict(self.board),
                       unpaid_base=ChainMap(self.unpaid, self.unpaid_of), unpaid_date=self.unpaid_date)

    def merge(self, fx: Effects) -> None:
        self.sold_out, self.board = fx.sold_out, fx.board
        self.unpaid.update(fx.unpaid)
        self.out += fx.out
        self.counters.update(fx.counters)
        self.rejects += fx.rejects
        self.board_changed |= fx.board_changed
        self.sold_out_changed |= fx.sold_out_changed


@dataclass(frozen=True)
class Route:
    """One kind of message the hub reads: where it comes from, what it must
    decode to, who handles it, and how a refusal is answered (requests
    only; everything else is refused with a notice on hub/reject)."""

    kind: str
    topic: str  # the subscription (topic filter)
    scope: str | None  # contract.parse_topic's kind the topic must have; None: a fixed topic
    type: type[contract.Message]
    handle: Callable[["Hub", Effects, Request], None]
    answer: Callable[[str, str, contract.Rejection], msgspec.Struct] | None = None
    reply_topic: Callable[[str], str] | None = None
    id_field: str = ""  # the field that names what a refusal is about (order, command, query)
    max_bytes: int | None = None  # None: [hub] max_payload_bytes


# ------------------------------------------------------------------ helpers
def outbox(event_id: str, kind: str, order_id: str | None, payload: dict, at: str) -> None:
    """A row for the chain's cloud, in the message's transaction."""
    db.insert_outbox(db.store_db, event_id=event_id, kind=kind, order_id=order_id,
                     payload=json_enc.encode(payload).decode(), created_at=at)


def progress(order: db.Order, tickets: dict[str, db.Ticket]) -> OrderProgress:
    return OrderProgress(order.state, {s: items_dec.decode(t.items) for s, t in tickets.items()},
                         {s for s, t in tickets.items() if t.acked_at})


def ticket_topic(station: str, state: str) -> str:
    """Where a ticket goes: its station's topic, or the expo screen's alone
    while its order is held (waiting for its payment)."""
    return topics.station_ticket(contract.EXPO_STATION if state == "held" else station)


def ticket_msg(order: db.Order, t: db.Ticket, items, state: str, revision: int) -> StationTicket:
    return StationTicket(
        ticket_id=t.id, order_id=order.id, number=order.number, station=t.station,
        channel=order.channel, service=order.service, table=order.table, items=tuple(items),
        note=order.note, accepted_at=order.accepted_at, state=state, revision=revision,
        provisional_number=order.provisional_number if order.offline else "",
        payment=order.payment,
    )


def order_update(order: db.Order, state: str, stations, now: str, reason: str | None = None) -> OrderUpdate:
    """The order/update message of an order (its payment as the row has it)."""
    return OrderUpdate(
        order_id=order.id, number=order.number, business_date=order.business_date, state=state,
        stations=stations, reason=reason, at=now, payment=order.payment, paid=order.paid, total=order.total,
        channel=order.channel, table=order.table,
        provisional_number=order.provisional_number if order.offline else "")


def stored_ticket_msg(order: db.Order, t: db.Ticket) -> StationTicket:
    """A ticket as it is stored now."""
    return ticket_msg(order, t, items_dec.decode(t.items), t.state, t.revision)


def order_changed(fx: Effects, order: db.Order, state: str, prog: OrderProgress, now: str,
                  reason: str | None = None) -> None:
    """Store an order's new state (with its outbox row) and tell everyone;
    keep the pickup board in step."""
    if state != order.state:
        db.Order.update(state=state, updated_at=now).where(db.Order.id == order.id).execute()
        # a held order paid: "released" (the cloud has its order.accepted, with state "held")
        event = "released" if order.state == "held" else state
        outbox(f"{order.id}:{event}:{now}", f"order.{event}", order.id,
               {"order_id": order.id, "number": order.number, "state": state, "reason": reason, "at": now}, now)
        order.state = state
    fx.publish(topics.ORDER_UPDATE, order_update(order, state, prog.statuses(), now, reason))
    unpaid_changed(fx, order)
    if state in OPEN_STATES:
        new = (order.number, state)
        if fx.board.get(order.id) != new:
            fx.board[order.id] = new
            fx.board_changed = True
    elif order.id in fx.board:
        del fx.board[order.id]
        fx.board_changed = True


def unpaid_entry(order: db.Order) -> UnpaidOrder | None:
    """The order as the till's unpaid list shows it, or None when it has
    nothing left to pay (paid, refunded, voided, rejected, free)."""
    due = order.total - order.paid
    if order.payment != "unpaid" or order.state in ("voided", "rejected") or due <= 0:
        return None
    return UnpaidOrder(
        order_id=order.id, number=order.number, channel=order.channel, service=order.service, table=order.table,
        total=order.total, paid=order.paid, due=due, state=order.state, accepted_at=order.accepted_at or "",
        provisional_number=order.provisional_number if order.offline else "")


def unpaid_changed(fx: Effects, order: db.Order) -> None:
    """Keep the till's unpaid list in step with an order just changed (its
    row as stored now): it comes in, changes, or leaves. Orders of another
    business day than the list's are not on it."""
    if order.business_date != fx.unpaid_date:
        return
    entry = unpaid_entry(order)
    now = fx.unpaid[order.id] if order.id in fx.unpaid else fx.unpaid_base.get(order.id)
    if entry != now:
        fx.unpaid[order.id] = entry
