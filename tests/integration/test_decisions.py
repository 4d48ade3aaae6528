"""Decisions users depend on that no other integration test pinned down,
each found by tests/mutants/run: a one-line mutant of lib/ that the
existing tests of its area let pass (tests/mutants/README.md names each).
Real coursed and coursectl, a real SMTP server, a real SQLite file; time is
injected with --now.

- every character of a token counts, not only its last bytes;
- the tick itself keeps max_per_day, whatever planned the slot;
- a lesson retried past late_grace waits for its next slot;
- a lesson in flight when coursed died is not sent after the person left;
- 5.7.x other than 5.7.1 in a bounce report is a policy refusal;
- a delayed report with a 5.x.x status is a warning, not a failure;
- soft bounces count as hard only on three days within 14;
- a confirmation expires after confirm_ttl, by reply and by link, and
  works once;
- a repeated subscribe request sends one confirmation per 24 hours."""
import json
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from conftest import COURSED, write_course
from smtpsink import Sink, free_port
from test_inbound import Daemon, inbound, mail

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)        # a Monday
ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"   # tokens: lower-case base32, read in any case


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sent_at(sink, rcpt):
    """When each lesson to rcpt was composed (its Date header), as ISO text."""
    return [iso(parsedate_to_datetime(m["msg"]["Date"])) for m in sink.lessons(rcpt)]


def dsn(verp, rcpt, action, status, mid):
    """An RFC 3464 report for rcpt, sent to the VERP address of a lesson."""
    return ("From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Delivery Status Notification\r\n"
            "Message-ID: <{mid}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nA delivery problem.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
            "Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n--b--\r\n").format(
                to=verp, rcpt=rcpt, action=action, status=status, mid=mid).encode()


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "test", 3)
    e.ctl("init", now=iso(T0))
    return e


def enrolled_verp(env, sink, email):
    """email enrolled in "test", lesson 1 delivered: the VERP sender it went with."""
    env.ctl("sub", "add", email, now=iso(T0))
    env.ctl("enroll", email, "test", "--no-welcome", now=iso(T0))
    env.tick("2026-05-06T07:00:00Z")                    # Wednesday 09:00 Berlin
    lessons = sink.lessons(email)
    assert len(lessons) == 1
    return lessons[0]["mail_from"]


def request_confirmation(env, sink, email, now=T0):
    """A subscribe request by mail; returns the Reply-To of the confirmation."""
    assert inbound(env, mail(email, "test@courses.example.org", "subscribe"), now=now).returncode == 0
    env.tick(iso(now))
    confirm = sink.system(email)[-1]["msg"]
    assert confirm["Subject"].startswith("Please confirm")
    return confirm["Reply-To"].addresses[0].addr_spec


# ---------------------------------------------------------------- tokens

def test_token_every_position_counts(env, sink):
    """A confirmation token with any one character changed confirms
    nothing: the MAC comparison looks at every byte (the forged-bounce and
    one-click tests only change the last character)."""
    reply_to = request_confirmation(env, sink, "ann@example.net")
    local, domain = reply_to.split("@")
    token = local.split("+confirm-", 1)[1]
    assert len(token) == 37
    for i, ch in enumerate(token):
        other = ALPHABET[(ALPHABET.index(ch) + 1 + i % (len(ALPHABET) - 1)) % len(ALPHABET)]
        forged = token[:i] + other + token[i + 1:]
        raw = mail("mallory@example.net", f"test+confirm-{forged}@{domain}", "Re: confirm", "yes")
        p = inbound(env, raw, "--json", now=T0 + timedelta(minutes=5))
        assert p.returncode == 0, p.stderr
        assert env.sql("SELECT state FROM enrollments") == [("pending",)], \
            f"a token changed at position {i} ({token} -> {forged}) confirmed"
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'confirmed'") == [(0,)]
    # the real one still works
    assert inbound(env, mail("ann@example.net", reply_to, "Re: confirm", "yes"),
                   now=T0 + timedelta(minutes=10)).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("active",)]


# ---------------------------------------------------------------- pacing

