"""A new menu from the chain's cloud: applied by the hub in one step in the
middle of a rush, every order priced by the menu it was placed under, kept
across restarts (the store starts without the internet), a broken menu
refused; the sync service brings it down from the cloud."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from restobox import contract
from restobox.contract import MenuMessage, topics
from restobox.data import load_sample_menu
from restobox.menu import Menu, MenuIndex
from restobox.orders import price_order
from tests.support import KUNG_PAO, Device, HubProcess, Kiosk, hub_config, new_order
from tests.test_sync import Cloud, sync_config

pytestmark = pytest.mark.integration

V1 = load_sample_menu()


def menu_v2(version: str = "2026-12-01.1", delta: int = 200) -> Menu:
    """The sample menu with Kung Pao Chicken ``delta`` fen dearer."""
    items = tuple(msgspec.structs.replace(i, price=i.price + delta) if i.id == "kung-pao-chicken" else i
                  for i in V1.items)
    return msgspec.structs.replace(V1, version=version, items=items)


def huge_menu(version: str) -> Menu:
    """The sample menu with enough more dishes (long descriptions) to pass
    what the broker carries (contract.MAX_MENU_BYTES)."""
    from restobox.menu import Name

    base = menu_v2(version)
    long = Name("很长的介绍。" * 150, "A long description. " * 50)
    extra = tuple(msgspec.structs.replace(i, id=f"{i.id}-{n}", description=long)
                  for n in range(4) for i in base.items if not i.combo)
    menu = msgspec.structs.replace(base, items=base.items + extra)
    assert contract.menu_too_large(menu)
    return menu


def order_under(menu: Menu):
    o = new_order(KUNG_PAO, menu_version=menu.version)
    return msgspec.structs.replace(o, expected_total=price_order(o, MenuIndex(menu)).total)


@pytest.fixture
def sync_dev(broker):
    d = Device(broker, "sync", (topics.MENU,), role="sync")
    yield d
    d.close()


def sync_service(broker, cloud: Cloud, workdir) -> HubProcess:
    """The sync service, asking the cloud for its menu and stock every 0.3 s."""
    cfg = sync_config(workdir / "sync.toml", cloud, workdir, broker, menu_poll_s=0.3, health_interval_s=1.0)
    return HubProcess(cfg, workdir / "sync.log", service="sync", device="sync")


def current_menu(monitor, version: str, timeout: float = 10) -> dict:
    return monitor.wait_json(topics.MENU, lambda m: m["menu"]["version"] == version, timeout)


def test_a_menu_update_mid_rush_applies_at_once_and_orders_keep_the_prices_they_were_shown(
        broker, monitor, hub, sync_dev):
    v2 = menu_v2()
    p1, p2 = order_under(V1).expected_total, order_under(v2).expected_total
    assert p2 == p1 + 200
    replies: list[tuple[str, str, int, str]] = []  # (menu the kiosk showed, status, total, reason)
    switched = threading.Event()
    stop = threading.Event()

    def kiosk(name: str) -> None:
        k = Kiosk(broker, name)
        try:
            while not stop.is_set():
                menu = v2 if switched.is_set() and len(replies) % 2 else V1  # both, once v2 is out
                r = k.submit(order_under(menu))
                replies.append((menu.version, r.status, r.total, r.reason or ""))
        finally:
            k.close()

    threads = [threading.Thread(target=kiosk, args=(n,)) for n in ("kiosk-1", "kiosk-2")]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        sync_dev.publish(topics.CLOUD_MENU, contract.encode(MenuMessage(menu=v2, at="")))
        current_menu(monitor, v2.version)  # what every kiosk and screen now gets
        switched.set()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(replies) > 50
    refused = [r for r in replies if r[1] != "accepted"]
    assert refused == [], refused[:5]
    for shown, _, total, _ in replies:
        assert total == (p2 if shown == v2.version else p1)
    assert {r[0] for r in replies} == {V1.version, v2.version}
    import sqlite3

    con = sqlite3.connect(hub.database)
    try:
        rows = con.execute('SELECT menu_version, total FROM "order"').fetchall()
        stored = dict(con.execute("SELECT version, source FROM menu_version").fetchall())
    finally:
        con.close()
    assert {(v, t) for v, t in rows} == {(V1.version, p1), (v2.version, p2)}
    assert stored == {V1.version: "config", v2.version: "cloud"}


def test_after_the_grace_an_old_price_is_refused_and_a_restart_keeps_the_new_menu(broker, monitor, tmp_path, sync_dev):
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=tmp_path / "store.db", extra="menu_grace_s = 1")
    hub = HubProcess(cfg, tmp_path / "hub.log")
    hub.start(monitor)
    k = Kiosk(broker, "kiosk-1")
    try:
        v2 = menu_v2()
        sync_dev.publish(topics.CLOUD_MENU, contract.encode(MenuMessage(menu=v2, at="")))
        current_menu(monitor, v2.version)
        assert k.submit(order_under(V1)).status == "accepted"  # within the grace
        time.sleep(1.5)
        r = k.submit(order_under(V1))
        assert (r.status, r.reason) == ("rejected", "price_mismatch")
        # the internet is gone and the hub restarts: it starts with the cloud's menu
        hub.kill()
        since = len(monitor.all_json(topics.MENU))
        hub.start(monitor)
        menus = monitor.all_json(topics.MENU)[since:]
        assert menus and menus[-1]["menu"]["version"] == v2.version
        assert k.submit(order_under(v2)).status == "accepted"
    finally:
        k.close()
        hub.stop()


def test_a_broken_menu_is_refused_and_the_hub_keeps_its_own(broker, monitor, hub, sync_dev):
    bad = msgspec.structs.replace(menu_v2("2026-12-01.bad"), categories=())  # items in no category
    sync_dev.publish(topics.CLOUD_MENU, contract.encode(MenuMessage(menu=bad, at="")))
    notice = monitor.wait_json(topics.REJECTS, lambda n: n["reason"] == "bad_menu", 10)
    assert "2026-12-01.bad" in notice["message"]["en"] or notice["topic"] == topics.CLOUD_MENU
    k = Kiosk(broker, "kiosk-1")
    try:
        assert k.submit(order_under(V1)).status == "accepted"
    finally:
        k.close()
    assert all(m["menu"]["version"] == V1.version for m in monitor.all_json(topics.MENU))


def test_the_sync_service_brings_the_clouds_menu_to_the_hub(broker, monitor, hub, tmp_path):
    cloud = Cloud(tmp_path).start()
    svc = sync_service(broker, cloud, tmp_path)
    try:
        assert hub.database == tmp_path / "store.db"  # the sync service reads the hub's outbox
        svc.start(monitor)
        v2 = menu_v2("2026-12-24.1")
        httpx.post(f"{cloud.url}/_dev/menu", content=v2.to_json(), timeout=5)
        current_menu(monitor, v2.version, 15)
        # a menu that breaks the rules never reaches the hub
        broken = msgspec.json.decode(menu_v2("2026-12-25.1").to_json())
        broken["items"][0]["modifier_groups"] = ["no-such-group"]
        httpx.post(f"{cloud.url}/_dev/menu", content=msgspec.json.encode(broken), timeout=5)
        h = monitor.wait_json(topics.health("sync"), lambda h: h["details"].get("menu_error") == "menu_invalid", 15)
        assert h["details"]["menu_hub"] == v2.version
        assert monitor.all_json(topics.MENU)[-1]["menu"]["version"] == v2.version
        # nor does one larger than the broker carries (publishing it would cost
        # the sync service its connection at every try), and the next good one does
        httpx.post(f"{cloud.url}/_dev/menu", content=huge_menu("2026-12-26.1").to_json(), timeout=5)
        monitor.wait_json(topics.health("sync"), lambda h: h["details"].get("menu_error") == "menu_too_large", 15)
        v3 = menu_v2("2026-12-27.1")
        httpx.post(f"{cloud.url}/_dev/menu", content=v3.to_json(), timeout=5)
        current_menu(monitor, v3.version, 15)
        assert "2026-12-26.1" not in {m["menu"]["version"] for m in monitor.all_json(topics.MENU)}
    finally:
        svc.stop()
        cloud.stop()


def stock(version: str, **items: int) -> bytes:
    return contract.encode(contract.StockLevels(version=version, items={k.replace("_", "-"): v
                                                                       for k, v in items.items()}))


def test_stock_counts_sell_what_is_there_and_switch_an_item_off_at_zero(broker, monitor, hub, sync_dev, tmp_path):
    k = Kiosk(broker, "kiosk-1")
    try:
        sync_dev.publish(topics.CLOUD_STOCK, stock("s1", kung_pao_chicken=2))
        time.sleep(0.5)
        three = new_order(("kung-pao-chicken", 3, ("spice-mild", "rice-white")))  # only 2 left
        r = k.submit(three)
        assert (r.status, r.reason, r.detail.get("item_id")) == ("rejected", "item_unavailable", "kung-pao-chicken")
        assert k.submit(order_under(V1)).status == "accepted"
        assert k.submit(order_under(V1)).status == "accepted"
        soldout = monitor.wait_json(topics.SOLDOUT, lambda s: "kung-pao-chicken" in s["items"], 5)
        assert soldout["items"] == ["kung-pao-chicken"]
        r = k.submit(order_under(V1))
        assert (r.status, r.reason) == ("rejected", "item_unavailable")
        # the same counts again change nothing; new counts bring it back
        mark = monitor.mark()
        sync_dev.publish(topics.CLOUD_STOCK, stock("s1", kung_pao_chicken=2))
        sync_dev.publish(topics.CLOUD_STOCK, stock("s2", kung_pao_chicken=5))
        monitor.wait_json(topics.SOLDOUT, lambda s: s["items"] == [], 5, after=mark)
        assert k.submit(order_under(V1)).status == "accepted"
        # an older count handed over again (a hub killed before it
        # acknowledged it) does not undo the order counted down since
        sync_dev.publish(topics.CLOUD_STOCK, stock("s1", kung_pao_chicken=2))
        sync_dev.publish(topics.CLOUD_STOCK, stock("s2", kung_pao_chicken=5))
        monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get("stock_repeats", 0) >= 3, 10)
        # counts survive a restart
        hub.process.kill()
        hub.process.start(monitor)
        import sqlite3

        con = sqlite3.connect(hub.database)
        try:
            assert con.execute("SELECT remaining, version FROM stock_level").fetchall() == [(4, "s2")]
        finally:
            con.close()
        # counts for something not on the menu are refused whole
        sync_dev.publish(topics.CLOUD_STOCK, stock("s3", kung_pao_chicken=9, no_such_dish=1))
        monitor.wait_json(topics.REJECTS, lambda n: n["reason"] == "unknown_item" and n["topic"] == topics.CLOUD_STOCK, 5)
    finally:
        k.close()


def test_the_sync_service_brings_stock_counts_from_the_cloud(broker, monitor, hub, tmp_path):
    cloud = Cloud(tmp_path).start()
    svc = sync_service(broker, cloud, tmp_path)
    try:
        httpx.post(f"{cloud.url}/_dev/stock", content=b'{"v":1,"version":"c1","items":{"kung-pao-chicken":0}}',
                   timeout=5)
        svc.start(monitor)
        monitor.wait_json(topics.SOLDOUT, lambda s: s["items"] == ["kung-pao-chicken"], 15)
        mark = monitor.mark()
        httpx.post(f"{cloud.url}/_dev/stock", content=b'{"v":1,"version":"c2","items":{"kung-pao-chicken":3}}',
                   timeout=5)
        monitor.wait_json(topics.SOLDOUT, lambda s: s["items"] == [], 15, after=mark)
    finally:
        svc.stop()
        cloud.stop()


def test_a_menu_in_another_currency_is_refused_and_the_hub_keeps_its_own(broker, monitor, hub, sync_dev):
    usd = msgspec.structs.replace(menu_v2("2026-12-01.usd"), currency="USD")
    sync_dev.publish(topics.CLOUD_MENU, contract.encode(MenuMessage(menu=usd, at="")))
    notice = monitor.wait_json(topics.REJECTS, lambda n: n["reason"] == "bad_menu", 10)
    assert notice["topic"] == topics.CLOUD_MENU
    k = Kiosk(broker, "kiosk-1")
    try:
        r = k.submit(order_under(V1))
        assert (r.status, r.currency) == ("accepted", "CNY")
    finally:
        k.close()
    assert all(m["menu"]["currency"] == "CNY" for m in monitor.all_json(topics.MENU))


def test_the_hub_will_not_start_with_a_menu_in_another_currency(tmp_path):
    menu = tmp_path / "menu.json"
    menu.write_bytes(msgspec.structs.replace(V1, currency="USD").to_json())
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[device]\nid = "hub"\nrole = "hub"\n[hub]\nmenu = "{menu}"\ndatabase = "{tmp_path / "s.db"}"\n')
    r = subprocess.run([sys.executable, "-m", "restobox.cli", "hub", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "priced in USD, but the store sells in CNY" in r.stderr


def test_a_menu_larger_than_the_broker_carries_is_refused_before_it_is_used(tmp_path):
    menu = tmp_path / "menu.json"
    menu.write_bytes(huge_menu("2026-12-26.1").to_json())
    check = subprocess.run([sys.executable, "-m", "restobox.cli", "menu-check", str(menu)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 1 and "too large for the store's bus" in check.stderr
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[device]\nid = "hub"\nrole = "hub"\n[hub]\nmenu = "{menu}"\ndatabase = "{tmp_path / "s.db"}"\n')
    r = subprocess.run([sys.executable, "-m", "restobox.cli", "hub", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "is too large" in r.stderr and "the broker carries at most" in r.stderr


def test_the_largest_menu_fits_the_brokers_packet_limit():
    conf = (Path(__file__).resolve().parent.parent / "restobox" / "broker_config" / "mosquitto.conf").read_text()
    packet = int(re.search(r"^max_packet_size (\d+)$", conf, re.M).group(1))
    # a PUBLISH packet: the payload plus the topic, properties and headers (well under 16 KiB)
    assert contract.MAX_MENU_BYTES + 16 * 1024 <= packet
    assert contract.MAX_STOCK_BYTES + 16 * 1024 <= packet
