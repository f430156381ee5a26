"""The counter's view model alone (no window, no bus): shifts, finding an
order by number, table or scan, cash with change, split tender, card
progress, refunds with a reason and the PIN, two counters, walk-in orders
through the kiosk's own cart."""

from __future__ import annotations

import itertools

import pytest

from counter.viewmodel import (
    ChargeCard,
    CounterViewModel,
    OpenDrawer,
    OrderInfo,
    Reprint,
    SendTill,
    SubmitWalkin,
)
from kiosk.payment import PaymentUpdate
from kiosk.viewmodel.model import QueryBalance
from restobox.contract import (
    REASONS,
    LedgerEntry,
    LoyaltyBalance,
    MenuMessage,
    OrderReply,
    OrderUpdate,
    PayIntent,
    PaymentUpdate as LedgerUpdate,
    PricedLine,
    ShiftSummary,
    TillReply,
    UnpaidOrder,
    UnpaidOrders,
    Words,
)
from restobox.data import load_sample_menu

OID = "11111111-1111-4111-8111-111111111111"
OID2 = "22222222-2222-4222-8222-222222222222"


class Clock:
    def __init__(self) -> None:
        self.t = 1_780_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


def make_vm(clock, **kw) -> CounterViewModel:
    ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count(1))
    kw.setdefault("card_methods", ("card", "qr"))
    return CounterViewModel(clock=clock, device="counter-1", new_id=lambda: next(ids),
                            business_date=lambda: "2026-12-05", tap_guard_s=0, **kw)


def tap(vm, *targets):
    for t in targets:
        clock = vm.clock
        if hasattr(clock, "t"):
            clock.t += 0.5
        vm.tap(t)


def type_amount(vm, yuan: str):
    for ch in yuan:
        tap(vm, f"key:{ch}")


def opened(clock, **kw) -> CounterViewModel:
    vm = make_vm(clock, **kw)
    type_amount(vm, "500")
    tap(vm, "shift_open")
    vm.take_commands()
    return vm


def unpaid(vm, order_id=OID, number=17, total=3800, table=None, channel="kiosk"):
    vm.on_order_update(OrderUpdate(order_id=order_id, number=number, state="accepted", at="x", total=total,
                                   business_date="2026-12-05",
                                   channel=channel, table=table))


def test_no_shift_no_payments_and_the_float_opens_one(clock):
    vm = make_vm(clock)
    assert vm.screen == "shift"
    unpaid(vm)
    tap(vm, f"order:{OID}")
    assert vm.screen == "shift" and "shift" in vm.notice.lower() or "班次" in vm.notice
    type_amount(vm, "500")
    assert vm.view().big == "¥500.00"
    tap(vm, "shift_open")
    [cmd] = vm.take_commands()
    assert isinstance(cmd, SendTill) and cmd.request.kind == "shift_open" and cmd.request.float_fen == 50000
    assert vm.screen == "orders" and vm.shift["float"] == 50000


def test_orders_newest_first_found_by_number_table_and_scan(clock):
    vm = opened(clock)
    unpaid(vm, OID, 17, table="12")
    clock.t += 5
    unpaid(vm, OID2, 18)
    rows = [r.target for r in vm.view().rows if r.target]
    assert rows[:2] == [f"order:{OID2}", f"order:{OID}"]
    for ch in "R2026120517":
        vm.key(ch)
    vm.enter()
    assert vm.screen == "pay" and vm.selected == OID and vm.due == 3800
    tap(vm, "back")
    for ch in "18":
        vm.key(ch)
    vm.enter()
    assert vm.selected == OID2
    tap(vm, "back")
    for ch in "12":
        vm.key(ch)
    vm.enter()
    assert vm.selected == OID
    tap(vm, "back")
    for ch in "R2026120417":
        vm.key(ch)
    vm.enter()
    assert vm.screen == "orders" and "2026-12-04" in vm.notice
    vm.lang = "en"
    for ch in "99":
        vm.key(ch)
    vm.enter()
    assert vm.notice == "No order 99 found."
    # by touch: the keypad types into the find box
    tap(vm, "key:1", "key:8", "find")
    assert vm.screen == "pay" and vm.selected == OID2


