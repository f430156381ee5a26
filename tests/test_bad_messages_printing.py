"""The printing service survives any payload on print/job, and any job kept
in printing.db: each is refused or marked failed with a reason, counted in
its health, acknowledged, and the next real ticket prints. A job that
printing.db cannot take (locked) is not lost: it is stored and printed once
the database is back, without holding up the broker.

On the real broker with the real hub, printing service and printers; the
bad jobs come from a kiosk (the kiosk role may write print/job)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from restobox import contract
from restobox.contract import (
    KitchenData,
    PricedLine,
    PrintJob,
    ReceiptData,
    ReportData,
    ReportRow,
    ReportSection,
    StationTicket,
    StoreHeader,
    TicketItem,
    Words,
    topics,
)
from tests.support import KUNG_PAO, Device, new_order
from tests.test_bad_messages_common import POISON, counted, expected, flood
from tests.support import wait
from tests.test_print_spooler import kiosk, printing_config, store  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

BIG = 2**53 - 1
OID = "00000000-0000-4000-8000-000000000001"


def absurd_jobs() -> list[PrintJob]:
    """Jobs that decode (each under 64 KiB) but whose values no hub makes, of every kind."""
    header = StoreHeader(name_zh="", name_en="x" * 8000)
    ticket = StationTicket(
        ticket_id="", order_id="", number=BIG, station="wok", channel="", service="", accepted_at="",
        revision=-1, items=tuple(TicketItem(line=-k, item_id="", name_zh="中" * 20, name_en="", qty=-BIG)
                                 for k in range(250)))
    line = PricedLine(line=BIG, item_id="", name_zh="", name_en="y" * 4000, qty=BIG, unit_price=-BIG,
                      line_total=BIG, station="")
    receipt = ReceiptData(store=header, order_id="", number=-1, business_date="", accepted_at="", channel="",
                          service="", lines=(line,) * 3, subtotal=-BIG, tax=BIG, total=BIG, tax_rate_bp=-BIG)
    report = ReportData(store=header, business_date="", made_at="", sections=tuple(
        ReportSection(title=Words("", "t" * 300), rows=tuple(ReportRow(label=Words("标" * 50, ""), value="9" * 40)
                                                            for _ in range(20))) for _ in range(5)))
    return [
        PrintJob(job_id="bad:receipt-without-data", printer="receipt-1", kind="receipt"),
        PrintJob(job_id="bad:kitchen-without-data", printer="kitchen-1", kind="kitchen"),
        PrintJob(job_id="bad:report-without-data", printer="receipt-1", kind="report"),
        PrintJob(job_id="bad:unknown-printer", printer="nope", kind="test"),
        PrintJob(job_id="bad:absurd-receipt", printer="receipt-1", kind="receipt", order_id=OID, receipt=receipt),
        PrintJob(job_id="bad:absurd-kitchen", printer="kitchen-1", kind="kitchen", order_id="x" * 2000,
                 kitchen=KitchenData(station_name=Words("", ""), ticket=ticket, printed_at="")),
        PrintJob(job_id="bad:absurd-report", printer="receipt-1", kind="report", report=report),
        PrintJob(job_id="bad:test", printer="kitchen-1", kind="test", order_id="\x00\n", reprint=True),
        PrintJob(job_id="", printer="kitchen-1", kind="test"),
    ]


@pytest.fixture
def kiosk2(broker, store):  # noqa: F811
    d = Device(broker, "kiosk-2", role="kiosk")
    yield d
    d.close()


def printed(printer, order) -> bool:
    return any(order.order_id[:8].encode() in j for j in printer.jobs)


def test_poison_print_jobs_are_refused_counted_and_the_next_order_prints(store, kiosk, kiosk2, monitor):  # noqa: F811
    flood(kiosk2, topics.PRINT_JOB)
    for job in absurd_jobs():
        assert len(contract.encode(job)) < contract.MAX_PAYLOAD_BYTES
        kiosk2.publish(topics.PRINT_JOB, contract.encode(job))
    # every absurd job is answered: printed, or failed with a reason
    for job in absurd_jobs():
        st = monitor.wait_json(topics.PRINT_JOB_STATE,
                               lambda s: s["job_id"] == job.job_id and s["state"] in ("done", "failed"), 15)
        if st["state"] == "failed":
            assert st["reason"] and st["message"]["en"]
    states = {s["job_id"]: s for s in monitor.all_json(topics.PRINT_JOB_STATE) if s["state"] in ("done", "failed")}
    assert (states["bad:receipt-without-data"]["state"], states["bad:receipt-without-data"]["reason"]) == (
        "failed", "layout_failed")
    assert states["bad:unknown-printer"]["reason"] == "unknown_printer"
    # a real order still prints, at once
    order = new_order(KUNG_PAO)
    kiosk.submit(order)
    wait(lambda: printed(store.kitchen, order) and printed(store.receipt, order), 10, "the real order printed")
    # the refusals are in the service's health, by reason
    want = expected()
    h = monitor.wait_json(topics.health("printing"),
                          lambda h: counted(h["counters"], want, "rejected.{}")
                          and h["counters"].get("rejected", 0) >= len(POISON), 10)
    assert h["state"] == "ready"
    # the staff hear of it, once a minute per reason, not once per message
    alerts = [a for a in monitor.all_json(topics.ALERTS) if a["subject"] == "print/job"]
    assert sorted(a["code"] for a in alerts) == sorted(set(want))


def test_a_job_in_printing_db_that_cannot_be_read_is_failed_and_the_queue_goes_on(store, kiosk, monitor,  # noqa: F811
                                                                                  tmp_path):
    store.spooler.stop()
    con = sqlite3.connect(tmp_path / "printing.db")
    try:
        good = contract.encode(PrintJob(job_id="x", printer="kitchen-1", kind="kitchen")).decode()
        rows = [
            ("stored:not-json", "{not json"),
            ("stored:deep", "[" * 5000 + "]" * 5000),
            ("stored:not-a-job", '{"v":1}'),
            ("stored:no-data", good),  # decodes; cannot be laid out
            ("stored:blob", b"\xff\x00\xfe"),
            ("stored:huge", '{"v":1,"x":"' + "a" * (5 * 1024 * 1024) + '"}'),
        ]
        with con:
            for seq, (job_id, job) in enumerate(rows, start=-len(rows)):  # before anything else
                con.execute("insert into print_job (job_id, printer, kind, order_id, reprint, job, state, attempts,"
                            " interrupted, next_attempt, created_at, updated_at, seq)"
                            " values (?, 'kitchen-1', 'kitchen', '', 0, ?, 'queued', 0, 0, 0, '', '', ?)",
                            (job_id, job, seq))
    finally:
        con.close()
    store.spooler.start(monitor)
    for job_id, _ in rows:
        st = monitor.wait_json(topics.PRINT_JOB_STATE, lambda s: s["job_id"] == job_id and s["state"] == "failed", 10)
        assert st["reason"]
    order = new_order(KUNG_PAO)
    kiosk.submit(order)
    wait(lambda: printed(store.kitchen, order), 10, "the real order printed")


def test_a_job_printing_db_cannot_take_is_stored_and_printed_once_it_can(store, kiosk, monitor, tmp_path):  # noqa: F811
    lock = sqlite3.connect(tmp_path / "printing.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # another program holds printing.db's write lock
        order = new_order(KUNG_PAO)
        kiosk.submit(order)
        # not lost, not acknowledged as done: waiting to be stored, and staff can see it
        h = monitor.wait_json(topics.health("printing"),
                              lambda h: h["counters"].get("store_failed", 0) >= 1 and h["state"] == "degraded", 15)
        assert h["details"]["intake_waiting"] >= 1 and h["reason_code"] == "print_store_failing"
        assert not printed(store.kitchen, order)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait(lambda: printed(store.kitchen, order) and printed(store.receipt, order), 15, "the order printed")
    monitor.wait_json(topics.health("printing"),
                      lambda h: h["state"] == "ready" and h["details"]["intake_waiting"] == 0
                      and h["reason_code"] == "", 10)
    # the next order goes straight through: nothing was left unacknowledged
    second = new_order(KUNG_PAO)
    kiosk.submit(second)
    wait(lambda: printed(store.kitchen, second), 10, "the next order printed")
    time.sleep(1.0)
    assert sum(order.order_id[:8].encode() in j for j in store.kitchen.jobs) == 1
