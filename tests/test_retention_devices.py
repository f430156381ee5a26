"""Retention of the devices' databases (restobox/retention_common.py):
printing.db, a kiosk's kiosk.db and sync.db forget what is finished and
older than their window; nothing unfinished, undelivered or unsettled goes,
whatever its age, and nothing of today.

Each test makes history through the service's own code (the spooler's
``_store``/``set_state``/``note_fault``, the kiosk's KioskStore, the sync
forwarder's outage log and the pre-order runner's handling of the hub's
answers) on a real SQLite file, with the service's clock set months back,
then runs the service's own retention hook at today's time."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from restobox import config, contract, db
from tests.support import KUNG_PAO, new_order

NOW = datetime(2027, 6, 1, 6, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=120)


def rows(path: Path, sql: str) -> list:
    con = sqlite3.connect(path)
    try:
        return [r[0] if len(r) == 1 else r for r in con.execute(sql)]
    finally:
        con.close()


class QuietBus:
    """The services' bus where no broker is needed: what they publish is
    kept, nothing is delivered."""

    connected = False

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic, payload, **kw) -> None:
        self.published.append((topic, payload))

    def subscribe(self, topic, fn) -> None:
        pass


# ------------------------------------------------------------ printing.db
@pytest.fixture
def spooler(tmp_path):
    from restobox.printing.spooler import Spooler

    cfg = config.parse(f"""
