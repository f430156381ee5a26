"""A reference cloud receiver for the demo and the tests (docs/cloud-api.md).

    restobox cloud-dev [--port 8700] [--db cloud.db] [--token dev-token]

A small ASGI app (Starlette, served by uvicorn) that does what a chain's
cloud must do: checks the store's token, stores each event id once, in the
order it arrives, and acknowledges what it stored; serves a menu. It can be
told to misbehave, for tests and for trying a store against a bad network:

    POST /_dev/mode  {"mode": "fail", "count": 3}

modes: ``ok``; ``fail`` (HTTP 500); ``hang`` (never answers); ``slow``
(answers after ``slow_s``); ``close`` (closes the connection in the middle
of its answer, after storing); ``partial`` (stores and acknowledges only the
first half of a batch); ``bad_json``; ``bad_schema`` (valid JSON, wrong
shape, after storing); ``unauthorized`` (401). ``count`` applies the mode to
that many requests, then goes back to ``ok`` (0: until changed).
``GET /_dev/events`` lists what was stored, in arrival order;
``GET /_dev/loyalty`` each member's points summed from the loyalty events;
``POST /_dev/menu`` (a menu's JSON) changes the menu it serves;
``POST /_dev/preorders`` (a list of pre-orders) queues pre-orders;
``POST /_dev/stock`` sets the stock counts it serves.

The payment gateway's notifications pass through it: the gateway posts
each to ``POST /v1/paygate/notify/{store}`` (no store token: the gateway
calls it; the cloud keeps the raw body and does not check its signature,
the store does), answered ``{"code": "SUCCESS"}`` once stored, and the
store's sync service fetches them in order with
``GET /v1/stores/{store}/paygate/notifications?after=<cursor>&wait=<s>``,
held open until one comes or ``wait`` (at most 30 s) is over. The modes
apply to that fetch too (not to the gateway's posts).
``GET /_dev/paygate`` lists the notifications received.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from pathlib import Path

import msgspec

from restobox.cloudapi import NOTIFY_MAX_BYTES, EventAck, EventBatch, notification_fault

log = logging.getLogger("restobox.dev.cloud_dev")

MODES = ("ok", "fail", "hang", "slow", "close", "partial", "bad_json", "bad_schema", "unauthorized")

_batch = msgspec.json.Decoder(EventBatch)


NOTIFY_WAIT_MAX_S = 30.0
"""The longest a store's fetch of notifications is held open."""
NOTIFY_BATCH = 100


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


class Mode(msgspec.Struct, forbid_unknown_fields=True):
    mode: str = "ok"
    count: int = 0
    slow_s: float = 2.0


class ModeDial:
    """The fault mode in force (``mode``); :meth:`take` hands it to one
    request, and a counted mode is spent by one (``ok`` after its last)."""

    def __init__(self) -> None:
        self.mode = Mode()

    def take(self) -> Mode:
        m = self.mode
        if m.mode != "ok" and m.count:
            left = m.count - 1
            self.mode = msgspec.structs.replace(m, count=left) if left else Mode()
        return m


async def misbehave(m: Mode):
    """The answer of a fault mode that answers before the work is done
    (None: go on; ``slow`` waits ``slow_s`` first, ``hang`` never answers)."""
    from starlette.responses import JSONResponse, Response

    if m.mode == "unauthorized":
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    if m.mode == "fail":
        return JSONResponse({"error": "internal"}, status_code=500)
    if m.mode == "hang":
        await asyncio.Event().wait()  # until the client gives up or the server stops
    if m.mode == "slow":
        await asyncio.sleep(m.slow_s)  # the fault itself: an answer this late
    if m.mode == "bad_json":
        return Response(b"<html>502 Bad Gateway</html>", status_code=200, media_type="application/json")
    return None


