"""The sync service: the store's outbox to the chain's cloud, exactly once, in
order, however long the internet is away.

    restobox sync [--config FILE] [--drain]

The hub writes every change the cloud must know as an outbox event in the
same transaction as the change (restobox/hub/, ``Outbox``). This service
reads them (store.db, read-only) in ``seq`` order and posts them in batches
(docs/cloud-api.md). How far the cloud has acknowledged is a cursor in its own
sync.db, committed only after the cloud's answer, so a SIGKILL or a power cut
at any moment sends some events again, never loses one; the cloud stores each
event id once.

Every failure (no network, a timeout, a closed connection, HTTP errors, an
answer that is not JSON or not the API's shape) gets a reason code, is
counted, logged, and retried after an exponential backoff with jitter. The
service publishes its health (retained): backlog, oldest unsent age, last
success.

Retention ([sync] keep_days, restobox/retention_common.py): cloud outages
that are over and pre-orders the hub accepted or refused go once they ended
before the window, a batch at a time when the outbox is empty (between
sends). The cursor, an outage still going on and a pre-order not yet
answered stay.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import msgspec

from restobox import contract, db
from restobox.retention_common import Pruner, Rule, prune_step
from restobox.runtime import Backoff, Runtime
from restobox.service import disk_details
from restobox.cloudapi import CloudEvent, EventAck, EventBatch, acked_prefix
from restobox.config import Config
from restobox.paygate import REASONS as PAYGATE_REASONS
from restobox.paygate import GatewayError, parse_notification

log = logging.getLogger("restobox.sync")

_json = msgspec.json.Decoder(dict)

REASONS = {
    "cloud_unreachable": "the cloud cannot be reached (no network, DNS, connection refused)",
    "cloud_timeout": "the cloud did not answer in time",
    "cloud_closed": "the cloud closed the connection",
    "cloud_unauthorized": "the cloud refused the store's token (401/403): check [sync] token_file",
    "cloud_http_error": "the cloud answered with an HTTP error",
    "cloud_bad_json": "the cloud's answer is not JSON",
    "cloud_bad_schema": "the cloud's answer is JSON but not the API's shape",
    "cloud_partial": "the cloud stored only part of a batch",
    "bad_event": "an outbox event could not be read (it is sent as recorded)",
    "menu_bad_schema": "the cloud's menu is not a menu (fields or types)",
    "menu_invalid": "the cloud's menu breaks the menu's rules (restobox menu-check)",
    "menu_too_large": "the cloud's menu is larger than the store's broker carries (restobox menu-check)",
    "stock_too_large": "the cloud's stock counts are larger than the store's broker carries",
    "pay_publish_failed": "the broker did not take a payment result for the hub (sent again)",
    "pay_internal": "relaying a payment notification failed in the sync service (see its log)",
}


REPLIES_KEPT = 1000

RETENTION = (
    Rule("sync_outage", "started_at", "ended_at", "1"),  # ended_at set: over
    Rule("preorder", "received_at", "updated_at", "state IN ('accepted', 'rejected')"),
)
"""What sync.db forgets once ended before [sync] keep_days."""


def count_bad(counters: Counter, topic: str, reason: str, detail: str = "") -> None:
    """A message from the bus this service does not use: counted
    (``bad_messages``, ``bad_message_<reason>``) and logged, rate-limited."""
    from restobox.bus import refused

    counters["bad_messages"] += 1
    counters[f"bad_message_{reason}"] += 1
    refused(topic, reason, detail, logger=log)


def _warn(key: str, msg: str, *args) -> None:
    """Logged the first few times per ``key``, then summed up once a minute
    (restobox.bus's refusal log): a flood must not fill the disk."""
    from restobox.bus import refusal_log

    refusal_log.warn(log, key, msg, *args)


def _summed(*counters: Counter) -> dict[str, int]:
    """One set of counters (the same name in two, e.g. bad_messages, adds up)."""
    out: dict[str, int] = {}
    for c in counters:
        for k, n in dict(c).items():
            out[k] = out.get(k, 0) + n
    return out


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def parse_iso(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


class CloudError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class CloudClient:
    """HTTP to the chain's cloud (``<cloud_url>/v1/stores/<store>/...``): the
    store's token, the timeout, and every failure as a CloudError with its
    reason code."""

    def __init__(self, cfg: Config, *, transport=None) -> None:
        import httpx

        s = cfg.sync
        self.base = f"{s.cloud_url.rstrip('/')}/v1/stores/{cfg.store.id}"
        headers = {"User-Agent": "restobox-sync/1"}
        token = s.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(timeout=httpx.Timeout(s.timeout_s), headers=headers, transport=transport)

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw):
        """The response if its status is in ``ok``; CloudError otherwise."""
        import httpx

        try:
            r = self.client.request(method, f"{self.base}/{path}", **kw)
        except httpx.TimeoutException as exc:
            raise CloudError("cloud_timeout", str(exc) or type(exc).__name__) from None
        except httpx.RemoteProtocolError as exc:
            raise CloudError("cloud_closed", str(exc)) from None
        except (httpx.TransportError, OSError) as exc:
            raise CloudError("cloud_unreachable", str(exc) or type(exc).__name__) from None
        if r.status_code in (401, 403):
            raise CloudError("cloud_unauthorized", f"HTTP {r.status_code}")
        if r.status_code not in ok:
            raise CloudError("cloud_http_error", f"HTTP {r.status_code}: {r.text[:200]}")
        return r

    def close(self) -> None:
        self.client.close()


def decode_answer(content: bytes, type_):
    """The cloud's answer as ``type_``; CloudError if it is not JSON or not that shape."""
    try:
        return msgspec.json.decode(content, type=type_)
    except msgspec.ValidationError as exc:
        raise CloudError("cloud_bad_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise CloudError("cloud_bad_json", f"{exc}: {content[:80]!r}") from None


class CloudFeed:
    """A loop that takes what the cloud holds for the store (``once()``:
    one long poll, the things handed to the hub over the bus; how many) for
    as long as the hub can be reached. A failure is counted (``keys(reason)``),
    logged when its reason changes, and waited out with ``backoff``; the
    first success after one is logged. ``error`` is the reason of the last
    failure ("" once it works). ``idle()``: True when the cloud answers at
    once (no long poll), so an empty answer waits a second before the next."""

    def __init__(self, stop: threading.Event, bus, backoff: Backoff, counters: Counter, *,
                 once: Callable[[], int], keys: Callable[[str], list[str]], failing: str, again: str,
                 internal: str, idle: Callable[[], bool], publish_reason: str | None = None) -> None:
        self.stop, self.bus, self.backoff, self.counters = stop, bus, backoff, counters
        self.once, self.keys, self.idle = once, keys, idle
        self.failing, self.again, self.internal, self.publish_reason = failing, again, internal, publish_reason
        self.error = ""

    def run(self) -> None:
        from restobox.bus import PublishError

        while not self.stop.is_set():
            if not self.bus.connected:  # nothing can be handed on: the cloud keeps it
                self.stop.wait(0.2)
                continue
            try:
                n = self.once()
            except CloudError as exc:
                self.failed(exc.reason, exc.detail)
                continue
            except PublishError as exc:
                if self.publish_reason is None:
                    log.exception("%s failed", self.failing)
                    self.failed(self.internal, repr(exc))
                else:
                    self.failed(self.publish_reason, str(exc))
                continue
            except Exception as exc:  # a surprise (a store refused its cursor...): again after the backoff
                log.exception("%s failed", self.failing)
                self.failed(self.internal, repr(exc))
                continue
            if self.error:
                log.info(self.again)
            self.error = ""
            self.backoff.succeeded()
            if n == 0 and self.idle():
                self.stop.wait(1.0)

    def failed(self, reason: str, detail: str) -> None:
        for key in self.keys(reason):
            self.counters[key] += 1
        if reason != self.error:
            log.warning("%s failed: %s: %s", self.failing, REASONS.get(reason, reason), detail[:200])
        self.error = reason
        self.stop.wait(self.backoff.failed())


@dataclass(frozen=True, slots=True)
class Backlog:
    events: int
    oldest_s: float  # age of the oldest unsent event; 0 if none
    last_success_at: float | None


class Forwarder:
    """Sends the outbox. ``step()`` sends one batch; ``run()`` loops until
    ``stop``. ``clock`` is wall time (tests pass a controllable one);
    ``sleep`` waits (tests may shorten it)."""

    def __init__(self, cfg: Config, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] | None = None, transport=None,
                 rng: random.Random | None = None) -> None:
        self.cfg = cfg
        s = cfg.sync
        self.clock = clock
        self._stop = threading.Event()
        self.sleep = sleep or self.wait
        self.rng = rng or random.Random()
        self.backoff = Backoff(s.backoff_min_s, s.backoff_max_s, rng=self.rng)
        self.cloud = CloudClient(cfg, transport=transport)
        self.sdb = db.open_sync_db(s.database)
        self.store = db.open_store_readonly(s.store_database)
        self.counters: Counter[str] = Counter()
        self.failures = 0  # in a row
        self.last_error: CloudError | None = None
        self.next_try = 0.0
        row = db.SyncCursor.get_or_none(db.SyncCursor.id == 1)
        if row is None:
            db.SyncCursor.insert(id=1, seq=0, updated_at=clock()).execute()
            row = db.SyncCursor.get_by_id(1)
        self.cursor = row.seq
        self.last_success_at = row.last_success_at
        # an outage still open from before a restart ends at the next delivery
        self._outage_open = db.SyncOutage.select().where(db.SyncOutage.ended_at.is_null()).exists()
        self.pruner = Pruner("sync.db", RETENTION, s.keep_days)

    def close(self) -> None:
        self.cloud.close()
        self.store.close()
        self.sdb.close()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if asked to stop meanwhile."""
        return self._stop.wait(seconds)

    # -------------------------------------------------------------- state
    def backlog(self) -> Backlog:
        n, oldest = db.outbox_backlog(self.store, self.cursor)
        t = parse_iso(oldest)
        return Backlog(n, max(0.0, self.clock() - t) if t else 0.0, self.last_success_at)

    def _advance(self, seq: int, n: int) -> None:
        now = self.clock()
        with self.sdb.atomic():
            db.SyncCursor.update(seq=seq, sent=db.SyncCursor.sent + n, updated_at=now,
                                 last_success_at=now).where(db.SyncCursor.id == 1).execute()
        self.cursor = seq
        self.last_success_at = now

    # --------------------------------------------------------------- send
    def _events(self, rows: list[tuple]) -> list[CloudEvent]:
        out = []
        for seq, event_id, kind, order_id, payload, created_at in rows:
            try:
                body = _json.decode(payload)
            except msgspec.DecodeError:
                self.counters["bad_event"] += 1
                body = {"raw": payload}
            out.append(CloudEvent(event_id=event_id, seq=seq, kind=kind, order_id=order_id, at=created_at,
                                  payload=body))
        return out

    def _post(self, events: list[CloudEvent]) -> EventAck:
        body = msgspec.json.encode(EventBatch(store_id=self.cfg.store.id, events=tuple(events)))
        r = self.cloud.request("POST", "events", content=body, headers={"Content-Type": "application/json"})
        return decode_answer(r.content, EventAck)

    def step(self) -> int:
        """Send the next batch; returns how many events the cloud stored
        (0 when there was nothing to send). Raises CloudError on a failure
        (nothing advanced)."""
        rows = db.outbox_after(self.store, self.cursor, self.cfg.sync.batch_size)
        if not rows:
            return 0
        events = self._events(rows)
        ack = self._post(events)
        n = acked_prefix(events, ack)
        if n:
            self._advance(events[n - 1].seq, n)
            self.counters["sent"] += n
        if n < len(events):
            raise CloudError("cloud_partial", f"{n} of {len(events)} stored")
        return n

    def backoff_s(self) -> float:
        """Full jitter: uniform in [min, min(max, min * 2^failures)]
        (restobox.runtime.Backoff)."""
        return self.backoff.delay(self.failures)

    def tick(self) -> str:
        """One round: 'sent', 'idle', or 'failed' (then wait ``backoff_s``)."""
        try:
            n = self.step()
        except CloudError as exc:
            self.failures += 1
            self.counters[exc.reason] += 1
            self.counters["failures"] += 1
            self.last_error = exc
            log.warning("sending the outbox failed (%s, %d in a row): %s", REASONS.get(exc.reason, exc.reason),
                        self.failures, exc.detail)
            self._note_outage(True, exc.reason)
            return "failed"
        if self.failures:
            log.info("the cloud is back after %d failures", self.failures)
        self.failures = 0
        self.last_error = None
        if self._outage_open:
            self._note_outage(False, "")
        return "sent" if n else "idle"

    def _note_outage(self, failed: bool, reason: str) -> None:
        """The outage log in sync.db (``SyncOutage``), for the day's report.
        A log that cannot be written does not stop the sending."""
        try:
            db.sync_outage(failed, reason, self.clock())
            self._outage_open = failed
        except Exception:
            log.exception("could not record the cloud outage in sync.db")

    def run(self, on_round: Callable[[str], None] | None = None, *, until_empty: bool = False) -> None:
        while not self.stopped:
            what = self.tick()
            if on_round is not None:
                on_round(what)
            if what == "idle" and until_empty:
                return
            if what == "failed":
                self.sleep(self.backoff_s())
            elif what == "idle":
                self.prune()  # nothing to send: one batch of retention, if due
                self.sleep(0.05 if self.pruner.busy else self.cfg.sync.poll_s)

    def prune(self) -> None:
        """One batch of retention of sync.db, counted in the health
        (``pruned.<table>``, ``retention_failures``)."""
        prune_step(self.pruner, lambda: self.pruner.step(self.sdb, self.clock()), self.counters)


class MenuPuller:
    """Brings the chain's menu down: ``GET /v1/stores/<store>/menu`` (with
    the ETag of the last answer), and when its version is not the one the hub
    uses (its retained ``menu/current``), hands it to the hub on
    ``restobox/v1/cloud/menu``. The hub checks, stores and applies it."""

    def __init__(self, cfg: Config, bus, *, transport=None) -> None:
        self.cfg = cfg
        self.bus = bus
        self.cloud = CloudClient(cfg, transport=transport)
        self.hub_version: str | None = None
        self.cloud_version: str | None = None
        self._etag: str | None = None
        self._menu_payload: bytes | None = None
        self._stock_etag: str | None = None
        self.counters: Counter[str] = Counter()
        self.last_error: str = ""

    def on_hub_menu(self, m) -> None:
        """paho's thread: the version of the hub's menu (retained
        ``menu/current``). One that does not decode, or breaks the menu's
        rules, is counted and changes nothing."""

        try:
            msg = contract.decode(m.payload, contract.MenuMessage, max_bytes=contract.MAX_MENU_BYTES)
            msg.menu.check()
        except contract.Rejection as r:
            self._unreadable(m.topic, r.reason, r.detail)
            return
        except Exception as exc:  # the menu's own rules (MenuError) or a surprise
            self._unreadable(m.topic, "bad_menu", repr(exc))
            return
        self.hub_version = msg.menu.version

    def _unreadable(self, topic: str, reason: str, detail: str) -> None:
        self.counters["menu_hub_unreadable"] += 1
        count_bad(self.counters, topic, reason, detail)

    def pull(self) -> str:
        """One look at the cloud's menu: 'same', 'sent', 'unchanged' or a failure reason."""
        from restobox.menu import Menu

        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            r = self.cloud.request("GET", "menu", ok=(200, 304, 404), headers=headers)
        except CloudError as exc:
            return self._fail(exc.reason)
        if r.status_code == 404:  # the chain has published no menu: the hub keeps its own
            self.last_error = ""
            return "none"
        if r.status_code == 304 and self._menu_payload is None:
            return self._fail("cloud_http_error")  # "not modified" before a first menu
        if r.status_code == 200:
            try:
                menu = Menu.from_json(r.content)
                menu.check()
            except msgspec.ValidationError:
                return self._fail("menu_bad_schema")
            except msgspec.DecodeError:
                return self._fail("cloud_bad_json")
            except Exception as exc:  # the menu's own rules (MenuError)
                log.error("the cloud's menu cannot be used: %s", exc)
                return self._fail("menu_invalid")
            payload = contract.encode(contract.MenuMessage(menu=menu, at=iso(time.time())))
            if len(payload) > contract.MAX_MENU_BYTES:  # the broker would drop this connection at every try
                log.error("the cloud's menu %s cannot be sent to the hub: %d bytes, at most %d",
                          menu.version, len(payload), contract.MAX_MENU_BYTES)
                return self._fail("menu_too_large")
            self._etag = r.headers.get("etag")
            self.cloud_version = menu.version
            self._menu_payload = payload
        self.last_error = ""
        if self.hub_version is not None and self.hub_version == self.cloud_version:
            return "same"
        self.bus.publish(contract.topics.CLOUD_MENU, self._menu_payload)
        self.counters["menus_sent"] += 1
        log.info("menu %s from the cloud handed to the hub (the hub has %s)", self.cloud_version, self.hub_version)
        return "sent"

    def pull_stock(self) -> str:
        """The cloud's stock counts: a version not sent before goes to the
        hub (which applies each version once). 'sent', 'same', 'none' or a
        failure reason."""

        headers = {"If-None-Match": self._stock_etag} if self._stock_etag else {}
        try:
            r = self.cloud.request("GET", "stock", ok=(200, 304, 404), headers=headers)
            if r.status_code in (304, 404):
                return "same" if r.status_code == 304 else "none"
            levels = decode_answer(r.content, contract.StockLevels)
        except CloudError as exc:
            return self._fail(exc.reason, "stock")
        self._stock_etag = r.headers.get("etag")
        sent = db.SyncValue.get_or_none(db.SyncValue.key == "stock_sent")
        if sent is not None and sent.value == levels.version:
            return "same"
        payload = contract.encode(msgspec.structs.replace(levels, at=iso(time.time())))
        if len(payload) > contract.MAX_STOCK_BYTES:  # the broker would drop this connection
            log.error("the cloud's stock counts %s cannot be sent to the hub: %d bytes, at most %d",
                      levels.version, len(payload), contract.MAX_STOCK_BYTES)
            return self._fail("stock_too_large", "stock")
        self.bus.publish_wait(contract.topics.CLOUD_STOCK, payload)
        db.SyncValue.insert(key="stock_sent", value=levels.version).on_conflict_replace().execute()
        self.counters["stock_sent"] += 1
        log.info("stock counts %s handed to the hub (%d items)", levels.version, len(levels.items))
        return "sent"

    def _fail(self, reason: str, what: str = "menu") -> str:
        self.counters[f"{what}.{reason}"] += 1
        if reason != self.last_error:
            log.warning("fetching the %s failed: %s", what, REASONS.get(reason, reason))
        self.last_error = reason
        return reason

    def close(self) -> None:
        self.cloud.close()


