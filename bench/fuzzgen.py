"""Malformed messages for every topic a Restobox service or screen reads, and
the whole store to send them to. Shared by ``tests/test_fuzz.py`` (CI:
20,000 messages) and ``bench/fuzz.py`` (the long run).

"One bad message must never stall the store." The generator makes, from a
seed, messages that the receiver MUST refuse, each labelled with its topic
family, its kind and the reason codes the hub may give for it; the harness
runs the real store (mosquitto with the store's config, ``restobox hub``,
``restobox printing`` with virtual printers, ``restobox sync`` with
``restobox cloud-dev``, and the screens' controllers headless: the station
screen, the expo, the pickup board and the kiosk), sends them from a device
of every role allowed to publish on each topic (docs/protocol.md §6), and
keeps a well-behaved kiosk ordering throughout.

Kinds of malformed payloads (every one a message the receiver must refuse;
valid orders are never mutated into other valid orders):

- not JSON, empty, whitespace, truncated, invalid UTF-8 (inside strings and
  out), bad escapes, trailing garbage, a byte-order mark;
- deep nesting (``[`` x N, ``{"a":`` x N, inside a field; the poison
  payload ``[`` x 1000 ``]`` x 1000), huge arrays and objects, long strings,
  payloads over the limit;
- numbers out of range (10**30, 1e400, 2**53, 1e16) and NaN-ish tokens,
  wrong top-level types, ``"v": 2`` / no ``v`` / ``v`` of another type;
- missing, extra and renamed fields, a wrong JSON type for each field of
  each message type (from msgspec's own type info), near-misses of every
  pattern (an id with a trailing newline: the hub once stored ``<uuid>\\n``
  beside ``<uuid>``), literal, length and range;
- valid-schema nonsense the hub must refuse: unknown items and options,
  quantities 0/100/2**53-1, more than 200 items, 51 to 400 lines, options
  of other items, wrong or negative money, a stale menu version with the
  old price, a paid amount that is not the total, a QR order without its
  table, bad phone numbers and points, an accepted order's id with other
  contents, events for unknown orders or lines or stations, expo moves the
  state machine refuses, staff commands for unknown orders, items and
  printers, menus that fail their checks, stock for unknown items, and
  messages naming another device, station or printer than their topic.

Requests (submissions, balance queries, staff commands) carry correlation
data or not, and a response topic that is the device's own, absent, or
another topic (which the hub must ignore).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402
import msgspec.inspect as mi  # noqa: E402

from restobox import contract  # noqa: E402
from restobox.contract import topics  # noqa: E402
from storekit import Proc, proc_stat, services, wait_http  # noqa: E402  (bench/, beside this file)

log = logging.getLogger("restobox.fuzz")

# =========================================================================
# The devices
# =========================================================================

GOOD_KIOSK = "kiosk-2"  # orders valid orders throughout (its receipts print at receipt-1)
BURST_KIOSK = "kiosk-3"  # valid orders as fast as the hub takes them (drinks only: nothing to print)
SCREENS = {"station": "kds-wok-1", "expo": "expo-1", "board": "board-1", "kiosk": "kiosk-9"}
PRINTERS = ("kitchen-1", "receipt-1")
# Devices that only fuzz, beside those of restobox.brokerconf.STANDARD_DEVICES
# (kiosk-1, web and staff-1 fuzz too). A second connection named "hub" (or
# "sync", "printing", "kds-wok-1") would throw the real one off the broker.
EXTRA_DEVICES: list[tuple[str, str, str | None]] = [
    ("kiosk-9", "kiosk", None),
    ("kiosk-3", "kiosk", None),
    ("hub-fz", "hub", None),
    ("sync-fz", "sync", None),
    ("printing-fz", "printing", None),
    ("kds-wok-fz", "kds", "wok"),
    ("kds-fryer-fz", "kds", "fryer"),
    ("expo-fz", "expo", "expo"),
    ("board-fz", "board", None),
    ("monitor-fz", "monitor", None),
]
FUZZERS = {"kiosk-1": "kiosk", "web": "web", "sync-fz": "sync", "staff-1": "staff", "printing-fz": "printing",
           "kds-wok-fz": "kds", "kds-fryer-fz": "kds", "expo-fz": "expo", "board-fz": "board", "hub-fz": "hub",
           "monitor-fz": "monitor"}
#: where a request's answer comes: device -> reply topics it reads
REPLY_TOPICS = {
    "kiosk-1": (topics.order_reply("kiosk-1"), topics.loyalty_reply("kiosk-1")),
    "web": (topics.order_reply("web"),),
    "sync-fz": (topics.order_reply("sync-fz"),),
    "staff-1": (topics.staff_reply("staff-1"),),
}
SINK = f"{contract.ROOT}/fuzz/sink"
"""A response topic pointing elsewhere: nothing may ever arrive here."""

KUNG_PAO = ("kung-pao-chicken", 1, ("spice-mild", "rice-white"))
MILK_TEA = ("bubble-milk-tea", 2, ("sugar-half", "ice-less"))

KB = 1024
HUB_LIMIT = contract.MAX_PAYLOAD_BYTES  # [hub] max_payload_bytes, its default
MAX_PACKET = 200 * KB  # mosquitto's max_packet_size is 256 KiB: stay under it


# =========================================================================
# Messages
# =========================================================================


@dataclass(slots=True)
class Msg:
    n: int
    family: str  # "order/submit", "station/ticket", ...
    target: str  # hub | printing | sync | screens
    kind: str
    device: str  # the publisher
    topic: str
    payload: bytes
    expect: frozenset[str]  # the reasons the hub may give (empty: any refusal)
    request: str | None = None  # submit | loyalty | staff: answered on the device's reply topic
    corr: bytes | None = None
    response_topic: str | None = None
    readers: tuple[str, ...] = ()  # screens / services that must refuse it
    detail: str = ""
    ids: tuple[str, ...] = ()  # event, command or order ids that must not be stored

    @property
    def reply_topic(self) -> str | None:
        return reply_topic(self.request, self.device)


def reply_topic(request: str | None, device: str) -> str | None:
    """Where the hub answers a request from ``device``: its own reply topic."""
    if request == "submit":
        return topics.order_reply(device)
    if request == "loyalty":
        return topics.loyalty_reply(device)
    if request == "staff":
        return topics.staff_reply(device)
    return None


@dataclass
class ValidOrder:
    order_id: str
    body: dict
    stations: frozenset[str]


@dataclass
class Family:
    name: str
    target: str
    type_: type
    routes: list[tuple[str, str]]  # (publisher, topic)
    weight: float
    request: str | None = None
    limit: int = HUB_LIMIT
    readers: Callable[[str], tuple[str, ...]] = lambda topic: ()


def _readers(*names: str) -> Callable[[str], tuple[str, ...]]:
    return lambda topic: names


def _ticket_readers(topic: str) -> tuple[str, ...]:
    return ("station", "expo") if topic == topics.station_ticket("wok") else ("expo",)


def _presence_readers(topic: str) -> tuple[str, ...]:
    return ("station", "expo", "kiosk", "board") if topic == topics.presence("hub") else ("station", "expo", "kiosk")


def families() -> list[Family]:
    """Every topic a service or screen reads, from every role allowed to
    publish there (restobox/broker_config/roles/*.acl), with its share of the fuzz."""
    # every device may publish its own presence and health (acl.base)
    own = ["kiosk-1", "web", "sync-fz", "staff-1", "printing-fz", "kds-wok-fz", "expo-fz", "board-fz", "monitor-fz"]
    others = ["hub", "printing", "sync", "kiosk-2", "kds-wok-1", "expo-1", "ghost-1"]
    st = topics.station_event
    sy = topics.station_sync
    return [
        # ------------------------------------------------------------ the hub
        Family("order/submit", "hub", contract.OrderSubmit, weight=22, request="submit", routes=[
            ("kiosk-1", topics.order_submit("kiosk-1")), ("web", topics.order_submit("web")),
            ("sync-fz", topics.order_submit("sync-fz"))]),
        Family("loyalty/query", "hub", contract.LoyaltyQuery, weight=6, request="loyalty",
               routes=[("kiosk-1", topics.loyalty_query("kiosk-1"))]),
        Family("staff/command", "hub", contract.StaffCommand, weight=8, request="staff",
               routes=[("staff-1", topics.staff_command("staff-1"))]),
        Family("station/event", "hub", contract.StationEvent, weight=10, routes=[
            ("kds-wok-fz", st("wok")), ("kds-fryer-fz", st("fryer")), ("expo-fz", st("expo"))]),
        Family("station/sync", "hub", contract.SyncRequest, weight=3, routes=[
            ("kds-wok-fz", sy("wok")), ("kds-fryer-fz", sy("fryer")), ("expo-fz", sy("expo"))]),
        Family("print/state", "hub", contract.PrintJobState, weight=3,
               routes=[("printing-fz", topics.PRINT_JOB_STATE)]),
        Family("cloud/menu", "hub", contract.MenuMessage, weight=2, limit=4 * KB * KB,
               routes=[("sync-fz", topics.CLOUD_MENU)]),
        Family("cloud/stock", "hub", contract.StockLevels, weight=2, limit=KB * KB,
               routes=[("sync-fz", topics.CLOUD_STOCK)]),
        # ------------------------------------------------------- printing
        Family("print/job", "printing", contract.PrintJob, weight=5, readers=_readers("printing"),
               routes=[("kiosk-1", topics.PRINT_JOB), ("hub-fz", topics.PRINT_JOB)]),
        # ----------------------------------------------------------- sync
        Family("order/reply@sync", "sync", contract.OrderReply, weight=2, readers=_readers("sync"),
               routes=[("hub-fz", topics.order_reply("sync"))]),
        Family("menu/current", "screens", contract.MenuMessage, weight=3,
               readers=_readers("sync", "kiosk", "expo"), routes=[("hub-fz", topics.MENU)]),
        # -------------------------------------------------------- screens
        Family("station/ticket", "screens", contract.StationTicket, weight=6, readers=_ticket_readers, routes=[
            ("hub-fz", topics.station_ticket("wok")), ("hub-fz", topics.station_ticket("fryer")),
            ("hub-fz", topics.station_ticket("drinks"))]),
        Family("order/update", "screens", contract.OrderUpdate, weight=3, readers=_readers("station", "expo"),
               routes=[("hub-fz", topics.ORDER_UPDATE)]),
        Family("board/ready", "screens", contract.Board, weight=2, readers=_readers("board"),
               routes=[("hub-fz", topics.BOARD)]),
        Family("menu/soldout", "screens", contract.SoldOut, weight=2, readers=_readers("kiosk"),
               routes=[("hub-fz", topics.SOLDOUT)]),
        Family("print/printer", "screens", contract.PrinterStatus, weight=2,
               readers=_readers("station", "expo", "kiosk"),
               routes=[(d, topics.printer_status(p)) for d in ("hub-fz", "printing-fz")
                       for p in (*PRINTERS, "fz-printer")]),
        Family("alert", "screens", contract.Alert, weight=2, readers=_readers("station", "expo", "kiosk"),
               routes=[("hub-fz", topics.ALERTS), ("printing-fz", topics.ALERTS)]),
        Family("presence", "screens", contract.Presence, weight=3, readers=_presence_readers,
               routes=[(d, topics.presence(d)) for d in own] + [("hub-fz", topics.presence(d)) for d in others]
               + [("hub-fz", topics.presence("hub"))] * 4),
        Family("health", "screens", contract.Health, weight=3, readers=_readers("station", "expo", "kiosk"),
               routes=[(d, topics.health(d)) for d in own] + [("hub-fz", topics.health(d)) for d in others]),
        Family("order/reply@kiosk", "screens", contract.OrderReply, weight=2, readers=_readers("kiosk"),
               routes=[("hub-fz", topics.order_reply(SCREENS["kiosk"]))]),
        Family("loyalty/reply@kiosk", "screens", contract.LoyaltyBalance, weight=1, readers=_readers("kiosk"),
               routes=[("hub-fz", topics.loyalty_reply(SCREENS["kiosk"]))]),
    ]


# =========================================================================
# What each JSON type refuses (from msgspec's own type info)
# =========================================================================

_SAMPLES = {"str": "fuzz", "int": 7, "float": 1.5, "bool": True, "null": None, "array": [1], "object": {"fz": 1}}
_ALL = frozenset(_SAMPLES)
MAX_INT = 2**53 - 1


def _accepts(t) -> frozenset[str]:
    """The JSON kinds a msgspec type takes."""
    if isinstance(t, mi.UnionType):
        out: frozenset[str] = frozenset()
        for x in t.types:
            out |= _accepts(x)
        return out
    if isinstance(t, mi.StrType):
        return frozenset({"str"})
    if isinstance(t, mi.BoolType):
        return frozenset({"bool"})
    if isinstance(t, mi.IntType):
        return frozenset({"int"})
    if isinstance(t, mi.FloatType):
        return frozenset({"int", "float"})
    if isinstance(t, mi.NoneType):
        return frozenset({"null"})
    if isinstance(t, mi.LiteralType):
        return frozenset({"str" if isinstance(v, str) else "int" for v in t.values})
    if isinstance(t, (mi.VarTupleType, mi.ListType, mi.TupleType, mi.SetType, mi.FrozenSetType)):
        return frozenset({"array"})
    if isinstance(t, mi.DictType):
        return frozenset({"object"})
    if isinstance(t, mi.StructType):
        return frozenset({"array"}) if t.array_like else frozenset({"object"})
    return _ALL  # Any, Raw, ...: everything goes


def _members(t) -> list:
    return list(t.types) if isinstance(t, mi.UnionType) else [t]


def _example(t, rng: random.Random, depth: int = 0):
    """A small value the type takes (for elements and near-misses)."""
    for m in _members(t):
        if isinstance(m, mi.NoneType):
            continue
        if isinstance(m, mi.LiteralType):
            return m.values[0]
        if isinstance(m, mi.StrType):
            if m.pattern:
                for cand in (str(uuid.uuid4()), "kds-wok-1", "12", "fz-1"):
                    if re.search(m.pattern, cand) and (m.max_length is None or len(cand) <= m.max_length):
                        return cand
            return "x" * max(1, m.min_length or 1)
        if isinstance(m, mi.IntType):
            return max(1, m.ge or 0, (m.gt or 0) + 1)
        if isinstance(m, mi.FloatType):
            return 1.0
        if isinstance(m, mi.BoolType):
            return False
        if isinstance(m, (mi.VarTupleType, mi.ListType)):
            return []
        if isinstance(m, mi.DictType):
            return {}
        if isinstance(m, mi.StructType) and depth < 4:
            return {f.encode_name: _example(f.type, rng, depth + 1) for f in m.fields if f.required}
    return None


def _near_misses(value: str, pattern: str) -> list[str]:
    cands = [value + "\n", value + " ", " " + value, "\n" + value, value + "\r\n", value + "\t",
             value + "\u00a0", value.upper(), value[:-1], value + "0", value.replace("-", "_"), "",
             "{" + value + "}", value + "\x00", value + "/", value + "#", value.replace("-", "")]
    return [c for c in dict.fromkeys(cands) if c != value and re.search(pattern, c) is None]


def bad_values(t, current, rng: random.Random) -> list[tuple[str, object]]:
    """(kind, JSON value) pairs the type must refuse, every one within the
    shape limits of contract.check_shape (so: bad_schema)."""
    out: list[tuple[str, object]] = []
    acc = _accepts(t)
    for kind in sorted(_ALL - acc):
        out.append(("wrong_type", _SAMPLES[kind]))
    members = [m for m in _members(t) if not isinstance(m, mi.NoneType)]
    takes_str = [m for m in members if "str" in _accepts(m)]
    if len(takes_str) == 1:
        m = takes_str[0]
        if isinstance(m, mi.StrType):
            ex = current if isinstance(current, str) else _example(m, rng)
            if m.max_length is not None and m.max_length + 1 <= 8000:
                out.append(("too_long", "x" * (m.max_length + 1 + rng.randrange(3))))
            if m.min_length:
                out.append(("too_short", ""))
            if m.pattern and isinstance(ex, str):
                for c in _near_misses(ex, m.pattern):
                    out.append(("near_miss", c))
        elif isinstance(m, mi.LiteralType):
            vals = [v for v in m.values if isinstance(v, str)]
            v = rng.choice(vals)
            for c in ("fuzz", v.upper(), v + " ", v + "\n", "", v.replace("_", "-"), v.title()):
                if c not in m.values:
                    out.append(("near_miss", c))
    ints = [m for m in members if isinstance(m, mi.IntType)]
    if len(ints) == 1 and not any(isinstance(m, mi.FloatType) for m in members):
        m = ints[0]
        below = None if m.ge is None else m.ge - 1
        above = None if m.le is None else m.le + 1
        for bound, v in ((m.ge, below), (m.gt, m.gt), (m.le, above), (m.lt, m.lt)):
            if bound is not None and v is not None and abs(v) <= MAX_INT:
                out.append(("out_of_bounds", v))
    for m in members:
        if isinstance(m, (mi.VarTupleType, mi.ListType)):
            elem = _example(m.item_type, rng)
            for k, v in bad_values(m.item_type, elem, rng)[:3]:
                out.append((f"element_{k}", [v]))
            if m.max_length is not None and m.max_length < 5000:
                out.append(("too_many_elements", [elem] * (m.max_length + 1)))
        elif isinstance(m, mi.DictType):
            kv = _example(m.value_type, rng)
            for k, v in bad_values(m.value_type, kv, rng)[:2]:
                out.append((f"value_{k}", {"fz": v}))
            kt = m.key_type
            if isinstance(kt, mi.StrType) and kt.max_length and kt.max_length < 4000:
                out.append(("key_too_long", {"k" * (kt.max_length + 1): kv}))
    return out


_INFO: dict[type, object] = {}


def type_info(t: type):
    """msgspec's type info of a message type (cached: it is slow to make)."""
    if t not in _INFO:
        _INFO[t] = mi.type_info(t)
    return _INFO[t]


def field_paths(t, d, prefix: tuple = (), depth: int = 0) -> list[tuple[tuple, object, bool]]:
    """(path, msgspec type, required) of every field of struct type ``t``
    (and of the structs inside, as far as ``d`` has them)."""
    if not isinstance(t, mi.StructType):
        return []
    out = []
    for f in t.fields:
        path = prefix + (f.encode_name,)
        out.append((path, f.type, f.required))
        if depth >= 3 or not isinstance(d, dict) or f.encode_name not in d:
            continue
        v = d[f.encode_name]
        for m in _members(f.type):
            if isinstance(m, mi.StructType) and isinstance(v, dict):
                out += field_paths(m, v, path, depth + 1)
            elif isinstance(m, (mi.VarTupleType, mi.ListType)) and isinstance(v, list) and v \
                    and isinstance(m.item_type, mi.StructType):
                out += field_paths(m.item_type, v[0], path + (0,), depth + 1)
    return out


def _get(d, path):
    for k in path:
        d = d[k]
    return d


def _set(d, path, value):
    d = json.loads(json.dumps(d))
    target = d
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return d


def _del(d, path):
    d = json.loads(json.dumps(d))
    target = d
    for k in path[:-1]:
        target = target[k]
    del target[path[-1]]
    return d


_RAW = "\u0001raw\u0001"


def dump(d, rng: random.Random | None = None) -> bytes:
    ascii_ = bool(rng and rng.random() < 0.3)
    return json.dumps(d, ensure_ascii=ascii_, separators=(",", ":")).encode()


def with_raw(d, path, raw: bytes, rng=None) -> bytes:
    """The message with the value at ``path`` replaced by raw bytes."""
    out = dump(_set(d, path, _RAW), rng)
    token = json.dumps(_RAW).encode()
    assert out.count(token) == 1
    return out.replace(token, raw)


# =========================================================================
# The generator
# =========================================================================


class Gen:
    """Malformed messages from a seed, in an interleaved random order.

    ``valid_orders`` gives the orders the well-behaved kiosk has had
    accepted so far: some malformed messages are about them (an accepted
    order's id with other contents, events for the wrong station...)."""

    def __init__(self, seed: int, *, valid_orders: Callable[[], list[ValidOrder]] = lambda: [],
                 only: set[str] | None = None) -> None:
        from restobox.data import load_sample_menu
        from restobox.menu import MenuIndex

        self.rng = random.Random(seed)
        # what depends on the valid orders accepted so far (a matter of
        # timing) draws from its own stream, so the sequence of families and
        # kinds is the same for a seed whatever the timing
        self.vrng = random.Random(seed + 7919)
        self.menu = load_sample_menu()
        self.idx = MenuIndex(self.menu)
        self.valid_orders = valid_orders
        self.families = [f for f in families() if only is None or f.name in only]
        self._weights = [f.weight for f in self.families]
        self.n = 0
        self._menu_msg = json.loads(contract.encode(contract.MenuMessage(menu=self.menu, at=_now())))

    # -------------------------------------------------------------- driving
    def __iter__(self) -> Iterator[Msg]:
        while True:
            yield self.next()

    def next(self, family: str | None = None) -> Msg:
        rng = self.rng
        fam = (next(f for f in self.families if f.name == family) if family
               else rng.choices(self.families, self._weights)[0])
        device, topic = rng.choice(fam.routes)
        self.n += 1
        kind, payload, expect, detail, ids = self._make(fam, device, topic)
        if len(payload) > MAX_PACKET:
            raise AssertionError(f"{fam.name} {kind}: {len(payload)} bytes is over the broker's packet limit")
        m = Msg(self.n, fam.name, fam.target, kind, device, topic, payload, frozenset(expect), fam.request,
                readers=fam.readers(topic), detail=detail, ids=ids)
        if fam.request or rng.random() < 0.1:
            if rng.random() < 0.8:
                m.corr = self.n.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 28))
            r = rng.random()
            own = m.reply_topic or topic
            m.response_topic = (own if r < 0.6 else None if r < 0.8 else
                                rng.choice([SINK, topics.order_reply(GOOD_KIOSK), topics.staff_reply("staff-1")]))
        return m

    def _make(self, fam: Family, device: str, topic: str):
        rng = self.rng
        base = self._base(fam, device, topic)
        sem = self._semantic(fam, device, topic, base)
        r = rng.random()
        if sem and r < 0.35:
            kind, body, expect = rng.choice(sem)()
            payload = body if isinstance(body, bytes) else dump(body, rng)
            ids = self._ids(body if isinstance(body, dict) else base)
            return kind, payload, self._fit(expect, len(payload), fam.limit), "", ids
        if r < 0.65:
            kind, payload, expect, detail = self._field_kind(fam, base)
        else:
            kind, payload, expect, detail = self._shape_kind(fam, base)
        return kind, payload, self._fit(expect, len(payload), fam.limit), detail, self._ids(base)

    @staticmethod
    def _fit(expect, size: int, limit: int) -> set[str]:
        return {"payload_too_large"} if size > limit else set(expect)

    @staticmethod
    def _ids(d) -> tuple[str, ...]:
        if not isinstance(d, dict):
            return ()
        return tuple(str(d[k]) for k in ("event_id", "command_id", "query_id", "order_id", "job_id")
                     if isinstance(d.get(k), str))

    # ---------------------------------------------------- kinds of any message
    def _shape_kind(self, fam: Family, base: dict):
        rng = self.rng
        good = dump(base, rng)
        kind = rng.choices(
            ["not_json", "empty", "truncated", "invalid_utf8", "bad_escape", "trailing_garbage", "bom",
             "deep_nesting", "huge_array", "huge_object", "long_string", "oversize", "number_out_of_range",
             "nan_token", "wrong_top_type", "version"],
            [3, 1.5, 3, 3, 2, 2, 0.7, 3.5, 1, 0.5, 1.5, 0.7, 2, 2, 2, 3])[0]
        paths = [p for p, _, _ in field_paths(type_info(fam.type_), base)
                 if p != ("v",) and _has(base, p)]
        where = rng.choice(paths) if paths else ("v",)
        if kind == "not_json":
            p = rng.choice([b"{this is not json", b"order please", b"<order/>", b"{'v': 1}", b"{v:1}",
                            b"\x00\x01\x02", b"[1,2,", b'{"v":1,}', b"\xff" + rng.randbytes(rng.randrange(1, 200)),
                            b"#" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=30)).encode(),
                            b"undefined", b"True", b"None", b'{"v":1 "x":2}', b"{}}", b"{{}"])
            # an array that never closes: not JSON, and not an object either
            return kind, p, {"bad_json", "bad_schema"} if p.startswith(b"[") else {"bad_json"}, ""
        if kind == "empty":
            return kind, rng.choice([b"", b" ", b"\n", b"\t \r\n"]), {"bad_json"}, ""
        if kind == "truncated":
            cut = rng.randrange(1, len(good))
            return kind, good[:cut], {"bad_json"}, f"cut at {cut} of {len(good)}"
        if kind == "invalid_utf8":
            bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\x80",
                              b"\xf8\x88\x80\x80\x80", b"\xfe\xfe"])
            strs = [p for p in paths if isinstance(_get(base, p), str)]
            if strs and rng.random() < 0.7:
                p = rng.choice(strs)
                return kind, with_raw(base, p, b'"ab' + bad + b'cd"'), {"bad_json"}, "/".join(map(str, p))
            i = rng.randrange(1, len(good))
            return kind, good[:i] + bad + good[i:], {"bad_json"}, f"at byte {i}"
        if kind == "bad_escape":
            esc = rng.choice([b'"\\x41"', b'"\\u12"', b'"\\ud800"', b'"\\udc00x"', b'"\\q"', b'"abc\\"'])
            return kind, with_raw(base, where, esc), {"bad_json"}, esc.decode()
        if kind == "trailing_garbage":
            tail = rng.choice([b"x", b"\x00", b"}", b"]", b"," + good, good, b"{}", b"null", b" 1"])
            return kind, good + tail, {"bad_json"}, ""
        if kind == "bom":
            return kind, b"\xef\xbb\xbf" + good, {"bad_json"}, ""
        if kind == "deep_nesting":
            n = rng.choice([17, 18, 30, 100, 500, 1000, 1000, 3000, 10_000])
            style = rng.choice(["array", "object", "mixed", "in_field", "poison", "unclosed"])
            if style == "poison":
                return "poison", b"[" * 1000 + b"]" * 1000, {"too_deep"}, "[ x 1000 ] x 1000"
            if style == "array":
                return kind, b"[" * n + b"]" * n, {"too_deep"}, f"[ x {n}"
            if style == "object":
                return kind, b'{"a":' * n + b"1" + b"}" * n, {"too_deep"}, f'{{"a": x {n}'
            if style == "mixed":
                return kind, b'[{"a":' * (n // 2 + 9) + b"0" + b"}]" * (n // 2 + 9), {"too_deep"}, f"[{{ x {n}"
            if style == "unclosed":
                return kind, b"[" * n, {"too_deep"}, f"[ x {n}, never closed"
            return kind, with_raw(base, where, b"[" * n + b"]" * n), {"too_deep"}, "/".join(map(str, where))
        if kind == "huge_array":
            n = rng.randrange(10_001, 30_000)
            arr = b"[" + b",".join([b"0"] * n) + b"]"
            if rng.random() < 0.5:
                return kind, arr, {"too_many_items"}, f"{n} elements"
            return kind, with_raw(base, where, arr), {"too_many_items"}, f"{n} elements at {'/'.join(map(str, where))}"
        if kind == "huge_object":
            n = rng.randrange(10_001, 12_000)
            obj = b"{" + b",".join([b'"":0'] * n) + b"}"
            return kind, obj, {"too_many_items"}, f"{n} members"
        if kind == "long_string":
            n = rng.randrange(8 * KB + 1, 50 * KB)
            strs = [p for p in paths if isinstance(_get(base, p), str)] or [where]
            p = rng.choice(strs)
            return kind, dump(_set(base, p, "界" * (n // 3 + 1) if rng.random() < 0.3 else "x" * n)), \
                {"string_too_long"}, f"{n} bytes at {'/'.join(map(str, p))}"
        if kind == "oversize":
            n = rng.randrange(64 * KB, MAX_PACKET - len(good) - KB)
            strs = [p for p in paths if isinstance(_get(base, p), str)] or [where]
            p = rng.choice(strs)
            return kind, dump(_set(base, p, "x" * n)), {"string_too_long"}, f"{n} bytes"
        if kind == "number_out_of_range":
            tok = rng.choice([b"1" + b"0" * 30, b"1e400", b"-1e400", b"9007199254740992", b"-9007199254740992",
                              b"1e16", b"123456789012345678901234567890123", b"1.0e999", b"-" + b"9" * 40])
            nums = [p for p in paths if isinstance(_get(base, p), (int, float)) and not isinstance(_get(base, p), bool)]
            p = rng.choice(nums + [("v",)])
            where_ = "/".join(map(str, p))
            return kind, with_raw(base, p, tok), {"number_out_of_range"}, f"{tok[:20].decode()} at {where_}"
        if kind == "nan_token":
            tok = rng.choice([b"NaN", b"nan", b"Infinity", b"-Infinity", b"+1", b"01", b"1.", b".5", b"0x1F",
                              b"1e", b"--1", b"1_000", b"inf"])
            nums = [p for p in paths if isinstance(_get(base, p), (int, float)) and not isinstance(_get(base, p), bool)]
            p = rng.choice(nums + [("v",)])
            return kind, with_raw(base, p, tok), {"bad_json"}, f"{tok.decode()} at {'/'.join(map(str, p))}"
        if kind == "wrong_top_type":
            return kind, rng.choice([b"[]", b'[{"v":1}]', b'"order"', b"42", b"true", b"null", b"1.5", b"[1,2,3]",
                                     b"false", b'""', b"-1", b"[" + good + b"]"]), {"bad_schema"}, ""
        # version
        choice = rng.choice([2, 0, -1, 99, "1", 1.0, True, None, "missing", [1], {"v": 1}, "v1", -0.0])
        if choice == "missing":
            return "version", dump(_del(base, ("v",))), {"bad_schema"}, "no v"
        d = _set(base, ("v",), choice)
        expect = {"unsupported_version"} if type(choice) is int else {"bad_schema"}
        return "version", dump(d, rng), expect, f"v={choice!r}"

    def _field_kind(self, fam: Family, base: dict):
        rng = self.rng
        info = type_info(fam.type_)
        paths = [(p, t, req) for p, t, req in field_paths(info, base) if p != ("v",)]
        kind = rng.choices(["field", "missing_field", "extra_field", "renamed_field", "id_newline"],
                           [6, 2, 1.5, 1.5, 1.5])[0]
        if kind == "missing_field":
            req = [p for p, _, r in paths if r and _has(base, p)]
            if req:
                p = rng.choice(req)
                return kind, dump(_del(base, p), rng), {"bad_schema"}, "/".join(map(str, p))
            kind = "extra_field"
        if kind == "renamed_field":
            req = [p for p, _, r in paths if r and _has(base, p) and len(p) == 1]
            if req:
                p = rng.choice(req)
                name = p[0]
                new = rng.choice([n for n in (name.upper(), name + " ", "_" + name, name.replace("_", ""),
                                              re.sub(r"_(\w)", lambda m: m.group(1).upper(), name), name + "\n")
                                  if n != name])
                d = {(new if k == name else k): v for k, v in base.items()}
                return kind, dump(d, rng), {"bad_schema"}, f"{name} -> {new!r}"
            kind = "extra_field"
        if kind == "extra_field":
            names = {f.encode_name for f in info.fields}
            extra = rng.choice(["discount", "price", "admin", "__proto__", "V", "debug", "station_override",
                                "is_valid", "priority", "total"])
            if extra in names:
                extra += "_x"
            d = dict(base)
            d[extra] = rng.choice([1, "yes", True, None, [], {"a": 1}])
            return kind, dump(d, rng), {"bad_schema"}, extra
        if kind == "id_newline":
            ids = [(p, t) for p, t, _ in paths if _has(base, p) and isinstance(_get(base, p), str)
                   and any(isinstance(m, mi.StrType) and m.pattern for m in _members(t))]
            if ids:
                p, t = rng.choice(ids)
                v = _get(base, p) + rng.choice(["\n", "\r\n", " ", "\n\n", "\u2028"])
                return kind, dump(_set(base, p, v), rng), {"bad_schema"}, "/".join(map(str, p))
        # a wrong value for one field, from its type
        rng.shuffle(paths)
        for p, t, _ in paths:
            if len(p) > 1 and not _has(base, p[:-1]):
                continue
            cur = _get(base, p) if _has(base, p) else None
            bads = bad_values(t, cur, rng)
            if not bads:
                continue
            k, v = rng.choice(bads)
            return k, dump(_set(base, p, v), rng), {"bad_schema"}, f"{'/'.join(map(str, p))} = {v!r:.60}"
        return "wrong_top_type", b"[]", {"bad_schema"}, ""

    # -------------------------------------------------------- valid shapes
    def _base(self, fam: Family, device: str, topic: str) -> dict:
        rng = self.rng
        name = fam.name
        B = lambda msg: json.loads(contract.encode(msg))  # noqa: E731
        if name == "order/submit":
            return self._order(rng.choice([[KUNG_PAO], [MILK_TEA], [KUNG_PAO, MILK_TEA]]),
                               channel="qr" if device == "web" else "preorder" if device == "sync-fz" else "kiosk")
        if name == "loyalty/query":
            return B(contract.LoyaltyQuery(query_id=_uuid(rng), phone="138" + f"{rng.randrange(10**8):08d}"))
        if name == "staff/command":
            return B(contract.StaffCommand(command_id=_uuid(rng), kind="void", order_id=_uuid(rng), reason="fuzz"))
        if name == "station/event":
            station = contract.parse_topic(topic)[1]
            return B(contract.StationEvent(event_id=_uuid(rng), kind=rng.choice(["ack", "bump", "item_bump", "recall"]),
                                           order_id=_uuid(rng), device=device, line=1 if station != "expo" else None,
                                           at=_now()))
        if name == "station/sync":
            return B(contract.SyncRequest(device=device, at=_now()))
        if name == "print/state":
            return B(contract.PrintJobState(job_id=f"{_uuid(rng)}:receipt:receipt-1", printer="receipt-1",
                                            kind="receipt", order_id=_uuid(rng), state="done", attempts=1, at=_now()))
        if name in ("cloud/menu", "menu/current"):
            return json.loads(json.dumps(self._menu_msg))
        if name == "cloud/stock":
            return B(contract.StockLevels(version=f"fz-{self.n}", items={"pizza-fz": 3, "kung-pao-chicken": 5}))
        if name == "print/job":
            return B(self._print_job())
        if name in ("order/reply@sync", "order/reply@kiosk"):
            return B(contract.OrderReply(order_id=_uuid(rng), status="rejected", reason="bad_schema",
                                         message=contract.REASONS["bad_schema"], detail={"detail": "fuzz"}))
        if name == "loyalty/reply@kiosk":
            return B(contract.LoyaltyBalance(query_id=_uuid(rng), ok=False, reason="phone_invalid",
                                             message=contract.REASONS["phone_invalid"]))
        if name == "station/ticket":
            return B(self._ticket(contract.parse_topic(topic)[1]))
        if name == "order/update":
            return B(contract.OrderUpdate(
                order_id=_uuid(rng), number=rng.randrange(1, 999), business_date="2026-11-22", state="accepted",
                stations=(contract.StationStatus(station="wok", state="open"),), at=_now()))
        if name == "board/ready":
            return B(contract.Board(business_date="2026-11-22", preparing=(1, 2), ready=(3,), at=_now()))
        if name == "menu/soldout":
            return B(contract.SoldOut(items=("spring-rolls",), at=_now()))
        if name == "print/printer":
            return B(contract.PrinterStatus(printer=topic.rsplit("/", 1)[1], state="ready", at=_now()))
        if name == "alert":
            return B(contract.Alert(source="printing", code="paper_out", message=contract.REASONS["paper_out"],
                                    subject="kitchen-1", at=_now()))
        if name == "presence":
            d = topic.rsplit("/", 1)[1]
            return B(contract.Presence(device=d, role="hub" if d == "hub" else "kiosk", state="online", at=_now()))
        if name == "health":
            d = topic.rsplit("/", 1)[1]
            return B(contract.Health(device=d, role="hub" if d == "hub" else "kiosk", state="ready", at=_now(),
                                     counters={"accepted": 1}, details={"queue": 0}))
        raise KeyError(name)

    def _order(self, lines, *, channel: str = "kiosk", **kw) -> dict:
        o = contract.OrderSubmit(
            order_id=_uuid(self.rng), channel=channel, service="takeaway",
            lines=tuple(contract.SubmitLine(item_id=i, qty=q, modifiers=tuple(m)) for i, q, m in lines),
            table="7" if channel == "qr" else None, **kw)
        return json.loads(contract.encode(o))

    def _total(self, d: dict) -> int:
        from restobox.orders import price_order

        return price_order(msgspec.convert(d, contract.OrderSubmit), self.idx).total

    def _ticket(self, station: str) -> contract.StationTicket:
        oid = _uuid(self.rng)
        return contract.StationTicket(
            ticket_id=f"{oid}:{station}", order_id=oid, number=self.rng.randrange(1, 999), station=station,
            channel="kiosk", service="takeaway",
            items=(contract.TicketItem(line=1, item_id="kung-pao-chicken", name_zh="宫保鸡丁", name_en="Kung Pao Chicken",
                                       qty=1),), accepted_at=_now())

    def _print_job(self) -> contract.PrintJob:
        t = self._ticket("wok")
        return contract.PrintJob(job_id=f"{t.order_id}:kitchen:kitchen-1:wok", printer="kitchen-1", kind="kitchen",
                                 order_id=t.order_id, kitchen=contract.KitchenData(
                                     station_name=contract.Words("炒锅", "Wok"), ticket=t,
                                     printed_at="2026-11-22 12:00:00"))

    # ------------------------------------------- valid shapes, refused anyway
    def _semantic(self, fam: Family, device: str, topic: str, base: dict):
        name = fam.name
        if name == "order/submit":
            return self._submit_nonsense(base)
        if name == "loyalty/query":
            return [lambda: ("phone_invalid", _set(base, ("phone",), self.rng.choice(BAD_PHONES)), {"phone_invalid"})]
        if name == "staff/command":
            return self._staff_nonsense(base)
        if name == "station/event":
            return self._event_nonsense(base, contract.parse_topic(topic)[1])
        if name == "cloud/menu":
            return self._menu_nonsense(base)
        if name == "cloud/stock":
            rng = self.rng
            return [lambda: ("unknown_item", _set(base, ("items",), {rng.choice(UNKNOWN_ITEMS): rng.randrange(0, 99)}),
                             {"unknown_item"})]
        if name == "station/ticket":
            station = contract.parse_topic(topic)[1]
            other = self.rng.choice([s for s in ("wok", "fryer", "drinks", "expo", "ghost") if s != station])
            return [lambda: ("station_mismatch", _set(_set(base, ("station",), other), ("ticket_id",),
                                                      f"{base['order_id']}:{other}"), set())]
        if name in ("presence", "health"):  # another device than the topic's
            other = self.rng.choice(["ghost-2", "kiosk-7", "hub-2"])
            return [lambda: ("device_mismatch", _set(base, ("device",), other), set())]
        if name == "print/printer":
            return [lambda: ("printer_mismatch", _set(base, ("printer",), "fz-other"), set())]
        return None

    def _submit_nonsense(self, base: dict):
        rng = self.rng
        kp = lambda **kw: self._order([KUNG_PAO], **kw)  # noqa: E731
        out = [
            lambda: ("unknown_item", _set(base, ("lines", 0, "item_id"), rng.choice(UNKNOWN_ITEMS)), {"unknown_item"}),
            lambda: ("bad_quantity", _set(base, ("lines", 0, "qty"),
                                          rng.choice([0, -1, -7, 100, 999, MAX_INT, -MAX_INT])), {"bad_quantity"}),
            lambda: ("negative_zero_qty", with_raw(base, ("lines", 0, "qty"), b"-0"), {"bad_quantity"}),
            lambda: ("too_many_items", _set(kp(), ("lines",), [dict(kp()["lines"][0], qty=99)] * 3), {"bad_quantity"}),
            lambda: ("empty_order", _set(base, ("lines",), []), {"empty_order"}),
            lambda: ("too_many_lines", _set(kp(), ("lines",), [kp()["lines"][0]] * rng.randrange(51, 400)),
                     {"too_many_lines"}),
            lambda: ("modifier_missing", _set(kp(), ("lines", 0, "modifiers"), ["spice-mild"]), {"modifier_missing"}),
            lambda: ("modifier_too_many", _set(kp(), ("lines", 0, "modifiers"),
                                               ["spice-mild", "spice-hot", "rice-white"]), {"modifier_too_many"}),
            lambda: ("modifier_of_another_item", _set(kp(), ("lines", 0, "modifiers"),
                                                      ["spice-mild", "rice-white", rng.choice(["sugar-half", "ice-less",
                                                                                               "combo-side-fries"])]),
                     {"modifier_not_allowed"}),
            lambda: ("unknown_modifier", _set(kp(), ("lines", 0, "modifiers"),
                                              ["spice-mild", "rice-white", rng.choice(["gold-leaf", "spice-mild\n",
                                                                                       "SPICE-HOT", ""])]),
                     {"unknown_modifier"}),
            lambda: ("modifier_duplicate", _set(kp(), ("lines", 0, "modifiers"),
                                                ["spice-mild", "rice-white", "addon-egg", "addon-egg"]),
                     {"modifier_duplicate"}),
            lambda: ("price_mismatch", self._wrong_total(base), {"price_mismatch"}),
            lambda: ("stale_menu", dict(self._wrong_total(base), menu_version=rng.choice(
                ["2026-10-01.1", "2025-01-01.9", "2026-11-01.0"])), {"price_mismatch"}),
            lambda: ("payment_mismatch", self._wrong_payment(base), {"payment_mismatch"}),
            lambda: ("table_required", dict(base, channel="qr", service="dine_in", table=None), {"table_required"}),
            lambda: ("phone_invalid", dict(base, loyalty={"phone": rng.choice(BAD_PHONES)}), {"phone_invalid"}),
            lambda: ("points", dict(base, loyalty={"phone": "139" + f"{rng.randrange(10**8):08d}",
                                                   "redeem_points": rng.choice([1, 50, 99, 500, 1000, 10_000_000])}),
                     {"points_not_allowed", "points_insufficient"}),
        ]
        vr = self.vrng

        def conflict():
            v = self._pick()
            if v is None:  # no order accepted yet: an unknown item instead
                return "unknown_item", _set(base, ("lines", 0, "item_id"), vr.choice(UNKNOWN_ITEMS)), {"unknown_item"}
            return "duplicate_conflict", self._conflict(v), {"duplicate_conflict"}

        def near_miss():
            v = self._pick()
            oid = v.order_id if v is not None else base["order_id"]
            body = v.body if v is not None else base
            bad = oid + vr.choice(["\n", " ", "\r\n"]) if vr.random() < 0.7 else oid.upper()
            return "accepted_id_near_miss", _set(body, ("order_id",), bad), {"bad_schema"}
        return out + [conflict, near_miss]

    def _pick(self, pred: Callable[[ValidOrder], bool] = lambda v: True) -> ValidOrder | None:
        """One of the last 50 valid orders accepted (that ``pred`` takes), or
        None; one draw from the main stream whatever the answer."""
        r = self.rng.getrandbits(32)
        known = [v for v in self.valid_orders()[-50:] if pred(v)]
        return known[r % len(known)] if known else None

    def _wrong_total(self, d: dict) -> dict:
        total = self._total(d)
        wrong = self.rng.choice([total - 1, total + 1, 0, -total, -1, MAX_INT, total * 100, total - 100])
        return dict(d, expected_total=wrong if wrong != total else total + 7)

    def _wrong_payment(self, d: dict) -> dict:
        total = self._total(d)
        amount = self.rng.choice([total - 1, total + 1, 0, -total, -1, 1, MAX_INT])
        return dict(d, payment={"method": self.rng.choice(["card", "qr"]), "status": "approved",
                                "amount": amount if amount != total else total + 3,
                                "intent_id": "pi-fz", "reference": "TRM-fz"})

    def _conflict(self, v: ValidOrder) -> dict:
        rng = self.vrng
        d = json.loads(json.dumps(v.body))
        change = rng.choice(["note", "qty", "service", "lang"])
        if change == "note":
            d["note"] = (d.get("note") or "") + "fz"
        elif change == "qty":
            d["lines"][0]["qty"] = 1 + (d["lines"][0]["qty"] % 3)
        elif change == "service":
            d["service"] = "dine_in" if d["service"] == "takeaway" else "takeaway"
        else:
            d["lang"] = "en" if d.get("lang", "zh") == "zh" else "zh"
        return d

    def _staff_nonsense(self, base: dict):
        rng = self.rng
        cid = lambda: _uuid(rng)  # noqa: E731
        C = lambda **kw: dict({"v": 1, "command_id": cid(), "reason": ""}, **kw)  # noqa: E731
        out = [
            lambda: ("unknown_order", C(kind=rng.choice(["void", "reprint"]), order_id=_uuid(rng)), {"unknown_order"}),
            lambda: ("unknown_order_number", C(kind=rng.choice(["void", "reprint"]),
                                               order_number=rng.randrange(50_000, 100_000)), {"unknown_order"}),
            lambda: ("no_order", C(kind=rng.choice(["void", "reprint"])), {"bad_schema"}),
            lambda: ("unknown_item", C(kind=rng.choice(["eighty_six", "un_eighty_six"]),
                                       item_id=rng.choice(UNKNOWN_ITEMS + [None, ""])), {"unknown_item"}),
            lambda: ("unknown_printer", C(kind="test_print", item_id=rng.choice(
                [None, "", "Kitchen 1", "kitchen-1\n", "-x", "k" * 40])), {"unknown_printer"}),
            lambda: ("report_without_report", C(kind="print_report", item_id="receipt-1"), {"bad_schema"}),
            lambda: ("report_bad_printer", C(kind="print_report", item_id=rng.choice(["", "Receipt 1", "r/1"])),
                     {"unknown_printer", "bad_schema"}),
        ]
        vr = self.vrng

        def reprint():
            v = self._pick()
            return ("reprint_unknown_station",
                    dict({"v": 1, "command_id": _uuid(vr), "reason": ""}, kind="reprint",
                         order_id=v.order_id if v is not None else _uuid(vr),
                         item_id=vr.choice(["fryer", "drinks", "ghost", "expo"])),
                    {"unknown_printer"} if v is not None else {"unknown_order"})
        return out + [reprint]

    def _event_nonsense(self, base: dict, station: str):
        rng = self.rng
        E = lambda **kw: dict(base, event_id=_uuid(rng), **kw)  # noqa: E731
        out = [lambda: ("unknown_order", E(order_id=_uuid(rng), kind=rng.choice(["ack", "bump", "item_bump",
                                                                                  "recall"])), {"unknown_order"})]
        vr = self.vrng
        V = lambda **kw: dict(base, event_id=_uuid(vr), **kw)  # noqa: E731

        def unknown():
            return "unknown_order", V(order_id=_uuid(vr), kind=vr.choice(["ack", "bump", "item_bump", "recall"])), \
                {"unknown_order"}

        def not_on_station():  # the valid orders have no fryer items
            v = self._pick()
            if v is None:
                return unknown()
            return "not_on_station", V(order_id=v.order_id, kind=vr.choice(["ack", "bump", "item_bump", "recall"])), \
                {"not_on_station"}

        def no_line():
            v = self._pick(lambda v: "wok" in v.stations)
            if v is None:
                return unknown()
            if vr.random() < 0.3:
                return "item_bump_without_line", dict(V(order_id=v.order_id, kind="item_bump"), line=None), {"bad_line"}
            return "no_such_line", V(order_id=v.order_id, kind=vr.choice(["item_bump", "recall"]),
                                     line=vr.choice([0, -1, 99, 1000, MAX_INT])), {"bad_line"}

        def expo():
            v = self._pick()
            if v is None:
                return unknown()
            if vr.random() < 0.7:
                return "expo_not_ready", V(order_id=v.order_id, kind=vr.choice(["bump", "recall"]), line=None), \
                    {"bad_transition"}
            return "expo_item_bump", V(order_id=v.order_id, kind="item_bump", line=1), {"bad_transition"}
        return out + ([not_on_station] if station == "fryer" else [no_line, no_line] if station == "wok"
                      else [expo, expo])

    def _menu_nonsense(self, base: dict):
        rng = self.rng

        def bad() -> tuple:
            d = json.loads(json.dumps(base))
            m = d["menu"]
            m["version"] = f"fz-{self.n}"
            what = rng.choice(["station", "category", "group", "duplicate", "colour", "no_options"])
            item = rng.choice(m["items"])
            if what == "station":
                item["station"] = "ghost"
            elif what == "category":
                item["category"] = "ghost"
            elif what == "group":
                item["modifier_groups"] = list(item["modifier_groups"]) + ["ghost-group"]
            elif what == "duplicate":
                m["items"].append(dict(item))
            elif what == "colour":
                rng.choice(m["categories"])["color"] = rng.choice(["red", "#12345", "#GGGGGG"])
            else:
                g = rng.choice([g for g in m["modifier_groups"] if g["min_choices"] == 0])
                g["options"] = []
            return f"bad_menu_{what}", d, {"bad_menu"}
        return [bad]


BAD_PHONES = ["12345", "1380013800", "138001380001", "12800138000", "1380013800a", "", "phone", "+85213800138000",
              "138-0013-800", "１３８００１３８０００", "00000000000", "23800138000", "13800138000x", "1 3 8"]
UNKNOWN_ITEMS = ["pizza-margherita", "kung-pao-chicken ", "KUNG-PAO-CHICKEN", "kung-pao-chicken\n", "",
                 "spring_rolls", "ghost", "x" * 48]


def _has(d, path) -> bool:
    try:
        _get(d, path)
        return True
    except (KeyError, IndexError, TypeError):
        return False


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# =========================================================================
# The store: every process, started and stopped
# =========================================================================


def cpu_pct(before: dict, after: dict, seconds: float) -> dict[str, float | None]:
    """Each process's CPU use between two :meth:`Store.cpu_s`, in % of one core."""
    return {k: (round((after[k] - before[k]) / seconds * 100, 1) if after.get(k) is not None
                and before.get(k) is not None and seconds > 0 else None) for k in after}


class Watcher:
    """The monitor (role monitor, reads everything): the services' health,
    the hub's reject notices, the sink, and every fuzz message's arrival (by
    topic and payload hash: none may be refused by the broker's ACL)."""

    def __init__(self, broker) -> None:
        from restobox.bus import Bus

        c = broker.creds["monitor-1"]
        self.bus = Bus(device="monitor-1", role="monitor", port=broker.port, username=c.username,
                       password=c.password, keepalive=5, persistent=False, reconnect_max_s=1)
        self.cv = threading.Condition()
        self.health: dict[str, tuple[float, dict]] = {}
        self.notices: dict[str, list[str]] = defaultdict(list)  # topic -> reasons, in order
        self.notice_total = 0
        self.sink: list[tuple[str, bytes]] = []
        self.expected: Counter = Counter()  # (topic, hash) -> fuzz messages not seen yet
        self.on_notice: Callable[[str], None] | None = None
        self.bus.subscribe(f"{contract.ROOT}/#", self._got)
        self.bus.start()
        if not self.bus.wait_connected(10):
            raise RuntimeError(f"the monitor could not connect: {self.bus.last_refusal}")

    @staticmethod
    def key(topic: str, payload: bytes) -> tuple[str, bytes]:
        return topic, hashlib.blake2b(payload, digest_size=8).digest()

    def expect(self, topic: str, payload: bytes) -> None:
        with self.cv:
            self.expected[self.key(topic, payload)] += 1

    def _got(self, m) -> None:
        t = m.topic
        k = self.key(t, m.payload)
        with self.cv:
            if self.expected.get(k):
                self.expected[k] -= 1
                if not self.expected[k]:
                    del self.expected[k]
                self.cv.notify_all()
                return  # a fuzz message: nothing more to read in it
        if t == topics.REJECTS:
            try:
                n = msgspec.json.decode(m.payload)
                reason, topic = n["reason"], n["topic"]
            except Exception:
                return
            with self.cv:
                self.notices[topic].append(reason)
                self.notice_total += 1
                self.cv.notify_all()
            if self.on_notice:
                self.on_notice(topic)
            return
        if t.startswith(f"{contract.ROOT}/fuzz/"):
            with self.cv:
                self.sink.append((t, m.payload[:200]))
            return
        if t.startswith(f"{contract.ROOT}/health/"):
            try:
                h = contract.decode(m.payload, contract.Health, max_bytes=1024 * 1024)
            except contract.Rejection:
                return
            if h.device != t.rsplit("/", 1)[1]:
                return
            with self.cv:
                self.health[h.device] = (time.monotonic(), msgspec.to_builtins(h))
                self.cv.notify_all()

    def wait(self, pred: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.5))
            return True

    def wait_health(self, device: str, pred: Callable[[dict], bool], timeout: float, since: float = 0.0) -> dict | None:
        got: list[dict] = []

        def ok() -> bool:
            h = self.health.get(device)
            if h and h[0] >= since and pred(h[1]):
                got.append(h[1])
                return True
            return False
        return got[0] if self.wait(ok, timeout) else None

    def close(self) -> None:
        self.bus.stop()


class Screens:
    """The station screen, the expo, the pickup board and the kiosk: their
    real controllers (no Kivy), in a process of their own, each with a UI
    thread that runs what it posts. Asked over stdin/stdout, one JSON line
    each way."""

    def __init__(self, broker, state: Path, logs: Path) -> None:
        self.proc = Proc("screens", [sys.executable, str(Path(__file__).resolve()), "_screens", "--dir", str(state),
                                     "--port", str(broker.port), "--creds", str(broker.dir / "credentials")],
                         logs / "screens.log")
        self._lock = threading.Lock()

    def start(self, timeout: float = 30.0) -> dict:
        self.proc.start(stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self.call({"cmd": "ready"}, timeout)

    def call(self, req: dict, timeout: float = 20.0) -> dict:
        p = self.proc.proc
        if p is None or p.poll() is not None:
            raise RuntimeError(f"the screens process is not running; log:\n{self.proc.log_tail()}")
        with self._lock:
            p.stdin.write((json.dumps(req) + "\n").encode())
            p.stdin.flush()
            deadline = time.monotonic() + timeout
            line = b""
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
                    raise TimeoutError(f"the screens did not answer {req}; log:\n{self.proc.log_tail()}")
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError(f"the screens process ended; log:\n{self.proc.log_tail()}")
                line += chunk
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"screens: {out['error']}")
        return out

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def stop(self) -> None:
        p = self.proc.proc
        if p is not None and p.poll() is None:
            try:
                self.call({"cmd": "stop"}, 20)
            except (RuntimeError, TimeoutError, OSError, ValueError):
                pass
        self.proc.stop()


class Store:
    """The whole store on this machine: mosquitto with the store's own
    config and every device's credentials, ``restobox cloud-dev``,
    ``restobox hub`` (loyalty on; receipts of the good kiosk and the wok's
    tickets printed), ``restobox printing`` (two virtual printers),
    ``restobox sync`` and the screens. ``stop`` stops everything it started,
    whatever happened."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.state = self.root / "state"
        self.logs = self.root / "logs"
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.broker = None
        self.procs: dict[str, Proc] = {}
        self.screens: Screens | None = None
        self.watcher: Watcher | None = None
        self.buses: dict = {}

    def start(self) -> None:
        from restobox.brokerconf import STANDARD_DEVICES, Broker

        s = self.state
        self.broker = Broker(s / "broker").start_with_devices(list(STANDARD_DEVICES) + EXTRA_DEVICES)
        self.watcher = Watcher(self.broker)
        self.procs, self.cloud_port = services(
            s, self.logs, self.broker, store_id="fuzz-store", health_s=1, printers=PRINTERS,
            hub_extra="[hub.loyalty]\nenabled = true\n\n"
                      f'[hub.printing.receipt_printers]\n"{GOOD_KIOSK}" = "receipt-1"\n\n'
                      '[hub.printing.stations.wok]\nprinter = "kitchen-1"\nmode = "always"\n',
            # the hub keeps its own menu: a menu from the cloud would change the prices
            sync_extra="menu_poll_s = 0\npreorder_poll_s = 3600\n")
        self.procs["cloud"].start()
        wait_http(self.cloud_port, self.procs["cloud"])
        for name in ("hub", "printing", "sync"):
            since = time.monotonic()
            self.procs[name].start()
            if not self.watcher.wait_health(name, lambda h: h["state"] == "ready", 30, since):
                raise RuntimeError(f"{name} did not become ready; log:\n{self.procs[name].log_tail()}")
        self.screens = Screens(self.broker, s / "screens", self.logs)
        (s / "screens").mkdir(exist_ok=True)
        self.screens.start()

    def bus(self, device: str, role: str):
        """A connected Bus for a device of this store (kept; stopped with the store)."""
        from restobox.bus import Bus

        if device not in self.buses:
            c = self.broker.creds[device]
            b = Bus(device=device, role=role, port=self.broker.port, username=c.username, password=c.password,
                    keepalive=10, persistent=False, reconnect_max_s=1)
            self.buses[device] = b
        return self.buses[device]

    def pids(self) -> dict[str, int | None]:
        return {"hub": self.procs["hub"].pid, "printing": self.procs["printing"].pid, "sync": self.procs["sync"].pid,
                "screens": self.screens.pid if self.screens else None}

    def cpu_s(self) -> dict[str, float | None]:
        """CPU seconds used so far by each process, the broker and this one."""
        pids = dict(self.pids())
        try:
            pids["broker"] = int(self.broker.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError, AttributeError):
            pids["broker"] = None
        pids["fuzzer"] = os.getpid()
        return {k: st[0] if (st := proc_stat(pid)) else None for k, pid in pids.items()}

    def rss(self) -> dict[str, float | None]:
        return {k: round(st[1], 1) if (st := proc_stat(pid)) else None for k, pid in self.pids().items()}

    def alive(self) -> dict[str, bool]:
        return {k: pid is not None for k, pid in self.pids().items()}

    def stop(self) -> None:
        for b in list(self.buses.values()):
            try:
                b.stop()
            except Exception:
                log.exception("stopping a fuzz device")
        self.buses.clear()
        if self.screens is not None:
            self.screens.stop()
        for name in ("sync", "printing", "hub", "cloud"):
            p = self.procs.get(name)
            if p is not None:
                p.stop()
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        if self.broker is not None:
            self.broker.stop()


# =========================================================================
# The well-behaved kiosk
# =========================================================================


class GoodKiosk:
    """A kiosk that orders valid orders, one at a time, every ``every_s``,
    and times each answer (submit -> reply, in its own process's clock)."""

    def __init__(self, store: Store, seed: int, every_s: float = 0.2, timeout_s: float = 5.0) -> None:
        from restobox.data import load_sample_menu
        from restobox.menu import MenuIndex

        self.store = store
        self.rng = random.Random(seed)
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.idx = MenuIndex(load_sample_menu())
        self.bus = store.bus(GOOD_KIOSK, "kiosk")
        self.records: list[dict] = []
        self.accepted: list[ValidOrder] = []
        self.foreign = 0  # replies on its topic that answer nothing it asked
        self.phase = "before"
        self._lock = threading.Lock()
        self._waiting: dict[bytes, Callable[[float, bytes], None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bus.subscribe(topics.order_reply(GOOD_KIOSK), self._got)
        self.bus.start()
        if not self.bus.wait_connected(10):
            raise RuntimeError("the good kiosk could not connect")

    def _got(self, m) -> None:
        now = time.perf_counter()
        with self._lock:
            cb = self._waiting.pop(m.correlation or b"", None)
        if cb is None:
            self.foreign += 1
            return
        cb(now, m.payload)

    def _new(self, lines=None) -> contract.OrderSubmit:
        from restobox.orders import price_order

        rng = self.rng
        lines = lines or rng.choice([[KUNG_PAO], [MILK_TEA], [KUNG_PAO, MILK_TEA], [KUNG_PAO]])
        lines = [(i, rng.choice([1, 1, 2]) if n == 0 else q, m) for n, (i, q, m) in enumerate(lines)]
        o = contract.OrderSubmit(
            order_id=str(uuid.uuid4()), channel="kiosk", service=rng.choice(["takeaway", "dine_in"]),
            lines=tuple(contract.SubmitLine(item_id=i, qty=q, modifiers=tuple(m)) for i, q, m in lines))
        return msgspec.structs.replace(o, expected_total=price_order(o, self.idx).total)

    def _send(self, o: contract.OrderSubmit, on_reply: Callable[[float, bytes], None],
              device: str = GOOD_KIOSK) -> float:
        corr = o.order_id.encode()
        with self._lock:
            self._waiting[corr] = on_reply
        t0 = time.perf_counter()
        self.store.buses[device].publish(topics.order_submit(device), contract.encode(o), correlation=corr,
                                         response_topic=topics.order_reply(device))
        return t0

    def _accepted(self, o: contract.OrderSubmit, r: dict) -> None:
        if r.get("status") == "accepted":
            stations = frozenset(ln["station"] for ln in r.get("lines", ()))
            with self._lock:
                self.accepted.append(ValidOrder(o.order_id, json.loads(contract.encode(o)), stations))

    def order(self, lines=None) -> dict:
        """One order; waits for its answer (at most ``timeout_s``)."""
        o = self._new(lines)
        ev = threading.Event()
        box: list = []
        t0 = self._send(o, lambda t, body: (box.append((t, body)), ev.set()))
        rec = {"order_id": o.order_id, "phase": self.phase, "sent": time.monotonic(), "ms": None, "status": None,
               "number": None, "reason": None}
        if ev.wait(self.timeout_s):
            t1, body = box[0]
            r = msgspec.json.decode(body)
            rec.update(ms=(t1 - t0) * 1000, status=r.get("status"), number=r.get("number"), reason=r.get("reason"))
            self._accepted(o, r)
        else:
            with self._lock:
                self._waiting.pop(o.order_id.encode(), None)
        self.records.append(rec)
        return rec

    def burst(self, seconds: float, window: int) -> dict:
        """Valid orders as fast as the hub takes them, ``window`` in flight:
        accepted orders a second (the baseline of the bench)."""
        if BURST_KIOSK not in self.store.buses:
            b = self.store.bus(BURST_KIOSK, "kiosk")
            b.subscribe(topics.order_reply(BURST_KIOSK), self._got)
            b.start()
            if not b.wait_connected(10):
                raise RuntimeError(f"{BURST_KIOSK} could not connect")
        slots = threading.Semaphore(window)
        accepted = [0]
        refused = [0]
        last = [0.0]
        # drinks only, from a kiosk without a receipt printer: the printing
        # service has nothing to do (its work would share the CPU with the hub's)
        orders = [self._new([MILK_TEA]) for _ in range(int(seconds * 2000) + 100)]
        t_end = time.perf_counter() + seconds
        first = None
        n = 0

        def done(t: float, body: bytes, o: contract.OrderSubmit) -> None:
            r = msgspec.json.decode(body)
            if r.get("status") == "accepted":
                accepted[0] += 1
                self._accepted(o, r)
            else:
                refused[0] += 1
            last[0] = t
            slots.release()
        for o in orders:
            if time.perf_counter() >= t_end or not slots.acquire(timeout=5):
                break
            t0 = self._send(o, lambda t, body, o=o: done(t, body, o), BURST_KIOSK)
            first = t0 if first is None else first
            n += 1
        for _ in range(window):  # every answer in
            if not slots.acquire(timeout=10):
                break
        span = last[0] - first if first is not None else 0.0
        return {"orders": n, "accepted": accepted[0], "refused": refused[0], "seconds": round(span, 2),
                "per_s": round(accepted[0] / span, 1) if span > 0 else None}

    def valid_orders(self) -> list[ValidOrder]:
        with self._lock:
            return list(self.accepted)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="good-kiosk", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.order()
            except Exception:
                log.exception("the good kiosk failed to order")
            self._stop.wait(self.every_s)  # its pace: an order every every_s

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 5)


# =========================================================================
# Sending, with a bounded number of unanswered messages to the hub
# =========================================================================


class Window:
    """At most ``size`` messages to the hub unanswered at once: a slot is
    freed by the message's answer (by correlation data; without it, the next
    answer on the device's reply topic), by the hub's reject notice for its
    topic (messages that get no answer), or after ``expire_s``."""

    def __init__(self, size: int, expire_s: float) -> None:
        self.size = size
        self.expire_s = expire_s
        self.cv = threading.Condition()
        self.live: dict[int, float] = {}
        self.order: deque[int] = deque()
        self.by_corr: dict[bytes, int] = {}
        self.fifo: dict[str, deque[int]] = defaultdict(deque)
        self.expired = 0
        self.waited_s = 0.0

    def add(self, n: int, corr: bytes | None, fifo_key: str | None) -> None:
        with self.cv:
            self.live[n] = time.monotonic()
            self.order.append(n)
            if corr is not None:
                self.by_corr[corr] = n
            elif fifo_key is not None:
                self.fifo[fifo_key].append(n)

    def done_corr(self, corr: bytes) -> None:
        with self.cv:
            self._release(self.by_corr.pop(corr, None))

    def done_fifo(self, key: str) -> None:
        with self.cv:
            dq = self.fifo.get(key)
            while dq:
                n = dq.popleft()
                if n in self.live:
                    self._release(n)
                    break

    def _release(self, n: int | None) -> None:
        if n is not None and self.live.pop(n, None) is not None:
            self.cv.notify_all()

    def _expire(self) -> None:
        now = time.monotonic()
        while self.order and (self.order[0] not in self.live or now - self.live[self.order[0]] > self.expire_s):
            n = self.order.popleft()
            if self.live.pop(n, None) is not None:
                self.expired += 1

    def acquire(self) -> None:
        t0 = time.monotonic()
        with self.cv:
            while True:
                self._expire()
                if len(self.live) < self.size:
                    break
                self.cv.wait(0.05)
        self.waited_s += time.monotonic() - t0

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                self._expire()
                if not self.live:
                    return True
                if time.monotonic() >= deadline:
                    return False
                self.cv.wait(0.05)


@dataclass
class Sent:
    """What is kept of a sent message (not its payload)."""

    n: int
    family: str
    target: str
    kind: str
    device: str
    topic: str
    expect: frozenset[str]
    request: str | None
    corr: bytes | None
    response_topic: str | None
    readers: tuple[str, ...]
    detail: str
    ids: tuple[str, ...]
    size: int
    t: float

    @property
    def reply_topic(self) -> str | None:
        return reply_topic(self.request, self.device)


class Fuzzer:
    """Sends the generator's messages from the fuzz devices, at most
    ``rate`` a second and at most ``window`` unanswered to the hub, and
    records every answer."""

    def __init__(self, store: Store, gen: Gen, *, rate: float, window: int, expire_s: float = 2.0) -> None:
        self.store = store
        self.gen = gen
        self.rate = rate
        self.window = Window(window, expire_s)
        self.sent: list[Sent] = []
        self.by_corr: dict[bytes, Sent] = {}
        self.answers: dict[bytes, list[dict]] = defaultdict(list)  # corr -> answers
        self.nocorr_answers: dict[str, list[dict]] = defaultdict(list)  # reply topic -> answers without corr
        self.stray: list[tuple[str, bytes | None]] = []  # answers with correlation data nobody sent
        self._lock = threading.Lock()
        self.buses = {}
        for device, role in FUZZERS.items():
            b = store.bus(device, role)
            for t in REPLY_TOPICS.get(device, ()):
                b.subscribe(t, self._answer)
            b.start()
        for device in FUZZERS:
            if not store.buses[device].wait_connected(10):
                raise RuntimeError(f"{device} could not connect: {store.buses[device].last_refusal}")
            self.buses[device] = store.buses[device]
        w = store.watcher
        request_topics = ("/order/submit/", "/staff/", "/loyalty/query/")
        w.on_notice = lambda topic: (None if any(s in topic for s in request_topics)
                                     else self.window.done_fifo(topic))
        self.elapsed = 0.0

    def _answer(self, m) -> None:
        try:
            d = msgspec.json.decode(m.payload)
        except msgspec.DecodeError:
            d = {"undecodable": m.payload[:100].decode(errors="replace")}
        if not isinstance(d, dict):
            d = {"not_an_object": str(d)[:100]}
        d["_topic"] = m.topic
        corr = m.correlation
        with self._lock:
            if corr:
                if corr in self.by_corr:
                    self.answers[corr].append(d)
                else:
                    self.stray.append((m.topic, corr))
            else:
                self.nocorr_answers[m.topic].append(d)
        if corr:
            self.window.done_corr(corr)
        else:
            self.window.done_fifo(m.topic)

    def send(self, m: Msg) -> None:
        # numbered by this sender (several generators may feed it): the
        # correlation data starts with that number, so it is unique
        n = len(self.sent) + 1
        if m.corr is not None:
            m.corr = n.to_bytes(4, "big") + m.corr[4:]
        s = Sent(n, m.family, m.target, m.kind, m.device, m.topic, m.expect, m.request, m.corr,
                 m.response_topic, m.readers, m.detail, m.ids, len(m.payload), time.monotonic())
        if m.target == "hub":
            self.window.acquire()
            self.window.add(n, m.corr if m.request else None, m.reply_topic if m.request else m.topic)
        with self._lock:
            self.sent.append(s)
            if m.corr is not None:
                self.by_corr[m.corr] = s
        self.store.watcher.expect(m.topic, m.payload)
        self.buses[m.device].publish(m.topic, m.payload, correlation=m.corr, response_topic=m.response_topic)

    def run(self, n: int, *, on_progress: Callable[[int], None] | None = None, deadline_s: float | None = None,
            family: str | None = None, rate: float | None = None, gen: Gen | None = None) -> int:
        """Send ``n`` messages (paced: ``rate`` a second, 0 for as fast as the
        window lets); returns how many were sent."""
        t0 = time.monotonic()
        rate = self.rate if rate is None else rate
        gen = gen or self.gen
        gap = 1.0 / rate if rate > 0 else 0.0
        next_at = t0
        sent = 0
        for i in range(n):
            if deadline_s is not None and time.monotonic() - t0 > deadline_s:
                break
            if gap:
                now = time.monotonic()
                if next_at > now:
                    threading.Event().wait(next_at - now)  # pacing the load, not waiting for a result
                next_at = max(next_at + gap, time.monotonic() - 0.5)
            self.send(gen.next(family))
            sent += 1
            if on_progress:
                on_progress(sent)
        self.elapsed += time.monotonic() - t0
        return sent

    def settle(self, timeout: float = 30.0, quiet_s: float = 3.0) -> bool:
        """Until every request is answered and every hub-bound message has
        its answer or notice, and every fuzz message reached the monitor; or
        until nothing more came for ``quiet_s`` (what is missing then is
        missing), at most ``timeout``."""
        w = self.store.watcher
        end = time.monotonic() + timeout
        ok = self.window.drain(timeout)
        want = sum(1 for s in self.sent if s.request and s.corr)

        def progress() -> tuple[int, int, int]:
            with self._lock:
                got = sum(1 for c in self.by_corr if self.answers.get(c))
            with w.cv:
                return got, w.notice_total, sum(w.expected.values())
        last, quiet_since = progress(), time.monotonic()
        while time.monotonic() < end:
            now = progress()
            if now[0] >= want and now[2] == 0:
                return ok
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return False
            threading.Event().wait(0.1)
        return False

    # ------------------------------------------------------------ figures
    def tally(self) -> dict:
        """Answers and refusals, checked against what was sent."""
        out: dict = {}
        with self._lock:
            sent = list(self.sent)
            answers = {k: list(v) for k, v in self.answers.items()}
            nocorr = {k: list(v) for k, v in self.nocorr_answers.items()}
            stray = list(self.stray)
        requests = [s for s in sent if s.request]
        once = twice = never = 0
        wrong: list[dict] = []
        never_by: Counter = Counter()
        twice_by: Counter = Counter()
        for s in requests:
            if s.corr is None:
                continue
            got = answers.get(s.corr, [])
            if not got:
                never += 1
                never_by[f"{s.family} {s.kind}"] += 1
                continue
            if len(got) > 1:
                twice += 1
                twice_by[f"{s.family} {s.kind}"] += 1
            else:
                once += 1
            a = got[0]
            problem = _answer_problem(s, a)
            if problem:
                wrong.append({"family": s.family, "kind": s.kind, "detail": s.detail, "problem": problem,
                              "expect": sorted(s.expect), "topic": s.topic})
        # without correlation data: as many answers on the reply topic as requests
        nc_sent: Counter = Counter(s.reply_topic for s in requests if s.corr is None)
        nc_got = {t: len(v) for t, v in nocorr.items()}
        nc_wrong = 0
        for t, lst in nocorr.items():
            for a in lst:
                if _answer_bad_refusal(a):
                    nc_wrong += 1
        out["requests"] = len(requests)
        out["with_corr"] = sum(1 for s in requests if s.corr is not None)
        out["answered_once"] = once
        out["answered_twice"] = twice
        out["unanswered"] = never
        out["unanswered_by"] = dict(never_by.most_common())
        out["answered_twice_by"] = dict(twice_by.most_common())
        out["wrong_answers"] = len(wrong)
        out["wrong_answer_examples"] = _examples(wrong)
        out["no_corr_sent"] = {str(k): v for k, v in nc_sent.items()}
        out["no_corr_answers"] = nc_got
        out["no_corr_missing"] = sum(max(0, n - nc_got.get(t, 0)) for t, n in nc_sent.items())
        out["no_corr_extra"] = sum(max(0, n - nc_sent.get(t, 0)) for t, n in nc_got.items())
        out["no_corr_not_refusals"] = nc_wrong
        out["stray_answers"] = len(stray)
        # refusals the hub announces for what it does not answer: in order, per topic
        w = self.store.watcher
        with w.cv:
            notices = {k: list(v) for k, v in w.notices.items()}
        by_topic: dict[str, list[Sent]] = defaultdict(list)
        for s in sent:
            if s.target == "hub" and not s.request:
                by_topic[s.topic].append(s)
        missing_notices = 0
        wrong_notices: list[dict] = []
        for t, lst in by_topic.items():
            got = notices.get(t, [])
            missing_notices += max(0, len(lst) - len(got))
            if len(got) == len(lst):
                for s, reason in zip(lst, got):
                    if s.expect and reason not in s.expect:
                        wrong_notices.append({"family": s.family, "kind": s.kind, "detail": s.detail,
                                              "problem": f"refused as {reason}", "expect": sorted(s.expect),
                                              "topic": t})
        out["unannounced"] = missing_notices
        out["unannounced_by"] = {t: len(lst) - len(notices.get(t, [])) for t, lst in by_topic.items()
                                 if len(lst) != len(notices.get(t, []))}
        out["wrong_notices"] = len(wrong_notices)
        out["wrong_notice_examples"] = _examples(wrong_notices)
        out["sink"] = len(w.sink)
        with w.cv:
            out["undelivered"] = sum(w.expected.values())
        out["window_expired"] = self.window.expired
        return out

    def counts(self) -> dict:
        by_family: Counter = Counter()
        by_kind: Counter = Counter()
        by_target: Counter = Counter()
        routes: Counter = Counter()
        for s in self.sent:
            by_family[s.family] += 1
            by_kind[f"{s.family} {s.kind}"] += 1
            by_target[s.target] += 1
            routes[f"{FUZZERS.get(s.device, s.device)} -> {s.family}"] += 1
        return {"sent": len(self.sent), "by_target": dict(by_target), "by_family": dict(by_family.most_common()),
                "by_kind": dict(sorted(by_kind.items())), "by_role": dict(sorted(routes.items())),
                "kinds": len({s.kind for s in self.sent}),
                "bytes": sum(s.size for s in self.sent), "largest": max((s.size for s in self.sent), default=0)}

    def expected_refusals(self) -> dict[str, int]:
        """How many bad messages each screen and service must have refused."""
        out: Counter = Counter()
        for s in self.sent:
            if s.target == "hub":
                out["hub"] += 1
            for r in s.readers:
                out[r] += 1
        return dict(out)

    def refusals_by_kind(self, reader: str) -> dict[str, int]:
        """What ``reader`` (a screen or service) was sent, by topic family and kind."""
        return dict(Counter(f"{s.family} {s.kind}" for s in self.sent
                            if reader in s.readers or (reader == "hub" and s.target == "hub")).most_common())


def _answer_bad_refusal(a: dict) -> bool:
    if "ok" in a:
        return a.get("ok") is not False
    return a.get("status") != "rejected"


def _answer_problem(s: Sent, a: dict) -> str | None:
    if s.request == "submit" and "status" not in a:
        return f"not an order reply: {str(a)[:120]}"
    if s.request in ("loyalty", "staff") and "ok" not in a:
        return f"not a {s.request} reply: {str(a)[:120]}"
    if _answer_bad_refusal(a):
        return f"not refused: {str(a)[:200]}"
    reason = a.get("reason")
    if s.expect and reason not in s.expect:
        return f"refused as {reason}"
    if a.get("_topic") != s.reply_topic:
        return f"answered on {a.get('_topic')}"
    return None


def _examples(rows: list[dict], n: int = 12) -> list[dict]:
    seen: dict[tuple, dict] = {}
    counts: Counter = Counter()
    for r in rows:
        k = (r["family"], r["kind"], r["problem"])
        counts[k] += 1
        seen.setdefault(k, r)
    return [dict(v, count=counts[k]) for k, v in sorted(seen.items(), key=lambda kv: -counts[kv[0]])[:n]]


# =========================================================================
# After the fuzz: databases, health, the screens
# =========================================================================


def check_databases(state: Path, valid_ids: set[str], bad_ids: set[str]) -> dict:
    """``PRAGMA integrity_check`` on every database, and nothing stored that
    came from a refused message."""
    out: dict = {"integrity": {}}
    for p in sorted(state.rglob("*.db")):
        if "broker" in p.relative_to(state).parts:
            continue  # mosquitto's persistence file, not SQLite
        try:
            con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
            out["integrity"][str(p.relative_to(state))] = con.execute("PRAGMA integrity_check").fetchone()[0]
            con.close()
        except sqlite3.Error as exc:
            out["integrity"][str(p.relative_to(state))] = f"error: {exc}"
    con = sqlite3.connect(f"file:{state / 'store.db'}?mode=ro", uri=True, timeout=5)
    q = lambda sql: [r[0] for r in con.execute(sql)]  # noqa: E731
    orders = set(q('SELECT id FROM "order"'))
    out["orders"] = len(orders)
    out["bogus_orders"] = sorted(orders - valid_ids)[:20]
    out["missing_orders"] = sorted(valid_ids - orders)[:20]
    out["bogus_tickets"] = q('SELECT id FROM ticket WHERE order_id NOT IN (SELECT id FROM "order")')[:20]
    processed = set(q("SELECT id FROM processed_message"))
    out["bogus_processed"] = sorted(processed & bad_ids)[:20]
    out["bogus_outbox"] = [r for r in con.execute(
        "SELECT kind, order_id FROM outbox WHERE (order_id IS NOT NULL AND order_id NOT IN (SELECT id FROM \"order\")) "
        "OR kind IN ('menu.applied', 'stock.applied', 'menu.eighty_six', 'menu.un_eighty_six')")][:20]
    out["sold_out"] = q("SELECT item_id FROM sold_out_item")
    out["stock"] = q("SELECT item_id FROM stock_level")
    out["menus"] = q("SELECT version FROM menu_version")
    out["points"] = q("SELECT entry_id FROM points_entry")
    out["bogus_print_requests"] = [j for j in q("SELECT job_id FROM print_request")
                                   if j.split(":", 1)[0] not in valid_ids][:20]
    con.close()
    con = sqlite3.connect(f"file:{state / 'printing.db'}?mode=ro", uri=True, timeout=5)
    jobs = list(con.execute("SELECT job_id, order_id, state FROM print_job"))
    out["print_jobs"] = len(jobs)
    out["bogus_print_jobs"] = [j for j, o, _ in jobs if o not in valid_ids or j.split(":", 1)[0] not in valid_ids][:20]
    out["print_jobs_by_state"] = dict(Counter(st for _, _, st in jobs))
    con.close()
    con = sqlite3.connect(f"file:{state / 'sync.db'}?mode=ro", uri=True, timeout=5)
    out["preorders"] = [r[0] for r in con.execute("SELECT order_id FROM preorder")]
    con.close()
    out["ok"] = (all(v == "ok" for v in out["integrity"].values()) and not out["bogus_orders"]
                 and not out["missing_orders"] and not out["bogus_tickets"] and not out["bogus_processed"]
                 and not out["bogus_outbox"] and not out["sold_out"] and not out["stock"] and not out["points"]
                 and not out["bogus_print_requests"] and not out["bogus_print_jobs"] and not out["preorders"]
                 and len(out["menus"]) == 1)
    return out


SKIP_COUNTERS = {"ignored_duplicate", "ignored_stale", "ignored_expired"}
"""Tickets a screen ignores for a good reason (a repeat of a good ticket)."""


def refusals_in_health(h: dict | None) -> int | None:
    """What a screen's or service's health says it refused: its total of bad
    messages (``bad_messages``, else the sum of its ``bad_message_<reason>``),
    its ``ignored_<reason>`` (not the repeats of good tickets), ``rejected``
    (else the sum of ``rejected.<reason>``), the sync service's
    ``menu_hub_unreadable`` and ``preorders.bad_reply`` (when it has no
    total), and the store alerts' ``bad_messages`` detail."""
    if h is None:
        return None
    c = {k: v for k, v in (h.get("counters") or {}).items() if isinstance(v, int)}
    n = 0
    if "bad_messages" in c:  # a total: of what it reads on the bus
        n += c["bad_messages"]
    else:
        n += sum(v for k, v in c.items() if k.startswith("bad_message_"))
        n += c.get("preorders.bad_reply", 0) + c.get("menu_hub_unreadable", 0)
    n += sum(v for k, v in c.items() if k.startswith("ignored_") and k not in SKIP_COUNTERS)
    if "rejected" in c:
        n += c["rejected"]
    else:
        n += sum(v for k, v in c.items() if k.startswith("rejected."))
    bad = (h.get("details") or {}).get("bad_messages")
    return n + (bad if isinstance(bad, int) and not isinstance(bad, bool) else 0)


def pct(xs: list[float], p: float) -> float | None:
    """Nearest rank."""
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return round(xs[k], 1)


# =========================================================================
# One run, as the test and the bench do it
# =========================================================================


@dataclass
class Run:
    """A fuzz run against a started :class:`Store` and its results."""

    store: Store
    seed: int
    messages: int
    rate: float
    window: int
    kiosk_every_s: float = 0.2
    before_orders: int = 10
    progress: Callable[[str], None] = lambda s: None
    results: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kiosk: GoodKiosk | None = None
        self.fuzzer: Fuzzer | None = None
        self._rss: list[dict] = []

    def setup(self) -> None:
        if self.kiosk is None:
            self.kiosk = GoodKiosk(self.store, self.seed + 1, every_s=self.kiosk_every_s)
            gen = Gen(self.seed, valid_orders=self.kiosk.valid_orders)
            self.fuzzer = Fuzzer(self.store, gen, rate=self.rate, window=self.window)
            self.results["rss_start"] = self.store.rss()

    def printing_drained(self, timeout: float = 120.0) -> bool:
        """Until the printing service has every job the hub asked for and
        has printed them all (read from both databases, read-only)."""
        end = time.monotonic() + timeout
        s = self.store.state
        while time.monotonic() < end:
            try:
                asked = sqlite3.connect(f"file:{s / 'store.db'}?mode=ro", uri=True, timeout=5).execute(
                    "SELECT count(*) FROM print_request").fetchone()[0]
                jobs, busy = sqlite3.connect(f"file:{s / 'printing.db'}?mode=ro", uri=True, timeout=5).execute(
                    "SELECT count(*), sum(state IN ('queued', 'printing')) FROM print_job").fetchone()
            except sqlite3.Error:
                asked, jobs, busy = 1, 0, 1
            if jobs >= asked and not busy:
                return True
            threading.Event().wait(0.2)
        return False

    def bad_burst(self, n: int) -> dict:
        """The hub's throughput on bad messages: ``n`` of them to the hub's
        own topics, as fast as the window lets (no pacing), from the first
        sent until every one is answered or announced."""
        self.setup()
        fz = self.fuzzer
        gen = Gen(self.seed + 2, valid_orders=self.kiosk.valid_orders,
                  only={f.name for f in families() if f.target == "hub"})
        cpu0 = self.store.cpu_s()
        t0 = time.monotonic()
        sent = fz.run(n, rate=0, gen=gen)
        drained = fz.window.drain(60)
        span = time.monotonic() - t0
        return {"messages": sent, "seconds": round(span, 2), "per_s": round(sent / span, 1), "drained": drained,
                "cpu_pct": cpu_pct(cpu0, self.store.cpu_s(), span)}

    def go(self) -> dict:
        """Valid orders alone, then the fuzz with valid orders, then after."""
        self.setup()
        st, r, kiosk, fz = self.store, self.results, self.kiosk, self.fuzzer
        kiosk.phase = "before"
        for _ in range(self.before_orders):
            kiosk.order()
        kiosk.phase = "during"
        kiosk.start()
        warm = max(1, self.messages // 10)
        cpu0 = st.cpu_s()
        t0 = time.monotonic()

        def progress(i: int) -> None:
            if i == warm:
                r["rss_warm"] = st.rss()
            if i % 2000 == 0:
                self._rss.append(st.rss())
                self.progress(f"{i} sent, {fz.window.expired} expired, {time.monotonic() - t0:.0f} s")
        fz.run(self.messages, on_progress=progress)
        r["fuzz_s"] = round(time.monotonic() - t0, 1)
        r["fuzz_cpu_pct"] = cpu_pct(cpu0, st.cpu_s(), time.monotonic() - t0)
        kiosk.stop()
        kiosk.phase = "after"
        r["settled"] = fz.settle(30)
        self._settled_at = time.monotonic()
        r["settle_s"] = round(time.monotonic() - t0 - r["fuzz_s"], 1)
        for _ in range(5):
            kiosk.order()
        r["rss_end"] = st.rss()
        self._rss.append(r["rss_end"])
        r["rss_max"] = {k: max((x[k] for x in self._rss if x.get(k) is not None), default=None) for k in r["rss_end"]}
        r["rss_series"] = self._rss  # every 2,000 messages, then the end
        r["alive"] = st.alive()
        r["counts"] = fz.counts()
        r["tally"] = fz.tally()
        r["expected_refusals"] = fz.expected_refusals()
        r["window_waited_s"] = round(fz.window.waited_s, 1)
        self._after()
        self._latency()
        return r

    def _latency(self) -> None:
        r = self.results
        recs = self.kiosk.records
        for ph in ("before", "during", "after"):
            ms = [x["ms"] for x in recs if x["phase"] == ph and x["ms"] is not None]
            r[f"latency_{ph}"] = {"orders": sum(1 for x in recs if x["phase"] == ph), "p50_ms": pct(ms, 50),
                                  "p99_ms": pct(ms, 99), "max_ms": round(max(ms), 1) if ms else None}
        r["valid_orders"] = len(recs)
        r["valid_accepted"] = sum(1 for x in recs if x["status"] == "accepted")
        r["valid_not_accepted"] = [{k: x[k] for k in ("order_id", "phase", "status", "reason", "ms")}
                                   for x in recs if x["status"] != "accepted"][:10]
        r["valid_slow"] = [{k: x[k] for k in ("order_id", "phase", "ms")} for x in recs
                           if x["ms"] is not None and x["ms"] > 1000][:10]
        r["valid_over_1s"] = sum(1 for x in recs if x["ms"] is None or x["ms"] > 1000)
        r["foreign_replies"] = self.kiosk.foreign

    def _after(self) -> None:
        """The screens and the kiosk still take a valid message; their health
        and the services' show what they refused."""
        st, r = self.store, self.results
        w = st.watcher
        # a valid order: its ticket on the station, its row at the expo, its number on the board
        rec = self.kiosk.order([KUNG_PAO])
        r["final_order"] = {k: rec[k] for k in ("order_id", "status", "number", "ms")}
        seen = {}
        if rec["status"] == "accepted":
            end = time.monotonic() + 10
            while time.monotonic() < end:
                seen = st.screens.call({"cmd": "check", "order_id": rec["order_id"], "number": rec["number"]})
                if all(seen.values()):
                    break
                threading.Event().wait(0.2)
        r["screens_took_valid"] = seen
        # the kiosk's own order, tapped through its view model
        try:
            r["kiosk_order"] = st.screens.call({"cmd": "order"}, 30)
        except (RuntimeError, TimeoutError) as exc:
            r["kiosk_order"] = {"error": str(exc)[:2000]}
        # the sync service takes a valid menu message (its health names the version)
        from restobox.data import load_sample_menu

        hubmenu = json.loads(contract.encode(contract.MenuMessage(menu=load_sample_menu(), at=_now())))
        probe = json.loads(json.dumps(hubmenu))
        probe["menu"]["version"] = f"fz-probe-{self.seed}"
        since = time.monotonic()
        b = st.buses["hub-fz"]
        b.publish(topics.MENU, dump(probe))
        got = w.wait_health("sync", lambda h: h.get("details", {}).get("menu_hub") == probe["menu"]["version"], 10,
                            since)
        r["sync_took_valid"] = got is not None
        b.publish(topics.MENU, dump(hubmenu))  # the hub's own again (the retained one never changed)
        # fresh health from every screen and service
        since = time.monotonic()
        try:
            st.screens.call({"cmd": "health"})
        except (RuntimeError, TimeoutError) as exc:
            r["screens_health_error"] = str(exc)[:500]
        exp = r["expected_refusals"]
        health = {}
        for name, dev in (("station", SCREENS["station"]), ("expo", SCREENS["expo"]), ("board", SCREENS["board"]),
                          ("kiosk", SCREENS["kiosk"]), ("sync", "sync"), ("hub", "hub"), ("printing", "printing")):
            # the screens say it when asked, the hub and sync every second, the
            # printing service every 10 s: the first that shows every refusal,
            # else the last one
            want = exp.get(name, 0)
            t = since if name in ("station", "expo", "board", "kiosk") else self._settled_at
            health[name] = (w.wait_health(dev, lambda h: (refusals_in_health(h) or 0) >= want,
                                          12 if name == "printing" else 4, t)
                            or w.wait_health(dev, lambda h: True, 0.1, t))
        r["health"] = {k: (None if v is None else {"state": v.get("state"), "counters": v.get("counters"),
                                                   "bad_messages": v.get("details", {}).get("bad_messages")})
                       for k, v in health.items()}
        r["refusals_shown"] = {k: refusals_in_health(v) for k, v in health.items()}
        r["refusals_expected"] = {k: exp.get(k, 0) for k in health}
        r["refusals_sent_by_kind"] = {k: self.fuzzer.refusals_by_kind(k) for k, v in r["refusals_shown"].items()
                                      if v is None or v < exp.get(k, 0)}

    def check_stored(self) -> dict:
        """After ``store.stop()``: the databases."""
        valid = {v.order_id for v in self.kiosk.accepted}
        if isinstance(self.results.get("kiosk_order"), dict) and self.results["kiosk_order"].get("order_id"):
            if self.results["kiosk_order"].get("number") is not None:
                valid.add(self.results["kiosk_order"]["order_id"])
        bad = {i for s in self.fuzzer.sent for i in s.ids}
        bad -= valid
        self.results["stored"] = check_databases(self.store.state, valid, bad)
        return self.results["stored"]


def log_excerpts(store: Store, patterns=("Traceback", "ERROR", "failed", "RecursionError", "Exception"),
                 n: int = 8) -> dict[str, list[str]]:
    """The first lines of each log that look like trouble (for the report)."""
    out = {}
    for p in sorted(store.logs.glob("*.log")):
        lines = []
        try:
            for line in p.read_text(errors="replace").splitlines():
                if any(x in line for x in patterns):
                    lines.append(line[:300])
                    if len(lines) >= n:
                        break
        except OSError:
            continue
        if lines:
            out[p.name] = lines
    return out


# =========================================================================
# The screens' process (python bench/fuzzgen.py _screens ...)
# =========================================================================


def screens_main(argv: list[str]) -> int:
    import argparse

    from tests.support import UIThread

    ap = argparse.ArgumentParser(prog="fuzzgen _screens")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--creds", required=True)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kds.board_screen import BoardController
    from kds.controller import StationController
    from kds.expo_screen import ExpoController
    from kiosk.controller import KioskController
    from restobox import config

    d = Path(a.dir)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # only the answers go to the test

    def cfg(device: str, role: str, section: str) -> config.Config:
        p = d / f"{device}.toml"
        p.write_text(f'[device]\nid = "{device}"\nrole = "{role}"\n\n[store]\nname_zh = "川味小馆"\n'
                     f'name_en = "Sichuan Kitchen"\n\n[mqtt]\nport = {a.port}\n'
                     f'password_file = "{Path(a.creds) / (device + ".secret")}"\nkeepalive_s = 5\n'
                     f"reconnect_max_s = 1\n\n{section}\n", encoding="utf-8")
        return config.load(p)

    ui = {k: UIThread(f"ui-{k}", stop_on_error=False) for k in ("station", "expo", "board")}
    station = StationController(cfg(SCREENS["station"], "kds", f'[kds]\nmode = "station"\nstation = "wok"\n'
                                                                 f'cache = "{d / "kds-wok-1.db"}"\n'),
                                post=ui["station"].post, changed=lambda: None)
    expo = ExpoController(cfg(SCREENS["expo"], "expo", f'[kds]\nmode = "expo"\ncache = "{d / "expo-1.db"}"\n'),
                          post=ui["expo"].post, changed=lambda: None)
    board = BoardController(cfg(SCREENS["board"], "board", f'[kds]\nmode = "board"\ncache = "{d / "board-1.db"}"\n'),
                            post=ui["board"].post, changed=lambda: None)
    kui = UIThread("ui-kiosk", stop_on_error=False)
    kiosk = KioskController(cfg(SCREENS["kiosk"], "kiosk", f'[kiosk]\ndatabase = "{d / "kiosk-9.db"}"\n'
                                                           "reply_timeout_s = 5\n"),
                            post=kui.post, changed=lambda: None)
    kui.tick = kiosk.tick
    ui["kiosk"] = kui

    def draw() -> None:  # what the station app does after each redraw: acknowledge what it drew
        station.drawn([t.ticket_id for t in station.vm.tickets_on_page()])
    ui["station"].tick = draw
    ctls = {"station": station, "expo": expo, "board": board, "kiosk": kiosk}
    for c in ctls.values():
        c.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def wait(pred, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            time.sleep(0.05)
        return False

    def answer(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    def handle(req: dict) -> dict:
        cmd = req.get("cmd")
        if cmd == "ready":
            ok = wait(lambda: all(c.bus.connected for c in ctls.values()) and kiosk.has_menu, 20)
            return {"ok": ok, "pid": os.getpid()}
        if cmd == "check":
            oid, number = req["order_id"], req.get("number")

            def on_station() -> bool:
                try:
                    station.vm.select(f"{oid}:wok")
                    return True
                except Exception:
                    return False
            return {"station": ui["station"].call(on_station),
                    "expo": ui["expo"].call(lambda: expo.vm.row(oid) is not None),
                    "board": ui["board"].call(lambda: number in board.vm.preparing or number in board.vm.ready)}
        if cmd == "order":
            if not wait(lambda: kiosk.has_menu, 10):
                return {"error": "the kiosk has no menu"}
            for t in ("start", "lang:en", "service:takeaway", "next", "item:spring-rolls", "add", "cart",
                      "checkout", "pay:counter"):
                kui.call(lambda t=t: kiosk.tap(t))
            vm = kiosk.vm
            oid = kui.call(lambda: vm.order_id)
            wait(lambda: kui.call(lambda: vm.screen) == "confirm", 15)
            screen, number, prov = kui.call(lambda: (vm.screen, vm.number, vm.provisional))
            return {"order_id": oid, "screen": screen, "number": number, "provisional": prov,
                    "counters": dict(kiosk.counters)}
        if cmd == "health":
            for name in ("station", "expo", "board"):
                ctls[name].monitor.publish_soon()
            pub = getattr(kiosk, "_publish_health", None)
            if pub is not None:
                kiosk._io.put(pub)
            return {"ok": True, "ui_errors": {k: len(u.errors) for k, u in ui.items()}}
        if cmd == "stop":
            stop.set()
            return {"ok": True}
        return {"error": f"unknown command {cmd!r}"}

    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                answer(handle(json.loads(line)))
            except Exception as exc:  # noqa: BLE001 - the test reads it
                logging.exception("screens command failed")
                answer({"error": f"{type(exc).__name__}: {exc}"})
            if stop.is_set():
                break
    finally:
        for c in ctls.values():
            try:
                c.stop()
            except Exception:
                logging.exception("stopping a screen")
        for u in ui.values():
            u.close()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_screens"]:
        sys.exit(screens_main(sys.argv[2:]))
    sys.exit("fuzzgen is a module (bench/fuzz.py runs it); `_screens` is its screens' process")
