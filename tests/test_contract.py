"""The message contract: topics are built and parsed in one place, every
payload decodes strictly into a typed v1 message or becomes a reason code, and
every reason code has a sentence in Chinese and English."""

from __future__ import annotations

import json
import re

import pytest

from restobox import contract
from restobox.data import load_sample_menu
from restobox.contract import (
    MAX_PAYLOAD_BYTES,
    REASONS,
    Board,
    Health,
    OrderReply,
    OrderSubmit,
    OrderUpdate,
    PricedLine,
    PricedModifier,
    Presence,
    Rejection,
    RejectNotice,
    SoldOut,
    StaffCommand,
    StaffReply,
    StationEvent,
    StationStatus,
    StationTicket,
    SubmitLine,
    SubmitPayment,
    TicketItem,
    Words,
    decode,
    encode,
    parse_topic,
    topics,
)

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
ORDER_ID = "0b7e6f4a-3c1d-4e2f-9a8b-7c6d5e4f3a2b"
EVENT_ID = "5f0c2e1d-8a7b-4c3d-9e2f-1a0b9c8d7e6f"


# =========================================================================
# Topics
# =========================================================================


def test_topic_builders_give_the_documented_strings():
    assert topics.order_submit("kiosk-1") == "restobox/v1/order/submit/kiosk-1"
    assert topics.order_reply("kiosk-1") == "restobox/v1/order/reply/kiosk-1"
    assert topics.station_ticket("wok") == "restobox/v1/station/wok/ticket"
    assert topics.station_event("wok") == "restobox/v1/station/wok/event"
    assert topics.staff_command("staff-1") == "restobox/v1/staff/staff-1/command"
    assert topics.staff_reply("staff-1") == "restobox/v1/staff/staff-1/reply"
    assert topics.presence("kds-2") == "restobox/v1/presence/kds-2"
    assert topics.health("hub") == "restobox/v1/health/hub"


def test_fixed_topics_and_wildcards_are_the_documented_strings():
    assert topics.ORDER_SUBMIT_ALL == "restobox/v1/order/submit/+"
    assert topics.ORDER_UPDATE == "restobox/v1/order/update"
    assert topics.STATION_EVENT_ALL == "restobox/v1/station/+/event"
    assert topics.STAFF_COMMAND_ALL == "restobox/v1/staff/+/command"
    assert topics.BOARD == "restobox/v1/board/ready"
    assert topics.MENU == "restobox/v1/menu/current"
    assert topics.SOLDOUT == "restobox/v1/menu/soldout"
    assert topics.REJECTS == "restobox/v1/hub/reject"
    assert topics.PRESENCE_ALL == "restobox/v1/presence/+"
    assert topics.HEALTH_ALL == "restobox/v1/health/+"


BUILDERS = [
    topics.order_submit, topics.order_reply, topics.station_ticket, topics.station_event,
    topics.staff_command, topics.staff_reply, topics.presence, topics.health,
]
BAD_IDS = ["kiosk/1", "kiosk+", "kiosk#", "+", "#", "Kiosk-1", "KDS", "kiosk 1", " kiosk", "", "-kiosk",
           "a" * 33]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_topic_builders_refuse_ids_that_would_break_the_topic(build, bad):
    with pytest.raises(ValueError, match="bad device or station id"):
        build(bad)


def test_the_longest_allowed_id_is_accepted():
    assert topics.presence("a" * 32) == "restobox/v1/presence/" + "a" * 32


@pytest.mark.parametrize(
    ("build", "kind"),
    [
        (topics.order_submit, "order/submit"),
        (topics.order_reply, "order/reply"),
        (topics.station_ticket, "station/ticket"),
        (topics.station_event, "station/event"),
        (topics.staff_command, "staff/command"),
        (topics.staff_reply, "staff/reply"),
        (topics.presence, "presence"),
        (topics.health, "health"),
    ],
)
def test_parse_topic_gives_back_the_kind_and_id_of_a_built_topic(build, kind):
    for ident in ("kiosk-1", "wok", "0"):
        assert parse_topic(build(ident)) == (kind, ident)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "restobox",
        "restobox/v1",
        "restobox/v2/order/submit/kiosk-1",
        "other/v1/order/submit/kiosk-1",
        "restobox/v1/order/update",
        "restobox/v1/order/update/kiosk-1",
        "restobox/v1/order/submit",
        "restobox/v1/order/submit/kiosk-1/extra",
        "restobox/v1/board/ready",
        "restobox/v1/menu/current",
        "restobox/v1/presence/kiosk-1/extra",
        "restobox/v1/station/wok",
        "restobox/v1/station/wok/event/extra",
        "/restobox/v1/presence/kiosk-1",
    ],
)
def test_parse_topic_returns_none_for_foreign_topics(topic):
    assert parse_topic(topic) is None


