"""The chain's cloud database: PostgreSQL for a chain, SQLite for the demo
(one file, one process), through the same code.

    database = connect("postgresql://restobox@127.0.0.1:5432/restobox")
    database = connect("sqlite:///var/lib/restobox/cloud.db")

Its schema is the list of :data:`STEPS`, oldest first: each is SQL for both
dialects and runs once, in one transaction with its row in
``schema_migration``. :func:`migrate` runs the steps a database lacks;
every process that starts runs it, and two that start at once take turns
(PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``). A database
written by a newer release (a version this code has no step for) is
refused, untouched.

Times are seconds since the epoch (``DOUBLE PRECISION``); what the stores
send is kept as the JSON text it came as.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import peewee as pw

log = logging.getLogger("restobox.cloud.db")

MIGRATION_LOCK = 0x52425F434C44  # pg_advisory_xact_lock key: "RB_CLD"


class CloudDbError(Exception):
    """The database cannot be used; ``reason`` is a code, ``str()`` a sentence."""

    def __init__(self, reason: str, words: str) -> None:
        super().__init__(words)
        self.reason = reason


def connect(url: str, *, pool: int = 16) -> pw.Database:
    """A peewee database for ``url``: ``postgresql://user@host:port/name``
    (a pool of ``pool`` connections, one per thread at a time) or
    ``sqlite:///path`` (WAL, a writer waits up to 10 s for another)."""
    u = urlparse(url)
    if u.scheme in ("postgres", "postgresql"):
        from playhouse.pool import PooledPostgresqlDatabase

        name = unquote(u.path.lstrip("/"))
        if not name:
            raise CloudDbError("bad_database_url", f"{url}: no database name after the host")
        kw = {"host": u.hostname or "127.0.0.1", "port": u.port or 5432, "user": unquote(u.username or "postgres")}
        if u.password:
            kw["password"] = unquote(u.password)
        return PooledPostgresqlDatabase(name, max_connections=pool, stale_timeout=300, timeout=30, **kw)
    if u.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else unquote(u.path)
        if not path:
            raise CloudDbError("bad_database_url", f"{url}: sqlite:///<path of the file>")
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return pw.SqliteDatabase(path, check_same_thread=False, timeout=10, pragmas={
            "journal_mode": "wal", "synchronous": "normal", "busy_timeout": 10_000, "foreign_keys": 1})
    raise CloudDbError("bad_database_url",
                       f"{url}: the database is postgresql://user@host:port/name or sqlite:///path")


def is_postgres(database: pw.Database) -> bool:
    return isinstance(database, pw.PostgresqlDatabase)


# ------------------------------------------------------------------ schema
@dataclass(frozen=True)
class Step:
    version: int
    what: str
    sql: tuple[str, ...]
    """Statements; ``{id}`` is the dialect's auto-numbered key, ``{ts}`` its
    float type."""


def _ddl(sql: str, postgres: bool) -> str:
    return sql.format(id="BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT",
                      ts="DOUBLE PRECISION" if postgres else "REAL",
                      big="BIGINT")


