"""Delivery platforms' orders, from the chain's cloud into the kitchen
(``[sync] delivery``; the cloud's side is restobox/cloud/delivery.py).

The sync service long-polls the store's delivery stream
(``GET /v1/stores/<store>/delivery?after=<cursor>&wait=<s>``). An ``order``
message is an ``OrderSubmit`` of channel ``delivery``: it goes to the hub
like any ordering device's order (``order/submit/<sync>``, sent again every
few seconds until the hub answers; the order id is its idempotency key), and
the hub's answer — accepted with its number, or refused with its reason (an
item sold out, a price it does not agree with) — is posted back
(``.../delivery/<order_id>/answer``) until the cloud has it. Only then does
the cloud accept the order at the platform. If the cloud answers that the
platform no longer has the order (refused for being late, cancelled
meanwhile), the store voids it. A ``cancel`` message voids the order at the
hub (a staff command; an order the hub never had is nothing to void).

The cursor moves in sync.db after each message is handled, so a restart
handles the last one again: every step is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter

import msgspec

from restobox import contract, db
from restobox.config import Config
from restobox.contract import topics
from restobox.runtime import Backoff
from restobox.sync import CloudClient, CloudError, CloudFeed, count_bad, decode_answer

log = logging.getLogger("restobox.sync.delivery")

CURSOR = "delivery_cursor"
RESEND_S = 3.0
"""The hub's answer not come in this long: the order (or the void) is sent again."""
VOID_NS = uuid.UUID("0b7f3a52-2d8e-4c1f-9e0a-5c3d2b1a4f60")


class Message(msgspec.Struct, kw_only=True):
    seq: int
    kind: str
    body: dict


class Stream(msgspec.Struct, kw_only=True):
    v: int = 1
    messages: list[Message]
    cursor: str = ""


