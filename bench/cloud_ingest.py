"""How fast the chain's cloud (``restobox cloud``) takes 1,000 stores' events.

    .venv/bin/python bench/cloud_ingest.py --quick    # under 30 s
    .venv/bin/python bench/cloud_ingest.py            # a minute of rush, 900 events a store to catch up
    options: --stores N --processes N --pool N --batch N --orders-per-hour R --rush-s S --backlog N --timeout S

A PostgreSQL database of its own (127.0.0.1:5432, as the tests make one;
dropped at the end), 1,000 stores enrolled with tokens of their own, and
``--processes`` real ``restobox cloud serve`` processes on it (one per core
by default), each on its own port; the stores are spread across them.

Each simulated store is its sync service's loop (restobox/sync.py
Forwarder): post up to ``--batch`` (500) events of its outbox, again at
once while there is more, else wait ``poll_s`` (1 s); a failure (an HTTP
error such as the cloud's 503 ``busy``, a closed connection, a timeout of
``--timeout`` s, the sync service's 10) is retried after a backoff
(doubling from 0.25 s up to 8 s, full jitter; the sync service's starts at
1 s), and an answer that acknowledges only part of the batch has the rest
sent again. The events are a real store's: for every order
``order.accepted`` (the hub's priced order, ~1.2 KB, as tests/test_sync.py
``accepted_payload``), ``payment.recorded``, two ``station.bump``,
``order.ready`` and ``order.completed``, interleaved as a store writes
them (later orders are accepted while earlier ones are cooked). The stores
are asyncio tasks in this process speaking plain HTTP/1.1 over keep-alive
connections: the load generator must cost little, since it shares the
cores with the cloud and PostgreSQL.

0. **First contact**: every store opens its connection and posts one
   event, all at once (the cloud looks each token up in its database the
   first time). ``first_contact_ack_p99_ms``.
1. **Rush** (the latency): every store's outbox fills at
   ``--orders-per-hour`` (600: ten orders a minute, a busy store's lunch, at
   all 1,000 stores at once: 1,000 events/s), so every store posts about
   once a second what came since. ``batch_ack_p50_ms`` /
   ``batch_ack_p99_ms``: from a batch's first send to its acknowledgement
   (retries included). Budget p99 <= 500 ms.
2. **Catch-up** (the throughput): the cloud was away; every store has a
   backlog (``--backlog`` orders, 6 events each) and all 1,000 send it at
   once, batch after batch. ``events_per_s``: events acknowledged per
   second, from the first send to the last acknowledgement. (Its batches'
   ack times are reported too; at saturation they are queueing.)
3. **Baseline, same run**: the catch-up's rows (the same batches, as the
   cloud stores them) inserted straight into a fresh database of the same
   server with the cloud's own schema: one multi-row ``INSERT`` per batch,
   one transaction each, the statements built before the clock starts, over
   as many connections as the cloud's processes have in their pools.
   ``ratio_to_raw_insert`` = ``events_per_s`` / ``raw_insert_events_per_s``;
   budget >= 0.5.

At the end every event must be stored once, every order once, and each
store's count right (``stored_ok``). CPU seconds of each phase are given for
the cloud's processes, this process (the stores), the PostgreSQL backends
of the benchmark's database, and ``other``: the rest of the machine
(PostgreSQL's own processes, and anything else running meanwhile: on a
shared machine, read the figures with it). Human-readable lines go to
stderr; the figures come last, as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402

from bench.storekit import pct, say  # noqa: E402
from tests.cloud_support import CloudProcess, create_pg_database, drop_pg_database  # noqa: E402

BUDGET_RATIO = 0.5
BUDGET_P99_MS = 500
EVENTS_PER_ORDER = 6
POLL_S = 1.0
"""The sync service's ``poll_s``: how long a store waits when its outbox is empty."""
TIMEOUT_S = 10.0
"""The sync service's ``timeout_s``."""
ADMIN_TOKEN = "bench-admin-token"
COLS = ("store_id", "event_id", "seq", "kind", "order_id", "at", "payload", "received_at", "flagged")


# ------------------------------------------------------------------ events
class Event(msgspec.Struct, array_like=True):
    event_id: str
    seq: int
    kind: str
    order_id: str
    at: str
    payload: str
    body: bytes
    """The event as the store posts it (JSON)."""


