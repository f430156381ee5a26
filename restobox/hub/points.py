"""Loyalty points at the hub: an order's phone number checked and its
redemption priced by the hub's own rules, the append-only ledger
(``points_entry``) and its outbox events, and balance queries
(``loyalty/query/<device>``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from restobox import contract, db, loyalty
from restobox.contract import LoyaltyBalance, OrderSubmit, Rejection, topics
from restobox.hub.common import Effects, Request, outbox

if TYPE_CHECKING:
    from restobox.hub.service import Hub


@dataclass
class Claim:
    """An order's loyalty part as the hub checked it. ``member`` empty:
    loyalty is off at the hub (the order goes through without points)."""

    member: str
    masked: str
    redeem: int
    discount: int
    balance: int = 0  # the member's points before this order


def _phone_checked(hub: "Hub", phone: str) -> None:
    if not loyalty.valid_phone(phone, hub.cfg.hub.loyalty.phone_patterns):
        # the number is not logged: the sentence is enough to act on
        raise Rejection("phone_invalid", "not a phone number this store accepts")


def claim(hub: "Hub", sub: OrderSubmit) -> Claim | None:
    """The order's phone number checked, and the points it redeems priced by
    the hub's own rules (never the device's)."""
    c = sub.loyalty
    if c is None:
        return None
    lc = hub.cfg.hub.loyalty
    if not lc.enabled:
        if c.redeem_points:
            raise Rejection("loyalty_disabled", f"{c.redeem_points} points asked")
        return Claim(member="", masked=loyalty.mask(c.phone), redeem=0, discount=0)
    _phone_checked(hub, c.phone)
    if c.redeem_points and c.redeem_points < lc.min_redeem_points:
        raise Rejection("points_not_allowed", f"{c.redeem_points} points, the least is {lc.min_redeem_points}",
                        min_points=str(lc.min_redeem_points))
    return Claim(member=loyalty.member_id(c.phone, hub.member_key), masked=loyalty.mask(c.phone),
                 redeem=c.redeem_points, discount=c.redeem_points * lc.point_value_fen)


def check_redemption(hub: "Hub", c: Claim, priced) -> None:
    """In the transaction that accepts the order: the share of the order and
    the member's balance, from the ledger as it is now. Of two orders
    spending the same points, the second finds them gone."""
    if not c.redeem:
        return
    lc = hub.cfg.hub.loyalty
    lines_sum = sum(ln.line_total for ln in priced.lines)
    if c.discount * 100 > lines_sum * lc.max_share_pct:
        raise Rejection("points_not_allowed", f"{c.discount} fen off {lines_sum}, limit {lc.max_share_pct} %",
                        max_points=str(loyalty.max_redeemable(lines_sum, 10**9, lc.point_value_fen,
                                                              lc.max_share_pct)))
    balance = db.points_balance(db.store_db, c.member)
    if balance < c.redeem:
        raise Rejection("points_insufficient", f"{c.redeem} points asked, {balance} held", balance=str(balance))
    c.balance = balance


def result(hub: "Hub", c: Claim, priced) -> contract.LoyaltyResult:
    if not c.member:  # loyalty switched off at the hub
        return contract.LoyaltyResult(member=c.masked, credited=False)
    if not c.redeem:
        c.balance = db.points_balance(db.store_db, c.member)
    earned = loyalty.points_earned(priced.total, hub.cfg.hub.loyalty.points_per_yuan)
    return contract.LoyaltyResult(member=c.masked, earned=earned, redeemed=c.redeem,
                                  discount=priced.discount, balance=c.balance - c.redeem + earned)


def post(fx: Effects, c: Claim, res: contract.LoyaltyResult, order_id: str, number: int, bdate: str,
         at: str) -> None:
    """The ledger rows of an accepted order (a redemption, then what it
    earned, even 0: the order is the member's) and their outbox events."""
    balance = c.balance
    if res.redeemed:
        balance -= res.redeemed
        _ledger(fx, f"{order_id}:redeem", c.member, c.masked, "redeem", -res.redeemed, res.discount, balance,
                order_id, number, bdate, at)
    balance += res.earned
    _ledger(fx, f"{order_id}:earn", c.member, c.masked, "earn", res.earned, 0, balance, order_id, number, bdate, at)


_EVENTS = {"earn": "loyalty.earned", "redeem": "loyalty.redeemed", "reverse": "loyalty.reversed"}


def _ledger(fx: Effects, entry_id: str, member: str, masked: str, kind: str, points: int, discount: int,
            balance: int, order_id: str, number: int, bdate: str, at: str, reverses: str = "") -> None:
    db.PointsEntry.insert(entry_id=entry_id, member=member, member_masked=masked, kind=kind, points=points,
                          discount=discount, balance_after=balance, order_id=order_id, at=at).execute()
    payload = {"entry_id": entry_id, "member": member, "member_masked": masked, "kind": kind,
               "points": points, "discount": discount, "balance_after": balance, "order_id": order_id,
               "number": number, "business_date": bdate, "at": at}
    if reverses:
        payload["reverses"] = reverses
    outbox(entry_id, _EVENTS[kind], order_id, payload, at)
    fx.counters[f"points.{kind}"] += 1


def of_order(order_id: str) -> contract.LoyaltyResult | None:
    """An order's points as its reply and receipt show them, from the ledger."""
    rows = list(db.PointsEntry.select().where(db.PointsEntry.order_id == order_id).order_by(db.PointsEntry.seq))
    own = [r for r in rows if r.kind != "reverse"]
    if not own:
        return None
    redeem = [r for r in own if r.kind == "redeem"]
    return contract.LoyaltyResult(
        member=own[0].member_masked, earned=sum(r.points for r in own if r.kind == "earn"),
        redeemed=-sum(r.points for r in redeem), discount=sum(r.discount for r in redeem),
        balance=own[-1].balance_after)


def reverse(fx: Effects, order: db.Order, now: str) -> None:
    """A voided order gives back what it redeemed and takes back what it
    earned (the balance may go below 0 if those points were spent). Points
    that paid at the counter are not among them: a paid order is voided
    only with its refund, which gives them back (pay_with, give_back)."""
    rows = list(db.PointsEntry.select().where(db.PointsEntry.order_id == order.id).order_by(db.PointsEntry.seq))
    done = {r.entry_id for r in rows}
    for r in rows:
        entry_id = f"{order.id}:reverse-{r.kind}"
        if r.kind == "reverse" or entry_id in done or r.points == 0 or not r.entry_id.startswith(f"{order.id}:"):
            continue
        balance = db.points_balance(db.store_db, r.member) - r.points
        _ledger(fx, entry_id, r.member, r.member_masked, "reverse", -r.points, -r.discount, balance,
                order.id, order.number, order.business_date, now, reverses=r.kind)


def pay_with(hub: "Hub", fx: Effects, phone: str, amount: int, entry_id: str, order: db.Order,
             at: str) -> str:
    """A ``points`` tender at the counter: ``amount`` fen paid with the
    member's points, taken off the balance in the payment's transaction.
    Returns the masked number (the ledger row's reference)."""
    lc = hub.cfg.hub.loyalty
    if not lc.enabled:
        raise Rejection("loyalty_disabled", "a points tender")
    _phone_checked(hub, phone)
    if amount % lc.point_value_fen:
        raise Rejection("points_not_allowed", f"{amount} fen is not a whole number of points "
                                              f"({lc.point_value_fen} fen each)")
    points = amount // lc.point_value_fen
    member, masked = loyalty.member_id(phone, hub.member_key), loyalty.mask(phone)
    balance = db.points_balance(db.store_db, member)
    if balance < points:
        raise Rejection("points_insufficient", f"{points} points asked, {balance} held", balance=str(balance))
    _ledger(fx, entry_id, member, masked, "redeem", -points, amount, balance - points, order.id, order.number,
            order.business_date, at)
    return masked


def give_back(hub: "Hub", fx: Effects, order: db.Order, amount: int, entry_id: str, at: str) -> int:
    """Points that paid at the counter given back by a refund of ``amount``
    fen of them (whole points, as many as ``amount`` is worth). Returns the
    fen they are worth."""
    lc = hub.cfg.hub.loyalty
    paid = [r for r in db.rows_by(db.store_db, db.PointsEntry, "order_id", order.id)
            if r.kind == "redeem" and not r.entry_id.startswith(f"{order.id}:")]
    if not paid:
        return 0
    points = amount // lc.point_value_fen
    if points <= 0:
        return 0
    member, masked = paid[-1].member, paid[-1].member_masked
    balance = db.points_balance(db.store_db, member) + points
    _ledger(fx, entry_id, member, masked, "reverse", points, -points * lc.point_value_fen, balance, order.id,
            order.number, order.business_date, at, reverses="redeem")
    return points * lc.point_value_fen


def handle_query(hub: "Hub", fx: Effects, req: Request) -> None:
    """A member's balance and the rules to offer a redemption with. A
    refusal (loyalty off, a bad number) is raised like any other, so it is
    answered, announced and counted in the one place that does that."""
    q: contract.LoyaltyQuery = req.msg
    lc = hub.cfg.hub.loyalty
    if not lc.enabled:
        raise Rejection("loyalty_disabled", "balance asked")
    _phone_checked(hub, q.phone)
    member = loyalty.member_id(q.phone, hub.member_key)
    fx.publish(topics.loyalty_reply(req.device), LoyaltyBalance(
        query_id=q.query_id, ok=True, member=loyalty.mask(q.phone),
        balance=db.points_balance(db.store_db, member), point_value_fen=lc.point_value_fen,
        max_share_pct=lc.max_share_pct, points_per_yuan=lc.points_per_yuan,
        min_redeem_points=lc.min_redeem_points), correlation=req.correlation, answer=True)
    fx.counters["loyalty_queries"] += 1


def refusal(query_id: str, r: Rejection) -> LoyaltyBalance:
    return LoyaltyBalance(query_id=query_id, ok=False, reason=r.reason, message=r.words)
