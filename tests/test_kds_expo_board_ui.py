"""The expo screen and the customer pickup board in real Kivy windows under
Xvfb, driven by real X input (xdotool clicks and key presses), against the
real broker and hub. The station screens' bumps come from test devices that
publish exactly what a station screen publishes."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from restobox import contract
from restobox.brokerconf import terminate
from restobox.contract import StationEvent, topics
from tests.support import COMBO, KUNG_PAO, MILK_TEA, SPRING_ROLLS, Device, device_config, new_order

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
STATIONS = ("wok", "fryer", "drinks")


# =========================================================================
# A private X display and a screen process on it
# =========================================================================


class Display:
    """A private Xvfb. The server picks a free display number itself
    (``-displayfd``), so parallel tests never share or steal one."""

    def __init__(self, width: int = 1920, height: int = 1080, timeout: float = 10.0) -> None:
        if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
            raise RuntimeError("Xvfb and xdotool are needed (apt-get install xvfb xdotool)")
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
                pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            os.close(w)
        got = b""
        deadline = time.monotonic() + timeout
        with os.fdopen(r, "rb", buffering=0) as f:
            while not got.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([f], [], [], left)[0]:
                    self.close()
                    raise RuntimeError("Xvfb did not report its display number")
                chunk = f.read(16)
                if not chunk:
                    self.close()
                    raise RuntimeError("Xvfb exited before it was ready")
                got += chunk
        self.name = f":{int(got)}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.name}

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env(), check=True, timeout=10)

    def close(self) -> None:
        terminate(self.proc)


class Screen:
    """``python -m <module> --config FILE`` on a Display; its state file says
    where everything is (RESTOBOX_KDS_STATE)."""

    def __init__(self, display: Display, module: str, config: Path, workdir: Path, name: str) -> None:
        self.display = display
        self.module = module
        self.config = config
        self.name = name
        self.state_file = workdir / f"{name}-state.json"
        self.log = workdir / f"{name}.log"
        self.shots = workdir / f"{name}-shots"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.state_file.unlink(missing_ok=True)
        self.shots.mkdir(exist_ok=True)
        env = {**self.display.env(), "RESTOBOX_KDS_STATE": str(self.state_file),
               "RESTOBOX_SCREENSHOT_DIR": str(self.shots)}
        env.pop("RESTOBOX_MQTT_PASSWORD", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module, "--config", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        deadline = time.monotonic() + timeout
        while not self.state_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start; log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def state(self) -> dict:
        for _ in range(40):
            try:
                return json.loads(self.state_file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, FileNotFoundError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} wrote no readable state")

    def wait(self, pred, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            if pred(st):
                return st
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; log:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} never got there; last state: {st}")
            time.sleep(0.1)

    def tap(self, rect: list[float]) -> None:
        """A real click in the middle of ``rect`` (window pixels, origin top left)."""
        left, top = self.state()["window_pos"]
        x, y, w, h = rect
        self.display.xdotool("mousemove", str(int(left + x + w / 2)), str(int(top + y + h / 2)), "click", "1")

    def key(self, name: str) -> None:
        self.display.xdotool("key", name)

    def screenshot(self, target: Path) -> Path:
        """F12, as staff would press it; the app saves the window."""
        before = set(self.shots.glob("*.png"))
        self.key("F12")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = set(self.shots.glob("*.png")) - before
            if new:
                shutil.move(str(new.pop()), target)
                return target
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} saved no screenshot")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 10)


def screen_config(path: Path, broker, device: str, role: str, mode: str, **kds) -> Path:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in kds.items())
    return device_config(path, broker, device, role, f'[kds]\nmode = "{mode}"\nwidth = 1920\nheight = 1080\n{extra}')


@pytest.fixture
def display():
    d = Display()
    yield d
    d.close()


def start_screen(display, broker, tmp_path, kind: str, **kds) -> Screen:
    # both run as `python -m kds`, which picks the screen by the config's mode
    device, module = {"expo": ("expo-1", "kds"), "board": ("board-1", "kds")}[kind]
    cfg = screen_config(tmp_path / f"{kind}.toml", broker, device, kind, kind, **kds)
    s = Screen(display, module, cfg, tmp_path, kind)
    s.start()
    return s


@pytest.fixture
def expo(broker, hub, display, tmp_path):
    s = start_screen(display, broker, tmp_path, "expo")
    s.wait(lambda st: st["banner"] == "")  # connected, and the hub not offline
    yield s
    s.stop()


@pytest.fixture
def board(broker, hub, display, tmp_path):
    s = start_screen(display, broker, tmp_path, "board")
    s.wait(lambda st: st["connected"] and st["hub_online"] and not st["offline"])
    yield s
    s.stop()


@pytest.fixture
def cooks(broker, hub):
    """The three station screens' devices (role kds)."""
    d = {s: Device(broker, f"kds-{s}-1", (topics.station_ticket(s),), role="kds") for s in STATIONS}
    yield d
    for dev in d.values():
        dev.close()


