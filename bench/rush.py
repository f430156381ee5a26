"""The lunch rush, measured: virtual kiosks and kitchen screens against the
real store (broker, hub, printing, sync and a cloud receiver), a calm phase
that measures latency, a chaos phase that kills processes, and a ledger
check that every order is accounted for.

    restobox rush [--quick]            (or: make rush; python bench/rush.py)
    restobox rush --chaos-s 1800 --kill-every 1.6     (make chaos: >= 1,000 kills)

Everything is real: mosquitto with the store's own config, ``restobox hub``,
``restobox printing`` (two virtual printers that keep every job),
``restobox sync`` and ``restobox cloud-dev``. Each virtual kiosk is its own
process with its own SQLite ledger: it commits an order before sending it,
sends it again until the hub answers (as the real kiosk's outbox does), and
records the answer. The virtual kitchen screens (one process, one broker
device per station, as the real screens) acknowledge each ticket when it
arrives, ask for every open ticket after each reconnect, bump after a prep
time, and the expo completes ready orders.

Phases:

1. **calm**: the rush profile (a steady rate, 3,000 orders an hour by
   default, with bursts at 3x) and nothing killed: "place order -> ticket
   acknowledged by the kitchen screen" latency is measured here (the budget
   in docs/architecture.md is for this phase).
2. **chaos**: the same profile while a random process (broker, hub,
   printing, sync, a virtual kiosk) is SIGKILLed every ``--kill-every``
   seconds and started again a second later, as systemd's Restart= would,
   and the cloud link goes down and up.
3. **drain**: no more orders; everything is running; wait until every
   order is answered, every ticket acknowledged or printed and the cloud has
   every event.

Then the ledger check (every order a kiosk saw accepted is in the hub's
database once, has each kitchen ticket drawn or printed once (reprints
flagged), and reached the cloud once; ``PRAGMA integrity_check`` on every
database), a report (Markdown and PNG plots) in the results folder, and
the figures as one JSON line, last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from storekit import Proc, echo_rtt_ms, proc_stat, services, wait_http  # noqa: E402  (bench/, beside this file)

STATIONS = ("wok", "fryer", "drinks")
KDS_DEVICES = {"wok": "kds-wok-1", "fryer": "kds-fryer-1", "drinks": "kds-drinks-1", "expo": "expo-1"}
KINDS = ("broker", "hub", "printing", "sync", "kiosk")
RESTART_S = 1.0  # RestartSec= of the units


# =========================================================== the rush profile
@dataclass(frozen=True)
class Profile:
    per_hour: float = 3000.0
    burst_factor: float = 3.0
    burst_s: float = 60.0
    burst_every_s: float = 300.0
    burst_at_s: float = 120.0  # the first burst starts this long into each phase

    def rate(self, t: float) -> float:
        """Orders per second, ``t`` seconds into a phase."""
        base = self.per_hour / 3600.0
        if t >= self.burst_at_s and (t - self.burst_at_s) % self.burst_every_s < self.burst_s:
            return base * self.burst_factor
        return base

    @property
    def peak(self) -> float:
        return self.per_hour / 3600.0 * self.burst_factor


# ================================================================ a kiosk
KIOSK_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, payload BLOB NOT NULL, created REAL NOT NULL, phase TEXT NOT NULL,
    last_sent REAL, attempts INTEGER NOT NULL DEFAULT 0,
    answered REAL, status TEXT, number INTEGER, reason TEXT)
"""


