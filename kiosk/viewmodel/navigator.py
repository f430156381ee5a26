"""The kiosk's view model: the diner's way through the screens (taps, the
back button, language, service and table, categories, the idle timer, menu
and 86 updates). The cart, member, payment and view parts are mixed in
from their own modules.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable

from restobox import contract
from restobox.contract import (
    LoyaltyBalance,
    MenuMessage,
    OrderReply,
    OrderSubmit,
    Rejection,
    SoldOut,
    SubmitPayment,
    Words,
)
from restobox.menu import Item, Menu, MenuIndex, Name
from restobox.orders import PricedOrder, price_order
from kiosk.payment import PaymentUpdate
from kiosk.viewmodel.cart import CartSteps
from kiosk.viewmodel.member import MemberSteps
from kiosk.viewmodel.model import (
    ActionRefused,
    CartLine,
    Clock,
    Command,
    DeepLink,
    Lang,
    MemberPhase,
    Method,
    OutboxEntry,
    PayPhase,
    Screen,
    TABLE_RE,
    _Editor,
    parse_deep_link,
)
from kiosk.viewmodel.payment import PaymentSteps
from kiosk.viewmodel.render import ViewBuilder
from kiosk.viewmodel.texts import T

log = logging.getLogger("restobox.kiosk")



# Keys typed in a row (the phone keypad): the same key twice is two digits
# unless the touches come closer than a finger can tap twice, as the doubled
# delivery of one touch does (a few milliseconds apart).
KEYPAD_TARGETS = ("phone:key:", "phone:del")
KEY_GUARD_S = 0.06

class KioskViewModel(CartSteps, MemberSteps, PaymentSteps, ViewBuilder):
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
        providers delivers every touch twice), a keypad's key within
        KEY_GUARD_S. A refused action leaves its reason in ``notice``."""
        now = self.clock()
        if self._last_tap is not None:
            last, at = self._last_tap
            # a keypad's key may be typed twice quickly ("00" in a phone
            # number): only the doubled delivery of one touch is dropped there
            guard = KEY_GUARD_S if target.startswith(KEYPAD_TARGETS) else self.tap_guard_s
            if last == target and now - at < guard:
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
