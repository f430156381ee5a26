"""Retention (restobox/hub/retention.py): what the cloud has, the printers
printed and the window left behind goes; nothing else, whatever its age.

The first tests make a store's history through the hub's own handling of
messages (Hub._process, as tests/fixtures/db/make.py does) with the hub's
clock set months back, then run passes of retention on that real file.
The last runs the real ``restobox hub`` over a large history and orders
from a kiosk between the batches of a pass."""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from restobox import config, contract, db
from restobox.contract import PrintJobState, StationEvent, topics
from restobox.hub.retention import Retention
from tests.fixtures.db.make import KUNG_PAO, MILK_TEA, msg, offline_hub, order
from tests.support import HubProcess, Kiosk, hub_config, hub_config_text, new_order, wait

NOW = datetime(2027, 6, 1, 6, 0, tzinfo=timezone.utc)  # 14:00 in the store
OLD = NOW - timedelta(days=120)


def hub_for(tmp_path: Path, clock):
    return offline_hub(config.parse(hub_config_text(tmp_path / "store.db", extra=f"""
[hub.loyalty]
enabled = true
[hub.printing]
receipt_printers = {{kiosk-1 = "receipt"}}
stations = {{wok = {{printer = "kitchen", mode = "always"}}}}
[hub.retention]
keep_days = 90
sync_database = "{tmp_path / 'sync.db'}"
batch_rows = 10
""")), clock)


def submit(hub, o) -> None:
    hub._process([("submit", msg(topics.order_submit("kiosk-1"), o))])


def printed(hub, order_id: str, state: str = "done") -> None:
    for j in db.PrintRequest.select().where(db.PrintRequest.order_id == order_id):
        hub._process([("print_state", msg(topics.PRINT_JOB_STATE, PrintJobState(
            job_id=j.job_id, printer=j.printer, kind=j.kind, order_id=order_id, state=state, at="x")))])


def bump(hub, order_id: str) -> None:
    """Every station bumps its ticket, then the expo the whole order: completed."""
    stations = [t.station for t in db.Ticket.select().where(db.Ticket.order == order_id)]
    for station in stations + [contract.EXPO_STATION]:
        ev = StationEvent(event_id=str(uuid.uuid4()), kind="bump", order_id=order_id, device=f"kds-{station}")
        hub._process([("station", msg(topics.station_event(station), ev))])


def set_cursor(tmp_path: Path, seq: int) -> None:
    sdb = db.open_sync_db(tmp_path / "sync.db")
    db.SyncCursor.insert(id=1, seq=seq, updated_at=0).on_conflict_replace().execute()
    sdb.close()


def run_pass(hub, now: datetime) -> Counter:
    r = hub.retention
    r.next_pass = float("-inf")
    gone: Counter = Counter()
    gone.update(r.step(hub._db, now, hub.menu.version))
    while r.busy:
        gone.update(r.step(hub._db, now, hub.menu.version))
    return gone


OPEN_PRINTS = "SELECT job_id FROM print_request WHERE state NOT IN ('done', 'failed') ORDER BY job_id"


def table(path: Path, sql: str) -> list:
    con = sqlite3.connect(path)
    try:
        return [r[0] if len(r) == 1 else r for r in con.execute(sql)]
    finally:
        con.close()


