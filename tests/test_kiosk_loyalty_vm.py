"""The kiosk's phone number screen as a view model (no window): the number
pad, a bad number's message, the balance from the hub, a redemption priced
by the hub's rules, what happens without the hub, and the masked number on
every view. Exact command lists, as in test_kiosk_viewmodel.py."""

from __future__ import annotations

from restobox.contract import REASONS, LoyaltyBalance, LoyaltyClaim, LoyaltyResult, OrderReply
from restobox.orders import price_order
from kiosk.payment import CounterPayment
from kiosk.viewmodel import MemberView, QueryBalance, SubmitOrder
from tests.test_kiosk_viewmodel import (  # noqa: F401  (clock is a fixture)
    MENU,
    FakeClock,
    MenuIndex,
    add,
    clock,
    make_vm,
    rejected,
    run_payment,
    tap,
    to_menu,
)

PHONE = "13812345678"
IDX = MenuIndex(MENU)


def to_member(vm, clock: FakeClock) -> None:
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken", qty=2)  # ¥64.00
    tap(vm, clock, "cart", "checkout")
    assert vm.screen == "member"


def type_phone(vm, clock: FakeClock, phone: str) -> None:
    tap(vm, clock, *(f"phone:key:{d}" for d in phone))


def balance(q: QueryBalance, points: int, **kw) -> LoyaltyBalance:
    return LoyaltyBalance(query_id=q.query_id, ok=True, member="138****5678", balance=points, point_value_fen=10,
                          max_share_pct=50, points_per_yuan=5.0, min_redeem_points=100, **kw)


def test_the_phone_screen_comes_before_paying_and_can_be_skipped(clock) -> None:
    vm = make_vm(clock, loyalty=True)
    to_member(vm, clock)
    v = vm.view()
    assert isinstance(v, MemberView) and v.phase == "entry" and [b.id for b in v.keys][-1] == "phone:del"
    assert not v.ok.enabled and v.skip.enabled
    tap(vm, clock, "phone:skip")
    assert vm.screen == "pay" and vm.take_commands() == []
    tap(vm, clock, "pay:counter")
    run_payment(vm, CounterPayment())
    (cmd,) = vm.take_commands()
    assert isinstance(cmd, SubmitOrder) and cmd.order.loyalty is None


def test_a_bad_phone_number_gets_a_clear_message_and_asks_nothing(clock) -> None:
    vm = make_vm(clock, loyalty=True)
    to_member(vm, clock)
    for bad in ("12345678901", "1381234567", "23812345678", "138123456789"):
        type_phone(vm, clock, bad)
        tap(vm, clock, "phone:ok")
        assert vm.screen == "member" and vm.member_phase == "entry"
        assert vm.notice == "That number is not valid: please enter your 11-digit mobile number (starting with 1)."
        assert vm.take_commands() == []
        for _ in bad:
            tap(vm, clock, "phone:del")
    tap(vm, clock, "lang:zh")
    type_phone(vm, clock, "1234")
    tap(vm, clock, "phone:ok")
    assert vm.notice == "手机号码不正确：请输入 11 位手机号（1 开头）。"
    # the hub's own check says the same (a number another store's pattern allowed)
    vm2 = make_vm(clock, loyalty=True, phone_patterns=(r"852\d{8}",))
    to_member(vm2, clock)
    type_phone(vm2, clock, "85212345678")
    tap(vm2, clock, "phone:ok")
    (q,) = vm2.take_commands()
    assert vm2.on_balance(LoyaltyBalance(query_id=q.query_id, ok=False, reason="phone_invalid",
                                         message=REASONS["phone_invalid"]))
    assert vm2.member_phase == "entry" and vm2.notice.startswith("That number is not valid")