class CloudStore:
    """What the dev cloud received (SQLite; one lock, one connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode = wal")
        self.con.execute("""CREATE TABLE IF NOT EXISTS event (
            arrival INTEGER PRIMARY KEY AUTOINCREMENT, store_id TEXT NOT NULL, event_id TEXT NOT NULL,
            seq INTEGER NOT NULL, kind TEXT NOT NULL, order_id TEXT, at TEXT NOT NULL, payload TEXT NOT NULL,
            received_at REAL NOT NULL, UNIQUE (store_id, event_id))""")
        # the payment gateway's notifications, numbered per store in arrival order
        self.con.execute("""CREATE TABLE IF NOT EXISTS paygate_notification (
            store_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, received_at REAL NOT NULL,
            PRIMARY KEY (store_id, seq))""")
        self.con.execute("""CREATE TABLE IF NOT EXISTS stat (key TEXT PRIMARY KEY, value INTEGER NOT NULL)""")
        self.con.commit()
        self.lock = threading.Lock()

    def store(self, batch: EventBatch, upto: int) -> list[str]:
        """Store the first ``upto`` events of the batch (each id once);
        returns their ids (new and already stored alike)."""
        now = time.time()
        ids = []
        with self.lock, self.con:
            for e in batch.events[:upto]:
                cur = self.con.execute(
                    "INSERT OR IGNORE INTO event (store_id, event_id, seq, kind, order_id, at, payload, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch.store_id, e.event_id, e.seq, e.kind, e.order_id, e.at,
                     msgspec.json.encode(e.payload).decode(), now))
                self._count("duplicates" if cur.rowcount == 0 else "stored")
                ids.append(e.event_id)
        return ids

    def _count(self, key: str, n: int = 1) -> None:
        self.con.execute("INSERT INTO stat (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value", (key, n))

    def count(self, key: str) -> None:
        with self.lock, self.con:
            self._count(key)

    def events(self, store_id: str | None = None) -> list[dict]:
        with self.lock:
            q = "SELECT arrival, store_id, event_id, seq, kind, order_id FROM event"
            rows = self.con.execute(q + (" WHERE store_id = ?" if store_id else "") + " ORDER BY arrival",
                                    (store_id,) if store_id else ()).fetchall()
        return [dict(zip(("arrival", "store_id", "event_id", "seq", "kind", "order_id"), r)) for r in rows]

    def loyalty(self, store_id: str | None = None) -> dict[str, dict]:
        """Each member's points as the cloud reconciles them: the sum of the
        loyalty.* events it stored (each ledger entry once, by event id)."""
        q = "SELECT payload FROM event WHERE kind LIKE 'loyalty.%'"
        with self.lock:
            rows = self.con.execute(q + (" AND store_id = ?" if store_id else "") + " ORDER BY arrival",
                                    (store_id,) if store_id else ()).fetchall()
        out: dict[str, dict] = {}
        for (raw,) in rows:
            e = msgspec.json.decode(raw)
            m = out.setdefault(e["member"], {"member_masked": e["member_masked"], "balance": 0, "entries": 0})
            m["balance"] += e["points"]
            m["entries"] += 1
        return out

    def add_notification(self, store_id: str, body: str) -> int:
        """Keep a notification's raw body (committed before this returns);
        its sequence number in the store's stream."""
        with self.lock, self.con:
            (last,) = self.con.execute("SELECT COALESCE(MAX(seq), 0) FROM paygate_notification WHERE store_id = ?",
                                       (store_id,)).fetchone()
            self.con.execute("INSERT INTO paygate_notification (store_id, seq, body, received_at) VALUES (?, ?, ?, ?)",
                             (store_id, last + 1, body, time.time()))
            self._count("paygate.notifications")
        return last + 1

    def notifications(self, store_id: str | None, after: int = 0, limit: int = 100) -> list[dict]:
        q = "SELECT store_id, seq, body, received_at FROM paygate_notification WHERE seq > ?"
        args: tuple = (after,)
        if store_id is not None:
            q, args = q + " AND store_id = ?", args + (store_id,)
        with self.lock:
            rows = self.con.execute(q + " ORDER BY store_id, seq LIMIT ?", args + (limit,)).fetchall()
        return [{"store": st, "seq": seq, "body": body, "received_at": _iso(at)} for st, seq, body, at in rows]

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(self.con.execute("SELECT key, value FROM stat").fetchall())


