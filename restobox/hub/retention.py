"""Retention: the store database forgets what nobody needs any more.

Without it store.db grows for ever on the SD card: every order with its
tickets, every outbox event, every print request, the id of every station
event and staff command, every menu. Once an hour ([hub.retention]
interval_s) the hub makes a pass over them and deletes, in batches of
``batch_rows`` rows each in a short transaction of its own, what is older
than ``keep_days`` and finished with:

- outbox events the chain's cloud has (seq at or before the sync service's
  cursor in sync.db), except the newest event of all: the outbox's seq is
  SQLite's rowid, which after the newest row is deleted would be given out
  again, and an event given a seq the cloud already has would never be sent;
- orders of an earlier business day, closed (not accepted, in progress or
  ready, nor held for their payment), whose every outbox event the cloud
  has and whose every print request is done or failed; with them go their
  tickets (ON DELETE CASCADE), their print requests and their rows of the
  payment ledger (the cloud has each of those as an outbox event);
- the counters' shifts, closed and opened before the window;
- print requests of no order (test pages, printed reports), done or failed;
- ids of processed station events, staff commands and stock versions (the dedup window is
  ``keep_days``, longer than any broker session a device's messages wait in);
- menus that are neither the one in use nor the newest.

Kept for ever: the loyalty ledger (a member's balance is the sum of their
entries: deleting old ones would change it, and one row per loyalty order is
small), the day counters (one row a day), the 86 list and stock (current
state, not history). Without a sync cursor (no sync.db: the store has no
cloud, or sync never ran) no order and no outbox event is deleted.

The space is reused without VACUUM: SQLite keeps the pages of deleted rows
on its freelist and new rows fill them, so the file grows while the window
fills and then stays the same size. (VACUUM would rewrite the whole file and
hold the hub for seconds; incremental auto_vacuum would need that once to
switch on, for a file that does not need to shrink.)

Off the hot path: the hub's worker runs one batch only when no message is
waiting, so an order waits at most one batch. A pass walks each table in
rowid order (which is time order: rows are written as they happen) from
where its last batch stopped, and stops at the first row younger than the
window: a batch reads at most ``batch_rows`` rows, however big the table is.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import peewee as pw

from restobox.config import RetentionConfig, StoreConfig
from restobox.hub.common import iso
from restobox.orders import LIVE_STATES
from restobox.retention_common import Passes

log = logging.getLogger("restobox.hub.retention")

TABLES = ("outbox", "processed_message", "print_request", "order", "till_shift", "menu_version")
_FINAL_PRINT = ("done", "failed")


def sync_cursor(path: str | Path) -> int | None:
    """How far the chain's cloud has the outbox (the sync service's cursor),
    or None when there is no sync database to say so."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5.0)
        try:
            row = con.execute('SELECT "seq" FROM "sync_cursor" WHERE "id" = 1').fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        log.warning("retention: cannot read the sync cursor in %s (%s): orders and outbox events are kept", p, exc)
        return None
    return row[0] if row else None


