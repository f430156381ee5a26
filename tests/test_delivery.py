"""Delivery platforms' orders, end to end: the platform (``restobox
delivery-dev``, its own process) posts signed webhooks to ``restobox cloud``
on PostgreSQL, the store's real sync service takes the order down to the
real hub, a real kitchen screen (Kivy under Xvfb) shows it and a cook bumps
it, and the platform hears "accepted", "refused: sold out", "ready for the
rider"; a diner's cancel voids the order on the kitchen screen; a store whose
link is down is closed on the platform and opened again when it is back; an
order the kitchen cannot see is never accepted."""

from __future__ import annotations

import uuid

import httpx
import pytest

from restobox import contract
from restobox.contract import StaffCommand, topics
from tests.cloud_support import ChainCloud, free_port
from tests.delivery_support import DeliveryDev
from tests.support import Device, HubProcess, wait
from tests.test_kds_station_ui import kds_config
from tests.test_sync import sync_config
from tests.ui_support import ScreenProcess, Xvfb

pytestmark = pytest.mark.integration

SECRET = b"platform-secret-for-tests"
OFFLINE_AFTER_S = 4.0
SKUS = {"mt-fried-rice": "yangzhou-fried-rice", "mt-chow-fun": "beef-chow-fun", "mt-kung-pao": "kung-pao-chicken",
        "mt-spice-mild": "spice-mild", "mt-rice-white": "rice-white"}
FRIED_RICE = {"sku": "mt-fried-rice", "name": "扬州炒饭", "qty": 1, "unit_price": 2600}
CHOW_FUN = {"sku": "mt-chow-fun", "name": "干炒牛河", "qty": 2, "unit_price": 3200}
KUNG_PAO = {"sku": "mt-kung-pao", "name": "宫保鸡丁", "qty": 1, "unit_price": 3200,
            "options": [{"sku": "mt-spice-mild", "name": "微辣", "price": 0},
                        {"sku": "mt-rice-white", "name": "白米饭", "price": 0}]}


def staff_86(broker, item: str) -> None:
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind="eighty_six", item_id=item)
        staff.publish(topics.staff_command("staff-1"), contract.encode(cmd))
        assert staff.wait_json(topics.staff_reply("staff-1"))["ok"] is True
    finally:
        staff.close()


