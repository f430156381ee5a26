"""What the counter's view model keeps and says: the commands it gives the
app, an order as the counter knows it, and the view the window draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk.viewmodel.model import CancelPayment, QueryBalance
from restobox.contract import OrderSubmit, TillRequest, Words

Clock = Callable[[], float]

# =========================================================================
# Commands
# =========================================================================


@dataclass(frozen=True, slots=True)
class SendTill:
    request: TillRequest
    due: int = 0


@dataclass(frozen=True, slots=True)
class ChargeCard:
    intent_id: str
    method: str  # card | qr
    amount: int
    draft: TillRequest  # the payment with the tenders before this card, and its due
    due: int


@dataclass(frozen=True, slots=True)
class OpenDrawer:
    request_id: str


@dataclass(frozen=True, slots=True)
class SubmitWalkin:
    order: OrderSubmit
    discount: int = 0  # fen the member's points took off (the hub prices it again)


@dataclass(frozen=True, slots=True)
class Reprint:
    order_id: str


@dataclass(frozen=True, slots=True)
class AskVoucher:
    """A group-buy voucher verified or redeemed at its platform, through the
    sync service (VoucherRequest). For a ``redeem`` the app sends the request
    id counter.db keeps for the code (``request_id`` when it has none yet,
    committed before it is sent): every retry is the same redemption."""

    request_id: str
    kind: str  # verify | redeem
    code: str
    order_id: str


Command = SendTill | ChargeCard | CancelPayment | OpenDrawer | SubmitWalkin | Reprint | QueryBalance | AskVoucher


# =========================================================================
# State
# =========================================================================


@dataclass(slots=True)
class OrderInfo:
    """An order as the counter knows it."""

    order_id: str
    number: int = 0
    total: int = 0
    paid: int = 0
    payment: str = "unpaid"
    state: str = "accepted"
    channel: str = ""
    table: str = ""
    provisional: str = ""
    lines: list = field(default_factory=list)  # [{"line", "name_zh", "name_en", "qty", "line_total"}]
    paid_by: str = ""
    seen: float = 0.0

    @property
    def due(self) -> int:
        return max(0, self.total - self.paid) if self.payment == "unpaid" else 0

    @property
    def open(self) -> bool:
        return self.payment == "unpaid" and self.state not in ("voided", "rejected")


@dataclass(slots=True)
class VoucherWork:
    """The voucher being taken on the pay screen: ``verifying`` (asked),
    ``confirm`` (the platform says it can be used: the cashier confirms),
    ``redeeming`` (asked to use it up)."""

    code: str
    stage: str
    request_id: str
    title: Words | None = None
    value: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    """A line of the left panel: text, and a target when it can be tapped."""

    text: str
    target: str = ""
    style: str = "plain"  # plain | order | chosen | warn | head


@dataclass(frozen=True, slots=True)
class Btn:
    target: str
    text: str
    style: str = "normal"  # normal | primary | pay | warn | key | toggle_on


@dataclass(frozen=True, slots=True)
class CounterView:
    screen: str
    title: str
    status: str
    shift: str
    notice: str
    big: str
    sub: str
    find: str
    rows: tuple[Row, ...]
    keypad: bool
    buttons: tuple[Btn, ...]
    hub_ok: bool
