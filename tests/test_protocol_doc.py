"""docs/protocol.md's walkthrough really works.

The walkthrough "Watch an order flow with mosquitto_pub and mosquitto_sub" is
a list of ```sh blocks, each starting with ``# setup`` or ``# step N``; a step
whose marker line says "keeps running" is a watcher a person leaves open in
its own terminal. This test runs every block with bash, in order, exactly as
written, against a real mosquitto (the project's config) and a real hub, laid
out as ``./run demo`` lays out ``var/demo/``. It then checks what the
mosquitto clients printed and what the store database holds.

Around the doc's commands the test adds only a prelude: ``mosquitto_sub``
and ``mosquitto_rr`` get a ``-W`` timeout, so nothing can hang or outlive the
test; the watchers also get ``-d``, whose "received SUBACK" line tells the
test a watcher is subscribed before the next step publishes, and run
line-buffered (``stdbuf -oL``) so their output can be read as it comes. Every
step runs in its own process group, killed at the end.

The other tests check the reference parts against the code: every topic of
``contract.topics``, every reason code with its sentences, and every role
template's ACL lines are in the doc's tables; every field of every message
type is in its table, with "required" or its default as the decoder has it
(``v`` is required everywhere); every made or captured example has every
field of its type, nested ones included; §2 lists exactly the hub's
``SUBSCRIPTIONS``; §3.11 lists exactly the counters the hub's code writes;
§5 says of each kind of bad payload the code ``contract.decode`` gives it,
and its limits are ``contract``'s MAX_* values, refused just past them with
the code the table names; the identifier patterns shown are the code's. One
test runs a real hub to prove what the doc promises of it: every request is
answered once on its device's reply topic, even one that did not decode,
every refusal on every topic is announced and counted, and a menu in another
currency is refused.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "protocol.md"
WALKTHROUGH_HEADING = re.compile(
    r"^##\s+(?:\d+\.\s+)?Watch an order flow with mosquitto_pub and mosquitto_sub\s*$", re.M)
MARKER = re.compile(r"^# (setup|step (\d+))\b(.*)$")
WAIT_S = 15.0
STEP_TIMEOUT_S = 60
WATCHER_LIFETIME_S = 150  # -W for watchers: outlives the walkthrough, not the test

ORDER = "c0888368-c195-4c89-a71d-027a37dc0658"
VOIDED_ORDER = "1bb18424-2080-43d2-a124-bcec9f9628d5"
REFUSED_ORDER = "6d54ec2e-4f42-46a0-853d-1ffaff27ad47"
MY_DEVICES = ("my-monitor", "my-kiosk", "my-wok-screen", "my-wok-bumper", "my-expo", "my-staff")


# ------------------------------------------------------------ the doc's blocks


@dataclass
class Block:
    name: str  # "setup" or "step N"
    number: int  # 0 for setup
    keeps_running: bool
    script: str


def walkthrough_blocks(text: str) -> list[Block]:
    m = WALKTHROUGH_HEADING.search(text)
    assert m, "docs/protocol.md has no walkthrough heading"
    section = text[m.end():]
    nxt = re.search(r"^## ", section, re.M)
    if nxt:
        section = section[: nxt.start()]
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```\s*$", section, re.M | re.S):
        first = body.splitlines()[0] if body.strip() else ""
        mm = MARKER.match(first)
        assert mm, f"a ```sh block of the walkthrough does not start with '# setup' or '# step N':\n{body}"
        blocks.append(Block(mm.group(1), int(mm.group(2) or 0), "keeps running" in mm.group(3), body))
    return blocks


def test_walkthrough_blocks_are_numbered_in_order():
    blocks = walkthrough_blocks(DOC.read_text(encoding="utf-8"))
    assert [b.name for b in blocks[:1]] == ["setup"]
    steps = [b.number for b in blocks[1:]]
    assert steps == list(range(1, len(steps) + 1)), steps
    assert len(steps) >= 10
    # every command line that talks to the broker uses the doc's variables,
    # never a literal port or a path outside the demo's layout
    for b in blocks[1:]:
        for line in b.script.splitlines():
            if re.search(r"\bmosquitto_(sub|pub|rr)\b", line):
                assert '-p "$PORT"' in line, line
                assert "-P \"$(cat \"$BROKER/credentials/" in line, line


# ------------------------------------------------ the reference parts match the code


def doc_section(text: str, heading_words: str) -> str:
    m = re.search(rf"^## (?:\d+\. )?{re.escape(heading_words)}.*$", text, re.M)
    assert m, f"docs/protocol.md has no section {heading_words!r}"
    rest = text[m.end():]
    nxt = re.search(r"^## ", rest, re.M)
    return rest[: nxt.start()] if nxt else rest


def table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*-", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def contract_topics() -> set[str]:
    """Every topic of contract.topics, with "+" for a device, station or printer."""
    from restobox.contract import topics

    out = set()
    for name, value in vars(topics).items():
        if name.startswith("_"):
            continue
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, classmethod):
            out.add(getattr(topics, name)("zz-placeholder").replace("zz-placeholder", "+"))
    return out


def test_topic_table_lists_every_topic_of_the_contract():
    rows = table_rows(doc_section(DOC.read_text(encoding="utf-8"), "Topics"))
    documented = set()
    for row in rows[1:]:
        m = re.fullmatch(r"`(restobox/v1/[^`]+)`", row[0])
        assert m, row
        documented.add(re.sub(r"<[a-z]+>", "+", m.group(1)))
    assert documented == contract_topics()


def reason_rows() -> list[list[str]]:
    """The rows of §5's reason table (its subsections have tables of their own)."""
    section = doc_section(DOC.read_text(encoding="utf-8"), "Reason codes")
    return table_rows(re.split(r"^### ", section, flags=re.M)[0])


