"""The printing service with the hub, on the real broker, against a network
printer (TCP) and a serial printer (a real pty) that can run out of paper,
drop the connection or refuse it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from restobox import contract
from restobox.contract import StaffCommand, topics
from restobox.dev.emulators import PtyPrinter, TcpPrinter
from restobox.ordercode import order_code
from restobox.printing import layouts
from tests.support import KUNG_PAO, MILK_TEA, Device, HubProcess, Kiosk, hub_config, new_order, \
    printing_service_config, tcp_printer, wait

pytestmark = pytest.mark.integration

HUB_PRINTING = """
[hub.printing.receipt_printers]
kiosk-1 = "receipt-1"

[hub.printing.stations.wok]
printer = "kitchen-1"
mode = "always"

[hub.printing.stations.drinks]
printer = "kitchen-1"
mode = "fallback"
fallback_after_s = 1.5
"""


def printing_config(path: Path, broker, tmp_path: Path, kitchen: TcpPrinter, receipt: PtyPrinter) -> Path:
    return printing_service_config(path, broker, tmp_path, tcp_printer("kitchen-1", kitchen.port) + f"""
[[printing.printers]]
id = "receipt-1"
port = "serial"
device = "{receipt.device}"
width_mm = 58
status_timeout_s = 0.5
""", printing="status_interval_s = 0.3")


@dataclass
class PrintStore:
    kitchen: TcpPrinter
    receipt: PtyPrinter
    hub: HubProcess
    spooler: HubProcess
    hub_db: Path


@pytest.fixture
def store(broker, monitor, tmp_path):
    kitchen, receipt = TcpPrinter(), PtyPrinter()
    hub_cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                         database=tmp_path / "store.db", extra=HUB_PRINTING)
    hub = HubProcess(hub_cfg, tmp_path / "hub.log")
    spooler = HubProcess(printing_config(tmp_path / "printing.toml", broker, tmp_path, kitchen, receipt),
                         tmp_path / "printing.log", service="printing", device="printing")
    try:
        hub.start(monitor)
        spooler.start(monitor)
        yield PrintStore(kitchen, receipt, hub, spooler, tmp_path / "store.db")
    finally:
        spooler.stop()
        hub.stop()
        kitchen.close()
        receipt.close()


@pytest.fixture
def kiosk(broker, store):
    k = Kiosk(broker, "kiosk-1")
    yield k
    k.close()


def job_state(monitor, job_pred, state, timeout=10.0) -> dict:
    return monitor.wait_json(topics.PRINT_JOB_STATE, lambda s: job_pred(s) and s["state"] == state, timeout)


def for_order(order):
    return lambda s: s["order_id"] == order.order_id


def test_an_accepted_order_prints_its_kitchen_ticket_and_receipt_exactly_once(store, kiosk, monitor):
    order = new_order(KUNG_PAO)
    reply = kiosk.submit(order)
    short = order.order_id[:8].encode()
    (ticket,) = store.kitchen.wait_for_jobs(1, 10)
    (receipt,) = store.receipt.wait_for_jobs(1, 10)
    assert short in ticket and short in receipt
    assert f"{reply.total / 100:.2f}".encode() in receipt
    # the counter's scanner reads the order's code off the receipt: the symbol and its text
    code = order_code(reply.business_date, reply.number)
    assert b"\x1dkI" + bytes([len(layouts.code128(code))]) + layouts.code128(code) in receipt
    assert code.encode() in receipt
    # the kiosk retries: the hub answers again but nothing prints twice
    assert kiosk.submit(order).duplicate
    time.sleep(1.5)
    assert len(store.kitchen.jobs) == 1 and len(store.receipt.jobs) == 1
    con = sqlite3.connect(store.hub_db)
    try:
        rows = con.execute("select kind, state, confirmed_at is not null from print_request").fetchall()
    finally:
        con.close()
    assert sorted(rows) == [("kitchen", "done", 1), ("receipt", "done", 1)]


def test_the_kitchen_ticket_of_an_order_placed_offline_shows_its_provisional_number(store, kiosk):
    order = new_order(KUNG_PAO, offline=True, provisional_number="K1-007")
    reply = kiosk.submit(order)
    (ticket,) = store.kitchen.wait_for_jobs(1, 10)
    assert b"K1-007" in ticket and str(reply.number).encode() in ticket


def test_paper_out_holds_the_job_alerts_and_prints_it_once_paper_is_back(store, kiosk, monitor):
    store.kitchen.mode = "paper_out"
    order = new_order(KUNG_PAO)
    kiosk.submit(order)
    held = job_state(monitor, lambda s: for_order(order)(s) and s["kind"] == "kitchen", "held")
    assert held["reason"] == "paper_out" and held["message"]["en"]
    alert = monitor.wait_json(topics.ALERTS, lambda a: a["code"] == "paper_out")
    assert alert["subject"] == "kitchen-1" and alert["severity"] == "critical"
    # the retained status tells staff how many jobs wait for paper
    monitor.wait_json(topics.printer_status("kitchen-1"), lambda s: s["state"] == "paper_out" and s["held"] == 1)
    assert store.kitchen.jobs == []
    # the receipt printer is not held up by the kitchen printer
    store.receipt.wait_for_jobs(1, 10)
    store.kitchen.mode = "ok"
    (ticket,) = store.kitchen.wait_for_jobs(1, 10)
    assert order.order_id[:8].encode() in ticket and b"REPRINT" not in ticket
    monitor.wait_json(topics.ALERTS, lambda a: a["code"] == "printer_ready")
    time.sleep(1.0)
    assert len(store.kitchen.jobs) == 1
    # the fault is in printing.db's fault log for the day's report, from the paper out to the paper back
    con = sqlite3.connect(store.hub_db.parent / "printing.db")
    try:
        faults = con.execute("select printer, reason, started_at < ended_at from printer_fault").fetchall()
    finally:
        con.close()
    assert faults == [("kitchen-1", "paper_out", 1)]


def test_a_connection_dropped_mid_job_prints_again_marked_reprint_never_silently_twice(store, kiosk, monitor):
    store.kitchen.drop_after(60)
    order = new_order(KUNG_PAO)
    kiosk.submit(order)
    (ticket,) = store.kitchen.wait_for_jobs(1, 15)
    assert store.kitchen.fragments, "the first attempt should have been cut off"
    assert b"REPRINT" in ticket and order.order_id[:8].encode() in ticket
    job_state(monitor, lambda s: for_order(order)(s) and s["kind"] == "kitchen", "done")
    time.sleep(1.0)
    assert len(store.kitchen.jobs) == 1


def test_a_refused_printer_does_not_stop_the_others_and_catches_up(store, kiosk, monitor):
    # switched off: open connections reset, new ones refused
    store.kitchen.refuse()
    store.kitchen.drop_connections()
    order = new_order(KUNG_PAO)
    kiosk.submit(order)
    store.receipt.wait_for_jobs(1, 10)
    monitor.wait_json(topics.printer_status("kitchen-1"), lambda s: s["state"] == "offline")
    assert store.kitchen.jobs == []
    store.kitchen.accept()
    (ticket,) = store.kitchen.wait_for_jobs(1, 15)
    assert order.order_id[:8].encode() in ticket


def test_a_ticket_no_screen_acknowledged_is_printed_at_the_station(broker, store, kiosk, monitor):
    kds = Device(broker, "kds-drinks-1", (topics.station_ticket("drinks"),), role="kds")
    try:
        unacked = new_order(MILK_TEA)
        kiosk.submit(unacked)
        acked = new_order(MILK_TEA)
        kiosk.submit(acked)
        t = kds.wait_json(topics.station_ticket("drinks"), lambda t: t["order_id"] == acked.order_id)
        kds.publish(topics.station_event("drinks"), contract.encode(contract.StationEvent(
            event_id=str(uuid.uuid4()), kind="ack", order_id=t["order_id"], device="kds-drinks-1")))
        alert = monitor.wait_json(topics.ALERTS, lambda a: a["code"] == "ticket_not_acknowledged")
        assert alert["subject"].startswith("drinks #")
        (ticket,) = store.kitchen.wait_for_jobs(1, 10)
        assert unacked.order_id[:8].encode() in ticket and b"FALLBACK" in ticket
        time.sleep(2.5)
        assert len(store.kitchen.jobs) == 1, "the acknowledged ticket must not print"
    finally:
        kds.close()


def test_a_reprint_is_explicit_says_reprint_and_a_repeated_command_prints_once(broker, store, kiosk, monitor):
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        order = new_order(KUNG_PAO)
        kiosk.submit(order)
        store.receipt.wait_for_jobs(1, 10)
        cmd = contract.encode(StaffCommand(command_id=str(uuid.uuid4()), kind="reprint", order_id=order.order_id))
        staff.publish(topics.staff_command("staff-1"), cmd)
        assert staff.wait_json(topics.staff_reply("staff-1"))["ok"] is True
        jobs = store.receipt.wait_for_jobs(2, 10)
        assert b"REPRINT" not in jobs[0] and b"REPRINT" in jobs[1]
        staff.publish(topics.staff_command("staff-1"), cmd)
        time.sleep(1.5)
        assert len(store.receipt.jobs) == 2
        # a station with no kitchen printer gets a reason, not silence
        bad = StaffCommand(command_id=str(uuid.uuid4()), kind="reprint", order_id=order.order_id, item_id="fryer")
        staff.publish(topics.staff_command("staff-1"), contract.encode(bad))
        ans = staff.wait_json(topics.staff_reply("staff-1"), lambda a: a["command_id"] == bad.command_id)
        assert ans["ok"] is False and ans["reason"] == "unknown_printer"
    finally:
        staff.close()


def test_the_printing_service_killed_mid_rush_loses_no_ticket(store, kiosk, monitor):
    orders = [new_order(KUNG_PAO) for _ in range(8)]
    for o in orders[:4]:
        kiosk.submit(o)
    store.kitchen.wait_for_jobs(1, 10)
    store.spooler.kill()
    for o in orders[4:]:
        kiosk.submit(o)
    store.spooler.start(monitor)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        printed = store.kitchen.jobs
        if all(any(o.order_id[:8].encode() in j for j in printed) for o in orders):
            break
        time.sleep(0.2)
    printed = store.kitchen.jobs
    for o in orders:
        mine = [j for j in printed if o.order_id[:8].encode() in j]
        assert mine, f"order {o.order_id} never printed"
        # printed again only if the first may have been cut off, and then marked
        assert all(b"REPRINT" in j for j in mine[1:])


def request_states(hub_db: Path) -> dict[str, tuple[str, bool]]:
    con = sqlite3.connect(hub_db)
    try:
        return {kind: (state, confirmed) for kind, state, confirmed in
                con.execute("select kind, state, confirmed_at is not null from print_request")}
    finally:
        con.close()


def test_the_store_database_learns_a_job_was_printed_even_if_the_hub_missed_the_message(
        broker, store, kiosk, monitor):
    """The printing service confirmed the kitchen ticket (held: printer
    off), then printed it while the hub was down and its broker session was
    gone (a broker restarted without it): the "done" went to nobody. The hub
    asks again about every job not yet done or failed, and store.db ends
    "done", with the ticket printed once."""
    from restobox.brokerconf import mqtt_connect_rc

    store.kitchen.refuse()
    store.kitchen.drop_connections()
    order = new_order(KUNG_PAO)
    kiosk.submit(order)
    wait(lambda: request_states(store.hub_db).get("kitchen") == ("held", True), 15, "kitchen job held")
    store.hub.kill()
    hub = broker.creds["hub"]
    assert mqtt_connect_rc(broker.host, broker.port, hub.username, hub.password) == 0  # its session is gone
    store.kitchen.accept()
    (ticket,) = store.kitchen.wait_for_jobs(1, 15)
    job_state(monitor, lambda s: s["kind"] == "kitchen", "done")
    store.hub.start(monitor)
    wait(lambda: request_states(store.hub_db) == {"kitchen": ("done", True), "receipt": ("done", True)}, 10,
         "every request done in store.db")
    assert len(store.kitchen.jobs) == 1


def test_a_ticket_whose_first_attempt_never_reached_the_printer_is_not_marked_reprint(broker, tmp_path):
    """The printer answered its status, then went off before the ticket was
    sent (its connection reset, connecting again refused): nothing of the
    ticket reached it. When it is back the ticket prints as the first and
    only copy, without the REPRINT mark staff may throw away."""
    from restobox import config
    from restobox.printing.spooler import Spooler

    kitchen, receipt = TcpPrinter(), PtyPrinter()
    spooler = Spooler(config.load(printing_config(tmp_path / "printing.toml", broker, tmp_path, kitchen, receipt)))
    hub = Device(broker, "hub", role="hub")
    spooler.start()
    try:
        worker = spooler.workers["kitchen-1"]
        real_write = worker.port.write
        failures = []

        def write(data: bytes, job_id: str = "") -> None:
            if not failures:  # the first attempt: the printer goes off first
                kitchen.refuse()
                kitchen.drop_connections()
                try:
                    real_write(data, job_id)
                except Exception as exc:
                    failures.append(exc)
                    kitchen.accept()
                    raise
            real_write(data, job_id)

        worker.port.write = write
        order_id = str(uuid.uuid4())
        ticket = contract.StationTicket(
            ticket_id=f"{order_id}:wok", order_id=order_id, number=7, station="wok", channel="kiosk",
            service="takeaway", items=(contract.TicketItem(line=1, item_id="kung-pao-chicken", name_zh="宫保鸡丁",
                                                           name_en="Kung Pao Chicken", qty=1),),
            accepted_at="2026-11-01T04:34:56.120+00:00")
        job = contract.PrintJob(
            job_id=f"{order_id}:kitchen:kitchen-1:wok", printer="kitchen-1", kind="kitchen", order_id=order_id,
            kitchen=contract.KitchenData(station_name=contract.Words("炒锅", "Wok"), ticket=ticket,
                                         printed_at="2026-11-01 12:35:02"))
        hub.publish(topics.PRINT_JOB, contract.encode(job))
        (printed,) = kitchen.wait_for_jobs(1, 15)
        assert len(failures) == 1 and kitchen.fragments == []
        assert order_id[:8].encode() in printed
        assert b"REPRINT" not in printed
    finally:
        spooler.stop()
        hub.close()
        kitchen.close()
        receipt.close()


@pytest.mark.parametrize("printer,expected", [
    ('port = "parallel"\ndevice = "/dev/lp0"', "a printer port is one of serial, usb, network, file, virtual"),
    ('port = "serial"\ndevice = "/dev/ttyUSB-nope"', "/dev/ttyUSB-nope"),
])
def test_a_bad_printer_config_stops_the_service_at_start_with_a_clear_error(tmp_path, printer, expected):
    cfg = tmp_path / "printing.toml"
    cfg.write_text(f'[device]\nid = "printing"\nrole = "printing"\n[printing]\ndatabase = "{tmp_path / "p.db"}"\n'
                   f'[[printing.printers]]\nid = "kitchen-1"\n{printer}\n')
    r = subprocess.run([sys.executable, "-m", "restobox.cli", "printing", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert expected in r.stderr and "kitchen-1" in r.stderr or expected in r.stderr


def test_a_kiosk_cut_off_from_the_hub_prints_the_provisional_receipt_once(broker, store, monitor, tmp_path):
    """The hub is down, the printing service is not: the kiosk prints the
    diner's receipt with the provisional number itself; when the hub takes
    the order later, its receipt request is the same job and prints nothing."""
    from tests.test_kiosk_offline import RunningKiosk, hub_orders, wait

    k = RunningKiosk(broker, tmp_path / "kiosk", kiosk_extra='receipt_printer = "receipt-1"')
    try:
        wait(lambda: k.ctl.has_menu, 15, "menu")
        store.hub.stop()
        wait(lambda: k.ui.call(lambda: k.ctl.hub_up) is False, 10, "hub offline")
        oid = k.order_spring_rolls()
        assert k.confirmed(5)[1] == "K1-001"
        (receipt,) = store.receipt.wait_for_jobs(1, 10)
        assert b"K1-001" in receipt and oid[:8].encode() in receipt
        assert b"OFFLINE" in receipt.upper() or "离线".encode("gb18030") in receipt
        store.hub.start(monitor)
        row = wait(lambda: (r := k.outbox(oid)) and r.state == "delivered" and r, 20, "delivery")
        assert hub_orders(store.hub_db, oid) == [(row.number, 1, "K1-001")]
        # the hub asked for the receipt too, and the printing service confirmed it as the job it already printed

        def confirmed():
            con = sqlite3.connect(store.hub_db)
            try:
                return con.execute("select state from print_request where job_id = ? and confirmed_at is not null",
                                   (f"{oid}:receipt:receipt-1",)).fetchall()
            finally:
                con.close()
        assert wait(confirmed, 15, "receipt request confirmed") == [("done",)]
        time.sleep(1)
        assert len(store.receipt.jobs) == 1
    finally:
        k.close()
