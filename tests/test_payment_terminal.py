"""Payment against the terminal simulator on a real pty, through the real
SerialTerminal driver and the real PaymentFlow: the diner is charged at most
once per intent, whatever the terminal or the kiosk does (invariant 5,
docs/payment-terminal.md)."""

from __future__ import annotations

import os
import random
import threading
import uuid

import pytest

from kiosk.payment import (
    CounterPayment,
    InMemoryIntentStore,
    PaymentFlow,
    PaymentIntent,
    SerialTerminal,
    frame,
    parse_reply,
    unframe,
)
from restobox.dev.terminal_sim import TerminalSim

# Short times so the faults run in well under a second each.
PAY_TIMEOUT = 0.3
REPLY_TIMEOUT = 0.3


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leftovers():
    """No thread and no file descriptor outlives a test."""
    threads, fds = set(threading.enumerate()), _fds()
    yield
    assert set(threading.enumerate()) - threads == set()
    assert _fds() - fds == set()


@pytest.fixture
def sims():
    made: list[TerminalSim] = []

    def make(mode: str = "approve", **kw) -> TerminalSim:
        made.append(TerminalSim(mode, **kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def terminals():
    made: list[SerialTerminal] = []

    def make(device: str, **kw) -> SerialTerminal:
        made.append(SerialTerminal(device, 115200, kw.pop("timeout_s", REPLY_TIMEOUT), **kw))
        return made[-1]

    yield make
    for t in made:
        t.close()


def flow_for(terminal, store=None, **kw) -> PaymentFlow:
    kw = {"pay_timeout_s": PAY_TIMEOUT, "query_attempts": 4, "query_interval_s": 0.1, **kw}
    return PaymentFlow(terminal, store if store is not None else InMemoryIntentStore(), **kw)


def oid() -> str:
    return str(uuid.uuid4())


def states(flow: PaymentFlow) -> list[str]:
    return [to for _, to, _ in flow.transitions]


# =========================================================================
# The four answers a terminal can give
# =========================================================================


def test_an_approved_payment_is_charged_once_and_goes_into_the_order(sims, terminals) -> None:
    sim = sims("approve")
    flow = flow_for(terminals(sim.device))
    order_id = oid()
    u = flow.begin("pi-ok", order_id=order_id, amount=3200)
    assert u.state == "waiting_terminal" and u.actions == ("cancel",)
    assert u.words.en == "Tap, insert or swipe your card on the payment terminal to pay ¥32.00."
    u = flow.wait(5)
    assert u.state == "approved" and u.final and u.auth_ref == "A000001"
    assert (u.payment.method, u.payment.status, u.payment.amount, u.payment.intent_id, u.payment.reference) == (
        "card", "approved", 3200, "pi-ok", "A000001")
    assert u.words == u.words.__class__("付款成功：¥32.00。", "Payment approved: ¥32.00.")
    assert [(c.intent_id, c.amount) for c in sim.charges] == [("pi-ok", 3200)]
    assert sim.lines == [frame("PAY pi-ok 3200")[:-1]]
    assert flow.store.get("pi-ok").state == "approved" and flow.store.get("pi-ok").order_id == order_id


def test_a_declined_payment_is_not_charged_and_offers_ways_forward(sims, terminals) -> None:
    sim = sims("decline", decline_reason="card_expired")
    flow = flow_for(terminals(sim.device))
    flow.begin("pi-no", order_id=oid(), amount=1200)
    u = flow.wait(5)
    assert (u.state, u.reason, u.payment) == ("declined", "card_expired", None)
    assert u.words.en == "The card has expired. Try again, choose another way to pay, or pay at the counter."
    assert u.words.zh == "卡已过期。请重试、换一种付款方式，或到柜台付款。"
    assert u.actions == ("retry", "pay_at_counter", "cancel_order")
    assert sim.charges == []


def test_no_reply_times_out_then_the_query_finds_it_approved_with_one_charge(sims, terminals) -> None:
    sim = sims("no_reply")  # charges, but its answer is lost
    flow = flow_for(terminals(sim.device))
    flow.begin("pi-lost", order_id=oid(), amount=2600)
    u = flow.wait(5)
    assert u.state == "approved" and u.auth_ref == "A000001"
    assert states(flow)[:4] == ["intent_recorded", "waiting_terminal", "timed_out", "querying"]
    assert sim.charges_for("pi-lost") == 1
    assert sim.pay_requests["pi-lost"] == 1, "after the timeout the kiosk asked, it did not charge again"
    assert [line.split(b"*")[0] for line in sim.lines] == [b"PAY pi-lost 2600", b"QUERY pi-lost"]


def test_a_garbled_reply_becomes_a_reason_code_never_a_crash(sims, terminals) -> None:
    sim = sims("garbled")
    term = terminals(sim.device)
    flow = flow_for(term)
    flow.begin("pi-noise", order_id=oid(), amount=1800)
    u = flow.wait(5)
    assert (u.state, u.reason) == ("unknown", "garbled_reply")
    assert u.actions == ("check_again", "pay_at_counter"), "never a second charge when we cannot tell"
    assert "don't pay again" in u.words.en and "不要重复付款" in u.words.zh
    for reason in ("bad_checksum", "not_ascii", "no_checksum", "line_too_long"):
        assert term.counters[f"garbled.{reason}"] >= 1, term.counters
    assert flow.store.get("pi-noise").state == "unknown"
    assert [i.intent_id for i in flow.store.unresolved()] == ["pi-noise"], "staff see it"
    # the line is clean again: checking again settles it, still one charge
    sim.mode = "approve"
    u = flow.check_again()
    assert u.state == "approved" and sim.charges_for("pi-noise") == 1 and sim.pay_requests["pi-noise"] == 1


def test_an_approval_after_the_kiosks_timeout_is_found_by_query_with_one_charge(sims, terminals) -> None:
    sim = sims("slow", slow_s=PAY_TIMEOUT + 0.4)  # the diner is slow at the terminal
    flow = flow_for(terminals(sim.device), query_attempts=10, query_interval_s=0.1)
    flow.begin("pi-slow", order_id=oid(), amount=4200)
    u = flow.wait(5)
    assert u.state == "approved"
    assert "timed_out" in states(flow) and "querying" in states(flow)
    assert sim.charges_for("pi-slow") == 1 and sim.pay_requests["pi-slow"] == 1
    assert any(line.startswith(b"QUERY pi-slow") for line in sim.lines)


def test_a_payment_still_pending_after_every_query_is_cancelled_at_the_terminal(sims, terminals) -> None:
    sim = sims("slow", slow_s=30)
    flow = flow_for(terminals(sim.device), query_attempts=2, query_interval_s=0.05)
    flow.begin("pi-stuck", order_id=oid(), amount=1000)
    u = flow.wait(5)
    assert (u.state, u.reason) == ("cancelled", "terminal_timeout")
    assert u.words.en.startswith("The payment took too long and was stopped; you were not charged.")
    assert sim.state_of("pi-stuck") == "cancelled" and sim.charges == []


def test_the_diner_cancels_while_the_terminal_waits(sims, terminals) -> None:
    sim = sims("slow", slow_s=30)
    flow = flow_for(terminals(sim.device), pay_timeout_s=30)
    flow.begin("pi-cancel", order_id=oid(), amount=1000)
    assert flow.poll().state == "waiting_terminal"
    u = flow.cancel()
    assert (u.state, u.reason) == ("cancelled", "diner_cancelled")
    assert u.words.en.startswith("Payment cancelled; you were not charged.")
    assert u.actions == ("retry", "pay_at_counter", "cancel_order")
    assert sim.state_of("pi-cancel") == "cancelled" and sim.charges == []


# =========================================================================
# Invariant 5: recorded before asked; after a crash, asked, never charged again
# =========================================================================


class WatchingStore(InMemoryIntentStore):
    """Notes what the terminal had received when each intent was committed."""

    def __init__(self, sim: TerminalSim) -> None:
        super().__init__()
        self.sim = sim
        self.seen_at_commit: list[bytes] = []

    def add(self, intent: PaymentIntent) -> None:
        super().add(intent)
        # Had anything been sent before this commit, it would arrive now.
        try:
            self.sim.wait_until(lambda: self.sim.lines, 0.3, "line")
        except TimeoutError:
            pass
        self.seen_at_commit = list(self.sim.lines)


def test_the_intent_is_committed_before_the_terminal_is_asked(sims, terminals) -> None:
    sim = sims("approve")
    store = WatchingStore(sim)
    flow_for(terminals(sim.device), store).begin("pi-first", order_id=oid(), amount=500)
    sim.wait_until(lambda: sim.pay_requests["pi-first"] == 1, 5, "PAY")
    assert store.seen_at_commit == [], "nothing went to the terminal before the commit"
    assert store.history[0].state == "intent_recorded"


def test_when_the_intent_cannot_be_committed_the_terminal_is_never_asked(sims, terminals) -> None:
    sim = sims("approve")

    class BrokenStore(InMemoryIntentStore):
        def add(self, intent: PaymentIntent) -> None:
            raise OSError("disk full")

    term = terminals(sim.device)
    with pytest.raises(OSError):
        flow_for(term, BrokenStore()).begin("pi-disk", order_id=oid(), amount=500)
    assert term.ping()  # the simulator reads in order: anything sent before is seen
    assert sim.lines == [frame("PING")[:-1]] and sim.charges == []


def test_a_crash_between_the_charge_and_the_commit_queries_and_never_charges_again(sims, terminals) -> None:
    # A bad terminal that would charge a repeated PAY: only the kiosk stands
    # between the diner and a second charge.
    sim = sims("approve", idempotent=False)
    store = InMemoryIntentStore()  # stands for the kiosk's SQLite file
    order_id = oid()
    before = terminals(sim.device)
    flow_for(before, store).begin("pi-crash", order_id=order_id, amount=3200)
    sim.wait_until(lambda: len(sim.charges) == 1, 5, "charge")
    before.close()  # the kiosk dies: the approval is never read, never recorded
    assert store.get("pi-crash").state == "waiting_terminal"

    # restarted: the app resumes every unresolved intent
    (pending,) = store.unresolved()
    after = flow_for(terminals(sim.device), store)
    u = after.resume(pending.intent_id)
    assert u.state == "approved" and u.auth_ref == "A000001" and u.payment.amount == 3200
    assert store.get("pi-crash").state == "approved"
    assert sim.charges_for("pi-crash") == 1 and sim.pay_requests["pi-crash"] == 1
    assert sim.lines[-1].startswith(b"QUERY pi-crash")

    # and an app that calls begin() again with the same intent id resumes too
    again = flow_for(terminals(sim.device), store)
    u = again.begin("pi-crash", order_id=order_id, amount=3200)
    assert u.state == "approved" and sim.pay_requests["pi-crash"] == 1 and len(sim.charges) == 1


def test_a_crash_before_the_charge_was_sent_finds_nothing_charged(sims, terminals) -> None:
    sim = sims("approve", idempotent=False)
    store = InMemoryIntentStore()
    store.add(PaymentIntent("pi-early", oid(), "card", 900))  # committed, then the kiosk died
    u = flow_for(terminals(sim.device), store).resume("pi-early")
    assert (u.state, u.reason) == ("declined", "not_received")
    assert u.words.en.startswith("The terminal did not receive the payment; you were not charged.")
    assert sim.charges == [] and sim.state_of("pi-early") == "cancelled", "it can never be charged later"


def test_a_terminal_that_is_switched_off_leaves_the_outcome_unknown(sims, terminals) -> None:
    sim = sims("offline")
    flow = flow_for(terminals(sim.device), query_attempts=2)
    flow.begin("pi-off", order_id=oid(), amount=700)
    u = flow.wait(5)
    assert (u.state, u.reason) == ("unknown", "no_reply") and sim.charges == []
    assert u.words.en.startswith("The payment terminal does not answer.")
    sim.mode = "approve"  # back on; it never got the PAY
    u = flow.check_again()
    assert (u.state, u.reason) == ("declined", "not_received") and sim.charges == []


def test_an_approval_for_another_amount_is_not_taken_as_paid(sims, terminals) -> None:
    sim = sims("slow", slow_s=30)
    flow = flow_for(terminals(sim.device), pay_timeout_s=30)
    flow.begin("pi-amt", order_id=oid(), amount=3200)
    sim.send(frame("OK pi-other APPROVED 3200 A1"))  # for another intent: ignored
    sim.send(frame("OK pi-amt APPROVED 320 A2"))  # the wrong amount
    u = flow.wait(5)
    assert (u.state, u.reason) == ("unknown", "amount_mismatch") and u.payment is None


def test_a_terminal_that_is_not_there_is_a_clear_refusal(terminals) -> None:
    flow = flow_for(terminals("/dev/nonexistent-terminal"))
    u = flow.begin("pi-gone", order_id=oid(), amount=100)
    assert (u.state, u.reason) == ("declined", "terminal_unavailable")
    assert u.actions == ("pay_at_counter", "cancel_order")
    assert u.words.en.startswith("The payment terminal is not available; you were not charged.")


def test_ping_tells_whether_the_terminal_answers(sims, terminals) -> None:
    sim = sims("approve")
    term = terminals(sim.device)
    assert term.ping()
    sim.mode = "offline"
    assert not term.ping()


# =========================================================================
# Pay at the counter
# =========================================================================


def test_pay_at_the_counter_places_the_order_unpaid() -> None:
    store = InMemoryIntentStore()
    flow = PaymentFlow(CounterPayment(), store)
    u = flow.begin("pi-counter", order_id=oid(), amount=3200)
    assert u.state == "unpaid" and u.final
    assert (u.payment.method, u.payment.status, u.payment.amount) == ("counter", "unpaid", 0)
    assert u.words.en == "Please pay at the counter; your receipt is marked UNPAID."
    assert store.get("pi-counter").state == "unpaid"


# =========================================================================
# The line format
# =========================================================================


def test_frames_carry_a_checksum_and_round_trip() -> None:
    line = frame("PAY pi-1 3200")
    assert line.endswith(b"\n") and line[-4:-3] == b"*"
    assert unframe(line[:-1]) == ("PAY pi-1 3200", "")
    assert unframe(line[:-1] + b"\r") == ("PAY pi-1 3200", "")
    with pytest.raises(ValueError):
        frame("PAY pi*1 3200")


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"OK pi-1 APPROVED 3200 A1", "no_checksum"),
        (frame("OK pi-1 APPROVED 3200 A1")[:-4] + b"*00", "bad_checksum"),
        (frame("OK pi-1 APPROVED 3200 A1")[:-4] + b"*zz", "bad_checksum"),
        (b"\xf0\x9f\x92\xb3 paid*12", "not_ascii"),
        (b"~" * 200, "line_too_long"),
        (frame("HELLO pi-1")[:-1], "unknown_reply"),
        (frame("OK pi-1 APPROVED")[:-1], "bad_format"),
        (frame("OK pi-1 APPROVED -5 A1")[:-1], "bad_format"),
        (frame("OK pi-1 APPROVED 3200 A1 extra")[:-1], "bad_format"),
        (frame("OK pi-1 MAYBE 3200")[:-1], "bad_format"),
        (frame("STATUS pi-1 DECLINED Not_A_Reason")[:-1], "bad_format"),
        (frame("ERR")[:-1], "bad_format"),
        (frame("OK  pi-1 DECLINED x")[:-1], "bad_format"),
    ],
)
def test_every_malformed_reply_is_garbled_with_a_reason(raw: bytes, reason: str) -> None:
    r = parse_reply(raw)
    assert (r.outcome, r.reason) == ("garbled", reason)


@pytest.mark.parametrize(
    "body, outcome, fields",
    [
        ("OK pi-1 APPROVED 3200 A000001", "approved", {"amount": 3200, "auth_ref": "A000001"}),
        ("OK pi-1 DECLINED insufficient_funds", "declined", {"reason": "insufficient_funds"}),
        ("STATUS pi-1 PENDING", "pending", {}),
        ("STATUS pi-1 CANCELLED", "cancelled", {}),
        ("STATUS pi-1 UNKNOWN", "no_record", {}),
        ("ERR pi-1 busy", "error", {"reason": "busy"}),
        ("ERR - bad_checksum", "error", {"reason": "bad_checksum", "intent_id": ""}),
    ],
)
def test_every_valid_reply_decodes(body: str, outcome: str, fields: dict) -> None:
    r = parse_reply(frame(body)[:-1])
    assert r.outcome == outcome
    for k, v in fields.items():
        assert getattr(r, k) == v


def test_random_noise_never_raises() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 140)))
        assert parse_reply(raw).outcome == "garbled"