def test_reason_table_has_every_code_with_its_sentences():
    from restobox.contract import REASONS

    rows = reason_rows()
    assert rows[0][:3] == ["Code", "English", "中文"]
    table = {}
    for row in rows[1:]:
        code = row[0].strip("`")
        assert code not in table, f"{code} twice"
        assert len(row) == 4 and row[3], f"{code}: say when it is used"
        table[code] = (row[1], row[2])
    assert set(table) == set(REASONS)
    for code, words in REASONS.items():
        assert table[code] == (words.en, words.zh), code


def test_acl_tables_match_the_role_templates():
    section = doc_section(DOC.read_text(encoding="utf-8"), "Who may publish and subscribe what")
    access_words = {"read": "read", "write": "write", "readwrite": "read and write"}
    roles = sorted((REPO / "restobox" / "broker_config" / "roles").glob("*.acl"))
    assert roles
    for role_file in roles:
        role = role_file.stem
        m = re.search(rf"^\*\*{role}\*\*.*?(?=^\*\*|\Z)", section, re.M | re.S)
        assert m, f"no ACL table for role {role}"
        rows = table_rows(m.group(0))
        granted = {(row[0], t) for row in rows[1:] for t in re.findall(r"`([^`]+)`", row[1])}
        station = "expo" if role == "expo" else "<station>"
        expected = set()
        for line in role_file.read_text().splitlines():
            words = line.split()
            if words[:1] == ["topic"]:
                topic = words[2].replace("{device}", "<device>").replace("{station}", station)
                expected.add((access_words[words[1]], topic))
        assert granted == expected, role
    base = (REPO / "restobox" / "broker_config" / "acl.base").read_text()
    for pattern in re.findall(r"^pattern (\w+) (\S+)$", base, re.M):
        assert f"| {pattern[0]} | `{pattern[1].replace('%u', '<device>')}` |" in section, pattern


# ------------------------------------------ messages: examples and field tables


def doc_subsection(text: str, number: str) -> str:
    """The body of ``### <number> ...`` up to the next ``###`` or ``##``."""
    m = re.search(rf"^### {re.escape(number)} .*$", text, re.M)
    assert m, f"docs/protocol.md has no section {number}"
    rest = text[m.end():]
    nxt = re.search(r"^###? ", rest, re.M)
    return rest[: nxt.start()] if nxt else rest


def message_types() -> dict[str, tuple[type, ...]]:
    """Which message types each subsection of "3. Messages" shows."""
    from restobox import contract as c

    return {
        "3.1": (c.OrderSubmit,), "3.2": (c.OrderReply,), "3.3": (c.StationTicket,),
        "3.4": (c.StationEvent,), "3.5": (c.OrderUpdate,), "3.6": (c.StaffCommand, c.StaffReply),
        "3.7": (c.Board,), "3.8": (c.SoldOut, c.StockLevels), "3.9": (c.MenuMessage,),
        "3.10": (c.Presence,), "3.11": (c.Health,), "3.12": (c.RejectNotice,),
        "3.13": (c.PrintJob, c.PrintJobState, c.PrinterStatus), "3.14": (c.Alert,),
        "3.15": (c.SyncRequest,), "3.16": (c.LoyaltyQuery, c.LoyaltyBalance), "3.17": (c.MenuImages,),
        "3.18": (c.TillRequest, c.TillReply, c.PaymentUpdate), "3.19": (c.UnpaidOrders,),
        "3.20": (c.PayRequest, c.PayReply, c.PayIntent, c.PayResult, c.PayStatus),
        "3.21": (c.VoucherRequest, c.VoucherReply),
    }


def json_examples(section: str) -> list[tuple[str, str]]:
    """(the paragraph just before it, the JSON) for every ```json block; the
    paragraph is "" when the block follows another block directly."""
    out = []
    last_end = 0
    for m in re.finditer(r"^```json\n(.*?)^```\s*$", section, re.M | re.S):
        before = section[last_end: m.start()].strip()
        out.append((before.split("\n\n")[-1] if before else "", m.group(1).strip()))
        last_end = m.end()
    return out


def typed_payloads(text: str) -> set[str]:
    """Every payload a person types in the walkthrough (``-m '...'``)."""
    return {p for b in walkthrough_blocks(text) for p in re.findall(r"-m '([^']*)'", b.script)}


def missing_fields(obj, raw, path: str) -> list[str]:
    """Fields of every struct in ``obj`` (decoded from ``raw``) that ``raw``
    leaves out, nested structs included."""
    if isinstance(obj, msgspec.Struct):
        out = []
        for f in msgspec.structs.fields(type(obj)):
            if f.encode_name not in raw:
                out.append(f"{path}.{f.encode_name}")
            else:
                out += missing_fields(getattr(obj, f.name), raw[f.encode_name], f"{path}.{f.encode_name}")
        return out
    if isinstance(obj, (tuple, list)):
        return [x for i, (o, r) in enumerate(zip(obj, raw)) for x in missing_fields(o, r, f"{path}[{i}]")]
    return []


def test_every_example_has_every_field_of_its_type():
    """The hub (and contract.encode) always writes every field, defaults
    included, so a made or captured example shows them all. Only what a
    person types in the walkthrough ("as typed") may leave fields out."""
    text = DOC.read_text(encoding="utf-8")
    typed = typed_payloads(text)
    sections = re.findall(r"^### (3\.\d+) ", text, re.M)
    assert sections and set(sections) == set(message_types()), f"say which types §§{sections} show"
    problems = []
    for number, types in message_types().items():
        for intro, example in json_examples(doc_subsection(text, number)):
            raw = json.loads(example)
            fits = []
            for t in types:
                try:
                    fits.append((t, msgspec.json.decode(example.encode(), type=t)))
                except msgspec.ValidationError:
                    pass
            if len(fits) != 1:
                problems.append(f"§{number}: an example is not exactly one of {[t.__name__ for t in types]}:"
                                f" {example[:120]}")
                continue
            t, obj = fits[0]
            if "as typed" in intro:
                if example not in typed:
                    problems.append(f"§{number}: an example said to be typed is not in the walkthrough")
                continue
            gaps = missing_fields(obj, raw, t.__name__)
            if gaps:
                problems.append(f"§{number}: the {t.__name__} example lacks {', '.join(gaps)}")
    assert not problems, "\n".join(problems)


