"""End to end: real coursed and coursectl, a real SQLite file and a real SMTP
server, walked through five simulated weeks with --now.

The expected slots are computed here independently (zoneinfo, not libical):
lesson 1 at the first Mon/Wed/Fri 09:00 local after enrollment, lesson k at
the slot after lesson k-1."""
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest

from conftest import write_course
from smtpsink import Sink

UTC = timezone.utc
LESSONS = 12
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)          # a Monday
SUBSCRIBERS = [
    # email, name, zone (None: the course's Europe/Berlin), enrolled at
    ("ann@example.org", "Ann Example", None, START + timedelta(hours=10)),
    ("bob@example.net", "Bob Example", "America/New_York", START + timedelta(days=2, hours=15)),
    ("chandra@example.com", "Chandra Example", "Asia/Kolkata", START + timedelta(days=5, hours=8)),
]


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_slot(after, zone):
    """First Mon/Wed/Fri 09:00 in zone strictly after `after`."""
    z = ZoneInfo(zone)
    day = after.astimezone(z).date()
    while True:
        local = datetime(day.year, day.month, day.day, 9, 0, tzinfo=z)
        if local.weekday() in (0, 2, 4) and local.astimezone(UTC) > after:
            return local.astimezone(UTC)
        day += timedelta(days=1)


def expected_slots(enrolled, zone):
    slots, t = [], enrolled
    for _ in range(LESSONS):
        t = next_slot(t, zone)
        slots.append(t)
    return slots


def prepare(env):
    write_course(env.courses, "test", LESSONS)
    env.ctl("init", now=iso(START))
    for email, name, zone, _ in SUBSCRIBERS:
        args = ["sub", "add", email, "--name", name] + (["--tz", zone] if zone else [])
        env.ctl(*args, now=iso(START))


def run_weeks(env, extra_ticks=()):
    """Enroll each subscriber at their instant and tick at every slot, ten
    minutes after every slot (to pick up retries) and every six hours."""
    plan = {s[0]: expected_slots(s[3], s[2] or "Europe/Berlin") for s in SUBSCRIBERS}
    ticks = set()
    for slots in plan.values():
        for t in slots:
            ticks.add(t)
            ticks.add(t + timedelta(minutes=10))
    t = START
    while t < START + timedelta(weeks=5):
        ticks.add(t)
        t += timedelta(hours=6)
    ticks.update(extra_ticks)
    enrolls = sorted((s[3], s[0]) for s in SUBSCRIBERS)
    for t in sorted(ticks):
        while enrolls and enrolls[0][0] <= t:
            at, email = enrolls.pop(0)
            env.ctl("enroll", email, "test", now=iso(at))
        env.tick(iso(t))
    return plan


def received_by(sink, email):
    return sink.lessons(email)


def check_headers(m, email, name, n):
    msg = m["msg"]
    assert re.fullmatch(r"bounces\+[a-z2-7]{37}@courses\.example\.org", m["mail_from"]), "not VERP"
    assert msg["From"] == "Test Course <test@courses.example.org>"
    assert msg["To"].addresses[0].addr_spec == email
    assert msg["To"].addresses[0].display_name == name
    assert msg["Subject"] == f"Step {n} of the test"
    assert msg["MIME-Version"] == "1.0"
    assert msg["X-Course-Lesson"] == f"test {n}/{LESSONS}"
    assert msg["List-Id"] == "Test Course <test.courses.example.org>"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert f"This is lesson {n}." in text  # plain text: no Markdown marks (docs/rendering.md)
    assert f"This is lesson <strong>{n}</strong>." in html
    assert f"step {n} of {LESSONS}" in text.lower()
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://courses.example.org/u/" in msg["List-Unsubscribe"]
    assert m["raw"].count(b"\r\n") > 5 and b"\n" not in m["raw"].replace(b"\r\n", b"")


