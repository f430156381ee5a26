"""Orders: the hub prices every order itself, refuses bad ones with a precise
reason code, splits accepted orders into station tickets, and follows each
order through its states as the kitchen bumps and recalls."""

from __future__ import annotations

import re
import uuid

import msgspec
import pytest

from restobox.contract import OrderSubmit, Rejection, SubmitLine, SubmitPayment, TicketItem, Words
from restobox.data import load_sample_menu
from restobox.menu import Menu, MenuIndex
from restobox.orders import OrderProgress, price_order, split_by_station, tax_of, transition

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_sample_menu()


@pytest.fixture(scope="module")
def idx(menu) -> MenuIndex:
    return MenuIndex(menu)


def line(item_id: str, qty: int = 1, *modifiers: str, note: str = "") -> SubmitLine:
    return SubmitLine(item_id=item_id, qty=qty, modifiers=tuple(modifiers), note=note)


def order(*lines: SubmitLine, **kw) -> OrderSubmit:
    kw.setdefault("channel", "kiosk")
    kw.setdefault("service", "takeaway")
    return OrderSubmit(order_id=str(uuid.uuid4()), lines=tuple(lines), **kw)


# Lines that are valid on the sample menu.
KUNG_PAO = ("kung-pao-chicken", "spice-mild", "rice-white")  # 3200, wok
COMBO_KUNG_PAO = (
    "combo-kung-pao-chicken", "spice-mild", "combo-drink-lemon-tea", "combo-side-spring-rolls",
)  # 4200, wok + drinks + fryer
LEMON_TEA = ("lemon-tea", "sugar-full", "ice-normal")  # 1200, drinks


def ok(item_and_mods: tuple[str, ...], qty: int = 1) -> SubmitLine:
    return line(item_and_mods[0], qty, *item_and_mods[1:])


def refused(o: OrderSubmit, idx: MenuIndex, sold_out=frozenset(), **kw) -> Rejection:
    with pytest.raises(Rejection) as exc:
        price_order(o, idx, sold_out, **kw)
    r = exc.value
    # every refusal carries a sentence for the diner in both languages
    assert r.words.en.strip().endswith(".")
    assert CJK.search(r.words.zh)
    return r


# =========================================================================
# Tax
# =========================================================================


def test_inclusive_tax_is_the_tax_part_of_the_price():
    # 10600 fen including 6 % VAT is 10000 net + 600 tax
    assert tax_of(10600, 600, True) == 600


def test_exclusive_tax_is_the_rate_times_the_amount():
    assert tax_of(100, 600, False) == 6
    assert tax_of(10000, 600, False) == 600


def test_exclusive_tax_rounds_an_exact_half_up():
    assert tax_of(25, 600, False) == 2  # 1.5
    assert tax_of(75, 600, False) == 5  # 4.5


def test_exclusive_tax_rounds_below_half_down_and_above_half_up():
    assert tax_of(8, 600, False) == 0  # 0.48
    assert tax_of(9, 600, False) == 1  # 0.54


def test_inclusive_tax_rounds_an_exact_half_up():
    # 313 * 16 / 10016 = 0.5 exactly; 939 * 16 / 10016 = 1.5 exactly
    assert tax_of(313, 16, True) == 1
    assert tax_of(939, 16, True) == 2
    # 100 % tax included: half of the amount is tax
    assert tax_of(1, 10_000, True) == 1
    assert tax_of(3, 10_000, True) == 2


def test_inclusive_tax_rounds_to_the_nearest_fen():
    assert tax_of(7000, 600, True) == 396  # 396.23
    assert tax_of(88, 600, True) == 5  # 4.98
    assert tax_of(8, 600, True) == 0  # 0.45


def test_zero_rate_or_zero_amount_gives_zero_tax():
    assert tax_of(12345, 0, True) == 0
    assert tax_of(12345, 0, False) == 0
    assert tax_of(0, 600, True) == 0
    assert tax_of(0, 600, False) == 0


# =========================================================================
# Pricing
# =========================================================================


def test_priced_add_ons_are_added_to_the_unit_price_and_multiplied_by_qty(idx):
    o = order(line("kung-pao-chicken", 2, "spice-hot", "rice-brown", "addon-egg", "addon-meat"))
    p = price_order(o, idx)
    (pl,) = p.lines
    assert pl.unit_price == 3200 + 100 + 200 + 600
    assert pl.line_total == 2 * 4100
    assert [m.id for m in pl.modifiers] == ["spice-hot", "rice-brown", "addon-egg", "addon-meat"]
    assert [m.price_delta for m in pl.modifiers] == [0, 100, 200, 600]