STEPS: list[Step] = [
    Step(1, "stores, tokens, events, orders, status, menus, stock, pre-orders, payment notifications", (
        """CREATE TABLE chain_store (
            store_id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', enrolled_at {ts} NOT NULL,
            revoked_at {ts}, last_contact {ts}, last_event_at TEXT, events {big} NOT NULL DEFAULT 0,
            notify_seq {big} NOT NULL DEFAULT 0, down_seq {big} NOT NULL DEFAULT 0)""",
        """CREATE TABLE api_token (
            token_hash TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL,
            created_at {ts} NOT NULL, revoked_at {ts})""",
        "CREATE INDEX api_token_subject ON api_token (role, subject)",
        """CREATE TABLE event (
            id {id}, store_id TEXT NOT NULL, event_id TEXT NOT NULL, seq {big} NOT NULL, kind TEXT NOT NULL,
            order_id TEXT, at TEXT NOT NULL, payload TEXT NOT NULL, received_at {ts} NOT NULL, flagged TEXT,
            CONSTRAINT event_once UNIQUE (store_id, event_id))""",
        "CREATE INDEX event_store_order ON event (store_id, order_id)",
        """CREATE TABLE store_order (
            store_id TEXT NOT NULL, order_id TEXT NOT NULL, number INTEGER, business_date TEXT NOT NULL,
            channel TEXT NOT NULL DEFAULT '', total {big} NOT NULL DEFAULT 0, state TEXT NOT NULL,
            accepted_at TEXT NOT NULL, ready_at TEXT, completed_at TEXT, voided_at TEXT,
            PRIMARY KEY (store_id, order_id))""",
        "CREATE INDEX store_order_day ON store_order (business_date, store_id)",
        """CREATE TABLE store_status (
            store_id TEXT PRIMARY KEY, reported_at {ts} NOT NULL, backlog {big} NOT NULL DEFAULT 0,
            oldest_pending_at TEXT, alerts TEXT NOT NULL DEFAULT '[]', details TEXT NOT NULL DEFAULT '{{}}')""",
        """CREATE TABLE menu_release (
            id {id}, version TEXT NOT NULL UNIQUE, body TEXT NOT NULL, published_at {ts} NOT NULL,
            published_by TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE store_menu (
            store_id TEXT PRIMARY KEY, rev INTEGER NOT NULL, body TEXT NOT NULL, updated_at {ts} NOT NULL)""",
        """CREATE TABLE store_stock (
            store_id TEXT PRIMARY KEY, version TEXT NOT NULL, body TEXT NOT NULL, updated_at {ts} NOT NULL)""",
        """CREATE TABLE preorder (
            id {id}, store_id TEXT NOT NULL, order_id TEXT NOT NULL, body TEXT NOT NULL, created_at {ts} NOT NULL,
            CONSTRAINT preorder_once UNIQUE (store_id, order_id))""",
        """CREATE TABLE paygate_notification (
            store_id TEXT NOT NULL, seq {big} NOT NULL, body TEXT NOT NULL, received_at {ts} NOT NULL,
            PRIMARY KEY (store_id, seq))""",
    )),
    Step(2, "delivery platforms: shops, skus, orders, webhooks, the stores' delivery stream, calls to make", (
        """CREATE TABLE delivery_shop (
            platform TEXT NOT NULL, shop_id TEXT NOT NULL, store_id TEXT NOT NULL, open_at_platform INTEGER,
            status_at {ts}, PRIMARY KEY (platform, shop_id))""",
        "CREATE INDEX delivery_shop_store ON delivery_shop (store_id)",
        """CREATE TABLE delivery_sku (
            platform TEXT NOT NULL, sku TEXT NOT NULL, item_id TEXT NOT NULL, PRIMARY KEY (platform, sku))""",
        "CREATE INDEX delivery_sku_item ON delivery_sku (item_id)",
        """CREATE TABLE delivery_webhook (
            platform TEXT NOT NULL, event_id TEXT NOT NULL, received_at {ts} NOT NULL,
            PRIMARY KEY (platform, event_id))""",
        """CREATE TABLE delivery_order (
            platform TEXT NOT NULL, platform_order_id TEXT NOT NULL, store_id TEXT NOT NULL,
            order_id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, body TEXT NOT NULL, created_at {ts} NOT NULL,
            deadline {ts} NOT NULL, answered_at {ts}, number INTEGER, reason TEXT, message TEXT,
            PRIMARY KEY (platform, platform_order_id))""",
        "CREATE INDEX delivery_order_due ON delivery_order (state, deadline)",
        """CREATE TABLE store_message (
            store_id TEXT NOT NULL, seq {big} NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
            created_at {ts} NOT NULL, PRIMARY KEY (store_id, seq))""",
        """CREATE TABLE platform_call (
            id {id}, platform TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'due', due_at {ts} NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT, created_at {ts} NOT NULL, done_at {ts})""",
        "CREATE INDEX platform_call_due ON platform_call (state, due_at)",
    )),
]


def current() -> int:
    return STEPS[-1].version


def _version(database: pw.Database) -> int:
    if "schema_migration" not in database.get_tables():
        return 0
    (v,) = database.execute_sql("SELECT COALESCE(MAX(version), 0) FROM schema_migration").fetchone()
    return int(v)


def migrate(database: pw.Database, *, upto: int | None = None) -> tuple[int, int]:
    """Bring the schema to ``upto`` (default: this release's); returns
    (version before, version after). Refuses a newer schema."""
    target = current() if upto is None else upto
    pg = is_postgres(database)
    database.connect(reuse_if_open=True)
    try:
        # two processes starting at once take turns: the second waits for
        # the lock, then finds the steps done
        with (database.atomic() if pg else database.atomic("IMMEDIATE")) as tx:
            if pg:
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            database.execute_sql(
                "CREATE TABLE IF NOT EXISTS schema_migration (version INTEGER PRIMARY KEY, what TEXT NOT NULL, "
                f"applied_at {'DOUBLE PRECISION' if pg else 'REAL'} NOT NULL)")
            before = _version(database)
            if before > current():
                tx.rollback()
                raise CloudDbError("schema_too_new",
                                   f"the cloud database is at schema version {before}, newer than this release "
                                   f"knows ({current()}): run the newer release, or restore a backup")
            for step in STEPS:
                if before < step.version <= target:
                    log.info("cloud database: step %d: %s", step.version, step.what)
                    for stmt in step.sql:
                        database.execute_sql(_ddl(stmt, pg))
                    database.execute_sql(
                        f"INSERT INTO schema_migration (version, what, applied_at) VALUES ({database.param}, "
                        f"{database.param}, {database.param})", (step.version, step.what, time.time()))
            after = _version(database)
    finally:
        if not database.is_closed():
            database.close()
    return before, after
