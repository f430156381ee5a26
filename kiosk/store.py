"""The kiosk's own database (kiosk.db): payment intents, the order outbox,
the provisional-number counter, and the cached menu and 86 list.

Every write is one transaction, committed (WAL, ``synchronous=FULL``) before
the call returns: the payment flow asks the terminal only after ``add``
returned, and the app shows a provisional number only after ``queue`` did.

Used from the kiosk's worker threads, never from the UI thread. peewee gives
each thread its own SQLite connection.

Retention ([kiosk] keep_days, restobox/retention_common.py): orders the hub
has (``delivered``) and settled payment intents go once finished before the
window, a batch at a time on the io thread when it is idle. Never an order
``sending``, ``queued`` or ``refused``, never an intent not settled or
``unknown``, never an intent of an order the hub does not have yet, never an
approved intent without its delivered order (money staff must resolve);
the provisional counter and the cached menu (``kiosk_value``) are kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import peewee as pw

from kiosk.payment import IntentExists, PaymentIntent, PaymentIntentStore
from restobox import db
from restobox.retention_common import Pruner, Rule

log = logging.getLogger("restobox.kiosk")

OutboxState = str  # sending | queued | delivered | refused

SETTLED = ("approved", "declined", "cancelled", "unpaid")
"""Payment intents that are over (``unknown`` is not: staff must find out)."""
RETENTION = (
    # intents first: an approved one goes only while its delivered order is still there to say so
    Rule("payment_intent", "created_at", "updated_at",
         f"""state IN ({", ".join(repr(s) for s in SETTLED)})
         AND order_id NOT IN (SELECT order_id FROM order_outbox WHERE state != 'delivered')
         AND (state != 'approved' OR order_id IN (SELECT order_id FROM order_outbox WHERE state = 'delivered'))"""),
    Rule("order_outbox", "created_at", "delivered_at", "state = 'delivered'"),
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    order_id: str
    state: OutboxState
    payload: bytes
    provisional_number: str
    total: int
    payment_status: str
    attempts: int
    number: int | None
    reason: str
    message: str
    created_at: float
    updated_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """What staff see: orders not yet at the hub, and those it refused."""

    waiting: int  # sending + queued
    queued: int  # the diner holds a provisional number
    refused: int
    oldest_s: float  # age of the oldest waiting order, 0 if none


def _row(r: db.KioskOrder) -> OutboxRow:
    return OutboxRow(r.order_id, r.state, bytes(r.payload), r.provisional_number, r.total, r.payment_status,
                     r.attempts, r.number, r.reason, r.message, r.created_at, r.updated_at, r.delivered_at)


class SqlIntentStore(PaymentIntentStore):
    """Payment intents in a device's own SQLite file (kiosk.db, counter.db):
    one row each in ``intent_model``'s table (the payment_intent columns of
    db.KioskIntent), every change one committed transaction. A subclass sets
    ``intent_model`` and opens ``database``."""

    intent_model: type[pw.Model]
    database: pw.SqliteDatabase

    def _intent(self, r) -> PaymentIntent:
        return PaymentIntent(intent_id=r.intent_id, order_id=r.order_id, method=r.method, amount=r.amount,
                             state=r.state, reason=r.reason, auth_ref=r.auth_ref, created_at=r.created_at,
                             updated_at=r.updated_at)

    def add(self, intent: PaymentIntent) -> None:
        m = self.intent_model
        try:
            with self.database.atomic():
                m.insert(
                    intent_id=intent.intent_id, order_id=intent.order_id, method=intent.method,
                    amount=intent.amount, state=intent.state, reason=intent.reason, auth_ref=intent.auth_ref,
                    created_at=intent.created_at, updated_at=intent.updated_at,
                ).execute()
        except pw.IntegrityError:
            raise IntentExists(intent.intent_id) from None

    def get(self, intent_id: str) -> PaymentIntent | None:
        m = self.intent_model
        r = m.get_or_none(m.intent_id == intent_id)
        return self._intent(r) if r else None

    def update(self, intent_id: str, **changes: object) -> PaymentIntent:
        allowed = {"state", "reason", "auth_ref", "updated_at"}
        if not set(changes) <= allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)} of an intent")
        m = self.intent_model
        with self.database.atomic():
            n = m.update(**changes).where(m.intent_id == intent_id).execute()
            if n != 1:
                raise KeyError(intent_id)
            return self._intent(m.get_by_id(intent_id))

    def unresolved(self) -> list[PaymentIntent]:
        from kiosk.payment import FINAL_STATES

        m = self.intent_model
        q = (m.select().where(m.state.not_in(sorted(FINAL_STATES)) | (m.state == "unknown"))
             .order_by(m.created_at))
        return [self._intent(r) for r in q]

    def intents_for(self, order_id: str) -> list[PaymentIntent]:
        m = self.intent_model
        q = m.select().where(m.order_id == order_id).order_by(m.created_at)
        return [self._intent(r) for r in q]


def next_in_sequence(database: pw.SqliteDatabase, table: str, key: str, now: float) -> int:
    """1, 2, 3, ... under ``key`` in a (key, value, updated_at) table of
    small values (kiosk_value, counter_value), committed before it returns:
    the provisional numbers of a device, never the same twice."""
    with database.atomic():
        cur = database.execute_sql(
            f'INSERT INTO "{table}" ("key", "value", "updated_at") VALUES (?, 1, ?) '
            'ON CONFLICT ("key") DO UPDATE SET "value" = CAST("value" AS INTEGER) + 1, '
            '"updated_at" = excluded."updated_at" RETURNING CAST("value" AS INTEGER)',
            (key, now),
        )
        return cur.fetchone()[0]


def offline_number(existing: str, next_counter: Callable[[], int], device: str, prefix: str = "K") -> str:
    """The provisional number of an order going into a device's outbox: the
    one it was given before (a second attempt keeps the number the diner
    holds), else the device's next (``next_counter``, committed)."""
    from kiosk.viewmodel.texts import provisional_number

    return existing or provisional_number(device, next_counter(), prefix)


