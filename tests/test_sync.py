"""The store's outbox reaches the chain's cloud exactly once, in order: after
72 hours offline, with the sync service SIGKILLed mid-batch again and again,
and with a cloud that fails, hangs, closes connections, stores half a batch
or answers nonsense. Against ``restobox cloud`` (real processes) on
PostgreSQL and on SQLite, behind a balancer that misbehaves on demand, with
the store's real SQLite files; two cloud processes take the same store's
retries at once and store each event once."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from restobox import config, db
from restobox.brokerconf import terminate
from restobox.sync import Forwarder
from tests.cloud_support import ChainCloud
from tests.support import KUNG_PAO, REPO, HubProcess, new_order

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # the outage starts here (fake wall clock)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cloud:
    """``restobox cloud-dev`` (the reference receiver with fault modes of its
    own) in its own process: what the other store tests use."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.db = workdir / "cloud.db"
        self.log = workdir / "cloud.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Cloud":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "restobox.cli", "cloud-dev", "--port", str(self.port), "--db", str(self.db),
                 "--token", "t0ken"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                httpx.get(f"{self.url}/_dev/stats", timeout=1)
                return self
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"cloud-dev exited:\n{self.log.read_text()[-2000:]}")
                time.sleep(0.05)
        raise TimeoutError("cloud-dev did not start")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 5)
            self.proc = None

    def mode(self, mode: str, count: int = 0, slow_s: float = 2.0) -> None:
        httpx.post(f"{self.url}/_dev/mode", json={"mode": mode, "count": count, "slow_s": slow_s}, timeout=5)

    def events(self) -> list[dict]:
        return httpx.get(f"{self.url}/_dev/events", timeout=30).json()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_dev/stats", timeout=5).json()


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def cloud(tmp_path, backend):
    """The chain's cloud (``restobox cloud``) on each database, behind a
    balancer that can misbehave (tests/cloud_balancer.py)."""
    c = ChainCloud(tmp_path / "cloud", backend).start()
    yield c
    c.close()


def accepted_payload(order_id: str, number: int) -> str:
    """What the hub writes for an accepted order (three priced lines), as JSON."""
    from restobox.contract import OrderReply, SubmitPayment
    from restobox.data import load_sample_menu
    from restobox.menu import MenuIndex
    from restobox.orders import price_order
    from tests.support import COMBO, MILK_TEA

    global _PRICED
    if _PRICED is None:
        _PRICED = price_order(new_order(KUNG_PAO, COMBO, MILK_TEA), MenuIndex(load_sample_menu()))
    p = _PRICED
    reply = OrderReply(order_id=order_id, status="accepted", number=number, business_date="2026-11-22",
                       subtotal=p.subtotal, tax=p.tax, total=p.total, lines=p.lines,
                       accepted_at="2026-11-22T04:03:41.262+00:00")
    return msgspec.json.encode({
        "order": msgspec.to_builtins(reply), "device": "kiosk-1", "channel": "kiosk", "service": "takeaway",
        "table": None, "payment": msgspec.to_builtins(SubmitPayment(method="card", status="approved",
                                                                    amount=p.total, intent_id="pi-1")),
        "offline": False, "provisional_number": "", "menu_version": "2026-11-01.1"}).decode()


_PRICED = None


def fill_outbox(path: Path, n: int, *, start: float = T0, span_s: float = 72 * 3600) -> None:
    """``n`` accepted orders' outbox events, written by the hub's own
    function, spread over ``span_s`` seconds of the fake clock."""
    database = db.open_store_db(path)
    with database.atomic():
        for i in range(n):
            at = start + span_s * i / max(1, n - 1)
            oid = f"00000000-0000-4000-8000-{i:012d}"
            db.insert_outbox(database, event_id=f"{oid}:accepted", kind="order.accepted", order_id=oid,
                             payload=accepted_payload(oid, i % 999 + 1), created_at=db_iso(at))
    database.close()


