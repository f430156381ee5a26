"""The chain's records: what every request of the cloud reads and writes.

One :class:`Chain` per process over the database (restobox/cloud/db.py);
it holds no state of its own, so any number of processes serve the same
chain. Each method is one transaction. Events are stored once per
(store, event id) by the database's unique constraint — ``INSERT ... ON
CONFLICT DO NOTHING``, never a read then a write — and only the rows that
insert are folded into the per-order summary the owner's dashboard reads,
so two processes taking the same store's retry at once store and count it
once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections import Counter
from typing import Annotated, Any, Callable, Iterable

import msgspec
import peewee as pw

from restobox.cloud import db as cdb

log = logging.getLogger("restobox.cloud")

ROLES = ("store", "owner", "admin")
AUTH_CACHE_S = 30.0
"""How long a process takes a token it has checked on its word, where it is
asked to (``authenticate(cached=True)``: the events, whose transaction
checks the token again, so a revoked token stores nothing from the moment
it is revoked)."""
KIND_MAX = 32
EVENT_ID_MAX = 160


def token_hash(token: str) -> str:
    """Tokens are 256 random bits: one SHA-256 is enough at rest."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(role: str) -> str:
    return f"rbx{role[0]}_{secrets.token_urlsafe(32)}"


class Refused(Exception):
    """A request the cloud will not carry out: ``status`` (HTTP), ``reason``
    (a code), ``str()`` (a sentence)."""

    def __init__(self, status: int, reason: str, words: str) -> None:
        super().__init__(words)
        self.status = status
        self.reason = reason


def _event_fields(e: Any) -> tuple[dict | None, str | None]:
    """(the row to store, why it is flagged) for one event of a batch as
    decoded JSON; (None, why) when it has no usable event id (the batch
    stops there)."""
    if not isinstance(e, dict):
        return None, "an event is not a JSON object"
    eid = e.get("event_id")
    if not isinstance(eid, str) or not 1 <= len(eid) <= EVENT_ID_MAX:
        return None, "an event has no event_id (a string of 1 to 160 characters)"
    bad = []
    seq = e.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        bad.append("seq is not an integer")
        seq = 0
    kind = e.get("kind")
    if not isinstance(kind, str) or not 1 <= len(kind) <= KIND_MAX:
        bad.append("kind is not a string of up to 32 characters")
        kind = str(kind)[:KIND_MAX] or "?"
    oid = e.get("order_id")
    if oid is not None and not isinstance(oid, str):
        bad.append("order_id is not a string")
        oid = str(oid)
    at = e.get("at")
    if not isinstance(at, str):
        bad.append("at is not a string")
        at = ""
    payload = e.get("payload")
    if not isinstance(payload, dict):
        bad.append("payload is not an object")
    return ({"event_id": eid, "seq": seq, "kind": kind, "order_id": oid, "at": at,
             "payload": msgspec.json.encode(payload).decode()}, "; ".join(bad) or None)


SEQ_MAX = 2 ** 63 - 1


def _unstorable(row: dict) -> str | None:
    """What in an event the database would refuse, made storable in place
    (a refusal would stop the store's stream at this event for good): a
    ``seq`` beyond 64 bits becomes 0; a NUL character (PostgreSQL's text
    holds none), in a field or escaped in the payload, becomes U+FFFD — the
    same way every time, so a retry finds the event stored."""
    bad = []
    if not -SEQ_MAX - 1 <= row["seq"] <= SEQ_MAX:
        row["seq"] = 0
        bad.append("seq beyond 64 bits")
    for k in ("event_id", "kind", "order_id", "at"):
        v = row[k]
        if v is not None and "\x00" in v:
            row[k] = v.replace("\x00", "\ufffd")
            bad.append(f"a NUL character in {k}")
    if "\\u0000" in row["payload"]:
        row["payload"] = row["payload"].replace("\\u0000", "\\ufffd")
        bad.append("a NUL character in the payload")
    return "; ".join(bad) or None


