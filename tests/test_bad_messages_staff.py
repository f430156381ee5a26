"""The staff command's view of the store (``StoreLink``: the same
StoreWatch as the kitchen screens, the menu, its replies and print job
states) survives any payload on the topics it reads, retained ones too:
``restobox status`` still prints the store, and a command still gets the
hub's answer.

On the real broker with the real hub; the bad messages come from a second
device of role hub, a kiosk (its own presence and health, retained) and the
printing service's device (printer status, retained; alerts)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from restobox import config, contract
from restobox.contract import Health, PrinterStatus, topics
from restobox.staff import StoreLink, cmd_status
from tests.support import Device, device_config
from tests.test_bad_messages_common import POISON, flood
from tests.support import wait
from tests.test_bad_messages_screens import flood_store_topics

pytestmark = pytest.mark.integration

BIG = 2**53 - 1


def test_the_staff_view_survives_poison_and_still_gets_the_hubs_answer(broker, hub, tmp_path):
    broker.add_device("hub-2", "hub")
    hub2, kiosk2, printing = (Device(broker, "hub-2", role="hub"), Device(broker, "kiosk-2", role="kiosk"),
                              Device(broker, "printing", role="printing"))
    try:
        flood_store_topics(printing, kiosk2)
        # what a newcomer gets first: retained messages it cannot use, or odd ones
        kiosk2.publish(topics.health("kiosk-2"), POISON[0][0], retain=True)
        kiosk2.publish(topics.presence("kiosk-2"), b"\xff\xfe", retain=True)
        printing.publish(topics.printer_status("kitchen-1"), contract.encode(PrinterStatus(
            printer="kitchen-1", state="error", queued=BIG, reason="r" * 8000, at="0001-01-01T00:00:00+14:00")),
            retain=True)
        printing.publish(topics.health("printing"), contract.encode(Health(
            device="printing", role="sync", state="degraded", reason="w" * 8000, at="9999-12-31T23:59:59+00:00",
            counters={"x" * 100: BIG}, details={"disk_free_pct": -1e15, "oldest_unsent_s": 1e15,
                                                "backlog": "b" * 100})), retain=True)

        cfg = config.load(device_config(tmp_path / "staff.toml", broker, "staff-1", "staff", ""))
        with StoreLink(cfg) as link:
            for topic in (topics.MENU, topics.staff_reply("staff-1"), topics.PRINT_JOB_STATE):
                flood(hub2, topic, POISON)
            printing.publish(topics.ALERTS, contract.encode(contract.Alert(
                source="printing", code="c" * 5000, message=contract.Words("警" * 2000, "a" * 8000),
                subject="s" * 3000, at="")))
            wait(lambda: len(link.watch.alerts()) >= 4, 5, "the alerts")
            assert link.watch.bad >= 2
            alerts = link.watch.alerts()
            assert all(len(a.message.en) <= 300 and len(a.message.zh) <= 300 for a in alerts), alerts
            reply = link.command("eighty_six", item_id="spring-rolls")
            assert reply.ok
            link.command("un_eighty_six", item_id="spring-rolls")

        out = io.StringIO()
        status = cmd_status(cfg, Console(file=out, width=160))
        assert status in (0, 1, 2) and "Printers" in out.getvalue() and "kitchen-1" in out.getvalue()
    finally:
        for d in (hub2, kiosk2, printing):
            d.close()