# An order outbox (the kiosk's order_outbox, the counter's counter_order):
# ``sending`` -> ``delivered``, or ``queued`` with a provisional number while
# the hub cannot be reached; sent again until the hub answers.

def outbox_sending(model, database, order_id: str, now: float, **fields) -> None:
    """Commit an order about to be published (before it is). A new version
    of the same order replaces the old one; one already ``queued`` or
    ``delivered`` is kept (the diner's for good: never go back)."""
    with database.atomic():
        row = model.get_or_none(model.order_id == order_id)
        if row is not None and row.state in ("queued", "delivered"):
            return
        model.insert(order_id=order_id, state="sending", attempts=0, created_at=row.created_at if row else now,
                     updated_at=now, **fields).on_conflict_replace().execute()


def outbox_queue(model, database, order_id: str, now: float, **fields) -> None:
    """Commit an order the hub could not take now (with its provisional
    number, in ``fields``); one the hub has is kept."""
    with database.atomic():
        row = model.get_or_none(model.order_id == order_id)
        if row is not None and row.state == "delivered":
            return
        model.insert(order_id=order_id, state="queued", attempts=row.attempts if row else 0,
                     created_at=row.created_at if row else now, updated_at=now,
                     **fields).on_conflict_replace().execute()


def outbox_attempted(model, order_id: str, now: float) -> None:
    model.update(attempts=model.attempts + 1, updated_at=now).where(model.order_id == order_id).execute()


def outbox_delivered(model, order_id: str, number: int | None, now: float) -> bool:
    """The hub has the order. True if this changed the row."""
    return model.update(state="delivered", number=number, delivered_at=now, updated_at=now).where(
        (model.order_id == order_id) & (model.state != "delivered")).execute() == 1


