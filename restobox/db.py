"""SQLite tables (peewee) and the outbox. The only module that defines tables.

Every database is opened with WAL and ``synchronous=FULL``: a transaction
that has committed survives a power cut (SQLite docs, "PRAGMA synchronous":
FULL syncs the WAL on every commit).

Every file carries its schema version (restobox/migrations.py): opening one
from an older release upgrades it in one transaction, and one from a newer
release is refused (``SchemaError``, reason ``schema_too_new``) untouched.
"""

from __future__ import annotations

from pathlib import Path

import peewee as pw

from restobox import migrations
from restobox.migrations import SchemaError  # noqa: F401  (callers catch db.SchemaError)

# Bound at open time; peewee's Proxy lets the models be declared first.
store_db = pw.DatabaseProxy()

PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": 2,  # FULL
    "foreign_keys": 1,
    "busy_timeout": 5000,  # ms; a CLI reading while the hub writes waits
    "cache_size": -16_000,  # KiB
}


class _Base(pw.Model):
    class Meta:
        database = store_db
        legacy_table_names = False


class Order(_Base):
    """An accepted order. The client-made UUID is the primary key."""

    id = pw.CharField(primary_key=True, max_length=36)
    business_date = pw.CharField(max_length=10)
    number = pw.IntegerField()
    state = pw.CharField(max_length=16, index=True)
    channel = pw.CharField(max_length=16)
    service = pw.CharField(max_length=16)
    table = pw.CharField(max_length=8, null=True)
    device = pw.CharField(max_length=32)
    lang = pw.CharField(max_length=2)
    placed_at = pw.CharField(max_length=40)
    accepted_at = pw.CharField(max_length=40)
    updated_at = pw.CharField(max_length=40)
    subtotal = pw.IntegerField()
    tax = pw.IntegerField()
    total = pw.IntegerField()
    currency = pw.CharField(max_length=3)
    payment_method = pw.CharField(max_length=16)
    payment_status = pw.CharField(max_length=16)
    payment_reference = pw.CharField(max_length=64, default="")
    offline = pw.BooleanField(default=False)
    provisional_number = pw.CharField(max_length=16, default="")
    menu_version = pw.CharField(max_length=64)
    note = pw.CharField(max_length=200, default="")
    body_hash = pw.CharField(max_length=64)
    lines = pw.TextField()  # JSON list of contract.PricedLine
    # the payment ledger's sums for the order (Payment below), changed in
    # the same transaction as its rows: a cache, never written otherwise.
    # ``payment_status`` above stays what the ordering device said.
    paid = pw.IntegerField(default=0)  # fen paid and not refunded
    payment = pw.CharField(max_length=16, default="unpaid")  # contract.PaymentState

    class Meta:
        indexes = ((("business_date", "number"), True),)


class Ticket(_Base):
    """What one station makes for one order; id is ``<order_id>:<station>``."""

    id = pw.CharField(primary_key=True, max_length=80)
    order = pw.ForeignKeyField(Order, backref="tickets", on_delete="CASCADE")
    station = pw.CharField(max_length=32)
    state = pw.CharField(max_length=16, index=True)  # open | done | voided
    items = pw.TextField()  # JSON list of contract.TicketItem
    revision = pw.IntegerField(default=1)
    created_at = pw.CharField(max_length=40)
    updated_at = pw.CharField(max_length=40)
    acked_at = pw.CharField(max_length=40, null=True)


class DayCounter(_Base):
    """The last order number given out on a business day."""

    business_date = pw.CharField(primary_key=True, max_length=10)
    last_number = pw.IntegerField()


class Outbox(_Base):
    """Events the chain's cloud must receive, in ``seq`` order, exactly once.

    Written in the same transaction as the change they describe.
    """

    seq = pw.AutoField()
    event_id = pw.CharField(unique=True, max_length=80)
    kind = pw.CharField(max_length=32)
    order_id = pw.CharField(max_length=36, null=True, index=True)
    payload = pw.TextField()
    created_at = pw.CharField(max_length=40)
    sent_at = pw.CharField(max_length=40, null=True, index=True)  # unused: the sync service keeps its cursor in sync.db