@pytest.fixture
def history(tmp_path):
    """120 days ago: ``done`` (3 orders completed, printed, in the cloud),
    ``open_order`` (never completed), ``unprinted`` (completed, a ticket
    still queued at the printer), ``undelivered`` (completed, printed, its
    events after the sync cursor); today: ``today`` (completed, printed).
    One of the done orders earned loyalty points."""
    clock = [OLD]
    hub = hub_for(tmp_path, lambda: clock[0])
    ids: dict[str, list[str]] = {}
    done = [order(KUNG_PAO, loyalty=contract.LoyaltyClaim(phone="13812345678")), order(MILK_TEA), order(KUNG_PAO)]
    for o in done:
        submit(hub, o)
        bump(hub, o.order_id)
        printed(hub, o.order_id)
    ids["done"] = [o.order_id for o in done]
    for name, state in (("open_order", "done"), ("unprinted", "queued")):
        o = order(KUNG_PAO)
        submit(hub, o)
        if name != "open_order":
            bump(hub, o.order_id)
        printed(hub, o.order_id, state)
        ids[name] = [o.order_id]
    # an old menu, replaced long ago
    db.MenuVersion.insert(version="2026-01-01.1", body="{}", source="cloud",
                          applied_at=(OLD - timedelta(days=30)).isoformat(timespec="milliseconds")).execute()
    cursor = db.Outbox.select(db.Outbox.seq).order_by(db.Outbox.seq.desc()).first().seq
    o = order(MILK_TEA)
    submit(hub, o)
    bump(hub, o.order_id)
    printed(hub, o.order_id)
    ids["undelivered"] = [o.order_id]
    clock[0] = NOW
    o = order(KUNG_PAO)
    submit(hub, o)
    bump(hub, o.order_id)
    printed(hub, o.order_id)
    ids["today"] = [o.order_id]
    set_cursor(tmp_path, cursor)
    completed = table(tmp_path / "store.db", "SELECT id FROM \"order\" WHERE state = 'completed'")
    assert set(completed) == set(ids["done"] + ids["unprinted"] + ids["undelivered"] + ids["today"])
    yield hub, ids, cursor
    hub._db.close()


def test_delivered_rows_older_than_the_window_go_and_nothing_else(history, tmp_path):
    hub, ids, cursor = history
    store = tmp_path / "store.db"
    outbox_before = table(store, "SELECT seq, order_id, created_at FROM outbox")
    points_before = table(store, "SELECT entry_id FROM points_entry")
    assert points_before  # the loyalty order earned
    open_prints = table(store, OPEN_PRINTS)
    old_iso = (NOW - timedelta(days=90)).isoformat(timespec="milliseconds")

    gone = run_pass(hub, NOW)

    kept = set(table(store, 'SELECT id FROM "order"'))
    assert kept == set(ids["open_order"] + ids["unprinted"] + ids["undelivered"] + ids["today"])
    assert gone["order"] == 3
    # tickets and print requests went with their orders, and only with them
    assert set(table(store, "SELECT order_id FROM ticket")) == kept
    assert set(table(store, "SELECT order_id FROM print_request")) == kept
    assert table(store, OPEN_PRINTS) == open_prints and len(open_prints) >= 1
    # outbox: what the cloud has and is old went; everything after the cursor stayed
    outbox_after = table(store, "SELECT seq, order_id, created_at FROM outbox")
    assert outbox_after == [r for r in outbox_before if r[0] > cursor]
    assert gone["outbox"] == len([r for r in outbox_before if r[0] <= cursor and r[2] < old_iso]) > 0
    # the old station events' ids went, today's stayed
    assert table(store, "SELECT count(*) FROM processed_message WHERE at < ?".replace("?", repr(old_iso))) == [0]
    assert table(store, "SELECT count(*) FROM processed_message") == [2]  # undelivered's and today's bumps
    # the old menu went, the one in use stayed; the points ledger is whole
    assert table(store, "SELECT version FROM menu_version") == [hub.menu.version]
    assert table(store, "SELECT entry_id FROM points_entry") == points_before
    assert db.integrity_ok(hub._db)

    # a second pass finds nothing more to do
    assert run_pass(hub, NOW) == Counter()


def test_without_a_sync_cursor_no_order_and_no_outbox_event_goes(history, tmp_path):
    hub, ids, cursor = history
    (tmp_path / "sync.db").unlink()
    store = tmp_path / "store.db"
    orders, outbox = table(store, 'SELECT id FROM "order"'), table(store, "SELECT seq FROM outbox")
    gone = run_pass(hub, NOW)
    assert table(store, 'SELECT id FROM "order"') == orders
    assert table(store, "SELECT seq FROM outbox") == outbox
    assert gone["processed_message"] > 0  # what needs no cloud still goes


