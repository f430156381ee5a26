"""Schema versions and migrations of every SQLite file Restobox keeps.

Each file records the schema version of the release that last wrote it in
``PRAGMA user_version`` (SQLite keeps it in the file's header, and setting
it is part of the transaction that sets it). Version 1 is the schema of the
first versioned release; a file with user_version 0 whose tables are there
was made before versions existed and is taken as version 1.

A migration is code: one :class:`Step` per version, in :data:`STEPS` under
the kind of file (``store``, ``printing``, ``cache``, ``kiosk``, ``sync``),
written with peewee's ``playhouse.migrate``. When a file is opened, the
steps from its version to :func:`current` run in one transaction together
with the new user_version: a step that fails leaves the file at its old
version with every row. Foreign keys are off while they run (SQLite applies
``PRAGMA foreign_keys`` only outside a transaction): rebuilding a table
(drop_column, alter) drops the old one, and with foreign keys on that drop
would delete the rows that point at it (a ticket's order). They are checked
(``PRAGMA foreign_key_check``) before the commit.

A file from a newer release (a version above :func:`current`) is refused
with :class:`SchemaError` (reason ``schema_too_new``) before anything
touches it: an older release must not write a schema it does not know.

The models in restobox/db.py are always the newest schema: a new file is
made from them and stamped with :func:`current`. A change to a model needs
its step here, and a fixture of the previous schema in tests/fixtures/db/.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import peewee as pw
from playhouse.migrate import SqliteMigrator

KINDS = ("store", "printing", "cache", "kiosk", "sync", "counter")


class SchemaError(Exception):
    """A database file that cannot be used as it is; ``str()`` is a sentence
    for a person, ``reason`` its code (schema_too_new, migration_failed)."""

    def __init__(self, reason: str, words: str) -> None:
        super().__init__(words)
        self.reason = reason


@dataclass(frozen=True)
class Step:
    """What takes a file from ``version - 1`` to ``version``. ``run`` gets
    the migrator and the database, inside the migration's transaction."""

    version: int
    what: str  # a few words for the log and the error, e.g. "order: add column pickup_at"
    run: Callable[[SqliteMigrator, pw.SqliteDatabase], None]


#: The steps of each kind of file, oldest first; step i brings the file to version i + 2.
STEPS: dict[str, list[Step]] = {kind: [] for kind in KINDS}


def current(kind: str) -> int:
    """The schema version this release writes for ``kind``."""
    return 1 + len(STEPS[kind])


def register(kind: str, step: Step) -> None:
    """Add the next step of ``kind`` (its version must follow the last)."""
    if step.version != current(kind) + 1:
        raise ValueError(f"the next {kind} step must bring version {current(kind) + 1}, not {step.version}")
    STEPS[kind].append(step)


def probe(path: str | Path) -> tuple[int, bool]:
    """(user_version, has tables) of the file at ``path``, read without
    changing it (0, False for a file that does not exist yet). A plain
    connection that only reads: a read-only one would leave the WAL's
    side files behind."""
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return 0, False
    con = sqlite3.connect(p, timeout=5.0)
    try:
        con.execute("PRAGMA busy_timeout = 5000")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is not None
    finally:
        con.close()
    return version, tables


def refuse_newer(path: str | Path, kind: str, version: int) -> None:
    """Raise schema_too_new if ``version`` is past what this release knows."""
    if version > current(kind):
        raise SchemaError("schema_too_new", (
            f"{path} was written by a newer Restobox release (schema version {version}; this release "
            f"knows up to {current(kind)}): run that release or a newer one. The file is left as it is."))


def check(path: str | Path, kind: str) -> tuple[int, bool]:
    """Before opening ``path``: its (version, has tables), or SchemaError
    if it is from a newer release."""
    version, tables = probe(path)
    refuse_newer(path, kind, version)
    return version, tables


def upgrade(database: pw.SqliteDatabase, kind: str, tables, version: int, has_tables: bool) -> int:
    """Bring an open file to :func:`current`: a new file gets the tables of
    the models; an older one the steps after its version. One transaction;
    nothing is written to a file already current. Returns the version the
    file had (0: new)."""
    target = current(kind)
    if has_tables and version == target:
        database.create_tables(tables, safe=True)  # IF NOT EXISTS: writes nothing when all are there
        return version
    migrator = SqliteMigrator(database)
    start = version if has_tables else target
    failed_at: Step | None = None
    try:
        with migrator.migration_context():
            if not has_tables:
                database.create_tables(tables)
            elif version == 0:
                # made before versions existed: the tables and indexes of
                # version 1 that the file may lack (IF NOT EXISTS)
                database.create_tables(tables, safe=True)
                start = 1
            for step in STEPS[kind][start - 1:]:
                failed_at = step
                step.run(migrator, database)
            failed_at = None
            broken = database.execute_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise pw.IntegrityError(f"{len(broken)} rows point at rows that are gone, e.g. {broken[0]}")
            database.pragma("user_version", target)
    except Exception as exc:
        what = f" (step to version {failed_at.version}, {failed_at.what})" if failed_at is not None else ""
        raise SchemaError("migration_failed", (
            f"{database.database} could not be upgraded from schema version {max(version, 1)} to {target}"
            f"{what}: {exc}. It is left at version {version} with all its data.")) from exc
    return version if has_tables else 0


# ------------------------------------------------------------------ store
# The statements of each step are written out as they were at that version
# (not made from today's models, which a later step may change).


