"""A delivery platform's open API (外卖聚合, docs/delivery.md): signing, the
messages, and the chain's client. Pure protocol plus one synchronous HTTP
client; no server (the platform, simulated, is restobox/dev/delivery_dev.py).

A chain registers one app at a platform (``app_id``, a shared ``secret``);
each of its stores is a platform shop (``shop_id``). Money is integer fen;
times are ISO 8601 with their offset.

Both directions are signed the same way (:func:`sign`, :func:`verify`):
headers ``X-App-Id``, ``X-Timestamp`` (unix seconds) and ``X-Signature``,
hex HMAC-SHA256(secret, timestamp + "." + raw body); a GET signs the empty
body. The receiver refuses a missing or wrong signature (401
``bad_signature``) and a timestamp more than :data:`MAX_SKEW_S` from its
clock (401 ``stale_timestamp``).

Webhooks (platform -> chain) are :class:`OrderCreated` and
:class:`OrderCancelled`; :func:`decode_webhook` turns a body into one of
them or raises :class:`BadMessage` with a reason code. The chain answers
``200 {"code": 0}`` (:data:`ACK`) once it has kept the message durably;
anything else is retried, and a webhook may come twice anyway (same
``event_id``).

Calls (chain -> platform) are :class:`PlatformClient`'s methods; every
failure is a :class:`PlatformError` whose ``retry`` says whether trying the
same call again may succeed (every call is idempotent).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Annotated, Any, Literal, Mapping

import msgspec

API_PREFIX = "/open/v1"
MAX_SKEW_S = 300
"""A signed message whose timestamp is further than this from the receiver's clock is refused (stale_timestamp)."""

ACK = b'{"code": 0}'
"""What the chain answers a webhook it has kept (HTTP 200)."""

OrderState = Literal["new", "accepted", "refused", "ready", "cancelled"]
STATES = ("new", "accepted", "refused", "ready", "cancelled")

REFUSE_REASONS = ("sold_out", "closed", "price_mismatch", "busy", "other")
"""Why a store refuses a new order (the refuse call's ``reason``)."""

CANCEL_REASONS = ("diner_cancelled", "merchant_timeout", "rider_unavailable")
"""Why the platform cancels an order (an order.cancelled webhook's ``reason``).
A merchant's own cancel (the cancel call) carries the reason the chain gives."""

REASONS = {
    # signing (either side answers these with HTTP 401)
    "bad_signature": "the request is not signed with the app's secret (missing or wrong signature, or another app)",
    "stale_timestamp": f"the request's timestamp is more than {MAX_SKEW_S} s away from the receiver's clock",
    # a webhook or an answer that does not decode
    "bad_json": "the body is not JSON",
    "bad_schema": "the message is not the API's shape (a field missing, of the wrong type or out of range)",
    "unknown_type": "a webhook type this release does not know",
    "bad_amounts": "the order's amounts do not add up (items_total, total)",
    # the client's failures that are worth trying again (retry=True)
    "platform_unreachable": "the delivery platform cannot be reached (no internet, DNS, connection refused)",
    "platform_timeout": "the delivery platform did not answer in time",
    "platform_http_error": "the delivery platform answered with a server error (5xx) or an HTTP error without a code",
    "platform_bad_answer": "the delivery platform's answer is not JSON or not the API's shape",
    # the platform's refusals (4xx, retry=False)
    "bad_request": "the platform says the call's body or arguments are wrong",
    "order_not_found": "the platform does not know this order",
    "order_cancelled": "the order is cancelled",
    "order_refused": "the order was refused",
    "order_accepted": "the order is already accepted: it cannot be refused",
    "order_not_accepted": "the order is not accepted yet",
    "shop_closed": "the shop is closed",
    "sold_out": "a dish or option of the order is sold out",
}