class ProcessedMessage(_Base):
    """Ids of station events and staff commands already applied (dedup)."""

    id = pw.CharField(primary_key=True, max_length=36)
    at = pw.CharField(max_length=40)


class SoldOutItem(_Base):
    """The 86 list: menu item or option ids not available now."""

    item_id = pw.CharField(primary_key=True, max_length=48)
    since = pw.CharField(max_length=40)
    by = pw.CharField(max_length=32)


class PrintRequest(_Base):
    """A print job the hub asked for; confirmed once the printing service
    reports it has queued it (until then it is sent again)."""

    job_id = pw.CharField(primary_key=True, max_length=160)
    printer = pw.CharField(max_length=32)
    kind = pw.CharField(max_length=16)
    order_id = pw.CharField(max_length=36, null=True, index=True)
    payload = pw.TextField()  # the encoded contract.PrintJob
    created_at = pw.CharField(max_length=40)
    confirmed_at = pw.CharField(max_length=40, null=True, index=True)
    state = pw.CharField(max_length=16, default="requested")
    reason = pw.CharField(max_length=32, null=True)


class MenuVersion(_Base):
    """Every menu the hub has priced with, newest last: the hub starts from
    the latest (the store needs no internet to start)."""

    version = pw.CharField(primary_key=True, max_length=64)
    body = pw.TextField()  # the menu's JSON
    source = pw.CharField(max_length=32)  # "config" or the device that sent it ("sync")
    applied_at = pw.CharField(max_length=40, index=True)


class StockLevel(_Base):
    """Portions left of an item or option, from the chain's cloud; counted
    down by every accepted order. Not listed: no limit."""

    item_id = pw.CharField(primary_key=True, max_length=48)
    remaining = pw.IntegerField()
    version = pw.CharField(max_length=64)  # the cloud's stock version that set it
    updated_at = pw.CharField(max_length=40)


class PointsEntry(_Base):
    """The loyalty ledger: append-only, one row per change of a member's
    points. A balance is the sum of a member's ``points``. ``kind``: earn
    (+), redeem (-), reverse (an order voided: the opposite of one of its
    entries, ``entry_id`` ``<order_id>:reverse-<kind>``). The member is a
    keyed hash of the phone number (restobox.loyalty.member_id); the number
    itself is not stored, only its masked form for receipts."""

    seq = pw.AutoField()
    entry_id = pw.CharField(unique=True, max_length=80)  # <order_id>:earn | :redeem | :reverse-earn ...
    member = pw.CharField(max_length=32, index=True)
    member_masked = pw.CharField(max_length=24)
    kind = pw.CharField(max_length=8)
    points = pw.IntegerField()
    discount = pw.IntegerField(default=0)  # fen, for a redemption
    balance_after = pw.IntegerField()
    order_id = pw.CharField(max_length=36, index=True)
    at = pw.CharField(max_length=40)


