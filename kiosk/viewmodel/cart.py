"""The dish being chosen (its options and quantity) and the cart: lines,
prices from the hub's own pricing function, problems after a menu change,
the drink suggestion, checkout.
"""

from __future__ import annotations

import msgspec

from restobox.contract import LoyaltyClaim, OrderSubmit, Rejection, SubmitLine, SubmitPayment, Words
from restobox.menu import Item, ModifierGroup
from restobox.orders import MAX_ITEMS_PER_ORDER, MAX_LINES, MAX_QTY_PER_LINE, PricedOrder, price_order
from kiosk.viewmodel.model import ActionRefused, CartLine, LineProblem, Screen, _Editor
from kiosk.viewmodel.texts import T


class CartSteps:
    """The cart part of :class:`kiosk.viewmodel.KioskViewModel` (its state lives there)."""

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
