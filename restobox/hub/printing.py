"""The hub's side of printing: which print jobs an order, a reprint or a
test page makes (``print/job``), the printing service's confirmations
(``print/state``), requests sent again until confirmed, and the kitchen
ticket printed when no screen acknowledged it (invariant 7)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import peewee as pw

from restobox import contract, db
from restobox.contract import OrderSubmit, Rejection, StaffCommand, StationTicket, topics
from restobox.hub import points
from restobox.hub.common import Effects, Request, iso, lines_dec, stored_ticket_msg
from restobox.orders import OPEN_STATES

if TYPE_CHECKING:
    from restobox.hub.service import Hub

log = logging.getLogger("restobox.hub")

FINAL_STATES = ("done", "failed")
"""A print job in one of these states never changes again at the printing service."""
# The requests the printing service confirmed and has not finished, through
# the partial index print_request_open (db.py): a year of finished requests
# is not read every time.
OPEN_REQUESTS_SQL = (
    'SELECT "job_id", "payload" FROM "print_request" INDEXED BY "print_request_open" '
    """WHERE "state" NOT IN ('done', 'failed') AND "confirmed_at" IS NOT NULL LIMIT 500""")


def local(hub: "Hub", when: datetime, seconds: bool = False) -> str:
    return when.astimezone(hub.tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def station_name(hub: "Hub", station: str) -> contract.Words:
    st = hub.idx.stations.get(station)
    return contract.Words(st.name.zh, st.name.en) if st else contract.Words(station, station)


def receipt_data(hub: "Hub", order: db.Order | None, **direct) -> contract.ReceiptData:
    s = hub.cfg.store
    header = contract.StoreHeader(name_zh=s.name_zh, name_en=s.name_en, address=s.address,
                                  phone=s.phone, tax_id=s.tax_id)
    if order is not None:
        direct = dict(
            order_id=order.id, number=order.number, business_date=order.business_date,
            accepted_at=local(hub, datetime.fromisoformat(order.accepted_at)), channel=order.channel,
            service=order.service, table=order.table, lang=order.lang, lines=lines_dec.decode(order.lines),
            subtotal=order.subtotal, tax=order.tax, total=order.total, currency=order.currency,
            payment_method=order.payment_method, payment_status=order.payment_status,
            payment_reference=order.payment_reference, offline=order.offline,
            provisional_number=order.provisional_number, note=order.note,
            loyalty=points.of_order(order.id), **ledger_of(order),
        )
    return contract.ReceiptData(store=header, tax_rate_bp=hub.menu.tax_rate_bp,
                                tax_inclusive=hub.menu.tax_inclusive, **direct)


def ledger_of(order: db.Order) -> dict:
    """What a receipt shows of the money the ledger holds for ``order``:
    its payment state, each payment's tender, the change, the refunds."""
    rows = db.rows_by(db.store_db, db.Payment, "order_id", order.id)
    if not rows:
        return {}
    rows.sort(key=lambda p: p.seq)
    pays = [p for p in rows if p.kind == "payment"]
    return dict(payment=order.payment,
                tenders=tuple(contract.Tender(method=p.method, amount=p.amount, tendered=p.tendered,
                                              reference=p.reference) for p in pays),
                change=sum(max(0, p.tendered - p.amount) for p in pays if p.method == "cash"),
                refunded=sum(p.amount for p in rows if p.kind == "refund"))


def paid_receipt(hub: "Hub", fx: Effects, order: db.Order, device: str, request_id: str, now: str) -> None:
    """The receipt of an order paid at a counter, with how it was paid and
    the change, on that counter's receipt printer ([hub.printing]
    receipt_printers), if it has one."""
    printer = hub.cfg.hub.printing.receipt_printers.get(device)
    if printer is None:
        return
    request(fx, contract.PrintJob(job_id=f"{order.id}:receipt:{printer}:paid-{request_id}", printer=printer,
                                  kind="receipt", order_id=order.id, receipt=receipt_data(hub, order)), now)


def request(fx: Effects, job: contract.PrintJob, at: str) -> None:
    """Record a print request (sent again until confirmed) and send it."""
    payload = contract.encode(job)
    db.PrintRequest.insert(job_id=job.job_id, printer=job.printer, kind=job.kind, order_id=job.order_id,
                           payload=payload.decode(), created_at=at).on_conflict_ignore().execute()
    fx.publish(topics.PRINT_JOB, job)
    fx.counters[f"print_requests.{job.kind}"] += 1


