"""The kitchen display's view models, without a window: a fake clock, real
contract structs in, real StationEvents out."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import msgspec
import pytest

from restobox import contract
from restobox.contract import Board, OrderUpdate, StationEvent, StationStatus, StationTicket, TicketItem, Words, topics
from kds.viewmodel import (
    BANNER_CONNECTING,
    BANNER_HUB_LOST,
    BANNER_LINK_LOST,
    ActionRefused,
    BoardViewModel,
    BumpBarMap,
    ExpoViewModel,
    StationViewModel,
    Thresholds,
    all_day_counts,
)

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def oid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def item(line: int = 1, en: str = "Kung Pao Chicken", zh: str = "宫保鸡丁", qty: int = 1, state: str = "open",
         **kw) -> TicketItem:
    return TicketItem(line=line, item_id=en.lower().replace(" ", "-"), name_zh=zh, name_en=en, qty=qty,
                      state=state, **kw)


def ticket(n: int, station: str = "wok", *, accepted: float = T0, items=None, state: str = "open",
           revision: int = 1, service: str = "takeaway", table: str | None = None, note: str = "") -> StationTicket:
    return StationTicket(
        ticket_id=f"{oid(n)}:{station}", order_id=oid(n), number=n, station=station, channel="kiosk",
        service=service, table=table, items=tuple(items if items is not None else [item()]), note=note,
        accepted_at=iso(accepted), state=state, revision=revision,
    )


def done(t: StationTicket, *, lines=None, revision: int | None = None) -> StationTicket:
    """The hub's next copy of ``t`` with ``lines`` (all if None) done."""
    items = tuple(
        TicketItem(**{**{f: getattr(i, f) for f in i.__struct_fields__},
                      "state": "done" if lines is None or i.line in lines else i.state})
        for i in t.items
    )
    state = "done" if all(i.state == "done" for i in items) else "open"
    return StationTicket(**{**{f: getattr(t, f) for f in t.__struct_fields__},
                            "items": items, "state": state, "revision": revision or t.revision + 1})


def reopened(t: StationTicket, *, revision: int | None = None) -> StationTicket:
    items = tuple(TicketItem(**{**{f: getattr(i, f) for f in i.__struct_fields__}, "state": "open"}) for i in t.items)
    return StationTicket(**{**{f: getattr(t, f) for f in t.__struct_fields__},
                            "items": items, "state": "open", "revision": revision or t.revision + 1})


def voided(t: StationTicket) -> StationTicket:
    return StationTicket(**{**{f: getattr(t, f) for f in t.__struct_fields__},
                            "state": "voided", "revision": t.revision + 1})


def station(clock: FakeClock, **kw) -> StationViewModel:
    kw.setdefault("page_size", 4)
    vm = StationViewModel("wok", "kds-wok-1", clock=clock, thresholds=kw.pop("thresholds", Thresholds()), **kw)
    vm.on_link(True)
    return vm


def numbers(vm: StationViewModel) -> list[int]:
    return [v.number for v in vm.tickets_on_page()]


def one_event(events: list[StationEvent]) -> StationEvent:
    assert len(events) == 1
    ev = events[0]
    # What the app publishes must pass the hub's strict decoding.
    assert contract.decode(contract.encode(ev), StationEvent) == ev
    return ev


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# =========================================================== timers, colours


@pytest.mark.parametrize("elapsed, colour, text", [
    (299, "normal", "4:59"), (300, "warning", "5:00"), (479, "warning", "7:59"), (480, "late", "8:00"),
])
def test_timer_colour_changes_exactly_at_the_thresholds(clock, elapsed, colour, text) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1, accepted=T0))
    clock.advance(elapsed)
    [v] = vm.tickets_on_page()
    assert (v.elapsed_s, v.elapsed_text, v.colour) == (elapsed, text, colour)


def test_timer_counts_from_the_hubs_accepted_time_not_from_arrival(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1, accepted=T0 - 65))
    [v] = vm.tickets_on_page()
    assert (v.elapsed_s, v.elapsed_text) == (65, "1:05")


def test_new_ticket_is_highlighted_for_the_first_seconds_only(clock) -> None:
    vm = station(clock, new_highlight_s=10)
    vm.on_ticket(ticket(1))
    [v] = vm.tickets_on_page()
    assert (v.is_new, v.colour) == (True, "new")
    clock.advance(9.9)
    assert vm.tickets_on_page()[0].colour == "new"
    clock.advance(0.1)
    [v] = vm.tickets_on_page()
    assert (v.is_new, v.colour) == (False, "normal")


def test_a_ticket_that_arrives_late_is_shown_late_not_new(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1, accepted=T0 - 600))
    [v] = vm.tickets_on_page()
    assert v.is_new and v.colour == "late"


def test_late_tickets_flash_on_and_off_with_the_clock(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1, accepted=T0 - 480))
    seen = []
    for _ in range(4):
        seen.append(vm.tickets_on_page()[0].flashing)
        clock.advance(1)
    assert seen in ([True, False, True, False], [False, True, False, True])


def test_warning_tickets_and_stations_with_flash_off_do_not_flash(clock) -> None:
    warn = station(clock)
    warn.on_ticket(ticket(1, accepted=T0 - 300))
    calm = station(clock, thresholds=Thresholds(flash=False))
    calm.on_ticket(ticket(1, accepted=T0 - 900))
    for _ in range(2):
        assert not warn.tickets_on_page()[0].flashing
        assert calm.tickets_on_page()[0].colour == "late" and not calm.tickets_on_page()[0].flashing
        clock.advance(1)


