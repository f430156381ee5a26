"""The kiosk's state and what it asks the app to do: the names of screens
and phases, the cart's lines, the dish being chosen, QR deep links, refusals
and the commands the app carries out (payment, order, balance).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from restobox.contract import OrderSubmit, Words
from restobox.menu import Name

log = logging.getLogger("restobox.kiosk")

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); tests pass a fake."""

Lang = Literal["zh", "en"]
Screen = Literal["attract", "language", "service", "menu", "item", "cart", "member", "pay", "confirm", "help"]
MemberPhase = Literal["entry", "checking", "found", "unavailable"]
PayPhase = Literal["choose", "paying", "problem", "submitting", "refused"]
Method = Literal["card", "qr", "counter"]

TABLE_RE = re.compile(r"[A-Za-z0-9-]{1,8}")


@dataclass(frozen=True, slots=True)


class DeepLink:
    table: str | None = None
    service: str | None = None
    lang: str | None = None


def parse_deep_link(url: str) -> DeepLink:
    """``restobox://kiosk?table=12&lang=en`` (from the QR code on a table).

    Unknown or malformed values are ignored (logged): a bad sticker must not
    stop the kiosk.
    """
    q = parse_qs(urlsplit(url).query)

    def one(key: str) -> str | None:
        v = q.get(key)
        return v[-1].strip() if v else None

    table, service, lang = one("table"), one("service"), one("lang")
    if table is not None and not TABLE_RE.fullmatch(table):
        log.warning("deep link %r: ignoring table %r (1-8 of A-Z, a-z, 0-9, '-')", url, table)
        table = None
    if service not in (None, "dine_in", "takeaway"):
        log.warning("deep link %r: ignoring service %r", url, service)
        service = None
    if lang not in (None, "zh", "en"):
        lang = None
    if table and service is None:
        service = "dine_in"
    return DeepLink(table=table, service=service, lang=lang)


class ActionRefused(Exception):
    """A diner's action that cannot be done; ``words`` are for the screen.

    ``code``: not_now, sold_out, option_sold_out, too_many, choose_more,
    bad_quantity, cart_full, cart_blocked, cart_empty, no_table, bad_table,
    unknown_item, unknown_line, unknown_target, busy, bad_method.
    """

    def __init__(self, code: str, words: Words) -> None:
        self.code = code
        self.words = words
        super().__init__(words.en)


# =========================================================================
# Commands for the app
# =========================================================================


@dataclass(frozen=True, slots=True)


class StartPayment:
    """Run a PaymentFlow: ``begin(intent_id, order_id=..., amount=...)`` with
    the terminal for ``method`` (``counter``: CounterPayment)."""

    intent_id: str
    order_id: str
    method: Method
    amount: int


@dataclass(frozen=True, slots=True)


class CancelPayment:
    intent_id: str


@dataclass(frozen=True, slots=True)


class CheckPaymentAgain:
    intent_id: str


@dataclass(frozen=True, slots=True)


class SubmitOrder:
    order: OrderSubmit


@dataclass(frozen=True, slots=True)


class QueryBalance:
    """Ask the hub a member's points (LoyaltyQuery on loyalty/query/<device>);
    answer with ``on_balance``, or ``balance_unavailable`` after the timeout."""

    query_id: str
    phone: str


Command = StartPayment | CancelPayment | CheckPaymentAgain | SubmitOrder | QueryBalance


@dataclass(frozen=True, slots=True)


class OutboxEntry:
    """An order placed while the hub could not be reached: the app commits it
    to the kiosk's outbox and sends ``payload`` once the hub is back."""

    order_id: str
    provisional_number: str
    order: OrderSubmit
    payload: bytes
    created_at: float


# =========================================================================
# State
# =========================================================================


@dataclass(slots=True)


class CartLine:
    line_id: int
    item_id: str
    modifiers: tuple[str, ...]
    qty: int
    name: Name  # as added: shown even if the item leaves the menu
    note: str = ""


@dataclass(slots=True)


class _Editor:
    item_id: str
    chosen: dict[str, list[str]]  # group id -> option ids, in tap order
    qty: int = 1
    line_id: int | None = None  # editing this cart line
    return_to: Screen = "menu"
    missing: set[str] = field(default_factory=set)


LineProblem = Literal["sold_out", "option_sold_out", "not_on_menu", "options_changed"]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
