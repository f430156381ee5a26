"""The kiosk's phone number screen in a real Kivy window under Xvfb, with real
X clicks, against the real broker and a hub with loyalty on: a bad number is
explained, a good one shows the member's points (the number masked), the
diner spends some, and the confirmation shows what the order earned. The
full number is on no screen."""

from __future__ import annotations

import time

import pytest

from restobox.contract import LoyaltyClaim
from tests.support import KUNG_PAO, Kiosk, kiosk_config, new_order
from tests.test_kiosk_ui import KioskProcess, wok_ticket_for
from tests.test_loyalty import LOYALTY, loyal_hub  # noqa: F401  (a fixture)
from tests.ui_support import Xvfb

pytestmark = pytest.mark.integration

PHONE = "13812345678"


def test_a_member_enters_a_number_sees_the_points_and_spends_some(broker, monitor, loyal_hub, tmp_path):  # noqa: F811
    # the member has points from an earlier visit (ordered at the other kiosk)
    other = Kiosk(broker, "kiosk-2")
    try:
        before = other.submit(new_order(KUNG_PAO, KUNG_PAO, loyalty=LoyaltyClaim(phone=PHONE))).loyalty.balance
    finally:
        other.close()
    assert before >= 100
    x = Xvfb(800, 1280)
    k = KioskProcess(x, kiosk_config(tmp_path / "kiosk.toml", broker, kiosk="loyalty = true"), tmp_path,
                     "800x1280")
    try:
        k.start()
        k.wait(lambda st: st["menu"], 20)
        k.tap("lang:en")
        k.tap("service:takeaway")
        k.tap("next")
        k.tap("category:wok-dishes")
        k.tap("item:kung-pao-chicken")
        k.tap("add")
        k.on("menu")
        k.tap("cart")
        k.tap("checkout")
        k.on("member", member="entry")
        for d in "1234":  # not a number
            k.tap(f"phone:key:{d}")
        k.tap("phone:ok")
        st = k.wait(lambda st: "not valid" in st["notice"])
        assert st["screen"] == "member"
        for _ in range(4):
            k.tap("phone:del")
        for d in PHONE:
            k.tap(f"phone:key:{d}")
        st = k.wait(lambda st: "138****5678" in st["texts"])
        k.tap("phone:ok")
        st = k.on("member", member="found")
        st = k.wait(lambda st: any(f"{before} points" in t for t in st["texts"]))
        time.sleep(0.4)
        k.screenshot("kiosk-member.png")
        k.tap("phone:redeem")
        st = k.wait(lambda st: any("Using" in t for t in st["texts"]))
        k.tap("phone:continue")
        k.on("pay")
        k.tap("pay:counter")
        st = k.wait(lambda st: st["screen"] == "confirm" and st["number"], 20)
        st = k.wait(lambda st: any("Member 138****5678: +" in t for t in st["texts"]))
        wok_ticket_for(monitor, st["order_id"])
        for s in (st,):
            assert not any(PHONE in t for t in s["texts"])
    finally:
        k.stop()
        x.close()
