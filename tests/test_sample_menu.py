"""The bundled sample menu is complete, consistent and realistic, and the menu
loader rejects broken menus with a message that says what to fix."""

from __future__ import annotations

import json
import re

import pytest

from restobox.data import load_sample_menu, sample_menu_bytes
from restobox.menu import Menu, MenuError, Name

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_sample_menu()


def _all_names(menu: Menu) -> list[tuple[str, Name]]:
    names: list[tuple[str, Name]] = []
    names += [(f"station {s.id}", s.name) for s in menu.stations]
    names += [(f"category {c.id}", c.name) for c in menu.categories]
    for g in menu.modifier_groups:
        names.append((f"modifier group {g.id}", g.name))
        names += [(f"modifier option {o.id}", o.name) for o in g.options]
    for i in menu.items:
        names.append((f"item {i.id}", i.name))
        if i.description is not None:
            names.append((f"item {i.id} description", i.description))
    return names


def _broken(edit) -> bytes:
    """The sample menu's JSON after ``edit(dict)`` has modified it."""
    data = json.loads(sample_menu_bytes())
    edit(data)
    return json.dumps(data, ensure_ascii=False).encode()


def _item(data: dict, item_id: str) -> dict:
    return next(i for i in data["items"] if i["id"] == item_id)


def _group(data: dict, group_id: str) -> dict:
    return next(g for g in data["modifier_groups"] if g["id"] == group_id)


# ------------------------------------------------------------ the sample menu
def test_sample_menu_loads_and_passes_the_check(menu):
    menu.check()  # load_sample_menu already checked; checking again is harmless
    assert menu.version == "2026-11-01.1"
    assert menu.currency == "CNY"
    assert menu.tax_rate_bp == 600
    assert menu.tax_inclusive is True


def test_sample_menu_round_trips_through_json(menu):
    assert Menu.from_json(menu.to_json()) == menu


def test_sample_menu_has_38_to_44_items(menu):
    assert 38 <= len(menu.items) <= 44


def test_sample_menu_has_exactly_the_wok_fryer_and_drinks_stations(menu):
    assert sorted(s.id for s in menu.stations) == ["drinks", "fryer", "wok"]


def test_every_category_has_at_least_three_items(menu):
    for c in menu.categories:
        count = sum(1 for i in menu.items if i.category == c.id)
        assert count >= 3, f"category {c.id} has {count} items"


def test_every_station_has_items(menu):
    for s in menu.stations:
        count = sum(1 for i in menu.items if i.station == s.id)
        assert count >= 5, f"station {s.id} has {count} items"


def test_category_colours_are_distinct(menu):
    colours = [c.color.upper() for c in menu.categories]
    assert len(set(colours)) == len(colours)


def test_there_are_at_least_four_combos(menu):
    assert sum(1 for i in menu.items if i.combo) >= 4


def test_every_combo_has_a_required_group_made_at_another_station(menu):
    groups = {g.id: g for g in menu.modifier_groups}
    for item in (i for i in menu.items if i.combo):
        elsewhere = [
            g
            for g in (groups[gid] for gid in item.modifier_groups)
            if g.required
            and all(o.station is not None and o.station != item.station for o in g.options)
        ]
        assert elsewhere, f"combo {item.id} has no required part made at another station"


def test_every_combo_offers_a_drink_and_a_side(menu):
    groups = {g.id: g for g in menu.modifier_groups}
    for item in (i for i in menu.items if i.combo):
        part_stations = {
            o.station
            for gid in item.modifier_groups
            if groups[gid].required
            for o in groups[gid].options
            if o.station is not None
        }
        assert {"drinks", "fryer"} <= part_stations, item.id


def test_every_name_has_zh_and_en_and_zh_is_chinese(menu):
    for where, name in _all_names(menu):
        assert name.zh.strip(), f"{where}: empty zh"
        assert name.en.strip(), f"{where}: empty en"
        assert CJK.search(name.zh), f"{where}: zh {name.zh!r} has no Chinese characters"


def test_every_item_has_a_description(menu):
    for item in menu.items:
        assert item.description is not None, item.id


def test_all_prices_are_positive_integers(menu):
    for item in menu.items:
        assert type(item.price) is int, item.id
        assert item.price > 0, item.id
    for g in menu.modifier_groups:
        for o in g.options:
            assert type(o.price_delta) is int, o.id


