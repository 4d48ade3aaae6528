"""What an MTA does to inbound mail, without an MTA: the real coursectl
inbound run the way Postfix's pipe runs it (one envelope recipient per
run), and addresses whose case a relay or Exim folded on the way."""
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from conftest import COURSECTL, write_course

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)        # a Monday


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mail(frm, to, subject, body="", msgid=None):
    msgid = msgid or f"<{os.urandom(6).hex()}@client.example>"
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 4 May 2026 12:00:00 +0200\r\n"
            f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


def inbound(env, raw, *args, now=T0):
    return subprocess.run([COURSECTL, "-c", str(env.conf), "--now", iso(now), "inbound", *args],
                          input=raw, capture_output=True, timeout=60)


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "first", 3)
    write_course(e.courses, "second", 3)
    e.ctl("init", now=iso(T0))
    return e


def test_one_mail_to_two_course_addresses_subscribes_to_both(env, sink):
    raw = mail("Ana <ana@example.net>", "first@courses.example.org, second@courses.example.org",
               "subscribe", msgid="<both@client.example>")
    for rcpt in ("first@courses.example.org", "second@courses.example.org"):
        p = inbound(env, raw, "--sender", "ana@example.net", "--recipient", rcpt)
        assert p.returncode == 0, p.stderr
    # the same recipient's copy again (an MTA retrying), in another case: no second effect
    p = inbound(env, raw, "--sender", "ana@example.net", "--recipient", "SECOND@courses.example.org")
    assert p.returncode == 0, p.stderr
    assert sorted(env.sql("SELECT course, state FROM enrollments")) == [("first", "pending"),
                                                                         ("second", "pending")]
    env.tick(iso(T0))
    subjects = sorted(m["msg"]["Reply-To"].addresses[0].addr_spec.split("+")[0]
                      for m in sink.system("ana@example.net"))
    assert subjects == ["first", "second"], "one confirmation request per course"
    assert env.sql("SELECT count(*) FROM inbound") == [(2,)]


def test_confirm_and_unsubscribe_survive_an_upper_cased_address(env, sink):
    p = inbound(env, mail("bo@example.net", "first@courses.example.org", "subscribe"),
                "--recipient", "first@courses.example.org")
    assert p.returncode == 0, p.stderr
    env.tick(iso(T0))
    req = sink.system("bo@example.net")[0]["msg"]
    reply_to = req["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith("first+confirm-")
    token = reply_to.split("+confirm-")[1].split("@")[0]
    assert token == token.lower(), "a token in an address must have one case"
    shouted = reply_to.upper()                       # what a case-folding relay makes of it
    later = T0 + timedelta(minutes=10)
    p = inbound(env, mail("bo@example.net", shouted, "Re: " + req["Subject"], "yes"),
                "--recipient", shouted, now=later)
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
    assert env.sql("SELECT status FROM subscribers") == [("active",)]

    # the List-Unsubscribe mailto of a lesson, upper-cased, still leaves
    env.tick(iso(later))                                        # the welcome
    env.tick(iso(datetime(2026, 5, 6, 7, 0, tzinfo=UTC)))       # the first lesson
    lesson = sink.lessons("bo@example.net")[0]["msg"]
    mailto = lesson["List-Unsubscribe"].split("<mailto:")[1].split("?")[0]
    p = inbound(env, mail("bo@example.net", mailto.upper(), "unsubscribe"), "--recipient", mailto.upper(),
                now=datetime(2026, 5, 6, 8, 0, tzinfo=UTC))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]


def test_upper_cased_verp_bounce_marks_bounced(env, sink):
    env.ctl("sub", "add", "gone@example.net", now=iso(T0))
    env.ctl("enroll", "gone@example.net", "first", "--no-welcome", now=iso(T0))
    env.tick(iso(datetime(2026, 5, 4, 16, 0, tzinfo=UTC)))
    env.tick(iso(datetime(2026, 5, 6, 7, 0, tzinfo=UTC)))
    verp = sink.lessons("gone@example.net")[0]["mail_from"].upper()
    dsn = (f"From: MAILER-DAEMON@mx.example.net\r\nTo: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           "Message-ID: <up1@mx>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
           "Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: User unknown\r\n--b--\r\n").encode()
    p = inbound(env, dsn, "--json", "--sender", "", "--recipient", verp)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["kind"] == "bounce"
    assert env.sql("SELECT status FROM subscribers") == [("bounced",)]


@pytest.mark.parametrize("args", [
    ["--bogus", "inbound"],                       # a typo in the pipe's options
    ["--now", "not-a-time", "inbound"],
    ["inbound", "--no-such-option"],
])
def test_a_mistake_in_the_pipe_line_defers_and_never_bounces(env, args):
    """The MTA bounces mail for any status but 0 and 75: a broken pipe
    line must make it keep the mail (75), not bounce every reader's."""
    raw = mail("ann@example.net", "first@courses.example.org", "subscribe")
    p = subprocess.run([COURSECTL, "-c", str(env.conf), *args], input=raw, capture_output=True, timeout=60)
    assert p.returncode == 75, (p.returncode, p.stderr)
    assert env.sql("SELECT count(*) FROM inbound") == [(0,)]