def _iso(t: float) -> str:
    s = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{int((t - s) * 1000):03d}+00:00"


class Outbox:
    """One store's outbox: its events in the store's order, made as the hub
    writes them. ``step(k)`` is a moment of the store's day: order k is
    accepted and paid, k-1 bumped at both stations, k-2 ready, k-3
    collected."""

    def __init__(self, store_index: int, template: str) -> None:
        self.store = store_index
        self.template = template
        self.seq = 0
        self.t = 1_800_000_000.0 + store_index * 0.37

    def oid(self, k: int) -> str:
        return f"{self.store:08x}-0000-4000-8000-{k:012x}"

    def _event(self, k: int, suffix: str, kind: str, payload: str) -> Event:
        self.seq += 1
        self.t += 1.7
        oid = self.oid(k)
        at = _iso(self.t)
        eid = f"{oid}:{suffix}"
        body = msgspec.json.encode({"event_id": eid, "seq": self.seq, "kind": kind, "order_id": oid, "at": at,
                                    "payload": msgspec.Raw(payload.encode())})
        return Event(eid, self.seq, kind, oid, at, payload, body)

    def step(self, k: int) -> list[Event]:
        out = []
        oid = self.oid(k)
        number = k % 999 + 1
        out.append(self._event(k, "accepted", "order.accepted",
                               self.template.replace("@@OID@@", oid).replace('"number":4242', f'"number":{number}')))
        at = _iso(self.t)
        out.append(self._event(k, "paid", "payment.recorded", msgspec.json.encode({
            "entry_id": f"{oid}:paid", "order_id": oid, "number": number, "business_date": "2026-11-22",
            "kind": "payment", "method": "card", "amount": 3200, "tendered": 0, "reference": "TRM-884213",
            "staff": "", "device": "kiosk-1", "shift_id": "", "reason": "", "request_id": "", "offline": False,
            "lines": [], "at": at, "recorded_at": at}).decode()))
        if k >= 1:
            o1 = self.oid(k - 1)
            for station in ("wok", "drinks"):
                out.append(self._event(k - 1, f"bump:{station}", "station.bump", msgspec.json.encode({
                    "order_id": o1, "station": station, "line": None, "device": f"kds-{station}",
                    "at": _iso(self.t)}).decode()))
        for back, state in ((2, "ready"), (3, "completed")):
            if k >= back:
                o = self.oid(k - back)
                out.append(self._event(k - back, state, f"order.{state}", msgspec.json.encode({
                    "order_id": o, "number": (k - back) % 999 + 1, "state": state, "reason": None,
                    "at": _iso(self.t)}).decode()))
        return out


def accepted_template() -> str:
    from tests.test_sync import accepted_payload

    return accepted_payload("@@OID@@", 4242)


# ------------------------------------------------------------------- HTTP
class Http:
    """One keep-alive HTTP/1.1 connection to a cloud process: a request
    written whole, the answer read by its Content-Length."""

    timeout_s = TIMEOUT_S

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is not None and (time.monotonic() - self.used > 4 or self.reader.at_eof()):
            self.close()  # the server closes a connection idle for 5 s (uvicorn's keep-alive): a new one
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                n = 0
                close = False
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    k = k.strip().lower()
                    if k == b"content-length":
                        n = int(v)
                    elif k == b"connection" and v.strip().lower() == b"close":
                        close = True
                data = await self.reader.readexactly(n) if n else b""
                self.used = time.monotonic()
                if close:
                    self.close()
                return status, data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Ack(msgspec.Struct):
    acked: list[str]