def _store_ledger(m: SqliteMigrator, database: pw.SqliteDatabase) -> None:
    """Version 2: the payment ledger (payment), the counters' shifts
    (till_shift), and each order's ledger sums (order.paid, order.payment).
    Orders the kiosk sent as paid (card or QR approved) get their ledger
    row, as the hub writes one when it accepts such an order now."""
    # IF NOT EXISTS: a file from before versions (user_version 0) was given
    # today's tables before the steps run (upgrade)
    have = {c.name for c in database.get_columns("order")}
    if "paid" not in have:
        m.add_column("order", "paid", pw.IntegerField(default=0)).run()
    if "payment" not in have:
        m.add_column("order", "payment", pw.CharField(max_length=16, default="unpaid")).run()
    for sql in (
        'CREATE TABLE IF NOT EXISTS "payment" ("seq" INTEGER NOT NULL PRIMARY KEY, "entry_id" VARCHAR(80) NOT NULL, '
        '"request_id" VARCHAR(36) NOT NULL, "order_id" VARCHAR(36) NOT NULL, "business_date" VARCHAR(10) NOT NULL, '
        '"kind" VARCHAR(8) NOT NULL, "method" VARCHAR(16) NOT NULL, "amount" INTEGER NOT NULL, '
        '"tendered" INTEGER NOT NULL, "reference" VARCHAR(64) NOT NULL, "lines" TEXT NOT NULL, '
        '"reason" VARCHAR(200) NOT NULL, "staff" VARCHAR(32) NOT NULL, "device" VARCHAR(32) NOT NULL, '
        '"shift_id" VARCHAR(36) NOT NULL, "offline" INTEGER NOT NULL, "at" VARCHAR(40) NOT NULL, '
        '"recorded_at" VARCHAR(40) NOT NULL)',
        'CREATE UNIQUE INDEX IF NOT EXISTS "payment_entry_id" ON "payment" ("entry_id")',
        'CREATE INDEX IF NOT EXISTS "payment_request_id" ON "payment" ("request_id")',
        'CREATE INDEX IF NOT EXISTS "payment_order_id" ON "payment" ("order_id")',
        'CREATE INDEX IF NOT EXISTS "payment_business_date" ON "payment" ("business_date")',
        'CREATE TABLE IF NOT EXISTS "till_shift" ("id" VARCHAR(36) NOT NULL PRIMARY KEY, "device" VARCHAR(32) NOT NULL, '
        '"staff" VARCHAR(32) NOT NULL, "business_date" VARCHAR(10) NOT NULL, "opened_at" VARCHAR(40) NOT NULL, '
        '"closed_at" VARCHAR(40), "float_fen" INTEGER NOT NULL, "counted_fen" INTEGER, "expected_fen" INTEGER)',
        'CREATE INDEX IF NOT EXISTS "till_shift_device" ON "till_shift" ("device")',
        'CREATE INDEX IF NOT EXISTS "till_shift_business_date" ON "till_shift" ("business_date")',
        # the kiosk's paid orders, as submit.py records them now
        'INSERT INTO "payment" ("entry_id", "request_id", "order_id", "business_date", "kind", "method", '
        '"amount", "tendered", "reference", "lines", "reason", "staff", "device", "shift_id", "offline", '
        '"at", "recorded_at") '
        'SELECT "id" || \':paid\', "id", "id", "business_date", \'payment\', "payment_method", "total", 0, '
        '"payment_reference", \'\', \'\', \'\', "device", \'\', "offline", "placed_at", "accepted_at" '
        'FROM "order" WHERE "payment_status" = \'approved\' AND "payment_method" IN (\'card\', \'qr\') '
        'AND "total" > 0 ORDER BY rowid',
        'UPDATE "order" SET "paid" = "total", "payment" = \'paid\' '
        'WHERE "payment_status" = \'approved\' AND "payment_method" IN (\'card\', \'qr\') AND "total" > 0',
    ):
        database.execute_sql(sql)


register("store", Step(2, "the payment ledger: payment, till_shift; order: add paid, payment", _store_ledger))


def _store_phone_pay(m: SqliteMigrator, database: pw.SqliteDatabase) -> None:
    """Version 3: phone payment through the gateway: its intents
    (pay_intent) and the ledger's ``stray`` rows (money the gateway took
    that its order cannot keep, and its refund)."""
    if "stray" not in {c.name for c in database.get_columns("payment")}:
        m.add_column("payment", "stray", pw.BooleanField(default=False)).run()
    for sql in (
        'CREATE TABLE IF NOT EXISTS "pay_intent" ("merchant_no" VARCHAR(32) NOT NULL PRIMARY KEY, '
        '"order_id" VARCHAR(36) NOT NULL, "business_date" VARCHAR(10) NOT NULL, "attempt" INTEGER NOT NULL, '
        '"amount" INTEGER NOT NULL, "state" VARCHAR(12) NOT NULL, "reason" VARCHAR(48) NOT NULL, '
        '"trade_no" VARCHAR(64) NOT NULL, "refund_amount" INTEGER NOT NULL, "created_at" VARCHAR(40) NOT NULL, '
        '"expires_at" VARCHAR(40) NOT NULL, "updated_at" VARCHAR(40) NOT NULL)',
        'CREATE INDEX IF NOT EXISTS "pay_intent_order_id" ON "pay_intent" ("order_id")',
        'CREATE INDEX IF NOT EXISTS "pay_intent_business_date" ON "pay_intent" ("business_date")',
        'CREATE INDEX IF NOT EXISTS "pay_intent_active" ON "pay_intent" ("state") '
        "WHERE \"state\" IN ('open', 'refund_due', 'refunding')",
    ):
        database.execute_sql(sql)


register("store", Step(3, "phone payment: pay_intent; payment: add stray", _store_phone_pay))
