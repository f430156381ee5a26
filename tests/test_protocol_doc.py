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
template's ACL lines are in the doc's tables.
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


def test_reason_table_has_every_code_with_its_sentences():
    from restobox.contract import REASONS

    rows = table_rows(doc_section(DOC.read_text(encoding="utf-8"), "Reason codes"))
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
    roles = sorted((REPO / "broker_config" / "roles").glob("*.acl"))
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
    base = (REPO / "broker_config" / "acl.base").read_text()
    for pattern in re.findall(r"^pattern (\w+) (\S+)$", base, re.M):
        assert f"| {pattern[0]} | `{pattern[1].replace('%u', '<device>')}` |" in section, pattern


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
    # var/demo/store.db, and broker_config/ of the repository.
    assert broker.dir.parent == hub.database.parent == tmp_path
    work = tmp_path / "repo"
    (work / "var").mkdir(parents=True)
    (work / "var" / "demo").symlink_to(tmp_path, target_is_directory=True)
    (work / "broker_config").symlink_to(REPO / "broker_config", target_is_directory=True)
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