def test_item_prices_are_in_a_plausible_range_of_fen(menu):
    # ¥6 to ¥60: catches a price typed in yuan (e.g. 32) or with an extra zero.
    for item in menu.items:
        assert 600 <= item.price <= 6000, f"{item.id}: {item.price}"


def test_every_option_id_is_unique_across_the_menu(menu):
    ids = [o.id for g in menu.modifier_groups for o in g.options]
    assert len(ids) == len(set(ids))


def test_every_item_with_peanuts_lists_peanut(menu):
    def mentions_peanuts(name: Name | None) -> bool:
        return name is not None and ("花生" in name.zh or "peanut" in name.en.lower())

    with_peanuts = [i for i in menu.items if mentions_peanuts(i.name) or mentions_peanuts(i.description)]
    assert with_peanuts, "the sample menu should have dishes with peanuts"
    for item in with_peanuts:
        assert "peanut" in item.allergens, item.id


def test_kung_pao_chicken_lists_peanut_soy_and_gluten(menu):
    item = menu.index.items["kung-pao-chicken"]
    assert {"peanut", "soy", "gluten"} <= set(item.allergens)


def test_every_combo_lists_at_least_the_allergens_of_its_main_dish(menu):
    items = menu.index.items
    mains = {
        "combo-kung-pao-chicken": "kung-pao-chicken",
        "combo-mapo-tofu": "mapo-tofu",
        "combo-beef-noodle-soup": "beef-noodle-soup",
        "combo-yangzhou-fried-rice": "yangzhou-fried-rice",
        "combo-grilled-chicken-rice": "grilled-chicken-leg",
    }
    for combo, main in mains.items():
        assert set(items[main].allergens) <= set(items[combo].allergens), combo
        assert items[combo].station == items[main].station, combo


def test_no_two_items_share_a_name(menu):
    zh = [i.name.zh for i in menu.items]
    en = [i.name.en.casefold() for i in menu.items]
    assert len(set(zh)) == len(zh)
    assert len(set(en)) == len(en)


def test_required_single_choice_groups_have_at_most_one_default(menu):
    for g in menu.modifier_groups:
        defaults = [o.id for o in g.options if o.default]
        if g.max_choices == 1:
            assert len(defaults) <= 1, g.id
    spice = menu.index.groups["spice"]
    assert spice.required and spice.max_choices == 1
    assert sum(o.default for o in spice.options) == 1


def test_all_sample_items_are_available(menu):
    # sold-out (86) is runtime state, not part of the menu
    assert all(i.available for i in menu.items)


# ------------------------------------------------------------ broken menus
def test_item_with_unknown_station_is_rejected_naming_item_and_station():
    def edit(data):
        _item(data, "kung-pao-chicken")["station"] = "tandoor"

    with pytest.raises(MenuError, match=r"item kung-pao-chicken: unknown station 'tandoor'"):
        Menu.from_json(_broken(edit))


def test_unknown_allergen_is_rejected_and_the_known_ones_are_listed():
    def edit(data):
        _item(data, "dan-dan-noodles")["allergens"].append("peanuts")

    with pytest.raises(MenuError) as exc:
        Menu.from_json(_broken(edit))
    message = str(exc.value)
    assert "item dan-dan-noodles" in message
    assert "unknown allergen 'peanuts'" in message
    assert "peanut" in message.split("known:")[1]


def test_unknown_modifier_group_is_rejected_naming_item_and_group():
    def edit(data):
        _item(data, "mapo-tofu")["modifier_groups"].append("sauce-choice")

    with pytest.raises(MenuError, match=r"item mapo-tofu: unknown modifier group 'sauce-choice'"):
        Menu.from_json(_broken(edit))


def test_unknown_field_is_rejected_naming_the_field_and_where_it_is():
    def edit(data):
        data["items"][0]["prize"] = 3200

    with pytest.raises(MenuError) as exc:
        Menu.from_json(_broken(edit))
    message = str(exc.value)
    assert "prize" in message
    assert "items[0]" in message


def test_min_choices_above_max_choices_is_rejected_naming_the_group():
    def edit(data):
        g = _group(data, "spice")
        g["min_choices"], g["max_choices"] = 3, 2

    with pytest.raises(MenuError, match=r"modifier group spice: min_choices 3 > max_choices 2"):
        Menu.from_json(_broken(edit))


def test_unedited_sample_json_round_trip_still_loads():
    # guards the broken-menu tests: the edits above, not the round trip, break the menu
    Menu.from_json(_broken(lambda data: None))
