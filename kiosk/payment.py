"""Payment at the kiosk: terminals behind one interface, and the payment state
machine that never charges a diner twice.

Invariant 5 (docs/payment-terminal.md): a payment intent with its idempotency
key (the intent id) is committed to a :class:`PaymentIntentStore` BEFORE the
terminal is asked to charge; after a timeout, an unreadable answer or a crash,
the terminal is QUERIED for that intent's outcome and never asked to charge it
again. A new charge always has a new intent id.

- :class:`PaymentTerminal` is the interface: ``start`` (send the charge),
  ``poll`` (non-blocking: the result once it is there), ``query`` and
  ``cancel`` (ask about one intent; wait at most ``timeout_s``).
- :class:`SerialTerminal` speaks the line protocol of docs/payment-terminal.md
  on a serial line (a card / QR-code terminal, or ``restobox.dev.terminal_sim`` on a
  pty). Every reply is validated; a garbled one becomes a reason code.
- :class:`CounterPayment`: "pay at the counter", the order is placed unpaid.
- :class:`PaymentFlow` drives one intent through
  ``intent_recorded -> waiting_terminal -> approved | declined | timed_out ->
  querying -> approved | declined | cancelled | unknown`` and says, in zh and
  en, what happened and what the diner can do next.

Threads: a flow and its terminal belong to one worker thread of the app (never
the UI thread: ``query`` and ``cancel`` wait for the terminal). The view model
only sees :class:`PaymentUpdate` values.

The app persists intents in the kiosk's SQLite (WAL, ``synchronous=FULL``)
behind :class:`PaymentIntentStore`; :class:`InMemoryIntentStore` is for tests.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from restobox.contract import SubmitPayment, Words

log = logging.getLogger("restobox.kiosk.payment")

Clock = Callable[[], float]

# =========================================================================
# The line protocol (docs/payment-terminal.md)
# =========================================================================

MAX_LINE = 120
"""Longest line either side sends, "*HH" and "\\n" included."""

INTENT_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
AMOUNT_RE = re.compile(r"[1-9][0-9]{0,8}")
REF_RE = re.compile(r"[A-Za-z0-9-]{1,32}")
REASON_RE = re.compile(r"[a-z0-9_]{1,32}")
_BODY_RE = re.compile(rb"[\x20-\x29\x2b-\x7e]+")  # printable ASCII without "*"


def checksum(body: bytes) -> int:
    """XOR of every byte of the body (as NMEA 0183 does)."""
    c = 0
    for b in body:
        c ^= b
    return c


def frame(body: str) -> bytes:
    """``"PAY pi-1 3200"`` -> ``b"PAY pi-1 3200*3A\\n"``."""
    raw = body.encode("ascii")
    if not _BODY_RE.fullmatch(raw):
        raise ValueError(f"not a protocol line body: {body!r}")
    line = raw + b"*%02X\n" % checksum(raw)
    if len(line) > MAX_LINE:
        raise ValueError(f"line longer than {MAX_LINE} bytes: {body!r}")
    return line


def unframe(line: bytes) -> tuple[str | None, str]:
    """The body of one received line (without its "\\n"), or (None, reason code).

    Reason codes: line_too_long, not_ascii, no_checksum, bad_checksum.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) + 1 > MAX_LINE:
        return None, "line_too_long"
    body, star, hh = line.rpartition(b"*")
    if not star:
        return None, "no_checksum" if _BODY_RE.fullmatch(line) else "not_ascii"
    if not body or not _BODY_RE.fullmatch(body):
        return None, "not_ascii"
    if len(hh) != 2 or not re.fullmatch(rb"[0-9A-F]{2}", hh) or int(hh, 16) != checksum(body):
        return None, "bad_checksum"
    return body.decode("ascii"), ""


Outcome = Literal[
    "approved",   # charged: amount and auth_ref set
    "declined",   # not charged: reason says why (terminal's reason token)
    "pending",    # the terminal is still working on it (the diner is at the terminal)
    "cancelled",  # stopped before any charge
    "no_record",  # the terminal never saw this intent id: not charged
    "error",      # ERR line: reason is the terminal's code
    "garbled",    # a line that could not be read: reason says why
    "no_reply",   # nothing within timeout_s
    "unpaid",     # pay at the counter
    "pong",       # answer to PING
]


