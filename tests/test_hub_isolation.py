"""One message never fails the others: each runs in a savepoint of its own.

The dispatcher's tests drive ``Hub._process`` — what the worker thread runs
for each batch — directly, with a batch made up by the test, so that the
messages are known to share one transaction; the hub's database is a real
SQLite file and its answers go out through the real broker to a device.
A handler that fails is made to fail by wrapping the real handler (the
dispatcher around it is what is under test). The request/reply tests run
the real ``restobox hub`` process.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import uuid

import msgspec
import pytest

from restobox import contract, db
from restobox.bus import Incoming
from restobox.contract import LoyaltyQuery, StaffCommand, topics
from restobox.hub import service, submit
from restobox.hub.common import utcnow
from tests.support import KUNG_PAO, MILK_TEA, Device, Kiosk, in_process_hub, new_order
from tests.test_loyalty import loyal_hub  # noqa: F401 (a fixture: the hub with points on)

pytestmark = pytest.mark.integration


def incoming(topic: str, payload: bytes, correlation: bytes | None = None) -> Incoming:
    # QoS 0: nothing to acknowledge, the test stands in for the broker's delivery
    return Incoming(topic=topic, payload=payload, qos=0, retain=False, mid=0, correlation=correlation)


def submission(order, device: str = "kiosk-1") -> tuple[str, Incoming]:
    return "submit", incoming(topics.order_submit(device), contract.encode(order), order.order_id.encode())


@pytest.fixture
def batch_hub(broker, monitor, tmp_path):
    """A hub whose batches the test runs itself: database open, broker
    connected, no worker thread."""
    h = in_process_hub(broker, tmp_path, utcnow)
    h._db = db.open_store_db(h.cfg.hub.database)
    h._load()
    h.bus.start()
    assert h.bus.wait_connected(10)
    h.state = "ready"
    yield h
    h.bus.stop()
    h._db.close()


@pytest.fixture
def kiosk1(broker):
    k = Kiosk(broker, "kiosk-1")
    yield k
    k.close()


def failing_for(monkeypatch, kind: str, order_ids: set[str], fail) -> None:
    """Route ``kind`` to its real handler, then ``fail()`` for those orders."""
    route = service.ROUTES[kind]

    def handle(hub, fx, req):
        route.handle(hub, fx, req)
        if req.msg.order_id in order_ids:
            fail()

    monkeypatch.setitem(service.ROUTES, kind, dataclasses.replace(route, handle=handle))


def reply(k: Kiosk, order_id: str) -> dict:
    return msgspec.json.decode(k.wait_for(lambda m: m.correlation == order_id.encode()).payload)


def stored(database) -> dict[str, int]:
    con = sqlite3.connect(database)
    try:
        return dict(con.execute('SELECT id, number FROM "order"').fetchall())
    finally:
        con.close()


def outbox_orders(database) -> set[str]:
    con = sqlite3.connect(database)
    try:
        return {r[0] for r in con.execute("SELECT order_id FROM outbox WHERE order_id IS NOT NULL")}
    finally:
        con.close()


def test_a_message_that_raises_is_rolled_back_alone_and_the_rest_of_its_batch_commits(
        batch_hub, kiosk1, monitor, monkeypatch):
    a, bad, c = new_order(KUNG_PAO), new_order(MILK_TEA), new_order(KUNG_PAO, MILK_TEA)

    def boom():
        raise RuntimeError("a bug after the order's rows were written")

    failing_for(monkeypatch, "submit", {bad.order_id}, boom)
    poison = incoming(topics.order_submit("kiosk-1"), b"[" * 1000 + b"]" * 1000, b"poison")
    batch_hub._process([submission(a), submission(bad), ("submit", poison), submission(c)])

    assert reply(kiosk1, a.order_id)["status"] == "accepted"
    assert reply(kiosk1, c.order_id)["status"] == "accepted"
    r = reply(kiosk1, bad.order_id)
    assert (r["status"], r["reason"], r["order_id"]) == ("rejected", "internal_error", bad.order_id)
    assert r["message"]["en"] == contract.REASONS["internal_error"].en
    p = msgspec.json.decode(kiosk1.wait_for(lambda m: m.correlation == b"poison").payload)
    assert (p["status"], p["reason"]) == ("rejected", "too_deep")
    # the failed order left nothing: no row, no outbox event, no number used
    database = batch_hub.cfg.hub.database
    assert stored(database) == {a.order_id: 1, c.order_id: 2}
    assert outbox_orders(database) == {a.order_id, c.order_id}
    # ...but its refusal is counted and announced like any other
    assert batch_hub.counters["rejected.internal_error"] == 1
    assert batch_hub.counters["rejected.too_deep"] == 1 and batch_hub.counters["accepted"] == 2
    n = monitor.wait_json(topics.REJECTS, lambda n: n["reason"] == "internal_error")
    assert (n["order_id"], n["device"]) == (bad.order_id, "kiosk-1")
    assert batch_hub.board.keys() == {a.order_id, c.order_id}


def test_a_statement_sqlite_will_not_run_fails_only_its_own_message(batch_hub, kiosk1, monkeypatch):
    a, bad = new_order(KUNG_PAO), new_order(MILK_TEA)
    failing_for(monkeypatch, "submit", {bad.order_id},
                lambda: db.store_db.execute_sql('SELECT * FROM "no_such_table"'))
    batch_hub._process([submission(bad), submission(a)])
    assert reply(kiosk1, a.order_id)["status"] == "accepted"
    assert reply(kiosk1, bad.order_id)["reason"] == "internal_error"
    assert set(stored(batch_hub.cfg.hub.database)) == {a.order_id}
    assert batch_hub.state == "ready" and batch_hub.counters["storage_errors"] == 0


def test_only_a_database_refusing_writes_keeps_messages_for_a_retry(batch_hub, broker, kiosk1):
    staff = Device(broker, "staff-1", (topics.staff_reply("staff-1"),), role="staff")
    try:
        first = new_order(KUNG_PAO)
        batch_hub._process([submission(first)])
        assert reply(kiosk1, first.order_id)["status"] == "accepted"
        lock = sqlite3.connect(batch_hub.cfg.hub.database, isolation_level=None, timeout=1)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            second = new_order(MILK_TEA)
            void = StaffCommand(command_id=str(uuid.uuid4()), kind="void", order_id=first.order_id)
            cmd = ("staff", incoming(topics.staff_command("staff-1"), contract.encode(void), b"void-1"))
            batch_hub._process([submission(second), cmd])
            # the order is refused at once (the kiosk sends it again); the command waits
            assert reply(kiosk1, second.order_id)["reason"] == "storage_unavailable"
            assert batch_hub.state == "degraded" and batch_hub.counters["storage_errors"] == 2
            assert batch_hub.runtime.code == "store_database_error"
            assert batch_hub.q.get_nowait() == cmd
            assert not staff.received
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        batch_hub._process([cmd])
        r = msgspec.json.decode(staff.wait_for(lambda m: m.correlation == b"void-1").payload)
        assert (r["ok"], r["order_id"]) == (True, first.order_id)
        assert batch_hub.state == "ready" and batch_hub.runtime.code == ""
    finally:
        staff.close()


# ------------------------------------------------- requests on the real hub
class Answers:
    """Every answer a device got on its reply topics, by topic."""

    def __init__(self, broker, name: str, role: str, reply_topics: tuple[str, ...]) -> None:
        self.device = Device(broker, name, reply_topics, role=role)

    def after(self, topic: str, payload: bytes, marker: bytes, reply_topic: str) -> list[Incoming]:
        """Publish ``payload`` without correlation data or response topic,
        then a marker request with correlation data; once the marker's
        answer is in, every answer to the first has arrived (one publisher,
        one topic: MQTT keeps the order)."""
        before = len(self.device.by_topic.get(reply_topic, []))
        self.device.publish(topic, payload)
        corr = uuid.uuid4().bytes
        self.device.publish(topic, marker, correlation=corr)
        self.device.wait_for(lambda m: m.correlation == corr)
        got = self.device.by_topic[reply_topic][before:]
        return [m for m in got if m.correlation != corr]


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "malformed"])
def test_a_request_without_correlation_data_is_answered_once_on_every_request_topic(
        broker, loyal_hub, valid):  # noqa: F811
    kiosk = Answers(broker, "kiosk-1", "kiosk", (topics.order_reply("kiosk-1"), topics.loyalty_reply("kiosk-1")))
    staff = Answers(broker, "staff-1", "staff", (topics.staff_reply("staff-1"),))
    try:
        order = new_order(KUNG_PAO)
        query = LoyaltyQuery(query_id=str(uuid.uuid4()), phone="13812345678")
        cmd = StaffCommand(command_id=str(uuid.uuid4()), kind="eighty_six", item_id="spring-rolls")
        cases = [
            (kiosk, topics.order_submit("kiosk-1"), topics.order_reply("kiosk-1"), order, "order_id",
             contract.encode(new_order(KUNG_PAO))),
            (kiosk, topics.loyalty_query("kiosk-1"), topics.loyalty_reply("kiosk-1"), query, "query_id",
             contract.encode(LoyaltyQuery(query_id=str(uuid.uuid4()), phone="13812345678"))),
            (staff, topics.staff_command("staff-1"), topics.staff_reply("staff-1"), cmd, "command_id",
             contract.encode(StaffCommand(command_id=str(uuid.uuid4()), kind="un_eighty_six",
                                          item_id="spring-rolls"))),
        ]
        for who, topic, reply_topic, msg, id_field, marker in cases:
            body = json.loads(contract.encode(msg))
            if not valid:
                body["surprise"] = 1
            got = who.after(topic, json.dumps(body).encode(), marker, reply_topic)
            assert len(got) == 1, (topic, got)
            assert got[0].correlation is None
            answer = msgspec.json.decode(got[0].payload)
            assert answer[id_field] == body[id_field]
            if valid:
                assert answer.get("status", "accepted") == "accepted" and answer.get("ok", True) is True
            else:
                assert answer.get("reason") == "bad_schema", answer
    finally:
        kiosk.device.close()
        staff.device.close()


@pytest.mark.parametrize(("name", "payload", "reason"), [
    ("not JSON", b"{phone", "bad_json"),
    ("nested 1,000 deep", b"[" * 1000 + b"]" * 1000, "too_deep"),
    ("no query id", json.dumps({"v": 1, "phone": "13812345678"}).encode(), "bad_schema"),
    ("a query id with a newline", json.dumps({"v": 1, "query_id": str(uuid.UUID(int=7)) + "\n",
                                              "phone": "13812345678"}).encode(), "bad_schema"),
    ("not a phone number", json.dumps({"v": 1, "query_id": str(uuid.UUID(int=8)), "phone": "12345"}).encode(),
     "phone_invalid"),
])
def test_every_refused_balance_query_is_answered_announced_and_counted(broker, monitor, loyal_hub, name,  # noqa: F811
                                                                        payload, reason):
    k = Kiosk(broker, "kiosk-1")
    k.bus.subscribe(topics.loyalty_reply("kiosk-1"), k._got)
    try:
        corr = uuid.uuid4().bytes
        k.publish(topics.loyalty_query("kiosk-1"), payload, correlation=corr)
        answer = msgspec.json.decode(k.wait_for(lambda m: m.correlation == corr).payload)
        assert (answer["ok"], answer["reason"]) == (False, reason)
        assert answer["message"]["zh"] == contract.REASONS[reason].zh
        notice = monitor.wait_json(topics.REJECTS, lambda n: n["reason"] == reason)
        assert (notice["topic"], notice["device"]) == (topics.loyalty_query("kiosk-1"), "kiosk-1")
        monitor.wait_json(topics.health("hub"), lambda h: h["counters"].get(f"rejected.{reason}") == 1)
        assert "13812345678" not in (loyal_hub.process.log.read_text())
    finally:
        k.close()


def test_a_poisoned_batch_never_stalls_the_hub(broker, hub, monitor):
    """The outside run's way in, in short: poison from one kiosk while the
    other orders. Before, one such message failed its whole batch, left it
    unanswered and unacknowledged, and 100 of them filled the broker's
    in-flight window: the hub heard nothing more."""
    bad, good = Kiosk(broker, "kiosk-1"), Kiosk(broker, "kiosk-2")
    try:
        answers: list[dict] = []

        def poison(n: int) -> None:
            for _ in range(n):
                answers.append(bad.submit_raw(b"[" * 1000 + b"]" * 1000))

        t = threading.Thread(target=poison, args=(111,))
        t.start()
        assert good.submit(new_order(KUNG_PAO)).status == "accepted"
        t.join(60)
        assert good.submit(new_order(KUNG_PAO), timeout=1).status == "accepted"
        assert len(answers) == 111 and {a["reason"] for a in answers} == {"too_deep"}
    finally:
        bad.close()
        good.close()


def test_the_hub_reads_exactly_its_routes():
    assert service.SUBSCRIPTIONS == {r.kind: r.topic for r in service.ROUTES.values()}
    assert topics.STATION_SYNC_ALL in service.SUBSCRIPTIONS.values()
    assert service.ROUTES["submit"].handle is submit.handle


def test_the_board_stays_within_the_contract_however_many_orders_are_open(batch_hub, broker):
    board = Device(broker, "board-1", (topics.BOARD,), role="board")
    try:
        batch_hub.board = {str(uuid.UUID(int=i)): (i, "ready" if i % 3 == 0 else "accepted")
                           for i in range(1, 30_001)}
        batch_hub._publish_board()
        m = board.wait_for(lambda m: m.topic == topics.BOARD and len(m.payload) > 1000)
        b = contract.decode(m.payload, contract.Board)
        assert len(b.ready) == len(b.preparing) == service.BOARD_MAX
        assert b.ready[-1] == 30_000 and b.preparing[-1] == 29_999 and b.ready == tuple(sorted(b.ready))
    finally:
        board.close()