def field_tables() -> dict[type, tuple[str, str | None]]:
    """Each documented struct: (subsection, a marker in it after which its
    table is the first one; None: the subsection's first table)."""
    from restobox import contract as c

    return {
        c.OrderSubmit: ("3.1", None), c.LoyaltyClaim: ("3.1", "#### LoyaltyClaim"),
        c.SubmitLine: ("3.1", "#### SubmitLine"), c.SubmitPayment: ("3.1", "#### SubmitPayment"),
        c.OrderReply: ("3.2", None), c.LoyaltyResult: ("3.2", "#### LoyaltyResult"),
        c.PricedLine: ("3.2", "#### PricedLine"), c.PricedModifier: ("3.2", "#### PricedModifier"),
        c.StationTicket: ("3.3", None), c.TicketItem: ("3.3", "#### TicketItem"),
        c.StationEvent: ("3.4", None),
        c.OrderUpdate: ("3.5", None), c.StationStatus: ("3.5", "#### StationStatus"),
        c.StaffCommand: ("3.6", None), c.StaffReply: ("3.6", "`StaffReply`:"),
        c.Board: ("3.7", None), c.SoldOut: ("3.8", None), c.StockLevels: ("3.8", "`StockLevels`:"),
        c.MenuMessage: ("3.9", None), c.Presence: ("3.10", None), c.Health: ("3.11", None),
        c.RejectNotice: ("3.12", None),
        c.PrintJob: ("3.13", "`restobox/v1/print/job` —"),
        c.PrintJobState: ("3.13", "`restobox/v1/print/state` —"),
        c.PrinterStatus: ("3.13", "`restobox/v1/print/printer/<printer>` —"),
        c.Alert: ("3.14", None), c.SyncRequest: ("3.15", None),
        c.LoyaltyQuery: ("3.16", "LoyaltyQuery:"), c.LoyaltyBalance: ("3.16", "LoyaltyBalance:"),
        c.MenuImages: ("3.17", None), c.MenuImageRef: ("3.17", "#### MenuImageRef"),
        c.TillRequest: ("3.18", "`TillRequest`:"), c.Tender: ("3.18", "#### Tender"),
        c.RefundLine: ("3.18", "#### RefundLine"), c.TillReply: ("3.18", "`TillReply`:"),
        c.LedgerEntry: ("3.18", "#### LedgerEntry"), c.ShiftSummary: ("3.18", "#### ShiftSummary"),
        c.PaymentUpdate: ("3.18", "`PaymentUpdate` (on"),
        c.UnpaidOrders: ("3.19", None), c.UnpaidOrder: ("3.19", "#### UnpaidOrder"),
        c.PayRequest: ("3.20", "`PayRequest`:"), c.PayReply: ("3.20", "`PayReply`:"),
        c.PayIntent: ("3.20", "#### PayIntent"), c.PayResult: ("3.20", "`PayResult` (sync"),
        c.PayStatus: ("3.20", "`PayStatus` (sync"),
        c.VoucherRequest: ("3.21", "`VoucherRequest`:"), c.VoucherReply: ("3.21", "`VoucherReply`:"),
    }


def field_table(text: str, number: str, marker: str | None) -> list[list[str]]:
    section = doc_subsection(text, number)
    if marker is not None:
        at = section.find(marker)
        assert at >= 0, f"§{number} has no {marker!r}"
        section = section[at + len(marker):]
    m = re.search(r"^\| Field \|.*?(?=^[^|]|\Z)", section, re.M | re.S)
    assert m, f"§{number}: no field table after {marker!r}"
    return table_rows(m.group(0))


def table_fields(rows: list[list[str]]) -> dict[str, list[str]]:
    """field name -> its row (a row may name several: `name_zh`, `name_en`)."""
    return {name: row for row in rows[1:] for name in re.findall(r"`([^`]+)`", row[0])}


def test_every_field_of_every_documented_struct_is_in_its_table():
    text = DOC.read_text(encoding="utf-8")
    problems = []
    for t, (number, marker) in field_tables().items():
        documented = set(table_fields(field_table(text, number, marker)))
        code = {f.encode_name for f in msgspec.structs.fields(t)}
        if code - documented:
            problems.append(f"§{number} {t.__name__}: no row for {sorted(code - documented)}")
        if documented - code:
            problems.append(f"§{number} {t.__name__}: rows for fields it does not have: {sorted(documented - code)}")
    assert not problems, "\n".join(problems)


def _as_json(value):
    return json.loads(msgspec.json.encode(value))


