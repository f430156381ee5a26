"""The group-buy voucher platform, simulated, for the demo and the tests
(restobox/vouchers.py describes its API).

    restobox voucher-dev [--port 8720] [--db voucher-dev.db] [--app-id store-app-1] --key-file FILE

The server side of restobox/vouchers.py's protocol, for one store account
(``app_id``): every API request's signature is checked, every answer is
signed (refusals too), a redemption's ``request_id`` is its idempotency key
(the same request again is answered with the redemption it made; the code
redeemed by another request is refused ``ALREADY_REDEEMED``). Vouchers,
redemptions, the fault mode and counters are kept in SQLite, so a restart
loses nothing. A new database starts with a few demo vouchers
(:data:`DEMO_VOUCHERS`).

For tests and the demo:

- ``POST /_dev/vouchers`` ``[{"code", "title_zh", "title_en", "value_fen",
  "expires"}]`` adds vouchers (or replaces them, with their redemptions);
  ``expires`` is a date (``YYYY-MM-DD``, the last day it can be used, in
  UTC+8) or an ISO time;
- ``GET /_dev/vouchers``: every voucher with its status and redemptions;
- ``POST /_dev/fault`` ``{"mode": ..., "count": n, "slow_s": s}``, modes:
  ``down`` (HTTP 503, nothing done: the platform is out), ``slow`` (the
  work done, the answer after ``slow_s``), ``timeout`` (the work done, a
  redemption made, and the answer never comes), ``ok``. ``count``: how
  many API calls the mode applies to (0: until changed). ``GET
  /_dev/fault`` the mode;
- ``GET /_dev/stats``: counters.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import msgspec

from restobox import paygate
from restobox.dev import simkit
from restobox.dev.simkit import CST, iso_cst

log = logging.getLogger("restobox.dev.voucher_dev")

MODES = ("ok", "down", "slow", "timeout")
HANG_S = 3600.0  # timeout: longer than any client waits

DEMO_VOUCHERS = (
    {"code": "880000000001", "title_zh": "双人套餐", "title_en": "Set meal for two", "value_fen": 8800,
     "expires": "2099-12-31"},
    {"code": "880000000002", "title_zh": "50元代金券", "title_en": "¥50 voucher", "value_fen": 5000,
     "expires": "2099-12-31"},
    {"code": "880000000003", "title_zh": "100元代金券", "title_en": "¥100 voucher", "value_fen": 10000,
     "expires": "2099-12-31"},
    {"code": "880000000009", "title_zh": "过期的代金券", "title_en": "An expired voucher", "value_fen": 2000,
     "expires": "2020-01-31"},
)

_CODE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9-]{3,31}\Z")
_REQUEST = re.compile(r"\A[A-Za-z0-9-]{1,64}\Z")


class Fault(msgspec.Struct, forbid_unknown_fields=True):
    mode: str = "ok"
    count: int = 0
    slow_s: float = 1.0


class NewVoucher(msgspec.Struct, forbid_unknown_fields=True):
    code: str
    title_zh: str
    title_en: str
    value_fen: int
    expires: str = "2099-12-31"


class Refused(Exception):
    """An API call the platform refuses: its ``code`` and ``message`` (signed, in the answer)."""

    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def expired(expires: str, now: float) -> bool:
    """Past ``expires`` (a last day in UTC+8, or an ISO time)."""
    if len(expires) == 10:
        return datetime.fromtimestamp(now, CST).date().isoformat() > expires
    try:
        at = datetime.fromisoformat(expires)
    except ValueError:
        return True
    if at.tzinfo is None:
        at = at.replace(tzinfo=CST)
    return now > at.timestamp()


class Platform:
    """The platform's records (SQLite; one lock, one connection)."""

    def __init__(self, path: str | Path, app_id: str, key: bytes) -> None:
        self.app_id = app_id
        self.key = key
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.con.row_factory = sqlite3.Row
        self.con.execute("PRAGMA journal_mode = wal")
        self.con.executescript("""
            CREATE TABLE IF NOT EXISTS voucher (
                code TEXT PRIMARY KEY, title_zh TEXT NOT NULL, title_en TEXT NOT NULL, value_fen INTEGER NOT NULL,
                expires TEXT NOT NULL, created_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS redemption (
                redemption_id TEXT PRIMARY KEY, code TEXT NOT NULL, request_id TEXT NOT NULL UNIQUE,
                store_id TEXT NOT NULL, order_ref TEXT NOT NULL, value_fen INTEGER NOT NULL,
                redeemed_at TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS redemption_code ON redemption (code);
            CREATE TABLE IF NOT EXISTS fault (id INTEGER PRIMARY KEY CHECK (id = 1), mode TEXT NOT NULL,
                count INTEGER NOT NULL, slow_s REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS stat (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        """)
        self.lock = threading.Lock()
        with self.lock:
            if self.con.execute("SELECT COUNT(*) FROM voucher").fetchone()[0] == 0:
                self._add([NewVoucher(**v) for v in DEMO_VOUCHERS])

    # ---------------------------------------------------------- records
    def _add(self, vouchers: list[NewVoucher]) -> None:
        now = time.time()
        with simkit.transaction(self.con):
            for v in vouchers:
                self.con.execute("DELETE FROM redemption WHERE code = ?", (v.code,))
                self.con.execute("INSERT OR REPLACE INTO voucher (code, title_zh, title_en, value_fen, expires, "
                                 "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                                 (v.code, v.title_zh, v.title_en, v.value_fen, v.expires, now))

    def add(self, vouchers: list[NewVoucher]) -> None:
        with self.lock:
            self._add(vouchers)

    def count(self, key: str) -> None:
        with self.lock:
            self.con.execute("INSERT INTO stat (key, value) VALUES (?, 1) "
                             "ON CONFLICT (key) DO UPDATE SET value = value + 1", (key,))

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(self.con.execute("SELECT key, value FROM stat").fetchall())

    def status(self, v: sqlite3.Row, now: float) -> str:
        if self.con.execute("SELECT 1 FROM redemption WHERE code = ?", (v["code"],)).fetchone():
            return "redeemed"
        return "expired" if expired(v["expires"], now) else "valid"

    def vouchers(self) -> list[dict]:
        now = time.time()
        with self.lock:
            out = []
            for v in self.con.execute("SELECT * FROM voucher ORDER BY code"):
                reds = [dict(r) for r in self.con.execute(
                    "SELECT redemption_id, request_id, store_id, order_ref, value_fen, redeemed_at FROM redemption "
                    "WHERE code = ? ORDER BY redeemed_at", (v["code"],))]
                out.append({"code": v["code"], "title_zh": v["title_zh"], "title_en": v["title_en"],
                            "value_fen": v["value_fen"], "expires": v["expires"], "status": self.status(v, now),
                            "redemptions": reds})
            return out

    # ------------------------------------------------------------ fault
    def fault(self) -> Fault:
        with self.lock:
            row = self.con.execute("SELECT mode, count, slow_s FROM fault WHERE id = 1").fetchone()
        return Fault(row["mode"], row["count"], row["slow_s"]) if row else Fault()

    def set_fault(self, f: Fault) -> None:
        with self.lock:
            self.con.execute("INSERT OR REPLACE INTO fault (id, mode, count, slow_s) VALUES (1, ?, ?, ?)",
                             (f.mode, f.count, f.slow_s))

    def take_fault(self) -> Fault:
        """The mode for this API call (a counted one spent by it)."""
        with self.lock:
            row = self.con.execute("SELECT mode, count, slow_s FROM fault WHERE id = 1").fetchone()
            if row is None or row["mode"] == "ok":
                return Fault()
            f = Fault(row["mode"], row["count"], row["slow_s"])
            if f.count:
                left = f.count - 1
                self.con.execute("UPDATE fault SET mode = ?, count = ? WHERE id = 1",
                                 ("ok" if left == 0 else f.mode, left))
        self.count(f"faults.{f.mode}")
        return f

    # -------------------------------------------------------------- API
    def verify(self, f: dict) -> dict:
        code = _field(f, "voucher_code", _CODE)
        with self.lock:
            v = self.con.execute("SELECT * FROM voucher WHERE code = ?", (code,)).fetchone()
            if v is None:
                return {"voucher_code": code, "status": "unknown"}
            return {"voucher_code": code, "status": self.status(v, time.time()), "title_zh": v["title_zh"],
                    "title_en": v["title_en"], "value_fen": v["value_fen"], "expires_at": v["expires"]}

    def redeem(self, f: dict) -> dict:
        code = _field(f, "voucher_code", _CODE)
        request_id = _field(f, "request_id", _REQUEST)
        store_id = str(f.get("store_id", ""))[:64]
        order_ref = str(f.get("order_ref", ""))[:64]
        now = time.time()
        with self.lock, simkit.transaction(self.con):
            return self._redeem(code, request_id, store_id, order_ref, now)

    def _redeem(self, code: str, request_id: str, store_id: str, order_ref: str, now: float) -> dict:
        done = self.con.execute("SELECT * FROM redemption WHERE request_id = ?", (request_id,)).fetchone()
        if done is not None:
            if done["code"] != code:
                raise Refused("PARAM_CONFLICT", f"request {request_id} redeemed another voucher")
            self.con.execute("INSERT INTO stat (key, value) VALUES ('redeem_repeats', 1) "
                             "ON CONFLICT (key) DO UPDATE SET value = value + 1")
            return _redemption(done)
        v = self.con.execute("SELECT * FROM voucher WHERE code = ?", (code,)).fetchone()
        if v is None:
            raise Refused("NOT_FOUND", "no such voucher")
        if self.con.execute("SELECT 1 FROM redemption WHERE code = ?", (code,)).fetchone():
            raise Refused("ALREADY_REDEEMED", "the voucher was redeemed by another request")
        if expired(v["expires"], now):
            raise Refused("EXPIRED", f"the voucher could be used until {v['expires']}")
        rid = "VR" + secrets.token_hex(10).upper()
        self.con.execute("INSERT INTO redemption (redemption_id, code, request_id, store_id, order_ref, value_fen, "
                         "redeemed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (rid, code, request_id, store_id, order_ref, v["value_fen"], iso_cst(now)))
        self.con.execute("INSERT INTO stat (key, value) VALUES ('redemptions', 1) "
                         "ON CONFLICT (key) DO UPDATE SET value = value + 1")
        return _redemption(self.con.execute("SELECT * FROM redemption WHERE redemption_id = ?", (rid,)).fetchone())

    def answer(self, fields: dict, status: int = 200):
        from starlette.responses import Response

        out = paygate.signed({"app_id": self.app_id, **fields}, self.key)
        return Response(msgspec.json.encode(out), status_code=status, media_type="application/json")


def _redemption(r: sqlite3.Row) -> dict:
    return {"voucher_code": r["code"], "request_id": r["request_id"], "redemption_id": r["redemption_id"],
            "value_fen": r["value_fen"], "redeemed_at": r["redeemed_at"]}


def _field(f: dict, name: str, pattern: re.Pattern) -> str:
    v = f.get(name)
    if not isinstance(v, str) or not pattern.fullmatch(v):
        raise Refused("PARAM_ERROR", f"{name} is missing or not valid", status=400)
    return v


def make_app(db_path: str | Path, key: bytes, app_id: str = "store-app-1"):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    p = Platform(db_path, app_id, key)

    def api(name: str, handler):
        async def endpoint(request: Request):
            p.count(f"api.{name}")
            fault = p.take_fault()
            if fault.mode == "down":
                return JSONResponse({"error": "service unavailable"}, status_code=503)
            body = await request.body()
            known: dict = {}
            try:
                try:
                    f = paygate.decode_fields(body)
                except paygate.GatewayError as exc:
                    raise Refused("PARAM_ERROR", f"the body is not a flat JSON object ({exc})", 400) from None
                if isinstance(f.get("voucher_code"), str):
                    known["voucher_code"] = f["voucher_code"][:32]
                if f.get("app_id") != app_id:
                    raise Refused("SIGN_ERROR", f"unknown app {str(f.get('app_id'))[:32]!r}", 400)
                try:
                    paygate.verify(f, key)
                except paygate.GatewayError as exc:
                    raise Refused("SIGN_ERROR", f"the signature does not check ({exc.detail})", 400) from None
                status, fields = 200, {"code": "OK", **handler(f)}
            except Refused as exc:
                p.count(f"refused.{exc.code}")
                status, fields = exc.status, {**known, "code": exc.code, "message": exc.message}
            if fault.mode == "slow":
                await asyncio.sleep(fault.slow_s)
            elif fault.mode == "timeout":
                await asyncio.sleep(HANG_S)
            return p.answer(fields, status)
        return endpoint

    async def add_vouchers(request: Request):
        try:
            got = await simkit.dev_body(request, list[NewVoucher] | NewVoucher, Refused)
            got = got if isinstance(got, list) else [got]
            for v in got:
                if not _CODE.fullmatch(v.code) or v.value_fen <= 0:
                    raise Refused("bad_request", f"voucher {v.code[:40]!r}: a code of 4 to 32 letters, digits "
                                                 "or '-' and a value above 0", 400)
        except Refused as exc:
            return JSONResponse({"error": exc.code, "message": exc.message}, exc.status)
        p.add(got)
        return JSONResponse({"added": len(got)})

    async def get_vouchers(request: Request):
        return JSONResponse(p.vouchers())

    async def get_fault(request: Request):
        return JSONResponse(msgspec.to_builtins(p.fault()))

    async def set_fault(request: Request):
        try:
            f = await simkit.fault_body(request, Fault, MODES, Refused)
        except Refused as exc:
            return JSONResponse({"error": exc.code, "message": exc.message}, exc.status)
        p.set_fault(f)
        log.info("fault mode %s (count %d)", f.mode, f.count)
        return JSONResponse(msgspec.to_builtins(f))

    async def stats(request: Request):
        return JSONResponse(p.stats())

    app = Starlette(routes=[
        Route("/v1/voucher/verify", api("verify", p.verify), methods=["POST"]),
        Route("/v1/voucher/redeem", api("redeem", p.redeem), methods=["POST"]),
        Route("/_dev/vouchers", add_vouchers, methods=["POST"]),
        Route("/_dev/vouchers", get_vouchers, methods=["GET"]),
        Route("/_dev/fault", set_fault, methods=["POST"]),
        Route("/_dev/fault", get_fault, methods=["GET"]),
        Route("/_dev/stats", stats, methods=["GET"]),
    ])
    app.state.platform = p
    return app


def serve(port: int, db_path: str, key: bytes, app_id: str, host: str = "127.0.0.1") -> int:
    app = make_app(db_path, key, app_id)
    log.info("voucher platform (dev) on http://%s:%d for app %s (%s)", host, port, app_id, db_path)
    return simkit.run(app, host, port)
