"""The aggregated payment gateway, simulated, for the demo and the tests
(docs/paygate.md).

    restobox paygate-dev [--port 8710] [--db paygate-dev.db] [--mch-id m-store-1] --key-file FILE

The server side of restobox/paygate.py's protocol, for one merchant: every
API request's signature is checked, every answer is signed (error answers
too), the merchant order number is the idempotency key of a payment and the
refund number that of a refund. It serves the wallet page a diner's phone
opens (``/cashier/<trade_no>``), posts signed notifications of payments to
the store's ``notify_url`` (retried until acknowledged with
``{"code": "SUCCESS"}``, then given up) and answers the day's statement.
Everything (trades, refunds, notifications and their attempts, the fault
mode, counters) is kept in SQLite, so a restart loses nothing; the
notifications still to deliver resume.

It can be told to misbehave, for tests, the demo and soaks:

    POST /_dev/fault  {"mode": "notify_lost", "count": 1}

modes, and what ``count`` counts (0: until changed; ``ok`` resets):

- API calls: ``slow`` (answers after ``slow_s``), ``timeout`` (does the
  work, then never answers);
- payments: ``notify_lost`` (no notification), ``notify_repeat`` (each
  notification delivered 3 times although acknowledged), ``notify_early``
  (the first attempt is made before the cashier's redirect answer),
  ``bad_signature`` (every attempt carries a wrong sign),
  ``amount_mismatch`` (charged 1 fen less than asked);
- closes of an unpaid trade: ``success_after_close`` (answered CLOSED, and
  paid anyway half a second later: the diner's payment was in flight);
- statements: ``statement_extra`` (a PAY line the store never made),
  ``statement_missing`` (the last line left out).

``{"mode": "random", "rate": 0.3, "seed": 7}`` gives each event, with that
probability, one of the modes that apply to it (``count``: how many faults).
``GET /_dev/fault`` the mode; ``GET /_dev/trades`` every trade, its refunds
and notifications; ``GET /_dev/stats`` counters; ``POST /_dev/pay``
``{"out_trade_no": ...}`` pays as the diner's wallet would.
"""

from __future__ import annotations

import asyncio
import html
import logging
import random
import re
import secrets
import sqlite3
import time
from pathlib import Path

import msgspec

from restobox import paygate
from restobox.dev import simkit
from restobox.dev.simkit import iso_cst, now_cst

log = logging.getLogger("restobox.dev.paygate_dev")

FAULTS: dict[str, tuple[str, ...]] = {
    "api": ("slow", "timeout"),
    "payment": ("notify_lost", "notify_repeat", "notify_early", "bad_signature", "amount_mismatch"),
    "close": ("success_after_close",),
    "statement": ("statement_extra", "statement_missing"),
}
MODES = ("ok", "random", *(m for ms in FAULTS.values() for m in ms))

NOTIFY_RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
NOTIFY_TIMEOUT_S = 5.0
REPEAT_DELIVERIES = 3  # notify_repeat
LATE_PAY_S = 0.5  # success_after_close
HANG_S = 3600.0  # timeout: longer than any client waits

