"""A simulated card / QR-code payment terminal on a real pseudo-terminal.

It speaks the line protocol of docs/payment-terminal.md, so the kiosk's real
:class:`kiosk.payment.SerialTerminal` talks to it exactly as to hardware:
put ``.device`` in the kiosk's payment config. Standard library only; one
daemon thread, which ``close()`` joins; no thread or fd outlives ``close()``.

Modes (``.mode``, switchable at any time):

- ``approve``: charges and answers ``OK <id> APPROVED <amount> <ref>``;
- ``decline``: answers ``OK <id> DECLINED <decline_reason>``, no charge;
- ``no_reply``: charges but its answer to PAY is lost; QUERY is answered;
- ``garbled``: charges, and every answer is unreadable (bad checksum,
  bytes that are not ASCII, a cut line, an over-long line, in turn);
- ``slow``: the diner takes ``slow_s`` at the terminal: QUERY says PENDING
  until then, then it charges and answers the PAY (late, if the kiosk gave up
  waiting);
- ``offline``: switched off: what the kiosk sends is lost, nothing is
  answered or charged (a payment already pending still completes).

Every charge is recorded in ``charges``; every PAY the kiosk sent is counted
in ``pay_requests``. ``idempotent=False`` makes a bad terminal that charges
every PAY it gets, even a repeated intent id: with it a test shows that the
kiosk itself never sends a charge twice.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time

from collections import Counter
from dataclasses import dataclass

from kiosk.payment import AMOUNT_RE, INTENT_RE, MAX_LINE, frame, unframe
from restobox.dev.ptydev import PtyDevice

MODES = ("approve", "decline", "no_reply", "garbled", "slow", "offline")


@dataclass(frozen=True, slots=True)
class Charge:
    intent_id: str
    amount: int
    auth_ref: str
    at: float  # time.monotonic()


@dataclass(slots=True)
class _Intent:
    state: str  # pending, approved, declined, cancelled
    amount: int = 0
    auth_ref: str = ""
    reason: str = ""
    due: float = 0.0


class TerminalSim(PtyDevice):
    MODES = MODES
    NAME = "TerminalSim"

    def __init__(self, mode: str = "approve", *, slow_s: float = 1.0,
                 decline_reason: str = "insufficient_funds", idempotent: bool = True) -> None:
        self.slow_s = slow_s
        self.decline_reason = decline_reason
        self.idempotent = idempotent
        self._cond = threading.Condition()
        self._intents: dict[str, _Intent] = {}
        self.charges: list[Charge] = []
        self.pay_requests: Counter[str] = Counter()
        self.lines: list[bytes] = []
        """Every line received (without "\\n"), readable or not."""
        self.sent: list[bytes] = []
        """Every line sent to the kiosk."""
        self._garble_turn = 0
        self._buf = bytearray()
        self._open_pty(mode)
        self._start()

    # ------------------------------------------------------------ control
    def charges_for(self, intent_id: str) -> int:
        with self._cond:
            return sum(1 for c in self.charges if c.intent_id == intent_id)

    def state_of(self, intent_id: str) -> str | None:
        with self._cond:
            i = self._intents.get(intent_id)
            return i.state if i else None

    def wait_until(self, predicate, timeout: float, what: str = "condition") -> None:
        """Wait until ``predicate()`` is true (checked on every change)."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"TerminalSim: no {what} within {timeout:g} s; received {self.lines!r}")

    def send(self, data: bytes) -> None:
        """Send bytes to the kiosk unasked (noise on the line)."""
        os.write(self._master, data)

    # ------------------------------------------------------------- thread
    def _run(self) -> None:
        while not self._stop:
            timeout = 0.5
            with self._cond:
                dues = [i.due for i in self._intents.values() if i.state == "pending"]
            if dues:
                timeout = max(0.0, min(timeout, min(dues) - time.monotonic()))
            readable, _, _ = select.select([self._wake_r, self._master], [], [], timeout)
            if self._wake_r in readable:
                os.read(self._wake_r, 512)
            if self._master in readable:
                try:
                    chunk = os.read(self._master, 4096)
                except BlockingIOError:
                    chunk = b""
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    chunk = b""
                if self._mode != "offline":  # switched off: what comes in is lost
                    self._feed(chunk)
            self._finish_due()

    def _feed(self, chunk: bytes) -> None:
        self._buf += chunk
        while (nl := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
            self._on_line(line)
        if len(self._buf) > MAX_LINE:
            self._buf.clear()
            self._reply("ERR - bad_command")

    def _finish_due(self) -> None:
        now = time.monotonic()
        done = []
        with self._cond:
            for iid, i in self._intents.items():
                if i.state == "pending" and i.due <= now:
                    self._charge(iid, i)
                    done.append((iid, i))
        for iid, i in done:
            self._reply(f"OK {iid} APPROVED {i.amount} {i.auth_ref}")

    # ----------------------------------------------------------- protocol
    def _charge(self, intent_id: str, i: _Intent) -> None:
        """Under self._cond."""
        i.state = "approved"
        i.auth_ref = f"A{len(self.charges) + 1:06d}"
        self.charges.append(Charge(intent_id, i.amount, i.auth_ref, time.monotonic()))
        self._cond.notify_all()

    def _on_line(self, line: bytes) -> None:
        if self._mode == "offline":
            return
        body, why = unframe(line)
        if body is None:
            self._reply(f"ERR - {why}")
            return
        t = body.split(" ")
        if t == ["PING"]:
            self._reply("PONG")
        elif len(t) == 3 and t[0] == "PAY" and INTENT_RE.fullmatch(t[1]):
            if not AMOUNT_RE.fullmatch(t[2]):
                self._reply(f"ERR {t[1]} bad_amount")
            else:
                self._pay(t[1], int(t[2]))
        elif len(t) == 2 and t[0] == "QUERY" and INTENT_RE.fullmatch(t[1]):
            self._query(t[1])
        elif len(t) == 2 and t[0] == "CANCEL" and INTENT_RE.fullmatch(t[1]):
            self._cancel(t[1])
        else:
            self._reply("ERR - bad_command")

    def _pay(self, iid: str, amount: int) -> None:
        with self._cond:
            self.pay_requests[iid] += 1
            self._cond.notify_all()
            known = self._intents.get(iid)
            if known is not None and self.idempotent:
                # a repeated PAY is answered with what happened, never charged again
                if known.state == "pending":
                    return
                reply = self._result_line("OK", iid, known)
            elif any(i.state == "pending" for i in self._intents.values()):
                reply = f"ERR {iid} busy"
            elif self._mode == "decline":
                i = self._intents[iid] = _Intent("declined", amount, reason=self.decline_reason)
                reply = self._result_line("OK", iid, i)
            elif self._mode == "slow":
                self._intents[iid] = _Intent("pending", amount, due=time.monotonic() + self.slow_s)
                os.write(self._wake_w, b"d")
                return
            else:  # approve, no_reply, garbled
                i = self._intents[iid] = _Intent("pending", amount)
                self._charge(iid, i)
                if self._mode == "no_reply":
                    return  # the answer is lost on the way
                reply = self._result_line("OK", iid, i)
        self._reply(reply)

    @staticmethod
    def _result_line(verb: str, iid: str, i: _Intent) -> str:
        if i.state == "approved":
            return f"{verb} {iid} APPROVED {i.amount} {i.auth_ref}"
        if i.state == "declined":
            return f"{verb} {iid} DECLINED {i.reason}"
        if i.state == "cancelled":
            return f"{verb} {iid} CANCELLED" if verb == "STATUS" else f"{verb} {iid} DECLINED cancelled"
        return f"{verb} {iid} PENDING"

    def _query(self, iid: str) -> None:
        with self._cond:
            i = self._intents.get(iid)
            if i is None:
                # Never seen: and now it never will be charged (a late PAY
                # under this id is refused).
                self._intents[iid] = _Intent("cancelled", reason="cancelled")
                reply = f"STATUS {iid} UNKNOWN"
            else:
                reply = self._result_line("STATUS", iid, i)
        self._reply(reply)

    def _cancel(self, iid: str) -> None:
        with self._cond:
            i = self._intents.get(iid)
            if i is None:
                i = self._intents[iid] = _Intent("cancelled", reason="cancelled")
            elif i.state == "pending":
                i.state, i.reason = "cancelled", "cancelled"
            reply = self._result_line("STATUS", iid, i)
        self._reply(reply)

    def _reply(self, body: str) -> None:
        data = frame(body)
        if self._mode == "offline":
            return
        if self._mode == "garbled":
            data = self._garble(data)
        with self._cond:
            self.sent.append(data)
        try:
            os.write(self._master, data)
        except BlockingIOError:
            pass  # nobody reads: a real terminal would drop it too

    def _garble(self, data: bytes) -> bytes:
        turn = self._garble_turn % 4
        self._garble_turn += 1
        body = data[:-4]  # without "*HH\n"
        if turn == 0:  # one bit flipped on the line
            return body[:-1] + bytes([body[-1] ^ 0x01]) + data[-4:]
        if turn == 1:  # wrong baud rate: not ASCII
            return b"\xf0\x9f" + body[2:] + b"\xfe\n"
        if turn == 2:  # cut short
            return body[: len(body) // 2] + b"\n"
        return b"~" * (MAX_LINE + 10) + b"\n"  # an endless line of noise

    # -------------------------------------------------------------- close

