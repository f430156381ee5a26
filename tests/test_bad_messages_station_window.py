"""The station screen in a real Kivy window (Xvfb) survives poison on its
ticket topic, and tickets that decode but no hub makes, or that are odd
(hundreds of items, an 8 KiB note, numbers near 2**53): the app keeps
running and draws the next real ticket from the real hub."""

from __future__ import annotations

from collections import Counter

import pytest

from restobox import contract
from restobox.contract import topics
from tests.support import KUNG_PAO, Device, new_order
from tests.test_bad_messages_common import POISON, counted, expected, flood
from tests.test_bad_messages_screens import absurd_tickets
from tests.test_kds_station_ui import kds_config, numbers, screen, xvfb  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


@pytest.fixture
def hub2(broker, hub):
    """A second device of role hub (the hub role may publish anywhere)."""
    broker.add_device("hub-2", "hub")
    d = Device(broker, "hub-2", role="hub")
    yield d
    d.close()


def drawn_on_every_page(screen) -> set[str]:
    """The numbers drawn on each page (turned with the page-down key), back on the first."""
    st = screen.state()
    seen = set(numbers(st))
    for k in range(1, st["pages"]):
        screen.x.key("Next")
        seen |= set(numbers(screen.wait(lambda st, k=k: st["page"] == k)))
    for k in range(st["pages"] - 1, 0, -1):
        screen.x.key("Prior")
        screen.wait(lambda st, k=k: st["page"] == k - 1)
    return seen


def test_the_station_window_survives_poison_tickets_and_draws_the_next_real_one(screen, hub2, kiosk,  # noqa: F811
                                                                                 monitor):
    kiosk.submit(new_order(KUNG_PAO))
    screen.wait(lambda st: numbers(st) == ["#1"])
    flood(hub2, topics.station_ticket("wok"))
    refused, shown = absurd_tickets()
    for t in refused + shown:
        hub2.publish(topics.station_ticket("wok"), contract.encode(t))
    kiosk.submit(new_order(KUNG_PAO))
    # every line of every ticket is drawn, so the odd ones' hundreds of lines
    # go on over several pages, and #2 comes after them
    screen.wait(lambda st: st["open"] == 2 + len([t for t in shown if t.state == "open"]), 15)
    assert screen.proc.poll() is None, screen.log.read_text()[-3000:]
    # the odd tickets that could be real are drawn too; those no hub makes are not
    drawn = drawn_on_every_page(screen)
    assert {"#1", "#2", f"#{shown[0].number}"} <= drawn and "#9001" not in drawn
    want = expected(POISON) + Counter(unusable=len(refused))
    monitor.wait_json(topics.health("kds-wok-1"), lambda h: counted(h["counters"], want, "ignored_{}"), 10)
    # still drawing: a bump by touch still works
    while "#2" not in numbers(screen.state()):
        page = screen.state()["page"]
        screen.x.key("Next")
        screen.wait(lambda st: st["page"] == page + 1)
    screen.tap_header(2)
    monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["number"] == 2 and u["state"] == "ready")
    screen.wait(lambda st: "#2" not in numbers(st))
    assert screen.proc.poll() is None
