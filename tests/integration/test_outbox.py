"""System mails end to end: the MTA pipe (coursectl inbound) only records
what to send, coursed renders it when it sends it; each system mail has
its own VERP sender; a 5xx at RCPT or a DSN for one is a bounce like a
lesson's; failed system mails are listed in `coursectl queue` with their
kind. Real coursed and coursectl, a real SMTP server, a real SQLite file."""
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from conftest import COURSECTL, REPO, write_course
from smtpsink import Sink, _Controller, _Handler, free_port

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


def dsn(verp, rcpt, status="5.1.1", mid="dsn1"):
    action = "delayed" if status.startswith("4") else "failed"
    return ("From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            "Message-ID: <{mid}@mx>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
            "Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n--b--\r\n").format(
                to=verp, rcpt=rcpt, status=status, mid=mid, action=action).encode()


class RcptRefusingSink(Sink):
    """The test SMTP server, refusing chosen recipients at RCPT (as Postfix
    does for an unknown local user) with refuse[address]."""

    def __init__(self):
        super().__init__()
        self.refuse = {}
        self.rcpt_refused = []

    def start(self):
        sink = self

        class Handler(_Handler):
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                reply = sink.refuse.get(address)
                if reply:
                    with sink.lock:
                        sink.rcpt_refused.append((envelope.mail_from, address, reply))
                    return reply
                envelope.rcpt_tos.append(address)
                return "250 2.1.5 OK"

        for _ in range(10):
            port = free_port()
            ctl = _Controller(Handler(self), hostname="127.0.0.1", port=port,
                              server_hostname="localhost", ready_timeout=10)
            try:
                ctl.start()
            except Exception:   # the port was taken in between: pick another
                continue
            self.controller, self.port = ctl, port
            return port
        raise RuntimeError("could not start the SMTP sink")


@pytest.fixture
def rsink():
    s = RcptRefusingSink()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def env(env_factory, rsink):
    e = env_factory(smtp_port=rsink.port)
    write_course(e.courses, "test", 3)
    e.ctl("init", now=iso(T0))
    return e


def queue(env, now=T0):
    return json.loads(env.ctl("queue", "--json", now=iso(now)).stdout)


def test_pipe_needs_no_templates_and_coursed_renders(env, rsink):
    """A template coursed would refuse (here: an unknown placeholder) cannot
    make inbound mail fail: the pipe does not load the templates at all;
    the daemon renders the row later from the good templates."""
    broken = env.dir / "broken-templates"
    shutil.copytree(REPO / "templates", broken)
    (broken / "confirm.md").write_text("Subject: Please confirm\n\nHello {{no_such_placeholder}},\n")
    good = env.conf.read_text()
    env.conf.write_text(good.replace(f"templates = {REPO / 'templates'}", f"templates = {broken}"))
    assert f"templates = {broken}" in env.conf.read_text()
    p = inbound(env, mail("ana@example.net", "test@courses.example.org", "subscribe"))
    assert p.returncode == 0, p.stderr.decode()
    rows = env.sql("SELECT kind, rcpt, state, length(message), spec IS NOT NULL FROM outbox")
    assert rows == [("confirm", "ana@example.net", "queued", 0, 1)]
    assert env.sql("SELECT state FROM enrollments") == [("pending",)]
    # coursed, on good templates, renders and sends it
    env.conf.write_text(good)
    env.tick(iso(T0))
    got = rsink.system("ana@example.net")
    assert len(got) == 1
    assert got[0]["msg"]["Subject"].startswith("Please confirm")
    assert "confirm-" in got[0]["msg"]["Reply-To"]
    assert env.sql("SELECT state FROM outbox") == [("sent",)]


