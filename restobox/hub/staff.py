"""Staff commands (``staff/<device>/command``): void, 86 and back, reprint,
test page, the day's report on paper. Each command id is carried out once;
a repeat is answered ok without acting again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from restobox import db
from restobox.contract import Rejection, StaffCommand, StaffReply, topics
from restobox.hub import points, printing
from restobox.hub.common import Effects, Request, iso, order_changed, outbox, progress, ticket_msg, ticket_topic

if TYPE_CHECKING:
    from restobox.hub.service import Hub


def handle(hub: "Hub", fx: Effects, req: Request) -> None:
    cmd: StaffCommand = req.msg
    now = iso(hub.clock())
    reply = StaffReply(command_id=cmd.command_id, ok=True)
    if db.ProcessedMessage.get_or_none(db.ProcessedMessage.id == cmd.command_id) is None:
        if cmd.kind == "void":
            reply.order_id = _void(hub, fx, cmd, req.device, now)
        elif cmd.kind == "reprint":
            reply.order_id, reply.job_id = printing.reprint(hub, fx, cmd, _order_for(hub, cmd), now)
        elif cmd.kind == "test_print":
            reply.job_id = printing.test_page(fx, cmd, now)
        elif cmd.kind == "print_report":
            reply.job_id = printing.report(fx, cmd, now)
        else:
            _eighty_six(hub, fx, cmd, req.device, now)
        db.ProcessedMessage.insert(id=cmd.command_id, at=now).execute()
    fx.publish(topics.staff_reply(req.device), reply, correlation=req.correlation, answer=True)


def refusal(command_id: str, r: Rejection) -> StaffReply:
    return StaffReply(command_id=command_id, ok=False, reason=r.reason, message=r.words)


def _order_for(hub: "Hub", cmd: StaffCommand) -> db.Order:
    """The order a command names: by id, or by today's order number."""
    if cmd.order_id:
        order = db.row_by(db.store_db, db.Order, "id", cmd.order_id)
    elif cmd.order_number:
        order = (db.Order.select().where(db.Order.business_date == hub.business_date(hub.clock()),
                                         db.Order.number == cmd.order_number).first())
    else:
        raise Rejection("bad_schema", f"{cmd.kind} needs order_id or order_number")
    if order is None:
        raise Rejection("unknown_order", cmd.order_id or f"number {cmd.order_number} today")
    return order


def _void(hub: "Hub", fx: Effects, cmd: StaffCommand, device: str, now: str) -> str:
    order = _order_for(hub, cmd)
    void_order(fx, order, cmd.reason or f"voided by {device}", now)
    return order.id


def void_order(fx: Effects, order: db.Order, reason: str, now: str) -> None:
    """Void an order (a staff command, or the counter's void with refund,
    after its refund in the same transaction). Money paid and not given
    back must be refunded first: refund_required."""
    if order.paid > 0:
        raise Rejection("refund_required", f"{order.id}: {order.paid} fen paid and not refunded")
    tickets = {t.station: t for t in db.Ticket.select().where(db.Ticket.order == order.id)}
    prog = progress(order, tickets)
    prog.void()
    for t in tickets.values():
        db.Ticket.update(state="voided", revision=t.revision + 1, updated_at=now).where(db.Ticket.id == t.id).execute()
        # a held order's tickets were only ever on the expo screen
        fx.publish(ticket_topic(t.station, t.state),
                   ticket_msg(order, t, prog.tickets[t.station], "voided", t.revision + 1))
    order_changed(fx, order, "voided", prog, now, reason=reason)
    points.reverse(fx, order, now)
    fx.counters["voided"] += 1


def _eighty_six(hub: "Hub", fx: Effects, cmd: StaffCommand, device: str, now: str) -> None:
    iid = cmd.item_id or ""
    if iid not in hub.idx.items and iid not in hub.idx.options:
        raise Rejection("unknown_item", repr(iid))
    if cmd.kind == "eighty_six":
        db.SoldOutItem.insert(item_id=iid, since=now, by=device).on_conflict_ignore().execute()
        fx.sold_out.add(iid)
    else:
        db.SoldOutItem.delete().where(db.SoldOutItem.item_id == iid).execute()
        fx.sold_out.discard(iid)
    outbox(f"{cmd.command_id}", f"menu.{cmd.kind}", None, {"item_id": iid, "by": device, "at": now}, now)
    fx.sold_out_changed = True

