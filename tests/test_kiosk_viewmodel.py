"""The kiosk's view model without a window: a fake clock, the sample menu,
real contract structs in and out, prices checked against the hub's own
``price_order``. Payment updates come from a real PaymentFlow over a scripted
terminal (the terminal is not what these tests are about; see
test_payment_terminal.py for the real one on a pty)."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import msgspec
import pytest

from restobox import contract
from restobox.contract import (
    REASONS,
    MenuMessage,
    OrderReply,
    OrderSubmit,
    SoldOut,
    SubmitPayment,
)
from restobox.data import load_sample_menu, sample_menu_bytes
from restobox.menu import Menu, MenuIndex
from restobox.orders import price_order
from kiosk.payment import (
    CounterPayment,
    InMemoryIntentStore,
    PaymentFlow,
    PaymentTerminal,
    TerminalReply,
)
from kiosk.viewmodel import (
    Button,
    CancelPayment,
    CartView,
    CheckPaymentAgain,
    EditorView,
    KioskViewModel,
    MenuView,
    PayView,
    StartPayment,
    SubmitOrder,
    delta_text,
    money,
    parse_deep_link,
    provisional_number,
)

T0 = 1_800_000_000.0
MENU = load_sample_menu()


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_vm(clock: FakeClock, menu: Menu = MENU, **kw) -> KioskViewModel:
    return KioskViewModel(menu, clock=clock, device="kiosk-1", **kw)


def tap(vm: KioskViewModel, clock: FakeClock, *targets: str) -> None:
    """Taps a diner makes, each a second apart (never a duplicate)."""
    for t in targets:
        clock.advance(1)
        assert vm.tap(t), f"tap {t} was ignored"


def menu_variant(change) -> Menu:
    d = json.loads(sample_menu_bytes())
    change(d)
    return Menu.from_json(json.dumps(d))


def to_menu(vm: KioskViewModel, clock: FakeClock, lang: str = "en") -> None:
    tap(vm, clock, "start", f"lang:{lang}", "service:takeaway", "next")
    assert vm.screen == "menu"


def add(vm: KioskViewModel, clock: FakeClock, item_id: str, *options: str, qty: int = 1) -> None:
    """Open the item, pick options (taps), set the quantity, add to cart."""
    tap(vm, clock, f"item:{item_id}")
    for o in options:
        tap(vm, clock, f"option:{o}")
    for _ in range(qty - 1):
        tap(vm, clock, "qty:+")
    tap(vm, clock, "add")
    assert vm.screen in ("menu", "cart"), vm.notice


def hub_total(vm: KioskViewModel) -> int:
    """What the hub computes for this cart: its own function, its own index."""
    return price_order(vm.build_order(), MenuIndex(vm.menu), vm.sold_out).total


class ScriptedTerminal(PaymentTerminal):
    """Answers PAY with a fixed reply, QUERY with another."""

    def __init__(self, method: str, pay: TerminalReply | None, query: TerminalReply | None = None) -> None:
        self.method = method
        self.pay, self.q = pay, query
        self.intent = ""

    def start(self, intent_id: str, amount: int) -> None:
        self.intent = intent_id

    def poll(self):
        return None if self.pay is None else TerminalReply(**{**_fields(self.pay), "intent_id": self.intent})

    def query(self, intent_id: str):
        return self.q or TerminalReply("no_reply", intent_id)

    def cancel(self, intent_id: str):
        return TerminalReply("cancelled", intent_id)


def _fields(r: TerminalReply) -> dict:
    return {f: getattr(r, f) for f in r.__slots__}


def run_payment(vm: KioskViewModel, terminal: PaymentTerminal) -> PaymentFlow:
    """What the app's worker does with a StartPayment command."""
    cmds = vm.take_commands()
    start = [c for c in cmds if isinstance(c, StartPayment)]
    assert len(start) == 1, cmds
    c = start[0]
    fake = FakeClock(0)
    flow = PaymentFlow(terminal, InMemoryIntentStore(), clock=fake, pay_timeout_s=5, query_attempts=1)
    u = flow.begin(c.intent_id, order_id=c.order_id, amount=c.amount)
    vm.on_payment(u)
    if not u.final:
        fake.advance(10)
        vm.on_payment(flow.poll())
    return flow


def pay_by_counter(vm: KioskViewModel, clock: FakeClock) -> OrderSubmit:
    tap(vm, clock, "checkout", "pay:counter")
    run_payment(vm, CounterPayment())
    (cmd,) = vm.take_commands()
    assert isinstance(cmd, SubmitOrder)
    return cmd.order


def accepted(order: OrderSubmit, number: int = 42) -> OrderReply:
    p = price_order(order, MenuIndex(MENU))
    return OrderReply(order_id=order.order_id, status="accepted", number=number, business_date="2026-11-22",
                      subtotal=p.subtotal, tax=p.tax, total=p.total, lines=p.lines)


def rejected(order: OrderSubmit, reason: str, **detail: str) -> OrderReply:
    return OrderReply(order_id=order.order_id, status="rejected", reason=reason, message=REASONS[reason],
                      detail=detail)