_NO = re.compile(r"[A-Za-z0-9_-]{1,32}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Fault(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: str = "ok"
    count: int = 0
    slow_s: float = 2.0
    rate: float = 0.3
    seed: int | None = None
    calls: list[str] = []
    """API faults (slow, timeout): only these calls (create, query, close,
    refund, statement); empty: any."""


class Refused(Exception):
    """A request the gateway answers with a code other than OK."""

    def __init__(self, code: str, message: str, *, status: int = 200, fields: dict | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields or {}


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def mask_phone(phone: str) -> str:
    """138****8000: the first three and the last four digits."""
    p = phone.strip()
    if len(p) >= 8:
        return f"{p[:3]}****{p[-4:]}"
    return p[:1] + "*" * (len(p) - 1) if p else ""


# --------------------------------------------------------------- store
class GatewayStore(simkit.SimStore):
    """The gateway's records (simkit.SimStore: SQLite, one connection, used from the event loop)."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS trade (
            out_trade_no TEXT PRIMARY KEY, trade_no TEXT NOT NULL UNIQUE, amount INTEGER NOT NULL,
            charged INTEGER, refunded INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,
            description TEXT NOT NULL, notify_url TEXT NOT NULL, return_url TEXT NOT NULL,
            payer_phone TEXT NOT NULL, cashier_url TEXT NOT NULL, created_at REAL NOT NULL,
            expires_at REAL NOT NULL, paid_at TEXT NOT NULL DEFAULT '', closed_at TEXT NOT NULL DEFAULT '',
            late_pay_at REAL, faults TEXT NOT NULL DEFAULT '');
        CREATE TABLE IF NOT EXISTS refund (
            out_refund_no TEXT PRIMARY KEY, out_trade_no TEXT NOT NULL, refund_id TEXT NOT NULL UNIQUE,
            amount INTEGER NOT NULL, reason TEXT NOT NULL, refunded_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS notification (
            id INTEGER PRIMARY KEY AUTOINCREMENT, out_trade_no TEXT NOT NULL, url TEXT NOT NULL,
            body TEXT NOT NULL, state TEXT NOT NULL, want INTEGER NOT NULL,
            deliveries INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS notify_attempt (
            id INTEGER PRIMARY KEY AUTOINCREMENT, notification INTEGER NOT NULL, at TEXT NOT NULL,
            http_status INTEGER NOT NULL, answer TEXT NOT NULL, delivered INTEGER NOT NULL);
    """

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["notifications_pending"] = self.con.execute(
            "SELECT COUNT(*) FROM notification WHERE state = 'pending'").fetchone()[0]
        return out

    def trade(self, out_trade_no: str) -> sqlite3.Row | None:
        return self.con.execute("SELECT * FROM trade WHERE out_trade_no = ?", (out_trade_no,)).fetchone()

    def trade_by_no(self, trade_no: str) -> sqlite3.Row | None:
        return self.con.execute("SELECT * FROM trade WHERE trade_no = ?", (trade_no,)).fetchone()

    def update(self, out_trade_no: str, **cols) -> sqlite3.Row:
        sets = ", ".join(f"{k} = ?" for k in cols)
        self.con.execute(f"UPDATE trade SET {sets} WHERE out_trade_no = ?", (*cols.values(), out_trade_no))
        return self.trade(out_trade_no)

    def refunds(self, out_trade_no: str) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM refund WHERE out_trade_no = ? ORDER BY refunded_at, rowid",
                                (out_trade_no,)).fetchall()

    def notification(self, nid: int) -> sqlite3.Row | None:
        return self.con.execute("SELECT * FROM notification WHERE id = ?", (nid,)).fetchone()

    def notifications(self, out_trade_no: str) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM notification WHERE out_trade_no = ? ORDER BY id",
                                (out_trade_no,)).fetchall()

    def attempts(self, nid: int) -> list[sqlite3.Row]:
        return self.con.execute("SELECT at, http_status, answer, delivered FROM notify_attempt "
                                "WHERE notification = ? ORDER BY id", (nid,)).fetchall()


