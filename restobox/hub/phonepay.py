"""Phone payment through the aggregated gateway: the intents and what the
gateway said (docs/paygate.md).

The table QR page asks for the payment of an order (``pay/<device>/request``,
PayRequest). The hub answers the order's open intent, or makes one for what
is due: its merchant number (the gateway's out_trade_no) is the idempotency
key there, so every retry of the page is the same payment, never a new one.
An order has at most one open intent; one that has expired is left to the
sync service to close, and the next request makes the next attempt.

What the gateway says comes back as a PayResult (``pay/result``): its
notification passed down by the chain's cloud, an enquiry's answer, a
close's or a refund's. The hub believes only fields whose signature checks
with the merchant key, and only the first word on a payment: a payment is
recorded once (its ledger entry ``<merchant_no>:paid``); a notification that
comes again, or an enquiry that finds what a notification already said, is
a duplicate.

Money the gateway took that its order cannot keep — the order was paid
already (another attempt, the counter), it was voided, or the gateway
charged another amount — is recorded as it happened (a ``stray`` ledger
row, outside the order's sums), the intent becomes ``refund_due``, staff
are alerted, and the sync service has the gateway give it back; its refund
is the ledger's stray refund row. So the ledger always equals the gateway's
records.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from restobox import db, paygate
from restobox.contract import Alert, PayIntent, PayReply, PayRequest, PayResult, Rejection, REASONS, topics
from restobox.hub import submit, till
from restobox.hub.common import Effects, Request, iso

if TYPE_CHECKING:
    from restobox.hub.service import Hub

log = logging.getLogger("restobox.hub")


def refusal(request_id: str, r: Rejection) -> PayReply:
    return PayReply(request_id=request_id, ok=False, reason=r.reason, message=r.words, **getattr(r, "pay", {}))


class PayRefusal(Rejection):
    def __init__(self, reason: str, detail: str = "", *, order: db.Order | None = None) -> None:
        super().__init__(reason, detail)
        self.pay = {}
        if order is not None:
            f = till._order_fields(order)
            self.pay = dict(order_id=order.id, payment=f["payment"], paid=f["paid"], due=f["due"])


def _key(hub: "Hub") -> bytes:
    if not hub.cfg.paygate.enabled:
        raise Rejection("pay_disabled", "[paygate] enabled is false")
    key = getattr(hub, "_paygate_key", None)
    if key is None:
        key = hub._paygate_key = hub.cfg.paygate.key()
    return key


def intent_msg(row: db.PayIntent, order: db.Order | None, now: str) -> PayIntent:
    return PayIntent(merchant_no=row.merchant_no, order_id=row.order_id, number=order.number if order else 0,
                     table=order.table if order else None, attempt=row.attempt, amount=row.amount,
                     state=row.state, reason=row.reason, trade_no=row.trade_no, created_at=row.created_at,
                     expires_at=row.expires_at, at=now)


def _expired(row: db.PayIntent, now: datetime) -> bool:
    try:
        return datetime.fromisoformat(row.expires_at) <= now
    except ValueError:
        return True


# --------------------------------------------------------------- request
def handle_request(hub: "Hub", fx: Effects, req: Request) -> None:
    r: PayRequest = req.msg
    _key(hub)
    clock = hub.clock()
    now = iso(clock)
    order = db.row_by(db.store_db, db.Order, "id", r.order_id)
    if order is None:
        raise Rejection("unknown_order", r.order_id)
    if order.state in ("voided", "rejected"):
        raise PayRefusal("bad_transition", f"order {order.number} is {order.state}", order=order)
    if r.lookup:  # the order as it stands, nothing made
        f = till._order_fields(order)
        fx.counters["pay.lookups"] += 1
        fx.publish(topics.pay_reply(req.device), PayReply(
            request_id=r.request_id, ok=True, order_id=order.id, payment=f["payment"], paid=f["paid"], due=f["due"],
            intent=_latest(order, now), state=order.state, table=order.table,
            order=submit.reply_from_row(order, duplicate=False)), correlation=req.correlation, answer=True)
        return
    paid_in, refunded = db.ledger_sums(db.store_db, order.id)
    due = till.due_of(order.total, paid_in, refunded)
    if due == 0:
        raise PayRefusal("already_paid", f"order {order.number}", order=order)
    intents = list(db.PayIntent.select().where(db.PayIntent.order_id == order.id).order_by(db.PayIntent.attempt))
    row = next((i for i in intents if i.state == "open" and i.amount == due and not _expired(i, clock)), None)
    if row is None:
        attempt = (intents[-1].attempt + 1) if intents else 1
        if attempt > 99:
            raise PayRefusal("bad_transition", f"order {order.number}: 99 phone payments tried", order=order)
        row = db.PayIntent.create(
            merchant_no=paygate.merchant_no(order.id, attempt), order_id=order.id,
            business_date=order.business_date, attempt=attempt, amount=due, state="open", reason="",
            trade_no="", refund_amount=0, created_at=now,
            expires_at=iso(clock + timedelta(seconds=hub.cfg.paygate.expire_s)), updated_at=now)
        fx.counters["pay.intents"] += 1
        fx.publish(topics.PAY_INTENT, intent_msg(row, order, now))
    else:
        fx.counters["pay.intents_reused"] += 1
    f = till._order_fields(order)
    fx.publish(topics.pay_reply(req.device), PayReply(
        request_id=r.request_id, ok=True, order_id=order.id, payment=f["payment"], paid=f["paid"], due=f["due"],
        intent=intent_msg(row, order, now), state=order.state, table=order.table,
        order=submit.reply_from_row(order, duplicate=False)), correlation=req.correlation, answer=True)


def _latest(order: db.Order, now: str) -> PayIntent | None:
    row = (db.PayIntent.select().where(db.PayIntent.order_id == order.id)
           .order_by(db.PayIntent.attempt.desc()).first())
    return intent_msg(row, order, now) if row is not None else None


# ---------------------------------------------------------------- result
def handle_result(hub: "Hub", fx: Effects, req: Request) -> None:
    r: PayResult = req.msg
    key = _key(hub)
    fields = dict(r.fields)
    try:
        paygate.verify(fields, key)
    except paygate.GatewayError as exc:
        raise Rejection("bad_signature", f"{r.source} from {req.device}: {exc.detail}") from None
    if str(fields.get("mch_id", hub.cfg.paygate.mch_id)) != hub.cfg.paygate.mch_id:
        raise Rejection("unknown_payment", f"merchant {str(fields.get('mch_id'))[:32]!r}")
    mno = str(fields.get("out_trade_no", ""))
    row = db.row_by(db.store_db, db.PayIntent, "merchant_no", mno) if mno else None
    if row is None:
        raise Rejection("unknown_payment", f"out_trade_no {mno[:40]!r} ({r.source})")
    now = iso(hub.clock())
    order = db.row_by(db.store_db, db.Order, "id", row.order_id)
    code = str(fields.get("code", "OK"))
    fx.counters[f"pay.result.{r.source}"] += 1
    try:
        if r.source == "refund":
            _refunded(hub, fx, row, order, paygate.as_refund(fields), now)
            return
        if code == "ORDER_NOT_EXIST" and r.source == "close":
            _closed(fx, row, order, now)  # never made at the gateway: nothing to pay
            return
        if code not in ("OK", "ORDER_PAID"):
            raise Rejection("bad_schema", f"{r.source} answer with code {code[:32]!r}")
        trade = paygate.as_trade(fields)
    except paygate.GatewayError as exc:
        raise Rejection("bad_schema", f"{r.source}: {exc.detail}") from None
    if trade.status in ("SUCCESS", "REFUND"):
        _succeeded(hub, fx, row, order, trade, req.device, now)
    elif trade.status == "CLOSED":
        _closed(fx, row, order, now)
    else:
        fx.counters["pay.notpay"] += 1


def _set(row: db.PayIntent, now: str, **values) -> None:
    for k, v in values.items():
        setattr(row, k, v)
    db.PayIntent.update(updated_at=now, **values).where(db.PayIntent.merchant_no == row.merchant_no).execute()


def _closed(fx: Effects, row: db.PayIntent, order: db.Order | None, now: str) -> None:
    if row.state != "open":
        fx.counters[f"pay.close_after.{row.state}"] += 1
        return
    _set(row, now, state="closed")
    fx.counters["pay.closed"] += 1
    fx.publish(topics.PAY_INTENT, intent_msg(row, order, now))


def _succeeded(hub: "Hub", fx: Effects, row: db.PayIntent, order: db.Order | None, trade: paygate.Trade,
               device: str, now: str) -> None:
    if row.state == "refunding":
        _refund_progress(fx, row, order, trade, now)
        return
    entry_id = f"{row.merchant_no}:paid"
    if db.row_by(db.store_db, db.Payment, "entry_id", entry_id) is not None:
        fx.counters["pay.duplicates"] += 1
        return
    if order is None:
        raise Rejection("unknown_order", f"the order of payment {row.merchant_no}")
    paid_in, refunded = db.ledger_sums(db.store_db, order.id)
    due = till.due_of(order.total, paid_in, refunded)
    why = ""
    if trade.amount != row.amount or (due and due != row.amount):
        why = "amount_mismatch"
    elif order.state in ("voided", "rejected"):
        why = "order_voided"
    elif due == 0:
        why = "already_paid"
    payment = dict(entry_id=entry_id, request_id=row.merchant_no, kind="payment", method="gateway",
                   amount=trade.amount, reference=trade.trade_no[:64], device=device, at=trade.paid_at or now,
                   stray=bool(why), reason=why)
    till._record(fx, order, [payment], now)
    if why:
        _set(row, now, state="refund_due", reason=why, trade_no=trade.trade_no[:64], refund_amount=trade.amount)
        fx.counters[f"pay.stray.{why}"] += 1
        log.warning("phone payment %s of order %s: %d fen taken that the order cannot keep (%s); refunding",
                    row.merchant_no, order.number, trade.amount, why)
        fx.publish(topics.ALERTS, Alert(
            source=hub.cfg.device.id, code="stray_payment", message=REASONS["stray_payment"], severity="warning",
            subject=f"#{order.number} {trade.amount / 100:.2f} ({why})", at=now))
    else:
        _set(row, now, state="paid", trade_no=trade.trade_no[:64], reason="")
        fx.counters["pay.paid"] += 1
        if order.state == "held":
            till._release(hub, fx, order, now)
        else:
            till._changed(fx, order, now)
    fx.publish(topics.PAY_INTENT, intent_msg(row, order, now))


def refund_through_gateway(fx: Effects, order: db.Order, back: list[tuple[str, int, str]], reason: str,
                           now: str) -> list[tuple[str, int, str]]:
    """A refund at the counter that gives money back the way it was paid
    on the phone: the order's paid intent is to be refunded that much more
    by the gateway (``refunding``; the sync service asks it), and the
    ledger's refund row names the payment (its merchant number)."""
    out = []
    for method, amount, ref in back:
        row = None
        if method == "gateway":
            row = (db.PayIntent.select().where(db.PayIntent.order_id == order.id,
                                               db.PayIntent.state.in_(("paid", "refunding")))
                   .order_by(db.PayIntent.attempt.desc()).first())
        if row is None:
            out.append((method, amount, ref))
            continue
        _set(row, now, state="refunding", refund_amount=row.refund_amount + amount, reason=reason[:48])
        fx.counters["pay.refunds_asked"] += 1
        fx.publish(topics.PAY_INTENT, intent_msg(row, order, now))
        out.append((method, amount, row.merchant_no))
    return out