@pytest.mark.parametrize(
    "topic",
    [
        topics.ORDER_SUBMIT_ALL,
        topics.STATION_EVENT_ALL,
        topics.STAFF_COMMAND_ALL,
        topics.PRESENCE_ALL,
        "restobox/v1/presence/Kiosk-1",
        "restobox/v1/presence/kiosk 1",
        "restobox/v1/order/submit/#",
    ],
)
def test_parse_topic_returns_none_for_wildcards_and_bad_ids(topic):
    assert parse_topic(topic) is None


@pytest.mark.parametrize(
    "topic",
    ["restobox/v1/station/wok/bogus", "restobox/v1/staff/staff-1/ticket", "restobox/v1/station/wok/command"],
)
def test_parse_topic_returns_none_for_unknown_station_and_staff_subtopics(topic):
    assert parse_topic(topic) is None


# =========================================================================
# Decoding
# =========================================================================


def _presence(**fields) -> bytes:
    body = {"v": 1, "device": "kiosk-1", "role": "kiosk", "state": "online", **fields}
    return json.dumps(body).encode()


def _reject(payload: bytes, type_=Presence, **kw) -> Rejection:
    with pytest.raises(Rejection) as exc:
        decode(payload, type_, **kw)
    return exc.value


def test_a_valid_payload_decodes_into_its_type():
    p = decode(_presence(at="2026-11-01T12:00:00+08:00"), Presence)
    assert p == Presence(device="kiosk-1", role="kiosk", state="online", at="2026-11-01T12:00:00+08:00")


def test_a_payload_over_the_limit_is_refused_as_payload_too_large_before_decoding():
    big = b"[" + b" " * MAX_PAYLOAD_BYTES + b"]"  # would be bad_schema if it were decoded
    assert _reject(big).reason == "payload_too_large"


def test_the_size_limit_is_inclusive_and_configurable():
    payload = _presence()
    assert decode(payload, Presence, max_bytes=len(payload)).device == "kiosk-1"
    assert _reject(payload, max_bytes=len(payload) - 1).reason == "payload_too_large"


@pytest.mark.parametrize("payload", [b"", b"not json", b'{"v":1,', b"{'v': 1}", b"\xff\xfe"])
def test_a_payload_that_is_not_json_is_refused_as_bad_json(payload):
    assert _reject(payload).reason == "bad_json"


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"hello"', b"42", b"null"])
def test_json_that_is_not_an_object_is_refused_as_bad_schema(payload):
    r = _reject(payload)
    assert r.reason == "bad_schema"
    assert "Expected `object`" in r.detail


def test_an_object_without_a_version_is_refused_as_bad_schema():
    body = json.loads(_presence())
    del body["v"]
    r = _reject(json.dumps(body).encode())
    assert r.reason == "bad_schema"
    assert "`v`" in r.detail


@pytest.mark.parametrize("v", ['"1"', "true", "1.5"])
def test_a_version_that_is_not_an_integer_is_refused_as_bad_schema(v):
    r = _reject(b'{"v": ' + v.encode() + b"}")
    assert r.reason == "bad_schema"
    assert "$.v" in r.detail


@pytest.mark.parametrize("v", [0, 2, 99])
def test_another_version_is_refused_as_unsupported_version(v):
    r = _reject(_presence(v=v))
    assert r.reason == "unsupported_version"
    assert f"v={v}" in r.detail


def test_an_unknown_field_is_refused_as_bad_schema_naming_the_field():
    r = _reject(_presence(colour="red"))
    assert r.reason == "bad_schema"
    assert "colour" in r.detail