class Store:
    """A store's sync service: what it has sent and when."""

    def __init__(self, index: int, store_id: str, token: str, port: int) -> None:
        self.index = index
        self.id = store_id
        self.token = token
        self.path = f"/v1/stores/{store_id}/events"
        self.http = Http(port)
        self.events: list[Event] = []
        self.due: list[float] = []
        """When each event is in the outbox (monotonic), in the rush."""
        self.sent = 0
        """Events acknowledged (the sync service's cursor)."""

    async def send(self, batch: list[Event], stats: "Stats") -> int:
        """Post ``batch`` until the cloud acknowledges it (the whole batch
        or a prefix of it); how many events it acknowledged."""
        body = (b'{"v":1,"store_id":"' + self.id.encode() + b'","events":['
                + b",".join(e.body for e in batch) + b"]}")
        t0 = time.monotonic()
        fails = 0
        while True:
            why = ""
            try:
                status, data = await self.http.post(self.path, self.token, body)
                if status == 200:
                    acked = msgspec.json.decode(data, type=Ack).acked
                    n = 0
                    for e, a in zip(batch, acked):
                        if e.event_id != a:
                            break
                        n += 1
                    if n:
                        if n < len(batch):
                            stats.short_acks += 1
                        stats.lat.append((time.monotonic() - t0) * 1000)
                        stats.when.append(t0)
                        return n
                    why = "nothing acknowledged"
                else:
                    why = f"HTTP {status}"
            except TimeoutError:
                why = "timeout"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                    msgspec.DecodeError) as exc:
                why = type(exc).__name__
            fails += 1
            stats.failures[why] = stats.failures.get(why, 0) + 1
            # the sync service's backoff: doubling, full jitter (backoff_min_s 1 s, here from 0.25)
            await asyncio.sleep(random.uniform(0, min(8.0, 0.25 * 2 ** fails)))


class Stats:
    def __init__(self) -> None:
        self.lat: list[float] = []
        self.when: list[float] = []
        """When each batch was first sent (monotonic)."""
        self.failures: dict[str, int] = {}
        self.short_acks = 0
        self.events = 0
        self.batches = 0
        self.last_ack = 0.0


async def first_contact(stores: list[Store]) -> Stats:
    """Every store opens its connection and posts its first event, all at
    once (the cloud checks each token in its database the first time)."""
    stats = Stats()

    async def one(st: Store) -> None:
        n = await st.send(st.events[:1], stats)
        st.sent += n
        stats.events += n
        stats.batches += 1

    await asyncio.gather(*(one(s) for s in stores))
    return stats


async def rush(stores: list[Store], seconds: float, batch: int) -> Stats:
    """Every store's outbox fills (``Store.due``); each posts what is due
    and, when nothing is, waits ``POLL_S``."""
    stats = Stats()
    start = time.monotonic()
    end = start + seconds

    async def one(st: Store) -> None:
        await asyncio.sleep(random.uniform(0, POLL_S))  # the stores were not started in step
        while time.monotonic() < end:
            now = time.monotonic() - start
            due = st.sent
            while due < len(st.events) and due - st.sent < batch and st.due[due] <= now:
                due += 1
            if due == st.sent:
                await asyncio.sleep(POLL_S)
                continue
            n = await st.send(st.events[st.sent:due], stats)
            st.sent += n
            stats.events += n
            stats.batches += 1

    await asyncio.gather(*(one(s) for s in stores))
    stats.last_ack = time.monotonic() - start
    return stats


async def catch_up(stores: list[Store], batch: int) -> tuple[Stats, float]:
    """Every store sends the rest of its outbox, batch after batch."""
    stats = Stats()
    start = time.monotonic()

    async def one(st: Store) -> None:
        while st.sent < len(st.events):
            n = await st.send(st.events[st.sent:st.sent + batch], stats)
            st.sent += n
            stats.events += n
            stats.batches += 1

    await asyncio.gather(*(one(s) for s in stores))
    return stats, time.monotonic() - start


# ------------------------------------------------------------------ set-up
def enroll(url: str, n: int) -> list[tuple[str, str]]:
    """The database's schema and ``n`` stores, each with its own token."""
    from restobox.cloud import db
    from restobox.cloud.chain import Chain

    database = db.connect(url, pool=8)
    db.migrate(database)
    chain = Chain(database)
    ids = [f"store-{i:04d}" for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(lambda s: chain.enroll(s, s), ids))
    chain.issue("admin", "bench", ADMIN_TOKEN)
    database.close_all()
    return list(zip(ids, tokens))


def cloud_counters(procs: list[CloudProcess]) -> dict:
    """Every process's counters (/v1/admin/stats), summed."""
    import httpx

    total: dict[str, int] = {}
    for p in procs:
        got = httpx.get(f"{p.url}/v1/admin/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        for k, v in got.json().items():
            total[k] = total.get(k, 0) + v
    return total


def cpu_s(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def backends(database: str) -> list[int]:
    """The PostgreSQL server's processes serving ``database`` (the server
    may be serving others too)."""
    import psycopg2

    from tests.cloud_support import PG

    con = psycopg2.connect(dbname="postgres", **PG)
    try:
        cur = con.cursor()
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))
        return [r[0] for r in cur.fetchall()]
    finally:
        con.close()


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every core, every process)."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in f]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


