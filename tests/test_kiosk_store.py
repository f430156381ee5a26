"""kiosk.db (kiosk.store.KioskStore): payment intents, the order outbox,
provisional numbers and the menu cache, on real SQLite files, reopened as a
restarted kiosk would."""

from __future__ import annotations

import sqlite3

import pytest

from kiosk.payment import IntentExists, PaymentFlow, PaymentIntent, SerialTerminal
from kiosk.store import KioskStore
from restobox.dev.terminal_sim import TerminalSim


class FakeClock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "kiosk" / "kiosk.db"


@pytest.fixture(autouse=True)
def closes_every_store(monkeypatch):
    """Each KioskStore a test opens is closed at its end (as a restarted
    kiosk would have closed it)."""
    opened: list[KioskStore] = []
    real = KioskStore.__init__

    def init(self, *a, **kw):
        real(self, *a, **kw)
        opened.append(self)
    monkeypatch.setattr(KioskStore, "__init__", init)
    yield
    for s in opened:
        s.close()


def intent(i: str = "pi-1", order: str = "o-1", state: str = "intent_recorded") -> PaymentIntent:
    return PaymentIntent(intent_id=i, order_id=order, method="card", amount=3200, state=state,
                         created_at=1.0, updated_at=1.0)


def test_intents_are_durable_and_never_stored_twice(path, clock):
    s = KioskStore(path, clock=clock)
    s.add(intent())
    with pytest.raises(IntentExists):
        s.add(intent())
    s.update("pi-1", state="waiting_terminal", updated_at=2.0)
    with pytest.raises(ValueError):
        s.update("pi-1", amount=1)
    with pytest.raises(KeyError):
        s.update("pi-nope", state="approved")
    s.close()
    # a restarted kiosk finds the unfinished intent, and only that one
    s = KioskStore(path, clock=clock)
    s.add(intent("pi-2", state="approved"))
    s.add(intent("pi-3", state="unknown"))
    assert [i.intent_id for i in s.unresolved()] == ["pi-1", "pi-3"]
    assert s.get("pi-1").state == "waiting_terminal"
    assert [i.intent_id for i in s.intents_for("o-1")] == ["pi-1", "pi-2", "pi-3"]
    # the file on disk is what a power cut leaves: WAL, synchronous FULL
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT state FROM payment_intent WHERE intent_id='pi-1'").fetchone()[0] == "waiting_terminal"
    con.close()
    s.close()


def test_payment_flow_with_the_sqlite_store_recovers_after_a_crash(path):
    """The intent is committed before PAY; the terminal charges but its answer
    is lost and the kiosk dies. A new process (a new store on the same file)
    queries the terminal and never charges again."""
    sim = TerminalSim(mode="no_reply")
    try:
        s1 = KioskStore(path)
        t1 = SerialTerminal(sim.device, timeout_s=0.5)
        u = PaymentFlow(t1, s1, pay_timeout_s=30).begin("pi-crash", order_id="o-9", amount=1800)
        assert u.state == "waiting_terminal"
        sim.wait_until(lambda: sim.charges_for("pi-crash") == 1, 5, "charge")
        t1.close()
        s1.close()  # the kiosk dies here
        s2 = KioskStore(path)
        [left] = s2.unresolved()
        assert left.intent_id == "pi-crash" and left.state == "waiting_terminal"
        t2 = SerialTerminal(sim.device, timeout_s=0.5)
        u = PaymentFlow(t2, s2, query_interval_s=0).resume(left.intent_id)
        assert u.state == "approved"
        assert sim.charges_for("pi-crash") == 1 and sim.pay_requests["pi-crash"] == 1
        assert s2.get("pi-crash").state == "approved" and s2.unresolved() == []
        t2.close()
        s2.close()
    finally:
        sim.close()


def test_outbox_from_sending_to_delivered(path, clock):
    s = KioskStore(path, clock=clock)
    s.sending("o-1", b"{v1}", total=3200, payment_status="unpaid")
    s.sending("o-1", b"{v2}", total=3400, payment_status="unpaid")  # the diner changed the cart
    [row] = s.waiting()
    assert (row.state, row.payload, row.total) == ("sending", b"{v2}", 3400)
    assert s.delivered("o-1", 42)
    assert not s.delivered("o-1", 42)  # a second answer changes nothing
    assert s.get_order("o-1").number == 42
    assert s.waiting() == []
    s.sending("o-1", b"{v3}", total=1, payment_status="unpaid")  # never back once delivered
    assert s.get_order("o-1").state == "delivered"


def test_queued_orders_keep_their_provisional_number_and_order(path, clock):
    s = KioskStore(path, clock=clock)
    for n, oid in enumerate(("o-a", "o-b", "o-c")):
        clock.t += 1
        s.queue(oid, b"{}", f"K1-00{n}", total=100, payment_status="approved")
    s.attempted("o-a")
    assert [r.order_id for r in s.waiting()] == ["o-a", "o-b", "o-c"]
    assert s.get_order("o-a").attempts == 1
    clock.t += 60
    b = s.backlog()
    assert (b.waiting, b.queued, b.refused) == (3, 3, 0)
    assert b.oldest_s == pytest.approx(62)
    assert s.refused("o-b", "price_mismatch", "The price has changed.")
    assert s.delivered("o-a", 7)
    b = s.backlog()
    assert (b.waiting, b.queued, b.refused) == (1, 1, 1)
    assert s.get_order("o-b").reason == "price_mismatch"
    s.drop("o-c")  # only a sending order can be dropped
    assert s.get_order("o-c").state == "queued"


def test_recover_queues_paid_orders_and_drops_unpaid_ones(path, clock):
    s = KioskStore(path, clock=clock)
    s.sending("paid", b"{p}", total=100, payment_status="approved")
    s.sending("unpaid", b"{u}", total=100, payment_status="unpaid")
    s.close()
    s = KioskStore(path, clock=clock)
    assert s.recover() == (1, 1)
    assert s.get_order("paid").state == "queued"
    assert s.get_order("unpaid") is None


def test_provisional_counter_is_durable(path, clock):
    s = KioskStore(path, clock=clock)
    assert [s.next_provisional() for _ in range(3)] == [1, 2, 3]
    s.close()
    s = KioskStore(path, clock=clock)
    assert s.next_provisional() == 4


def test_menu_cache(path, clock):
    s = KioskStore(path, clock=clock)
    assert s.get_value("menu") is None
    s.put("menu", b"menu-v1")
    s.put("menu", b"menu-v2")
    s.close()
    assert KioskStore(path, clock=clock).get_value("menu") == b"menu-v2"