def db_iso(t: float) -> str:
    from restobox.sync import iso

    return iso(t)


def sync_config(path: Path, cloud: ChainCloud, workdir: Path, broker=None, *, store: str = "store-1",
                **sync) -> Path:
    """The sync service's config for ``store`` (its token at ``cloud``;
    ``t0ken`` for store-1), talking to ``cloud`` and, with ``broker``, to
    the store's bus; ``sync``: more of its [sync] keys."""
    token = workdir / "cloud.token"
    token.write_text((cloud.token_of(store) if store != "store-1" else "t0ken") + "\n")
    sync = {"backoff_min_s": 0.05, "backoff_max_s": 0.5, "timeout_s": 2, "poll_s": 0.1, **sync}
    extra = "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}\n".replace("'", '"')
                    for k, v in sync.items())
    mqtt = (f'[mqtt]\nport = {broker.port}\npassword_file = "{broker.creds["sync"].password_file}"\n'
            "keepalive_s = 5\nreconnect_max_s = 1\n") if broker else ""
    path.write_text(f"""
[device]
id = "sync"
role = "sync"

[store]
id = "{store}"

{mqtt}
[sync]
cloud_url = "{cloud.url}"
token_file = "{token}"
database = "{workdir / 'sync.db'}"
store_database = "{workdir / 'store.db'}"
{extra}""", encoding="utf-8")
    return path


def assert_exactly_once_in_order(events: list[dict], n: int) -> None:
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)) == n, (len(ids), len(set(ids)), n)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs), "the cloud received events out of order"


def test_72_hours_offline_then_50000_events_delivered_exactly_once_in_order(tmp_path, backend):
    fill_outbox(tmp_path / "store.db", 50_000)
    clock = [T0 + 72 * 3600]
    cloud = ChainCloud(tmp_path / "cloud", backend)  # not started: the internet is down
    cfg = config.load(sync_config(tmp_path / "sync.toml", cloud, tmp_path))
    fw = Forwarder(cfg, clock=lambda: clock[0], sleep=lambda s: None)
    try:
        assert fw.tick() == "failed"
        assert fw.last_error.reason == "cloud_unreachable"
        b = fw.backlog()
        assert b.events == 50_000 and b.oldest_s == pytest.approx(72 * 3600)
        assert b.last_success_at is None
        # every retry is spaced by a growing, jittered backoff, never beyond the cap
        waits = [fw.backoff_s() for _ in range(50)]
        assert all(0.05 <= w <= 0.5 for w in waits) and len(set(waits)) > 1
        cloud.start()
        t = time.monotonic()
        fw.run(until_empty=True)
        took = time.monotonic() - t
        assert fw.backlog().events == 0
        assert_exactly_once_in_order(cloud.events(), 50_000)
        assert fw.counters["sent"] == 50_000
        print(f"drained 50,000 events in {took:.1f} s")
    finally:
        fw.close()
        cloud.close()


@pytest.mark.parametrize("mode,count,reason", [
    ("fail", 3, "cloud_http_error"),
    ("hang", 1, "cloud_timeout"),
    ("close", 2, "cloud_closed"),
    ("partial", 3, "cloud_partial"),
    ("bad_json", 2, "cloud_bad_json"),
    ("bad_schema", 2, "cloud_bad_schema"),
    ("unauthorized", 1, "cloud_unauthorized"),
])
def test_a_misbehaving_cloud_loses_nothing_and_doubles_nothing(tmp_path, cloud, mode, count, reason):
    fill_outbox(tmp_path / "store.db", 1_200)
    cfg = config.load(sync_config(tmp_path / "sync.toml", cloud, tmp_path, batch_size=100, timeout_s=1))
    fw = Forwarder(cfg)
    try:
        assert fw.tick() == "sent"  # the first 100 go through
        cloud.mode(mode, count=count, slow_s=0)
        fw.run(until_empty=True)
        assert fw.counters[reason] >= 1, dict(fw.counters)
        assert fw.backlog().events == 0
        assert_exactly_once_in_order(cloud.events(), 1_200)
    finally:
        fw.close()