class Cpu:
    """CPU seconds over a stretch of the run: of some processes, of the
    database's server processes serving ``database`` (``postgres``), and
    of everything else on the machine (``other``: the server's own
    processes, and whatever else runs on the machine meanwhile)."""

    def __init__(self, database: str | None = None, **groups) -> None:
        self.database = database
        self.groups = groups

    def _now(self) -> dict:
        return {k: cpu_s(v) for k, v in self.groups.items()} | {"postgres": cpu_s(self.pg)}

    def __enter__(self) -> "Cpu":
        self.pg = backends(self.database) if self.database else []
        self.t0 = self._now()
        self.m0 = machine_busy_s()
        self.w0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        if self.database:  # and those that started meanwhile (from 0 s)
            self.pg += [p for p in backends(self.database) if p not in self.pg]
        t1 = self._now()
        self.wall = time.monotonic() - self.w0
        self.used = {k: round(t1[k] - self.t0[k], 2) for k in t1}
        self.used["other"] = round(machine_busy_s() - self.m0 - sum(self.used.values()), 2)


# ---------------------------------------------------------------- baseline
def raw_insert(url: str, batches: list[list[tuple]], connections: int) -> tuple[float, dict]:
    """``batches`` inserted into a fresh database with the cloud's schema,
    one multi-row INSERT and one commit each, over ``connections``
    connections; rows per second, and the CPU seconds used meanwhile."""
    import psycopg2

    from restobox.cloud import db

    database = db.connect(url, pool=2)
    db.migrate(database)
    database.close_all()
    dsn = dict(database.connect_params, dbname=database.database)
    cons = [psycopg2.connect(**dsn) for _ in range(connections)]
    try:
        cur = cons[0].cursor()
        row = "(" + ", ".join(["%s"] * len(COLS)) + ")"
        head = f"INSERT INTO event ({', '.join(COLS)}) VALUES ".encode()
        stmts = [head + b", ".join(cur.mogrify(row, r) for r in b) for b in batches]  # before the clock
        work: queue.SimpleQueue = queue.SimpleQueue()
        for s in stmts:
            work.put(s)
        n = sum(len(b) for b in batches)
        go = threading.Barrier(connections + 1)

        def worker(con) -> None:
            c = con.cursor()
            go.wait()
            while True:
                try:
                    s = work.get_nowait()
                except queue.Empty:
                    return
                c.execute(s)
                con.commit()

        threads = [threading.Thread(target=worker, args=(c,)) for c in cons]
        for t in threads:
            t.start()
        with Cpu(database.database, client=[os.getpid()]) as cpu:
            go.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            took = time.perf_counter() - t0
        cur.execute("SELECT count(*) FROM event")
        got = cur.fetchone()[0]
        if got != n:
            raise RuntimeError(f"the baseline stored {got} rows of {n}")
        return n / took, cpu.used
    finally:
        for c in cons:
            c.close()


def check(url: str, stores: list[Store]) -> dict:
    """Every event stored once, every order once, each store's count right."""
    import psycopg2

    from restobox.cloud import db

    database = db.connect(url, pool=1)
    con = psycopg2.connect(**database.connect_params, dbname=database.database)
    try:
        cur = con.cursor()
        cur.execute("SELECT count(*), count(DISTINCT (store_id, event_id)) FROM event")
        rows, distinct = cur.fetchone()
        cur.execute("SELECT count(*), count(*) FILTER (WHERE state = 'completed'), "
                    "count(*) FILTER (WHERE ready_at IS NOT NULL) FROM store_order")
        orders, completed, ready = cur.fetchone()
        cur.execute("SELECT store_id, events FROM chain_store")
        counts = dict(cur.fetchall())
        cur.execute("SELECT COALESCE(SUM(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables")
        (autovacuums,) = cur.fetchone()
    finally:
        con.close()
    sent = sum(s.sent for s in stores)
    want_orders = sum(sum(e.kind == "order.accepted" for e in s.events[:s.sent]) for s in stores)
    want_completed = sum(sum(e.kind == "order.completed" for e in s.events[:s.sent]) for s in stores)
    ok = (rows == distinct == sent and orders == want_orders and completed == want_completed
          and all(counts.get(s.id) == s.sent for s in stores))
    return {"stored_ok": ok, "events_stored": rows, "events_sent": sent, "orders": orders,
            "orders_completed": completed, "orders_ready": ready, "autovacuum_runs": int(autovacuums)}