class Payment(_Base):
    """The payment ledger: append-only, one row per tender taken or given
    back, written in the transaction that changes the order (its ``paid``
    and ``payment``). ``amount`` in fen, positive both ways; an order's net
    paid is its payments less its refunds. ``entry_id``:
    ``<request_id>:<n>`` (the n-th tender of a counter's TillRequest), or
    ``<order_id>:paid`` for an order paid at the kiosk (card, qr)."""

    seq = pw.AutoField()
    entry_id = pw.CharField(unique=True, max_length=80)
    request_id = pw.CharField(max_length=36, index=True)  # the TillRequest (or the kiosk's order)
    order_id = pw.CharField(max_length=36, index=True)
    business_date = pw.CharField(max_length=10, index=True)  # the order's business day
    kind = pw.CharField(max_length=8)  # payment | refund
    method = pw.CharField(max_length=16)  # cash | card | qr | voucher | points | gateway
    amount = pw.IntegerField()
    tendered = pw.IntegerField(default=0)  # cash handed over (0: exact)
    reference = pw.CharField(max_length=64, default="")  # the terminal's approval, a voucher code ...
    lines = pw.TextField(default="")  # a refund's lines: JSON of contract.RefundLine; "" otherwise
    reason = pw.CharField(max_length=200, default="")
    staff = pw.CharField(max_length=32, default="")
    device = pw.CharField(max_length=32, default="")
    shift_id = pw.CharField(max_length=36, default="")
    offline = pw.BooleanField(default=False)  # taken while the counter could not reach the hub
    at = pw.CharField(max_length=40)  # when it happened (at the counter)
    recorded_at = pw.CharField(max_length=40)  # when the hub recorded it
    stray = pw.BooleanField(default=False)
    """Money the gateway took that its order cannot keep (the order was paid
    already or voided, or the amount was wrong), with the refund that gives
    it back: in the ledger, so it equals the gateway's records, and out of
    the order's sums (``ledger_sums``)."""


class PayIntent(_Base):
    """A phone payment of an order through the gateway (restobox/hub/phonepay.py):
    ``merchant_no`` is the gateway's out_trade_no (its idempotency key),
    one per attempt; an order has at most one ``open`` intent at a time.
    The sync service reads the open ones (and those whose money must go
    back, ``refund_due``) to ask the gateway about them."""

    merchant_no = pw.CharField(primary_key=True, max_length=32)
    order_id = pw.CharField(max_length=36, index=True)
    business_date = pw.CharField(max_length=10, index=True)
    attempt = pw.IntegerField()
    amount = pw.IntegerField()
    state = pw.CharField(max_length=12)  # contract.PayIntentState
    reason = pw.CharField(max_length=48, default="")
    trade_no = pw.CharField(max_length=64, default="")
    refund_amount = pw.IntegerField(default=0)  # what goes back (refund_due) or went back
    created_at = pw.CharField(max_length=40)
    expires_at = pw.CharField(max_length=40)
    updated_at = pw.CharField(max_length=40)

    class Meta:
        table_name = "pay_intent"


PayIntent.add_index(pw.SQL(
    'CREATE INDEX IF NOT EXISTS "pay_intent_active" ON "pay_intent" ("state") '
    """WHERE "state" IN ('open', 'refund_due', 'refunding')"""))


class Shift(_Base):
    """A cashier's shift at one counter: opened with a float, closed with
    the cash counted; ``expected_fen`` = float + cash taken - cash given
    back during the shift (the ledger's rows with its ``shift_id``)."""

    id = pw.CharField(primary_key=True, max_length=36)
    device = pw.CharField(max_length=32, index=True)
    staff = pw.CharField(max_length=32, default="")
    business_date = pw.CharField(max_length=10, index=True)
    opened_at = pw.CharField(max_length=40)
    closed_at = pw.CharField(max_length=40, null=True)
    float_fen = pw.IntegerField()
    counted_fen = pw.IntegerField(null=True)
    expected_fen = pw.IntegerField(null=True)

    class Meta:
        table_name = "till_shift"


# The print requests not yet done or failed (the hub asks about them again),
# found without reading every request ever made.
PrintRequest.add_index(pw.SQL(
    'CREATE INDEX IF NOT EXISTS "print_request_open" ON "print_request" ("state") '
    """WHERE "state" NOT IN ('done', 'failed')"""))

STORE_TABLES = (Order, Ticket, DayCounter, Outbox, ProcessedMessage, SoldOutItem, PrintRequest, MenuVersion,
                StockLevel, PointsEntry, Payment, Shift, PayIntent)


def points_balance(database: pw.Database, member: str) -> int:
    """A member's points: the sum of the ledger (in the caller's transaction)."""
    return database.execute_sql(
        'SELECT COALESCE(SUM("points"), 0) FROM "points_entry" WHERE "member" = ?', (member,)).fetchone()[0]