def test_max_per_day_is_kept_by_the_tick_whatever_planned_the_slot(env_factory, sink):
    """max_per_day = 2 on a daily 09:00 course. Lesson 1 goes on Monday at
    09:00. The next slots are then planned on Monday at 15:00 and 18:00
    (written straight into the database, as a build before the day rule
    was fixed planned them, or as an operator's edit might): the lesson at
    15:00 goes (the second of the day), the one at 18:00 does not (it would
    be the third) and waits for Tuesday 09:00."""
    env = env_factory(smtp_port=sink.port, extra_conf="[pacing]\nmax_per_day = 2\n")
    write_course(env.courses, "daily", 4, schedule="FREQ=DAILY", tz="UTC")
    t0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", "--tz", "UTC", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "daily", "--no-welcome", now=iso(t0))
    env.tick("2026-05-04T09:00:00Z")
    assert sent_at(sink, "ann@example.org") == ["2026-05-04T09:00:00Z"]
    afternoon = int(datetime(2026, 5, 4, 15, 0, tzinfo=UTC).timestamp())
    env.sql("UPDATE enrollments SET next_send_at = ?", afternoon)
    env.tick("2026-05-04T15:00:00Z")
    assert sent_at(sink, "ann@example.org") == ["2026-05-04T09:00:00Z", "2026-05-04T15:00:00Z"]
    evening = int(datetime(2026, 5, 4, 18, 0, tzinfo=UTC).timestamp())
    env.sql("UPDATE enrollments SET next_send_at = ?", evening)
    env.tick("2026-05-04T18:00:00Z")
    assert len(sink.lessons("ann@example.org")) == 2, "a third lesson in one local day"
    shown = json.loads(env.ctl("schedule", "ann@example.org", "--json", now="2026-05-04T18:00:00Z").stdout)
    assert shown[0]["utc"] == "2026-05-05T09:00:00Z", shown
    env.tick("2026-05-05T09:00:00Z")
    assert sent_at(sink, "ann@example.org") == ["2026-05-04T09:00:00Z", "2026-05-04T15:00:00Z",
                                                "2026-05-05T09:00:00Z"]


@pytest.mark.parametrize("retry_after,want", [
    (3, ["2026-05-04T10:00:00Z"]),          # within late_grace (6h) of its 07:00 slot: sent late
    (8, ["2026-05-06T07:00:00Z"]),          # past it: not at a random hour, at the next slot
])
def test_late_grace_applies_to_a_retried_lesson(env_factory, retry_after, want):
    """Lesson 1 (Monday 09:00 Berlin = 07:00Z) is refused with 451 at its
    slot and accepted when it is retried retry_after hours later. Within
    late_grace it goes then; past late_grace it waits for the next slot
    (Wednesday), as a lesson missed during an outage does."""
    refusing = {"on": True}

    def decide(envelope, msg, attempt):
        return "451 4.3.0 try again later" if refusing["on"] else None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port, extra_conf="[delivery]\nretry_first = 1h\nretry_max = 1h\n")
        write_course(env.courses, "test", 3)
        t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
        env.ctl("init", now=iso(t0))
        env.ctl("sub", "add", "ann@example.org", now=iso(t0))
        env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now=iso(t0))
        slot = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)
        env.tick(iso(slot))
        assert env.sql("SELECT state FROM deliveries") == [("deferred",)]
        refusing["on"] = False
        env.tick(iso(slot + timedelta(hours=retry_after)))
        env.tick("2026-05-05T07:00:00Z")
        env.tick("2026-05-06T07:00:00Z")
        assert sent_at(sink, "ann@example.org")[:1] == want