def test_a_negative_price_delta_lowers_the_unit_price(idx):
    p = price_order(order(line("mapo-tofu", 1, "spice-none", "rice-none")), idx)
    assert p.lines[0].unit_price == 2400 - 100


def test_combo_drink_and_side_deltas_are_added_to_the_combo_price(idx):
    o = order(
        line("combo-kung-pao-chicken", 3, "spice-mild", "combo-drink-milk-tea", "combo-side-wings")
    )
    (pl,) = price_order(o, idx).lines
    assert pl.unit_price == 4200 + 300 + 400
    assert pl.line_total == 3 * 4900
    assert pl.station == "wok"


def test_priced_line_carries_names_station_note_and_allergens_of_item_and_options(idx):
    o = order(line("kung-pao-chicken", 1, "spice-mild", "rice-white", "addon-egg", note="less oil"))
    (pl,) = price_order(o, idx).lines
    assert (pl.name_zh, pl.name_en) == ("宫保鸡丁", "Kung Pao Chicken")
    assert pl.note == "less oil"
    assert pl.station == "wok"
    # the egg comes from the add-on, the rest from the dish; sorted, no duplicates
    assert pl.allergens == ("egg", "gluten", "peanut", "soy")


def test_inclusive_menu_total_is_the_sum_of_lines_and_subtotal_plus_tax_equals_total(idx, menu):
    assert menu.tax_inclusive
    o = order(
        line("kung-pao-chicken", 2, "spice-hot", "rice-brown", "addon-egg"),  # 2 x 3500
        ok(LEMON_TEA, 3),  # 3 x 1200
    )
    p = price_order(o, idx)
    assert p.total == 7000 + 3600
    assert p.tax == tax_of(10600, 600, True) == 600
    assert p.subtotal == 10000
    assert p.subtotal + p.tax == p.total
    assert p.currency == "CNY"
    assert [pl.line for pl in p.lines] == [1, 2]


def test_exclusive_tax_menu_adds_tax_on_top_of_the_subtotal(menu):
    exclusive = MenuIndex(msgspec.structs.replace(menu, tax_inclusive=False))
    o = order(line("kung-pao-chicken", 2, "spice-hot", "rice-brown", "addon-egg"))  # 7000
    p = price_order(o, exclusive)
    assert p.subtotal == 7000
    assert p.tax == 420
    assert p.total == 7420


def test_matching_expected_total_and_approved_payment_are_accepted(idx):
    o = order(
        ok(KUNG_PAO),
        expected_total=3200,
        payment=SubmitPayment(method="card", status="approved", amount=3200),
    )
    assert price_order(o, idx).total == 3200


# =========================================================================
# Rejections
# =========================================================================


def test_an_order_without_lines_is_refused_as_empty_order(idx):
    assert refused(order(), idx).reason == "empty_order"


def test_more_lines_than_the_limit_is_refused_as_too_many_lines(idx):
    assert price_order(order(*[ok(LEMON_TEA)] * 50), idx).total == 50 * 1200
    assert refused(order(*[ok(LEMON_TEA)] * 51), idx).reason == "too_many_lines"


def test_the_line_limit_can_be_lowered_by_the_hub_config(idx):
    assert refused(order(ok(LEMON_TEA), ok(LEMON_TEA)), idx, max_lines=1).reason == "too_many_lines"


@pytest.mark.parametrize("qty", [0, -1, 100, 10**30])
def test_a_quantity_outside_1_to_99_is_refused_as_bad_quantity(idx, qty):
    r = refused(order(ok(LEMON_TEA), ok(KUNG_PAO, qty)), idx)
    assert r.reason == "bad_quantity"
    assert r.extra["line"] == "2"


def test_a_quantity_of_99_is_accepted(idx):
    assert price_order(order(ok(LEMON_TEA, 99)), idx).total == 99 * 1200


