"""The counter's own database (counter.db): what the cashier did, recorded
before anything is sent or charged.

- ``till_request``: every TillRequest (pay, refund, shift open and close),
  committed ``pending`` BEFORE it is published and sent again (the same
  ``request_id``: the hub answers a repeat as the first) until the hub
  answers: ``answered`` or ``refused``. A split payment whose card is still
  at the terminal is a ``draft`` (the tenders taken so far) until the card's
  answer completes it: a counter killed between the charge and the record
  finds the approved intent and its draft after the restart and sends it.
- ``payment_intent``: card and QR intents (kiosk.payment's PaymentFlow,
  committed before the terminal is asked to charge), the kiosk's table and
  code (kiosk.store.SqlIntentStore).
- ``counter_order``: walk-in orders placed here: ``sending`` -> ``delivered``,
  or ``queued`` with a provisional number while the hub cannot be reached.
- ``known_order``: the orders the counter has heard of (order/update, the
  hub's answers), so a restart shows the unpaid ones at once.
- ``counter_value``: the open shift, the provisional-number counter, and
  each group-buy voucher this counter asked to redeem (``voucher:<code>``:
  its request id, committed before the request is sent, kept until the hub
  has recorded a payment with it).

Every write is one transaction (WAL, ``synchronous=FULL``), from the
counter's io and pay threads (peewee: a connection per thread), never from
the UI thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import peewee as pw

from kiosk.store import (
    SqlIntentStore,
    next_in_sequence,
    outbox_attempted,
    outbox_delivered,
    outbox_queue,
    outbox_sending,
)
from restobox import db
from restobox.retention_common import Pruner, Rule

counter_db = pw.DatabaseProxy()
VOUCHER_KEY = "voucher:"


class _Base(pw.Model):
    class Meta:
        database = counter_db
        legacy_table_names = False


class CounterIntent(db.KioskIntent):
    """A card or QR payment intent (kiosk.payment.PaymentIntent): the
    kiosk's table, in counter.db; ``order_id`` is the TillRequest's
    ``request_id`` it pays into."""

    class Meta:
        database = counter_db
        table_name = "payment_intent"


class TillRow(_Base):
    """A TillRequest. ``state``: draft | pending | answered | refused.
    ``reply``: the hub's TillReply (encoded), once it came."""

    request_id = pw.CharField(primary_key=True, max_length=36)
    kind = pw.CharField(max_length=16)
    order_id = pw.CharField(max_length=36, default="", index=True)
    state = pw.CharField(max_length=12, index=True)
    payload = pw.BlobField()
    due = pw.IntegerField(default=0)
    intent_id = pw.CharField(max_length=64, default="")
    attempts = pw.IntegerField(default=0)
    reply = pw.BlobField(null=True)
    reason = pw.CharField(max_length=48, default="")
    created_at = pw.FloatField(index=True)
    updated_at = pw.FloatField()
    answered_at = pw.FloatField(null=True)

    class Meta:
        table_name = "till_request"


class CounterOrder(_Base):
    """A walk-in order placed at this counter, until the hub has it."""

    order_id = pw.CharField(primary_key=True, max_length=36)
    state = pw.CharField(max_length=16, index=True)
    payload = pw.BlobField()
    provisional_number = pw.CharField(max_length=16, default="")
    total = pw.IntegerField(default=0)
    attempts = pw.IntegerField(default=0)
    number = pw.IntegerField(null=True)
    reason = pw.CharField(max_length=48, default="")
    created_at = pw.FloatField(index=True)
    updated_at = pw.FloatField()
    delivered_at = pw.FloatField(null=True)

    class Meta:
        table_name = "counter_order"


class KnownOrder(_Base):
    """An order as the counter last heard of it; ``lines``: JSON of the
    priced lines when known (a refund by line)."""

    order_id = pw.CharField(primary_key=True, max_length=36)
    number = pw.IntegerField(default=0)
    state = pw.CharField(max_length=16, default="accepted")
    payment = pw.CharField(max_length=16, default="unpaid")
    paid = pw.IntegerField(default=0)
    total = pw.IntegerField(default=0)
    channel = pw.CharField(max_length=16, default="")
    table = pw.CharField(max_length=16, default="")
    provisional_number = pw.CharField(max_length=16, default="")
    lines = pw.TextField(default="")
    paid_by = pw.CharField(max_length=80, default="")
    updated_at = pw.FloatField(index=True)

    class Meta:
        table_name = "known_order"


class CounterValue(db.KioskValue):
    """Small named values (the kiosk's table, in counter.db): the open
    shift, the provisional-number counter."""

    class Meta:
        database = counter_db
        table_name = "counter_value"


TABLES = (CounterIntent, TillRow, CounterOrder, KnownOrder, CounterValue)