def test_the_balance_and_a_redemption_priced_by_the_hubs_rules(clock) -> None:
    vm = make_vm(clock, loyalty=True)
    to_member(vm, clock)
    type_phone(vm, clock, PHONE)
    assert vm.view().phone == "138****5678"  # masked as it is typed
    tap(vm, clock, "phone:ok")
    assert vm.take_commands() == [QueryBalance(vm._query_id, PHONE)]
    assert vm.view().phase == "checking"
    assert vm.on_balance(balance(QueryBalance(vm._query_id, PHONE), 1041))
    v = vm.view()
    assert v.balance == "Member 138****5678: 1041 points" and v.phone == "138****5678"
    # at most half of ¥64.00 at ¥0.10 a point: 320 points
    assert v.redeem.label == "Use 320 points: ¥32.00 off" and v.redeem.enabled
    tap(vm, clock, "phone:redeem")
    assert vm.redeem == 320 and vm.view().total == "Total ¥32.00"
    tap(vm, clock, "phone:continue")
    assert vm.screen == "pay" and vm.pay_total == 3200
    tap(vm, clock, "pay:counter")
    run_payment(vm, CounterPayment())
    (cmd,) = vm.take_commands()
    o = cmd.order
    assert o.loyalty == LoyaltyClaim(phone=PHONE, redeem_points=320) and o.expected_total == 3200
    assert price_order(o, IDX, discount=3200).total == 3200
    p = price_order(o, IDX, discount=3200)
    vm.on_reply(OrderReply(order_id=o.order_id, status="accepted", number=7, business_date="2026-11-22",
                           subtotal=p.subtotal, tax=p.tax, total=p.total, lines=p.lines,
                           loyalty=LoyaltyResult(member="138****5678", earned=16, redeemed=320, discount=3200,
                                                 balance=737)))
    v = vm.view()
    assert v.points == "Member 138****5678: +16 points, balance 737" and v.total == "Total ¥32.00"
    assert PHONE not in repr(v)


def test_points_spent_at_another_kiosk_send_the_diner_back_to_choose_again(clock) -> None:
    vm = make_vm(clock, loyalty=True)
    to_member(vm, clock)
    type_phone(vm, clock, PHONE)
    tap(vm, clock, "phone:ok")
    (q,) = vm.take_commands()
    vm.on_balance(balance(q, 500))
    tap(vm, clock, "phone:redeem", "phone:continue", "pay:counter")
    run_payment(vm, CounterPayment())
    (cmd,) = vm.take_commands()
    assert vm.on_reply(rejected(cmd.order, "points_insufficient", balance="0"))
    assert vm.screen == "member" and vm.member_phase == "entry" and vm.redeem == 0
    assert vm.notice == REASONS["points_insufficient"].en
    tap(vm, clock, "phone:ok")  # the number is still there: ask again
    (q2,) = vm.take_commands()
    assert q2.phone == PHONE and q2.query_id != q.query_id


def test_without_the_hub_points_are_earned_later_and_none_can_be_used(clock) -> None:
    vm = make_vm(clock, loyalty=True)
    vm.hub_reachable = False
    to_member(vm, clock)
    type_phone(vm, clock, PHONE)
    tap(vm, clock, "phone:ok")
    assert vm.take_commands() == []  # nobody to ask
    v = vm.view()
    assert v.phase == "unavailable" and v.redeem is None and v.go.enabled
    assert v.message.startswith("The store network is down") and "cannot be used" in v.message
    tap(vm, clock, "lang:zh")
    assert "现在不能使用积分" in vm.view().message
    # a query that times out says the same
    vm2 = make_vm(clock, loyalty=True)
    to_member(vm2, clock)
    type_phone(vm2, clock, PHONE)
    tap(vm2, clock, "phone:ok")
    (q,) = vm2.take_commands()
    vm2.balance_unavailable(q.query_id)
    assert vm2.view().phase == "unavailable"
    assert not vm2.on_balance(balance(q, 900))  # too late: not used
    # the order still carries the number: it earns when it reaches the hub
    tap(vm, clock, "phone:continue", "pay:counter")
    run_payment(vm, CounterPayment())
    (cmd,) = vm.take_commands()
    assert cmd.order.loyalty == LoyaltyClaim(phone=PHONE, redeem_points=0)
    vm.submit_offline("K1-001")
    v = vm.view()
    assert v.provisional and v.points == "会员 138****5678：积分将在订单送达门店后计入"
    assert PHONE not in repr(v)


def test_a_kiosk_without_loyalty_goes_straight_to_paying(clock) -> None:
    vm = make_vm(clock)
    to_menu(vm, clock)
    add(vm, clock, "kung-pao-chicken")
    tap(vm, clock, "cart", "checkout")
    assert vm.screen == "pay"


def test_a_key_typed_twice_quickly_counts_twice_a_doubled_touch_once(clock) -> None:
    from kiosk.viewmodel.navigator import KEY_GUARD_S

    vm = make_vm(clock, loyalty=True, tap_guard_s=0.3)
    to_member(vm, clock)
    tap(vm, clock, "phone:key:1", "phone:key:3", "phone:key:8")
    clock.advance(0.15)  # "00" typed fast: both count
    assert vm.tap("phone:key:0")
    clock.advance(0.15)
    assert vm.tap("phone:key:0")
    clock.advance(KEY_GUARD_S / 4)  # the same touch again, from a second input provider
    assert not vm.tap("phone:key:0")
    assert vm.duplicate_taps == 1
    assert vm.phone_typed == "13800"