def test_more_than_200_items_over_all_lines_is_refused_as_bad_quantity(idx):
    assert price_order(order(ok(LEMON_TEA, 99), ok(LEMON_TEA, 99), ok(LEMON_TEA, 2)), idx)
    r = refused(order(ok(LEMON_TEA, 99), ok(LEMON_TEA, 99), ok(LEMON_TEA, 3)), idx)
    assert r.reason == "bad_quantity"
    assert r.extra["line"] == "3"


def test_an_item_not_on_the_menu_is_refused_as_unknown_item(idx):
    r = refused(order(line("peking-duck", 1)), idx)
    assert r.reason == "unknown_item"
    assert r.extra["item_id"] == "peking-duck"


def test_a_sold_out_item_is_refused_as_item_unavailable(idx):
    o = order(ok(KUNG_PAO))
    r = refused(o, idx, sold_out={"kung-pao-chicken"})
    assert r.reason == "item_unavailable"
    # the same order is fine when something else is sold out
    assert price_order(o, idx, {"mapo-tofu"}).total == 3200


def test_an_item_marked_unavailable_in_the_menu_is_refused(menu):
    items = tuple(
        msgspec.structs.replace(i, available=False) if i.id == "lemon-tea" else i for i in menu.items
    )
    idx = MenuIndex(msgspec.structs.replace(menu, items=items))
    assert refused(order(ok(LEMON_TEA)), idx).reason == "item_unavailable"


def test_an_option_not_on_the_menu_is_refused_as_unknown_modifier(idx):
    r = refused(order(line("kung-pao-chicken", 1, "spice-mild", "rice-white", "extra-gold")), idx)
    assert r.reason == "unknown_modifier"
    assert r.extra["modifier"] == "extra-gold"


def test_an_option_of_another_items_group_is_refused_as_modifier_not_allowed(idx):
    # sugar level belongs to drinks, not to a wok dish
    r = refused(order(line("kung-pao-chicken", 1, "spice-mild", "rice-white", "sugar-less")), idx)
    assert r.reason == "modifier_not_allowed"
    assert r.extra["modifier"] == "sugar-less"


def test_the_same_option_twice_is_refused_as_modifier_duplicate(idx):
    r = refused(
        order(line("kung-pao-chicken", 1, "spice-mild", "rice-white", "addon-egg", "addon-egg")), idx
    )
    assert r.reason == "modifier_duplicate"
    assert r.extra["modifier"] == "addon-egg"


def test_a_required_group_not_chosen_is_refused_as_modifier_missing(idx):
    r = refused(order(line("kung-pao-chicken", 1, "spice-mild")), idx)  # no rice choice
    assert r.reason == "modifier_missing"
    assert r.extra["group"] == "rice-choice"


def test_a_combo_without_its_drink_is_refused_as_modifier_missing(idx):
    r = refused(order(line("combo-kung-pao-chicken", 1, "spice-mild", "combo-side-fries")), idx)
    assert r.reason == "modifier_missing"
    assert r.extra["group"] == "combo-drink"


def test_two_spice_levels_are_refused_as_modifier_too_many(idx):
    r = refused(order(line("kung-pao-chicken", 1, "spice-mild", "spice-hot", "rice-white")), idx)
    assert r.reason == "modifier_too_many"
    assert r.extra["group"] == "spice"


def test_a_sold_out_option_is_refused_as_modifier_unavailable(idx):
    o = order(line("combo-kung-pao-chicken", 1, "spice-mild", "combo-drink-milk-tea", "combo-side-fries"))
    r = refused(o, idx, sold_out={"combo-drink-milk-tea"})
    assert r.reason == "modifier_unavailable"
    assert r.extra["modifier"] == "combo-drink-milk-tea"


def test_an_expected_total_one_fen_off_is_refused_as_price_mismatch(idx):
    for shown in (3199, 3201):
        r = refused(order(ok(KUNG_PAO), expected_total=shown), idx)
        assert r.reason == "price_mismatch"
        assert r.extra == {"expected": str(shown), "total": "3200"}


def test_an_approved_payment_of_the_wrong_amount_is_refused_as_payment_mismatch(idx):
    pay = SubmitPayment(method="card", status="approved", amount=3100)
    r = refused(order(ok(KUNG_PAO), payment=pay), idx)
    assert r.reason == "payment_mismatch"
    assert r.extra == {"paid": "3100", "total": "3200"}


def test_an_unpaid_payment_amount_is_not_checked(idx):
    pay = SubmitPayment(method="counter", status="unpaid", amount=1)
    assert price_order(order(ok(KUNG_PAO), payment=pay), idx).total == 3200