def _refund_progress(fx: Effects, row: db.PayIntent, order: db.Order | None, trade: paygate.Trade,
                     now: str) -> None:
    """A ``refunding`` payment as the gateway has it now: done once it has
    given back what the counter refunded."""
    if trade.refunded < row.refund_amount:
        fx.counters["pay.refund_waiting"] += 1
        return
    _set(row, now, state="refunded" if trade.refunded >= trade.amount else "paid")
    fx.counters["pay.refunds_done"] += 1
    fx.publish(topics.PAY_INTENT, intent_msg(row, order, now))


def _refunded(hub: "Hub", fx: Effects, row: db.PayIntent, order: db.Order | None, refund: paygate.Refund,
              now: str) -> None:
    entry_id = f"{row.merchant_no}:refund"
    if row.state == "refunding":  # the counter's refund: its row is in the ledger; the query says when it is done
        fx.counters["pay.refund_progress"] += 1
        return
    if refund.status != "SUCCESS":
        fx.counters["pay.refund_processing"] += 1
        return
    if db.row_by(db.store_db, db.Payment, "entry_id", entry_id) is not None:
        fx.counters["pay.duplicates"] += 1
        return
    if row.state != "refund_due" or order is None:
        raise Rejection("unknown_payment", f"a refund of {row.merchant_no}, which is {row.state}")
    till._record(fx, order, [dict(entry_id=entry_id, request_id=row.merchant_no, kind="refund", method="gateway",
                                  amount=refund.amount, reference=(refund.refund_id or refund.out_refund_no)[:64],
                                  reason=row.reason, stray=True, at=refund.refunded_at or now)], now)
    _set(row, now, state="refunded")
    fx.counters["pay.refunded"] += 1
    fx.publish(topics.PAY_INTENT, intent_msg(row, order, now))
