"""The diner's kiosk, as a view model: plain Python, no Kivy, no MQTT, no
database, no threads, no clock of its own.

:class:`KioskViewModel` takes the menu, the 86 list (``on_menu``,
``on_soldout``), the hub's replies (``on_reply``), payment progress
(``on_payment``) and taps (``tap``), and says what to do through commands the
app takes with :meth:`KioskViewModel.take_commands`:

- :class:`StartPayment` / :class:`CancelPayment` / :class:`CheckPaymentAgain`:
  drive a :class:`kiosk.payment.PaymentFlow` on a worker thread and hand each
  :class:`~kiosk.payment.PaymentUpdate` back to ``on_payment``;
- :class:`SubmitOrder`: publish ``order`` on ``topics.order_submit(device)``
  (the app answers with ``on_reply``, or, when the hub or broker cannot be
  reached, calls ``submit_offline`` and stores ``outbox_entry``).

Flow: attract -> language -> service (dine-in + table / takeaway; a QR deep
link prefills it) -> menu -> item (modifier groups) -> cart -> pay -> confirm
-> attract; ``help`` when money was taken but the hub refused the order. The
language (zh/en) switches in any state; every text a screen shows comes from
:meth:`KioskViewModel.view` in the current language.

One thread: every call comes from the UI thread (the app hands results of
its workers over with ``Clock.schedule_once``).

Money is never the kiosk's own arithmetic (invariant 4): the cart is priced by
``restobox.orders.price_order``, the hub's own function, and the total shown is
sent as ``expected_total``. The order id is made at the first tap and kept
until the order is confirmed or abandoned (invariant 1): resubmitting after a
lost reply sends the very same order, which the hub answers as a duplicate.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import msgspec

from restobox import contract, loyalty
from restobox.contract import (
    REASONS,
    LoyaltyBalance,
    LoyaltyClaim,
    MenuMessage,
    OrderReply,
    OrderSubmit,
    Rejection,
    SoldOut,
    SubmitLine,
    SubmitPayment,
    Words,
)
from restobox.menu import Item, Menu, MenuIndex, ModifierGroup, Name
from restobox.orders import MAX_ITEMS_PER_ORDER, MAX_LINES, MAX_QTY_PER_LINE, PricedOrder, price_order

from kiosk.payment import ACTION_WORDS, PaymentUpdate

log = logging.getLogger("restobox.kiosk")

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); tests pass a fake."""

Lang = Literal["zh", "en"]
Screen = Literal["attract", "language", "service", "menu", "item", "cart", "member", "pay", "confirm", "help"]
MemberPhase = Literal["entry", "checking", "found", "unavailable"]
PayPhase = Literal["choose", "paying", "problem", "submitting", "refused"]
Method = Literal["card", "qr", "counter"]

TABLE_RE = re.compile(r"[A-Za-z0-9-]{1,8}")

# =========================================================================
# Texts: every sentence a screen shows, in both languages
# =========================================================================

T: dict[str, Words] = {
    "attract.title": Words("欢迎光临", "Welcome"),
    "attract.touch": Words("点击屏幕开始点餐", "Touch to start your order"),
    "language.title": Words("请选择语言", "Choose your language"),
    "lang.zh": Words("中文", "中文"),
    "lang.en": Words("English", "English"),
    "service.title": Words("在这里吃还是带走？", "Eat here or take away?"),
    "service.dine_in": Words("堂食", "Eat here"),
    "service.takeaway": Words("外带", "Take away"),
    "service.table": Words("请输入桌号（桌上的号码牌）", "Enter your table number (on the table sign)"),
    "service.delete": Words("删除", "Delete"),
    "service.table_from_link": Words("桌号已从二维码读取", "Table number from the QR code"),
    "menu.title": Words("菜单", "Menu"),
    "menu.cart": Words("购物车", "Cart"),
    "menu.added": Words("已加入购物车", "Added to your cart"),
    "sold_out": Words("已售罄", "Sold out"),
    "item.add": Words("加入购物车", "Add to cart"),
    "item.update": Words("更新", "Update"),
    "item.qty": Words("数量", "Quantity"),
    "item.allergens": Words("过敏原", "Allergens"),
    "cart.title": Words("你的订单", "Your order"),
    "cart.empty": Words("购物车是空的", "Your cart is empty"),
    "cart.subtotal": Words("小计", "Subtotal"),
    "cart.tax_incl": Words("其中税额", "Incl. VAT"),
    "cart.tax": Words("税额", "VAT"),
    "cart.total": Words("合计", "Total"),
    "cart.checkout": Words("去付款", "Go to payment"),
    "cart.more": Words("继续点餐", "Add more"),
    "cart.blocked": Words("购物车里有菜品需要你处理，处理后才能付款。",
                          "Something in your cart needs your choice before you can pay."),
    "cart.remove": Words("删除", "Remove"),
    "cart.replace": Words("换一道", "Choose another"),
    "cart.edit": Words("修改选项", "Change options"),
    "pay.title": Words("付款", "Payment"),
    "pay.choose": Words("请选择付款方式", "How would you like to pay?"),
    "pay.card": Words("刷卡", "Card"),
    "pay.qr": Words("扫码支付", "QR code"),
    "pay.counter": Words("到柜台付款", "Pay at the counter"),
    "pay.submitting": Words("正在下单，请稍候……", "Placing your order, one moment…"),
    "pay.retry_submit": Words("再试一次", "Try again"),
    "confirm.title": Words("下单成功！", "Thank you! Your order is in."),
    "confirm.number": Words("取餐号", "Your number"),
    "confirm.provisional": Words("临时号码", "Provisional number"),
    "confirm.provisional_note": Words(
        "门店网络暂时中断：订单已保存在本机，网络恢复后会自动送到厨房。请保留小票，取餐时出示此号码。",
        "The store network is down for a moment: your order is saved on this kiosk and goes to the "
        "kitchen as soon as it is back. Keep your receipt and show this number when you collect.",
    ),
    "confirm.wait": Words("请留意取餐屏幕上的号码。", "Watch for your number on the pickup screen."),
    "confirm.paid": Words("已付款", "Paid"),
    "confirm.unpaid": Words("请到柜台付款，小票上注明“未付款”。",
                            "Please pay at the counter; your receipt says UNPAID."),
    "confirm.check": Words("付款待核对：请到柜台，店员会为你核对是否已扣款。",
                           "Payment to be checked: please go to the counter, staff will check whether you were charged."),
    "confirm.done": Words("完成", "Done"),
    "help.title": Words("请联系店员", "Please ask a member of staff"),
    "help.done": Words("店员已处理", "Staff has helped"),
    "still.title": Words("还在吗？", "Are you still there?"),
    "still.text": Words("{s} 秒后将重新开始。", "The order will start over in {s} seconds."),
    "still.yes": Words("我还在", "I'm still here"),
    "still.no": Words("重新开始", "Start over"),
    "member.title": Words("会员积分", "Loyalty points"),
    "member.prompt": Words("输入手机号，积分可抵现金（可跳过）", "Enter your mobile number to earn and use points (optional)"),
    "member.ok": Words("确定", "OK"),
    "member.skip": Words("跳过", "Skip"),
    "member.checking": Words("正在查询积分……", "Looking up your points…"),
    "member.balance": Words("会员 {member}：积分 {balance}", "Member {member}: {balance} points"),
    "member.redeem": Words("用 {points} 积分抵 {amount}", "Use {points} points: {amount} off"),
    "member.redeeming": Words("已用 {points} 积分抵 {amount}（点此取消）", "Using {points} points: {amount} off (tap to undo)"),
    "member.too_few": Words("积分满 {min} 可用于抵扣。", "Points can be used from {min} points."),
    "member.continue": Words("去付款", "Go to payment"),
    "member.change": Words("换号码", "Change number"),
    "member.offline": Words(
        "门店网络暂时中断：本单积分会在订单送达门店后计入，现在不能使用积分。",
        "The store network is down for a moment: this order's points are added once it reaches the store; "
        "points cannot be used right now."),
    "member.earn": Words("本单可得约 {points} 积分。", "This order earns about {points} points."),
    "member.bad_phone": Words("手机号码不正确：请输入 11 位手机号（1 开头）。",
                              "That number is not valid: please enter your 11-digit mobile number (starting with 1)."),
    "confirm.points": Words("会员 {member}：本单积分 +{earned}，余额 {balance}", "Member {member}: +{earned} points, balance {balance}"),
    "confirm.points_later": Words("会员 {member}：积分将在订单送达门店后计入", "Member {member}: points are added when the order reaches the store"),
    "back": Words("返回", "Back"),
    "next": Words("下一步", "Next"),
    "cancel_order": Words("取消订单", "Cancel order"),
    "a11y.large_text": Words("大字", "Large text"),
    "a11y.high_contrast": Words("高对比度", "High contrast"),
    "a11y.reach": Words("低位操作", "Easy reach"),
    "price_changed": Words("价格有变动，请查看新的价格。", "Prices have changed; please check the new prices."),
    "upsell.drink": Words("来一杯{zh}吗？", "Add a drink? {en}"),
}