def test_default_column_says_what_the_decoder_does():
    """A field is "required" exactly when the decoder refuses a message
    without it; otherwise the column shows the default it takes. ``v`` is
    required everywhere: a message without it is refused (bad_schema)."""
    from restobox import contract

    assert_rejected(b'{"order_id":"c0888368-c195-4c89-a71d-027a37dc0658"}', contract.OrderSubmit, "bad_schema")
    text = DOC.read_text(encoding="utf-8")
    problems = []
    checked = 0
    for t, (number, marker) in field_tables().items():
        rows = field_table(text, number, marker)
        header = rows[0]
        if "Default" not in header:
            continue
        col = header.index("Default")
        fields = {f.encode_name: f for f in msgspec.structs.fields(t)}
        for name, row in table_fields(rows).items():
            f = fields.get(name)
            if f is None:
                continue
            cell = row[col]
            checked += 1
            if name == "v" or f.required:
                if cell != "required":
                    problems.append(f"§{number} {t.__name__}.{name}: required, the table says {cell!r}")
                continue
            if cell == "required":
                problems.append(f"§{number} {t.__name__}.{name}: may be left out, the table says required")
                continue
            default = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
            try:
                shown = json.loads(cell.strip("`"))
            except ValueError:
                continue  # described, not a JSON value ({"method":"counter",...})
            if shown != _as_json(default):
                problems.append(f"§{number} {t.__name__}.{name}: default {_as_json(default)!r}, table says {cell}")
    assert checked > 30
    # every table of the doc: a row for v gives no default
    for table in re.findall(r"(?:^\|.*\n)+", text, re.M):
        rows = table_rows(table)
        if "Default" in rows[0]:
            col = rows[0].index("Default")
            for row in rows[1:]:
                if row[0] == "`v`" and row[col] != "required":
                    problems.append(f"a table gives v the default {row[col]!r}: a message without v is refused")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------- topics and counters


def hub_sources() -> list[Path]:
    """The hub's code: restobox/hub.py, or the package restobox/hub/, and
    the retention helpers it counts through (restobox/retention_common.py)."""
    files = (sorted((REPO / "restobox").glob("hub.py")) + sorted((REPO / "restobox" / "hub").glob("*.py"))
             + [REPO / "restobox" / "retention_common.py"])
    assert files, "no hub source"
    return files


def hub_subscriptions() -> dict[str, str]:
    import importlib

    mod = importlib.import_module("restobox.hub")
    subs = getattr(mod, "SUBSCRIPTIONS", None)
    if subs is None:  # the package: whichever module defines it
        for f in hub_sources():
            if f.parent.name == "hub" and f.stem != "__init__":
                subs = getattr(importlib.import_module(f"restobox.hub.{f.stem}"), "SUBSCRIPTIONS", None)
                if subs is not None:
                    break
    assert subs, "restobox.hub has no SUBSCRIPTIONS"
    return subs


def test_the_hubs_subscriptions_are_listed():
    section = doc_section(DOC.read_text(encoding="utf-8"), "Topics")
    m = re.search(r"The hub subscribes\s+to\s(.*?)\.\s*$", section, re.M | re.S)
    assert m, "§2 does not say what the hub subscribes to"
    listed = re.findall(r"`([^`]+)`", m.group(1))
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == set(hub_subscriptions().values())


COUNTER_WRITE = re.compile(r"""counters\[\s*(f?)(["'])(.+?)\2\s*\]""")
COUNTER_UPDATE = re.compile(r"""counters\.update\(\s*\{(.*?)\}\s*\)""", re.S)
NOT_PUBLISHED = re.compile(r"""\bk\s*!=\s*["']([\w.]+)["']""")  # counters left out of the health


def _placeholder(expr: re.Match) -> str:
    # {r.reason} -> <reason>, {ev.kind} -> <kind>
    return "<" + re.findall(r"\w+", expr.group(1))[-1] + ">"


def hub_counter_names() -> set[str]:
    names, hidden = set(), set()
    for f in hub_sources():
        src = f.read_text(encoding="utf-8")
        for fmt, _, name in COUNTER_WRITE.findall(src):
            names.add(re.sub(r"\{([^{}]+)\}", _placeholder, name) if fmt else name)
        for body in COUNTER_UPDATE.findall(src):
            names.update(re.findall(r"""["']([\w.]+)["']\s*:""", body))
        hidden.update(NOT_PUBLISHED.findall(src))
    return names - hidden


def test_every_hub_counter_is_in_the_health_section():
    section = doc_subsection(DOC.read_text(encoding="utf-8"), "3.11")
    row = next((r for r in table_rows(section) if r[0] == "`counters`"), None)
    assert row, "§3.11 has no counters row"
    m = re.search(r"Hub: (.*?)(?:\. [A-Z]\w*:|$)", row[2])
    assert m, "§3.11's counters row has no list for the hub"
    documented = set(re.findall(r"`([^`]+)`", m.group(1)))
    code = hub_counter_names()
    assert {"accepted", "rejected"} <= code, "the scan of the hub's code found no counters"
    assert code - documented == set(), f"counters the hub writes, not in §3.11: {sorted(code - documented)}"
    assert documented - code == set(), f"§3.11 lists counters the hub never writes: {sorted(documented - code)}"


# ------------------------------------------------ reason codes and decoding


def assert_rejected(payload: bytes, type_, reason: str) -> None:
    from restobox import contract

    with pytest.raises(contract.Rejection) as got:
        contract.decode(payload, type_)
    assert got.value.reason == reason, (payload[:80], got.value)


def reason_when() -> dict[str, str]:
    rows = reason_rows()
    header = rows[0]
    assert header[:4] == ["Code", "English", "中文", "When"]
    return {row[0].strip("`"): row[3] for row in rows[1:] if len(row) >= 4 and row[0].startswith("`")}


UUID = "c0888368-c195-4c89-a71d-027a37dc0658"


def decoding_probes() -> list[tuple[str, bytes, str]]:
    """(what the When column says, a submission that is it, the code the doc gives it)."""
    good = ('{"v":1,"order_id":"%s","channel":"kiosk","service":"takeaway",'
            '"lines":[{"item_id":"kung-pao-chicken","qty":1}]}')
    return [
        ("not JSON", b"{this is not json", "bad_json"),
        ("UTF-8", (good % UUID).replace('"kiosk"', '"kiosk\xff"').encode("latin-1"), "bad_json"),
        ("UTF-8", b'{"v":1,"note":"\xc3\x28"}', "bad_json"),
        ("never closed", b'{"v":1,"order_id":"%s","note":"abc}' % UUID.encode(), "bad_json"),
        ('`"v"` missing', (good % UUID).replace('"v":1,', "").encode(), "bad_schema"),
        ("trailing newline", (good % (UUID + "\\n")).encode(), "bad_schema"),
        ('`"v"` is not 1', (good % UUID).replace('"v":1', '"v":2').encode(), "unsupported_version"),
    ]


