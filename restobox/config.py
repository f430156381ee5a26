"""Strict, typed configuration from a TOML file.

Every field has a docstring-style comment with its unit. Unknown keys are
errors, so a typo (``hots = ...``) stops the service at start with a sentence
that names the file and the key, rather than being silently ignored.
Secrets never live in the file: the MQTT password comes from a file (mode
600, made by restobox/broker_config/restobox-broker-user) or the environment variable
RESTOBOX_MQTT_PASSWORD.
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

DEFAULT_PATH = Path("/etc/restobox/restobox.toml")

DeviceId = Annotated[str, msgspec.Meta(pattern=r"\A[a-z0-9][a-z0-9-]{0,31}\Z")]  # whole string
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]


class ConfigError(Exception):
    """The configuration is wrong; ``str()`` is a sentence for a person.

    ``reason`` is a code for logs and tests; an error raised with one names
    it at the end of the sentence, in brackets."""

    def __init__(self, sentence: str, reason: str | None = None) -> None:
        super().__init__(f"{sentence} [{reason}]" if reason else sentence)
        self.reason = reason or "config_invalid"


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class DeviceConfig(_Strict):
    id: DeviceId
    """This device's name: its MQTT username and client id."""
    role: Literal["hub", "kiosk", "kds", "expo", "board", "staff", "monitor", "printing", "sync", "web", "counter"]


class StoreConfig(_Strict):
    id: str = "store-1"
    name_zh: str = "餐厅"
    name_en: str = "Restaurant"
    address: str = ""
    phone: str = ""
    tax_id: str = ""
    """Printed on receipts."""
    timezone: str = "Asia/Shanghai"
    """IANA time zone; business days and ticket times are in this zone."""
    business_day_start: Annotated[str, msgspec.Meta(pattern=r"\A([01]\d|2[0-3]):[0-5]\d\Z")] = "04:00"
    """Local time (HH:MM) at which order numbers start again from 1."""
    currency: Annotated[str, msgspec.Meta(pattern=r"\A[A-Z]{3}\Z")] = "CNY"
    """ISO 4217 code the store sells in; the hub refuses a menu in another."""

    def day_start(self) -> timedelta:
        """``business_day_start`` as the time since local midnight."""
        h, m = (int(x) for x in self.business_day_start.split(":"))
        return timedelta(hours=h, minutes=m)

    def business_date(self, when: datetime) -> str:
        """The business day ``when`` belongs to: before the day start (e.g.
        04:00) local time, it is the previous day's."""
        return ((when.astimezone(ZoneInfo(self.timezone)) - self.day_start()).date()).isoformat()


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    username: str | None = None
    """Defaults to the device id."""
    password_file: str | None = None
    """File holding the password (one line). RESTOBOX_MQTT_PASSWORD overrides."""
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=120)] = 15
    session_expiry_s: Annotated[int, msgspec.Meta(ge=0, le=14 * 86_400)] = 7 * 86_400
    """How long the broker keeps this device's subscriptions and queued
    messages while it is away (MQTT 5 Session Expiry Interval)."""
    reconnect_max_s: Seconds = 10.0
    tls: bool = False
    """Connect over TLS (the hub's broker takes other hosts only so, on port
    8883): the broker's certificate must be signed by ``ca_file`` and name
    ``host``, or the connection is refused."""
    ca_file: str | None = None
    """The store CA's certificate (PEM) for ``tls``, e.g.
    /etc/restobox/store-ca.crt, which `restobox add-device` hands out and the
    first boot installs."""
    allow_plain_network: bool = False
    """For development only: let the password go in plain text to a broker
    that is not on this machine. Never on a store network: anyone on it
    (the diners' Wi-Fi too) could read it and be this device."""


LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_local_host(host: str) -> bool:
    """``host`` is this machine (a loopback address or the name localhost):
    plain MQTT never leaves it."""
    import ipaddress

    if host.lower().rstrip(".") in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HubConfig(_Strict):
    database: str = "/var/lib/restobox/store.db"
    menu: str = "sample"
    """Path to a menu JSON file, or "sample" for the bundled sample menu."""
    menu_images: str = ""
    """Folder of the menu's photos: an item's ``image`` is a file name in it
    (JPEG or PNG, any size; the hub publishes each at most 640 px on its
    long side). Empty: the bundled photos for the sample menu, else the
    folder ``images`` next to the menu file."""
    max_payload_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1_048_576)] = 64 * 1024
    max_lines: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    max_qty_per_line: Annotated[int, msgspec.Meta(ge=1, le=999)] = 99
    batch_max: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 256
    """Most submissions committed in one transaction (group commit)."""
    health_interval_s: Seconds = 10.0
    menu_grace_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 600.0
    """After a new menu arrives, an order that says it was placed under the
    previous version is priced by that version for this long (a diner who
    saw the old price at the kiosk pays it)."""
    printing: "HubPrintingConfig" = msgspec.field(default_factory=lambda: HubPrintingConfig())
    loyalty: "LoyaltyConfig" = msgspec.field(default_factory=lambda: LoyaltyConfig())
    retention: "RetentionConfig" = msgspec.field(default_factory=lambda: RetentionConfig())
    till: "TillConfig" = msgspec.field(default_factory=lambda: TillConfig())