def test_cash_shows_the_change_big_and_opens_the_drawer(clock):
    vm = opened(clock)
    unpaid(vm)
    tap(vm, f"order:{OID}")
    type_amount(vm, "100")
    tap(vm, "cash")
    cmds = vm.take_commands()
    drawer = [c for c in cmds if isinstance(c, OpenDrawer)]
    [send] = [c for c in cmds if isinstance(c, SendTill)]
    assert drawer and send.request.kind == "pay" and send.request.order_id == OID
    [t] = send.request.tenders
    assert (t.method, t.amount, t.tendered) == ("cash", 3800, 10000)
    assert send.request.shift_id == vm.shift["shift_id"]
    assert vm.screen == "done" and vm.view().big == "找零 ¥62.00"
    # the hub's answer
    vm.on_till_reply(TillReply(request_id=send.request.request_id, ok=True, order_id=OID, number=17, total=3800,
                               payment="paid", paid=3800, change=6200))
    assert vm.result_state == "recorded"
    tap(vm, "done")
    assert vm.screen == "orders" and not vm.unpaid()


def test_split_cash_then_card_is_one_request_with_both_tenders(clock):
    vm = opened(clock)
    unpaid(vm)
    tap(vm, f"order:{OID}")
    type_amount(vm, "20")
    tap(vm, "cash")
    assert vm.due == 1800 and vm.screen == "pay"
    assert [type(c) for c in vm.take_commands()] == [OpenDrawer]
    tap(vm, "card:card")
    [charge] = vm.take_commands()
    assert isinstance(charge, ChargeCard) and charge.amount == 1800 and charge.due == 3800
    assert [t.method for t in charge.draft.tenders] == ["cash"]
    assert charge.intent_id.startswith(vm.request_id)
    # the cashier cannot leave while the card is at the terminal
    tap(vm, "back")
    assert vm.screen == "pay"
    vm.on_card(PaymentUpdate(intent_id=charge.intent_id, order_id=vm.request_id, method="card", amount=1800,
                             state="approved", reason="", final=True, words=Words("", ""), actions=(),
                             auth_ref="A1"))
    [send] = [c for c in vm.take_commands() if isinstance(c, SendTill)]
    assert [(t.method, t.amount) for t in send.request.tenders] == [("cash", 2000), ("card", 1800)]
    assert send.request.tenders[1].reference == "A1" and send.request.request_id == charge.draft.request_id
    assert vm.screen == "done"


def test_declined_card_says_why_and_takes_nothing(clock):
    vm = opened(clock)
    unpaid(vm)
    tap(vm, f"order:{OID}", "card:qr")
    [charge] = vm.take_commands()
    vm.on_card(PaymentUpdate(intent_id=charge.intent_id, order_id=vm.request_id, method="qr", amount=3800,
                             state="declined", reason="declined", final=True,
                             words=Words("付款被拒绝。", "The payment was declined."), actions=()))
    assert vm.screen == "pay" and vm.due == 3800 and vm.notice == "付款被拒绝。"
    assert vm.take_commands() == []


def test_another_counter_paid_first(clock):
    vm = opened(clock)
    unpaid(vm)
    tap(vm, f"order:{OID}", "cash:exact")
    send = [c for c in vm.take_commands() if isinstance(c, SendTill)][0]
    entry = LedgerEntry(entry_id="x:1", order_id=OID, kind="payment", method="card", amount=3800, staff="Wang",
                        device="counter-2", at="2026-12-05T12:01:00+08:00")
    vm.on_till_reply(TillReply(request_id=send.request.request_id, ok=False, reason="already_paid",
                               message=REASONS["already_paid"], order_id=OID, payment="paid", paid=3800,
                               total=3800, entries=(entry,)))
    assert vm.result_state == "refused"
    said = vm.view().sub
    assert "已经付过款" in said and "counter-2" in said and "Wang" in said and "退还" in said


