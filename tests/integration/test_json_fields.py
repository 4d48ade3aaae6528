"""One field, one JSON type: every `--json` of coursectl (and `export
--format json`), run by the real binary over a real database with
subscribers, enrollments, sent, failed and deferred lessons, audit events
and inbound mail, parses as JSON; a field name has the same JSON type in
every command that writes it; and every instant is ISO 8601 UTC text
("2026-05-04T09:00:00Z"), every day "2026-05-04" (see "coursectl output" in
docs/architecture.md). Before the one renderer, `sub list --json` wrote
created_at as text and `export --format json` as an integer."""
import json
import re
import subprocess
from collections import defaultdict
from datetime import datetime

import pytest

from conftest import COURSECTL, REPO, write_course
from smtpsink import Sink

NOW = "2026-05-04T10:00:00Z"
FIXTURES = REPO / "tests" / "fixtures" / "inbound"

# Fields that hold an instant, and fields that hold a UTC day.
TIMES = {"created_at", "next_send_at", "next_attempt", "at", "utc", "requested_at", "confirmed_at", "received_at"}
DATES = {"day"}
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def decide(envelope, msg, attempt):
    rcpt = envelope.rcpt_tos
    if rcpt == ["bad@example.org"]:
        return "550 5.1.1 unknown user"
    if rcpt == ["slow@example.org"]:
        return "451 4.3.0 try later"
    return None


def mail(frm, to, subject, body=""):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 4 May 2026 12:00:00 +0200\r\n"
            f"Message-ID: <{re.sub(r'[^a-z0-9]', '.', subject)}.{frm}>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Six subscribers in every state coursectl shows, after one tick."""
    from conftest import Env
    with Sink(decide) as sink:
        env = Env(tmp_path_factory.mktemp("json"), smtp_port=sink.port)
        write_course(env.courses, "test", 3)
        write_course(env.courses, "other", 2, title="Über — a \"quoted\" title", tz="Asia/Tokyo")
        (env.courses / "release").symlink_to(REPO / "courses" / "release")
        env.ctl("init", now=NOW)
        env.ctl("sub", "add", "ann@example.org", "--name", "Ann", "--tz", "Europe/Berlin", now=NOW)
        env.ctl("sub", "add", "bob@example.org", "--name", 'Bøb "q" \\ Jr.', now=NOW)
        env.ctl("sub", "add", "cy@example.org", now=NOW)
        for a in ("ann@example.org", "bob@example.org", "bad@example.org", "slow@example.org"):
            if a in ("bad@example.org", "slow@example.org"):
                env.ctl("sub", "add", a, now=NOW)
            env.ctl("enroll", a, "test", "--no-welcome", now="2026-05-03T12:00:00Z")
        env.ctl("enroll", "bob@example.org", "other", "--no-welcome", now="2026-05-03T12:00:00Z")
        env.ctl("pause", "bob@example.org", "other", "--for", "2w", now="2026-05-03T13:00:00Z")
        env.tick("2026-05-04T07:00:00Z")
        env.ctl("unenroll", "ann@example.org", "test", now="2026-05-04T08:00:00Z")
        # a reader's note (a reply to bob's lesson that is no command)
        [(mid,)] = env.sql("SELECT d.message_id FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
                           " JOIN subscribers s ON s.id = e.subscriber_id"
                           " WHERE s.email = 'bob@example.org' AND e.course = 'test' AND d.state = 'sent'")
        note = mail("bob@example.org", "test@courses.example.org", "Re: Step 1 of the test",
                    "Thank you, this one helped.").replace(
                        b"MIME-Version", f"In-Reply-To: <{mid}>\r\nMIME-Version".encode())
        ctl_json(env, "inbound", "--json", stdin=note)
        yield env


