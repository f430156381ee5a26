"""The message contract, version 1: every topic and every payload.

Pure: no I/O. Topic strings are built and parsed here and nowhere else.
Payloads are JSON objects with ``"v": 1``; they decode into the typed structs
below, strictly (unknown fields are errors). Anything that fails to decode
becomes a :class:`Rejection` with a reason code and a sentence in zh and en.

docs/protocol.md documents the same contract for people.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

import msgspec

from restobox.menu import Menu

VERSION = 1
ROOT = "restobox/v1"

# Patterns match the whole string: \A and \Z, because msgspec searches
# (re.search) and "$" also matches before a final newline, which let
# "<uuid>\n" pass as an order id beside "<uuid>".
# Device and station ids travel inside topics: no "/", "+", "#", no spaces.
DEVICE_PATTERN = r"\A[a-z0-9][a-z0-9-]{0,31}\Z"
DeviceId = Annotated[str, msgspec.Meta(pattern=DEVICE_PATTERN)]
StationId = Annotated[str, msgspec.Meta(pattern=DEVICE_PATTERN)]
# The order id is a client-made UUID (any version), lower-case canonical form.
UUID_PATTERN = r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
OrderId = Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)]
TABLE_PATTERN = r"\A[A-Za-z0-9-]{1,8}\Z"
Text = Annotated[str, msgspec.Meta(max_length=200)]
Timestamp = Annotated[str, msgspec.Meta(max_length=40)]  # ISO 8601, informational

QOS = 1
EXPO_STATION = "expo"
# The hub refuses larger payloads before decoding them.
MAX_PAYLOAD_BYTES = 64 * 1024
# The two larger messages: a menu (cloud/menu, the retained menu/current) and
# stock counts (cloud/stock). They must pass the broker, whose max_packet_size
# (restobox/broker_config/mosquitto.conf, 256 KiB) counts the topic and properties too:
# a client that sends a larger packet is disconnected, so a service that
# published a menu past it would lose its connection again at every try.
MAX_MENU_BYTES = 240 * 1024
MAX_STOCK_BYTES = 240 * 1024

_DEVICE_RE = re.compile(DEVICE_PATTERN)

SHA256_PATTERN = r"\A[0-9a-f]{64}\Z"
_SHA256_RE = re.compile(SHA256_PATTERN)
# A menu photo's file name (an item's ``image``): a plain name, no folders.
IMAGE_NAME_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z"
_IMAGE_NAME_RE = re.compile(IMAGE_NAME_PATTERN)
# Photos the index may list; each photo's payload is at most MAX_MENU_BYTES.
MENU_IMAGES_MAX = 1000


# =========================================================================
# Topics
# =========================================================================


class topics:
    """Builders for every topic of contract v1 (see docs/protocol.md)."""

    @staticmethod
    def _dev(device: str) -> str:
        if not _DEVICE_RE.fullmatch(device):
            raise ValueError(f"bad device or station id {device!r}")
        return device

    # ordering devices -> hub, request/reply (MQTT 5 response topic)
    @classmethod
    def order_submit(cls, device: str) -> str:
        return f"{ROOT}/order/submit/{cls._dev(device)}"

    @classmethod
    def order_reply(cls, device: str) -> str:
        return f"{ROOT}/order/reply/{cls._dev(device)}"

    ORDER_SUBMIT_ALL = f"{ROOT}/order/submit/+"
    # hub -> everyone: every state change of every order
    ORDER_UPDATE = f"{ROOT}/order/update"

    # hub -> KDS of a station; KDS -> hub
    @classmethod
    def station_ticket(cls, station: str) -> str:
        return f"{ROOT}/station/{cls._dev(station)}/ticket"

    @classmethod
    def station_event(cls, station: str) -> str:
        return f"{ROOT}/station/{cls._dev(station)}/event"

    STATION_EVENT_ALL = f"{ROOT}/station/+/event"
    STATION_TICKET_ALL = f"{ROOT}/station/+/ticket"

    # KDS -> hub: "send me every open ticket again" (after a (re)connect)
    @classmethod
    def station_sync(cls, station: str) -> str:
        return f"{ROOT}/station/{cls._dev(station)}/sync"

    STATION_SYNC_ALL = f"{ROOT}/station/+/sync"

    # staff tools -> hub, request/reply
    @classmethod
    def staff_command(cls, device: str) -> str:
        return f"{ROOT}/staff/{cls._dev(device)}/command"

    @classmethod
    def staff_reply(cls, device: str) -> str:
        return f"{ROOT}/staff/{cls._dev(device)}/reply"

    STAFF_COMMAND_ALL = f"{ROOT}/staff/+/command"

    # ordering devices -> hub, request/reply: a member's points balance
    @classmethod
    def loyalty_query(cls, device: str) -> str:
        return f"{ROOT}/loyalty/query/{cls._dev(device)}"

    @classmethod
    def loyalty_reply(cls, device: str) -> str:
        return f"{ROOT}/loyalty/reply/{cls._dev(device)}"

    LOYALTY_QUERY_ALL = f"{ROOT}/loyalty/query/+"

    # the counter -> hub, request/reply: payments, refunds, shifts (TillRequest)
    @classmethod
    def till_request(cls, device: str) -> str:
        return f"{ROOT}/till/{cls._dev(device)}/request"

    @classmethod
    def till_reply(cls, device: str) -> str:
        return f"{ROOT}/till/{cls._dev(device)}/reply"

    TILL_REQUEST_ALL = f"{ROOT}/till/+/request"
    # hub -> counters and staff: every payment or refund recorded (PaymentUpdate)
    PAYMENT_UPDATE = f"{ROOT}/till/payment"
    # hub -> counters and staff, retained: the business day's orders still to be paid (UnpaidOrders)
    TILL_UNPAID = f"{ROOT}/till/unpaid"

    # the table QR page -> hub, request/reply: a phone payment for an order (PayRequest)
    @classmethod
    def pay_request(cls, device: str) -> str:
        return f"{ROOT}/pay/{cls._dev(device)}/request"

    @classmethod
    def pay_reply(cls, device: str) -> str:
        return f"{ROOT}/pay/{cls._dev(device)}/reply"

    PAY_REQUEST_ALL = f"{ROOT}/pay/+/request"
    # the sync service and the page -> hub: what the payment gateway said, signed (PayResult)
    PAY_RESULT = f"{ROOT}/pay/result"
    # hub -> the page, the sync service, staff: a phone payment's state changed (PayIntent)
    PAY_INTENT = f"{ROOT}/pay/intent"
    # sync -> the page, retained: can phone payments be taken now (PayStatus)
    PAY_STATUS = f"{ROOT}/pay/status"

    # the counter -> sync, request/reply: a group-buy voucher verified or redeemed at its platform (VoucherRequest)
    @classmethod
    def voucher_request(cls, device: str) -> str:
        return f"{ROOT}/voucher/{cls._dev(device)}/request"

    @classmethod
    def voucher_reply(cls, device: str) -> str:
        return f"{ROOT}/voucher/{cls._dev(device)}/reply"

    VOUCHER_REQUEST_ALL = f"{ROOT}/voucher/+/request"

    # hub -> everyone, retained
    BOARD = f"{ROOT}/board/ready"
    MENU = f"{ROOT}/menu/current"
    CLOUD_MENU = f"{ROOT}/cloud/menu"
    CLOUD_STOCK = f"{ROOT}/cloud/stock"
    SOLDOUT = f"{ROOT}/menu/soldout"
    # hub -> screens, retained: the menu's photos. The index names each
    # photo by the sha256 of its bytes; each photo is binary (a JPEG) on a
    # topic of its own named by that hash, so a screen checks what it got.
    MENU_IMAGES = f"{ROOT}/menu/images"
    MENU_IMAGE_ALL = f"{ROOT}/menu/image/+"

    @staticmethod
    def menu_image(sha256: str) -> str:
        if not _SHA256_RE.fullmatch(sha256):
            raise ValueError(f"bad sha256 {sha256!r}")
        return f"{ROOT}/menu/image/{sha256}"

    @staticmethod
    def parse_menu_image(topic: str) -> str | None:
        """The sha256 a photo's topic names, or None (not a photo's topic)."""
        prefix = f"{ROOT}/menu/image/"
        if not topic.startswith(prefix):
            return None
        sha = topic[len(prefix):]
        return sha if _SHA256_RE.fullmatch(sha) else None

    # hub -> staff: a notice for every message the hub refused
    REJECTS = f"{ROOT}/hub/reject"

    # every device, retained
    @classmethod
    def presence(cls, device: str) -> str:
        return f"{ROOT}/presence/{cls._dev(device)}"

    @classmethod
    def health(cls, device: str) -> str:
        return f"{ROOT}/health/{cls._dev(device)}"

    PRESENCE_ALL = f"{ROOT}/presence/+"
    HEALTH_ALL = f"{ROOT}/health/+"

    # hub -> printing service: jobs; printing -> everyone: job states and
    # printer status (retained, one topic per printer)
    PRINT_JOB = f"{ROOT}/print/job"
    PRINT_JOB_STATE = f"{ROOT}/print/state"

    @classmethod
    def printer_status(cls, printer: str) -> str:
        return f"{ROOT}/print/printer/{cls._dev(printer)}"

    PRINTER_STATUS_ALL = f"{ROOT}/print/printer/+"
    # any service -> staff screens: something needs a person
    ALERTS = f"{ROOT}/alert"


_SCOPED = {("station", "ticket"), ("station", "event"), ("station", "sync"), ("staff", "command"),
           ("staff", "reply"), ("till", "request"), ("till", "reply"), ("pay", "request"), ("pay", "reply"),
           ("voucher", "request"), ("voucher", "reply")}


def parse_topic(topic: str) -> tuple[str, str] | None:
    """Split a device- or station-scoped topic into (kind, id).

    ``restobox/v1/order/submit/kiosk-1`` -> ``("order/submit", "kiosk-1")``;
    ``restobox/v1/station/wok/event`` -> ``("station/event", "wok")``.
    Returns None for a topic that is not one of ours.
    """
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != ROOT:
        return None
    rest = parts[2:]
    if len(rest) == 3 and rest[0] == "order" and rest[1] in ("submit", "reply"):
        kind, ident = f"order/{rest[1]}", rest[2]
    elif len(rest) == 3 and rest[0] == "loyalty" and rest[1] in ("query", "reply"):
        kind, ident = f"loyalty/{rest[1]}", rest[2]
    elif len(rest) == 2 and rest[0] in ("presence", "health"):
        kind, ident = rest[0], rest[1]
    elif len(rest) == 3 and (rest[0], rest[2]) in _SCOPED:
        kind, ident = f"{rest[0]}/{rest[2]}", rest[1]
    else:
        return None
    if not _DEVICE_RE.fullmatch(ident):
        return None
    return kind, ident


# =========================================================================
# Payloads
# =========================================================================


class Message(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    v: int = VERSION


Channel = Literal["kiosk", "counter", "qr", "preorder", "delivery"]
Service = Literal["dine_in", "takeaway"]
Lang = Literal["zh", "en"]


class SubmitLine(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    item_id: Annotated[str, msgspec.Meta(max_length=48)]
    # Checked by the hub (reason bad_quantity), not here, so that a diner
    # gets a specific answer rather than a schema error.
    qty: int
    modifiers: tuple[Annotated[str, msgspec.Meta(max_length=48)], ...] = ()
    note: Text = ""


class SubmitPayment(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How the diner pays. ``counter``: unpaid, pay at the counter.
    ``platform``: paid on a delivery platform, which settles with the chain
    (``approved``; no money in the store's ledger, nothing to take at the
    counter)."""

    method: Literal["counter", "card", "qr", "platform"]
    status: Literal["unpaid", "approved"] = "unpaid"
    amount: int = 0
    intent_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    reference: Annotated[str, msgspec.Meta(max_length=64)] = ""