def make_app(db_path: str | Path, token: str | None = "dev-token", menu_json: bytes | None = None):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    store = CloudStore(db_path)
    dial = ModeDial()
    take_mode = dial.take

    def authorized(request: Request) -> bool:
        return token is None or request.headers.get("authorization") == f"Bearer {token}"

    async def events(request: Request):
        if not authorized(request):
            store.count("unauthorized")
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.body()
        try:
            batch = _batch.decode(body)
        except msgspec.DecodeError as exc:
            store.count("bad_requests")
            return JSONResponse({"error": "bad_request", "detail": str(exc)}, status_code=400)
        if batch.store_id != request.path_params["store"]:
            return JSONResponse({"error": "store_mismatch"}, status_code=400)
        m = take_mode()
        store.count(f"requests.{m.mode}")
        bad = await misbehave(m)
        if bad is not None:
            return bad
        upto = len(batch.events) // 2 if m.mode == "partial" else len(batch.events)
        ids = store.store(batch, upto)
        if m.mode == "bad_schema":
            return JSONResponse({"ok": True, "stored": len(ids)})
        payload = msgspec.json.encode(EventAck(acked=tuple(ids)))
        if m.mode == "close":
            return Truncated(payload)
        return Response(payload, media_type="application/json")

    from restobox.data import sample_menu_bytes

    # Versioned documents the chain publishes for the store: served with
    # their version as ETag; set (any bytes: a test may send a bad one)
    # through /_dev/<name>.
    docs: dict[str, bytes | None] = {"menu": menu_json or sample_menu_bytes(), "stock": None}

    def version_of(body: bytes) -> str:
        try:
            return str(msgspec.json.decode(body).get("version", ""))
        except (msgspec.DecodeError, AttributeError):
            return ""

    def serve_doc(name: str):
        async def get(request: Request):
            if not authorized(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            body = docs[name]
            if body is None:
                return JSONResponse({"error": f"no {name} for this store"}, status_code=404)
            etag = f'"{version_of(body)}"'
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers={"ETag": etag})
            return Response(body, media_type="application/json", headers={"ETag": etag})

        async def put(request: Request):
            docs[name] = await request.body()
            return JSONResponse({"version": version_of(docs[name])})
        return get, put

    menu, set_menu = serve_doc("menu")
    get_stock, set_stock = serve_doc("stock")

    preorders: list[dict] = []  # in arrival order; the cursor is how many a store has seen

    async def get_preorders(request: Request):
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        after = request.query_params.get("after", "0")
        start = int(after) if after.isdigit() else 0
        return JSONResponse({"v": 1, "preorders": preorders[start:], "cursor": str(len(preorders))})

    async def add_preorders(request: Request):
        """The chain's app took pre-orders (a list of Preorder objects)."""
        got = msgspec.json.decode(await request.body())
        preorders.extend(got if isinstance(got, list) else [got])
        return JSONResponse({"preorders": len(preorders)})

    # a new notification wakes every fetch waiting for one: each waits on
    # the event current when it looked, and a new one replaces it
    arrived = {"event": None}

    def arrival_event() -> asyncio.Event:
        if arrived["event"] is None:
            arrived["event"] = asyncio.Event()
        return arrived["event"]

    async def paygate_notify(request: Request):
        """The gateway's notification: kept as it came, then SUCCESS. A body
        that is not a JSON object is refused (the gateway tries again)."""
        store_id = request.path_params["store"]
        if int(request.headers.get("content-length") or 0) > NOTIFY_MAX_BYTES:
            store.count("paygate.too_large")
            return JSONResponse({"code": "FAIL", "message": f"larger than {NOTIFY_MAX_BYTES} bytes"},
                                status_code=413)
        body = await request.body()
        why = notification_fault(body) or (f"larger than {NOTIFY_MAX_BYTES} bytes" if len(body) > NOTIFY_MAX_BYTES
                                           else None)
        if why:
            store.count("paygate.bad_notifications")
            return JSONResponse({"code": "FAIL", "message": why}, status_code=400)
        store.add_notification(store_id, body.decode("utf-8", "replace"))
        ev = arrival_event()
        arrived["event"] = None
        ev.set()
        return JSONResponse({"code": "SUCCESS"})

    async def paygate_notifications(request: Request):
        """The store's fetch: the notifications after its cursor, waiting up
        to ``wait`` seconds for one when there are none."""
        if not authorized(request):
            store.count("unauthorized")
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        store_id = request.path_params["store"]
        after_s = request.query_params.get("after", "0")
        after = int(after_s) if after_s.isdigit() else 0
        try:
            wait = min(NOTIFY_WAIT_MAX_S, max(0.0, float(request.query_params.get("wait", "0"))))
        except ValueError:
            wait = 0.0
        m = take_mode()
        store.count(f"paygate.fetch.{m.mode}")
        bad = await misbehave(m)
        if bad is not None:
            return bad
        deadline = time.monotonic() + wait
        while True:
            ev = arrival_event()
            got = store.notifications(store_id, after, NOTIFY_BATCH)
            left = deadline - time.monotonic()
            if got or left <= 0:
                break
            try:
                await asyncio.wait_for(ev.wait(), left)
            except asyncio.TimeoutError:
                pass
        if m.mode == "bad_schema":
            return JSONResponse({"ok": True, "notifications": len(got)})
        payload = msgspec.json.encode({
            "v": 1, "notifications": [{k: n[k] for k in ("seq", "body", "received_at")} for n in got],
            "cursor": str(got[-1]["seq"] if got else after)})
        if m.mode == "close":
            return Truncated(payload)
        return Response(payload, media_type="application/json")

    async def dev_paygate(request: Request):
        return JSONResponse(store.notifications(request.query_params.get("store"), 0, 1_000_000))

    async def set_mode(request: Request):
        try:
            m = msgspec.json.decode(await request.body(), type=Mode)
        except msgspec.DecodeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if m.mode not in MODES:
            return JSONResponse({"error": f"mode is one of {', '.join(MODES)}"}, status_code=400)
        dial.mode = m
        return JSONResponse(msgspec.to_builtins(m))

    async def status(request: Request):
        """The store's heartbeat (docs/cloud-api.md): taken and counted."""
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        await request.body()
        store.count("status_reports")
        return JSONResponse({"v": 1})

    async def dev_events(request: Request):
        return JSONResponse(store.events(request.query_params.get("store")))

    async def dev_loyalty(request: Request):
        return JSONResponse(store.loyalty(request.query_params.get("store")))

    async def dev_stats(request: Request):
        return JSONResponse(store.stats())

    app = Starlette(routes=[
        Route("/v1/stores/{store}/events", events, methods=["POST"]),
        Route("/v1/stores/{store}/menu", menu, methods=["GET"]),
        Route("/_dev/mode", set_mode, methods=["POST"]),
        Route("/_dev/menu", set_menu, methods=["POST"]),
        Route("/v1/stores/{store}/preorders", get_preorders, methods=["GET"]),
        Route("/_dev/preorders", add_preorders, methods=["POST"]),
        Route("/v1/stores/{store}/stock", get_stock, methods=["GET"]),
        Route("/_dev/stock", set_stock, methods=["POST"]),
        Route("/_dev/events", dev_events, methods=["GET"]),
        Route("/_dev/stats", dev_stats, methods=["GET"]),
        Route("/_dev/loyalty", dev_loyalty, methods=["GET"]),
        Route("/v1/paygate/notify/{store}", paygate_notify, methods=["POST"]),
        Route("/v1/stores/{store}/paygate/notifications", paygate_notifications, methods=["GET"]),
        Route("/_dev/paygate", dev_paygate, methods=["GET"]),
        Route("/v1/stores/{store}/status", status, methods=["POST"]),
    ])
    app.state.store = store
    return app


class Truncated:
    """An answer that promises its whole length and stops half way: the
    client sees the connection close in the middle of the answer."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status = body, status

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self.body) + 100).encode())]})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        raise ConnectionAbortedError("closing the connection in the middle of an answer (mode close)")


def serve(port: int, db_path: str, token: str | None, host: str = "127.0.0.1") -> int:
    from restobox.dev import simkit

    app = make_app(db_path, token)
    log.info("dev cloud on http://%s:%d (store %s)", host, port, db_path)
    return simkit.run(app, host, port)
