"""The payment ledger: the counter's requests (``till/<device>/request``):
pay, refund, open and close a shift; and the ledger row of an order the
kiosk took the money for.

Every payment and refund is a row of ``payment`` (db.Payment), appended in
the transaction that changes its order's ``paid`` and ``payment`` (the
ledger's sums for the order, kept with it so nothing reads the ledger to
show an order) and writes its outbox event. The request id is the
idempotency key: a request already carried out is answered again from its
rows (``duplicate``), never recorded twice; a refused one leaves nothing
(the dispatcher rolls its savepoint back) and is refused again if it comes
again. Paying a held order releases it to the kitchen in the same
transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from restobox import db
from restobox.contract import (LedgerEntry, OrderSubmit, PaymentUpdate, RefundLine, Rejection, ShiftSummary,
                               TillReply, TillRequest, topics)
from restobox.hub import points, printing
from restobox.hub.common import (Effects, Request, iso, json_enc, lines_dec, order_changed, outbox, progress,
                                 stored_ticket_msg, ticket_topic)
from restobox.hub.staff import _order_for, void_order

if TYPE_CHECKING:
    from restobox.hub.service import Hub

log = logging.getLogger("restobox.hub")

refund_lines_dec = msgspec.json.Decoder(tuple[RefundLine, ...])


class TillRefusal(Rejection):
    """A refusal that carries the order's payment as it stands, so the
    counter is told (e.g. already_paid: paid, and by which entries)."""

    def __init__(self, reason: str, detail: str = "", *, order: db.Order | None = None,
                 entries: tuple[LedgerEntry, ...] = ()) -> None:
        super().__init__(reason, detail)
        self.order = _order_fields(order) if order is not None else {}
        if entries:
            self.order["entries"] = entries


def refusal(request_id: str, r: Rejection) -> TillReply:
    return TillReply(request_id=request_id, ok=False, reason=r.reason, message=r.words,
                     **getattr(r, "order", {}))


def payment_state(total: int, paid_in: int, refunded: int) -> str:
    """contract.PaymentState from the ledger's sums."""
    if paid_in <= 0:
        return "unpaid"
    if refunded <= 0:
        return "paid" if paid_in >= total else "unpaid"
    return "refunded" if refunded >= paid_in else "partly_refunded"


def due_of(total: int, paid_in: int, refunded: int) -> int:
    """What is still to pay: nothing once anything was given back (a
    refund settles the order)."""
    return 0 if refunded > 0 else max(0, total - paid_in)


def handle(hub: "Hub", fx: Effects, req: Request) -> None:
    r: TillRequest = req.msg
    now = iso(hub.clock())
    if db.processed(db.store_db, r.request_id):
        reply = _again(r)
        fx.counters["till.duplicates"] += 1
    else:
        if r.kind == "pay":
            reply = _pay(hub, fx, r, req.device, now)
        elif r.kind == "refund":
            reply = _refund(hub, fx, r, req.device, now)
        elif r.kind == "shift_open":
            reply = _shift_open(hub, fx, r, req.device, now)
        else:
            reply = _shift_close(hub, fx, r, req.device, now)
        db.mark_processed(db.store_db, r.request_id, now)
        fx.counters[f"till.{r.kind}"] += 1
    fx.publish(topics.till_reply(req.device), reply, correlation=req.correlation, answer=True)


# ------------------------------------------------------------------ rows
def entry(row: db.Payment) -> LedgerEntry:
    return LedgerEntry(entry_id=row.entry_id, order_id=row.order_id, kind=row.kind, method=row.method,
                       amount=row.amount, tendered=row.tendered, reference=row.reference, staff=row.staff,
                       device=row.device, shift_id=row.shift_id, reason=row.reason, at=row.at)


def _entries(order_id: str, kind: str | None = None) -> tuple[LedgerEntry, ...]:
    q = db.Payment.select().where(db.Payment.order_id == order_id, ~db.Payment.stray)
    if kind is not None:
        q = q.where(db.Payment.kind == kind)
    return tuple(entry(p) for p in q.order_by(db.Payment.seq))


