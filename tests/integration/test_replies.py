"""Automatic replies that cannot carry a stranger's text: no name from the
inbound mail in a reply's headers or body, In-Reply-To and References
naming the command (only a valid msg-id), and one hourly cap on all
replies together, shared by every process through the database. Real
coursectl inbound, real coursed, a real SMTP server and SQLite file."""
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from conftest import COURSECTL, write_course

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)        # a Monday
SPAM = "Cheap meds at https://evil.example/buy"


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


def make_env(env_factory, sink, extra_conf=""):
    e = env_factory(smtp_port=sink.port, extra_conf=extra_conf)
    write_course(e.courses, "test", 3)
    e.ctl("init", now=iso(T0))
    return e


@pytest.fixture
def env(env_factory, sink):
    return make_env(env_factory, sink)


def text_of(m):
    return m["msg"].get_body(preferencelist=("plain",)).get_content()


@pytest.mark.parametrize("subject", ["help", "frobnicate the course"])
def test_help_and_unknown_replies_echo_no_name(env, sink, subject):
    raw = mail(f'"{SPAM}" <victim@example.net>', "test@courses.example.org", subject, subject)
    assert inbound(env, raw).returncode == 0
    env.tick(iso(T0))
    got = sink.system("victim@example.net")
    assert len(got) == 1
    assert b"evil.example" not in got[0]["raw"] and b"Cheap" not in got[0]["raw"]
    to = got[0]["msg"]["To"]
    assert to.addresses[0].display_name == "" and to.addresses[0].addr_spec == "victim@example.net"
    assert "Hello there," in text_of(got[0])


def test_a_pending_request_name_is_not_used_a_confirmed_one_is(env, sink):
    """The name typed in a subscribe request is a stranger's until the
    address confirms: a reply before that greets "there"; after, the name."""
    raw = mail("x@example.net", "test@courses.example.org", "subscribe", f"subscribe test {SPAM}")
    assert inbound(env, raw).returncode == 0
    assert inbound(env, mail("x@example.net", "test@courses.example.org", "help"),
                   now=T0 + timedelta(minutes=1)).returncode == 0
    env.tick(iso(T0 + timedelta(minutes=1)))
    confirm, helpmail = sink.system("x@example.net")
    for m in (confirm, helpmail):
        assert b"evil.example" not in m["raw"], m["msg"]["Subject"]
    assert "Hello there," in text_of(helpmail)
    # the operator's name is trusted: a reply greets it, To stays bare
    env.ctl("sub", "add", "ann@example.net", "--name", "Ann Operator", now=iso(T0))
    env.ctl("enroll", "ann@example.net", "test", "--no-welcome", now=iso(T0))
    later = T0 + timedelta(minutes=2)
    assert inbound(env, mail('"Someone Else" <ann@example.net>', "test@courses.example.org", "status"),
                   now=later).returncode == 0
    env.tick(iso(later))
    status = sink.system("ann@example.net")[-1]
    assert status["msg"]["Subject"].startswith("Your progress")
    assert "Hello Ann Operator," in text_of(status)
    assert b"Someone Else" not in status["raw"]
    assert status["msg"]["To"].addresses[0].display_name == ""


def test_replies_thread_with_the_command(env, sink):
    assert inbound(env, mail("t@example.net", "test@courses.example.org", "help",
                             msgid="<cmd-1.abc@client.example>")).returncode == 0
    assert inbound(env, mail("t@example.net", "test@courses.example.org", "subscribe",
                             msgid="<cmd-2@client.example>"), now=T0 + timedelta(minutes=1)).returncode == 0
    env.tick(iso(T0 + timedelta(minutes=1)))
    helpmail, confirm = sink.system("t@example.net")
    assert helpmail["msg"]["In-Reply-To"] == "<cmd-1.abc@client.example>"
    assert helpmail["msg"]["References"] == "<cmd-1.abc@client.example>"
    assert confirm["msg"]["In-Reply-To"] == "<cmd-2@client.example>"


def test_only_the_one_msg_id_gmime_reads_is_named(env, sink):
    raw = mail("v@example.net", "test@courses.example.org", "help",
               msgid="<two@a.example> <three@b.example>")
    assert inbound(env, raw).returncode == 0
    env.tick(iso(T0))
    got = sink.system("v@example.net")
    assert got[0]["msg"]["In-Reply-To"] == "<two@a.example>"
    assert b"three@b.example" not in got[0]["raw"]


@pytest.mark.parametrize("msgid", [
    "<evil\"quoted\"@client.example>",
    "<spaces in it@client.example>",
    "not-a-msg-id-at-all",
])
def test_a_bad_message_id_is_not_echoed(env, sink, msgid):
    raw = mail("u@example.net", "test@courses.example.org", "help", msgid=msgid)
    assert inbound(env, raw).returncode == 0
    env.tick(iso(T0))
    got = sink.system("u@example.net")
    assert len(got) == 1
    assert got[0]["msg"]["In-Reply-To"] is None and got[0]["msg"]["References"] is None
    for part in ("evil", "spaces in", "not-a-msg-id"):
        assert part.encode() not in got[0]["raw"]


def test_replies_per_hour_caps_all_addresses_together(env_factory, sink):
    env = make_env(env_factory, sink, "[inbound]\nreplies_per_hour = 3\n")
    env.ctl("sub", "add", "leaver@example.net", now=iso(T0))
    env.ctl("enroll", "leaver@example.net", "test", "--no-welcome", now=iso(T0))
    logs = []
    for i in range(4):    # each its own coursectl process: the count is in the database
        p = inbound(env, mail(f"p{i}@example.net", "test@courses.example.org", "help"),
                    now=T0 + timedelta(minutes=i))
        assert p.returncode == 0
        logs.append(p.stderr.decode())
    assert env.sql("SELECT count(*) FROM outbox") == [(3,)]
    assert "replies_per_hour" in logs[3] and "dropped" in logs[3]
    # over the cap the command still takes effect, only its reply is dropped
    p = inbound(env, mail("leaver@example.net", "test@courses.example.org", "unsubscribe"),
                now=T0 + timedelta(minutes=5))
    assert p.returncode == 0
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
    assert env.sql("SELECT count(*) FROM outbox WHERE kind = 'goodbye'") == [(0,)]
    # and the confirmations count too
    p = inbound(env, mail("new@example.net", "test@courses.example.org", "subscribe"),
                now=T0 + timedelta(minutes=6))
    assert p.returncode == 0
    assert env.sql("SELECT count(*) FROM outbox WHERE kind = 'confirm'") == [(0,)]
    # an hour later there is room again
    later = T0 + timedelta(minutes=65)
    assert inbound(env, mail("p9@example.net", "test@courses.example.org", "help"), now=later).returncode == 0
    assert env.sql("SELECT count(*) FROM outbox WHERE rcpt = 'p9@example.net'") == [(1,)]
    env.tick(iso(later))
    assert len(sink.system()) == 4