def kiosk_main(a) -> int:
    """One virtual kiosk (a process of its own, so the chaos can kill it)."""
    from restobox import contract
    from restobox.bus import Bus
    from restobox.contract import OrderReply, topics
    from restobox.data import load_sample_menu
    from restobox.dev.sim import random_order

    menu = load_sample_menu()
    prof = Profile(**json.loads(a.profile))
    con = sqlite3.connect(a.ledger, check_same_thread=False, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute("PRAGMA synchronous = FULL")
    con.execute(KIOSK_SCHEMA)
    lock = threading.Lock()
    rng = random.Random(f"{a.device}-{os.getpid()}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    password = Path(a.password_file).read_text().strip()
    bus = Bus(device=a.device, role="kiosk", port=a.port, username=a.device, password=password,
              keepalive=5, persistent=True, reconnect_max_s=1)

    def on_reply(m) -> None:
        try:
            r = contract.decode(m.payload, OrderReply)
        except contract.Rejection:
            return
        with lock:
            con.execute("UPDATE orders SET answered = ?, status = ?, number = ?, reason = ? "
                        "WHERE order_id = ? AND answered IS NULL",
                        (time.time(), r.status, r.number, r.reason, r.order_id))

    bus.subscribe(topics.order_reply(a.device), on_reply)
    bus.start()
    bus.announce()

    def send(order_id: str, payload: bytes) -> None:
        bus.publish(topics.order_submit(a.device), payload, correlation=order_id.encode(),
                    response_topic=topics.order_reply(a.device))
        with lock:
            con.execute("UPDATE orders SET last_sent = ?, attempts = attempts + 1 WHERE order_id = ?",
                        (time.time(), order_id))

    per_kiosk = 1.0 / a.kiosks
    next_resend = 0.0
    phases = json.loads(a.phases)
    while not stop.is_set():
        now = time.time()
        phase, t0 = None, 0.0
        for name, start, end in phases:
            if start <= now < end:
                phase, t0 = name, start
        # every 50 ms an order with probability rate(t) x 50 ms (this kiosk's share)
        if phase is not None and bus.connected:
            if rng.random() < prof.rate(now - t0) * per_kiosk * 0.05:
                o = random_order(menu, rng)
                payload = contract.encode(o)
                with lock:
                    con.execute("INSERT INTO orders (order_id, payload, created, phase) VALUES (?, ?, ?, ?)",
                                (o.order_id, payload, time.time(), phase))
                send(o.order_id, payload)
        if now >= next_resend and bus.connected:
            # the outbox: anything unanswered for 3 s goes again (same order id)
            next_resend = now + 1.0
            with lock:
                due = con.execute("SELECT order_id, payload FROM orders WHERE answered IS NULL AND "
                                  "(last_sent IS NULL OR last_sent < ?)", (now - 3.0,)).fetchall()
            for oid, payload in due:
                send(oid, payload)
        stop.wait(0.05)
    bus.stop()
    con.close()
    return 0


# ======================================================= the kitchen screens
KDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, station TEXT NOT NULL,
    received REAL NOT NULL, acked REAL NOT NULL, draws INTEGER NOT NULL, acks INTEGER NOT NULL,
    bumped REAL)
"""


def kds_main(a) -> int:
    """Every station's screen and the expo, each its own broker device."""
    import heapq

    from restobox import contract
    from restobox.bus import Bus
    from restobox.contract import StationEvent, SyncRequest, topics

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    tickets: dict[str, dict] = {}
    due: list[tuple[float, str, str, str]] = []  # (when, station, kind, order_id)
    ready_seen: set[str] = set()
    rng = random.Random(7)
    prep = tuple(json.loads(a.prep))
    buses: dict[str, Bus] = {}

    def event(station: str, kind: str, order_id: str) -> None:
        ev = StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id, device=KDS_DEVICES[station])
        buses[station].publish(topics.station_event(station), contract.encode(ev))

    def on_ticket(station: str):
        def cb(m) -> None:
            t = json.loads(m.payload)
            if t.get("state") != "open":
                return
            now = time.time()
            with lock:
                row = tickets.get(t["ticket_id"])
                if row is not None:
                    row["draws"] += 1  # sent again (a resync or a resend): one card, no second ack
                    return
                tickets[t["ticket_id"]] = {"order_id": t["order_id"], "station": station, "received": now,
                                           "acked": now, "draws": 1, "acks": 1, "bumped": None}
                heapq.heappush(due, (time.monotonic() + rng.uniform(*prep), station, "bump", t["order_id"]))
            event(station, "ack", t["order_id"])
        return cb

    def on_update(m) -> None:
        u = json.loads(m.payload)
        if u.get("state") == "ready":
            with lock:
                if u["order_id"] in ready_seen:
                    return
                ready_seen.add(u["order_id"])
                heapq.heappush(due, (time.monotonic() + rng.uniform(0.2, 1.0), "expo", "bump", u["order_id"]))

    def on_connected(station: str):
        def cb(up: bool, why: str) -> None:
            if up and station != "expo":  # as the real screen: every open ticket again
                buses[station].publish(topics.station_sync(station), contract.encode(
                    SyncRequest(device=KDS_DEVICES[station])))
        return cb

    for station, device in KDS_DEVICES.items():
        password = Path(a.creds, f"{device}.secret").read_text().strip()
        b = Bus(device=device, role="expo" if station == "expo" else "kds", port=a.port, username=device,
                password=password, keepalive=5, persistent=True, reconnect_max_s=1)
        if station == "expo":
            b.subscribe(topics.ORDER_UPDATE, on_update)
        else:
            b.subscribe(topics.station_ticket(station), on_ticket(station))
        b.on_connection_change = on_connected(station)
        buses[station] = b
    for b in buses.values():
        b.start()
        b.announce()

    con = sqlite3.connect(a.ledger, isolation_level=None)
    con.execute("PRAGMA journal_mode = wal")
    con.execute(KDS_SCHEMA)

    def flush() -> None:
        with lock:
            rows = [(tid, r["order_id"], r["station"], r["received"], r["acked"], r["draws"], r["acks"], r["bumped"])
                    for tid, r in tickets.items()]
        with con:
            con.executemany("INSERT OR REPLACE INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    last_flush = time.monotonic()
    while not stop.wait(0.05):
        now = time.monotonic()
        while True:
            with lock:
                if not due or due[0][0] > now:
                    break
                _, station, kind, order_id = heapq.heappop(due)
                if station != "expo":
                    for r in tickets.values():
                        if r["order_id"] == order_id and r["station"] == station:
                            r["bumped"] = time.time()
            event(station, kind, order_id)
        if now - last_flush > 1.0:
            flush()
            last_flush = now
    flush()
    for b in buses.values():
        b.stop()
    con.close()
    return 0


# ============================================================ the orchestra
class Rush:
    def __init__(self, out: Path, *, kiosks: int, profile: Profile, calm_s: float, chaos_s: float,
                 kill_every: float, prep: tuple[float, float], seed: int, cloud_flaps: bool = True) -> None:
        from restobox.brokerconf import STANDARD_DEVICES, Broker

        self.out = out
        self.state = out / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.kiosks = kiosks
        self.profile = profile
        self.calm_s, self.chaos_s, self.kill_every = calm_s, chaos_s, kill_every
        self.prep = prep
        self.rng = random.Random(seed)
        self.cloud_flaps = cloud_flaps
        self.kiosk_names = [f"kiosk-{i + 1}" for i in range(kiosks)]
        devices = list(STANDARD_DEVICES) + [(n, "kiosk", None) for n in self.kiosk_names
                                            if n not in {d[0] for d in STANDARD_DEVICES}]
        self.broker = Broker(self.state / "broker")
        self.devices = devices
        self.procs: dict[str, Proc] = {}
        self.kills: list[tuple[float, str, str]] = []
        self.cloud_events: list[tuple[float, str]] = []
        self.samples: list[dict] = []
        self.phases: list[tuple[str, float, float]] = []
        self._stop = threading.Event()
        self._chaos_on = threading.Event()
        self._lock = threading.Lock()
        self.broker_down_until = 0.0

    # ------------------------------------------------------------ set-up
    def setup(self) -> None:
        self.broker.start_with_devices(self.devices)
        logs = self.out / "logs"
        logs.mkdir(exist_ok=True)
        self.procs, self.cloud_port = services(
            self.state, logs, self.broker, store_id="rush-store", health_s=2, printers=("kitchen-1", "kitchen-2"),
            hub_extra='[hub.printing.stations.wok]\nprinter = "kitchen-1"\nmode = "always"\n'
                      '[hub.printing.stations.fryer]\nprinter = "kitchen-2"\nmode = "always"\n'
                      '[hub.printing.stations.drinks]\nprinter = "kitchen-2"\nmode = "fallback"\n'
                      "fallback_after_s = 60\n",
            sync_extra="menu_poll_s = 3600\n")
        s = self.state
        me = [sys.executable, str(Path(__file__).resolve())]
        prof = json.dumps(self.profile.__dict__)
        for k in self.kiosk_names:
            self.procs[k] = Proc(k, me + [
                "_kiosk", "--device", k, "--port", str(self.broker.port), "--password-file",
                str(self.broker.creds[k].password_file), "--ledger", str(s / f"{k}.ledger.db"),
                "--profile", prof, "--kiosks", str(self.kiosks), "--phases", "PHASES"], logs / f"{k}.log", kind="kiosk")
        self.procs["kds"] = Proc("kds", me + [
            "_kds", "--port", str(self.broker.port), "--creds", str(self.broker.dir / "credentials"),
            "--ledger", str(s / "kds.ledger.db"), "--prep", json.dumps(list(self.prep))], logs / "kds.log")

    def cloud_mode(self, mode: str) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.cloud_port}/_dev/mode", method="POST",
                                     data=json.dumps({"mode": mode}).encode(),
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=3).read()
        self.cloud_events.append((time.time(), mode))

    def _wait_health(self, device: str, timeout: float = 30) -> None:
        """Until the service's retained health says ready (read as monitor)."""
        from restobox.bus import Bus
        from restobox.contract import topics

        got = threading.Event()
        c = self.broker.creds["monitor-1"]
        b = Bus(device="monitor-1", role="monitor", port=self.broker.port, username=c.username, password=c.password,
                persistent=False)
        b.subscribe(topics.health(device), lambda m: json.loads(m.payload).get("state") == "ready" and got.set())
        b.start()
        try:
            if not got.wait(timeout):
                raise RuntimeError(f"{device} did not become ready; see {self.out / 'logs' / (device + '.log')}")
        finally:
            b.stop()

    def baseline_rtt_ms(self, n: int = 50) -> float | None:
        """The baseline, same run and broker: a message's round trip through
        mosquitto alone (publish, deliver back), p50."""
        from restobox.bus import Bus
        from restobox.contract import topics

        c = self.broker.creds["monitor-1"]
        b = Bus(device="monitor-1", role="monitor", port=self.broker.port, username=c.username, password=c.password,
                persistent=False)
        b.start()
        topic = topics.health("monitor-1")
        try:
            return echo_rtt_ms(b, topic, n)
        finally:
            b.publish(topic, b"", retain=True)
            b.stop()

    # --------------------------------------------------------- the run
    def run(self) -> dict:
        t_setup = time.time()
        self.setup()
        self.procs["cloud"].start()
        wait_http(self.cloud_port, self.procs["cloud"])
        for name in ("hub", "printing", "sync"):
            self.procs[name].start()
            self._wait_health(name)
        self.baseline = self.baseline_rtt_ms()
        start = time.time() + 2.0
        calm_end = start + self.calm_s
        chaos_end = calm_end + self.chaos_s
        self.phases = [("calm", start, calm_end)] + ([("chaos", calm_end, chaos_end)] if self.chaos_s else [])
        for p in self.procs.values():
            if p.kind in ("kiosk", "kds"):
                p.argv = [json.dumps(self.phases) if x == "PHASES" else x for x in p.argv]
                p.start()
        threads = [threading.Thread(target=self._supervise, daemon=True),
                   threading.Thread(target=self._sample, daemon=True)]
        for t in threads:
            t.start()
        print(f"rush: {self.kiosks} kiosks, {len(KDS_DEVICES)} kitchen screens; calm {self.calm_s:.0f} s, "
              f"chaos {self.chaos_s:.0f} s (a kill every {self.kill_every:g} s); set-up {start - t_setup:.1f} s",
              file=sys.stderr)
        _sleep_until(calm_end)
        if self.chaos_s:
            self._chaos_on.set()
            chaos = threading.Thread(target=self._chaos, args=(chaos_end,), daemon=True)
            chaos.start()
            chaos.join()
            self._chaos_on.clear()
        if self.cloud_flaps and self.chaos_s:
            self._cloud_ok()
        drained = self._drain(timeout=max(60.0, self.chaos_s))
        self._stop.set()
        for t in threads:
            t.join(5)
        self.stop_all()
        return self.check(drained)

    def _cloud_ok(self) -> None:
        for _ in range(40):
            try:
                self.cloud_mode("ok")
                return
            except OSError:
                time.sleep(0.25)

    def _supervise(self) -> None:
        """systemd's part: whatever died is started again after RestartSec."""
        while not self._stop.wait(0.1):
            now = time.time()
            with self._lock:
                if not self.broker.running and now >= self.broker_down_until:
                    try:
                        self.broker.start()
                    except Exception as exc:  # noqa: BLE001 - try again next round
                        print(f"rush: broker did not start: {exc}", file=sys.stderr)
                for p in self.procs.values():
                    if not p.alive and now >= p.down_until:
                        p.start()

    def _chaos(self, until: float) -> None:
        order: list[str] = []
        flip_at = time.time() + 5.0
        cloud_down = False
        while time.time() < until:
            if not order:
                order = list(KINDS)
                self.rng.shuffle(order)
            kind = order.pop()
            self.kill(kind)
            if self.cloud_flaps and time.time() >= flip_at:
                cloud_down = not cloud_down
                try:
                    self.cloud_mode(self.rng.choice(["fail", "hang"]) if cloud_down else "ok")
                except OSError:
                    pass  # the cloud receiver is busy; next time
                flip_at = time.time() + self.rng.uniform(4, 10)
            time.sleep(self.kill_every * self.rng.uniform(0.7, 1.3))

    def kill(self, kind: str) -> None:
        now = time.time()
        with self._lock:
            if kind == "broker":
                if not self.broker.running:
                    return
                self.broker.kill()
                self.broker_down_until = now + RESTART_S
                self.kills.append((now, "broker", "mosquitto"))
                return
            cands = [p for p in self.procs.values() if p.kind == kind and p.alive]
            if not cands:
                return
            p = self.rng.choice(cands)
            p.proc.send_signal(signal.SIGKILL)
            p.proc.wait(10)
            p.down_until = now + RESTART_S
            self.kills.append((now, kind, p.name))

    def _sample(self) -> None:
        prev: dict[tuple[str, int], float] = {}
        prev_t = time.monotonic()
        while not self._stop.wait(1.0):
            t = time.monotonic()
            dt = t - prev_t
            prev_t = t
            row = {"t": time.time()}
            pids: dict[str, list[int]] = defaultdict(list)
            with self._lock:
                for p in self.procs.values():
                    if p.pid:
                        pids["kiosks" if p.kind == "kiosk" else p.kind].append(p.pid)
                if self.broker.running and self.broker._proc is not None:
                    pids["broker"].append(self.broker._proc.pid)
            for kind, ps in pids.items():
                cpu, rss = 0.0, 0.0
                for pid in ps:
                    st = proc_stat(pid)
                    if st is None:
                        continue
                    last = prev.get((kind, pid))
                    cpu += (st[0] - last) / dt * 100 if last is not None else 0.0
                    prev[(kind, pid)] = st[0]
                    rss += st[1]
                row[f"{kind}.cpu"] = round(cpu, 1)
                row[f"{kind}.rss"] = round(rss, 1)
            row["backlog"] = self.backlog()
            self.samples.append(row)

    def backlog(self) -> int | None:
        try:
            top = _ro(self.state / "store.db").execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
            cur = _ro(self.state / "sync.db").execute("SELECT seq FROM sync_cursor").fetchone()
        except sqlite3.Error:
            return None
        return top - (cur[0] if cur else 0)

    def _drain(self, timeout: float) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            try:
                if self._drained():
                    return True
            except sqlite3.Error:
                pass
            time.sleep(1.0)
        return False

    def _drained(self) -> bool:
        for k in self.kiosk_names:
            p = self.state / f"{k}.ledger.db"
            if p.exists() and _ro(p).execute("SELECT COUNT(*) FROM orders WHERE answered IS NULL").fetchone()[0]:
                return False
        if self.backlog() not in (0,):
            return False
        pr = _ro(self.state / "printing.db").execute(
            "SELECT COUNT(*) FROM print_job WHERE state IN ('queued', 'printing', 'held')").fetchone()[0]
        if pr:
            return False
        store = _ro(self.state / "store.db")
        open_unacked = store.execute("SELECT COUNT(*) FROM ticket WHERE acked_at IS NULL").fetchone()[0]
        return open_unacked == 0

    def stop_all(self) -> None:
        from restobox.brokerconf import terminate

        for p in self.procs.values():
            if p.kind in ("kiosk", "kds") and p.alive:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            if p.proc is not None:
                terminate(p.proc, 10)
        self.broker.stop()

    # ------------------------------------------------------ the ledger
    def check(self, drained: bool) -> dict:
        s = self.state
        integrity = {}
        dbs = sorted(s.glob("*.db"))
        for p in dbs:
            integrity[p.name] = sqlite3.connect(p).execute("PRAGMA integrity_check").fetchone()[0]
        orders: dict[str, dict] = {}
        for k in self.kiosk_names:
            for oid, created, phase, status, number, answered, attempts in sqlite3.connect(
                    s / f"{k}.ledger.db").execute(
                    "SELECT order_id, created, phase, status, number, answered, attempts FROM orders"):
                orders[oid] = {"kiosk": k, "created": created, "phase": phase, "status": status, "number": number,
                               "answered": answered, "attempts": attempts}
        accepted = {o for o, r in orders.items() if r["status"] == "accepted"}
        unanswered = [o for o, r in orders.items() if r["status"] is None]
        refused = Counter(r["status"] for r in orders.values() if r["status"] not in (None, "accepted"))

        store = sqlite3.connect(s / "store.db")
        hub_orders = {oid: (bd, n) for oid, bd, n in store.execute('SELECT id, business_date, number FROM "order"')}
        number_use = Counter(hub_orders.values())
        tickets = defaultdict(list)
        for tid, oid, st in store.execute("SELECT id, order_id, station FROM ticket"):
            tickets[oid].append((tid, st))

        kds = {tid: {"acks": acks, "draws": draws, "acked": acked, "order_id": oid, "station": st}
               for tid, oid, st, acked, draws, acks in sqlite3.connect(s / "kds.ledger.db").execute(
                   "SELECT ticket_id, order_id, station, acked, draws, acks FROM tickets")}
        printed: Counter = Counter()  # the printer's file name of a job id -> copies on paper
        for d in (s / "printers").iterdir():
            for f in d.glob("*.bin"):
                printed[f.stem.split("-", 1)[1]] += 1
        jobs = {jid: (oid, reprint, interrupted) for jid, oid, reprint, interrupted in sqlite3.connect(
            s / "printing.db").execute("SELECT job_id, order_id, reprint, interrupted FROM print_job")}

        cloud = Counter(oid for (oid,) in sqlite3.connect(s / "cloud.db").execute(
            "SELECT order_id FROM event WHERE kind = 'order.accepted'"))

        lost: dict[str, list[str]] = defaultdict(list)
        dup: dict[str, list[str]] = defaultdict(list)
        reprints = 0
        for oid in accepted:
            r = orders[oid]
            if oid not in hub_orders:
                lost["hub"].append(oid)
                continue
            bd, n = hub_orders[oid]
            if n != r["number"] or number_use[(bd, n)] > 1:
                dup["hub_number"].append(oid)
            for tid, st in tickets[oid]:
                k = kds.get(tid)
                # the ticket's own print job (staff reprints have job ids of their own)
                own = [j for j in jobs if j.startswith(f"{oid}:kitchen:") and j.endswith(f":{st}")
                       and ":reprint-" not in j]
                n_prints = sum(printed.get(_safe(j), 0) for j in own)
                if k is None and n_prints == 0:
                    lost["ticket"].append(tid)
                if k is not None and k["acks"] > 1:
                    dup["ticket_drawn"].append(tid)
                if n_prints > 1:
                    # a second copy is right only when flagged: the job was interrupted, REPRINT on the paper
                    if any(jobs[j][2] for j in own):
                        reprints += n_prints - 1
                    else:
                        dup["ticket_printed"].append(tid)
            c = cloud.get(oid, 0)
            if c == 0:
                lost["cloud"].append(oid)
            elif c > 1:
                dup["cloud"].append(oid)

        # latency: order placed at the kiosk -> its ticket acknowledged by the kitchen screen
        lat = defaultdict(list)
        series = []
        for tid, k in kds.items():
            o = orders.get(k["order_id"])
            if o is None:
                continue
            ms = (k["acked"] - o["created"]) * 1000
            lat[o["phase"]].append(ms)
            series.append((o["created"], ms, o["phase"]))
        prints = []
        for jid, created, printed_at in sqlite3.connect(s / "printing.db").execute(
                "SELECT job_id, created_at, printed_at FROM print_job WHERE printed_at IS NOT NULL"):
            try:
                from datetime import datetime

                prints.append((datetime.fromisoformat(printed_at) - datetime.fromisoformat(created)).total_seconds()
                              * 1000)
            except ValueError:
                pass

        lost_orders = {o for v in lost.values() for o in v}
        dup_orders = {o for v in dup.values() for o in v}
        kill_kinds = Counter(k for _, k, _ in self.kills)
        calm = sorted(lat["calm"])
        chaos = sorted(lat.get("chaos", []))
        acc_times = sorted(orders[o]["answered"] for o in accepted if orders[o]["answered"])
        result = {
            "orders": len(accepted),
            "placed": len(orders),
            "p50_ms": _pct(calm, 50), "p99_ms": _pct(calm, 99), "p999_ms": _pct(calm, 99.9),
            "chaos_p50_ms": _pct(chaos, 50), "chaos_p99_ms": _pct(chaos, 99),
            "baseline_rtt_ms": getattr(self, "baseline", None),
            "lost": len(lost_orders), "duplicated": len(dup_orders), "kills": len(self.kills),
            "kills_by_kind": dict(kill_kinds), "unanswered": len(unanswered), "refused": dict(refused),
            "reprints_flagged": reprints, "drained": drained,
            "accepted_per_s_peak": _peak_rate(acc_times, 10.0),
            "print_p50_ms": _pct(sorted(prints), 50), "print_p99_ms": _pct(sorted(prints), 99),
            "integrity": "ok" if all(v == "ok" for v in integrity.values()) else integrity,
            "max_backlog": max((r.get("backlog") or 0 for r in self.samples), default=0),
            "lost_by": {k: v[:5] for k, v in lost.items()}, "duplicated_by": {k: v[:5] for k, v in dup.items()},
        }
        for kind in ("hub", "broker", "printing", "sync", "kiosks", "kds"):
            cpu = [r[f"{kind}.cpu"] for r in self.samples if f"{kind}.cpu" in r]
            rss = [r[f"{kind}.rss"] for r in self.samples if f"{kind}.rss" in r]
            if cpu:
                result[f"{kind}_cpu_pct_mean"] = round(sum(cpu) / len(cpu), 1)
                result[f"{kind}_rss_mb_max"] = round(max(rss), 1)
        self.series = series
        self.accept_times = acc_times
        return result


