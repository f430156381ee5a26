"""The cash drawer: a print job of kind "drawer" sends the printer's drawer
pulse (ESC p) and prints nothing, through the same durable queue as paper,
at most once per job id, on a real pty (serial) and a real TCP printer."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from restobox import config, contract, db
from restobox.contract import PrintJob, topics
from restobox.dev.emulators import PtyPrinter, TcpPrinter
from restobox.printing import layouts, spooler as spooler_mod
from restobox.printing.spooler import Spooler
from tests.support import Device, wait
from tests.test_print_spooler import printing_config

pytestmark = pytest.mark.integration

PULSE = b"\x1bp\x00\x32\x32"  # ESC p m=0 (pin 2) t1 t2, as python-escpos's cashdraw(2)


class Store:
    def __init__(self, broker, monitor, tmp_path) -> None:
        self.kitchen, self.receipt = TcpPrinter(), PtyPrinter()
        self.cfg = config.load(printing_config(tmp_path / "printing.toml", broker, tmp_path, self.kitchen,
                                               self.receipt))
        self.monitor = monitor
        self.hub = Device(broker, "hub", role="hub")
        self.spooler: Spooler | None = None

    def start(self, **kw) -> None:
        self.spooler = Spooler(self.cfg, **kw)
        self.spooler.start()

    def send(self, job: PrintJob) -> None:
        self.hub.publish(topics.PRINT_JOB, contract.encode(job))

    def state(self, job_id: str, state: str, timeout: float = 10.0) -> dict:
        return self.monitor.wait_json(topics.PRINT_JOB_STATE,
                                      lambda s: s["job_id"] == job_id and s["state"] == state, timeout)

    def states(self, job_id: str, state: str) -> list[dict]:
        return [s for s in self.monitor.all_json(topics.PRINT_JOB_STATE)
                if s["job_id"] == job_id and s["state"] == state]

    def page(self, printer: str, n_jobs: int) -> None:
        """A test page behind whatever was sent before, waited for: the
        queue is in arrival order, so everything before it was dealt with."""
        job_id = f"test:{printer}:{uuid.uuid4()}"
        self.send(PrintJob(job_id=job_id, printer=printer, kind="test"))
        emulator = self.kitchen if printer == "kitchen-1" else self.receipt
        emulator.wait_for_jobs(n_jobs, 10)
        self.state(job_id, "done")

    def close(self) -> None:
        if self.spooler is not None:
            self.spooler.stop()
        self.hub.close()
        self.kitchen.close()
        self.receipt.close()


@pytest.fixture
def store(broker, monitor, tmp_path):
    s = Store(broker, monitor, tmp_path)
    try:
        yield s
    finally:
        s.close()


def drawer(printer: str) -> PrintJob:
    return PrintJob(job_id=f"drawer:{uuid.uuid4()}", printer=printer, kind="drawer")


def test_the_drawer_pulse_is_python_escpos_cashdraw_and_nothing_else():
    assert layouts.drawer_pulse() == PULSE
    assert layouts.drawer_pulse(5) == b"\x1bp\x01\x32\x32"
    with pytest.raises(ValueError):
        layouts.drawer_pulse(3)


def test_a_drawer_job_opens_the_drawer_once_prints_nothing_and_is_reported_done(store):
    store.start()
    serial, network = drawer("receipt-1"), drawer("kitchen-1")
    store.send(serial)
    store.send(network)
    assert store.state(serial.job_id, "done")["kind"] == "drawer"
    store.state(network.job_id, "done")
    # the pulse alone reached each printer: no paper, no cut
    assert store.receipt.received == PULSE and store.kitchen.received == PULSE
    assert store.receipt.jobs == [] and store.kitchen.jobs == []
    # the same job again (a counter resending it) is only confirmed again
    store.send(serial)
    confirmed = wait(lambda: (d := store.states(serial.job_id, "done")) and len(d) == 2 and d, 10, "confirmed again")
    assert [d["attempts"] for d in confirmed] == [1, 1]
    store.page("receipt-1", 1)
    assert store.receipt.received.count(PULSE) == 1
    # a new drawer job is a new opening
    again = drawer("receipt-1")
    store.send(again)
    store.state(again.job_id, "done")
    assert store.receipt.received.count(PULSE) == 2
    # a drawer wired to pin 5 (the counter's [counter] drawer_pin), named by the job
    pin5 = PrintJob(job_id=f"drawer:{uuid.uuid4()}", printer="receipt-1", kind="drawer", drawer_pin=5)
    store.send(pin5)
    store.state(pin5.job_id, "done")
    assert store.receipt.received.endswith(b"\x1bp\x01\x32\x32")


def test_a_drawer_job_that_may_have_gone_out_before_a_stop_is_never_sent_again(store):
    """The printing service was stopped while sending the pulse: the
    drawer may have opened. The job fails (print_interrupted) instead of
    opening the drawer a second time at start."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    job = drawer("receipt-1")
    database = db.open_printing_db(store.cfg.printing.database)
    try:
        db.PrintJobRow.insert(job_id=job.job_id, printer="receipt-1", kind="drawer", order_id="", reprint=False,
                              job=contract.encode(job).decode(), state="printing", created_at=now, updated_at=now,
                              seq=1).execute()
    finally:
        database.close()
    store.start()
    failed = store.state(job.job_id, "failed")
    assert failed["reason"] == "print_interrupted" and failed["message"]["en"]
    store.page("receipt-1", 1)
    assert PULSE not in store.receipt.received


def test_a_drawer_job_the_printer_could_not_take_in_time_fails_rather_than_open_later(store):
    """The network printer is off when the cash is taken: the pulse waits
    (held, like paper), and when the printer is back minutes later the job
    fails instead of springing the drawer open with nobody at it."""
    late = timedelta()
    store.kitchen.refuse()
    store.start(clock=lambda: datetime.now(timezone.utc) + late)
    job = drawer("kitchen-1")
    store.send(job)
    assert store.state(job.job_id, "held")["reason"] == "printer_offline"
    late = timedelta(seconds=spooler_mod.DRAWER_MAX_WAIT_S + 1)
    store.kitchen.accept()
    failed = store.state(job.job_id, "failed")
    assert failed["reason"] == "printer_offline" and failed["message"]["en"]
    store.page("kitchen-1", 1)
    assert PULSE not in store.kitchen.received


def test_a_drawer_job_held_briefly_opens_the_drawer_when_the_printer_is_back(store):
    store.receipt.mode = "paper_out"
    store.start()
    job = drawer("receipt-1")
    store.send(job)
    assert store.state(job.job_id, "held")["reason"] == "paper_out"
    assert PULSE not in store.receipt.received
    store.receipt.mode = "ok"
    store.state(job.job_id, "done")
    assert store.receipt.received == PULSE