class PreorderRunner:
    """Pre-orders from the cloud into the kitchen at their time.

    ``pull`` asks the cloud for new pre-orders (``GET .../preorders?after=``)
    and keeps each in sync.db with its firing time (pickup less
    ``preorder_lead_s``); ``fire_due`` submits those due to the hub like any
    ordering device (``order/submit/<sync>``, channel ``preorder``), again
    every 10 s until the hub answers. The order id is the idempotency key:
    a pre-order sent twice is one order."""

    RESEND_S = 10.0

    def __init__(self, cfg: Config, bus, *, clock: Callable[[], float] = time.time, transport=None) -> None:
        import queue

        from restobox.contract import topics

        self.cfg = cfg
        self.bus = bus
        self.clock = clock
        self.cloud = CloudClient(cfg, transport=transport)
        self.device = cfg.device.id
        self.counters: Counter[str] = Counter()
        self.last_error = ""
        # decoded replies, paho's thread -> the pre-order thread (bounded: a
        # reply lost to a flood is asked for again by the next resend)
        self._replies: queue.Queue = queue.Queue(maxsize=REPLIES_KEPT)
        self._sent_at: dict[str, float] = {}
        # another of the service's order senders (delivery) takes its own
        # answers first: the service has one reply topic for orders
        self.also: Callable[[contract.OrderReply], bool] | None = None
        bus.subscribe(topics.order_reply(self.device), self._on_reply)

    def _on_reply(self, m) -> None:
        """paho's thread: decoded here, so nothing but an OrderReply waits."""
        import queue


        try:
            r = contract.decode(m.payload, contract.OrderReply)
        except contract.Rejection as exc:
            self.counters["preorders.bad_reply"] += 1
            count_bad(self.counters, m.topic, exc.reason, exc.detail)
            return
        if self.also is not None and self.also(r):
            return
        try:
            self._replies.put_nowait(r)
        except queue.Full:
            self.counters["preorders.replies_dropped"] += 1

    def pull(self) -> int:
        """New pre-orders kept; returns how many."""
        from restobox.cloudapi import PreorderList

        row = db.SyncValue.get_or_none(db.SyncValue.key == "preorder_cursor")
        params = {"after": row.value} if row else {}
        try:
            got = decode_answer(self.cloud.request("GET", "preorders", params=params).content, PreorderList)
        except CloudError as exc:
            return self._fail(exc.reason)
        self.last_error = ""
        now = self.clock()
        lead = self.cfg.sync.preorder_lead_s
        new = 0
        with db.sync_db.atomic():
            for p in got.preorders:
                pickup = parse_iso(p.pickup_at)
                if pickup is None or p.order.channel != "preorder":
                    self.counters["preorders_bad"] += 1
                    log.error("pre-order %s ignored: pickup_at %r, channel %r (must be 'preorder')",
                              p.order.order_id, p.pickup_at, p.order.channel)
                    continue
                n = (db.SyncPreorder.insert(
                    order_id=p.order.order_id, payload=msgspec.json.encode(p.order), pickup_at=p.pickup_at,
                    fire_at=pickup - lead, state="waiting", received_at=now, updated_at=now,
                ).on_conflict_ignore().execute())
                new += 1 if n else 0
            if got.cursor:
                db.SyncValue.insert(key="preorder_cursor", value=got.cursor).on_conflict_replace().execute()
        if new:
            self.counters["preorders_received"] += new
            log.info("%d new pre-orders from the cloud", new)
        return new

    def _fail(self, reason: str) -> int:
        self.counters[f"preorders.{reason}"] += 1
        if reason != self.last_error:
            log.warning("fetching pre-orders failed: %s", REASONS.get(reason, reason))
        self.last_error = reason
        return 0

    def fire_due(self) -> int:
        """Submit the pre-orders whose time has come; returns how many were sent."""
        import uuid

        from restobox.contract import topics

        self._take_replies()
        now = self.clock()
        sent = 0
        q = (db.SyncPreorder.select().where(db.SyncPreorder.state.in_(("waiting", "sent")),
                                            db.SyncPreorder.fire_at <= now)
             .order_by(db.SyncPreorder.fire_at).limit(100))
        for row in q:
            last = self._sent_at.get(row.order_id)
            if last is not None and time.monotonic() - last < self.RESEND_S:
                continue
            self._sent_at[row.order_id] = time.monotonic()
            self.bus.publish(topics.order_submit(self.device), bytes(row.payload), correlation=uuid.uuid4().bytes,
                             response_topic=topics.order_reply(self.device))
            db.SyncPreorder.update(state="sent", attempts=db.SyncPreorder.attempts + 1, updated_at=now).where(
                db.SyncPreorder.order_id == row.order_id).execute()
            sent += 1
        if sent:
            self.counters["preorders_fired"] += sent
        return sent

    def _take_replies(self) -> None:
        import queue

        from restobox.contract import topics

        while True:
            try:
                r = self._replies.get_nowait()
            except queue.Empty:
                return
            try:
                self._take_reply(r)
            except pw_errors() as exc:  # sync.db refused: the pre-order is sent again and answered again
                self.counters["preorders.store_failed"] += 1
                log.error("sync.db did not take the hub's answer for pre-order %s: %s", r.order_id[:64], exc)
            except Exception as exc:  # one reply the code cannot take: the next ones go on
                count_bad(self.counters, topics.order_reply(self.device), "unusable",
                          f"the reply for {r.order_id[:64]!r}: {exc!r}")

    def _take_reply(self, r) -> None:
        now = self.clock()
        if r.status == "accepted" or r.reason == "duplicate_conflict":
            n = db.SyncPreorder.update(state="accepted", number=r.number, updated_at=now).where(
                (db.SyncPreorder.order_id == r.order_id) & (db.SyncPreorder.state != "accepted")).execute()
            if n:
                self.counters["preorders_accepted"] += 1
                log.info("pre-order %s is order %s", r.order_id, r.number)
        elif r.reason in ("storage_unavailable", "internal_error"):
            return  # sent again
        else:
            n = db.SyncPreorder.update(state="rejected", reason=(r.reason or "")[:48], updated_at=now).where(
                db.SyncPreorder.order_id == r.order_id).execute()
            if n:
                self.counters["preorders_rejected"] += 1
                log.error("the hub refused pre-order %s: %s", r.order_id, r.reason)
        self._sent_at.pop(r.order_id, None)

    def counts(self) -> dict[str, int]:
        rows = (db.SyncPreorder.select(db.SyncPreorder.state, pw_count()).group_by(db.SyncPreorder.state).tuples())
        return dict(rows)

    def close(self) -> None:
        self.cloud.close()