def ctl_json(env, *args, stdin=None):
    p = subprocess.run([COURSECTL, "-c", str(env.conf), "--now", NOW, *args], input=stdin,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, (args, p.stderr)
    assert not p.stderr, (args, p.stderr)
    return json.loads(p.stdout)


def inbound_mails():
    """Every inbound fixture (bounces, clients, hostile mail), and a few of our own."""
    mails = {str(p.relative_to(FIXTURES)): p.read_bytes() for p in sorted(FIXTURES.rglob("*.eml"))}
    mails["own/pause-2w"] = mail("ann@example.org", "test@courses.example.org", "pause 2w")
    mails["own/unsubscribe-all"] = mail("bob@example.org", "test@courses.example.org", "unsubscribe all")
    mails["own/junk"] = b"\x01\x02\xff\xfe From: \x7f\r\n\r\n\x00\"\\"
    return mails


@pytest.fixture(scope="module")
def outputs(world):
    """(command, parsed JSON) for every command that writes JSON."""
    env = world
    runs = [
        ["course", "list", "--json"],
        ["sub", "list", "--json"],
        ["sub", "show", "bob@example.org", "--json"],
        ["sub", "show", "cy@example.org", "--json"],
        ["status", "ann@example.org", "--json"],
        ["status", "slow@example.org", "--json"],
        ["schedule", "bob@example.org", "--json"],
        ["schedule", "slow@example.org", "--json"],
        ["queue", "--json"],
        ["stats", "--json"],
        ["replies", "--json"],
        ["stats", "--since", "30d", "--json"],
        ["log", "--json", "--limit", "0"],
        ["config", "show", "--json"],
        ["export", "--format", "json"],
        ["course", "diff", "test", "--json"],
        ["course", "plan", "test", "--json"],
        ["course", "history", "test", "--json"],
        ["course", "timeline", "test", "--json"],
        ["course", "timeline", "other", "--start", "2026-03-27", "--tz", "America/New_York", "--json"],
    ]
    got = [(" ".join(a), ctl_json(env, *a)) for a in runs]
    for name, raw in inbound_mails().items():
        got.append((f"inbound --dry-run --json < {name}", ctl_json(env, "inbound", "--dry-run", "--json", stdin=raw)))
    got.append(("inbound --json (applied)", ctl_json(env, "inbound", "--json",
                                                     stdin=mail("ann@example.org", "test@courses.example.org",
                                                                "status"))))
    return got


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(v)]


def members(value):
    """(name, value) of every member of every object in value; the elements
    of an array member come as (name + "[]", element)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            if isinstance(v, list):
                for item in v:
                    yield k + "[]", item
            yield from members(v)
    elif isinstance(value, list):
        for item in value:
            yield from members(item)


def test_every_output_has_rows(outputs):
    """The world is rich enough: the lists that the checks rely on are not empty."""
    by_cmd = dict(outputs)
    for cmd in ("course list --json", "sub list --json", "queue --json", "stats --json",
                "stats --since 30d --json", "log --json --limit 0", "export --format json",
                "schedule bob@example.org --json", "schedule slow@example.org --json"):
        assert by_cmd[cmd], cmd
    assert any(b for _, o in outputs if isinstance(o, dict) for b in o.get("bounces", []))


def test_every_field_has_one_type(outputs):
    types = defaultdict(lambda: defaultdict(set))
    for cmd, out in outputs:
        for name, v in members(out):
            if v is not None:
                types[name][json_type(v)].add(cmd.split(" <")[0])
    mixed = {name: {t: sorted(cmds)[:3] for t, cmds in ts.items()} for name, ts in types.items() if len(ts) > 1}
    assert not mixed, f"fields written with more than one JSON type: {mixed}"
    # and the fields that mean the same thing everywhere have the type decided for them
    want = {"id": "integer", "lesson": "integer", "lessons": "integer", "next_lesson": "integer",
            "created_at": "string", "email": "string", "course": "string", "state": "string",
            "status": "string", "enrollments": "array", "reached[]": "integer"}
    for name, t in want.items():
        assert set(types[name]) == {t}, (name, dict(types[name]))


def test_times_are_iso_8601_utc(outputs):
    seen = set()
    for cmd, out in outputs:
        for name, v in members(out):
            if name.endswith("_at"):
                assert name in TIMES, f"{cmd}: {name} looks like a time: add it to TIMES"
            if v is None or name not in TIMES | DATES:
                continue
            seen.add(name)
            assert isinstance(v, str), f"{cmd}: {name} = {v!r} is not text"
            if name in TIMES:
                assert INSTANT.fullmatch(v), f"{cmd}: {name} = {v!r} is not ISO 8601 UTC"
                datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
            else:
                assert DAY.fullmatch(v), f"{cmd}: {name} = {v!r} is not an ISO 8601 day"
                datetime.strptime(v, "%Y-%m-%d")
    assert seen == TIMES | DATES, f"never seen: {TIMES | DATES - seen}"


def test_every_json_command_is_covered(world, outputs):
    """A command whose --help offers --json is one the checks above ran."""
    helptext = subprocess.run([COURSECTL, "--help"], capture_output=True, text=True, timeout=30).stdout
    names = []
    for line in helptext.split("Commands:")[1].split("Exit status")[0].splitlines():
        words = []
        for w in line[2:42].split():   # "  %-40s %s": the command and its arguments, then the help
            if not re.fullmatch(r"[a-z][a-z-]*", w) or len(words) == 2:
                break
            words.append(w)
        if words:
            names.append(words)
    assert len(names) > 20
    covered = {cmd.split(" <")[0].split(" (")[0] for cmd, _ in outputs}
    for words in names:
        p = subprocess.run([COURSECTL, "-c", str(world.conf), *words, "--help"], capture_output=True, text=True,
                           timeout=30)
        offers = p.stdout + p.stderr
        if "--json" in offers:
            assert any(c.startswith(" ".join(words) + " ") for c in covered), words
        if "--format" in offers:
            assert any(c.startswith(" ".join(words) + " --format json") for c in covered), words
