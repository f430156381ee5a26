"""counter.db on a real SQLite file: a till request is kept until the hub
answered it (a draft replaced by the payment it became, never an answered
one by a late copy), the card intents in the kiosk's table, provisional
numbers of the counter's own (C1-001), the shift, and retention that keeps
everything not settled."""

from __future__ import annotations

import uuid

from counter.store import CounterStore
from kiosk.payment import PaymentIntent
from kiosk.store import offline_number

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.t = 1_780_000_000.0

    def __call__(self) -> float:
        return self.t


def test_requests_drafts_answers_and_retention(tmp_path):
    clock = Clock()
    s = CounterStore(tmp_path / "counter.db", clock=clock)
    try:
        old, pending, draft = (str(uuid.uuid4()) for _ in range(3))
        s.record(old, "pay", b"first", order_id="o1", due=100)
        s.record(old, "pay", b"again", order_id="o1", due=100)  # a repeat keeps the first
        assert s.till(old).payload == b"first" and [t.request_id for t in s.pending()] == [old]
        assert s.answered(old, b"reply", ok=True) and not s.answered(old, b"reply", ok=True)
        s.record(draft, "pay", b"cash part", order_id="o2", due=300, state="draft", intent_id=f"{draft}-2")
        s.add(PaymentIntent(intent_id=f"{draft}-2", order_id=draft, method="card", amount=200,
                            created_at=clock(), updated_at=clock()))
        assert [d.request_id for d in s.drafts()] == [draft] and s.pending() == []
        s.record(draft, "pay", b"cash and card", order_id="o2", due=300)  # the draft becomes the payment
        assert s.drafts() == [] and s.till(draft).payload == b"cash and card"
        s.record(pending, "refund", b"refund", order_id="o3")
        assert s.waiting() == 2
        # provisional numbers: the counter's own sequence and tag
        assert offline_number("", s.next_provisional, "counter-1", prefix="C") == "C1-001"
        assert offline_number("", s.next_provisional, "counter-1", prefix="C") == "C1-002"
        assert offline_number("C1-001", s.next_provisional, "counter-1", prefix="C") == "C1-001"
        s.put("shift", b'{"shift_id": "x"}')
        assert s.get_value("shift") == b'{"shift_id": "x"}'
        # a year later: the answered request goes, the ones the hub has not answered stay
        clock.t += 365 * DAY
        s.pruner(30).run_pass(s.database, clock())
        assert s.till(old) is None
        assert {t.request_id for t in s.pending()} == {draft, pending}
        assert s.get(f"{draft}-2") is not None  # its payment is not settled at the hub yet
        assert s.get_value("shift") is not None
    finally:
        s.close()
    # reopened: all of it is still there
    s = CounterStore(tmp_path / "counter.db", clock=clock)
    try:
        assert s.waiting() == 2
    finally:
        s.close()