def test_a_qr_dine_in_order_without_a_table_is_refused_as_table_required(idx):
    r = refused(order(ok(KUNG_PAO), channel="qr", service="dine_in"), idx)
    assert r.reason == "table_required"
    # with a table, or from a kiosk, or as takeaway, it is fine
    assert price_order(order(ok(KUNG_PAO), channel="qr", service="dine_in", table="T12"), idx)
    assert price_order(order(ok(KUNG_PAO), channel="kiosk", service="dine_in"), idx)
    assert price_order(order(ok(KUNG_PAO), channel="qr", service="takeaway"), idx)


# =========================================================================
# Station tickets
# =========================================================================


def _tickets(idx, *lines: SubmitLine) -> dict[str, list[TicketItem]]:
    return split_by_station(price_order(order(*lines), idx).lines)


def test_combo_main_stays_at_its_own_station(idx):
    t = _tickets(idx, ok(COMBO_KUNG_PAO))
    assert sorted(t) == ["drinks", "fryer", "wok"]
    (main,) = t["wok"]
    assert main.item_id == "combo-kung-pao-chicken"
    assert main.part_of == ""


def test_combo_drink_goes_to_the_drinks_station_as_part_of_the_combo(idx):
    t = _tickets(idx, ok(LEMON_TEA), line("combo-kung-pao-chicken", 2, "spice-mild",
                                            "combo-drink-milk-tea", "combo-side-wings"))
    drinks = t["drinks"]
    assert [(i.line, i.item_id, i.part_of) for i in drinks] == [
        (1, "lemon-tea", ""),
        (2, "combo-drink-milk-tea", "Kung Pao Chicken Combo"),
    ]
    assert drinks[1].qty == 2
    assert (drinks[1].name_zh, drinks[1].name_en) == ("珍珠奶茶", "Bubble milk tea")


def test_combo_side_goes_to_the_fryer_station_as_part_of_the_combo(idx):
    t = _tickets(idx, line("combo-kung-pao-chicken", 2, "spice-mild",
                           "combo-drink-milk-tea", "combo-side-wings"))
    (side,) = t["fryer"]
    assert (side.line, side.item_id, side.qty, side.part_of) == (
        1, "combo-side-wings", 2, "Kung Pao Chicken Combo",
    )


def test_combo_part_made_at_the_combos_own_station_is_not_marked_part_of(idx):
    # the grilled-chicken combo is made at the fryer, and so is its side
    t = _tickets(idx, line("combo-grilled-chicken-rice", 1, "spice-mild",
                           "combo-drink-lemon-tea", "combo-side-fries"))
    assert [(i.item_id, i.part_of) for i in t["fryer"]] == [
        ("combo-grilled-chicken-rice", ""),
        ("combo-side-fries", ""),
    ]
    assert [(i.item_id, i.part_of) for i in t["drinks"]] == [
        ("combo-drink-lemon-tea", "Grilled Chicken Rice Combo"),
    ]


def test_options_without_a_station_stay_on_the_main_line_as_words(idx):
    t = _tickets(idx, line("combo-kung-pao-chicken", 1, "spice-hot", "hold-peanuts",
                           "combo-drink-lemon-tea", "combo-side-fries"))
    (main,) = t["wok"]
    assert main.modifiers == (Words("特辣", "Extra hot"), Words("不要花生", "No peanuts"))


def test_ticket_lines_carry_allergens_note_and_qty(idx):
    t = _tickets(idx, line("combo-kung-pao-chicken", 3, "spice-mild", "combo-drink-milk-tea",
                           "combo-side-fries", note="no msg"))
    (main,) = t["wok"]
    # the dish's own allergens plus the milk of the milk tea
    assert main.allergens == ("gluten", "milk", "peanut", "soy")
    assert main.note == "no msg"
    assert main.qty == 3
    assert main.state == "open"
    # the combo's milk tea tells the drinks station about its milk
    (drink,) = t["drinks"]
    assert drink.item_id == "combo-drink-milk-tea" and "milk" in drink.allergens


def test_items_of_different_stations_are_split_and_keep_their_line_numbers(idx):
    t = _tickets(idx, ok(LEMON_TEA), ok(KUNG_PAO), line("spring-rolls", 2))
    assert {s: [(i.line, i.item_id) for i in items] for s, items in t.items()} == {
        "drinks": [(1, "lemon-tea")],
        "wok": [(2, "kung-pao-chicken")],
        "fryer": [(3, "spring-rolls")],
    }