SETTLED = ("approved", "declined", "cancelled", "unpaid")
RETENTION = (
    Rule("till_request", "created_at", "answered_at", "state IN ('answered', 'refused')"),
    Rule("payment_intent", "created_at", "updated_at",
         f"""state IN ({", ".join(repr(s) for s in SETTLED)})
         AND order_id NOT IN (SELECT request_id FROM till_request)"""),
    Rule("counter_order", "created_at", "delivered_at", "state = 'delivered'"),
    Rule("known_order", "updated_at", "updated_at", "payment != 'unpaid' OR state IN ('voided', 'rejected')"),
)


def open_counter_db(path: str | Path) -> pw.SqliteDatabase:
    return db._open(path, counter_db, TABLES, "counter")


@dataclass(frozen=True, slots=True)
class Till:
    request_id: str
    kind: str
    order_id: str
    state: str
    payload: bytes
    due: int
    intent_id: str
    attempts: int
    reply: bytes | None
    reason: str
    created_at: float


def _till(r: TillRow) -> Till:
    return Till(r.request_id, r.kind, r.order_id, r.state, bytes(r.payload), r.due, r.intent_id, r.attempts,
                bytes(r.reply) if r.reply is not None else None, r.reason, r.created_at)


@dataclass(frozen=True, slots=True)
class Walkin:
    order_id: str
    state: str
    payload: bytes
    provisional_number: str
    total: int
    attempts: int
    number: int | None


@dataclass(frozen=True, slots=True)
class Known:
    order_id: str
    number: int
    state: str
    payment: str
    paid: int
    total: int
    channel: str
    table: str
    provisional_number: str
    lines: list
    paid_by: str
    updated_at: float


def _known(r: KnownOrder) -> Known:
    return Known(r.order_id, r.number, r.state, r.payment, r.paid, r.total, r.channel, r.table,
                 r.provisional_number, json.loads(r.lines) if r.lines else [], r.paid_by, r.updated_at)