class TillConfig(_Strict):
    """The payment ledger and the counter ([hub.till])."""

    hold_unpaid: list[Literal["kiosk", "counter", "qr", "preorder", "delivery"]] = \
        msgspec.field(default_factory=list)
    """Channels whose unpaid orders wait ("held", shown on the expo screen)
    until they are paid; the others go to the kitchen at once. E.g. ["qr"]:
    a table's QR order is cooked once paid at the counter."""
    manager_pin_file: str | None = None
    """File of the managers' PINs, one ``name:sha256-of-pin`` per line
    (`restobox till-pin NAME` writes one). Refunds need one of them. None:
    refunds are refused (reason pin_wrong)."""

    def __post_init__(self) -> None:
        if len(set(self.hold_unpaid)) != len(self.hold_unpaid):
            raise ValueError(f"hold_unpaid lists a channel twice: {self.hold_unpaid}")


class RetentionConfig(_Strict):
    """[hub.retention]: what the store database forgets, and when
    (docs/operations.md, "Upgrades and retention"). Only what the chain's
    cloud has and the printers have printed goes, never an order of the
    current business day; the loyalty ledger is kept whole."""

    enabled: bool = True
    keep_days: Annotated[int, msgspec.Meta(ge=14, le=3650)] = 90
    """Days kept: orders with their tickets, outbox events, print requests,
    ids of station events and staff commands (the dedup window), menus no
    longer used. At least 14: a device's messages wait at the broker up to
    14 days ([mqtt] session_expiry_s) and must still be found as duplicates."""
    sync_database: str = "/var/lib/restobox/sync.db"
    """The sync service's database, read for how far the chain's cloud has
    the outbox ([sync] database). Without it no order or outbox event is deleted."""
    batch_rows: Annotated[int, msgspec.Meta(ge=10, le=5000)] = 200
    """Rows looked at per transaction: a new order waits at most one such batch."""
    interval_s: Annotated[float, msgspec.Meta(ge=1, le=86_400)] = 3600.0
    """Time from the end of one pass over the database to the start of the
    next (the first starts this long after the hub)."""


class LoyaltyConfig(_Strict):
    """[hub.loyalty]: points for diners who give their phone number
    (docs/operations.md, "Loyalty"). Points are credited when the hub
    accepts the order and taken back when it is voided."""

    enabled: bool = False
    points_per_yuan: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    """Points earned per whole yuan paid (after any points discount), rounded down."""
    point_value_fen: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1
    """What one point is worth when redeemed, in fen (1 = ¥0.01)."""
    max_share_pct: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50
    """At most this percentage of an order may be paid with points (0: no redeeming)."""
    min_redeem_points: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 100
    """A redemption uses at least this many points."""
    phone_patterns: list[str] = msgspec.field(default_factory=list)
    """More accepted phone numbers besides mainland mobiles (1[3-9] and 9
    digits), as full-match regular expressions, e.g. ["852[5-9]\\d{7}"].
    Give the kiosks the same list ([kiosk] phone_patterns)."""
    member_key_file: str | None = None
    """File holding the chain's member key (one line): member ids in the
    ledger and the cloud are keyed hashes of the phone number with it, the
    same in every store of the chain. RESTOBOX_MEMBER_KEY overrides; neither:
    a built-in key (ids are then pseudonyms anyone could recompute)."""

    def __post_init__(self) -> None:
        from restobox.loyalty import check_patterns

        check_patterns(self.phone_patterns)

    def member_key(self) -> bytes:
        from restobox.loyalty import DEFAULT_MEMBER_KEY

        env = os.environ.get("RESTOBOX_MEMBER_KEY")
        if env:
            return env.strip().encode()
        if self.member_key_file:
            try:
                key = Path(self.member_key_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the member key file {self.member_key_file}: {exc.strerror}") from None
            if not key:
                raise ConfigError(f"the member key file {self.member_key_file} is empty")
            return key.encode()
        return DEFAULT_MEMBER_KEY


# ------------------------------------------------------------------ printers
class _PrinterBase(_Strict, tag_field="port", kw_only=True):
    id: DeviceId
    """The printer's name, used in print jobs and status topics."""
    width_mm: Literal[58, 80] = 80
    """Paper width: 58 mm (32 characters a line) or 80 mm (48)."""
    encoding: Literal["gb18030", "ascii"] = "gb18030"
    """gb18030 for Chinese thermal printers (Chinese mode, FS &); ascii for
    printers without Chinese fonts (English text only)."""
    lang: Literal["zh", "en", "both"] = "both"
    """Language of the printed text (ascii printers always print English)."""
    write_timeout_s: Seconds = 5.0
    status_timeout_s: Seconds = 1.0
    """How long to wait for a DLE EOT status answer."""


class SerialPrinter(_PrinterBase, tag="serial", kw_only=True):
    device: str
    """e.g. /dev/ttyUSB0 or the udev name /dev/restobox-printer-kitchen"""
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = 19200


class UsbPrinter(_PrinterBase, tag="usb", kw_only=True):
    vendor_id: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
    product_id: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]