[device]
id = "printing"
role = "printing"
[printing]
database = "{tmp_path / 'printing.db'}"
keep_days = 30
[[printing.printers]]
id = "p1"
port = "virtual"
directory = "{tmp_path / 'paper'}"
""")
    clock = [OLD]
    sp = Spooler(cfg, bus=QuietBus(), clock=lambda: clock[0])
    sp._db = db.open_printing_db(cfg.printing.database)
    sp.workers = {"p1": SimpleNamespace(wake=threading.Event())}  # no printer thread: rows only
    yield sp, clock
    sp._db.close()


def job(name: str) -> contract.PrintJob:
    return contract.PrintJob(job_id=f"test:p1:{name}", printer="p1", kind="test")


def test_printing_db_forgets_finished_jobs_and_ended_faults_older_than_the_window(spooler, tmp_path):
    sp, clock = spooler
    for seq, (name, state) in enumerate((("done", "done"), ("failed", "failed"), ("queued", None),
                                         ("held", "held"), ("printing", "printing"), ("done_late", None)), 1):
        sp._store(job(name), seq)
        if state:
            sp.set_state(f"test:p1:{name}", state)
    sp.note_fault("p1", "paper_out")
    sp.note_fault("p1", None)  # paper back: the fault is over
    sp.note_fault("p1", "cover_open")
    sp.note_fault("p2", "paper_out")  # never over: still going on
    clock[0] = NOW - timedelta(days=40)
    sp.note_fault("p1", "printer_offline")  # ends cover_open 40 days ago: that one goes too
    clock[0] = NOW
    sp.set_state("test:p1:done_late", "done")  # an old job finished today
    sp._store(job("today"), 7)
    sp.set_state("test:p1:today", "done")
    sp.note_fault("p1", None)  # today: the offline fault ends
    path = tmp_path / "printing.db"
    assert len(rows(path, "SELECT job_id FROM print_job")) == 7

    sp.pruner.next_pass = float("-inf")  # the pass is due
    sp._prune()
    while sp.pruner.busy:
        sp._prune()

    assert sorted(rows(path, "SELECT job_id FROM print_job")) == sorted(
        f"test:p1:{n}" for n in ("queued", "held", "printing", "done_late", "today"))
    # paper_out and cover_open ended before the window; p2's paper_out never did, printer_offline today
    assert rows(path, "SELECT printer, reason FROM printer_fault ORDER BY id") == [
        ("p2", "paper_out"), ("p1", "printer_offline")]
    assert sp.counters["pruned.print_job"] == 2 and sp.counters["pruned.printer_fault"] == 2
    assert sp.counters.get("retention_failures", 0) == 0
    # the next pass finds nothing; a job id that went is a new job if it comes again
    assert sp.pruner.run_pass(sp._db, NOW.timestamp()) == {}


def test_a_failed_batch_is_counted_and_the_service_goes_on(spooler, tmp_path):
    sp, clock = spooler
    sp._store(job("a"), 1)
    sp._db.execute_sql("DROP TABLE printer_fault")  # a damaged printing.db
    sp.pruner.next_pass = float("-inf")
    for _ in range(3):
        sp._prune()
    assert sp.counters["retention_failures"] == 1 and not sp.pruner.busy
    assert rows(tmp_path / "printing.db", "SELECT job_id FROM print_job") == ["test:p1:a"]


# --------------------------------------------------------------- kiosk.db
def test_kiosk_db_forgets_delivered_orders_and_settled_payments_never_money_in_doubt(tmp_path):
    from kiosk.payment import PaymentIntent
    from kiosk.store import KioskStore

    clock = [OLD.timestamp()]
    path = tmp_path / "kiosk.db"
    s = KioskStore(path, clock=lambda: clock[0])

    def order(name: str, state: str, intent: str | None = None) -> str:
        oid = str(uuid.uuid4())
        if intent:
            s.add(PaymentIntent(intent_id=f"pi-{name}", order_id=oid, method="card", amount=3200, state=intent,
                                created_at=clock[0], updated_at=clock[0]))
        if state == "none":
            return oid
        payload = msgspec.json.encode(new_order(KUNG_PAO))
        s.sending(oid, payload, total=3200, payment_status="approved")
        if state in ("queued", "delivered_queued", "refused"):
            s.queue(oid, payload, f"K1-{s.next_provisional():03d}", total=3200, payment_status="approved")
        if state.startswith("delivered"):
            s.delivered(oid, 42)
        if state == "refused":
            s.refused(oid, "out_of_stock", "sold out")
        return oid

    old = {
        "delivered": order("delivered", "delivered", "approved"),
        "delivered_offline": order("delivered_offline", "delivered_queued", "unpaid"),
        "sending": order("sending", "sending", "approved"),
        "queued": order("queued", "queued", "approved"),
        "refused": order("refused", "refused", "approved"),
        "unknown": order("unknown", "delivered", "unknown"),  # the order is in, the payment is not known
        "declined": order("declined", "none", "declined"),  # the diner gave up: no order, no money
        "orphan": order("orphan", "none", "approved"),  # money taken, no order: staff refund or serve
        "pending": order("pending", "none", "waiting_terminal"),
    }
    clock[0] = NOW.timestamp()
    today = order("today", "delivered", "approved")
    counter_before = s.get_value("provisional")

    pruner = s.pruner(30)
    gone = pruner.run_pass(s.database, NOW.timestamp())

    kept_orders = set(rows(path, "SELECT order_id FROM order_outbox"))
    assert kept_orders == {old["sending"], old["queued"], old["refused"], today}
    kept_intents = set(rows(path, "SELECT intent_id FROM payment_intent"))
    assert kept_intents == {"pi-sending", "pi-queued", "pi-refused", "pi-unknown", "pi-orphan", "pi-pending",
                            "pi-today"}
    assert gone == {"order_outbox": 3, "payment_intent": 3}
    # the provisional counter and what the kiosk cached stay
    assert s.get_value("provisional") == counter_before
    assert s.backlog().waiting == 2 and s.backlog().refused == 1
    assert pruner.run_pass(s.database, NOW.timestamp()) == {}
    s.close()


def test_the_kiosk_io_thread_prunes_when_idle_and_counts_it(tmp_path):
    """The controller's hook, as the io thread calls it: one batch a round,
    counted as ``pruned.<table>`` in the kiosk's health counters."""
    from kiosk.controller import KioskController
    from kiosk.store import KioskStore

    clock = [OLD.timestamp()]
    s = KioskStore(tmp_path / "kiosk.db", clock=lambda: clock[0])
    oid = str(uuid.uuid4())
    s.sending(oid, b"{}", total=1, payment_status="unpaid")
    s.delivered(oid, 1)
    clock[0] = NOW.timestamp()
    k = KioskController.__new__(KioskController)  # only what the hook reads
    k.cfg = config.parse('[device]\nid = "kiosk-1"\nrole = "kiosk"\n[kiosk]\nkeep_days = 14\n')
    k._store, k._pruner, k.clock, k.counters = s, None, lambda: clock[0], {"submitted": 0}
    k._prune()
    k._pruner.next_pass = float("-inf")
    while k._pruner.due():
        k._prune()
    assert k.counters["pruned.order_outbox"] == 1 and s.get_order(oid) is None
    s.close()