def _order_fields(order: db.Order) -> dict:
    # the sums _record just read, when it ran for this order (read again otherwise)
    sums = getattr(order, "ledger_sums", None)
    paid_in, refunded = sums if sums is not None else db.ledger_sums(db.store_db, order.id)
    return dict(order_id=order.id, number=order.number, total=order.total,
                payment=payment_state(order.total, paid_in, refunded), paid=paid_in - refunded,
                due=due_of(order.total, paid_in, refunded))


def _record(fx: Effects, order: db.Order, rows: list[dict], now: str) -> tuple[LedgerEntry, ...]:
    """Append ``rows`` to the ledger with their outbox events, bring the
    order's ``paid`` and ``payment`` in step, and tell the counters."""
    out = []
    for row in rows:
        row = {"tendered": 0, "reference": "", "lines": "", "reason": "", "staff": "", "device": "",
               "shift_id": "", "offline": False, "stray": False, **row, "order_id": order.id,
               "business_date": order.business_date, "recorded_at": now}
        db.insert_payment(db.store_db, **row)
        e = LedgerEntry(entry_id=row["entry_id"], order_id=order.id, kind=row["kind"], method=row["method"],
                        amount=row["amount"], tendered=row["tendered"], reference=row["reference"],
                        staff=row["staff"], device=row["device"], shift_id=row["shift_id"], reason=row["reason"],
                        at=row["at"])
        out.append(e)
        outbox(e.entry_id, "payment.recorded" if e.kind == "payment" else "payment.refunded", order.id,
               {**msgspec.to_builtins(e), "number": order.number, "business_date": order.business_date,
                "request_id": row["request_id"], "offline": row["offline"], "stray": row["stray"],
                "lines": msgspec.to_builtins(refund_lines_dec.decode(row["lines"])) if row["lines"] else [],
                "recorded_at": now}, now)
        fx.counters[f"ledger.{e.kind}.{e.method}"] += 1
    paid_in, refunded = order.ledger_sums = db.ledger_sums(db.store_db, order.id)
    order.paid = paid_in - refunded
    order.payment = payment_state(order.total, paid_in, refunded)
    db.set_order_paid(db.store_db, order.id, order.paid, order.payment, now)
    fx.publish(topics.PAYMENT_UPDATE, PaymentUpdate(
        order_id=order.id, number=order.number, business_date=order.business_date, payment=order.payment,
        paid=order.paid, total=order.total, entries=tuple(out), at=now))
    return tuple(out)


def record_kiosk_payment(fx: Effects, sub: OrderSubmit, device: str, number: int, bdate: str, amount: int,
                         at: str) -> None:
    """An order the kiosk took the money for (card or QR approved): its
    ledger row, in the transaction that accepts it (the order's ``paid``
    and ``payment`` are inserted with it)."""
    e = LedgerEntry(entry_id=f"{sub.order_id}:paid", order_id=sub.order_id, kind="payment",
                    method=sub.payment.method, amount=amount, reference=sub.payment.reference, device=device,
                    at=sub.placed_at or at)
    db.insert_payment(db.store_db, entry_id=e.entry_id, request_id=sub.order_id, order_id=sub.order_id,
                      business_date=bdate, kind="payment", method=e.method, amount=amount, tendered=0,
                      reference=e.reference, lines="", reason="", staff="", device=device, shift_id="",
                      offline=sub.offline, at=e.at, recorded_at=at, stray=False)
    outbox(e.entry_id, "payment.recorded", sub.order_id,
           {**msgspec.to_builtins(e), "number": number, "business_date": bdate, "request_id": sub.order_id,
            "offline": sub.offline, "lines": [], "recorded_at": at}, at)
    fx.publish(topics.PAYMENT_UPDATE, PaymentUpdate(
        order_id=sub.order_id, number=number, business_date=bdate, payment="paid", paid=amount, total=amount,
        entries=(e,), at=at))
    fx.counters[f"ledger.{e.kind}.{e.method}"] += 1