@dataclass(frozen=True, slots=True)
class TerminalReply:
    """One answer of a terminal, validated. ``verb`` is the line's first word
    (``OK``: the result of PAY; ``STATUS``: an answer to QUERY or CANCEL)."""

    outcome: Outcome
    intent_id: str = ""
    amount: int | None = None
    auth_ref: str = ""
    reason: str = ""
    verb: str = ""
    raw: bytes = b""


def _garbled(reason: str, raw: bytes) -> TerminalReply:
    return TerminalReply("garbled", reason=reason, raw=raw)


def parse_reply(line: bytes) -> TerminalReply:
    """Decode one line from the terminal (without its "\\n"). Never raises:
    anything that is not a valid reply is ``outcome="garbled"`` with a reason
    (line_too_long, not_ascii, no_checksum, bad_checksum, bad_format,
    unknown_reply)."""
    body, why = unframe(line)
    if body is None:
        return _garbled(why, line)
    t = body.split(" ")
    verb = t[0]

    def bad() -> TerminalReply:
        return _garbled("bad_format", line)

    if verb == "PONG":
        return TerminalReply("pong", verb=verb, raw=line) if len(t) == 1 else bad()
    if verb not in ("OK", "STATUS", "ERR"):
        return _garbled("unknown_reply", line)
    if len(t) < 3:
        return bad()
    intent, word = t[1], t[2]
    if verb == "ERR":
        if len(t) != 3 or not (intent == "-" or INTENT_RE.fullmatch(intent)) or not REASON_RE.fullmatch(word):
            return bad()
        return TerminalReply("error", intent_id="" if intent == "-" else intent, reason=word, verb=verb, raw=line)
    if not INTENT_RE.fullmatch(intent):
        return bad()
    if word == "APPROVED":
        if len(t) != 5 or not AMOUNT_RE.fullmatch(t[3]) or not REF_RE.fullmatch(t[4]):
            return bad()
        return TerminalReply("approved", intent, int(t[3]), t[4], verb=verb, raw=line)
    if word == "DECLINED":
        if len(t) != 4 or not REASON_RE.fullmatch(t[3]):
            return bad()
        return TerminalReply("declined", intent, reason=t[3], verb=verb, raw=line)
    if verb == "STATUS" and len(t) == 3:
        simple = {"PENDING": "pending", "CANCELLED": "cancelled", "UNKNOWN": "no_record"}.get(word)
        if simple is not None:
            return TerminalReply(simple, intent, verb=verb, raw=line)  # type: ignore[arg-type]
    return bad()


# =========================================================================
# Terminals
# =========================================================================


class TerminalUnavailable(Exception):
    """The terminal cannot be opened: nothing was sent, nobody was charged."""


class TerminalError(Exception):
    """Sending to the terminal failed part-way: a charge may have been sent."""


class PaymentTerminal(ABC):
    """A way to take a payment. One intent at a time; one thread."""

    method: Literal["counter", "card", "qr"] = "card"
    timeout_s: float = 3.0
    immediate = False
    """True when ``start`` settles the payment at once (no diner at a terminal)."""

    @abstractmethod
    def start(self, intent_id: str, amount: int) -> None:
        """Ask for ``amount`` fen under ``intent_id``. Returns at once.

        Raises TerminalUnavailable (nothing sent) or TerminalError (maybe sent).
        """

    @abstractmethod
    def poll(self) -> TerminalReply | None:
        """Non-blocking: the started intent's result once it arrived (also kept
        in ``result``), or a ``garbled`` reply if an unreadable line came
        instead, else None."""

    result: TerminalReply | None = None

    @abstractmethod
    def query(self, intent_id: str) -> TerminalReply:
        """What happened to ``intent_id``? Waits at most ``timeout_s``."""

    @abstractmethod
    def cancel(self, intent_id: str) -> TerminalReply:
        """Stop ``intent_id`` if it is not charged yet; the answer says whether
        it was (``cancelled``) or was already final. Waits at most ``timeout_s``."""

    def close(self) -> None:  # noqa: B027 - optional for terminals without resources
        """Release the device."""


class CounterPayment(PaymentTerminal):
    """Pay at the counter: nothing to charge here. The order is placed
    ``unpaid`` and the receipt says so; staff take the money."""

    method = "counter"
    immediate = True

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._current = ""
        self.result = None

    def start(self, intent_id: str, amount: int) -> None:
        self._known.add(intent_id)
        self._current = intent_id
        self.result = TerminalReply("unpaid", intent_id)

    def poll(self) -> TerminalReply | None:
        return self.result

    def query(self, intent_id: str) -> TerminalReply:
        return TerminalReply("unpaid" if intent_id in self._known else "no_record", intent_id)

    def cancel(self, intent_id: str) -> TerminalReply:
        return TerminalReply("cancelled", intent_id)