def test_every_lesson_once_in_order_at_its_slot(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    prepare(env)
    plan = run_weeks(env)

    assert len(sink.lessons()) == LESSONS * len(SUBSCRIBERS)
    ids = [m["msg"]["Message-ID"] for m in sink.messages]
    assert len(set(ids)) == len(ids), "a mail arrived twice"
    # each subscriber was welcomed once, before the first lesson, and told
    # once, after the last, that the course is complete
    for email, name, zone, enrolled in SUBSCRIBERS:
        system = sink.system(email)
        assert [w["msg"]["Subject"].split()[0] for w in system] == ["Welcome", "You"], system
        # neither answers a message (RFC 3834): auto-generated, as the lessons
        assert [w["msg"]["Auto-Submitted"] for w in system] == ["auto-generated"] * 2
        assert sink.messages.index(system[0]) < sink.messages.index(received_by(sink, email)[0])
        assert sink.messages.index(system[1]) > sink.messages.index(received_by(sink, email)[-1])
        assert system[1]["msg"]["Subject"].startswith("You have finished")
    for email, name, zone, _ in SUBSCRIBERS:
        got = received_by(sink, email)
        assert [m["msg"]["X-Course-Lesson"] for m in got] == \
            [f"test {n}/{LESSONS}" for n in range(1, LESSONS + 1)], "lessons out of order or missing"
        for n, (m, slot) in enumerate(zip(got, plan[email]), start=1):
            check_headers(m, email, name, n)
            assert parsedate_to_datetime(m["msg"]["Date"]) == slot, \
                f"{email} lesson {n} not at its slot"
    # the database agrees with the mailbox
    assert env.sql("SELECT state, count(*) FROM deliveries GROUP BY state") == [("sent", 36)]
    assert env.sql("SELECT state, count(*) FROM enrollments GROUP BY state") == [("completed", 3)]
    st = env.ctl("status", "bob@example.net").stdout
    assert "completed" in st and f"{LESSONS}/{LESSONS} sent" in st


def test_451_is_retried_later_and_arrives_once(env_factory):
    victim = ("bob@example.net", 2)

    def decide(envelope, msg, attempt):
        if envelope.rcpt_tos == [victim[0]] and msg["X-Course-Lesson"] == f"test {victim[1]}/{LESSONS}" \
                and attempt == 1:
            return "451 4.3.0 try again later"
        return None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port)
        prepare(env)
        plan = run_weeks(env)

    assert len(sink.refused) == 1
    assert len(sink.lessons()) == LESSONS * len(SUBSCRIBERS), "a lesson was lost or duplicated"
    got = received_by(sink, victim[0])
    assert [m["msg"]["X-Course-Lesson"] for m in got] == [f"test {n}/{LESSONS}" for n in range(1, LESSONS + 1)]
    slots = plan[victim[0]]
    for n, (m, slot) in enumerate(zip(got, slots), start=1):
        date = parsedate_to_datetime(m["msg"]["Date"])
        if n == victim[1]:
            # retried at the tick 10 minutes after the slot (first retry: 5m)
            assert date == slot + timedelta(minutes=10)
        else:
            assert date == slot, f"lesson {n} moved"
    row = env.sql("SELECT d.state, d.attempts, d.last_code FROM deliveries d"
                  " JOIN enrollments e ON e.id = d.enrollment_id"
                  " JOIN subscribers s ON s.id = e.subscriber_id"
                  " WHERE s.email = ? AND d.lesson = ?", *victim)
    assert row == [("sent", 2, 250)]


def test_5xx_is_not_retried_and_stops_the_subscriber(env_factory):
    def decide(envelope, msg, attempt):
        if envelope.rcpt_tos == ["chandra@example.com"]:
            return "550 5.1.1 no such user"
        return None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port)
        prepare(env)
        run_weeks(env)

    # the welcome was refused, not retried, and is a hard bounce like a
    # lesson's: no lesson is ever offered to the dead address
    assert [r["rcpts"] for r in sink.refused] == [["chandra@example.com"]], "a 5xx was retried"
    assert len(received_by(sink, "chandra@example.com")) == 0
    assert len(sink.lessons()) == LESSONS * 2
    assert env.sql("SELECT status FROM subscribers WHERE email = 'chandra@example.com'") == [("bounced",)]
    assert env.sql("SELECT d.state FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
                   " JOIN subscribers s ON s.id = e.subscriber_id WHERE s.email = 'chandra@example.com'"
                   " AND d.state <> 'cancelled'") == []
    assert env.sql("SELECT o.kind, o.state, o.last_code FROM outbox o"
                   " WHERE o.rcpt = 'chandra@example.com'") == [("welcome", "failed", 550)]


def test_server_down_defers_and_nothing_is_lost(env_factory):
    """No SMTP server at all for a while: deliveries wait, then all arrive."""
    sink = Sink()
    port = None
    try:
        from smtpsink import free_port
        port = free_port()            # nobody listens here yet
        env = env_factory(smtp_port=port)
        write_course(env.courses, "test", 2)
        env.ctl("init", now="2026-03-02T00:00:00Z")
        env.ctl("sub", "add", "ann@example.org", now="2026-03-02T00:00:00Z")
        env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now="2026-03-02T00:00:00Z")
        env.tick("2026-03-02T08:00:00Z")   # 09:00 Berlin: connection refused
        assert env.sql("SELECT state, attempts FROM deliveries") == [("deferred", 1)]
        env.tick("2026-03-02T08:01:00Z")   # before the retry time: untouched
        assert env.sql("SELECT state, attempts FROM deliveries") == [("deferred", 1)]
        # the server comes up on that port
        from aiosmtpd.controller import Controller
        from smtpsink import _Handler
        sink.controller = Controller(_Handler(sink), hostname="127.0.0.1", port=port,
                                     server_hostname="localhost", ready_timeout=10)
        sink.controller.start()
        env.tick("2026-03-02T08:06:00Z")
        assert len(sink.messages) == 1
        assert env.sql("SELECT state, attempts FROM deliveries") == [("sent", 2)]
        env.tick("2026-03-04T08:00:00Z")
        assert [m["msg"]["X-Course-Lesson"] for m in sink.messages] == ["test 1/2", "test 2/2"]
    finally:
        sink.stop()