def ledger_sums(database: pw.Database, order_id: str) -> tuple[int, int]:
    """(fen paid, fen refunded) of an order: the ledger's sums, in the
    caller's transaction."""
    return database.execute_sql(
        'SELECT COALESCE(SUM(CASE WHEN "kind" = \'payment\' THEN "amount" END), 0), '
        'COALESCE(SUM(CASE WHEN "kind" = \'refund\' THEN "amount" END), 0) '
        'FROM "payment" WHERE "order_id" = ? AND NOT "stray"', (order_id,)).fetchone()


def _open(path: str | Path, proxy: pw.DatabaseProxy, tables, kind: str,
          pragmas: dict = PRAGMAS) -> pw.SqliteDatabase:
    """Open (creating it and its folder if needed) a database of ``kind``
    (migrations.KINDS), bind ``proxy``'s models to it and bring it to this
    release's schema: a new file gets the tables, an older one its
    migrations. SchemaError if it is from a newer release (checked before
    anything writes to it) or a migration fails (rolled back)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    version, has_tables = migrations.check(p, kind)
    db = pw.SqliteDatabase(str(p), pragmas=pragmas, check_same_thread=False)
    proxy.initialize(db)
    db.connect(reuse_if_open=True)
    try:
        migrations.upgrade(db, kind, tables, version, has_tables)
    except BaseException:
        db.close()
        raise
    return db


def schema_version(database: pw.SqliteDatabase) -> int:
    return database.pragma("user_version")


def open_store_db(path: str | Path) -> pw.SqliteDatabase:
    """The store database. The hub is its single writer, from one thread."""
    return _open(path, store_db, STORE_TABLES, "store")


# SQLite's primary result codes that mean the database itself cannot take
# the write now (https://sqlite.org/rescode.html): busy or locked by another
# process, out of memory, read-only, I/O error, corrupt, disk full, cannot
# open, locking protocol, not a database. Anything else (SQLITE_ERROR "too
# many SQL variables", SQLITE_TOOBIG, ...) is about the statement, i.e. the
# message that made it, and is no reason to hold other messages back.
_STORAGE_CODES = {5, 6, 7, 8, 10, 11, 13, 14, 15, 26}


def storage_failure(exc: BaseException) -> bool:
    """Is ``exc`` (a peewee or sqlite3 error) the database refusing writes,
    rather than one statement failing?"""
    orig = getattr(exc, "orig", None) or exc.__context__ or exc
    code = getattr(orig, "sqlite_errorcode", None)
    if code is None:
        return isinstance(exc, pw.OperationalError)  # no code to tell: assume the worst
    return (code & 0xFF) in _STORAGE_CODES


def integrity_ok(db: pw.SqliteDatabase) -> bool:
    return db.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------- hot path
# The hub accepts hundreds of orders a second on a Pi; building each query
# through the ORM costs more than SQLite itself. These statements are built
# once from the models above (so they follow the schema) and run directly.


def _insert_sql(model: type[pw.Model], verb: str = "INSERT") -> tuple[str, list[str]]:
    cols = [f.column_name for f in model._meta.sorted_fields if not isinstance(f, pw.AutoField)]
    names = [f.name for f in model._meta.sorted_fields if not isinstance(f, pw.AutoField)]
    quoted = ", ".join(f'"{c}"' for c in cols)
    sql = f'{verb} INTO "{model._meta.table_name}" ({quoted}) VALUES ({", ".join("?" * len(cols))})'
    return sql, names


_ORDER_INSERT, _ORDER_NAMES = _insert_sql(Order)
_TICKET_INSERT, _TICKET_NAMES = _insert_sql(Ticket)
_OUTBOX_INSERT, _OUTBOX_NAMES = _insert_sql(Outbox, "INSERT OR IGNORE")
_PAYMENT_INSERT, _PAYMENT_NAMES = _insert_sql(Payment)


def insert_order(database: pw.Database, **values) -> None:
    values.setdefault("paid", 0)
    values.setdefault("payment", "unpaid")
    database.execute_sql(_ORDER_INSERT, [values[n] for n in _ORDER_NAMES])


def insert_tickets(database: pw.Database, rows: list[dict]) -> None:
    cur = database.cursor()
    cur.executemany(_TICKET_INSERT, [[r[n] for n in _TICKET_NAMES] for r in rows])


_SELECTS: dict[tuple, tuple[str, tuple]] = {}


def rows_by(database: pw.Database, model: type[pw.Model], column: str, value) -> list:
    """The rows of ``model`` whose ``column`` equals ``value``, as model
    instances, in the caller's transaction. The statement is made once per
    model and column: peewee builds a query's SQL anew on every call, which
    on the hub's busiest paths costs more than running it."""
    key = (model, column)
    made = _SELECTS.get(key)
    if made is None:
        fields = tuple(model._meta.sorted_fields)
        cols = ", ".join(f'"{f.column_name}"' for f in fields)
        made = _SELECTS[key] = (f'SELECT {cols} FROM "{model._meta.table_name}" WHERE "{column}" = ?', fields)
    sql, fields = made
    out = []
    for row in database.execute_sql(sql, (value,)):
        inst = model(__no_default__=1)
        inst.__data__ = {f.name: f.python_value(v) for f, v in zip(fields, row)}
        out.append(inst)
    return out