# ------------------------------------------------------------- signing
def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: bytes | str, timestamp: int | str, body: bytes) -> str:
    """hex HMAC-SHA256(secret, "<timestamp>." + body)."""
    return hmac.new(_key(secret), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(app_id: str, secret: bytes | str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three headers that sign ``body`` (sent at ``now``, unix seconds)."""
    ts = str(int(time.time() if now is None else now))
    return {"X-App-Id": app_id, "X-Timestamp": ts, "X-Signature": sign(secret, ts, body)}


def verify(secret: bytes | str, headers: Mapping[str, str], body: bytes, now: float | None = None, *,
           app_id: str | None = None) -> str | None:
    """None if ``body`` with ``headers`` is signed with ``secret`` at a time
    within :data:`MAX_SKEW_S` of ``now`` (unix seconds; default the clock);
    else the reason: ``bad_signature`` (missing, malformed or wrong; or, when
    ``app_id`` is given, another app's) or ``stale_timestamp``. The
    signature is checked first: an unsigned message learns nothing about
    the clock."""
    h = {str(k).lower(): v for k, v in headers.items()}
    ts, given = h.get("x-timestamp", ""), h.get("x-signature", "")
    if not ts or not given or not ts.isascii() or not ts.isdigit() or len(ts) > 12:
        return "bad_signature"
    if app_id is not None and h.get("x-app-id") != app_id:
        return "bad_signature"
    if not hmac.compare_digest(sign(secret, ts, body), given.strip().lower()):
        return "bad_signature"
    if abs((time.time() if now is None else now) - int(ts)) > MAX_SKEW_S:
        return "stale_timestamp"
    return None


# ------------------------------------------------------------ messages
Fen = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
When = Annotated[datetime, msgspec.Meta(tz=True)]
"""An ISO 8601 time with its offset (a time without one does not decode)."""


class OrderOption(msgspec.Struct, kw_only=True):
    sku: Id
    name: Text = ""
    price: Fen = 0
    """Fen, per item (added to the item's unit_price)."""


class OrderItem(msgspec.Struct, kw_only=True):
    sku: Id
    name: Text = ""
    qty: Annotated[int, msgspec.Meta(ge=1, le=999)]
    unit_price: Fen
    """Fen: one item without its options."""
    options: list[OrderOption] = []

    @property
    def line_total(self) -> int:
        return self.qty * (self.unit_price + sum(o.price for o in self.options))


class Customer(msgspec.Struct, kw_only=True):
    name_masked: Text = ""
    phone_masked: Text = ""


class Order(msgspec.Struct, kw_only=True):
    """An order as the platform sends it (order.created) and answers it (GET)."""

    platform_order_id: Id
    shop_id: Id
    day_seq: Annotated[int, msgspec.Meta(ge=1)]
    """The order's number in its shop's day at the platform (what the rider says at the counter)."""
    items: Annotated[list[OrderItem], msgspec.Meta(min_length=1)]
    items_total: Fen
    delivery_fee: Fen = 0
    total: Fen
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""
    pickup_at: When
    created_at: When
    customer: Customer = msgspec.field(default_factory=Customer)


class OrderCreated(msgspec.Struct, kw_only=True, tag_field="type", tag="order.created"):
    event_id: Id
    shop_id: Id
    order: Order

    @property
    def type(self) -> str:
        return "order.created"

    @property
    def platform_order_id(self) -> str:
        return self.order.platform_order_id


class OrderCancelled(msgspec.Struct, kw_only=True, tag_field="type", tag="order.cancelled"):
    event_id: Id
    shop_id: Id
    platform_order_id: Id
    reason: Id
    """One of :data:`CANCEL_REASONS` today (a reason not known here still decodes)."""
    message: Annotated[str, msgspec.Meta(max_length=500)] = ""

    @property
    def type(self) -> str:
        return "order.cancelled"


Webhook = OrderCreated | OrderCancelled
WEBHOOK_TYPES = ("order.created", "order.cancelled")


class PlatformOrder(msgspec.Struct, kw_only=True):
    """The platform's answer to GET order: the order and where it stands."""

    order: Order
    state: OrderState
    cancel_reason: str | None = None
    refuse_reason: str | None = None


class BadMessage(Exception):
    """A webhook (or an answer) that does not decode: ``reason`` (one of
    bad_json, bad_schema, unknown_type, bad_amounts), ``detail`` for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    @property
    def words(self) -> str:
        return REASONS.get(self.reason, self.reason)


def check_amounts(order: Order) -> None:
    """BadMessage(bad_amounts) unless items_total is the sum of the lines
    and total is items_total plus the delivery fee."""
    items_total = sum(i.line_total for i in order.items)
    if order.items_total != items_total:
        raise BadMessage("bad_amounts", f"{order.platform_order_id}: items_total {order.items_total} fen, "
                                        f"the items add up to {items_total}")
    if order.total != order.items_total + order.delivery_fee:
        raise BadMessage("bad_amounts", f"{order.platform_order_id}: total {order.total} fen is not items_total "
                                        f"{order.items_total} + delivery_fee {order.delivery_fee}")


_webhook_decoder = msgspec.json.Decoder(Webhook)


def decode_webhook(body: bytes) -> OrderCreated | OrderCancelled:
    """A webhook's body as its message (BadMessage with the reason otherwise).
    Unknown fields are ignored, so a platform may add some."""
    try:
        msg = _webhook_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raw = _peek(body)
        if isinstance(raw, dict) and isinstance(raw.get("type"), str) and raw["type"] not in WEBHOOK_TYPES:
            raise BadMessage("unknown_type", f"type {raw['type'][:40]!r}") from None
        raise BadMessage("bad_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadMessage("bad_json", f"{exc}: {body[:80]!r}") from None
    if isinstance(msg, OrderCreated):
        if msg.order.shop_id != msg.shop_id:
            raise BadMessage("bad_schema", f"the order's shop {msg.order.shop_id!r} is not the webhook's "
                                           f"{msg.shop_id!r}")
        check_amounts(msg.order)
    return msg


def decode_order(data: bytes | dict) -> Order:
    """An Order from JSON bytes or already-decoded JSON (BadMessage otherwise)."""
    try:
        if isinstance(data, (bytes, bytearray, memoryview, str)):
            order = msgspec.json.decode(data, type=Order)
        else:
            order = msgspec.convert(data, Order)
    except msgspec.ValidationError as exc:
        raise BadMessage("bad_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadMessage("bad_json", str(exc)) from None
    check_amounts(order)
    return order


def encode(msg: msgspec.Struct) -> bytes:
    """A message as JSON (webhooks carry their ``type``)."""
    return msgspec.json.encode(msg)


def _seg(s: str) -> str:
    """An id as one path segment."""
    from urllib.parse import quote

    return quote(str(s), safe="")


def _peek(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


# -------------------------------------------------------------- client
class PlatformError(Exception):
    """A call to the platform that did not do what was asked. ``reason``:
    the platform's refusal code (4xx: ``order_cancelled``, ``bad_signature``,
    ...; ``retry`` False: the same call will be refused again) or why there
    was no usable answer (``platform_unreachable``, ``platform_timeout``,
    ``platform_http_error``, ``platform_bad_answer``; ``retry`` True).
    ``detail``: the platform's message or what went wrong, for the log."""

    def __init__(self, reason: str, detail: str = "", retry: bool = False, *, status: int = 0) -> None:
        self.reason = reason
        self.detail = detail
        self.retry = retry
        self.status = status
        super().__init__(f"{reason}: {detail}" if detail else reason)

    @property
    def words(self) -> str:
        return REASONS.get(self.reason, self.reason)


class PlatformClient:
    """The chain's calls to one platform app (synchronous httpx; thread-safe
    as httpx.Client is). Every call is idempotent at the platform: after a
    PlatformError with ``retry`` True, call again with the same arguments."""

    def __init__(self, base_url: str, app_id: str, secret: bytes | str, transport=None,
                 timeout: float = 5.0) -> None:
        import httpx

        self.base = base_url.rstrip("/")
        self.app_id = app_id
        self.secret = _key(secret)
        self.http = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport,
                                 headers={"User-Agent": "restobox-delivery/1"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "PlatformClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the calls
    def accept(self, pid: str) -> dict:
        """The store will make it (from new; accepted or ready again: code 0)."""
        return self.call("POST", f"/orders/{_seg(pid)}/accept", {})

    def refuse(self, pid: str, reason: str, message: str = "") -> dict:
        """The store will not make it; ``reason`` one of :data:`REFUSE_REASONS`."""
        return self.call("POST", f"/orders/{_seg(pid)}/refuse", {"reason": reason, "message": message})

    def ready(self, pid: str) -> dict:
        """Ready for the rider (from accepted)."""
        return self.call("POST", f"/orders/{_seg(pid)}/ready", {})

    def cancel(self, pid: str, reason: str, message: str = "") -> dict:
        """The store cancels an accepted (or ready) order: a store voided it."""
        return self.call("POST", f"/orders/{_seg(pid)}/cancel", {"reason": reason, "message": message})

    def order(self, pid: str) -> PlatformOrder:
        """The order and its state at the platform."""
        answer = self.call("GET", f"/orders/{_seg(pid)}", None)
        try:
            return msgspec.convert(answer, PlatformOrder)
        except msgspec.ValidationError as exc:
            raise PlatformError("platform_bad_answer", f"GET order {pid}: {exc}", True, status=200) from None

    def shop_status(self, shop_id: str, open: bool) -> dict:
        """Open or close the shop in the platform's app."""
        return self.call("POST", f"/shops/{_seg(shop_id)}/status", {"open": bool(open)})

    def stock(self, shop_id: str, skus: dict[str, bool]) -> dict:
        """Mark skus sold out (False) or on sale again (True)."""
        return self.call("POST", f"/shops/{_seg(shop_id)}/stock", {"skus": {k: bool(v) for k, v in skus.items()}})

    # ---- the wire
    def call(self, method: str, path: str, body: dict | None) -> dict:
        """One signed call to ``API_PREFIX + path``; the answer (code 0) as a
        dict, or PlatformError."""
        import httpx

        raw = b"" if body is None else msgspec.json.encode(body)
        headers = signed_headers(self.app_id, self.secret, raw)
        if body is not None:
            headers["Content-Type"] = "application/json"
        what = f"{method} {path}"
        try:
            r = self.http.request(method, f"{self.base}{API_PREFIX}{path}", content=raw or None, headers=headers)
        except httpx.TimeoutException as exc:
            raise PlatformError("platform_timeout", f"{what}: {exc or type(exc).__name__}", True) from None
        except (httpx.TransportError, OSError) as exc:
            raise PlatformError("platform_unreachable", f"{what}: {exc or type(exc).__name__}", True) from None
        status = r.status_code
        answer = _peek(r.content)
        code = answer.get("code") if isinstance(answer, dict) else None
        message = str(answer.get("message", ""))[:300] if isinstance(answer, dict) else ""
        if status >= 500 or status in (408, 429):
            raise PlatformError("platform_http_error", f"{what}: HTTP {status} {message or r.text[:200]}", True,
                                status=status)
        if status >= 400:
            if isinstance(code, str) and code:
                raise PlatformError(code, f"{what}: {message}", False, status=status)
            raise PlatformError("platform_http_error", f"{what}: HTTP {status} {r.text[:200]}", False,
                                status=status)
        if not isinstance(answer, dict):
            raise PlatformError("platform_bad_answer", f"{what}: HTTP {status} {r.text[:200]!r}", True,
                                status=status)
        if code != 0 or isinstance(code, bool):
            if isinstance(code, str) and code:
                raise PlatformError(code, f"{what}: {message}", False, status=status)
            raise PlatformError("platform_bad_answer", f"{what}: code {code!r}", True, status=status)
        return answer