def _shift_checked(r: TillRequest, device: str) -> str:
    """The shift a payment or refund is taken in: the counter's open one
    (or, taken offline, one that has closed since)."""
    if r.shift_id is None:
        return ""
    shift = db.row_by(db.store_db, db.Shift, "id", r.shift_id)
    if shift is None or shift.device != device or (shift.closed_at is not None and not r.offline):
        raise Rejection("shift_not_open", f"shift {r.shift_id} of {device}")
    return shift.id


# ------------------------------------------------------------------- pay
def _pay(hub: "Hub", fx: Effects, r: TillRequest, device: str, now: str) -> TillReply:
    order = _order_for(hub, r)
    if order.state in ("voided", "rejected"):
        raise TillRefusal("bad_transition", f"order {order.number} is {order.state}", order=order)
    paid_in, refunded = db.ledger_sums(db.store_db, order.id)
    due = due_of(order.total, paid_in, refunded)
    if due == 0:
        raise TillRefusal("already_paid", f"order {order.number}: {paid_in} paid of {order.total}", order=order,
                          entries=_entries(order.id, "payment"))
    if not r.tenders:
        raise TillRefusal("amount_mismatch", f"no tenders; {due} due", order=order)
    if sum(t.amount for t in r.tenders) != due:
        raise TillRefusal("amount_mismatch", f"tendered {sum(t.amount for t in r.tenders)}, {due} due", order=order)
    for t in r.tenders:
        if t.method == "cash" and t.tendered and t.tendered < t.amount:
            raise TillRefusal("tendered_short", f"{t.tendered} handed over for {t.amount}", order=order)
    _vouchers_checked(order, r.tenders)
    shift = _shift_checked(r, device)
    at = r.at or now
    refs = [t.reference or t.intent_id for t in r.tenders]
    for n, t in enumerate(r.tenders, start=1):
        if t.method == "points":  # the member's points, taken in this transaction
            refs[n - 1] = points.pay_with(hub, fx, r.member_phone, t.amount, f"{r.request_id}:{n}", order, at)
    rows = [dict(entry_id=f"{r.request_id}:{n}", request_id=r.request_id, kind="payment", method=t.method,
                 amount=t.amount, tendered=t.tendered if t.method == "cash" else 0,
                 reference=refs[n - 1], staff=r.staff, device=device, shift_id=shift,
                 offline=r.offline, at=at)
            for n, t in enumerate(r.tenders, start=1)]
    entries = _record(fx, order, rows, now)
    if order.state == "held":
        _release(hub, fx, order, now)
    else:
        _changed(fx, order, now)
    printing.paid_receipt(hub, fx, order, device, r.request_id, now)
    return _reply(r, order, entries)


def _vouchers_checked(order: db.Order, tenders) -> None:
    """A group-buy voucher pays one order once: a ``voucher`` tender names
    its code (``reference``) and the platform's redemption (``intent_id``),
    and a code the ledger has as a payment not refunded is refused
    (voucher_used), whichever counter sends it: the hub records one request
    at a time, so of two counters with the same code one is refused. The
    ledger's voucher rows are read whole (no index on ``reference``:
    vouchers are few, and this runs only for a payment with one)."""
    codes = []
    for t in tenders:
        if t.method != "voucher":
            continue
        if not t.reference or not t.intent_id:
            raise TillRefusal("bad_schema", "a voucher tender needs its code (reference) and its redemption "
                                            "(intent_id)", order=order)
        if t.reference in codes:
            raise TillRefusal("voucher_used", f"voucher {t.reference} twice in one payment", order=order)
        codes.append(t.reference)
    for code in codes:
        used = db.store_db.execute_sql(
            'SELECT "order_id", SUM(CASE WHEN "kind" = \'payment\' THEN "amount" ELSE -"amount" END) AS "net" '
            'FROM "payment" WHERE "method" = \'voucher\' AND "reference" = ? AND NOT "stray" '
            'GROUP BY "order_id" HAVING "net" > 0 LIMIT 1', (code,)).fetchone()
        if used is not None:
            raise TillRefusal("voucher_used", f"voucher {code} pays order {used[0]} ({used[1]} fen)", order=order)