# -------------------------------------------------------------------- run
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a shorter rush and a smaller backlog (under 30 s)")
    ap.add_argument("--stores", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="restobox cloud serve processes")
    ap.add_argument("--pool", type=int, default=16, help="database connections per process ([cloud] pool)")
    ap.add_argument("--batch", type=int, default=500, help="events per batch at most (the sync service's batch_size)")
    ap.add_argument("--orders-per-hour", type=float, default=600.0, help="each store's orders in the rush")
    ap.add_argument("--rush-s", type=float, help="seconds of rush (5; 60 without --quick)")
    ap.add_argument("--backlog", type=int, help="orders each store has waiting for the catch-up (20; 150)")
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S, help="a store's timeout_s (the sync service's: 10)")
    args = ap.parse_args()
    Http.timeout_s = args.timeout
    rush_s = args.rush_s or (5.0 if args.quick else 60.0)
    backlog = args.backlog or (20 if args.quick else 150)
    t_start = time.monotonic()

    template = accepted_template()
    rate = args.orders_per_hour / 3600 * EVENTS_PER_ORDER  # events per second per store
    with tempfile.TemporaryDirectory(prefix="restobox-cloud-ingest-") as tmp:
        work = Path(tmp)
        url = create_pg_database("restobox_bench")
        raw_url = None
        procs: list[CloudProcess] = []
        try:
            t = time.monotonic()
            enrolled = enroll(url, args.stores)
            say(f"{args.stores} stores enrolled in {time.monotonic() - t:.1f} s")
            cfg = work / "cloud.toml"
            cfg.write_text(f"[cloud]\npool = {args.pool}\n", encoding="utf-8")
            procs = [CloudProcess(url, work / f"cloud-{i}.log", config=cfg) for i in range(args.processes)]
            with ThreadPoolExecutor(len(procs)) as pool:
                list(pool.map(lambda p: p.start(), procs))

            # every store's outbox: the rush's events, then the backlog of the catch-up
            stores = [Store(i, sid, tok, procs[i % len(procs)].port) for i, (sid, tok) in enumerate(enrolled)]
            t = time.monotonic()
            rush_orders = int(rush_s * rate / EVENTS_PER_ORDER) + 2
            for st in stores:
                box = Outbox(st.index, template)
                for k in range(rush_orders):
                    st.events += box.step(k)
                phase = random.uniform(0, 1 / rate)
                st.due = [phase + i / rate for i in range(len(st.events))]
                for k in range(rush_orders, rush_orders + backlog):
                    st.events += box.step(k)
            say(f"{sum(len(s.events) for s in stores):,} events made in {time.monotonic() - t:.1f} s")

            # 1. the rush
            pids = [p.proc.pid for p in procs]
            say(f"rush: {args.stores} stores, {args.orders_per_hour:g} orders/h each ({rate * args.stores:,.0f} "
                f"events/s offered), {rush_s:g} s, {len(procs)} cloud processes")
            loop = asyncio.new_event_loop()  # one loop for every phase: the stores' connections stay open
            dbname = url.rsplit("/", 1)[1]
            fc = loop.run_until_complete(first_contact(stores))
            say(f"first contact: {args.stores} stores at once, ack p50 {pct(fc.lat, 50):.0f} ms, "
                f"p99 {pct(fc.lat, 99):.0f} ms")
            with Cpu(dbname, cloud=pids, client=[os.getpid()]) as cpu_rush:
                rs = loop.run_until_complete(rush(stores, rush_s, args.batch))
            rush_p50, rush_p99 = pct(rs.lat, 50), pct(rs.lat, 99)
            t0 = min(rs.when)
            by_s: dict[int, list[float]] = {}
            for w, l in zip(rs.when, rs.lat):
                by_s.setdefault(int(w - t0), []).append(l)
            say("  ack p99 by second (ms): " + ", ".join(f"{pct(v, 99):.0f}" for k, v in sorted(by_s.items())))
            say(f"  {rs.events:,} events in {rs.batches:,} batches, {rs.events / rs.last_ack:,.0f} events/s; "
                f"ack p50 {rush_p50:.1f} ms, p99 {rush_p99:.1f} ms; failures {rs.failures or 0}; "
                f"cpu s {cpu_rush.used}")

            # 2. the catch-up: the rest of every outbox (the rush's undelivered events first)
            rush_sent = [st.sent for st in stores]
            with Cpu(dbname, cloud=pids, client=[os.getpid()]) as cpu_cu:
                cs, took = loop.run_until_complete(catch_up(stores, args.batch))
            for st in stores:
                st.http.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
            events_per_s = cs.events / took
            cu_p50, cu_p99 = pct(cs.lat, 50), pct(cs.lat, 99)
            say(f"catch-up: {cs.events:,} events in {cs.batches:,} batches in {took:.2f} s: {events_per_s:,.0f} "
                f"events/s; ack p50 {cu_p50:.0f} ms, p99 {cu_p99:.0f} ms (queueing); failures {cs.failures or 0}; "
                f"cpu s {cpu_cu.used}")
            counters = cloud_counters(procs)
            say(f"the cloud's counters: {counters}")
            for p in procs:
                p.stop()
            checked = check(url, stores)
            say(f"stored: {checked}")
            # 3. the baseline: the catch-up's batches, the rows as the cloud stored them
            connections = len(procs) * args.pool
            now = time.time()
            batches = [[(st.id, e.event_id, e.seq, e.kind, e.order_id, e.at, e.payload, now, None)
                        for e in st.events[i:i + args.batch]]
                       for st, r in zip(stores, rush_sent) for i in range(r, len(st.events), args.batch)]
            raw_url = create_pg_database("restobox_bench_raw")
            raw_per_s, raw_cpu = raw_insert(raw_url, batches, connections)
            say(f"baseline: the same {sum(map(len, batches)):,} rows in {len(batches):,} batched INSERTs over "
                f"{connections} connections: {raw_per_s:,.0f} rows/s; cpu s {raw_cpu}")
        finally:
            for p in procs:
                p.stop()
            for p in procs:  # what went wrong in the cloud, if anything
                text = p.log.read_text(errors="replace") if p.log.exists() else ""
                if "Traceback" in text or "ERROR" in text:
                    say(f"{p.log.name}:\n{text[-3000:]}")
            drop_pg_database(url)
            if raw_url:
                drop_pg_database(raw_url)

    ratio = events_per_s / raw_per_s
    stored_ok = checked["stored_ok"] and not cs.short_acks and not rs.short_acks
    out = {
        "bench": "cloud_ingest", "quick": args.quick, "stores": args.stores, "processes": len(procs),
        "pool": args.pool, "batch": args.batch, "cpus": os.cpu_count(),
        "events_per_s": round(events_per_s),
        "batch_ack_p50_ms": round(rush_p50, 1), "batch_ack_p99_ms": round(rush_p99, 1),
        "raw_insert_events_per_s": round(raw_per_s), "ratio_to_raw_insert": round(ratio, 3),
        "budget_ok": ratio >= BUDGET_RATIO and rush_p99 <= BUDGET_P99_MS and stored_ok,
        "budget_ratio": BUDGET_RATIO, "budget_p99_ms": BUDGET_P99_MS, "store_timeout_s": args.timeout,
        "first_contact_ack_p99_ms": round(pct(fc.lat, 99), 1),
        "rush": {"orders_per_hour_per_store": args.orders_per_hour, "seconds": rush_s,
                 "offered_events_per_s": round(rate * args.stores), "events": rs.events, "batches": rs.batches,
                 "events_per_s": round(rs.events / rs.last_ack), "failures": rs.failures, "cpu_s": cpu_rush.used},
        "catch_up": {"events": cs.events, "batches": cs.batches, "seconds": round(took, 2),
                     "batch_ack_p50_ms": round(cu_p50, 1), "batch_ack_p99_ms": round(cu_p99, 1),
                     "failures": cs.failures, "cpu_s": cpu_cu.used},
        "raw": {"connections": connections, "batches": len(batches), "cpu_s": raw_cpu},
        "stored_ok": stored_ok, **{k: v for k, v in checked.items() if k != "stored_ok"},
        "cloud_counters": counters,
        "seconds_total": round(time.monotonic() - t_start, 1),
    }
    print(json.dumps(out))
    return 0 if out["budget_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
