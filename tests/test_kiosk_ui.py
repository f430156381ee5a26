"""The diner's kiosk in a real Kivy window (portrait) under Xvfb, driven by
real X clicks (xdotool), against the real broker and hub: a full order with
modifiers, paid at the counter, reaches the wok station.

RESTOBOX_DOCS_SCREENSHOTS=docs/screenshots keeps the screenshots for the README.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from restobox.contract import topics
from tests.support import kiosk_config
from tests.ui_support import TouchAppProcess, Xvfb

pytestmark = pytest.mark.integration


class KioskProcess(TouchAppProcess):
    """``python -m kiosk`` on its own Xvfb; taps buttons by their view-model id."""

    MODULE = NAME = "kiosk"

    def on(self, screen: str, timeout: float = 15.0, **more) -> dict:
        return self.wait(lambda st: st["screen"] == screen and all(st.get(k) == v for k, v in more.items()),
                         timeout)


def start_kiosk(broker, tmp_path: Path, size: str):
    w, h = (int(v) for v in size.split("x"))
    x = Xvfb(w, h)
    k = KioskProcess(x, kiosk_config(tmp_path / "kiosk.toml", broker), tmp_path, size)
    try:
        k.start()
    except BaseException:
        x.close()
        raise
    return x, k


@pytest.fixture
def kiosk_screen(broker, hub, tmp_path):
    x, k = start_kiosk(broker, tmp_path, "1080x1920")
    yield k
    k.stop()
    x.close()


def order_kung_pao(k: KioskProcess, lang: str, shots: bool = False) -> int:
    """attract -> language -> takeaway -> menu -> kung pao (hot, brown rice) -> cart -> counter -> number."""
    k.wait(lambda st: st["menu"], 20)  # the hub's retained menu arrived
    if shots:
        k.keep("kiosk-attract.png")
    k.tap(f"lang:{lang}")
    k.on("service", lang=lang)
    k.tap("service:takeaway")
    k.wait(lambda st: "next" in st["buttons"])
    k.tap("next")
    k.on("menu")
    k.tap("category:wok-dishes")
    k.tap("item:kung-pao-chicken")
    k.on("item")
    k.tap("option:spice-hot")
    k.tap("option:rice-brown")
    k.tap("option:hold-cilantro")
    time.sleep(0.3)
    if shots:
        k.keep("kiosk-item.png")
    k.tap("add")
    k.on("menu")
    k.wait(lambda st: "cart" in st["buttons"])
    if shots:
        k.keep("kiosk-menu.png")
    k.tap("cart")
    k.on("cart")
    if shots:
        k.keep("kiosk-cart.png")
    else:  # for a look at the small screen; not kept in docs/
        time.sleep(0.6)
        k.screenshot(f"kiosk-cart-{lang}.png")
    k.tap("checkout")
    k.on("pay")
    k.tap("pay:counter")
    st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)
    if shots:
        k.keep("kiosk-confirm.png")
    return st["number"], st["order_id"]


def wok_ticket_for(monitor, order_id: str) -> dict:
    return monitor.wait_json(topics.station_ticket("wok"), lambda t: t.get("order_id") == order_id)


def test_a_diner_orders_in_english_and_pays_at_the_counter(kiosk_screen, monitor):
    k = kiosk_screen
    st = k.state()
    assert st["window"] == [1080, 1920]
    number, order_id = order_kung_pao(k, "en", shots=True)
    ticket = wok_ticket_for(monitor, order_id)
    assert ticket["number"] == number
    [item] = ticket["items"]
    assert item["item_id"] == "kung-pao-chicken" and item["qty"] == 1
    assert {m["en"] for m in item["modifiers"]} >= {"Hot", "Brown rice"} or len(item["modifiers"]) >= 2
    # done: back to the attract screen for the next diner
    k.tap("done")
    k.on("attract")


def test_a_diner_orders_in_chinese_on_a_small_screen(broker, hub, monitor, tmp_path):
    x, k = start_kiosk(broker, tmp_path, "800x1280")
    try:
        assert k.state()["window"] == [800, 1280]
        number, order_id = order_kung_pao(k, "zh")
        ticket = wok_ticket_for(monitor, order_id)
        assert ticket["number"] == number
        assert ticket["items"][0]["item_id"] == "kung-pao-chicken"
        assert k.state()["lang"] == "zh"
    finally:
        k.stop()
        x.close()


def test_a_table_tablet_started_with_a_qr_deep_link_orders_to_its_table(broker, hub, monitor, tmp_path):
    x = Xvfb(800, 1280)
    k = KioskProcess(x, kiosk_config(tmp_path / "kiosk.toml", broker), tmp_path, "800x1280",
                     args=("--link", "restobox://kiosk?table=12&lang=en"))
    try:
        k.start()
        k.wait(lambda st: st["menu"], 20)
        assert k.state()["lang"] == "en"  # the link's language
        k.tap("start")
        k.on("language")
        k.tap("lang:en")
        k.on("service")
        k.tap("next")  # dine-in at table 12 is already chosen
        k.on("menu")
        k.tap("category:wok-dishes")
        k.tap("item:kung-pao-chicken")
        k.on("item")
        k.tap("add")
        k.on("menu")
        k.tap("cart")
        k.tap("checkout")
        k.tap("pay:counter")
        st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)
        ticket = wok_ticket_for(monitor, st["order_id"])
        assert (ticket["service"], ticket["table"]) == ("dine_in", "12")
    finally:
        k.stop()
        x.close()