def test_the_sync_service_killed_mid_batch_again_and_again(broker, monitor, tmp_path, cloud):
    """SIGKILL at random moments while the cloud is slow (kills land inside
    requests): some events are sent twice, the cloud stores each once."""
    fill_outbox(tmp_path / "store.db", 3_000)
    cfg_path = sync_config(tmp_path / "sync.toml", cloud, tmp_path, broker, batch_size=200, health_interval_s=1.0)
    cloud.mode("slow", slow_s=0.3)
    rng = random.Random(7)
    svc = HubProcess(cfg_path, tmp_path / "sync.log", service="sync", device="sync")
    kills = 0
    try:
        for _ in range(12):
            svc.start(monitor)
            time.sleep(rng.uniform(0.1, 0.8))
            svc.kill()
            kills += 1
        cloud.mode("ok")
        svc.start(monitor)
        end = time.monotonic() + 60
        while len(cloud.events()) < 3_000 and time.monotonic() < end:
            time.sleep(0.3)
        health = monitor.wait_json("restobox/v1/health/sync", lambda h: h["details"].get("backlog") == 0, 20)
        assert health["state"] == "ready" and health["details"]["last_success"]
    finally:
        svc.stop()
    assert kills == 12
    assert_exactly_once_in_order(cloud.events(), 3_000)
    assert cloud.stats().get("events_duplicate", 0) >= 1  # a kill did land between storing and the cursor


