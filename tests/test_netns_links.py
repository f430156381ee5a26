"""Orders across real links: the hub, a kiosk and a kitchen screen each in a
network namespace of its own, on a LAN that loses packets, is slow, is cut
for 30 seconds or flaps (tests/netns_support.py builds it and says how).

- hub namespace: the real mosquitto with the project's config (plain MQTT on
  127.0.0.1 for the hub, the TLS listener on the hub's LAN address 10.77.0.1
  with a store CA made by provisioning's code; see
  ``netns_support.start_broker``) and a real ``restobox hub`` process with
  its store.db;
- kiosk namespace: the kiosk's real controller, bus, kiosk.db and outbox in
  a process of its own, driven by a diner's taps through the pay → confirm
  path (``tests.netns_support.kiosk_driver``; no window: a Kivy kiosk costs
  seconds per order on this machine, and the window only draws what the
  controller says — the store-network-down line is drawn when the
  controller is not ``reachable``);
- kitchen-screen namespace: the real kitchen screen (``python -m kds``, the
  fryer station, where spring rolls go) in a Kivy window on Xvfb; its state
  dump says which tickets it shows and what its link banner says.

Every order must reach the hub once (one row in store.db, the number the
kiosk holds), the kitchen once (one ticket on the screen, acknowledged at the
hub) and the kiosk must learn its number. The screen and the kiosk are the
session's: each test checks every order placed so far, so a duplicate that
comes late is caught by the next test.

``./run test`` runs one test of each kind (about a minute; as root, which
``ip netns`` needs: without it they fail, saying why). The longer variants
(more orders through loss, a minute of flapping) are marked ``netns_long``,
which pyproject.toml's addopts leave out of the default run; ask for them
with ``./run test tests/test_netns_links.py -m netns_long``.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from restobox.brokerconf import STANDARD_DEVICES, Broker
from restobox.contract import topics
from tests.netns_support import KioskProcess, Lan, LanUnavailable, device_config, hub_mqtt, lan_mqtt, start_broker
from tests.support import Device, HubProcess, wait
from tests.ui_support import ScreenProcess, Xvfb

pytestmark = pytest.mark.integration

STATION = "fryer"
KDS_DEVICE = "kds-fryer-1"
LINK_LOST = "Connection to the store network lost"
STORE_NETWORK_DOWN = "order(s) waiting for the store hub"


class Store:
    """The three devices on their LAN, and what has been ordered so far."""

    def __init__(self, lan: Lan, broker: Broker, hub: HubProcess, database: Path, screen: ScreenProcess,
                 kiosk: KioskProcess, monitor: Device) -> None:
        self.lan, self.broker, self.hub, self.database = lan, broker, hub, database
        self.screen, self.kiosk, self.monitor = screen, kiosk, monitor
        self.placed: list[dict] = []

    def order(self, timeout: float = 60) -> dict:
        o = self.kiosk.order(timeout)
        self.placed.append(o)
        return o

    def hub_orders(self) -> dict[str, list[tuple]]:
        con = sqlite3.connect(self.database)
        try:
            rows = con.execute('SELECT "id", "number", "offline", "provisional_number" FROM "order"').fetchall()
        finally:
            con.close()
        out: dict[str, list[tuple]] = {}
        for oid, *rest in rows:
            out.setdefault(oid, []).append(tuple(rest))
        return out

    def acked_tickets(self) -> Counter:
        con = sqlite3.connect(self.database)
        try:
            rows = con.execute('SELECT "order_id" FROM "ticket" WHERE "station" = ? AND "acked_at" IS NOT NULL',
                               (STATION,)).fetchall()
        finally:
            con.close()
        return Counter(r[0] for r in rows)

    def check_every_order_once(self, timeout: float) -> dict:
        """Every order placed so far: at the hub once, its number learned by
        the kiosk, on the kitchen screen once and acknowledged from there."""
        ids = [o["order_id"] for o in self.placed]

        def kiosk_knows():
            st = self.kiosk.state(ids)
            return st if all(r is not None and r["state"] == "delivered" and r["number"] for r in
                             st["orders"].values()) else None
        st = wait(kiosk_knows, timeout, "every order delivered from the kiosk's outbox")
        at_hub = self.hub_orders()
        assert len(at_hub) == len(ids), f"the hub has {len(at_hub)} orders, the kiosk placed {len(ids)}"
        numbers = {}
        for o in self.placed:
            [(number, offline, provisional)] = at_hub[o["order_id"]]
            row = st["orders"][o["order_id"]]
            assert row["number"] == number, (o, row, number)
            if o["provisional"]:
                assert (offline, provisional) == (1, o["provisional"]) and row["provisional"] == o["provisional"]
            else:
                assert o["number"] == number
            numbers[o["order_id"]] = number
        assert len(set(numbers.values())) == len(ids), "two orders with one number"

        # "open": the screen's tickets on every page (a second copy of an order would be one more);
        # "tickets": those drawn on the page shown, a full page when there are more
        d = self.screen.wait(lambda d: d["open"] == len(ids) and len(d["tickets"]) == (
            len(ids) if d["pages"] == 1 else len({t["ticket_id"] for t in d["tickets"]})), timeout)
        shown = Counter(t["number"] for t in d["tickets"])
        assert all(n == 1 for n in shown.values()), f"a ticket shown twice: {shown}"
        assert set(shown) <= {f"#{n}" for n in numbers.values()}, shown
        # the screen proves it has drawn them: acknowledged at the hub
        drawn = {t["ticket_id"].split(":")[0] for t in d["tickets"]}
        acked = wait(lambda: (a := self.acked_tickets()) and drawn <= set(a) and a, timeout,
                     "the drawn tickets acknowledged by the kitchen screen")
        assert set(acked) <= set(ids), set(acked) - set(ids)
        return {"kiosk": st, "screen": d}


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    work = tmp_path_factory.mktemp("netns")
    with contextlib.ExitStack() as stack:
        problems: list[str] = []
        lan = Lan(work / "lan")
        stack.callback(lambda: problems.extend(lan.close()))
        try:
            lan.open()
        except LanUnavailable as exc:
            pytest.fail(f"no network namespaces here (these tests need root and iproute2): {exc}")
        broker = start_broker(lan, work / "broker", STANDARD_DEVICES)
        stack.callback(broker.stop)
        with lan.inside("hub"):
            # the hub's readiness is watched from the hub's own box
            monitor = Device(broker, "monitor-1", ("restobox/v1/health/#", topics.station_ticket(STATION)),
                             role="monitor")
        stack.callback(monitor.close)
        database = work / "store.db"
        hub_cfg = device_config(work / "hub.toml", broker, "hub", "hub", hub_mqtt(broker),
                                f'[hub]\ndatabase = "{database}"\nhealth_interval_s = 1\n')
        hub = HubProcess(hub_cfg, work / "hub.log")
        with lan.inside("hub"):
            hub.start(monitor)
        stack.callback(hub.stop)
        x = Xvfb()
        stack.callback(x.close)
        kds_dir = work / "kds"
        kds_dir.mkdir()
        kds_cfg = device_config(kds_dir / "kds.toml", broker, KDS_DEVICE, "kds", lan_mqtt(lan, broker), f"""[kds]
