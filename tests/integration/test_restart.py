"""The end of a course and what comes after it (issue 13): the `complete`
mail, `restart` by mail and `coursectl enroll --restart`, and a course's
next_course offered with a confirm link, never enrolled by itself. The real
coursed and coursectl, a real SMTP sink and a real SQLite file; the pages
of the running daemon for the confirm link."""
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from conftest import write_course
from smtpsink import free_port
from test_inbound import Daemon, inbound, iso, mail

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)  # a Monday
ANN = "ann@example.org"


def day(k, hour=9):
    return T0.replace(hour=hour) + timedelta(days=k)


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port, http_port=free_port())
    write_course(e.courses, "first", 3, schedule="FREQ=DAILY", tz="UTC", title="First Course",
                 extra="next_course = second\n")
    write_course(e.courses, "second", 2, schedule="FREQ=DAILY", tz="UTC", title="Second Course")
    e.ctl("init", now=iso(T0))
    e.ctl("sub", "add", ANN, "--tz", "UTC", now=iso(T0))
    e.ctl("enroll", ANN, "first", "--no-welcome", now=iso(T0))
    return e


def lessons(sink, course=None):
    return [(m["msg"]["X-Course-Lesson"], parsedate_to_datetime(m["msg"]["Date"]).astimezone(UTC),
             m["msg"]["Message-ID"]) for m in sink.lessons(ANN)
            if course is None or m["msg"]["X-Course-Lesson"].startswith(course + " ")]


def finish_first(env, sink):
    for k in range(3):
        env.tick(iso(day(k)))
    env.tick(iso(day(2, 10)))  # the complete mail queued at the end of day 2 goes out
    assert [x[0] for x in lessons(sink)] == ["first 1/3", "first 2/3", "first 3/3"]
    return [m for m in sink.system(ANN) if m["msg"]["Subject"].startswith("You have finished")]


def text_of(m):
    return m["msg"].get_body(("plain",)).get_content()


def test_complete_mail_marks_the_end_and_offers_the_next_course(env, sink):
    done = finish_first(env, sink)
    assert len(done) == 1, [m["msg"]["Subject"] for m in sink.system(ANN)]
    body = text_of(done[0])
    assert "First Course" in done[0]["msg"]["Subject"]
    assert "restart" in body and "first@courses.example.org" in body
    assert "Second Course" in body and "/c/" in body
    # an offer, not an enrollment: pending, and nothing of it arrives
    assert env.sql("SELECT course, state FROM enrollments ORDER BY course") == [
        ("first", "completed"), ("second", "pending")]
    for k in range(3, 6):
        env.tick(iso(day(k)))
    assert lessons(sink, "second") == []
    assert len([m for m in sink.system(ANN) if m["msg"]["Subject"].startswith("You have finished")]) == 1
    # the link confirms: the welcome of the second course, then its lessons
    url = next(w for w in body.split() if "/c/" in w).strip("<>()")
    d = Daemon(env, day(6, 8))
    try:
        status, _ = d.request(url[url.index("/c/"):], data=b"confirm=yes")
        assert status == 200
    finally:
        d.stop()
    assert env.sql("SELECT state FROM enrollments WHERE course = 'second'") == [("active",)]
    for k in range(6, 9):
        env.tick(iso(day(k)))
    assert [x[0] for x in lessons(sink, "second")] == ["second 1/2", "second 2/2"]
    # the second course names no next one: its complete mail offers none
    env.tick(iso(day(9)))
    last = [m for m in sink.system(ANN) if m["msg"]["Subject"].startswith("You have finished")][-1]
    assert "Second Course" in last["msg"]["Subject"] and "/c/" not in text_of(last)


def test_no_offer_to_someone_who_left_the_next_course(env, sink):
    env.ctl("enroll", ANN, "second", "--no-welcome", now=iso(T0))
    env.ctl("unenroll", ANN, "second", now=iso(T0))
    done = finish_first(env, sink)
    assert len(done) == 1 and "/c/" not in text_of(done[0]) and "Second Course" not in text_of(done[0])
    assert env.sql("SELECT state FROM enrollments WHERE course = 'second'") == [("stopped",)]