# =========================================================================
# The flow and the order id
# =========================================================================


def test_a_full_order_goes_from_the_first_tap_to_the_number_and_back_to_attract(clock) -> None:
    made = []
    vm = make_vm(clock, new_id=lambda: made.append(str(uuid.uuid4())) or made[-1])
    assert vm.screen == "attract" and vm.order_id is None
    tap(vm, clock, "start")
    assert vm.screen == "language"
    assert vm.order_id == made[0], "the order id is made at the first tap"
    tap(vm, clock, "lang:en", "service:dine_in", "table:key:1", "table:key:2", "next")
    assert vm.screen == "menu" and vm.table == "12"
    add(vm, clock, "kung-pao-chicken", "spice-hot", "rice-brown", "addon-egg")
    tap(vm, clock, "category:drinks")
    add(vm, clock, "lemon-tea", "sugar-half", qty=2)
    tap(vm, clock, "cart")
    assert vm.screen == "cart"
    order = pay_by_counter(vm, clock)

    assert order.order_id == made[0] and len(made) == 1
    assert order.service == "dine_in" and order.table == "12" and order.lang == "en" and order.channel == "kiosk"
    assert [(ln.item_id, ln.qty, ln.modifiers) for ln in order.lines] == [
        ("kung-pao-chicken", 1, ("spice-hot", "rice-brown", "addon-egg")),
        ("lemon-tea", 2, ("sugar-half", "ice-normal")),
    ]
    assert order.payment == SubmitPayment(method="counter", status="unpaid", intent_id=order.payment.intent_id)
    assert order.expected_total == price_order(order, MenuIndex(MENU)).total == 3200 + 100 + 200 + 2 * 1200
    contract.decode(contract.encode(order), OrderSubmit)  # it is a valid message
    assert vm.view().busy and vm.chrome().cancel is None

    assert vm.on_reply(accepted(order, 57))
    assert vm.screen == "confirm"
    v = vm.view()
    assert v.number == "57" and not v.provisional and v.label == "Your number"
    assert "pay at the counter" in v.payment
    tap(vm, clock, "done")
    assert vm.screen == "attract" and vm.order_id is None and vm.cart == []
    tap(vm, clock, "start")
    assert vm.order_id == made[1] != made[0], "a new order gets a new id"