mode = "station"
station = "{STATION}"
cache = "{kds_dir / 'tickets.db'}"
width = 1920
height = 1080
""")
        screen = ScreenProcess(x, kds_cfg, kds_dir)
        with lan.inside("kds"):
            screen.start()
        stack.callback(screen.stop)
        kiosk_dir = work / "kiosk"
        kiosk_cfg = device_config(kiosk_dir / "kiosk.toml", broker, "kiosk-1", "kiosk", lan_mqtt(lan, broker),
                                  f'[kiosk]\ndatabase = "{kiosk_dir / "kiosk.db"}"\nreply_timeout_s = 4\n')
        kiosk = KioskProcess(lan, kiosk_cfg, kiosk_dir / "kiosk.log")
        stack.callback(kiosk.stop)
        screen.wait(lambda st: st["banner"] == "", 20)
        yield Store(lan, broker, hub, database, screen, kiosk, monitor)
    assert not problems, problems


@pytest.fixture
def shop(store):
    """The store with every link clean and up, before and after the test."""
    store.lan.heal()
    yield store
    store.lan.heal()


def test_every_order_reaches_the_hub_and_the_kitchen_once_when_links_lose_a_fifth_of_their_packets(shop):
    _through_loss(shop, 10)


@pytest.mark.netns_long
def test_thirty_orders_through_links_losing_a_fifth_of_their_packets(shop):
    _through_loss(shop, 30)


def _through_loss(shop: Store, n: int) -> None:
    for role in ("kiosk", "kds"):
        shop.lan.impair(role, loss=20)
    for _ in range(n):
        shop.order(timeout=90)
    shop.check_every_order_once(120)
    stats = shop.lan.stats()
    assert stats["kiosk"]["lost"] > 0 and stats["kds"]["lost"] > 0, stats  # the links did lose packets


def test_with_300_ms_each_way_the_kiosk_shows_each_orders_number(shop):
    for role in ("kiosk", "kds"):
        shop.lan.impair(role, delay_ms=300)
    placed = [shop.order() for _ in range(6)]
    # the hub answered within the kiosk's reply timeout: the diner holds the real number
    assert all(o["number"] and o["provisional"] is None for o in placed), placed
    assert all(o["seconds"] >= 0.6 for o in placed), placed  # the round trip did take its 600 ms
    shop.check_every_order_once(60)


def test_a_30_second_partition_gives_provisional_numbers_that_the_kiosk_exchanges_when_it_heals(shop):
    lan = shop.lan
    for role in ("kiosk", "kds"):
        lan.impair(role, cut=True)
    cut_at = time.monotonic()
    # both notice by themselves (keepalive), the link still up
    wait(lambda: shop.kiosk.state()["reachable"] is False, 20, "the kiosk to see the store network is down")
    shop.screen.wait(lambda st: LINK_LOST in st["banner"], 20)
    during = [shop.order(timeout=20) for _ in range(3)]
    assert [o["number"] for o in during] == [None] * 3
    provisional = [o["provisional"] for o in during]
    assert all(p and p.startswith("K1-") for p in provisional) and len(set(provisional)) == 3, provisional
    st = shop.kiosk.state([o["order_id"] for o in during])
    assert st["staff"] and f"3 {STORE_NETWORK_DOWN}" in st["staff"], st  # the staff line on the kiosk
    assert all(r["state"] == "queued" for r in st["orders"].values()), st
    at_hub = shop.hub_orders()
    assert not any(o["order_id"] in at_hub for o in during)
    assert time.monotonic() - cut_at < 30, "placing the orders took the whole partition"
    # the partition lasts its 30 s; all the while nothing of these orders leaks to the hub
    # and the screen keeps saying the store network is lost
    while time.monotonic() - cut_at < 30:
        assert not any(o["order_id"] in shop.hub_orders() for o in during)
        assert LINK_LOST in shop.screen.state()["banner"]
        time.sleep(0.5)
    lan.heal()
    healed_at = time.monotonic()
    shop.check_every_order_once(60)
    learned = time.monotonic() - healed_at
    # the kitchen's ticket carries the number the diner holds (the screen shows "#12 · K1-001")
    sent = shop.monitor.all_json(topics.station_ticket(STATION))
    for o in during:
        last = max((t for t in sent if t["order_id"] == o["order_id"]), key=lambda t: t["revision"])
        assert last["provisional_number"] == o["provisional"], (o, last)
    st = shop.kiosk.state()
    assert st["reachable"] and st["staff"] is None, st
    shop.screen.wait(lambda d: d["banner"] == "", 20)
    print(f"after healing, the kiosk learned the numbers of its queued orders in {learned:.1f} s")


def test_a_flapping_link_still_gets_every_order_through_once(shop):
    """Down and up every 2–3 s for 20 s: TCP rides through each blip (the
    keepalive is 5 s), so orders are late, not lost or doubled."""
    _through_flapping(shop, 20, (2, 3))


@pytest.mark.netns_long
def test_a_minute_of_flapping_that_drops_the_connections_still_gets_every_order_through_once(shop):
    """Down 2–8 s, up 2–3 s, for a minute: long enough down to lose the
    broker (keepalive), so orders also go through the outbox."""
    _through_flapping(shop, 60, (2, 8))


def _through_flapping(shop: Store, seconds: float, down_s: tuple[float, float]) -> None:
    stop = threading.Event()
    downs = Counter()
    before = shop.lan.stats()

    def flap(role: str, rng: random.Random) -> None:
        """``role``'s link down and up on a schedule of its own (the kiosk's
        and the screen's are not in step)."""
        try:
            while not stop.is_set():
                shop.lan.set_link(role, False)
                downs[role] += 1
                if stop.wait(rng.uniform(*down_s)):
                    break
                shop.lan.set_link(role, True)
                stop.wait(rng.uniform(2, 3))
        finally:
            shop.lan.set_link(role, True)

    flappers = [threading.Thread(target=flap, args=(role, random.Random(f"16-{role}")), name=f"flap-{role}")
                for role in ("kiosk", "kds")]
    end = time.monotonic() + seconds
    for t in flappers:
        t.start()
    placed = []
    try:
        while time.monotonic() < end:
            placed.append(shop.order(timeout=30))
            stop.wait(1.0)  # a diner about every second (an order takes 0.1 s when the link is up)
    finally:
        stop.set()
        for t in flappers:
            t.join()
    after = shop.lan.stats()
    assert min(downs.values()) >= seconds // (down_s[1] + 3), downs
    # packets for the kiosk and the screen did meet a link that was down
    assert after["kiosk"]["down"] > before["kiosk"]["down"] and after["kds"]["down"] > before["kds"]["down"], after
    shop.check_every_order_once(90)
    print(f"{len(placed)} orders over {dict(downs)} flaps: {sum(1 for o in placed if o['provisional'])} with a "
          f"provisional number, the slowest confirmed in {max(o['seconds'] for o in placed):.1f} s")
