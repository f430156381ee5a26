"""Loyalty points that work offline, against the real broker and hub, the
real sync service's forwarder and the reference cloud (cloud-dev):

- points earned and redeemed while the cloud cannot be reached reach it
  once each when it is back, and the cloud's balances match the hub's;
- two kiosks spending the same points at once: the hub takes one;
- a resent order never redeems twice; a void gives the points back;
- a bad phone number gets a clear reason; the number is masked everywhere
  but on the two topics that carry it to the hub.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid

import httpx
import msgspec
import pytest

from restobox import config, contract, loyalty
from restobox.contract import LoyaltyBalance, LoyaltyClaim, LoyaltyQuery, StaffCommand, topics
from restobox.sync import Forwarder
from tests.hub_fixtures import RunningHub
from tests.support import KUNG_PAO, MILK_TEA, Device, HubProcess, Kiosk, hub_config, new_order
from tests.test_sync import Cloud, sync_config

pytestmark = pytest.mark.integration

PHONE = "13812345678"
OTHER = "15900001111"
# 5 points per yuan; a point is worth ¥0.10; at most half an order; at least 100 points
LOYALTY = """
[hub.loyalty]
enabled = true
points_per_yuan = 5
point_value_fen = 10
max_share_pct = 50
min_redeem_points = 100
"""


class MemberKiosk(Kiosk):
    def __init__(self, broker, name: str) -> None:
        super().__init__(broker, name)
        self.bus.subscribe(topics.loyalty_reply(name), self._got)

    def balance(self, phone: str) -> LoyaltyBalance:
        q = LoyaltyQuery(query_id=str(uuid.uuid4()), phone=phone)
        corr = uuid.uuid4().bytes
        self.publish(topics.loyalty_query(self.name), contract.encode(q), correlation=corr,
                     response_topic=topics.loyalty_reply(self.name))
        m = self.wait_for(lambda m: m.correlation == corr and m.topic == topics.loyalty_reply(self.name))
        return msgspec.json.decode(m.payload, type=LoyaltyBalance)


@pytest.fixture
def loyal_hub(broker, monitor, tmp_path):
    database = tmp_path / "store.db"
    cfg = hub_config(tmp_path / "hub.toml", port=broker.port, password_file=broker.creds["hub"].password_file,
                     database=database, extra=LOYALTY)
    proc = HubProcess(cfg, tmp_path / "hub.log")
    proc.start(monitor)
    yield RunningHub(proc, database, cfg)
    proc.stop()


@pytest.fixture
def kiosks(broker, loyal_hub):
    ks = [MemberKiosk(broker, "kiosk-1"), MemberKiosk(broker, "kiosk-2")]
    yield ks
    for k in ks:
        k.close()


def pts(fen: int) -> int:
    return fen * 5 // 100


def member_order(*lines, phone: str = PHONE, redeem: int = 0, **kw):
    return new_order(*lines, loyalty=LoyaltyClaim(phone=phone, redeem_points=redeem), **kw)


def ledger(database) -> list[tuple]:
    con = sqlite3.connect(database)
    try:
        return con.execute("SELECT entry_id, member, kind, points, balance_after FROM points_entry "
                           "ORDER BY seq").fetchall()
    finally:
        con.close()


def hub_balances(database) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, member, _, points, _ in ledger(database):
        out[member] = out.get(member, 0) + points
    return out


def test_earn_and_redeem_while_the_cloud_is_unreachable_then_sync(kiosks, loyal_hub, tmp_path):
    k1, k2 = kiosks
    first = k1.submit(member_order(KUNG_PAO, MILK_TEA))
    assert first.status == "accepted"
    gross = first.total
    assert first.loyalty.member == "138****5678"
    assert first.loyalty.earned == pts(gross) and first.loyalty.balance == pts(gross)
    assert k2.submit(member_order(KUNG_PAO, phone=OTHER)).loyalty.earned > 0
    # the balance asked from another kiosk, and the rules to offer a redemption with
    bal = k2.balance(PHONE)
    assert (bal.ok, bal.member, bal.balance) == (True, "138****5678", pts(gross))
    assert (bal.point_value_fen, bal.max_share_pct, bal.min_redeem_points) == (10, 50, 100)
    # spend 100 points (¥10) on the next order; the total says so, priced by the hub
    plain = k2.submit(new_order(KUNG_PAO)).total
    spent = k2.submit(member_order(KUNG_PAO, redeem=100))
    assert spent.status == "accepted", spent
    assert spent.total == plain - 1000
    assert (spent.loyalty.redeemed, spent.loyalty.discount) == (100, 1000)
    assert spent.loyalty.earned == pts(spent.total)
    assert spent.loyalty.balance == pts(gross) - 100 + pts(spent.total)
    assert k1.balance(PHONE).balance == spent.loyalty.balance

    # the cloud is down: nothing goes; then it is back and gets every entry once
    cloud = Cloud(tmp_path)
    cfg_path = sync_config(tmp_path / "sync.toml", cloud, tmp_path)
    cfg_path.write_text(cfg_path.read_text().replace(str(tmp_path / "store.db"), str(loyal_hub.database)))
    fw = Forwarder(config.load(cfg_path), sleep=lambda s: None)
    try:
        assert fw.tick() == "failed" and fw.last_error.reason == "cloud_unreachable"
        # earning and spending go on during the outage
        more = k1.submit(member_order(MILK_TEA, redeem=100))
        assert more.status == "accepted" and more.loyalty.redeemed == 100
        cloud.start()
        fw.run(until_empty=True)
        fw.run(until_empty=True)  # a second pass sends nothing again
        events = cloud.events()
        balances = httpx.get(f"{cloud.url}/_dev/loyalty", timeout=5).json()
    finally:
        fw.close()
        cloud.stop()
    got = [e for e in events if e["kind"].startswith("loyalty.")]
    entries = ledger(loyal_hub.database)
    # 4 orders with a phone earned (even 0 points would be an entry), 2 redeemed
    assert len(entries) == 6
    assert sorted(e["event_id"] for e in got) == sorted(r[0] for r in entries)
    assert len({e["event_id"] for e in got}) == len(got)
    assert sorted(e["kind"] for e in got) == ["loyalty.earned"] * 4 + ["loyalty.redeemed"] * 2
    # the cloud reconciles each member's balance from the events alone
    assert {m: v["balance"] for m, v in balances.items()} == hub_balances(loyal_hub.database)
    me = loyalty.member_id(PHONE)
    assert balances[me]["member_masked"] == "138****5678"
    assert balances[me]["balance"] == more.loyalty.balance == k2.balance(PHONE).balance


def test_two_kiosks_spending_the_same_points_at_once_the_hub_takes_one(kiosks, loyal_hub):
    k1, k2 = kiosks
    earned = k1.submit(member_order(KUNG_PAO, KUNG_PAO)).loyalty.balance
    assert earned >= 200
    # both diners were shown the same balance and both spend all of it (within the order's half)
    spend = min(earned, loyalty.max_redeemable(k1.submit(new_order(KUNG_PAO, KUNG_PAO)).total, earned, 10, 50))
    orders = [member_order(KUNG_PAO, KUNG_PAO, redeem=spend) for _ in kiosks]
    replies: list = [None, None]
    go = threading.Barrier(2)

    def place(i: int) -> None:
        go.wait()
        replies[i] = kiosks[i].submit(orders[i])
    threads = [threading.Thread(target=place, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    statuses = sorted(r.status for r in replies)
    assert statuses == ["accepted", "rejected"], replies
    refused = next(r for r in replies if r.status == "rejected")
    assert refused.reason == "points_insufficient"
    assert refused.message == contract.REASONS["points_insufficient"]
    assert "used elsewhere" in refused.message.en and "积分不足" in refused.message.zh
    assert int(refused.detail["balance"]) < spend
    # the one that went through, sent again (a lost reply): the same answer, no second redemption
    i = replies.index(next(r for r in replies if r.status == "accepted"))
    again = kiosks[i].submit(orders[i])
    assert again.duplicate and again.number == replies[i].number and again.loyalty == replies[i].loyalty
    redeems = [r for r in ledger(loyal_hub.database) if r[2] == "redeem"]
    assert len(redeems) == 1 and redeems[0][3] == -spend
    assert k2.balance(PHONE).balance == hub_balances(loyal_hub.database)[loyalty.member_id(PHONE)] >= 0


def test_points_beyond_the_orders_share_or_below_the_least_are_refused(kiosks):
    k1, _ = kiosks
    k1.submit(member_order(KUNG_PAO, KUNG_PAO, KUNG_PAO))
    too_many = k1.submit(member_order(MILK_TEA, redeem=5000))
    assert (too_many.status, too_many.reason) == ("rejected", "points_not_allowed")
    too_few = k1.submit(member_order(MILK_TEA, redeem=50))
    assert (too_few.status, too_few.reason, too_few.detail["min_points"]) == ("rejected", "points_not_allowed", "100")


@pytest.mark.parametrize("phone", ["12345678901", "1381234567", "138123456789", "23812345678", "abc", ""])
def test_a_bad_phone_number_gets_a_clear_reason(kiosks, phone):
    k1, _ = kiosks
    r = k1.submit(member_order(KUNG_PAO, phone=phone))
    assert (r.status, r.reason) == ("rejected", "phone_invalid")
    assert r.message.en.startswith("That phone number is not valid") and "手机号码不正确" in r.message.zh
    assert phone not in str(r.detail) or not phone
    q = k1.balance(phone)
    assert (q.ok, q.reason, q.member, q.balance) == (False, "phone_invalid", "", 0)


def test_a_void_gives_back_what_the_order_redeemed_and_takes_back_what_it_earned(broker, kiosks, loyal_hub):
    k1, _ = kiosks
    k1.submit(member_order(KUNG_PAO, KUNG_PAO))
    before = k1.balance(PHONE).balance
    o = member_order(KUNG_PAO, redeem=100)
    r = k1.submit(o)
    assert r.loyalty.balance == before - 100 + r.loyalty.earned
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=o.order_id, reason="test")
        staff.publish(topics.staff_command("staff-1"), contract.encode(cmd))
        assert staff.wait_json(topics.staff_reply("staff-1"))["ok"] is True
        staff.publish(topics.staff_command("staff-1"), contract.encode(cmd))  # the same command again
        staff.wait_json(topics.staff_reply("staff-1"), lambda a: a["command_id"] == cmd.command_id)
    finally:
        staff.close()
    assert k1.balance(PHONE).balance == before
    rev = [x for x in ledger(loyal_hub.database) if x[0].startswith(f"{o.order_id}:reverse-")]
    assert sorted((x[0].rsplit(":", 1)[1], x[3]) for x in rev) == [
        ("reverse-earn", -r.loyalty.earned), ("reverse-redeem", 100)]


def test_the_phone_number_travels_only_to_the_hub_and_is_stored_nowhere(broker, monitor, kiosks, loyal_hub):
    k1, _ = kiosks
    o = member_order(KUNG_PAO, MILK_TEA)
    r = k1.submit(o)
    k1.balance(PHONE)
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=o.order_id)
        staff.publish(topics.staff_command("staff-1"), contract.encode(cmd))
        staff.wait_json(topics.staff_reply("staff-1"))
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["state"] == "voided")
    finally:
        staff.close()
    assert r.loyalty.member == "138****5678"
    carried = {topics.order_submit("kiosk-1"), topics.loyalty_query("kiosk-1")}
    seen = [m for m in monitor.received if PHONE.encode() in m.payload]
    assert seen and {m.topic for m in seen} <= carried
    # replies, order updates, kitchen tickets, print jobs carry at most the masked number
    assert any(b"138****5678" in m.payload for m in monitor.received if m.topic == topics.order_reply("kiosk-1"))
    # store.db: neither the number nor its unkeyed digits anywhere; the outbox has the masked form
    dump = "\n".join(sqlite3.connect(loyal_hub.database).iterdump())
    assert PHONE not in dump and "138****5678" in dump


def test_an_order_queued_offline_earns_its_points_once_when_it_reaches_the_hub(kiosks, loyal_hub):
    """A kiosk that could not reach the hub kept the order (with the number)
    and sends it from its outbox, maybe twice: the points are credited once."""
    k1, _ = kiosks
    o = member_order(KUNG_PAO, offline=True, provisional_number="K1-001")
    first = k1.submit(o)
    assert first.status == "accepted" and first.loyalty.earned == pts(first.total) > 0
    again = k1.submit(o)
    assert again.duplicate and again.loyalty == first.loyalty
    assert [r[0] for r in ledger(loyal_hub.database)] == [f"{o.order_id}:earn"]