# ------------------------------------------------------------- gateway
class Gateway(simkit.Simulator):
    """The simulated gateway: its records, its fault mode, its deliveries."""

    store: GatewayStore

    def __init__(self, db_path: str | Path, key: bytes, mch_id: str, *, public_url: str,
                 notify_delay: float = 0.2, notify_retry: tuple[float, ...] = NOTIFY_RETRY_S) -> None:
        super().__init__(GatewayStore(db_path), Fault, log)
        self.key = key
        self.mch_id = mch_id
        self.public_url = public_url.rstrip("/")
        self.notify_delay = notify_delay
        self.notify_retry = tuple(notify_retry)
        self.rng = random.Random(self.fault.seed)

    # ---- faults
    def set_fault(self, f: Fault) -> None:
        super().set_fault(f)
        self.rng = random.Random(f.seed)

    def take_fault(self, kind: str, call: str = "") -> str | None:
        """The fault mode that applies to this event of ``kind`` (api,
        payment, close, statement; ``call``: the API call's name), if any;
        counts it down."""
        f = self.fault
        if kind == "api" and f.calls and call not in f.calls:
            return None
        if f.mode == "random":
            if self.rng.random() >= f.rate:
                return None
            mode = self.rng.choice(FAULTS[kind])
        elif f.mode in FAULTS[kind]:
            mode = f.mode
        else:
            return None
        return self.spend_fault(mode, kind)

    # ---- trades
    def fresh(self, t: sqlite3.Row) -> sqlite3.Row:
        """The trade, closed if it was unpaid past its expiry."""
        if t["status"] == "NOTPAY" and t["late_pay_at"] is None and time.time() >= t["expires_at"]:
            self.store.count("expired")
            return self.store.update(t["out_trade_no"], status="CLOSED", closed_at=now_cst())
        return t

    def trade_fields(self, t: sqlite3.Row) -> dict:
        return {"out_trade_no": t["out_trade_no"], "trade_no": t["trade_no"], "status": t["status"],
                "amount": t["charged"] if t["charged"] is not None else t["amount"], "paid_at": t["paid_at"],
                "refunded": t["refunded"], "cashier_url": t["cashier_url"]}

    def pay(self, t: sqlite3.Row) -> tuple[sqlite3.Row, int | None, bool]:
        """The diner paid ``t`` (NOTPAY, or CLOSED with a payment in flight):
        the trade, its notification's id (None when lost) and whether its
        first attempt must be made before the payer is answered."""
        with self.store.tx():
            return self._pay(t)

    def _pay(self, t: sqlite3.Row) -> tuple[sqlite3.Row, int | None, bool]:
        mode = self.take_fault("payment")
        charged = t["amount"] - 1 if mode == "amount_mismatch" else t["amount"]
        t = self.store.update(t["out_trade_no"], status="SUCCESS", charged=charged, paid_at=now_cst(),
                              closed_at="", late_pay_at=None,
                              faults=",".join(filter(None, [t["faults"], mode or ""])))
        self.store.count("payments")
        if mode == "notify_lost":
            return t, None, False
        body = paygate.signed({"mch_id": self.mch_id, "out_trade_no": t["out_trade_no"], "trade_no": t["trade_no"],
                               "status": "SUCCESS", "amount": charged, "paid_at": t["paid_at"]}, self.key)
        if mode == "bad_signature":
            body["sign"] = paygate.sign(body, b"not-the-merchant-key")
        early = mode == "notify_early"
        cur = self.store.con.execute(
            "INSERT INTO notification (out_trade_no, url, body, state, want, next_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?)",
            (t["out_trade_no"], t["notify_url"], msgspec.json.encode(body).decode(),
             REPEAT_DELIVERIES if mode == "notify_repeat" else 1, time.time() + (0 if early else self.notify_delay)))
        return t, cur.lastrowid, early

    async def paid(self, t: sqlite3.Row) -> sqlite3.Row:
        """Pay ``t`` and send its notification (the first attempt awaited under notify_early)."""
        t, nid, early = self.pay(t)
        if nid is not None:
            if early:
                await self.attempt(nid)
            self.spawn(f"notify-{nid}", self.deliver(nid))
        return t

    # ---- notifications
    async def deliver(self, nid: int) -> None:
        while True:
            n = self.store.notification(nid)
            if n is None or n["state"] != "pending":
                return
            delay = n["next_at"] - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.attempt(nid)

    async def attempt(self, nid: int) -> None:
        """One attempt: delivered when answered HTTP 200 {"code": "SUCCESS"};
        otherwise the next one is scheduled, or it is given up."""
        import httpx

        n = self.store.notification(nid)
        try:
            r = await self.http.post(n["url"], content=n["body"].encode(),
                                     headers={"Content-Type": "application/json"})
            status, answer = r.status_code, r.text[:200]
            try:
                ok = status == 200 and msgspec.json.decode(r.content).get("code") == "SUCCESS"
            except (msgspec.DecodeError, AttributeError):
                ok = False
        except httpx.HTTPError as exc:
            status, answer, ok = 0, f"{type(exc).__name__}: {exc}"[:200], False
        con = self.store.con
        con.execute("INSERT INTO notify_attempt (notification, at, http_status, answer, delivered) "
                    "VALUES (?, ?, ?, ?, ?)", (nid, now_cst(), status, answer, int(ok)))
        self.store.count("notify.attempts")
        now = time.time()
        if ok:
            self.store.count("notify.deliveries")
            done = n["deliveries"] + 1 >= n["want"]
            con.execute("UPDATE notification SET deliveries = deliveries + 1, failures = 0, state = ?, next_at = ? "
                        "WHERE id = ?", ("delivered" if done else "pending", now + self.notify_delay, nid))
            if done:
                self.store.count("notify.delivered")
            return
        failures = n["failures"] + 1
        if failures > len(self.notify_retry):
            con.execute("UPDATE notification SET failures = ?, state = 'given_up' WHERE id = ?", (failures, nid))
            self.store.count("notify.given_up")
            log.warning("notification of %s given up after %d attempts (last: %s %s)",
                        n["out_trade_no"], failures, status, answer[:80])
            return
        con.execute("UPDATE notification SET failures = ?, next_at = ? WHERE id = ?",
                    (failures, now + self.notify_retry[failures - 1], nid))

    async def late_pay(self, out_trade_no: str) -> None:
        """success_after_close: the diner's payment lands after the close."""
        t = self.store.trade(out_trade_no)
        if t is None or t["late_pay_at"] is None:
            return
        await asyncio.sleep(max(0.0, t["late_pay_at"] - time.time()))
        t = self.store.trade(out_trade_no)
        if t is not None and t["status"] == "CLOSED" and t["late_pay_at"] is not None:
            await self.paid(t)

    def resume(self) -> None:
        """After a start: the notifications still to deliver, the payments in flight."""
        con = self.store.con
        for (nid,) in con.execute("SELECT id FROM notification WHERE state = 'pending'").fetchall():
            self.spawn(f"notify-{nid}", self.deliver(nid))
        for (no,) in con.execute("SELECT out_trade_no FROM trade WHERE late_pay_at IS NOT NULL").fetchall():
            self.spawn(f"late-{no}", self.late_pay(no))

    # ---- API calls (fields are verified; each returns the answer's fields)
    def create(self, f: dict) -> dict:
        no = _no(f, "out_trade_no")
        amount = _int(f, "amount", 1, 100_000_000)
        expire_s = _int(f, "expire_s", 1, 86_400, default=300)
        description = _str(f, "description", 128)
        notify_url = _url(f, "notify_url")
        return_url = _url(f, "return_url")
        phone = _str(f, "payer_phone", 20)
        t = self.store.trade(no)
        if t is not None:
            t = self.fresh(t)
            if t["amount"] != amount:
                raise Refused("PARAM_CONFLICT", f"{no} was made for {t['amount']} fen, not {amount}",
                              fields={"out_trade_no": no})
            if t["status"] == "CLOSED":
                raise Refused("ORDER_CLOSED", f"{no} is closed", fields=self.trade_fields(t))
            return self.trade_fields(t)
        trade_no = "T" + secrets.token_hex(12)
        now = time.time()
        self.store.con.execute(
            "INSERT INTO trade (out_trade_no, trade_no, amount, status, description, notify_url, return_url, "
            "payer_phone, cashier_url, created_at, expires_at) VALUES (?, ?, ?, 'NOTPAY', ?, ?, ?, ?, ?, ?, ?)",
            (no, trade_no, amount, description, notify_url, return_url, phone,
             f"{self.public_url}/cashier/{trade_no}", now, now + expire_s))
        self.store.count("trades")
        return self.trade_fields(self.store.trade(no))

    def known(self, f: dict) -> sqlite3.Row:
        no = _no(f, "out_trade_no")
        t = self.store.trade(no)
        if t is None:
            raise Refused("ORDER_NOT_EXIST", f"no trade {no}", fields={"out_trade_no": no})
        return self.fresh(t)

    def query(self, f: dict) -> dict:
        return self.trade_fields(self.known(f))

    def close(self, f: dict) -> dict:
        t = self.known(f)
        if t["status"] in ("SUCCESS", "REFUND"):
            raise Refused("ORDER_PAID", f"{t['out_trade_no']} is paid", fields=self.trade_fields(t))
        if t["status"] == "NOTPAY":
            with self.store.tx():
                late = self.take_fault("close") == "success_after_close"
                faults = ",".join(filter(None, [t["faults"], "success_after_close" if late else ""]))
                t = self.store.update(t["out_trade_no"], status="CLOSED", closed_at=now_cst(), faults=faults,
                                      late_pay_at=time.time() + LATE_PAY_S if late else None)
                self.store.count("closes")
            if late:
                self.spawn(f"late-{t['out_trade_no']}", self.late_pay(t["out_trade_no"]))
        return self.trade_fields(t)

    def refund(self, f: dict) -> dict:
        t = self.known(f)
        no = t["out_trade_no"]
        refund_no = _no(f, "out_refund_no")
        amount = _int(f, "amount", 1, 100_000_000)
        reason = _str(f, "reason", 80)
        old = self.store.con.execute("SELECT * FROM refund WHERE out_refund_no = ?", (refund_no,)).fetchone()
        if old is not None:
            if old["out_trade_no"] != no or old["amount"] != amount:
                raise Refused("PARAM_CONFLICT", f"refund {refund_no} was made for {old['out_trade_no']}, "
                              f"{old['amount']} fen", fields={"out_trade_no": no})
            return _refund_fields(old)
        if t["status"] not in ("SUCCESS", "REFUND"):
            raise Refused("ORDER_NOT_PAID", f"{no} is {t['status']}: nothing to refund", fields={"out_trade_no": no})
        left = t["charged"] - t["refunded"]
        if amount > left:
            raise Refused("REFUND_EXCEEDS", f"{amount} fen is more than the {left} fen left of {no}",
                          fields={"out_trade_no": no})
        refunded = t["refunded"] + amount
        with self.store.tx():
            self.store.con.execute(
                "INSERT INTO refund (out_refund_no, out_trade_no, refund_id, amount, reason, refunded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (refund_no, no, "R" + secrets.token_hex(12), amount, reason, now_cst()))
            self.store.update(no, refunded=refunded, status="REFUND" if refunded >= t["charged"] else t["status"])
            self.store.count("refunds")
        return _refund_fields(self.store.con.execute("SELECT * FROM refund WHERE out_refund_no = ?",
                                                     (refund_no,)).fetchone())

    def statement(self, f: dict) -> dict:
        date = _str(f, "date", 10)
        if not _DATE.fullmatch(date):
            raise Refused("PARAM_ERROR", f"date {date!r} is not YYYY-MM-DD", status=400)
        con = self.store.con
        lines = [{"type": "PAY", "out_trade_no": r[0], "trade_no": r[1], "amount": r[2], "at": r[3]}
                 for r in con.execute("SELECT out_trade_no, trade_no, charged, paid_at FROM trade "
                                      "WHERE charged IS NOT NULL AND substr(paid_at, 1, 10) = ?", (date,))]
        lines += [{"type": "REFUND", "out_trade_no": r[0], "trade_no": r[1], "out_refund_no": r[2],
                   "amount": r[3], "at": r[4]}
                  for r in con.execute("SELECT r.out_trade_no, t.trade_no, r.out_refund_no, r.amount, r.refunded_at "
                                       "FROM refund r JOIN trade t USING (out_trade_no) "
                                       "WHERE substr(r.refunded_at, 1, 10) = ?", (date,))]
        lines.sort(key=lambda x: (x["at"], x["type"], x["out_trade_no"], x.get("out_refund_no", "")))
        mode = self.take_fault("statement")
        if mode == "statement_extra":
            lines.append({"type": "PAY", "out_trade_no": "X" + secrets.token_hex(8).upper(),
                          "trade_no": "T" + secrets.token_hex(12), "amount": 100 * self.rng.randint(1, 99),
                          "at": f"{date}T23:59:00+08:00"})
        elif mode == "statement_missing" and lines:
            lines.pop()
        self.store.count("statements")
        return {"date": date, "count": len(lines), "digest": paygate.statement_digest(lines),
                "transactions": lines}

    # ---- signing
    def answer(self, fields: dict, status: int = 200):
        """A signed JSON answer (a statement's lines are covered by its digest, not its sign)."""
        from starlette.responses import Response

        lines = fields.pop("transactions", None)
        out = paygate.signed({"mch_id": self.mch_id, **fields}, self.key)
        if lines is not None:
            out["transactions"] = lines
        return Response(msgspec.json.encode(out), status_code=status, media_type="application/json")

    def dev_trade(self, t: sqlite3.Row) -> dict:
        """A trade as /_dev/trades shows it."""
        notes = []
        for n in self.store.notifications(t["out_trade_no"]):
            attempts = [dict(a) for a in self.store.attempts(n["id"])]
            notes.append({"id": n["id"], "state": n["state"], "want": n["want"], "deliveries": n["deliveries"],
                          "attempts": attempts})
        return {"out_trade_no": t["out_trade_no"], "trade_no": t["trade_no"], "status": t["status"],
                "amount": t["amount"], "charged": t["charged"], "refunded": t["refunded"],
                "refunds": [_refund_fields(r) for r in self.store.refunds(t["out_trade_no"])],
                "paid_at": t["paid_at"], "closed_at": t["closed_at"], "created_at": iso_cst(t["created_at"]),
                "expires_at": iso_cst(t["expires_at"]), "paying_after_close": t["late_pay_at"] is not None,
                "description": t["description"], "payer_phone": t["payer_phone"], "cashier_url": t["cashier_url"],
                "notify_url": t["notify_url"], "return_url": t["return_url"],
                "faults": [m for m in t["faults"].split(",") if m],
                "notify_attempts": sum(len(n["attempts"]) for n in notes),
                "notify_deliveries": sum(n["deliveries"] for n in notes),
                "notifications": notes}


def _refund_fields(r: sqlite3.Row) -> dict:
    return {"out_trade_no": r["out_trade_no"], "out_refund_no": r["out_refund_no"], "refund_id": r["refund_id"],
            "amount": r["amount"], "status": "SUCCESS", "refunded_at": r["refunded_at"]}


# ------------------------------------------------------ request fields
def _str(f: dict, name: str, max_len: int) -> str:
    v = f.get(name, "")
    if not isinstance(v, str):
        raise Refused("PARAM_ERROR", f"{name} is not a string", status=400)
    if len(v) > max_len:
        raise Refused("PARAM_ERROR", f"{name} is longer than {max_len} characters", status=400)
    return v


def _no(f: dict, name: str) -> str:
    v = _str(f, name, 32)
    if not _NO.fullmatch(v):
        raise Refused("PARAM_ERROR", f"{name} {v!r} is not 1 to 32 letters, digits, '_' or '-'", status=400)
    return v


def _int(f: dict, name: str, lo: int, hi: int, default: int | None = None) -> int:
    v = f.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool):
        raise Refused("PARAM_ERROR", f"{name} is not an integer", status=400)
    if not lo <= v <= hi:
        raise Refused("PARAM_ERROR", f"{name} {v} is not between {lo} and {hi}", status=400)
    return v