def event(kind: str, order_id: str, device: str, line: int | None = None) -> bytes:
    return contract.encode(StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id,
                                        device=device, line=line))


def station_does(cooks, station: str, kind: str, order_id: str, line: int | None = None) -> None:
    """What the station screen sends when a cook acts."""
    cooks[station].publish(topics.station_event(station), event(kind, order_id, f"kds-{station}-1", line))


def card(st: dict, number: int) -> dict | None:
    return next((o for o in st["orders"] if o["number"] == number), None)


def station(c: dict, name: str) -> dict:
    return next(s for s in c["stations"] if s["station"] == name)


def eventually(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never became true")
        time.sleep(0.05)


def update_of(order_id: str, state: str):
    return lambda u: u["order_id"] == order_id and u["state"] == state


# =========================================================================
# Expo
# =========================================================================


def test_an_order_shows_every_station_turns_ready_when_they_bump_and_a_tap_completes_it(
        expo, kiosk, cooks, monitor):
    order = new_order(COMBO, KUNG_PAO, MILK_TEA, service="dine_in", table="12")
    n = kiosk.submit(order).number
    st = expo.wait(lambda st: (c := card(st, n)) is not None and len(c["stations"]) == 3)
    c = card(st, n)
    assert [s["station"] for s in c["stations"]] == ["drinks", "fryer", "wok"]
    assert not c["ready"] and "Preparing" in c["status"]
    assert (station(c, "wok")["done"], station(c, "wok")["total"]) == (0, 2)

    # the wok screen draws the ticket (ack) and bumps one line
    station_does(cooks, "wok", "ack", order.order_id)
    station_does(cooks, "wok", "item_bump", order.order_id, line=1)
    # the station names come from the hub's menu; "acked" with the hub's next order update
    st = expo.wait(lambda st: station(card(st, n), "wok")["text"] == "炒锅 Wok 1/2 ✓ 已接单 acked")
    assert not card(st, n)["ready"]

    for s in STATIONS:
        station_does(cooks, s, "bump", order.order_id)
    st = expo.wait(lambda st: card(st, n)["ready"])
    c = card(st, n)
    assert all(s["state"] == "done" for s in c["stations"])
    assert "可取餐" in c["status"] and "READY" in c["status"]
    monitor.wait_json(topics.ORDER_UPDATE, update_of(order.order_id, "ready"))

    expo.tap(c["rect"])
    monitor.wait_json(topics.ORDER_UPDATE, update_of(order.order_id, "completed"))
    st = expo.wait(lambda st: card(st, n) is None)
    assert st["completed"] == [n]


def test_a_tap_on_an_order_still_cooking_says_why_and_sends_nothing(expo, kiosk, monitor):
    order = new_order(KUNG_PAO)
    n = kiosk.submit(order).number
    st = expo.wait(lambda st: card(st, n) is not None)
    expo.tap(card(st, n)["rect"])
    st = expo.wait(lambda st: st["notice"] != "")
    assert "not ready" in st["notice"] and "wok" in st["notice"]
    time.sleep(0.5)
    assert monitor.all_json(topics.station_event("expo")) == []
    assert card(st, n) is not None


def test_bump_bar_keys_and_the_recall_button_complete_and_bring_back_an_order(expo, kiosk, cooks, monitor):
    first, second = new_order(SPRING_ROLLS), new_order(MILK_TEA)
    a, b = kiosk.submit(first).number, kiosk.submit(second).number
    station_does(cooks, "fryer", "bump", first.order_id)
    expo.wait(lambda st: card(st, a) is not None and card(st, a)["ready"] and card(st, b) is not None)

    expo.key("Right")  # the bump bar's cursor on the oldest order
    expo.wait(lambda st: card(st, a)["selected"])
    expo.key("Return")
    monitor.wait_json(topics.ORDER_UPDATE, update_of(first.order_id, "completed"))
    st = expo.wait(lambda st: card(st, a) is None)
    assert st["completed"] == [a]

    expo.tap(st["buttons"]["recall"])  # the Recall button on the bottom bar
    monitor.wait_json(topics.ORDER_UPDATE, update_of(first.order_id, "ready"))
    st = expo.wait(lambda st: card(st, a) is not None and card(st, a)["ready"])
    assert card(st, a)["selected"] and st["completed"] == []

    expo.key("Return")
    expo.wait(lambda st: card(st, a) is None)
    expo.key("r")  # the bump bar's recall key
    expo.wait(lambda st: card(st, a) is not None and card(st, a)["ready"])
    def states() -> list[str]:
        return [u["state"] for u in monitor.all_json(topics.ORDER_UPDATE) if u["order_id"] == first.order_id]

    eventually(lambda: states()[-4:] == ["completed", "ready", "completed", "ready"])
    assert [e["kind"] for e in monitor.all_json(topics.station_event("expo"))] == [
        "bump", "recall", "bump", "recall"]
    assert card(expo.state(), b) is not None  # the other order was never touched


def test_both_screens_say_when_the_store_network_is_lost_and_clear_when_back(broker, expo, board, kiosk):
    broker.stop()
    st = expo.wait(lambda st: st["banner"] != "")
    assert "lost" in st["banner"] and "断开" in st["banner"]
    st = board.wait(lambda st: st["offline"])
    assert "Reconnecting" in st["footer"]  # diners are told the numbers may be stale
    broker.start()
    expo.wait(lambda st: st["banner"] == "", timeout=20)
    board.wait(lambda st: not st["offline"], timeout=20)
    # and the screens work again: a new order arrives on both
    kiosk.bus.wait_connected(15)
    n = kiosk.submit(new_order(KUNG_PAO), timeout=20).number
    expo.wait(lambda st: card(st, n) is not None)
    board.wait(lambda st: n in st["preparing"])


def test_a_held_order_waits_apart_marked_held_and_a_payment_puts_it_on_the_grid(broker, display, tmp_path):
    """The hub's messages, published here as the hub would: a QR order held
    until paid ([hub.till] hold_unpaid) comes as held tickets on the expo's
    own topic and is shown apart from the grid, marked HELD; an open order
    not paid yet has the UNPAID badge; the payment (order/update, then the
    released tickets on their stations' topics) puts the held order on the
    grid and takes the badges off."""
    from restobox.contract import OrderUpdate, StationTicket, TicketItem

    hub = Device(broker, "hub", role="hub")
    screen = None
    try:
        hub.bus.announce()
        screen = start_screen(display, broker, tmp_path, "expo")
        screen.wait(lambda st: st["banner"] == "")
        held_id, open_id = str(uuid.uuid4()), str(uuid.uuid4())
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())

        def ticket(order_id, number, st, state, payment, revision=1, table=None):
            return StationTicket(
                ticket_id=f"{order_id}:{st}", order_id=order_id, number=number, station=st, channel="qr",
                service="dine_in" if table else "takeaway", table=table,
                items=(TicketItem(line=1, item_id="kung-pao-chicken", name_zh="宫保鸡丁", name_en="Kung Pao Chicken",
                                  qty=1),),
                accepted_at=now, state=state, revision=revision, payment=payment)

        def update(order_id, number, state, payment, table=None):
            return OrderUpdate(order_id=order_id, number=number, business_date="2026-12-05", state=state, at=now,
                               payment=payment, paid=3800 if payment == "paid" else 0, total=3800, channel="qr",
                               table=table)

        def send(topic, msg):
            hub.publish(topic, contract.encode(msg))

        send(topics.ORDER_UPDATE, update(held_id, 57, "held", "unpaid", table="12"))
        for st in ("wok", "drinks"):
            send(topics.station_ticket("expo"), ticket(held_id, 57, st, "held", "unpaid", table="12"))
        send(topics.station_ticket("wok"), ticket(open_id, 58, "wok", "open", "unpaid"))
        st = screen.wait(lambda st: [h["number"] for h in st["held"]] == [57] and card(st, 58) is not None)
        assert card(st, 57) is None  # apart: not on the grid, nobody cooks it
        assert "待付款" in st["held_text"] and "HELD – waiting for payment" in st["held_text"]
        assert "#57" in st["held_text"] and "12号桌" in st["held_text"] and "¥38.00" in st["held_text"]
        assert card(st, 58)["unpaid"] == "未付 UNPAID"
        x, y, w, h = st["held_rect"]
        gx, gy, gw, gh = st["grid_rect"]
        assert h > 0 and x >= gx + gw  # beside the grid
        screen.screenshot(tmp_path / "expo-held.png")

        # paid at the counter: the hub's update, then its released tickets on the stations' topics
        send(topics.ORDER_UPDATE, update(held_id, 57, "accepted", "paid", table="12"))
        for st_ in ("wok", "drinks"):
            send(topics.station_ticket(st_), ticket(held_id, 57, st_, "open", "paid", revision=2, table="12"))
        st = screen.wait(lambda st: st["held"] == [] and card(st, 57) is not None
                         and len(card(st, 57)["stations"]) == 2)
        assert card(st, 57)["unpaid"] == "" and card(st, 58)["unpaid"] == "未付 UNPAID"
        assert st["held_text"] == "" and st["held_rect"][3] == 0
        send(topics.ORDER_UPDATE, update(open_id, 58, "accepted", "paid"))
        screen.wait(lambda st: card(st, 58)["unpaid"] == "")
    finally:
        if screen is not None:
            screen.stop()
        hub.close()