class LoyaltyClaim(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The diner's phone number, to earn points (and redeem some).

    The only place a full phone number travels (with LoyaltyQuery): from the
    ordering device to the hub. The hub checks it (reason phone_invalid),
    prices ``redeem_points`` itself and checks the balance in the
    transaction that accepts the order (points_insufficient)."""

    phone: Annotated[str, msgspec.Meta(max_length=24)]
    redeem_points: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


class OrderSubmit(Message, kw_only=True):
    """An ordering device asks the hub to accept an order.

    ``order_id`` is made by the device at the first tap and is the
    idempotency key everywhere. ``expected_total`` is the total the diner was
    shown; the hub prices the order itself and refuses it if they differ.
    """

    order_id: OrderId
    channel: Channel
    service: Service
    lines: Annotated[tuple[SubmitLine, ...], msgspec.Meta(max_length=1000)]
    table: Annotated[str, msgspec.Meta(pattern=TABLE_PATTERN)] | None = None
    lang: Lang = "zh"
    placed_at: Timestamp = ""
    expected_total: int | None = None
    payment: SubmitPayment = msgspec.field(default_factory=lambda: SubmitPayment(method="counter"))
    # Placed while the kiosk could not reach the hub; it showed this number.
    offline: bool = False
    provisional_number: Annotated[str, msgspec.Meta(max_length=16)] = ""
    menu_version: Annotated[str, msgspec.Meta(max_length=64)] = ""
    note: Text = ""
    loyalty: LoyaltyClaim | None = None


class PricedModifier(msgspec.Struct, kw_only=True):
    id: str
    name_zh: str
    name_en: str
    price_delta: int
    station: str | None = None
    allergens: tuple[str, ...] = ()


class PricedLine(msgspec.Struct, kw_only=True):
    line: int
    item_id: str
    name_zh: str
    name_en: str
    qty: int
    unit_price: int
    line_total: int
    station: str
    modifiers: tuple[PricedModifier, ...] = ()
    allergens: tuple[str, ...] = ()
    note: str = ""


class Words(msgspec.Struct):
    """A sentence for a person, in both languages."""

    zh: str
    en: str


Status = Literal["accepted", "rejected"]


class LoyaltyResult(msgspec.Struct, kw_only=True):
    """What an order did to a member's points (in the OrderReply and on the
    receipt). ``member`` is the masked number (``138****5678``), never the
    full one. ``discount`` (fen) is what ``redeemed`` points took off the
    order; ``balance`` is the member's points after this order.
    ``credited`` false: loyalty is switched off at the hub, nothing changed."""

    member: str
    earned: int = 0
    redeemed: int = 0
    discount: int = 0
    balance: int = 0
    credited: bool = True


class OrderReply(Message, kw_only=True):
    """The hub's answer to an OrderSubmit, on the device's reply topic.

    ``accepted`` is sent only after the order is committed to the store
    database. ``duplicate`` is true when this answers a repeated submission.
    """

    order_id: str
    status: Status
    number: int | None = None
    business_date: str | None = None
    subtotal: int = 0
    tax: int = 0
    total: int = 0
    currency: str = "CNY"
    lines: tuple[PricedLine, ...] = ()
    reason: str | None = None
    message: Words | None = None
    detail: dict[str, str] = {}
    duplicate: bool = False
    accepted_at: str | None = None
    loyalty: LoyaltyResult | None = None


OrderState = Literal[
    "submitted", "accepted", "held", "in_progress", "ready", "completed", "rejected", "voided"
]
"""``held``: accepted but not sent to the kitchen until it is paid (the
store's ``[hub.till] hold_unpaid`` channels); a payment releases it."""

PaymentState = Literal["unpaid", "paid", "partly_refunded", "refunded"]
"""Derived from the payment ledger: ``paid`` once the payments cover the
total and nothing was refunded; ``partly_refunded`` when some of it was
given back; ``refunded`` when all of it was."""


class TicketItem(msgspec.Struct, kw_only=True):
    line: int
    item_id: str
    name_zh: str
    name_en: str
    qty: int
    modifiers: tuple[Words, ...] = ()
    allergens: tuple[str, ...] = ()
    note: str = ""
    state: Literal["open", "done"] = "open"
    # set when this line is a part of a combo made at another station
    part_of: str = ""
    part_of_zh: str = ""


class StationTicket(Message, kw_only=True):
    """What a station must make for one order (hub -> KDS).

    ``ticket_id`` is ``<order_id>:<station>``; a KDS shows each ticket once,
    whatever number of times it receives it.
    """

    ticket_id: str
    order_id: str
    number: int
    station: str
    channel: str
    service: str
    table: str | None = None
    items: tuple[TicketItem, ...]
    note: str = ""
    accepted_at: str
    state: Literal["open", "done", "voided", "held"] = "open"
    """``held``: the order waits for its payment ([hub.till] hold_unpaid);
    a held ticket goes to the expo screen only (on station/expo/ticket, its
    ``station`` still the one that will make it) and to its station once
    the order is paid."""
    revision: int = 1
    # the number the diner holds when the order was placed offline
    provisional_number: str = ""
    payment: "PaymentState" = "unpaid"
    """The order's payment state when the ticket was sent; order/update
    carries every later change."""


EventKind = Literal["ack", "bump", "item_bump", "recall"]


class StationEvent(Message, kw_only=True):
    """A KDS tells the hub what the cooks did (KDS -> hub).

    ``event_id`` deduplicates; ``line`` is required for ``item_bump`` (and
    optional for ``recall`` of one line). At the ``expo`` station, ``bump``
    completes the order and ``recall`` brings back a completed order.
    """

    event_id: OrderId
    kind: EventKind
    order_id: OrderId
    device: DeviceId
    line: int | None = None
    at: Timestamp = ""


class SyncRequest(Message, kw_only=True):
    """A kitchen screen asks the hub to publish every open ticket of its
    station again (the expo screen: of every station). Sent after each
    connect; the screens keep one copy per ticket id, so nothing doubles."""

    device: DeviceId
    at: Timestamp = ""


class StationStatus(msgspec.Struct, kw_only=True):
    station: str
    state: Literal["open", "done"]
    acked: bool = False


class OrderUpdate(Message, kw_only=True):
    """An order changed state or was paid or refunded (hub -> everyone)."""

    order_id: str
    number: int
    business_date: str
    state: OrderState
    stations: tuple[StationStatus, ...] = ()
    reason: str | None = None
    at: str
    payment: PaymentState = "unpaid"
    paid: int = 0
    """Fen paid and not refunded (the ledger's sum for the order)."""
    total: int = 0
    channel: str = ""
    table: str | None = None
    provisional_number: str = ""
    """The number the diner holds when the order was placed offline (the
    ``P`` code of its provisional receipt); "" otherwise."""


class Board(Message, kw_only=True):
    """The pickup board (retained): numbers being prepared and ready."""

    business_date: str
    preparing: tuple[int, ...]
    ready: tuple[int, ...]
    at: str


class StockLevels(Message, kw_only=True):
    """Portions left per item or option id, from the chain's cloud (sync ->
    hub). ``version`` names this count; the hub applies each version once.
    An id not listed has no limit."""

    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    items: dict[Annotated[str, msgspec.Meta(max_length=48)], Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]]
    at: str = ""


