"""The aggregated payment gateway's API (docs/paygate.md): signing, the
messages, and a client. Phone payment on the table QR page goes through it
(the WeChat Pay / Alipay H5 style of the aggregators).

Every request and every answer is a flat JSON object of strings and
integers, signed: ``sign`` is HMAC-SHA256 (hex, upper case) with the
merchant key over the other non-empty fields as ``key=value`` pairs sorted
by key and joined with ``&``. A notification the gateway posts is signed the
same way. An answer or a notification whose signature does not check is
refused (``bad_signature``), never believed.

The merchant order number (``out_trade_no``) is the idempotency key: the
store makes it once per payment intent and sends the same one on every
retry; the gateway answers a repeated create with the payment it already
made (the same ``trade_no`` and cashier address) and refuses the same
number with another amount (``PARAM_CONFLICT``).

Calls (POST, JSON body, answer JSON):

- ``/v1/pay/create``: out_trade_no, amount (fen), description, notify_url,
  return_url, payer_phone, expire_s → a :class:`Trade` (status NOTPAY)
  with its ``cashier_url``, the wallet page the diner's phone goes to.
- ``/v1/pay/query``: out_trade_no → a :class:`Trade`.
- ``/v1/pay/close``: out_trade_no → a :class:`Trade` (CLOSED; SUCCESS with
  code ``ORDER_PAID`` when it was paid first).
- ``/v1/pay/refund``: out_trade_no, out_refund_no (the refund's own
  idempotency key), amount, reason → a :class:`Refund`.
- ``/v1/statement``: date (YYYY-MM-DD, the gateway's day in UTC+8) → the
  day's transactions (:class:`Statement`).

Every failure is a :class:`GatewayError` with a reason code (``REASONS``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Literal

import msgspec

API = "v1"

TradeStatus = Literal["NOTPAY", "SUCCESS", "CLOSED", "REFUND"]

REASONS = {
    "gateway_unreachable": "the payment gateway cannot be reached (no internet, DNS, connection refused)",
    "gateway_timeout": "the payment gateway did not answer in time",
    "gateway_http_error": "the payment gateway answered with an HTTP error",
    "gateway_bad_json": "the payment gateway's answer is not JSON",
    "gateway_bad_schema": "the payment gateway's answer is not the API's shape",
    "bad_signature": "the signature does not check with the merchant key: not from the gateway",
    "gateway_refused": "the payment gateway refused the request",
    "order_closed": "the gateway has closed this payment",
    "order_paid": "the gateway says this payment is paid",
    "order_not_exist": "the gateway does not know this payment",
    "param_conflict": "the gateway has this payment with another amount",
}

# the gateway's answer codes that are not a failure of the call itself
_CODE_REASONS = {"ORDER_CLOSED": "order_closed", "ORDER_PAID": "order_paid", "ORDER_NOT_EXIST": "order_not_exist",
                 "PARAM_CONFLICT": "param_conflict"}


class GatewayError(Exception):
    def __init__(self, reason: str, detail: str = "", *, answer: dict | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.answer = answer or {}
        super().__init__(f"{reason}: {detail}" if detail else reason)

    @property
    def words(self) -> str:
        return REASONS.get(self.reason, self.reason)


# ------------------------------------------------------------- signing
Fields = dict[str, Any]


def canonical(fields: Fields) -> bytes:
    """What is signed: ``k=v`` of every non-empty field but ``sign``, sorted, joined by ``&``."""
    parts = []
    for k in sorted(fields):
        v = fields[k]
        if k == "sign" or v is None or v == "":
            continue
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise GatewayError("gateway_bad_schema", f"field {k!r} is {type(v).__name__}, not a string or integer")
        parts.append(f"{k}={v}")
    return "&".join(parts).encode()


def sign(fields: Fields, key: bytes) -> str:
    return hmac.new(key, canonical(fields), hashlib.sha256).hexdigest().upper()


def signed(fields: Fields, key: bytes) -> Fields:
    """``fields`` with a ``nonce`` (if none) and their ``sign``."""
    out = {k: v for k, v in fields.items() if k != "sign"}
    out.setdefault("nonce", secrets.token_hex(8))
    out["sign"] = sign(out, key)
    return out


def verify(fields: Fields, key: bytes) -> Fields:
    """``fields`` if their signature checks; GatewayError(bad_signature) otherwise."""
    given = fields.get("sign")
    if not isinstance(given, str) or not given:
        raise GatewayError("bad_signature", "no sign")
    try:
        want = sign(fields, key)
    except GatewayError as exc:
        raise GatewayError("bad_signature", exc.detail) from None
    if not hmac.compare_digest(want, given.upper()):
        raise GatewayError("bad_signature", f"sign {given[:12]}… does not check")
    return fields


# ------------------------------------------------------------ messages
class Trade(msgspec.Struct, kw_only=True):
    """A payment at the gateway, as it answers create, query and close, and
    as its notifications say (``code`` is "OK" in answers, absent in a
    notification)."""

    out_trade_no: str
    trade_no: str = ""
    status: TradeStatus
    amount: int
    """Fen: what the diner is charged (create) or was charged (SUCCESS)."""
    paid_at: str = ""
    refunded: int = 0
    cashier_url: str = ""
    code: str = "OK"


class Refund(msgspec.Struct, kw_only=True):
    out_trade_no: str
    out_refund_no: str
    refund_id: str = ""
    amount: int
    status: Literal["SUCCESS", "PROCESSING"] = "SUCCESS"
    refunded_at: str = ""
    code: str = "OK"


class StatementLine(msgspec.Struct, kw_only=True):
    type: Literal["PAY", "REFUND"]
    out_trade_no: str
    trade_no: str = ""
    out_refund_no: str = ""
    amount: int
    at: str


class Statement(msgspec.Struct, kw_only=True):
    date: str
    transactions: tuple[StatementLine, ...]


def as_trade(fields: Fields) -> Trade:
    """A verified answer or notification as a Trade (GatewayError if it is not one)."""
    try:
        return msgspec.convert(fields, Trade, strict=False, from_attributes=False)
    except msgspec.ValidationError as exc:
        raise GatewayError("gateway_bad_schema", str(exc)) from None


def as_refund(fields: Fields) -> Refund:
    try:
        return msgspec.convert(fields, Refund, strict=False)
    except msgspec.ValidationError as exc:
        raise GatewayError("gateway_bad_schema", str(exc)) from None


def parse_notification(body: bytes, key: bytes) -> Fields:
    """A notification's body, checked: JSON, flat, signed with ``key``,
    a Trade. Returns its fields (GatewayError otherwise)."""
    fields = decode_fields(body)
    verify(fields, key)
    as_trade(fields)
    return fields


def decode_fields(body: bytes) -> Fields:
    try:
        fields = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise GatewayError("gateway_bad_json", f"{exc}: {body[:80]!r}") from None
    if not isinstance(fields, dict):
        raise GatewayError("gateway_bad_schema", "not a JSON object")
    for k, v in fields.items():
        if isinstance(v, bool) or not isinstance(v, (str, int)) and k != "transactions":
            raise GatewayError("gateway_bad_schema", f"field {k!r} is {type(v).__name__}")
    return fields


def merchant_no(order_id: str, attempt: int) -> str:
    """The merchant order number of an order's ``attempt``-th phone
    payment: 32 characters at most, letters and digits (what the wallets
    take), the same for every retry of that attempt."""
    return f"RB{order_id.replace('-', '')[:26]}{attempt:02d}"


def refund_key(merchant_no: str, target: int) -> str:
    """The out_refund_no that brings a payment's refunds up to ``target``
    fen in all (a refund made at the counter): the same for every retry,
    another for the next refund."""
    return "F" + hashlib.sha1(f"{merchant_no}:{target}".encode()).hexdigest()[:31]


# -------------------------------------------------------------- client
class Unreached(Exception):
    """A signed request that got no answer: ``timeout`` (none in time) or
    not (no connection, DNS, refused)."""

    def __init__(self, timeout: bool, detail: str) -> None:
        super().__init__(detail)
        self.timeout = timeout
        self.detail = detail


def post_signed(client, url: str, fields: Fields, key: bytes):
    """POST ``fields`` signed with ``key`` as JSON with the httpx ``client``;
    the response (whatever its status), or Unreached. The gateway's and
    the voucher platform's clients share it."""
    import httpx

    body = msgspec.json.encode(signed(fields, key))
    try:
        return client.post(url, content=body, headers={"Content-Type": "application/json"})
    except httpx.TimeoutException as exc:
        raise Unreached(True, str(exc) or type(exc).__name__) from None
    except (httpx.TransportError, OSError) as exc:
        raise Unreached(False, str(exc) or type(exc).__name__) from None