# =========================================================================
# Pickup board
# =========================================================================


def test_the_pickup_board_shows_a_number_preparing_then_ready_then_takes_it_off(board, broker, kiosk, cooks,
                                                                                 monitor):
    first, second = new_order(SPRING_ROLLS), new_order(MILK_TEA)
    a, b = kiosk.submit(first).number, kiosk.submit(second).number
    st = board.wait(lambda st: st["preparing"] == [a, b])
    assert st["ready"] == [] and not st["offline"]

    station_does(cooks, "fryer", "bump", first.order_id)
    st = board.wait(lambda st: st["ready"] == [a])
    assert st["preparing"] == [b] and st["just_ready"] == [a]
    station_does(cooks, "drinks", "bump", second.order_id)
    st = board.wait(lambda st: st["ready"] == [b, a])  # newest first
    assert st["preparing"] == [] and st["just_ready"] == [a, b]

    # the expo hands order a over (as the expo screen would)
    expo_dev = Device(broker, "expo-1", role="expo")
    try:
        expo_dev.publish(topics.station_event("expo"), event("bump", first.order_id, "expo-1"))
        monitor.wait_json(topics.ORDER_UPDATE, update_of(first.order_id, "completed"))
        st = board.wait(lambda st: st["ready"] == [b])
        assert a not in st["preparing"]
    finally:
        expo_dev.close()
    # the highlight fades: after a while nothing is "just ready"
    board.wait(lambda st: st["just_ready"] == [], timeout=15)

    # a service stop (SIGTERM) closes the board cleanly: it says "offline" itself
    board.stop()
    assert board.proc.returncode == 0, board.log.read_text()[-3000:]
    monitor.wait_json(topics.presence("board-1"), lambda p: p["state"] == "offline")