def test_delivery_orders_through_the_cloud_the_hub_and_the_kitchen_screen(broker, monitor, hub, tmp_path):
    cloud_port = free_port()
    platform = DeliveryDev(tmp_path / "platform", secret=SECRET, accept_timeout=60,
                           webhook_url=f"http://127.0.0.1:{cloud_port}/v1/delivery/mt/webhook",
                           webhook_retry=[2, 2, 4, 8]).start()
    secret_file = tmp_path / "mt.secret"
    secret_file.write_bytes(SECRET)
    cloud = ChainCloud(tmp_path / "cloud", "postgres", port=cloud_port, config=f"""
[cloud]
offline_after_s = {OFFLINE_AFTER_S}

[[cloud.platform]]
name = "mt"
url = "{platform.url}"
app_id = "chain-1"
secret_file = "{secret_file}"
accept_within_s = 6
""")
    x = Xvfb()
    screen = sync = None
    try:
        cloud.start()
        admin = cloud.admin()
        assert httpx.put(f"{cloud.url}/v1/admin/delivery/mt/shops", json={"sh-1": "store-1"}, headers=admin,
                         timeout=10).status_code == 200
        assert httpx.put(f"{cloud.url}/v1/admin/delivery/mt/skus", json=SKUS, headers=admin,
                         timeout=10).status_code == 200
        assert hub.database == tmp_path / "store.db"  # what sync_config names
        sync = HubProcess(sync_config(tmp_path / "sync.toml", cloud, tmp_path, broker, backoff_min_s=0.2,
                                      backoff_max_s=1.0, poll_s=0.2, health_interval_s=1.0, menu_poll_s=0,
                                      preorder_poll_s=0, delivery=True, delivery_wait_s=2),
                          tmp_path / "sync.log", service="sync", device="sync")
        sync.start(monitor)
        screen = ScreenProcess(x, kds_config(tmp_path / "kds.toml", broker, tmp_path), tmp_path)
        screen.start()

        def state(pid: str) -> str:
            return platform.get(pid)["state"]

        def number(pid: str) -> int:
            got = [o for o in cloud.get("/v1/admin/delivery/orders") if o["platform_order_id"] == pid]
            return got[0]["number"] if got else 0

        # the cloud told the platform the shop is open: the store is in contact (a store never seen
        # has its shop closed)
        wait(lambda: (log := platform.shops().get("sh-1", {}).get("status_log")) and log[-1][1] is True,
             40, "the shop opened at the platform by the cloud")
        # 1. accepted once the hub has it and the kitchen screen shows it; the cook's bump is "ready for the rider"
        pid = platform.order("sh-1", [FRIED_RICE, KUNG_PAO])["platform_order_id"]
        wait(lambda: state(pid) == "accepted", 40, "the platform order accepted")
        n = number(pid)
        assert n >= 1
        screen.wait(lambda st: any(t["number"] == f"#{n}" for t in st["tickets"]))
        screen.tap_header(n)
        wait(lambda: state(pid) == "ready", 40, "the platform told the order is ready for the rider")

        # 2. refused: sold out at the store (the webhook comes late, after the item ran out);
        #    and the item is then sold out on the platform too (库存同步)
        platform.fault("webhook_down", count=1)
        pid2 = platform.order("sh-1", [CHOW_FUN])["platform_order_id"]
        staff_86(broker, "beef-chow-fun")
        wait(lambda: state(pid2) == "refused", 40, "the platform order refused")
        assert platform.get(pid2)["refuse_reason"] == "sold_out"
        wait(lambda: "mt-chow-fun" in platform.shops()["sh-1"]["sold_out"], 40, "the sku sold out on the platform")
        platform.order("sh-1", [CHOW_FUN], expect=409)  # diners cannot order it any more

        # 3. the diner cancels: the order leaves the kitchen screen, voided at the hub
        pid3 = platform.order("sh-1", [FRIED_RICE])["platform_order_id"]
        wait(lambda: state(pid3) == "accepted", 40, "the third order accepted")
        n3 = number(pid3)
        screen.wait(lambda st: any(t["number"] == f"#{n3}" for t in st["tickets"]))
        platform.cancel(pid3)
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["number"] == n3 and u["state"] == "voided", 40)
        screen.wait(lambda st: all(t["number"] != f"#{n3}" for t in st["tickets"]))

        # 4. the store's link goes down: closed on the platform within its grace; back: open again
        sync.kill()
        down = __import__("time").monotonic()
        wait(lambda: platform.shops()["sh-1"]["open"] is False, OFFLINE_AFTER_S + 10, "the shop closed")
        closed_after = __import__("time").monotonic() - down
        assert closed_after <= OFFLINE_AFTER_S + 3, closed_after
        assert platform.order("sh-1", [FRIED_RICE], expect=409)["code"] == "shop_closed"
        sync.start(monitor)
        wait(lambda: platform.shops()["sh-1"]["open"] is True, 40, "the shop open again")
        pid4 = platform.order("sh-1", [FRIED_RICE])["platform_order_id"]
        wait(lambda: state(pid4) == "accepted", 40, "an order after the link came back")

        # 5. the kitchen cannot see it (the hub is down, the link is up): never accepted at the platform;
        #    refused at its deadline, and voided at the hub when it comes back and takes it late
        hub.process.kill()
        pid5 = platform.order("sh-1", [FRIED_RICE])["platform_order_id"]
        wait(lambda: state(pid5) == "refused", 40, "the order refused at its deadline")
        assert platform.get(pid5)["refuse_reason"] == "busy"
        hub.process.start(monitor)
        oid5 = [o for o in cloud.get("/v1/admin/delivery/orders") if o["platform_order_id"] == pid5][0]["order_id"]
        # if the hub took it when it came back, the store voided it: nobody will fetch it
        wait(lambda: all(t.get("order_id") != oid5 for t in screen.state()["tickets"]), 20)
        calls = [c for c in platform.calls() if pid5 in c["path"]]
        assert not any(c["path"].endswith("/accept") for c in calls), calls
    finally:
        if screen is not None:
            screen.stop()
        if sync is not None:
            sync.stop()
        x.close()
        cloud.close()
        platform.stop()