def _release(hub: "Hub", fx: Effects, order: db.Order, now: str) -> None:
    """A held order is paid: its tickets go to their stations (and their
    printers), it goes on the board, the expo sees it accepted."""
    tickets = {t.station: t for t in db.Ticket.select().where(db.Ticket.order == order.id)}
    prog = progress(order, tickets)
    prog.release()
    msgs = []
    for t in tickets.values():
        if t.state != "held":
            continue
        t.state, t.revision = "open", t.revision + 1
        # created_at: when the kitchen got it (the fallback to paper counts from it)
        db.Ticket.update(state="open", revision=t.revision, created_at=now, updated_at=now).where(
            db.Ticket.id == t.id).execute()
        msgs.append(stored_ticket_msg(order, t))
    for m in msgs:
        fx.publish(ticket_topic(m.station, m.state), m)
    printing.kitchen_tickets(hub, fx, order.id, hub.clock(), msgs)
    order_changed(fx, order, prog.state, prog, now, reason="paid")
    fx.counters["released"] += 1


def _changed(fx: Effects, order: db.Order, now: str) -> None:
    """order/update with the order's new payment, its state unchanged."""
    tickets = {t.station: t for t in db.rows_by(db.store_db, db.Ticket, "order_id", order.id)}
    order_changed(fx, order, order.state, progress(order, tickets), now)


def _reply(r: TillRequest, order: db.Order, entries: tuple[LedgerEntry, ...], duplicate: bool = False) -> TillReply:
    return TillReply(request_id=r.request_id, ok=True, **_order_fields(order), entries=entries,
                     change=sum(max(0, e.tendered - e.amount) for e in entries if e.kind == "payment"),
                     duplicate=duplicate)


# ---------------------------------------------------------------- refund
def pin_ok(path: str | None, pin: str) -> str | None:
    """The manager whose PIN this is (``name:sha256`` lines of ``path``), or
    None. Every line is compared, each in constant time: how long it takes
    says nothing of which PIN is near."""
    if not path or not pin:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        log.error("cannot read the manager PIN file %s: %s", path, exc)
        return None
    given = hashlib.sha256(pin.encode()).hexdigest().encode()
    found = None
    for line in text.splitlines():
        name, sep, digest = line.strip().rpartition(":")
        if not sep or not name:
            continue
        if hmac.compare_digest(given, digest.strip().lower().encode()) and found is None:
            found = name
    return found


def _refund(hub: "Hub", fx: Effects, r: TillRequest, device: str, now: str) -> TillReply:
    order = _order_for(hub, r)
    if not r.reason.strip():
        raise TillRefusal("refund_reason_required", order=order)
    manager = pin_ok(hub.cfg.hub.till.manager_pin_file, r.manager_pin)
    if manager is None:
        raise TillRefusal("pin_wrong", f"refund of order {order.number} by {r.staff or device}", order=order)
    paid_in, refunded = db.ledger_sums(db.store_db, order.id)
    net = paid_in - refunded
    if paid_in == 0:
        raise TillRefusal("not_paid", f"order {order.number}", order=order)
    if r.lines:
        amount = _lines_amount(order, r.lines, net)
    elif r.amount is not None:
        amount = r.amount
    else:
        amount = net
    if amount <= 0 or amount > net:
        raise TillRefusal("refund_exceeds_paid", f"refund {amount}, {net} paid and not refunded", order=order)
    shift = _shift_checked(r, device)
    at = r.at or now
    if r.tenders:
        if sum(t.amount for t in r.tenders) != amount:
            raise TillRefusal("amount_mismatch", f"tenders give back {sum(t.amount for t in r.tenders)}, "
                                                 f"refund {amount}", order=order)
        back = [(t.method, t.amount, t.reference or t.intent_id) for t in r.tenders]
    else:
        back = _as_paid(order.id, amount)
    back = _points_back(hub, fx, order, r.request_id, back, at)
    from restobox.hub import phonepay  # (it uses this module)

    back = phonepay.refund_through_gateway(fx, order, back, f"counter: {r.reason.strip()}", now)
    lines = json_enc.encode(r.lines).decode() if r.lines else ""
    reason = f"{r.reason.strip()} (PIN {manager})"[:200]
    rows = [dict(entry_id=f"{r.request_id}:{n}", request_id=r.request_id, kind="refund", method=method,
                 amount=amt, reference=ref, lines=lines if n == 1 else "", reason=reason, staff=r.staff,
                 device=device, shift_id=shift, offline=r.offline, at=at)
            for n, (method, amt, ref) in enumerate(back, start=1)]
    entries = _record(fx, order, rows, now)
    if r.void:
        void_order(fx, order, f"void with refund: {r.reason.strip()}", now)
    else:
        _changed(fx, order, now)
    fx.counters["refunds"] += 1
    return _reply(r, order, entries)