def test_a_payment_from_another_counter_tells_the_cashier_on_the_pay_screen(clock):
    vm = opened(clock, lang="en")
    unpaid(vm)
    tap(vm, f"order:{OID}")
    vm.on_payment_update(LedgerUpdate(order_id=OID, number=17, business_date="2026-12-05", payment="paid",
                                      paid=3800, total=3800, at="x", entries=(LedgerEntry(
                                          entry_id="r:1", order_id=OID, kind="payment", method="cash",
                                          amount=3800, device="counter-2", at="2026-12-05T12:01:00+08:00"),)))
    assert "already paid" in vm.notice and "counter-2" in vm.notice
    tap(vm, "cash:exact")
    assert vm.take_commands() == []


def test_refund_a_line_needs_a_reason_and_the_pin(clock):
    vm = opened(clock, lang="en")
    unpaid(vm)
    o = vm.orders[OID]
    o.payment, o.paid = "paid", 3800
    o.lines = [{"line": 1, "name_zh": "宫保鸡丁", "name_en": "Kung pao", "qty": 2, "line_total": 3000},
               {"line": 2, "name_zh": "奶茶", "name_en": "Milk tea", "qty": 1, "line_total": 800}]
    tap(vm, f"order:{OID}")
    assert vm.screen == "refund"
    tap(vm, "refund:")  # a fresh request
    tap(vm, "rl:1:+", "refund_go")
    assert vm.notice == "Choose a reason."
    tap(vm, "reason:quality", "refund_go")
    assert vm.notice == "The manager types the PIN."
    type_amount(vm, "2468")
    assert vm.view().big == "Manager PIN ●●●●"
    tap(vm, "refund_go")
    [send] = vm.take_commands()
    r = send.request
    assert r.kind == "refund" and [(x.line, x.qty) for x in r.lines] == [(1, 1)] and r.manager_pin == "2468"
    assert "Food quality" in r.reason
    vm.on_till_reply(TillReply(request_id=r.request_id, ok=False, reason="pin_wrong", message=REASONS["pin_wrong"],
                               order_id=OID, payment="paid", paid=3800, total=3800))
    assert vm.notice == REASONS["pin_wrong"].en and vm.screen == "refund"
    type_amount(vm, "1357")
    tap(vm, "refund_go")
    [send] = vm.take_commands()
    vm.on_till_reply(TillReply(request_id=send.request.request_id, ok=True, order_id=OID, payment="partly_refunded",
                               paid=2300, total=3800, entries=(LedgerEntry(
                                   entry_id="e", order_id=OID, kind="refund", method="cash", amount=1500,
                                   at="x"),)))
    assert vm.screen == "done" and vm.view().big == "Refunded ¥15.00"
    assert any(isinstance(c, OpenDrawer) for c in vm.take_commands())


def test_reprint_and_close_the_shift_with_over_short(clock):
    vm = opened(clock, lang="en")
    unpaid(vm)
    o = vm.orders[OID]
    o.payment, o.paid = "paid", 3800
    tap(vm, f"order:{OID}", "reprint")
    assert isinstance(vm.take_commands()[0], Reprint)
    tap(vm, "back", "shift_close")
    type_amount(vm, "537.5")
    tap(vm, "close")
    send = [c for c in vm.take_commands() if isinstance(c, SendTill)][0]
    assert send.request.kind == "shift_close" and send.request.counted_fen == 53750
    vm.on_till_reply(TillReply(request_id=send.request.request_id, ok=True, shift=ShiftSummary(
        shift_id=vm.shift["shift_id"], device="counter-1", opened_at="x", float_fen=50000, cash_in=3800,
        expected=53800, counted=53750, over_short=-50)))
    assert vm.view().big == "Short ¥0.50"
    tap(vm, "done")
    assert vm.shift is None and vm.screen == "shift"
    assert vm.view().big == "¥0.00"  # the next float starts empty, not at the drawer's count