# =========================================================================
# The order state machine
# =========================================================================

ALLOWED = {
    ("submitted", "accept"): "accepted",
    ("submitted", "reject"): "rejected",
    ("accepted", "start"): "in_progress",
    ("accepted", "all_done"): "ready",
    ("accepted", "void"): "voided",
    ("in_progress", "all_done"): "ready",
    ("in_progress", "reopen"): "in_progress",
    ("in_progress", "void"): "voided",
    ("ready", "complete"): "completed",
    ("ready", "reopen"): "in_progress",
    ("ready", "void"): "voided",
    ("completed", "recall"): "ready",
}
STATES = ["submitted", "accepted", "in_progress", "ready", "completed", "rejected", "voided"]
EVENTS = sorted({e for _, e in ALLOWED})


@pytest.mark.parametrize(("state", "event"), sorted(ALLOWED))
def test_allowed_transition_leads_to_the_documented_state(state, event):
    assert transition(state, event) == ALLOWED[(state, event)]


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in STATES for e in EVENTS if (s, e) not in ALLOWED],
)
def test_any_other_transition_is_refused_as_bad_transition(state, event):
    with pytest.raises(Rejection) as exc:
        transition(state, event)
    assert exc.value.reason == "bad_transition"
    assert exc.value.extra == {"state": state}


def test_complete_from_accepted_is_refused():
    with pytest.raises(Rejection, match="bad_transition"):
        transition("accepted", "complete")


@pytest.mark.parametrize("state", ["voided", "rejected"])
def test_nothing_leaves_a_final_state(state):
    for event in EVENTS + ["accept", "bogus"]:
        with pytest.raises(Rejection) as exc:
            transition(state, event)
        assert exc.value.reason == "bad_transition"


def test_an_unknown_state_is_refused_as_bad_transition():
    with pytest.raises(Rejection) as exc:
        transition("lost", "accept")
    assert exc.value.reason == "bad_transition"


# =========================================================================
# OrderProgress: the order's state follows its stations
# =========================================================================


@pytest.fixture
def progress(idx) -> OrderProgress:
    """An accepted order: wok lines 1 and 2, drinks line 3."""
    tickets = _tickets(idx, ok(KUNG_PAO), line("mapo-tofu", 1, "spice-mild", "rice-white"), ok(LEMON_TEA))
    assert {s: [i.line for i in items] for s, items in tickets.items()} == {"wok": [1, 2], "drinks": [3]}
    return OrderProgress("accepted", tickets)


def _states(p: OrderProgress, station: str) -> list[str]:
    return [i.state for i in p.tickets[station]]


def test_bumping_one_line_puts_the_order_in_progress(progress):
    assert progress.bump_line("wok", 1) is True
    assert progress.state == "in_progress"
    assert _states(progress, "wok") == ["done", "open"]
    assert _states(progress, "drinks") == ["open"]


def test_bumping_one_station_puts_the_order_in_progress_and_marks_that_station_done(progress):
    assert progress.bump("drinks") is True
    assert progress.state == "in_progress"
    assert [(s.station, s.state) for s in progress.statuses()] == [("drinks", "done"), ("wok", "open")]


def test_bumping_every_station_makes_the_order_ready(progress):
    progress.bump("wok")
    assert progress.state == "in_progress"
    progress.bump("drinks")
    assert progress.state == "ready"
    assert progress.all_done()


def test_bumping_every_line_one_by_one_makes_the_order_ready(progress):
    progress.bump_line("wok", 1)
    progress.bump_line("wok", 2)
    assert progress.state == "in_progress"
    progress.bump_line("drinks", 3)
    assert progress.state == "ready"


def test_an_order_at_a_single_station_goes_from_accepted_straight_to_ready(idx):
    p = OrderProgress("accepted", _tickets(idx, ok(LEMON_TEA)))
    assert p.bump("drinks") is True
    assert p.state == "ready"


def test_recalling_a_station_of_a_ready_order_puts_it_back_in_progress(progress):
    progress.bump("wok")
    progress.bump("drinks")
    assert progress.recall("wok") is True
    assert progress.state == "in_progress"
    assert _states(progress, "wok") == ["open", "open"]
    assert _states(progress, "drinks") == ["done"]