def kitchen_tickets(hub: "Hub", fx: Effects, order_id: str, now: datetime, tickets: list[StationTicket]) -> None:
    """The kitchen tickets of the stations that always print."""
    routes = hub.cfg.hub.printing
    at = iso(now)
    for t in tickets:
        sp = routes.stations.get(t.station)
        if sp is not None and sp.mode == "always":
            request(fx, contract.PrintJob(
                job_id=f"{order_id}:kitchen:{sp.printer}:{t.station}", printer=sp.printer,
                kind="kitchen", order_id=order_id,
                kitchen=contract.KitchenData(station_name=station_name(hub, t.station), ticket=t,
                                             printed_at=local(hub, now, seconds=True))), at)


def for_new_order(hub: "Hub", fx: Effects, sub: OrderSubmit, device: str, number: int, bdate: str,
                  now: datetime, priced, tickets: list[StationTicket],
                  loyalty: contract.LoyaltyResult | None = None, held: bool = False) -> None:
    """The kitchen tickets (not while the order is held: its payment
    prints them, kitchen_tickets) and the ordering device's receipt."""
    routes = hub.cfg.hub.printing
    at = iso(now)
    if not held:
        kitchen_tickets(hub, fx, sub.order_id, now, tickets)
    printer = routes.receipt_printers.get(device)
    # an order taken at the counter and not paid yet gets its receipt when
    # it is paid there (paid_receipt), with the tenders and the change
    if sub.channel == "counter" and sub.payment.status != "approved":
        printer = None
    if printer is not None:
        data = receipt_data(
            hub, None, order_id=sub.order_id, number=number, business_date=bdate,
            accepted_at=local(hub, now), channel=sub.channel, service=sub.service, table=sub.table,
            lang=sub.lang, lines=priced.lines, subtotal=priced.subtotal, tax=priced.tax,
            total=priced.total, currency=priced.currency, payment_method=sub.payment.method,
            payment_status=sub.payment.status, payment_reference=sub.payment.reference,
            offline=sub.offline, provisional_number=sub.provisional_number, note=sub.note, loyalty=loyalty)
        request(fx, contract.PrintJob(job_id=f"{sub.order_id}:receipt:{printer}", printer=printer, kind="receipt",
                                      order_id=sub.order_id, receipt=data), at)


def handle_state(hub: "Hub", fx: Effects, req: Request) -> None:
    """The printing service has the job (or says how it went)."""
    st: contract.PrintJobState = req.msg
    now = iso(hub.clock())
    # A job that is done or failed stays so at the printing service: an
    # older state arriving late (an answer to a resend crossing the last
    # state) does not undo it.
    (db.PrintRequest.update(confirmed_at=pw.fn.COALESCE(db.PrintRequest.confirmed_at, now),
                            state=st.state, reason=st.reason)
     .where(db.PrintRequest.job_id == st.job_id, db.PrintRequest.state.not_in(FINAL_STATES)).execute())
    if st.state in FINAL_STATES:
        hub.print_sent.pop(st.job_id, None)
    else:
        hub.print_sent[st.job_id] = time.monotonic()


def reprint(hub: "Hub", fx: Effects, cmd: StaffCommand, order: db.Order, now: str) -> tuple[str, str]:
    routes = hub.cfg.hub.printing
    if cmd.item_id:  # a station's kitchen ticket
        sp = routes.stations.get(cmd.item_id)
        t = db.Ticket.get_or_none(db.Ticket.id == f"{order.id}:{cmd.item_id}")
        if sp is None or t is None:
            raise Rejection("unknown_printer", f"no kitchen printer or ticket for {cmd.item_id}")
        printer, kind = sp.printer, "kitchen"
        data = {"kitchen": contract.KitchenData(
            station_name=station_name(hub, t.station), ticket=stored_ticket_msg(order, t),
            printed_at=local(hub, hub.clock(), seconds=True))}
    else:
        printer = routes.receipt_printers.get(order.device)
        if printer is None:
            raise Rejection("unknown_printer", f"no receipt printer for {order.device}")
        kind, data = "receipt", {"receipt": receipt_data(hub, order)}
    n = db.PrintRequest.select().where(db.PrintRequest.order_id == order.id, db.PrintRequest.kind == kind,
                                       db.PrintRequest.job_id.contains(":reprint-")).count() + 1
    suffix = f":{cmd.item_id}" if cmd.item_id else ""
    job_id = f"{order.id}:{kind}:{printer}{suffix}:reprint-{n}"
    request(fx, contract.PrintJob(job_id=job_id, printer=printer, kind=kind, order_id=order.id, reprint=True,
                                  **data), now)
    return order.id, job_id