def test_reason_table_says_when_the_decoder_gives_each_code():
    """What contract.decode answers, for each kind of bad payload the When
    column names, is the code the doc gives it (and no other row names it)."""
    from restobox import contract

    when = reason_when()
    for words, payload, reason in decoding_probes():
        assert_rejected(payload, contract.OrderSubmit, reason)
        assert words in when[reason], f"§5: the {reason} row does not say {words!r}"
        others = [code for code, w in when.items() if code != reason and words in w]
        assert not others, f"§5: {words!r} is also in the row of {others}"


def limits_rows() -> list[list[str]]:
    """The rows of §5's "Limits before decoding" table (header first)."""
    text = doc_section(DOC.read_text(encoding="utf-8"), "Reason codes")
    m = re.search(r"^### Limits before decoding\s*$(.*?)(?=^###? |\Z)", text, re.M | re.S)
    assert m, "§5 has no 'Limits before decoding'"
    rows = table_rows(m.group(1))
    assert rows and rows[0] == ["Limit", "Value", "Refused with"], rows[:1]
    return rows


def limits_table() -> dict[str, list[str]]:
    """The rows of the limits table, by the constant of contract.py they name."""
    return {name: row for row in limits_rows()[1:] for name in re.findall(r"`(MAX_[A-Z_]+)`", row[1])}


def limit_reason(row: list[str]) -> str:
    from restobox import contract

    reasons = re.findall(r"`([a-z_]+)`", row[2])
    assert len(reasons) == 1 and reasons[0] in contract.REASONS, row
    return reasons[0]


def limit_probes() -> dict[str, tuple]:
    """Each limit of contract.py: (a payload just within it, one just past
    it[, the max_bytes its messages are read with])."""
    from restobox import contract as c

    def nest(n):
        return b"[" * n + b"]" * n

    def items(n):
        return b"[" + b",".join([b"0"] * n) + b"]"

    def string(n):
        return b'["' + b"a" * n + b'"]'

    def chars(n):
        return b"[0." + b"0" * (n - 2) + b"]"

    return {
        "MAX_PAYLOAD_BYTES": (b"[" + b" " * (c.MAX_PAYLOAD_BYTES - 2) + b"]",
                              b"[" + b" " * (c.MAX_PAYLOAD_BYTES - 1) + b"]"),
        "MAX_MENU_BYTES": (b"[" + b" " * (c.MAX_MENU_BYTES - 2) + b"]",
                           b"[" + b" " * (c.MAX_MENU_BYTES - 1) + b"]", c.MAX_MENU_BYTES),
        "MAX_STOCK_BYTES": (b"[" + b" " * (c.MAX_STOCK_BYTES - 2) + b"]",
                            b"[" + b" " * (c.MAX_STOCK_BYTES - 1) + b"]", c.MAX_STOCK_BYTES),
        "MAX_DEPTH": (nest(c.MAX_DEPTH), nest(c.MAX_DEPTH + 1)),
        "MAX_ITEMS": (items(c.MAX_ITEMS), items(c.MAX_ITEMS + 1)),
        "MAX_STRING_BYTES": (string(c.MAX_STRING_BYTES), string(c.MAX_STRING_BYTES + 1)),
        "MAX_INT": (b"[-%d]" % c.MAX_INT, b"[%d]" % (c.MAX_INT + 1)),
        "MAX_FLOAT": (b"[%.1f]" % c.MAX_FLOAT, b"[%.1f]" % (c.MAX_FLOAT * 1.5)),
        "MAX_NUMBER_CHARS": (chars(c.MAX_NUMBER_CHARS), chars(c.MAX_NUMBER_CHARS + 1)),
    }


def test_limits_before_decoding_are_the_contracts():
    """Every MAX_* limit of contract.py is in §5's table with its value, and
    check_shape refuses a payload just past it with the code the table gives."""
    from restobox import contract

    table = limits_table()
    constants = {k: v for k, v in vars(contract).items() if k.startswith("MAX_") and isinstance(v, (int, float))}
    assert set(table) == set(constants), f"limits in contract.py {sorted(constants)}, in §5 {sorted(table)}"
    probes = limit_probes()
    for name, value in constants.items():
        row = table[name]
        assert f"{int(value):,}" in row[1], f"§5: {name} is {int(value):,}, the table says {row[1]!r}"
        assert name in probes, f"no probe for {name}: add one to limit_probes"
        within, past, *size = probes[name]
        contract.check_shape(within, *size)
        with pytest.raises(contract.Rejection) as got:
            contract.check_shape(past, *size)
        assert got.value.reason == limit_reason(row), (name, got.value)
    # the rows without a constant: UTF-8 throughout, every string closed;
    # and a fraction too large to be finite
    no_constant = [
        ("UTF-8", b'{"v":1,"note":"\xff"}'), ("closed", b'{"v":1,"note":"abc}'),
        ("infinite", b"[1e400]"), ("infinite", b"[-1e400]"),
    ]
    rows = limits_rows()[1:]
    for words, payload in no_constant:
        row = next((r for r in rows if words in r[1]), None)
        assert row, f"§5's limits do not say {words!r}"
        with pytest.raises(contract.Rejection) as got:
            contract.check_shape(payload)
        assert got.value.reason == limit_reason(row), (payload, got.value)