# ---------------------------------------------------------------- sync.db
def test_sync_db_forgets_ended_outages_and_answered_preorders(tmp_path):
    from restobox.sync import Forwarder, PreorderRunner

    db.open_store_db(tmp_path / "store.db").close()
    cfg = config.parse(f"""
[device]
id = "sync"
role = "sync"
[sync]
database = "{tmp_path / 'sync.db'}"
store_database = "{tmp_path / 'store.db'}"
cloud_url = "http://127.0.0.1:9"
keep_days = 30
""")
    clock = [OLD.timestamp()]
    fw = Forwarder(cfg, clock=lambda: clock[0], sleep=lambda s: None)
    pre = PreorderRunner(cfg, QuietBus(), clock=lambda: clock[0])
    try:
        fw._note_outage(True, "cloud_unreachable")
        fw._note_outage(False, "")  # over, long ago
        fw._note_outage(True, "cloud_timeout")  # still going on

        def preorder(name: str, answer: str | None) -> str:
            o = new_order(KUNG_PAO)
            db.SyncPreorder.insert(order_id=o.order_id, payload=msgspec.json.encode(o), pickup_at="x",
                                   fire_at=clock[0], state="waiting", received_at=clock[0],
                                   updated_at=clock[0]).execute()
            if answer is not None:
                db.SyncPreorder.update(state="sent").where(db.SyncPreorder.order_id == o.order_id).execute()
            if answer in ("accepted", "rejected"):
                pre._take_reply(contract.OrderReply(
                    order_id=o.order_id, status=answer, number=7 if answer == "accepted" else None,
                    reason=None if answer == "accepted" else "item_unavailable"))
            return o.order_id

        old = {n: preorder(n, a) for n, a in (("accepted", "accepted"), ("rejected", "rejected"),
                                              ("sent", "sent"), ("waiting", None))}
        clock[0] = NOW.timestamp()
        today = preorder("today", "accepted")

        fw.pruner.next_pass = float("-inf")
        fw.prune()
        while fw.pruner.busy:
            fw.prune()

        path = tmp_path / "sync.db"
        assert set(rows(path, "SELECT order_id FROM preorder")) == {old["sent"], old["waiting"], today}
        assert rows(path, "SELECT reason FROM sync_outage") == ["cloud_timeout"]  # not over
        assert fw.counters["pruned.preorder"] == 2 and fw.counters["pruned.sync_outage"] == 1
        assert rows(path, "SELECT seq FROM sync_cursor") == [0]  # the cursor is never touched
    finally:
        pre.close()
        fw.close()


def test_each_window_has_a_floor_that_keeps_what_dedup_needs():
    for section in ("printing", "kiosk", "sync"):
        with pytest.raises(config.ConfigError, match="keep_days"):
            config.parse(f'[device]\nid = "x"\nrole = "{section}"\n[{section}]\nkeep_days = 13\n')
        cfg = config.parse(f'[device]\nid = "x"\nrole = "{section}"\n[{section}]\nkeep_days = 14\n')
        assert getattr(cfg, section).keep_days == 14