def _safe(job_id: str) -> str:
    from restobox.printing.ports import _SAFE_NAME

    return _SAFE_NAME.sub("_", job_id)


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)


def _pct(xs: list[float], p: float) -> float | None:
    from restobox.report import nearest_rank

    v = nearest_rank(xs, p)
    return None if v is None else round(v, 1)


def _peak_rate(times: list[float], window: float) -> float:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return round(best / window, 2)


def _sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.5))


# ================================================================= report
def write_report(rush: Rush, r: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = rush.out
    t0 = rush.phases[0][1]
    kills = [(t - t0, k) for t, k, _ in rush.kills]

    def mark(ax) -> None:
        for name, a, b in rush.phases:
            ax.axvspan(a - t0, b - t0, alpha=0.06 if name == "calm" else 0.12,
                       color="tab:green" if name == "calm" else "tab:red")
        for t, _ in kills:
            ax.axvline(t, color="tab:red", alpha=0.15, linewidth=0.8)

    fig, ax = plt.subplots(figsize=(10, 4))
    for phase, colour in (("calm", "tab:blue"), ("chaos", "tab:orange")):
        pts = [(c - t0, ms) for c, ms, p in rush.series if p == phase]
        if pts:
            ax.scatter(*zip(*pts), s=6, color=colour, label=f"{phase}")
    ax.set_yscale("log")
    ax.axhline(100, color="black", linestyle="--", linewidth=1, label="budget 100 ms")
    mark(ax)
    ax.set_xlabel("seconds since the rush started (red lines: kills)")
    ax.set_ylabel("order placed -> ticket acknowledged (ms)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3.5))
    bins = defaultdict(int)
    for t in rush.accept_times:
        bins[int((t - t0) // 5)] += 1
    if bins:
        xs = sorted(bins)
        ax.bar([x * 5 for x in xs], [bins[x] / 5 for x in xs], width=5, align="edge", color="tab:blue")
    mark(ax)
    ax.set_xlabel("seconds since the rush started")
    ax.set_ylabel("orders accepted per second")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3.5))
    pts = [(row["t"] - t0, row["backlog"]) for row in rush.samples if row.get("backlog") is not None]
    if pts:
        ax.plot(*zip(*pts), color="tab:purple")
    for t, mode in rush.cloud_events:
        ax.axvline(t - t0, color="tab:gray" if mode == "ok" else "black", linestyle=":", linewidth=1)
    mark(ax)
    ax.set_xlabel("seconds since the rush started (dotted: the cloud link cut / back)")
    ax.set_ylabel("events not yet in the cloud")
    fig.tight_layout()
    fig.savefig(out / "backlog.png", dpi=100)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
    for kind in ("hub", "broker", "printing", "sync", "kiosks", "kds"):
        pts = [(row["t"] - t0, row.get(f"{kind}.cpu"), row.get(f"{kind}.rss")) for row in rush.samples
               if f"{kind}.cpu" in row]
        if pts:
            a1.plot([p[0] for p in pts], [p[1] for p in pts], label=kind, linewidth=1)
            a2.plot([p[0] for p in pts], [p[2] for p in pts], label=kind, linewidth=1)
    a1.set_ylabel("CPU %")
    a2.set_ylabel("resident MB")
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "resources.png", dpi=100)
    plt.close(fig)

    lines = [
        "# Rush report", "",
        f"Profile: {args.per_hour:g} orders/h, bursts of {rush.profile.burst_s:g} s at "
        f"{rush.profile.burst_factor:g}x; {rush.kiosks} kiosks, {len(KDS_DEVICES)} kitchen screens, "
        f"prep {rush.prep[0]:g}-{rush.prep[1]:g} s. Calm {rush.calm_s:g} s, chaos {rush.chaos_s:g} s "
        f"(a kill every {rush.kill_every:g} s), then the drain.", "",
        "| figure | value |", "| --- | --- |",
    ]
    for k, v in r.items():
        lines.append(f"| {k} | {json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v} |")
    lines += ["", "![latency](latency.png)", "", "![throughput](throughput.png)", "", "![backlog](backlog.png)", "",
              "![resources](resources.png)", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "result.json").write_text(json.dumps(r, indent=1), encoding="utf-8")


# =================================================================== main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["_kiosk"], ["_kds"]):  # the rush's own child processes
        child = argparse.ArgumentParser(prog=f"rush {argv[0]}")
        child.add_argument("--port", type=int, required=True)
        if argv[0] == "_kiosk":
            for a in ("--device", "--password-file", "--ledger", "--profile", "--phases"):
                child.add_argument(a, required=True)
            child.add_argument("--kiosks", type=int, required=True)
            return kiosk_main(child.parse_args(argv[1:]))
        for a in ("--creds", "--ledger", "--prep"):
            child.add_argument(a, required=True)
        return kds_main(child.parse_args(argv[1:]))
    ap = argparse.ArgumentParser(prog="restobox rush", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 2.5 minutes: 30 s calm, 80 s chaos (>= 30 kills)")
    ap.add_argument("--per-hour", type=float, default=3000.0, help="orders an hour (default 3000)")
    ap.add_argument("--burst-factor", type=float, default=3.0)
    ap.add_argument("--calm-s", type=float, help="seconds without chaos (default 300; quick 30)")
    ap.add_argument("--chaos-s", type=float, help="seconds with chaos (default 300; quick 80; 0: none)")
    ap.add_argument("--kill-every", type=float, help="seconds between kills (default 3; quick 2.2)")
    ap.add_argument("--kiosks", type=int, default=8)
    ap.add_argument("--no-cloud-flaps", action="store_true", help="keep the cloud link up during chaos")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="results folder (default var/rush/<time>)")
    args = ap.parse_args(argv)

    q = args.quick
    calm = args.calm_s if args.calm_s is not None else (30.0 if q else 300.0)
    chaos = args.chaos_s if args.chaos_s is not None else (80.0 if q else 300.0)
    every = args.kill_every or (2.2 if q else 3.0)
    profile = (Profile(args.per_hour, args.burst_factor, burst_s=15, burst_every_s=60, burst_at_s=10) if q
               else Profile(args.per_hour, args.burst_factor))
    prep = (2.0, 8.0) if q else (20.0, 120.0)
    out = Path(args.out) if args.out else REPO / "var" / "rush" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    import logging

    logging.basicConfig(level=logging.WARNING)
    # stopped (Ctrl-C, SIGTERM): every process it started is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rush = Rush(out, kiosks=args.kiosks, profile=profile, calm_s=calm, chaos_s=chaos, kill_every=every, prep=prep,
                seed=args.seed, cloud_flaps=not args.no_cloud_flaps)
    try:
        r = rush.run()
    finally:
        rush.stop_all()
    write_report(rush, r, args)
    print(f"rush: report in {out / 'report.md'}", file=sys.stderr)
    print(json.dumps({k: r[k] for k in ("orders", "p99_ms", "lost", "duplicated", "kills")} |
                     {k: v for k, v in r.items() if k not in ("orders", "p99_ms", "lost", "duplicated", "kills")},
                     ensure_ascii=False))
    return 0 if r["lost"] == 0 and r["duplicated"] == 0 and r["integrity"] == "ok" and r["drained"] else 1


if __name__ == "__main__":
    sys.exit(main())