def test_each_station_has_its_own_thresholds(clock) -> None:
    vm = station(clock, thresholds=Thresholds(warn_s=60, late_s=120))
    vm.on_ticket(ticket(1, accepted=T0 - 60))
    assert vm.tickets_on_page()[0].colour == "warning"
    clock.advance(60)
    assert vm.tickets_on_page()[0].colour == "late"


def test_thresholds_with_warning_after_late_are_refused() -> None:
    with pytest.raises(ValueError, match="warn_s <= late_s"):
        Thresholds(warn_s=600, late_s=300)


# ============================================================ order, paging


def test_tickets_are_shown_oldest_first_then_by_number(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(3, accepted=T0 - 10))
    vm.on_ticket(ticket(1, accepted=T0 - 5))
    vm.on_ticket(ticket(5, accepted=T0 - 60))
    vm.on_ticket(ticket(2, accepted=T0 - 10))
    assert numbers(vm) == [5, 2, 3, 1]


def test_overflowing_tickets_are_paged_and_the_hidden_ones_counted(clock) -> None:
    vm = station(clock, page_size=3)
    for n in range(1, 8):
        vm.on_ticket(ticket(n, accepted=T0 + n))
    assert (numbers(vm), vm.page, vm.pages, vm.hidden_count) == ([1, 2, 3], 0, 3, 4)
    assert vm.next_page()
    assert (numbers(vm), vm.page, vm.hidden_count) == ([4, 5, 6], 1, 4)
    assert vm.next_page()
    assert (numbers(vm), vm.hidden_count) == ([7], 6)
    assert not vm.next_page()
    assert vm.prev_page() and numbers(vm) == [4, 5, 6]


def test_the_page_moves_back_when_its_last_ticket_is_bumped(clock) -> None:
    vm = station(clock, page_size=2)
    for n in range(1, 4):
        vm.on_ticket(ticket(n, accepted=T0 + n))
    vm.next_page()
    assert numbers(vm) == [3]
    vm.bump(ticket(3).ticket_id)
    assert (vm.page, vm.pages, numbers(vm), vm.hidden_count) == (0, 1, [1, 2], 0)


def test_ticket_view_shows_service_table_modifiers_note_and_allergens(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(8, service="dine_in", table="12", note="no MSG", items=[
        item(1, modifiers=(Words("微辣", "Mild"),), allergens=("peanut", "gluten"), note="extra sauce"),
        item(2, "Fries", "炸薯条", qty=2, part_of="Kung Pao Chicken Combo", part_of_zh="宫保鸡丁套餐"),
    ]))
    [v] = vm.tickets_on_page()
    assert v.service_text == Words("堂食 · 12号桌", "Dine in · Table 12")
    assert v.channel_text.en == "Kiosk" and v.note == "no MSG"
    assert v.allergens == ("gluten", "peanut")
    a, b = v.items
    assert (a.name_en, a.modifiers, a.note, a.allergens, a.done) == (
        "Kung Pao Chicken", (Words("微辣", "Mild"),), "extra sauce", ("peanut", "gluten"), False)
    assert (b.name_zh, b.qty, b.part_of, b.part_of_zh) == ("炸薯条", 2, "Kung Pao Chicken Combo", "宫保鸡丁套餐")


# ======================================================= dedup, revisions


def test_a_repeated_ticket_is_shown_once(clock) -> None:
    vm = station(clock)
    assert vm.on_ticket(ticket(1)) is True
    assert vm.on_ticket(ticket(1)) is False
    assert numbers(vm) == [1] and vm.counters["duplicate"] == 1


def test_an_older_revision_does_not_replace_a_newer_one(clock) -> None:
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries")])
    newer = done(t, lines={1}, revision=3)
    vm.on_ticket(newer)
    assert vm.on_ticket(done(t, lines={2}, revision=2)) is False
    assert [i.done for i in vm.tickets_on_page()[0].items] == [True, False]
    assert vm.counters["stale"] == 1


def test_a_voided_ticket_disappears_and_a_late_copy_cannot_bring_it_back(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    assert vm.on_ticket(voided(t)) is True
    assert numbers(vm) == [] and vm.recall_list() == []
    assert vm.on_ticket(t) is False
    assert numbers(vm) == []


def test_a_ticket_of_another_station_is_ignored(clock) -> None:
    vm = station(clock)
    assert vm.on_ticket(ticket(1, station="fryer")) is False
    assert numbers(vm) == [] and vm.counters["other_station"] == 1


# ================================================================ actions


def test_bump_takes_the_ticket_off_the_grid_and_sends_a_bump(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1))
    vm.on_ticket(ticket(2, accepted=T0 + 1))
    ev = one_event(vm.bump(ticket(1).ticket_id))
    assert (ev.kind, ev.order_id, ev.device, ev.line) == ("bump", oid(1), "kds-wok-1", None)
    assert str(uuid.UUID(ev.event_id)) == ev.event_id
    assert vm.event_topic == topics.station_event("wok")
    assert numbers(vm) == [2]
    assert [v.number for v in vm.recall_list()] == [1]


