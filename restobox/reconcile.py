"""Reconciliation of phone payments: the payment gateway's daily statement
matched against the store's ledger, every difference listed (the day's
report, ``restobox report``).

The ledger's phone payments are its rows of method ``gateway``: a payment
``<merchant_no>:paid`` (at the gateway's ``paid_at``) and, for money an
order could not keep, its refund ``<merchant_no>:refund`` (at the gateway's
``refunded_at``). The statement lists the gateway's payments (``PAY``) and
refunds (``REFUND``) by ``out_trade_no`` — the merchant number, the same
key. The gateway's days are calendar days in UTC+8; a business day (from
``[store] business_day_start``) may span two of them, so both statements are
fetched and each line is taken by its time. A line found on one side only,
or with another amount, is a difference.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from restobox import paygate

GATEWAY_TZ = timezone(timedelta(hours=8))

KINDS = {
    "missing_in_ledger": ("网关有、账本没有", "At the gateway, not in the ledger"),
    "missing_in_statement": ("账本有、网关没有", "In the ledger, not at the gateway"),
    "amount_differs": ("金额不同", "Amounts differ"),
}


@dataclass(frozen=True)
class Line:
    type: str  # PAY | REFUND
    out_trade_no: str
    amount: int
    at: str
    number: int = 0  # the order's number (ledger side)


@dataclass(frozen=True)
class Difference:
    kind: str  # a key of KINDS
    type: str
    out_trade_no: str
    ledger_amount: int | None
    gateway_amount: int | None
    at: str
    number: int = 0

    @property
    def names(self) -> tuple[str, str]:
        return KINDS[self.kind]


@dataclass
class Reconciliation:
    checked: bool
    reason: str = ""  # why it could not be checked
    statement_lines: int = 0
    ledger_lines: int = 0
    matched: int = 0
    differences: list[Difference] = field(default_factory=list)


def _at(s: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(s)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def ledger_lines(store: sqlite3.Connection, start: datetime, end: datetime) -> list[Line]:
    """The ledger's phone payments and refunds whose time is in [start, end)."""
    out: dict[tuple[str, str], Line] = {}
    for kind, request_id, reference, stray, amount, at, number in store.execute(
            'SELECT p.kind, p.request_id, p.reference, p.stray, p.amount, p.at, COALESCE(o.number, 0) '
            'FROM payment p LEFT JOIN "order" o ON o.id = p.order_id WHERE p.method = \'gateway\' ORDER BY p.seq'):
        t = _at(at)
        if t is None or not start <= t < end:
            continue
        # a payment and a stray refund carry the merchant number as their
        # request; a refund made at the counter names it in its reference
        no = request_id if kind == "payment" or stray else reference
        key = ("PAY" if kind == "payment" else "REFUND", no)
        ln = out.get(key)
        out[key] = Line(key[0], no, amount + (ln.amount if ln else 0), ln.at if ln else at, number)
    return list(out.values())


def statement_dates(start: datetime, end: datetime) -> list[str]:
    """The gateway's calendar days (UTC+8) that [start, end) touches."""
    d = start.astimezone(GATEWAY_TZ).date()
    last = (end - timedelta(microseconds=1)).astimezone(GATEWAY_TZ).date()
    out = []
    while d <= last:
        out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def compare(ledger: list[Line], statement: list[Line]) -> Reconciliation:
    """Every line matched by (type, out_trade_no) and amount."""
    r = Reconciliation(checked=True, statement_lines=len(statement), ledger_lines=len(ledger))
    mine: dict[tuple[str, str], list[Line]] = {}
    for ln in ledger:
        mine.setdefault((ln.type, ln.out_trade_no), []).append(ln)
    summed: dict[tuple[str, str], Line] = {}  # a payment's refunds, each side summed
    for g in statement:
        k = (g.type, g.out_trade_no)
        was = summed.get(k) if g.type == "REFUND" else None
        summed[k if g.type == "REFUND" else (g.type, g.out_trade_no, len(summed))] = \
            Line(g.type, g.out_trade_no, g.amount + (was.amount if was else 0), was.at if was else g.at)
    statement = list(summed.values())
    r.statement_lines = len(statement)
    for g in statement:
        found = mine.get((g.type, g.out_trade_no))
        if not found:
            r.differences.append(Difference("missing_in_ledger", g.type, g.out_trade_no, None, g.amount, g.at))
            continue
        ln = found.pop(0)
        if ln.amount != g.amount:
            r.differences.append(Difference("amount_differs", g.type, g.out_trade_no, ln.amount, g.amount, g.at,
                                            ln.number))
        else:
            r.matched += 1
    for rest in mine.values():
        for ln in rest:
            r.differences.append(Difference("missing_in_statement", ln.type, ln.out_trade_no, ln.amount, None, ln.at,
                                            ln.number))
    r.differences.sort(key=lambda d: (d.at, d.out_trade_no))
    return r


def reconcile(cfg, store: sqlite3.Connection, start: datetime, end: datetime, *,
              client: paygate.PaygateClient | None = None) -> Reconciliation:
    """The business day [start, end) reconciled; ``checked`` False (with
    the reason, for a person) when the statement cannot be had."""
    own = client is None
    try:
        client = client or paygate.PaygateClient.from_config(cfg)
    except Exception as exc:  # the key file
        return Reconciliation(checked=False, reason=str(exc))
    try:
        lines = []
        for day in statement_dates(start, end):
            st = client.statement(day)
            for s in st.transactions:
                t = _at(s.at)
                if t is not None and start <= t < end:
                    lines.append(Line(s.type, s.out_trade_no, s.amount, s.at))
    except paygate.GatewayError as exc:
        return Reconciliation(checked=False, reason=f"{exc.words} ({exc.reason}: {exc.detail[:120]})")
    finally:
        if own:
            client.close()
    return compare(ledger_lines(store, start, end), lines)