def test_recalling_one_line_reopens_only_that_line(progress):
    progress.bump("wok")
    progress.bump("drinks")
    assert progress.recall("wok", 2) is True
    assert _states(progress, "wok") == ["done", "open"]
    assert progress.state == "in_progress"


def test_recalling_a_line_that_is_not_at_the_station_is_refused_as_bad_line(progress):
    with pytest.raises(Rejection) as exc:
        progress.recall("wok", 3)
    assert exc.value.reason == "bad_line"


def test_recalling_an_open_station_changes_nothing(progress):
    assert progress.recall("wok") is False
    assert progress.state == "accepted"


def test_expo_completes_a_ready_order(progress):
    progress.bump("wok")
    progress.bump("drinks")
    progress.complete()
    assert progress.state == "completed"


@pytest.mark.parametrize("bumped", [(), ("wok",)])
def test_expo_cannot_complete_an_order_that_is_not_ready(progress, bumped):
    for station in bumped:
        progress.bump(station)
    before = progress.state
    with pytest.raises(Rejection) as exc:
        progress.complete()
    assert exc.value.reason == "bad_transition"
    assert progress.state == before


def test_recalling_a_completed_order_makes_it_ready_again(progress):
    progress.bump("wok")
    progress.bump("drinks")
    progress.complete()
    progress.recall_completed()
    assert progress.state == "ready"


def test_recall_completed_of_an_order_that_is_not_completed_is_refused(progress):
    with pytest.raises(Rejection) as exc:
        progress.recall_completed()
    assert exc.value.reason == "bad_transition"


@pytest.mark.parametrize("bumped", [(), ("wok",), ("wok", "drinks")])
def test_an_open_order_can_be_voided(progress, bumped):
    for station in bumped:
        progress.bump(station)
    assert progress.state in ("accepted", "in_progress", "ready")
    progress.void()
    assert progress.state == "voided"


def test_a_completed_order_cannot_be_voided(progress):
    progress.bump("wok")
    progress.bump("drinks")
    progress.complete()
    with pytest.raises(Rejection) as exc:
        progress.void()
    assert exc.value.reason == "bad_transition"
    assert progress.state == "completed"


def test_bumping_a_station_without_items_in_the_order_is_refused_as_not_on_station(progress):
    with pytest.raises(Rejection) as exc:
        progress.bump("fryer")
    assert exc.value.reason == "not_on_station"
    with pytest.raises(Rejection) as exc:
        progress.recall("fryer")
    assert exc.value.reason == "not_on_station"


def test_item_bump_of_a_line_made_at_another_station_is_refused_as_bad_line(progress):
    with pytest.raises(Rejection) as exc:
        progress.bump_line("wok", 3)  # line 3 is the lemon tea, at drinks
    assert exc.value.reason == "bad_line"
    assert _states(progress, "wok") == ["open", "open"]
    assert progress.state == "accepted"


def test_bumping_a_voided_order_is_refused_as_bad_transition(progress):
    progress.void()
    for act in (lambda: progress.bump("wok"), lambda: progress.bump_line("wok", 1),
                lambda: progress.recall("wok")):
        with pytest.raises(Rejection) as exc:
            act()
        assert exc.value.reason == "bad_transition"
    assert _states(progress, "wok") == ["open", "open"]


def test_bumping_a_completed_order_is_refused_as_bad_transition(progress):
    progress.bump("wok")
    progress.bump("drinks")
    progress.complete()
    with pytest.raises(Rejection) as exc:
        progress.recall("wok")
    assert exc.value.reason == "bad_transition"


def test_bumping_twice_changes_nothing_the_second_time(progress):
    assert progress.bump("wok") is True
    assert progress.bump("wok") is False
    assert progress.state == "in_progress"
    assert progress.bump_line("drinks", 3) is True
    assert progress.bump_line("drinks", 3) is False
    assert progress.state == "ready"


def test_statuses_report_each_station_done_or_open_and_acked(idx):
    p = OrderProgress("accepted", _tickets(idx, ok(KUNG_PAO), ok(LEMON_TEA)), acked={"wok"})
    p.bump("drinks")
    assert [(s.station, s.state, s.acked) for s in p.statuses()] == [
        ("drinks", "done", False),
        ("wok", "open", True),
    ]
