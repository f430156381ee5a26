"""The views of the screens (kiosk.viewmodel.views) made from the state, in
the current language; the chrome and the "still there?" overlay.
"""

from __future__ import annotations

from collections.abc import Iterable

from restobox import loyalty
from restobox.contract import Rejection, Words
from restobox.orders import MAX_QTY_PER_LINE, price_order
from kiosk.payment import ACTION_WORDS
from kiosk.viewmodel.model import CartLine, _Editor
from kiosk.viewmodel.texts import ALLERGEN_NAMES, T, delta_text, money
from kiosk.viewmodel.views import (
    AttractView,
    Button,
    CartLineView,
    CartView,
    CategoryTile,
    Chrome,
    ConfirmView,
    EditorView,
    GroupView,
    HelpView,
    ItemTile,
    LanguageView,
    MemberView,
    MenuView,
    OptionView,
    PayView,
    ServiceView,
    StillThereView,
    View,
)


class ViewBuilder:
    """The render part of :class:`kiosk.viewmodel.KioskViewModel` (its state lives there)."""

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

    PREVIEWS = ("language", "service", "menu", "item", "cart", "pay")

    def preview(self, screen: str) -> View | None:
        """What ``screen`` would show a diner arriving at it now: the
        languages, the ways to eat, the first category's dishes, its first
        dish's choices, a cart with that dish, the ways to pay for it
        (PREVIEWS; None for another screen or with no menu). The state is left as it was: the app builds and draws its
        screens with these while nobody orders, so a first visit only fills
        them."""
        if screen not in self.PREVIEWS:
            return None
        if screen in ("language", "service"):
            return getattr(self, f"_view_{screen}")()
        first = self.category or self._first_category()
        dishes = [i for i in self.menu.items if i.category == first and not self._item_sold_out(i)]
        simple = [i for i in dishes if not any(self.idx.groups[g].required for g in i.modifier_groups)]
        item = (simple or dishes or [None])[0]
        if item is None:
            return None
        saved = self.category, self.editor, self.cart
        try:
            self.category = first
            # the dish with the choices the menu marks as defaults, as open_item makes it
            self.editor = _Editor(item_id=item.id, chosen={
                g: [o.id for o in self.idx.groups[g].options if o.default][: self.idx.groups[g].max_choices]
                for g in item.modifier_groups})
            if screen in ("cart", "pay") and not self.cart:
                self.cart = [CartLine(line_id=0, item_id=item.id, modifiers=self._editor_modifiers(), qty=1,
                                      name=item.name)]
            if screen != "item":
                self.editor = None
            return getattr(self, f"_view_{screen}")()
        finally:
            self.category, self.editor, self.cart = saved

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