def test_walk_in_order_uses_the_kiosks_cart_and_goes_to_payment(clock):
    vm = opened(clock, lang="en")
    vm.on_menu(MenuMessage(menu=load_sample_menu(), at="x"))
    tap(vm, "walkin", "walk:category:wok-dishes", "walk:item:kung-pao-chicken")
    assert vm.walkin.screen == "item"
    tap(vm, "walk:option:spice-hot", "walk:option:rice-white", "walk:add")
    assert vm.notice == "Added to your cart"  # the kiosk's own cart
    tap(vm, "walk:checkout")
    [cmd] = vm.take_commands()
    assert isinstance(cmd, SubmitWalkin) and cmd.order.channel == "counter"
    assert cmd.order.expected_total and vm.screen == "pay" and vm.due == cmd.order.expected_total
    vm.on_order_reply(OrderReply(order_id=cmd.order.order_id, status="accepted", number=41,
                                 total=cmd.order.expected_total, lines=(PricedLine(
                                     line=1, item_id="kung-pao-chicken", name_zh="宫保鸡丁", name_en="Kung pao",
                                     qty=1, unit_price=cmd.order.expected_total,
                                     line_total=cmd.order.expected_total, station="wok"),)))
    assert vm.order().number == 41 and vm.notice == ""


def test_a_provisional_receipt_is_found_by_its_code(clock):
    vm = opened(clock)
    vm.on_known(OrderInfo(order_id=OID, total=2600, provisional="C1-004", channel="counter"))
    for ch in "P20261205C1-004":
        vm.key(ch)
    vm.enter()
    assert vm.screen == "pay" and vm.selected == OID and vm.due == 2600


def test_refund_lines_cycle_and_void_with_refund(clock):
    vm = opened(clock, lang="en")
    unpaid(vm)
    o = vm.orders[OID]
    o.payment, o.paid = "paid", 3800
    o.lines = [{"line": 1, "name_zh": "宫保鸡丁", "name_en": "Kung pao", "qty": 2, "line_total": 3000}]
    tap(vm, f"order:{OID}", "rl:1:+", "rl:1:+")
    assert vm.refund_lines == {1: 2}
    tap(vm, "rl:1:+")  # past the quantity: none of it
    assert vm.refund_lines == {}
    tap(vm, "void", "reason:wrong_item", "key:1", "key:2", "key:3", "key:4", "refund_go")
    [send] = vm.take_commands()
    assert send.request.void and send.request.lines == () and send.request.manager_pin == "1234"


def test_a_cash_sale_with_the_hub_away_is_shown_kept_here(clock):
    vm = opened(clock, lang="en")
    unpaid(vm)
    vm.hub_reachable = False
    tap(vm, f"order:{OID}", "cash:exact")
    [send] = [c for c in vm.take_commands() if isinstance(c, SendTill)]
    assert send.request.offline and vm.result_state == "offline"
    assert vm.view().sub == "Saved here; sent to the hub as soon as it is back."
    assert vm.view().status.startswith("Store hub offline")
    # no refund without the hub (the manager's PIN is checked there)
    o = vm.orders[OID]
    tap(vm, "done", f"order:{OID}", "reason:quality", "key:1", "key:2", "key:3", "key:4", "refund_go")
    assert o.payment == "paid" and vm.notice == "The store hub is offline: refunds wait until it is back."
    assert vm.take_commands() == []


def test_walk_in_member_phone_asks_the_hub_and_the_order_carries_the_claim(clock):
    vm = opened(clock, lang="en", loyalty=True)
    vm.on_menu(MenuMessage(menu=load_sample_menu(), at="x"))
    tap(vm, "walkin", "walk:category:snacks", "walk:item:spring-rolls", "walk:add", "walk:checkout")
    assert vm.walkin.screen == "member"
    for k in "13800138000":
        tap(vm, f"walk:phone:key:{k}")
    tap(vm, "walk:phone:ok")
    [q] = vm.take_commands()
    assert isinstance(q, QueryBalance) and q.phone == "13800138000"
    assert vm.on_balance(LoyaltyBalance(query_id=q.query_id, ok=True, member="138****8000", balance=20,
                                        point_value_fen=10, max_share_pct=50, points_per_yuan=1.0))
    assert "138****8000" in vm.view().sub
    tap(vm, "walk:phone:continue")
    [cmd] = vm.take_commands()
    assert isinstance(cmd, SubmitWalkin) and cmd.order.loyalty.phone == "13800138000"
    assert vm.screen == "pay"