# How a refusal of the hub is explained, and what the diner can do about it.
FORWARD: dict[str, Words] = {
    "price_changed": Words("购物车里已是新的价格，请确认后再付款。",
                           "Your cart shows the new prices; check them and pay again."),
    "unavailable": Words("请删除它，或换一道菜。", "Remove it, or choose something else."),
    "fix_cart": Words("请在购物车里修改后再付款。", "Please change your cart and pay again."),
    "retry": Words("请再试一次；如果还不行，请到柜台点餐。", "Please try again; if it still fails, order at the counter."),
}

# The hub refused the points part: back to the phone screen.
LOYALTY_REASONS = frozenset({"phone_invalid", "points_insufficient", "points_not_allowed", "loyalty_disabled"})

CART_REASONS = frozenset({
    "price_mismatch", "item_unavailable", "modifier_unavailable", "unknown_item", "unknown_modifier",
    "modifier_not_allowed", "modifier_missing", "modifier_too_many", "modifier_duplicate", "bad_quantity",
    "empty_order", "too_many_lines", "table_required", "payment_mismatch",
})

ALLERGEN_NAMES: dict[str, Words] = {
    "celery": Words("芹菜", "celery"), "gluten": Words("麸质", "gluten"),
    "crustaceans": Words("甲壳类", "crustaceans"), "egg": Words("蛋", "egg"), "fish": Words("鱼", "fish"),
    "lupin": Words("羽扇豆", "lupin"), "milk": Words("奶", "milk"), "molluscs": Words("软体动物", "molluscs"),
    "mustard": Words("芥末", "mustard"), "peanut": Words("花生", "peanut"), "sesame": Words("芝麻", "sesame"),
    "soy": Words("大豆", "soy"), "sulphites": Words("亚硫酸盐", "sulphites"),
    "tree-nut": Words("坚果", "tree nuts"),
}


def money(fen: int) -> str:
    """``3200`` -> ``"¥32.00"``; ``-100`` -> ``"-¥1.00"``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


def delta_text(fen: int) -> str:
    """A modifier's price change: ``"+¥2.00"``, ``"-¥1.00"``, ``""`` for none."""
    if fen == 0:
        return ""
    return f"+{money(fen)}" if fen > 0 else money(fen)


def provisional_number(device: str, counter: int) -> str:
    """The number shown while offline: ``("kiosk-1", 7)`` -> ``"K1-007"``.

    The tag comes from the device id's last digits (``K`` + them), else its
    first letters; the counter is the kiosk's own, kept in its database.
    """
    m = re.search(r"(\d+)$", device)
    tag = f"K{m.group(1)[-3:]}" if m else re.sub(r"[^a-z0-9]", "", device)[:4].upper() or "K"
    return f"{tag}-{counter % 1000:03d}"


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
# Views: what each screen draws, already in the current language
# =========================================================================


@dataclass(frozen=True, slots=True)
class Button:
    id: str  # pass to tap()
    label: str
    enabled: bool = True
    selected: bool = False


@dataclass(frozen=True, slots=True)
class Chrome:
    """On every screen: language switch, accessibility, cancel."""

    lang: str
    language: Button  # switches to the other language
    large_text: Button
    high_contrast: Button
    reach: Button
    cancel: Button | None
    notice: str | None


@dataclass(frozen=True, slots=True)
class AttractView:
    title: str
    touch: str
    start: Button
    languages: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class LanguageView:
    title: str
    languages: tuple[Button, ...]
    back: Button


@dataclass(frozen=True, slots=True)
class ServiceView:
    title: str
    options: tuple[Button, ...]
    table_prompt: str | None  # None: no table needed
    table: str
    table_note: str | None
    keys: tuple[Button, ...]  # "table:key:0".."9", "table:del"
    next: Button
    back: Button


@dataclass(frozen=True, slots=True)
class CategoryTile:
    id: str
    tap: str
    name: str
    color: str
    selected: bool


@dataclass(frozen=True, slots=True)
class ItemTile:
    id: str
    tap: str
    name: str
    price: str
    color: str
    image: str | None
    sold_out: bool
    badge: str | None  # "已售罄" / "Sold out"
    allergens: str
    photo: str = ""  # a tile-sized image file on disk (set_photos), "" when none is ready


@dataclass(frozen=True, slots=True)
class MenuView:
    title: str
    categories: tuple[CategoryTile, ...]
    items: tuple[ItemTile, ...]
    cart: Button  # "Cart (3) · ¥96.00"
    back: Button


@dataclass(frozen=True, slots=True)
class OptionView:
    id: str
    tap: str
    name: str
    delta: str
    selected: bool
    sold_out: bool
    enabled: bool


@dataclass(frozen=True, slots=True)
class GroupView:
    id: str
    name: str
    rule: str  # "必选 1 项" / "Required: choose 1"
    required: bool
    chosen: int
    options: tuple[OptionView, ...]
    error: str | None  # set after "add" with too few choices


@dataclass(frozen=True, slots=True)
class EditorView:
    item_id: str
    name: str
    description: str
    allergens: str
    base_price: str
    groups: tuple[GroupView, ...]
    qty: int
    unit_price: int
    unit_price_text: str
    line_total_text: str
    minus: Button
    plus: Button
    add: Button
    back: Button
    photo: str = ""  # as ItemTile.photo


@dataclass(frozen=True, slots=True)
class CartLineView:
    line_id: int
    name: str
    modifiers: tuple[str, ...]
    qty: int
    unit_price: str
    line_total: str
    problem: str | None
    minus: Button
    plus: Button
    actions: tuple[Button, ...]  # remove, plus replace or edit


@dataclass(frozen=True, slots=True)
class CartView:
    title: str
    lines: tuple[CartLineView, ...]
    empty: str | None
    subtotal: str
    tax: str
    total: str
    total_fen: int
    blocked: str | None
    upsell: Button | None
    checkout: Button
    more: Button


@dataclass(frozen=True, slots=True)
class MemberView:
    """The phone number screen: a number pad, then the balance and a redemption.
    The number is shown masked as it is typed (138****5678)."""

    title: str
    prompt: str
    phase: MemberPhase
    phone: str
    keys: tuple[Button, ...]  # "phone:key:0".."9", "phone:del"
    ok: Button
    skip: Button
    balance: str | None
    redeem: Button | None
    message: str | None
    total: str
    go: Button  # "phone:continue"
    change: Button | None
    back: Button


@dataclass(frozen=True, slots=True)
class PayView:
    title: str
    phase: PayPhase
    total: str
    prompt: str
    methods: tuple[Button, ...]
    message: str | None
    actions: tuple[Button, ...]
    busy: bool  # show progress; no input but the actions
    back: Button | None


@dataclass(frozen=True, slots=True)
class ConfirmView:
    title: str
    label: str  # "取餐号" / "Provisional number"
    number: str
    provisional: bool
    note: str
    payment: str
    total: str
    done: Button
    points: str | None = None


@dataclass(frozen=True, slots=True)
class HelpView:
    title: str
    message: str
    reference: str
    done: Button


@dataclass(frozen=True, slots=True)
class StillThereView:
    title: str
    text: str
    seconds_left: int
    yes: Button
    no: Button


View = (AttractView | LanguageView | ServiceView | MenuView | EditorView | CartView | MemberView | PayView
        | ConfirmView | HelpView)

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