class NetworkPrinter(_PrinterBase, tag="network", kw_only=True):
    host: str
    tcp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 9100
    connect_timeout_s: Seconds = 3.0


class FilePrinter(_PrinterBase, tag="file", kw_only=True):
    path: str
    """A device node such as /dev/usb/lp0, or a file that collects the bytes."""


class VirtualPrinter(_PrinterBase, tag="virtual", kw_only=True):
    directory: str
    """Where each job's bytes (.bin) and a picture of the paper (.png) are saved."""


PrinterConfig = SerialPrinter | UsbPrinter | NetworkPrinter | FilePrinter | VirtualPrinter


class PrintingConfig(_Strict):
    database: str = "/var/lib/restobox/printing.db"
    printers: tuple[PrinterConfig, ...] = ()
    retry_max_s: Seconds = 30.0
    """Longest wait between two attempts at a failing printer."""
    status_interval_s: Seconds = 2.0
    """How often an idle or held printer's status is read."""
    keep_days: Annotated[int, msgspec.Meta(ge=14, le=3650)] = 30
    """Days printing.db keeps print jobs that are done or failed, and printer
    faults that are over (docs/operations.md, "Upgrades and retention"); a
    job not finished stays whatever its age. The day's report counts a day's
    jobs and faults from here: a day older than this shows none. At least
    14: the hub sends a job again until it hears it is done or failed, and
    its messages wait at the broker up to 14 days ([mqtt] session_expiry_s);
    a job sent again must still be found by its id, or it would print twice."""


class StationPrinting(_Strict):
    printer: DeviceId
    mode: Literal["always", "fallback"] = "fallback"
    """always: every ticket is printed; fallback: printed only when no
    kitchen screen acknowledged it within fallback_after_s."""
    fallback_after_s: Seconds = 30.0


class HubPrintingConfig(_Strict):
    receipt_printers: dict[str, DeviceId] = {}
    """Ordering device -> the printer that prints its receipts."""
    stations: dict[str, StationPrinting] = {}
    """Station -> its kitchen printer."""
    recheck_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 30.0
    """A print job the printing service took but has not reported done or
    failed is asked about again this often (and when the hub starts)."""


# ----------------------------------------------------------------- KDS
DEFAULT_BUMP_KEYS = {
    "select_prev": "left", "select_next": "right", "bump": "enter", "recall": "r",
    "undo": "u", "page_prev": "pageup", "page_next": "pagedown",
}


DEFAULT_SERIAL_BUMP_KEYS = {
    "select_prev": "<", "select_next": ">", "bump": "b", "recall": "r",
    "undo": "u", "page_prev": "[", "page_next": "]",
}