class SerialTerminal(PaymentTerminal):
    """A card / QR-code terminal on a serial line (docs/payment-terminal.md).

    ``timeout_s`` bounds each QUERY, CANCEL and PING; how long the diner may
    take at the terminal is :class:`PaymentFlow`'s ``pay_timeout_s``. The
    device is opened at the first use, with an empty input buffer (a late
    answer to a question of an earlier process answers nobody); replies for
    other intent ids are ignored and counted in ``counters["stale"]``.
    """

    def __init__(self, device: str, baudrate: int = 9600, timeout_s: float = 3.0, *,
                 method: Literal["card", "qr"] = "card") -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be more than 0, got {timeout_s}")
        self.device = device
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.method = method
        self.result = None
        self.counters: dict[str, int] = {"garbled": 0, "stale": 0}
        """garbled (and garbled.<reason>): unreadable lines; stale: answers
        about another intent id."""
        self.last_garbled: TerminalReply | None = None
        self._ser = None
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line: drop up to its "\n"
        self._current = ""
        self._results: dict[str, TerminalReply] = {}  # OK lines (PAY results) by intent id
        self._answers: deque[TerminalReply] = deque(maxlen=32)  # STATUS, ERR, PONG
        self._garbled: deque[TerminalReply] = deque(maxlen=32)

    # ----------------------------------------------------------- the device
    def open(self) -> None:
        if self._ser is not None:
            return
        import serial  # pyserial, imported only by the terminal driver

        try:
            # timeout: one read() waits at most 50 ms, so every wait below is
            # a loop that checks its own deadline.
            ser = serial.Serial(self.device, self.baudrate, timeout=0.05,
                                write_timeout=self.timeout_s, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TerminalUnavailable(f"cannot open {self.device}: {exc}") from None
        try:
            ser.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            ser.close()
            raise TerminalUnavailable(f"cannot use {self.device}: {exc}") from None
        self._ser = ser

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # a vanished device may fail to close; it is closed either way
                log.debug("closing %s failed", self.device, exc_info=True)

    def __enter__(self) -> "SerialTerminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, body: str) -> None:
        import serial

        try:
            self._ser.write(frame(body))
            self._ser.flush()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise TerminalError(f"writing {body.split(' ')[0]} to {self.device} failed: {exc}") from None

    def _read(self, wait: bool) -> None:
        """Take what arrived (``wait``: up to 50 ms for the first byte)."""
        import serial

        if self._ser is None:
            return
        try:
            n = self._ser.in_waiting
            if n or wait:
                self._feed(self._ser.read(max(n, 1)))
        except (serial.SerialException, OSError) as exc:
            log.warning("reading %s failed: %s", self.device, exc)
            self.close()

    def _feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) >= MAX_LINE:
                    if not self._skipping:
                        self._on_garbled(_garbled("line_too_long", bytes(self._buf[:MAX_LINE])))
                    self._skipping = True
                    self._buf.clear()
                return
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._skipping:
                self._skipping = False
                continue
            self._on_line(line)

    def _on_garbled(self, r: TerminalReply) -> None:
        self.counters["garbled"] += 1
        self.counters[f"garbled.{r.reason}"] = self.counters.get(f"garbled.{r.reason}", 0) + 1
        self.last_garbled = r
        log.warning("payment terminal %s: unreadable line (%s): %r", self.device, r.reason, r.raw[:60])
        self._garbled.append(r)

    def _on_line(self, line: bytes) -> None:
        if not line.strip():
            return
        r = parse_reply(line)
        if r.outcome == "garbled":
            self._on_garbled(r)
        elif r.verb == "OK":
            self._results[r.intent_id] = r
            while len(self._results) > 32:
                self._results.pop(next(iter(self._results)))
        else:
            self._answers.append(r)

    # ------------------------------------------------------------- commands
    def start(self, intent_id: str, amount: int) -> None:
        if not INTENT_RE.fullmatch(intent_id):
            raise ValueError(f"bad intent id {intent_id!r}")
        if not isinstance(amount, int) or not AMOUNT_RE.fullmatch(str(amount)):
            raise ValueError(f"bad amount {amount!r}: whole fen, 1 to 999999999")
        self.open()
        self._read(wait=False)
        self._garbled.clear()  # noise from before this payment is not its answer
        self._current = intent_id
        self.result = None
        self._write(f"PAY {intent_id} {amount}")

    def poll(self) -> TerminalReply | None:
        self._read(wait=False)
        r = self._results.get(self._current)
        if r is not None:
            self.result = r
            return r
        if self._garbled:
            return self._garbled.popleft()
        return None

    def query(self, intent_id: str) -> TerminalReply:
        return self._ask(f"QUERY {intent_id}", intent_id)

    def cancel(self, intent_id: str) -> TerminalReply:
        return self._ask(f"CANCEL {intent_id}", intent_id)

    def ping(self) -> bool:
        """Is a terminal there and answering? (for health)"""
        try:
            self.open()
            self._read(wait=False)
            self._answers.clear()
            self._write("PING")
        except (TerminalUnavailable, TerminalError):
            return False
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            self._read(wait=True)
            if any(a.verb == "PONG" for a in self._answers):
                return True
        return False

    def _ask(self, body: str, intent_id: str) -> TerminalReply:
        try:
            self.open()
        except TerminalUnavailable as exc:
            return TerminalReply("no_reply", intent_id, reason="terminal_unavailable", raw=str(exc).encode())
        self._read(wait=False)
        done = self._results.get(intent_id)
        if done is not None:  # the PAY result came in the meantime: it is the answer
            return done
        self._answers.clear()
        self._garbled.clear()
        try:
            self._write(body)
        except TerminalError as exc:
            return TerminalReply("no_reply", intent_id, reason="write_failed", raw=str(exc).encode())
        deadline = time.monotonic() + self.timeout_s
        while True:
            done = self._results.get(intent_id)
            if done is not None:
                return done
            while self._answers:
                a = self._answers.popleft()
                if a.intent_id == intent_id or (a.outcome == "error" and not a.intent_id):
                    return a
                self.counters["stale"] += 1
            if self._garbled:
                return self._garbled.popleft()
            if time.monotonic() >= deadline or self._ser is None:
                return TerminalReply("no_reply", intent_id)
            self._read(wait=True)