def row_by(database: pw.Database, model: type[pw.Model], column: str, value):
    """The first row of ``rows_by``, or None."""
    rows = rows_by(database, model, column, value)
    return rows[0] if rows else None


def processed(database: pw.Database, message_id: str) -> bool:
    """Was this message (a command or request id) already carried out?"""
    return database.execute_sql('SELECT 1 FROM "processed_message" WHERE "id" = ?', (message_id,)).fetchone() \
        is not None


def mark_processed(database: pw.Database, message_id: str, at: str) -> None:
    database.execute_sql('INSERT INTO "processed_message" ("id", "at") VALUES (?, ?)', (message_id, at))


def set_order_paid(database: pw.Database, order_id: str, paid: int, payment: str, at: str) -> None:
    """An order's ledger sums (``paid``, ``payment``), in the ledger's transaction."""
    database.execute_sql('UPDATE "order" SET "paid" = ?, "payment" = ?, "updated_at" = ? WHERE "id" = ?',
                         (paid, payment, at, order_id))


def insert_payment(database: pw.Database, **values) -> None:
    """A row of the payment ledger (every column given)."""
    database.execute_sql(_PAYMENT_INSERT, [values[n] for n in _PAYMENT_NAMES])


def insert_outbox(database: pw.Database, **values) -> None:
    values.setdefault("sent_at", None)
    database.execute_sql(_OUTBOX_INSERT, [values[n] for n in _OUTBOX_NAMES])


def next_order_number(database: pw.Database, business_date: str) -> int:
    """The next number of the business day, counted in the same transaction."""
    return database.execute_sql(
        'INSERT INTO "day_counter" ("business_date", "last_number") VALUES (?, 1) '
        'ON CONFLICT ("business_date") DO UPDATE SET "last_number" = "last_number" + 1 '
        'RETURNING "last_number"',
        (business_date,),
    ).fetchone()[0]


def order_hash(database: pw.Database, order_id: str) -> tuple[str, int, str] | None:
    """(body_hash, number, business_date) of a stored order, or None."""
    return database.execute_sql(
        'SELECT "body_hash", "number", "business_date" FROM "order" WHERE "id" = ?', (order_id,)
    ).fetchone()


# ---------------------------------------------------------- printing service
# The printing service keeps its own database (printing.db): a durable job
# queue per printer.
printing_db = pw.DatabaseProxy()


