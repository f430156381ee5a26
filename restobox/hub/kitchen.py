"""What the kitchen screens send: station events (``station/<station>/event``:
ack, bump, item bump, recall; at ``expo`` the pass completes orders) and
resync requests (``station/<station>/sync``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from restobox import contract, db
from restobox.contract import Rejection, StationEvent, topics
from restobox.hub.common import Effects, Request, iso, json_enc, order_changed, order_update, outbox, progress, \
    stored_ticket_msg, ticket_msg, ticket_topic
from restobox.orders import LIVE_STATES, OPEN_STATES

if TYPE_CHECKING:
    from restobox.hub.service import Hub

log = logging.getLogger("restobox.hub")


def handle_event(hub: "Hub", fx: Effects, req: Request) -> None:
    station, ev = req.device, req.msg
    if db.ProcessedMessage.get_or_none(db.ProcessedMessage.id == ev.event_id):
        fx.counters["duplicate_events"] += 1
        return
    order = db.Order.get_or_none(db.Order.id == ev.order_id)
    if order is None:
        raise Rejection("unknown_order", ev.order_id)
    now = iso(hub.clock())
    db.ProcessedMessage.insert(id=ev.event_id, at=now).execute()
    tickets = {t.station: t for t in db.Ticket.select().where(db.Ticket.order == order.id)}
    if station == contract.EXPO_STATION:
        _expo_event(fx, order, tickets, ev, now)
        return
    t = tickets.get(station)
    if t is None:
        raise Rejection("not_on_station", f"{ev.order_id} at {station}", station=station)
    if ev.kind == "ack":
        if t.acked_at is None:
            db.Ticket.update(acked_at=now).where(db.Ticket.id == t.id).execute()
            t.acked_at = now
            # the expo shows which stations have the ticket
            fx.publish(topics.ORDER_UPDATE, order_update(order, order.state, progress(order, tickets).statuses(), now))
        fx.counters["acks"] += 1
        return
    prog = progress(order, tickets)
    before = order.state
    if ev.kind == "bump":
        changed = prog.bump(station)
    elif ev.kind == "item_bump":
        if ev.line is None:
            raise Rejection("bad_line", "item_bump needs a line")
        changed = prog.bump_line(station, ev.line)
    else:  # recall
        changed = prog.recall(station, ev.line)
    if not changed and prog.state == before:
        return
    items = prog.tickets[station]
    tstate = "done" if prog.station_done(station) else "open"
    db.Ticket.update(items=json_enc.encode(items).decode(), state=tstate, revision=t.revision + 1,
                     updated_at=now).where(db.Ticket.id == t.id).execute()
    outbox(f"{ev.event_id}", f"station.{ev.kind}", order.id,
           {"order_id": order.id, "station": station, "line": ev.line, "device": ev.device, "at": now}, now)
    fx.publish(topics.station_ticket(station), ticket_msg(order, t, items, tstate, t.revision + 1))
    order_changed(fx, order, prog.state, prog, now)
    fx.counters[f"events.{ev.kind}"] += 1


def _expo_event(fx: Effects, order: db.Order, tickets: dict, ev: StationEvent, now: str) -> None:
    prog = progress(order, tickets)
    if ev.kind == "ack":
        return
    if ev.kind == "bump":
        prog.complete()
    elif ev.kind == "recall":
        prog.recall_completed()
    else:
        raise Rejection("bad_transition", "expo bumps whole orders")
    outbox(f"{ev.event_id}", f"expo.{ev.kind}", order.id, {"order_id": order.id, "device": ev.device, "at": now}, now)
    order_changed(fx, order, prog.state, prog, now)
    fx.counters[f"events.expo_{ev.kind}"] += 1


def handle_sync(hub: "Hub", fx: Effects, req: Request) -> None:
    """Every open ticket of the station again (the expo: of every station,
    done ones of open orders too, and those of held orders: it follows
    whole orders, and shows the ones waiting for their payment)."""
    station, sync = req.device, req.msg
    if station != contract.EXPO_STATION:
        q = (db.Ticket.select(db.Ticket, db.Order).join(db.Order)
             .where(db.Order.state.in_(sorted(OPEN_STATES)), db.Ticket.station == station, db.Ticket.state == "open"))
    else:
        q = db.Ticket.select(db.Ticket, db.Order).join(db.Order).where(db.Order.state.in_(sorted(LIVE_STATES)))
    n = 0
    for t in q:
        fx.publish(ticket_topic(t.station, t.state), stored_ticket_msg(t.order, t))
        n += 1
    log.info("%s asked for %s's open tickets: sent %d", sync.device, station, n)
    fx.counters["syncs"] += 1
