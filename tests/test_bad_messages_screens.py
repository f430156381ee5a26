"""The kitchen screens (station, expo, pickup board) survive any payload on
every topic they take: each bad message is ignored and counted in the
screen's health (``ignored_<reason>``; the alert sources' in
``details.bad_messages``), nothing raises on the UI thread, and the next
real message is shown.

The screens' real controllers (their bus, cache, health thread) run
headless on the real broker (they import no Kivy); a UI thread here runs
what they post and stops at the first exception, as a Kivy app would. The
bad messages come from devices whose role may publish there: the hub role
(anywhere), a kiosk (its own presence and health), the printing service
(printer status, alerts)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from kds.board_screen import BoardController
from kds.controller import StationController
from kds.expo_screen import ExpoController
from kds.health import alert_strip
from restobox import config, contract
from restobox.contract import (
    Alert,
    Board,
    Health,
    MenuMessage,
    OrderUpdate,
    PrinterStatus,
    StationStatus,
    StationTicket,
    TicketItem,
    Words,
    topics,
)
from restobox.data import load_sample_menu
from tests.support import Device, device_config
from tests.support import UIThread
from tests.test_bad_messages_common import POISON_NOT_EMPTY, counted, expected, flood
from tests.support import wait

pytestmark = pytest.mark.integration

BIG = 2**53 - 1


def now_iso(delta_s: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta_s)).isoformat(timespec="milliseconds")


def ticket(station: str = "wok", *, number: int = 1, order_id: str | None = None, **kw) -> StationTicket:
    oid = order_id or str(uuid.uuid4())
    fields = dict(ticket_id=f"{oid}:{station}", order_id=oid, number=number, station=station, channel="kiosk",
                  service="takeaway", accepted_at=now_iso(),
                  items=(TicketItem(line=1, item_id="kung-pao-chicken", name_zh="宫保鸡丁", name_en="Kung Pao", qty=1),))
    fields.update(kw)
    return StationTicket(**fields)


def absurd_tickets(station: str = "wok") -> tuple[list[StationTicket], list[StationTicket]]:
    """(tickets no hub makes: refused as unusable, tickets that are odd but
    could be real: shown, and nothing breaks)."""
    t = ticket(station, number=9001)
    refused = [
        msgspec.structs.replace(t, revision=0),
        msgspec.structs.replace(t, revision=-5),
        msgspec.structs.replace(t, revision=BIG),
        msgspec.structs.replace(t, ticket_id="someone-else:" + station),
        msgspec.structs.replace(t, order_id="", ticket_id=f":{station}"),
    ]
    many = tuple(TicketItem(line=k, item_id="", name_zh="", name_en="x" * 30, qty=BIG, state="done" if k % 2 else "open",
                            modifiers=(Words("", "m" * 20),), allergens=("peanut", "?" * 10)) for k in range(200))
    shown = [
        ticket(station, number=BIG, items=many, note="n" * 8000, table="T" * 8, service="dine_in", channel="?"),
        ticket(station, number=0, items=(), accepted_at="not a time", provisional_number="p" * 16),
        ticket(station, number=-BIG, accepted_at="0001-01-01T00:00:00+14:00"),
        ticket(station, number=9002, accepted_at="9999-12-31T23:59:59-14:00", state="done"),
    ]
    assert all(len(contract.encode(t)) < contract.MAX_PAYLOAD_BYTES for t in refused + shown)
    return refused, shown


def odd_store_messages(printing: Device, kiosk2: Device) -> None:
    """Alert sources that decode but say odd things; none may break the alerts."""
    printing.publish(topics.ALERTS, contract.encode(Alert(
        source="printing", code="x" * 5000, message=Words("警" * 2000, "a" * 8000), severity="critical",
        subject="s" * 3000, at="")))
    printing.publish(topics.printer_status("kitchen-1"), contract.encode(PrinterStatus(
        printer="someone-else", state="paper_out", at="")), retain=True)
    printing.publish(topics.printer_status("kitchen-2"), contract.encode(PrinterStatus(
        printer="kitchen-2", state="paper_out", queued=-BIG, paper_near_end=True, at="9999")), retain=True)
    kiosk2.publish(topics.health("kiosk-2"), contract.encode(Health(
        device="kiosk-2", role="sync", state="degraded", at="0001-01-01T00:00:00+14:00", reason="r" * 8000,
        details={"disk_free_pct": -1e15, "oldest_unsent_s": 1e15, "backlog": "b" * 100, "x": None})), retain=True)
    kiosk2.publish(topics.presence("kiosk-2"), contract.encode(contract.Presence(
        device="hub", role="hub", state="offline")), retain=True)


@pytest.fixture
def senders(broker):
    hub, kiosk2, printing = (Device(broker, "hub", role="hub"), Device(broker, "kiosk-2", role="kiosk"),
                             Device(broker, "printing", role="printing"))
    yield hub, kiosk2, printing
    for d in (hub, kiosk2, printing):
        d.close()


@pytest.fixture
def ui():
    u = UIThread()
    yield u
    u.close()


def screen_config(broker, tmp_path, device: str, role: str, kds: str):
    return config.load(device_config(tmp_path / f"{device}.toml", broker, device, role,
                                     f'[kds]\ncache = "{tmp_path / (device + ".db")}"\n{kds}'))


def lying_presence(hub: Device) -> None:
    """A presence on the hub's topic that names someone else: not the hub's word."""
    hub.publish(topics.presence("hub"), contract.encode(contract.Presence(device="someone", role="hub",
                                                                          state="offline")))


def flood_store_topics(printing: Device, kiosk2: Device) -> int:
    """Poison on every alert source a screen reads; how many were bad."""
    flood(printing, topics.ALERTS, POISON_NOT_EMPTY)
    flood(printing, topics.printer_status("kitchen-1"), POISON_NOT_EMPTY)
    flood(kiosk2, topics.health("kiosk-2"), POISON_NOT_EMPTY)
    flood(kiosk2, topics.presence("kiosk-2"), POISON_NOT_EMPTY)
    odd_store_messages(printing, kiosk2)
    return 4 * len(POISON_NOT_EMPTY) + 2  # + a status and a presence on another's topic


def test_station_screen_ignores_poison_on_every_topic_and_shows_the_next_ticket(broker, monitor, senders, ui,
                                                                                tmp_path):
    hub, kiosk2, printing = senders
    cfg = screen_config(broker, tmp_path, "kds-wok-1", "kds", 'mode = "station"\nstation = "wok"')
    ctl = StationController(cfg, post=ui.post, changed=lambda: None)
    ctl.start()
    try:
        wait(lambda: ctl.bus.connected, 10, "the screen's connection")
        for topic in (topics.station_ticket("wok"), topics.ORDER_UPDATE, topics.presence("hub")):
            flood(hub, topic)
        refused, shown = absurd_tickets()
        for t in refused + shown + [ticket("fryer")]:
            hub.publish(topics.station_ticket("wok"), contract.encode(t))
        hub.publish(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
            order_id="nobody", number=BIG, business_date="", state="voided", at="9999-01-01T00:00:00+00:00",
            stations=tuple(StationStatus(station="?" * 100, state="done") for _ in range(500)))))
        lying_presence(hub)
        bad_sources = flood_store_topics(printing, kiosk2)
        real = ticket(number=42)
        hub.publish(topics.station_ticket("wok"), contract.encode(real))

        vm = ctl.vm
        wait(lambda: ui.call(lambda: real.ticket_id in {v.ticket_id for v in vm.tickets_on_page()}), 10,
             "the real ticket on the screen")
        # what the window draws each second works on what came in
        ui.call(lambda: (vm.tickets_on_page(), vm.all_day(), vm.recall_list(), vm.banner, vm.hidden_count,
                         ctl.drawn([v.ticket_id for v in vm.tickets_on_page()]), alert_strip(ctl.monitor.alerts)))
        shown_ids = ui.call(lambda: {v.ticket_id for v in vm.tickets_on_page()} | {v.ticket_id for v in vm.recall_list()})
        assert {t.ticket_id for t in shown if t.state != "done"} <= shown_ids
        assert not ({t.ticket_id for t in refused} & shown_ids)
        assert ui.errors == [] and ui.alive
        assert ui.call(lambda: vm.link.hub_online) is None  # nobody said anything true about the hub

        want = expected(times=3) + Counter(unusable=len(refused) + 1, other_station=1)
        h = monitor.wait_json(topics.health("kds-wok-1"),
                              lambda h: counted(h["counters"], want, "ignored_{}")
                              and h["details"]["bad_messages"] >= bad_sources, 10)
        assert h["state"] == "ready"
        # the alerts are there, each sentence short enough for the strip
        alerts = ui.call(lambda: ctl.monitor.alerts)
        assert alerts and all(len(a.message.en) <= 300 and len(a.message.zh) <= 300 for a in alerts)
    finally:
        ctl.stop()
    assert ui.errors == []


def test_expo_screen_ignores_poison_on_every_topic_and_shows_the_next_order(broker, monitor, senders, ui, tmp_path):
    hub, kiosk2, printing = senders
    cfg = screen_config(broker, tmp_path, "expo-1", "expo", 'mode = "expo"\nstation = "expo"')
    ctl = ExpoController(cfg, post=ui.post, changed=lambda: None)
    ctl.start()
    try:
        wait(lambda: ctl.bus.connected, 10, "the screen's connection")
        for topic in (topics.station_ticket("wok"), topics.station_ticket("drinks"), topics.ORDER_UPDATE,
                      topics.presence("hub"), topics.MENU):
            flood(hub, topic)
        refused, shown = absurd_tickets("drinks")
        for t in refused + shown:
            hub.publish(topics.station_ticket("drinks"), contract.encode(t))
        hub.publish(topics.station_ticket("wok"), contract.encode(ticket("fryer")))  # on another's topic
        menu = load_sample_menu()
        bad_menu = msgspec.structs.replace(menu, items=menu.items + (menu.items[0],))
        hub.publish(topics.MENU, contract.encode(MenuMessage(menu=bad_menu, at="")))
        lying_presence(hub)
        bad_sources = flood_store_topics(printing, kiosk2)
        real = ticket("wok", number=7)
        hub.publish(topics.station_ticket("wok"), contract.encode(real))
        vm = ctl.vm
        wait(lambda: ui.call(lambda: vm.row(real.order_id)) is not None, 10, "the real order on the screen")
        # an update dated far ahead must not freeze its order: the next one still counts
        hub.publish(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
            order_id=real.order_id, number=7, business_date="", state="in_progress", at="9999-01-01T00:00:00+00:00")))
        hub.publish(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
            order_id=real.order_id, number=7, business_date="", state="completed", at=now_iso(),
            stations=(StationStatus(station="wok", state="done"),))))
        wait(lambda: ui.call(lambda: 7 in vm.completed_numbers()), 10, "the real order completed")
        ui.call(lambda: (vm.rows_on_page(), vm.completed_numbers(), vm.banner, vm.hidden_count,
                         [ctl.station_name(p.station) for r in vm.rows_on_page() for p in r.stations],
                         alert_strip(ctl.monitor.alerts)))
        assert ui.errors == [] and ui.alive

        assert ui.call(lambda: vm.link.hub_online) is None
        want = (expected(times=4) + expected(large_ok=True)  # the menu may be larger than 64 KiB
                + Counter(unusable=len(refused) + 1, bad_topic=1, bad_menu=1))
        monitor.wait_json(topics.health("expo-1"),
                          lambda h: counted(h["counters"], want, "ignored_{}")
                          and h["details"]["bad_messages"] >= bad_sources, 10)
    finally:
        ctl.stop()
    assert ui.errors == []


def test_pickup_board_ignores_poison_and_shows_the_next_board(broker, monitor, senders, ui, tmp_path):
    hub, _, _ = senders
    cfg = screen_config(broker, tmp_path, "board-1", "board", 'mode = "board"')
    ctl = BoardController(cfg, post=ui.post, changed=lambda: None)
    ctl.start()
    try:
        wait(lambda: ctl.bus.connected, 10, "the board's connection")
        flood(hub, topics.BOARD)
        flood(hub, topics.presence("hub"))
        lying_presence(hub)
        # odd but decodable: thousands of numbers, negative ones, repeats; dated far ahead (which
        # must not make the real boards after it look older)
        hub.publish(topics.BOARD, contract.encode(Board(business_date="d" * 8000, preparing=(), ready=(), at="")))
        hub.publish(topics.BOARD, contract.encode(Board(
            business_date="2026-11-22", preparing=tuple(range(-3000, 3000)), ready=(BIG, -BIG, 5, 5, 0) * 500,
            at="9999-12-31T23:59:59+00:00")))
        hub.publish(topics.BOARD, contract.encode(Board(
            business_date="2026-11-22", preparing=(12, 13), ready=(10, 11), at=now_iso())))
        vm = ctl.vm
        wait(lambda: ui.call(lambda: (vm.preparing, set(vm.ready))) == ((12, 13), {10, 11}), 10, "the real board")
        ui.call(lambda: vm.just_ready)
        assert ui.errors == [] and ui.alive
        assert ctl.link.hub_online is None
        monitor.wait_json(topics.health("board-1"),
                          lambda h: counted(h["counters"], expected(times=2) + Counter(unusable=1), "ignored_{}"), 10)
    finally:
        ctl.stop()
    assert ui.errors == []