class CounterStore(SqlIntentStore):
    """counter.db, created (with its folder) if needed."""

    intent_model = CounterIntent

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.database = open_counter_db(self.path)

    def close(self) -> None:
        self.database.close()

    def pruner(self, keep_days: int, **kw) -> Pruner:
        return Pruner("counter.db", RETENTION, keep_days, **kw)

    # ------------------------------------------------------ till requests
    def record(self, request_id: str, kind: str, payload: bytes, *, order_id: str = "", due: int = 0,
               state: str = "pending", intent_id: str = "") -> None:
        """Commit a request (``pending``: to send now; ``draft``: a split
        payment waiting for its card). A draft may be replaced; a request
        already pending or answered is kept as it is (the same id)."""
        now = self.clock()
        with self.database.atomic():
            row = TillRow.get_or_none(TillRow.request_id == request_id)
            if row is not None and row.state != "draft":
                return
            TillRow.insert(request_id=request_id, kind=kind, order_id=order_id, state=state, payload=payload,
                           due=due, intent_id=intent_id, attempts=0, created_at=row.created_at if row else now,
                           updated_at=now).on_conflict_replace().execute()

    def till(self, request_id: str) -> Till | None:
        r = TillRow.get_or_none(TillRow.request_id == request_id)
        return _till(r) if r else None

    def pending(self, limit: int = 50) -> list[Till]:
        q = (TillRow.select().where(TillRow.state == "pending").order_by(TillRow.created_at).limit(limit))
        return [_till(r) for r in q]

    def drafts(self) -> list[Till]:
        return [_till(r) for r in TillRow.select().where(TillRow.state == "draft").order_by(TillRow.created_at)]

    def resend_offline(self, request_id: str, payload: bytes) -> None:
        """The request as sent again after the hub did not answer (``offline``)."""
        TillRow.update(payload=payload, updated_at=self.clock()).where(
            (TillRow.request_id == request_id) & (TillRow.state == "pending")).execute()

    def attempted(self, request_id: str) -> None:
        TillRow.update(attempts=TillRow.attempts + 1, updated_at=self.clock()).where(
            TillRow.request_id == request_id).execute()

    def answered(self, request_id: str, reply: bytes, *, ok: bool, reason: str = "") -> bool:
        """The hub's answer. True if this changed the row (the first answer)."""
        now = self.clock()
        return TillRow.update(state="answered" if ok else "refused", reply=reply, reason=reason[:48],
                              answered_at=now, updated_at=now).where(
            (TillRow.request_id == request_id) & TillRow.state.in_(("pending", "draft"))).execute() == 1

    def drop_draft(self, request_id: str) -> None:
        TillRow.delete().where((TillRow.request_id == request_id) & (TillRow.state == "draft")).execute()

    def waiting(self) -> int:
        return TillRow.select().where(TillRow.state == "pending").count()

    def refused_requests(self, since: float = 0.0) -> list[Till]:
        q = TillRow.select().where((TillRow.state == "refused") & (TillRow.created_at >= since))
        return [_till(r) for r in q.order_by(TillRow.created_at)]

    # -------------------------------------------------- walk-in orders
    def order_sending(self, order_id: str, payload: bytes, total: int) -> None:
        outbox_sending(CounterOrder, self.database, order_id, self.clock(), payload=payload, total=total)

    def order_queue(self, order_id: str, payload: bytes, provisional_number: str, total: int) -> None:
        outbox_queue(CounterOrder, self.database, order_id, self.clock(), payload=payload,
                     provisional_number=provisional_number, total=total)

    def order(self, order_id: str) -> Walkin | None:
        r = CounterOrder.get_or_none(CounterOrder.order_id == order_id)
        return Walkin(r.order_id, r.state, bytes(r.payload), r.provisional_number, r.total, r.attempts,
                      r.number) if r else None

    def orders_waiting(self) -> list[Walkin]:
        q = CounterOrder.select().where(CounterOrder.state.in_(("sending", "queued"))).order_by(
            CounterOrder.created_at)
        return [Walkin(r.order_id, r.state, bytes(r.payload), r.provisional_number, r.total, r.attempts,
                       r.number) for r in q]

    def order_attempted(self, order_id: str) -> None:
        outbox_attempted(CounterOrder, order_id, self.clock())

    def order_delivered(self, order_id: str, number: int | None) -> bool:
        return outbox_delivered(CounterOrder, order_id, number, self.clock())

    def order_refused(self, order_id: str, reason: str) -> bool:
        return CounterOrder.update(state="refused", reason=reason[:48], updated_at=self.clock()).where(
            (CounterOrder.order_id == order_id) & CounterOrder.state.in_(("sending", "queued"))).execute() == 1

    def order_drop(self, order_id: str) -> None:
        CounterOrder.delete().where((CounterOrder.order_id == order_id)
                                    & (CounterOrder.state == "sending")).execute()

    def next_provisional(self) -> int:
        return next_in_sequence(self.database, "counter_value", "provisional", self.clock())

    # ------------------------------------------------------ known orders
    def know(self, order_id: str, **fields) -> None:
        """What the counter heard of an order (a field not given is kept)."""
        if "lines" in fields:
            fields["lines"] = json.dumps(fields["lines"], ensure_ascii=False)
        if fields.get("table") is None:
            fields.pop("table", None)
        now = self.clock()
        with self.database.atomic():
            n = KnownOrder.update(updated_at=now, **fields).where(KnownOrder.order_id == order_id).execute()
            if n == 0:
                KnownOrder.insert(order_id=order_id, updated_at=now, **fields).execute()

    def known(self, limit: int = 500) -> list[Known]:
        q = KnownOrder.select().order_by(KnownOrder.updated_at.desc()).limit(limit)
        return [_known(r) for r in q]

    # ------------------------------------------------------------ values
    def put(self, key: str, value: bytes | None) -> None:
        if value is None:
            CounterValue.delete().where(CounterValue.key == key).execute()
        else:
            CounterValue.insert(key=key, value=value, updated_at=self.clock()).on_conflict_replace().execute()

    def get_value(self, key: str) -> bytes | None:
        r = CounterValue.get_or_none(CounterValue.key == key)
        return bytes(r.value) if r else None

    # ---------------------------------------------------------- vouchers
    def voucher_request(self, code: str, order_id: str, new_id: str) -> str:
        """The request id of ``code``'s redemption from this counter: the
        one kept (a retry), or ``new_id``, committed before it is sent."""
        with self.database.atomic():
            kept = self.voucher_kept_request(code)
            if kept is not None:
                return kept
            self.put(VOUCHER_KEY + code, json.dumps({"request_id": new_id, "order_id": order_id,
                                                      "at": self.clock()}).encode())
        return new_id

    def voucher_kept_request(self, code: str) -> str | None:
        raw = self.get_value(VOUCHER_KEY + code)
        return json.loads(raw)["request_id"] if raw else None

    def voucher_redeemed(self, code: str, redemption_id: str) -> None:
        """The platform's redemption, kept with its request (for staff)."""
        with self.database.atomic():
            raw = self.get_value(VOUCHER_KEY + code)
            if raw:
                self.put(VOUCHER_KEY + code, json.dumps({**json.loads(raw), "redemption_id": redemption_id}).encode())

    def voucher_applied(self, code: str) -> None:
        """The hub recorded a payment with it: a later request about the code is a new one."""
        self.put(VOUCHER_KEY + code, None)

    def vouchers_kept(self) -> int:
        """Vouchers asked to be redeemed here and not yet in a payment the hub recorded."""
        return CounterValue.select().where(CounterValue.key.startswith(VOUCHER_KEY)).count()
