"""Readers who write back (issue 15): a reply to one of our lessons that is
not a command is a reader's note. It is kept, never answered by a robot,
forwarded to the course's replies_to (through the real outbox and a real
SMTP server) with the reader as Reply-To, listed by `coursectl replies`,
counted by `stats`, exported with its subscriber and erased with them.
The reader's mails are tests/fixtures/notes/*.eml, piped to the real
`coursectl inbound` as an MTA would."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import COURSECTL, REPO, write_course

FIX = REPO / "tests" / "fixtures" / "notes"
ENROLLED = "2026-05-04T10:00:00Z"   # a Monday
LESSON1 = "2026-05-06T07:00:30Z"    # Wednesday 09:00 Berlin, lesson 1 is due
LATER = "2026-05-06T12:00:00Z"
READER = "ann@example.org"
AUTHOR = "author@example.org"


def fixture(name, msgid):
    return (FIX / name).read_text().replace("{MSGID}", msgid).encode()


def inbound(env, raw, *args, now=LATER):
    p = subprocess.run([COURSECTL, "-c", str(env.conf), "--now", now, "inbound", *args], input=raw,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def lesson_sent(env_factory, sink, replies_to=None):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 3, extra=f"replies_to = {replies_to}\n" if replies_to else "")
    env.ctl("init", now=ENROLLED)
    env.ctl("sub", "add", READER, "--name", "Ann", now=ENROLLED)
    env.ctl("enroll", READER, "test", "--no-welcome", now=ENROLLED)
    env.tick(LESSON1)
    lessons = sink.lessons(READER)
    assert len(lessons) == 1
    msgid = lessons[0]["msg"]["Message-ID"].strip("<>")
    sink.messages.clear()
    return env, msgid


def notes(env, *args):
    return json.loads(env.ctl("replies", "--json", *args, now=LATER).stdout)


def test_a_reply_to_a_lesson_is_a_note_and_gets_no_help_mail(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink)
    raw = fixture("reply-thanks.eml", msgid)
    dry = json.loads(inbound(env, raw, "--dry-run", "--json"))
    assert dry["kind"] == "note" and dry["lesson_slug"] == "step-1" and dry["may_reply"] is False
    inbound(env, raw)
    env.tick(LATER)
    assert sink.messages == []          # no help mail, no automatic text of any kind
    assert env.sql("SELECT count(*) FROM outbox") == [(0,)]
    [n] = notes(env)
    assert n["email"] == READER and n["course"] == "test"
    assert n["lesson"] == 1 and n["lesson_slug"] == "step-1" and n["forward"] == "kept"
    assert n["body"].startswith("Thank you. This one made me cry, but in a good way. I wrote my list.")
    assert "This is lesson 1" not in n["body"] and "wrote:" not in n["body"]   # the quoted original is cut
    assert notes(env, "test") == [n]
    # the same mail again (the MTA retried) is not a second note
    inbound(env, raw)
    assert len(notes(env)) == 1
    # the text form shows it too
    text = env.ctl("replies", now=LATER).stdout
    assert READER in text and "I wrote my list." in text


def test_a_mail_that_replies_to_nothing_still_gets_the_help_mail(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink)
    out = json.loads(inbound(env, fixture("not-a-reply.eml", msgid), "--json"))
    assert out["kind"] == "command" and out["command"] == "unknown"
    env.tick(LATER)
    [help_mail] = sink.system(READER)
    assert help_mail["msg"]["Auto-Submitted"] == "auto-replied"     # it answers a message (RFC 3834)
    assert notes(env) == []


def test_the_welcome_after_coursectl_enroll_is_auto_generated(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 1)
    env.ctl("init", now=ENROLLED)
    env.ctl("sub", "add", READER, now=ENROLLED)
    env.ctl("enroll", READER, "test", now=ENROLLED)
    env.tick(ENROLLED)
    [welcome] = sink.system(READER)
    assert welcome["msg"]["Subject"].startswith("Welcome")
    assert welcome["msg"]["Auto-Submitted"] == "auto-generated"     # it answers no message


def test_re_lesson_subject_without_in_reply_to_is_a_note(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink)
    out = json.loads(inbound(env, fixture("reply-subject-only.eml", msgid), "--json"))
    assert out["kind"] == "note" and out["lesson_slug"] == "step-1"
    env.tick(LATER)
    assert sink.messages == []
    [n] = notes(env)
    assert n["lesson"] == 1 and n["body"].strip() == "I keep coming back to this one."


def test_a_reply_whose_first_line_is_a_command_is_the_command(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink)
    out = json.loads(inbound(env, fixture("reply-pause.eml", msgid), "--json"))
    assert out["kind"] == "command" and out["command"] == "pause"
    assert env.sql("SELECT state FROM enrollments") == [("paused",)]
    assert notes(env) == []


def test_an_auto_reply_to_a_lesson_is_not_a_note(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink)
    out = json.loads(inbound(env, fixture("reply-vacation.eml", msgid), "--json"))
    assert out["kind"] == "auto-reply"
    env.tick(LATER)
    assert sink.messages == [] and notes(env) == []


def test_with_replies_to_the_note_is_forwarded_to_the_author(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink, replies_to=AUTHOR)
    inbound(env, fixture("reply-thanks.eml", msgid))
    assert notes(env)[0]["forward"] == "queued"
    env.tick(LATER)
    [m] = sink.messages
    assert m["rcpts"] == [AUTHOR]
    msg = m["msg"]
    assert msg["To"] == AUTHOR
    assert msg["From"].addresses[0].addr_spec == "test@courses.example.org"
    assert msg["Reply-To"] == READER                   # the author answers the reader in person
    assert msg["X-Coursed-Course"] == "test" and msg["X-Coursed-Lesson"] == "step-1"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "Step 1 of the test" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert "Thank you. This one made me cry, but in a good way. I wrote my list." in body
    assert READER in body
    # nothing of the stranger's own headers or display name is relayed
    raw = m["raw"].decode(errors="replace")
    for stranger in ("X-Secret-Header", "do-not-relay", "Stranger's Mailer", "evil.example",
                     "reply-thanks-1@client.example"):
        assert stranger not in raw
    assert notes(env)[0]["forward"] == "sent"
    # the reader got nothing
    assert sink.system(READER) == [] and sink.lessons(READER) == []


def test_stats_count_notes_per_lesson(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink)
    inbound(env, fixture("reply-thanks.eml", msgid))
    inbound(env, fixture("reply-subject-only.eml", msgid))
    [f] = json.loads(env.ctl("stats", "test", "--json", now=LATER).stdout)
    assert f["notes_per_lesson"] == [2, 0, 0]
    assert "2 notes" in env.ctl("stats", "test", now=LATER).stdout


def test_notes_are_exported_and_erased_with_their_subscriber(env_factory, sink):
    env, msgid = lesson_sent(env_factory, sink)
    inbound(env, fixture("reply-thanks.eml", msgid))
    [s] = json.loads(env.ctl("export", "--format", "json", now=LATER).stdout)
    assert s["email"] == READER
    assert len(s["notes"]) == 1 and "I wrote my list." in s["notes"][0]["body"]
    env.ctl("sub", "rm", READER, "--erase", now=LATER)
    assert notes(env) == []
    assert env.sql("SELECT count(*) FROM notes") == [(0,)]


def test_replies_to_must_be_an_address(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 1, extra="replies_to = not an address\n")
    p = env.ctl("course", "check", "test", check=False)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "course.ini:7" in out and "replies_to 'not an address' is not a bare address" in out