def listed(*entries, more=0) -> UnpaidOrders:
    return UnpaidOrders(business_date="2026-12-05", more=more, at="x", orders=tuple(
        UnpaidOrder(order_id=oid, number=n, channel="kiosk", service="takeaway", total=total, due=total,
                    state="accepted", provisional_number=prov) for oid, n, total, prov in entries))


def test_the_hubs_unpaid_list_is_the_counters_list_with_its_own_orders_not_yet_at_the_hub(clock):
    oid3, local = "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444"
    vm = opened(clock)
    unpaid(vm, OID, number=17)  # known before (counter.db, order/update); paid elsewhere since
    vm.on_known(OrderInfo(order_id=local, total=1200, channel="counter", provisional="C1-003"))  # offline here
    new = vm.on_unpaid(listed((OID2, 19, 2600, "K1-007"), (oid3, 18, 900, "")))
    assert [o.order_id for o in new] == [OID2, oid3]
    assert [o.order_id for o in vm.unpaid()] == [OID2, oid3, local]  # order 17 is off the hub's list
    unpaid(vm, OID, number=20)  # a new order announced after the list: listed until the next one
    assert OID in {o.order_id for o in vm.unpaid()}

    vm.enter()  # nothing typed: nothing found
    for ch in "p20261205k1-007":  # the kiosk's provisional receipt, scanned
        vm.key(ch)
    vm.enter()
    assert (vm.selected, vm.screen) == (OID2, "pay")
    tap(vm, "cash:exact")
    assert vm.orders[OID2].payment == "paid"  # recorded here, not yet at the hub
    vm.on_unpaid(listed((OID2, 19, 2600, "K1-007"), (oid3, 18, 900, "")))  # a list from before the payment
    assert vm.orders[OID2].payment == "paid" and OID2 not in {o.order_id for o in vm.unpaid()}

    # a list that leaves older orders out: those below it stay as the counter knows them
    paid_since = "55555555-5555-4555-8555-555555555555"
    unpaid(vm, paid_since, number=21)
    vm.on_unpaid(listed((OID, 20, 3800, ""), more=2))
    assert {o.order_id for o in vm.unpaid()} == {local, OID, oid3}  # 18 < 20: older than the list


def test_a_members_points_pay_part_and_the_request_names_the_member(clock):
    """Points as a tender: the phone typed on the keypad, the balance from
    the hub, as many whole points as are due (at most the balance), the
    rest in cash; the request carries the member's number for the hub."""
    vm = opened(clock, loyalty=True, phone_patterns=())
    unpaid(vm)
    tap(vm, f"order:{OID}", "points")
    for k in "13800138000":
        tap(vm, f"key:{k}")
    assert "13800138000" in vm.view().sub and vm.entry == ""
    tap(vm, "points_ok")
    [q] = vm.take_commands()
    assert isinstance(q, QueryBalance) and q.phone == "13800138000"
    assert vm.on_balance(LoyaltyBalance(query_id=q.query_id, ok=True, member="138****8000", balance=150,
                                        point_value_fen=10, max_share_pct=50, points_per_yuan=1.0))
    assert vm.due == 2300 and vm.screen == "pay"
    type_amount(vm, "23")
    tap(vm, "cash")
    [send] = [c for c in vm.take_commands() if isinstance(c, SendTill)]
    assert [(t.method, t.amount) for t in send.request.tenders] == [("points", 1500), ("cash", 2300)]
    assert send.request.member_phone == "13800138000" and send.request.tenders[0].reference == "138****8000"