class KioskViewModel:
    """One diner's order at one kiosk, from the first tap to the number."""

    def __init__(
        self,
        menu: Menu,
        *,
        clock: Clock,
        device: str,
        idle_s: float = 60,
        still_there_s: float = 15,
        confirm_s: float = 20,
        tap_guard_s: float = 0.3,
        sold_out: Iterable[str] = (),
        lang: Lang = "zh",
        payment_methods: tuple[Method, ...] = ("card", "qr", "counter"),
        table_required: bool = True,
        deep_link: str | None = None,
        upsell_category: str | None = "drinks",
        channel: str = "kiosk",
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        loyalty: bool = False,
        phone_patterns: tuple[str, ...] = (),
    ) -> None:
        contract.topics.order_submit(device)  # checks the device id
        if idle_s <= 0 or still_there_s <= 0 or confirm_s <= 0 or tap_guard_s < 0:
            raise ValueError("idle_s, still_there_s and confirm_s must be more than 0, tap_guard_s at least 0")
        for m in payment_methods:
            if m not in ("card", "qr", "counter"):
                raise ValueError(f"unknown payment method {m!r}")
        if not payment_methods:
            raise ValueError("at least one payment method is needed")
        self.link = parse_deep_link(deep_link) if deep_link else DeepLink()
        self.device = device
        self.clock = clock
        self.idle_s = idle_s
        self.still_there_s = still_there_s
        self.confirm_s = confirm_s
        self.tap_guard_s = tap_guard_s
        self.default_lang: Lang = self.link.lang or lang  # type: ignore[assignment]
        self.payment_methods = tuple(payment_methods)
        self.table_required = table_required
        self.upsell_category = upsell_category
        self.channel = channel
        self._new_id = new_id
        self.loyalty = loyalty
        self.phone_patterns = tuple(phone_patterns)
        self.hub_reachable = True  # the app says when the hub cannot be asked (no balance, no redeeming)
        self.photos: dict[str, str] = {}  # a menu item's image name -> a tile-sized file on disk
        self.on_change: Callable[[], None] | None = None  # the app's coalesced redraw
        self._set_menu(menu)
        self._sold_out: frozenset[str] = frozenset(sold_out)
        self.duplicate_taps = 0
        self._last_tap: tuple[str, float] | None = None
        self._commands: list[Command] = []
        self._reset_order()
        self._last_activity = clock()

    # ================================================================ state
    def set_photos(self, photos: dict[str, str]) -> None:
        """The photos ready on disk: a menu item's ``image`` name -> the path of
        a tile-sized image file. Replaces the last mapping (an image missing from
        it shows a colour tile) and asks for a redraw. UI thread only."""
        photos = {str(k): str(v) for k, v in photos.items() if k and v}
        if photos == self.photos:
            return
        self.photos = photos
        if self.on_change is not None:
            self.on_change()

    def photo(self, item: Item) -> str:
        """The tile-sized photo of a menu item, or "" (a colour tile)."""
        return self.photos.get(item.image, "") if item.image else ""

    def _set_menu(self, menu: Menu) -> None:
        self.menu = menu
        self.idx = MenuIndex(menu)

    def _reset_order(self) -> None:
        self.screen: Screen = "attract"
        self.lang: Lang = self.default_lang
        self.large_text = False
        self.high_contrast = False
        self.reach = False
        self.order_id: str | None = None
        self.service: str | None = self.link.service
        self.table: str = self.link.table or ""
        self.category: str | None = None
        self.cart: list[CartLine] = []
        self._next_line = 1
        self.editor: _Editor | None = None
        self._notice: Words | None = None
        self.still_there = False
        self._still_since = 0.0
        self.pay_phase: PayPhase = "choose"
        self.method: Method | None = None
        self.intent_id: str | None = None
        self.payment_update: PaymentUpdate | None = None
        self.payment: SubmitPayment | None = None
        self._quote: PricedOrder | None = None
        self.submitted: OrderSubmit | None = None
        self._placed_at = ""
        self.reply: OrderReply | None = None
        self.number: int | None = None
        self.provisional: str | None = None
        self.outbox_entry: OutboxEntry | None = None
        self.help_words: Words | None = None
        self._confirm_at = 0.0
        # loyalty: the digits typed, the number given (normalised), the hub's balance
        self.phone_typed = ""
        self.phone: str | None = None
        self.member_phase: MemberPhase = "entry"
        self.member: LoyaltyBalance | None = None
        self.redeem = 0
        self._query_id: str | None = None
        self._member_words: Words | None = None

    def reset(self, reason: str = "") -> None:
        """Back to the attract screen; the order (cart, id) is dropped."""
        if self.order_id and self.screen != "confirm":
            log.info("order %s abandoned (%s)", self.order_id, reason or "reset")
        self._reset_order()
        self._last_activity = self.clock()

    @property
    def sold_out(self) -> frozenset[str]:
        """Item and option ids not available now (the hub's 86 list)."""
        return self._sold_out

    def text(self, words: Words) -> str:
        return words.zh if self.lang == "zh" else words.en

    def _name(self, name: Name) -> str:
        return name.get(self.lang)

    @property
    def notice(self) -> str | None:
        """The last refusal or explanation, in the current language."""
        return self.text(self._notice) if self._notice else None

    @property
    def notice_words(self) -> Words | None:
        return self._notice

    def take_commands(self) -> list[Command]:
        out, self._commands = self._commands, []
        return out

    @property
    def busy(self) -> bool:
        """Waiting for the terminal or the hub: no idle reset, no going back."""
        return self.screen == "pay" and self.pay_phase in ("paying", "submitting")

    # ================================================================= taps
    def tap(self, target: str) -> bool:
        """A touch on ``target`` (a Button's id). False when ignored: the same
        target again within ``tap_guard_s`` (a touch screen seen by two input
        providers delivers every touch twice). A refused action leaves its
        reason in ``notice``."""
        now = self.clock()
        if self._last_tap is not None:
            last, at = self._last_tap
            if last == target and now - at < self.tap_guard_s:
                self.duplicate_taps += 1
                return False
        self._last_tap = (target, now)
        self._last_activity = now
        if self.still_there:
            # the "still there?" question covers the screen: any touch answers it
            if target == "still_there:no":
                self.reset("start over")
            else:
                self.still_there = False
            return True
        try:
            self._dispatch(target)
        except ActionRefused as exc:
            self._notice = exc.words
        return True

    def _dispatch(self, target: str) -> None:
        verb, _, arg = target.partition(":")
        if verb == "start":
            self.start()
        elif verb == "lang":
            self.set_language(arg)  # type: ignore[arg-type]
        elif verb == "service":
            self.choose_service(arg)
        elif verb == "table":
            key, _, k = arg.partition(":")
            if key == "key":
                self.table_key(k)
            elif key == "del":
                self.table_delete()
            else:
                raise ActionRefused("unknown_target", Words("无法识别的操作。", "Unknown action."))
        elif verb == "next":
            self.confirm_service()
        elif verb == "category":
            self.open_category(arg)
        elif verb == "item":
            self.open_item(arg)
        elif verb == "option":
            self.toggle_option(arg)
        elif verb == "qty":
            self.change_item_qty(+1 if arg == "+" else -1)
        elif verb == "add":
            self.add_to_cart()
        elif verb == "cart":
            self.open_cart()
        elif verb == "line":
            line_id, _, action = arg.partition(":")
            lid = int(line_id) if line_id.isdigit() else -1
            {"+": lambda: self.change_line_qty(lid, +1), "-": lambda: self.change_line_qty(lid, -1),
             "remove": lambda: self.remove_line(lid), "edit": lambda: self.edit_line(lid),
             "replace": lambda: self.replace_line(lid)}.get(action, self._unknown)()
        elif verb == "upsell":
            self.take_upsell()
        elif verb == "checkout":
            self.checkout()
        elif verb == "phone":
            key, _, k = arg.partition(":")
            {"key": lambda: self.phone_key(k), "del": self.phone_delete, "ok": self.phone_ok,
             "skip": self.skip_member, "redeem": self.toggle_redeem, "continue": self.member_continue,
             "change": self.change_phone}.get(key, self._unknown)()
        elif verb == "pay":
            self.choose_payment(arg)  # type: ignore[arg-type]
        elif verb == "payment":
            self.payment_action(arg)
        elif verb == "back":
            self.back()
        elif verb == "cancel_order":
            self.cancel_order()
        elif verb == "done":
            self.done()
        elif verb == "a11y":
            self.toggle_accessibility(arg)
        else:
            self._unknown()

    @staticmethod
    def _unknown() -> None:
        raise ActionRefused("unknown_target", Words("无法识别的操作。", "Unknown action."))

    # ============================================================ the flow
    def _need(self, *screens: str) -> None:
        if self.screen not in screens:
            raise ActionRefused("not_now", Words("现在不能这样操作。", "That is not possible right now."))

    def _go(self, screen: Screen) -> None:
        self.screen = screen
        self._notice = None

    def start(self) -> None:
        """The first tap of an order: the order id is made here (invariant 1)."""
        self._need("attract")
        self.order_id = self._new_id()
        self._go("language")

    def set_language(self, lang: Lang) -> None:
        """Switch the language, on any screen. On the attract and language
        screens it also moves on."""
        if lang not in ("zh", "en"):
            self._unknown()
        self.lang = lang
        if self.screen == "attract":
            self.start()
        if self.screen == "language":
            self._go("service")

    def choose_service(self, service: str) -> None:
        self._need("service")
        if service not in ("dine_in", "takeaway"):
            self._unknown()
        self.service = service
        self._notice = None

    def table_key(self, key: str) -> None:
        self._need("service")
        if len(key) != 1 or not TABLE_RE.fullmatch(key):
            self._unknown()
        if len(self.table) >= 8:
            raise ActionRefused("bad_table", Words("桌号最多 8 位。", "A table number has at most 8 characters."))
        self.table += key
        self.service = "dine_in"

    def table_delete(self) -> None:
        self._need("service")
        self.table = self.table[:-1]

    def set_table(self, table: str) -> None:
        self._need("service")
        if table and not TABLE_RE.fullmatch(table):
            raise ActionRefused("bad_table", Words("桌号只能是数字和字母。", "A table number is letters and digits."))
        self.table = table

    def confirm_service(self) -> None:
        self._need("service")
        if self.service is None:
            raise ActionRefused("no_service", Words("请选择堂食或外带。", "Please choose eat here or take away."))
        if self.service == "dine_in" and self.table_required and not self.table:
            raise ActionRefused("no_table", Words("请输入桌号。", "Please enter your table number."))
        if self.category is None:
            self.category = self._first_category()
        self._go("menu")

    def _first_category(self) -> str | None:
        used = {i.category for i in self.menu.items}
        return next((c.id for c in self.menu.categories if c.id in used), None)

    def open_category(self, category_id: str) -> None:
        self._need("menu", "cart", "item")
        if category_id not in self.idx.categories:
            self._unknown()
        self.category = category_id
        self.editor = None
        self._go("menu")

    def _item_sold_out(self, item: Item) -> bool:
        return not item.available or item.id in self._sold_out

    def open_item(self, item_id: str, *, return_to: Screen = "menu") -> None:
        self._need("menu", "cart")
        item = self.idx.items.get(item_id)
        if item is None:
            raise ActionRefused("unknown_item", Words("菜单上没有这道菜。", "That dish is not on the menu."))
        if self._item_sold_out(item):
            raise ActionRefused("sold_out", Words(f"抱歉，“{item.name.zh}”已售罄。",
                                                  f"Sorry, {item.name.en} is sold out right now."))
        chosen: dict[str, list[str]] = {}
        for gid in item.modifier_groups:
            g = self.idx.groups[gid]
            # defaults the menu marks, where still available and allowed
            defaults = [o.id for o in g.options if o.default and o.id not in self._sold_out]
            chosen[gid] = defaults[: g.max_choices]
        self.editor = _Editor(item_id=item_id, chosen=chosen, return_to=return_to)
        self._go("item")

    def _option_words(self, g: ModifierGroup) -> Words:
        lo, hi = g.min_choices, g.max_choices
        if g.required:
            if lo == hi:
                return Words(f"必选 {lo} 项", f"Required: choose {lo}")
            return Words(f"必选 {lo}–{hi} 项", f"Required: choose {lo} to {hi}")
        return Words(f"可选，最多 {hi} 项", f"Optional: up to {hi}")

    def toggle_option(self, option_id: str) -> None:
        """Choose or un-choose an option. In a group of one choice, choosing
        replaces; in a group of several, a choice beyond the maximum is refused."""
        self._need("item")
        ed = self.editor
        item = self.idx.items[ed.item_id]
        g = self.idx.option_group.get(option_id)
        if g is None or g.id not in item.modifier_groups:
            self._unknown()
        opt = self.idx.options[option_id]
        chosen = ed.chosen.setdefault(g.id, [])
        if option_id in chosen:
            if g.max_choices == 1 and g.min_choices == 1:
                return  # a radio choice stays chosen until another is tapped
            chosen.remove(option_id)
            self._notice = None
            return
        if option_id in self._sold_out:
            raise ActionRefused("option_sold_out", Words(f"抱歉，“{opt.name.zh}”已售罄。",
                                                         f"Sorry, “{opt.name.en}” is sold out right now."))
        if g.max_choices == 1:
            chosen[:] = [option_id]
        elif len(chosen) >= g.max_choices:
            raise ActionRefused("too_many", Words(
                f"“{g.name.zh}”最多选 {g.max_choices} 项，请先取消一项。",
                f"{g.name.en}: choose at most {g.max_choices}. Untick one first."))
        else:
            chosen.append(option_id)
        if len(chosen) >= g.min_choices:
            ed.missing.discard(g.id)
        self._notice = None

    def change_item_qty(self, delta: int) -> None:
        self._need("item")
        qty = self.editor.qty + delta
        if not 1 <= qty <= MAX_QTY_PER_LINE:
            raise ActionRefused("bad_quantity", Words(f"数量为 1 到 {MAX_QTY_PER_LINE}。",
                                                      f"The quantity is 1 to {MAX_QTY_PER_LINE}."))
        self.editor.qty = qty

    def _editor_modifiers(self) -> tuple[str, ...]:
        """The chosen options in menu order (group order, then option order)."""
        ed = self.editor
        item = self.idx.items[ed.item_id]
        out: list[str] = []
        for gid in item.modifier_groups:
            picked = set(ed.chosen.get(gid, ()))
            out += [o.id for o in self.idx.groups[gid].options if o.id in picked]
        return tuple(out)

    def editor_unit_price(self) -> int:
        """The live unit price: the item plus every chosen option's delta,
        the sum ``price_order`` makes."""
        ed = self.editor
        item = self.idx.items[ed.item_id]
        return item.price + sum(self.idx.options[o].price_delta for o in self._editor_modifiers())

    def add_to_cart(self) -> None:
        """Check the choices (required groups, maxima, availability) and put
        the item in the cart (or update the line being edited)."""
        self._need("item")
        ed = self.editor
        item = self.idx.items[ed.item_id]
        missing = [self.idx.groups[g] for g in item.modifier_groups
                   if len(ed.chosen.get(g, ())) < self.idx.groups[g].min_choices]
        if missing:
            ed.missing = {g.id for g in missing}
            g = missing[0]
            raise ActionRefused("choose_more", Words(
                f"请选择“{g.name.zh}”（至少 {g.min_choices} 项）。",
                f"Please choose {g.name.en} (at least {g.min_choices})."))
        mods = self._editor_modifiers()
        try:  # the hub's own rules, so nothing the hub would refuse gets in
            self._price([SubmitLine(item_id=item.id, qty=ed.qty, modifiers=mods)], self._sold_out)
        except Rejection as exc:
            raise ActionRefused(exc.reason, exc.words) from None
        others = [ln for ln in self.cart if ln.line_id != ed.line_id]
        same = next((ln for ln in others if ln.item_id == item.id and ln.modifiers == mods), None)
        if same is not None:
            if same.qty + ed.qty > MAX_QTY_PER_LINE:
                raise ActionRefused("bad_quantity", Words(f"同一道菜最多 {MAX_QTY_PER_LINE} 份。",
                                                          f"At most {MAX_QTY_PER_LINE} of one dish."))
        elif ed.line_id is None and len(self.cart) >= MAX_LINES:
            raise ActionRefused("cart_full", Words(f"一单最多 {MAX_LINES} 行。",
                                                   f"An order has at most {MAX_LINES} lines."))
        count = sum(ln.qty for ln in others) + ed.qty
        if count > MAX_ITEMS_PER_ORDER:
            raise ActionRefused("cart_full", Words(f"一单最多 {MAX_ITEMS_PER_ORDER} 份。",
                                                   f"An order has at most {MAX_ITEMS_PER_ORDER} items."))
        if same is not None:  # the same dish with the same choices: one line
            same.qty += ed.qty
            if ed.line_id is not None:
                self.cart = [ln for ln in self.cart if ln.line_id != ed.line_id]
        elif ed.line_id is not None:
            edited = self._line(ed.line_id)
            edited.modifiers, edited.qty, edited.name = mods, ed.qty, item.name
        else:
            self.cart.append(CartLine(self._next_line, item.id, mods, ed.qty, item.name))
            self._next_line += 1
        back = ed.return_to
        self.editor = None
        self._go(back)
        if back == "menu":
            self._notice = T["menu.added"]

    def open_cart(self) -> None:
        self._need("menu", "item", "pay", "member")
        if self.screen == "pay":
            self._leave_pay()
        self.editor = None
        self._go("cart")

    def back(self) -> None:
        s = self.screen
        if s == "language":
            self.reset("back")
        elif s == "service":
            self._go("language")
        elif s == "menu":
            self._go("service")
        elif s == "item":
            back = self.editor.return_to if self.editor else "menu"
            self.editor = None
            self._go(back)
        elif s == "cart":
            self._go("menu")
        elif s == "pay":
            self._leave_pay()
            self._go("member" if self.loyalty else "cart")
        elif s == "member":
            if self.member_phase == "checking":
                self.member_phase = "entry"
            self._go("cart")
        else:
            self._need("language", "service", "menu", "item", "cart", "member", "pay")

    def _line(self, line_id: int) -> CartLine:
        for ln in self.cart:
            if ln.line_id == line_id:
                return ln
        raise ActionRefused("unknown_line", Words("购物车里没有这一项。", "That is not in your cart."))

    def change_line_qty(self, line_id: int, delta: int) -> None:
        self._need("cart")
        ln = self._line(line_id)
        qty = ln.qty + delta
        if qty < 1:
            raise ActionRefused("bad_quantity", Words("要删除这道菜，请点“删除”。", "To take it out, tap Remove."))
        if qty > MAX_QTY_PER_LINE:
            raise ActionRefused("bad_quantity", Words(f"同一道菜最多 {MAX_QTY_PER_LINE} 份。",
                                                      f"At most {MAX_QTY_PER_LINE} of one dish."))
        if delta > 0 and sum(x.qty for x in self.cart) + delta > MAX_ITEMS_PER_ORDER:
            raise ActionRefused("cart_full", Words(f"一单最多 {MAX_ITEMS_PER_ORDER} 份。",
                                                   f"An order has at most {MAX_ITEMS_PER_ORDER} items."))
        ln.qty = qty
        self._notice = None

    def remove_line(self, line_id: int) -> None:
        self._need("cart")
        self._line(line_id)
        self.cart = [ln for ln in self.cart if ln.line_id != line_id]
        self._notice = None

    def edit_line(self, line_id: int) -> None:
        """Open the line in the item screen; a sold-out option is un-chosen."""
        self._need("cart")
        ln = self._line(line_id)
        item = self.idx.items.get(ln.item_id)
        if item is None or self._item_sold_out(item):
            raise ActionRefused("sold_out", Words("这道菜现在没有了，请删除或换一道。",
                                                  "That dish is not available now; remove it or choose another."))
        chosen: dict[str, list[str]] = {gid: [] for gid in item.modifier_groups}
        for m in ln.modifiers:
            g = self.idx.option_group.get(m)
            if g is not None and g.id in chosen and m not in self._sold_out:
                chosen[g.id].append(m)
        for gid in item.modifier_groups:
            g = self.idx.groups[gid]
            chosen[gid] = chosen[gid][: g.max_choices]
        self.editor = _Editor(item_id=item.id, chosen=chosen, qty=ln.qty, line_id=line_id, return_to="cart")
        self._go("item")

    def replace_line(self, line_id: int) -> None:
        """"Choose another": the line goes, the menu opens at its category."""
        self._need("cart")
        ln = self._line(line_id)
        item = self.idx.items.get(ln.item_id)
        self.cart = [x for x in self.cart if x.line_id != line_id]
        if item is not None:
            self.category = item.category
        self._go("menu")
        self._notice = Words("请选一道别的菜。", "Please choose something else.")

    # ------------------------------------------------------------ pricing
    def _order(self, lines: list[SubmitLine], **kw) -> OrderSubmit:
        return OrderSubmit(
            order_id=self.order_id or "00000000-0000-0000-0000-000000000000", channel=self.channel,
            service=self.service or "takeaway",
            table=(self.table or None) if self.service == "dine_in" else None,
            lang=self.lang, lines=tuple(lines), menu_version=self.menu.version,
            loyalty=LoyaltyClaim(phone=self.phone, redeem_points=self.redeem) if self.phone else None, **kw,
        )

    def _price(self, lines: list[SubmitLine], sold_out: frozenset[str] = frozenset()) -> PricedOrder:
        return price_order(self._order(lines), self.idx, sold_out)

    @staticmethod
    def _submit_line(ln: CartLine) -> SubmitLine:
        return SubmitLine(item_id=ln.item_id, qty=ln.qty, modifiers=ln.modifiers, note=ln.note)

    def line_problem(self, ln: CartLine) -> LineProblem | None:
        """Why a cart line cannot be ordered now, or None."""
        item = self.idx.items.get(ln.item_id)
        if item is None:
            return "not_on_menu"
        if self._item_sold_out(item):
            return "sold_out"
        if any(m in self._sold_out for m in ln.modifiers):
            return "option_sold_out"
        try:
            self._price([self._submit_line(ln)])
        except Rejection:
            return "options_changed"
        return None

    def _problem_words(self, ln: CartLine, problem: LineProblem) -> Words:
        zh, en = ln.name.zh, ln.name.en
        if problem == "sold_out":
            return Words(f"抱歉，“{zh}”刚刚售罄。请删除它，或换一道菜。",
                         f"Sorry, {en} has just sold out. Remove it, or choose something else.")
        if problem == "option_sold_out":
            opts = [self.idx.options[m].name for m in ln.modifiers if m in self._sold_out and m in self.idx.options]
            ozh = "、".join(o.zh for o in opts)
            oen = ", ".join(o.en for o in opts)
            return Words(f"抱歉，“{zh}”的选项“{ozh}”刚刚售罄。请修改选项，或删除它。",
                         f"Sorry, “{oen}” for {en} has just sold out. Change the options, or remove it.")
        if problem == "not_on_menu":
            return Words(f"“{zh}”已不在菜单上。请删除它，或换一道菜。",
                         f"{en} is no longer on the menu. Remove it, or choose something else.")
        return Words(f"“{zh}”的选项有变动，请重新选择。",
                     f"The options for {en} have changed; please choose them again.")

    def problems(self) -> dict[int, LineProblem]:
        """Cart lines the diner must resolve before paying: line id -> problem."""
        out = {}
        for ln in self.cart:
            p = self.line_problem(ln)
            if p is not None:
                out[ln.line_id] = p
        return out

    def priced(self) -> PricedOrder | None:
        """``price_order`` over the cart's orderable lines (None if there are none)."""
        problems = self.problems()
        lines = [self._submit_line(ln) for ln in self.cart if ln.line_id not in problems]
        if not lines:
            return None
        return self._price(lines)

    @property
    def total(self) -> int:
        p = self.priced()
        return p.total if p else 0

    @property
    def can_pay(self) -> bool:
        return bool(self.cart) and not self.problems()

    def build_order(self, payment: SubmitPayment | None = None, **kw) -> OrderSubmit:
        """The OrderSubmit for the cart as it is, priced by ``price_order``
        with the 86 list; ``expected_total`` is that total. Raises Rejection
        if the hub would refuse it."""
        lines = [self._submit_line(ln) for ln in self.cart]
        order = self._order(lines, payment=payment or SubmitPayment(method="counter"), **kw)
        priced = price_order(order, self.idx, self._sold_out, discount=self.discount)
        return msgspec.structs.replace(order, expected_total=priced.total)

    # ---------------------------------------------------------------- upsell
    def upsell_item(self) -> Item | None:
        """A drink when the cart has none (a combo brings its own)."""
        cat = self.upsell_category
        if cat is None or not self.cart:
            return None
        for ln in self.cart:
            item = self.idx.items.get(ln.item_id)
            if item is not None and (item.category == cat or item.combo):
                return None
        return next((i for i in self.menu.items if i.category == cat and not self._item_sold_out(i)), None)

    def take_upsell(self) -> None:
        self._need("cart")
        item = self.upsell_item()
        if item is None:
            self._unknown()
        self.open_item(item.id, return_to="cart")

    # ------------------------------------------------------------------ pay
    def checkout(self) -> None:
        self._need("cart")
        if not self.cart:
            raise ActionRefused("cart_empty", T["cart.empty"])
        if not self.can_pay:
            raise ActionRefused("cart_blocked", T["cart.blocked"])
        if self.service == "dine_in" and self.table_required and not self.table:
            raise ActionRefused("no_table", Words("请输入桌号。", "Please enter your table number."))
        if self.loyalty:
            try:
                self.build_order()
            except Rejection as exc:
                raise ActionRefused(exc.reason, exc.words) from None
            self._go("member")
            return
        self._to_pay()

    def _to_pay(self) -> None:
        try:
            order = self.build_order()
        except Rejection as exc:
            raise ActionRefused(exc.reason, exc.words) from None
        # the total the diner sees on the pay screen, and pays (less the points used)
        self._quote = price_order(order, self.idx, self._sold_out, discount=self.discount)
        self.pay_phase = "choose"
        self.payment_update = None
        self.intent_id = None
        self._go("pay")

    # -------------------------------------------------------------- loyalty
    @property
    def discount(self) -> int:
        """What the points chosen take off, by the hub's rules from its balance answer."""
        return self.redeem * self.member.point_value_fen if self.member is not None and self.redeem else 0

    def _gross(self) -> int:
        p = self.priced()
        return sum(ln.line_total for ln in p.lines) if p else 0

    def redeemable(self) -> int:
        """The points this order could use: all the diner has, up to the order's share."""
        m = self.member
        if m is None or self.member_phase != "found":
            return 0
        return loyalty.max_redeemable(self._gross(), m.balance, m.point_value_fen, m.max_share_pct)

    def phone_key(self, key: str) -> None:
        self._need("member")
        if self.member_phase != "entry" or len(key) != 1 or not key.isdigit():
            self._unknown()
        if len(self.phone_typed) >= 15:
            raise ActionRefused("bad_phone", T["member.bad_phone"])
        self.phone_typed += key
        self._notice = None

    def phone_delete(self) -> None:
        self._need("member")
        if self.member_phase == "entry":
            self.phone_typed = self.phone_typed[:-1]

    def phone_ok(self) -> None:
        """Check the number; ask the hub its balance (or say why not)."""
        self._need("member")
        if self.member_phase != "entry":
            self._unknown()
        if not loyalty.valid_phone(self.phone_typed, self.phone_patterns):
            raise ActionRefused("bad_phone", T["member.bad_phone"])
        self.phone = loyalty.normalise(self.phone_typed)
        self.redeem = 0
        self.member = None
        self._notice = None
        if not self.hub_reachable:
            self.balance_unavailable(None)
            return
        self._query_id = self._new_id()
        self.member_phase = "checking"
        self._commands.append(QueryBalance(self._query_id, self.phone))

    def on_balance(self, reply: LoyaltyBalance) -> bool:
        """The hub's answer to the balance query being waited for."""
        if self.screen != "member" or self.member_phase != "checking" or reply.query_id != self._query_id:
            return False
        self._last_activity = self.clock()
        if reply.ok:
            self.member, self.member_phase = reply, "found"
        elif reply.reason == "phone_invalid":
            self.phone, self.member_phase = None, "entry"
            self._notice = T["member.bad_phone"]
        else:  # loyalty_disabled: no points here; go on without them
            self.phone, self.member_phase = None, "unavailable"
            self._member_words = REASONS.get(reply.reason or "") or reply.message or REASONS["loyalty_disabled"]
        return True

    def balance_unavailable(self, query_id: str | None) -> None:
        """The hub cannot be asked (or did not answer in time): the order
        earns its points when it reaches the hub; none can be used now."""
        if self.screen != "member" or (query_id is not None and query_id != self._query_id):
            return
        if query_id is not None and self.member_phase != "checking":
            return
        self.member_phase = "unavailable"
        self.member = None
        self.redeem = 0
        self._member_words = T["member.offline"]

    def toggle_redeem(self) -> None:
        self._need("member")
        m = self.member
        if self.member_phase != "found" or m is None:
            self._unknown()
        if self.redeem:
            self.redeem = 0
            return
        n = self.redeemable()
        if n < max(1, m.min_redeem_points):
            raise ActionRefused("few_points", Words(T["member.too_few"].zh.format(min=m.min_redeem_points),
                                                    T["member.too_few"].en.format(min=m.min_redeem_points)))
        self.redeem = n

    def change_phone(self) -> None:
        self._need("member")
        self.phone, self.member, self.redeem, self.member_phase = None, None, 0, "entry"
        self._member_words = None

    def skip_member(self) -> None:
        self._need("member")
        self.phone_typed, self.phone, self.member, self.redeem, self.member_phase = "", None, None, 0, "entry"
        self._to_pay()

    def member_continue(self) -> None:
        self._need("member")
        if self.member_phase not in ("found", "unavailable"):
            self._unknown()
        self._to_pay()

    def _leave_pay(self) -> None:
        if self.busy:
            raise ActionRefused("busy", Words("正在付款，请稍候。", "Payment in progress; please wait."))
        self._quote = None
        self.pay_phase = "choose"
        self.payment_update = None
        self.intent_id = None
        self.method = None

    @property
    def pay_total(self) -> int:
        """The amount asked on the pay screen (``price_order``'s total at checkout)."""
        return self._quote.total if self._quote else self.total

    def choose_payment(self, method: Method) -> None:
        """Start paying with ``method``: a new payment intent (a new
        idempotency key) and a StartPayment command."""
        self._need("pay")
        if method not in self.payment_methods:
            raise ActionRefused("bad_method", Words("这种付款方式现在不能用。", "That way to pay is not available."))
        if self.pay_phase not in ("choose", "problem"):
            raise ActionRefused("busy", Words("正在付款，请稍候。", "Payment in progress; please wait."))
        if self.payment_update is not None and self.payment_update.state == "unknown":
            # a second charge could take the money twice: only the counter
            raise ActionRefused("busy", _UNKNOWN_ONLY_COUNTER)
        self.method = method
        self.intent_id = f"pi-{uuid.uuid4().hex}"
        self.payment_update = None
        self.pay_phase = "paying"
        self._notice = None
        self._commands.append(StartPayment(self.intent_id, self.order_id, method, self.pay_total))

    def on_payment(self, update: PaymentUpdate) -> bool:
        """Progress of the payment the VM asked for; others are ignored."""
        if update.intent_id != self.intent_id or self.screen != "pay" or self.pay_phase != "paying":
            return False
        self.payment_update = update
        self._last_activity = self.clock()
        if not update.final:
            return True
        if update.payment is not None:
            self.payment = update.payment
            self.pay_phase = "submitting"
            self._commands.append(SubmitOrder(self.submit()))
        else:
            self.pay_phase = "problem"
        return True

    def payment_action(self, action: str) -> None:
        """A way forward on the pay screen (keys of kiosk.payment.ACTION_WORDS,
        plus ``retry_submit``)."""
        self._need("pay")
        u = self.payment_update
        if action == "cancel" and self.pay_phase == "paying" and self.intent_id:
            self._commands.append(CancelPayment(self.intent_id))
        elif action == "retry" and self.pay_phase == "problem" and u and "retry" in u.actions:
            self.choose_payment(self.method)  # a new intent: the old one is final, not charged
        elif action == "pay_at_counter" and self.pay_phase == "problem" and u and u.state == "unknown":
            # Placed unpaid, with the intent for staff to check at the counter.
            self.payment = SubmitPayment(method=u.method, status="unpaid", intent_id=u.intent_id)  # type: ignore[arg-type]
            self.pay_phase = "submitting"
            self._commands.append(SubmitOrder(self.submit()))
        elif action == "pay_at_counter" and self.pay_phase in ("choose", "problem"):
            self.choose_payment("counter")
        elif action == "check_again" and self.pay_phase == "problem" and u and u.state == "unknown":
            self.pay_phase = "paying"
            self._commands.append(CheckPaymentAgain(u.intent_id))
        elif action == "retry_submit" and self.pay_phase == "refused" and self.submitted is not None:
            self.pay_phase = "submitting"
            self._notice = None
            self._commands.append(SubmitOrder(self.submitted))
        elif action == "cancel_order" and self.pay_phase in ("choose", "problem", "refused"):
            self.cancel_order()
        else:
            raise ActionRefused("not_now", Words("现在不能这样操作。", "That is not possible right now."))

    def submit(self) -> OrderSubmit:
        """The OrderSubmit to publish for the cart and the payment decided.

        Called again (a retry after a lost reply or a hub error), it returns
        the very same order, which the hub answers as a duplicate."""
        self._need("pay")
        if self.payment is None:
            raise ActionRefused("not_now", Words("还没有付款。", "The payment is not done yet."))
        if self.submitted is not None and self.submitted.payment == self.payment and not self.submitted.offline:
            return self.submitted
        if not self._placed_at:
            self._placed_at = _iso(self.clock())
        lines = [self._submit_line(ln) for ln in self.cart]
        order = self._order(lines, payment=self.payment, placed_at=self._placed_at,
                            expected_total=self.pay_total)
        self.submitted = order
        self.pay_phase = "submitting"
        return order

    def submit_offline(self, provisional_number: str) -> OrderSubmit:
        """The hub or the broker cannot be reached: the same order (same id,
        same time) marked ``offline`` with the number shown to the diner.
        Returns it; ``outbox_entry`` is what the app commits to its outbox.

        The outbox sender must take a ``duplicate_conflict`` answer for this
        order id as delivered: if the online copy did reach the hub, the hub
        has it under its own number.
        """
        self._need("pay")
        if self.payment is None:
            raise ActionRefused("not_now", Words("还没有付款。", "The payment is not done yet."))
        if not provisional_number or len(provisional_number) > 16:
            raise ValueError(f"bad provisional number {provisional_number!r}")
        if not self._placed_at:
            self._placed_at = _iso(self.clock())
        lines = [self._submit_line(ln) for ln in self.cart]
        order = self._order(lines, payment=self.payment, placed_at=self._placed_at,
                            expected_total=self.pay_total, offline=True, provisional_number=provisional_number)
        self.confirm_offline(order)
        return order

    def confirm_offline(self, order: OrderSubmit) -> None:
        """The app committed ``order`` (this order, marked ``offline`` with its
        provisional number) to the kiosk's outbox: show the diner that number."""
        self._need("pay")
        if self.submitted is None or order.order_id != self.submitted.order_id or not order.offline \
                or not order.provisional_number:
            raise ValueError("confirm_offline takes the order being placed, marked offline with its number")
        self.submitted = order
        self.provisional = order.provisional_number
        self.number = None
        self.outbox_entry = OutboxEntry(order.order_id, order.provisional_number, order, contract.encode(order),
                                        self.clock())
        self._confirm()

    def on_reply(self, reply: OrderReply) -> bool:
        """The hub's answer. Only the answer to the order being placed counts."""
        if self.submitted is None or reply.order_id != self.submitted.order_id or self.screen != "pay":
            return False
        self.reply = reply
        self._last_activity = self.clock()
        if reply.status == "accepted":
            self.number = reply.number
            self._confirm()
            return True
        reason = reply.reason or "internal_error"
        said = REASONS.get(reason) or reply.message or REASONS["internal_error"]
        if reason in ("item_unavailable", "modifier_unavailable"):
            gone = reply.detail.get("item_id") if reason == "item_unavailable" else reply.detail.get("modifier")
            if gone:  # the hub knows better than our copy of the 86 list
                self._sold_out = self._sold_out | {gone}
        if self.payment is not None and self.payment.status == "approved":
            self._help(said)
            return True
        if reason in LOYALTY_REASONS and self.loyalty:
            # the points were spent elsewhere (or are not allowed): choose again
            self._drop_submission()
            self.redeem, self.member, self.phone = 0, None, None
            self.member_phase = "entry"
            self._go("member")
            self._notice = said
            return True
        if reason in CART_REASONS:
            forward = FORWARD["price_changed"] if reason == "price_mismatch" else (
                FORWARD["unavailable"] if reason in ("item_unavailable", "modifier_unavailable") else FORWARD["fix_cart"])
            self._drop_submission()
            self._go("cart")
            self._notice = Words(f"{said.zh}{forward.zh}", f"{said.en} {forward.en}")
            return True
        # the hub could not take it now: the same order may be sent again
        self.pay_phase = "refused"
        self._notice = Words(f"{said.zh}{FORWARD['retry'].zh}", f"{said.en} {FORWARD['retry'].en}")
        return True

    def _drop_submission(self) -> None:
        self.submitted = None
        self.payment = None
        self.payment_update = None
        self.intent_id = None
        self.method = None
        self._quote = None
        self._placed_at = ""
        self.pay_phase = "choose"

    def _help(self, said: Words) -> None:
        p = self.payment
        amount = money(p.amount)
        self.help_words = Words(
            f"{said.zh}你已付款 {amount}，但订单没有下成功。请把这个画面给店员看，店员会为你处理（退款或补单）。",
            f"{said.en} You paid {amount}, but the order could not be placed. Please show this screen to a "
            "member of staff: they will refund you or place the order for you.",
        )
        self._go("help")

    def _confirm(self) -> None:
        self._confirm_at = self.clock()
        self._go("confirm")

    def done(self) -> None:
        self._need("confirm", "help")
        self.reset("done")

    @property
    def _payment_unknown(self) -> bool:
        return self.screen == "pay" and self.payment_update is not None and self.payment_update.state == "unknown"

    def cancel_order(self) -> None:
        if self.busy:
            raise ActionRefused("busy", Words("正在付款，请稍候。", "Payment in progress; please wait."))
        if self._payment_unknown:
            raise ActionRefused("busy", _UNKNOWN_ONLY_COUNTER)
        self.reset("cancelled by the diner")

    # ------------------------------------------------------- accessibility
    def toggle_accessibility(self, flag: str) -> None:
        if flag == "large_text":
            self.large_text = not self.large_text
        elif flag == "high_contrast":
            self.high_contrast = not self.high_contrast
        elif flag == "reach":
            self.reach = not self.reach
        else:
            self._unknown()

    # ====================================================== from the hub
    def on_soldout(self, msg: SoldOut) -> None:
        """The 86 list changed (retained; comes again after each reconnect)."""
        self._sold_out = frozenset(msg.items)
        self._after_menu_change()

    def on_menu(self, msg: MenuMessage) -> None:
        """The hub's menu (retained). Prices, items and options follow it."""
        msg.menu.check()
        self._set_menu(msg.menu)
        if self.category is not None and self.category not in self.idx.categories:
            self.category = self._first_category()
        self._after_menu_change()

    def _after_menu_change(self) -> None:
        if self.screen == "item" and self.editor is not None:
            item = self.idx.items.get(self.editor.item_id)
            if item is None or self._item_sold_out(item):
                back = self.editor.return_to
                self.editor = None
                self._go(back)
                name = item.name if item else Name("这道菜", "This dish")
                self._notice = Words(f"抱歉，“{name.zh}”刚刚售罄。", f"Sorry, {name.en} has just sold out.")
                return
            dropped = []
            for gid, chosen in list(self.editor.chosen.items()):
                if gid not in item.modifier_groups:
                    del self.editor.chosen[gid]
                    continue
                keep = [o for o in chosen if o in self.idx.options and o not in self._sold_out]
                dropped += [self.idx.options[o].name for o in chosen if o not in keep and o in self.idx.options]
                chosen[:] = keep
            if dropped:
                self._notice = Words(
                    "抱歉，" + "、".join(f"“{n.zh}”" for n in dropped) + "刚刚售罄，已取消选择。",
                    "Sorry, " + ", ".join(f"“{n.en}”" for n in dropped) + " just sold out and was unticked.")
            for gid in item.modifier_groups:
                self.editor.chosen.setdefault(gid, [])
        if self.screen == "pay" and self.pay_phase in ("choose", "problem") and not self._payment_unknown \
                and self._quote is not None:
            # not paying yet: a change the diner has not seen sends them back
            try:
                now = price_order(self.build_order(), self.idx, self._sold_out, discount=self.discount).total
            except Rejection:
                now = None
            if now != self._quote.total:
                self._leave_pay()
                self._go("cart")
                self._notice = T["cart.blocked"] if now is None else T["price_changed"]

    # ================================================================ time
    def tick(self) -> None:
        """Call about once a second: idle questions, resets."""
        now = self.clock()
        if self.screen == "attract":
            return
        if self.screen == "confirm":
            if now - self._confirm_at >= self.confirm_s:
                self.reset("confirmed")
            return
        if self.busy:
            self._last_activity = now
            self.still_there = False
            return
        if not self.still_there:
            if now - self._last_activity >= self.idle_s:
                self.still_there = True
                self._still_since = now
        elif now - self._still_since >= self.still_there_s:
            self.reset("idle")

    def still_there_left(self) -> int:
        if not self.still_there:
            return 0
        return max(0, int(self.still_there_s - (self.clock() - self._still_since) + 0.999))

    # =============================================================== views
    def _b(self, id: str, key: str, **kw) -> Button:
        return Button(id, self.text(T[key]), **kw)

    def chrome(self) -> Chrome:
        other = "en" if self.lang == "zh" else "zh"
        return Chrome(
            lang=self.lang,
            language=Button(f"lang:{other}", self.text(T[f"lang.{other}"])),
            large_text=self._b("a11y:large_text", "a11y.large_text", selected=self.large_text),
            high_contrast=self._b("a11y:high_contrast", "a11y.high_contrast", selected=self.high_contrast),
            reach=self._b("a11y:reach", "a11y.reach", selected=self.reach),
            cancel=None if self.screen in ("attract", "confirm", "help") or self.busy or self._payment_unknown
            else self._b("cancel_order", "cancel_order"),
            notice=self.notice,
        )

    def overlay(self) -> StillThereView | None:
        if not self.still_there:
            return None
        left = self.still_there_left()
        return StillThereView(
            title=self.text(T["still.title"]),
            text=self.text(T["still.text"]).format(s=left), seconds_left=left,
            yes=self._b("still_there:yes", "still.yes"), no=self._b("still_there:no", "still.no"),
        )

    def view(self) -> View:
        return getattr(self, f"_view_{self.screen}")()

    def _languages(self) -> tuple[Button, ...]:
        return (Button("lang:zh", "中文", selected=self.lang == "zh"),
                Button("lang:en", "English", selected=self.lang == "en"))

    def _view_attract(self) -> AttractView:
        return AttractView(self.text(T["attract.title"]), self.text(T["attract.touch"]),
                           self._b("start", "attract.touch"), self._languages())

    def _view_language(self) -> LanguageView:
        return LanguageView(self.text(T["language.title"]), self._languages(), self._b("back", "back"))

    def _view_service(self) -> ServiceView:
        dine = self.service == "dine_in"
        return ServiceView(
            title=self.text(T["service.title"]),
            options=(self._b("service:dine_in", "service.dine_in", selected=dine),
                     self._b("service:takeaway", "service.takeaway", selected=self.service == "takeaway")),
            table_prompt=self.text(T["service.table"]) if dine else None,
            table=self.table if dine else "",
            table_note=self.text(T["service.table_from_link"]) if dine and self.link.table
            and self.table == self.link.table else None,
            keys=tuple(Button(f"table:key:{d}", d) for d in "1234567890") + (Button("table:del", self.text(T["service.delete"])),),
            next=self._b("next", "next", enabled=self.service is not None
                         and not (dine and self.table_required and not self.table)),
            back=self._b("back", "back"),
        )

    def _allergens(self, ids: Iterable[str]) -> str:
        sep = "、" if self.lang == "zh" else ", "
        return sep.join(self.text(ALLERGEN_NAMES[a]) if a in ALLERGEN_NAMES else a for a in sorted(set(ids)))

    def _cart_button(self) -> Button:
        n = sum(ln.qty for ln in self.cart)
        return Button("cart", f"{self.text(T['menu.cart'])} ({n}) · {money(self.total)}", enabled=bool(self.cart))

    def _view_menu(self) -> MenuView:
        cats = tuple(
            CategoryTile(c.id, f"category:{c.id}", self._name(c.name), c.color, c.id == self.category)
            for c in self.menu.categories if any(i.category == c.id for i in self.menu.items)
        )
        colours = {c.id: c.color for c in self.menu.categories}
        items = tuple(
            ItemTile(
                id=i.id, tap=f"item:{i.id}", name=self._name(i.name), price=money(i.price),
                color=i.color or colours.get(i.category, "#607D8B"), image=i.image,
                sold_out=self._item_sold_out(i),
                badge=self.text(T["sold_out"]) if self._item_sold_out(i) else None,
                allergens=self._allergens(i.allergens), photo=self.photo(i),
            )
            for i in self.menu.items if i.category == self.category
        )
        return MenuView(self.text(T["menu.title"]), cats, items, self._cart_button(), self._b("back", "back"))

    def _view_item(self) -> EditorView:
        ed = self.editor
        item = self.idx.items[ed.item_id]
        groups = []
        for gid in item.modifier_groups:
            g = self.idx.groups[gid]
            chosen = ed.chosen.get(gid, [])
            full = g.max_choices > 1 and len(chosen) >= g.max_choices
            opts = tuple(
                OptionView(
                    id=o.id, tap=f"option:{o.id}", name=self._name(o.name), delta=delta_text(o.price_delta),
                    selected=o.id in chosen, sold_out=o.id in self._sold_out,
                    enabled=o.id in chosen or (o.id not in self._sold_out and not full),
                )
                for o in g.options
            )
            error = None
            if gid in ed.missing:
                error = self.text(Words(f"请选择（至少 {g.min_choices} 项）", f"Please choose (at least {g.min_choices})"))
            groups.append(GroupView(gid, self._name(g.name), self.text(self._option_words(g)), g.required,
                                    len(chosen), opts, error))
        unit = self.editor_unit_price()
        mods = self._editor_modifiers()
        allergens = set(item.allergens) | {a for m in mods for a in self.idx.options[m].allergens}
        return EditorView(
            item_id=item.id, name=self._name(item.name),
            description=self._name(item.description) if item.description else "",
            allergens=self._allergens(allergens), base_price=money(item.price), groups=tuple(groups),
            qty=ed.qty, unit_price=unit, unit_price_text=money(unit), line_total_text=money(unit * ed.qty),
            minus=Button("qty:-", "−", enabled=ed.qty > 1), plus=Button("qty:+", "+", enabled=ed.qty < MAX_QTY_PER_LINE),
            add=Button("add", f"{self.text(T['item.update' if ed.line_id else 'item.add'])} · {money(unit * ed.qty)}"),
            back=self._b("back", "back"), photo=self.photo(item),
        )

    def _mod_names(self, ln: CartLine) -> tuple[str, ...]:
        return tuple(self._name(self.idx.options[m].name) for m in ln.modifiers if m in self.idx.options)

    def _view_cart(self) -> CartView:
        problems = self.problems()
        priced = self.priced()
        by_line: dict[int, object] = {}
        if priced is not None:
            ok = [ln for ln in self.cart if ln.line_id not in problems]
            by_line = {ln.line_id: pl for ln, pl in zip(ok, priced.lines)}
        lines = []
        for ln in self.cart:
            p = problems.get(ln.line_id)
            pl = by_line.get(ln.line_id)
            if p is None:
                actions = (self._b(f"line:{ln.line_id}:remove", "cart.remove"),
                           self._b(f"line:{ln.line_id}:edit", "cart.edit", enabled=bool(
                               self.idx.items[ln.item_id].modifier_groups)))
            elif p in ("sold_out", "not_on_menu"):
                actions = (self._b(f"line:{ln.line_id}:remove", "cart.remove"),
                           self._b(f"line:{ln.line_id}:replace", "cart.replace"))
            else:
                actions = (self._b(f"line:{ln.line_id}:edit", "cart.edit"),
                           self._b(f"line:{ln.line_id}:remove", "cart.remove"))
            lines.append(CartLineView(
                line_id=ln.line_id, name=self._name(ln.name), modifiers=self._mod_names(ln), qty=ln.qty,
                unit_price=money(pl.unit_price) if pl else "", line_total=money(pl.line_total) if pl else "",
                problem=self.text(self._problem_words(ln, p)) if p else None,
                minus=Button(f"line:{ln.line_id}:-", "−", enabled=p is None and ln.qty > 1),
                plus=Button(f"line:{ln.line_id}:+", "+", enabled=p is None and ln.qty < MAX_QTY_PER_LINE),
                actions=actions,
            ))
        up = self.upsell_item()
        upsell = None
        if up is not None:
            w = T["upsell.drink"]
            label = self.text(Words(w.zh.format(zh=up.name.zh), w.en.format(en=up.name.en)))
            upsell = Button("upsell", f"{label} {money(up.price)}")
        inclusive = self.menu.tax_inclusive
        return CartView(
            title=self.text(T["cart.title"]), lines=tuple(lines),
            empty=self.text(T["cart.empty"]) if not self.cart else None,
            subtotal=f"{self.text(T['cart.subtotal'])} {money(priced.subtotal if priced else 0)}",
            tax=f"{self.text(T['cart.tax_incl' if inclusive else 'cart.tax'])} {money(priced.tax if priced else 0)}",
            total=f"{self.text(T['cart.total'])} {money(priced.total if priced else 0)}",
            total_fen=priced.total if priced else 0,
            blocked=self.text(T["cart.blocked"]) if problems else None,
            upsell=upsell,
            checkout=self._b("checkout", "cart.checkout", enabled=self.can_pay),
            more=self._b("back", "cart.more"),
        )

    def _view_member(self) -> MemberView:
        phase = self.member_phase
        typed = self.phone_typed
        shown = typed[:3] + "*" * len(typed[3:7]) + typed[7:]
        m = self.member
        balance = redeem = None
        if phase == "found" and m is not None:
            balance = self.text(T["member.balance"]).format(member=m.member, balance=m.balance)
            n = self.redeem or self.redeemable()
            w = T["member.redeeming" if self.redeem else "member.redeem"]
            redeem = Button("phone:redeem", self.text(w).format(points=n, amount=money(n * m.point_value_fen)),
                            enabled=bool(self.redeem) or n >= max(1, m.min_redeem_points), selected=bool(self.redeem))
        message = None
        if phase == "checking":
            message = self.text(T["member.checking"])
        elif phase == "unavailable" and self._member_words is not None:
            message = self.text(self._member_words)
        elif phase == "found" and m is not None and m.points_per_yuan:
            try:
                total = price_order(self.build_order(), self.idx, self._sold_out, discount=self.discount).total
            except Rejection:
                total = 0
            message = self.text(T["member.earn"]).format(points=loyalty.points_earned(total, m.points_per_yuan))
        try:
            total = price_order(self.build_order(), self.idx, self._sold_out, discount=self.discount).total
        except Rejection:
            total = self.total
        entry = phase == "entry"
        return MemberView(
            title=self.text(T["member.title"]), prompt=self.text(T["member.prompt"]), phase=phase,
            phone=shown if entry or not self.phone else loyalty.mask(self.phone),
            keys=tuple(Button(f"phone:key:{d}", d, enabled=entry) for d in "1234567890")
            + (Button("phone:del", self.text(T["service.delete"]), enabled=entry),),
            ok=self._b("phone:ok", "member.ok", enabled=entry and bool(typed)),
            skip=self._b("phone:skip", "member.skip"),
            balance=balance, redeem=redeem, message=message,
            total=f"{self.text(T['cart.total'])} {money(total)}",
            go=self._b("phone:continue", "member.continue", enabled=phase in ("found", "unavailable")),
            change=self._b("phone:change", "member.change") if phase in ("found", "unavailable") else None,
            back=self._b("back", "back"),
        )

    def _view_pay(self) -> PayView:
        phase = self.pay_phase
        u = self.payment_update
        message = None
        actions: tuple[Button, ...] = ()
        if phase == "paying":
            message = self.text(u.words) if u else self.text(Words("正在连接付款终端……", "Connecting to the payment terminal…"))
            shown = u.actions if u else ("cancel",)
            actions = tuple(Button(f"payment:{a}", self.text(ACTION_WORDS[a])) for a in shown)
        elif phase == "problem" and u is not None:
            message = self.text(u.words)
            actions = tuple(Button(f"payment:{a}", self.text(ACTION_WORDS[a])) for a in u.actions)
        elif phase == "submitting":
            message = self.text(T["pay.submitting"])
        elif phase == "refused":
            message = self.notice
            actions = (self._b("payment:retry_submit", "pay.retry_submit"),
                       Button("payment:cancel_order", self.text(ACTION_WORDS["cancel_order"])))
        methods = tuple(self._b(f"pay:{m}", f"pay.{m}", enabled=phase == "choose") for m in self.payment_methods)
        return PayView(
            title=self.text(T["pay.title"]), phase=phase,
            total=f"{self.text(T['cart.total'])} {money(self.pay_total)}",
            prompt=self.text(T["pay.choose"]), methods=methods, message=message, actions=actions,
            busy=self.busy, back=None if self.busy else self._b("back", "back"),
        )

    def _view_confirm(self) -> ConfirmView:
        p = self.payment
        if p is not None and p.status == "approved":
            pay = f"{self.text(T['confirm.paid'])} {money(p.amount)}"
        elif p is not None and p.intent_id and p.method != "counter":
            pay = self.text(T["confirm.check"])
        else:
            pay = self.text(T["confirm.unpaid"])
        provisional = self.provisional is not None
        total = self.reply.total if self.reply is not None and self.reply.status == "accepted" else self.pay_total
        points = None
        pts = self.reply.loyalty if self.reply is not None and self.reply.status == "accepted" else None
        if pts is not None and pts.credited:
            points = self.text(T["confirm.points"]).format(member=pts.member, earned=pts.earned, balance=pts.balance)
        elif self.phone and provisional:
            points = self.text(T["confirm.points_later"]).format(member=loyalty.mask(self.phone))
        return ConfirmView(
            points=points,
            title=self.text(T["confirm.title"]),
            label=self.text(T["confirm.provisional" if provisional else "confirm.number"]),
            number=self.provisional if provisional else str(self.number),
            provisional=provisional,
            note=self.text(T["confirm.provisional_note" if provisional else "confirm.wait"]),
            payment=pay, total=f"{self.text(T['cart.total'])} {money(total)}",
            done=self._b("done", "confirm.done"),
        )

    def _view_help(self) -> HelpView:
        p = self.payment
        ref = f"{p.intent_id} / {p.reference}" if p else ""
        return HelpView(self.text(T["help.title"]), self.text(self.help_words) if self.help_words else "",
                        ref, self._b("done", "help.done"))


_UNKNOWN_ONLY_COUNTER = Words(
    "还不能确认你是否已经付款，所以不能再次付款，也不能取消订单。请再查一次，或到柜台付款。",
    "We cannot yet tell whether you were charged, so paying again or cancelling is not possible. "
    "Check again, or pay at the counter.",
)

