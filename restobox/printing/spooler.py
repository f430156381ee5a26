"""The printing service (``restobox printing``): every printer's durable queue.

Jobs arrive from the hub on ``restobox/v1/print/job``. Each is committed to
printing.db under its job id (the idempotency key) before the broker gets its
acknowledgement, and the service answers with the job's state — that answer
is how the hub knows the job is safe. A job id seen before is never printed
again; it is only confirmed again.

One thread per printer, so a printer that is out of paper or unplugged never
holds up the others. Before each job the printer's status is read (ESC/POS
DLE EOT where the port can): paper out, cover open or offline hold the job,
raise an alert, and the job prints once the printer is back. A job whose
write failed part-way, or that was being printed when the service was
killed, may or may not have come out of the printer: it is printed again
marked REPRINT, never silently twice. A job that never reached the printer
(it could not be opened or connected to) prints again unmarked: it is not a
second copy.

Retention ([printing] keep_days, restobox/retention_common.py): jobs done or
failed, and printer faults that are over, go once finished before the
window, a batch at a time on the intake thread when no job waits to be
stored. A job queued, held or printing stays, whatever its age.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Callable

import peewee as pw

from restobox import contract, db
from restobox.runtime import Backoff, Runtime
from restobox.service import disk_details
from restobox.bus import Bus, Incoming, bus_from_config, refusal_log
from restobox.config import Config, ConfigError
from restobox.contract import REASONS, Alert, Health, PrinterStatus, PrintJob, PrintJobState, Rejection, topics
from restobox.printing import layouts
from restobox.printing.ports import Port, PortError, PrinterState, open_port
from restobox.retention_common import Pruner, Rule, prune_step

log = logging.getLogger("restobox.printing")

STORED_JOB_MAX_BYTES = 4 * 1024 * 1024
INTAKE_RETRY_S = (0.2, 5.0)
"""First and longest wait before storing a job again while printing.db refuses writes."""
PRINT_RETRY_FIRST_S = 0.5
"""First wait before a job whose write failed prints again (then up to ``[printing] retry_max_s``)."""
HEALTH_MIN_GAP_S = 1.0
ALERT_EVERY_S = 60.0
"""One alert per refusal reason at most this often (a flood is counted, not broadcast)."""

RETENTION = (
    Rule("print_job", "created_at", "updated_at", "state IN ('done', 'failed')", unix=False),
    Rule("printer_fault", "started_at", "ended_at", "1", unix=False),  # ended_at set: over
)
"""What printing.db forgets once finished before [printing] keep_days."""

DRAWER_MAX_WAIT_S = 60.0
"""A drawer job not sent within this time of its arrival (the printer was
off or out of paper) fails instead: a till drawer springing open minutes
after the sale, with nobody at it, is worse than the cashier opening it again."""

BAD_STATES = {"paper_out": "paper_out", "cover_open": "cover_open", "offline": "printer_offline",
              "error": "printer_error"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


class PrinterWorker:
    """Prints one printer's jobs in arrival order."""

    def __init__(self, spooler: "Spooler", cfg, port: Port) -> None:
        self.spooler = spooler
        self.cfg = cfg
        self.port = port
        self.id = cfg.id
        self.opts = layouts.PrintOptions.from_printer(cfg)
        self.wake = threading.Event()
        self.state = PrinterState(state="unknown", paper_near_end=False, reason=None)
        self._published: tuple | None = None
        self._last_publish = 0.0
        self.retry = Backoff(PRINT_RETRY_FIRST_S, spooler.cfg.printing.retry_max_s)
        self.thread = threading.Thread(target=self._run, name=f"printer-{self.id}", daemon=True)

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        sp = self.spooler
        while not sp.stopping.is_set():
            try:
                worked = self._step()
            except Exception:
                log.exception("printer %s: unexpected failure; retrying", self.id)
                worked = False
            self.publish_status()
            if not worked:
                self.wake.wait(sp.cfg.printing.status_interval_s)
                self.wake.clear()
        self.port.close()

    def _step(self) -> bool:
        """Print the next due job; True if something was done."""
        sp = self.spooler
        held = sp.count(self.id, "held")
        job = sp.next_job(self.id)
        if job is None and not held:
            self._refresh_status(poll=time.monotonic() - self._last_publish > 30)
            return False
        st = self._refresh_status(poll=True)
        reason = BAD_STATES.get(st.state)
        if reason:
            if job is not None:
                sp.hold(self.id, reason)
            return False
        if held:
            sp.release(self.id)
            return True
        if job is None:
            return False
        self._print(job)
        return True

    def _print(self, row: db.PrintJobRow) -> None:
        sp = self.spooler
        job = row.job
        raw = job.encode() if isinstance(job, str) else job if isinstance(job, bytes) else b""
        try:
            # as stored: re-encoded with every default, it may be longer than it came
            pj = contract.decode(raw, PrintJob, max_bytes=STORED_JOB_MAX_BYTES)
        except Rejection as r:  # damaged in printing.db: it will never print; the queue goes on
            log.error("printer %s: job %s in printing.db cannot be read (%s); marked failed", self.id,
                      row.job_id, r)
            sp.counters["rejected"] += 1
            sp.counters[f"rejected.{r.reason}"] += 1
            sp._health_dirty = True
            sp.set_state(row.job_id, "failed", reason=r.reason, detail=r.detail)
            return
        if row.kind == "drawer":
            self._kick(row, pj.drawer_pin)
            return
        reprint = row.reprint or row.interrupted
        try:
            data = self._render(pj, reprint)
        except Exception as exc:  # a job that cannot be laid out will never print
            refusal_log.warn(log, "jobs that cannot be laid out", "printer %s: job %s cannot be laid out",
                             self.id, row.job_id, exc_info=True, level=logging.ERROR)
            sp.set_state(row.job_id, "failed", reason="layout_failed", detail=str(exc)[:300])
            return
        sp.set_state(row.job_id, "printing", attempts=row.attempts + 1)
        try:
            self.port.write(data, job_id=row.job_id)
        except PortError as exc:
            delay = self.retry.delay(row.attempts)
            log.warning("printer %s: job %s failed (%s); again in %.1f s", self.id, row.job_id, exc, delay)
            # Marked REPRINT next time only if some of it may be on paper:
            # a ticket that never reached the printer is no second copy.
            sp.set_state(row.job_id, "queued", reason=exc.reason, interrupted=row.interrupted or not exc.nothing_sent,
                         next_attempt=time.time() + delay, attempts=row.attempts + 1)
            self._set_status(PrinterState(state="offline", paper_near_end=False, reason=exc.reason))
            return
        # The status answer comes back only after the job's bytes, so it is
        # what confirms the job reached the printer. Out of paper during the
        # job: the ticket is incomplete and prints again when paper is back.
        # No answer where there was one before: the printer may have lost
        # the job (power cut); it prints again, marked REPRINT.
        after = self._refresh_status(poll=True)
        if after.state in ("paper_out", "cover_open"):
            sp.set_state(row.job_id, "held", reason=BAD_STATES[after.state], interrupted=True)
            return
        if after.state == "offline":
            sp.set_state(row.job_id, "queued", reason=after.reason or "printer_offline", interrupted=True,
                         next_attempt=time.time() + 0.5, attempts=row.attempts + 1)
            return
        sp.set_state(row.job_id, "done", printed=True)

    def _kick(self, row: db.PrintJobRow, pin: int) -> None:
        """A drawer job: the pulse, at most once per job id. Unlike paper, a
        pulse that may have gone out is never sent again: a job interrupted
        by a stop, or whose write failed part-way, fails (print_interrupted)
        and the cashier opens the drawer again if it stayed shut."""
        sp = self.spooler
        if row.interrupted:
            sp.set_state(row.job_id, "failed", reason="print_interrupted")
            return
        try:
            waited = (sp.clock() - datetime.fromisoformat(row.created_at)).total_seconds()
        except (TypeError, ValueError):
            waited = 0.0
        if waited > DRAWER_MAX_WAIT_S:
            log.warning("printer %s: drawer job %s waited %.0f s; not sent", self.id, row.job_id, waited)
            sp.set_state(row.job_id, "failed", reason=row.reason or "printer_offline")
            return
        sp.set_state(row.job_id, "printing", attempts=row.attempts + 1)
        try:
            self.port.write(layouts.drawer_pulse(pin), job_id=row.job_id)
        except PortError as exc:
            self._set_status(PrinterState(state="offline", paper_near_end=False, reason=exc.reason))
            if not exc.nothing_sent:
                sp.set_state(row.job_id, "failed", reason="print_interrupted", detail=str(exc)[:300])
                return
            delay = self.retry.delay(row.attempts)
            log.warning("printer %s: drawer job %s not sent (%s); again in %.1f s", self.id, row.job_id, exc, delay)
            sp.set_state(row.job_id, "queued", reason=exc.reason, next_attempt=time.time() + delay,
                         attempts=row.attempts + 1)
            return
        # the status answer comes after the pulse on the same line: it arrived
        after = self._refresh_status(poll=True)
        if after.state == "offline":
            sp.set_state(row.job_id, "failed", reason=after.reason or "printer_offline")
            return
        sp.set_state(row.job_id, "done", printed=True)

    def _render(self, pj: PrintJob, reprint: bool) -> bytes:
        if pj.kind == "receipt" and pj.receipt is not None:
            return layouts.receipt(pj.receipt, self.opts, reprint=reprint)
        if pj.kind == "kitchen" and pj.kitchen is not None:
            return layouts.kitchen_ticket(pj.kitchen, self.opts, reprint=reprint)
        if pj.kind == "test":
            return layouts.test_page(self.id, self.opts, now=self.spooler.local_now())
        if pj.kind == "report" and pj.report is not None:
            return layouts.day_report(pj.report, self.opts, reprint=reprint)
        raise ValueError(f"{pj.kind} job without its data")

    # --------------------------------------------------------------- status
    def _refresh_status(self, poll: bool) -> PrinterState:
        if poll:
            try:
                st = self.port.status()
            except PortError as exc:
                st = PrinterState(state="offline", paper_near_end=False, reason=exc.reason)
            self._set_status(st)
        return self.state

    def _set_status(self, st: PrinterState) -> None:
        before = self.state
        self.state = st
        if st.state != before.state:
            log.info("printer %s: %s -> %s", self.id, before.state, st.state)
            reason = BAD_STATES.get(st.state)
            if reason or st.state == "ready":
                self.spooler.note_fault(self.id, reason)
            if reason:
                self.spooler.alert(reason, self.id, severity="critical")
            elif before.state in BAD_STATES and st.state == "ready":
                self.spooler.alert("printer_ready", self.id, severity="info")
        # published by the loop after each step, with the queue counts

    def publish_status(self, force: bool = False) -> None:
        sp = self.spooler
        queued, held = sp.count(self.id, "queued"), sp.count(self.id, "held")
        key = (self.state.state, self.state.paper_near_end, queued, held)
        if not force and key == self._published:
            return
        self._published = key
        self._last_publish = time.monotonic()
        reason = self.state.reason or BAD_STATES.get(self.state.state)
        sp.bus.publish(topics.printer_status(self.id), contract.encode(PrinterStatus(
            printer=self.id, state=self.state.state, paper_near_end=self.state.paper_near_end,
            queued=queued, held=held, reason=reason, message=REASONS.get(reason) if reason else None,
            at=iso(sp.clock()))), retain=True)


