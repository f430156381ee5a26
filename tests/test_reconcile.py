"""Reconciliation of phone payments (restobox/reconcile.py): the gateway's
statement lines against the ledger's, by merchant number and amount; a
payment's refunds summed on each side; the business day's calendar days at
the gateway (UTC+8)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from restobox.reconcile import Line, compare, statement_dates

AT = "2026-12-05T12:00:00+08:00"


def test_matched_lines_and_every_kind_of_difference():
    ledger = [Line("PAY", "RB1", 1200, AT, 7), Line("PAY", "RB2", 800, AT, 8), Line("PAY", "RB3", 500, AT, 9),
              Line("REFUND", "RB1", 1200, AT, 7)]
    statement = [Line("PAY", "RB1", 1200, AT), Line("PAY", "RB2", 799, AT), Line("PAY", "RB4", 300, AT),
                 Line("REFUND", "RB1", 700, AT), Line("REFUND", "RB1", 500, AT)]  # two refunds of one payment
    r = compare(ledger, statement)
    assert r.checked and r.matched == 2  # RB1's payment, RB1's refunds summed
    got = {(d.kind, d.type, d.out_trade_no, d.ledger_amount, d.gateway_amount, d.number) for d in r.differences}
    assert got == {("amount_differs", "PAY", "RB2", 800, 799, 8), ("missing_in_ledger", "PAY", "RB4", None, 300, 0),
                   ("missing_in_statement", "PAY", "RB3", 500, None, 9)}
    assert r.ledger_lines == 4 and r.statement_lines == 4


def test_a_business_day_from_four_in_the_morning_spans_two_of_the_gateways_days():
    cst = timezone(timedelta(hours=8))
    start = datetime(2026, 12, 5, 4, 0, tzinfo=cst)
    assert statement_dates(start, start + timedelta(days=1)) == ["2026-12-05", "2026-12-06"]
    midnight = datetime(2026, 12, 5, tzinfo=cst)
    assert statement_dates(midnight, midnight + timedelta(days=1)) == ["2026-12-05"]
