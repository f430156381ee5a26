"""The store hub: the single writer of the order book.

It decodes every submission strictly, prices it from the menu it holds,
numbers it, commits it with its station tickets and outbox rows, and only then
answers "accepted". It routes tickets to stations, applies bumps, recalls and
voids, and keeps the pickup board and the 86 list published (retained).

Threads: paho's network thread only decodes nothing and queues; one worker
thread owns the database. The worker takes every message waiting (up to
``batch_max``) and commits them in one transaction (group commit): one fsync
for many orders, which is what lets a Pi's SD card take a lunch rush.
Messages are acknowledged to the broker only after that commit, so a hub
killed mid-batch gets them again when it comes back.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import msgspec
import peewee as pw

from restobox import contract, db, loyalty
from restobox.service import disk_details
from restobox.bus import Bus, Incoming, bus_from_config
from restobox.config import Config
from restobox.contract import (
    Board,
    Health,
    OrderReply,
    OrderSubmit,
    OrderUpdate,
    PricedLine,
    Rejection,
    RejectNotice,
    SoldOut,
    StaffCommand,
    StaffReply,
    StationEvent,
    StationTicket,
    TicketItem,
    topics,
)
from restobox.menu import Menu, MenuIndex
from restobox.orders import OPEN_STATES, OrderProgress, price_order, split_by_station

log = logging.getLogger("restobox.hub")

_lines_dec = msgspec.json.Decoder(tuple[PricedLine, ...])
_items_dec = msgspec.json.Decoder(list[TicketItem])
_json = msgspec.json.Encoder()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


#: What the hub reads: message kind -> topic filter (docs/protocol.md §2).
SUBSCRIPTIONS: dict[str, str] = {
    "submit": topics.ORDER_SUBMIT_ALL,
    "station": topics.STATION_EVENT_ALL,
    "staff": topics.STAFF_COMMAND_ALL,
    "print_state": topics.PRINT_JOB_STATE,
    "sync": topics.STATION_SYNC_ALL,
    "menu": topics.CLOUD_MENU,
    "stock": topics.CLOUD_STOCK,
    "loyalty": topics.LOYALTY_QUERY_ALL,
}


@dataclass
class _Out:
    topic: str
    payload: bytes
    retain: bool = False
    correlation: bytes | None = None


@dataclass
class _Batch:
    """Changes made while processing one batch; applied only after commit."""

    sold_out: set[str]
    board: dict[str, tuple[int, str]]  # order_id -> (number, state), open orders
    out: list[_Out] = field(default_factory=list)
    board_changed: bool = False
    sold_out_changed: bool = False
    counters: Counter = field(default_factory=Counter)
    rejects: list[RejectNotice] = field(default_factory=list)
    menu_before: tuple | None = None  # (menu, idx, previous versions) to restore if the batch fails
    menu_changed: bool = False


@dataclass
class _Claim:
    """An order's loyalty part as the hub checked it. ``member`` empty:
    loyalty is off at the hub (the order goes through without points)."""

    member: str
    masked: str
    redeem: int
    discount: int
    balance: int = 0  # the member's points before this order


class Hub:
    def __init__(
        self,
        cfg: Config,
        menu: Menu,
        *,
        bus: Bus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.cfg = cfg
        self.menu = menu
        self.idx = MenuIndex(menu)
        # menus replaced lately: version -> (index, when replaced, monotonic s)
        self._previous: dict[str, tuple[MenuIndex, float]] = {}
        self._stock_limited = False  # any StockLevel rows (skip the lookup per order when none)
        self.clock = clock
        self.tz = ZoneInfo(cfg.store.timezone)
        self.bus = bus or bus_from_config(cfg, manual_ack=True)
        self.q: queue.Queue[tuple[str, Incoming]] = queue.Queue()
        self.state = "starting"
        self.state_reason = ""
        self.counters: Counter = Counter()
        self.last_errors: deque[RejectNotice] = deque(maxlen=20)
        self.sold_out: set[str] = set()
        self.board: dict[str, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._db: pw.SqliteDatabase | None = None
        self._last_tick = 0.0
        self._served_connect = 0
        self._print_sent: dict[str, float] = {}
        self._beat = time.monotonic()  # the worker's last round (health_check)
        self._member_key = cfg.hub.loyalty.member_key()

    # ============================================================ lifecycle
    def start(self) -> None:
        self._set_state("starting", "opening the store database")
        self._db = db.open_store_db(self.cfg.hub.database)
        self._load()
        self.bus.on_connection_change = self._on_link
        for kind, topic_filter in SUBSCRIPTIONS.items():
            self.bus.subscribe(topic_filter, lambda m, kind=kind: self.q.put((kind, m)))
        self.bus.start()
        self._worker = threading.Thread(target=self._run, name="hub-worker", daemon=True)
        self._worker.start()
        if not self.bus.wait_connected(10):
            self._set_state("degraded", f"cannot reach the broker ({self.bus.last_refusal or 'no answer'})")
        else:
            self._after_connect()

    def _after_connect(self) -> None:
        # Once per connection: start() and the link callback may both ask.
        if self._served_connect == self.bus.connects:
            return
        self._served_connect = self.bus.connects
        self._publish_retained_state()
        self._republish_unacked_tickets()
        self.bus.announce()
        self._set_state("ready", "serving")

    def _on_link(self, up: bool, why: str) -> None:
        if up:
            if self.state in ("degraded", "starting") and self._worker is not None:
                self.q.put(("reconnected", None))  # type: ignore[arg-type]
        else:
            self._set_state("degraded", f"lost the broker: {why}")

    def stop(self) -> None:
        self._set_state("stopping", "asked to stop")
        self._stop.set()
        if self._worker:
            self._worker.join(5)
        try:
            self._publish_health()
        except Exception:  # the broker may be gone; stopping anyway
            pass
        self.bus.stop()
        if self._db is not None:
            self._db.close()

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT (systemd stop, Ctrl-C), telling systemd
        READY once started and pinging its watchdog while healthy."""
        from restobox.service import Watchdog

        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        wd = Watchdog()
        self.start()
        wd.ready(f"{self.state}: {self.state_reason}")
        wd.alive(*self.health_check())
        every = self.cfg.hub.health_interval_s
        next_health = time.monotonic() + every
        while not done.wait(wd.every(every)):
            wd.alive(*self.health_check())
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + every
                self._publish_health()
        wd.stopping()
        self.stop()

    def health_check(self) -> tuple[bool, str]:
        """Can this process do its work? Its worker is alive and turning, and
        the store database takes its writes. (A lost broker is not this
        process's fault: a restart would not bring it back.)"""
        if self._worker is None or not self._worker.is_alive():
            return False, "the worker thread has stopped"
        stalled = time.monotonic() - self._beat
        if stalled > 30:
            return False, f"the worker has not come round for {stalled:.0f} s"
        if self.state == "degraded" and self.state_reason.startswith("store database"):
            return False, self.state_reason
        return True, f"{self.state}: {self.state_reason}"

    def _set_state(self, state: str, reason: str) -> None:
        if state != self.state or reason != self.state_reason:
            log.info("hub %s -> %s: %s", self.state, state, reason)
        self.state, self.state_reason = state, reason
        if self.bus.connected:
            self._publish_health()

    # =============================================================== worker
    def _run(self) -> None:
        cap = self.cfg.hub.batch_max
        while not self._stop.is_set():
            self._beat = time.monotonic()
            self._maybe_tick()
            try:
                first = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < cap:
                try:
                    batch.append(self.q.get_nowait())
                except queue.Empty:
                    break
            try:
                self._process(batch)
            except Exception:
                log.exception("batch of %d failed", len(batch))

    def _process(self, batch: list[tuple[str, Incoming]]) -> None:
        msgs = [(k, m) for k, m in batch if k != "reconnected"]
        if len(msgs) != len(batch):
            self._after_connect()
        if not msgs:
            return
        b = _Batch(sold_out=set(self.sold_out), board=dict(self.board))
        try:
            with self._db.atomic():
                for kind, m in msgs:
                    self._one(b, kind, m)
        except pw.OperationalError as exc:
            # Nothing of this batch is stored. Ordering devices are told
            # (their outbox sends again); events and commands are kept,
            # unacknowledged, and tried again shortly.
            log.error("store database refused the batch: %s", exc)
            self._set_state("degraded", f"store database error: {exc}")
            if b.menu_before is not None:  # the new menu was not stored: keep pricing with the old
                self.menu, self.idx, self._previous = b.menu_before
            b = _Batch(sold_out=set(self.sold_out), board=dict(self.board))
            retry = []
            for kind, m in msgs:
                self.counters["storage_errors"] += 1
                if kind == "submit":
                    self._reply_rejection(b, m, Rejection("storage_unavailable", str(exc)))
                else:
                    retry.append((kind, m))
            self._stop.wait(0.5)
            for item in retry:
                self.q.put(item)
            msgs = [(k, m) for k, m in msgs if k == "submit"]
        else:
            self.sold_out, self.board = b.sold_out, b.board
            if self.state == "degraded" and self.state_reason.startswith("store database"):
                self._set_state("ready", "store database writable again")
        answers = []
        for o in b.out:
            info = self.bus.publish(o.topic, o.payload, retain=o.retain, correlation=o.correlation)
            if o.correlation is not None or "/reply/" in o.topic:
                answers.append(info)
        if b.board_changed:
            self._publish_board()
        if b.sold_out_changed:
            self._publish_soldout()
        if b.menu_changed:
            self._publish_menu()
        self.counters.update(b.counters)
        for r in b.rejects:
            self.last_errors.append(r)
            self.bus.publish(topics.REJECTS, contract.encode(r))
        # Acknowledge only now: committed (or refused for good), and the
        # answers are at the broker. paho sends an acknowledgement at once but
        # holds a PUBLISH while its in-flight window is full, so without this
        # wait a hub killed here would leave an order acknowledged, committed
        # and never answered; with it, the broker sends the order again and
        # the kiosk gets the original answer.
        self._wait_published(answers, timeout=5.0)
        for _, m in msgs:
            self.bus.ack(m)

    def _wait_published(self, infos, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for info in infos:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                info.wait_for_publish(left)
            except (RuntimeError, ValueError):  # not connected: the broker resends
                break

    def _one(self, b: _Batch, kind: str, m: Incoming) -> None:
        try:
            with self._db.atomic():  # a savepoint: one message's changes
                if kind == "submit":
                    self._submit(b, m)
                elif kind == "station":
                    self._station_event(b, m)
                elif kind == "staff":
                    self._staff(b, m)
                elif kind == "print_state":
                    self._print_state(b, m)
                elif kind == "sync":
                    self._sync(b, m)
                elif kind == "menu":
                    self._menu_update(b, m)
                elif kind == "stock":
                    self._stock_update(b, m)
                elif kind == "loyalty":
                    self._loyalty_query(b, m)
        except Rejection as r:
            if kind == "submit":
                self._reply_rejection(b, m, r)
            else:
                self._note_reject(b, m, r)
                if kind == "staff":
                    self._staff_reply(b, m, r)
        except pw.OperationalError:
            raise
        except Exception as exc:
            log.exception("processing %s failed", m.topic)
            r = Rejection("internal_error", f"{type(exc).__name__}: {exc}")
            if kind == "submit":
                self._reply_rejection(b, m, r)
            else:
                self._note_reject(b, m, r)
                if kind == "staff":
                    self._staff_reply(b, m, r)

    # ============================================================ submission
    def _submit(self, b: _Batch, m: Incoming) -> None:
        t0 = time.perf_counter()
        parsed = contract.parse_topic(m.topic)
        if parsed is None:
            raise Rejection("bad_topic", m.topic)
        device = parsed[1]
        sub = contract.decode(m.payload, OrderSubmit, max_bytes=self.cfg.hub.max_payload_bytes)
        # A kiosk that lost its link sends the same order again from its
        # outbox, marked offline with its provisional number: still the same
        # order, so those two fields are not part of its identity.
        body_hash = hashlib.sha256(contract.encode(
            msgspec.structs.replace(sub, offline=False, provisional_number=""))).hexdigest()
        existing = db.order_hash(self._db, sub.order_id)
        if existing is not None:
            stored_hash, number, bdate = existing
            if stored_hash != body_hash:
                raise Rejection(
                    "duplicate_conflict", f"{sub.order_id} is order {number} of {bdate}",
                    number=str(number),
                )
            row = db.Order.get_by_id(sub.order_id)
            if sub.offline and sub.provisional_number and not row.offline:
                self._mark_offline(b, row, sub.provisional_number)
            reply = self._reply_from_row(row, duplicate=True)
            b.counters["duplicates"] += 1
            self._send_reply(b, m, device, reply)
            return
        # An order placed while the kiosk could not reach the hub was taken
        # under the 86 list the kiosk had: the diner holds its number (and
        # may have paid), so the kitchen gets it even if an item ran out since.
        idx = self._index_for(sub.menu_version)
        claim = self._loyalty_claim(sub)
        priced = price_order(
            sub, idx, frozenset() if sub.offline else b.sold_out,
            max_lines=self.cfg.hub.max_lines, max_qty=self.cfg.hub.max_qty_per_line,
            discount=claim.discount if claim else 0,
        )
        if claim is not None:
            self._check_redemption(claim, priced)
        self._take_stock(b, sub)
        now = self.clock()
        bdate = self.business_date(now)
        number = db.next_order_number(self._db, bdate)
        at = iso(now)
        lines_json = _json.encode(priced.lines).decode()
        db.insert_order(
            self._db, id=sub.order_id, business_date=bdate, number=number, state="accepted",
            channel=sub.channel, service=sub.service, table=sub.table, device=device,
            lang=sub.lang, placed_at=sub.placed_at or at, accepted_at=at, updated_at=at,
            subtotal=priced.subtotal, tax=priced.tax, total=priced.total, currency=priced.currency,
            payment_method=sub.payment.method, payment_status=sub.payment.status,
            payment_reference=sub.payment.reference, offline=sub.offline,
            provisional_number=sub.provisional_number, menu_version=idx.menu.version,
            note=sub.note, body_hash=body_hash, lines=lines_json,
        )
        by_station = split_by_station(priced.lines)
        tickets = []
        rows = []
        for station, items in sorted(by_station.items()):
            t = StationTicket(
                ticket_id=f"{sub.order_id}:{station}", order_id=sub.order_id, number=number,
                station=station, channel=sub.channel, service=sub.service, table=sub.table,
                items=tuple(items), note=sub.note, accepted_at=at,
            )
            if sub.offline:
                t = msgspec.structs.replace(t, provisional_number=sub.provisional_number)
            tickets.append(t)
            rows.append(
                dict(id=t.ticket_id, order=sub.order_id, station=station, state="open",
                     items=_json.encode(t.items).decode(), revision=1, created_at=at, updated_at=at,
                     acked_at=None)
            )
        db.insert_tickets(self._db, rows)
        points = self._points_for(claim, priced) if claim is not None else None
        self._print_for_new_order(b, sub, device, number, bdate, now, priced, tickets, points)
        reply = OrderReply(
            order_id=sub.order_id, status="accepted", number=number, business_date=bdate,
            subtotal=priced.subtotal, tax=priced.tax, total=priced.total, currency=priced.currency,
            lines=priced.lines, accepted_at=at, loyalty=points,
        )
        self._outbox(
            f"{sub.order_id}:accepted", "order.accepted", sub.order_id,
            {"order": msgspec.to_builtins(reply), "device": device, "channel": sub.channel,
             "service": sub.service, "table": sub.table, "payment": msgspec.to_builtins(sub.payment),
             "offline": sub.offline, "provisional_number": sub.provisional_number,
             "menu_version": idx.menu.version},
            at,
        )
        if claim is not None and claim.member:
            self._post_points(b, claim, points, sub.order_id, number, bdate, at)
        self._send_reply(b, m, device, reply)
        for t in tickets:
            b.out.append(_Out(topics.station_ticket(t.station), contract.encode(t)))
        b.out.append(_Out(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
            order_id=sub.order_id, number=number, business_date=bdate, state="accepted",
            stations=OrderProgress("accepted", dict(by_station)).statuses(), at=at,
        ))))
        b.board[sub.order_id] = (number, "accepted")
        b.board_changed = True
        b.counters["accepted"] += 1
        b.counters["accept_us_total"] += int((time.perf_counter() - t0) * 1e6)

    def _index_for(self, version: str) -> MenuIndex:
        """The menu an order is priced by: the one it says it was placed
        under, if that was replaced less than ``menu_grace_s`` ago, else the
        current one (which then refuses a stale total: price_mismatch)."""
        if version and version != self.menu.version:
            prev = self._previous.get(version)
            if prev is not None and time.monotonic() - prev[1] <= self.cfg.hub.menu_grace_s:
                return prev[0]
        return self.idx

    # ============================================================== loyalty
    def _loyalty_claim(self, sub: OrderSubmit) -> "_Claim | None":
        """The order's phone number checked, and the points it redeems
        priced by the hub's own rules (never the device's)."""
        c = sub.loyalty
        if c is None:
            return None
        lc = self.cfg.hub.loyalty
        if not lc.enabled:
            if c.redeem_points:
                raise Rejection("loyalty_disabled", f"{c.redeem_points} points asked")
            return _Claim(member="", masked=loyalty.mask(c.phone), redeem=0, discount=0)
        if not loyalty.valid_phone(c.phone, lc.phone_patterns):
            # the number is not logged: the sentence is enough to act on
            raise Rejection("phone_invalid", "not a phone number this store accepts")
        if c.redeem_points and c.redeem_points < lc.min_redeem_points:
            raise Rejection("points_not_allowed", f"{c.redeem_points} points, the least is {lc.min_redeem_points}",
                            min_points=str(lc.min_redeem_points))
        return _Claim(member=loyalty.member_id(c.phone, self._member_key), masked=loyalty.mask(c.phone),
                      redeem=c.redeem_points, discount=c.redeem_points * lc.point_value_fen)

    def _check_redemption(self, claim: "_Claim", priced) -> None:
        """In the transaction that accepts the order: the share of the order
        and the member's balance, from the ledger as it is now. Of two
        orders spending the same points, the second finds them gone."""
        if not claim.redeem:
            return
        lc = self.cfg.hub.loyalty
        lines_sum = sum(ln.line_total for ln in priced.lines)
        if claim.discount * 100 > lines_sum * lc.max_share_pct:
            raise Rejection("points_not_allowed", f"{claim.discount} fen off {lines_sum}, limit {lc.max_share_pct} %",
                            max_points=str(loyalty.max_redeemable(lines_sum, 10**9, lc.point_value_fen,
                                                                  lc.max_share_pct)))
        balance = db.points_balance(self._db, claim.member)
        if balance < claim.redeem:
            raise Rejection("points_insufficient", f"{claim.redeem} points asked, {balance} held",
                            balance=str(balance))
        claim.balance = balance

    def _points_for(self, claim: "_Claim", priced) -> contract.LoyaltyResult:
        if not claim.member:  # loyalty switched off at the hub
            return contract.LoyaltyResult(member=claim.masked, credited=False)
        if not claim.redeem:
            claim.balance = db.points_balance(self._db, claim.member)
        earned = loyalty.points_earned(priced.total, self.cfg.hub.loyalty.points_per_yuan)
        return contract.LoyaltyResult(member=claim.masked, earned=earned, redeemed=claim.redeem,
                                      discount=priced.discount, balance=claim.balance - claim.redeem + earned)

    def _post_points(self, b: _Batch, claim: "_Claim", res: contract.LoyaltyResult, order_id: str, number: int,
                     bdate: str, at: str) -> None:
        """The ledger rows of an accepted order (a redemption, then what it
        earned, even 0: the order is the member's) and their outbox events."""
        balance = claim.balance
        if res.redeemed:
            balance -= res.redeemed
            self._ledger(b, f"{order_id}:redeem", claim.member, claim.masked, "redeem", -res.redeemed,
                         res.discount, balance, order_id, number, bdate, at)
        balance += res.earned
        self._ledger(b, f"{order_id}:earn", claim.member, claim.masked, "earn", res.earned, 0, balance,
                     order_id, number, bdate, at)

    def _ledger(self, b: _Batch, entry_id: str, member: str, masked: str, kind: str, points: int, discount: int,
                balance: int, order_id: str, number: int, bdate: str, at: str, reverses: str = "") -> None:
        db.PointsEntry.insert(entry_id=entry_id, member=member, member_masked=masked, kind=kind, points=points,
                              discount=discount, balance_after=balance, order_id=order_id, at=at).execute()
        event = {"earn": "loyalty.earned", "redeem": "loyalty.redeemed", "reverse": "loyalty.reversed"}[kind]
        payload = {"entry_id": entry_id, "member": member, "member_masked": masked, "kind": kind,
                   "points": points, "discount": discount, "balance_after": balance, "order_id": order_id,
                   "number": number, "business_date": bdate, "at": at}
        if reverses:
            payload["reverses"] = reverses
        self._outbox(entry_id, event, order_id, payload, at)
        b.counters[f"points.{kind}"] += 1

    def _points_of(self, order_id: str) -> contract.LoyaltyResult | None:
        """An order's points as its reply and receipt show them, from the ledger."""
        rows = list(db.PointsEntry.select().where(db.PointsEntry.order_id == order_id)
                    .order_by(db.PointsEntry.seq))
        own = [r for r in rows if r.kind != "reverse"]
        if not own:
            return None
        redeem = [r for r in own if r.kind == "redeem"]
        return contract.LoyaltyResult(
            member=own[0].member_masked, earned=sum(r.points for r in own if r.kind == "earn"),
            redeemed=-sum(r.points for r in redeem), discount=sum(r.discount for r in redeem),
            balance=own[-1].balance_after)

    def _reverse_points(self, b: _Batch, order: db.Order, now: str) -> None:
        """A voided order gives back what it redeemed and takes back what it
        earned (the balance may go below 0 if those points were spent)."""
        rows = list(db.PointsEntry.select().where(db.PointsEntry.order_id == order.id)
                    .order_by(db.PointsEntry.seq))
        done = {r.entry_id for r in rows}
        for r in rows:
            entry_id = f"{order.id}:reverse-{r.kind}"
            if r.kind == "reverse" or entry_id in done or r.points == 0:
                continue
            balance = db.points_balance(self._db, r.member) - r.points
            self._ledger(b, entry_id, r.member, r.member_masked, "reverse", -r.points, -r.discount, balance,
                         order.id, order.number, order.business_date, now, reverses=r.kind)

    def _loyalty_query(self, b: _Batch, m: Incoming) -> None:
        device, q = self._decode_scoped(m, "loyalty/query", contract.LoyaltyQuery)
        lc = self.cfg.hub.loyalty
        reply = contract.LoyaltyBalance(query_id=q.query_id, ok=True)
        if not lc.enabled:
            reply = contract.LoyaltyBalance(query_id=q.query_id, ok=False, reason="loyalty_disabled",
                                            message=contract.REASONS["loyalty_disabled"])
        elif not loyalty.valid_phone(q.phone, lc.phone_patterns):
            reply = contract.LoyaltyBalance(query_id=q.query_id, ok=False, reason="phone_invalid",
                                            message=contract.REASONS["phone_invalid"])
        else:
            member = loyalty.member_id(q.phone, self._member_key)
            reply = contract.LoyaltyBalance(
                query_id=q.query_id, ok=True, member=loyalty.mask(q.phone),
                balance=db.points_balance(self._db, member), point_value_fen=lc.point_value_fen,
                max_share_pct=lc.max_share_pct, points_per_yuan=lc.points_per_yuan,
                min_redeem_points=lc.min_redeem_points)
        b.out.append(_Out(topics.loyalty_reply(device), contract.encode(reply), correlation=m.correlation))
        b.counters["loyalty_queries"] += 1

    # ================================================================ menus
    def _menu_update(self, b: _Batch, m: Incoming) -> None:
        """A new menu from the chain's cloud (the sync service): stored and
        in use from the next message on, in one step; orders already placed
        under the old one keep its prices for ``menu_grace_s``."""
        msg = contract.decode(m.payload, contract.MenuMessage, max_bytes=4 * 1024 * 1024)
        new = msg.menu
        if new.version == self.menu.version:
            b.counters["menu_repeats"] += 1
            return
        try:
            new.check()
            idx = MenuIndex(new)
        except Exception as exc:  # MenuError and anything the index finds
            raise Rejection("bad_menu", f"menu {new.version}: {exc}") from None
        now = iso(self.clock())
        db.MenuVersion.insert(version=new.version, body=new.to_json().decode(), source="cloud",
                              applied_at=now).on_conflict_replace().execute()
        self._outbox(f"menu:{new.version}:{now}", "menu.applied", None,
                     {"version": new.version, "previous": self.menu.version, "at": now}, now)
        if b.menu_before is None:
            b.menu_before = (self.menu, self.idx, dict(self._previous))
        self._previous[self.menu.version] = (self.idx, time.monotonic())
        while len(self._previous) > 5:
            self._previous.pop(next(iter(self._previous)))
        log.info("menu %s -> %s (%d items)", self.menu.version, new.version, len(new.items))
        self.menu, self.idx = new, idx
        b.menu_changed = True
        b.counters["menu_updates"] += 1

    # ================================================================ stock
    def _take_stock(self, b: _Batch, sub: OrderSubmit) -> None:
        """Count down the portions the order takes; refuse what is not
        there any more (an offline order is served anyway: the diner holds
        its number). What reaches 0 is sold out (86, by "stock")."""
        if not self._stock_limited:
            return
        want: Counter = Counter()
        for ln in sub.lines:
            want[ln.item_id] += ln.qty
            for mod in ln.modifiers:
                want[mod] += ln.qty
        rows = {r.item_id: r for r in db.StockLevel.select().where(db.StockLevel.item_id.in_(list(want)))}
        if not rows:
            return
        if not sub.offline:
            for iid, row in rows.items():
                if row.remaining < want[iid]:
                    raise Rejection("item_unavailable" if iid in self.idx.items else "modifier_unavailable",
                                    f"{iid}: {row.remaining} left, {want[iid]} asked",
                                    **({"item_id": iid} if iid in self.idx.items else {"modifier": iid}))
        now = iso(self.clock())
        for iid, row in rows.items():
            left = row.remaining - want[iid]
            db.StockLevel.update(remaining=max(0, left), updated_at=now).where(db.StockLevel.item_id == iid).execute()
            if left <= 0 and iid not in b.sold_out:
                db.SoldOutItem.insert(item_id=iid, since=now, by="stock").on_conflict_ignore().execute()
                b.sold_out.add(iid)
                b.sold_out_changed = True
                self._outbox(f"stock:{iid}:{now}", "menu.eighty_six", None,
                             {"item_id": iid, "by": "stock", "at": now}, now)

    def _stock_update(self, b: _Batch, m: Incoming) -> None:
        """New counts from the chain's cloud: all of them replace the old in
        one step; what has none left is sold out, what has some again is back
        (unless staff switched it off themselves)."""
        msg = contract.decode(m.payload, contract.StockLevels, max_bytes=1024 * 1024)
        current = db.StockLevel.select(db.StockLevel.version).limit(1).scalar()
        if current == msg.version:
            b.counters["stock_repeats"] += 1
            return
        unknown = [i for i in msg.items if i not in self.idx.items and i not in self.idx.options]
        if unknown:
            raise Rejection("unknown_item", f"stock {msg.version}: not on the menu: {', '.join(sorted(unknown)[:5])}")
        now = iso(self.clock())
        db.StockLevel.delete().execute()
        if msg.items:
            db.StockLevel.insert_many([
                dict(item_id=i, remaining=n, version=msg.version, updated_at=now) for i, n in msg.items.items()
            ]).execute()
        by_stock = {r.item_id for r in db.SoldOutItem.select().where(db.SoldOutItem.by == "stock")}
        for iid, n in msg.items.items():
            if n <= 0 and iid not in b.sold_out:
                db.SoldOutItem.insert(item_id=iid, since=now, by="stock").on_conflict_ignore().execute()
                b.sold_out.add(iid)
            elif n > 0 and iid in by_stock:
                db.SoldOutItem.delete().where(db.SoldOutItem.item_id == iid).execute()
                b.sold_out.discard(iid)
        for iid in by_stock - set(msg.items):  # no limit any more
            db.SoldOutItem.delete().where(db.SoldOutItem.item_id == iid).execute()
            b.sold_out.discard(iid)
        b.sold_out_changed = True
        self._stock_limited = bool(msg.items)
        self._outbox(f"stock:{msg.version}:{now}", "stock.applied", None,
                     {"version": msg.version, "items": len(msg.items), "at": now}, now)
        b.counters["stock_updates"] += 1
        log.info("stock %s: %d items counted", msg.version, len(msg.items))

    def _publish_menu(self) -> None:
        self.bus.publish(topics.MENU, contract.encode(
            contract.MenuMessage(menu=self.menu, at=iso(self.clock()))), retain=True)

    def business_date(self, now: datetime) -> str:
        """Orders before the day start (e.g. 04:00) belong to the previous day."""
        return self.cfg.store.business_date(now)

    def _reply_from_row(self, row: db.Order, duplicate: bool) -> OrderReply:
        return OrderReply(
            order_id=row.id, status="accepted", number=row.number, business_date=row.business_date,
            subtotal=row.subtotal, tax=row.tax, total=row.total, currency=row.currency,
            lines=_lines_dec.decode(row.lines), duplicate=duplicate, accepted_at=row.accepted_at,
            loyalty=self._points_of(row.id),
        )

    def _send_reply(self, b: _Batch, m: Incoming, device: str, reply: OrderReply) -> None:
        # Always the device's own reply topic: a response topic chosen by the
        # client could otherwise make the hub publish anywhere (MQTT 5 §4.10).
        b.out.append(_Out(topics.order_reply(device), contract.encode(reply), correlation=m.correlation))

    def _reply_rejection(self, b: _Batch, m: Incoming, r: Rejection) -> None:
        parsed = contract.parse_topic(m.topic)
        device = parsed[1] if parsed else ""
        order_id = _order_id_of(m.payload)
        self._note_reject(b, m, r, device=device, order_id=order_id)
        if not device:
            return
        detail = {"detail": r.detail, **r.extra} if r.detail else dict(r.extra)
        reply = OrderReply(order_id=order_id, status="rejected", reason=r.reason, message=r.words, detail=detail)
        b.out.append(_Out(topics.order_reply(device), contract.encode(reply), correlation=m.correlation))

    def _note_reject(self, b: _Batch, m: Incoming, r: Rejection, device: str = "", order_id: str = "") -> None:
        if not device:
            parsed = contract.parse_topic(m.topic)
            device = parsed[1] if parsed else ""
        b.counters[f"rejected.{r.reason}"] += 1
        b.counters["rejected"] += 1
        log.warning("refused %s from %s: %s", m.topic, device or "?", r)
        b.rejects.append(
            RejectNotice(reason=r.reason, message=r.words, topic=m.topic, device=device,
                         order_id=order_id, at=iso(self.clock()))
        )

    # ======================================================== station events
    def _decode_scoped(self, m: Incoming, kind: str, type_):
        """(device or station id from the topic, decoded message)."""
        parsed = contract.parse_topic(m.topic)
        if parsed is None or parsed[0] != kind:
            raise Rejection("bad_topic", m.topic)
        return parsed[1], contract.decode(m.payload, type_, max_bytes=self.cfg.hub.max_payload_bytes)

    @staticmethod
    def _progress(order: db.Order, tickets: dict[str, db.Ticket]) -> OrderProgress:
        return OrderProgress(order.state, {s: _items_dec.decode(t.items) for s, t in tickets.items()},
                             {s for s, t in tickets.items() if t.acked_at})

    def _station_event(self, b: _Batch, m: Incoming) -> None:
        station, ev = self._decode_scoped(m, "station/event", StationEvent)
        if db.ProcessedMessage.get_or_none(db.ProcessedMessage.id == ev.event_id):
            b.counters["duplicate_events"] += 1
            return
        order = db.Order.get_or_none(db.Order.id == ev.order_id)
        if order is None:
            raise Rejection("unknown_order", ev.order_id)
        now = iso(self.clock())
        db.ProcessedMessage.insert(id=ev.event_id, at=now).execute()
        tickets = {t.station: t for t in db.Ticket.select().where(db.Ticket.order == order.id)}
        if station == contract.EXPO_STATION:
            self._expo_event(b, order, tickets, ev, now)
            return
        t = tickets.get(station)
        if t is None:
            raise Rejection("not_on_station", f"{ev.order_id} at {station}", station=station)
        if ev.kind == "ack":
            if t.acked_at is None:
                db.Ticket.update(acked_at=now).where(db.Ticket.id == t.id).execute()
                t.acked_at = now
                # the expo shows which stations have the ticket
                prog = self._progress(order, tickets)
                b.out.append(_Out(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
                    order_id=order.id, number=order.number, business_date=order.business_date,
                    state=order.state, stations=prog.statuses(), at=now))))
            b.counters["acks"] += 1
            return
        prog = self._progress(order, tickets)
        before = order.state
        if ev.kind == "bump":
            changed = prog.bump(station)
        elif ev.kind == "item_bump":
            if ev.line is None:
                raise Rejection("bad_line", "item_bump needs a line")
            changed = prog.bump_line(station, ev.line)
        else:  # recall
            changed = prog.recall(station, ev.line)
        if not changed and prog.state == before:
            return
        items = prog.tickets[station]
        tstate = "done" if prog.station_done(station) else "open"
        db.Ticket.update(
            items=_json.encode(items).decode(), state=tstate, revision=t.revision + 1, updated_at=now,
        ).where(db.Ticket.id == t.id).execute()
        self._outbox(f"{ev.event_id}", f"station.{ev.kind}", order.id,
                     {"order_id": order.id, "station": station, "line": ev.line, "device": ev.device, "at": now}, now)
        b.out.append(_Out(topics.station_ticket(station), contract.encode(
            self._ticket_msg(order, t, items, tstate, t.revision + 1))))
        self._order_changed(b, order, prog.state, prog, now)
        b.counters[f"events.{ev.kind}"] += 1

    def _sync(self, b: _Batch, m: Incoming) -> None:
        station, req = self._decode_scoped(m, "station/sync", contract.SyncRequest)
        q = (db.Ticket.select(db.Ticket, db.Order).join(db.Order)
             .where(db.Order.state.in_(sorted(OPEN_STATES))))
        if station != contract.EXPO_STATION:
            q = q.where(db.Ticket.station == station, db.Ticket.state == "open")
        # the expo follows whole orders: done stations of open orders too
        n = 0
        for t in q:
            b.out.append(_Out(topics.station_ticket(t.station), contract.encode(
                self._ticket_msg(t.order, t, _items_dec.decode(t.items), t.state, t.revision))))
            n += 1
        log.info("%s asked for %s's open tickets: sent %d", req.device, station, n)
        b.counters["syncs"] += 1

    def _expo_event(self, b: _Batch, order: db.Order, tickets: dict, ev: StationEvent, now: str) -> None:
        prog = self._progress(order, tickets)
        if ev.kind == "ack":
            return
        if ev.kind == "bump":
            prog.complete()
        elif ev.kind == "recall":
            prog.recall_completed()
        else:
            raise Rejection("bad_transition", "expo bumps whole orders")
        self._outbox(f"{ev.event_id}", f"expo.{ev.kind}", order.id,
                     {"order_id": order.id, "device": ev.device, "at": now}, now)
        self._order_changed(b, order, prog.state, prog, now)
        b.counters[f"events.expo_{ev.kind}"] += 1

    def _order_changed(self, b: _Batch, order: db.Order, state: str, prog: OrderProgress, now: str,
                       reason: str | None = None) -> None:
        if state != order.state:
            db.Order.update(state=state, updated_at=now).where(db.Order.id == order.id).execute()
            self._outbox(f"{order.id}:{state}:{now}", f"order.{state}", order.id,
                         {"order_id": order.id, "number": order.number, "state": state,
                          "reason": reason, "at": now}, now)
        b.out.append(_Out(topics.ORDER_UPDATE, contract.encode(OrderUpdate(
            order_id=order.id, number=order.number, business_date=order.business_date,
            state=state, stations=prog.statuses(), reason=reason, at=now))))
        if state in OPEN_STATES:
            new = (order.number, state)
            if b.board.get(order.id) != new:
                b.board[order.id] = new
                b.board_changed = True
        elif order.id in b.board:
            del b.board[order.id]
            b.board_changed = True

    def _ticket_msg(self, order: db.Order, t: db.Ticket, items, state: str, revision: int) -> StationTicket:
        return StationTicket(
            ticket_id=t.id, order_id=order.id, number=order.number, station=t.station,
            channel=order.channel, service=order.service, table=order.table, items=tuple(items),
            note=order.note, accepted_at=order.accepted_at, state=state, revision=revision,
            provisional_number=order.provisional_number if order.offline else "",
        )

    def _mark_offline(self, b: _Batch, order: db.Order, provisional: str) -> None:
        """The kiosk gave up waiting and showed the diner a provisional
        number, but its first copy of the order reached the hub: record the
        number and show it on the kitchen's tickets, so the diner's number
        and the kitchen's match."""
        now = iso(self.clock())
        db.Order.update(offline=True, provisional_number=provisional, updated_at=now).where(
            db.Order.id == order.id).execute()
        order.offline, order.provisional_number = True, provisional
        for t in db.Ticket.select().where((db.Ticket.order == order.id) & (db.Ticket.state == "open")):
            db.Ticket.update(revision=t.revision + 1, updated_at=now).where(db.Ticket.id == t.id).execute()
            b.out.append(_Out(topics.station_ticket(t.station), contract.encode(
                self._ticket_msg(order, t, _items_dec.decode(t.items), t.state, t.revision + 1))))
        b.counters["marked_offline"] += 1

    # ========================================================= staff commands
    def _staff(self, b: _Batch, m: Incoming) -> None:
        device, cmd = self._decode_scoped(m, "staff/command", StaffCommand)
        now = iso(self.clock())
        reply = StaffReply(command_id=cmd.command_id, ok=True)
        if db.ProcessedMessage.get_or_none(db.ProcessedMessage.id == cmd.command_id) is None:
            if cmd.kind == "void":
                reply.order_id = self._void(b, cmd, device, now)
            elif cmd.kind == "reprint":
                reply.order_id, reply.job_id = self._reprint(b, cmd, now)
            elif cmd.kind == "test_print":
                reply.job_id = self._test_print(b, cmd, now)
            elif cmd.kind == "print_report":
                reply.job_id = self._print_report(b, cmd, now)
            else:
                self._eighty_six(b, cmd, device, now)
            db.ProcessedMessage.insert(id=cmd.command_id, at=now).execute()
        b.out.append(_Out(topics.staff_reply(device), contract.encode(reply), correlation=m.correlation))

    def _staff_reply(self, b: _Batch, m: Incoming, r: Rejection) -> None:
        parsed = contract.parse_topic(m.topic)
        if not parsed:
            return
        cid = _field_of(m.payload, "command_id")
        b.out.append(_Out(topics.staff_reply(parsed[1]), contract.encode(
            StaffReply(command_id=cid, ok=False, reason=r.reason, message=r.words)), correlation=m.correlation))

    def _order_for(self, cmd: StaffCommand) -> db.Order:
        """The order a command names: by id, or by today's order number."""
        if cmd.order_id:
            order = db.Order.get_or_none(db.Order.id == cmd.order_id)
        elif cmd.order_number:
            order = (db.Order.select().where(db.Order.business_date == self.business_date(self.clock()),
                                             db.Order.number == cmd.order_number).first())
        else:
            raise Rejection("bad_schema", f"{cmd.kind} needs order_id or order_number")
        if order is None:
            raise Rejection("unknown_order", cmd.order_id or f"number {cmd.order_number} today")
        return order

    def _void(self, b: _Batch, cmd: StaffCommand, device: str, now: str) -> str:
        order = self._order_for(cmd)
        tickets = {t.station: t for t in db.Ticket.select().where(db.Ticket.order == order.id)}
        prog = self._progress(order, tickets)
        prog.void()
        for t in tickets.values():
            db.Ticket.update(state="voided", revision=t.revision + 1, updated_at=now).where(
                db.Ticket.id == t.id).execute()
            b.out.append(_Out(topics.station_ticket(t.station), contract.encode(
                self._ticket_msg(order, t, prog.tickets[t.station], "voided", t.revision + 1))))
        self._order_changed(b, order, "voided", prog, now, reason=cmd.reason or f"voided by {device}")
        self._reverse_points(b, order, now)
        b.counters["voided"] += 1
        return order.id

    def _eighty_six(self, b: _Batch, cmd: StaffCommand, device: str, now: str) -> None:
        iid = cmd.item_id or ""
        if iid not in self.idx.items and iid not in self.idx.options:
            raise Rejection("unknown_item", repr(iid))
        if cmd.kind == "eighty_six":
            db.SoldOutItem.insert(item_id=iid, since=now, by=device).on_conflict_ignore().execute()
            b.sold_out.add(iid)
        else:
            db.SoldOutItem.delete().where(db.SoldOutItem.item_id == iid).execute()
            b.sold_out.discard(iid)
        self._outbox(f"{cmd.command_id}", f"menu.{cmd.kind}", None,
                     {"item_id": iid, "by": device, "at": now}, now)
        b.sold_out_changed = True

    # ============================================================= printing
    def _local(self, when: datetime, seconds: bool = False) -> str:
        return when.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def _station_name(self, station: str) -> contract.Words:
        st = self.idx.stations.get(station)
        return contract.Words(st.name.zh, st.name.en) if st else contract.Words(station, station)

    def _receipt_data(self, order: db.Order | None, **direct) -> contract.ReceiptData:
        s = self.cfg.store
        header = contract.StoreHeader(name_zh=s.name_zh, name_en=s.name_en, address=s.address,
                                      phone=s.phone, tax_id=s.tax_id)
        if order is not None:
            direct = dict(
                order_id=order.id, number=order.number, business_date=order.business_date,
                accepted_at=self._local(datetime.fromisoformat(order.accepted_at)), channel=order.channel,
                service=order.service, table=order.table, lang=order.lang, lines=_lines_dec.decode(order.lines),
                subtotal=order.subtotal, tax=order.tax, total=order.total, currency=order.currency,
                payment_method=order.payment_method, payment_status=order.payment_status,
                payment_reference=order.payment_reference, offline=order.offline,
                provisional_number=order.provisional_number, note=order.note,
                loyalty=self._points_of(order.id),
            )
        return contract.ReceiptData(store=header, tax_rate_bp=self.menu.tax_rate_bp,
                                    tax_inclusive=self.menu.tax_inclusive, **direct)

    def _request_print(self, b: _Batch, job: contract.PrintJob, at: str) -> None:
        payload = contract.encode(job)
        db.PrintRequest.insert(job_id=job.job_id, printer=job.printer, kind=job.kind, order_id=job.order_id,
                               payload=payload.decode(), created_at=at).on_conflict_ignore().execute()
        b.out.append(_Out(topics.PRINT_JOB, payload))
        b.counters[f"print_requests.{job.kind}"] += 1

    def _print_for_new_order(self, b: _Batch, sub: OrderSubmit, device: str, number: int, bdate: str,
                             now: datetime, priced, tickets: list[StationTicket],
                             points: contract.LoyaltyResult | None = None) -> None:
        routes = self.cfg.hub.printing
        at = iso(now)
        for t in tickets:
            sp = routes.stations.get(t.station)
            if sp is not None and sp.mode == "always":
                self._request_print(b, contract.PrintJob(
                    job_id=f"{sub.order_id}:kitchen:{sp.printer}:{t.station}", printer=sp.printer,
                    kind="kitchen", order_id=sub.order_id,
                    kitchen=contract.KitchenData(station_name=self._station_name(t.station), ticket=t,
                                                 printed_at=self._local(now, seconds=True))), at)
        printer = routes.receipt_printers.get(device)
        if printer is not None:
            data = self._receipt_data(
                None, order_id=sub.order_id, number=number, business_date=bdate,
                accepted_at=self._local(now), channel=sub.channel, service=sub.service, table=sub.table,
                lang=sub.lang, lines=priced.lines, subtotal=priced.subtotal, tax=priced.tax,
                total=priced.total, currency=priced.currency, payment_method=sub.payment.method,
                payment_status=sub.payment.status, payment_reference=sub.payment.reference,
                offline=sub.offline, provisional_number=sub.provisional_number, note=sub.note, loyalty=points)
            self._request_print(b, contract.PrintJob(
                job_id=f"{sub.order_id}:receipt:{printer}", printer=printer, kind="receipt",
                order_id=sub.order_id, receipt=data), at)

    def _print_state(self, b: _Batch, m: Incoming) -> None:
        st = contract.decode(m.payload, contract.PrintJobState, max_bytes=self.cfg.hub.max_payload_bytes)
        now = iso(self.clock())
        (db.PrintRequest.update(confirmed_at=pw.fn.COALESCE(db.PrintRequest.confirmed_at, now),
                                state=st.state, reason=st.reason)
         .where(db.PrintRequest.job_id == st.job_id).execute())
        self._print_sent.pop(st.job_id, None)

    def _reprint(self, b: _Batch, cmd: StaffCommand, now: str) -> tuple[str, str]:
        order = self._order_for(cmd)
        routes = self.cfg.hub.printing
        if cmd.item_id:  # a station's kitchen ticket
            sp = routes.stations.get(cmd.item_id)
            t = db.Ticket.get_or_none(db.Ticket.id == f"{order.id}:{cmd.item_id}")
            if sp is None or t is None:
                raise Rejection("unknown_printer", f"no kitchen printer or ticket for {cmd.item_id}")
            printer, kind = sp.printer, "kitchen"
            data = {"kitchen": contract.KitchenData(
                station_name=self._station_name(t.station),
                ticket=self._ticket_msg(order, t, _items_dec.decode(t.items), t.state, t.revision),
                printed_at=self._local(self.clock(), seconds=True))}
        else:
            printer = routes.receipt_printers.get(order.device)
            if printer is None:
                raise Rejection("unknown_printer", f"no receipt printer for {order.device}")
            kind, data = "receipt", {"receipt": self._receipt_data(order)}
        n = db.PrintRequest.select().where(db.PrintRequest.order_id == order.id,
                                           db.PrintRequest.kind == kind,
                                           db.PrintRequest.job_id.contains(":reprint-")).count() + 1
        suffix = f":{cmd.item_id}" if cmd.item_id else ""
        job_id = f"{order.id}:{kind}:{printer}{suffix}:reprint-{n}"
        self._request_print(b, contract.PrintJob(job_id=job_id, printer=printer, kind=kind,
                                                 order_id=order.id, reprint=True, **data), now)
        return order.id, job_id

    def _test_print(self, b: _Batch, cmd: StaffCommand, now: str) -> str:
        """A test page; whether the printer exists is the printing service's
        to say (it answers ``unknown_printer`` on print/state)."""
        printer = cmd.item_id or ""
        if not contract._DEVICE_RE.fullmatch(printer):
            raise Rejection("unknown_printer", repr(printer))
        job_id = f"test:{printer}:{cmd.command_id}"
        self._request_print(b, contract.PrintJob(job_id=job_id, printer=printer, kind="test"), now)
        return job_id

    def _print_report(self, b: _Batch, cmd: StaffCommand, now: str) -> str:
        """The day's summary a staff tool made from the store's databases
        (``restobox report --print``): printed as it is, like a test page."""
        printer = cmd.item_id or ""
        if not contract._DEVICE_RE.fullmatch(printer):
            raise Rejection("unknown_printer", repr(printer))
        if cmd.report is None:
            raise Rejection("bad_schema", "print_report needs its report")
        job_id = f"report:{printer}:{cmd.command_id}"
        self._request_print(b, contract.PrintJob(job_id=job_id, printer=printer, kind="report",
                                                 report=cmd.report), now)
        return job_id

    def _maybe_tick(self) -> None:
        t = time.monotonic()
        if t - self._last_tick < 1.0:
            return
        self._last_tick = t
        try:
            self._resend_print_requests(t)
            self._fallback_prints()
        except pw.PeeweeException:
            log.exception("periodic print checks failed")

    def _resend_print_requests(self, t: float) -> None:
        """A request the printing service has not confirmed is sent again
        (it deduplicates by job id)."""
        cutoff = iso(self.clock() - timedelta(seconds=3))
        for r in (db.PrintRequest.select().where(db.PrintRequest.confirmed_at.is_null(),
                                                 db.PrintRequest.created_at < cutoff).limit(500)):
            if t - self._print_sent.get(r.job_id, 0.0) >= 5.0:
                self._print_sent[r.job_id] = t
                self.bus.publish(topics.PRINT_JOB, r.payload.encode())

    def _fallback_prints(self) -> None:
        """Invariant 7: a ticket no kitchen screen acknowledged in time is
        printed at the station's printer, and staff are told."""
        stations = {s: c for s, c in self.cfg.hub.printing.stations.items() if c.mode == "fallback"}
        if not stations:
            return
        now = self.clock()
        b = _Batch(sold_out=self.sold_out, board=self.board)
        with self._db.atomic():
            for station, sp in stations.items():
                cutoff = iso(now - timedelta(seconds=sp.fallback_after_s))
                q = (db.Ticket.select(db.Ticket, db.Order).join(db.Order)
                     .where(db.Ticket.station == station, db.Ticket.acked_at.is_null(),
                            db.Ticket.state == "open", db.Ticket.created_at < cutoff,
                            db.Order.state.in_(sorted(OPEN_STATES))))
                for t in q:
                    job_id = f"{t.order.id}:kitchen:{sp.printer}:{station}"
                    if db.PrintRequest.get_or_none(db.PrintRequest.job_id == job_id):
                        continue
                    self._request_print(b, contract.PrintJob(
                        job_id=job_id, printer=sp.printer, kind="kitchen", order_id=t.order.id,
                        kitchen=contract.KitchenData(
                            station_name=self._station_name(station),
                            ticket=self._ticket_msg(t.order, t, _items_dec.decode(t.items), t.state, t.revision),
                            printed_at=self._local(now, seconds=True), fallback=True)), iso(now))
                    log.warning("ticket %s was not acknowledged in %.0f s; printing it at %s",
                                t.id, sp.fallback_after_s, sp.printer)
                    b.out.append(_Out(topics.ALERTS, contract.encode(contract.Alert(
                        source=self.cfg.device.id, code="ticket_not_acknowledged",
                        message=contract.REASONS["ticket_not_acknowledged"], severity="warning",
                        subject=f"{station} #{t.order.number}", at=iso(now)))))
        for o in b.out:
            self.bus.publish(o.topic, o.payload)
        self.counters.update(b.counters)

    # ============================================================= outbox
    def _outbox(self, event_id: str, kind: str, order_id: str | None, payload: dict, at: str) -> None:
        db.insert_outbox(self._db, event_id=event_id, kind=kind, order_id=order_id,
                         payload=_json.encode(payload).decode(), created_at=at)

    # ===================================================== retained state
    def _load(self) -> None:
        latest = db.MenuVersion.select().order_by(db.MenuVersion.applied_at.desc()).first()
        if latest is not None and latest.source != "config":
            try:
                menu = Menu.from_json(latest.body)
                self.menu, self.idx = menu, MenuIndex(menu)
                log.info("menu %s from the store database (received %s)", menu.version, latest.applied_at)
            except Exception:
                log.exception("the stored menu %s cannot be used; keeping %s", latest.version, self.menu.version)
        elif latest is None or latest.version != self.menu.version:
            db.MenuVersion.insert(version=self.menu.version, body=self.menu.to_json().decode(), source="config",
                                  applied_at=iso(self.clock())).on_conflict_replace().execute()
        self.sold_out = {r.item_id for r in db.SoldOutItem.select()}
        self._stock_limited = db.StockLevel.select().exists()
        self.board = {
            o.id: (o.number, o.state)
            for o in db.Order.select(db.Order.id, db.Order.number, db.Order.state).where(
                db.Order.state.in_(sorted(OPEN_STATES)))
        }
        log.info("loaded %d open orders, %d sold-out items", len(self.board), len(self.sold_out))

    def _publish_retained_state(self) -> None:
        self._publish_menu()
        self._publish_soldout()
        self._publish_board()

    def _publish_soldout(self) -> None:
        self.bus.publish(topics.SOLDOUT, contract.encode(
            SoldOut(items=tuple(sorted(self.sold_out)), at=iso(self.clock()))), retain=True)

    def _publish_board(self) -> None:
        prep = sorted(n for n, s in self.board.values() if s in ("accepted", "in_progress"))
        ready = sorted(n for n, s in self.board.values() if s == "ready")
        self.bus.publish(topics.BOARD, contract.encode(Board(
            business_date=self.business_date(self.clock()), preparing=tuple(prep), ready=tuple(ready),
            at=iso(self.clock()))), retain=True)

    def _republish_unacked_tickets(self) -> None:
        """Tickets no KDS has acknowledged may have died with a previous hub
        process before reaching the broker; send them again (a KDS shows each
        ticket id once)."""
        q = (db.Ticket.select(db.Ticket, db.Order).join(db.Order)
             .where(db.Ticket.acked_at.is_null(), db.Ticket.state == "open",
                    db.Order.state.in_(sorted(OPEN_STATES))))
        n = 0
        for t in q:
            self.bus.publish(topics.station_ticket(t.station), contract.encode(
                self._ticket_msg(t.order, t, _items_dec.decode(t.items), t.state, t.revision)))
            n += 1
        if n:
            log.info("re-sent %d unacknowledged tickets", n)

    def _publish_health(self) -> None:
        c = dict(self.counters)
        accepted = c.get("accepted", 0)
        details = {
            "open_orders": len(self.board),
            "sold_out": len(self.sold_out),
            "queue": self.q.qsize(),
            "menu_version": self.menu.version,
            "mean_accept_ms": round(c.get("accept_us_total", 0) / accepted / 1000, 3) if accepted else None,
            **disk_details(self.cfg.hub.database),
        }
        if self._db is not None and self.state != "stopping":
            try:
                # how far the cloud has it is the sync service's (its health: backlog, cursor)
                details["outbox_last_seq"] = db.Outbox.select(pw.fn.MAX(db.Outbox.seq)).scalar() or 0
                details["print_unconfirmed"] = (db.PrintRequest.select()
                                                .where(db.PrintRequest.confirmed_at.is_null()).count())
            except pw.PeeweeException:
                pass
        h = Health(
            device=self.cfg.device.id, role="hub", state=self.state, at=iso(self.clock()),
            reason=self.state_reason, counters={k: v for k, v in c.items() if k != "accept_us_total"},
            details=details, last_errors=tuple(self.last_errors)[-5:],
        )
        self.bus.publish(topics.health(self.cfg.device.id), contract.encode(h), retain=True)


def _order_id_of(payload: bytes) -> str:
    return _field_of(payload, "order_id")


def _field_of(payload: bytes, name: str) -> str:
    """Best effort: the id in a message that failed to decode, for the reply."""
    return contract.peek(payload, name)
