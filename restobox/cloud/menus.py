"""One menu for the chain, each store's own over it.

The chain publishes one menu (``Menu`` JSON, restobox/menu.py). A store's
overrides change it for that store only:

    {"prices": {"kung-pao-chicken": 3400, "extra-rice": 300},
     "unavailable": ["crayfish"],
     "additions": {"categories": [...], "modifier_groups": [...], "items": [...]}}

``prices``: an item's price, or an option's ``price_delta``, by id;
``unavailable``: items and options the store does not sell; ``additions``:
what only this store sells (stations, categories, modifier groups, items in
the menu's own shape). An id the chain's menu no longer has is ignored in
``prices`` and ``unavailable`` (a dish the chain took off needs no price).
The store's menu is named ``<chain version>+<store>.<revision>``, so a new
chain menu and a new set of overrides both reach the store's hub as a new
version through the menu sync it already runs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from restobox import contract
from restobox.menu import Menu, MenuError


class Overrides(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    prices: dict[str, int] = {}
    unavailable: list[str] = []
    additions: dict[str, list[dict[str, Any]]] = {}


ADDABLE = ("stations", "categories", "modifier_groups", "items")


def check_overrides(body: bytes) -> Overrides:
    try:
        o = msgspec.json.decode(body, type=Overrides)
    except msgspec.DecodeError as exc:
        raise MenuError(f"the store's menu changes do not decode: {exc}") from None
    extra = set(o.additions) - set(ADDABLE)
    if extra:
        raise MenuError(f"additions may hold {', '.join(ADDABLE)}, not {', '.join(sorted(extra))}")
    return o


def merge(chain_json: str | bytes, store_id: str, rev: int, overrides: Overrides) -> Menu:
    """The store's menu: the chain's with the store's changes, checked by
    the menu's own rules (MenuError names what is wrong)."""
    base = msgspec.json.decode(chain_json)
    unavailable = set(overrides.unavailable)
    prices = overrides.prices
    for item in base["items"]:
        if item["id"] in prices:
            item["price"] = prices[item["id"]]
        if item["id"] in unavailable:
            item["available"] = False
    for g in base["modifier_groups"]:
        for o in g["options"]:
            if o["id"] in prices:
                o["price_delta"] = prices[o["id"]]
        if unavailable:
            g["options"] = [o for o in g["options"] if o["id"] not in unavailable]
    for key in ADDABLE:
        base[key] = list(base[key]) + list(overrides.additions.get(key, ()))
    base["version"] = f"{base['version']}+{store_id}.{rev}" if rev else base["version"]
    menu = Menu.from_json(msgspec.json.encode(base))
    too_large = contract.menu_too_large(menu)
    if too_large:
        raise MenuError(f"the menu of store {store_id} is too large for its bus: {too_large}")
    return menu


def publish(chain, body: bytes, by: str) -> str:
    """Publish a chain menu (already checked on its own) unless it breaks a
    store's own changes: Refused (409) naming each such store."""
    from restobox.cloud.chain import Refused

    broken = []
    for s in chain.stores():
        own = chain.store_menu(s["store_id"])
        if own is not None:
            try:
                merge(body, s["store_id"], own[0], msgspec.json.decode(own[1], type=Overrides))
            except MenuError as exc:
                broken.append(f"{s['store_id']}: {exc}")
    if broken:
        raise Refused(409, "store_menu_invalid", "with this menu, these stores' own changes break the menu's "
                      "rules (change them first): " + "; ".join(broken))
    return chain.publish_menu(body, by)