def test_complete_mail_off(env, sink):
    ini = env.courses / "first" / "course.ini"
    ini.write_text(ini.read_text() + "complete_mail = false\n")
    assert finish_first(env, sink) == []
    assert env.sql("SELECT state FROM enrollments WHERE course = 'second'") == []


def test_restart_by_mail_sends_the_course_again_as_new_messages(env, sink):
    finish_first(env, sink)
    first_round = lessons(sink)
    p = inbound(env, mail(ANN, "first@courses.example.org", "restart"), now=day(3, 8))
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT via FROM events WHERE kind = 'restarted'") == [("email",)]
    assert env.sql("SELECT state, next_lesson, round FROM enrollments WHERE course = 'first'") == [
        ("active", 1, 1)]
    for k in range(3, 7):
        env.tick(iso(day(k)))
    got = lessons(sink, "first")
    assert [x[0] for x in got] == ["first 1/3", "first 2/3", "first 3/3"] * 2
    # the second round at the slots from the day of the restart, one a day
    assert [x[1] for x in got[3:]] == [day(3), day(4), day(5)]
    ids = Counter(x[2] for x in got)
    assert all(n == 1 for n in ids.values()), ids
    assert all("r1." in x[2] for x in got[3:]) and not any("r1." in x[2] for x in first_round)
    # the first round stays in the history; a status reply answered the mail
    assert env.sql("SELECT count(*) FROM delivery_history h JOIN enrollments e ON e.id = h.enrollment_id"
                   " WHERE e.course = 'first' AND h.state = 'sent'") == [(3,)]
    subjects = [m["msg"]["Subject"] for m in sink.system(ANN)]
    assert any(s.startswith("Your progress") for s in subjects), subjects
    # and a second complete mail at the end of the second round
    assert sum(s.startswith("You have finished First") for s in subjects) == 2, subjects


def test_enroll_restart_mid_course_respects_max_per_day(env, sink):
    env.tick(iso(day(0)))
    env.tick(iso(day(1)))  # lessons 1 and 2 went out, the second today at 09:00
    p = env.ctl("enroll", ANN, "first", "--restart", now=iso(day(1, 10)))
    assert "again from lesson 1" in p.stdout
    env.tick(iso(day(1, 11)))
    for k in range(2, 5):
        env.tick(iso(day(k)))
    got = lessons(sink, "first")
    assert [x[0] for x in got] == ["first 1/3", "first 2/3", "first 1/3", "first 2/3", "first 3/3"]
    assert [x[1] for x in got[2:]] == [day(2), day(3), day(4)], "lesson 1 again on the day already full"
    row = env.sql("SELECT kind, via FROM events WHERE kind = 'restarted'")
    assert row == [("restarted", "cli")]


def test_restart_refused_where_it_cannot_apply(env, sink):
    env.ctl("unenroll", ANN, "first", now=iso(T0))
    p = env.ctl("enroll", ANN, "first", "--restart", now=iso(T0), check=False)
    assert p.returncode != 0 and "subscribe again" in p.stderr, p.stderr
    p = env.ctl("enroll", "nobody@example.org", "first", "--restart", now=iso(T0), check=False)
    assert p.returncode != 0
    # by mail, someone not in the course gets the usual "not subscribed" answer and nothing starts
    assert inbound(env, mail("eve@example.net", "first@courses.example.org", "restart")).returncode == 0
    env.tick(iso(day(0)))
    assert sink.lessons("eve@example.net") == []
    assert lessons(sink) == []


def test_restart_only_from_a_line_that_says_only_that(env, sink):
    """A reader's sentence that starts with the word is not a command."""
    finish_first(env, sink)
    raw = mail(ANN, "first@courses.example.org", "Re: Step 3",
               "Restart everything? I wish I could. Thank you for this.")
    assert inbound(env, raw, now=day(3, 8)).returncode == 0
    assert env.sql("SELECT state, round FROM enrollments WHERE course = 'first'") == [("completed", 0)]
    raw = mail(ANN, "first@courses.example.org", "restart first")
    assert inbound(env, raw, now=day(3, 9)).returncode == 0
    assert env.sql("SELECT state, round FROM enrollments WHERE course = 'first'") == [("active", 1)]
