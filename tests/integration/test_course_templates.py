"""Courses of their own, and mails that say what happened (issue 14).

A course may override any system mail and layout with a file of the same
name in courses/<slug>/templates/: it is checked like the shared ones
(`course check` names file and line), and used for that course's mails only,
in previews, test sends and real sends; the other courses keep the shared
templates. The welcome says how the person came in (they confirmed their own
request, or an operator added them) and says one sentence, the right one,
about the time zone of its dates: their own, one guessed from their mail, or
the course's while theirs is not known."""
import email
import email.policy
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from conftest import COURSED, COURSECTL, write_course

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # a Monday

OWN_WELCOME = (
    "Subject: Hello from {{course_title}}, our own way\n\n"
    "Dear {{name}},\n\n"
    "This is the course's own welcome. {{joined}}\n\n"
    "{{zone_sentence}}\n\n"
    "First step: {{first_date}}.\n")

OWN_LESSON_HTML = (
    "<!DOCTYPE html>\n<html><head><title>{{subject}}</title></head>\n"
    "<body><p class=\"own-layout\">OWN LAYOUT of {{course_title}}, step {{step}} of {{steps}}</p>\n"
    "{{lesson}}\n<p>Next: {{next_date}}</p>\n"
    "<p><a href=\"{{unsubscribe_url}}\">Leave</a> or write to {{command_address}}</p>\n"
    "</body></html>\n")

CONFIRMED = "Thank you for confirming."
OPERATOR = "added to this course by its organiser"
ZONE_SENTENCES = ("All times are in your time zone", "We guessed your time zone",
                  "We do not know your time zone")


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def mail(frm, to, subject, body="", date="Mon, 4 May 2026 12:00:00 +0200"):
    msgid = f"<{os.urandom(6).hex()}@client.example>"
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


def inbound(env, raw, now=T0):
    p = subprocess.run([COURSECTL, "-c", str(env.conf), "--now", iso(now), "inbound"], input=raw,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p


def own_templates(env, slug, files):
    d = env.courses / slug / "templates"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


def parts(msg):
    """(text, html) of a message as a reader sees them; the text part's
    lines joined (it is wrapped at 72 columns: docs/rendering.md)."""
    return " ".join(msg.get_body(("plain",)).get_content().split()), msg.get_body(("html",)).get_content()


def zone_sentences(text):
    return sum(text.count(s) for s in ZONE_SENTENCES)


def welcome_of(sink, rcpt):
    mails = [m["msg"] for m in sink.system(rcpt) if not m["msg"]["Subject"].startswith("Please confirm")]
    assert len(mails) == 1, [m["Subject"] for m in mails]
    return mails[0]


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "own", 3, tz="Europe/Paris", title="Own Course")
    write_course(e.courses, "plain", 3, tz="Europe/Paris", title="Plain Course")
    return e


def test_course_welcome_override_check_preview_and_send(env, sink):
    own_templates(env, "own", {"welcome.md": OWN_WELCOME})
    p = env.ctl("course", "check", now=iso(T0))
    assert "2 course(s) ok" in p.stdout, p.stderr
    env.ctl("init", now=iso(T0))
    # preview: the course's own welcome; the other course keeps the shared one
    own = env.ctl("course", "preview", "own", "welcome", "--tz", "Europe/Paris", now=iso(T0)).stdout
    assert "Subject: Hello from Own Course, our own way" in own
    assert "own welcome." in own
    shared = env.ctl("course", "preview", "plain", "welcome", now=iso(T0)).stdout
    assert "Subject: Welcome to Plain Course" in shared and "own welcome" not in shared
    # a real send to the SMTP server, one person in each course
    env.ctl("sub", "add", "ann@example.org", "--name", "Ann", "--tz", "Europe/Paris", now=iso(T0))
    env.ctl("sub", "add", "bob@example.org", "--name", "Bob", "--tz", "Europe/Paris", now=iso(T0))
    env.ctl("enroll", "ann@example.org", "own", now=iso(T0))
    env.ctl("enroll", "bob@example.org", "plain", now=iso(T0))
    env.tick(iso(T0))
    ann = welcome_of(sink, "ann@example.org")
    assert ann["Subject"] == "Hello from Own Course, our own way"
    text, html = parts(ann)
    assert "Dear Ann," in text and "This is the course\u2019s own welcome." in text
    assert "own welcome" in html
    assert "All times are in your time zone, Europe/Paris." in text
    assert any(p.get_content_type() == "text/calendar" for p in ann.walk()), "the calendar stays attached"
    bob = welcome_of(sink, "bob@example.org")
    assert bob["Subject"] == "Welcome to Plain Course"
    text, _ = parts(bob)
    assert "Hello Bob," in text and "own welcome" not in text
    # the shared layout of system mails still wraps the course's own welcome
    assert "ann@example.org" in sink.system("ann@example.org")[0]["rcpts"]