class PrintJobRow(pw.Model):
    """One print job. ``job_id`` is the idempotency key from the hub."""

    job_id = pw.CharField(primary_key=True, max_length=160)
    printer = pw.CharField(max_length=32, index=True)
    kind = pw.CharField(max_length=16)
    order_id = pw.CharField(max_length=36, default="")
    reprint = pw.BooleanField(default=False)
    job = pw.TextField()  # the encoded contract.PrintJob
    # queued -> printing -> done; held while the printer cannot print;
    # failed when the job itself cannot be printed (no retry helps)
    state = pw.CharField(max_length=16, index=True)
    attempts = pw.IntegerField(default=0)
    # a job found "printing" after a crash or a dropped connection is
    # printed again, marked REPRINT: the paper may or may not have come out
    interrupted = pw.BooleanField(default=False)
    next_attempt = pw.FloatField(default=0.0)  # unix time
    reason = pw.CharField(max_length=32, null=True)
    created_at = pw.CharField(max_length=40)
    updated_at = pw.CharField(max_length=40)
    printed_at = pw.CharField(max_length=40, null=True)
    seq = pw.IntegerField(index=True)  # arrival order

    class Meta:
        database = printing_db
        legacy_table_names = False
        table_name = "print_job"


class PrinterFault(pw.Model):
    """A time a printer could not print (paper out, cover open, no answer,
    an error), as the printing service saw it: from the status read that
    found the fault to the one that found the printer ready again
    (``ended_at`` null: not over, or the service stopped first). For the
    day's report; the live state is on ``printer/status``."""

    id = pw.AutoField()
    printer = pw.CharField(max_length=32, index=True)
    reason = pw.CharField(max_length=32)  # paper_out | cover_open | printer_offline | printer_error
    started_at = pw.CharField(max_length=40, index=True)
    ended_at = pw.CharField(max_length=40, null=True)

    class Meta:
        database = printing_db
        legacy_table_names = False
        table_name = "printer_fault"


def open_printing_db(path: str | Path) -> pw.SqliteDatabase:
    return _open(path, printing_db, [PrintJobRow, PrinterFault], "printing")


def printer_fault(printer: str, reason: str | None, at: str) -> None:
    """Record a printer's condition: ``reason`` a fault, None ready. A fault
    already open with the same reason goes on (a restart of the service
    while the paper is still out is one fault); any other open one ends."""
    # IMMEDIATE: a read that then writes while a printer's thread holds the
    # write lock would fail at once (SQLITE_BUSY) instead of waiting its turn
    with printing_db.atomic(lock_type="IMMEDIATE"):
        open_ = list(PrinterFault.select().where(PrinterFault.printer == printer, PrinterFault.ended_at.is_null()))
        if reason is not None and any(f.reason == reason for f in open_):
            return
        if open_:
            PrinterFault.update(ended_at=at).where(PrinterFault.id.in_([f.id for f in open_])).execute()
        if reason is not None:
            PrinterFault.insert(printer=printer, reason=reason, started_at=at).execute()


# --------------------------------------------------------------- screens
# A kitchen screen or kiosk keeps a small cache (tickets.db) so it can show
# its last state at once after a restart, even with the broker down.
cache_db = pw.DatabaseProxy()


class ScreenCache(pw.Model):
    key = pw.CharField(primary_key=True, max_length=64)
    value = pw.BlobField()
    updated_at = pw.FloatField()

    class Meta:
        database = cache_db
        legacy_table_names = False
        table_name = "screen_cache"


def open_cache_db(path: str | Path) -> pw.SqliteDatabase:
    # NORMAL, not FULL: the cache is rebuilt from the hub if a power cut
    # loses its last write; a screen should not wait on the SD card.
    return _open(path, cache_db, [ScreenCache], "cache", {**PRAGMAS, "synchronous": 1})


def cache_get(key: str) -> bytes | None:
    row = ScreenCache.get_or_none(ScreenCache.key == key)
    return bytes(row.value) if row else None


def cache_put(key: str, value: bytes, at: float) -> None:
    ScreenCache.insert(key=key, value=value, updated_at=at).on_conflict_replace().execute()


