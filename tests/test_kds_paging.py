"""Card parts and pages of the kitchen screens, without a window: a ticket
longer than a card takes as many card slots as it needs, pages hold card
slots, and nothing is left off a page; the all-day panel's pages."""

from __future__ import annotations

import pytest

from kds.viewmodel import AllDayCount, AllDayPager, ExpoViewModel, StationViewModel
from kds.viewmodel.cards import pack
from tests.test_kds_viewmodel import FakeClock, T0, item, oid, ticket


def lines_measure(per_card: int):
    """A screen whose cards hold ``per_card`` item lines (the note takes one)."""
    def measure(items, note):
        n = len(items) + (1 if note else 0)
        return max(1, -(-n // per_card))
    return measure


def station(page_size=4, per_card=5):
    clock = FakeClock()
    vm = StationViewModel("wok", "kds-wok-1", clock=clock, page_size=page_size)
    vm.set_measure(lines_measure(per_card))
    return vm, clock


def test_pack_cuts_in_order_within_the_capacity():
    assert pack([], 10) == [(0, 0)]
    assert pack([3, 3, 3, 3], 10) == [(0, 3), (3, 4)]
    assert pack([4, 11, 2], 10) == [(0, 1), (1, 2), (2, 3)]  # one too tall has a part of its own
    assert pack([5, 5, 5], 10) == [(0, 2), (2, 3)]


def test_a_long_ticket_takes_the_card_slots_it_needs_and_stays_on_one_page():
    vm, clock = station()
    vm.on_ticket(ticket(1, accepted=T0))
    vm.on_ticket(ticket(2, accepted=T0 + 1, items=[item(k) for k in range(1, 13)]))  # 3 cards
    vm.on_ticket(ticket(3, accepted=T0 + 2))
    assert vm.slots_of(f"{oid(2)}:wok") == 3
    # 1 + 3 slots fill the first page of 4; #3 goes on the next
    assert [(t, first, n) for t, first, n in vm.page_parts()] == [(f"{oid(1)}:wok", 0, 1), (f"{oid(2)}:wok", 0, 3)]
    assert vm.pages == 2 and vm.hidden_count == 1
    vm.next_page()
    assert [v.number for v in vm.tickets_on_page()] == [3]


def test_a_ticket_that_fits_a_page_is_not_cut_between_pages():
    vm, _ = station()
    vm.on_ticket(ticket(1, accepted=T0))
    vm.on_ticket(ticket(2, accepted=T0 + 1))
    vm.on_ticket(ticket(3, accepted=T0 + 2, items=[item(k) for k in range(1, 16)]))  # 3 cards
    assert [v.number for v in vm.tickets_on_page()] == [1, 2]
    vm.next_page()
    assert vm.page_parts() == [(f"{oid(3)}:wok", 0, 3)]


def test_a_ticket_longer_than_a_page_goes_on_over_the_next_pages_none_left_off():
    vm, _ = station(page_size=4, per_card=2)
    vm.on_ticket(ticket(1, accepted=T0))
    vm.on_ticket(ticket(2, accepted=T0 + 1, items=[item(k) for k in range(1, 20)], note="birthday"))  # 10 cards
    vm.on_ticket(ticket(3, accepted=T0 + 2))
    seen = []
    for page in range(vm.pages):
        seen += vm.page_parts()
        vm.next_page()
    long = [(first, n) for tid, first, n in seen if tid == f"{oid(2)}:wok"]
    assert long == [(0, 3), (3, 4), (7, 3)]  # the rest of page 1, all of page 2, then page 3 with #3
    assert sum(n for _, n in long) == 10
    assert [tid for tid, _, _ in seen][-1] == f"{oid(3)}:wok"


def test_the_bump_bar_selects_and_bumps_a_long_ticket_once():
    vm, _ = station()
    vm.on_ticket(ticket(1, accepted=T0, items=[item(k) for k in range(1, 13)]))
    vm.on_ticket(ticket(2, accepted=T0 + 1, items=[item(k) for k in range(1, 13)]))
    assert vm.pages == 2
    vm.perform("select_next")
    vm.perform("select_next")  # the second ticket: on the second page
    assert vm.selected_ticket_id == f"{oid(2)}:wok" and vm.page == 1
    events = vm.perform("bump")
    assert [e.kind for e in events] == ["bump"] and vm.pages == 1
    assert [v.number for v in vm.tickets_on_page()] == [1]


def test_a_smaller_page_and_a_new_measure_lay_the_pages_out_again():
    vm, _ = station(page_size=4, per_card=5)
    for n in range(1, 5):
        vm.on_ticket(ticket(n, accepted=T0 + n))
    assert vm.pages == 1
    vm.set_page_size(2)
    assert vm.pages == 2
    vm.set_measure(lines_measure(1))  # a card holds one line now: each ticket one card still
    assert vm.pages == 2
    with pytest.raises(ValueError):
        vm.set_page_size(0)


def test_the_expo_pages_by_card_slots_too():
    clock = FakeClock()
    vm = ExpoViewModel("expo-1", clock=clock, page_size=3)
    vm.set_measure(lambda stations, note: 1 + sum(p.total_items for p in stations) // 4)
    vm.on_ticket(ticket(1, accepted=T0))
    vm.on_ticket(ticket(2, accepted=T0 + 1, items=[item(k) for k in range(1, 9)]))  # 3 slots
    assert vm.slots_of(oid(2)) == 3
    assert [r.number for r in vm.rows_on_page()] == [1] and vm.pages == 2


def test_the_all_day_panel_pages_and_says_how_many_rows_follow():
    rows = [AllDayCount(f"菜{k}", f"Dish {k}", 20 - k) for k in range(7)]
    bounds = pack([30] * 7, 100)  # three rows a page
    pager = AllDayPager()
    page = pager.view(rows, bounds)
    assert page.rows == tuple(rows[:3]) and page.more == 4 and (page.page, page.pages) == (0, 3)
    pager.turn(page.pages)
    pager.turn(page.pages)
    page = pager.view(rows, bounds)
    assert page.rows == (rows[6],) and page.more == 0
    pager.turn(page.pages)  # past the last page: back to the first
    assert pager.view(rows, bounds).page == 0
    # fewer rows later: the page is kept in range
    pager.page = 2
    assert pager.view(rows[:2], pack([30] * 2, 100)).page == 0


def test_the_tickets_after_the_page_are_the_ones_a_bump_brings_in():
    vm, _ = station(page_size=2)
    for n in range(1, 6):
        vm.on_ticket(ticket(n, accepted=T0 + n))
    assert [v.number for v in vm.tickets_on_page()] == [1, 2]
    assert [v.number for v in vm.tickets_after_page(2)] == [3, 4]
    vm.bump(f"{oid(1)}:wok")
    assert [v.number for v in vm.tickets_on_page()] == [2, 3]
    assert [v.number for v in vm.tickets_after_page(5)] == [4, 5]
    vm.next_page()
    assert [v.number for v in vm.tickets_on_page()] == [4, 5]
    assert vm.tickets_after_page(2) == []


class _Grid:
    """The little of a Kivy GridLayout that cardkit.place uses."""

    def __init__(self) -> None:
        self.children: list = []  # Kivy's order: the last added first

    def clear_widgets(self) -> None:
        self.children = []

    def add_widget(self, w) -> None:
        self.children.insert(0, w)


class _Card:
    def __init__(self, name: str) -> None:
        self.name, self.key, self.size, self.fills = name, None, None, 0


def _fill(card, key, *data):
    card.key = key
    card.fills += 1


def test_a_card_drawn_ahead_moves_onto_the_grid_with_its_part():
    from kds.cardkit import place, place_ahead

    grid, cards = _Grid(), [_Card(f"c{k}") for k in range(5)]
    spares = place(grid, cards, [("a",), ("b",), ("c",)], 3, _fill)
    assert [c.key for c in reversed(grid.children)] == ["a", "b", "c"]
    assert len(spares) == 2 and all(c not in grid.children for c in spares)
    place_ahead(spares, [("d",), ("e",), ("f",)], _fill, (300, 400))
    assert sorted(c.key for c in spares) == ["d", "e"] and all(c.size == (300, 400) for c in spares)
    d = next(c for c in spares if c.key == "d")
    # "a" is bumped: "d", drawn ahead, comes onto the grid as it is
    spares = place(grid, cards, [("b",), ("c",), ("d",)], 3, _fill)
    assert [c.key for c in reversed(grid.children)] == ["b", "c", "d"]
    assert list(reversed(grid.children))[2] is d
    assert {c.key for c in spares} == {"a", "e"}  # the bumped card is a spare now, "e" kept
    # fewer parts than slots: blank cards on the grid, never a card drawn ahead
    e = next(c for c in spares if c.key == "e")
    spares = place(grid, cards, [("b",)], 3, _fill)
    assert [c.key for c in reversed(grid.children)] == ["b", None, None]
    assert e in spares and e.key == "e"


def test_the_block_measure_stays_bounded_and_keeps_its_newest_heights():
    """The heights cache of kds.cardkit.Measure: at its limit the oldest
    quarter goes, not everything (a full clear had the next bump lay out
    every block of the page again)."""
    from kds.cardkit import Measure

    m = Measure(15)
    m.LIMIT = 8
    for k in range(20):
        m(f"line {k}", 200)
    assert len(m.cache) <= m.LIMIT
    assert ("line 19", 200) in m.cache and ("line 18", 200) in m.cache
    assert ("line 0", 200) not in m.cache
    h = m.cache[("line 19", 200)]
    assert h > 0 and m("line 19", 200) == h


def test_a_bumped_ticket_is_not_measured_again():
    """Only open tickets take room on the pages: the bump's frame lays out
    nothing for the ticket it removes; a recall measures it again."""
    measured = []
    vm, _ = station()
    vm.set_measure(lambda items, note: measured.append(tuple(i.done for i in items)) or 1)
    vm.on_ticket(ticket(1, items=[item(1), item(2, "Mapo Tofu", "麻婆豆腐")]))
    vm.tickets_on_page()
    measured.clear()
    vm.bump(vm.tickets_on_page()[0].ticket_id)
    assert measured == []
    vm.recall_last()
    assert measured and not any(measured[-1])


def test_tickets_after_the_next_page_are_measured_a_little_at_a_time_after_a_resize():
    """300 tickets from the cache, then the cards' size known: only those up
    to the page after the shown one are measured before the first frame;
    the page count is right once measure_more has come to the rest."""
    clock = FakeClock()
    vm = StationViewModel("wok", "kds-wok-1", clock=clock, page_size=4)
    for n in range(1, 301):  # restored before the screen knows its cards
        vm.on_ticket(ticket(n, accepted=T0 + n, items=[item(k) for k in range(1, 7)]))
    asked = []

    def two_cards(items, note):
        asked.append(len(items))
        return 2
    vm.set_measure(two_cards)
    assert vm.measuring and asked == []
    # the first page and the next, measured as they are laid out: 2 + 2 tickets of 2 cards
    assert [v.number for v in vm.tickets_on_page()] == [1, 2]
    assert 4 <= len(asked) <= 6 and vm.measuring
    # a bump meanwhile: the next ticket moves up, measured
    vm.next_page()
    assert [v.number for v in vm.tickets_on_page()] == [3, 4]
    vm.prev_page()
    while vm.measuring:
        vm.measure_more(0.001)
    assert len(asked) == 300  # each ticket measured once
    assert vm.pages == 150 and vm.slots_of(f"{oid(300)}:wok") == 2
    assert [v.number for v in vm.tickets_on_page()] == [1, 2]


def test_the_expo_measures_the_orders_after_the_next_page_a_little_at_a_time_too():
    clock = FakeClock()
    vm = ExpoViewModel("expo-1", clock=clock, page_size=3)
    for n in range(1, 61):
        vm.on_ticket(ticket(n, accepted=T0 + n, items=[item(k) for k in range(1, 5)]))
    asked = []

    def two_cards(stations, note):
        asked.append(sum(p.total_items for p in stations))
        return 2
    vm.set_measure(two_cards)
    assert vm.measuring and asked == []
    assert [r.number for r in vm.rows_on_page()] == [1]  # two cards of a page of three
    assert 3 <= len(asked) <= 5 and vm.measuring
    while vm.measuring:
        vm.measure_more(0.001)
    assert len(asked) == 60 and vm.pages == 60 and vm.slots_of(oid(60)) == 2