# ------------------------------------------------------------ phone payment
class PayNotification(msgspec.Struct, kw_only=True):
    """One of the gateway's notifications as the cloud kept it: ``body`` is
    the raw JSON the gateway posted (the store checks its signature)."""

    seq: int
    body: str
    received_at: str = ""


class PayNotifications(msgspec.Struct, kw_only=True):
    """The cloud's answer to ``GET .../paygate/notifications?after=``."""

    notifications: tuple[PayNotification, ...]
    cursor: str
    v: int = 1


PAY_CURSOR = "paynotify_cursor"
"""sync.db's SyncValue: the seq of the last notification handed to the hub."""
PAY_ROUND_S = 0.5
"""How often the active intents are read from store.db."""
PAY_PROBE_NO = "RBPROBE0000000000000000000000000"
"""The made-up merchant order number the gateway is asked about to see that it answers."""
GATEWAY_DOWN = frozenset({"gateway_unreachable", "gateway_timeout", "gateway_http_error", "gateway_bad_json",
                          "gateway_bad_schema", "bad_signature"})
"""Failures that say the gateway cannot be used now (not a signed answer)."""

_INTENTS_SQL = ('SELECT "merchant_no", "state", "amount", "reason", "refund_amount", "created_at", "expires_at" '
                "FROM \"pay_intent\" WHERE \"state\" IN ('open', 'refund_due', 'refunding') "
                "OR (\"state\" = 'closed' AND \"updated_at\" >= ?) LIMIT 1000")
