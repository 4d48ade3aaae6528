"""Previews of everything, as sent (issue 14): `course preview SLUG all`
as one HTML page and as text, previews before `coursectl init` (no secret
key: a fake token in every link), one default name, `course timeline`
checked against an independent computation with zoneinfo across a DST
change, and `send-test ... all` into the test SMTP server ([TEST] in every
subject, a Message-ID of its own for every mail of every run)."""
import email
import email.policy
import email.utils
import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from conftest import write_course

NOW = "2026-03-02T10:00:00Z"
TOKEN = "PREVIEW-NOT-A-REAL-TOKEN"
SYSTEM = ["confirm", "welcome", "status", "help", "error", "complete", "goodbye"]
# RFC 3834: an answer to a message is auto-replied; the welcome and the
# complete mail answer none (the course sends them, as its lessons)
AUTO_SUBMITTED = {"confirm": "auto-replied", "welcome": "auto-generated", "goodbye": "auto-replied",
                  "status": "auto-replied", "help": "auto-replied", "error": "auto-replied",
                  "complete": "auto-generated"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Reads an HTML document and checks that it is one: every element
    closed in order, one html element holding one head and one body."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.top = [], [], []
        self.decl = None
        self.hrefs, self.iframes, self.sections, self.headings = [], [], [], []
        self._h2 = None

    def handle_decl(self, decl):
        self.decl = decl

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if not self.stack:
            self.top.append(tag)
        if tag == "a":
            self.hrefs.append(a.get("href"))
        if tag == "iframe":
            self.iframes.append(a)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "h2":
            self._h2 = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()
        if tag == "h2":
            self.headings.append(self._h2)
            self._h2 = None

    def handle_data(self, data):
        if self._h2 is not None:
            self._h2 += data


def page(text):
    p = Page()
    p.feed(text)
    p.close()
    assert p.decl and p.decl.lower() == "doctype html", p.decl
    assert not p.problems, p.problems[:5]
    assert not p.stack, f"not closed: {p.stack}"
    assert p.top == ["html"], p.top
    return p


def strict(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.strict)
    for part in msg.walk():
        assert not part.defects, part.defects
    return msg


@pytest.fixture
def env(env_factory):
    """An installation that was never initialised: no database, no key."""
    e = env_factory(transport="maildir")
    write_course(e.courses, "test", 3, extra="description = Three small steps.\n")
    return e


def subjects(env, slug, n):
    """The subjects of the lessons write_course() wrote."""
    return [f"Step {k} of the test" for k in range(1, n + 1)]


# ---- course preview ... all ----

def human(slot, tz="Europe/Berlin"):
    """A timeline slot as the English mails write it: 'Wednesday 4 March at 9:00'."""
    t = datetime.strptime(slot["utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
    return f"{t:%A} {t.day} {t:%B} at {t.hour}:{t:%M}"


def test_preview_all_html_is_one_page_of_every_mail(env):
    out = env.ctl("course", "preview", "test", "all", "--html", now=NOW).stdout
    assert not (env.dir / "secret.key").exists() and not env.db.exists(), "a preview made a key or a database"
    p = page(out)
    assert p.sections == ["lesson-1", "lesson-2", "lesson-3"] + SYSTEM
    assert len(p.iframes) == len(p.sections)
    for k, subject in enumerate(subjects(env, "test", 3)):
        assert subject in p.headings[k] and f"Lesson {k + 1} of 3" in p.headings[k]
    for k, which in enumerate(SYSTEM):
        assert which in p.headings[3 + k]
    assert TOKEN in out
    assert all(h for h in p.hrefs), p.hrefs
    # each mail is a document of its own: a system mail exactly the HTML part
    # a preview of it writes; a lesson names the next one's date as the
    # timeline of someone enrolling now has it
    slots = json.loads(env.ctl("course", "timeline", "test", "--json", now=NOW).stdout)
    for which, frame in zip(p.sections, p.iframes):
        inner = page(frame["srcdoc"])
        assert all(h for h in inner.hrefs), (which, inner.hrefs)
        if which.startswith("lesson-"):
            n = int(which[len("lesson-"):])
            assert f"/u/{TOKEN}" in frame["srcdoc"] and "Hello there," in frame["srcdoc"]
            if n < len(slots):
                assert re.search(r"Next step: <strong[^>]*>" + re.escape(human(slots[n])) + "</strong>",
                                 frame["srcdoc"]), which
            else:  # the last lesson names no next step
                assert "Next step" not in frame["srcdoc"], which
        else:
            one = env.ctl("course", "preview", "test", which, "--html", now=NOW).stdout
            assert frame["srcdoc"] == one, which
    confirm = p.iframes[3]["srcdoc"]
    assert f"https://courses.example.org/c/{TOKEN}" in confirm, "the confirm preview shows its link"
    # the headers a reader sees, with the fake token in List-Unsubscribe and the confirm's Reply-To
    assert f"&lt;https://courses.example.org/u/{TOKEN}&gt;" in out
    assert f"test+confirm-{TOKEN}@courses.example.org" in out


def test_preview_all_text_has_every_plain_part_under_a_heading(env):
    out = env.ctl("course", "preview", "test", "all", "--text", now=NOW).stdout
    rule = "=" * 78
    blocks = out.split(rule + "\n")
    # "", then (heading, body) pairs
    assert blocks[0] == ""
    heads, bodies = blocks[1::2], blocks[2::2]
    names = [f"Lesson {k} of 3" for k in (1, 2, 3)] + [f"System mail ({w})" for w in SYSTEM]
    assert len(heads) == len(names) == len(bodies)
    for name, head in zip(names, heads):
        assert head.splitlines()[0].startswith(name + ": "), head
    for k, subject in enumerate(subjects(env, "test", 3)):
        assert heads[k].splitlines()[0] == f"Lesson {k + 1} of 3: {subject}"
        assert f"Subject: {subject}" in heads[k]
    for which, body in zip(SYSTEM, bodies[3:]):
        one = env.ctl("course", "preview", "test", which, "--text", now=NOW).stdout
        assert body.strip("\n") == one.strip("\n"), which
    # each lesson dated at its slot, naming the next one's (course timeline)
    slots = json.loads(env.ctl("course", "timeline", "test", "--json", now=NOW).stdout)
    for k, (head, body) in enumerate(zip(heads[:3], bodies[:3])):
        when = datetime.strptime(slots[k]["utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert f"Date: {email.utils.format_datetime(when)}" in head, head
        if k + 1 < len(slots):
            assert f"Next step: {human(slots[k + 1])}" in body
        else:  # the last lesson names no next step
            assert "Next step" not in body
        assert f"\nStep {k + 1} of the test\n" in body  # the title as a plain line
    assert f"https://courses.example.org/c/{TOKEN}" in bodies[3]
    assert f"https://courses.example.org/u/{TOKEN}" in bodies[0]
    assert "Hello there," in bodies[0] and "Hello there," in bodies[4]
    assert "Hello Reader" not in out
    # every value is filled: no status line or progress left empty
    status = bodies[5]
    assert re.search(r"Next step: [A-Z][a-z]+day \d+ [A-Z][a-z]+ at \d+:\d{2}", status), status
    assert "You have received 1 of 3 steps." in status
    assert "- Test Course: write to test@courses.example.org. Three small steps." in bodies[6]


def test_preview_all_needs_a_part(env):
    p = env.ctl("course", "preview", "test", "all", now=NOW, check=False)
    assert p.returncode == 2 and "--html" in p.stderr


# ---- previews before init, the fake token, one default name ----

def test_preview_before_init_fills_every_link_with_the_fake_token(env):
    raw = env.ctl_bytes("course", "preview", "test", "2", now=NOW)
    msg = strict(raw)
    assert str(msg["List-Unsubscribe"]) == (f"<https://courses.example.org/u/{TOKEN}>, "
                                            f"<mailto:test+unsubscribe-{TOKEN}@courses.example.org"
                                            "?subject=unsubscribe>")
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hello there," in text and "Hello there," in html
    assert msg["To"].addresses[0].display_name == ""
    confirm = strict(env.ctl_bytes("course", "preview", "test", "confirm", now=NOW))
    assert str(confirm["Reply-To"]) == f"test+confirm-{TOKEN}@courses.example.org"
    assert f"https://courses.example.org/c/{TOKEN}" in confirm.get_body(("plain",)).get_content()
    named = strict(env.ctl_bytes("course", "preview", "test", "1", "--name", "Ann", now=NOW))
    assert "Hello Ann," in named.get_body(("plain",)).get_content()
    for which in SYSTEM:
        m = strict(env.ctl_bytes("course", "preview", "test", which, now=NOW))
        assert m["Auto-Submitted"] == AUTO_SUBMITTED[which]
        body = m.get_body(("plain",)).get_content()
        assert "{{" not in body and "Hello Reader" not in body
    assert not (env.dir / "secret.key").exists()


def test_preview_and_send_test_say_the_same_name(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "test", 2)
    e.ctl("send-test", "someone@example.net", "test", "1", now=NOW)
    sent = sink.lessons("someone@example.net")[0]["msg"].get_body(("plain",)).get_content()
    shown = strict(e.ctl_bytes("course", "preview", "test", "1", now=NOW)).get_body(("plain",)).get_content()
    assert "Hello there," in sent and "Hello there," in shown


# ---- course timeline ----

def expected_slots(start, zone, days, hh, mm, count, first_within=None):
    """The lessons' instants, computed with zoneinfo: each the next local
    hh:mm on one of `days` (0 = Monday) after the one before, the first
    after start, but no later than start + first_within."""
    tz = ZoneInfo(zone)

    def next_slot(after):
        local = after.astimezone(tz)
        d = local.date()
        for _ in range(15):
            cand = datetime(d.year, d.month, d.day, hh, mm, tzinfo=tz)
            if cand.weekday() in days and cand > after:
                return cand
            d += timedelta(days=1)
        raise AssertionError("no slot")

    out = []
    t = next_slot(start)
    if first_within is not None and t > start + first_within:
        t = start + first_within
    for _ in range(count):
        out.append(t)
        t = next_slot(t)
    return out


@pytest.mark.parametrize("zone,start", [
    (None, "2026-03-20"),                  # Europe/Paris: CET -> CEST on 29 March
    ("America/New_York", "2026-03-01"),    # EST -> EDT on 8 March
    ("Europe/Paris", "2026-10-17"),        # CEST -> CET on 25 October
])
def test_timeline_weekdays_and_times_across_dst(env, zone, start):
    write_course(env.courses, "paris", 5, schedule="FREQ=WEEKLY;BYDAY=TU,SA", time="07:30", tz="Europe/Paris")
    args = ["course", "timeline", "paris", "--start", start] + (["--tz", zone] if zone else [])
    rows = json.loads(env.ctl(*args, "--json", now=NOW).stdout)
    z = zone or "Europe/Paris"
    y, m, d = map(int, start.split("-"))
    want = expected_slots(datetime(y, m, d, tzinfo=ZoneInfo(z)), z, {1, 5}, 7, 30, 5)
    assert [r["lesson"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["utc"] for r in rows] == [w.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for w in want]
    assert [r["weekday"] for r in rows] == [w.strftime("%a") for w in want]
    assert [r["local_date"] for r in rows] == [w.strftime("%Y-%m-%d") for w in want]
    assert {r["local_time"] for r in rows} == {"07:30"}
    assert {r["zone"] for r in rows} == {z}
    assert [r["subject"] for r in rows] == [f"Step {k} of the test" for k in range(1, 6)]
    # the offset changes inside the five lessons: the test crosses a DST change
    assert len({w.utcoffset() for w in want}) == 2
    text = env.ctl(*args, now=NOW).stdout.splitlines()
    assert text[0].split() == ["#", "DAY", "LOCAL", "TIME", "SUBJECT"]
    for line, w in zip(text[1:], want):
        assert line.split()[:4] == [str(want.index(w) + 1), w.strftime("%a"), w.strftime("%Y-%m-%d"), "07:30"]
        assert line.split()[4] == w.tzname()
    assert len(text) == 6


def test_timeline_follows_first_within_and_needs_no_database(env):
    write_course(env.courses, "slow", 3, schedule="FREQ=WEEKLY;BYDAY=TU", time="09:00", tz="Europe/Berlin",
                 extra="first_within = 24h\n")
    start = "2026-03-27T10:00:00Z"  # a Friday
    rows = json.loads(env.ctl("course", "timeline", "slow", "--start", start, "--json", now=NOW).stdout)
    t0 = datetime(2026, 3, 27, 10, 0, tzinfo=timezone.utc)
    want = expected_slots(t0, "Europe/Berlin", {1}, 9, 0, 3, first_within=timedelta(hours=24))
    assert [r["utc"] for r in rows] == [w.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for w in want]
    assert rows[0]["weekday"] == "Sat" and rows[1]["weekday"] == "Tue"
    assert not env.db.exists()


def test_timeline_errors(env):
    p = env.ctl("course", "timeline", "nope", now=NOW, check=False)
    assert p.returncode == 3 and "no course" in p.stderr
    p = env.ctl("course", "timeline", "test", "--tz", "Mars/Olympus", now=NOW, check=False)
    assert p.returncode == 2 and "time zone" in p.stderr
    p = env.ctl("course", "timeline", "test", "--start", "2026-02-31", now=NOW, check=False)
    assert p.returncode == 2


# ---- send-test ... all ----

def test_send_test_all_sends_every_mail_marked_and_each_new(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "test", 3)
    p = e.ctl("send-test", "author@example.net", "test", "all", now=NOW)
    assert "sent 10 test mails" in p.stdout
    got = [m for m in sink.messages if m["rcpts"] == ["author@example.net"]]
    assert len(got) == 3 + len(SYSTEM)
    msgs = [strict(m["raw"]) for m in got]
    subjects_sent = [str(m["Subject"]) for m in msgs]
    assert all(s.startswith("[TEST] ") for s in subjects_sent), subjects_sent
    # lessons first, then the system mails in the order of the preview
    preview = e.ctl("course", "preview", "test", "all", "--text", now=NOW).stdout
    shown = [l.split(": ", 1)[1] for l in preview.splitlines() if l.startswith("Subject: ")]
    assert subjects_sent == ["[TEST] " + s for s in shown]
    assert [str(m["X-Course-Lesson"]) for m in msgs[:3]] == ["test 1/3", "test 2/3", "test 3/3"]
    assert all(m["X-Course-Lesson"] is None for m in msgs[3:])
    assert all(TOKEN in m["raw"].decode() for m in got[:3])
    ids = [str(m["Message-ID"]) for m in msgs]
    assert len(set(ids)) == len(ids), ids
    assert not (e.dir / "secret.key").exists(), "send-test needs no key"

    e.ctl("send-test", "author@example.net", "test", "all", now=NOW)
    again = [strict(m["raw"]) for m in sink.messages if m["rcpts"] == ["author@example.net"]][len(got):]
    assert len(again) == len(got)
    ids2 = [str(m["Message-ID"]) for m in again]
    assert not set(ids) & set(ids2), "a second send-test reuses Message-IDs"
    assert len(set(ids2)) == len(ids2)


def test_send_test_of_one_lesson_twice_has_two_message_ids(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "test", 3)
    e.ctl("init", now=NOW)
    e.ctl("send-test", "author@example.net", "test", "2", now=NOW)
    e.ctl("send-test", "author@example.net", "test", "2", now=NOW)
    e.ctl("send-test", "author@example.net", "test", "welcome", now=NOW)
    got = [strict(m["raw"]) for m in sink.messages]
    assert [str(m["Subject"]) for m in got] == ["[TEST] Step 2 of the test"] * 2 + ["[TEST] Welcome to Test Course"]
    assert got[0]["Message-ID"] != got[1]["Message-ID"]
    assert e.sql("SELECT count(*) FROM enrollments") == [(0,)]
    assert e.sql("SELECT count(*) FROM outbox") == [(0,)]
    p = e.ctl("send-test", "author@example.net", "test", "4", now=NOW, check=False)
    assert p.returncode == 3 and "lessons 1 to 3" in p.stderr
    p = e.ctl("send-test", "author@example.net", "test", "bogus", now=NOW, check=False)
    assert p.returncode == 2


# ---- the small things ----

def test_course_help_and_usage_lines(env):
    p = env.ctl("course", "--help")
    assert "course timeline" in p.stdout and "course preview" in p.stdout and "sub add" not in p.stdout
    p = env.ctl("course", check=False)
    assert p.returncode == 2 and "course list" in p.stderr
    p = env.ctl("course", "list", "--help")
    usage = [l for l in p.stdout.splitlines() if "course list" in l]
    assert len(usage) == 1 and usage[0].count("course list") == 1, p.stdout


def test_course_list_columns_line_up(env):
    write_course(env.courses, "a-much-longer-course-slug", 12, schedule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
                 tz="America/Argentina/Buenos_Aires", title="Long")
    lines = env.ctl("course", "list").stdout.splitlines()
    head = lines[0]
    lessons_end = head.index("LESSONS") + len("LESSONS")
    schedule, title = head.index("SCHEDULE"), head.index("TITLE")
    assert len(lines) == 3
    for line in lines[1:]:
        assert line[lessons_end - 1].isdigit() and line[lessons_end] == " ", line
        assert line[schedule:].startswith("weekly ") and line[schedule - 1] == " ", line
        assert line[title:] in ("Long", "Test Course") and line[title - 1] == " ", line
