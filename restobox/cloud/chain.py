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
from typing import Any, Callable, Iterable

import msgspec
import peewee as pw

from restobox.cloud import db as cdb

log = logging.getLogger("restobox.cloud")

ROLES = ("store", "owner", "admin")
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


class Chain:
    def __init__(self, database: pw.Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = database
        self.pg = cdb.is_postgres(database)
        self.clock = clock
        self.p = database.param
        self.counters: Counter = Counter()  # this process's, for its log and /v1/admin/stats
        self._lock = threading.Lock()

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

    def authenticate(self, authorization: str | None, *roles: str) -> tuple[str, str]:
        """(role, subject) of a ``Bearer`` token that is not revoked and has
        one of ``roles``; Refused (401) otherwise."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Refused(401, "unauthorized", "this needs a token: Authorization: Bearer <token>")
        with self.tx():
            rows = self.sql("SELECT role, subject FROM api_token WHERE token_hash = ? AND revoked_at IS NULL",
                            (token_hash(authorization[7:].strip()),))
        if not rows or rows[0][0] not in roles:
            self.count("unauthorized")
            raise Refused(401, "unauthorized", "the token is not known, was revoked, or may not do this")
        return rows[0]

    def store_for(self, authorization: str | None, store_id: str) -> None:
        """A store's token, for its own routes only (admins may act for any)."""
        role, subject = self.authenticate(authorization, "store", "admin")
        if role == "store" and subject != store_id:
            self.count("wrong_store")
            raise Refused(403, "wrong_store", f"this token is store {subject}'s, not {store_id}'s")

    def touch(self, store_id: str) -> None:
        """The store was heard from (at most one write per store every 5 s)."""
        now = self.clock()
        with self.tx():
            self.sql("UPDATE chain_store SET last_contact = ? WHERE store_id = ? "
                     "AND (last_contact IS NULL OR last_contact < ?)", (now, store_id, now - 5))

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
    def ingest(self, store_id: str, events: list, on_new: Callable[[list[dict]], None] | None = None) -> list[str]:
        """Store a batch's events in order, each (store, event id) once; the
        ids stored (new and before alike), a prefix of the batch: it stops
        at the first event without a usable id. An event with other faults
        is stored and flagged (a refused event would stop the store's
        stream for good). ``on_new(rows)`` runs in the same transaction with
        the rows that were new."""
        rows, ids = [], []
        now = self.clock()
        for e in events:
            row, why = _event_fields(e)
            if row is None:
                self.count("events_unusable")
                log.warning("store %s: %s: the batch is acknowledged up to it", store_id, why)
                break
            if why:
                self.count("events_flagged")
            row.update(store_id=store_id, received_at=now, flagged=why)
            rows.append(row)
            ids.append(row["event_id"])
        if not rows:
            return ids
        cols = ("store_id", "event_id", "seq", "kind", "order_id", "at", "payload", "received_at", "flagged")
        with self.tx():
            new: list[dict] = []
            for i in range(0, len(rows), 500):
                part = rows[i:i + 500]
                values = ", ".join(["(" + ", ".join([self.p] * len(cols)) + ")"] * len(part))
                args = [r[c] for r in part for c in cols]
                got = self.sql(f"INSERT INTO event ({', '.join(cols)}) VALUES {values} "
                               "ON CONFLICT (store_id, event_id) DO NOTHING RETURNING event_id", args)
                fresh = {g[0] for g in got}
                new += [r for r in part if r["event_id"] in fresh]
            if new:
                self._fold(store_id, new)
                if on_new is not None:
                    on_new(new)
            self.sql("UPDATE chain_store SET events = events + ?, last_contact = ?, "
                     "last_event_at = COALESCE(?, last_event_at) WHERE store_id = ?",
                     (len(new), now, new[-1]["at"] if new else None, store_id))
        self.count("events_stored", len(new))
        self.count("events_duplicate", len(rows) - len(new))
        return ids

    def _fold(self, store_id: str, rows: list[dict]) -> None:
        """The new events into ``store_order``: an order's number, day,
        channel, total and the times of its states."""
        accepted: list[tuple] = []

        def flush() -> None:
            if accepted:
                values = ", ".join(["(" + ", ".join([self.p] * 8) + ")"] * len(accepted))
                self.sql("INSERT INTO store_order (store_id, order_id, number, business_date, channel, total, "
                         f"state, accepted_at) VALUES {values} ON CONFLICT (store_id, order_id) DO NOTHING",
                         [v for a in accepted for v in a])
                accepted.clear()

        for r in rows:
            kind, oid = r["kind"], r["order_id"]
            if not oid or r["flagged"]:
                continue
            if kind == "order.accepted":
                p = msgspec.json.decode(r["payload"])
                o = p.get("order") if isinstance(p.get("order"), dict) else {}
                total = o.get("total")
                accepted.append((store_id, oid, o.get("number") if isinstance(o.get("number"), int) else None,
                                 str(o.get("business_date") or r["at"][:10]), str(p.get("channel") or ""),
                                 total if isinstance(total, int) else 0, str(p.get("state") or "accepted"),
                                 str(o.get("accepted_at") or r["at"])))
            elif kind in ("order.released", "order.in_progress", "order.ready", "order.completed", "order.voided"):
                flush()  # the order's row first: events come in the store's order
                state = kind.split(".", 1)[1]
                state = "accepted" if state == "released" else state
                col = {"ready": ", ready_at = ?", "completed": ", completed_at = ?", "voided": ", voided_at = ?"}
                extra = col.get(state, "")
                self.sql(f"UPDATE store_order SET state = ?{extra} WHERE store_id = ? AND order_id = ?",
                         (state, r["at"], store_id, oid) if extra else (state, store_id, oid))
        flush()

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