class Retention(Passes):
    """One pass at a time over :data:`TABLES`, a batch per :meth:`step`."""

    def __init__(self, cfg: RetentionConfig, store: StoreConfig, *, monotonic=time.monotonic) -> None:
        super().__init__(cfg.interval_s, monotonic)
        self.cfg = cfg
        self.store = store
        self.cursor: int | None = None
        self.cut_date = ""
        self.keep_menus: tuple[str, ...] = ()

    def due(self) -> bool:
        return self.cfg.enabled and super().due()

    def begin(self, now: datetime) -> None:
        self.cut_iso = iso(now - timedelta(days=self.cfg.keep_days))
        # an order is kept while its business day is within the window, and
        # always on the current business day (keep_days >= 14 says so twice)
        self.cut_date = min(self.store.business_date(now - timedelta(days=self.cfg.keep_days)),
                            self.store.business_date(now))
        self.cursor = sync_cursor(self.cfg.sync_database)
        self._start(TABLES)

    def step(self, database: pw.SqliteDatabase, now: datetime, menu_version: str) -> Counter:
        """One batch, in its own transaction: the rows it deleted, by table.
        Starts a pass if one is due; ends it after its last table."""
        if not self.busy:
            self.keep_menus = (menu_version,)
            self.begin(now)
        table = self.pending[0]
        return self._run_batch(database, table, getattr(self, f"_{table}"))

    def _end_note(self) -> str:
        return "" if self.cursor is not None else " (no sync cursor: orders and outbox events kept)"

    # ------------------------------------------------------------ tables
    def _chunk(self, database, sql: str) -> list[tuple]:
        return database.execute_sql(sql, (self.after, self.cfg.batch_rows)).fetchall()

    def _outbox(self, database) -> tuple[int, bool]:
        if self.cursor is None:
            return 0, True
        newest = database.execute_sql('SELECT MAX("seq") FROM "outbox"').fetchone()[0] or 0
        upto = min(self.cursor, newest - 1)
        rows = self._chunk(database, 'SELECT "seq", "created_at" FROM "outbox" WHERE "seq" > ? ORDER BY "seq" LIMIT ?')
        last, finished = None, len(rows) < self.cfg.batch_rows
        for seq, created in rows:
            if seq > upto or created >= self.cut_iso:
                finished = True
                break
            last = seq
        gone = 0
        if last is not None:
            gone = database.execute_sql('DELETE FROM "outbox" WHERE "seq" > ? AND "seq" <= ?', (self.after, last)).rowcount
            self.after = last
        return gone, finished

    def _by_age(self, database, table: str, at: str, extra: str = "") -> tuple[int, bool]:
        """Rows of ``table`` older than the window (column ``at``), and
        meeting ``extra``: deleted from the head of the table."""
        return self._delete_head(database, table, at, self.cut_iso, self.cfg.batch_rows, f'"{at}" < ? {extra}',
                                 (self.cut_iso,))

    def _processed_message(self, database) -> tuple[int, bool]:
        return self._by_age(database, "processed_message", "at")

    def _print_request(self, database) -> tuple[int, bool]:
        # an order's requests go with the order (a reprint numbers itself
        # from them); here only test pages and reports
        return self._by_age(database, "print_request", "created_at",
                            """AND ("order_id" IS NULL OR "order_id" = '') AND "state" IN ('done', 'failed')""")

    def _order(self, database) -> tuple[int, bool]:
        if self.cursor is None:
            return 0, True
        rows = self._chunk(database, 'SELECT rowid, "id", "business_date", "state" FROM "order" '
                                     'WHERE rowid > ? ORDER BY rowid LIMIT ?')
        finished = len(rows) < self.cfg.batch_rows
        gone: list[str] = []
        for rowid, oid, day, state in rows:
            if day >= self.cut_date:
                finished = True
                break
            self.after = rowid
            if state in LIVE_STATES:
                continue
            if database.execute_sql('SELECT 1 FROM "outbox" WHERE "order_id" = ? AND "seq" > ? LIMIT 1',
                                    (oid, self.cursor)).fetchone():
                continue  # the cloud does not have all of it yet
            if database.execute_sql('SELECT 1 FROM "print_request" WHERE "order_id" = ? '
                                    """AND "state" NOT IN ('done', 'failed') LIMIT 1""", (oid,)).fetchone():
                continue  # not printed yet
            gone.append(oid)
        if gone:
            marks = ", ".join("?" * len(gone))
            database.execute_sql(f'DELETE FROM "print_request" WHERE "order_id" IN ({marks})', gone)
            database.execute_sql(f'DELETE FROM "payment" WHERE "order_id" IN ({marks})', gone)
            database.execute_sql(f'DELETE FROM "order" WHERE "id" IN ({marks})', gone)  # tickets: ON DELETE CASCADE
        return len(gone), finished

    def _till_shift(self, database) -> tuple[int, bool]:
        return self._delete_head(database, "till_shift", "opened_at", self.cut_iso, self.cfg.batch_rows,
                                 '"closed_at" IS NOT NULL AND "closed_at" < ?', (self.cut_iso,))

    def _menu_version(self, database) -> tuple[int, bool]:
        newest = database.execute_sql(
            'SELECT "version" FROM "menu_version" ORDER BY "applied_at" DESC LIMIT 1').fetchone()
        keep = list(self.keep_menus) + ([newest[0]] if newest else [])
        marks = ", ".join("?" * len(keep))
        gone = database.execute_sql(
            f'DELETE FROM "menu_version" WHERE "version" IN (SELECT "version" FROM "menu_version" '
            f'WHERE "applied_at" < ? AND "version" NOT IN ({marks}) LIMIT ?)',
            (self.cut_iso, *keep, self.cfg.batch_rows)).rowcount
        return gone, gone < self.cfg.batch_rows