class EventIn(msgspec.Struct):
    """An event of a batch that fits the contract (restobox/cloudapi.py
    ``CloudEvent``), decoded with its payload kept as the JSON text it came
    as. A batch with anything else is decoded as plain JSON instead and
    each event looked at by :func:`_event_fields`."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=EVENT_ID_MAX)]
    seq: int
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=KIND_MAX)]
    at: str
    payload: msgspec.Raw
    order_id: str | None = None


class BatchIn(msgspec.Struct):
    """``POST /v1/stores/<store>/events`` when every event fits (``EventIn``)."""

    store_id: str
    events: list[EventIn]


class _OrderIn(msgspec.Struct):
    number: Any = None
    business_date: Any = None
    total: Any = None
    accepted_at: Any = None


class _AcceptedIn(msgspec.Struct):
    """What the fold reads of an ``order.accepted`` payload (the rest, the
    priced lines, is skipped unread)."""

    order: _OrderIn | None = None
    channel: Any = None
    state: Any = None


_accepted_decoder = msgspec.json.Decoder(_AcceptedIn)
_STATES = {"order.released": ("accepted", None), "order.in_progress": ("in_progress", None),
           "order.ready": ("ready", 0), "order.completed": ("completed", 1), "order.voided": ("voided", 2)}
"""A state event: the order's state, and which time it sets (ready_at,
completed_at, voided_at)."""


_PG_INSERT_EVENTS = (
    "INSERT INTO event (store_id, event_id, seq, kind, order_id, at, payload, received_at, flagged) "
    "SELECT store_id, event_id, seq, kind, order_id, at, payload, received_at, flagged "
    "FROM ROWS FROM (json_to_recordset(%s::json) AS (store_id text, event_id text, seq bigint, kind text, "
    "order_id text, at text, payload text, received_at double precision, flagged text)) WITH ORDINALITY "
    "AS x(store_id, event_id, seq, kind, order_id, at, payload, received_at, flagged, n) ORDER BY n "
    "ON CONFLICT (store_id, event_id) DO NOTHING RETURNING store_id, event_id")
"""A group's events on PostgreSQL, in their order."""


def _accepted_row(store_id: str, oid: str, r: dict) -> list:
    """An ``order.accepted`` event's ``store_order`` row (its state times
    empty)."""
    try:
        a = _accepted_decoder.decode(r["payload"])
        o = a.order
        number, day, total, accepted_at = (o.number, o.business_date, o.total, o.accepted_at) if o else (None,) * 4
        channel, state = a.channel, a.state
    except (msgspec.ValidationError, msgspec.DecodeError):  # a payload of another shape: looked at as plain JSON
        p = msgspec.json.decode(r["payload"])
        o = p.get("order") if isinstance(p.get("order"), dict) else {}
        number, day, total, accepted_at = o.get("number"), o.get("business_date"), o.get("total"), o.get("accepted_at")
        channel, state = p.get("channel"), p.get("state")
    # a number or total that is not one (true, or too large for its column) is left out, not refused:
    # PostgreSQL would refuse the whole batch, again at every retry
    return [store_id, oid, number if _int(number, 2**31) else None, str(day or r["at"][:10]),
            str(channel or ""), total if _int(total, 2**63) else 0, str(state or "accepted"),
            str(accepted_at or r["at"]), None, None, None]


def _int(v: Any, bound: int) -> bool:
    return type(v) is int and -bound <= v < bound