class KdsConfig(_Strict):
    mode: Literal["station", "expo", "board"] = "station"
    """station: one station's tickets; expo: every station's progress;
    board: the customer pickup board."""
    station: DeviceId = "wok"
    """The station whose tickets this screen shows (mode station)."""
    cache: str = "/var/lib/restobox/tickets.db"
    """Open tickets are kept here so a restart shows them at once."""
    warn_s: Annotated[int, msgspec.Meta(ge=10, le=7200)] = 300
    """A ticket turns amber after this many seconds."""
    late_s: Annotated[int, msgspec.Meta(ge=10, le=7200)] = 480
    """A ticket turns red (and flashes) after this many seconds."""
    flash_late: bool = True
    undo_s: Seconds = 5.0
    """How long a bump can be undone."""
    columns: Annotated[int, msgspec.Meta(ge=1, le=12)] = 5
    rows: Annotated[int, msgspec.Meta(ge=1, le=4)] = 2
    width: Annotated[int, msgspec.Meta(ge=320, le=7680)] = 1920
    height: Annotated[int, msgspec.Meta(ge=240, le=4320)] = 1080
    fullscreen: bool = False
    bump_keys: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_BUMP_KEYS))
    """Bump bar keys (a keyboard-style bump bar sends these keys)."""
    serial_bump_bar: str | None = None
    """Device of a serial bump bar (e.g. /dev/restobox-bumpbar), or none."""
    serial_bump_baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400] = 9600
    serial_bump_keys: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_SERIAL_BUMP_KEYS))
    """The character a serial bump bar sends for each action."""


# ---------------------------------------------------------------- kiosk
class KioskConfig(_Strict):
    width: Annotated[int, msgspec.Meta(ge=320, le=4320)] = 1080
    height: Annotated[int, msgspec.Meta(ge=480, le=7680)] = 1920
    """A portrait touch screen; RESTOBOX_KIOSK_SIZE=WxH overrides both."""
    fullscreen: bool = False
    idle_s: Annotated[int, msgspec.Meta(ge=10, le=3600)] = 60
    """Without a tap this long, the kiosk asks "still there?"..."""
    still_there_s: Annotated[int, msgspec.Meta(ge=5, le=600)] = 15
    """...and starts over this long after asking."""
    database: str = "/var/lib/restobox/kiosk.db"
    """Payment intents, the order outbox, the cached menu (SQLite)."""
    hub_device: str = "hub"
    """The hub's device id: its presence tells the kiosk whether to wait for it."""
    reply_timeout_s: Annotated[float, msgspec.Meta(ge=1, le=120)] = 8.0
    """An order the hub has not answered in this time is kept in the kiosk's
    outbox and the diner gets a provisional number."""
    payment_methods: Annotated[list[Literal["card", "qr", "counter"]], msgspec.Meta(min_length=1, max_length=3)] = \
        msgspec.field(default_factory=lambda: ["counter"])
    """What the pay screen offers, in this order. card and qr need [kiosk.terminal]."""
    terminal: PaymentTerminalConfig | None = None
    receipt_printer: str | None = None
    """The printer this kiosk's receipts come out of (the name in the printing
    service's config, as in the hub's [hub.printing.receipt_printers]). While
    the hub cannot be reached, the kiosk prints the provisional receipt there
    itself; the hub's own receipt for the order, later, is the same print job
    and is not printed again."""
    loyalty: bool = False
    """Offer points: a phone number screen before paying (skippable). The
    hub's [hub.loyalty] says how many points and what they are worth."""
    phone_patterns: list[str] = msgspec.field(default_factory=list)
    """As [hub.loyalty] phone_patterns: more phone numbers the screen accepts."""
    loyalty_timeout_s: Annotated[float, msgspec.Meta(ge=0.5, le=30)] = 3.0
    """How long the phone screen waits for the hub's balance before it goes
    on without one (points are still earned; none can be used)."""
    keep_days: Annotated[int, msgspec.Meta(ge=14, le=3650)] = 30
    """Days kiosk.db keeps orders the hub has (delivered) and payment intents
    that are settled (approved, declined, cancelled, unpaid), from when they
    were (docs/operations.md, "Upgrades and retention"). Orders waiting for
    the hub or refused by it, payments unknown or approved without a
    delivered order are kept whatever their age: staff resolve them. At
    least 14, as store.db's window: a copy of an order or of the hub's answer
    can wait at the broker up to 14 days ([mqtt] session_expiry_s), and the
    kiosk's row must still be there to take that answer as one for an order
    the hub already has; the hub recognises the copy as a duplicate as long."""

    def __post_init__(self) -> None:
        if len(set(self.payment_methods)) != len(self.payment_methods):
            raise ValueError(f"payment_methods lists a method twice: {self.payment_methods}")
        from restobox.loyalty import check_patterns

        check_patterns(self.phone_patterns)
        needs = [m for m in self.payment_methods if m != "counter"]
        if needs and self.terminal is None:
            raise ValueError(f"payment_methods {needs} need a payment terminal: add [kiosk.terminal] "
                             "with its serial device, or offer only \"counter\"")


