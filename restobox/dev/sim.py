"""Stand-ins for devices: a scripted virtual kiosk and virtual cooks.

Used by the demo, the benchmarks and (later) the rush harness. They speak
the real contract over the real broker, exactly as the real apps do.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import uuid

import msgspec

from restobox import contract
from restobox.bus import Bus, Incoming
from restobox.contract import OrderReply, OrderSubmit, StationEvent, SubmitLine, topics
from restobox.menu import Menu, MenuIndex

log = logging.getLogger("restobox.dev.sim")


def random_order(menu: Menu, rng: random.Random, *, max_lines: int = 4) -> OrderSubmit:
    """A plausible order: 1..max_lines items, every required choice made,
    some optional ones."""
    idx = MenuIndex(menu)
    items = [i for i in menu.items if i.available]
    lines = []
    for _ in range(rng.randint(1, max_lines)):
        item = rng.choice(items)
        mods: list[str] = []
        for gid in item.modifier_groups:
            g = idx.groups[gid]
            k = g.min_choices if g.required else rng.choice([0, 0, 1])
            k = min(k, g.max_choices, len(g.options))
            mods += [o.id for o in rng.sample(list(g.options), k)]
        lines.append(SubmitLine(item_id=item.id, qty=rng.choice([1, 1, 1, 2]), modifiers=tuple(mods)))
    dine_in = rng.random() < 0.4
    return OrderSubmit(
        order_id=str(uuid.uuid4()), channel="kiosk",
        service="dine_in" if dine_in else "takeaway",
        table=str(rng.randint(1, 30)) if dine_in else None,
        lang=rng.choice(["zh", "en"]), lines=tuple(lines),
    )


class VirtualKiosk:
    """Places orders at a steady rate and records the hub's answers."""

    def __init__(self, bus: Bus, menu: Menu, *, rate: float = 0.5, seed: int | None = None) -> None:
        self.bus = bus
        self.menu = menu
        self.rate = rate
        self.rng = random.Random(seed)
        self.replies: dict[str, OrderReply] = {}
        self.sent: dict[str, float] = {}
        self.latencies_ms: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        bus.subscribe(topics.order_reply(bus.device), self._on_reply)

    def _on_reply(self, m: Incoming) -> None:
        try:
            r = contract.decode(m.payload, OrderReply)
        except contract.Rejection as exc:
            log.warning("undecodable reply: %s", exc)
            return
        with self._lock:
            t0 = self.sent.get(r.order_id)
            if t0 is not None and r.order_id not in self.replies:
                self.latencies_ms.append((time.perf_counter() - t0) * 1000)
            self.replies[r.order_id] = r

    def submit(self, order: OrderSubmit) -> None:
        with self._lock:
            self.sent[order.order_id] = time.perf_counter()
        self.bus.publish(topics.order_submit(self.bus.device), contract.encode(order),
                         correlation=order.order_id.encode())

    def place_one(self) -> OrderSubmit:
        o = random_order(self.menu, self.rng)
        self.submit(o)
        return o

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"kiosk-{self.bus.device}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while self.rate > 0 and not self._stop.is_set():
            if self.bus.connected:
                self.place_one()
            self._stop.wait(self.rng.expovariate(self.rate))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)


class VirtualCook:
    """A station's cook: acknowledges each ticket, bumps it after a while.

    At the ``expo`` station it completes orders once they are ready.
    """

    def __init__(self, bus: Bus, station: str, *, cook_s: tuple[float, float] = (3, 12),
                 seed: int | None = None) -> None:
        self.bus = bus
        self.station = station
        self.cook_s = cook_s
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self._due: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if station == contract.EXPO_STATION:
            bus.subscribe(topics.ORDER_UPDATE, self._on_update)
        else:
            bus.subscribe(topics.station_ticket(station), self._on_ticket)

    def _send(self, kind: str, order_id: str) -> None:
        ev = StationEvent(event_id=str(uuid.uuid4()), kind=kind, order_id=order_id, device=self.bus.device)
        self.bus.publish(topics.station_event(self.station), contract.encode(ev))

    def _schedule(self, order_id: str) -> None:
        with self._lock:
            heapq.heappush(self._due, (time.monotonic() + self.rng.uniform(*self.cook_s), "bump", order_id))

    def _on_ticket(self, m: Incoming) -> None:
        t = msgspec.json.decode(m.payload)
        if t.get("state") != "open" or t["ticket_id"] in self.seen:
            return
        self.seen.add(t["ticket_id"])
        self._send("ack", t["order_id"])
        self._schedule(t["order_id"])

    def _on_update(self, m: Incoming) -> None:
        u = msgspec.json.decode(m.payload)
        key = f"{u['order_id']}:ready"
        if u.get("state") == "ready" and key not in self.seen:
            self.seen.add(key)
            self._schedule(u["order_id"])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"cook-{self.station}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            while True:
                with self._lock:
                    if not self._due or self._due[0][0] > now:
                        break
                    _, kind, order_id = heapq.heappop(self._due)
                self._send(kind, order_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