def _points_back(hub: "Hub", fx: Effects, order: db.Order, request_id: str,
                 back: list[tuple[str, int, str]], at: str) -> list[tuple[str, int, str]]:
    """Money given back in points goes back to the member's balance, in
    whole points; what is less than a point comes back in cash."""
    out = []
    for method, amount, ref in back:
        if method != "points":
            out.append((method, amount, ref))
            continue
        worth = points.give_back(hub, fx, order, amount, f"{request_id}:points-back", at)
        if worth:
            out.append(("points", worth, ref))
        if amount > worth:
            out.append(("cash", amount - worth, ""))
    return out


def _lines_amount(order: db.Order, chosen: tuple[RefundLine, ...], net: int) -> int:
    """What the chosen lines cost on this order: each line's share of the
    order's total (so a discount and a tax added on top are shared the
    same way); every line whole, the net paid. A line may be refunded up
    to the quantity sold less what was refunded before."""
    priced = {pl.line: pl for pl in lines_dec.decode(order.lines)}
    before: dict[int, int] = {}
    for (text,) in (db.Payment.select(db.Payment.lines)
                    .where(db.Payment.order_id == order.id, db.Payment.kind == "refund", db.Payment.lines != "")
                    .tuples()):
        for rl in refund_lines_dec.decode(text):
            before[rl.line] = before.get(rl.line, 0) + rl.qty
    want: dict[int, int] = {}
    for rl in chosen:
        if rl.line not in priced:
            raise TillRefusal("bad_line", f"order {order.number} has no line {rl.line}", order=order)
        want[rl.line] = want.get(rl.line, 0) + rl.qty
    for line, qty in want.items():
        if qty + before.get(line, 0) > priced[line].qty:
            raise TillRefusal("refund_exceeds_paid", f"line {line}: {qty} asked, {priced[line].qty} sold, "
                                                     f"{before.get(line, 0)} refunded before", order=order)
    if all(want.get(n, 0) + before.get(n, 0) == pl.qty for n, pl in priced.items()):
        return net  # the rest of the order
    gross = sum(pl.line_total for pl in priced.values())
    value = sum(priced[n].unit_price * q for n, q in want.items())
    return (value * order.total + gross // 2) // gross if gross else 0


def _as_paid(order_id: str, amount: int) -> list[tuple[str, int, str]]:
    """Give ``amount`` back the way it was paid: from the last tender paid
    backwards, each method (each voucher by its code) at most what it paid
    and has not had back."""
    left: dict[tuple[str, str], int] = {}
    refs: dict[tuple[str, str], str] = {}
    for p in db.Payment.select().where(db.Payment.order_id == order_id, ~db.Payment.stray).order_by(db.Payment.seq):
        sign = 1 if p.kind == "payment" else -1
        # each voucher by its code: it goes back as itself (voucher_used counts by code)
        key = (p.method, p.reference if p.method == "voucher" else "")
        left[key] = left.get(key, 0) + sign * p.amount
        if p.kind == "payment":
            refs[key] = p.reference
    out = []
    for key in reversed(list(left)):
        if amount <= 0:
            break
        take = min(amount, left[key])
        if take > 0:
            out.append((key[0], take, refs.get(key, "")))
            amount -= take
    return out


# ---------------------------------------------------------------- shifts
def summary(shift: db.Shift) -> ShiftSummary:
    cash_in, cash_out = db.store_db.execute_sql(
        'SELECT COALESCE(SUM(CASE WHEN "kind" = \'payment\' THEN "amount" END), 0), '
        'COALESCE(SUM(CASE WHEN "kind" = \'refund\' THEN "amount" END), 0) '
        'FROM "payment" WHERE "shift_id" = ? AND "method" = \'cash\'', (shift.id,)).fetchone()
    expected = shift.float_fen + cash_in - cash_out
    counted = shift.counted_fen
    return ShiftSummary(shift_id=shift.id, device=shift.device, staff=shift.staff, opened_at=shift.opened_at,
                        closed_at=shift.closed_at or "", float_fen=shift.float_fen, cash_in=cash_in,
                        cash_out=cash_out, expected=expected, counted=counted,
                        over_short=None if counted is None else counted - expected)


def _shift_open(hub: "Hub", fx: Effects, r: TillRequest, device: str, now: str) -> TillReply:
    if r.shift_id is None:
        raise Rejection("bad_schema", "shift_open needs its shift_id")
    if db.Shift.get_or_none(db.Shift.id == r.shift_id) is not None:
        raise Rejection("shift_already_open", f"shift {r.shift_id} was opened before")
    if db.Shift.select().where(db.Shift.device == device, db.Shift.closed_at.is_null()).exists():
        raise Rejection("shift_already_open", f"{device} has a shift open")
    at = r.at or now
    db.Shift.insert(id=r.shift_id, device=device, staff=r.staff, business_date=hub.business_date(hub.clock()),
                    opened_at=at, closed_at=None, float_fen=r.float_fen).execute()
    s = summary(db.Shift.get_by_id(r.shift_id))
    outbox(f"{r.shift_id}:opened", "till.shift_opened", None, msgspec.to_builtins(s), now)
    return TillReply(request_id=r.request_id, ok=True, shift=s)


def _shift_close(hub: "Hub", fx: Effects, r: TillRequest, device: str, now: str) -> TillReply:
    if r.counted_fen is None:
        raise Rejection("bad_schema", "shift_close needs counted_fen")
    q = db.Shift.select().where(db.Shift.device == device)
    shift = (q.where(db.Shift.id == r.shift_id) if r.shift_id else q.where(db.Shift.closed_at.is_null())).first()
    if shift is None or shift.closed_at is not None:
        raise Rejection("shift_not_open", f"shift {r.shift_id or '(open one)'} of {device}")
    shift.closed_at, shift.counted_fen = r.at or now, r.counted_fen
    s = summary(shift)
    db.Shift.update(closed_at=shift.closed_at, counted_fen=s.counted, expected_fen=s.expected).where(
        db.Shift.id == shift.id).execute()
    outbox(f"{shift.id}:closed", "till.shift_closed", None, msgspec.to_builtins(s), now)
    return TillReply(request_id=r.request_id, ok=True, shift=s)


# ---------------------------------------------------------------- repeats
def _again(r: TillRequest) -> TillReply:
    """A request carried out before, answered from what it recorded."""
    rows = list(db.Payment.select().where(db.Payment.request_id == r.request_id).order_by(db.Payment.seq))
    if rows:
        order = db.Order.get_or_none(db.Order.id == rows[0].order_id)
        if order is not None:
            return _reply(r, order, tuple(entry(p) for p in rows), duplicate=True)
        return TillReply(request_id=r.request_id, ok=True, order_id=rows[0].order_id,
                         entries=tuple(entry(p) for p in rows), duplicate=True)
    shift = db.Shift.get_or_none(db.Shift.id == r.shift_id) if r.shift_id else None
    return TillReply(request_id=r.request_id, ok=True, shift=summary(shift) if shift else None, duplicate=True)
