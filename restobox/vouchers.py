"""Group-buy vouchers (团购券): the voucher platform's API, its client, and
the sync service's agent that answers the counters.

A diner bought a voucher on a group-buy platform (Meituan / Dianping
style) and shows its code at the counter; the cashier types or scans it.
The counter asks on the bus (VoucherRequest on voucher/<device>/request);
the sync service, the store's link to the internet and the holder of the
platform's key, asks the platform and answers on that device's reply topic
(:class:`VoucherAgent`). The counter then pays the order with a
``voucher`` tender (the code in ``reference``, the redemption in
``intent_id``) and the hub records it like any other tender.

The platform's API is signed like the payment gateway's (restobox/paygate.py,
whose signing this reuses): every request and every answer is a flat JSON
object of strings and integers whose ``sign`` is HMAC-SHA256 (hex, upper
case) with the store's key over the other non-empty fields as ``k=v``
pairs sorted by key and joined with ``&``. An answer whose signature does
not check is not believed (voucher_bad_answer). Calls (POST, JSON):

- ``/v1/voucher/verify``: app_id, voucher_code → voucher_code, status
  (valid | redeemed | expired | unknown), title_zh, title_en, value_fen,
  expires_at. Nothing changes at the platform.
- ``/v1/voucher/redeem``: app_id, voucher_code, request_id, store_id,
  order_ref → voucher_code, request_id, redemption_id, value_fen,
  redeemed_at. ``request_id`` is the idempotency key: the same request
  again is answered with the redemption it made; the code redeemed by
  another request is refused ``ALREADY_REDEEMED``.

Every answer carries ``code``: ``OK``, or why not (NOT_FOUND,
ALREADY_REDEEMED, EXPIRED, PARAM_CONFLICT, SIGN_ERROR, PARAM_ERROR) with
a ``message``. Every failure of a call is a :class:`VoucherError` with a
reason code of contract.REASONS (its sentence in zh and en is what the
cashier reads).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from typing import Literal

import msgspec

from restobox import contract, paygate
from restobox.contract import REASONS, Rejection, VoucherReply, VoucherRequest, Words, topics

log = logging.getLogger("restobox.vouchers")

API = "v1"

VoucherStatus = Literal["valid", "redeemed", "expired", "unknown"]

FAILURES = ("voucher_unreachable", "voucher_timeout", "voucher_unknown", "voucher_redeemed", "voucher_expired",
            "voucher_bad_answer", "voucher_refused")
"""The reason codes of a call that failed (each in contract.REASONS)."""

# the platform's answer codes, as reasons
_CODE_REASONS = {"NOT_FOUND": "voucher_unknown", "ALREADY_REDEEMED": "voucher_redeemed",
                 "EXPIRED": "voucher_expired"}
_STATUS_REASONS = {"redeemed": "voucher_redeemed", "expired": "voucher_expired", "unknown": "voucher_unknown"}


class VoucherError(Exception):
    """A call to the platform that did not give what was asked: ``reason``
    (one of :data:`FAILURES`), ``detail`` for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise KeyError(f"unknown reason code {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    @property
    def words(self) -> Words:
        return REASONS[self.reason]


class Voucher(msgspec.Struct, kw_only=True):
    """A voucher as the platform says it is (verify)."""

    code: str
    status: VoucherStatus
    title_zh: str = ""
    title_en: str = ""
    value_fen: int = 0
    expires_at: str = ""


class Redemption(msgspec.Struct, kw_only=True):
    """A voucher used up at the platform (redeem): the same one for every
    retry of its request."""

    code: str
    redemption_id: str
    value_fen: int
    request_id: str = ""
    redeemed_at: str = ""


class _VerifyAnswer(msgspec.Struct, kw_only=True):
    voucher_code: str
    status: VoucherStatus
    title_zh: str = ""
    title_en: str = ""
    value_fen: int = 0
    expires_at: str = ""


class _RedeemAnswer(msgspec.Struct, kw_only=True):
    voucher_code: str
    request_id: str
    redemption_id: str
    value_fen: int
    redeemed_at: str = ""


# -------------------------------------------------------------- client
class VoucherClient:
    """Calls to the voucher platform (synchronous: the agent runs them on a
    thread of its own). Every answer's signature is checked before it is
    believed."""

    def __init__(self, url: str, app_id: str, key: bytes, timeout_s: float = 5.0, *, transport=None) -> None:
        import httpx

        self.base = url.rstrip("/")
        self.app_id = app_id
        self.key = key
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport,
                                   headers={"User-Agent": "restobox-vouchers/1"})

    @classmethod
    def from_config(cls, cfg, **kw) -> "VoucherClient":
        v = cfg.vouchers
        return cls(v.url, v.app_id, v.key(), v.timeout_s, **kw)

    def close(self) -> None:
        self.client.close()

    def call(self, path: str, fields: dict) -> dict:
        """POST the signed ``fields``; the answer's fields once its signature
        checks and its ``code`` is OK (VoucherError otherwise)."""
        try:
            r = paygate.post_signed(self.client, f"{self.base}{path}", {"app_id": self.app_id, **fields}, self.key)
        except paygate.Unreached as exc:
            raise VoucherError("voucher_timeout" if exc.timeout else "voucher_unreachable", exc.detail) from None
        if r.status_code >= 500:
            raise VoucherError("voucher_unreachable", f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            answer = paygate.decode_fields(r.content)
            paygate.verify(answer, self.key)
        except paygate.GatewayError as exc:
            if r.status_code != 200:
                raise VoucherError("voucher_refused", f"HTTP {r.status_code}: {r.text[:200]}") from None
            raise VoucherError("voucher_bad_answer", f"{exc.reason}: {exc.detail}"[:300]) from None
        code = answer.get("code", "")
        if code != "OK":
            reason = _CODE_REASONS.get(str(code), "voucher_refused")
            raise VoucherError(reason, f"{code}: {str(answer.get('message', ''))[:200]}")
        return answer

    def verify(self, code: str) -> Voucher:
        """What the voucher is and whether it can be used (its ``status``)."""
        a = _convert(self.call(f"/{API}/voucher/verify", {"voucher_code": code}), _VerifyAnswer)
        if a.voucher_code != code:
            raise VoucherError("voucher_bad_answer", f"asked about {code!r}, answered about {a.voucher_code!r}")
        return Voucher(code=code, status=a.status, title_zh=a.title_zh, title_en=a.title_en, value_fen=a.value_fen,
                       expires_at=a.expires_at)

    def redeem(self, code: str, request_id: str, store_id: str, order_ref: str) -> Redemption:
        """Use the voucher up; the same ``request_id`` again answers the same
        redemption. VoucherError voucher_redeemed when another request
        redeemed it."""
        a = _convert(self.call(f"/{API}/voucher/redeem", {"voucher_code": code, "request_id": request_id,
                                                          "store_id": store_id, "order_ref": order_ref}),
                     _RedeemAnswer)
        if a.voucher_code != code or a.request_id != request_id or not a.redemption_id:
            raise VoucherError("voucher_bad_answer", f"asked to redeem {code!r} ({request_id}), answered "
                                                     f"{a.voucher_code!r} ({a.request_id}) {a.redemption_id!r}")
        return Redemption(code=code, redemption_id=a.redemption_id, value_fen=a.value_fen, request_id=request_id,
                          redeemed_at=a.redeemed_at)


def _convert(fields: dict, type_):
    try:
        return msgspec.convert(fields, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise VoucherError("voucher_bad_answer", f"not the API's shape: {exc}") from None


# --------------------------------------------------------------- agent
class VoucherAgent:
    """The sync service's side of the counters' vouchers: it reads every
    VoucherRequest (voucher/+/request), asks the platform on a thread of
    its own (``vouchers``: never on paho's network thread) and answers on
    the asking device's reply topic, the device named by the topic the
    request came on (never a response topic the sender chose), with the
    request's correlation data.

    It keeps nothing: the counter's request id is the platform's
    idempotency key, so a retry after a lost answer asks again and gets
    the same redemption. Everything is counted in ``counters``:
    ``vouchers.verify``, ``vouchers.redeem``, ``vouchers.redeemed`` and
    ``vouchers.<reason>`` for every refusal (a request that did not decode
    included)."""

    QUEUE_MAX = 32
    """Requests waiting for the platform; past it a request is answered voucher_busy."""

    def __init__(self, client: VoucherClient, bus, *, store_id: str, counters: Counter | None = None) -> None:
        self.client = client
        self.bus = bus
        self.store_id = store_id
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._q: queue.Queue = queue.Queue(self.QUEUE_MAX)
        self._thread = threading.Thread(target=self._run, name="vouchers", daemon=True)

    @classmethod
    def from_config(cls, cfg, bus, *, counters: Counter | None = None, transport=None) -> "VoucherAgent":
        return cls(VoucherClient.from_config(cfg, transport=transport), bus, store_id=cfg.store.id,
                   counters=counters)

    def start(self) -> "VoucherAgent":
        self.bus.subscribe(topics.VOUCHER_REQUEST_ALL, self.on_request)
        self._thread.start()
        log.info("vouchers: answering the counters through %s", self.client.base)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """The worker ends after the call in flight, waited for ``timeout``
        at most (an answer it did not send is asked for again)."""
        if self._thread.is_alive():
            while True:
                try:
                    self._q.put_nowait(None)
                    break
                except queue.Full:  # stopping: what waits is dropped (each counter asks again)
                    try:
                        self._q.get_nowait()
                    except queue.Empty:
                        pass
            self._thread.join(timeout)
        self.client.close()

    # --------------------------------------------------- paho's thread
    def on_request(self, m) -> None:
        parsed = contract.parse_topic(m.topic)
        if parsed is None or parsed[0] != "voucher/request":
            self._count("bad_topic")
            return
        device = parsed[1]
        try:
            req = contract.decode(m.payload, VoucherRequest)
        except Rejection as r:
            from restobox.bus import refused

            refused(m.topic, r.reason, r.detail, logger=log)
            self._answer(device, m.correlation, VoucherReply(
                request_id=contract.peek(m.payload, "request_id"), ok=False, reason=r.reason, message=r.words))
            self._count(r.reason)
            return
        try:
            self._q.put_nowait((device, m.correlation, req))
        except queue.Full:
            self._count("voucher_busy")
            self._answer(device, m.correlation, _refusal(req, "voucher_busy"))

    # ------------------------------------------------------- the worker
    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            device, corr, req = job
            try:
                reply = self.handle(req)
            except Exception:
                log.exception("vouchers: %s of %s failed", req.kind, req.code)
                reply = _refusal(req, "internal_error")
            if not reply.ok:
                self._count(reply.reason or "internal_error")
            self._answer(device, corr, reply)

    def handle(self, req: VoucherRequest) -> VoucherReply:
        """Ask the platform (this thread); the answer for the counter."""
        self.counters[f"vouchers.{req.kind}"] += 1
        try:
            if req.kind == "verify":
                v = self.client.verify(req.code)
                reason = _STATUS_REASONS.get(v.status)
                title = Words(v.title_zh, v.title_en) if v.title_zh or v.title_en else None
                return VoucherReply(request_id=req.request_id, kind="verify", ok=reason is None, reason=reason,
                                    message=REASONS[reason] if reason else None, code=req.code, title=title,
                                    value_fen=v.value_fen, status=v.status)
            r = self.client.redeem(req.code, req.request_id, self.store_id, req.order_id or "")
        except VoucherError as exc:
            level = logging.INFO if exc.reason in ("voucher_unknown", "voucher_redeemed", "voucher_expired") \
                else logging.WARNING
            log.log(level, "vouchers: %s of %s refused: %s", req.kind, req.code, exc)
            return _refusal(req, exc.reason)
        self.counters["vouchers.redeemed"] += 1
        log.info("vouchers: %s redeemed for order %s: redemption %s, %d fen (request %s)", req.code,
                 req.order_id or "-", r.redemption_id, r.value_fen, req.request_id)
        return VoucherReply(request_id=req.request_id, kind="redeem", ok=True, code=req.code, value_fen=r.value_fen,
                            redemption_id=r.redemption_id, status="redeemed")

    def _answer(self, device: str, corr: bytes | None, reply: VoucherReply) -> None:
        try:
            self.bus.publish(topics.voucher_reply(device), contract.encode(reply), qos=1, correlation=corr)
        except Exception as exc:  # the counter asks again when no answer comes
            self._count("publish_failed")
            log.warning("vouchers: the answer to %s could not be published: %s", device, exc)

    def _count(self, reason: str) -> None:
        self.counters[f"vouchers.{reason}"] += 1


def _refusal(req: VoucherRequest, reason: str) -> VoucherReply:
    return VoucherReply(request_id=req.request_id, kind=req.kind, ok=False, reason=reason, message=REASONS[reason],
                        code=req.code)
