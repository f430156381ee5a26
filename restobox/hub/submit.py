"""Order submissions (``order/submit/<device>``): price, number, commit,
route to the stations, answer. Invariant 2: "accepted" is sent only after
the transaction (order, tickets, outbox rows) has committed — the
dispatcher publishes the answer after the batch's commit."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import TYPE_CHECKING

import msgspec

from restobox import contract, db
from restobox.contract import OrderReply, OrderSubmit, OrderUpdate, Rejection, StationTicket, UnpaidOrder, topics
from restobox.hub import points, printing, till
from restobox.hub.common import Effects, Request, iso, json_enc, lines_dec, outbox, stored_ticket_msg, ticket_topic, \
    unpaid_changed
from restobox.menu import MenuIndex
from restobox.orders import OrderProgress, price_order, split_by_station

if TYPE_CHECKING:
    from restobox.hub.service import Hub


def handle(hub: "Hub", fx: Effects, req: Request) -> None:
    t0 = time.perf_counter()
    sub: OrderSubmit = req.msg
    device = req.device
    # A kiosk that lost its link sends the same order again from its
    # outbox, marked offline with its provisional number: still the same
    # order, so those two fields are not part of its identity.
    body_hash = hashlib.sha256(contract.encode(
        msgspec.structs.replace(sub, offline=False, provisional_number=""))).hexdigest()
    existing = db.order_hash(db.store_db, sub.order_id)
    if existing is not None:
        stored_hash, number, bdate = existing
        if stored_hash != body_hash:
            raise Rejection("duplicate_conflict", f"{sub.order_id} is order {number} of {bdate}", number=str(number))
        row = db.Order.get_by_id(sub.order_id)
        if sub.offline and sub.provisional_number and not row.offline:
            _mark_offline(hub, fx, row, sub.provisional_number)
        fx.counters["duplicates"] += 1
        _reply(fx, req, reply_from_row(row, duplicate=True))
        return
    # An order placed while the kiosk could not reach the hub was taken
    # under the 86 list the kiosk had: the diner holds its number (and may
    # have paid), so the kitchen gets it even if an item ran out since.
    idx = _index_for(hub, sub.menu_version)
    claim = points.claim(hub, sub)
    priced = price_order(
        sub, idx, frozenset() if sub.offline else fx.sold_out,
        max_lines=hub.cfg.hub.max_lines, max_qty=hub.cfg.hub.max_qty_per_line,
        discount=claim.discount if claim else 0,
    )
    if claim is not None:
        points.check_redemption(hub, claim, priced)
    _take_stock(hub, fx, sub)
    now = hub.clock()
    bdate = hub.business_date(now)
    number = db.next_order_number(db.store_db, bdate)
    at = iso(now)
    paid = sub.payment.status == "approved" and sub.payment.method in ("card", "qr") and priced.total > 0
    # a delivery platform's order: the platform took the money and settles with the chain
    platform_paid = sub.payment.status == "approved" and sub.payment.method == "platform"
    # an unpaid order from a channel the store holds waits for its payment
    # (at the counter) before the kitchen gets it
    held = sub.payment.status != "approved" and sub.channel in hub.cfg.hub.till.hold_unpaid
    state = "held" if held else "accepted"
    payment = "paid" if paid or platform_paid else "unpaid"
    db.insert_order(
        db.store_db, id=sub.order_id, business_date=bdate, number=number, state=state,
        channel=sub.channel, service=sub.service, table=sub.table, device=device,
        lang=sub.lang, placed_at=sub.placed_at or at, accepted_at=at, updated_at=at,
        subtotal=priced.subtotal, tax=priced.tax, total=priced.total, currency=priced.currency,
        payment_method=sub.payment.method, payment_status=sub.payment.status,
        payment_reference=sub.payment.reference, offline=sub.offline,
        provisional_number=sub.provisional_number, menu_version=idx.menu.version,
        note=sub.note, body_hash=body_hash, lines=json_enc.encode(priced.lines).decode(),
        paid=priced.total if paid else 0, payment=payment,
    )
    if paid:
        till.record_kiosk_payment(fx, sub, device, number, bdate, priced.total, at)
    by_station = split_by_station(priced.lines)
    tickets = []
    rows = []
    for station, items in sorted(by_station.items()):
        t = StationTicket(
            ticket_id=f"{sub.order_id}:{station}", order_id=sub.order_id, number=number,
            station=station, channel=sub.channel, service=sub.service, table=sub.table,
            items=tuple(items), note=sub.note, accepted_at=at,
            provisional_number=sub.provisional_number if sub.offline else "",
            state="held" if held else "open", payment=payment,
        )
        tickets.append(t)
        rows.append(dict(id=t.ticket_id, order=sub.order_id, station=station, state=t.state,
                         items=json_enc.encode(t.items).decode(), revision=1, created_at=at, updated_at=at,
                         acked_at=None))
    db.insert_tickets(db.store_db, rows)
    result = points.result(hub, claim, priced) if claim is not None else None
    printing.for_new_order(hub, fx, sub, device, number, bdate, now, priced, tickets, result, held=held)
    reply = OrderReply(
        order_id=sub.order_id, status="accepted", number=number, business_date=bdate,
        subtotal=priced.subtotal, tax=priced.tax, total=priced.total, currency=priced.currency,
        lines=priced.lines, accepted_at=at, loyalty=result,
    )
    outbox(f"{sub.order_id}:accepted", "order.accepted", sub.order_id,
           {"order": msgspec.to_builtins(reply), "device": device, "channel": sub.channel,
            "service": sub.service, "table": sub.table, "payment": msgspec.to_builtins(sub.payment), "state": state,
            "offline": sub.offline, "provisional_number": sub.provisional_number,
            "menu_version": idx.menu.version}, at)
    if claim is not None and claim.member:
        points.post(fx, claim, result, sub.order_id, number, bdate, at)
    _reply(fx, req, reply)
    for t in tickets:
        fx.publish(ticket_topic(t.station, t.state), t)
    fx.publish(topics.ORDER_UPDATE, OrderUpdate(
        order_id=sub.order_id, number=number, business_date=bdate, state=state,
        stations=OrderProgress(state, dict(by_station)).statuses(), at=at,
        payment=payment, paid=priced.total if paid else 0, total=priced.total, channel=sub.channel, table=sub.table,
        provisional_number=sub.provisional_number if sub.offline else "",
    ))
    if not paid and not platform_paid and priced.total > 0 and bdate == fx.unpaid_date:  # the till's list of orders to take money for
        fx.unpaid[sub.order_id] = UnpaidOrder(
            order_id=sub.order_id, number=number, channel=sub.channel, service=sub.service, table=sub.table,
            total=priced.total, due=priced.total, state=state, accepted_at=at,
            provisional_number=sub.provisional_number if sub.offline else "")
    if not held:  # a held order is not on the pickup board until it is paid
        fx.board[sub.order_id] = (number, "accepted")
        fx.board_changed = True
    else:
        fx.counters["held"] += 1
    fx.counters["accepted"] += 1
    fx.counters["accept_us_total"] += int((time.perf_counter() - t0) * 1e6)


def refusal(order_id: str, r: Rejection) -> OrderReply:
    detail = {"detail": r.detail, **r.extra} if r.detail else dict(r.extra)
    return OrderReply(order_id=order_id, status="rejected", reason=r.reason, message=r.words, detail=detail)


def reply_from_row(row: db.Order, duplicate: bool) -> OrderReply:
    return OrderReply(
        order_id=row.id, status="accepted", number=row.number, business_date=row.business_date,
        subtotal=row.subtotal, tax=row.tax, total=row.total, currency=row.currency,
        lines=lines_dec.decode(row.lines), duplicate=duplicate, accepted_at=row.accepted_at,
        loyalty=points.of_order(row.id),
    )


def _reply(fx: Effects, req: Request, reply: OrderReply) -> None:
    # Always the device's own reply topic: a response topic chosen by the
    # client could otherwise make the hub publish anywhere (MQTT 5 §4.10).
    fx.publish(topics.order_reply(req.device), reply, correlation=req.correlation, answer=True)


def _index_for(hub: "Hub", version: str) -> MenuIndex:
    """The menu an order is priced by: the one it says it was placed under,
    if that was replaced less than ``menu_grace_s`` ago, else the current
    one (which then refuses a stale total: price_mismatch)."""
    if version and version != hub.menu.version:
        prev = hub.previous_menus.get(version)
        if prev is not None and time.monotonic() - prev[1] <= hub.cfg.hub.menu_grace_s:
            return prev[0]
    return hub.idx


def _mark_offline(hub: "Hub", fx: Effects, order: db.Order, provisional: str) -> None:
    """The kiosk gave up waiting and showed the diner a provisional number,
    but its first copy of the order reached the hub: record the number and
    show it on the kitchen's tickets, so the diner's number and the
    kitchen's match, and tell the chain's cloud (which has the order as
    accepted, without the number the diner holds)."""
    now = iso(hub.clock())
    db.Order.update(offline=True, provisional_number=provisional, updated_at=now).where(
        db.Order.id == order.id).execute()
    outbox(f"{order.id}:provisional", "order.provisional", order.id,
           {"order_id": order.id, "number": order.number, "provisional_number": provisional, "at": now}, now)
    order.offline, order.provisional_number = True, provisional
    unpaid_changed(fx, order)
    for t in db.Ticket.select().where((db.Ticket.order == order.id) & (db.Ticket.state.in_(("open", "held")))):
        t.revision += 1
        db.Ticket.update(revision=t.revision, updated_at=now).where(db.Ticket.id == t.id).execute()
        fx.publish(ticket_topic(t.station, t.state), stored_ticket_msg(order, t))
    fx.counters["marked_offline"] += 1


def _take_stock(hub: "Hub", fx: Effects, sub: OrderSubmit) -> None:
    """Count down the portions the order takes; refuse what is not there any
    more (an offline order is served anyway: the diner holds its number).
    What reaches 0 is sold out (86, by "stock")."""
    if not hub.stock_limited:
        return
    want: Counter = Counter()
    for ln in sub.lines:
        want[ln.item_id] += ln.qty
        for mod in ln.modifiers:
            want[mod] += ln.qty
    rows = {r.item_id: r for r in db.StockLevel.select().where(db.StockLevel.item_id.in_(list(want)))}
    if not rows:
        return
    if not sub.offline:
        for iid, row in rows.items():
            if row.remaining < want[iid]:
                item = iid in hub.idx.items
                raise Rejection("item_unavailable" if item else "modifier_unavailable",
                                f"{iid}: {row.remaining} left, {want[iid]} asked",
                                **({"item_id": iid} if item else {"modifier": iid}))
    now = iso(hub.clock())
    for iid, row in rows.items():
        left = row.remaining - want[iid]
        db.StockLevel.update(remaining=max(0, left), updated_at=now).where(db.StockLevel.item_id == iid).execute()
        if left <= 0 and iid not in fx.sold_out:
            db.SoldOutItem.insert(item_id=iid, since=now, by="stock").on_conflict_ignore().execute()
            fx.sold_out.add(iid)
            fx.sold_out_changed = True
            outbox(f"stock:{iid}:{now}", "menu.eighty_six", None, {"item_id": iid, "by": "stock", "at": now}, now)
