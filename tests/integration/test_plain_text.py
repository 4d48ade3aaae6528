"""The text/plain part is real plain text (docs/rendering.md): every lesson
of both shipped courses and every system mail, sent for real through the
test SMTP server and read with Python's email package, shows no Markdown
mark and no line over 78 columns; links are numbered references; quotes
and dashes are typographic in both parts; the last lesson of a course names
no next step and carries no pause help."""
import re
from datetime import datetime, timedelta, timezone

import pytest

from conftest import REPO, Env, write_course
from smtpsink import Sink

UTC = timezone.utc
NOW = "2026-03-02T10:00:00Z"
COURSES = sorted(p.name for p in (REPO / "courses").iterdir() if (p / "course.ini").is_file())
SYSTEM = ["confirm", "welcome", "goodbye", "status", "help", "error", "complete"]
URL = re.compile(r"^(https?://|mailto:)\S+$")


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def sink():
    with Sink() as s:
        yield s


def real_env(tmp_path, sink):
    env = Env(tmp_path, smtp_port=sink.port)
    env.courses.rmdir()
    env.courses.symlink_to(REPO / "courses")
    env.ctl("init", now=NOW)
    return env


def problems_of(text):
    """What in text is not plain text: each problem as 'line N: ...'."""
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if len(line) > 78 and not URL.match(stripped):
            found.append(f"line {i}: {len(line)} columns: {line!r}")
        if re.match(r"#{1,6}(\s|$)", stripped):
            found.append(f"line {i}: a '#' heading: {line!r}")
        for mark, what in (("**", "bold"), ("__", "bold"), ("`", "a backtick"), ("](", "a link"),
                           ("<http", "an autolink")):
            if mark in line:
                found.append(f"line {i}: {what} mark: {line!r}")
        if re.search(r"(?<![\w*])\*(?=\S)[^*\n]+(?<=\S)\*(?![\w*])", line) or re.search(
                r"(?<![\w_])_(?=\S)[^_\n]+(?<=\S)_(?![\w_])", line):
            found.append(f"line {i}: *emphasis* mark: {line!r}")
        if stripped.startswith("|") or re.search(r"\s\|\s", line) or re.match(r"^\|?\s*:?-+:?\s*\|", stripped):
            found.append(f"line {i}: a table pipe: {line!r}")
        if re.match(r"^[*+]\s", stripped) or stripped.startswith(">"):
            found.append(f"line {i}: a '*' list or '>' quote mark: {line!r}")
    return found


def texts(sink, rcpt):
    """(subject, text part, HTML part) of each mail rcpt got, line breaks as LF."""
    return [(m["msg"]["Subject"], m["msg"].get_body(("plain",)).get_content().replace("\r\n", "\n"),
             m["msg"].get_body(("html",)).get_content()) for m in sink.messages if m["rcpts"] == [rcpt]]


def flat(text):
    return " ".join(text.split())


@pytest.mark.parametrize("slug", COURSES)
def test_every_mail_of_a_shipped_course_is_plain_text(tmp_path, sink, slug):
    env = real_env(tmp_path, sink)
    env.ctl("send-test", "reader@example.org", slug, "all", now=NOW)
    got = texts(sink, "reader@example.org")
    n_lessons = len(list((REPO / "courses" / slug / "lessons").glob("*.md")))
    assert len(got) == n_lessons + len(SYSTEM), [s for s, _, _ in got]
    report = [f"{subject}: {p}" for subject, text, _ in got for p in problems_of(text)]
    assert not report, "\n".join(report)


