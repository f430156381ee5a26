"""A walk-in diner's order at the counter: the kiosk's own cart, modifier,
pricing and member steps (kiosk.viewmodel.cart and member, reused), with
the counter's screens for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from counter.model import Btn, Row
from counter.texts import T, words
from kiosk.viewmodel.cart import CartSteps
from kiosk.viewmodel.member import MemberSteps
from kiosk.viewmodel.model import ActionRefused, CartLine, _Editor
from kiosk.viewmodel.texts import T as KT, money
from restobox.contract import LoyaltyBalance, OrderSubmit, Words

if TYPE_CHECKING:
    from counter.viewmodel import CounterViewModel


class WalkIn(CartSteps, MemberSteps):
    """A walk-in diner's order at the counter: the kiosk's own cart,
    modifier, pricing and member steps over the counter's menu (its state
    lives here; its ``screen`` is menu, item, cart or member)."""

    def __init__(self, vm: "CounterViewModel") -> None:
        self._vm = vm
        self.idx, self.menu, self._sold_out = vm.idx, vm.menu, vm.sold_out
        self.order_id = vm._new_id()
        self.channel = "counter"
        self.service = "takeaway"
        self.table = ""
        self.table_required = False
        self.upsell_category = None
        self.loyalty = vm.loyalty
        self.phone_patterns = vm.phone_patterns
        self.hub_reachable = vm.hub_reachable
        self.clock = vm.clock
        self._new_id = vm._new_id
        self._commands = vm._commands
        self.lang = vm.lang
        self.screen = "menu"
        self.category = self._first_category()
        self.cart: list[CartLine] = []
        self._next_line = 1
        self.editor: _Editor | None = None
        self._notice: Words | None = None
        self._quote = None
        self.pay_phase = "choose"
        self.payment_update = None
        self.intent_id = None
        self.phone_typed = ""
        self.phone: str | None = None
        self.member_phase = "entry"
        self.member: LoyaltyBalance | None = None
        self.redeem = 0
        self._query_id: str | None = None
        self._member_words: Words | None = None
        self._last_activity = 0.0
        self.ready: OrderSubmit | None = None

    def _first_category(self) -> str | None:
        used = {i.category for i in self.menu.items}
        return next((c.id for c in self.menu.categories if c.id in used), None)

    def _need(self, *screens: str) -> None:
        if self.screen not in screens:
            raise ActionRefused("not_now", Words("现在不能这样操作。", "That is not possible right now."))

    def _go(self, screen: str) -> None:
        self.screen = screen
        self._notice = None

    @staticmethod
    def _unknown() -> None:
        raise ActionRefused("unknown_target", Words("无法识别的操作。", "Unknown action."))

    def _item_sold_out(self, item) -> bool:
        return not item.available or item.id in self._sold_out

    def _to_pay(self) -> None:
        try:
            self.ready = self.build_order()
        except Exception as exc:
            w = getattr(exc, "words", None)
            raise ActionRefused(getattr(exc, "reason", "cart_blocked"), w() if callable(w) else KT["cart.blocked"]) \
                from None


def walkin_tap(self: "CounterViewModel", arg: str) -> None:
    """A tap on the walk-in order's screens (``walk:<what>``): the kiosk's own steps."""
    w = self.walkin
    w.lang = self.lang
    w.hub_reachable = self.hub_reachable
    verb, _, rest = arg.partition(":")
    try:
        if verb == "category":
            if rest not in w.idx.categories:
                w._unknown()
            w.category, w.editor = rest, None
            w._go("menu")
        elif verb == "item":
            w.open_item(rest)
        elif verb == "option":
            w.toggle_option(rest)
        elif verb == "qty":
            w.change_item_qty(+1 if rest == "+" else -1)
        elif verb == "add":
            w.add_to_cart()
        elif verb == "line":
            lid, _, action = rest.partition(":")
            n = int(lid) if lid.isdigit() else -1
            if w.screen != "cart":
                w._go("cart")
            {"+": lambda: w.change_line_qty(n, +1), "-": lambda: w.change_line_qty(n, -1),
             "remove": lambda: w.remove_line(n)}.get(action, w._unknown)()
        elif verb == "cart":
            w.editor = None
            w._go("cart")
        elif verb == "menu":
            w.editor = None
            w._go("menu")
        elif verb == "checkout":
            if w.screen != "cart":
                w._go("cart")
            w.checkout()
        elif verb == "phone":
            key, _, k = rest.partition(":")
            {"key": lambda: w.phone_key(k), "del": w.phone_delete, "ok": w.phone_ok, "skip": w.skip_member,
             "redeem": w.toggle_redeem, "continue": w.member_continue,
             "change": w.change_phone}.get(key, w._unknown)()
        else:
            w._unknown()
    except ActionRefused:
        raise
    finally:
        self._notice = w._notice
    if w.ready is not None:
        self._place(w.ready, w.discount if w.ready.loyalty else 0)


def walkin_view(self: "CounterViewModel"):
    """The walk-in order's screen: (rows, buttons, big, sub, keypad)."""
    w = self.walkin
    tx = self.text
    rows: list[Row] = []
    buttons: list[Btn] = []
    big = sub = ""
    keypad = False
    name = (lambda n: n.zh if self.lang == "zh" else n.en)
    if w.screen == "menu":
        used = {i.category for i in self.menu.items}
        for c in self.menu.categories:
            if c.id in used:
                buttons.append(Btn(f"walk:category:{c.id}", name(c.name),
                                   "toggle_on" if c.id == w.category else "normal"))
        for i in self.menu.items:
            if i.category == w.category:
                sold = w._item_sold_out(i)
                rows.append(Row(f"{name(i.name)}   {money(i.price)}"
                                + (f"  ({tx(T['walkin.sold_out'])})" if sold else ""),
                                "" if sold else f"walk:item:{i.id}", "order"))
    elif w.screen == "item":
        ed = w.editor
        item = w.idx.items[ed.item_id]
        rows.append(Row(f"{name(item.name)}   {money(w.editor_unit_price())} × {ed.qty}", style="head"))
        for gid in item.modifier_groups:
            g = w.idx.groups[gid]
            rows.append(Row(name(g.name) + ("  *" if gid in ed.missing else ""), style="head"))
            for opt in g.options:
                on = opt.id in ed.chosen.get(gid, ())
                delta = f"  +{money(opt.price_delta)}" if opt.price_delta > 0 else ""
                rows.append(Row(name(opt.name) + delta, f"walk:option:{opt.id}", "chosen" if on else "order"))
        buttons += [Btn("walk:add", tx(T["walkin.add"]), "primary"), Btn("walk:qty:+", "+"),
                    Btn("walk:qty:-", "−"), Btn("walk:menu", tx(T["back"]))]
    elif w.screen == "cart":
        for ln in w.cart:
            rows.append(Row(f"{ln.qty} × {name(ln.name)}", f"walk:line:{ln.line_id}:+", "order"))
            rows.append(Row(f"   − {name(ln.name)}", f"walk:line:{ln.line_id}:-", "plain"))
        big = tx(words("pay.total", total=money(w.total)))
    elif w.screen == "member":
        big = tx(T["walkin.member"])
        if w.member_phase == "found" and w.member is not None:
            sub = tx(words("member.balance", member=w.member.member, balance=w.member.balance))
            n = w.redeem or w.redeemable()
            if n:
                rows.append(Row(tx(T["member.redeeming" if w.redeem else "member.redeem"]).format(
                    points=n, amount=money(n * w.member.point_value_fen)), "walk:phone:redeem",
                    "chosen" if w.redeem else "order"))
            buttons += [Btn("walk:phone:continue", tx(T["walkin.place"]), "primary"),
                        Btn("walk:phone:change", tx(T["member.change"]))]
        elif w.member_phase == "checking":
            sub = tx(T["member.checking"])
        elif w.member_phase == "unavailable":
            sub = tx(w._member_words or T["member.offline"])
            buttons.append(Btn("walk:phone:continue", tx(T["walkin.place"]), "primary"))
        else:
            sub = w.phone_typed or tx(T["member.prompt"])
            for k in "123456789":
                buttons.append(Btn(f"walk:phone:key:{k}", k, "key"))
            buttons += [Btn("walk:phone:del", tx(T["key.del"]), "key"), Btn("walk:phone:key:0", "0", "key"),
                        Btn("walk:phone:ok", tx(T["member.ok"]), "key"),
                        Btn("walk:phone:skip", tx(T["member.skip"]))]
    if w.screen in ("menu", "cart"):
        if w.cart:
            big = big or tx(words("pay.total", total=money(w.total)))
            buttons += [Btn("walk:checkout", tx(T["walkin.place"]), "primary")]
            if w.screen == "menu":
                buttons.append(Btn("walk:cart", f"{tx(T['walkin.cart'])} ({sum(x.qty for x in w.cart)})"))
        if w.screen == "cart":
            buttons.append(Btn("walk:menu", tx(T["walkin.menu"])))
        buttons.append(Btn("back", tx(T["back"])))
    return rows, buttons, big, sub, keypad