def test_old_rendered_rows_are_sent_as_they_are(env, rsink):
    """A row queued rendered by an older version (message set, no spec)
    goes out byte for byte."""
    body = (b"From: Test <test@courses.example.org>\r\nTo: old@example.net\r\nSubject: Rendered long ago\r\n"
            b"Date: Mon, 04 May 2026 09:00:00 +0000\r\n"
            b"Message-ID: <old-1@courses.example.org>\r\nAuto-Submitted: auto-replied\r\n\r\nHello.\r\n")
    con_rows = env.sql("INSERT INTO outbox (kind, rcpt, message, state, created_at, next_attempt_at)"
                       " VALUES ('help', 'old@example.net', ?, 'queued', ?, ?)",
                       body, int(T0.timestamp()), int(T0.timestamp()))
    assert con_rows == []
    env.tick(iso(T0))
    got = rsink.system("old@example.net")
    assert len(got) == 1
    assert got[0]["raw"].replace(b"\r\n", b"\n") == body.replace(b"\r\n", b"\n")
    assert env.sql("SELECT state FROM outbox") == [("sent",)]


def test_a_mail_that_cannot_be_rendered_fails_alone(env, rsink):
    """The course of one queued confirmation is gone when coursed sends:
    that row fails loudly (log, queue) and the other one is sent."""
    write_course(env.courses, "gone", 2)
    assert inbound(env, mail("a@example.net", "gone@courses.example.org", "subscribe")).returncode == 0
    assert inbound(env, mail("b@example.net", "test@courses.example.org", "subscribe")).returncode == 0
    shutil.rmtree(env.courses / "gone")
    p = env.tick(iso(T0))
    assert [m["rcpts"] for m in rsink.system()] == [["b@example.net"]]
    assert "not rendered" in p.stderr and "course 'gone' is not loaded" in p.stderr
    q = queue(env)
    assert [(r["kind"], r["email"], r["state"]) for r in q] == [("confirm", "a@example.net", "failed")]
    assert "not rendered" in q[0]["last_reply"] and q[0]["ref"] == f"m{q[0]['id']}"
    text = env.ctl("queue", now=iso(T0)).stdout
    assert "confirm" in text and "failed" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    # and the queue says clearly that retry and cancel are for lessons
    for cmd in ("retry", "cancel"):
        r = env.ctl(cmd, q[0]["ref"], now=iso(T0), check=False)
        assert r.returncode == 2 and "is a system mail" in r.stderr and "lesson deliveries only" in r.stderr


def test_welcome_refused_at_rcpt_is_a_hard_bounce(env, rsink):
    rsink.refuse["gone@example.net"] = "550 5.1.1 <gone@example.net>: Recipient address rejected: unknown"
    env.ctl("sub", "add", "gone@example.net", now=iso(T0))
    env.ctl("enroll", "gone@example.net", "test", now=iso(T0))
    env.tick(iso(T0))
    assert [r[1] for r in rsink.rcpt_refused] == ["gone@example.net"]
    assert rsink.rcpt_refused[0][0].startswith("bounces+"), "the welcome has no VERP sender"
    assert env.sql("SELECT status FROM subscribers") == [("bounced",)]
    assert env.sql("SELECT state, reason FROM enrollments") == [("stopped", "bounced")]
    q = queue(env)
    assert [(r["kind"], r["state"], r["last_code"]) for r in q] == [("welcome", "failed", 550)]
    # no lesson ever goes to it
    env.tick(iso(T0 + timedelta(days=7)))
    assert rsink.lessons() == []


def test_welcome_4xx_is_retried(env, rsink):
    rsink.refuse["slow@example.net"] = "451 4.3.0 try again later"
    env.ctl("sub", "add", "slow@example.net", now=iso(T0))
    env.ctl("enroll", "slow@example.net", "test", now=iso(T0))
    env.tick(iso(T0))
    assert env.sql("SELECT status FROM subscribers") == [("active",)]
    assert [(r["kind"], r["state"]) for r in queue(env)] == [("welcome", "deferred")]
    del rsink.refuse["slow@example.net"]
    env.tick(iso(T0 + timedelta(hours=2)))
    assert [m["msg"]["Subject"].startswith("Welcome") for m in rsink.system("slow@example.net")] == [True]
    assert queue(env, T0 + timedelta(hours=2)) == []