class KioskStore(SqlIntentStore):
    """kiosk.db. ``open`` creates it (and its folder) if needed."""

    intent_model = db.KioskIntent

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.database = db.open_kiosk_db(self.path)

    def close(self) -> None:
        self.database.close()

    def pruner(self, keep_days: int, **kw) -> Pruner:
        """Retention of kiosk.db: run its ``step(store.database, now)`` on
        the io thread (restobox/retention_common.py)."""
        return Pruner("kiosk.db", RETENTION, keep_days, **kw)

    # ---------------------------------------------------------- outbox
    def sending(self, order_id: str, payload: bytes, *, total: int, payment_status: str) -> None:
        """Commit an order about to be published (before it is). A new
        version of the same order (the diner changed the cart after a
        refusal) replaces the old one."""
        outbox_sending(db.KioskOrder, self.database, order_id, self.clock(), payload=payload, total=total,
                       payment_status=payment_status)

    def queue(self, order_id: str, payload: bytes, provisional_number: str, *, total: int,
              payment_status: str) -> None:
        """Commit an order the hub could not take now; the diner gets
        ``provisional_number`` once this returns."""
        outbox_queue(db.KioskOrder, self.database, order_id, self.clock(), payload=payload,
                     provisional_number=provisional_number, total=total, payment_status=payment_status)

    def attempted(self, order_id: str) -> None:
        outbox_attempted(db.KioskOrder, order_id, self.clock())

    def delivered(self, order_id: str, number: int | None) -> bool:
        """The hub has the order. True if this changed the row."""
        return outbox_delivered(db.KioskOrder, order_id, number, self.clock())

    def refused(self, order_id: str, reason: str, message: str) -> bool:
        """The hub refused an order the diner already holds a number for, or
        paid for: kept for staff, never sent again."""
        return db.KioskOrder.update(state="refused", reason=reason[:48], message=message[:400],
                                    updated_at=self.clock()).where(
            (db.KioskOrder.order_id == order_id)
            & db.KioskOrder.state.in_(("sending", "queued"))).execute() == 1

    def recover(self) -> tuple[int, int]:
        """At start-up: orders left ``sending`` by a crash. Paid ones are
        queued (the money was taken: the kitchen must have them); unpaid ones
        are dropped (the diner never got a number). Returns (queued, dropped)."""
        now = self.clock()
        with self.database.atomic():
            paid = db.KioskOrder.update(state="queued", updated_at=now).where(
                (db.KioskOrder.state == "sending") & (db.KioskOrder.payment_status == "approved")).execute()
            dropped = db.KioskOrder.delete().where(db.KioskOrder.state == "sending").execute()
        return paid, dropped

    def drop(self, order_id: str) -> None:
        """The diner's online attempt was refused and they went back to the
        cart: nothing to deliver (the next attempt commits again)."""
        db.KioskOrder.delete().where(
            (db.KioskOrder.order_id == order_id) & (db.KioskOrder.state == "sending")).execute()

    def get_order(self, order_id: str) -> OutboxRow | None:
        r = db.KioskOrder.get_or_none(db.KioskOrder.order_id == order_id)
        return _row(r) if r else None

    def waiting(self, *, limit: int = 100) -> list[OutboxRow]:
        """Orders to (re)send, oldest first."""
        q = (db.KioskOrder.select().where(db.KioskOrder.state.in_(("sending", "queued")))
             .order_by(db.KioskOrder.created_at).limit(limit))
        return [_row(r) for r in q]

    def backlog(self) -> Backlog:
        counts = dict(db.KioskOrder.select(db.KioskOrder.state, pw.fn.COUNT(db.KioskOrder.order_id))
                      .group_by(db.KioskOrder.state).tuples())
        oldest = (db.KioskOrder.select(pw.fn.MIN(db.KioskOrder.created_at))
                  .where(db.KioskOrder.state.in_(("sending", "queued"))).scalar())
        waiting = counts.get("sending", 0) + counts.get("queued", 0)
        return Backlog(waiting=waiting, queued=counts.get("queued", 0), refused=counts.get("refused", 0),
                       oldest_s=max(0.0, self.clock() - oldest) if oldest else 0.0)

    # ------------------------------------------------ provisional numbers
    def next_provisional(self) -> int:
        """1, 2, 3, ... for this kiosk, durable (never the same twice a day)."""
        return next_in_sequence(self.database, "kiosk_value", "provisional", self.clock())

    # ------------------------------------------------------------ cache
    def put(self, key: str, value: bytes) -> None:
        db.KioskValue.insert(key=key, value=value, updated_at=self.clock()).on_conflict_replace().execute()

    def get_value(self, key: str) -> bytes | None:
        r = db.KioskValue.get_or_none(db.KioskValue.key == key)
        return bytes(r.value) if r else None