class MenuImageRef(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sha256: Annotated[str, msgspec.Meta(pattern=SHA256_PATTERN)]
    bytes: Annotated[int, msgspec.Meta(ge=1, le=MAX_MENU_BYTES)]


class MenuImages(Message, kw_only=True):
    """The menu's photos (retained, hub -> screens): image name (an item's
    ``image``) -> the photo published on ``menu/image/<sha256>``. Only
    photos the hub could prepare are listed; an item whose photo is not
    here shows its colour tile."""

    menu_version: Annotated[str, msgspec.Meta(max_length=64)]
    images: Annotated[dict[Annotated[str, msgspec.Meta(pattern=IMAGE_NAME_PATTERN)], MenuImageRef],
                      msgspec.Meta(max_length=MENU_IMAGES_MAX)]
    at: Timestamp = ""


class SoldOut(Message, kw_only=True):
    """Items not available now (the 86 list, retained)."""

    items: tuple[str, ...]
    at: str


StaffKind = Literal["void", "eighty_six", "un_eighty_six", "reprint", "test_print", "print_report"]


class StaffCommand(Message, kw_only=True):
    """A staff tool asks the hub to act: void an order, 86 an item, reprint
    an order's receipt (``item_id`` empty) or one station's ticket
    (``item_id`` = the station id), print a test page (``item_id`` = the
    printer). The order is named by ``order_id`` or, as staff know it, by
    its ``order_number`` of the current business day. ``print_report``
    prints ``report`` (the day's figures, made by ``restobox report`` from
    the store's databases) on the printer ``item_id``."""

    command_id: OrderId
    kind: StaffKind
    order_id: OrderId | None = None
    order_number: Annotated[int, msgspec.Meta(ge=1, le=99_999)] | None = None
    item_id: Annotated[str, msgspec.Meta(max_length=48)] | None = None
    reason: Text = ""
    report: "ReportData | None" = None


class LoyaltyQuery(Message, kw_only=True):
    """An ordering device asks a member's points balance (device -> hub,
    request/reply on loyalty/query/<device> and loyalty/reply/<device>)."""

    query_id: OrderId
    phone: Annotated[str, msgspec.Meta(max_length=24)]


class LoyaltyBalance(Message, kw_only=True):
    """The hub's answer to a LoyaltyQuery: the balance and the rules to
    offer a redemption with (the hub prices it again when the order comes).
    ``ok`` false: ``reason`` (phone_invalid, loyalty_disabled)."""

    query_id: str
    ok: bool
    member: str = ""
    """The masked number."""
    balance: int = 0
    point_value_fen: int = 0
    max_share_pct: int = 0
    points_per_yuan: float = 0.0
    min_redeem_points: int = 0
    reason: str | None = None
    message: Words | None = None


class StaffReply(Message, kw_only=True):
    command_id: str
    ok: bool
    reason: str | None = None
    message: Words | None = None
    order_id: str = ""
    """The order acted on (reprint, void), when there was one."""
    job_id: str = ""
    """The print job a reprint or test page made; its progress is on print/state."""


TenderMethod = Literal["cash", "card", "qr", "voucher", "points", "gateway"]
Fen = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]