class Spooler:
    def __init__(self, cfg: Config, *, bus: Bus | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.cfg = cfg
        self.clock = clock
        self.bus = bus or bus_from_config(cfg, manual_ack=True)
        self.stopping = threading.Event()
        self.counters: Counter = Counter()
        self.workers: dict[str, PrinterWorker] = {}
        self._db: pw.SqliteDatabase | None = None
        self._seq_lock = threading.Lock()
        self._seq = 0
        # jobs taken from the bus, not yet stored nor acknowledged (paho's
        # thread appends, the intake thread stores; the broker's in-flight
        # window bounds it)
        self._intake: deque[tuple[Incoming, PrintJob, int | None]] = deque()
        self._intake_wake = threading.Event()
        self._store_failing = False
        self._intake_thread = threading.Thread(target=self._intake_loop, name="print-intake", daemon=True)
        self._alerted: dict[str, float] = {}
        self._health_dirty = False
        self._health_at = 0.0
        self.pruner = Pruner("printing.db", RETENTION, cfg.printing.keep_days)
        # the process's lifecycle: state, signals, systemd, periodic health (restobox/runtime.py)
        self.runtime = Runtime("printing", check=self.health_check, publish_health=self._periodic_health,
                               health_every_s=10.0)
        ports = {}
        for pc in cfg.printing.printers:
            if pc.id in ports:
                raise ConfigError(f"printer id {pc.id!r} appears twice in [printing]")
            port = open_port(pc)
            port.check_config()  # a wrong device path stops the service here
            ports[pc.id] = (pc, port)
        if not ports:
            raise ConfigError("no printers configured: add [[printing.printers]] entries")
        self._ports = ports

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._db = db.open_printing_db(self.cfg.printing.database)
        # Jobs that were printing when the service died may be half printed.
        n = (db.PrintJobRow.update(state="queued", interrupted=True, reason="print_interrupted",
                                   updated_at=iso(self.clock()))
             .where(db.PrintJobRow.state == "printing").execute())
        if n:
            log.warning("%d jobs were interrupted by the last stop; they print again marked REPRINT", n)
        self._seq = (db.PrintJobRow.select(pw.fn.MAX(db.PrintJobRow.seq)).scalar() or 0)
        for pid, (pc, port) in self._ports.items():
            self.workers[pid] = PrinterWorker(self, pc, port)
        self._intake_thread.start()
        self.bus.subscribe(topics.PRINT_JOB, self._on_job)
        self.bus.start()
        self.bus.wait_connected(10)
        for w in self.workers.values():
            w.thread.start()
        self.bus.announce()
        self.runtime.ready("")  # or degraded: publish_health reads the printers
        self.publish_health()

    @property
    def state(self) -> str:
        return self.runtime.state

    def stop(self) -> None:
        self.runtime.enter("stopping", "stopping")
        self.stopping.set()
        for w in self.workers.values():
            w.wake.set()
        for w in self.workers.values():
            w.thread.join(10)
        self._intake_wake.set()
        if self._intake_thread.is_alive():
            self._intake_thread.join(10)
        try:
            self.publish_health()
        except Exception:
            pass
        self.bus.stop()
        if self._db is not None:
            self._db.close()

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT, telling systemd READY once started,
        pinging its watchdog while every printer's worker is alive and
        publishing the health and every printer's status every 10 s."""
        self.runtime.serve(self.start, self.stop, ready_status=lambda: f"{len(self.workers)} printers")

    def _periodic_health(self) -> None:
        self.publish_health()
        for w in self.workers.values():
            w.publish_status(force=True)

    def health_check(self) -> tuple[bool, str]:
        """A printer out of paper is the printer's problem, not this
        process's; a worker thread that died is."""
        dead = [w.id for w in self.workers.values() if not w.thread.is_alive()]
        if dead:
            return False, f"the worker of {', '.join(dead)} has stopped"
        return True, f"{len(self.workers)} printers"

    def local_now(self) -> str:
        from zoneinfo import ZoneInfo

        return self.clock().astimezone(ZoneInfo(self.cfg.store.timezone)).strftime("%Y-%m-%d %H:%M:%S")

    # ---------------------------------------------------------------- intake
    def _on_job(self, m: Incoming) -> None:
        """paho's thread: decode, and hand the job to the intake thread,
        which stores it in printing.db and only then acknowledges it (paho's
        thread never waits on the disk). A job that does not decode is
        refused and acknowledged at once."""
        try:
            pj = contract.decode(m.payload, PrintJob)
        except Rejection as r:
            self._refuse(m.topic, r.reason, r.detail)
            self.bus.ack(m)
            return
        self._intake.append((m, pj, None))
        self._intake_wake.set()

    def _take(self, m: Incoming, pj: PrintJob, seq: int | None) -> int | None:
        """Intake thread: store one job and acknowledge it. Returns None when
        done (stored, or refused for good), else the job's arrival number:
        printing.db did not take the write (locked, full, read-only, I/O
        error) and the job must be stored again, unacknowledged till then."""
        if seq is None:
            with self._seq_lock:
                self._seq += 1
                seq = self._seq
        try:
            self._store(pj, seq)
        except pw.DatabaseError as exc:
            if not db.storage_failure(exc):  # this job's values, not the database
                self._refuse(m.topic, "unusable", f"job {pj.job_id}: {exc!r}", alert=False)
                self.bus.ack(m)
                return None
            self.counters["store_failed"] += 1
            self._health_dirty = True
            refusal_log.warn(log, "print jobs printing.db did not take", "printing.db did not take job %s (%s); "
                             "it is stored again shortly", pj.job_id, exc, level=logging.ERROR)
            return seq
        except Exception as exc:  # a surprise after the job was stored: it prints; say so
            log.exception("job %s: after storing it", pj.job_id)
            self._refuse(m.topic, "unusable", f"job {pj.job_id}: {exc!r}", alert=False)
        self.bus.ack(m)
        return None

    def _store(self, pj: PrintJob, seq: int) -> None:
        now = iso(self.clock())
        known = pj.printer in self.workers
        with self._db.atomic():
            db.PrintJobRow.insert(
                job_id=pj.job_id, printer=pj.printer, kind=pj.kind, order_id=pj.order_id,
                reprint=pj.reprint, job=contract.encode(pj).decode(),
                state="queued" if known else "failed", reason=None if known else "unknown_printer",
                created_at=now, updated_at=now, seq=seq,
            ).on_conflict_ignore().execute()
            row = db.PrintJobRow.get_by_id(pj.job_id)
        if row.seq == seq:
            self.counters["jobs"] += 1
        else:
            self.counters["duplicate_jobs"] += 1
        self._publish_state(row)
        if known:
            self.workers[pj.printer].wake.set()
        elif row.seq == seq:
            self.alert("unknown_printer", pj.printer, detail=pj.job_id)

    def _intake_loop(self) -> None:
        """Store the jobs in arrival order, each acknowledged once stored.
        While printing.db refuses writes the first waits (0.2 s to 5 s
        between tries) and the others wait behind it: print order is
        arrival order."""
        backoff = Backoff(*INTAKE_RETRY_S)
        tries = 0
        while not self.stopping.is_set():
            if not self._intake:
                # a pass under way goes on in the gaps between jobs
                self._intake_wake.wait(0.05 if self.pruner.busy else HEALTH_MIN_GAP_S)
                self._intake_wake.clear()
                self._prune()
                self._health_if_dirty()
                continue
            m, pj, seq = self._intake[0]
            try:
                again = self._take(m, pj, seq)
            except Exception:  # never a reason to hold up the jobs behind it (the hub sends it again)
                log.exception("storing job %s failed", pj.job_id)
                self.bus.ack(m)
                again = None
            if again is None:
                self._intake.popleft()
                if tries:
                    log.info("printing.db takes jobs again")
                    self._store_failing, self._health_dirty = False, True
                tries = 0
                continue
            self._intake[0] = (m, pj, again)
            self._store_failing = True
            self._health_if_dirty()
            if self.stopping.wait(backoff.delay(tries)):
                return
            tries += 1

    def _prune(self) -> None:
        """One batch of retention, only while no job waits to be stored: a
        job waits at most one short transaction. Counted in the health
        (``pruned.<table>``, ``retention_failures``)."""
        if self._intake:
            return
        before = self.pruner.passes
        prune_step(self.pruner, lambda: self.pruner.step(self._db, self.clock().timestamp()), self.counters)
        if self.pruner.passes != before:
            self._health_dirty = True

    def _health_if_dirty(self) -> None:
        """A refusal shows in the health within a second or two, and a flood
        publishes it at most once a second."""
        if self._health_dirty and time.monotonic() - self._health_at >= HEALTH_MIN_GAP_S:
            try:
                self.publish_health()
            except Exception:
                log.exception("publishing the health failed")

    def _refuse(self, topic: str, reason: str, detail: str, *, alert: bool = True) -> None:
        """A message on print/job that will never print: counted, logged
        (rate-limited), and staff told once a minute per reason."""
        self.counters["rejected"] += 1
        self.counters[f"rejected.{reason}"] += 1
        self._health_dirty = True
        self._intake_wake.set()
        refusal_log.warn(log, f"refused print jobs ({reason})", "refused a print job on %s: %s %s", topic[:200],
                         reason, detail[:300])
        now = time.monotonic()
        if alert and reason in REASONS and now - self._alerted.get(reason, -ALERT_EVERY_S) >= ALERT_EVERY_S:
            self._alerted[reason] = now
            self.alert(reason, "print/job", detail=detail)

    # ----------------------------------------------------------- job queue
    def next_job(self, printer: str) -> db.PrintJobRow | None:
        # By rowid first: a row whose columns cannot be read (bytes that are
        # not UTF-8 where text belongs: a damaged or hand-edited printing.db)
        # is failed here, not raised at every turn of the worker's loop.
        while True:
            got = self._db.execute_sql(
                f'SELECT rowid FROM "{db.PrintJobRow._meta.table_name}" WHERE printer = ? AND state = ?'
                " AND next_attempt <= ? ORDER BY seq LIMIT 1", (printer, "queued", time.time())).fetchone()
            if got is None:
                return None
            try:
                return db.PrintJobRow.select().where(pw.SQL("rowid") == got[0]).get()
            except pw.DatabaseError:
                raise  # the database's trouble, not the row's: tried again
            except Exception as exc:
                self._fail_unreadable(got[0], printer, exc)

    def _fail_unreadable(self, rowid: int, printer: str, exc: Exception) -> None:
        table = db.PrintJobRow._meta.table_name
        job_id, kind = self._db.execute_sql(
            f'SELECT CAST(job_id AS BLOB), CAST(kind AS BLOB) FROM "{table}" WHERE rowid = ?', (rowid,)).fetchone()
        job_id = bytes(job_id or b"").decode("utf-8", "replace")[:160]
        kind = bytes(kind or b"").decode("utf-8", "replace")[:16]
        log.error("printer %s: job %r in printing.db cannot be read (%r); marked failed", printer, job_id, exc)
        with self._db.atomic():
            self._db.execute_sql(f'UPDATE "{table}" SET state = ?, reason = ?, updated_at = ? WHERE rowid = ?',
                                 ("failed", "bad_json", iso(self.clock()), rowid))
        self.counters["rejected"] += 1
        self.counters["rejected.bad_json"] += 1
        self.counters["jobs.failed"] += 1
        self._health_dirty = True
        self.bus.publish(topics.PRINT_JOB_STATE, contract.encode(PrintJobState(
            job_id=job_id, printer=printer, kind=kind, state="failed", reason="bad_json",
            message=REASONS["bad_json"], at=iso(self.clock()))))

    def count(self, printer: str, state: str) -> int:
        return (db.PrintJobRow.select()
                .where(db.PrintJobRow.printer == printer, db.PrintJobRow.state == state).count())

    def set_state(self, job_id: str, state: str, *, reason: str | None = None, detail: str = "",
                  interrupted: bool | None = None, next_attempt: float | None = None,
                  attempts: int | None = None, printed: bool = False) -> None:
        now = iso(self.clock())
        fields = {"state": state, "reason": reason, "updated_at": now}
        if interrupted is not None:
            fields["interrupted"] = interrupted
        if next_attempt is not None:
            fields["next_attempt"] = next_attempt
        if attempts is not None:
            fields["attempts"] = attempts
        if printed:
            fields["printed_at"] = now
        with self._db.atomic():
            db.PrintJobRow.update(**fields).where(db.PrintJobRow.job_id == job_id).execute()
        row = db.PrintJobRow.get_by_id(job_id)
        self.counters[f"jobs.{state}"] += 1
        self._publish_state(row, detail)

    def hold(self, printer: str, reason: str) -> None:
        """The printer cannot print: hold its queued jobs."""
        rows = list(db.PrintJobRow.select(db.PrintJobRow.job_id).where(db.PrintJobRow.printer == printer,
                                                                       db.PrintJobRow.state == "queued"))
        for r in rows:
            self.set_state(r.job_id, "held", reason=reason)

    def release(self, printer: str) -> None:
        """The printer is back: held jobs print again, in their order."""
        rows = list(db.PrintJobRow.select(db.PrintJobRow.job_id, db.PrintJobRow.interrupted).where(
            db.PrintJobRow.printer == printer, db.PrintJobRow.state == "held"))
        for r in rows:
            self.set_state(r.job_id, "queued", interrupted=r.interrupted, next_attempt=0.0)

    # ------------------------------------------------------------ publishing
    def _publish_state(self, row: db.PrintJobRow, detail: str = "") -> None:
        self.bus.publish(topics.PRINT_JOB_STATE, contract.encode(PrintJobState(
            job_id=row.job_id, printer=row.printer, kind=row.kind, order_id=row.order_id,
            state=row.state, attempts=row.attempts, reason=row.reason,
            message=REASONS.get(row.reason) if row.reason else None, at=iso(self.clock()))))

    def note_fault(self, printer: str, reason: str | None) -> None:
        """The fault log in printing.db (``PrinterFault``), for the day's
        report. A log that cannot be written does not stop the printing."""
        try:
            db.printer_fault(printer, reason, iso(self.clock()))
        except Exception:
            log.exception("printer %s: could not record its fault in printing.db", printer)

    def alert(self, code: str, subject: str, *, severity: str = "warning", detail: str = "") -> None:
        words = REASONS[code]
        self.counters[f"alerts.{code}"] += 1
        self.bus.publish(topics.ALERTS, contract.encode(Alert(
            source=self.cfg.device.id, code=code, message=words, severity=severity, subject=subject,
            at=iso(self.clock()))))

    def publish_health(self) -> None:
        self._health_dirty, self._health_at = False, time.monotonic()
        details: dict = disk_details(self.cfg.printing.database)
        worst, code = "ready", ""
        for pid, w in self.workers.items():
            details[f"{pid}.state"] = w.state.state
            if self._db is not None and not self.stopping.is_set():
                details[f"{pid}.queued"] = self.count(pid, "queued")
                details[f"{pid}.held"] = self.count(pid, "held")
            if w.state.state in BAD_STATES:
                worst, code = "degraded", code or BAD_STATES[w.state.state]
        waiting = len(self._intake)
        details["intake_waiting"] = waiting
        failing = self._store_failing and waiting > 0
        rt = self.runtime
        if rt.state in ("ready", "degraded"):  # the printers' and printing.db's condition
            if failing:
                rt.degraded("print_store_failing", f"printing.db does not take jobs ({waiting} waiting)")
            elif worst == "degraded":
                rt.degraded(code, "a printer needs attention")
            else:
                rt.ready("")
        state = rt.state
        reason = rt.reason if state in ("ready", "degraded") else state
        self.bus.publish(topics.health(self.cfg.device.id), contract.encode(Health(
            device=self.cfg.device.id, role="printing", state=state, at=iso(self.clock()),
            reason_code=rt.code, reason=reason, counters=dict(self.counters), details=details)), retain=True)