class CounterConfig(_Strict):
    """The counter (`restobox counter`): a landscape touch screen where staff
    take and refund money, with the receipt printer (and its cash drawer),
    a payment terminal and a keyboard-wedge barcode scanner."""

    width: Annotated[int, msgspec.Meta(ge=320, le=7680)] = 1280
    height: Annotated[int, msgspec.Meta(ge=240, le=4320)] = 800
    """RESTOBOX_COUNTER_SIZE=WxH overrides both."""
    fullscreen: bool = False
    database: str = "/var/lib/restobox/counter.db"
    """Payments and orders taken here, recorded before they are sent; the shift."""
    hub_device: str = "hub"
    reply_timeout_s: Annotated[float, msgspec.Meta(ge=1, le=120)] = 8.0
    """A request the hub has not answered in this time is kept and sent again;
    the cashier carries on (offline)."""
    terminal: "PaymentTerminalConfig | None" = None
    """Card and QR payments (the kiosk's terminal protocol); none: cash and points only."""
    receipt_printer: str | None = None
    """The printer this counter's receipts come out of, whose drawer pulse
    opens the cash drawer (the printing service's name for it)."""
    drawer_pin: Literal[2, 5] = 2
    """The drawer connector pin the pulse is sent on (ESC p m: 2 or 5)."""
    loyalty: bool = False
    phone_patterns: list[str] = msgspec.field(default_factory=list)
    keep_days: Annotated[int, msgspec.Meta(ge=14, le=3650)] = 30
    """Days counter.db keeps what the hub has confirmed (as [kiosk] keep_days)."""

    def __post_init__(self) -> None:
        from restobox.loyalty import check_patterns

        check_patterns(self.phone_patterns)


class PaymentTerminalConfig(_Strict):
    """A card / QR-code terminal on a serial line (docs/payment-terminal.md)."""

    device: str
    """e.g. /dev/restobox-terminal (a udev name) or /dev/ttyUSB0."""
    baudrate: Annotated[int, msgspec.Meta(ge=1200, le=921600)] = 9600
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 3.0
    """How long one QUERY, CANCEL or PING waits for its answer."""
    pay_timeout_s: Annotated[float, msgspec.Meta(ge=10, le=600)] = 90.0
    """How long the diner has at the terminal before the kiosk asks it what happened."""


class SyncConfig(_Strict):
    """The sync service: the store's outbox to the chain's cloud."""

    cloud_url: str = "https://cloud.example.com"
    """Base URL of the chain's cloud API (docs/cloud-api.md)."""
    token_file: str | None = None
    """File holding the store's API token (one line). RESTOBOX_CLOUD_TOKEN overrides."""
    database: str = "/var/lib/restobox/sync.db"
    """How far the outbox has been delivered (the store database is only read)."""
    store_database: str = "/var/lib/restobox/store.db"
    """The hub's database, whose outbox is sent."""
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 500
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    """Connect and read timeout of one request."""
    backoff_min_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    backoff_max_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 300.0
    """After a failure, wait between min and max (doubling, with jitter)."""
    poll_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    """How often to look for new events when everything is sent."""
    health_interval_s: Seconds = 10.0
    status_interval_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 30.0
    """How often to tell the cloud the outbox's backlog and the store's
    alerts (the owner's dashboard; 0: never), and at once when the alerts
    change (restobox/store_status.py). Keep it well under the cloud's
    [cloud] offline_after_s (90 s): it is what keeps a quiet store online."""
    preorder_poll_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 30.0
    """How often to ask the cloud for new pre-orders (0: never)."""
    preorder_lead_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 1200.0
    """A pre-order goes to the kitchen this long before its pickup time."""
    menu_poll_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 60.0
    """How often to ask the cloud for the store's menu (0: never; the hub
    then keeps its own [hub] menu)."""
    delivery: bool = False
    """Take delivery platforms' orders from the cloud (docs/cloud.md,
    "Delivery platforms"): each goes to the hub like any order, and the
    hub's answer back to the cloud, which answers the platform."""
    delivery_wait_s: Annotated[float, msgspec.Meta(ge=0, le=30)] = 20.0
    """How long one request for delivery orders waits at the cloud for the
    next one (long poll; 0: ask every second)."""
    keep_days: Annotated[int, msgspec.Meta(ge=14, le=3650)] = 90
    """Days sync.db keeps cloud outages that are over and pre-orders the hub
    accepted or refused, from when they ended (docs/operations.md, "Upgrades
    and retention"); an outage still going on and a pre-order not yet
    answered stay. The day's report shows a day's outages from here. At
    least 14: a pre-order the cloud lists again must still be found by its
    id (the hub, which also knows it by id, keeps orders at least as long:
    [hub.retention] keep_days)."""

    def token(self) -> str | None:
        env = os.environ.get("RESTOBOX_CLOUD_TOKEN")
        if env:
            return env.strip()
        if self.token_file:
            try:
                return Path(self.token_file).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"cannot read the cloud token file {self.token_file}: {exc.strerror}") from None
        return None