def test_identifier_patterns_are_the_contracts_and_match_whole_strings():
    """The patterns the doc shows are the code's; the code matches them
    against the whole string (a trailing newline is refused)."""
    from restobox import contract

    text = doc_section(DOC.read_text(encoding="utf-8"), "Messages")
    shown = {p for p in re.findall(r"`(\^[^`]*\$)`", text)}
    code = {contract.UUID_PATTERN, contract.TABLE_PATTERN}
    assert {r"\A" + p[1:-1] + r"\Z" for p in shown} == code, shown
    assert "the whole string" in text
    for pattern in (contract.UUID_PATTERN, contract.TABLE_PATTERN, contract.DEVICE_PATTERN):
        assert pattern.startswith(r"\A") and pattern.endswith(r"\Z"), pattern
    assert_rejected(b'{"v":1,"device":"kds-wok-1\\n"}', contract.SyncRequest, "bad_schema")
    contract.decode(b'{"v":1,"device":"kds-wok-1"}', contract.SyncRequest)


# ------------------------------------------------------------- running steps


# A TERM handler (not "ignore", which children would inherit) makes bash
# reap its foreground client before it exits, so no zombie outlives a step.
PRELUDE = """set -euo pipefail
trap 'exit 143' TERM
mosquitto_sub() {{ {runner} mosquitto_sub -W {w} {extra} "$@"; }}
mosquitto_rr() {{ command mosquitto_rr -W {w} "$@"; }}
"""


@dataclass
class Ran:
    rc: int
    out: str
    err: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]


