"""No line of a ticket is ever hidden on the kitchen screens: the longest
real order (a birthday table: 20 lines with modifiers, notes and allergens,
all from the sample menu) on the station and expo screens at 1920x1080 and
1280x800, in real windows under Xvfb, against the real broker and hub.
Each line is checked through the screen's state dump (every card part
reports the lines it shows and whether each lies wholly inside the card and
the window), and a screenshot is kept for a person to look at."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from restobox.contract import OrderSubmit, SubmitLine, topics
from restobox.data import load_sample_menu
from tests.support import KUNG_PAO, device_config, new_order
from tests.ui_support import REPO, ScreenProcess, Xvfb

pytestmark = pytest.mark.integration

SIZES = [(1920, 1080), (1280, 800)]
ORDER_NOTE = "生日宴，请一起上菜 Birthday table of 20 — serve together"
LINE_NOTES = ["少油 less oil", "不要葱 no scallion at all", "", "打包分开 pack separately", ""]


def birthday_order() -> OrderSubmit:
    """20 wok lines from the sample menu, each with its choices made and
    extras, some with a note; the order with a note. Every wok item has
    allergens."""
    menu = load_sample_menu()
    choice = {"spice": "spice-hot", "rice-choice": "rice-white", "noodle-choice": "noodle-thin",
              "add-ons": "addon-egg", "noodle-add-ons": "addon-braised-egg", "hold": "hold-scallion"}
    items = [i for i in menu.items if i.station == "wok" and not i.id.startswith("combo-")]
    lines = []
    for k in range(20):
        item = items[k % len(items)]
        mods = tuple(choice[g] for g in item.modifier_groups if g in choice)
        lines.append(SubmitLine(item_id=item.id, qty=1 + k % 3, modifiers=mods, note=LINE_NOTES[k % 5]))
    return OrderSubmit(order_id=str(uuid.uuid4()), channel="kiosk", service="dine_in", table="8",
                       lines=tuple(lines), note=ORDER_NOTE)


@pytest.fixture
def xvfb():
    x = Xvfb()
    yield x
    x.close()


def keep_shot(shot, name):
    keep = os.environ.get("RESTOBOX_OVERFLOW_SHOTS")
    if keep:
        shutil.copy(shot, os.path.join(keep, name))


def station_config(path, broker, tmp_path, w, h):
    return device_config(path, broker, "kds-wok-1", "kds", f"""[kds]
mode = "station"
station = "wok"
cache = "{tmp_path / 'tickets.db'}"
width = {w}
height = {h}
""")


def lines_shown(cards, ticket_id):
    """ref ("note", "L<line>") -> [inside?, ...] over the ticket's card parts."""
    out = {}
    for c in cards:
        if c["ticket_id"] == ticket_id:
            for ln in c["lines"]:
                out.setdefault(ln["ref"], []).append(ln["inside"])
    return out


def assert_inked(shot, cards):
    """Each line a card says it shows has text drawn there in the
    screenshot: pixels much darker than the paper (the dump reads the
    layout; this reads what reached the screen)."""
    from PIL import Image

    img = Image.open(shot).convert("L")
    blank = []
    for c in cards:
        for ln in c["lines"]:
            x, y, w, h = (int(v) for v in ln["rect"])
            box = img.crop((x, y, x + max(1, w), y + max(1, h)))
            if box.getextrema()[0] > 140:  # nothing darker than light grey
                blank.append((c.get("number"), ln["ref"]))
    assert not blank, f"lines laid out but not drawn: {blank}"


def tap(s, rect):
    """A real click in the middle of ``rect`` (window pixels, origin top left)."""
    left, top = s.state()["window_pos"]
    x, y, w, h = rect
    s.x.click(left + x + w / 2, top + y + h / 2)


