"""Readers anywhere (issue 14): an internationalised domain is kept in Unicode
for people and sent as its ASCII form (punycode) on the wire and in headers;
a local part that is not ASCII is refused everywhere an address comes in,
because the relay (libESMTP) has no SMTPUTF8. Real coursed and coursectl, a
real SMTP server, a real SQLite file."""
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from conftest import COURSECTL, write_course

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)        # a Monday
LESSON1 = datetime(2026, 5, 6, 7, 0, tzinfo=UTC)    # Wednesday 09:00 Berlin
UNICODE = "anna@müller.example"
ASCII = "anna@xn--mller-kva.example"
SMTPUTF8 = ("a local part that is not ASCII (josé) cannot be delivered: "
            "the mail relay does not speak SMTPUTF8")


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mail(frm, to, subject, body=""):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 4 May 2026 12:00:00 +0200\r\n"
            f"Message-ID: <{os.urandom(6).hex()}@client.example>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def inbound(env, raw, *args, now=T0):
    return subprocess.run([COURSECTL, "-c", str(env.conf), "--now", iso(now), "inbound", *args],
                          input=raw, capture_output=True, timeout=60)


def subscribers(env):
    return [e for (e,) in env.sql("SELECT email FROM subscribers ORDER BY id")]


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "test", 3)
    e.ctl("init", now=iso(T0))
    return e


def test_idn_reader_stored_in_unicode_sent_in_ascii(env, sink):
    # any spelling of the domain is the one person
    env.ctl("sub", "add", "Anna@MÜLLER.example", "--name", "Anna Müller", now=iso(T0))
    assert subscribers(env) == [UNICODE]
    again = env.ctl("sub", "add", ASCII, now=iso(T0), check=False)
    assert subscribers(env) == [UNICODE], again.stdout + again.stderr
    env.ctl("enroll", ASCII, "test", now=iso(T0))
    env.tick(iso(T0))                                   # the welcome
    env.tick(iso(LESSON1))                              # lesson 1
    assert sink.messages, "nothing was delivered"
    for m in sink.messages:
        assert m["rcpts"] == [ASCII]                    # RCPT TO: the ASCII form
        to = m["msg"]["To"].addresses[0]
        assert to.addr_spec == ASCII
        assert to.display_name == "Anna Müller"
        assert all(b < 0x80 for b in m["raw"]), "8-bit bytes in a message to a relay without SMTPUTF8"
    lessons = sink.lessons(ASCII)
    assert [m["msg"]["X-Course-Lesson"] for m in lessons] == ["test 1/3"]
    assert len(sink.system(ASCII)) == 1
    # people see the Unicode form, by either spelling
    show = env.ctl("sub", "show", ASCII, now=iso(LESSON1)).stdout
    assert UNICODE in show and "xn--" not in show
    j = json.loads(env.ctl("sub", "show", UNICODE, "--json", now=iso(LESSON1)).stdout)
    assert j["email"] == UNICODE
    assert [r["email"] for r in json.loads(env.ctl("sub", "list", "--json", now=iso(LESSON1)).stdout)] == [UNICODE]
    assert env.sql("SELECT state FROM deliveries") == [("sent",)]


def test_punycode_sender_is_the_unicode_subscriber(env, sink):
    env.ctl("sub", "add", UNICODE, now=iso(T0))
    p = inbound(env, mail(f"Anna <{ASCII}>", "test@courses.example.org", "subscribe"))
    assert p.returncode == 0, p.stderr
    assert subscribers(env) == [UNICODE]
    assert env.sql("SELECT state FROM enrollments") == [("pending",)]
    env.tick(iso(T0))
    confirm = sink.system(ASCII)
    assert len(confirm) == 1 and confirm[0]["msg"]["Subject"].startswith("Please confirm")
    assert confirm[0]["msg"]["To"].addresses[0].addr_spec == ASCII
    # a reply from the Unicode spelling (RFC 6532 header) is the same person
    reply_to = confirm[0]["msg"]["Reply-To"].addresses[0].addr_spec
    p = inbound(env, mail(UNICODE, reply_to, "Re: confirm", "yes"), now=T0 + timedelta(hours=1))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
    assert subscribers(env) == [UNICODE]


def test_non_ascii_local_part_refused_by_sub_add(env, sink):
    p = env.ctl("sub", "add", "josé@example.org", now=iso(T0), check=False)
    assert p.returncode != 0
    assert SMTPUTF8 in p.stderr
    assert subscribers(env) == []
    p = env.ctl("send-test", "josé@example.org", "test", "1", now=iso(T0), check=False)
    assert p.returncode != 0 and SMTPUTF8 in p.stderr
    env.tick(iso(LESSON1))
    assert sink.messages == []


def test_non_ascii_local_part_refused_by_import(env, tmp_path):
    f = tmp_path / "people.csv"
    f.write_text("email,name,course\n"
                 "josé@example.org,José,test\n"
                 f"{ASCII},Anna,test\n", encoding="utf-8")
    p = env.ctl("import", str(f), now=iso(T0), check=False)
    assert p.returncode == 1
    assert f"{f}:2: email: bad e-mail address 'josé@example.org': {SMTPUTF8}" in p.stderr
    assert f"{f}:3:" not in p.stderr
    assert subscribers(env) == [UNICODE]


def test_non_ascii_local_part_refused_by_inbound_subscribe(env, sink):
    raw = mail("José <josé@example.org>", "test@courses.example.org", "subscribe")
    dry = json.loads(inbound(env, raw, "--dry-run", "--json").stdout)
    assert dry["kind"] == "ignored" and dry["may_reply"] is False, dry
    p = inbound(env, raw)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert out.startswith("ignored") and "From" in out, out   # the result, for the MTA's log
    assert "SMTPUTF8" in out, out                               # and why
    env.tick(iso(T0))
    assert env.sql("SELECT count(*) FROM subscribers") == [(0,)]
    assert env.sql("SELECT count(*) FROM outbox") == [(0,)]
    assert sink.messages == [], "a confirmation went to an address the relay cannot take"


@pytest.mark.parametrize("addr,why", [
    ("a@xn--zzzzzz.example", "(IDNA)"),
    ("a@" + "ü" * 70 + ".example", "(IDNA"),
    ("a@" + "a" * 64 + ".example", "longer than 63 characters"),
    ("a@p\u0430ypal.example", "mixes scripts (Latn, Cyrl)"),
    ("a@pay\u200bpal.example", "U+200B"),
    ("a@-ü.example", "hyphen"),
], ids=["bad-punycode", "overlong-unicode-label", "overlong-ascii-label", "mixed-scripts",
        "invisible", "hyphen"])
def test_hostile_domains_refused_with_nothing_stored(env, addr, why):
    p = env.ctl("sub", "add", addr, now=iso(T0), check=False)
    assert p.returncode != 0
    assert why in p.stderr, p.stderr
    assert subscribers(env) == []
