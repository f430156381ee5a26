"""What the chain's cloud sends down through the sync service: a new menu
(``cloud/menu``) and stock counts (``cloud/stock``)."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

import peewee as pw

from restobox import db
from restobox.contract import Rejection
from restobox.hub.common import Effects, Request, iso, outbox
from restobox.menu import MenuIndex

if TYPE_CHECKING:
    from restobox.hub.service import Hub

log = logging.getLogger("restobox.hub")


def handle_menu(hub: "Hub", fx: Effects, req: Request) -> None:
    """A new menu: stored and in use from the next message on, in one step;
    orders already placed under the old one keep its prices for
    ``menu_grace_s``. A menu the store cannot price in its own currency is
    refused like a broken one."""
    new = req.msg.menu
    if new.version == hub.menu.version:
        fx.counters["menu_repeats"] += 1
        return
    if new.currency != hub.cfg.store.currency:
        raise Rejection("bad_menu", f"menu {new.version} is in {new.currency}; this store sells in "
                                    f"{hub.cfg.store.currency}")
    try:
        new.check()
        idx = MenuIndex(new)
    except Exception as exc:  # MenuError and anything the index finds
        raise Rejection("bad_menu", f"menu {new.version}: {exc}") from None
    now = iso(hub.clock())
    db.MenuVersion.insert(version=new.version, body=new.to_json().decode(), source="cloud",
                          applied_at=now).on_conflict_replace().execute()
    outbox(f"menu:{new.version}:{now}", "menu.applied", None,
           {"version": new.version, "previous": hub.menu.version, "at": now}, now)
    log.info("menu %s -> %s (%d items)", hub.menu.version, new.version, len(new.items))
    fx.menu = (new, idx)
    fx.counters["menu_updates"] += 1


def _stock_seen_id(version: str) -> str:
    """The processed-message id that marks a stock version applied (a
    version is up to 64 characters; the id column holds 36)."""
    return "stock:" + hashlib.sha256(version.encode()).hexdigest()[:30]


def handle_stock(hub: "Hub", fx: Effects, req: Request) -> None:
    """New counts: all of them replace the old in one step; what has none
    left is sold out, what has some again is back (unless staff switched it
    off themselves)."""
    msg = req.msg
    seen = _stock_seen_id(msg.version)
    current = db.StockLevel.select(db.StockLevel.version).limit(1).scalar()
    if current == msg.version or db.ProcessedMessage.get_or_none(db.ProcessedMessage.id == seen) is not None:
        # The same count again, or an older one the broker hands over again
        # (a hub killed before it acknowledged): applying it would undo the
        # orders counted down since.
        fx.counters["stock_repeats"] += 1
        return
    unknown = [i for i in msg.items if i not in hub.idx.items and i not in hub.idx.options]
    if unknown:
        raise Rejection("unknown_item", f"stock {msg.version}: not on the menu: {', '.join(sorted(unknown)[:5])}")
    now = iso(hub.clock())
    db.ProcessedMessage.insert(id=seen, at=now).on_conflict_ignore().execute()
    db.StockLevel.delete().execute()
    rows = [dict(item_id=i, remaining=n, version=msg.version, updated_at=now) for i, n in msg.items.items()]
    for chunk in pw.chunked(rows, 500):  # SQLite takes at most 32,766 variables a statement
        db.StockLevel.insert_many(chunk).execute()
    by_stock = {r.item_id for r in db.SoldOutItem.select().where(db.SoldOutItem.by == "stock")}
    for iid, n in msg.items.items():
        if n <= 0 and iid not in fx.sold_out:
            db.SoldOutItem.insert(item_id=iid, since=now, by="stock").on_conflict_ignore().execute()
            fx.sold_out.add(iid)
        elif n > 0 and iid in by_stock:
            db.SoldOutItem.delete().where(db.SoldOutItem.item_id == iid).execute()
            fx.sold_out.discard(iid)
    for iid in by_stock - set(msg.items):  # no limit any more
        db.SoldOutItem.delete().where(db.SoldOutItem.item_id == iid).execute()
        fx.sold_out.discard(iid)
    fx.sold_out_changed = True
    fx.stock_limited = bool(msg.items)
    outbox(f"stock:{msg.version}:{now}", "stock.applied", None,
           {"version": msg.version, "items": len(msg.items), "at": now}, now)
    fx.counters["stock_updates"] += 1
    log.info("stock %s: %d items counted", msg.version, len(msg.items))