def write_problem(database: pw.SqliteDatabase) -> str | None:
    """Does ``database`` take a write now? None if so, else why not. Takes
    the write lock and lets it go (BEGIN IMMEDIATE; COMMIT): nothing is
    written, and another process holding the lock makes it wait the busy
    timeout and fail, as a real write would. Call it from a worker thread."""
    try:
        with database.atomic(lock_type="IMMEDIATE"):
            pass
    except (pw.DatabaseError, OSError) as exc:
        return f"{Path(database.database).name} takes no writes: {exc}"
    return None


# ------------------------------------------------------------------ kiosk
# A kiosk keeps kiosk.db: its payment intents (committed before the terminal
# is asked, invariant 5), its order outbox (every order from the moment it is
# submitted until the hub has answered it), its provisional-number counter,
# and the last menu and 86 list (so it starts without the hub). FULL sync:
# money and orders live here.
kiosk_db = pw.DatabaseProxy()


class _KioskBase(pw.Model):
    class Meta:
        database = kiosk_db
        legacy_table_names = False


class KioskIntent(_KioskBase):
    """A payment intent (kiosk.payment.PaymentIntent)."""

    intent_id = pw.CharField(primary_key=True, max_length=64)
    order_id = pw.CharField(max_length=36, index=True)
    method = pw.CharField(max_length=16)
    amount = pw.IntegerField()
    state = pw.CharField(max_length=24, index=True)
    reason = pw.CharField(max_length=48, default="")
    auth_ref = pw.CharField(max_length=64, default="")
    created_at = pw.FloatField()
    updated_at = pw.FloatField()

    class Meta:
        table_name = "payment_intent"


class KioskOrder(_KioskBase):
    """An order this kiosk submitted, until the hub has it.

    ``state``: ``sending`` (published, waiting for the hub's answer),
    ``queued`` (the hub could not be reached: the diner has the provisional
    number; sent again until answered), ``delivered`` (the hub has it:
    ``number``), ``refused`` (the hub answered no: ``reason``; staff act).
    """

    order_id = pw.CharField(primary_key=True, max_length=36)
    state = pw.CharField(max_length=16, index=True)
    payload = pw.BlobField()  # the encoded contract.OrderSubmit
    provisional_number = pw.CharField(max_length=16, default="")
    total = pw.IntegerField(default=0)
    payment_status = pw.CharField(max_length=16, default="")
    attempts = pw.IntegerField(default=0)
    number = pw.IntegerField(null=True)
    reason = pw.CharField(max_length=48, default="")
    message = pw.CharField(max_length=400, default="")
    created_at = pw.FloatField(index=True)
    updated_at = pw.FloatField()
    delivered_at = pw.FloatField(null=True)

    class Meta:
        table_name = "order_outbox"


class KioskValue(_KioskBase):
    """Small named values: the provisional counter, the cached menu and 86 list."""

    key = pw.CharField(primary_key=True, max_length=64)
    value = pw.BlobField()
    updated_at = pw.FloatField()

    class Meta:
        table_name = "kiosk_value"


KIOSK_TABLES = (KioskIntent, KioskOrder, KioskValue)


def open_kiosk_db(path: str | Path) -> pw.SqliteDatabase:
    return _open(path, kiosk_db, KIOSK_TABLES, "kiosk")


# ------------------------------------------------------------------- sync
# The sync service reads the hub's outbox (store.db, opened read-only: the
# hub stays its single writer) and keeps how far the cloud has acknowledged
# it in its own sync.db.
sync_db = pw.DatabaseProxy()


class SyncCursor(pw.Model):
    """The outbox has been delivered up to ``seq`` (every event with a
    smaller or equal seq is stored in the cloud)."""

    id = pw.IntegerField(primary_key=True, default=1)
    seq = pw.IntegerField()
    sent = pw.IntegerField(default=0)  # events delivered since the cursor was made
    updated_at = pw.FloatField()
    last_success_at = pw.FloatField(null=True)

    class Meta:
        database = sync_db
        legacy_table_names = False
        table_name = "sync_cursor"


_OUTBOX_COLS = ", ".join(f'"{c}"' for c in ("seq", "event_id", "kind", "order_id", "payload", "created_at"))
_OUTBOX_TABLE = Outbox._meta.table_name