def _printer_named(cmd: StaffCommand) -> str:
    printer = cmd.item_id or ""
    if not contract._DEVICE_RE.fullmatch(printer):
        raise Rejection("unknown_printer", repr(printer))
    return printer


def test_page(fx: Effects, cmd: StaffCommand, now: str) -> str:
    """A test page; whether the printer exists is the printing service's to
    say (it answers ``unknown_printer`` on print/state)."""
    printer = _printer_named(cmd)
    job_id = f"test:{printer}:{cmd.command_id}"
    request(fx, contract.PrintJob(job_id=job_id, printer=printer, kind="test"), now)
    return job_id


def report(fx: Effects, cmd: StaffCommand, now: str) -> str:
    """The day's summary a staff tool made from the store's databases
    (``restobox report --print``): printed as it is, like a test page."""
    printer = _printer_named(cmd)
    if cmd.report is None:
        raise Rejection("bad_schema", "print_report needs its report")
    job_id = f"report:{printer}:{cmd.command_id}"
    request(fx, contract.PrintJob(job_id=job_id, printer=printer, kind="report", report=cmd.report), now)
    return job_id


# ------------------------------------------------------------ periodically
def resend_unconfirmed(hub: "Hub", t: float) -> None:
    """A request the printing service has not confirmed is sent again (it
    deduplicates by job id). One it confirmed but has not reported done or
    failed is sent again every ``recheck_s`` (and at once after the hub
    starts): the printing service answers a job it already has with the
    job's state, so a state message the hub missed (the hub down while its
    broker session was lost, the printing service killed between storing a
    state and sending it) does not leave store.db saying "queued" or
    "printing" for a job that was printed."""
    cutoff = iso(hub.clock() - timedelta(seconds=3))
    for r in (db.PrintRequest.select().where(db.PrintRequest.confirmed_at.is_null(),
                                             db.PrintRequest.created_at < cutoff).limit(500)):
        if t - hub.print_sent.get(r.job_id, 0.0) >= 5.0:
            hub.print_sent[r.job_id] = t
            hub.bus.publish(topics.PRINT_JOB, r.payload.encode())
    every = hub.cfg.hub.printing.recheck_s
    due = hub.print_recheck_at
    if due is not None and t >= due:  # connected again: every open job asked about once more
        hub.print_recheck_at = None
        hub.print_rechecked = float("-inf")
        hub.print_sent.clear()
    if t - hub.print_rechecked < min(every, 5.0):
        return
    hub.print_rechecked = t
    for job_id, payload in db.store_db.execute_sql(OPEN_REQUESTS_SQL):
        if job_id not in hub.print_sent or t - hub.print_sent[job_id] >= every:
            hub.print_sent[job_id] = t
            hub.bus.publish(topics.PRINT_JOB, payload.encode())


def fallbacks(hub: "Hub", fx: Effects) -> None:
    """Invariant 7: a ticket no kitchen screen acknowledged in time is
    printed at the station's printer, and staff are told. Call inside a
    transaction."""
    stations = {s: c for s, c in hub.cfg.hub.printing.stations.items() if c.mode == "fallback"}
    now = hub.clock()
    for station, sp in stations.items():
        cutoff = iso(now - timedelta(seconds=sp.fallback_after_s))
        q = (db.Ticket.select(db.Ticket, db.Order).join(db.Order)
             .where(db.Ticket.station == station, db.Ticket.acked_at.is_null(), db.Ticket.state == "open",
                    db.Ticket.created_at < cutoff, db.Order.state.in_(sorted(OPEN_STATES))))
        for t in q:
            job_id = f"{t.order.id}:kitchen:{sp.printer}:{station}"
            if db.PrintRequest.get_or_none(db.PrintRequest.job_id == job_id):
                continue
            request(fx, contract.PrintJob(
                job_id=job_id, printer=sp.printer, kind="kitchen", order_id=t.order.id,
                kitchen=contract.KitchenData(station_name=station_name(hub, station),
                                             ticket=stored_ticket_msg(t.order, t),
                                             printed_at=local(hub, now, seconds=True), fallback=True)), iso(now))
            log.warning("ticket %s was not acknowledged in %.0f s; printing it at %s",
                        t.id, sp.fallback_after_s, sp.printer)
            fx.publish(topics.ALERTS, contract.Alert(
                source=hub.cfg.device.id, code="ticket_not_acknowledged",
                message=contract.REASONS["ticket_not_acknowledged"], severity="warning",
                subject=f"{station} #{t.order.number}", at=iso(now)))