# =========================================================================
# Intents and their store
# =========================================================================

FlowState = Literal[
    "new", "intent_recorded", "waiting_terminal", "timed_out", "querying",
    "approved", "declined", "cancelled", "unknown", "unpaid",
]
FINAL_STATES = frozenset({"approved", "declined", "cancelled", "unknown", "unpaid"})


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """One attempt to take one amount for one order. ``intent_id`` is the
    idempotency key the terminal sees; ``state`` is the flow's last state."""

    intent_id: str
    order_id: str
    method: str
    amount: int
    state: str = "intent_recorded"
    reason: str = ""
    auth_ref: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class IntentExists(Exception):
    """An intent with that id is already stored."""


class PaymentIntentStore(ABC):
    """Where intents are committed. ``add`` and ``update`` return only when
    the change is durable (the app: SQLite in WAL mode, ``synchronous=FULL``,
    one transaction each), because the terminal is asked only after ``add``."""

    @abstractmethod
    def add(self, intent: PaymentIntent) -> None:
        """Commit a new intent; IntentExists if its id is taken."""

    @abstractmethod
    def get(self, intent_id: str) -> PaymentIntent | None: ...

    @abstractmethod
    def update(self, intent_id: str, **changes: object) -> PaymentIntent:
        """Commit changes to state, reason, auth_ref, updated_at; KeyError if unknown."""

    @abstractmethod
    def unresolved(self) -> list[PaymentIntent]:
        """Intents not in a final state, oldest first (to query after a restart),
        plus those ``unknown`` (for staff to reconcile)."""