def test_the_newest_outbox_event_stays_so_its_seq_is_never_given_again(history, tmp_path):
    hub, ids, cursor = history
    store = tmp_path / "store.db"
    newest = table(store, "SELECT max(seq) FROM outbox")[0]
    set_cursor(tmp_path, newest)  # the cloud has everything
    run_pass(hub, NOW + timedelta(days=365))  # and all of it is old
    assert table(store, "SELECT seq FROM outbox") == [newest]
    assert set(table(store, 'SELECT state FROM "order"')) <= {"accepted", "in_progress", "ready"} | {"completed"}
    assert set(table(store, 'SELECT id FROM "order"')) == set(ids["open_order"] + ids["unprinted"])
    submit(hub, order(KUNG_PAO))
    assert table(store, "SELECT max(seq) FROM outbox")[0] > newest


# ------------------------------------------------------- the real hub
def fill_old_orders(path: Path, n: int, at: datetime) -> int:
    """``n`` completed, printed orders with a ticket and an outbox event
    each, at ``at``, written by the hub's own insert statements; returns
    the last outbox seq."""
    database = db.open_store_db(path)
    ts = at.isoformat(timespec="milliseconds")
    day = at.date().isoformat()
    with database.atomic():
        for i in range(n):
            oid = str(uuid.uuid4())
            db.insert_order(database, id=oid, business_date=day, number=i + 1, state="completed", channel="kiosk",
                            service="takeaway", table=None, device="kiosk-1", lang="zh", placed_at=ts,
                            accepted_at=ts, updated_at=ts, subtotal=2800, tax=0, total=2800, currency="CNY",
                            payment_method="counter", payment_status="unpaid", payment_reference="",
                            offline=False, provisional_number="", menu_version="old", note="", body_hash="h",
                            lines="[]")
            db.insert_tickets(database, [dict(id=f"{oid}:wok", order=oid, station="wok", state="done",
                                              items="[]", revision=1, created_at=ts, updated_at=ts, acked_at=ts)])
            db.insert_outbox(database, event_id=f"{oid}:accepted", kind="order_accepted", order_id=oid,
                             payload="{}", created_at=ts)
    last = db.Outbox.select(db.Outbox.seq).order_by(db.Outbox.seq.desc()).first().seq
    database.close()
    return last


@pytest.mark.integration
def test_the_hub_keeps_taking_orders_while_a_pass_runs(broker, monitor, tmp_path):
    store = tmp_path / "store.db"
    old = datetime.now(timezone.utc) - timedelta(days=200)
    set_cursor(tmp_path, fill_old_orders(store, 1200, old))
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=store, extra=f'[hub.retention]\nsync_database = "{tmp_path / "sync.db"}"\n'
                                           "interval_s = 1\nbatch_rows = 50\n")
    hub = HubProcess(cfg, tmp_path / "hub.log")
    hub.start(monitor)
    kiosk = Kiosk(broker, "kiosk-1")
    try:
        def old_left() -> int:
            return table(store, 'SELECT count(*) FROM "order" WHERE business_date < date(\'now\', \'-30 days\')')[0]

        wait(lambda: old_left() < 1200, 15, "the first batch of the pass")
        numbers = []
        for _ in range(10):
            left = old_left()
            r = kiosk.submit(new_order(KUNG_PAO), timeout=5)
            assert r.status == "accepted", r
            numbers.append(r.number)
            # the next order goes once the pass has moved on: orders and batches take turns
            wait(lambda: old_left() < left, 10, "a batch between two orders")
        assert old_left() > 0, "the pass ended before the orders: nothing was shown"
        wait(lambda: old_left() == 0, 60, "the pass to delete every old order")
        assert table(store, "SELECT count(*) FROM ticket WHERE order_id NOT IN (SELECT id FROM \"order\")") == [0]
        assert len(table(store, 'SELECT id FROM "order"')) == 10 and sorted(numbers) == list(range(1, 11))
        health = monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("pruned.order") == 1200)
        assert health["state"] == "ready" and health["counters"].get("retention_failures", 0) == 0
    finally:
        kiosk.close()
        hub.stop()