class DeliveryAgent:
    def __init__(self, cfg: Config, bus, preorders, *, counters: Counter | None = None) -> None:
        self.cfg = cfg
        self.bus = bus
        self.device = cfg.device.id
        self.cloud = CloudClient(cfg)
        self.counters = counters if counters is not None else Counter()
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._replies: dict[str, contract.OrderReply] = {}
        self._staff: dict[str, contract.StaffReply] = {}
        self._waiting: set[str] = set()
        self.feed = CloudFeed(
            self._stop, bus, Backoff(cfg.sync.backoff_min_s, cfg.sync.backoff_max_s), self.counters,
            once=self.fetch_once, keys=lambda reason: [f"delivery.{reason}"], failing="taking delivery orders",
            again="delivery orders come again from the cloud", internal="delivery_internal",
            idle=lambda: self.cfg.sync.delivery_wait_s == 0)
        row = db.SyncValue.get_or_none(db.SyncValue.key == CURSOR)
        self.cursor = row.value if row else "0"
        preorders.also = self._on_order_reply  # the sync service's one reply topic for orders
        bus.subscribe(topics.staff_reply(self.device), self._on_staff_reply)
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- replies
    def _on_order_reply(self, r: contract.OrderReply) -> bool:
        """paho's thread: an answer for a delivery order this agent waits
        for (True: taken, the pre-orders' runner does not see it)."""
        with self._cond:
            if r.order_id not in self._waiting:
                return False
            self._replies[r.order_id] = r
            self._cond.notify_all()
        return True

    def _on_staff_reply(self, m) -> None:
        try:
            r = contract.decode(m.payload, contract.StaffReply)
        except contract.Rejection as exc:
            count_bad(self.counters, m.topic, exc.reason, exc.detail)
            return
        with self._cond:
            self._staff[r.command_id] = r
            self._cond.notify_all()

    def _await(self, table: dict, key: str, until: float, resend) -> object | None:
        """The reply in ``table`` for ``key``, sending again every RESEND_S,
        until ``until`` (monotonic) or the service stops."""
        next_send = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= until:
                return None
            if now >= next_send and self.bus.connected:
                resend()
                next_send = now + RESEND_S
            with self._cond:
                got = table.pop(key, None)
                if got is not None:
                    return got
                self._cond.wait(min(0.5, max(0.01, until - now)))
        return None

    # ------------------------------------------------------------ messages
    def handle(self, m: Message) -> None:
        if m.kind == "order":
            self._order(m.body)
        elif m.kind == "cancel":
            self._void(str(m.body.get("order_id", "")), str(m.body.get("reason", "cancelled on the platform")))
        else:
            self.counters["delivery.unknown_kind"] += 1
            log.warning("delivery message %d of a kind not known here (%r): skipped", m.seq, m.kind[:40])

    def _order(self, body: dict) -> None:
        try:
            sub = msgspec.convert(body.get("order"), contract.OrderSubmit)
        except msgspec.ValidationError as exc:
            self.counters["delivery.bad_orders"] += 1
            log.error("a delivery order from the cloud cannot be used: %s", exc)
            return
        if sub.channel != "delivery":
            self.counters["delivery.bad_orders"] += 1
            log.error("delivery order %s has channel %r: not submitted", sub.order_id, sub.channel)
            return
        payload = contract.encode(sub)
        answer_by = float(body.get("answer_by") or 0) or time.time() + 60
        until = time.monotonic() + max(5.0, answer_by - time.time() + 30)  # the cloud decides what is late

        def send() -> None:
            self.bus.publish(topics.order_submit(self.device), payload, correlation=uuid.uuid4().bytes,
                             response_topic=topics.order_reply(self.device))

        with self._cond:
            self._waiting.add(sub.order_id)
        try:
            r = self._await(self._replies, sub.order_id, until, send)
        finally:
            with self._cond:
                self._waiting.discard(sub.order_id)
                self._replies.pop(sub.order_id, None)
        if r is None:
            if not self._stop.is_set():
                self.counters["delivery.hub_silent"] += 1
                log.error("the hub did not answer delivery order %s in time (the cloud refuses it)", sub.order_id)
            return
        accepted = r.status == "accepted" or r.reason == "duplicate_conflict"
        if r.reason in ("storage_unavailable", "internal_error"):
            accepted = False
        self.counters["delivery.accepted" if accepted else "delivery.refused"] += 1
        log.info("delivery order %s (%s #%s): %s", sub.order_id, body.get("platform"), body.get("day_seq"),
                 f"order {r.number}" if accepted else f"refused: {r.reason}")
        answer = {"accepted": accepted, "number": r.number if accepted else None, "reason": r.reason or "",
                  "message": (r.message.en if r.message else "")[:200]}
        got = self._post_answer(sub.order_id, answer)
        if got is not None and got.get("void"):
            self._void(sub.order_id, "the delivery platform no longer has this order")

    def _post_answer(self, order_id: str, answer: dict) -> dict | None:
        while not self._stop.is_set():
            try:
                r = self.cloud.request("POST", f"delivery/{order_id}/answer", json=answer)
                self.feed.backoff.succeeded()
                return msgspec.json.decode(r.content)
            except (CloudError, msgspec.DecodeError) as exc:
                reason = getattr(exc, "reason", "cloud_bad_json")
                self.feed.failed(reason, str(exc))
        return None

    def _void(self, order_id: str, reason: str) -> None:
        if not order_id:
            return
        cmd = contract.StaffCommand(command_id=str(uuid.uuid5(VOID_NS, order_id)), kind="void", order_id=order_id,
                                    reason=reason[:200])
        payload = contract.encode(cmd)

        def send() -> None:
            self.bus.publish(topics.staff_command(self.device), payload, correlation=uuid.uuid4().bytes,
                             response_topic=topics.staff_reply(self.device))

        r = self._await(self._staff, cmd.command_id, time.monotonic() + 120, send)
        if r is None:
            return
        if r.ok:
            self.counters["delivery.voided"] += 1
            log.info("delivery order %s voided: %s", order_id, reason)
        elif r.reason == "unknown_order":  # the hub never had it: nothing to void
            self.counters["delivery.void_unknown"] += 1
        else:
            self.counters["delivery.void_refused"] += 1
            log.error("the hub would not void delivery order %s: %s", order_id, r.reason)

    # ---------------------------------------------------------------- loop
    def fetch_once(self) -> int:
        wait = self.cfg.sync.delivery_wait_s
        r = self.cloud.request("GET", "delivery", params={"after": self.cursor, "wait": f"{wait:g}"},
                               timeout=wait + self.cfg.sync.timeout_s)
        got = decode_answer(r.content, Stream)
        for m in got.messages:
            if self._stop.is_set():
                break
            self.handle(m)
            db.SyncValue.insert(key=CURSOR, value=str(m.seq)).on_conflict_replace().execute()
            self.cursor = str(m.seq)
        return len(got.messages)

    def start(self) -> "DeliveryAgent":
        self._thread = threading.Thread(target=self.feed.run, name="delivery", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2)
        self.cloud.close()
