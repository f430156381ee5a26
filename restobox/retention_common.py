"""Retention of the devices' own databases: printing.db, a kiosk's kiosk.db,
sync.db forget what is finished and older than their window.

The hub's store.db has its own rules (restobox/hub/retention.py) on the
same schedule (:class:`Passes`): once an hour (:data:`INTERVAL_S`) a pass walks each table in
rowid order (rows are written as they happen, so that is time order) from
where its last batch stopped, reads at most :data:`BATCH_ROWS` rows per
batch, and deletes in the same short transaction those of them that are
finished (each table's rule says what that means) and were finished before
the window. It stops at the first row written inside the window. A row
that is not finished stays, whatever its age; the next pass looks at it
again.

Each service runs one batch only when it is idle (the printing service
when no job waits to be stored, a kiosk's io thread when no job waits for
it, the sync service when the outbox is empty), so what it is there for
waits at most one batch. The space is reused as in store.db: SQLite keeps
the pages of deleted rows on its freelist and new rows fill them (no
VACUUM: the file grows while the window fills, then stays that size).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import peewee as pw

log = logging.getLogger("restobox.retention")

BATCH_ROWS = 200
"""Rows looked at per transaction (about as long as the hub's batch)."""
INTERVAL_S = 3600.0
"""From the end of one pass to the start of the next (the first starts this
long after the service)."""
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Rule:
    """What of ``table`` may go: rows meeting ``finished`` (SQL) whose
    ``end`` time is before the window. ``start`` is when the row was written
    (it grows with the rowid: a pass stops at the first row written inside
    the window). ``unix``: the times are unix seconds, else ISO 8601 text in
    UTC (``...+00:00``)."""

    table: str
    start: str
    end: str
    finished: str
    unix: bool = True


class Passes:
    """What every retention shares (the hub's store.db and the devices'
    databases): one pass at a time over a list of tables, a batch per step,
    each batch in its own transaction; a pass starts ``interval_s`` after
    the last ended (the first that long after the service) and stops where
    a failed batch left it. Subclasses say what a batch deletes."""

    name = "retention"

    def __init__(self, interval_s: float, monotonic=time.monotonic) -> None:
        self.interval_s = interval_s
        self.monotonic = monotonic
        self.next_pass = monotonic() + interval_s
        self.pending: list = []  # tables left in the pass under way
        self.after = 0  # rowid the current table's next batch starts after
        self.cut_iso = ""
        self.deleted: Counter = Counter()  # this pass
        self.passes = 0
        self.started = 0.0

    @property
    def busy(self) -> bool:
        """A pass is under way (the service looks for a gap sooner)."""
        return bool(self.pending)

    def due(self) -> bool:
        return self.busy or self.monotonic() >= self.next_pass

    def _start(self, tables) -> None:
        self.pending, self.after = list(tables), 0
        self.deleted = Counter()
        self.started = self.monotonic()

    def _run_batch(self, database: pw.SqliteDatabase, table: str, batch) -> Counter:
        """``batch(database)`` -> (rows deleted, table finished) for the
        current table, in one transaction; the pass moves on and ends."""
        with database.atomic():
            gone, finished = batch(database)
        if gone:
            self.deleted[table] += gone
        if finished:
            self.pending.pop(0)
            self.after = 0
            if not self.pending:
                self._end()
        return Counter({table: gone}) if gone else Counter()

    def abort(self) -> None:
        """A batch failed: the pass ends here, the next comes at its time."""
        self.pending.clear()
        self._end()

    def _delete_head(self, database, table: str, start: str, cut, batch_rows: int, condition: str,
                     params: tuple = ()) -> tuple[int, bool]:
        """One batch at the head of ``table`` (rowid order, from ``after``):
        up to ``batch_rows`` rows, stopping at the first whose ``start``
        (when it was written) is missing or not before ``cut``; of those, the
        rows meeting ``condition`` (SQL with ``params``) deleted. Returns
        (rows deleted, the table is done for this pass)."""
        rows = database.execute_sql(f'SELECT rowid, "{start}" FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT ?',
                                    (self.after, batch_rows)).fetchall()
        last, finished = None, len(rows) < batch_rows
        for rowid, when in rows:
            if when is None or when >= cut:
                finished = True
                break
            last = rowid
        gone = 0
        if last is not None:
            gone = database.execute_sql(f'DELETE FROM "{table}" WHERE rowid > ? AND rowid <= ? AND ({condition})',
                                        (self.after, last, *params)).rowcount
            self.after = last
        return gone, finished

    def _end_note(self) -> str:
        return ""

    def _end(self) -> None:
        self.passes += 1
        self.next_pass = self.monotonic() + self.interval_s
        took = self.monotonic() - self.started
        log.info("%s: pass done in %.1f s, older than %s deleted: %s%s", self.name, took, self.cut_iso,
                 ", ".join(f"{n} {t}" for t, n in sorted(self.deleted.items())) or "nothing", self._end_note())


class Pruner(Passes):
    """One pass at a time over ``rules``, a batch per :meth:`step`."""

    def __init__(self, name: str, rules: tuple[Rule, ...], keep_days: int, *, batch_rows: int = BATCH_ROWS,
                 interval_s: float = INTERVAL_S, monotonic=time.monotonic) -> None:
        super().__init__(interval_s, monotonic)
        self.name = f"{name} retention"
        self.rules = rules
        self.keep_days = keep_days
        self.batch_rows = batch_rows
        self.cut_unix = 0.0

    def begin(self, now: float) -> None:
        self.cut_unix = now - self.keep_days * DAY_S
        self.cut_iso = datetime.fromtimestamp(self.cut_unix, timezone.utc).isoformat(timespec="milliseconds")
        self._start(self.rules)

    def step(self, database: pw.SqliteDatabase, now: float) -> Counter:
        """One batch, in its own transaction: the rows it deleted, by table.
        Starts a pass if none is under way (``now``: unix time); ends it
        after its last table."""
        if not self.busy:
            self.begin(now)
        rule = self.pending[0]
        return self._run_batch(database, rule.table, lambda d: self._batch(d, rule))

    def run_pass(self, database: pw.SqliteDatabase, now: float) -> Counter:
        """A whole pass at once (tests, tools): what it deleted, by table."""
        gone: Counter = Counter()
        self.abort_quietly()
        gone.update(self.step(database, now))
        while self.busy:
            gone.update(self.step(database, now))
        return gone

    def abort_quietly(self) -> None:
        self.pending.clear()
        self.after = 0

    def _batch(self, database, rule: Rule) -> tuple[int, bool]:
        cut = self.cut_unix if rule.unix else self.cut_iso
        return self._delete_head(database, rule.table, rule.start, cut, self.batch_rows,
                                 f'"{rule.end}" IS NOT NULL AND "{rule.end}" < ? AND ({rule.finished})', (cut,))


def prune_step(passes: Passes, step, counters) -> None:
    """``step()`` (one batch: the rows it deleted, by table) if a batch is
    due, counted in a service's health counters (``pruned.<table>``;
    ``retention_failures``: a batch that failed, the next pass tries
    again). Never raises: retention must not stop a service."""
    if not passes.due():
        return
    try:
        gone = step()
    except Exception:
        log.exception("%s: a batch failed; the next pass tries again", passes.name)
        counters["retention_failures"] = counters.get("retention_failures", 0) + 1
        passes.abort()
        return
    for table, n in gone.items():
        counters[f"pruned.{table}"] = counters.get(f"pruned.{table}", 0) + n
