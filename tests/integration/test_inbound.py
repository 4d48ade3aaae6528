"""Subscribing and leaving by e-mail and by link, end to end: the real
coursectl inbound (as an MTA pipe runs it), the real coursed with its HTTP
pages, a real SMTP server and a real SQLite file."""
import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from conftest import COURSED, write_course
from smtpsink import free_port

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)        # a Monday


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mail(frm, to, subject, body="", msgid=None, extra=""):
    msgid = msgid or f"<{os.urandom(6).hex()}@client.example>"
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 4 May 2026 12:00:00 +0200\r\n"
            f"Message-ID: {msgid}\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


def inbound(env, raw, *args, now=T0):
    return subprocess.run([os.environ.get("COURSECTL_BIN", env_ctl()), "-c", str(env.conf), "--now", iso(now),
                           "inbound", *args], input=raw, capture_output=True, timeout=60)


def env_ctl():
    from conftest import COURSECTL
    return COURSECTL


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port, http_port=free_port())
    write_course(e.courses, "test", 3, extra="allow_next = true\n")
    e.ctl("init", now=iso(T0))
    return e


class Daemon:
    """coursed in its loop, on a frozen clock, serving the HTTP pages."""

    def __init__(self, env, now):
        self.env = env
        self.p = subprocess.Popen([COURSED, "-d", "-c", str(env.conf), "--now", iso(now)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port = int(env.conf.read_text().split("listen = 127.0.0.1:")[1].split()[0])
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or self.p.poll() is not None:
                    self.stop()
                    raise RuntimeError("coursed did not start its HTTP pages")
                time.sleep(0.1)

    def request(self, path, data=None):
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def test_subscribe_confirm_lesson_then_one_click_leave(env, sink):
    raw = mail("Ana <ana@example.net>", "test@courses.example.org", "subscribe",
               "subscribe test tz=Europe/Berlin Ana Maria\r\n\r\n-- \r\nAna")
    p = inbound(env, raw)
    assert p.returncode == 0, p.stderr
    env.tick(iso(T0))
    confirm = sink.system("ana@example.net")
    assert len(confirm) == 1
    c = confirm[0]["msg"]
    assert c["Auto-Submitted"] == "auto-replied"
    assert c["Subject"].startswith("Please confirm")
    assert b"Ana Maria" not in confirm[0]["raw"], "the confirmation echoes what the requester typed"
    assert c["List-Unsubscribe"] is None
    reply_to = c["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith("test+confirm-")
    # nothing is enrolled before the confirmation
    assert env.sql("SELECT state FROM enrollments") == [("pending",)]
    env.tick(iso(T0 + timedelta(days=3)))
    assert sink.lessons() == []

    # the reply to the confirmation, quoted text and all
    later = T0 + timedelta(hours=1)
    reply = mail("ana@example.net", reply_to, "Re: " + c["Subject"], "Yes!\r\n\r\n> Please confirm", )
    assert inbound(env, reply, now=later).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
    assert env.sql("SELECT status, name, tz FROM subscribers") == [("active", "Ana Maria", "Europe/Berlin")]
    # the audit trail says how and from which message
    log = json.loads(env.ctl("log", "ana@example.net", "--json", now=iso(later)).stdout)
    confirmed = next(e for e in log if e["event"] == "confirmed")
    assert confirmed["via"] == "email" and confirmed["message_id"]
    env.tick(iso(later))                                    # the welcome
    slot = datetime(2026, 5, 4, 16, 0, tzinfo=UTC)          # first_within default: next slot
    env.tick(iso(datetime(2026, 5, 6, 7, 0, tzinfo=UTC)))   # Wed 09:00 CEST
    lessons = sink.lessons("ana@example.net")
    assert [m["msg"]["X-Course-Lesson"] for m in lessons] == ["test 1/3"]
    assert [m["msg"]["Subject"] for m in sink.system("ana@example.net")][1].startswith("Welcome")
    # a reused confirmation changes nothing
    again = mail("ana@example.net", reply_to, "Re: confirm", "yes")
    assert inbound(env, again, now=later).returncode == 0
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'confirmed'") == [(1,)]
    del slot

    # one-click unsubscribe (RFC 8058) through the running daemon
    url = lessons[0]["msg"]["List-Unsubscribe"].split("<")[1].split(">")[0]
    path = url.replace("https://courses.example.org", "")
    d = Daemon(env, datetime(2026, 5, 6, 8, 0, tzinfo=UTC))
    try:
        status, page = d.request(path)                       # a link scanner's GET
        assert status == 200 and "<form method=\"post\"" in page
        assert env.sql("SELECT state FROM enrollments") == [("active",)], "a GET changed state"
        # another canonical last symbol in any case (tokens ignore case)
        flipped = path[:-1] + ("c" if path[-1].lower() != "c" else "e")
        status, _ = d.request(flipped, data=b"List-Unsubscribe=One-Click")
        assert status in (400, 404)
        assert env.sql("SELECT state FROM enrollments") == [("active",)]
        status, page = d.request(path, data=b"List-Unsubscribe=One-Click")
        assert status == 200, page
        # committed before the reply
        assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
        assert env.sql("SELECT status FROM subscribers") == [("unsubscribed",)]
        assert d.request("/healthz")[0] == 200
        assert d.request("/c/garbage")[0] == 400
    finally:
        d.stop()
    assert d.p.returncode == 0
    env.tick(iso(datetime(2026, 5, 20, 8, 0, tzinfo=UTC)))
    assert [m["msg"]["X-Course-Lesson"] for m in sink.lessons("ana@example.net")] == ["test 1/3"], \
        "a lesson arrived after leaving"
    assert sink.system("ana@example.net")[-1]["msg"]["Subject"].lower().startswith("you have left") or \
        "goodbye" in sink.system("ana@example.net")[-1]["msg"]["Subject"].lower() or \
        len(sink.system("ana@example.net")) == 3


def test_confirm_by_link_and_get_changes_nothing(env, sink):
    assert inbound(env, mail("bo@example.net", "test+subscribe@courses.example.org", "hi")).returncode == 0
    env.tick(iso(T0))
    c = sink.system("bo@example.net")[0]["msg"]
    body = c.get_body(("plain",)).get_content()
    url = next(w for w in body.split() if "/c/" in w).strip("<>()")
    path = url[url.index("/c/"):]
    d = Daemon(env, T0 + timedelta(minutes=5))
    try:
        status, page = d.request(path)
        assert status == 200 and "Confirm" in page
        assert env.sql("SELECT state FROM enrollments") == [("pending",)]
        status, _ = d.request(path, data=b"confirm=yes")
        assert status == 200
        assert env.sql("SELECT state FROM enrollments") == [("active",)]
        assert env.sql("SELECT via FROM events WHERE kind = 'confirmed'") == [("link",)]
    finally:
        d.stop()


def test_subscribe_bombing_sends_one_confirmation(env, sink):
    for i in range(50):
        raw = mail("victim@example.net", "test@courses.example.org", "subscribe", msgid=f"<bomb{i}@x>")
        assert inbound(env, raw, now=T0 + timedelta(minutes=i)).returncode == 0
    env.tick(iso(T0 + timedelta(hours=1)))
    assert len(sink.system("victim@example.net")) == 1
    # after a day, one reminder is allowed
    inbound(env, mail("victim@example.net", "test@courses.example.org", "subscribe"), now=T0 + timedelta(days=1, hours=1))
    env.tick(iso(T0 + timedelta(days=1, hours=1)))
    assert len(sink.system("victim@example.net")) == 2


def test_same_message_twice_has_one_effect(env, sink):
    raw = mail("cy@example.net", "test@courses.example.org", "subscribe", msgid="<dup@x>")
    assert inbound(env, raw).returncode == 0
    assert inbound(env, raw).returncode == 0
    nomid = b"From: dee@example.net\r\nTo: test@courses.example.org\r\nSubject: subscribe\r\n\r\n"
    assert inbound(env, nomid).returncode == 0
    assert inbound(env, nomid).returncode == 0
    assert env.sql("SELECT count(*) FROM outbox") == [(2,)]


LOOPS = [
    ("null sender", ["--sender", ""], ""),
    ("MAILER-DAEMON", [], "From: MAILER-DAEMON@mx.example.net\r\n"),
    ("postmaster", [], "From: postmaster@example.net\r\n"),
    ("Auto-Submitted", [], "Auto-Submitted: auto-replied\r\n"),
    ("Precedence bulk", [], "Precedence: bulk\r\n"),
    ("Precedence junk", [], "Precedence: junk\r\n"),
    ("Precedence list", [], "Precedence: list\r\n"),
    ("our List-Id", [], "List-Id: Test Course <test.courses.example.org>\r\n"),
]


@pytest.mark.parametrize("name,args,extra", LOOPS, ids=[l[0] for l in LOOPS])
def test_never_reply_to_loops(env, name, args, extra):
    frm = "someone@example.net"
    if extra.startswith("From: "):
        frm, extra = extra[6:].strip(), ""
    raw = mail(frm, "test@courses.example.org", "help", extra=extra)
    dry = inbound(env, raw, "--dry-run", "--json", *args)
    assert dry.returncode == 0
    out = json.loads(dry.stdout)
    assert out["kind"] in ("auto-reply", "ignored"), out
    assert out["may_reply"] is False
    assert inbound(env, raw, *args).returncode == 0
    assert env.sql("SELECT count(*) FROM outbox") == [(0,)], f"replied to {name}"


def test_ten_replies_per_address_per_day(env):
    for i in range(15):
        inbound(env, mail("chatty@example.net", "test@courses.example.org", "help"), now=T0 + timedelta(minutes=i))
    assert env.sql("SELECT count(*) FROM outbox WHERE rcpt = 'chatty@example.net'") == [(10,)]


def test_bounce_by_verp_marks_bounced_and_forgery_does_nothing(env, sink):
    env.ctl("sub", "add", "gone@example.net", now=iso(T0))
    env.ctl("enroll", "gone@example.net", "test", "--no-welcome", now=iso(T0))
    env.tick(iso(datetime(2026, 5, 4, 16, 0, tzinfo=UTC)))
    env.tick(iso(datetime(2026, 5, 6, 7, 0, tzinfo=UTC)))
    verp = sink.lessons("gone@example.net")[0]["mail_from"]
    assert verp.startswith("bounces+")
    dsn = ("From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           "Message-ID: <{mid}@mx>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
           "Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: User unknown\r\n--b--\r\n")
    local, dom = verp.split("@")
    token = local.split("+", 1)[1]
    forged = token[:-1] + ("c" if token[-1].lower() != "c" else "e")  # tokens ignore case
    p = inbound(env, dsn.format(to=f"bounces+{forged}@{dom}", mid="f1").encode(), "--json", "--sender", "")
    assert p.returncode == 0
    assert json.loads(p.stdout)["bounces"] == [{"address": "gone@example.net", "status": "5.1.1", "class": "hard"}]
    assert env.sql("SELECT status FROM subscribers") == [("active",)], "a forged bounce had an effect"
    p = inbound(env, dsn.format(to=verp, mid="r1").encode(), "--sender", "")
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT status FROM subscribers") == [("bounced",)]
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
    env.tick(iso(datetime(2026, 5, 20, 7, 0, tzinfo=UTC)))
    assert len(sink.lessons("gone@example.net")) == 1


def test_locked_database_is_a_temporary_failure(env):
    con = sqlite3.connect(env.db, timeout=1)
    con.execute("BEGIN EXCLUSIVE")
    try:
        p = inbound(env, mail("x@example.net", "test@courses.example.org", "help"))
        assert p.returncode == 75, p.stderr
    finally:
        con.rollback()
        con.close()
    assert inbound(env, mail("x@example.net", "test@courses.example.org", "help")).returncode == 0


def test_garbage_is_ignored_with_exit_0(env):
    for raw in (b"", b"\x00\x01\x02 not mail", b"From: \r\n\r\n" + b"A" * 100000, os.urandom(5000)):
        p = inbound(env, raw, "--dry-run", "--json")
        assert p.returncode == 0
        assert json.loads(p.stdout)["kind"] in ("ignored", "auto-reply")
        assert inbound(env, raw).returncode == 0


def drop(maildir, name, raw):
    """Deliver into a Maildir the way fetchmail/mbsync do: tmp/, then rename into new/."""
    (maildir / "tmp").mkdir(parents=True, exist_ok=True)
    (maildir / "new").mkdir(parents=True, exist_ok=True)
    tmp = maildir / "tmp" / name
    tmp.write_bytes(raw)
    tmp.rename(maildir / "new" / name)


def test_maildir_inbound_once_and_quarantine(env_factory, sink):
    env = env_factory(smtp_port=sink.port, extra_conf="[inbound]\nmaildir = inbox\n")
    write_course(env.courses, "test", 2)
    env.ctl("init", now=iso(T0))
    inbox = env.dir / "inbox"
    drop(inbox, "1700000000.1.host", mail("ed@example.net", "test@courses.example.org", "subscribe"))
    drop(inbox, "1700000000.2.host", b"")
    env.tick(iso(T0))
    assert sorted(p.name for p in (inbox / "cur").iterdir()) == ["1700000000.1.host:2,S"]
    assert [p.name for p in (inbox / ".Quarantine" / "cur").iterdir()] == ["1700000000.2.host:2,S"]
    assert list((inbox / "new").iterdir()) == []
    assert len(sink.system("ed@example.net")) == 1       # the confirmation request
    # the same message fetched again has no second effect
    drop(inbox, "1700000001.1.host", (inbox / "cur" / "1700000000.1.host:2,S").read_bytes())
    env.tick(iso(T0 + timedelta(minutes=1)))
    assert len(sink.system("ed@example.net")) == 1
    assert len(list((inbox / "cur").iterdir())) == 2


def test_maildir_watched_by_running_daemon(env_factory, sink):
    port = free_port()
    env = env_factory(smtp_port=sink.port, http_port=port,
                      extra_conf="[inbound]\nmaildir = inbox\nscan_interval = 1h\n")
    write_course(env.courses, "test", 2)
    env.ctl("init", now=iso(T0))
    d = Daemon(env, T0)
    try:
        drop(env.dir / "inbox", "1700000000.9.host", mail("fay@example.net", "test@courses.example.org", "help"))
        # inotify wakes the daemon: wait (bounded) for the file to move
        deadline = time.monotonic() + 15
        cur = env.dir / "inbox" / "cur"
        while time.monotonic() < deadline and not (cur.exists() and any(cur.iterdir())):
            time.sleep(0.05)
        assert [p.name for p in cur.iterdir()] == ["1700000000.9.host:2,S"]
    finally:
        d.stop()
    assert env.sql("SELECT kind, rcpt FROM outbox") == [("help", "fay@example.net")]


def test_pages_render_in_chromium(env, sink, tmp_path):
    """The confirm and leave pages are simple, accessible HTML: a heading, a
    labelled button in a POST form, no script; Chromium renders them without
    console or network errors. Screenshots go to build/artifacts/screenshots/."""
    from test_html_render import ARTIFACTS, chromium, png_facts
    assert inbound(env, mail("gil@example.net", "test+subscribe@courses.example.org", "hi")).returncode == 0
    env.tick(iso(T0))
    body = sink.system("gil@example.net")[0]["msg"].get_body(("plain",)).get_content()
    url = next(w for w in body.split() if "/c/" in w).strip("<>()")
    confirm_path = url[url.index("/c/"):]
    d = Daemon(env, T0 + timedelta(minutes=1))
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for name, path in (("confirm", confirm_path), ("bad-link", "/u/not-a-token")):
            dom = chromium(tmp_path, "--dump-dom", d.base + path)
            assert dom.returncode == 0, dom.stderr[-2000:]
            errors = [l for l in dom.stderr.splitlines() if "CONSOLE" in l or "net::ERR_" in l]
            assert not errors, errors
            assert "<h1" in dom.stdout and 'lang="en"' in dom.stdout and "<script" not in dom.stdout
            if name == "confirm":
                assert '<form method="post"' in dom.stdout and "<button" in dom.stdout
            shot = ARTIFACTS / f"page-{name}-375.png"
            p = chromium(tmp_path, "--window-size=375,800", f"--screenshot={shot}", d.base + path)
            assert p.returncode == 0 and png_facts(shot)[2] > 10
        # a browser's GET changed nothing
        assert env.sql("SELECT state FROM enrollments") == [("pending",)]
    finally:
        d.stop()


def dsn_to(verp, rcpt, status, mid):
    return ("From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Delivery Status Notification\r\n"
            "Message-ID: <{mid}@mx>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nDelivery problem.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
            "Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n--b--\r\n").format(
                to=verp, rcpt=rcpt, status=status, mid=mid,
                action="delayed" if status.startswith("4") else "failed").encode()


def lesson_verp(env, sink, email):
    env.ctl("sub", "add", email, now=iso(T0))
    env.ctl("enroll", email, "test", "--no-welcome", now=iso(T0))
    env.tick(iso(datetime(2026, 5, 6, 7, 0, tzinfo=UTC)))
    return sink.lessons(email)[0]["mail_from"]


def test_soft_bounces_on_three_days_become_hard(env, sink):
    verp = lesson_verp(env, sink, "full@example.net")
    for day in range(3):
        at = T0 + timedelta(days=2 + day)
        p = inbound(env, dsn_to(verp, "full@example.net", "4.2.2", f"soft{day}"), "--sender", "", now=at)
        assert p.returncode == 0
        state = env.sql("SELECT status FROM subscribers")[0][0]
        assert state == ("bounced" if day == 2 else "active"), f"day {day}: {state}"
    assert env.sql("SELECT count(*) FROM events WHERE kind = 'bounce-soft'") == [(3,)]


def test_policy_bounce_pauses_and_warns(env, sink):
    verp = lesson_verp(env, sink, "picky@example.net")
    p = inbound(env, dsn_to(verp, "picky@example.net", "5.7.1", "pol"), "--sender", "",
                now=T0 + timedelta(days=2))
    assert p.returncode == 0
    assert env.sql("SELECT status FROM subscribers") == [("active",)]
    assert env.sql("SELECT state FROM enrollments") == [("paused",)]
    assert env.sql("SELECT kind FROM events WHERE kind LIKE 'bounce%'") == [("bounce-policy",)]
    assert "operator" in p.stderr.decode()


def test_zone_guessed_from_date_and_next_command(env, sink):
    """A subscribe without tz= from a +0530 client gets Asia/Kolkata, and the
    welcome mail says it was guessed and how to correct it. `next` sends the
    next lesson at once where the course allows it."""
    raw = mail("raj@example.in", "test@courses.example.org", "subscribe").replace(
        b"Date: Mon, 4 May 2026 12:00:00 +0200", b"Date: Mon, 4 May 2026 15:30:00 +0530")
    assert inbound(env, raw).returncode == 0
    env.tick(iso(T0))
    reply_to = sink.system("raj@example.in")[0]["msg"]["Reply-To"].addresses[0].addr_spec
    assert inbound(env, mail("raj@example.in", reply_to, "Re: confirm", "ok")).returncode == 0
    env.tick(iso(T0 + timedelta(minutes=1)))
    welcome = sink.system("raj@example.in")[1]["msg"]
    text = welcome.get_body(("plain",)).get_content()
    # the example stays on one line (a no-break space), and copied as it is,
    # no-break space and all, it works
    assert "Asia/Kolkata" in text and "guessed" in text and "tz\u00a0Europe/Berlin" in text
    assert env.sql("SELECT tz, tz_guessed FROM subscribers") == [("Asia/Kolkata", 1)]
    # the tz command corrects it
    inbound(env, mail("raj@example.in", "test@courses.example.org", "tz\u00a0Europe/Berlin"), now=T0 + timedelta(hours=1))
    assert env.sql("SELECT tz, tz_guessed FROM subscribers") == [("Europe/Berlin", 0)]
    # lesson 1 at its slot, then "next" brings lesson 2 at once
    env.tick("2026-05-06T07:00:00Z")                       # Wed 09:00 Berlin
    assert [m["msg"]["X-Course-Lesson"] for m in sink.lessons("raj@example.in")] == ["test 1/3"]
    assert inbound(env, mail("raj@example.in", "test@courses.example.org", "next"),
                   now=datetime(2026, 5, 6, 12, 0, tzinfo=UTC)).returncode == 0
    env.tick("2026-05-06T12:00:00Z")
    assert [m["msg"]["X-Course-Lesson"] for m in sink.lessons("raj@example.in")] == ["test 1/3", "test 2/3"]


def test_unsubscribe_all_leaves_every_course_with_one_goodbye(env, sink):
    """ann is in three courses (one paused, one finished); she writes
    "unsubscribe all" to one course address. Every running course stops,
    the finished one stays finished, she is 'unsubscribed', exactly one
    goodbye reaches her, it repeats nothing she wrote, and no lesson of any
    course follows. A plain "unsubscribe" leaves only the addressed course."""
    write_course(env.courses, "two", 3)
    write_course(env.courses, "one", 1)
    for who in ("ann@example.org", "bob@example.org"):
        env.ctl("sub", "add", who, now=iso(T0))
        for c in ("test", "two", "one"):
            env.ctl("enroll", who, c, "--no-welcome", now=iso(T0))
    env.ctl("pause", "ann@example.org", "two", now=iso(T0))
    env.tick(iso(T0 + timedelta(days=2)))               # "one" completes for both
    before = len(sink.messages)
    raw = mail("Ann <ann@example.org>", "test@courses.example.org", "unsubscribe all",
               body="UNIQUE-WORDS-FROM-ANN")
    later = T0 + timedelta(days=2, hours=1)
    p = inbound(env, raw, now=later)
    assert p.returncode == 0, p.stderr
    env.tick(iso(later))
    states = dict(env.sql("SELECT e.course, e.state FROM enrollments e JOIN subscribers s"
                          " ON s.id = e.subscriber_id WHERE s.email = 'ann@example.org'"))
    assert states == {"test": "stopped", "two": "stopped", "one": "completed"}, states
    assert env.sql("SELECT status FROM subscribers WHERE email = 'ann@example.org'") == [("unsubscribed",)]
    new = sink.messages[before:]
    to_ann = [m for m in new if m["rcpts"] == ["ann@example.org"]]
    assert len(to_ann) == 1, [m["msg"]["Subject"] for m in to_ann]
    assert "left" in to_ann[0]["msg"]["Subject"]
    assert "UNIQUE-WORDS-FROM-ANN" not in to_ann[0]["msg"].as_string()
    # nothing more, in any course, for weeks
    for d in range(3, 24, 3):
        env.tick(iso(T0 + timedelta(days=d)))
    assert [m for m in sink.messages[before:] if m["rcpts"] == ["ann@example.org"]] == to_ann
    # bob's plain "unsubscribe" to one course leaves only that one
    p = inbound(env, mail("bob@example.org", "two@courses.example.org", "unsubscribe"), now=later)
    assert p.returncode == 0, p.stderr
    states = dict(env.sql("SELECT e.course, e.state FROM enrollments e JOIN subscribers s"
                          " ON s.id = e.subscriber_id WHERE s.email = 'bob@example.org'"))
    assert states["two"] == "stopped" and states["test"] in ("active", "completed"), states
    dry = json.loads(inbound(env, raw, "--dry-run", "--json", now=later).stdout)
    assert dry.get("all") is True and dry["command"] == "unsubscribe", dry


def test_a_confirm_token_confirms_only_the_request_it_was_sent_for(env, sink):
    """Confirm, leave, ask again: the first confirmation's link is still
    inside its 72 hours but must not confirm the new request (issue 17); the
    new mail's link does."""
    def confirm_address():
        c = sink.system("flo@example.net")[-1]["msg"]
        assert c["Subject"].startswith("Please confirm")
        return c["Reply-To"].addresses[0].addr_spec

    assert inbound(env, mail("flo@example.net", "test@courses.example.org", "subscribe")).returncode == 0
    env.tick(iso(T0))
    first = confirm_address()
    t = T0 + timedelta(minutes=10)
    assert inbound(env, mail("flo@example.net", first, "Re: confirm", "yes"), now=t).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
    t += timedelta(minutes=10)
    assert inbound(env, mail("flo@example.net", "test@courses.example.org", "unsubscribe"), now=t).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
    t += timedelta(hours=1)
    assert inbound(env, mail("flo@example.net", "test@courses.example.org", "subscribe"), now=t).returncode == 0
    env.tick(iso(t))
    second = confirm_address()
    assert second != first
    t += timedelta(minutes=10)
    assert inbound(env, mail("flo@example.net", first, "Re: confirm", "yes"), now=t).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("pending",)], "an old link confirmed a new request"
    assert inbound(env, mail("flo@example.net", second, "Re: confirm", "yes"), now=t).returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