# =========================================================================
# Screenshots
# =========================================================================


def test_the_expo_and_the_board_look_like_a_restaurant_at_lunch(broker, hub, kiosk, cooks, tmp_path):
    """Screenshots of both screens in the middle of a rush: orders late,
    warning, new, half done, ready and handed over.
    RESTOBOX_DOCS_SCREENSHOTS=docs/screenshots keeps them for the README."""
    d_expo = Display()
    d_board = expo = board = None
    try:
        d_board = Display()
        expo = start_screen(d_expo, broker, tmp_path, "expo", warn_s=15, late_s=25)
        board = start_screen(d_board, broker, tmp_path, "board")
        expo.wait(lambda st: st["banner"] == "")

        def order(*lines, at=(), **kw):
            """An order from the kiosk; the screens of stations ``at`` draw it (ack)."""
            o = new_order(*lines, **kw)
            reply = kiosk.submit(o)
            assert reply.status == "accepted", reply
            for s in at:
                station_does(cooks, s, "ack", o.order_id)
            return o, reply.number

        def bump(o, *stations):
            for s in stations:
                station_does(cooks, s, "bump", o.order_id)

        def aged(seconds):
            """Until the first order is ``seconds`` old on the expo screen."""
            expo.wait(lambda st: (c := card(st, n_late1)) is not None and c["elapsed_s"] >= seconds, timeout=30)

        late1, n_late1 = order(COMBO, service="dine_in", table="12", at=STATIONS)
        late2, _ = order(KUNG_PAO, MILK_TEA, at=("wok", "drinks"))
        early, _ = order(SPRING_ROLLS, ("fries", 1), at=("fryer",))
        gone1, n_gone1 = order(KUNG_PAO, at=("wok",))
        gone2, n_gone2 = order(MILK_TEA, service="dine_in", table="5", at=("drinks",))
        bump(late1, "wok")
        bump(late2, "drinks")
        bump(early, "fryer")
        bump(gone1, "wok")
        bump(gone2, "drinks")
        for n in (n_gone1, n_gone2):  # handed over with a tap on the expo screen
            st = expo.wait(lambda st, n=n: (c := card(st, n)) is not None and c["ready"])
            expo.tap(card(st, n)["rect"])
            expo.wait(lambda st, n=n: card(st, n) is None)
        aged(7)
        warn1, _ = order(("beef-chow-fun", 1), ("dan-dan-noodles", 1, ("noodle-thin", "spice-medium")),
                         service="dine_in", table="7", at=("wok",))
        warn2, _ = order(COMBO, at=STATIONS)
        warn3, _ = order(("yangzhou-fried-rice", 3), at=("wok",))
        station_does(cooks, "wok", "item_bump", warn2.order_id, line=1)
        bump(warn2, "fryer")
        aged(13)
        normal1, _ = order(MILK_TEA, SPRING_ROLLS, service="dine_in", table="3", at=("drinks", "fryer"))
        normal2, _ = order(("mapo-tofu", 2, ("spice-hot", "rice-white")), at=("wok",))
        drinks, _ = order(MILK_TEA, ("lemon-tea", 1, ("sugar-less", "ice-normal")), at=("drinks",))
        bump(warn3, "wok")
        bump(normal1, "drinks")
        bump(drinks, "drinks")
        bump(normal2, "wok")
        aged(23)
        order(KUNG_PAO, service="dine_in", table="9", at=("wok",))
        order(COMBO)
        pudding, _ = order(("mango-pudding", 1), at=("drinks",))
        fries, _ = order(("fries", 1), at=("fryer",))
        bump(pudding, "drinks")
        bump(fries, "fryer")
        expo.wait(lambda st: len(st["orders"]) == 10 and st["hidden"] >= 1)
        board.wait(lambda st: len(st["ready"]) == 6 and len(st["just_ready"]) == 2)
        # the first orders turn late 25 s after they came, about when this
        # point is reached: wait for it rather than for a time
        expo.wait(lambda st: {"late", "warning", "new"} <= {o["colour"] for o in st["orders"]}, timeout=10)
        # late cards flash; the picture shows them in their steady red
        expo.wait(lambda st: not any(o["flashing"] for o in st["orders"]), timeout=5)

        shots = {"kds-expo.png": expo.screenshot(tmp_path / "kds-expo.png"),
                 "ready-board.png": board.screenshot(tmp_path / "ready-board.png")}
        st = expo.state()
        colours = {o["colour"] for o in st["orders"]}
        assert {"late", "warning", "new"} <= colours and any(o["ready"] for o in st["orders"])
        assert st["completed"] == [n_gone2, n_gone1]
        assert st["window"] == [1920, 1080] and board.state()["window"] == [1920, 1080]
        for p in shots.values():
            assert p.stat().st_size > 50_000
        keep = os.environ.get("RESTOBOX_DOCS_SCREENSHOTS")
        if keep:
            for name, p in shots.items():
                shutil.copy(p, REPO / keep / name)
    finally:
        for s in (expo, board):
            if s is not None:
                s.stop()
        for d in (d_expo, d_board):
            if d is not None:
                d.close()