def test_an_unknown_field_deep_inside_is_refused_naming_field_and_path():
    body = {"v": 1, "order_id": ORDER_ID, "channel": "kiosk", "service": "takeaway",
            "lines": [{"item_id": "mapo-tofu", "qty": 1, "price": 1}]}
    r = _reject(json.dumps(body).encode(), OrderSubmit)
    assert r.reason == "bad_schema"
    assert "price" in r.detail
    assert "$.lines[0]" in r.detail


def test_a_wrong_type_is_refused_as_bad_schema_with_the_path():
    body = {"v": 1, "order_id": ORDER_ID, "channel": "kiosk", "service": "takeaway",
            "lines": [{"item_id": "mapo-tofu", "qty": 1}, {"item_id": "fries", "qty": "2"}]}
    r = _reject(json.dumps(body).encode(), OrderSubmit)
    assert r.reason == "bad_schema"
    assert "$.lines[1].qty" in r.detail
    assert "int" in r.detail


def test_a_value_outside_its_literal_is_refused_as_bad_schema_with_the_path():
    r = _reject(_presence(state="asleep"))
    assert r.reason == "bad_schema"
    assert "$.state" in r.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [("device", "KDS 1"), ("device", "kds/1"), ("event_id", "not-a-uuid"),
     ("order_id", ORDER_ID.upper())],
)
def test_ids_that_break_their_pattern_are_refused_as_bad_schema(field, value):
    body = {"v": 1, "event_id": EVENT_ID, "kind": "bump", "order_id": ORDER_ID, "device": "kds-1",
            field: value}
    r = _reject(json.dumps(body).encode(), StationEvent)
    assert r.reason == "bad_schema"
    assert f"$.{field}" in r.detail


def test_a_missing_required_field_is_refused_as_bad_schema_naming_it():
    r = _reject(b'{"v": 1, "device": "kiosk-1", "state": "online"}')
    assert r.reason == "bad_schema"
    assert "role" in r.detail


# ------------------------------------------------------------ round trips
WORDS = Words("订单里没有菜品。", "The order has no items.")
NOTICE = RejectNotice(reason="empty_order", message=WORDS, topic="restobox/v1/order/submit/kiosk-1",
                      device="kiosk-1", order_id=ORDER_ID, at="2026-11-01T12:00:00+08:00")
PRICED = PricedLine(
    line=1, item_id="combo-kung-pao-chicken", name_zh="宫保鸡丁套餐", name_en="Kung Pao Chicken Combo",
    qty=2, unit_price=4500, line_total=9000, station="wok",
    modifiers=(
        PricedModifier(id="spice-hot", name_zh="特辣", name_en="Extra hot", price_delta=0),
        PricedModifier(id="combo-drink-milk-tea", name_zh="珍珠奶茶", name_en="Bubble milk tea",
                       price_delta=300, station="drinks"),
    ),
    allergens=("milk", "peanut"), note="少油",
)
TICKET_ITEM = TicketItem(line=1, item_id="combo-drink-milk-tea", name_zh="珍珠奶茶", name_en="Bubble milk tea",
                         qty=2, modifiers=(Words("少冰", "Less ice"),), allergens=("milk",), note="",
                         state="done", part_of="Kung Pao Chicken Combo")