class Chain:
    def __init__(self, database: pw.Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = database
        self.pg = cdb.is_postgres(database)
        self.clock = clock
        self.p = database.param
        self.counters: Counter = Counter()  # this process's, for its log and /v1/admin/stats
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, tuple[str, str] | None]] = {}  # token hash -> (until, (role, subject))

    # -------------------------------------------------------------- plumbing
    @contextlib.contextmanager
    def tx(self):
        """One transaction on this thread's connection (from the pool on
        PostgreSQL, given back after)."""
        if self.pg:
            with self.db.connection_context(), self.db.atomic():
                yield self.db
        else:
            self.db.connect(reuse_if_open=True)
            with self.db.atomic():
                yield self.db

    def sql(self, q: str, args: Iterable = ()) -> list[tuple]:
        cur = self.db.execute_sql(q.replace("?", self.p), tuple(args))
        return cur.fetchall() if cur.description else []

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def wake(self, store_id: str) -> None:
        """Inside a transaction: every process's waiters for this store wake
        when it commits (PostgreSQL NOTIFY; one SQLite process wakes its own
        after the commit, see app.Wakeups)."""
        if self.pg:
            self.sql("SELECT pg_notify('restobox_wake', ?)", (store_id,))

    # --------------------------------------------------------------- stores
    def enroll(self, store_id: str, name: str = "", token: str | None = None) -> str:
        """Enrol a store (or give an enrolled one another token): its token,
        kept only as a hash."""
        token = token or new_token("store")
        now = self.clock()
        with self.tx():
            self.sql("INSERT INTO chain_store (store_id, name, enrolled_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (store_id) DO UPDATE SET revoked_at = NULL"
                     + (", name = excluded.name" if name else ""), (store_id, name, now))
            self.sql("INSERT INTO api_token (token_hash, role, subject, created_at) VALUES (?, 'store', ?, ?) "
                     "ON CONFLICT (token_hash) DO UPDATE SET revoked_at = NULL, subject = excluded.subject",
                     (token_hash(token), store_id, now))
        return token

    def revoke(self, role: str, subject: str) -> int:
        """Revoke every token of a store (or an owner's, an admin's): how many."""
        with self.tx():
            rows = self.sql("UPDATE api_token SET revoked_at = ? WHERE role = ? AND subject = ? AND revoked_at IS NULL "
                            "RETURNING token_hash", (self.clock(), role, subject))
        return len(rows)

    def issue(self, role: str, subject: str, token: str | None = None) -> str:
        if role not in ROLES:
            raise ValueError(f"role is one of {', '.join(ROLES)}")
        token = token or new_token(role)
        with self.tx():
            self.sql("INSERT INTO api_token (token_hash, role, subject, created_at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (token_hash) DO UPDATE SET revoked_at = NULL, role = excluded.role, "
                     "subject = excluded.subject", (token_hash(token), role, subject, self.clock()))
        return token

    def authenticate(self, authorization: str | None, *roles: str, cached: bool = False,
                     wait: bool = True) -> tuple[str, str] | None:
        """(role, subject) of a ``Bearer`` token that is not revoked and has
        one of ``roles``; Refused (401) otherwise. ``cached``: a token this
        process found good less than ``AUTH_CACHE_S`` ago is taken on its
        word, with no query; for the routes whose transaction checks the
        token again (the events). ``wait=False``: None when only the
        database could tell (not cached), rather than asking it."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Refused(401, "unauthorized", "this needs a token: Authorization: Bearer <token>")
        h = token_hash(authorization[7:].strip())
        got = self._tokens.get(h) if cached else None
        if got is None or got[0] < time.monotonic():
            if not wait:
                return None
            with self.tx():
                rows = self.sql("SELECT role, subject FROM api_token WHERE token_hash = ? AND revoked_at IS NULL",
                                (h,))
            if not rows:  # not kept: a token enrolled a moment later works at once
                self._tokens.pop(h, None)
                got = (0.0, None)
            else:
                if len(self._tokens) > 100_000:
                    self._tokens.clear()
                got = self._tokens[h] = (time.monotonic() + AUTH_CACHE_S, tuple(rows[0]))
        row = got[1]
        if row is None or row[0] not in roles:
            self.count("unauthorized")
            raise Refused(401, "unauthorized", "the token is not known, was revoked, or may not do this")
        return row

    def store_for(self, authorization: str | None, store_id: str, *, cached: bool = False,
                  wait: bool = True) -> bool:
        """A store's token, for its own routes only (admins may act for any).
        ``cached`` and ``wait`` as for :meth:`authenticate`: False when it
        could not tell without the database."""
        got = self.authenticate(authorization, "store", "admin", cached=cached, wait=wait)
        if got is None:
            return False
        role, subject = got
        if role == "store" and subject != store_id:
            self.count("wrong_store")
            raise Refused(403, "wrong_store", f"this token is store {subject}'s, not {store_id}'s")
        return True

    touch_every_s = 5.0
    """At most one write of a store's last contact this often (the app sets
    it to a quarter of ``[cloud] offline_after_s`` when that is shorter, so
    a store in contact is never taken for offline)."""

    def touch(self, store_id: str) -> None:
        """The store was heard from."""
        now = self.clock()
        with self.tx():
            self.sql("UPDATE chain_store SET last_contact = ? WHERE store_id = ? "
                     "AND (last_contact IS NULL OR last_contact < ?)", (now, store_id, now - self.touch_every_s))

    def stores(self) -> list[dict]:
        with self.tx():
            rows = self.sql("SELECT store_id, name, enrolled_at, last_contact, last_event_at, events "
                            "FROM chain_store ORDER BY store_id")
        return [dict(zip(("store_id", "name", "enrolled_at", "last_contact", "last_event_at", "events"), r))
                for r in rows]

    def known(self, store_id: str) -> bool:
        with self.tx():
            return bool(self.sql("SELECT 1 FROM chain_store WHERE store_id = ?", (store_id,)))

    # --------------------------------------------------------------- events
    def ingest(self, store_id: str, events: list, on_new: Callable[[list[dict]], None] | None = None, *,
               authorization: str | None = None) -> list[str]:
        """Store a batch's events in order, each (store, event id) once; the
        ids stored (new and before alike), a prefix of the batch: it stops
        at the first event without a usable id. An event with other faults
        is stored and flagged (a refused event would stop the store's
        stream for good). ``on_new(rows)`` runs in the same transaction with
        the rows that were new. ``events``: the batch's events as decoded
        JSON, or as :class:`EventIn` (``BatchIn``: their payloads stored as
        they came, never decoded and encoded again). With
        ``authorization``, the transaction checks first that the token is
        still good for the store (Refused otherwise: a token revoked since
        the caller's check, ``store_for(cached=True)``, stores nothing)."""
        out, work = self._rows([(store_id, events, on_new, authorization)])
        if work:
            self._store(out, work)
        if isinstance(out[0], Refused):
            raise out[0]
        return out[0]

    def ingest_many(self, batches: list[tuple[str, list, Callable[[list[dict]], None] | None, str | None]]
                    ) -> list[list[str] | Exception]:
        """Several stores' batches (``(store_id, events, on_new,
        authorization)`` each, as for :meth:`ingest`) in one transaction:
        each batch's answer, its ids or what refused it. The cloud's
        processes store the batches they are answering together (group
        commit: app.EventWriter), so a thousand stores posting a few events
        a second cost a few statements a round, not a few per store. If the
        transaction fails, each batch is tried again on its own, so one
        batch the database will not take (or a deadlock with another
        process) fails only itself."""
        out, work = self._rows(batches)
        if not work:
            return out
        ids = list(out)
        try:
            self._store(out, work)
            return out
        except Exception as exc:
            if len(work) == 1:
                out[work[0][1]] = exc
                return out
            log.warning("%d batches stored together failed (%s: %s); each on its own now", len(work),
                        type(exc).__name__, exc)
            self.count("ingest_groups_retried")
        for w in work:
            out[w[1]] = ids[w[1]]
            try:
                self._store(out, [w])
            except Exception as exc:
                out[w[1]] = exc
        return out

    def _rows(self, batches: list[tuple]) -> tuple[list, list[tuple]]:
        """Each batch's ids (its answer, unless the transaction refuses it)
        and rows: (answers, work), a work item ``(order, index, store_id,
        rows, on_new, authorization)`` for each batch with rows."""
        now = self.clock()
        out: list = []
        work: list[tuple] = []
        for i, (store_id, events, on_new, authorization) in enumerate(batches):
            rows, ids = [], []
            for e in events:
                if type(e) is EventIn:
                    payload = bytes(e.payload)
                    why = None if payload[:1] == b"{" else "payload is not an object"
                    row = {"event_id": e.event_id, "seq": e.seq, "kind": e.kind, "order_id": e.order_id,
                           "at": e.at, "payload": payload.decode()}
                else:
                    row, why = _event_fields(e)
                    if row is None:
                        self.count("events_unusable")
                        log.warning("store %s: %s: the batch is acknowledged up to it", store_id, why)
                        break
                ids.append(row["event_id"])  # acknowledged as the store sent it
                unfit = _unstorable(row)
                if unfit:
                    why = f"{why}; {unfit}" if why else unfit
                if why:
                    self.count("events_flagged")
                row["store_id"] = store_id
                row["received_at"] = now
                row["flagged"] = why
                rows.append(row)
            out.append(ids)
            if rows:
                work.append(((store_id, rows[0]["seq"], len(rows)), i, store_id, rows, on_new, authorization))
        return out, work

    def _store(self, out: list, work: list[tuple]) -> None:
        """Work items of :meth:`_rows` in one transaction of at most six
        statements whatever the number of batches and events: the tokens
        still good (a batch whose token is not gets Refused in ``out``),
        the events (``INSERT ... ON CONFLICT DO NOTHING RETURNING``: which
        are new), then of the new ones only the orders accepted and the
        states of the others (:meth:`_fold`), and the stores' counts. The
        batches go in by store and in the store's order, so two
        transactions wait for each other's rows in one order, never in a
        circle."""
        work = sorted(work, key=lambda w: w[:2])
        now = self.clock()
        cols = ("store_id", "event_id", "seq", "kind", "order_id", "at", "payload", "received_at", "flagged")
        marks = "(" + ", ".join([self.p] * len(cols)) + ")"
        if not self.pg:  # SQLite: the write lock from the start (a read first could not become a write after another's)
            self.db.connect(reuse_if_open=True)
        with self.tx() if self.pg else self.db.atomic("IMMEDIATE"):
            hashes = {token_hash(w[5][7:].strip()) for w in work if w[5] is not None}
            if hashes:
                good = {h: (role, subject) for h, role, subject in self.sql(
                    f"SELECT token_hash, role, subject FROM api_token WHERE token_hash IN "
                    f"({', '.join('?' * len(hashes))}) AND revoked_at IS NULL", tuple(hashes))}
                kept = []
                for w in work:
                    if w[5] is not None:
                        h = token_hash(w[5][7:].strip())
                        who = good.get(h)
                        if who is None or (who[0] != "admin" and who != ("store", w[2])):
                            self._tokens.pop(h, None)
                            self.count("unauthorized")
                            out[w[1]] = Refused(401, "unauthorized",
                                                "the token is not known, was revoked, or may not do this")
                            continue
                    kept.append(w)
                work = kept
            rows = [r for w in work for r in w[3]]
            received = len(rows)
            fresh: set[tuple[str, str]] = set()
            step = 2000 if self.pg else 500
            for i in range(0, len(rows), step):
                part = rows[i:i + step]
                if self.pg:  # one parameter, the rows as JSON: psycopg2 quotes 9 parameters an event slowly
                    got = self.db.execute_sql(_PG_INSERT_EVENTS, (msgspec.json.encode(part).decode(),)).fetchall()
                else:
                    got = self.db.execute_sql(
                        f"INSERT INTO event ({', '.join(cols)}) VALUES {', '.join([marks] * len(part))} "
                        "ON CONFLICT (store_id, event_id) DO NOTHING RETURNING store_id, event_id",
                        [r[c] for r in part for c in cols]).fetchall()
                fresh.update(tuple(g) for g in got)
            new_all: list[dict] = []
            news: list[list[dict]] = []
            stores: dict[str, list] = {}  # store -> [new events, the last one's time]
            for w in work:
                new = []
                for r in w[3]:
                    key = (r["store_id"], r["event_id"])
                    if key in fresh:
                        fresh.discard(key)  # an id twice (in a batch, or in two of the group): new once
                        new.append(r)
                new_all += new
                news.append(new)
                st = stores.setdefault(w[2], [0, None])
                st[0] += len(new)
                if new:
                    st[1] = new[-1]["at"]
            if new_all:
                self._fold(work[0][2], new_all)
                for w, new in zip(work, news):
                    if new and w[4] is not None:
                        w[4](new)
            values = ", ".join(["(" + ", ".join([self.p] * 3) + ")"] * len(stores))
            if stores:
                self.db.execute_sql(
                    "UPDATE chain_store SET events = events + v.column2, last_contact = " + self.p + ", "
                    f"last_event_at = COALESCE(v.column3, chain_store.last_event_at) FROM (VALUES {values}) AS v "
                    "WHERE chain_store.store_id = v.column1",
                    [now] + [v for sid, (n, at) in stores.items() for v in (sid, n, at)])
        self.count("events_stored", len(new_all))
        self.count("events_duplicate", received - len(new_all))

    def _fold(self, store_id: str, rows: list[dict]) -> None:
        """The new events into ``store_order``: an order's number, day,
        channel, total and the times of its states, in two statements
        whatever the number of orders (of one store or several: each row
        names its store; ``store_id`` for a row that does not).

        The same as taking the events one by one (an ``order.accepted``
        inserts the order's row unless there is one; a state event updates
        the row if there is one): an order accepted here is inserted with
        the states that follow its acceptance already applied; every other
        order's row, if it exists, takes its events' last state and last
        time of each kind. So an order whose row was there before (accepted
        in an earlier batch, or its acceptance a duplicate) is updated, a
        new one is not updated again, and a state event before any
        acceptance changes nothing."""
        orders: dict[tuple[str, str], list] = {}
        """(store, order) -> [the row to insert or None, then for a row
        already there: state, ready_at, completed_at, voided_at (None:
        unchanged)]"""
        for r in rows:
            kind, oid = r["kind"], r["order_id"]
            if not oid or r["flagged"]:
                continue
            key = (r.get("store_id") or store_id, oid)
            if kind == "order.accepted":
                f = orders.get(key)
                if f is None:
                    f = orders[key] = [None, None, None, None, None]
                if f[0] is None:  # a second acceptance changes nothing
                    f[0] = _accepted_row(key[0], oid, r)
            else:
                st = _STATES.get(kind)
                if st is None:
                    continue
                f = orders.get(key)
                if f is None:
                    f = orders[key] = [None, None, None, None, None]
                state, col = st
                f[1] = state
                if col is not None:
                    f[2 + col] = r["at"]
                if f[0] is not None:  # after its acceptance here: the new row has it
                    f[0][6] = state
                    if col is not None:
                        f[0][8 + col] = r["at"]
        inserted: set[tuple[str, str]] = set()
        ins = [f[0] for f in orders.values() if f[0] is not None]
        for i in range(0, len(ins), 500):
            part = ins[i:i + 500]
            values = ", ".join(["(" + ", ".join([self.p] * 11) + ")"] * len(part))
            got = self.db.execute_sql(
                "INSERT INTO store_order (store_id, order_id, number, business_date, channel, total, state, "
                f"accepted_at, ready_at, completed_at, voided_at) VALUES {values} "
                "ON CONFLICT (store_id, order_id) DO NOTHING RETURNING store_id, order_id",
                [v for a in part for v in a])
            inserted.update(tuple(g) for g in got.fetchall())
        upd = [(*key, f[1], f[2], f[3], f[4]) for key, f in orders.items() if f[1] is not None and key not in inserted]
        for i in range(0, len(upd), 500):
            part = upd[i:i + 500]
            values = ", ".join(["(" + ", ".join([self.p] * 6) + ")"] * len(part))
            self.db.execute_sql(
                "UPDATE store_order SET state = v.column3, ready_at = COALESCE(v.column4, store_order.ready_at), "
                "completed_at = COALESCE(v.column5, store_order.completed_at), "
                f"voided_at = COALESCE(v.column6, store_order.voided_at) FROM (VALUES {values}) AS v "
                "WHERE store_order.store_id = v.column1 AND store_order.order_id = v.column2",
                [v for u in part for v in u])

    def events(self, store_id: str | None = None, after: int = 0, limit: int = 100_000) -> list[dict]:
        q = "SELECT id, store_id, event_id, seq, kind, order_id, at, received_at, flagged FROM event WHERE id > ?"
        args: list = [after]
        if store_id is not None:
            q, args = q + " AND store_id = ?", args + [store_id]
        with self.tx():
            rows = self.sql(q + " ORDER BY id LIMIT ?", args + [limit])
        keys = ("arrival", "store_id", "event_id", "seq", "kind", "order_id", "at", "received_at", "flagged")
        return [dict(zip(keys, r)) for r in rows]

    def payloads(self, store_id: str, kinds: tuple[str, ...]) -> list[dict]:
        marks = ", ".join("?" * len(kinds))
        with self.tx():
            rows = self.sql(f"SELECT kind, payload FROM event WHERE store_id = ? AND kind IN ({marks}) ORDER BY id",
                            (store_id, *kinds))
        return [{"kind": k, **msgspec.json.decode(p)} for k, p in rows]

    # --------------------------------------------------------------- status
    def report_status(self, store_id: str, backlog: int, oldest_pending_at: str | None, alerts: list,
                      details: dict) -> None:
        now = self.clock()
        with self.tx():
            self.sql("INSERT INTO store_status (store_id, reported_at, backlog, oldest_pending_at, alerts, details) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (store_id) DO UPDATE SET reported_at = excluded.reported_at, "
                     "backlog = excluded.backlog, oldest_pending_at = excluded.oldest_pending_at, "
                     "alerts = excluded.alerts, details = excluded.details",
                     (store_id, now, backlog, oldest_pending_at, msgspec.json.encode(alerts).decode(),
                      msgspec.json.encode(details).decode()))
            self.sql("UPDATE chain_store SET last_contact = ? WHERE store_id = ?", (now, store_id))

    # ------------------------------------------------------ menus and stock
    def publish_menu(self, body: bytes, by: str = "") -> str:
        """A new chain menu (checked by the caller); its version. The same
        version again with the same body is a no-op; with another body it is
        refused: a version names one menu for good."""
        version = msgspec.json.decode(body)["version"]
        with self.tx():
            got = self.sql("SELECT body FROM menu_release WHERE version = ?", (version,))
            if got:
                if got[0][0] != body.decode():
                    raise Refused(409, "version_taken",
                                  f"menu version {version} was published with other contents: give it a new version")
                return version
            self.sql("INSERT INTO menu_release (version, body, published_at, published_by) VALUES (?, ?, ?, ?)",
                     (version, body.decode(), self.clock(), by))
            for (sid,) in self.sql("SELECT store_id FROM chain_store WHERE revoked_at IS NULL"):
                self.wake(sid)
        return version

    def chain_menu(self) -> tuple[str, str] | None:
        with self.tx():
            rows = self.sql("SELECT version, body FROM menu_release ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None

    def menu_versions(self, store_id: str) -> tuple[str | None, int]:
        """The chain menu's newest version and the store's revision of its own
        changes (0: none), read without the menus themselves."""
        with self.tx():
            chain = self.sql("SELECT version FROM menu_release ORDER BY id DESC LIMIT 1")
            own = self.sql("SELECT rev FROM store_menu WHERE store_id = ?", (store_id,))
        return (chain[0][0] if chain else None), (own[0][0] if own else 0)

    def menu_release(self, version: str) -> str:
        with self.tx():
            return self.sql("SELECT body FROM menu_release WHERE version = ?", (version,))[0][0]

    def set_store_menu(self, store_id: str, overrides: dict) -> int:
        """The store's prices, availability and additions over the chain's
        menu; its revision number."""
        with self.tx():
            got = self.sql("SELECT rev FROM store_menu WHERE store_id = ?", (store_id,))
            rev = (got[0][0] if got else 0) + 1
            self.sql("INSERT INTO store_menu (store_id, rev, body, updated_at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (store_id) DO UPDATE SET rev = excluded.rev, body = excluded.body, "
                     "updated_at = excluded.updated_at",
                     (store_id, rev, msgspec.json.encode(overrides).decode(), self.clock()))
        return rev

    def store_menu(self, store_id: str) -> tuple[int, str] | None:
        with self.tx():
            rows = self.sql("SELECT rev, body FROM store_menu WHERE store_id = ?", (store_id,))
        return rows[0] if rows else None

    def set_stock(self, store_id: str, version: str, body: bytes) -> None:
        with self.tx():
            self.sql("INSERT INTO store_stock (store_id, version, body, updated_at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (store_id) DO UPDATE SET version = excluded.version, body = excluded.body, "
                     "updated_at = excluded.updated_at", (store_id, version, body.decode(), self.clock()))

    def stock(self, store_id: str) -> tuple[str, str] | None:
        with self.tx():
            rows = self.sql("SELECT version, body FROM store_stock WHERE store_id = ?", (store_id,))
        return rows[0] if rows else None

    # ------------------------------------------------------------ pre-orders
    def add_preorders(self, store_id: str, preorders: list[dict]) -> int:
        n = 0
        with self.tx():
            for p in preorders:
                got = self.sql("INSERT INTO preorder (store_id, order_id, body, created_at) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (store_id, order_id) DO NOTHING RETURNING id",
                               (store_id, p["order"]["order_id"], msgspec.json.encode(p).decode(), self.clock()))
                n += len(got)
        return n

    def preorders(self, store_id: str, after: int) -> tuple[list[str], int]:
        with self.tx():
            rows = self.sql("SELECT id, body FROM preorder WHERE store_id = ? AND id > ? ORDER BY id LIMIT 500",
                            (store_id, after))
        return [b for _, b in rows], (rows[-1][0] if rows else after)

    # ------------------------------------------------- payment notifications
    def add_notification(self, store_id: str, body: str) -> int:
        """Keep a gateway notification as it came, numbered in the store's
        stream (the store's row is locked while it takes the next number)."""
        with self.tx():
            got = self.sql("UPDATE chain_store SET notify_seq = notify_seq + 1 WHERE store_id = ? "
                           "RETURNING notify_seq", (store_id,))
            if not got:
                raise Refused(404, "unknown_store", f"no store {store_id} in this chain")
            seq = got[0][0]
            self.sql("INSERT INTO paygate_notification (store_id, seq, body, received_at) VALUES (?, ?, ?, ?)",
                     (store_id, seq, body, self.clock()))
            self.wake(store_id)
        self.count("paygate.notifications")
        return seq

    def notifications(self, store_id: str | None, after: int = 0, limit: int = 100) -> list[dict]:
        q = "SELECT store_id, seq, body, received_at FROM paygate_notification WHERE seq > ?"
        args: list = [after]
        if store_id is not None:
            q, args = q + " AND store_id = ?", args + [store_id]
        with self.tx():
            rows = self.sql(q + " ORDER BY store_id, seq LIMIT ?", args + [limit])
        return [{"store": st, "seq": seq, "body": body, "received_at": at} for st, seq, body, at in rows]