class Walkthrough:
    """Runs blocks as a person would in terminals, in ``workdir``."""

    def __init__(self, workdir: Path, setup: Block, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.setup = setup
        self.env = env
        self.watchers: list[tuple[subprocess.Popen, Path, Path]] = []

    def _script(self, block: Block, watcher: bool) -> str:
        if watcher:
            # line-buffered, so that what it printed is in the file at once
            prelude = PRELUDE.format(runner="stdbuf -oL", w=WATCHER_LIFETIME_S, extra="-d")
        else:
            prelude = PRELUDE.format(runner="command", w=int(WAIT_S), extra="")
        return prelude + self.setup.script + "\n" + block.script

    def run(self, block: Block) -> Ran:
        assert not block.keeps_running
        proc = subprocess.Popen(
            ["bash", "-c", self._script(block, False)], cwd=self.workdir, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            pytest.fail(f"{block.name} did not finish in {STEP_TIMEOUT_S} s:\n{out}\n{err}")
        return Ran(proc.returncode, out, err)

    def start(self, block: Block) -> "Watcher":
        assert block.keeps_running
        n = len(self.watchers)
        out_path, err_path = self.workdir / f"watcher-{n}.out", self.workdir / f"watcher-{n}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                ["bash", "-c", self._script(block, True)], cwd=self.workdir, env=self.env,
                stdout=out, stderr=err, start_new_session=True,
            )
        self.watchers.append((proc, out_path, err_path))
        w = Watcher(block.name, proc, out_path, err_path)
        w.wait_for_text("received SUBACK")
        return w

    def stop(self) -> None:
        for proc, _, _ in self.watchers:
            _kill_group(proc)


class Watcher:
    def __init__(self, name: str, proc: subprocess.Popen, out: Path, err: Path) -> None:
        self.name, self.proc, self.out, self.err = name, proc, out, err

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def lines(self) -> list[dict]:
        """Every complete JSON line printed so far (debug lines skipped)."""
        text = self.text()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]

    def _fail(self, what: str) -> None:
        pytest.fail(f"{self.name}: {what} within {WAIT_S} s; it printed:\n{self.text()[-6000:]}\n"
                    f"stderr:\n{self.err.read_text(errors='replace')[-2000:]}")

    def wait_for_text(self, needle: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while needle not in self.text():
            if self.proc.poll() is not None:
                self._fail(f"exited (status {self.proc.returncode}) before printing {needle!r}")
            if time.monotonic() > deadline:
                self._fail(f"did not print {needle!r}")
            time.sleep(0.05)

    def wait_for(self, pred, what: str) -> dict:
        deadline = time.monotonic() + WAIT_S
        while True:
            for d in self.lines():
                if pred(d):
                    return d
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self._fail(f"no message where {what}")
            time.sleep(0.05)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    try:  # children that outlived bash (none expected)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def order_state(db: Path, order_id: str) -> str | None:
    con = sqlite3.connect(db)
    try:
        row = con.execute('select state from "order" where id = ?', (order_id,)).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def wait_state(db: Path, order_id: str, state: str) -> None:
    deadline = time.monotonic() + WAIT_S
    seen = None
    while time.monotonic() < deadline:
        seen = order_state(db, order_id)
        if seen == state:
            return
        time.sleep(0.05)
    pytest.fail(f"order {order_id} is {seen!r} in the store database, not {state!r}")


def ok(ran: Ran, step: str) -> Ran:
    """The step exited 0 and no client complained (mosquitto_pub exits 0 even
    when the broker refuses a publish: it only prints a warning)."""
    assert ran.rc == 0, f"{step} failed with status {ran.rc}:\n{ran.out}\n{ran.err}"
    assert not re.search(r"Error|Warning|failed|Timed out", ran.err), f"{step}:\n{ran.err}"
    return ran


def reply_of(ran: Ran, step: str, correlation: str) -> dict:
    """The one ``-F %J`` answer mosquitto_rr printed for ``correlation``."""
    found = [d for d in ran.json_lines() if d.get("properties", {}).get("correlation-data") == correlation]
    assert len(found) == 1, f"{step}: expected one reply with correlation data {correlation!r}:\n{ran.out}"
    return found[0]


# ------------------------------------------------------------------ the test


def test_walkthrough_runs_against_a_real_store(broker, hub, tmp_path):
    blocks = walkthrough_blocks(DOC.read_text(encoding="utf-8"))
    setup, steps = blocks[0], {b.number: b for b in blocks[1:]}

    # The demo's layout: var/demo/broker (the broker's directory) and
    # var/demo/store.db, and restobox/broker_config/ of the repository.
    assert broker.dir.parent == hub.database.parent == tmp_path
    work = tmp_path / "repo"
    (work / "var").mkdir(parents=True)
    (work / "var" / "demo").symlink_to(tmp_path, target_is_directory=True)
    (work / "restobox").mkdir()
    (work / "restobox" / "broker_config").symlink_to(REPO / "restobox" / "broker_config", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTOBOX_", "PORT", "BROKER"))}
    assert sorted(steps) == list(range(1, 13)), "the walkthrough changed: update this test"
    walk = Walkthrough(work, setup, env)
    try:
        _walk(walk, steps, broker, hub.database)
    finally:
        walk.stop()
    for proc, _, _ in walk.watchers:
        assert proc.poll() is not None
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)


def _walk(walk: Walkthrough, steps: dict[int, Block], broker, db: Path) -> None:
    # setup finds the broker's port the way the doc says
    ran = ok(walk.run(Block("setup check", 0, False, 'echo "PORT=$PORT BROKER=$BROKER"')), "setup")
    assert f"PORT={broker.port} BROKER=var/demo/broker" in ran.out

    # step 1: own devices, usable once the step returns
    ran = walk.run(steps[1])
    assert ran.rc == 0, ran.err
    for name in MY_DEVICES:
        assert (broker.dir / "credentials" / f"{name}.secret").is_file(), name
        assert f"device={name} " in (broker.dir / "acl").read_text(), name

    # steps 2 and 3: the watchers
    monitor = walk.start(steps[2])
    wok = walk.start(steps[3])
    monitor.wait_for(lambda d: d["topic"] == "restobox/v1/health/hub" and d["retain"] == 1,
                     "the retained hub health arrives")

    # step 4: mosquitto_pub submits; the monitor sees the answer on the
    # kiosk's reply topic, with the correlation data echoed
    ok(walk.run(steps[4]), "step 4")
    reply = monitor.wait_for(lambda d: d["topic"] == "restobox/v1/order/reply/my-kiosk"
                             and d["payload"]["order_id"] == ORDER, "the order is answered")
    assert reply["properties"]["correlation-data"] == "tap-1"
    assert reply["payload"]["status"] == "accepted", reply
    number = reply["payload"]["number"]
    assert isinstance(number, int) and number >= 1
    assert reply["payload"]["total"] == 3200 and reply["payload"]["duplicate"] is False
    assert order_state(db, ORDER) == "accepted"
    ticket = wok.wait_for(lambda d: d["order_id"] == ORDER, "the wok ticket arrives")
    assert (ticket["revision"], ticket["state"], ticket["number"]) == (1, "open", number)
    assert [i["item_id"] for i in ticket["items"]] == ["kung-pao-chicken"]

    # step 5: the same submission again: the original answer, marked duplicate
    dup = reply_of(ok(walk.run(steps[5]), "step 5"), "step 5", "tap-2")
    assert dup["topic"] == "restobox/v1/order/reply/my-kiosk"
    assert dup["payload"]["status"] == "accepted" and dup["payload"]["duplicate"] is True
    assert dup["payload"]["number"] == number
    assert dup["payload"]["accepted_at"] == reply["payload"]["accepted_at"]

    # step 6: same id, different body: refused
    conflict = reply_of(ok(walk.run(steps[6]), "step 6"), "step 6", "tap-3")
    assert conflict["payload"]["status"] == "rejected"
    assert conflict["payload"]["reason"] == "duplicate_conflict"
    assert conflict["payload"]["detail"]["number"] == str(number)
    monitor.wait_for(lambda d: d["topic"] == "restobox/v1/hub/reject"
                     and d["payload"]["reason"] == "duplicate_conflict", "the refusal is announced")

    # step 7: ack and bump at the wok: ready
    ok(walk.run(steps[7]), "step 7")
    wait_state(db, ORDER, "ready")
    done = wok.wait_for(lambda d: d["order_id"] == ORDER and d["revision"] == 2, "the bumped ticket is re-sent")
    assert done["state"] == "done" and all(i["state"] == "done" for i in done["items"])
    upd = monitor.wait_for(lambda d: d["topic"] == "restobox/v1/order/update" and d["payload"]["order_id"] == ORDER
                           and d["payload"]["state"] == "ready", "the order update says ready")
    assert upd["payload"]["stations"] == [{"station": "wok", "state": "done", "acked": True}]
    monitor.wait_for(lambda d: d["topic"] == "restobox/v1/board/ready" and number in d["payload"]["ready"],
                     "the board shows the number ready")

    # step 8: the pass completes it
    ok(walk.run(steps[8]), "step 8")
    wait_state(db, ORDER, "completed")
    monitor.wait_for(lambda d: d["topic"] == "restobox/v1/order/update" and d["payload"]["order_id"] == ORDER
                     and d["payload"]["state"] == "completed", "the order update says completed")

    # step 9: the doc's database query
    ran = ok(walk.run(steps[9]), "step 9")
    assert ran.out.splitlines()[-1] == f"{number}|completed", ran.out

    # step 10: a second order, voided by staff
    ran = ok(walk.run(steps[10]), "step 10")
    second = reply_of(ran, "step 10", "tap-4")
    assert second["payload"]["status"] == "accepted", second
    assert second["payload"]["order_id"] == VOIDED_ORDER and second["payload"]["total"] == 5000
    void = reply_of(ran, "step 10", "void-1")
    assert void["topic"] == "restobox/v1/staff/my-staff/reply"
    assert void["payload"]["ok"] is True, void
    wait_state(db, VOIDED_ORDER, "voided")
    voided = wok.wait_for(lambda d: d["order_id"] == VOIDED_ORDER and d["revision"] == 2,
                          "the voided ticket is re-sent")
    assert voided["state"] == "voided"
    upd = monitor.wait_for(lambda d: d["topic"] == "restobox/v1/order/update"
                           and d["payload"]["order_id"] == VOIDED_ORDER and d["payload"]["state"] == "voided",
                           "the order update says voided")
    assert upd["payload"]["reason"] == "diner left"

    # step 11: 86 spring rolls; an order for them is refused
    ran = ok(walk.run(steps[11]), "step 11")
    assert reply_of(ran, "step 11", "86-1")["payload"]["ok"] is True
    refused = reply_of(ran, "step 11", "tap-5")["payload"]
    assert (refused["status"], refused["reason"]) == ("rejected", "item_unavailable"), refused
    assert refused["message"]["en"] == "An item in the order is sold out right now."
    assert order_state(db, REFUSED_ORDER) is None
    monitor.wait_for(lambda d: d["topic"] == "restobox/v1/menu/soldout"
                     and d["payload"]["items"] == ["spring-rolls"], "the sold-out list has spring rolls")

    # step 12: back on
    ran = ok(walk.run(steps[12]), "step 12")
    assert reply_of(ran, "step 12", "86-2")["payload"]["ok"] is True
    monitor.wait_for(lambda d: d["topic"] == "restobox/v1/menu/soldout" and d["payload"]["items"] == []
                     and d["retain"] == 0, "a live sold-out list without spring rolls")
    last = [d for d in monitor.lines() if d["topic"] == "restobox/v1/menu/soldout"][-1]
    assert last["payload"]["items"] == [], last


# ------------------------------------------ what the doc promises of the hub


def test_every_request_is_answered_once_and_every_refusal_announced(broker, hub, monitor):
    """§2 "Request and reply" and §3.12, against a real hub: a malformed
    request of each kind, without correlation data or response topic, is
    answered once on the device's own reply topic; a refused balance query
    is answered with the correlation data it had; every refusal, on every
    topic the hub reads, is a reject notice and counted; a menu in another
    currency is refused (bad_menu) and the hub keeps its menu."""
    from restobox import contract
    from restobox.contract import topics
    from tests.support import Device

    sample = json.loads((REPO / "restobox" / "data" / "sample_menu.json").read_text(encoding="utf-8"))
    foreign = {**sample, "version": "foreign-currency-1", "currency": "EUR"}
    foreign_menu = json.dumps({"v": 1, "menu": foreign, "at": ""}).encode()
    query = json.dumps({"v": 1, "query_id": UUID, "phone": "13800138000"}).encode()
    bad = b'{"v":1,'
    # (device, role, topic, payload, correlation, reply topic or None, reason)
    cases = [
        ("kiosk-1", "kiosk", topics.order_submit("kiosk-1"), bad, None, topics.order_reply("kiosk-1"), "bad_json"),
        ("kiosk-1", "kiosk", topics.loyalty_query("kiosk-1"), bad, None, topics.loyalty_reply("kiosk-1"),
         "bad_json"),
        ("kiosk-2", "kiosk", topics.loyalty_query("kiosk-2"), query, b"q-1", topics.loyalty_reply("kiosk-2"),
         "loyalty_disabled"),
        ("staff-1", "staff", topics.staff_command("staff-1"), bad, None, topics.staff_reply("staff-1"), "bad_json"),
        ("kds-wok-1", "kds", topics.station_event("wok"), bad, None, None, "bad_json"),
        ("kds-wok-1", "kds", topics.station_sync("wok"), bad, None, None, "bad_json"),
        ("printing", "printing", topics.PRINT_JOB_STATE, bad, None, None, "bad_json"),
        ("sync", "sync", topics.CLOUD_MENU, bad, None, None, "bad_json"),
        ("sync", "sync", topics.CLOUD_STOCK, bad, None, None, "bad_json"),
        ("sync", "sync", topics.CLOUD_MENU, foreign_menu, None, None, "bad_menu"),
    ]
    devices = {}
    try:
        for name, role, topic, payload, corr, _, _ in cases:
            if name not in devices:
                devices[name] = Device(broker, name, role=role)
            kw = {"correlation": corr} if corr is not None else {}
            devices[name].publish(topic, payload, **kw)
        for _, _, topic, _, corr, reply_topic, reason in cases:
            monitor.wait_json(topics.REJECTS, lambda d: d["topic"] == topic and d["reason"] == reason)
            if reply_topic is None:
                continue
            answer = monitor.wait_for(lambda m: m.topic == reply_topic and m.correlation == corr)
            body = msgspec.json.decode(answer.payload)
            assert body["reason"] == reason, body
            assert body.get("ok") is False or body.get("status") == "rejected", body
        health = monitor.wait_json(topics.health("hub"),
                                   lambda d: d["counters"].get("rejected", 0) >= len(cases))
        assert health["counters"]["rejected.bad_json"] == 8, health["counters"]
        time.sleep(0.5)  # time for a second answer, if there were one
        for _, _, _, _, corr, reply_topic, _ in cases:
            if reply_topic is not None:
                answers = [m for m in monitor.received if m.topic == reply_topic and m.correlation == corr]
                assert len(answers) == 1, f"{len(answers)} answers on {reply_topic}"
        balance = msgspec.json.decode(
            [m for m in monitor.received if m.topic == topics.loyalty_reply("kiosk-1")][0].payload,
            type=contract.LoyaltyBalance)
        assert (balance.ok, balance.query_id, balance.message) == (False, "", contract.REASONS["bad_json"])
        menus = [msgspec.json.decode(m.payload)["menu"]["version"] for m in monitor.received
                 if m.topic == topics.MENU]
        assert "foreign-currency-1" not in menus
    finally:
        for d in devices.values():
            d.close()
