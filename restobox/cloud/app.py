"""``restobox cloud``: the chain's cloud, as an ASGI app (Starlette).

The store API of docs/cloud-api.md for every store of the chain, the
payment gateway's notifications, the chain's menu and the stores' own
changes to it, the owner's dashboard and the delivery platforms
(restobox/cloud/delivery.py). Everything it knows is in the database: run
two or more processes behind one address and any of them answers any
request. Waiting requests (a store's fetch of notifications and of delivery
orders) are woken across processes by PostgreSQL's NOTIFY.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Awaitable, Callable

import msgspec
import peewee as pw

from restobox.cloud import db as cdb
from restobox.cloud.chain import BatchIn, Chain, Refused
from restobox.cloud.config import CloudSection
from restobox.cloudapi import NOTIFY_MAX_BYTES, notification_fault

log = logging.getLogger("restobox.cloud.app")

EVENTS_MAX_BYTES = 16 * 1024 * 1024
"""A batch of 500 events is ~1 MB; a body larger than this is refused unread."""
WAIT_MAX_S = 30.0
"""The longest a store's fetch (notifications, delivery orders) is held open."""
NOTIFY_BATCH = 100
FALLBACK_POLL_S = 5.0
"""A waiting fetch looks again this often even without a wake-up."""


class Wakeups:
    """Requests waiting for something new for a store, in this process.
    ``wake(store)`` from any thread; on PostgreSQL a thread LISTENs for the
    other processes' NOTIFYs."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.events: dict[str, asyncio.Event] = {}
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    def event(self, store_id: str) -> asyncio.Event:
        self.loop = self.loop or asyncio.get_running_loop()
        ev = self.events.get(store_id)
        if ev is None:
            ev = self.events[store_id] = asyncio.Event()
        return ev

    def _set(self, store_id: str) -> None:
        ev = self.events.pop(store_id, None)
        if ev is not None:
            ev.set()

    def wake(self, store_id: str) -> None:
        if self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self._set, store_id)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    def listen(self, database: pw.Database) -> None:
        """Start the LISTEN thread (PostgreSQL only)."""
        if not cdb.is_postgres(database) or self._listener is not None:
            return
        self._listener = threading.Thread(target=self._listen, args=(database,), name="pg-listen", daemon=True)
        self._listener.start()

    def _listen(self, database: pw.PostgresqlDatabase) -> None:
        import select

        import psycopg2

        while not self._stop.is_set():
            try:
                con = psycopg2.connect(dbname=database.database, **database.connect_params)
                con.set_isolation_level(0)
                con.cursor().execute("LISTEN restobox_wake")
                while not self._stop.is_set():
                    if select.select([con], [], [], 1.0)[0]:
                        con.poll()
                        while con.notifies:
                            self.wake(con.notifies.pop(0).payload)
            except Exception as exc:  # the database went away: waiters fall back to polling, then again
                log.warning("listening for wake-ups failed (%s); trying again in 2 s", exc)
                self._stop.wait(2)

    def close(self) -> None:
        self._stop.set()


class EventWriter:
    """The stores' batches this process is answering, stored together:
    ``WRITERS`` threads each take every batch waiting (up to
    ``GROUP_EVENTS`` events) and store them in one transaction
    (``Chain.ingest_many``), then answer each (group commit, as the hub
    does with orders). A thousand stores posting what came in the last
    second then cost a few statements and one commit per round, not per
    store; a lone batch waits for no one.

    What waits is bounded in time: when the batches waiting would take
    more than ``BUSY_AFTER_S`` to store (at the rate the writers have been
    storing), or the oldest has waited that long, a new batch is refused
    before its body is read (503 ``busy``; the store sends it again after
    its backoff). After an outage a thousand stores sending their backlog
    at once would otherwise wait longer than their timeout (the sync
    service's ``timeout_s``, 10 s) and send again what the cloud was about
    to store. A batch whose store closed its connection before a writer
    took it is not stored at all (it will come again)."""

    WRITERS = 2
    """Two transactions at a time for each process on PostgreSQL (one is
    being committed while the next is filled); one on SQLite, a single
    writer anyway."""
    GROUP_EVENTS = 2000
    BUSY_AFTER_S = 5.0
    """Half the sync service's default timeout: what waits is answered
    before the store gives up, with room for a slow moment."""
    BUSY_MIN_BYTES = 4 << 20
    """Less than this waiting (about ten batches of 500 events) is never
    too much."""

    WATCH_AFTER_S = 1.0
    """A batch not stored after this long starts watching for its store
    closing the connection (not sooner: watching costs every batch)."""

    class Item:
        __slots__ = ("batch", "nbytes", "done", "loop", "since", "watch")

        def __init__(self, batch: tuple, nbytes: int, done: asyncio.Future, loop) -> None:
            self.batch, self.nbytes, self.done, self.loop = batch, nbytes, done, loop
            self.since = time.monotonic()
            self.watch: asyncio.Future | None = None

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.writers = self.WRITERS if chain.pg else 1
        self.waiting: collections.deque = collections.deque()
        self.waiting_bytes = 0
        self.stored = [0.0, 0.0]
        """Bytes stored and seconds spent storing them by a writer, both
        fading (×0.9 a group): their ratio is the writers' recent rate, led
        by the large groups of a busy moment rather than the small ones of
        a quiet one."""
        self.cv = threading.Condition()
        self.threads: list[threading.Thread] = []

    def busy(self, nbytes: int) -> bool:
        """Whether a batch of ``nbytes`` would wait more than ``BUSY_AFTER_S``."""
        with self.cv:
            if not self.waiting:
                return False
            if time.monotonic() - self.waiting[0].since > self.BUSY_AFTER_S:
                return True
            b, t = self.stored
            waiting = self.waiting_bytes + nbytes
            # a few batches are never refused on the rate alone (it is a guess after a quiet or a slow moment)
            return waiting > self.BUSY_MIN_BYTES and b > 0 and waiting * t / (b * self.writers) > self.BUSY_AFTER_S

    async def ingest(self, store_id: str, events: list, on_new, authorization: str | None, nbytes: int,
                     gone: Callable[[], Awaitable] | None = None) -> list[str] | None:
        """The batch's ids once stored; None if ``gone()`` (the store closed
        its connection: it gave up waiting) returned before a writer took
        the batch, which is then not stored."""
        loop = asyncio.get_running_loop()
        item = self.Item((store_id, events, on_new, authorization), nbytes, loop.create_future(), loop)
        with self.cv:
            self.waiting.append(item)
            self.waiting_bytes += nbytes
            if not self.threads:  # started with the first batch: the threads are daemons, the process's end ends them
                self.threads = [threading.Thread(target=self._run, name=f"event-writer-{i}", daemon=True)
                                for i in range(self.writers)]
                for t in self.threads:
                    t.start()
            self.cv.notify()
        timer = loop.call_later(self.WATCH_AFTER_S, self._watch, item, gone) if gone is not None else None
        try:
            got = await item.done
        finally:
            if timer is not None:
                timer.cancel()
            if item.watch is not None:
                item.watch.cancel()
        if isinstance(got, BaseException):
            raise got
        return got

    def _watch(self, item: "EventWriter.Item", gone: Callable[[], Awaitable]) -> None:
        async def watch() -> None:
            await gone()  # (the body read, the server's next message is the store going away)
            with self.cv:
                try:
                    self.waiting.remove(item)
                except ValueError:  # a writer has it: it is stored, answered to no one
                    return
                self.waiting_bytes -= item.nbytes
            self.chain.count("batches_abandoned")
            _settle(item.done, None)

        if not item.done.done():
            item.watch = asyncio.ensure_future(watch())

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.waiting:
                    self.cv.wait()
                group, n, nbytes = [], 0, 0
                while self.waiting and (not group or n + len(self.waiting[0].batch[1]) <= self.GROUP_EVENTS):
                    item = self.waiting.popleft()
                    group.append(item)
                    n += len(item.batch[1])
                    nbytes += item.nbytes
                self.waiting_bytes -= nbytes
            t = time.monotonic()
            try:
                answers = self.chain.ingest_many([item.batch for item in group])
            except BaseException as exc:  # every batch is answered, whatever happened
                log.exception("storing %d batches failed", len(group))
                answers = [exc] * len(group)
            took = time.monotonic() - t
            with self.cv:
                self.stored = [0.9 * self.stored[0] + nbytes, 0.9 * self.stored[1] + took]
            for item, answer in zip(group, answers):
                try:
                    item.loop.call_soon_threadsafe(_settle, item.done, answer)
                except RuntimeError:  # the loop is closed: shutting down
                    pass


def _settle(done: asyncio.Future, answer) -> None:
    if not done.done():
        done.set_result(answer)


def _json(data, status: int = 200, headers: dict | None = None):
    from starlette.responses import Response

    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json", headers=headers)


def _refused(r: Refused):
    return _json({"error": r.reason, "message": str(r)}, r.status)


def make_app(cfg: CloudSection, *, database: pw.Database | None = None, clock: Callable[[], float] = time.time):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from restobox.menu import MenuError

    database = database or cdb.connect(cfg.database, pool=cfg.pool)
    cdb.migrate(database)
    chain = Chain(database, clock=clock)
    chain.touch_every_s = min(chain.touch_every_s, cfg.offline_after_s / 4)
    wakeups = Wakeups()
    sqlite = not chain.pg

    def local_wake(store_id: str) -> None:
        if sqlite:  # one process: PostgreSQL's NOTIFY does it for every process otherwise
            wakeups.wake(store_id)

    def guarded(fn):
        """A route: Refused becomes its answer; the database's failures a 503
        the store retries (nothing half-done: each call is one transaction)."""
        async def endpoint(request: Request):
            try:
                return await fn(request)
            except Refused as r:
                return _refused(r)
            except pw.OperationalError as exc:
                chain.count("database_unavailable")
                log.error("database: %s", exc)
                return _json({"error": "database_unavailable", "message": "the cloud's database did not answer; "
                              "try again"}, 503)
        return endpoint

    async def store_auth(request: Request) -> str:
        store_id = request.path_params["store"]
        await run_in_threadpool(chain.store_for, request.headers.get("authorization"), store_id)
        return store_id

    async def admin_auth(request: Request) -> str:
        role, who = await run_in_threadpool(chain.authenticate, request.headers.get("authorization"), "admin")
        return who

    async def body_of(request: Request, limit: int) -> bytes:
        if int(request.headers.get("content-length") or 0) > limit:
            raise Refused(413, "too_large", f"larger than {limit} bytes")
        body = await request.body()
        if len(body) > limit:
            raise Refused(413, "too_large", f"larger than {limit} bytes")
        return body

    def json_of(body: bytes, what: str):
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            chain.count("bad_requests")
            raise Refused(400, "bad_json", f"{what} is not JSON: {exc}") from None

    # ----------------------------------------------------------- store API
    async def events(request: Request):
        """A store's batch: the token from this process's cache when it is
        there (no thread, no query: the batch's transaction checks it again,
        so a revoked token stores nothing), else from the database; then
        its transaction, shared with the other batches waiting
        (EventWriter)."""
        store_id = request.path_params["store"]
        authorization = request.headers.get("authorization")
        if not chain.store_for(authorization, store_id, cached=True, wait=False):
            await run_in_threadpool(chain.store_for, authorization, store_id, cached=True)
        nbytes = int(request.headers.get("content-length") or 0)
        if writer.busy(nbytes):  # before reading the body: refusing it costs next to nothing
            chain.count("batches_refused_busy")
            return _json({"error": "busy", "message": f"the cloud has more batches waiting than it stores in "
                          f"{writer.BUSY_AFTER_S:g} s: send this one again in a moment"}, 503,
                         headers={"Connection": "close"})  # (its body unread: the connection cannot carry on)
        raw = await body_of(request, EVENTS_MAX_BYTES)
        try:  # a batch that fits the contract: its payloads are kept as they came, not decoded
            got = batch_decoder.decode(raw)
            body, events = {"store_id": got.store_id}, got.events
        except (msgspec.ValidationError, msgspec.DecodeError):  # anything else: each event looked at on its own
            body = json_of(raw, "the batch")
            if not isinstance(body, dict) or not isinstance(body.get("events"), list):
                chain.count("bad_requests")
                raise Refused(400, "bad_batch", "the batch is an object with a list of events")
            events = body["events"]
        if body.get("store_id") != store_id:
            chain.count("bad_requests")
            raise Refused(400, "store_mismatch", f"the batch says store {body.get('store_id')!r}, the address {store_id}")
        ids = await writer.ingest(store_id, events, hooks.on_new_events(store_id), authorization, len(raw),
                                  gone=request.receive)  # (the body read, it answers only when the store goes)
        if ids is None:  # no one to answer
            return Response(status_code=499)
        return _json({"v": 1, "acked": ids})

    batch_decoder = msgspec.json.Decoder(BatchIn)
    writer = EventWriter(chain)

    # the stores' menus as served, by (chain version, store, revision): each
    # poll reads only the two versions; a menu is read and merged once
    menu_cache: dict[tuple, tuple[bytes, str]] = {}

    def store_menu(store_id: str) -> tuple[bytes, str] | None:
        """The store's menu and its version (None: the chain has published none)."""
        version, rev = chain.menu_versions(store_id)
        if version is None:
            return None
        key = (version, store_id, rev)
        got = menu_cache.get(key)
        if got is None:
            from restobox.cloud.menus import Overrides, merge

            body = chain.menu_release(version)
            own = chain.store_menu(store_id) if rev else None
            if own is None:
                got = (body.encode(), version)
            else:
                m = merge(body, store_id, own[0], msgspec.json.decode(own[1], type=Overrides))
                got = (m.to_json(), m.version)
            if len(menu_cache) > 2048:
                menu_cache.clear()
            menu_cache[key] = got
        return got

    def versioned(request: Request, body: bytes | None, version: str, what: str):
        if body is None:
            return _json({"error": "none", "message": f"no {what} for this store"}, 404)
        etag = f'"{version}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    async def menu(request: Request):
        store_id = await store_auth(request)
        try:
            got = await run_in_threadpool(store_menu, store_id)
        except MenuError as exc:  # the store's changes no longer fit the chain's menu (publish refuses this)
            chain.count("store_menu_invalid")
            raise Refused(409, "menu_invalid", f"the menu of store {store_id} breaks the menu's rules: {exc}")
        await run_in_threadpool(chain.touch, store_id)
        return versioned(request, *(got or (None, "")), "menu")

    async def stock(request: Request):
        store_id = await store_auth(request)
        got = await run_in_threadpool(chain.stock, store_id)
        return versioned(request, got[1].encode() if got else None, got[0] if got else "", "stock counts")

    async def preorders(request: Request):
        store_id = await store_auth(request)
        rows, cursor = await run_in_threadpool(chain.preorders, store_id, after_param(request))
        body = b'{"v":1,"preorders":[' + b",".join(r.encode() for r in rows) + b'],"cursor":"' + \
            str(cursor).encode() + b'"}'
        return Response(body, media_type="application/json")

    def after_param(request: Request) -> int:
        """A store's cursor (``after``): 0 when absent or not a number."""
        after = request.query_params.get("after", "0")
        return int(after) if after.isdigit() else 0

    async def long_poll(request: Request, store_id: str, fetch: Callable[[], list]) -> list:
        """``fetch()`` until it has something or the request's ``wait``
        seconds (at most WAIT_MAX_S) passed, woken by a new row for the
        store. The store is in contact from the request to the answer."""
        try:
            wait = min(WAIT_MAX_S, max(0.0, float(request.query_params.get("wait", "0"))))
        except ValueError:
            wait = 0.0
        await run_in_threadpool(chain.touch, store_id)
        deadline = time.monotonic() + wait
        while True:
            ev = wakeups.event(store_id)
            got = await run_in_threadpool(fetch)
            left = deadline - time.monotonic()
            if got or left <= 0:
                break
            try:
                await asyncio.wait_for(ev.wait(), min(left, FALLBACK_POLL_S))
            except asyncio.TimeoutError:
                pass
        if wait > 0:
            await run_in_threadpool(chain.touch, store_id)
        return got

    async def paygate_notifications(request: Request):
        store_id = await store_auth(request)
        after = after_param(request)
        got = await long_poll(request, store_id, lambda: chain.notifications(store_id, after, NOTIFY_BATCH))
        return _json({"v": 1, "notifications": [{"seq": n["seq"], "body": n["body"],
                                                 "received_at": _iso(n["received_at"])} for n in got],
                      "cursor": str(got[-1]["seq"] if got else after)})

    async def status(request: Request):
        """The store's heartbeat: its backlog and the alerts its staff see."""
        store_id = await store_auth(request)
        body = json_of(await body_of(request, 256 * 1024), "the status")
        try:
            st = msgspec.convert(body, StoreStatus)
        except msgspec.ValidationError as exc:
            chain.count("bad_requests")
            raise Refused(400, "bad_status", f"the status does not fit: {exc}") from None
        await run_in_threadpool(chain.report_status, store_id, st.backlog, st.oldest_pending_at,
                                msgspec.to_builtins(st.alerts), st.details)
        return _json({"v": 1})

    # ------------------------------------------------------- the gateway
    async def paygate_notify(request: Request):
        store_id = request.path_params["store"]
        try:
            body = await body_of(request, NOTIFY_MAX_BYTES)
        except Refused as r:
            chain.count("paygate.too_large")
            return _json({"code": "FAIL", "message": str(r)}, 413)
        why = notification_fault(body)
        if why:
            chain.count("paygate.bad_notifications")
            return _json({"code": "FAIL", "message": why}, 400)
        try:
            await run_in_threadpool(chain.add_notification, store_id, body.decode("utf-8", "replace"))
        except Refused as r:
            chain.count("paygate.unknown_store")
            return _json({"code": "FAIL", "message": str(r)}, r.status)
        local_wake(store_id)
        return _json({"code": "SUCCESS"})

    # ------------------------------------------------------------- admin
    async def admin_stores(request: Request):
        await admin_auth(request)
        if request.method == "GET":
            return _json(await run_in_threadpool(chain.stores))
        body = json_of(await body_of(request, 4096), "the store")
        sid = body.get("store_id") if isinstance(body, dict) else None
        if not isinstance(sid, str) or not sid:
            raise Refused(400, "bad_store", "give the store's id: {\"store_id\": \"store-7\", \"name\": \"...\"}")
        token = await run_in_threadpool(chain.enroll, sid, str(body.get("name") or ""))
        return _json({"store_id": sid, "token": token})

    async def admin_revoke(request: Request):
        await admin_auth(request)
        n = await run_in_threadpool(chain.revoke, "store", request.path_params["store"])
        return _json({"revoked": n})

    async def admin_menu(request: Request):
        who = await admin_auth(request)
        body = await body_of(request, 4 * 1024 * 1024)
        from restobox import contract
        from restobox.cloud.menus import publish
        from restobox.menu import Menu

        try:
            m = Menu.from_json(body)
        except MenuError as exc:
            chain.count("menus_refused")
            raise Refused(400, "menu_invalid", str(exc)) from None
        too_large = contract.menu_too_large(m)
        if too_large:
            raise Refused(400, "menu_too_large", f"menu {m.version} is too large for a store's bus: {too_large}")

        version = await run_in_threadpool(publish, chain, body, who)
        if sqlite:
            for s in await run_in_threadpool(chain.stores):
                wakeups.wake(s["store_id"])
        return _json({"version": version})

    async def admin_store_menu(request: Request):
        await admin_auth(request)
        store_id = request.path_params["store"]
        body = await body_of(request, 1024 * 1024)
        from restobox.cloud.menus import check_overrides, merge

        try:
            o = check_overrides(body)
        except MenuError as exc:
            raise Refused(400, "menu_invalid", str(exc)) from None
        released = await run_in_threadpool(chain.chain_menu)
        if released is not None:
            try:
                merge(released[1], store_id, 1, o)
            except MenuError as exc:
                raise Refused(400, "menu_invalid", f"with these changes the store's menu breaks a rule: {exc}") from None
        rev = await run_in_threadpool(chain.set_store_menu, store_id, msgspec.to_builtins(o))
        return _json({"store_id": store_id, "rev": rev})

    async def admin_stock(request: Request):
        await admin_auth(request)
        store_id = request.path_params["store"]
        body = await body_of(request, 256 * 1024)
        from restobox import contract

        try:
            levels = msgspec.json.decode(body, type=contract.StockLevels)
        except msgspec.DecodeError as exc:
            raise Refused(400, "bad_stock", f"the stock counts do not fit: {exc}") from None
        await run_in_threadpool(chain.set_stock, store_id, levels.version, body)
        return _json({"version": levels.version})

    async def admin_preorders(request: Request):
        await admin_auth(request)
        store_id = request.path_params["store"]
        got = json_of(await body_of(request, 4 * 1024 * 1024), "the pre-orders")
        from restobox.cloudapi import Preorder

        got = got if isinstance(got, list) else [got]
        try:
            for p in got:
                msgspec.convert(p, Preorder)
        except msgspec.ValidationError as exc:
            raise Refused(400, "bad_preorder", f"a pre-order does not fit: {exc}") from None
        n = await run_in_threadpool(chain.add_preorders, store_id, got)
        return _json({"added": n})

    async def admin_events(request: Request):
        await admin_auth(request)
        after = request.query_params.get("after", "0")
        limit = request.query_params.get("limit", "100000")
        got = await run_in_threadpool(chain.events, request.query_params.get("store"),
                                      int(after) if after.isdigit() else 0, int(limit) if limit.isdigit() else 100000)
        return _json(got)

    async def admin_notifications(request: Request):
        await admin_auth(request)
        got = await run_in_threadpool(chain.notifications, request.query_params.get("store"), 0, 1_000_000)
        return _json([{**n, "received_at": _iso(n["received_at"])} for n in got])

    async def admin_stats(request: Request):
        await admin_auth(request)
        return _json(dict(chain.counters))

    async def health(request: Request):
        def ping() -> str:
            with chain.tx():
                return str(cdb._version(database))
        try:
            v = await run_in_threadpool(ping)
        except pw.OperationalError as exc:
            return _json({"ok": False, "error": str(exc)}, 503)
        return _json({"ok": True, "schema": int(v)})

    from restobox.cloud import dashboard, delivery

    hooks = delivery.Hooks(chain, cfg, local_wake)
    routes = [
        Route("/v1/stores/{store}/events", guarded(events), methods=["POST"]),
        Route("/v1/stores/{store}/menu", guarded(menu), methods=["GET"]),
        Route("/v1/stores/{store}/stock", guarded(stock), methods=["GET"]),
        Route("/v1/stores/{store}/preorders", guarded(preorders), methods=["GET"]),
        Route("/v1/stores/{store}/paygate/notifications", guarded(paygate_notifications), methods=["GET"]),
        Route("/v1/stores/{store}/status", guarded(status), methods=["POST"]),
        Route("/v1/paygate/notify/{store}", guarded(paygate_notify), methods=["POST"]),
        Route("/v1/admin/stores", guarded(admin_stores), methods=["GET", "POST"]),
        Route("/v1/admin/stores/{store}/tokens", guarded(admin_revoke), methods=["DELETE"]),
        Route("/v1/admin/menu", guarded(admin_menu), methods=["PUT", "POST"]),
        Route("/v1/admin/stores/{store}/menu", guarded(admin_store_menu), methods=["PUT", "POST"]),
        Route("/v1/admin/stores/{store}/stock", guarded(admin_stock), methods=["PUT", "POST"]),
        Route("/v1/admin/stores/{store}/preorders", guarded(admin_preorders), methods=["POST"]),
        Route("/v1/admin/events", guarded(admin_events), methods=["GET"]),
        Route("/v1/admin/paygate", guarded(admin_notifications), methods=["GET"]),
        Route("/v1/admin/stats", guarded(admin_stats), methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    routes += delivery.routes(hooks, guarded, store_auth, long_poll, after_param, body_of, json_of)
    routes += dashboard.routes(chain, cfg, guarded)

    async def startup() -> None:
        wakeups.loop = asyncio.get_running_loop()
        wakeups.listen(database)
        hooks.start(wakeups.loop)

    async def shutdown() -> None:
        wakeups.close()
        await hooks.stop()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        await startup()
        try:
            yield
        finally:
            await shutdown()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.chain = chain
    app.state.wakeups = wakeups
    return app


class StoreAlert(msgspec.Struct, kw_only=True):
    key: str
    severity: str
    zh: str = ""
    en: str = ""
    since: str | None = None


class StoreStatus(msgspec.Struct, kw_only=True):
    """``POST /v1/stores/<store>/status``: the sync service's heartbeat."""

    v: int = 1
    backlog: int = 0
    """Events in the store's outbox the cloud has not acknowledged."""
    oldest_pending_at: str | None = None
    alerts: list[StoreAlert] = []
    details: dict = {}


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def serve(cfg: CloudSection) -> int:
    import uvicorn

    app = make_app(cfg)
    log.info("the chain's cloud on http://%s:%d (%s)", cfg.host, cfg.port, cfg.database.split("@")[-1])
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", timeout_graceful_shutdown=2)
    return 0