class PaygateClient:
    """Calls to the gateway (synchronous; the page runs them in a thread).
    Every answer's signature is checked before it is believed."""

    def __init__(self, url: str, mch_id: str, key: bytes, *, timeout_s: float = 5.0, transport=None) -> None:
        import httpx

        self.base = url.rstrip("/")
        self.mch_id = mch_id
        self.key = key
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport,
                                   headers={"User-Agent": "restobox-paygate/1"})

    @classmethod
    def from_config(cls, cfg, **kw) -> "PaygateClient":
        p = cfg.paygate
        return cls(p.url, p.mch_id, p.key(), timeout_s=p.timeout_s, **kw)

    def close(self) -> None:
        self.client.close()

    def call(self, path: str, fields: Fields) -> Fields:
        """POST the signed ``fields``; the answer's fields, signature checked.
        An answer whose ``code`` is not OK is a GatewayError (with ``answer``)."""
        r = self._post(path, {"mch_id": self.mch_id, **fields})
        if r.status_code >= 500 or r.status_code in (401, 403, 429):
            raise GatewayError("gateway_http_error", f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            fields = decode_fields(r.content)
        except GatewayError:
            if r.status_code != 200:
                raise GatewayError("gateway_http_error", f"HTTP {r.status_code}: {r.text[:200]}") from None
            raise
        verify(fields, self.key)
        code = fields.get("code", "")
        if code != "OK":
            reason = _CODE_REASONS.get(str(code), "gateway_refused")
            raise GatewayError(reason, f"{code}: {str(fields.get('message', ''))[:200]}", answer=fields)
        return fields

    def _post(self, path: str, fields: Fields):
        try:
            return post_signed(self.client, f"{self.base}{path}", fields, self.key)
        except Unreached as exc:
            raise GatewayError("gateway_timeout" if exc.timeout else "gateway_unreachable", exc.detail) from None

    def create(self, out_trade_no: str, amount: int, *, description: str, notify_url: str, return_url: str,
               payer_phone: str = "", expire_s: int = 300) -> tuple[Trade, Fields]:
        f = self.call(f"/{API}/pay/create", {
            "out_trade_no": out_trade_no, "amount": amount, "description": description[:64],
            "notify_url": notify_url, "return_url": return_url, "payer_phone": payer_phone,
            "expire_s": expire_s})
        return as_trade(f), f

    def query(self, out_trade_no: str) -> tuple[Trade, Fields]:
        f = self.call(f"/{API}/pay/query", {"out_trade_no": out_trade_no})
        return as_trade(f), f

    def close_trade(self, out_trade_no: str) -> tuple[Trade, Fields]:
        """CLOSED; a payment paid first answers ORDER_PAID: the GatewayError's
        ``answer`` is then the paid Trade's fields (signed)."""
        f = self.call(f"/{API}/pay/close", {"out_trade_no": out_trade_no})
        return as_trade(f), f

    def refund(self, out_trade_no: str, out_refund_no: str, amount: int, reason: str) -> tuple[Refund, Fields]:
        f = self.call(f"/{API}/pay/refund", {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                                             "amount": amount, "reason": reason[:80]})
        return as_refund(f), f

    def statement(self, date: str) -> Statement:
        r = self._post(f"/{API}/statement", {"mch_id": self.mch_id, "date": date})
        if r.status_code != 200:
            raise GatewayError("gateway_http_error", f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            raw = msgspec.json.decode(r.content)
        except msgspec.DecodeError as exc:
            raise GatewayError("gateway_bad_json", str(exc)) from None
        if not isinstance(raw, dict):
            raise GatewayError("gateway_bad_schema", "not a JSON object")
        # the statement is signed over its date, count and the digest of its lines
        lines = raw.get("transactions")
        check = {k: v for k, v in raw.items() if k != "transactions"}
        verify(check, self.key)
        if check.get("digest") != statement_digest(lines if isinstance(lines, list) else []):
            raise GatewayError("bad_signature", "the statement's lines do not match its digest")
        try:
            return msgspec.convert({"date": raw.get("date"), "transactions": lines}, Statement)
        except msgspec.ValidationError as exc:
            raise GatewayError("gateway_bad_schema", str(exc)) from None


def statement_digest(lines: list) -> str:
    """sha256 (hex) of the statement's lines as canonical JSON (sorted keys)."""
    import json

    return hashlib.sha256(json.dumps(lines, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()