class Tender(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One way money was taken or given back. ``amount`` is what counts
    toward the order (fen); ``tendered`` is the cash handed over (the change
    is ``tendered - amount``; 0: exact). ``intent_id`` and ``reference``:
    the payment terminal's intent and its approval (card, qr), the
    gateway's transaction; a ``voucher``: its code in ``reference``, the
    platform's redemption id in ``intent_id`` (both required; the hub
    refuses a code already paying an order, voucher_used)."""

    method: TenderMethod
    amount: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]
    tendered: Fen = 0
    intent_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    reference: Annotated[str, msgspec.Meta(max_length=64)] = ""


class RefundLine(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A line of the order (its ``line`` number) and how many of it to refund."""

    line: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    qty: Annotated[int, msgspec.Meta(ge=1, le=999)]


TillKind = Literal["pay", "refund", "shift_open", "shift_close"]


class TillRequest(Message, kw_only=True):
    """The counter asks the hub to record money (counter -> hub,
    request/reply on till/<device>/request and till/<device>/reply).

    ``request_id`` is made at the counter before anything happens (before
    the terminal is asked to charge) and is the idempotency key: a request
    repeated with the same id is answered as the first one was, never
    recorded twice. The hub records a request whole or not at all.

    - ``pay``: ``tenders`` (split tender: several), whose amounts add up to
      what is due on the order (named by ``order_id`` or today's
      ``order_number``). Refused ``already_paid`` when nothing is due.
    - ``refund``: ``lines`` (chosen lines) or none (the whole order), or an
      ``amount``; ``tenders`` say how the money goes back (none: the way it
      was paid). Needs a ``reason`` and the manager's ``manager_pin``.
      ``void``: void the order in the same transaction (void with refund).
    - ``shift_open``: ``shift_id``, ``float_fen`` (the cash in the drawer).
    - ``shift_close``: ``shift_id``, ``counted_fen`` (the cash counted).

    ``staff`` is who did it (the cashier's name or number), ``shift_id`` the
    counter's open shift. ``offline``: taken while the hub could not be
    reached and recorded at the counter first; ``at`` is when it happened
    there."""

    request_id: OrderId
    kind: TillKind
    order_id: OrderId | None = None
    order_number: Annotated[int, msgspec.Meta(ge=1, le=99_999)] | None = None
    tenders: Annotated[tuple[Tender, ...], msgspec.Meta(max_length=8)] = ()
    lines: Annotated[tuple[RefundLine, ...], msgspec.Meta(max_length=200)] = ()
    amount: Fen | None = None
    void: bool = False
    reason: Text = ""
    manager_pin: Annotated[str, msgspec.Meta(max_length=12)] = ""
    member_phone: Annotated[str, msgspec.Meta(max_length=24)] = ""
    """``pay`` with a ``points`` tender: the member whose points pay it
    (with LoyaltyClaim and LoyaltyQuery, the only places a full phone
    number travels, device to hub). The hub checks it (phone_invalid), takes
    ``amount / [hub.loyalty] point_value_fen`` points off the member's
    balance in the payment's transaction (points_insufficient), and gives
    them back when that money is refunded."""
    staff: Annotated[str, msgspec.Meta(max_length=32)] = ""
    shift_id: OrderId | None = None
    float_fen: Fen = 0
    counted_fen: Fen | None = None
    offline: bool = False
    at: Timestamp = ""


class LedgerEntry(msgspec.Struct, kw_only=True):
    """One row of the payment ledger: ``kind`` payment or refund, ``amount``
    in fen (positive both ways)."""

    entry_id: str
    order_id: str
    kind: Literal["payment", "refund"]
    method: TenderMethod
    amount: int
    tendered: int = 0
    reference: str = ""
    staff: str = ""
    device: str = ""
    shift_id: str = ""
    reason: str = ""
    at: str


class ShiftSummary(msgspec.Struct, kw_only=True):
    """A shift's cash: ``expected`` = float + cash taken - cash refunded;
    ``over_short`` = counted - expected (negative: short)."""

    shift_id: str
    device: str
    staff: str = ""
    opened_at: str
    closed_at: str = ""
    float_fen: int
    cash_in: int = 0
    cash_out: int = 0
    expected: int
    counted: int | None = None
    over_short: int | None = None