def test_each_action_has_its_own_event_id(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1))
    vm.on_ticket(ticket(2))
    a = vm.bump(ticket(1).ticket_id)[0]
    b = vm.bump(ticket(2).ticket_id)[0]
    assert a.event_id != b.event_id


def test_the_hubs_copy_after_a_bump_keeps_the_ticket_off_without_duplicates(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    vm.bump(t.ticket_id)
    assert vm.on_ticket(done(t)) is False
    assert vm.on_ticket(done(t)) is False
    assert numbers(vm) == [] and [v.number for v in vm.recall_list()] == [1]


def test_an_earlier_hub_copy_does_not_flicker_a_bumped_ticket_back(clock) -> None:
    # Another screen bumped line 1 just before our bump reached the hub.
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries")])
    vm.on_ticket(t)
    vm.bump(t.ticket_id)
    vm.on_ticket(done(t, lines={1}))
    assert numbers(vm) == []
    vm.on_ticket(done(t, revision=3))
    assert numbers(vm) == []


def test_a_bump_the_hub_never_confirms_shows_the_ticket_again(clock) -> None:
    vm = station(clock, confirm_s=30)
    vm.on_ticket(ticket(1))
    vm.bump(ticket(1).ticket_id)
    clock.advance(30)
    assert numbers(vm) == []
    clock.advance(1)
    assert numbers(vm) == [1] and vm.counters["expired"] == 1


def test_while_the_link_is_down_an_unconfirmed_bump_waits(clock) -> None:
    vm = station(clock, confirm_s=30)
    vm.on_ticket(ticket(1))
    vm.on_link(False)
    vm.bump(ticket(1).ticket_id)
    clock.advance(120)
    assert numbers(vm) == []
    vm.on_link(True)  # the queued bump goes out now; its wait starts now
    clock.advance(20)
    assert numbers(vm) == []


def test_item_bump_marks_one_line_done_and_sends_its_line(clock) -> None:
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries")])
    vm.on_ticket(t)
    ev = one_event(vm.bump_item(t.ticket_id, 2))
    assert (ev.kind, ev.line) == ("item_bump", 2)
    assert [i.done for i in vm.tickets_on_page()[0].items] == [False, True]
    vm.on_ticket(done(t, lines={2}))
    assert [i.done for i in vm.tickets_on_page()[0].items] == [False, True]


def test_bumping_the_last_open_line_takes_the_ticket_off_the_grid(clock) -> None:
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries")])
    vm.on_ticket(t)
    vm.bump_item(t.ticket_id, 1)
    vm.bump_item(t.ticket_id, 2)
    assert numbers(vm) == [] and [v.number for v in vm.recall_list()] == [1]


def test_item_bump_of_a_done_or_missing_line_is_refused(clock) -> None:
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries")])
    vm.on_ticket(t)
    vm.bump_item(t.ticket_id, 1)
    with pytest.raises(ActionRefused) as exc:
        vm.bump_item(t.ticket_id, 1)
    assert exc.value.code == "line_done"
    with pytest.raises(ActionRefused) as exc:
        vm.bump_item(t.ticket_id, 9)
    assert exc.value.code == "unknown_line" and "line 9" in str(exc.value)


def test_bumping_a_bumped_or_unknown_ticket_is_refused(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1))
    vm.bump(ticket(1).ticket_id)
    with pytest.raises(ActionRefused, match="already bumped"):
        vm.bump(ticket(1).ticket_id)
    with pytest.raises(ActionRefused) as exc:
        vm.bump("nope:wok")
    assert exc.value.code == "unknown_ticket"


def test_the_recall_list_is_most_recent_first_and_bounded(clock) -> None:
    vm = station(clock, recall_size=3)
    for n in range(1, 6):
        vm.on_ticket(ticket(n))
    for n in (2, 1, 5, 3, 4):
        vm.bump(ticket(n).ticket_id)
        clock.advance(1)
    assert [v.number for v in vm.recall_list()] == [4, 3, 5]


def test_a_ticket_bumped_on_another_screen_goes_onto_the_recall_list(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    assert vm.on_ticket(done(t)) is True
    assert numbers(vm) == [] and [v.number for v in vm.recall_list()] == [1]


def test_recall_last_brings_the_last_bumped_ticket_back(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1))
    vm.on_ticket(ticket(2, accepted=T0 + 1))
    vm.bump(ticket(1).ticket_id)
    clock.advance(1)
    vm.bump(ticket(2).ticket_id)
    ev = one_event(vm.recall_last())
    assert (ev.kind, ev.order_id, ev.line) == ("recall", oid(2), None)
    assert numbers(vm) == [2]
    assert vm.selected_ticket_id == ticket(2).ticket_id
    assert [v.number for v in vm.recall_list()] == [1]


