"""A store that takes phone payments, on this machine: what the phone
payment's tests, its soak and ``bench/phone_pay.py`` run.

A private mosquitto with the project's broker_config, and each in its own
process: ``restobox hub`` (table QR orders held until paid, [paygate] on),
``restobox sync`` (the outbox, and the gateway's notifications passed down
from the cloud, enquiries, closes and refunds), ``restobox web`` (the table
QR page), ``restobox cloud`` (the chain's cloud, which receives the
gateway's notifications) and ``restobox paygate-dev`` (the gateway). Every
process can be killed and started again; ``stop`` leaves none behind.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec

from restobox.brokerconf import STANDARD_DEVICES, Broker, free_port, terminate

KEY = "dev-merchant-key-7f3a9c"
MCH = "m-demo-store"
TOKEN = "dev-token"
MANAGER_PIN = "2468"
ADMIN_TOKEN = "paystack-admin"
STORE = "[store]\nid = \"store-1\"\nname_zh = \"川味小馆\"\nname_en = \"Sichuan Kitchen\"\ntimezone = \"Asia/Shanghai\"\n\n"


class PayStack:
    """The store's phone-payment path in ``workdir``. ``expire_s``: how
    long a phone payment stays open; ``query_first_s``: the first enquiry."""

    SERVICES = ("paygate", "cloud", "hub", "sync", "web")

    def __init__(self, workdir: Path, *, expire_s: int = 30, query_first_s: float = 1.0, query_max_s: float = 5.0,
                 notify_delay_s: float = 0.05, web: bool = True, tables: int = 20,
                 gateway_timeout_s: float = 3.0) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.expire_s, self.query_first_s, self.query_max_s = expire_s, query_first_s, query_max_s
        self.notify_delay_s = notify_delay_s
        self.gateway_timeout_s = gateway_timeout_s
        self.with_web = web
        self.tables = tables
        self.broker: Broker | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.healths: dict[str, dict] = {}  # device -> its latest retained health
        self._monitor = None
        self.ports = {"paygate": free_port(), "cloud": free_port(), "web": free_port()}
        self.key_file = self.dir / "paygate.key"
        self.key_file.write_text(KEY + "\n", encoding="utf-8")
        (self.dir / "cloud.token").write_text(TOKEN + "\n", encoding="utf-8")
        self.store_db = self.dir / "store.db"
        # a manager's PIN for refunds at the counter
        (self.dir / "pins").write_text(f"wang:{hashlib.sha256(MANAGER_PIN.encode()).hexdigest()}\n", encoding="utf-8")

    # ------------------------------------------------------------ addresses
    @property
    def paygate_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['paygate']}"

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['cloud']}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    # --------------------------------------------------------------- config
    def _mqtt(self, device: str) -> str:
        assert self.broker is not None
        return (f"[mqtt]\nhost = \"127.0.0.1\"\nport = {self.broker.port}\n"
                f"password_file = \"{self.broker.creds[device].password_file}\"\nkeepalive_s = 5\n"
                "reconnect_max_s = 1\n\n")

    def _paygate(self) -> str:
        return (f"[paygate]\nenabled = true\nurl = \"{self.paygate_url}\"\nmch_id = \"{MCH}\"\n"
                f"key_file = \"{self.key_file}\"\nexpire_s = {self.expire_s}\ntimeout_s = {self.gateway_timeout_s}\n"
                f"query_first_s = {self.query_first_s}\nquery_max_s = {self.query_max_s}\nnotify_wait_s = 10\n"
                "probe_s = 1\n\n")

    def _sync_section(self) -> str:
        return (f"[sync]\ncloud_url = \"{self.cloud_url}\"\ntoken_file = \"{self.dir / 'cloud.token'}\"\n"
                f"database = \"{self.dir / 'sync.db'}\"\nstore_database = \"{self.store_db}\"\n"
                "health_interval_s = 1\npoll_s = 0.5\nmenu_poll_s = 0\npreorder_poll_s = 0\n"
                "backoff_min_s = 0.2\nbackoff_max_s = 2\n\n")

    def write_configs(self) -> None:
        d = self.dir
        (d / "hub.toml").write_text(
            "[device]\nid = \"hub\"\nrole = \"hub\"\n" + STORE + self._mqtt("hub")
            + f"[hub]\ndatabase = \"{self.store_db}\"\nhealth_interval_s = 1\n\n"
            + f"[hub.till]\nhold_unpaid = [\"qr\"]\nmanager_pin_file = \"{self.dir / 'pins'}\"\n\n"
            + self._paygate(), encoding="utf-8")
        (d / "sync.toml").write_text(
            "[device]\nid = \"sync\"\nrole = \"sync\"\n" + STORE + self._mqtt("sync") + self._sync_section()
            + self._paygate(), encoding="utf-8")
        (d / "web.toml").write_text(
            "[device]\nid = \"web\"\nrole = \"web\"\n" + STORE + self._mqtt("web")
            + f"[web]\nhost = \"127.0.0.1\"\nport = {self.ports['web']}\npublic_url = \"{self.web_url}\"\n"
            + f"table_count = {self.tables}\nreply_timeout_s = 3\nhealth_interval_s = 1\n"
            + f"qr_dir = \"{d / 'qr'}\"\n\n" + self._sync_section() + self._paygate(), encoding="utf-8")

    # ------------------------------------------------------------ processes
    def argv(self, name: str) -> list[str]:
        py = [sys.executable, "-m", "restobox.cli"]
        if name == "paygate":
            return py + ["paygate-dev", "--port", str(self.ports["paygate"]), "--db", str(self.dir / "paygate.db"),
                         "--mch-id", MCH, "--key-file", str(self.key_file),
                         "--notify-delay", str(self.notify_delay_s), "--notify-retry", "0.5,1,2,4,8"]
        if name == "cloud":  # the chain's cloud on a SQLite file, the store enrolled (prepare_cloud)
            return py + ["cloud", "--database", self.cloud_database, "serve", "--port", str(self.ports["cloud"])]
        return py + [name, "--config", str(self.dir / f"{name}.toml")]

    def spawn(self, name: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items()
               if k not in ("RESTOBOX_MQTT_PASSWORD", "RESTOBOX_CLOUD_TOKEN", "RESTOBOX_PAYGATE_KEY")}
        with open(self.dir / f"{name}.log", "ab") as log:
            p = subprocess.Popen(self.argv(name), stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs[name] = p
        return p

    def start(self, timeout: float = 30) -> "PayStack":
        if self.broker is None:
            self.broker = Broker(self.dir / "broker").start_with_devices(STANDARD_DEVICES)
        if self._monitor is None:
            self._watch()
        self.write_configs()
        self.prepare_cloud()
        try:
            # the sync service reads the store database the hub makes
            for wave in (("paygate", "cloud", "hub"), ("sync", "web")):
                names = [n for n in wave if n != "web" or self.with_web]
                for name in names:
                    self.spawn(name)
                for name in names:
                    self.wait_ready(name, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def cloud_database(self) -> str:
        return f"sqlite:///{self.dir / 'cloud.db'}"

    def prepare_cloud(self) -> None:
        """The cloud's database with the store enrolled (again: a no-op)."""
        from restobox.cloud import db as cdb
        from restobox.cloud.chain import Chain

        database = cdb.connect(self.cloud_database, pool=1)
        try:
            cdb.migrate(database)
            Chain(database).enroll("store-1", "store-1", TOKEN)
            Chain(database).issue("admin", "office", ADMIN_TOKEN)
        finally:
            database.close()

    def notifications(self) -> list[dict]:
        """The gateway's notifications the cloud has kept (its office API)."""
        return httpx.get(f"{self.cloud_url}/v1/admin/paygate", timeout=30,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()

    def wait_ready(self, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            p = self.procs[name]
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited ({p.returncode}):\n{self.log(name)[-3000:]}")
            if self._ready(name):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not become ready:\n{self.log(name)[-3000:]}")
            time.sleep(0.05)

    def _ready(self, name: str) -> bool:
        try:
            if name == "paygate":
                return httpx.get(f"{self.paygate_url}/_dev/stats", timeout=1).status_code == 200
            if name == "cloud":
                return httpx.get(f"{self.cloud_url}/healthz", timeout=1).status_code == 200
            if name == "web":
                return httpx.get(f"{self.web_url}/healthz", timeout=1).json().get("state") == "ready"
        except (httpx.HTTPError, ValueError):
            return False
        return self._health_state(name) == "ready"

    def _health_state(self, device: str) -> str | None:
        h = self.healths.get(device)
        return h.get("state") if h else None

    def bus(self, device: str, role: str):
        """A connected client of the store's broker as ``device`` (one of
        STANDARD_DEVICES), for the caller to stop."""
        from restobox.bus import Bus

        assert self.broker is not None
        c = self.broker.creds[device]
        b = Bus(device=device, role=role, host=self.broker.host, port=self.broker.port, username=c.username,
                password=c.password, persistent=False, reconnect_max_s=1)
        return b

    def _watch(self) -> None:
        """Every service's retained health, as it changes."""
        self._monitor = self.bus("monitor-1", "monitor")

        def got(m) -> None:
            try:
                h = msgspec.json.decode(m.payload)
            except msgspec.DecodeError:
                return
            if isinstance(h, dict):
                self.healths[m.topic.rsplit("/", 1)[-1]] = h

        self._monitor.subscribe("restobox/v1/health/+", got)
        self._monitor.start()
        self._monitor.wait_connected(10)

    def log(self, name: str) -> str:
        p = self.dir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill(self, name: str) -> None:
        """SIGKILL: no goodbye, as a power cut or the OOM killer."""
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)

    def restart(self, name: str, *, wait: bool = True) -> None:
        self.kill(name)
        self.healths.pop(name, None)
        self.spawn(name)
        if wait:
            self.wait_ready(name)

    def kill_in_turn(self, names: tuple[str, ...], stop, every: tuple[float, float] = (2.0, 4.0),
                     seed: int = 7) -> list[str]:
        """Until ``stop`` (a threading.Event) is set: every ``every`` seconds
        (at random between the two) a SIGKILL of the next of ``names``, in
        turn, started again at once (not awaited). Returns the names killed,
        in order. Run it in a thread of its own."""
        import random

        rng = random.Random(seed)
        kills: list[str] = []
        while not stop.wait(rng.uniform(*every)):
            name = names[len(kills) % len(names)]
            self.restart(name, wait=False)
            kills.append(name)
        return kills

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                terminate(p, 10)
        self.procs.clear()
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> "PayStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --------------------------------------------------------- the gateway
    def fault(self, mode: str, count: int = 0, **kw) -> dict:
        r = httpx.post(f"{self.paygate_url}/_dev/fault", json={"mode": mode, "count": count, **kw}, timeout=5)
        r.raise_for_status()
        return r.json()

    def trades(self) -> list[dict]:
        return httpx.get(f"{self.paygate_url}/_dev/trades", timeout=30).json()

    def wallet_pay(self, out_trade_no: str) -> dict:
        """The diner confirms in the wallet (without a browser)."""
        return httpx.post(f"{self.paygate_url}/_dev/pay", json={"out_trade_no": out_trade_no}, timeout=10).json()


# ------------------------------------------------------------------ diners
ITEMS = ("spring-rolls", "fries", "potstickers", "mango-pudding")  # no choices to make


def diner(stack: PayStack, table: str, rng, http: httpx.Client, *, abandon: float = 0.08,
          check: float = 0.5, deadline_s: float = 120.0, again_s: float = 0.3) -> dict:
    """One diner through the page's own HTTP API, as the page does it:
    order (the same order again until the hub answers), ask to pay (the
    same payment on every retry), pay in the wallet — or leave it unpaid
    (``abandon``) — and sometimes come back to the page (``check``).
    ``again_s``: the wait before trying again (the page's own is longer).
    Returns what happened."""
    import uuid as _uuid

    end = time.monotonic() + deadline_s
    oid = str(_uuid.uuid4())
    body = {"order_id": oid, "table": table,
            "lines": [{"item_id": rng.choice(ITEMS), "qty": rng.randint(1, 3)}]}
    out = {"order_id": oid, "placed": False, "paid_in_wallet": 0, "abandoned": False, "retries": 0}
    while time.monotonic() < end:
        try:
            r = http.post(f"{stack.web_url}/api/orders", json=body).json()
        except (httpx.HTTPError, ValueError):
            r = {"status": "network"}
        if r.get("status") == "accepted":
            out["placed"] = True
            break
        if r.get("status") in ("rejected", "bad_request"):
            return out
        out["retries"] += 1
        time.sleep(again_s)
    if not out["placed"]:
        return out
    if rng.random() < abandon:
        out["abandoned"] = True
        try:  # asks to pay, goes to the wallet, never pays
            http.post(f"{stack.web_url}/api/orders/{oid}/pay")
        except httpx.HTTPError:
            pass
        return out
    while time.monotonic() < end:
        try:
            r = http.post(f"{stack.web_url}/api/orders/{oid}/pay").json()
        except (httpx.HTTPError, ValueError):
            r = {"status": "network"}
        st = r.get("status")
        if st in ("paid", "checking"):
            break
        if st == "redirect":
            try:
                w = http.post(r["cashier_url"] + "/pay", headers={"Accept": "application/json"}).json()
            except (httpx.HTTPError, ValueError):
                w = {}
            if w.get("status") in ("SUCCESS", "REFUND"):
                out["paid_in_wallet"] += 1
                if rng.random() < check:
                    try:
                        http.post(f"{stack.web_url}/api/orders/{oid}/pay/check")
                    except httpx.HTTPError:
                        pass
                break
        elif st == "rejected":  # voided, or paid by then
            break
        out["retries"] += 1
        time.sleep(again_s)
    return out


# ------------------------------------------------------------------ the check
def ledger_vs_gateway(stack: PayStack) -> dict:
    """The store's ledger against the gateway's records, every phone
    payment of every order: ``lost`` (money the gateway took or gave back
    that the ledger does not have, or the other way round), ``mismatched``
    (another amount), ``double_charges`` (orders the gateway kept more money
    for than the order's total), ``open`` (payments still open or still to
    give back), and the orders each concerns."""
    import sqlite3

    trades = {t["out_trade_no"]: t for t in stack.trades()}
    con = sqlite3.connect(f"file:{stack.store_db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT entry_id, kind, amount, order_id, reference, stray FROM payment "
                           "WHERE method = 'gateway'").fetchall()
        totals = dict(con.execute('SELECT id, total FROM "order"').fetchall())
        intents = con.execute("SELECT merchant_no, order_id, state FROM pay_intent").fetchall()
    finally:
        con.close()
    ledger = {e: (k, a, o) for e, k, a, o, _, _ in rows}
    # refunds made at the counter name the payment (its merchant number) in their reference
    counter_back: dict[str, int] = {}
    for _, k, a, _, ref, stray in rows:
        if k == "refund" and not stray:
            counter_back[ref] = counter_back.get(ref, 0) + a
    order_of = {m: o for m, o, _ in intents}
    lost, mismatched = [], []
    kept: dict[str, int] = {}
    for no, t in trades.items():
        charged = t["charged"] if t["status"] in ("SUCCESS", "REFUND") else None
        paid = ledger.get(f"{no}:paid")
        if charged is not None:
            if paid is None:
                lost.append(("gateway took, ledger has not", no))
            elif paid[1] != charged:
                mismatched.append((no, paid[1], charged))
            oid = order_of.get(no, "?")
            kept[oid] = kept.get(oid, 0) + charged - t["refunded"]
        elif paid is not None:
            lost.append(("ledger has, gateway did not take", no))
        back = ledger.get(f"{no}:refund")
        given = (back[1] if back is not None else 0) + counter_back.get(no, 0)
        if t["refunded"] and back is None and no not in counter_back:
            lost.append(("gateway gave back, ledger has not", no))
        elif given != t["refunded"]:
            mismatched.append((f"{no}:refund", given, t["refunded"]))
    for entry, (kind, _, _) in ledger.items():
        if entry.endswith((":paid", ":refund")) and entry.rsplit(":", 1)[0] not in trades:
            lost.append(("ledger has, gateway never made", entry))
    for ref in counter_back:
        if ref not in trades:
            lost.append(("ledger gave back, gateway never made", ref))
    double = sorted(o for o, k in kept.items() if k > totals.get(o, 0))
    still = sorted(m for m, _, s in intents if s in ("open", "refund_due", "refunding"))
    return {"trades": len(trades), "ledger_rows": len(ledger), "lost": lost, "mismatched": mismatched,
            "double_charges": double, "open": still}