class TillReply(Message, kw_only=True):
    """The hub's answer to a TillRequest. ``ok`` false: ``reason`` and
    ``message`` (already_paid, amount_mismatch, refund_exceeds_paid,
    pin_wrong, refund_reason_required, refund_required, unknown_order,
    shift_not_open ...). ``payment``, ``paid`` and ``due`` are the order's
    after the request (also on a refusal, so a second counter is told the
    order is paid and by whom in ``entries``). ``duplicate``: this answers
    a repeated request."""

    request_id: str
    ok: bool
    reason: str | None = None
    message: Words | None = None
    order_id: str = ""
    number: int = 0
    total: int = 0
    payment: PaymentState = "unpaid"
    paid: int = 0
    due: int = 0
    change: int = 0
    entries: tuple[LedgerEntry, ...] = ()
    shift: ShiftSummary | None = None
    duplicate: bool = False


class PaymentUpdate(Message, kw_only=True):
    """Money was recorded for an order (hub -> counters, staff): the new
    ledger rows and the order's payment state after them."""

    order_id: str
    number: int
    business_date: str
    payment: PaymentState
    paid: int
    total: int
    entries: tuple[LedgerEntry, ...]
    at: str


# ------------------------------------------------------- phone payment
PayIntentState = Literal["open", "paid", "closed", "refund_due", "refunding", "refunded"]


class PayRequest(Message, kw_only=True):
    """The table QR page asks the hub for the phone payment of an order
    (web -> hub, request/reply on pay/<device>/request and
    pay/<device>/reply). The hub answers the order's open payment intent
    (the same merchant number on every retry while it is open) or makes a
    new one for what is due. ``request_id`` is the idempotency key."""

    request_id: OrderId
    order_id: OrderId
    lookup: bool = False
    """Only the order as it stands (``order``), no payment made: the page's
    service, restarted, learns an order a diner placed before."""


class PayIntent(Message, kw_only=True):
    """A phone payment of an order (hub -> page, sync, staff on pay/intent;
    also the answer's ``intent``). ``merchant_no`` is the gateway's
    out_trade_no and the idempotency key of the payment there.

    ``state``: ``open`` (the diner may pay until ``expires_at``), ``paid``
    (recorded in the ledger), ``closed`` (closed at the gateway unpaid),
    ``refund_due`` (money the gateway took that the order cannot keep: the
    order was paid already, voided, or the amount was wrong — ``reason``
    says which; it goes back to the diner), ``refunding`` (paid, and
    refunded at the counter: the gateway is to give ``refund_amount`` back
    in all), ``refunded`` (it went back, all of it)."""

    merchant_no: str
    order_id: str
    number: int = 0
    table: str | None = None
    attempt: int
    amount: int
    state: PayIntentState
    reason: str = ""
    trade_no: str = ""
    created_at: str
    expires_at: str
    at: str


class PayReply(Message, kw_only=True):
    """The hub's answer to a PayRequest: ``intent``, or ``ok`` false with
    ``reason`` and ``message`` (already_paid, unknown_order, bad_transition,
    pay_disabled). ``payment``/``paid``/``due`` are the order's."""

    request_id: str
    ok: bool
    reason: str | None = None
    message: Words | None = None
    order_id: str = ""
    payment: PaymentState = "unpaid"
    paid: int = 0
    due: int = 0
    intent: PayIntent | None = None
    state: str = ""
    """The order's state (OrderState)."""
    table: str | None = None
    order: "OrderReply | None" = None
    """The order as the hub answered it when it was placed (number, lines, totals)."""


PayResultSource = Literal["notify", "query", "return", "close", "refund"]


class PayResult(Message, kw_only=True):
    """What the payment gateway said about a payment (sync or page ->
    hub): its notification passed down by the chain's cloud (``notify``),
    the answer to an enquiry (``query``, ``return``: asked when the diner
    came back from the wallet), to a close (``close``) or to a refund
    (``refund``). ``fields`` are the gateway's own, with its ``sign``: the
    hub believes only what the merchant key's signature checks."""

    source: PayResultSource
    fields: dict[str, str | int]
    at: Timestamp = ""


class PayStatus(Message, kw_only=True):
    """Can phone payments be taken now (sync -> page, retained on
    pay/status): the gateway answers the store. ``reason`` is why not
    (gateway_unreachable, gateway_timeout ...)."""

    available: bool
    reason: str = ""
    at: str


# ------------------------------------------------------ group-buy vouchers
VOUCHER_CODE_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9-]{3,31}\Z"
VoucherCode = Annotated[str, msgspec.Meta(pattern=VOUCHER_CODE_PATTERN)]
VoucherStatus = Literal["valid", "redeemed", "expired", "unknown"]


class VoucherRequest(Message, kw_only=True):
    """The counter asks about a group-buy voucher the diner shows (counter
    -> sync, request/reply on voucher/<device>/request and
    voucher/<device>/reply); the sync service asks the voucher platform.

    - ``verify``: what the voucher is (title, value) and whether it can be
      used; nothing changes at the platform.
    - ``redeem``: use it up, for ``order_id``. ``request_id`` is the
      idempotency key at the platform: the counter commits it to counter.db
      before it sends it, and sends the same id on every retry (a lost
      answer, a restart), so the voucher is redeemed once and every answer
      is that redemption."""

    request_id: OrderId
    kind: Literal["verify", "redeem"]
    code: VoucherCode
    order_id: OrderId | None = None


class VoucherReply(Message, kw_only=True):
    """The sync service's answer to a VoucherRequest, on the asking
    device's reply topic. ``ok`` false: ``reason`` and ``message``
    (voucher_unreachable, voucher_timeout, voucher_unknown,
    voucher_redeemed, voucher_expired, voucher_bad_answer ...). ``title``,
    ``value_fen`` and ``status`` are the platform's when it said them;
    ``redemption_id`` is the platform's id of the redemption (``redeem``,
    ``ok``)."""

    request_id: str
    kind: Literal["verify", "redeem", ""] = ""
    """The request's (empty: the request did not decode)."""
    ok: bool
    reason: str | None = None
    message: Words | None = None
    code: Annotated[str, msgspec.Meta(max_length=32)] = ""
    title: Words | None = None
    value_fen: Fen = 0
    redemption_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    status: VoucherStatus | Literal[""] = ""


class UnpaidOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One order of :class:`UnpaidOrders`: what a counter shows and finds it by."""

    order_id: str
    number: int
    channel: str
    service: str
    table: str | None = None
    total: int
    paid: int = 0
    due: int
    state: OrderState
    accepted_at: str = ""
    provisional_number: str = ""


class UnpaidOrders(Message, kw_only=True):
    """The business day's orders still to be paid (hub -> counters, staff;
    retained): payment ``unpaid``, neither voided nor rejected. The newest
    :data:`UNPAID_MAX` by number (fewer if they would not fit in
    :data:`MAX_PAYLOAD_BYTES`), newest first; ``more`` counts the older ones
    left out. Published again whenever it changes, and at the turn of the
    business day (empty)."""

    business_date: str
    orders: tuple[UnpaidOrder, ...]
    more: int = 0
    at: str


UNPAID_MAX = 200
"""Orders listed in one UnpaidOrders message."""


class MenuMessage(Message, kw_only=True):
    """The menu the hub prices with (retained)."""

    menu: Menu
    at: str


class Presence(Message, kw_only=True):
    """Retained; the broker publishes the offline form as the last will."""

    device: str
    role: str
    state: Literal["online", "offline"]
    at: str = ""


ServiceState = Literal["starting", "ready", "degraded", "stopping", "offline"]


class Health(Message, kw_only=True):
    device: str
    role: str
    state: ServiceState
    at: str
    reason_code: str = ""
    reason: str = ""
    counters: dict[str, int] = {}
    details: dict[str, str | int | float | bool | None] = {}
    last_errors: tuple["RejectNotice", ...] = ()


class RejectNotice(Message, kw_only=True):
    """The hub refused a message: why, from whom, in which topic."""

    reason: str
    message: Words
    topic: str
    device: str = ""
    order_id: str = ""
    at: str


# =========================================================================
# Printing
# =========================================================================


class StoreHeader(msgspec.Struct, kw_only=True):
    name_zh: str
    name_en: str
    address: str = ""
    phone: str = ""
    tax_id: str = ""


class ReceiptData(msgspec.Struct, kw_only=True):
    """Everything a customer receipt shows; prices as the hub computed them."""

    store: StoreHeader
    order_id: str
    number: int
    business_date: str
    accepted_at: str  # local time, "YYYY-MM-DD HH:MM"
    channel: str
    service: str
    table: str | None = None
    lang: Lang = "zh"
    lines: tuple[PricedLine, ...]
    subtotal: int
    tax: int
    total: int
    currency: str = "CNY"
    tax_rate_bp: int = 0
    tax_inclusive: bool = True
    payment_method: str = "counter"
    payment_status: str = "unpaid"
    payment_reference: str = ""
    offline: bool = False
    provisional_number: str = ""
    note: str = ""
    loyalty: LoyaltyResult | None = None
    """Points of the order (masked phone); on a provisional receipt only the
    masked phone: points are counted when the hub has the order."""
    payment: str = ""
    """The ledger's payment state when printed (PaymentState); empty when no
    money is recorded for the order yet: ``payment_status`` then says what
    the ordering device said."""
    tenders: tuple["Tender", ...] = ()
    """How it was paid (a receipt printed at the counter: each tender, the
    cash handed over)."""
    change: int = 0
    """Cash given back as change (fen)."""
    refunded: int = 0
    """Fen given back by refunds."""


class KitchenData(msgspec.Struct, kw_only=True):
    """A station ticket as printed at that station."""

    station_name: Words
    ticket: StationTicket
    printed_at: str  # local time, "YYYY-MM-DD HH:MM:SS"
    # printed because no kitchen screen acknowledged the ticket in time
    fallback: bool = False


class ReportRow(msgspec.Struct, kw_only=True):
    """One figure of a printed report: its label and its value as printed."""

    label: Words
    value: Annotated[str, msgspec.Meta(max_length=40)] = ""


class ReportSection(msgspec.Struct, kw_only=True):
    title: Words
    rows: Annotated[tuple[ReportRow, ...], msgspec.Meta(max_length=60)] = ()


class ReportData(msgspec.Struct, kw_only=True):
    """The end-of-day summary as the receipt printer prints it."""

    store: StoreHeader
    business_date: str  # YYYY-MM-DD
    made_at: str  # local time, "YYYY-MM-DD HH:MM"
    sections: Annotated[tuple[ReportSection, ...], msgspec.Meta(max_length=20)] = ()


PrintKind = Literal["receipt", "kitchen", "test", "report", "drawer"]
"""``drawer``: no paper; the printer's drawer pulse opens the cash drawer
(the counter, after cash is taken or given back)."""


class PrintJob(Message, kw_only=True):
    """The hub asks the printing service to print (hub -> printing).

    ``job_id`` is the idempotency key: ``<order_id>:receipt:<printer>`` or
    ``<order_id>:kitchen:<printer>:<station>`` for the first print, with
    ``:reprint-<n>`` added for staff reprints. The service
    prints each job id at most once; a repeated job is only confirmed again.
    """

    job_id: Annotated[str, msgspec.Meta(max_length=160)]
    printer: StationId
    kind: PrintKind
    order_id: str = ""
    reprint: bool = False
    receipt: ReceiptData | None = None
    kitchen: KitchenData | None = None
    report: ReportData | None = None
    drawer_pin: Literal[2, 5] = 2
    """``drawer``: the connector pin of the pulse (ESC p m; the counter's
    [counter] drawer_pin)."""


JobStateName = Literal["queued", "printing", "done", "held", "failed"]


class PrintJobState(Message, kw_only=True):
    """A print job changed state (printing -> everyone)."""

    job_id: str
    printer: str
    kind: str
    order_id: str = ""
    state: JobStateName
    attempts: int = 0
    reason: str | None = None
    message: Words | None = None
    at: str


class PrinterStatus(Message, kw_only=True):
    """A printer's condition (retained), from ESC/POS DLE EOT where the port
    can read it."""

    printer: str
    state: Literal["ready", "paper_out", "cover_open", "offline", "error", "unknown"]
    paper_near_end: bool = False
    queued: int = 0
    held: int = 0
    reason: str | None = None
    message: Words | None = None
    at: str


class Alert(Message, kw_only=True):
    """Something a person must see (printer out of paper, a kitchen screen
    that does not confirm tickets)."""

    source: str
    code: str
    message: Words
    severity: Literal["info", "warning", "critical"] = "warning"
    subject: str = ""
    at: str


# =========================================================================
# Reasons: every refusal has a code and a sentence a person understands
# =========================================================================

REASONS: dict[str, Words] = {
    "bad_json": Words("消息不是有效的 JSON。", "The message is not valid JSON."),
    "bad_schema": Words("消息格式不对。", "The message does not have the expected fields and types."),
    "unsupported_version": Words("消息版本不受支持。", "The message version is not supported by this hub."),
    "payload_too_large": Words("消息太大。", "The message is larger than the hub accepts."),
    "empty_order": Words("订单里没有菜品。", "The order has no items."),
    "too_many_lines": Words("订单的菜品行太多。", "The order has more lines than one order may have."),
    "unknown_item": Words("菜单上没有这道菜。", "An item in the order is not on the menu."),
    "item_unavailable": Words("这道菜已售罄。", "An item in the order is sold out right now."),
    "bad_quantity": Words("数量不对。", "A quantity must be a whole number from 1 to the limit per line."),
    "unknown_modifier": Words("选项不存在。", "A chosen option does not exist on the menu."),
    "modifier_not_allowed": Words("这道菜没有这个选项。", "A chosen option does not belong to that item."),
    "modifier_duplicate": Words("同一个选项选了两次。", "The same option was chosen twice."),
    "modifier_missing": Words("还有必选项没有选。", "A required choice was not made."),
    "modifier_too_many": Words("选项选得太多。", "Too many options were chosen in one group."),
    "modifier_unavailable": Words("所选选项已售罄。", "A chosen option is sold out right now."),
    "price_mismatch": Words("价格有变动，请确认订单。", "The price changed; please check the order again."),
    "payment_mismatch": Words("付款金额和订单金额不符。", "The amount paid does not match the order total."),
    "table_required": Words("扫码堂食订单需要桌号。", "A dine-in order from a table's QR code needs its table number."),
    "duplicate_conflict": Words(
        "这个订单号已经用于另一份订单。", "This order id was already used for a different order."
    ),
    "bad_topic": Words("消息发到了错误的主题。", "The message was sent to a topic the hub does not serve."),
    "unknown_order": Words("找不到这个订单。", "No order with that id."),
    "bad_transition": Words("订单现在不能这样操作。", "The order cannot do that in its current state."),
    "not_on_station": Words("这个订单在本工位没有菜品。", "That order has nothing for this station."),
    "bad_line": Words("没有这一行菜品。", "The order has no such line for this station."),
    "paper_out": Words("打印机缺纸。", "The printer is out of paper."),
    "cover_open": Words("打印机盖子开着。", "The printer cover is open."),
    "printer_offline": Words("打印机没有响应。", "The printer does not answer."),
    "printer_error": Words("打印机报告错误。", "The printer reports an error."),
    "printer_busy": Words("打印机被占用。", "The printer is in use by another program."),
    "unknown_printer": Words("没有这台打印机。", "No printer with that name is configured."),
    "print_interrupted": Words("打印中断，已重新打印。", "Printing was interrupted; the ticket was printed again."),
    "ticket_not_acknowledged": Words(
        "厨房屏幕没有确认这张单，已打印。", "No kitchen screen confirmed this ticket; it was printed instead."
    ),
    "layout_failed": Words("这张单无法排版，没有打印。", "The ticket could not be laid out; nothing was printed."),
    "printer_ready": Words("打印机恢复正常。", "The printer is ready again."),
    "bad_menu": Words("新菜单有错误，未使用。", "The new menu has an error and was not used."),
    "phone_invalid": Words(
        "手机号码不正确，请输入 11 位手机号。", "That phone number is not valid; please enter an 11-digit mobile number."
    ),
    "loyalty_disabled": Words("本店暂未开通会员积分。", "This store does not offer loyalty points right now."),
    "points_insufficient": Words(
        "积分不足，可能已在别处使用，请重新选择。", "Not enough points: they may have just been used elsewhere. Please choose again."
    ),
    "points_not_allowed": Words(
        "这些积分不能用于本单（超过本单可抵扣的上限，或少于最低使用量）。",
        "Those points cannot be used on this order (more than it may be paid with, or fewer than the least a "
        "redemption uses).",
    ),
    "too_deep": Words("消息嵌套层数太多。", "The message is nested more deeply than any message may be."),
    "too_many_items": Words("消息里的列表太长。", "A list in the message has more elements than any message may have."),
    "string_too_long": Words("消息里的文字太长。", "A text in the message is longer than any field may be."),
    "number_out_of_range": Words("消息里的数字超出范围。", "A number in the message is larger than any field may hold."),
    "storage_unavailable": Words("暂时无法保存订单，请重试。", "The order could not be saved; please try again."),
    "internal_error": Words("系统出错，请重试。", "Something went wrong in the hub; please try again."),
    "already_paid": Words("这个订单已经付过款了。", "This order is already paid."),
    "amount_mismatch": Words(
        "付款金额和应付金额不符。", "The amounts tendered do not add up to what is due on the order."),
    "tendered_short": Words("收到的现金少于应收金额。", "The cash handed over is less than the amount it pays."),
    "refund_exceeds_paid": Words(
        "退款金额超过了已付金额。", "The refund is more than was paid on this order and not yet refunded."),
    "refund_reason_required": Words("退款需要填写原因。", "A refund needs a reason."),
    "pin_wrong": Words("经理密码不正确。", "The manager PIN is not right."),
    "refund_required": Words(
        "这个订单已付款，作废前需要先退款。", "This order is paid: refund it (void with refund) before voiding it."),
    "not_paid": Words("这个订单还没有付款，无法退款。", "This order has not been paid; there is nothing to refund."),
    "shift_not_open": Words("收银班次没有开始或已结束。", "No open shift at this counter: open one first."),
    "shift_already_open": Words("这个收银台已经有一个班次在进行。", "This counter already has a shift open."),
    "till_disabled": Words("本店没有设置收银台。", "This store has no counter set up."),
    "pay_disabled": Words("本店暂不支持手机支付，请到柜台付款。",
                          "This store does not take payment on the phone; please pay at the counter."),
    "bad_signature": Words("支付通知的签名不正确，已拒绝。",
                           "The payment message's signature does not check: it was not believed."),
    "unknown_payment": Words("找不到这笔支付。", "There is no such payment in this store."),
    "stray_payment": Words(
        "有一笔手机支付不能记到订单上（订单已付款、已作废或金额不对），正在自动退款。",
        "A phone payment could not be kept for its order (paid already, voided, or a wrong amount); "
        "it is being refunded automatically."),
    "voucher_unreachable": Words(
        "团购平台暂时连不上，这张券现在无法核销，请换一种付款方式。",
        "The group-buy platform cannot be reached: this voucher cannot be redeemed now; please take another "
        "payment."),
    "voucher_timeout": Words(
        "团购平台没有及时回应，这张券可能已经核销：请再扫一次同一张券（不会重复核销），或换一种付款方式。",
        "The group-buy platform did not answer in time and the voucher may be redeemed already: scan the same "
        "voucher again (it is never redeemed twice), or take another payment."),
    "voucher_unknown": Words("团购平台没有这张券，请核对券码。",
                             "The group-buy platform does not know this voucher: check its code."),
    "voucher_redeemed": Words("这张券已经核销过了，不能再用。", "This voucher has been redeemed already: it cannot be used again."),
    "voucher_expired": Words("这张券已过期，不能使用。", "This voucher has expired: it cannot be used."),
    "voucher_bad_answer": Words(
        "团购平台的回应无法确认（不是签名正确的答复），这张券现在无法核销，请换一种付款方式。",
        "The group-buy platform's answer cannot be trusted (not a correctly signed answer): this voucher cannot "
        "be redeemed now; please take another payment."),
    "voucher_refused": Words(
        "团购平台拒绝了门店的请求（门店的账号或密钥设置有误），请联系经理，并换一种付款方式。",
        "The group-buy platform refused the store's request (the store's account or key is set wrong): call the "
        "manager, and take another payment."),
    "voucher_busy": Words("团购券核销请求太多，请稍后再试。", "Too many voucher requests at once: please try again in a moment."),
    "voucher_used": Words(
        "这张团购券已经用来支付过订单了，不能再用。",
        "This voucher has already paid for an order in this store: it cannot be used again."),
}


class Rejection(Exception):
    """A refusal with a reason code (a key of REASONS) and details for logs."""

    def __init__(self, reason: str, detail: str = "", **extra: str) -> None:
        if reason not in REASONS:
            raise KeyError(f"unknown reason code {reason!r}")
        self.reason = reason
        self.detail = detail
        self.extra = {k: str(v) for k, v in extra.items()}
        super().__init__(f"{reason}: {detail}" if detail else reason)

    @property
    def words(self) -> Words:
        return REASONS[self.reason]


# =========================================================================
# Encoding and strict decoding
# =========================================================================

_T = TypeVar("_T", bound=Message)
_encoder = msgspec.json.Encoder()


class _Envelope(msgspec.Struct):
    v: int | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_decoders: dict[type, msgspec.json.Decoder] = {}

# The shape every payload must have before it is decoded (docs/protocol.md
# §5). No Restobox message nests deeper than 8 or has a text longer than a
# few hundred characters; the limits leave room and stop what would make a
# decoder recurse, allocate or convert without bound: msgspec raises
# RecursionError (not a DecodeError) at a depth of ~1000, and turns a
# 400-digit number into a Python int that SQLite cannot store.
MAX_DEPTH = 16
MAX_ITEMS = 10_000  # elements of one array, members of one object
MAX_STRING_BYTES = 8 * 1024  # one string as written, escapes included
MAX_INT = 2**53 - 1  # the integers every JSON reader holds exactly
MAX_FLOAT = 1e15
MAX_NUMBER_CHARS = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")
_STRUCTURE = re.compile(rb"[\[\]{},]")


def check_shape(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> None:
    """Refuse a payload that is too large, not UTF-8, nested too deeply, has
    too many elements in one array or object, a string too long or a number
    out of range, before anything decodes it. Raises :class:`Rejection`.

    Cheap for every real message: a few C-speed passes; the element-by-
    element walk only runs when a count says a limit may be passed."""
    n = len(payload)
    if n > max_bytes:
        raise Rejection("payload_too_large", f"{n} bytes, limit {max_bytes}")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection("bad_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    if n > MAX_STRING_BYTES:  # else no string can be too long
        longest = max(map(len, _STRING.findall(payload)), default=2) - 2
        if longest > MAX_STRING_BYTES:
            raise Rejection("string_too_long", f"a string of {longest} bytes, limit {MAX_STRING_BYTES}")
    bare = _STRING.sub(b'""', payload)
    if b'"' in bare.replace(b'""', b""):
        raise Rejection("bad_json", "a string is not closed")
    for tok in _NUMBER.findall(bare):
        # up to 15 digits is below MAX_INT: only the rest needs a look
        if len(tok) > 15 or not tok.lstrip(b"-").isdigit():
            _check_number(tok)
    opens = bare.count(b"[") + bare.count(b"{")
    if opens > MAX_DEPTH or bare.count(b",") >= MAX_ITEMS:
        _check_structure(bare)


def _check_number(tok: bytes) -> None:
    if len(tok) > MAX_NUMBER_CHARS:
        raise Rejection("number_out_of_range", f"a number of {len(tok)} characters")
    try:
        if b"." in tok or b"e" in tok or b"E" in tok:
            x = float(tok)
            ok = -MAX_FLOAT <= x <= MAX_FLOAT  # False for inf and nan
        else:
            ok = -MAX_INT <= int(tok) <= MAX_INT
    except ValueError:  # not a JSON number at all: the decoder says bad_json
        return
    if not ok:
        raise Rejection("number_out_of_range", f"{tok.decode()} is beyond ±{MAX_INT:,} (integers) or ±{MAX_FLOAT:g}")


def _check_structure(bare: bytes) -> None:
    counts = [0]  # elements so far (commas) in each open container
    for m in _STRUCTURE.finditer(bare):
        c = m.group()
        if c == b",":
            counts[-1] += 1
            if counts[-1] >= MAX_ITEMS:
                raise Rejection("too_many_items", f"more than {MAX_ITEMS} elements in one array or object")
        elif c in b"[{":
            counts.append(0)
            if len(counts) - 1 > MAX_DEPTH:
                raise Rejection("too_deep", f"nested deeper than {MAX_DEPTH}")
        elif len(counts) > 1:
            counts.pop()


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


def menu_too_large(menu: Menu) -> str | None:
    """Why ``menu`` cannot travel on the bus (None: it can)."""
    n = len(encode(MenuMessage(menu=menu, at="2026-01-01T00:00:00.000+00:00")))
    if n > MAX_MENU_BYTES:
        return f"as a message it is {n:,} bytes; the broker carries at most {MAX_MENU_BYTES:,}"
    return None


def decode(payload: bytes, type_: type[_T], *, max_bytes: int = MAX_PAYLOAD_BYTES) -> _T:
    """Decode ``payload`` into ``type_`` or raise :class:`Rejection`.

    Reason codes: those of :func:`check_shape`, then bad_json,
    unsupported_version, bad_schema. Never anything but a Rejection.
    """
    check_shape(payload, max_bytes)
    try:
        env = _envelope_decoder.decode(payload)
    except msgspec.ValidationError as exc:
        # valid JSON, but not an object or "v" is not an integer
        raise Rejection("bad_schema", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Rejection("bad_json", str(exc)) from None
    if env.v is None:
        raise Rejection("bad_schema", 'Object missing required field `v`')
    if env.v != VERSION:
        raise Rejection("unsupported_version", f"v={env.v}, this hub speaks v={VERSION}")
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return dec.decode(payload)
    except msgspec.ValidationError as exc:
        raise Rejection("bad_schema", str(exc)) from None
    except msgspec.DecodeError as exc:  # e.g. a bad escape inside a string
        raise Rejection("bad_json", str(exc)) from None


_probe = msgspec.json.Decoder(dict[str, msgspec.Raw])


def peek(payload: bytes, name: str, max_len: int = 64) -> str:
    """Best effort, for answering a message that did not decode: the string
    field ``name`` of its top-level object (an order, command or query id),
    or "". Safe on any payload: it only looks at one that passed
    :func:`check_shape` (max_bytes: that of the largest message, the menu)."""
    try:
        check_shape(payload, MAX_MENU_BYTES)
        raw = _probe.decode(payload).get(name)
        v = msgspec.json.decode(raw) if raw is not None else None
    except (Rejection, msgspec.DecodeError):
        return ""
    return v if isinstance(v, str) and len(v) <= max_len else ""