def _url(f: dict, name: str) -> str:
    v = _str(f, name, 512)
    if not re.match(r"https?://[^\s/]+", v):
        raise Refused("PARAM_ERROR", f"{name} {v[:80]!r} is not an http(s) address", status=400)
    return v


# --------------------------------------------------------------- pages
_STYLE = """body{font-family:system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC",sans-serif;margin:0;
background:#f2f2f2;color:#222}main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem}
h1{font-size:1.1rem;color:#555;font-weight:normal}.amount{font-size:2.4rem;font-weight:bold;margin:.5rem 0}
.card{background:#fff;border-radius:.75rem;padding:1.25rem;margin-bottom:1rem}.muted{color:#777}
button{width:100%;font-size:1.15rem;padding:.9rem;border:0;border-radius:.5rem;background:#07c160;color:#fff}
a.back{display:block;text-align:center;margin-top:1rem;color:#576b95;text-decoration:none;padding:.6rem}
.state{font-size:1.3rem;font-weight:bold}"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>")


def cashier_page(gw: Gateway, t: sqlite3.Row) -> str:
    e = html.escape
    amount = t["charged"] if t["charged"] is not None else t["amount"]
    head = (f'<h1>收银台 Checkout</h1><div class="card"><div class="muted" id="merchant">商户 Merchant: '
            f'{e(gw.mch_id)}</div><div id="description">{e(t["description"])}</div>'
            f'<div class="amount" id="amount">¥{yuan(amount)}</div>')
    if t["payer_phone"]:
        head += f'<div class="muted" id="phone">付款人 Payer: {e(mask_phone(t["payer_phone"]))}</div>'
    back = e(t["return_url"], quote=True)
    if t["status"] == "NOTPAY":
        return _page("收银台 Checkout", head + f'</div><form method="post" action="{e(t["trade_no"])}/pay">'
                     f'<button id="pay" type="submit">确认支付 Pay ¥{yuan(amount)}</button></form>'
                     f'<a class="back" id="cancel" href="{back}">取消 Cancel</a>')
    if t["status"] == "CLOSED":
        state = "交易已关闭 This payment is closed"
    elif t["status"] == "REFUND":
        state = "已退款 Refunded"
    else:
        state = "已支付 Paid"
    return _page(state, head + f'<div class="state" id="state">{state}</div></div>'
                 f'<a class="back" id="back" href="{back}">返回商家 Back to the store</a>')


# ----------------------------------------------------------------- app
def make_app(db_path: str | Path, key: bytes, mch_id: str = "m-store-1", *, public_url: str,
             notify_delay: float = 0.2, notify_retry: tuple[float, ...] = NOTIFY_RETRY_S):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
    from starlette.routing import Route

    gw = Gateway(db_path, key, mch_id, public_url=public_url, notify_delay=notify_delay,
                 notify_retry=notify_retry)
    store = gw.store

    def api(name: str, handler):
        async def endpoint(request: Request):
            store.count(f"api.{name}")
            body = await request.body()
            known: dict = {}
            verified = False
            try:
                try:
                    f = paygate.decode_fields(body)
                except paygate.GatewayError as exc:
                    raise Refused("PARAM_ERROR", f"the body is not a flat JSON object ({exc})", status=400) from None
                if isinstance(f.get("out_trade_no"), str):
                    known["out_trade_no"] = f["out_trade_no"][:32]
                if f.get("mch_id") != mch_id:
                    raise Refused("SIGN_ERROR", f"unknown merchant {str(f.get('mch_id'))[:32]!r}", status=400)
                try:
                    paygate.verify(f, key)
                except paygate.GatewayError as exc:
                    raise Refused("SIGN_ERROR", f"the signature does not check ({exc.detail})", status=400) from None
                verified = True
                status, fields = 200, {"code": "OK", **handler(f)}
            except Refused as exc:
                store.count(f"refused.{exc.code}")
                status, fields = exc.status, {**known, **exc.fields, "code": exc.code, "message": exc.message}
            if verified:  # the faults count the store's own calls
                slow_s = gw.fault.slow_s
                mode = gw.take_fault("api", name)
                if mode == "slow":
                    await asyncio.sleep(slow_s)
                elif mode == "timeout":
                    await asyncio.sleep(HANG_S)
            return gw.answer(fields, status)
        return endpoint

    async def cashier(request: Request):
        t = store.trade_by_no(request.path_params["trade_no"])
        if t is None:
            return HTMLResponse(_page("404", '<div class="card state">找不到这笔交易 No such payment</div>'), 404)
        return HTMLResponse(cashier_page(gw, gw.fresh(t)))

    async def cashier_pay(request: Request):
        t = store.trade_by_no(request.path_params["trade_no"])
        wants_json = "application/json" in request.headers.get("accept", "")
        if t is None:
            store.count("refused.cashier_unknown")
            if wants_json:
                return JSONResponse({"status": "", "error": "unknown_trade", "message": "no such payment"}, 404)
            return HTMLResponse(_page("404", '<div class="card state">找不到这笔交易 No such payment</div>'), 404)
        t = gw.fresh(t)
        if t["status"] == "NOTPAY":
            t = await gw.paid(t)
        elif t["status"] == "CLOSED":
            store.count("refused.cashier_closed")
            if wants_json:
                return JSONResponse({"status": "CLOSED", "return_url": t["return_url"]}, 409)
            return HTMLResponse(cashier_page(gw, t), 409)
        if wants_json:
            return JSONResponse({"status": t["status"], "return_url": t["return_url"],
                                 "out_trade_no": t["out_trade_no"], "trade_no": t["trade_no"]})
        return RedirectResponse(t["return_url"], status_code=303)

    async def dev_json(request: Request):
        try:
            got = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise Refused("bad_request", f"the body is not JSON: {exc}", status=400) from None
        if not isinstance(got, dict):
            raise Refused("bad_request", "the body is not a JSON object", status=400)
        return got

    def dev_refused(exc: Refused):
        store.count(f"refused.dev_{exc.code}")
        return JSONResponse({"error": exc.code, "message": exc.message}, exc.status)

    async def dev_pay(request: Request):
        try:
            got = await dev_json(request)
            no = got.get("out_trade_no")
            t = store.trade(no) if isinstance(no, str) else None
            if t is None:
                raise Refused("unknown_trade", f"no trade {str(no)[:40]!r}", status=404)
        except Refused as exc:
            return dev_refused(exc)
        t = gw.fresh(t)
        if t["status"] == "NOTPAY":
            t = await gw.paid(t)
            return JSONResponse(gw.dev_trade(t))
        return JSONResponse(gw.dev_trade(t), 409 if t["status"] == "CLOSED" else 200)

    async def get_fault(request: Request):
        return JSONResponse(msgspec.to_builtins(gw.fault))

    async def set_fault(request: Request):
        try:
            f = msgspec.json.decode(await request.body(), type=Fault)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return dev_refused(Refused("bad_fault", str(exc), status=400))
        if f.mode not in MODES:
            return dev_refused(Refused("bad_fault", f"mode is one of {', '.join(MODES)}", status=400))
        if f.count < 0 or f.slow_s < 0 or not 0 <= f.rate <= 1:
            return dev_refused(Refused("bad_fault", "count and slow_s are not negative, rate is 0 to 1",
                                       status=400))
        gw.set_fault(f if f.mode != "ok" else Fault())
        log.info("fault mode %s", msgspec.to_builtins(gw.fault))
        return JSONResponse(msgspec.to_builtins(gw.fault))

    async def dev_trades(request: Request):
        rows = store.con.execute("SELECT * FROM trade ORDER BY created_at, rowid").fetchall()
        return JSONResponse([gw.dev_trade(gw.fresh(t)) for t in rows])

    async def dev_stats(request: Request):
        return JSONResponse(store.stats())

    lifespan = gw.lifespan(timeout_s=NOTIFY_TIMEOUT_S, user_agent="restobox-paygate-dev/1")
    app = Starlette(lifespan=lifespan, routes=[
        Route(f"/{paygate.API}/pay/create", api("create", gw.create), methods=["POST"]),
        Route(f"/{paygate.API}/pay/query", api("query", gw.query), methods=["POST"]),
        Route(f"/{paygate.API}/pay/close", api("close", gw.close), methods=["POST"]),
        Route(f"/{paygate.API}/pay/refund", api("refund", gw.refund), methods=["POST"]),
        Route(f"/{paygate.API}/statement", api("statement", gw.statement), methods=["POST"]),
        Route("/cashier/{trade_no}", cashier, methods=["GET"]),
        Route("/cashier/{trade_no}/pay", cashier_pay, methods=["POST"]),
        Route("/_dev/pay", dev_pay, methods=["POST"]),
        Route("/_dev/fault", get_fault, methods=["GET"]),
        Route("/_dev/fault", set_fault, methods=["POST"]),
        Route("/_dev/trades", dev_trades, methods=["GET"]),
        Route("/_dev/stats", dev_stats, methods=["GET"]),
    ])
    app.state.gateway = gw
    return app


def serve(port: int, db_path: str, key: bytes, mch_id: str, *, host: str = "127.0.0.1", public_url: str = "",
          notify_delay: float = 0.2, notify_retry: tuple[float, ...] = NOTIFY_RETRY_S) -> int:
    public_url = public_url or f"http://127.0.0.1:{port}"
    app = make_app(db_path, key, mch_id, public_url=public_url, notify_delay=notify_delay,
                   notify_retry=notify_retry)
    log.info("payment gateway simulator on http://%s:%d for merchant %s (cashier at %s, records in %s)",
             host, port, mch_id, public_url, db_path)
    return simkit.run(app, host, port)