def test_lesson_text_is_typographic_in_both_parts(tmp_path, sink):
    env = real_env(tmp_path, sink)
    # the first lesson of release with an apostrophe in it
    lessons = sorted((REPO / "courses" / "release" / "lessons").glob("*.md"))
    n, md = next((k, f.read_text()) for k, f in enumerate(lessons, 1) if re.search(r"\b\w+'\w+\b", f.read_text()))
    env.ctl("send-test", "reader@example.org", "release", str(n), now=NOW)
    [(subject, text, html)] = texts(sink, "reader@example.org")
    words = set(re.findall(r"\b\w+'\w+\b", md))
    assert words, "a lesson of release has an apostrophe to check"
    for w in words:
        curly = w.replace("'", "\u2019")
        assert curly in text and curly in html, w
        assert w not in text, w
    quoted = re.findall(r'"([^"\n]+)"', md)
    for q in quoted:
        assert f"\u201c{q}\u201d" in text and f"\u201c{q}\u201d" in html, q


def test_links_are_numbered_references(tmp_path, sink):
    env = Env(tmp_path, smtp_port=sink.port)
    write_course(env.courses, "links", 2)
    (env.courses / "links" / "lessons" / "01-step-1.md").write_text(
        "Subject: Links\n\n## A \"quoted\" heading -- with a dash\n\n"
        "Read [the article](https://example.org/article) first, then [the notes](https://example.org/notes) "
        "and [the article](https://example.org/article) again, or write to <mailto:help@example.org>.\n\n"
        "| Day | What to do |\n|---|---|\n| Monday | **walk** for `ten` minutes |\n\n"
        "> A *quoted* line.\n\n- one\n  - nested *item*\n")
    env.ctl("init", now=NOW)
    env.ctl("send-test", "reader@example.org", "links", "1", now=NOW)
    [(subject, text, html)] = texts(sink, "reader@example.org")
    assert not problems_of(text), problems_of(text)
    assert "Read the article [1] first, then the notes [2]" in flat(text)
    assert "the article [1] again" in flat(text) and "help@example.org." in flat(text)
    lines = text.splitlines()
    assert "[1] https://example.org/article" in lines and "[2] https://example.org/notes" in lines
    assert "\u201cquoted\u201d heading \u2013 with a dash" in text
    assert "\u201cquoted\u201d heading \u2013 with a dash" in html
    assert any(re.fullmatch(r"Monday\s+walk for ten minutes", l) for l in lines), text
    assert "    A quoted line." in lines and "  - nested item" in lines


def test_text_part_puts_the_greeting_after_the_title(tmp_path, sink):
    env = real_env(tmp_path, sink)
    env.ctl("send-test", "reader@example.org", "release", "2", now=NOW)
    [(subject, text, html)] = texts(sink, "reader@example.org")
    lines = text.splitlines()
    assert subject.endswith(lines[0]), (subject, lines[:3])
    assert lines.index("Hello there,") > 0


def test_last_lesson_names_no_next_step_and_no_pause(tmp_path, sink):
    """A real enrollment: lessons 1 and 2 of a two-lesson course arrive at
    their slots; the first names the next step and how to pause, the last
    one neither, and both keep the leave link."""
    env = Env(tmp_path, smtp_port=sink.port)
    write_course(env.courses, "two", 2, schedule="FREQ=DAILY", tz="UTC")
    t0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", "--tz", "UTC", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "two", "--no-welcome", now=iso(t0))
    for day in range(4):  # at the daily 09:00 slots, and bounded
        env.tick(iso(t0 + timedelta(days=day, hours=1)))
        if len(sink.lessons("ann@example.org")) == 2:
            break
    first, last = [m["msg"] for m in sink.lessons("ann@example.org")]
    assert first["X-Course-Lesson"] == "two 1/2" and last["X-Course-Lesson"] == "two 2/2"
    for msg, is_last in ((first, False), (last, True)):
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = msg.get_body(("html",)).get_content()
        for part in (text, html):
            assert ("Next step" in part) != is_last, part
            # the pause help (the manage line may still name pausing)
            assert ("pause for 2 weeks" in part.lower()) != is_last, part
            assert "https://courses.example.org/u/" in part and "unsubscribe" in part
        assert not problems_of(text), problems_of(text)