def test_points_cannot_be_checked_without_the_hub_and_a_bad_number_is_refused(clock):
    vm = opened(clock, loyalty=True)
    unpaid(vm)
    tap(vm, f"order:{OID}", "points", "key:13", "points_ok")
    assert vm.take_commands() == [] and "手机号" in vm.notice
    tap(vm, "key:800138000", "points_ok")
    [q] = vm.take_commands()
    vm.balance_unavailable(q.query_id)
    assert vm.due == 3800 and vm.tenders == [] and "查不到积分" in vm.notice



def intent(clock, state="open", order_id=OID, merchant_no="RB111111111111111111111111101", left_s=240):
    from datetime import datetime, timezone

    at = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
    return PayIntent(merchant_no=merchant_no, order_id=order_id, number=17, table="7", attempt=1, amount=3800,
                     state=state, created_at=at(clock.t - 60), expires_at=at(clock.t + left_s), at=at(clock.t))


def test_an_order_paid_by_phone_at_the_table_is_shown_and_money_here_waits_for_a_second_tap(clock):
    vm = opened(clock)
    unpaid(vm)
    unpaid(vm, OID2, number=18)
    assert vm.on_pay_intent(intent(clock)) is True
    lines = [r.text for r in vm.view().rows]
    assert any(t.startswith("17 号") and "顾客手机支付中" in t for t in lines), lines
    assert not any(t.startswith("18 号") and "手机支付" in t for t in lines)
    tap(vm, f"order:{OID}")
    assert "顾客正在手机上付这一单（还剩 3:5" in vm.view().rows[1].text and vm.view().rows[1].style == "warn"
    type_amount(vm, "50")
    tap(vm, "cash")  # first: the cashier is told, nothing taken
    assert vm.screen == "pay" and not vm.tenders and not vm.take_commands()
    assert "顾客正在手机上付这一单" in vm.notice and "再按一次" in vm.notice
    tap(vm, "cash")  # again: taken
    [send] = [c for c in vm.take_commands() if isinstance(c, SendTill)]
    assert send.request.tenders[0].amount == 3800 and vm.screen == "done"


def test_a_card_tender_is_held_too_and_a_phone_payment_that_ends_or_expires_is_forgotten(clock):
    vm = opened(clock)
    unpaid(vm)
    vm.on_pay_intent(intent(clock))
    tap(vm, f"order:{OID}", "card:card")
    assert vm.charging is None and "手机" in vm.notice
    # the diner gave up on the phone: closed at the gateway; the card goes at once
    assert vm.on_pay_intent(intent(clock, state="closed")) is True
    assert vm.phone_paying(OID) is None
    tap(vm, "card:card")
    assert vm.charging is not None and [c for c in vm.take_commands() if isinstance(c, ChargeCard)]
    # another order's payment, expired: nothing is said of it once its time is up
    unpaid(vm, OID2, number=18)
    vm.on_pay_intent(intent(clock, order_id=OID2, merchant_no="RB222222222222222222222222201", left_s=30))
    assert vm.phone_paying(OID2) is not None
    clock.t += 31
    assert vm.phone_paying(OID2) is None and OID2 not in vm.phone_pays
    # a change of another attempt than the one open leaves it open
    vm.on_pay_intent(intent(clock, order_id=OID2, merchant_no="RB222222222222222222222222202"))
    assert vm.on_pay_intent(intent(clock, state="refund_due", order_id=OID2,
                                   merchant_no="RB222222222222222222222222201")) is False
    assert vm.phone_paying(OID2).merchant_no.endswith("02")


def test_open_phone_payments_are_remembered_bounded_and_never_for_longer_than_an_hour(clock):
    from counter.viewmodel import PHONE_PAY_MAX_S, PHONE_PAYS_KEPT

    vm = opened(clock)
    for k in range(PHONE_PAYS_KEPT + 100):
        vm.on_pay_intent(intent(clock, order_id=f"00000000-0000-4000-8000-{k:012d}", left_s=10 ** 9))
    assert len(vm.phone_pays) == PHONE_PAYS_KEPT
    assert all(t <= clock.t + PHONE_PAY_MAX_S for _, t in vm.phone_pays.values())
    clock.t += PHONE_PAY_MAX_S + 1
    assert vm.phone_paying("00000000-0000-4000-8000-000000000599") is None