def open_store_readonly(path: str | Path):
    """A read-only connection to the hub's store.db (sqlite3; WAL lets it
    read while the hub writes)."""
    import sqlite3

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no store database at {p} (has the hub run yet?)")
    con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5.0, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 5000")
    try:  # a store.db from a newer release may have moved what this one reads
        migrations.refuse_newer(p, "store", con.execute("PRAGMA user_version").fetchone()[0])
    except SchemaError:
        con.close()
        raise
    return con


def outbox_after(con, seq: int, limit: int) -> list[tuple]:
    """(seq, event_id, kind, order_id, payload, created_at) of the events
    after ``seq``, in order."""
    return con.execute(
        f'SELECT {_OUTBOX_COLS} FROM "{_OUTBOX_TABLE}" WHERE "seq" > ? ORDER BY "seq" LIMIT ?', (seq, limit)
    ).fetchall()


def outbox_backlog(con, seq: int) -> tuple[int, str | None]:
    """(events after ``seq``, created_at of the oldest of them)."""
    row = con.execute(
        f'SELECT COUNT(*), MIN("created_at") FROM "{_OUTBOX_TABLE}" WHERE "seq" > ?', (seq,)
    ).fetchone()
    return row[0], row[1]


class SyncPreorder(pw.Model):
    """A pre-order from the cloud, kept until the hub has it. ``fire_at``:
    when it goes to the kitchen (its pickup time less the lead time)."""

    order_id = pw.CharField(primary_key=True, max_length=36)
    payload = pw.BlobField()  # the encoded contract.OrderSubmit
    pickup_at = pw.CharField(max_length=40)
    fire_at = pw.FloatField(index=True)
    state = pw.CharField(max_length=16, index=True)  # waiting | sent | accepted | rejected
    attempts = pw.IntegerField(default=0)
    number = pw.IntegerField(null=True)
    reason = pw.CharField(max_length=48, default="")
    received_at = pw.FloatField()
    updated_at = pw.FloatField()

    class Meta:
        database = sync_db
        legacy_table_names = False
        table_name = "preorder"


class SyncValue(pw.Model):
    key = pw.CharField(primary_key=True, max_length=64)
    value = pw.TextField()

    class Meta:
        database = sync_db
        legacy_table_names = False
        table_name = "sync_value"


class SyncOutage(pw.Model):
    """A time the sync service could not deliver the outbox to the chain's
    cloud: from the first failed send to the next one the cloud stored
    (``ended_at`` null: still failing). With nothing to send the cloud is
    not asked, so an outage with an empty outbox is not seen. For the day's
    report."""

    id = pw.AutoField()
    started_at = pw.FloatField(index=True)  # unix time
    ended_at = pw.FloatField(null=True)
    reason = pw.CharField(max_length=32)  # the first failure's reason code
    failures = pw.IntegerField(default=1)

    class Meta:
        database = sync_db
        legacy_table_names = False
        table_name = "sync_outage"


SYNC_TABLES = (SyncCursor, SyncPreorder, SyncValue, SyncOutage)


def sync_outage(failed: bool, reason: str, at: float) -> None:
    """After each send: a failure starts an outage (or counts in the open
    one); a success ends the open one."""
    with sync_db.atomic(lock_type="IMMEDIATE"):  # read then write: wait for the lock, as printer_fault
        row = SyncOutage.select().where(SyncOutage.ended_at.is_null()).order_by(SyncOutage.id.desc()).first()
        if failed:
            if row is None:
                SyncOutage.insert(started_at=at, reason=reason[:32]).execute()
            else:
                SyncOutage.update(failures=SyncOutage.failures + 1).where(SyncOutage.id == row.id).execute()
        elif row is not None:
            SyncOutage.update(ended_at=at).where(SyncOutage.id == row.id).execute()


def open_sync_db(path: str | Path) -> pw.SqliteDatabase:
    return _open(path, sync_db, SYNC_TABLES, "sync")