TableId = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9-]{1,8}\Z")]


class PaygateConfig(_Strict):
    """Phone payment on the table QR page through the aggregated payment
    gateway (docs/paygate.md). The hub, the sync service and the page all
    read it: the page creates payments, the sync service asks the gateway
    and closes or refunds them, the hub checks every answer's signature."""

    enabled: bool = False
    """Offer "pay on the phone" on the table QR page."""
    url: str = "https://pay.example.com"
    """The gateway's API base URL (``restobox paygate-dev`` for the demo and tests)."""
    mch_id: Annotated[str, msgspec.Meta(max_length=32)] = ""
    """The store's merchant number at the gateway."""
    key_file: str | None = None
    """File holding the merchant key the gateway signs with (HMAC-SHA256; one line).
    RESTOBOX_PAYGATE_KEY overrides."""
    notify_url: str = ""
    """Where the gateway posts its notifications: the chain's cloud, which
    passes them down to the store. Empty: <[sync] cloud_url>/v1/paygate/notify/<store>."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    """How long one call to the gateway waits for its answer."""
    expire_s: Annotated[int, msgspec.Meta(ge=5, le=7200)] = 300
    """An unpaid phone payment is closed this long after it was created
    (the wallets' own limit is usually 5 to 30 minutes)."""
    query_first_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 3.0
    """The store asks the gateway about an open payment this long after it
    was created, then ever less often (doubling, up to query_max_s), so a
    lost notification never leaves an order unpaid."""
    query_max_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    notify_wait_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 20.0
    """How long one request for notifications waits at the cloud for the
    next one (long poll; 0: ask every second)."""
    probe_s: Annotated[float, msgspec.Meta(ge=0.2, le=600)] = 10.0
    """When nothing else asked the gateway for this long, the sync service
    asks it about a made-up payment, so the page knows whether phone
    payment can be offered (pay/status)."""

    def key(self) -> bytes:
        env = os.environ.get("RESTOBOX_PAYGATE_KEY")
        if env:
            return env.strip().encode()
        if not self.key_file:
            raise ConfigError("[paygate] key_file is not set: phone payment needs the merchant key")
        try:
            text = Path(self.key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the payment gateway key file {self.key_file}: {exc.strerror}") from None
        if not text:
            raise ConfigError(f"the payment gateway key file {self.key_file} is empty")
        return text.encode()

    def notify_url_for(self, cloud_url: str, store: str) -> str:
        return self.notify_url or f"{cloud_url.rstrip('/')}/v1/paygate/notify/{store}"


class WebConfig(_Strict):
    """The table QR ordering page (`restobox web`) and its QR codes
    (`restobox table-qr`)."""

    host: str = "0.0.0.0"
    """Address the page is served on (0.0.0.0: every network of this machine)."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8080
    public_url: str = ""
    """The address diners' phones open, as printed in the QR codes, e.g.
    http://192.168.1.10:8080 (no path). Empty: http://<this machine's LAN
    address>:<port>."""
    tables: list[TableId] = msgspec.field(default_factory=list)
    """The store's table numbers, e.g. ["1", "2", "A1"]. Empty: 1 to table_count."""
    table_count: Annotated[int, msgspec.Meta(ge=1, le=500)] = 20
    hub_device: DeviceId = "hub"
    """The hub's device id: its presence says whether orders can be taken."""
    reply_timeout_s: Annotated[float, msgspec.Meta(ge=1, le=60)] = 8.0
    """How long one order request waits for the hub's answer; the page then
    sends the same order (same id) again, and the hub counts it once."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=262_144)] = 16 * 1024
    """A request body larger than this is refused (HTTP 413) unread."""
    health_interval_s: Seconds = 10.0
    qr_dir: str = "/var/lib/restobox/table-qr"
    """Where `restobox table-qr` writes its pictures and the printable sheet."""
    loyalty: bool = False
    """Offer points: an optional phone number field in the cart. The hub's
    [hub.loyalty] says how many points and checks the number again."""
    phone_patterns: list[str] = msgspec.field(default_factory=list)
    """As [hub.loyalty] phone_patterns: more phone numbers the page accepts
    (the page checks them in the browser: keep to plain regular expressions)."""

    def __post_init__(self) -> None:
        from restobox.loyalty import check_patterns

        check_patterns(self.phone_patterns)
        if len(set(self.tables)) != len(self.tables):
            raise ValueError(f"tables lists a table twice: {self.tables}")
        url = self.public_url
        if url and (not url.startswith(("http://", "https://")) or "?" in url or "#" in url
                    or url.rstrip("/").count("/") > 2):
            raise ValueError(f"public_url must be like http://192.168.1.10:8080 (no path), not {url!r}")

    def table_ids(self) -> list[str]:
        return list(self.tables) or [str(n) for n in range(1, self.table_count + 1)]


class AlertsConfig(_Strict):
    """When the staff screens (KDS, the kiosk's staff view, `restobox status`)
    raise an alert."""

    sync_backlog_minutes: Annotated[float, msgspec.Meta(gt=0, le=7 * 24 * 60)] = 10.0
    """The oldest order the chain's cloud has not received is older than this."""
    disk_free_pct: Annotated[float, msgspec.Meta(ge=0, le=90)] = 10.0
    """A device's data disk has less than this much room left (percent)."""
    keep_minutes: Annotated[float, msgspec.Meta(gt=0, le=24 * 60)] = 10.0
    """How long a one-off alert (a ticket no screen confirmed) stays shown."""


class StaffConfig(_Strict):
    """The staff command (`restobox status|restart|86|...`) on the hub Pi."""

    broker_dir: str = "/etc/restobox/broker"
    """Where restobox-broker-user keeps the devices' credentials and ACLs."""
    broker_pid_file: str = "/run/mosquitto/mosquitto.pid"
    """The running broker, told to reload when a device is added."""
    enroll_dir: str = "/var/lib/restobox/enroll"
    """Where `add-device` leaves a new device's enrollment folder."""
    hub_address: str = ""
    """How new devices reach this hub's broker; empty: this machine's LAN address."""
    broker_tls_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8883
    """The broker's TLS listener (mosquitto.conf), which `add-device` tells new
    devices to use; the store CA they get with it is broker_dir/tls/ca.crt."""
    data_dir: str = "/var/lib/restobox"
    """This machine's data directory (its disk is shown by `status`)."""
    timeout_s: Seconds = 8.0
    """How long to wait for the hub's answer and a print job's outcome."""
    restart_wait_s: Seconds = 30.0
    """How long `restart` waits for the service to say it is up again."""


class ReportConfig(_Strict):
    """The day's report (`restobox report`)."""

    late_after_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 480.0
    """A ticket bumped more than this many seconds after it reached its
    station counts as late (the kitchen screens' own default turns red at 480)."""
    station_late_after_s: dict[str, Annotated[float, msgspec.Meta(gt=0, le=86_400)]] = {}
    """Per station, instead of late_after_s, e.g. {wok = 600, drinks = 180}."""
    out_dir: str = "/var/lib/restobox/reports"
    """Where the page and its charts go (a folder per business day)."""
    top_items: Annotated[int, msgspec.Meta(ge=0, le=50)] = 5
    """How many best-selling items the printed summary lists."""

    def late_after(self, station: str) -> float:
        return self.station_late_after_s.get(station, self.late_after_s)


class VoucherConfig(_Strict):
    """Group-buy vouchers (团购券) taken at the counter (restobox/vouchers.py):
    the sync service verifies and redeems them at the voucher platform; the
    counter shows its Voucher button when enabled."""

    enabled: bool = False
    url: str = "https://vouchers.example.com"
    """The platform's API base URL (``restobox voucher-dev`` for the demo and tests)."""
    app_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    """The store's account at the platform."""
    key_file: str | None = None
    """File holding the key the platform signs with (HMAC-SHA256; one line).
    RESTOBOX_VOUCHER_KEY overrides. Only the sync service needs it."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    """How long one call to the platform waits for its answer (the counter
    waits this long more than [counter] reply_timeout_s)."""

    def key(self) -> bytes:
        env = os.environ.get("RESTOBOX_VOUCHER_KEY")
        if env:
            return env.strip().encode()
        if not self.key_file:
            raise ConfigError("[vouchers] key_file is not set: the voucher platform needs the store's key")
        try:
            text = Path(self.key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the voucher platform key file {self.key_file}: {exc.strerror}") from None
        if not text:
            raise ConfigError(f"the voucher platform key file {self.key_file} is empty")
        return text.encode()


class Config(_Strict):
    device: DeviceConfig
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    mqtt: MqttConfig = msgspec.field(default_factory=MqttConfig)
    hub: HubConfig = msgspec.field(default_factory=HubConfig)
    printing: PrintingConfig = msgspec.field(default_factory=PrintingConfig)
    kds: KdsConfig = msgspec.field(default_factory=KdsConfig)
    kiosk: KioskConfig = msgspec.field(default_factory=KioskConfig)
    counter: CounterConfig = msgspec.field(default_factory=CounterConfig)
    sync: SyncConfig = msgspec.field(default_factory=SyncConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    staff: StaffConfig = msgspec.field(default_factory=StaffConfig)
    web: WebConfig = msgspec.field(default_factory=WebConfig)
    paygate: PaygateConfig = msgspec.field(default_factory=PaygateConfig)
    report: ReportConfig = msgspec.field(default_factory=ReportConfig)
    vouchers: VoucherConfig = msgspec.field(default_factory=VoucherConfig)

    def mqtt_username(self) -> str:
        return self.mqtt.username or self.device.id

    def mqtt_password(self) -> str | None:
        env = os.environ.get("RESTOBOX_MQTT_PASSWORD")
        if env:
            return env
        if self.mqtt.password_file:
            p = Path(self.mqtt.password_file)
            try:
                secret = p.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the MQTT password file {p}: {exc.strerror}"
                ) from None
            if not secret:
                raise ConfigError(f"the MQTT password file {p} is empty")
            return secret
        return None

    def mqtt_ca_file(self) -> str | None:
        """The CA certificate to verify the broker with (``[mqtt] ca_file``
        when ``tls``), checked to be a readable PEM certificate; None
        without TLS."""
        if not self.mqtt.tls:
            return None
        import ssl

        path = self.mqtt.ca_file or ""
        try:
            ssl.create_default_context(cafile=path)
        except FileNotFoundError:
            raise ConfigError(f"the broker's CA certificate {path} ([mqtt] ca_file) does not exist: "
                              "copy the store CA (ca.crt) from the hub, or enroll the device again",
                              "mqtt_ca_missing") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"the broker's CA certificate {path} ([mqtt] ca_file) cannot be used: "
                              f"{getattr(exc, 'strerror', None) or exc} (it must be a PEM certificate, "
                              "as the hub's /etc/restobox/broker/tls/ca.crt)", "mqtt_ca_unusable") from None
        return path


def parse(text: str, source: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    try:
        cfg = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_humane(str(exc))}") from None
    _check_timezone(cfg, source)
    _check_mqtt_transport(cfg, source)
    return cfg


def load(path: str | os.PathLike | None = None) -> Config:
    p = Path(path or os.environ.get("RESTOBOX_CONFIG") or DEFAULT_PATH)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    return parse(text, str(p))


def _humane(msg: str) -> str:
    # msgspec says "Object contains unknown field `hots` - at `$.mqtt`";
    # a person reads "unknown key `hots` in [mqtt]".
    msg = msg.replace("Object contains unknown field", "unknown key")
    msg = msg.replace("Object missing required field", "missing key")
    if msg.startswith("Invalid value") and msg.endswith(".port`"):
        msg = msg.replace(" - at", " (a printer port is one of serial, usb, network, file, virtual) - at")
    if " - at `$." in msg:
        head, _, path = msg.partition(" - at `$.")
        path = path.rstrip("`")
        return f"{head} in [{path}]"
    return msg


def _check_timezone(cfg: Config, source: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(cfg.store.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a folder of zones
        raise ConfigError(
            f"{source}: unknown time zone {cfg.store.timezone!r} in [store] (e.g. Asia/Shanghai)"
        ) from None


def _check_mqtt_transport(cfg: Config, source: str) -> None:
    """A password never goes in plain text over the store network: a broker
    that is not on this machine needs ``tls`` (with its CA), unless
    ``allow_plain_network`` says this is a developer's setup."""
    m = cfg.mqtt
    if m.tls and not m.ca_file:
        raise ConfigError(f"{source}: [mqtt] tls = true needs ca_file, the store CA's certificate that the "
                          "broker's certificate is checked against (e.g. ca_file = \"/etc/restobox/store-ca.crt\")",
                          "mqtt_tls_without_ca")
    if m.ca_file and not m.tls:
        raise ConfigError(f"{source}: [mqtt] ca_file is set but tls is not: add tls = true (port 8883 on the hub), "
                          "or remove ca_file", "mqtt_ca_without_tls")
    if not m.tls and not m.allow_plain_network and not is_local_host(m.host):
        raise ConfigError(
            f"{source}: [mqtt] host {m.host!r} is another machine, and without TLS this device's password would "
            "cross the network in plain text: set tls = true, port = 8883 and ca_file (the store CA that "
            "`restobox add-device` hands out), or, on a developer's network only, allow_plain_network = true",
            "mqtt_plain_to_network")