def test_the_hubs_reopened_copy_after_a_recall_shows_the_ticket_once(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    vm.bump(t.ticket_id)
    vm.on_ticket(d := done(t))
    vm.recall(t.ticket_id)
    vm.on_ticket(reopened(d))
    assert numbers(vm) == [1] and vm.recall_list() == []


def test_recall_with_nothing_bumped_is_refused(clock) -> None:
    vm = station(clock)
    with pytest.raises(ActionRefused) as exc:
        vm.recall_last()
    assert exc.value.code == "nothing_to_recall"


def test_recall_of_an_order_already_handed_over_is_refused(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    vm.on_ticket(done(t))
    vm.on_update(OrderUpdate(order_id=oid(1), number=1, business_date="2026-11-22", state="completed", at=iso(T0)))
    with pytest.raises(ActionRefused) as exc:
        vm.recall(t.ticket_id)
    assert exc.value.code == "order_closed" and "expo" in str(exc.value)


def test_undo_within_the_window_recalls_and_restores_the_ticket(clock) -> None:
    vm = station(clock, undo_s=5)
    vm.on_ticket(ticket(1))
    vm.bump(ticket(1).ticket_id)
    clock.advance(5)
    ev = one_event(vm.undo())
    assert (ev.kind, ev.order_id, ev.line) == ("recall", oid(1), None)
    assert numbers(vm) == [1] and vm.recall_list() == []


def test_undo_after_the_window_is_refused_and_sends_nothing(clock) -> None:
    vm = station(clock, undo_s=5)
    vm.on_ticket(ticket(1))
    vm.bump(ticket(1).ticket_id)
    clock.advance(5.1)
    with pytest.raises(ActionRefused) as exc:
        vm.undo()
    assert exc.value.code == "undo_expired"
    assert "within 5 s" in str(exc.value) and "5 秒" in exc.value.words.zh
    assert numbers(vm) == []


def test_undo_works_once(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1))
    with pytest.raises(ActionRefused) as exc:
        vm.undo()
    assert exc.value.code == "nothing_to_undo"
    vm.bump(ticket(1).ticket_id)
    vm.undo()
    with pytest.raises(ActionRefused) as exc:
        vm.undo()
    assert exc.value.code == "nothing_to_undo"


def test_undo_of_an_item_bump_recalls_only_that_line(clock) -> None:
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries")])
    vm.on_ticket(t)
    vm.bump_item(t.ticket_id, 2)
    ev = one_event(vm.undo())
    assert (ev.kind, ev.line) == ("recall", 2)
    assert [i.done for i in vm.tickets_on_page()[0].items] == [False, False]


def test_undo_of_a_bump_reopens_only_the_lines_that_bump_closed(clock) -> None:
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries"), item(3, "Rice")])
    vm.on_ticket(t)
    vm.bump_item(t.ticket_id, 1)
    vm.bump(t.ticket_id)
    events = vm.undo()
    assert [(e.kind, e.line) for e in events] == [("recall", 2), ("recall", 3)]
    assert [i.done for i in vm.tickets_on_page()[0].items] == [True, False, False]


def test_undo_before_the_hub_confirmed_the_bump_does_not_flicker(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    vm.bump(t.ticket_id)
    vm.undo()
    vm.on_ticket(d := done(t))  # the hub applies the bump first...
    assert numbers(vm) == [1]
    vm.on_ticket(reopened(d))  # ...then the recall
    assert numbers(vm) == [1] and vm.recall_list() == []
    clock.advance(3600)  # nothing left pending that could expire
    assert numbers(vm) == [1] and vm.counters["expired"] == 0


# ========================================================= bump bar actions


def test_bump_bar_selection_walks_the_tickets_across_pages(clock) -> None:
    vm = station(clock, page_size=2)
    for n in range(1, 4):
        vm.on_ticket(ticket(n, accepted=T0 + n))
    assert vm.selected_ticket_id is None
    vm.perform("select_next")
    assert vm.selected_ticket_id == ticket(1).ticket_id
    vm.perform("select_next")
    vm.perform("select_next")
    assert vm.selected_ticket_id == ticket(3).ticket_id and vm.page == 1
    assert [v.selected for v in vm.tickets_on_page()] == [True]
    vm.perform("select_prev")
    assert vm.selected_ticket_id == ticket(2).ticket_id and vm.page == 0


def test_bump_bar_bump_bumps_the_selected_ticket_and_selects_the_next(clock) -> None:
    vm = station(clock)
    for n in range(1, 4):
        vm.on_ticket(ticket(n, accepted=T0 + n))
    vm.perform("select_next")
    vm.perform("select_next")
    ev = one_event(vm.perform("bump"))
    assert ev.order_id == oid(2)
    assert vm.selected_ticket_id == ticket(3).ticket_id
    assert one_event(vm.perform("undo")).kind == "recall"


def test_bump_bar_bump_with_nothing_selected_is_refused(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1))
    with pytest.raises(ActionRefused) as exc:
        vm.perform("bump")
    assert exc.value.code == "no_selection"


def test_paging_moves_the_bump_bar_selection_with_the_page(clock) -> None:
    vm = station(clock, page_size=2)
    for n in range(1, 4):
        vm.on_ticket(ticket(n, accepted=T0 + n))
    vm.perform("select_next")
    vm.perform("page_next")
    assert vm.selected_ticket_id == ticket(3).ticket_id


# ==================================================================== acks


def test_each_drawn_ticket_is_acknowledged_once_even_after_a_new_revision(clock) -> None:
    vm = station(clock)
    t = ticket(1, items=[item(1), item(2, "Fries")])
    vm.on_ticket(t)
    vm.on_ticket(ticket(2))
    drawn = [v.ticket_id for v in vm.tickets_on_page()]
    acks = vm.drawn(drawn)
    assert sorted((one_event([a]).kind, a.order_id) for a in acks) == [("ack", oid(1)), ("ack", oid(2))]
    assert vm.drawn(drawn) == []
    vm.on_ticket(done(t, lines={1}))
    assert vm.drawn([v.ticket_id for v in vm.tickets_on_page()]) == []


def test_no_ack_for_a_ticket_not_on_the_screen(clock) -> None:
    vm = station(clock)
    assert vm.drawn(["nope:wok"]) == []


# ================================================================ all day


def test_all_day_counts_add_up_across_tickets_and_drop_bumped_items(clock) -> None:
    vm = station(clock)
    a = ticket(1, items=[item(1, qty=2), item(2, "Fries", "炸薯条")])
    vm.on_ticket(a)
    vm.on_ticket(ticket(2, items=[item(1, qty=1), item(2, "Mapo Tofu", "麻婆豆腐", qty=3)]))
    vm.on_ticket(ticket(3, items=[item(1, "Fries", "炸薯条", qty=2)]))
    # most first, then by name
    assert vm.all_day() == [("炸薯条", "Fries", 3), ("宫保鸡丁", "Kung Pao Chicken", 3), ("麻婆豆腐", "Mapo Tofu", 3)]
    vm.bump_item(a.ticket_id, 1)
    vm.bump(ticket(3).ticket_id)
    assert vm.all_day() == [("麻婆豆腐", "Mapo Tofu", 3), ("炸薯条", "Fries", 1), ("宫保鸡丁", "Kung Pao Chicken", 1)]


def test_all_day_kept_up_to_date_equals_a_recount_through_any_changes(clock) -> None:
    """The station keeps the panel's counts up to date ticket by ticket
    (AllDayTally); after every kind of change they equal a recount."""
    import random

    rng = random.Random(5)
    vm = station(clock)
    dishes = [("Kung Pao Chicken", "宫保鸡丁"), ("Fries", "炸薯条"), ("Mapo Tofu", "麻婆豆腐"), ("Rice", "米饭")]
    tickets = {}

    def recount():
        open_items = [e.items for e in vm._entries.values() if e.state == "open"]
        return all_day_counts(open_items)

    for step in range(300):
        n = rng.randrange(1, 25)
        kind = rng.random()
        if kind < 0.45 or not tickets:
            lines = [item(k + 1, *rng.choice(dishes), qty=rng.randrange(1, 4)) for k in range(rng.randrange(1, 4))]
            t = ticket(n, items=lines)
            if t.ticket_id not in tickets:
                tickets[t.ticket_id] = t
                vm.on_ticket(t)
        elif kind < 0.65:
            tid = rng.choice(list(tickets))
            try:
                vm.bump(tid)
            except ActionRefused:
                pass
        elif kind < 0.8:
            tid = rng.choice(list(tickets))
            try:
                vm.bump_item(tid, rng.randrange(1, 4))
            except ActionRefused:
                pass
        elif kind < 0.9:
            try:
                vm.recall_last()
            except ActionRefused:
                pass
        else:
            try:
                vm.undo()
            except ActionRefused:
                pass
        assert vm.all_day() == recount(), f"step {step}"
    assert vm.all_day(), "the walk left open tickets to count"


# ================================================================= banner


def test_banner_tells_when_the_broker_or_the_hub_is_lost(clock) -> None:
    vm = StationViewModel("wok", "kds-wok-1", clock=clock, page_size=4)
    assert vm.banner == BANNER_CONNECTING
    vm.on_link(True)
    assert vm.banner is None
    vm.on_hub_presence(False)
    assert vm.banner == BANNER_HUB_LOST
    assert vm.banner.en == "Connection to the store hub lost — tickets may be late"
    assert vm.banner.zh.startswith("与门店主机的连接已断开")
    vm.on_hub_presence(True)
    assert vm.banner is None
    vm.on_link(False)
    assert vm.banner == BANNER_LINK_LOST and "reconnecting" in vm.banner.en
    vm.on_link(True)
    assert vm.banner is None


# ================================================================== cache


def test_snapshot_and_restore_show_the_same_screen_without_duplicates(clock) -> None:
    vm = station(clock)
    a, b, c, gone = ticket(1), ticket(2, accepted=T0 + 1), ticket(3, accepted=T0 + 2), ticket(4)
    for t in (a, b, c, gone):
        vm.on_ticket(t)
    vm.drawn([a.ticket_id, b.ticket_id])
    vm.bump(c.ticket_id)
    vm.on_ticket(done(c))
    vm.on_ticket(voided(gone))

    restored = StationViewModel.restore(vm.snapshot(), "wok", "kds-wok-1", clock=clock, page_size=4)
    assert restored.cache_problem is None
    assert numbers(restored) == [1, 2]
    assert [v.number for v in restored.recall_list()] == [3]
    # The broker and the hub deliver the same tickets again after the restart.
    for t in (a, b, done(c), gone):
        assert restored.on_ticket(t) is False
    assert numbers(restored) == [1, 2] and [v.number for v in restored.recall_list()] == [3]
    assert restored.drawn([a.ticket_id, b.ticket_id]) == []
    # A real change still comes through.
    assert restored.on_ticket(done(a)) is True
    assert numbers(restored) == [2]


def test_restore_keeps_the_timers_and_the_recall_order(clock) -> None:
    vm = station(clock)
    for n in (1, 2, 3):
        vm.on_ticket(ticket(n, accepted=T0 - 100))
    vm.bump(ticket(2).ticket_id)
    clock.advance(1)
    vm.bump(ticket(1).ticket_id)
    clock.advance(60)
    restored = StationViewModel.restore(vm.snapshot(), "wok", "kds-wok-1", clock=clock)
    [v] = restored.tickets_on_page()
    assert (v.number, v.elapsed_s, v.is_new) == (3, 161, False)
    assert [v.number for v in restored.recall_list()] == [1, 2]


def test_bumps_the_hub_had_not_confirmed_survive_a_restart_with_their_event_ids(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    sent = vm.bump(t.ticket_id)
    assert vm.unconfirmed_events() == sent
    restored = StationViewModel.restore(vm.snapshot(), "wok", "kds-wok-1", clock=clock)
    assert numbers(restored) == []
    assert [e.event_id for e in restored.unconfirmed_events()] == [sent[0].event_id]
    restored.on_ticket(done(t))
    assert restored.unconfirmed_events() == [] and numbers(restored) == []


@pytest.mark.parametrize("data, problem", [
    (b"\x00not json", "could not be read"),
    (b'{"format":"restobox-kds-station/0","station":"wok","tickets":[]}', "format"),
])
def test_an_unusable_cache_starts_empty_and_says_why(clock, data, problem) -> None:
    vm = StationViewModel.restore(data, "wok", "kds-wok-1", clock=clock)
    assert numbers(vm) == [] and problem in vm.cache_problem


def test_another_stations_cache_is_not_used(clock) -> None:
    fryer = StationViewModel("fryer", "kds-fryer-1", clock=clock)
    fryer.on_ticket(ticket(1, station="fryer"))
    vm = StationViewModel.restore(fryer.snapshot(), "wok", "kds-wok-1", clock=clock)
    assert numbers(vm) == [] and "'fryer'" in vm.cache_problem


def test_a_bad_device_or_station_name_is_refused(clock) -> None:
    with pytest.raises(ValueError, match="device"):
        StationViewModel("wok", "KDS 1", clock=clock)
    with pytest.raises(ValueError, match="station"):
        StationViewModel("Wok!", "kds-1", clock=clock)
    with pytest.raises(ValueError, match="page_size"):
        StationViewModel("wok", "kds-1", clock=clock, page_size=0)


# =================================================================== expo


def update(n: int, state: str, stations: dict[str, str], at: float = T0) -> OrderUpdate:
    return OrderUpdate(order_id=oid(n), number=n, business_date="2026-11-22", state=state, at=iso(at),
                       stations=tuple(StationStatus(station=s, state=st) for s, st in sorted(stations.items())))


def expo(clock: FakeClock, **kw) -> ExpoViewModel:
    vm = ExpoViewModel("expo-1", clock=clock, thresholds=Thresholds(), page_size=kw.pop("page_size", 4), **kw)
    vm.on_link(True)
    return vm


def test_expo_order_is_ready_only_when_every_station_is_done(clock) -> None:
    vm = expo(clock)
    wok, fryer = ticket(1, "wok"), ticket(1, "fryer", items=[item(1, "Fries")])
    vm.on_ticket(wok)
    vm.on_ticket(fryer)
    [row] = vm.rows_on_page()
    assert [(p.station, p.state) for p in row.stations] == [("fryer", "open"), ("wok", "open")]
    assert not row.ready
    vm.on_ticket(done(wok))
    assert not vm.rows_on_page()[0].ready
    vm.on_ticket(done(fryer))
    row = vm.rows_on_page()[0]
    assert row.ready and [(p.station, p.done_items, p.total_items) for p in row.stations] == [
        ("fryer", 1, 1), ("wok", 1, 1)]


def test_expo_bump_of_an_order_not_ready_is_refused_and_sends_nothing(clock) -> None:
    vm = expo(clock)
    vm.on_ticket(done(ticket(1, "wok")))
    vm.on_ticket(ticket(1, "fryer"))
    with pytest.raises(ActionRefused) as exc:
        vm.bump(oid(1))
    assert exc.value.code == "not_ready" and "fryer" in str(exc.value)
    assert [r.number for r in vm.rows_on_page()] == [1]


def test_expo_bump_completes_a_ready_order_and_it_leaves_the_grid(clock) -> None:
    vm = expo(clock)
    vm.on_ticket(done(ticket(1)))
    vm.on_ticket(ticket(2))
    ev = one_event(vm.bump(oid(1)))
    assert (ev.kind, ev.order_id, ev.device) == ("bump", oid(1), "expo-1")
    assert vm.event_topic == topics.station_event("expo")
    assert [r.number for r in vm.rows_on_page()] == [2]
    vm.on_update(update(1, "completed", {"wok": "done"}, at=T0 + 1))
    clock.advance(3600)
    assert [r.number for r in vm.rows_on_page()] == [2]
    assert vm.completed_numbers() == [1]


def test_expo_recall_last_brings_back_the_last_completed_order(clock) -> None:
    vm = expo(clock)
    for n in (1, 2):
        vm.on_ticket(done(ticket(n)))
    vm.bump(oid(1))
    vm.bump(oid(2))
    ev = one_event(vm.recall_last())
    assert (ev.kind, ev.order_id) == ("recall", oid(2))
    rows = vm.rows_on_page()
    assert [r.number for r in rows] == [2] and rows[0].ready
    assert vm.completed_numbers() == [1]


def test_expo_recall_with_nothing_completed_is_refused(clock) -> None:
    with pytest.raises(ActionRefused) as exc:
        expo(clock).recall_last()
    assert exc.value.code == "nothing_to_recall"


def test_expo_shows_an_order_completed_by_another_expo_screen_as_gone(clock) -> None:
    vm = expo(clock)
    vm.on_ticket(done(ticket(1)))
    assert vm.on_update(update(1, "completed", {"wok": "done"})) is True
    assert vm.rows_on_page() == [] and vm.completed_numbers() == [1]


def test_expo_takes_stations_it_has_no_ticket_for_from_the_order_update(clock) -> None:
    vm = expo(clock)
    vm.on_ticket(done(ticket(1, "wok")))
    vm.on_update(update(1, "in_progress", {"wok": "done", "drinks": "open"}))
    row = vm.rows_on_page()[0]
    assert [(p.station, p.state) for p in row.stations] == [("drinks", "open"), ("wok", "done")]
    assert not row.ready


def test_expo_ignores_an_older_order_update(clock) -> None:
    vm = expo(clock)
    vm.on_update(update(1, "completed", {"wok": "done"}, at=T0 + 5))
    assert vm.on_update(update(1, "ready", {"wok": "done"}, at=T0 + 1)) is False
    assert vm.rows_on_page() == [] and vm.counters["stale"] == 1


def test_expo_drops_a_voided_order_and_ignores_its_late_tickets(clock) -> None:
    vm = expo(clock)
    t = ticket(1)
    vm.on_ticket(t)
    assert vm.on_ticket(voided(t)) is True
    assert vm.rows_on_page() == []
    assert vm.on_ticket(ticket(1, "fryer")) is False
    assert vm.rows_on_page() == []


def test_expo_ignores_repeated_and_older_tickets(clock) -> None:
    vm = expo(clock)
    t = ticket(1)
    vm.on_ticket(done(t))
    assert vm.on_ticket(done(t)) is False
    assert vm.on_ticket(t) is False
    assert vm.rows_on_page()[0].ready


# ================================================================== board


def board(preparing, ready, at: float = T0, date: str = "2026-11-22") -> Board:
    return Board(business_date=date, preparing=tuple(preparing), ready=tuple(ready), at=iso(at))


def test_board_lists_preparing_and_ready_numbers_newest_ready_first(clock) -> None:
    vm = BoardViewModel(clock=clock, just_ready_s=10)
    vm.on_board(board([3, 4, 5], []))
    clock.advance(1)
    vm.on_board(board([3, 5], [4], at=T0 + 1))
    clock.advance(1)
    assert vm.on_board(board([5], [3, 4], at=T0 + 2)) is True
    assert vm.preparing == (5,) and vm.ready == (3, 4)
    assert vm.on_board(board([5], [3, 4], at=T0 + 2)) is False


def test_board_highlights_numbers_that_just_became_ready(clock) -> None:
    vm = BoardViewModel(clock=clock, just_ready_s=10)
    vm.on_board(board([2], [1]))
    assert vm.just_ready == frozenset()  # already ready when the board started
    clock.advance(1)
    vm.on_board(board([], [1, 2], at=T0 + 1))
    assert vm.just_ready == {2}
    clock.advance(9.9)
    assert vm.just_ready == {2}
    clock.advance(0.1)
    assert vm.just_ready == frozenset()


def test_board_ignores_an_older_board(clock) -> None:
    vm = BoardViewModel(clock=clock)
    vm.on_board(board([], [7], at=T0 + 5))
    assert vm.on_board(board([7], [], at=T0 + 1)) is False
    assert vm.ready == (7,) and vm.preparing == ()


# =============================================================== bump bar


def test_bump_bar_map_maps_configured_keys_to_actions() -> None:
    m = BumpBarMap({"bump": ["enter", "NumpadEnter"], "recall": "r", "page_next": "pagedown"})
    assert m.action_for("enter") == "bump"
    assert m.action_for("numpadenter") == "bump"
    assert m.action_for("R") == "recall"
    assert m.action_for("x") is None
    assert m.keys_for("bump") == ("enter", "numpadenter")
    assert BumpBarMap.default().action_for("u") == "undo"


def test_bump_bar_map_refuses_an_unknown_action() -> None:
    with pytest.raises(ValueError, match="unknown bump bar action 'bmup'"):
        BumpBarMap({"bmup": "enter"})


def test_bump_bar_map_refuses_a_key_given_to_two_actions() -> None:
    with pytest.raises(ValueError, match="'enter' is mapped to both 'bump' and 'recall'"):
        BumpBarMap({"bump": "enter", "recall": "Enter"})


def test_bump_bar_map_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="empty"):
        BumpBarMap({"bump": " "})


def test_expo_update_sent_before_the_bump_does_not_bring_the_order_back(clock) -> None:
    vm = expo(clock)
    vm.on_ticket(done(ticket(1)))
    vm.bump(oid(1))
    vm.on_update(update(1, "ready", {"wok": "done"}, at=T0))  # was in flight
    assert vm.rows_on_page() == []
    vm.on_update(update(1, "completed", {"wok": "done"}, at=T0 + 1))
    assert vm.rows_on_page() == [] and vm.completed_numbers() == [1]


# ============================================================ payment, held


def paid_update(n: int, state: str = "accepted", payment: str = "paid", at: float = T0 + 1,
                total: int = 4600, channel: str = "kiosk", table: str | None = None) -> OrderUpdate:
    return OrderUpdate(order_id=oid(n), number=n, business_date="2026-11-22", state=state, at=iso(at),
                       payment=payment, paid=total if payment == "paid" else 0, total=total, channel=channel,
                       table=table)


def held(t: StationTicket) -> StationTicket:
    return msgspec.structs.replace(t, state="held")


def released(t: StationTicket) -> StationTicket:
    """The hub's copy once the order is paid: open, at its station."""
    return msgspec.structs.replace(t, state="open", payment="paid", revision=t.revision + 1)


def test_a_station_card_says_unpaid_until_the_order_update_says_paid(clock) -> None:
    vm = station(clock)
    vm.on_ticket(ticket(1))
    vm.on_ticket(msgspec.structs.replace(ticket(2), payment="paid"))
    assert [(v.number, v.unpaid) for v in vm.tickets_on_page()] == [(1, True), (2, False)]
    assert vm.on_update(paid_update(1)) is True  # a shown card changed: redraw
    assert [v.unpaid for v in vm.tickets_on_page()] == [False, False]
    assert vm.on_update(paid_update(1)) is False  # nothing new
    assert vm.on_update(paid_update(9)) is False  # not an order of this screen
    # a refund shows no badge (it is not "unpaid"); the cache keeps the payment through a restart
    vm.on_update(paid_update(2, payment="refunded"))
    again = StationViewModel.restore(vm.snapshot(), "wok", "kds-wok-1", clock=clock)
    assert [(v.number, v.unpaid) for v in again.tickets_on_page()] == [(1, False), (2, False)]


def test_a_resync_copy_of_the_same_revision_brings_a_payment_missed_while_away(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    vm.on_ticket(t)
    assert vm.on_ticket(t) is False and vm.counters["duplicate"] == 1
    assert vm.on_ticket(msgspec.structs.replace(t, payment="paid")) is True
    assert [v.unpaid for v in vm.tickets_on_page()] == [False]


def test_a_station_never_shows_a_held_ticket_and_shows_it_once_released(clock) -> None:
    vm = station(clock)
    t = ticket(1)
    assert vm.on_ticket(held(t)) is False
    assert vm.tickets_on_page() == [] and vm.counters["held"] == 1 and vm.drawn([t.ticket_id]) == []
    assert vm.on_ticket(released(t)) is True
    [v] = vm.tickets_on_page()
    assert (v.number, v.unpaid) == (1, False)
    assert one_event(vm.drawn([t.ticket_id])).kind == "ack"


def test_expo_marks_an_unpaid_order_and_clears_the_mark_when_it_is_paid(clock) -> None:
    vm = expo(clock)
    vm.on_ticket(ticket(1))
    assert vm.rows_on_page()[0].unpaid
    assert vm.on_update(paid_update(1)) is True
    assert not vm.rows_on_page()[0].unpaid
    # a later ticket copy carries the payment as the hub has it
    vm.on_ticket(done(msgspec.structs.replace(ticket(1), payment="paid")))
    assert not vm.rows_on_page()[0].unpaid


def test_expo_shows_held_orders_apart_and_a_payment_releases_them_to_the_kitchen(clock) -> None:
    vm = expo(clock)
    wok, drinks = ticket(1, "wok"), ticket(1, "drinks", items=[item(2, "Milk Tea", "奶茶")])
    vm.on_ticket(ticket(2))
    assert vm.on_ticket(held(wok)) is True
    vm.on_ticket(held(drinks))
    assert vm.on_update(paid_update(1, state="held", payment="unpaid", at=T0, channel="qr", table="12")) is True
    # not on the grid (nobody cooks it), not bumpable; in the held list with its table and total
    assert [r.number for r in vm.rows_on_page()] == [2] and vm.open_count == 1
    clock.advance(75)
    [h] = vm.held_rows()
    assert (h.number, h.table, h.total, h.waiting_text, h.channel_text.en) == (1, "12", 4600, "1:15", "QR")
    with pytest.raises(ActionRefused):
        vm.bump(oid(1))
    # paid: the update and the released tickets (in either order) put it on the grid
    assert vm.on_update(paid_update(1, state="accepted", at=T0 + 80)) is True
    assert vm.held_rows() == []
    vm.on_ticket(released(wok))
    vm.on_ticket(released(drinks))
    rows = vm.rows_on_page()
    assert [(r.number, r.unpaid) for r in rows] == [(1, False), (2, True)]
    assert [p.state for p in rows[0].stations] == ["open", "open"]


def test_expo_knows_a_held_order_from_its_tickets_alone_and_drops_it_when_voided(clock) -> None:
    vm = expo(clock)
    t = held(ticket(3, "wok"))
    vm.on_ticket(t)  # a resync after a restart: tickets, no order update yet
    assert [h.number for h in vm.held_rows()] == [3] and vm.rows_on_page() == []
    assert vm.on_update(paid_update(3, state="voided", payment="unpaid")) is True
    assert vm.held_rows() == [] and vm.rows_on_page() == []