CLOSED_WATCH_S = 300.0
"""A payment closed unpaid is still asked about this long (every [paygate]
query_max_s): a gateway may take the diner's money after it said closed
(a payment in flight), and its notification may be lost too."""


@dataclass(slots=True)
class _Intent:
    merchant_no: str
    state: str
    amount: int
    reason: str
    refund_amount: int
    created: float
    expires: float


@dataclass(slots=True)
class _Asking:
    """When to ask the gateway next about one intent: ``due`` (wall time),
    then ``gap`` later, doubling up to [paygate] query_max_s."""

    state: str
    due: float
    gap: float
    closing: bool = False


class PayAgent:
    """The store's side of the payment gateway's asynchronous parts
    (docs/cloud-api.md, "Payment notifications"); it writes nothing to
    store.db: the hub records what the gateway said.

    - The relay (thread ``pay-notify``) long-polls the cloud for the
      gateway's notifications, checks each one's signature with the
      merchant key and hands the good ones to the hub (PayResult
      ``notify`` on pay/result, QoS 1); the cursor in sync.db moves past a
      notification only once the broker has it, so one may reach the hub
      twice (the hub counts it once), none is lost. A bad one is counted
      with its reason and goes no further.
    - The enquiry (thread ``pay-enquiry``) reads the open, refund_due and refunding
      intents from store.db every 0.5 s and asks the gateway about them,
      until the hub's row changes: an open one is queried
      ``query_first_s`` after it was made, then ever less often (up to
      ``query_max_s``); past its ``expires_at`` it is closed; money due
      back is refunded (``out_refund_no`` = merchant_no + "R"). Every
      answer is handed to the hub as it came, signed; every call is
      idempotent at the gateway, so repeating one is harmless. A payment
      closed unpaid is still queried for ``CLOSED_WATCH_S`` (every
      ``query_max_s``): a gateway may take the money after it said closed,
      and lose that notification too.
    - The gateway's availability (retained PayStatus on pay/status): any
      signed answer says it answers; a failure says at once it does not,
      with its reason; with nothing else to ask, a made-up payment is
      queried every ``probe_s``. Published on a change and after each
      reconnect.
    """

    def __init__(self, cfg: Config, bus, *, clock: Callable[[], float] = time.time, transport=None,
                 gateway_transport=None) -> None:
        from restobox.paygate import PaygateClient

        self.cfg = cfg
        self.p = cfg.paygate
        self.bus = bus
        self.clock = clock
        self.key = self.p.key()
        self.gateway = PaygateClient.from_config(cfg, transport=gateway_transport)
        self.cloud = CloudClient(cfg, transport=transport)
        self.counters: Counter[str] = Counter()
        self._stop = threading.Event()
        s = cfg.sync
        self.relay = CloudFeed(
            self._stop, bus, Backoff(s.backoff_min_s, s.backoff_max_s), self.counters, once=self.relay_once,
            keys=lambda reason: ["pay.notify_failures", f"pay.{reason}"],
            failing="fetching payment notifications", again="payment notifications come again from the cloud",
            internal="pay_internal", idle=lambda: self.p.notify_wait_s == 0, publish_reason="pay_publish_failed")
        # capped at the probe's interval: a gateway back is seen as soon as a probe would see it
        self.gateway_backoff = Backoff(min(s.backoff_min_s, self.p.probe_s), min(s.backoff_max_s, self.p.probe_s))
        self.gateway_wait_until = 0.0  # monotonic: no call to the gateway before
        self.last_call = float("-inf")  # monotonic: the last call to the gateway
        self.status: tuple[bool, str] | None = None  # (available, reason) as last published
        self._status_connects = -1
        self.asking: dict[str, _Asking] = {}
        self.active: dict[str, int] = {}  # state -> intents, as last read
        self._store = None  # store.db, read-only, opened by the enquiry thread
        row = db.SyncValue.get_or_none(db.SyncValue.key == PAY_CURSOR)
        self.cursor = row.value if row else "0"

    def threads(self) -> list[threading.Thread]:
        return [threading.Thread(target=self.relay.run, name="pay-notify", daemon=True),
                threading.Thread(target=self.run_enquiry, name="pay-enquiry", daemon=True)]

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.gateway.close()
        self.cloud.close()
        if self._store is not None:
            self._store.close()

    def details(self) -> dict:
        st = self.status
        return {"pay_gateway": "unknown" if st is None else "available" if st[0] else st[1],
                "pay_open_intents": self.active.get("open", 0),
                "pay_refunds_due": self.active.get("refund_due", 0),
                "pay_notify_cursor": self.cursor, "pay_notify_error": self.relay.error or None}

    # ------------------------------------------------------------ to the hub
    def _result(self, source: str, fields: dict) -> None:
        """The gateway's signed fields to the hub (pay/result, QoS 1), once
        the broker has them; PublishError if it does not take them."""
        payload = contract.encode(contract.PayResult(source=source, fields=fields, at=iso(self.clock())))
        if len(payload) > contract.MAX_PAYLOAD_BYTES:  # the hub would refuse it; the gateway's, not ours
            self.counters["pay.too_large"] += 1
            _warn("the payment results too large", "a payment result (%s, %s) is %d bytes, "
                  "more than the bus carries: not sent", source,
                  str(fields.get("out_trade_no", ""))[:40], len(payload))
            return
        self.bus.publish_wait(contract.topics.PAY_RESULT, payload, qos=1)
        self.counters[f"pay.results_{source}"] += 1

    def _set_status(self, available: bool, reason: str = "") -> None:
        if self.status == (available, reason):
            return
        if available:
            log.info("the payment gateway answers: phone payment is available")
        else:
            log.warning("phone payment is unavailable: %s", PAYGATE_REASONS.get(reason, reason))
        self.status = (available, reason)
        self._publish_status()

    def _publish_status(self) -> None:
        if self.status is None:
            return
        self._status_connects = self.bus.connects
        available, reason = self.status
        self.bus.publish(contract.topics.PAY_STATUS, contract.encode(contract.PayStatus(
            available=available, reason=reason, at=iso(self.clock()))), qos=1, retain=True)

    # ---------------------------------------------------------------- relay
    def relay_once(self) -> int:
        """One fetch of notifications (held at the cloud up to
        notify_wait_s); each good one handed to the hub, the cursor moved
        past each one handled. Returns how many came. CloudError or
        PublishError on a failure (the cursor stays before the one that
        failed)."""
        wait = self.p.notify_wait_s
        r = self.cloud.request("GET", "paygate/notifications", params={"after": self.cursor, "wait": f"{wait:g}"},
                               timeout=wait + self.cfg.sync.timeout_s)
        got = decode_answer(r.content, PayNotifications)
        for n in got.notifications:
            self._relay(n)
            self._save_cursor(str(n.seq))
        return len(got.notifications)

    def _relay(self, n: PayNotification) -> None:
        try:
            fields = parse_notification(n.body.encode("utf-8", "surrogatepass"), self.key)
        except GatewayError as exc:
            self.counters["pay.bad_notifications"] += 1
            self.counters[f"pay.{exc.reason}"] += 1
            _warn(f"the bad payment notifications ({exc.reason})",
                  "payment notification %d from the cloud not used: %s (%s)", n.seq, exc.words,
                  exc.detail[:200])
            return
        self._result("notify", fields)
        self.counters["pay.notifications"] += 1

    def _save_cursor(self, cursor: str) -> None:
        db.SyncValue.insert(key=PAY_CURSOR, value=cursor).on_conflict_replace().execute()
        self.cursor = cursor

    # -------------------------------------------------------------- enquiry
    def run_enquiry(self) -> None:
        while not self._stop.is_set():
            try:
                self.enquiry_round()
            except Exception:
                if not self._stop.is_set():  # not the clients closed under it at the end
                    log.exception("phone payment: a round of enquiries failed")
            self._stop.wait(PAY_ROUND_S)

    def intents(self) -> list[_Intent] | None:
        """The open and refund_due intents in store.db (none in a store.db
        from before phone payment); None if it cannot be read now."""
        import sqlite3

        try:
            if self._store is None:
                self._store = db.open_store_readonly(self.cfg.sync.store_database)
            rows = self._store.execute(_INTENTS_SQL, (iso(self.clock() - CLOSED_WATCH_S),)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            self.counters["pay.store_unreadable"] += 1
            _warn("the unreadable store.db", "cannot read the payment intents: %s", exc)
            return None
        out = []
        for merchant_no, state, amount, reason, refund_amount, created_at, expires_at in rows:
            created, expires = parse_iso(created_at), parse_iso(expires_at)
            if created is None or expires is None:
                self.counters["pay.bad_intent"] += 1
                _warn("the unreadable payment intents", "payment intent %s has no readable "
                      "created_at/expires_at (%r, %r): not asked about", merchant_no, created_at,
                      expires_at)
                continue
            out.append(_Intent(merchant_no, state, amount or 0, reason or "", refund_amount or 0, created, expires))
        return out

    def _plan(self, rows: list[_Intent], now: float) -> None:
        """``asking`` follows the rows: a new intent (or one in a new state)
        starts its schedule; an expired open one is closed now; one that
        left (paid, closed, refunded) is forgotten."""
        first = self.p.query_first_s
        for it in rows:
            a = self.asking.get(it.merchant_no)
            if a is None or a.state != it.state:
                if it.state == "open":
                    a = _Asking(it.state, due=it.created + first, gap=min(2 * first, self.p.query_max_s))
                elif it.state == "closed":  # watched for a late success
                    a = _Asking(it.state, due=now + first, gap=self.p.query_max_s)
                else:
                    a = _Asking(it.state, due=now, gap=first)
                self.asking[it.merchant_no] = a
            if it.state == "open" and not a.closing and now >= it.expires:
                a.closing, a.due, a.gap = True, now, first
        active = {it.merchant_no for it in rows}
        for gone in [k for k in self.asking if k not in active]:
            del self.asking[gone]
        self.active = dict(Counter(it.state for it in rows))

    def enquiry_round(self) -> None:
        from restobox.bus import PublishError

        if self.bus.connected and self.bus.connects != self._status_connects:
            self._publish_status()  # again after a reconnect (retained, but the broker may be new)
        rows = self.intents()
        if rows is None:
            return
        now = self.clock()
        self._plan(rows, now)
        if not self.bus.connected or time.monotonic() < self.gateway_wait_until:
            return  # an answer could not be handed on now, or the gateway failed: later
        try:
            for it in sorted((it for it in rows if self.asking[it.merchant_no].due <= now),
                             key=lambda it: self.asking[it.merchant_no].due):
                if self._stop.is_set() or not self._ask(it, self.asking[it.merchant_no]):
                    return
            if time.monotonic() - self.last_call >= (self.p.probe_s if self.status and self.status[0] else 0):
                self._probe()
        except PublishError as exc:  # asked again next round
            self.counters["pay.pay_publish_failed"] += 1
            log.warning("a payment result could not be handed to the hub: %s", exc)

    def _ask(self, it: _Intent, a: _Asking) -> bool:
        """One call about ``it``; its answer to the hub. False if the
        gateway failed (the round stops; the call is made again after the
        backoff)."""
        self.last_call = time.monotonic()
        try:
            if it.state == "refund_due":
                self._refund(it)
            elif it.state == "refunding":
                self._counter_refund(it)
            elif a.closing:
                self._close(it)
            else:
                self.counters["pay.queries"] += 1
                trade, fields = self.gateway.query(it.merchant_no)
                if trade.status != "NOTPAY" and not (it.state == "closed" and trade.status == "CLOSED"):
                    self._result("query", fields)
        except GatewayError as exc:
            self.counters[f"pay.{exc.reason}"] += 1
            if exc.reason in GATEWAY_DOWN:
                self._gateway_failed(exc)
                return False
            # a signed refusal: asked again later. An open payment the
            # gateway does not know yet is no news (the page creates it after the hub)
            if not (exc.reason == "order_not_exist" and it.state in ("open", "closed") and not a.closing):
                _warn(f"the gateway's refusals ({exc.reason})", "the gateway refused %s for %s: %s",
                      "the refund" if it.state == "refund_due" else "the close" if a.closing else "the query",
                      it.merchant_no, exc.detail[:200])
        self._answered()
        a.due = self.clock() + a.gap
        a.gap = min(2 * a.gap, self.p.query_max_s)
        return True

    def _close(self, it: _Intent) -> None:
        self.counters["pay.closes"] += 1
        try:
            trade, fields = self.gateway.close_trade(it.merchant_no)
        except GatewayError as exc:
            if exc.reason == "order_paid" and exc.answer:  # paid first: the answer is the paid trade, signed
                self.counters["pay.order_paid"] += 1
                self._result("query", exc.answer)
            elif exc.reason in ("order_not_exist", "order_closed") and exc.answer:
                self.counters[f"pay.{exc.reason}"] += 1  # never made, or closed already: closed for the hub
                self._result("close", exc.answer)
            else:
                raise
            return
        self._result("close" if trade.status == "CLOSED" else "query", fields)

    def _refund(self, it: _Intent) -> None:
        if it.refund_amount <= 0:
            self.counters["pay.bad_intent"] += 1
            _warn("the refunds of nothing", "payment intent %s is refund_due with refund_amount "
                  "%d: nothing to refund", it.merchant_no, it.refund_amount)
            return
        self.counters["pay.refunds"] += 1
        _, fields = self.gateway.refund(it.merchant_no, it.merchant_no + "R", it.refund_amount, it.reason)
        self._result("refund", fields)

    def _counter_refund(self, it: _Intent) -> None:
        """A payment refunded at the counter: the gateway gives back what
        it has not given back yet (one refund per target, so a repeat is
        the same refund); its state after that goes to the hub."""
        from restobox.paygate import refund_key

        trade, fields = self.gateway.query(it.merchant_no)
        if trade.refunded < it.refund_amount:
            self.counters["pay.refunds"] += 1
            self.gateway.refund(it.merchant_no, refund_key(it.merchant_no, it.refund_amount),
                                it.refund_amount - trade.refunded, it.reason)
            trade, fields = self.gateway.query(it.merchant_no)
        self._result("query", fields)

    def _probe(self) -> None:
        self.last_call = time.monotonic()
        self.counters["pay.probes"] += 1
        try:
            self.gateway.query(PAY_PROBE_NO)
        except GatewayError as exc:
            if exc.reason in GATEWAY_DOWN:
                self.counters[f"pay.{exc.reason}"] += 1
                self._gateway_failed(exc)
                return
        self._answered()

    def _answered(self) -> None:
        self.gateway_backoff.succeeded()
        self._set_status(True)

    def _gateway_failed(self, exc) -> None:
        self.counters["pay.gateway_failures"] += 1
        self.gateway_wait_until = time.monotonic() + self.gateway_backoff.failed()
        if self.status != (False, exc.reason):
            log.warning("the payment gateway failed: %s", exc)
        self._set_status(False, exc.reason)


def pw_errors():
    import peewee as pw

    return pw.OperationalError


def pw_count():
    import peewee as pw

    return pw.fn.COUNT(db.SyncPreorder.order_id)


class SyncService:
    """The forwarder as a store service: health on the bus, the menu puller,
    the pre-orders, phone payment's notifications and enquiries (PayAgent,
    when [paygate] enabled), SIGTERM stops it."""

    def __init__(self, cfg: Config, **kw) -> None:
        from restobox.bus import bus_from_config
        from restobox.contract import topics

        self.cfg = cfg
        self.fw = Forwarder(cfg, **kw)
        self.bus = bus_from_config(cfg)
        self.menu = MenuPuller(cfg, self.bus)
        self.bus.subscribe(topics.MENU, self.menu.on_hub_menu)
        self.preorders = PreorderRunner(cfg, self.bus, clock=self.fw.clock)
        self.pay = PayAgent(cfg, self.bus, clock=self.fw.clock) if cfg.paygate.enabled else None
        self._threads: list[threading.Thread] = []
        # the process's lifecycle: state, signals, systemd, periodic health (restobox/runtime.py)
        self.runtime = Runtime("sync", check=self.health_check, publish_health=self.publish_health,
                               health_every_s=cfg.sync.health_interval_s)
        self.runtime.on_stop(self.fw.stop)
        if self.pay is not None:
            self.runtime.on_stop(self.pay.stop)

    def _preorder_loop(self) -> None:
        every = self.cfg.sync.preorder_poll_s
        next_pull = 0.0
        while not self.fw.wait(0.5):
            try:
                if time.monotonic() >= next_pull:
                    next_pull = time.monotonic() + every
                    self.preorders.pull()
                if self.bus.connected:
                    self.preorders.fire_due()
            except Exception:
                log.exception("pre-orders: a round failed")

    def _menu_loop(self) -> None:
        every = self.cfg.sync.menu_poll_s
        # give the hub's retained menu a moment to arrive first
        if self.fw.wait(1.0):
            return
        while True:
            try:
                self.menu.pull()
                if self.bus.connected:
                    self.menu.pull_stock()
            except Exception:
                log.exception("menu or stock pull failed")
            if self.fw.wait(every):
                return

    def health(self):
        from restobox.contract import Health

        b = self.fw.backlog()
        err = self.fw.last_error
        rt = self.runtime
        if err is not None:
            rt.degraded(err.reason, REASONS.get(err.reason, err.reason))
        else:
            rt.ready("sending" if b.events else "up to date")
        return Health(
            device=self.cfg.device.id, role="sync", state=rt.state, at=iso(self.fw.clock()),
            reason_code=rt.code, reason=rt.reason if rt.state != "stopping" else "stopping",
            counters=_summed(self.fw.counters, self.menu.counters, self.preorders.counters,
                             self.pay.counters if self.pay is not None else Counter()),
            details={"backlog": b.events, "oldest_unsent_s": round(b.oldest_s, 1),
                     "menu_cloud": self.menu.cloud_version, "menu_hub": self.menu.hub_version,
                     "menu_error": self.menu.last_error or None,
                     **{f"preorders_{k}": v for k, v in self.preorders.counts().items()},
                     "last_success": iso(b.last_success_at) if b.last_success_at else None,
                     "cursor": self.fw.cursor, "failures_in_a_row": self.fw.failures,
                     **(self.pay.details() if self.pay is not None else {}),
                     **disk_details(self.cfg.sync.database)},
        ), contract

    def publish_health(self) -> None:
        h, contract = self.health()
        self.bus.publish(contract.topics.health(self.cfg.device.id), contract.encode(h), retain=True)

    def _round(self, what: str) -> None:
        """After each round of the forwarder: the health at once after a
        failure, else when due; the watchdog fed."""
        self.runtime.publish_health_if_due(force=what == "failed")
        self.runtime.feed()

    def health_check(self) -> tuple[bool, str]:
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self.fw.stopped:
            return False, f"the {', '.join(dead)} thread has stopped"
        err = self.fw.last_error
        return True, f"retrying: {REASONS.get(err.reason, err.reason)}" if err else "sending the outbox"

    def _start(self) -> None:
        if self.cfg.vouchers.enabled:  # the counters' group-buy vouchers (restobox/vouchers.py), counted with the rest
            from restobox.vouchers import VoucherAgent

            self.runtime.on_stop(VoucherAgent.from_config(self.cfg, self.bus, counters=self.fw.counters).start().stop)
        from restobox.store_status import StatusReporter  # the heartbeat: backlog and alerts to the cloud's dashboard
        self.runtime.on_stop(StatusReporter.for_forwarder(self.cfg, self.bus, self.fw).start().stop)
        if self.cfg.sync.delivery:  # delivery platforms' orders (restobox/sync_delivery.py)
            from restobox.sync_delivery import DeliveryAgent

            self.runtime.on_stop(DeliveryAgent(self.cfg, self.bus, self.preorders, counters=self.fw.counters)
                                 .start().stop)
        self.bus.start()
        self.bus.announce()
        if self.cfg.sync.menu_poll_s > 0:
            self._threads.append(threading.Thread(target=self._menu_loop, name="menu", daemon=True))
        if self.cfg.sync.preorder_poll_s > 0:
            self._threads.append(threading.Thread(target=self._preorder_loop, name="preorders", daemon=True))
        if self.pay is not None:
            self._threads += self.pay.threads()
        for t in self._threads:
            t.start()

    def _main(self) -> None:
        # the forwarder's waits (up to backoff_max_s) keep the watchdog fed
        # and the health published on time
        self.fw.sleep = self.runtime.wait
        self.runtime.publish_health_if_due(force=True)
        self.fw.run(self._round)

    def _stop(self) -> None:
        self.runtime.enter("stopping", "stopping")
        self.fw.stop()
        if self.pay is not None:
            self.pay.stop()
        for t in self._threads:
            # the notifications' thread may be waiting at the cloud for the
            # next one; it has nothing unsaved (the cursor moves after each)
            t.join(1 if t.name.startswith("pay-") else 5)
        try:
            self.publish_health()
        except Exception:  # the broker may be gone; stopping anyway
            log.exception("publishing the last health failed")
        self.bus.stop()
        self.fw.close()
        self.menu.close()
        self.preorders.close()
        if self.pay is not None:
            self.pay.close()

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT, telling systemd READY once started and
        pinging its watchdog while the forwarder's threads are alive."""
        self.runtime.serve(self._start, self._stop, ready_status=lambda: "sending the outbox", main=self._main)


def drain(cfg: Config, out=None) -> int:
    """``restobox sync --drain``: send until the outbox is empty, with a
    progress bar. Returns the exit status (0: everything delivered)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    fw = Forwarder(cfg)
    console = Console(file=out)
    total = fw.backlog().events
    if total == 0:
        console.print("The outbox is empty: the cloud has everything.")
        fw.close()
        return 0
    rt = Runtime("sync")  # Ctrl-C or SIGTERM: stop after the batch in flight
    rt.on_stop(fw.stop)
    rt.install_signals()
    with Progress(TextColumn("sending to the cloud"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[note]}"), console=console) as bar:
        task = bar.add_task("send", total=total, note="")

        def round_(what: str) -> None:  # counted, not asked of the database every batch
            note = "" if fw.last_error is None else f"[yellow]{REASONS.get(fw.last_error.reason)}; retrying"
            bar.update(task, completed=min(total, fw.counters["sent"]), note=note)
        fw.run(round_, until_empty=True)
    left = fw.backlog().events
    fw.close()
    if left:
        console.print(f"[red]{left} events not sent yet[/red] (stopped).")
        return 1
    console.print(f"[green]{total} events delivered.[/green]")
    return 0