def test_orders_accepted_by_the_hub_reach_the_cloud(broker, monitor, hub, tmp_path, cloud):
    """End to end: the hub's own outbox rows (written with each order) are
    what the sync service sends; --drain shows the progress and exits."""
    from tests.support import Kiosk

    k = Kiosk(broker, "kiosk-1")
    try:
        orders = [new_order(KUNG_PAO) for _ in range(5)]
        for o in orders:
            assert k.submit(o).status == "accepted"
    finally:
        k.close()
    cfg_path = sync_config(tmp_path / "sync.toml", cloud, tmp_path)
    text = cfg_path.read_text().replace(str(tmp_path / "store.db"), str(hub.database))
    cfg_path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "restobox.cli", "sync", "--drain", "--config", str(cfg_path)],
                       capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "COLUMNS": "100"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "events delivered" in r.stdout
    got = cloud.events()
    accepted = {e["order_id"] for e in got if e["kind"] == "order.accepted"}
    assert accepted == {o.order_id for o in orders}
    assert_exactly_once_in_order(got, len(got))
    # nothing left: a second drain has nothing to do
    r = subprocess.run([sys.executable, "-m", "restobox.cli", "sync", "--drain", "--config", str(cfg_path)],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0 and "empty" in r.stdout


def test_a_wrong_token_is_refused_counted_and_retried(tmp_path, cloud):
    fill_outbox(tmp_path / "store.db", 10)
    cfg_path = sync_config(tmp_path / "sync.toml", cloud, tmp_path)
    (tmp_path / "cloud.token").write_text("wrong\n")
    fw = Forwarder(config.load(cfg_path))
    try:
        assert fw.tick() == "failed" and fw.last_error.reason == "cloud_unauthorized"
        assert fw.tick() == "failed" and fw.counters["cloud_unauthorized"] == 2
        assert cloud.events() == [] and fw.backlog().events == 10
    finally:
        fw.close()


def test_an_outage_is_logged_from_the_first_failed_send_to_the_next_delivery(tmp_path):
    """The day's report counts the minutes the cloud could not be reached
    from sync.db's outage log; a restart mid-outage keeps it one outage."""
    fill_outbox(tmp_path / "store.db", 10)
    clock = [T0]
    cloud = ChainCloud(tmp_path / "cloud")  # not started: the internet is down
    cfg = config.load(sync_config(tmp_path / "sync.toml", cloud, tmp_path))
    fw = Forwarder(cfg, clock=lambda: clock[0], sleep=lambda s: None)
    try:
        assert fw.tick() == "failed"
        clock[0] += 60
        assert fw.tick() == "failed"
    finally:
        fw.close()
    fw = Forwarder(cfg, clock=lambda: clock[0], sleep=lambda s: None)  # restarted while still down
    try:
        clock[0] += 60
        assert fw.tick() == "failed"
        cloud.start()
        clock[0] += 600
        assert fw.tick() == "sent"
        assert fw.tick() == "idle"
        rows = [(r.started_at, r.ended_at, r.reason, r.failures) for r in db.SyncOutage.select()]
        assert rows == [(T0, T0 + 720, "cloud_unreachable", 3)]
    finally:
        fw.close()
        cloud.close()


def _batches(n: int, size: int) -> list[bytes]:
    """The events of ``n`` accepted orders of store-1 as the store posts them."""
    out = []
    for start in range(0, n, size):
        events = []
        for i in range(start, min(n, start + size)):
            oid = f"00000000-0000-4000-8000-{i:012d}"
            events.append({"event_id": f"{oid}:accepted", "seq": i + 1, "kind": "order.accepted", "order_id": oid,
                           "at": "2026-11-22T04:03:41.262+00:00",
                           "payload": msgspec.json.decode(accepted_payload(oid, i % 999 + 1))})
        out.append(msgspec.json.encode({"v": 1, "store_id": "store-1", "events": events}))
    return out


def test_two_cloud_processes_take_the_same_stores_retries_at_once_and_store_each_event_once(
        tmp_path, backend, broker, monitor):
    """Six senders post the same store's batches at once through one address
    in front of two ``restobox cloud`` processes (a store retrying while its
    first tries are still in flight, answered by whichever process the
    balancer picks): every event is stored once and counted once in the
    store's orders. Then one process dies and the store's own sync service
    goes on through the other."""
    import threading

    with ChainCloud(tmp_path / "cloud", backend, processes=2) as cloud:
        batches = _batches(600, 50)
        start = threading.Barrier(6)
        failures: list[str] = []

        def sender(k: int) -> None:
            order = batches[k % 2::2] + batches[(k + 1) % 2::2]  # not all in the same order
            with httpx.Client(timeout=30, headers={"Authorization": "Bearer t0ken"}) as c:
                start.wait()
                for body in order:
                    r = c.post(f"{cloud.url}/v1/stores/store-1/events", content=body)
                    want = [e["event_id"] for e in msgspec.json.decode(body)["events"]]
                    if r.status_code != 200 or r.json()["acked"] != want:
                        failures.append(f"{r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not failures, failures[:3]
        got = cloud.events("store-1")
        assert len(got) == len({e["event_id"] for e in got}) == 600
        stats = cloud.stats()
        assert stats["events_stored"] == 600 and stats["events_duplicate"] == 5 * 600, stats
        lb = httpx.get(f"{cloud.url}/_lb/stats", timeout=5).json()
        assert lb.get("upstream.0", 0) > 10 and lb.get("upstream.1", 0) > 10, lb
        stores = {s["store_id"]: s for s in cloud.get("/v1/admin/stores")}
        assert stores["store-1"]["events"] == 600  # folded once, not once per copy

        # one process dies; the store's sync service sends through the other
        cloud.procs[0].kill()
        fill_outbox(tmp_path / "store.db", 900)  # the same 600 orders' events, and 300 more
        cfg = config.load(sync_config(tmp_path / "sync.toml", cloud, tmp_path, batch_size=100))
        fw = Forwarder(cfg)
        try:
            fw.run(until_empty=True)
        finally:
            fw.close()
        got = cloud.events("store-1")
        assert len(got) == len({e["event_id"] for e in got}) == 900
        assert [e["seq"] for e in got[600:]] == list(range(601, 901))  # the new ones, in the store's order