def test_a_lesson_in_flight_when_coursed_died_is_not_sent_after_leaving(env_factory):
    """coursed dies (SIGKILL) while ann's lesson is on the wire, before the
    reply is recorded; meanwhile she unsubscribes. The row was 'sending',
    which leaving cannot withdraw; at the next start it is recovered, and
    the claim sees she is no longer active: it is withdrawn, not sent. bob's
    lesson, in the same state, is sent again (at-least-once)."""
    box = {"kill": True}

    def decide(envelope, msg, attempt):
        if box["kill"] and msg["X-Course-Lesson"]:
            box["kill"] = False
            box["env"].ctl("unenroll", "ann@example.org", "test", now="2026-05-04T07:00:00Z")
            box["proc"].send_signal(signal.SIGKILL)
            box["proc"].wait(timeout=30)
            return "451 4.3.0 the client is gone anyway"
        return None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port, extra_conf="[smtp]\nmessages_per_session = 10\n")
        box["env"] = env
        write_course(env.courses, "test", 3)
        t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
        env.ctl("init", now=iso(t0))
        for who in ("ann@example.org", "bob@example.org"):
            env.ctl("sub", "add", who, now=iso(t0))
            env.ctl("enroll", who, "test", "--no-welcome", now=iso(t0))
        box["proc"] = subprocess.Popen([COURSED, "-d", "-c", str(env.conf), "--once", "--now",
                                        "2026-05-04T07:00:00Z"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert box["proc"].wait(timeout=60) == -signal.SIGKILL
        finally:
            if box["proc"].poll() is None:
                box["proc"].kill()
                box["proc"].wait()
        assert env.sql("SELECT count(*) FROM deliveries WHERE state = 'sending'") == [(2,)]
        assert env.sql("SELECT status FROM subscribers WHERE email = 'ann@example.org'") == [("unsubscribed",)]
        env.tick("2026-05-04T07:05:00Z")
        env.tick("2026-05-06T07:00:00Z")
    assert sink.lessons("ann@example.org") == [], "a lesson reached someone who had left"
    assert len(sink.lessons("bob@example.org")) == 2
    assert env.sql("SELECT d.state FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
                   " JOIN subscribers s ON s.id = e.subscriber_id WHERE s.email = 'ann@example.org'") == \
        [("cancelled",)]


# ---------------------------------------------------------------- bounces

@pytest.mark.parametrize("status", ["5.7.26", "5.7.23", "5.7.0"])
def test_every_5_7_x_in_a_report_is_a_policy_refusal(env, sink, status):
    """5.7.26 (Gmail: DMARC/unauthenticated), 5.7.23 (SPF) and 5.7.0 are
    about our mail, not the address, like 5.7.1: the courses pause for the
    operator and the address stays active."""
    verp = enrolled_verp(env, sink, "picky@example.net")
    raw = dsn(verp, "picky@example.net", "failed", status, "pol" + status)
    dry = json.loads(inbound(env, raw, "--dry-run", "--json", "--sender", "").stdout)
    assert dry["bounces"] == [{"address": "picky@example.net", "status": status, "class": "policy"}], dry
    p = inbound(env, raw, "--sender", "", now=T0 + timedelta(days=2))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT status FROM subscribers") == [("active",)]
    assert env.sql("SELECT state, reason FROM enrollments") == [("paused", "policy")]
    assert env.sql("SELECT kind FROM events WHERE kind LIKE 'bounce%'") == [("bounce-policy",)]


def test_a_delayed_report_with_a_5xx_status_is_a_warning(env, sink):
    """Some MTAs send "Action: delayed" with a 5.x.x Status. A delay is a
    warning: it counts as one soft bounce (4.x.x), the address stays
    active, and the next lessons come."""
    verp = enrolled_verp(env, sink, "slow@example.net")
    raw = dsn(verp, "slow@example.net", "delayed", "5.2.2", "late1")
    dry = json.loads(inbound(env, raw, "--dry-run", "--json", "--sender", "").stdout)
    assert dry["bounces"] == [{"address": "slow@example.net", "status": "4.2.2", "class": "soft"}], dry
    p = inbound(env, raw, "--sender", "", now=T0 + timedelta(days=2))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT status FROM subscribers") == [("active",)]
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
    assert env.sql("SELECT kind FROM events WHERE kind LIKE 'bounce%'") == [("bounce-soft",)]
    env.tick("2026-05-08T07:00:00Z")
    assert len(sink.lessons("slow@example.net")) == 2


def test_soft_bounces_count_only_within_14_days(env, sink):
    """Soft bounces on days 0, 10 and 20 never make three days within 14:
    the address stays active. One more on day 22 does (days 10, 20, 22):
    it is bounced."""
    verp = enrolled_verp(env, sink, "full@example.net")
    start = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
    for day in (0, 10, 20):
        p = inbound(env, dsn(verp, "full@example.net", "failed", "4.2.2", f"soft{day}"), "--sender", "",
                    now=start + timedelta(days=day))
        assert p.returncode == 0, p.stderr
        assert env.sql("SELECT status FROM subscribers") == [("active",)], f"bounced on day {day}"
    p = inbound(env, dsn(verp, "full@example.net", "failed", "4.2.2", "soft22"), "--sender", "",
                now=start + timedelta(days=22))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT status FROM subscribers") == [("bounced",)]
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'bounce-soft'") == [(4,)]


# ---------------------------------------------------------------- opt-in

def test_confirmation_by_reply_expires_after_confirm_ttl(env, sink):
    """confirm_ttl is 72h: a reply after 73 hours confirms nothing and is
    answered with the reason; a new request then sends a new confirmation,
    which works within the 72 hours."""
    reply_to = request_confirmation(env, sink, "late@example.net")
    late = T0 + timedelta(hours=73)
    p = inbound(env, mail("late@example.net", reply_to, "Re: confirm", "yes"), "--json", now=late)
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT state FROM enrollments") == [("pending",)]
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'confirmed'") == [(0,)]
    env.tick(iso(late))
    answer = sink.system("late@example.net")[-1]["msg"]
    assert "expired" in answer.get_body(("plain",)).get_content()
    again = request_confirmation(env, sink, "late@example.net", now=late + timedelta(minutes=1))
    assert again != reply_to
    p = inbound(env, mail("late@example.net", again, "Re: confirm", "yes"), now=late + timedelta(hours=71))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT state FROM enrollments") == [("active",)]


def test_confirmation_link_expires_after_confirm_ttl(env_factory, sink):
    """The link of the confirmation mail: within 72 hours it shows the
    confirm button; after 73 hours both the GET and the POST say it
    expired, and nothing is confirmed."""
    env = env_factory(smtp_port=sink.port, http_port=free_port())
    write_course(env.courses, "test", 3)
    env.ctl("init", now=iso(T0))
    request_confirmation(env, sink, "link@example.net")
    body = sink.system("link@example.net")[0]["msg"].get_body(("plain",)).get_content()
    url = next(w for w in body.split() if "/c/" in w).strip("<>()")
    path = url[url.index("/c/"):]
    d = Daemon(env, T0 + timedelta(hours=73))
    try:
        status, page = d.request(path)
        assert status == 404 and "expired" in page, (status, page)
        status, page = d.request(path, data=b"confirm=yes")
        assert status == 404 and "expired" in page, (status, page)
    finally:
        d.stop()
    assert env.sql("SELECT state FROM enrollments") == [("pending",)]
    d = Daemon(env, T0 + timedelta(hours=71))
    try:
        status, page = d.request(path, data=b"confirm=yes")
        assert status == 200, page
    finally:
        d.stop()
    assert env.sql("SELECT state FROM enrollments") == [("active",)]


def test_a_confirmation_works_once_and_not_after_leaving(env, sink):
    """The same confirmation reply, sent again (a new Message-ID), is
    answered "already used" (not with an internal error naming the
    database); after leaving it does not start the course again. One
    welcome, ever."""
    reply_to = request_confirmation(env, sink, "once@example.net")
    later = T0 + timedelta(hours=1)
    assert inbound(env, mail("once@example.net", reply_to, "Re: confirm", "yes"), now=later).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
    env.tick(iso(later))                                # the welcome
    assert inbound(env, mail("once@example.net", reply_to, "Re: confirm", "yes, again"),
                   now=later + timedelta(minutes=1)).returncode == 0
    env.tick(iso(later + timedelta(minutes=1)))
    answer = sink.system("once@example.net")[-1]["msg"]
    text = answer.get_body(("plain",)).get_content()
    assert "already used" in text, text
    assert str(env.db) not in text and "state.db" not in text, text
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'confirmed'") == [(1,)]
    assert inbound(env, mail("once@example.net", "test@courses.example.org", "unsubscribe"),
                   now=later + timedelta(minutes=5)).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
    assert inbound(env, mail("once@example.net", reply_to, "Re: confirm", "yes, once more"),
                   now=later + timedelta(minutes=10)).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
    assert env.sql("SELECT status FROM subscribers") == [("unsubscribed",)]
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'confirmed'") == [(1,)]
    env.tick(iso(later + timedelta(minutes=15)))
    env.tick("2026-05-06T07:00:00Z")
    subjects = [m["msg"]["Subject"] for m in sink.system("once@example.net")]
    assert sum(s.startswith("Welcome") for s in subjects) == 1, subjects
    assert sink.lessons("once@example.net") == []


def test_subscribe_bombing_one_confirmation_per_24_hours(env, sink):
    """Requests for one address 2, 12 and 23 hours after the first send no
    new confirmation; one 25 hours after it sends the second."""
    for hours in (0, 2, 12, 23):
        at = T0 + timedelta(hours=hours)
        raw = mail("victim@example.net", "test@courses.example.org", "subscribe", msgid=f"<b{hours}@x>")
        assert inbound(env, raw, now=at).returncode == 0
        env.tick(iso(at))
    assert len(sink.system("victim@example.net")) == 1
    at = T0 + timedelta(hours=25)
    assert inbound(env, mail("victim@example.net", "test@courses.example.org", "subscribe"), now=at).returncode == 0
    env.tick(iso(at))
    assert len(sink.system("victim@example.net")) == 2


def test_expired_page_names_the_configured_lifetime(env_factory, sink):
    """With [inbound] confirm_ttl = 24h, the page of an expired link says 24
    hours (it used to say 72 whatever the setting)."""
    env = env_factory(smtp_port=sink.port, http_port=free_port(), extra_conf="[inbound]\nconfirm_ttl = 24h\n")
    write_course(env.courses, "test", 3)
    env.ctl("init", now=iso(T0))
    request_confirmation(env, sink, "ttl@example.net")
    body = sink.system("ttl@example.net")[0]["msg"].get_body(("plain",)).get_content()
    url = next(w for w in body.split() if "/c/" in w).strip("<>()")
    d = Daemon(env, T0 + timedelta(hours=25))
    try:
        status, page = d.request(url[url.index("/c/"):])
    finally:
        d.stop()
    assert status == 404 and "expired" in page, (status, page)
    assert "24 hours" in page and "72 hours" not in page, page