class InMemoryIntentStore(PaymentIntentStore):
    """For tests. Keeps every committed version in ``history``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, PaymentIntent] = {}
        self.history: list[PaymentIntent] = []

    def add(self, intent: PaymentIntent) -> None:
        with self._lock:
            if intent.intent_id in self._by_id:
                raise IntentExists(intent.intent_id)
            self._by_id[intent.intent_id] = intent
            self.history.append(intent)

    def get(self, intent_id: str) -> PaymentIntent | None:
        with self._lock:
            return self._by_id.get(intent_id)

    def update(self, intent_id: str, **changes: object) -> PaymentIntent:
        allowed = {"state", "reason", "auth_ref", "updated_at"}
        if not set(changes) <= allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)} of an intent")
        with self._lock:
            new = replace(self._by_id[intent_id], **changes)
            self._by_id[intent_id] = new
            self.history.append(new)
            return new

    def unresolved(self) -> list[PaymentIntent]:
        with self._lock:
            out = [i for i in self._by_id.values() if not i.final or i.state == "unknown"]
        return sorted(out, key=lambda i: i.created_at)


# =========================================================================
# What the diner reads
# =========================================================================


def _yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


REASON_WORDS: dict[str, Words] = {
    # the terminal's decline reasons
    "declined": Words("付款被拒绝。", "The payment was declined."),
    "insufficient_funds": Words("余额不足，付款被拒绝。", "The payment was declined: not enough funds."),
    "card_expired": Words("卡已过期。", "The card has expired."),
    "card_not_supported": Words("不支持这张卡。", "This card is not accepted here."),
    "limit_exceeded": Words("超出支付限额。", "The payment is over the card's limit."),
    "pin_failed": Words("密码错误。", "The PIN was not correct."),
    "user_cancelled": Words("已在终端上取消付款。", "The payment was cancelled on the terminal."),
    "timeout": Words("终端上等待超时，没有扣款。", "The terminal waited too long for a card; you were not charged."),
    "cancelled": Words("这笔付款已取消。", "This payment was cancelled."),
    # the kiosk's own
    "not_received": Words("付款终端没有收到这笔付款，没有扣款。",
                          "The terminal did not receive the payment; you were not charged."),
    "terminal_unavailable": Words("付款终端无法使用，没有扣款。",
                                  "The payment terminal is not available; you were not charged."),
    "terminal_timeout": Words("付款时间过长，已停止，没有扣款。",
                              "The payment took too long and was stopped; you were not charged."),
    "diner_cancelled": Words("付款已取消，没有扣款。", "Payment cancelled; you were not charged."),
    "no_reply": Words("付款终端没有回应。", "The payment terminal does not answer."),
    "garbled_reply": Words("无法读取付款终端的回复。", "The payment terminal's answer could not be read."),
    "terminal_error": Words("付款终端报告错误。", "The payment terminal reported an error."),
    "still_pending": Words("付款终端仍在处理中。", "The payment terminal is still working on it."),
    "amount_mismatch": Words("终端扣款金额与订单不符。", "The terminal took a different amount than the order's."),
}

ACTION_WORDS: dict[str, Words] = {
    "cancel": Words("取消付款", "Cancel payment"),
    "retry": Words("再试一次", "Try again"),
    "pay_at_counter": Words("到柜台付款", "Pay at the counter"),
    "check_again": Words("再查一次", "Check again"),
    "cancel_order": Words("取消订单", "Cancel the order"),
}

_FORWARD = Words("请重试、换一种付款方式，或到柜台付款。",
                 "Try again, choose another way to pay, or pay at the counter.")
_DONT_PAY_AGAIN = Words(
    "暂时无法确认是否已扣款。请不要重复付款——可以再查一次，或到柜台由店员为你核对。",
    "We could not confirm whether you were charged. Please don't pay again: check again, "
    "or go to the counter and staff will check it for you.",
)


def _join(a: Words, b: Words) -> Words:
    return Words(f"{a.zh}{b.zh}", f"{a.en} {b.en}")


@dataclass(frozen=True, slots=True)
class PaymentUpdate:
    """Where one payment stands, for the view model and the screen.

    ``actions`` are the ways forward the screen offers (keys of ACTION_WORDS).
    ``payment`` is what goes into the order when the flow ends ``approved``
    or ``unpaid`` (pay at the counter); None otherwise.
    """

    intent_id: str
    order_id: str
    method: str
    amount: int
    state: FlowState
    reason: str
    final: bool
    words: Words
    actions: tuple[str, ...]
    payment: SubmitPayment | None = None
    auth_ref: str = ""


# =========================================================================
# The payment state machine
# =========================================================================


class PaymentFlow:
    """Takes one payment intent to a final state without ever charging twice.

    ``begin`` commits the intent, then sends the charge. ``poll`` (call it
    often, from a worker thread) reads the terminal's answer and, once
    ``pay_timeout_s`` passed without one or an answer could not be read,
    switches to querying: up to ``query_attempts`` QUERYs ``query_interval_s``
    apart. A terminal still ``PENDING`` after all of them is told to CANCEL
    (a charge it makes later would have no order). What cannot be settled
    ends ``unknown``: the diner is told not to pay again, and staff check.

    ``resume`` takes over an intent from the store, e.g. after the kiosk
    restarted: a final one is only reported, any other is queried, never sent
    again. ``begin`` on an intent id already stored resumes it too.
    """

    def __init__(self, terminal: PaymentTerminal, store: PaymentIntentStore, *, clock: Clock = time.monotonic,
                 pay_timeout_s: float = 90.0, query_attempts: int = 5, query_interval_s: float = 2.0) -> None:
        if pay_timeout_s <= 0 or query_attempts < 1 or query_interval_s < 0:
            raise ValueError("pay_timeout_s > 0, query_attempts >= 1 and query_interval_s >= 0 are needed")
        self.terminal = terminal
        self.store = store
        self.clock = clock
        self.pay_timeout_s = pay_timeout_s
        self.query_attempts = query_attempts
        self.query_interval_s = query_interval_s
        self.intent: PaymentIntent | None = None
        self.state: FlowState = "new"
        self.reason = ""
        self.transitions: list[tuple[str, str, str]] = []
        """(from, to, reason) for every change, in order."""
        self._deadline = 0.0
        self._next_query = 0.0
        self._queries = 0

    # ---------------------------------------------------------------- start
    def begin(self, intent_id: str, *, order_id: str, amount: int) -> PaymentUpdate:
        if self.intent is not None:
            raise RuntimeError("a PaymentFlow takes one intent; make a new flow for a new payment")
        existing = self.store.get(intent_id)
        if existing is not None:
            if (existing.order_id, existing.amount) != (order_id, amount):
                raise ValueError(f"intent {intent_id} is stored for another order or amount")
            return self.resume(intent_id)
        if self.terminal.method != "counter" and amount <= 0:
            raise ValueError(f"nothing to charge: amount {amount}")
        now = self.clock()
        intent = PaymentIntent(intent_id=intent_id, order_id=order_id, method=self.terminal.method,
                               amount=amount, state="intent_recorded", created_at=now, updated_at=now)
        # Invariant 5: committed first. If this raises, the terminal was never asked.
        self.store.add(intent)
        self.intent = intent
        self._set("intent_recorded", "")
        try:
            self.terminal.start(intent_id, amount)
        except TerminalUnavailable as exc:
            log.warning("payment %s: %s", intent_id, exc)
            return self._final("declined", "terminal_unavailable")
        except TerminalError as exc:
            # part of PAY may have gone out: only the terminal knows
            log.warning("payment %s: %s", intent_id, exc)
            self._deadline = self.clock()
            self._set("timed_out", "no_reply")
            self._start_querying()
            return self.update()
        self._deadline = self.clock() + self.pay_timeout_s
        self._set("waiting_terminal", "")
        # The answer is read by poll(), which the app calls next: begin() only
        # records and sends.
        return self.poll() if self.terminal.immediate else self.update()

    def resume(self, intent_id: str) -> PaymentUpdate:
        """Take over a stored intent: report a final one, query any other."""
        intent = self.store.get(intent_id)
        if intent is None:
            raise KeyError(f"no payment intent {intent_id}")
        if self.intent is not None and self.intent.intent_id != intent_id:
            raise RuntimeError("a PaymentFlow takes one intent")
        self.intent = intent
        if intent.final:
            self.state, self.reason = intent.state, intent.reason  # type: ignore[assignment]
            return self.update()
        # The terminal may have finished while nobody listened: ask, don't send.
        self.state = intent.state  # type: ignore[assignment]
        self._deadline = self.clock()
        self._start_querying(reason="recovered")
        return self.poll()

    # ----------------------------------------------------------------- run
    def poll(self) -> PaymentUpdate:
        """Advance as far as the terminal's answers allow. In ``querying`` this
        waits for the terminal's answer (at most its ``timeout_s``)."""
        if self.state == "waiting_terminal":
            r = self.terminal.poll()
            if r is not None:
                self._on_reply(r, via_query=False)
            elif self.clock() >= self._deadline:
                self._set("timed_out", "no_reply")
                self._start_querying()
        if self.state == "querying" and self.clock() >= self._next_query:
            self._queries += 1
            self._on_reply(self.terminal.query(self.intent.intent_id), via_query=True)
        return self.update()

    def wait(self, timeout_s: float, step_s: float = 0.02) -> PaymentUpdate:
        """Poll until a final state or ``timeout_s`` (wall time) passed."""
        end = time.monotonic() + timeout_s
        u = self.poll()
        while not u.final and time.monotonic() < end:
            time.sleep(step_s)
            u = self.poll()
        return u

    def cancel(self) -> PaymentUpdate:
        """The diner cancels at the kiosk. Only while waiting for the terminal;
        the terminal's answer decides (it may already have charged)."""
        if self.state not in ("intent_recorded", "waiting_terminal"):
            return self.update()
        r = self.terminal.cancel(self.intent.intent_id)
        if r.outcome == "cancelled" or r.outcome == "no_record":
            return self._final("cancelled", "diner_cancelled")
        if r.outcome in ("approved", "declined", "unpaid"):
            self._on_reply(r, via_query=True)
        else:
            self._deadline = self.clock()
            self._set("timed_out", "garbled_reply" if r.outcome == "garbled" else "no_reply")
            self._start_querying()
        return self.update()

    def check_again(self) -> PaymentUpdate:
        """From ``unknown``: ask the terminal again (the diner or staff asked)."""
        if self.state == "unknown":
            self._deadline = self.clock()
            self._start_querying(reason="check_again")
            return self.poll()
        return self.update()

    # ----------------------------------------------------------- internals
    def _start_querying(self, reason: str = "") -> None:
        self._queries = 0
        self._next_query = self.clock()
        self._set("querying", reason or self.reason)

    def _on_reply(self, r: TerminalReply, *, via_query: bool) -> None:
        intent = self.intent
        if r.outcome == "approved":
            if r.amount != intent.amount:
                log.error("payment %s: terminal approved %s, asked %s", intent.intent_id, r.amount, intent.amount)
                self._final("unknown", "amount_mismatch", auth_ref=r.auth_ref)
            else:
                self._final("approved", "", auth_ref=r.auth_ref)
        elif r.outcome == "unpaid":
            self._final("unpaid", "")
        elif r.outcome == "declined":
            self._final("declined", r.reason if r.reason in REASON_WORDS else "declined")
        elif r.outcome == "cancelled":
            self._final("cancelled", self.reason if self.reason == "terminal_timeout" else "cancelled")
        elif r.outcome == "no_record":
            # Only a QUERY can say this; the terminal keeps the id as cancelled.
            self._final("declined", "not_received")
        elif not via_query:
            # an unreadable line or an ERR while waiting: it may have been the
            # result, so ask (the diner's time at the terminal still runs)
            self._set("timed_out", "garbled_reply" if r.outcome == "garbled" else "terminal_error")
            self._start_querying()
        else:
            self._query_failed(r)

    def _query_failed(self, r: TerminalReply) -> None:
        reason = {"pending": "still_pending", "garbled": "garbled_reply", "error": "terminal_error"}.get(
            r.outcome, "no_reply")
        now = self.clock()
        if r.outcome == "pending" and now < self._deadline:
            # the diner is still at the terminal: wait for its result again
            self._set("waiting_terminal", "")
            return
        if self._queries < self.query_attempts:
            self._next_query = now + self.query_interval_s
            if reason != self.reason:
                self._set("querying", reason)
            return
        if r.outcome == "pending":
            # Give up on this payment, but only with the terminal's word that
            # it will not charge it later.
            self.reason = "terminal_timeout"
            c = self.terminal.cancel(self.intent.intent_id)
            if c.outcome in ("cancelled", "no_record"):
                self._final("cancelled", "terminal_timeout")
                return
            if c.outcome in ("approved", "declined"):
                self._on_reply(c, via_query=True)
                return
        self._final("unknown", reason)

    def _set(self, state: FlowState, reason: str, **extra: str) -> None:
        old = self.state
        self.state, self.reason = state, reason
        self.transitions.append((old, state, reason))
        if old != state:
            log.info("payment %s: %s -> %s%s", self.intent.intent_id, old, state, f" ({reason})" if reason else "")
        self.intent = self.store.update(self.intent.intent_id, state=state, reason=reason,
                                        updated_at=self.clock(), **extra)

    def _final(self, state: FlowState, reason: str, **extra: str) -> PaymentUpdate:
        self._set(state, reason, **extra)
        return self.update()

    def update(self) -> PaymentUpdate:
        i = self.intent
        if i is None:
            raise RuntimeError("no intent yet: call begin() or resume()")
        return PaymentUpdate(
            intent_id=i.intent_id, order_id=i.order_id, method=i.method, amount=i.amount,
            state=self.state, reason=self.reason, final=self.state in FINAL_STATES,
            words=self.words(), actions=self.actions(), payment=self._payment(), auth_ref=i.auth_ref,
        )

    def _payment(self) -> SubmitPayment | None:
        i = self.intent
        if self.state == "approved":
            return SubmitPayment(method=i.method, status="approved", amount=i.amount,  # type: ignore[arg-type]
                                 intent_id=i.intent_id, reference=i.auth_ref)
        if self.state == "unpaid":
            return SubmitPayment(method="counter", status="unpaid", intent_id=i.intent_id)
        return None

    def words(self) -> Words:
        i, s = self.intent, self.state
        amount = _yuan(i.amount)
        if s in ("new", "intent_recorded"):
            return Words("正在连接付款终端……", "Connecting to the payment terminal…")
        if s == "waiting_terminal":
            if i.method == "qr":
                return Words(f"请用手机扫描付款终端上的二维码，支付 {amount}。",
                             f"Scan the QR code on the payment terminal with your phone to pay {amount}.")
            return Words(f"请在付款终端上刷卡、插卡或挥卡，支付 {amount}。",
                         f"Tap, insert or swipe your card on the payment terminal to pay {amount}.")
        if s in ("timed_out", "querying"):
            return Words("正在向付款终端确认付款结果，请稍候，不要重复付款。",
                         "Checking with the payment terminal whether the payment went through. "
                         "Please wait, and don't pay again.")
        if s == "approved":
            return Words(f"付款成功：{amount}。", f"Payment approved: {amount}.")
        if s == "unpaid":
            return Words("请到柜台付款，小票上会注明“未付款”。",
                         "Please pay at the counter; your receipt is marked UNPAID.")
        if s == "cancelled":
            first = REASON_WORDS["terminal_timeout" if self.reason == "terminal_timeout" else "diner_cancelled"]
            return _join(first, _FORWARD)
        if s == "declined":
            return _join(REASON_WORDS.get(self.reason, REASON_WORDS["declined"]), _FORWARD)
        return _join(REASON_WORDS.get(self.reason, REASON_WORDS["no_reply"]), _DONT_PAY_AGAIN)

    def actions(self) -> tuple[str, ...]:
        s = self.state
        if s in ("intent_recorded", "waiting_terminal"):
            return ("cancel",)
        if s in ("declined", "cancelled"):
            if self.reason == "terminal_unavailable":
                return ("pay_at_counter", "cancel_order")
            return ("retry", "pay_at_counter", "cancel_order")
        if s == "unknown":
            # never "retry": a second intent could charge the diner twice
            return ("check_again", "pay_at_counter")
        return ()