def test_the_order_id_is_kept_through_back_and_forth_and_dropped_when_abandoned(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    first = vm.order_id
    add(vm, clock, "spring-rolls")
    tap(vm, clock, "cart", "back", "back", "next", "cart", "checkout", "back")
    assert vm.order_id == first
    tap(vm, clock, "cancel_order")
    assert vm.screen == "attract" and vm.order_id is None and vm.cart == []


def test_confirmation_returns_to_attract_by_itself(clock) -> None:
    vm = make_vm(clock, confirm_s=20)
    to_menu(vm, clock)
    add(vm, clock, "fries")
    tap(vm, clock, "cart")
    order = pay_by_counter(vm, clock)
    vm.on_reply(accepted(order))
    clock.advance(19)
    vm.tick()
    assert vm.screen == "confirm"
    clock.advance(1)
    vm.tick()
    assert vm.screen == "attract" and vm.order_id is None


def test_a_qr_deep_link_prefills_dine_in_and_the_table(clock) -> None:
    vm = make_vm(clock, deep_link="restobox://kiosk?table=T7&lang=en")
    tap(vm, clock, "start")
    assert vm.lang == "en"
    tap(vm, clock, "lang:en")
    v = vm.view()
    assert vm.service == "dine_in" and v.table == "T7" and v.table_note == "Table number from the QR code"
    assert v.next.enabled
    tap(vm, clock, "next")
    assert vm.screen == "menu"
    assert parse_deep_link("restobox://kiosk?table=12;drop&lang=fr") == parse_deep_link("restobox://kiosk")


def test_dine_in_needs_a_table_number(clock) -> None:
    vm = make_vm(clock)
    tap(vm, clock, "start", "lang:en", "service:dine_in")
    assert not vm.view().next.enabled
    tap(vm, clock, "next")
    assert vm.screen == "service" and vm.notice == "Please enter your table number."
    tap(vm, clock, "table:key:9", "next")
    assert vm.screen == "menu"


def test_the_menu_shows_categories_items_prices_and_sold_out(clock) -> None:
    vm = make_vm(clock, sold_out=["mapo-tofu"])
    to_menu(vm, clock)
    v = vm.view()
    assert isinstance(v, MenuView)
    assert [c.name for c in v.categories][:2] == ["Wok Dishes", "Rice & Noodles"]
    tiles = {t.id: t for t in v.items}
    assert tiles["kung-pao-chicken"].price == "¥32.00" and not tiles["kung-pao-chicken"].sold_out
    assert "peanut" in tiles["kung-pao-chicken"].allergens
    assert tiles["mapo-tofu"].sold_out and tiles["mapo-tofu"].badge == "Sold out"
    tap(vm, clock, "item:mapo-tofu")
    assert vm.screen == "menu" and vm.notice == "Sorry, Mapo Tofu is sold out right now."


# =========================================================================
# Modifier rules
# =========================================================================


def no_spice_default(d: dict) -> None:
    for g in d["modifier_groups"]:
        if g["id"] == "spice":
            for o in g["options"]:
                o["default"] = False


def test_a_required_group_must_be_chosen_before_the_item_goes_in_the_cart(clock) -> None:
    vm = make_vm(clock, menu=menu_variant(no_spice_default))
    to_menu(vm, clock)
    tap(vm, clock, "item:kung-pao-chicken", "add")
    assert vm.screen == "item" and vm.cart == []
    assert vm.notice == "Please choose Spice level (at least 1)."
    assert vm.notice_words.zh == "请选择“辣度”（至少 1 项）。"
    spice = next(g for g in vm.view().groups if g.id == "spice")
    assert spice.required and spice.rule == "Required: choose 1" and spice.error
    tap(vm, clock, "option:spice-medium", "add")
    assert vm.screen == "menu" and [ln.modifiers for ln in vm.cart] == [("spice-medium", "rice-white")]


def test_a_single_choice_group_replaces_its_choice_and_keeps_one(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    tap(vm, clock, "item:kung-pao-chicken")
    assert vm.editor.chosen["spice"] == ["spice-mild"]  # the menu's default
    tap(vm, clock, "option:spice-hot")
    assert vm.editor.chosen["spice"] == ["spice-hot"]
    tap(vm, clock, "option:spice-hot")  # a required single choice cannot be emptied
    assert vm.editor.chosen["spice"] == ["spice-hot"]


def test_a_group_maximum_is_enforced_with_a_clear_message(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    tap(vm, clock, "item:kung-pao-chicken", "option:addon-egg", "option:addon-meat", "option:addon-greens")
    v = vm.view()
    addons = next(g for g in v.groups if g.id == "add-ons")
    assert addons.rule == "Optional: up to 3" and not addons.required
    assert not next(o for o in addons.options if o.id == "addon-rice").enabled
    tap(vm, clock, "option:addon-rice")
    assert vm.editor.chosen["add-ons"] == ["addon-egg", "addon-meat", "addon-greens"]
    assert vm.notice == "Add-ons: choose at most 3. Untick one first."
    assert vm.notice_words.zh == "“加料”最多选 3 项，请先取消一项。"
    tap(vm, clock, "option:addon-meat", "option:addon-rice")  # untick one, then the fourth fits
    assert vm.editor.chosen["add-ons"] == ["addon-egg", "addon-greens", "addon-rice"]
    assert vm.notice is None


def test_price_deltas_are_shown_and_the_unit_price_follows_the_choices(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    tap(vm, clock, "item:kung-pao-chicken")
    v = vm.view()
    assert isinstance(v, EditorView)
    rice = {o.id: o.delta for o in next(g for g in v.groups if g.id == "rice-choice").options}
    assert rice == {"rice-white": "", "rice-brown": "+¥1.00", "rice-none": "-¥1.00"}
    assert v.unit_price == 3200 and v.unit_price_text == "¥32.00"
    tap(vm, clock, "option:rice-none", "option:addon-meat", "qty:+")
    v = vm.view()
    assert v.unit_price == 3200 - 100 + 600 and v.line_total_text == money(2 * 3700)
    assert v.add.label == "Add to cart · ¥74.00"
    tap(vm, clock, "add")
    p = vm.priced()
    assert p.lines[0].unit_price == 3700, "the live price is the hub's price"


def test_a_sold_out_option_cannot_be_chosen(clock) -> None:
    vm = make_vm(clock, sold_out=["addon-egg"])
    to_menu(vm, clock)
    tap(vm, clock, "item:kung-pao-chicken", "option:addon-egg")
    assert vm.editor.chosen["add-ons"] == []
    assert vm.notice == "Sorry, “Extra fried egg” is sold out right now."
    egg = next(o for g in vm.view().groups for o in g.options if o.id == "addon-egg")
    assert egg.sold_out and not egg.enabled


# =========================================================================
# Cart and totals
# =========================================================================


@pytest.mark.parametrize("inclusive", [True, False])
def test_the_cart_total_is_the_hubs_total_for_the_same_cart(clock, inclusive: bool) -> None:
    menu = MENU if inclusive else menu_variant(lambda d: d.update(tax_inclusive=False, tax_rate_bp=875))
    vm = make_vm(clock, menu=menu)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken", "spice-hot", "rice-brown", "addon-egg", "addon-meat", qty=3)
    tap(vm, clock, "category:combos")
    add(vm, clock, "combo-kung-pao-chicken", "combo-side-wings", "combo-drink-milk-tea")
    tap(vm, clock, "category:rice-noodles")
    add(vm, clock, "dan-dan-noodles", "noodle-rice", "addon-beef", qty=2)
    tap(vm, clock, "cart")
    order = vm.build_order()
    hub = price_order(order, MenuIndex(menu))
    assert vm.total == hub.total == order.expected_total
    v = vm.view()
    assert isinstance(v, CartView)
    assert v.total_fen == hub.total and v.total == f"Total {money(hub.total)}"
    assert v.tax == f"{'Incl. VAT' if inclusive else 'VAT'} {money(hub.tax)}"
    assert [ln.line_total for ln in v.lines] == [money(pl.line_total) for pl in hub.lines]
    assert hub.tax > 0 and (hub.total == hub.subtotal + hub.tax)
    tap(vm, clock, "checkout", "pay:card")
    (start,) = vm.take_commands()
    assert start.amount == hub.total, "the terminal is asked for the hub's total"


def test_the_same_dish_with_the_same_choices_is_one_line(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken", "spice-hot")
    add(vm, clock, "kung-pao-chicken", "spice-hot")
    add(vm, clock, "kung-pao-chicken")
    assert [(ln.modifiers, ln.qty) for ln in vm.cart] == [
        (("spice-hot", "rice-white"), 2), (("spice-mild", "rice-white"), 1)]


def test_the_cart_changes_quantities_removes_and_edits_lines(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken")
    add(vm, clock, "fries")
    tap(vm, clock, "cart")
    kp, fries = (ln.line_id for ln in vm.cart)
    tap(vm, clock, f"line:{kp}:+", f"line:{kp}:+", f"line:{fries}:-")
    assert [ln.qty for ln in vm.cart] == [3, 1]
    assert vm.notice == "To take it out, tap Remove."
    tap(vm, clock, f"line:{fries}:remove")
    assert [ln.item_id for ln in vm.cart] == ["kung-pao-chicken"]
    tap(vm, clock, f"line:{kp}:edit", "option:spice-none", "add")
    assert vm.screen == "cart" and [(ln.modifiers, ln.qty) for ln in vm.cart] == [
        (("spice-none", "rice-white"), 3)]
    assert vm.total == hub_total(vm) == 3 * 3200


def test_the_cart_suggests_a_drink_only_when_it_has_none(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken")
    tap(vm, clock, "cart")
    up = vm.view().upsell
    assert up is not None and up.label == "Add a drink? Bubble Milk Tea ¥14.00"
    tap(vm, clock, "upsell")
    assert vm.screen == "item" and vm.editor.item_id == "bubble-milk-tea"
    tap(vm, clock, "add")
    assert vm.screen == "cart" and vm.view().upsell is None
    tap(vm, clock, f"line:{vm.cart[1].line_id}:remove")
    tap(vm, clock, "back", "category:combos")
    add(vm, clock, "combo-mapo-tofu")
    tap(vm, clock, "cart")
    assert vm.view().upsell is None, "a combo has its drink"


# =========================================================================
# Language, idle, taps, accessibility
# =========================================================================


def test_the_language_switches_mid_order_and_every_text_follows(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock, lang="zh")
    add(vm, clock, "fries")
    tap(vm, clock, "item:kung-pao-chicken")
    v = vm.view()
    assert v.name == "宫保鸡丁" and v.add.label.startswith("加入购物车")
    spice = next(g for g in v.groups if g.id == "spice")
    assert (spice.name, spice.rule) == ("辣度", "必选 1 项")
    assert vm.chrome().language.label == "English"
    tap(vm, clock, "option:spice-hot", "lang:en")
    v = vm.view()
    assert vm.screen == "item" and v.name == "Kung Pao Chicken" and v.add.label.startswith("Add to cart")
    spice = next(g for g in v.groups if g.id == "spice")
    assert (spice.name, spice.rule) == ("Spice level", "Required: choose 1")
    assert vm.editor.chosen["spice"] == ["spice-hot"], "the choices survive the switch"
    assert vm.chrome().language.label == "中文" and vm.chrome().cancel.label == "Cancel order"
    tap(vm, clock, "add", "cart")
    assert [ln.name for ln in vm.view().lines] == ["Fries", "Kung Pao Chicken"]
    tap(vm, clock, "lang:zh")
    assert [ln.name for ln in vm.view().lines] == ["炸薯条", "宫保鸡丁"]
    assert vm.view().checkout.label == "去付款"
    order = pay_by_counter(vm, clock)
    assert order.lang == "zh"


def test_idle_asks_if_the_diner_is_still_there_then_starts_over(clock) -> None:
    vm = make_vm(clock, idle_s=60, still_there_s=15)
    to_menu(vm, clock, lang="en")
    add(vm, clock, "fries")
    clock.advance(59.5)
    vm.tick()
    assert not vm.still_there and vm.overlay() is None
    clock.advance(0.5)
    vm.tick()
    assert vm.still_there
    o = vm.overlay()
    assert o.title == "Are you still there?" and o.seconds_left == 15
    assert o.text == "The order will start over in 15 seconds."
    clock.advance(14.5)
    vm.tick()
    assert vm.screen == "menu" and vm.overlay().seconds_left == 1
    clock.advance(0.5)
    vm.tick()
    assert vm.screen == "attract" and vm.cart == [] and vm.order_id is None and vm.lang == "zh"
    assert not vm.still_there


def test_a_touch_answers_still_there_and_keeps_the_order(clock) -> None:
    vm = make_vm(clock, idle_s=60, still_there_s=15)
    to_menu(vm, clock)
    add(vm, clock, "fries")
    order_id = vm.order_id
    clock.advance(65)
    vm.tick()
    assert vm.still_there
    tap(vm, clock, "item:kung-pao-chicken")  # under the question: it only answers it
    assert not vm.still_there and vm.screen == "menu" and len(vm.cart) == 1
    clock.advance(59)
    vm.tick()
    assert not vm.still_there and vm.order_id == order_id
    clock.advance(1)
    vm.tick()
    tap(vm, clock, "still_there:no")
    assert vm.screen == "attract" and vm.order_id is None


def test_no_idle_reset_while_the_terminal_or_the_hub_is_working(clock) -> None:
    vm = make_vm(clock, idle_s=60, still_there_s=15)
    to_menu(vm, clock)
    add(vm, clock, "fries")
    tap(vm, clock, "cart", "checkout", "pay:card")
    assert vm.busy
    clock.advance(600)
    vm.tick()
    assert vm.screen == "pay" and not vm.still_there and len(vm.cart) == 1


def test_a_doubled_touch_adds_one_item(clock) -> None:
    vm = make_vm(clock, tap_guard_s=0.3)
    to_menu(vm, clock)
    add(vm, clock, "fries")
    tap(vm, clock, "cart")
    line = f"line:{vm.cart[0].line_id}:+"
    assert vm.tap(line)
    clock.advance(0.02)  # the same touch, delivered by a second input provider
    assert not vm.tap(line)
    assert vm.cart[0].qty == 2 and vm.duplicate_taps == 1
    clock.advance(0.35)
    assert vm.tap(line)
    assert vm.cart[0].qty == 3
    tap(vm, clock, "back")
    assert vm.tap("item:fries")
    assert not vm.tap("item:fries")
    assert vm.tap("add")
    assert not vm.tap("add")
    assert vm.cart[0].qty == 4 and len(vm.cart) == 1


def test_different_targets_in_quick_succession_all_count(clock) -> None:
    vm = make_vm(clock, tap_guard_s=0.3)
    to_menu(vm, clock)
    tap(vm, clock, "item:kung-pao-chicken")
    for o in ("option:addon-egg", "option:addon-meat", "option:hold-msg"):
        clock.advance(0.05)
        assert vm.tap(o)
    assert vm.editor.chosen["add-ons"] == ["addon-egg", "addon-meat"]
    assert vm.editor.chosen["hold"] == ["hold-msg"]


def test_accessibility_modes_are_state_the_screen_binds_to(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    tap(vm, clock, "a11y:large_text", "a11y:reach")
    assert vm.large_text and vm.reach and not vm.high_contrast
    assert vm.chrome().large_text.selected and vm.chrome().reach.selected
    tap(vm, clock, "a11y:high_contrast", "a11y:reach")
    assert vm.high_contrast and not vm.reach
    tap(vm, clock, "cancel_order")
    assert not (vm.large_text or vm.high_contrast or vm.reach), "the next diner starts with defaults"


# =========================================================================
# Sold out and menu changes while in the cart
# =========================================================================


def test_a_dish_sold_out_in_the_cart_is_explained_and_blocks_payment_until_resolved(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken")
    add(vm, clock, "fries")
    tap(vm, clock, "cart")
    vm.on_soldout(SoldOut(items=("kung-pao-chicken",), at="2026-11-22T12:00:00Z"))
    v = vm.view()
    kp = v.lines[0]
    assert kp.problem == "Sorry, Kung Pao Chicken has just sold out. Remove it, or choose something else."
    assert [a.label for a in kp.actions] == ["Remove", "Choose another"]
    assert not kp.plus.enabled
    assert v.blocked and not v.checkout.enabled
    assert v.total_fen == 1000 == hub_total_without(vm, "kung-pao-chicken")
    tap(vm, clock, "checkout")
    assert vm.screen == "cart" and vm.notice == "Something in your cart needs your choice before you can pay."
    with pytest.raises(contract.Rejection):
        vm.build_order()  # the hub would refuse it too
    tap(vm, clock, "lang:zh")
    assert vm.view().lines[0].problem == "抱歉，“宫保鸡丁”刚刚售罄。请删除它，或换一道菜。"
    tap(vm, clock, f"line:{kp.line_id}:replace")
    assert vm.screen == "menu" and vm.category == "wok-dishes" and [ln.item_id for ln in vm.cart] == ["fries"]
    add(vm, clock, "mapo-tofu")
    tap(vm, clock, "cart")
    assert vm.can_pay
    tap(vm, clock, "checkout")
    assert vm.screen == "pay"


def hub_total_without(vm: KioskViewModel, item_id: str) -> int:
    order = vm._order([vm._submit_line(ln) for ln in vm.cart if ln.item_id != item_id])
    return price_order(order, MenuIndex(vm.menu), vm.sold_out).total


def test_a_sold_out_option_in_the_cart_asks_for_other_options(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken", "rice-brown")
    tap(vm, clock, "cart")
    vm.on_soldout(SoldOut(items=("rice-brown",), at=""))
    line = vm.view().lines[0]
    assert line.problem == ("Sorry, “Brown rice” for Kung Pao Chicken has just sold out. "
                            "Change the options, or remove it.")
    assert not vm.can_pay
    tap(vm, clock, f"line:{line.line_id}:edit")
    assert vm.editor.chosen["rice-choice"] == []
    tap(vm, clock, "add")
    assert vm.screen == "item" and vm.notice == "Please choose Rice (at least 1)."
    tap(vm, clock, "option:rice-white", "add")
    assert vm.screen == "cart" and vm.can_pay and vm.cart[0].modifiers == ("spice-mild", "rice-white")


def test_a_sold_out_while_on_the_pay_screen_goes_back_to_the_cart(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "fries")
    tap(vm, clock, "cart", "checkout")
    vm.on_soldout(SoldOut(items=("fries",), at=""))
    assert vm.screen == "cart" and not vm.can_pay


def test_a_new_menu_reprices_the_cart_and_a_dish_that_left_must_go(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken")
    add(vm, clock, "scallion-pancake")
    tap(vm, clock, "cart")

    def change(d: dict) -> None:
        d["version"] = "2026-11-02.1"
        d["items"] = [i for i in d["items"] if i["id"] != "scallion-pancake"]
        for i in d["items"]:
            if i["id"] == "kung-pao-chicken":
                i["price"] = 3500

    new = menu_variant(change)
    vm.on_menu(MenuMessage(menu=new, at=""))
    v = vm.view()
    assert v.lines[0].unit_price == "¥35.00" and v.total_fen == 3500
    assert v.lines[1].problem == ("Scallion Pancake is no longer on the menu. "
                                  "Remove it, or choose something else.")
    tap(vm, clock, f"line:{vm.cart[1].line_id}:remove", "checkout")
    order = pay_by_counter_from_pay(vm, clock)
    assert order.expected_total == 3500 and order.menu_version == "2026-11-02.1"


def pay_by_counter_from_pay(vm: KioskViewModel, clock: FakeClock) -> OrderSubmit:
    tap(vm, clock, "pay:counter")
    run_payment(vm, CounterPayment())
    (cmd,) = vm.take_commands()
    return cmd.order


# =========================================================================
# Payment outcomes on the pay screen
# =========================================================================


def to_pay(vm: KioskViewModel, clock: FakeClock) -> None:
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken")
    tap(vm, clock, "cart", "checkout")
    assert vm.screen == "pay"


def test_an_approved_card_payment_goes_into_the_order(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    tap(vm, clock, "pay:card")
    intent = vm.intent_id
    run_payment(vm, ScriptedTerminal("card", TerminalReply("approved", amount=3200, auth_ref="A000009")))
    (cmd,) = vm.take_commands()
    p = cmd.order.payment
    assert (p.method, p.status, p.amount, p.intent_id, p.reference) == ("card", "approved", 3200, intent, "A000009")
    assert cmd.order.expected_total == 3200 and vm.view().phase == "submitting"
    vm.on_reply(accepted(cmd.order, 8))
    assert vm.view().payment == "Paid ¥32.00"


def test_a_declined_card_offers_a_retry_with_a_new_intent_or_the_counter(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    tap(vm, clock, "pay:card")
    first = vm.intent_id
    run_payment(vm, ScriptedTerminal("card", TerminalReply("declined", reason="insufficient_funds")))
    v = vm.view()
    assert isinstance(v, PayView) and v.phase == "problem"
    assert v.message == ("The payment was declined: not enough funds. "
                         "Try again, choose another way to pay, or pay at the counter.")
    assert [a.id for a in v.actions] == ["payment:retry", "payment:pay_at_counter", "payment:cancel_order"]
    assert vm.take_commands() == []
    tap(vm, clock, "payment:retry")
    (again,) = vm.take_commands()
    assert isinstance(again, StartPayment) and again.intent_id != first and again.order_id == vm.order_id


def test_cancel_while_waiting_for_the_terminal_asks_the_terminal(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    tap(vm, clock, "pay:qr")
    intent = vm.intent_id
    tap(vm, clock, "payment:cancel")
    cmds = vm.take_commands()
    assert cmds[-1] == CancelPayment(intent)


def test_an_unknown_outcome_never_offers_a_second_charge(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    tap(vm, clock, "pay:card")
    intent = vm.intent_id
    run_payment(vm, ScriptedTerminal("card", None))  # no answer to PAY nor to QUERY
    v = vm.view()
    assert vm.payment_update.state == "unknown" and v.phase == "problem"
    assert [a.id for a in v.actions] == ["payment:check_again", "payment:pay_at_counter"]
    assert "don't pay again" in v.message
    assert vm.chrome().cancel is None
    tap(vm, clock, "pay:card")
    tap(vm, clock, "payment:cancel_order")
    assert vm.take_commands() == [] and vm.screen == "pay"
    assert "cannot yet tell whether you were charged" in vm.notice
    tap(vm, clock, "payment:check_again")
    assert vm.take_commands() == [CheckPaymentAgain(intent)]
    # the check comes back unknown again; the diner goes to the counter
    vm.on_payment(vm.payment_update)
    tap(vm, clock, "payment:pay_at_counter")
    (cmd,) = vm.take_commands()
    p = cmd.order.payment
    assert (p.method, p.status, p.intent_id) == ("card", "unpaid", intent), "staff can find the intent"
    vm.on_reply(accepted(cmd.order))
    assert "staff will check whether you were charged" in vm.view().payment


# =========================================================================
# The hub's answers
# =========================================================================


def test_a_price_mismatch_goes_back_to_the_cart_with_the_new_prices(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    order = pay_by_counter_from_pay(vm, clock)
    assert vm.on_reply(rejected(order, "price_mismatch", expected="3200", total="3500"))
    assert vm.screen == "cart" and vm.order_id == order.order_id
    assert vm.notice == ("The price changed; please check the order again. "
                         "Your cart shows the new prices; check them and pay again.")
    new = menu_variant(lambda d: [i.update(price=3500) for i in d["items"] if i["id"] == "kung-pao-chicken"])
    vm.on_menu(MenuMessage(menu=new, at=""))
    assert vm.view().total == "Total ¥35.00"
    tap(vm, clock, "checkout")
    again = pay_by_counter_from_pay(vm, clock)
    assert again.order_id == order.order_id and again.expected_total == 3500


def test_an_item_the_hub_says_is_sold_out_is_marked_in_the_cart(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken")
    add(vm, clock, "fries")
    tap(vm, clock, "cart", "checkout")
    order = pay_by_counter_from_pay(vm, clock)
    vm.on_reply(rejected(order, "item_unavailable", line="2", item_id="fries", detail="line 2: fries is sold out"))
    assert vm.screen == "cart"
    assert vm.notice == "An item in the order is sold out right now. Remove it, or choose something else."
    assert vm.problems() == {vm.cart[1].line_id: "sold_out"} and not vm.can_pay


def test_a_hub_error_keeps_the_order_and_sends_the_same_one_again(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    order = pay_by_counter_from_pay(vm, clock)
    vm.on_reply(rejected(order, "storage_unavailable"))
    v = vm.view()
    assert v.phase == "refused" and v.message.startswith("The order could not be saved; please try again.")
    tap(vm, clock, "payment:retry_submit")
    (cmd,) = vm.take_commands()
    assert contract.encode(cmd.order) == contract.encode(order), "the very same order, so the hub deduplicates"
    assert vm.submit() is order


def test_a_refusal_after_the_card_was_charged_sends_the_diner_to_staff(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    tap(vm, clock, "pay:card")
    run_payment(vm, ScriptedTerminal("card", TerminalReply("approved", amount=3200, auth_ref="A000077")))
    (cmd,) = vm.take_commands()
    vm.on_reply(rejected(cmd.order, "item_unavailable", item_id="kung-pao-chicken"))
    assert vm.screen == "help"
    v = vm.view()
    assert "You paid ¥32.00" in v.message and "A000077" in v.reference
    assert vm.help_words.zh.startswith("这道菜已售罄。你已付款 ¥32.00")


def test_an_answer_for_another_order_is_ignored(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    order = pay_by_counter_from_pay(vm, clock)
    other = msgspec.structs.replace(order, order_id=str(uuid.uuid4()))
    assert not vm.on_reply(accepted(other))
    assert vm.screen == "pay" and vm.view().phase == "submitting"


# =========================================================================
# Offline
# =========================================================================


def test_offline_the_diner_gets_a_provisional_number_and_the_outbox_gets_the_order(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    online = pay_by_counter_from_pay(vm, clock)
    clock.advance(5)  # no answer: the hub or the broker is gone
    number = provisional_number("kiosk-1", 7)
    assert number == "K1-007"
    order = vm.submit_offline(number)
    assert order.offline and order.provisional_number == "K1-007"
    assert (order.order_id, order.placed_at, order.lines, order.expected_total, order.payment) == (
        online.order_id, online.placed_at, online.lines, online.expected_total, online.payment)
    entry = vm.outbox_entry
    assert entry.order_id == order.order_id and entry.provisional_number == "K1-007"
    assert contract.decode(entry.payload, OrderSubmit) == order
    assert vm.screen == "confirm"
    v = vm.view()
    assert v.provisional and v.number == "K1-007" and v.label == "Provisional number"
    assert "saved on this kiosk" in v.note
    tap(vm, clock, "lang:zh")
    assert vm.view().label == "临时号码"
    assert not vm.on_reply(accepted(online)), "a late answer does not change what the diner was shown"
    assert provisional_number("kiosk-12", 1234) == "K12-234"
    assert provisional_number("lobby", 3) == "LOBB-003"


# =========================================================================
# Small pieces and boundaries
# =========================================================================


def test_an_option_sold_out_while_the_diner_chooses_is_unticked_with_a_word(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    tap(vm, clock, "item:kung-pao-chicken", "option:addon-egg")
    vm.on_soldout(SoldOut(items=("addon-egg",), at=""))
    assert vm.screen == "item" and vm.editor.chosen["add-ons"] == []
    assert vm.notice == "Sorry, “Extra fried egg” just sold out and was unticked."


def _targets(view) -> list[str]:
    """Every tap target a view offers (buttons, tiles, options)."""
    out: list[str] = []
    if isinstance(view, Button):
        return [view.id]
    if isinstance(view, tuple):
        for v in view:
            out += _targets(v)
        return out
    if dataclasses.is_dataclass(view):
        for f in dataclasses.fields(view):
            v = getattr(view, f.name)
            if f.name == "tap" and isinstance(v, str):
                out.append(v)
            else:
                out += _targets(v)
    return out


def test_odd_or_untimely_taps_are_refused_never_raised(clock) -> None:
    """A random walk: mostly what the screen offers, sometimes nonsense, a
    menu that changes, sold-out lists, hub answers; nothing raises and every
    screen reached can be drawn."""
    vm = make_vm(clock)
    rng = random.Random(7)
    nonsense = ["", ":", "nonsense", "lang:fr", "table:key:", "table:key:**", "line:x:edit", "line:99:replace",
                "pay:bitcoin", "payment:retry", "payment:check_again", "payment:retry_submit", "option:nope",
                "item:", "category:none", "qty:", "still_there:no", "done", "upsell", "checkout", "next"]
    screens = set()
    for _ in range(6000):
        clock.advance(0.5)
        r = rng.random()
        if r < 0.01:
            clock.advance(70)
            vm.tick()
        elif r < 0.02:
            vm.on_soldout(SoldOut(items=tuple(rng.sample([i.id for i in MENU.items], 5)), at=""))
        for c in vm.take_commands():  # the app's side, answered at once
            if isinstance(c, StartPayment):
                run_payment_for(vm, c, rng.choice([
                    CounterPayment(), ScriptedTerminal("card", None),
                    ScriptedTerminal("card", TerminalReply("approved", amount=c.amount, auth_ref="A1")),
                    ScriptedTerminal("qr", TerminalReply("declined", reason="timeout"))]))
            elif isinstance(c, SubmitOrder):
                vm.on_reply(rng.choice([accepted(c.order), rejected(c.order, "storage_unavailable"),
                                        rejected(c.order, "price_mismatch")]))
        offered = _targets(vm.overlay()) or _targets(vm.view())
        r = rng.random()
        target = rng.choice(offered if r < 0.85 else _targets(vm.chrome()) if r < 0.9 else nonsense)
        vm.tap(target)  # never raises
        vm.view(), vm.chrome(), vm.overlay()
        screens.add(vm.screen)
    assert {"attract", "language", "service", "menu", "item", "cart", "pay", "confirm", "help"} <= screens, screens


def run_payment_for(vm: KioskViewModel, c: StartPayment, terminal: PaymentTerminal) -> None:
    fake = FakeClock(0)
    flow = PaymentFlow(terminal, InMemoryIntentStore(), clock=fake, pay_timeout_s=5, query_attempts=1)
    vm.on_payment(flow.begin(c.intent_id, order_id=c.order_id, amount=c.amount))
    fake.advance(10)
    vm.on_payment(flow.poll())


def test_money_is_shown_in_yuan_from_fen() -> None:
    assert money(3200) == "¥32.00" and money(5) == "¥0.05" and money(-100) == "-¥1.00"
    assert delta_text(300) == "+¥3.00" and delta_text(-100) == "-¥1.00" and delta_text(0) == ""


def test_placed_at_is_the_time_of_the_first_submission(clock) -> None:
    vm = make_vm(clock)
    to_pay(vm, clock)
    order = pay_by_counter_from_pay(vm, clock)
    assert datetime.fromisoformat(order.placed_at) == datetime.fromtimestamp(clock.t, timezone.utc)


def test_the_view_models_import_no_kivy_no_paho_no_peewee() -> None:
    code = ("import sys, kiosk.viewmodel, kiosk.payment; "
            "bad = [m for m in ('kivy', 'paho', 'peewee', 'serial') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_preview_is_what_the_screen_first_shows_and_changes_nothing(clock) -> None:
    """The app builds its screens ahead with previews: each is the view the
    diner then gets on arriving (so the arrival only swaps screens), and
    making them leaves the state as it was."""
    vm = make_vm(clock)
    tap(vm, clock, "start", "lang:en")
    before = (vm.screen, vm.category, vm.editor, list(vm.cart), vm.view())
    previews = {s: vm.preview(s) for s in ("language", "service", "menu", "item", "cart", "pay", "confirm")}
    assert (vm.screen, vm.category, vm.editor, list(vm.cart), vm.view()) == before
    assert previews["confirm"] is None
    assert previews["service"] == vm.view()
    tap(vm, clock, "service:takeaway", "next")
    assert previews["menu"] == vm.view(), "the first category, in the diner's language"
    first = previews["menu"].items[0].id
    tap(vm, clock, f"item:{first}")
    assert previews["item"] == vm.view()
    tap(vm, clock, "add", "cart")
    assert [ln.name for ln in previews["cart"].lines] == [ln.name for ln in vm.view().lines]
    assert previews["cart"].total == vm.view().total
    tap(vm, clock, "checkout")
    assert previews["pay"].methods == vm.view().methods and previews["pay"].total == vm.view().total