MESSAGES = [
    OrderSubmit(
        order_id=ORDER_ID, channel="qr", service="dine_in", table="T12", lang="en",
        lines=(SubmitLine(item_id="combo-kung-pao-chicken", qty=2,
                          modifiers=("spice-hot", "combo-drink-milk-tea"), note="少油"),),
        expected_total=9000,
        payment=SubmitPayment(method="card", status="approved", amount=9000, intent_id="pi-1",
                              reference="ref-1"),
        offline=True, provisional_number="K-17", menu_version="2026-11-01.1", note="birthday",
    ),
    OrderReply(order_id=ORDER_ID, status="accepted", number=17, business_date="2026-11-01",
               subtotal=8491, tax=509, total=9000, lines=(PRICED,), duplicate=True,
               accepted_at="2026-11-01T12:00:00+08:00"),
    OrderReply(order_id=ORDER_ID, status="rejected", reason="price_mismatch",
               message=REASONS["price_mismatch"], detail={"expected": "8999", "total": "9000"}),
    StationTicket(ticket_id=f"{ORDER_ID}:drinks", order_id=ORDER_ID, number=17, station="drinks",
                  channel="kiosk", service="takeaway", table=None, items=(TICKET_ITEM,),
                  accepted_at="2026-11-01T12:00:00+08:00", state="done", revision=3),
    StationEvent(event_id=EVENT_ID, kind="item_bump", order_id=ORDER_ID, device="kds-1", line=2,
                 at="2026-11-01T12:03:00+08:00"),
    OrderUpdate(order_id=ORDER_ID, number=17, business_date="2026-11-01", state="in_progress",
                stations=(StationStatus(station="wok", state="done", acked=True),
                          StationStatus(station="drinks", state="open")),
                at="2026-11-01T12:03:00+08:00"),
    Board(business_date="2026-11-01", preparing=(17, 18), ready=(12,), at="2026-11-01T12:03:00+08:00"),
    SoldOut(items=("mapo-tofu", "combo-drink-milk-tea"), at="2026-11-01T12:03:00+08:00"),
    contract.StockLevels(version="2026-11-01.3", items={"mapo-tofu": 12, "rice-brown": 0},
                         at="2026-11-01T12:03:00+08:00"),
    StaffCommand(command_id=EVENT_ID, kind="void", order_id=ORDER_ID, reason="customer left"),
    StaffCommand(command_id=EVENT_ID, kind="eighty_six", item_id="mapo-tofu"),
    StaffReply(command_id=EVENT_ID, ok=False, reason="unknown_order", message=REASONS["unknown_order"]),
    contract.LoyaltyQuery(query_id=EVENT_ID, phone="13812345678"),
    contract.LoyaltyBalance(query_id=EVENT_ID, ok=True, member="138****5678", balance=1041, point_value_fen=10,
                            max_share_pct=50, points_per_yuan=5.0, min_redeem_points=100),
    contract.LoyaltyBalance(query_id=EVENT_ID, ok=False, reason="phone_invalid", message=REASONS["phone_invalid"]),
    OrderSubmit(order_id=ORDER_ID, channel="kiosk", service="takeaway", lines=(SubmitLine(item_id="x", qty=1),),
                loyalty=contract.LoyaltyClaim(phone="13812345678", redeem_points=100)),
    OrderReply(order_id=ORDER_ID, status="accepted", number=18, business_date="2026-11-01", total=8000,
               loyalty=contract.LoyaltyResult(member="138****5678", earned=40, redeemed=100, discount=1000,
                                              balance=940)),
    Presence(device="kds-1", role="kds", state="offline", at="2026-11-01T12:03:00+08:00"),
    Health(device="hub", role="hub", state="degraded", at="2026-11-01T12:03:00+08:00", reason="printer",
           counters={"orders": 12, "rejected": 1},
           details={"paper": "low", "backlog": 3, "disk_free": 0.5, "online": False, "note": None},
           last_errors=(NOTICE,)),
    NOTICE,
    contract.PrintJob(
        job_id=f"{ORDER_ID}:receipt:kiosk-1-printer", printer="kiosk-1-printer", kind="receipt",
        order_id=ORDER_ID,
        receipt=contract.ReceiptData(
            store=contract.StoreHeader(name_zh="示例餐厅", name_en="Sample Restaurant"),
            order_id=ORDER_ID, number=17, business_date="2026-11-01", accepted_at="2026-11-01 12:00",
            channel="kiosk", service="dine_in", table="T12", lines=(PRICED,), subtotal=8491, tax=509,
            total=9000, tax_rate_bp=600, offline=True, provisional_number="K-17"),
    ),
    contract.PrintJob(
        job_id=f"{ORDER_ID}:kitchen:kitchen-1:reprint-1", printer="kitchen-1", kind="kitchen",
        order_id=ORDER_ID, reprint=True,
        kitchen=contract.KitchenData(
            station_name=Words("饮品", "Drinks"), printed_at="2026-11-01 12:00:30", fallback=True,
            ticket=StationTicket(ticket_id=f"{ORDER_ID}:drinks", order_id=ORDER_ID, number=17,
                                 station="drinks", channel="kiosk", service="takeaway", items=(TICKET_ITEM,),
                                 accepted_at="2026-11-01T12:00:00+08:00")),
    ),
    contract.PrintJobState(job_id=f"{ORDER_ID}:receipt:p", printer="p", kind="receipt", state="held",
                           attempts=2, reason="paper_out", message=REASONS["paper_out"],
                           at="2026-11-01T12:03:00+08:00"),
    contract.PrinterStatus(printer="kitchen-1", state="paper_out", paper_near_end=True, queued=3, held=1,
                           reason="paper_out", message=REASONS["paper_out"], at="2026-11-01T12:03:00+08:00"),
    contract.MenuMessage(menu=load_sample_menu(), at="2026-11-01T12:03:00+08:00"),
    contract.MenuImages(menu_version="2026-11-01.1", at="2026-11-01T12:03:00+08:00", images={
        "kung-pao-chicken.jpg": contract.MenuImageRef(sha256="ab" * 32, bytes=41_000)}),
    contract.SyncRequest(device="kds-wok-1", at="2026-11-01T12:03:00+08:00"),
    contract.TillRequest(request_id=EVENT_ID, kind="pay", order_number=17, staff="Li",
                         tenders=(contract.Tender(method="cash", amount=5000, tendered=10000),
                                  contract.Tender(method="card", amount=4000, intent_id="pi-2", reference="ref-2")),
                         shift_id=EVENT_ID, offline=True, at="2026-11-01T12:05:00+08:00"),
    contract.TillRequest(request_id=EVENT_ID, kind="refund", order_id=ORDER_ID, reason="cold",
                         lines=(contract.RefundLine(line=2, qty=1),), manager_pin="2468", void=True),
    contract.TillReply(request_id=EVENT_ID, ok=True, order_id=ORDER_ID, number=17, total=9000, payment="paid",
                       paid=9000, change=5000, entries=(contract.LedgerEntry(
                           entry_id=f"{EVENT_ID}:1", order_id=ORDER_ID, kind="payment", method="cash",
                           amount=5000, tendered=10000, staff="Li", device="counter-1",
                           at="2026-11-01T12:05:00+08:00"),),
                       shift=contract.ShiftSummary(shift_id=EVENT_ID, device="counter-1", opened_at="x",
                                                   float_fen=50000, cash_in=5000, expected=55000,
                                                   counted=54900, over_short=-100)),
    contract.TillReply(request_id=EVENT_ID, ok=False, reason="already_paid", message=REASONS["already_paid"],
                       payment="paid", paid=9000, total=9000),
    contract.PaymentUpdate(order_id=ORDER_ID, number=17, business_date="2026-11-01", payment="partly_refunded",
                           paid=6000, total=9000, at="2026-11-01T12:09:00+08:00", entries=(contract.LedgerEntry(
                               entry_id=f"{EVENT_ID}:r1", order_id=ORDER_ID, kind="refund", method="cash",
                               amount=3000, reason="cold", at="2026-11-01T12:09:00+08:00"),)),
    contract.Alert(source="printing", code="paper_out", message=REASONS["paper_out"], severity="critical",
                   subject="kitchen-1", at="2026-11-01T12:03:00+08:00"),
    contract.UnpaidOrders(business_date="2026-11-01", more=3, at="2026-11-01T12:10:00+08:00", orders=(
        contract.UnpaidOrder(order_id=ORDER_ID, number=17, channel="kiosk", service="takeaway", total=9000,
                             due=9000, state="held", accepted_at="2026-11-01T12:00:00+08:00",
                             provisional_number="K1-007"),)),
    contract.PayRequest(request_id=EVENT_ID, order_id=ORDER_ID),
    contract.PayReply(request_id=EVENT_ID, ok=True, order_id=ORDER_ID, due=9000, intent=contract.PayIntent(
        merchant_no="RB0123456789abcdef0123456701", order_id=ORDER_ID, number=17, table="5", attempt=1,
        amount=9000, state="open", created_at="2026-11-01T12:00:00+08:00",
        expires_at="2026-11-01T12:05:00+08:00", at="2026-11-01T12:00:00+08:00")),
    contract.PayIntent(merchant_no="RB0123456789abcdef0123456702", order_id=ORDER_ID, attempt=2, amount=9000,
                       state="refund_due", reason="already_paid", trade_no="T42",
                       created_at="2026-11-01T12:00:00+08:00", expires_at="2026-11-01T12:05:00+08:00",
                       at="2026-11-01T12:01:00+08:00"),
    contract.PayResult(source="notify", fields={"out_trade_no": "RB0123456789abcdef0123456701", "amount": 9000,
                                                "status": "SUCCESS", "sign": "ABC"}),
    contract.PayStatus(available=False, reason="gateway_unreachable", at="2026-11-01T12:00:00+08:00"),
    contract.VoucherRequest(request_id=EVENT_ID, kind="redeem", code="880000000002", order_id=ORDER_ID),
    contract.VoucherReply(request_id=EVENT_ID, kind="verify", ok=False, reason="voucher_expired",
                          message=REASONS["voucher_expired"], code="880000000009",
                          title=Words("过期的代金券", "An expired voucher"), value_fen=2000, status="expired"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_encode_then_decode(msg):
    payload = encode(msg)
    assert json.loads(payload)["v"] == 1
    assert decode(payload, type(msg)) == msg


def test_every_message_type_with_required_fields_has_a_round_trip_case():
    covered = {type(m) for m in MESSAGES}
    message_types = {
        obj for obj in vars(contract).values()
        if isinstance(obj, type) and issubclass(obj, contract.Message) and obj is not contract.Message
    }
    assert message_types <= covered


def test_a_message_decoded_as_the_wrong_type_is_refused():
    r = _reject(encode(MESSAGES[-2]), StationEvent)  # a Presence is not a StationEvent
    assert r.reason == "bad_schema"


# =========================================================================
# Reasons
# =========================================================================


@pytest.mark.parametrize("code", sorted(REASONS))
def test_every_reason_has_a_chinese_and_an_english_sentence(code):
    words = REASONS[code]
    assert words.en.strip() and words.zh.strip()
    assert CJK.search(words.zh), f"{code}: zh {words.zh!r} has no Chinese characters"
    assert not CJK.search(words.en), f"{code}: en {words.en!r} has Chinese characters"
    assert words.en[0].isupper() and words.en.endswith((".", "?"))


def test_reason_codes_are_snake_case():
    for code in REASONS:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code


def test_a_rejection_carries_code_detail_extras_and_words():
    r = Rejection("bad_line", "line 4 at wok", line=4)
    assert r.reason == "bad_line"
    assert r.detail == "line 4 at wok"
    assert r.extra == {"line": "4"}
    assert r.words == REASONS["bad_line"]
    assert str(r) == "bad_line: line 4 at wok"
    assert str(Rejection("empty_order")) == "empty_order"


def test_a_rejection_with_an_unknown_reason_code_raises_key_error():
    with pytest.raises(KeyError, match="no_such_reason"):
        Rejection("no_such_reason")


# ------------------------------------------------------ limits before decoding
def _order_body(**changes) -> dict:
    body = {"v": 1, "order_id": ORDER_ID, "channel": "kiosk", "service": "takeaway",
            "lines": [{"item_id": "mapo-tofu", "qty": 1}]}
    body.update(changes)
    return body


@pytest.mark.parametrize(("name", "payload", "reason"), [
    ("brackets 1000 deep (the poison case)", b"[" * 1000 + b"]" * 1000, "too_deep"),
    ("an object 10,000 deep inside a field", b'{"v":1,"x":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001,
     "too_deep"),
    ("17 levels", json.dumps(_order_body(note=[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]])).encode(), "too_deep"),
    ("an array of 20,000 numbers", json.dumps(_order_body(lines=[1] * 20_000)).encode(), "too_many_items"),
    ("a note of 9,000 characters", json.dumps(_order_body(note="x" * 9000)).encode(), "string_too_long"),
    ("a 400-digit quantity", b'{"v":1,"qty":1' + b"0" * 400 + b"}", "number_out_of_range"),
    ("a quantity beyond 2**53", json.dumps(_order_body(expected_total=2**53)).encode(), "number_out_of_range"),
    ("a float beyond 1e15", b'{"v":1,"expected_total":1e300}', "number_out_of_range"),
    ("an exponent that overflows", b'{"v":1,"expected_total":1e400}', "number_out_of_range"),
    ("invalid UTF-8 inside a string", b'{"v":1,"note":"\xff\xfe"}', "bad_json"),
    ("invalid UTF-8 inside an unknown field", b'{"v":1,"zz":"\xc3\x28","order_id":"x"}', "bad_json"),
    ("a string never closed", b'{"v":1,"note":"abc', "bad_json"),
])
def test_a_payload_beyond_the_limits_is_refused_before_decoding_with_its_reason(name, payload, reason):
    r = _reject(payload, OrderSubmit)
    assert r.reason == reason, r
    assert r.words.en and r.words.zh


def test_the_limits_leave_every_real_message_alone():
    # deepest real messages: a kitchen print job, a report; the largest: the menu
    from restobox.data import load_sample_menu

    menu = contract.MenuMessage(menu=load_sample_menu(), at="2026-11-01T12:00:00+08:00")
    assert contract.decode(contract.encode(menu), contract.MenuMessage, max_bytes=4 << 20) == menu
    for msg in MESSAGES:
        assert contract.decode(contract.encode(msg), type(msg), max_bytes=4 << 20) == msg
    body = _order_body(expected_total=2**53 - 1, lines=[{"item_id": "a", "qty": 1}] * 1000)
    assert contract.decode(json.dumps(body).encode(), OrderSubmit).expected_total == 2**53 - 1
    # each limit itself is allowed
    contract.check_shape(json.dumps({"a": "x" * 8192, "b": [1] * 9999, "c": -(2**53 - 1), "d": 1e15}).encode())
    contract.check_shape(b"[" * 16 + b"]" * 16)


def test_brackets_and_digits_inside_strings_are_text_not_structure():
    note = "[" * 100 + "{" * 100 + "9" * 40 + "\\\"" + "," * 20_000
    body = _order_body(note=note[:200])
    assert contract.decode(json.dumps(body).encode(), OrderSubmit).note == note[:200]


def test_peek_reads_an_id_from_a_message_that_failed_and_nothing_from_a_poison_one():
    assert contract.peek(json.dumps(_order_body(lines="bad")).encode(), "order_id") == ORDER_ID
    assert contract.peek(b"[" * 1000 + b"]" * 1000, "order_id") == ""
    assert contract.peek(b'{"order_id":' + b"[" * 5000 + b"]" * 5000 + b"}", "order_id") == ""
    assert contract.peek(b'{"order_id": 5}', "order_id") == ""
    assert contract.peek(b"\xff", "order_id") == ""


@pytest.mark.parametrize("field", ["order_id", "table"])
def test_an_id_with_a_trailing_newline_is_refused(field):
    body = _order_body(service="dine_in", table="12")
    body[field] = body[field] + "\n"
    r = _reject(json.dumps(body).encode(), OrderSubmit)
    assert r.reason == "bad_schema" and f"$.{field}" in r.detail


@pytest.mark.parametrize(("type_", "body", "field"), [
    (StationEvent, {"event_id": EVENT_ID, "kind": "bump", "order_id": ORDER_ID, "device": "kds-1"}, "event_id"),
    (StationEvent, {"event_id": EVENT_ID, "kind": "bump", "order_id": ORDER_ID, "device": "kds-1"}, "device"),
    (contract.LoyaltyQuery, {"query_id": ORDER_ID, "phone": "13812345678"}, "query_id"),
    (contract.StaffCommand, {"command_id": ORDER_ID, "kind": "void", "order_id": ORDER_ID}, "command_id"),
    (contract.StaffCommand, {"command_id": ORDER_ID, "kind": "void", "order_id": ORDER_ID}, "order_id"),
])
def test_every_identifier_must_match_as_a_whole_string(type_, body, field):
    body = {"v": 1, **body}
    body[field] += "\n"
    r = _reject(json.dumps(body).encode(), type_)
    assert r.reason == "bad_schema" and f"$.{field}" in r.detail


def test_menu_ids_and_config_ids_match_as_whole_strings():
    from restobox import config
    from restobox.data import load_sample_menu
    from restobox.menu import Menu

    d = json.loads(load_sample_menu().to_json())
    d["items"][0]["id"] += "\n"
    with pytest.raises(Exception, match=r"\$\.items\[0\]\.id"):
        Menu.from_json(json.dumps(d).encode())
    with pytest.raises(config.ConfigError):
        config.parse('[device]\nid = "hub\\n"\nrole = "hub"\n')