def test_dsn_of_the_welcome_by_its_verp_address_bounces(env, rsink):
    env.ctl("sub", "add", "late@example.net", now=iso(T0))
    env.ctl("enroll", "late@example.net", "test", now=iso(T0))
    env.tick(iso(T0))
    welcome = rsink.system("late@example.net")
    assert len(welcome) == 1
    verp = welcome[0]["mail_from"]
    assert verp.startswith("bounces+") and verp.endswith("@courses.example.org")
    # a forged token changes nothing
    local, dom = verp.split("@")
    token = local.split("+", 1)[1]
    # tokens ignore case: 'A' for a final 'a' was the same token (1 run in 32)
    forged = f"bounces+{token[:-1] + ('c' if token[-1].lower() != 'c' else 'e')}@{dom}"
    assert inbound(env, dsn(forged, "late@example.net", mid="f"), "--sender", "").returncode == 0
    assert env.sql("SELECT status FROM subscribers") == [("active",)]
    p = inbound(env, dsn(verp, "late@example.net"), "--sender", "", "--json",
                now=T0 + timedelta(hours=1))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT status FROM subscribers") == [("bounced",)]
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
    detail = env.sql("SELECT detail FROM events WHERE kind = 'bounced'")[0][0]
    assert "system mail" in detail and "welcome" in detail


def test_bounced_confirmation_kills_the_request_not_the_subscriber(env, rsink):
    assert inbound(env, mail("typo@example.net", "test@courses.example.org", "subscribe")).returncode == 0
    env.tick(iso(T0))
    confirm = rsink.system("typo@example.net")
    assert len(confirm) == 1
    verp = confirm[0]["mail_from"]
    assert verp.startswith("bounces+")
    later = T0 + timedelta(hours=1)
    assert inbound(env, dsn(verp, "typo@example.net"), "--sender", "", now=later).returncode == 0
    assert env.sql("SELECT status FROM subscribers") == [("pending",)], "a subscriber state changed"
    assert env.sql("SELECT state, reason FROM enrollments") == [("stopped", "bounced")]
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'confirm-bounced'") == [(1,)]
    # asking again, even days later, sends no confirmation to the dead address
    again = T0 + timedelta(days=3)
    p = inbound(env, mail("typo@example.net", "test@courses.example.org", "subscribe"), now=again)
    assert p.returncode == 0
    assert env.sql("SELECT count(*) FROM outbox WHERE kind = 'confirm'") == [(1,)]
    env.tick(iso(again))
    assert len(rsink.system("typo@example.net")) == 1


def test_confirmation_refused_at_rcpt_kills_the_request(env, rsink):
    rsink.refuse["nouser@example.net"] = "550 5.1.1 <nouser@example.net>: User unknown"
    assert inbound(env, mail("nouser@example.net", "test@courses.example.org", "subscribe")).returncode == 0
    env.tick(iso(T0))
    assert env.sql("SELECT status FROM subscribers") == [("pending",)]
    assert env.sql("SELECT state, reason FROM enrollments") == [("stopped", "bounced")]
    assert [(r["kind"], r["state"]) for r in queue(env)] == [("confirm", "failed")]


def test_goodbye_refused_for_someone_who_left_keeps_them_unsubscribed(env, rsink):
    """A hard refusal of the goodbye of someone who just left is recorded,
    and changes nothing else: the person stays unsubscribed (their own
    choice is the stronger fact) and the rest of the tick goes on."""
    env.ctl("sub", "add", "left@example.net", now=iso(T0))
    env.ctl("sub", "add", "stays@example.net", now=iso(T0))
    for a in ("left@example.net", "stays@example.net"):
        env.ctl("enroll", a, "test", "--no-welcome", now=iso(T0))
    assert inbound(env, mail("left@example.net", "test@courses.example.org", "unsubscribe")).returncode == 0
    rsink.refuse["left@example.net"] = "550 5.1.1 <left@example.net>: User unknown"
    env.tick(iso(T0 + timedelta(days=2)))
    assert env.sql("SELECT email, status FROM subscribers ORDER BY email") == [
        ("left@example.net", "unsubscribed"), ("stays@example.net", "active")]
    assert [(r["kind"], r["state"]) for r in queue(env, T0 + timedelta(days=2))] == [("goodbye", "failed")]
    assert [m["msg"]["X-Course-Lesson"] for m in rsink.lessons("stays@example.net")] == ["test 1/3"]