def test_broken_override_is_reported_with_file_and_line(env):
    d = own_templates(env, "own", {
        "welcome.md": "Subject: Welcome\n\nHello {{name}},\n\nYour colour: {{favourite_colour}}.\n",
        "confirm.md": "Subject: Confirm\n\nHello {{name}}, confirm at {{confirm_url}}.\n",
        "goodbye.md": "Goodbye {{name}}\n",
        "welcom.md": "Subject: typo\n\nHi\n",
    })
    p = env.ctl("course", "check", check=False, now=iso(T0))
    assert p.returncode == 1, p.stdout + p.stderr
    err = p.stderr
    assert f"{d}/welcome.md:5: unknown placeholder '{{{{favourite_colour}}}}'" in err
    # the confirmation may not echo a name, in a course's own one either
    assert f"{d}/confirm.md:3: unknown placeholder '{{{{name}}}}'" in err
    assert f"{d}/goodbye.md:1: expected 'Subject: ...'" in err
    assert f"{d}/welcom.md: a file coursed does not use" in err
    assert "plain" not in err, "the other course has no problem"
    # the check of one course reports its templates too
    p = env.ctl("course", "check", "own", check=False, now=iso(T0))
    assert p.returncode == 1 and f"{d}/welcome.md:5:" in p.stderr
    # the daemon refuses to load it, naming file and line
    p = subprocess.run([COURSED, "-n", "-c", str(env.conf)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert f"{d}/" in p.stderr, p.stderr


def test_course_lesson_html_layout_override_in_a_real_lesson(env, sink):
    own_templates(env, "own", {"lesson.html": OWN_LESSON_HTML})
    assert "2 course(s) ok" in env.ctl("course", "check", now=iso(T0)).stdout
    env.ctl("init", now=iso(T0))
    preview = env.ctl("course", "preview", "own", "1", "--html", now=iso(T0)).stdout
    assert "OWN LAYOUT of Own Course, step 1 of 3" in preview
    env.ctl("sub", "add", "ann@example.org", "--tz", "Europe/Paris", now=iso(T0))
    env.ctl("sub", "add", "bob@example.org", "--tz", "Europe/Paris", now=iso(T0))
    env.ctl("enroll", "ann@example.org", "own", "--no-welcome", now=iso(T0))
    env.ctl("enroll", "bob@example.org", "plain", "--no-welcome", now=iso(T0))
    env.tick(iso(datetime(2026, 5, 6, 7, 0, tzinfo=UTC)))  # Wed 09:00 in Paris: the first slot
    ann = sink.lessons("ann@example.org")
    assert [m["msg"]["X-Course-Lesson"] for m in ann] == ["own 1/3"]
    text, html = parts(ann[0]["msg"])
    assert "OWN LAYOUT of Own Course, step 1 of 3" in html
    assert "This is lesson <strong>1</strong>." in html
    assert "OWN LAYOUT" not in text, "lesson.txt is still the shared one"
    assert "This is lesson 1." in text  # plain text: no Markdown marks
    bob = sink.lessons("bob@example.org")
    assert [m["msg"]["X-Course-Lesson"] for m in bob] == ["plain 1/3"]
    assert "OWN LAYOUT" not in parts(bob[0]["msg"])[1]
    # a test send uses it too
    env.ctl("send-test", "tester@example.org", "own", "1", now=iso(T0))
    sent = sink.lessons("tester@example.org")
    assert len(sent) == 1 and "OWN LAYOUT of Own Course" in parts(sent[-1]["msg"])[1]


def test_welcome_after_enroll_says_the_organiser_added_them(env, sink):
    env.ctl("init", now=iso(T0))
    env.ctl("sub", "add", "zoned@example.org", "--name", "Zed", "--tz", "America/New_York", now=iso(T0))
    env.ctl("sub", "add", "nozone@example.org", "--name", "Nora", now=iso(T0))
    env.ctl("enroll", "zoned@example.org", "plain", now=iso(T0))
    env.ctl("enroll", "nozone@example.org", "plain", now=iso(T0))
    env.tick(iso(T0))
    for rcpt in ("zoned@example.org", "nozone@example.org"):
        text, html = parts(welcome_of(sink, rcpt))
        assert OPERATOR in text and "unsubscribe" in text, text
        assert "confirming" not in text and "confirming" not in html, text
        assert zone_sentences(text) == 1, text
        assert zone_sentences(html) == 1, html
    text, _ = parts(welcome_of(sink, "zoned@example.org"))
    assert "All times are in your time zone, America/New_York." in text
    text, _ = parts(welcome_of(sink, "nozone@example.org"))
    assert "We do not know your time zone yet, so all times are in the course's, Europe/Paris." in text


def confirm_by_mail(env, sink, frm, rcpt, body, date="Mon, 4 May 2026 12:00:00 +0200"):
    inbound(env, mail(frm, "plain@courses.example.org", "subscribe", body, date=date))
    env.tick(iso(T0))
    confirm = [m["msg"] for m in sink.system(rcpt) if m["msg"]["Subject"].startswith("Please confirm")]
    assert len(confirm) == 1
    reply_to = confirm[0]["Reply-To"].addresses[0].addr_spec
    later = T0 + timedelta(minutes=30)
    inbound(env, mail(rcpt, reply_to, "Re: " + confirm[0]["Subject"], "yes"), now=later)
    env.tick(iso(later))
    return welcome_of(sink, rcpt)


def test_welcome_after_confirming_thanks_them_with_their_zone(env, sink):
    env.ctl("init", now=iso(T0))
    welcome = confirm_by_mail(env, sink, "Ana <ana@example.net>", "ana@example.net",
                              "subscribe plain tz=Asia/Tokyo Ana")
    text, html = parts(welcome)
    assert CONFIRMED in text and CONFIRMED in html
    assert OPERATOR not in text
    assert zone_sentences(text) == 1 and zone_sentences(html) == 1, text
    assert "All times are in your time zone, Asia/Tokyo." in text


def test_welcome_after_confirming_with_a_guessed_zone(env, sink):
    env.ctl("init", now=iso(T0))
    welcome = confirm_by_mail(env, sink, "raj@example.in", "raj@example.in", "subscribe plain",
                              date="Mon, 4 May 2026 15:30:00 +0530")
    assert env.sql("SELECT tz, tz_guessed FROM subscribers") == [("Asia/Kolkata", 1)]
    text, html = parts(welcome)
    assert CONFIRMED in text and OPERATOR not in text
    assert zone_sentences(text) == 1 and zone_sentences(html) == 1, text
    assert "We guessed your time zone (Asia/Kolkata) from your mail" in text
    assert "tz Europe/Berlin" in text


def test_preview_of_the_welcome_says_one_zone_sentence(env):
    env.ctl("init", now=iso(T0))
    for args, said in ((("--tz", "Asia/Tokyo"), "All times are in your time zone, Asia/Tokyo."),
                       ((), "We do not know your time zone yet, so all times are in the course's, "
                            "Europe/Paris.")):
        raw = env.ctl_bytes("course", "preview", "plain", "welcome", *args, now=iso(T0))
        text, html = parts(email.message_from_bytes(raw, policy=email.policy.default))
        assert said in text
        assert zone_sentences(text) == 1 and zone_sentences(html) == 1, text
        assert CONFIRMED in text