def every_page(s, pages):
    """The state of each page in turn (page turned with the bump bar's
    page-down key), back to the first at the end."""
    out = [s.state()]
    for k in range(1, pages):
        s.x.key("Next")
        out.append(s.wait(lambda st, k=k: st["page"] == k))
    for k in range(pages - 1, 0, -1):
        s.x.key("Prior")
        s.wait(lambda st, k=k: st["page"] == k - 1)
    return out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_line_of_the_longest_order_is_on_the_station_screen(size, broker, hub, kiosk, monitor,
                                                                   tmp_path, xvfb):
    w, h = size
    s = ScreenProcess(xvfb, station_config(tmp_path / "kds.toml", broker, tmp_path, w, h), tmp_path)
    s.start()
    try:
        kiosk.submit(new_order(KUNG_PAO))
        order = birthday_order()
        assert kiosk.submit(order).status == "accepted"
        kiosk.submit(new_order(KUNG_PAO))
        # laid out at the cards' real size (before the first frame the
        # screen places whole tickets, not yet split into parts)
        st = s.wait(lambda st: st["open"] == 3 and st["cards"] and all(c["lines"] and c["room"] for c in st["cards"]))
        assert st["window"] == [w, h]
        states = every_page(s, st["pages"])
        shot = s.screenshot(f"station-{w}x{h}.png")
        keep_shot(shot, f"station-{w}x{h}.png")
        assert_inked(shot, states[0]["cards"])
        cards = [c for page in states for c in page["cards"]]
        big = next(c["ticket_id"] for c in cards if c["number"] == "#2")
        parts = [c for c in cards if c["ticket_id"] == big]
        n = len(parts)
        assert n >= 2, "20 lines do not fit one card: the ticket must go on"
        assert [c["part"] for c in parts] == list(range(1, n + 1)), [[(c["number"], c["part"]) for c in p["cards"]] for p in states]
        assert all(c["parts"] == n and c["number"] == "#2" for c in parts)
        assert all(f"{c['part']}/{n}" in c["part_text"] and "cont'd" in c["part_text"] for c in parts)
        shown = lines_shown(cards, big)
        # the note and each of the 20 lines, once, wholly inside its card and the window
        assert sorted(shown) == sorted(["note"] + [f"L{k}" for k in range(1, 21)])
        assert all(v == [True] for v in shown.values()), shown
        # every ticket, whole, in order: #1, #2's parts, #3
        assert all(ln["inside"] for c in cards for ln in c["lines"])
        assert [c["number"] for c in cards] == ["#1"] + ["#2"] * n + ["#3"], [(p["page"], p["pages"], p["open"], [(c["number"], c["part"]) for c in p["cards"]]) for p in states]
        for page in states:  # a ticket going on over the next page says so at the bottom
            last = [c for c in page["cards"] if c["ticket_id"] == big][-1:]
            if last and last[0]["part"] < n:
                assert "#2 续下页 cont'd" in page["hidden_text"]
        for k, page in enumerate(states):
            assert page["cards"], f"page {k + 1} is empty"

        # the all-day panel (18 dishes): all of them, or pages with a visible
        # "more" sign (a tap turns the page)
        allday = states[0]["allday"]
        rows = allday["text"].count("\n") + 1
        if h <= 800:  # too many for the small screen
            assert rows < 18
        if rows < 18:
            assert f"{18 - rows} more" in allday["more"]
            tap(s, allday["rect"])
            st = s.wait(lambda st: "page 2/" in st["allday"]["more"])
            assert st["allday"]["text"] != allday["text"]
        else:
            assert allday["more"] == ""

        # one tap on the last part's header on the first page bumps the whole ticket, once
        first = [c for c in states[0]["cards"] if c["ticket_id"] == big]
        tap(s, first[-1]["header"])
        monitor.wait_json(topics.ORDER_UPDATE, lambda u: u["number"] == 2
                          and any(p["station"] == "wok" and p["state"] == "done" for p in u["stations"]))
        st = s.wait(lambda st: [t["number"] for t in st["tickets"]] == ["#1", "#3"])
        assert all(c["ticket_id"] != big for c in st["cards"]) and st["pages"] == 1
        bumps = [e for e in monitor.all_json(topics.station_event("wok"))
                 if e["kind"] == "bump" and e["order_id"] == order.order_id]
        assert len(bumps) == 1
    finally:
        s.stop()


def expo_config(path, broker, w, h):
    return device_config(path, broker, "expo-1", "expo", f"""[kds]
mode = "expo"
width = {w}
height = {h}
""")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_line_of_the_longest_order_is_on_the_expo_screen(size, broker, hub, kiosk, monitor, tmp_path, xvfb):
    w, h = size
    s = ScreenProcess(xvfb, expo_config(tmp_path / "expo.toml", broker, w, h), tmp_path)
    s.start()
    try:
        kiosk.submit(new_order(KUNG_PAO))
        order = birthday_order()
        assert kiosk.submit(order).status == "accepted"
        kiosk.submit(new_order(KUNG_PAO))
        st = s.wait(lambda st: len(st["orders"]) + st["hidden"] == 3 and all(c["lines"] for c in st["cards"]))
        assert st["window"] == [w, h]
        states = every_page(s, st["pages"])
        shot = s.screenshot(f"expo-{w}x{h}.png")
        keep_shot(shot, f"expo-{w}x{h}.png")
        assert_inked(shot, states[0]["cards"])
        cards = [c for page in states for c in page["cards"]]
        big = [c for c in cards if c["number"] == "#2"]
        n = len(big)
        assert n >= 2, "20 lines with a note do not fit one expo card: the order must go on"
        assert [c["part"] for c in big] == list(range(1, n + 1))
        assert all(c["parts"] == n and f"{c['part']}/{n}" in c["part_text"] for c in big)
        # the note and the wok station's rows, wholly inside their cards and the window
        refs = [ln["ref"] for c in big for ln in c["lines"]]
        assert refs[0] == "note" and "S:wok" in refs and len(refs) == len(set(refs))
        assert all(ln["inside"] for c in cards for ln in c["lines"])
        # each of the 20 item lines once, inside its card and the window
        items = [a for c in big for a in c["items"]]
        assert sorted(a["anchor"] for a in items) == sorted(f"I:wok:{k}" for k in range(1, 21))
        assert all(a["inside"] for a in items)
        assert [c["number"] for c in cards] == ["#1"] + ["#2"] * n + ["#3"]
        for page in states:
            last = [c for c in page["cards"] if c["number"] == "#2"][-1:]
            if last and last[0]["part"] < n:
                assert "#2 续下页 cont'd" in page["hidden_text"]
    finally:
        s.stop()