class TerminalPayments:
    """The payment terminal's side of a selling screen's controller (the
    kiosk's and the counter's; pay thread). The controller has ``section``
    (its config section: ``terminal``), ``store`` (the intents),
    ``_terminal_device``, ``_flows``, ``_cancel``, ``_stopping`` and
    ``_report(update)`` (to the UI thread)."""

    NOUN = "device"

    def _terminal(self, method: str) -> PaymentTerminal:
        if method == "counter":
            return CounterPayment()
        t = self._terminal_device
        if t is None:
            tc = self.section.terminal
            if tc is None:
                raise ValueError(f"payment method {method!r} is not set up on this {self.NOUN}")
            t = self._terminal_device = SerialTerminal(tc.device, tc.baudrate, tc.timeout_s)
        t.method = method  # one terminal takes cards and QR codes
        return t

    def _flow(self, method: str) -> PaymentFlow:
        tc = self.section.terminal
        kw = {"pay_timeout_s": tc.pay_timeout_s} if tc is not None else {}
        return PaymentFlow(self._terminal(method), self.store, **kw)

    def _follow(self, flow: PaymentFlow, update: PaymentUpdate) -> PaymentUpdate:
        """Report each change until the payment is final (or the controller
        stops); a cancel asked for on the UI thread is passed on."""
        self._report(update)
        while not update.final and not self._stopping.is_set():
            time.sleep(0.05)
            last = update
            if update.intent_id in self._cancel:
                self._cancel.discard(update.intent_id)
                update = flow.cancel()
            else:
                update = flow.poll()
            if update != last:
                self._report(update)
        self._cancel.discard(update.intent_id)
        return update

    def _settle(self, intent: PaymentIntent) -> PaymentUpdate:
        """After a restart: the terminal asked about an intent left unfinished, until it answers."""
        flow = self._flow(intent.method)
        u = flow.resume(intent.intent_id)
        while not u.final and not self._stopping.is_set():
            time.sleep(0.1)
            u = flow.poll()
        return u
