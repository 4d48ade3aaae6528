"""Plain regression tests for what the model-based test (test_model.py, its
step "edit the course") found in applying a course edit to the people
already in it (docs/course-edits.md). Each one is the shortest story of a
finding, with the real coursed and coursectl, a real SMTP sink and SQLite
file. A finding still open is marked xfail (strict) with its reason, and named
in OPEN_BUGS of test_model.py; both findings below are fixed."""
import shutil
from datetime import datetime, timedelta, timezone

import pytest

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)  # a Monday


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_course(env, slug, order, extra=""):
    """courses/SLUG: daily at 09:00 UTC, lessons in `order` (slugs), 01..N."""
    root = env.courses / slug
    d = root / "lessons"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (root / "course.ini").write_text(
        f"[course]\ntitle = Course {slug}\nschedule = FREQ=DAILY\ntime = 09:00\n"
        f"timezone = UTC\nsource = a test\n{extra}")
    for i, lesson in enumerate(order, 1):
        (d / f"{i:02d}-{lesson}.md").write_text(f"Subject: Lesson {lesson}\n\nThe text of {lesson}.\n")


def state_of(env, who, course):
    return env.sql("SELECT e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                   " WHERE s.email = ? AND e.course = ?", f"{who}@example.org", course)[0][0]


# Found by the model test, fixed in lib/version.c:
# the bug (model seeds 45515015 and 1031121699, invariant reopen-left): with
# completed_get_new = true, applying an appended lesson reopens a completed enrollment
# whatever the subscriber's status (lib/version.c plan_enrollment/apply_enrollment,
# A_REOPEN); for a subscriber who left every course (unsubscribed) or bounced it becomes
# active, its lesson is queued, and the claim finds it moot: the row is cancelled and the
# enrollment stopped ('was active for a subscriber who is unsubscribed; stopped'), so a
# course the person finished shows as stopped, and the version event says 'reopened'
def test_append_does_not_reopen_a_finished_course_of_someone_who_left(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env, "edit", list("abc"), extra="completed_get_new = true\n")
    write_course(env, "other", list("abcd"))
    env.ctl("init", now=iso(T0))
    env.ctl("sub", "add", "zed@example.org", "--tz", "UTC", now=iso(T0))
    env.ctl("enroll", "zed@example.org", "edit", "--no-welcome", now=iso(T0))
    env.ctl("move", "zed@example.org", "edit", "--to-lesson", "3", now=iso(T0))
    env.ctl("enroll", "zed@example.org", "other", "--no-welcome", now=iso(T0))
    env.tick(iso(T0 + timedelta(hours=1, minutes=1)))      # 09:01: edit's c goes, zed completes it
    assert state_of(env, "zed", "edit") == "completed"
    # zed leaves the one course still running: they have left every course
    env.ctl("unenroll", "zed@example.org", "other", now=iso(T0 + timedelta(hours=2)))
    assert env.sql("SELECT status FROM subscribers WHERE email = 'zed@example.org'") == [("unsubscribed",)]
    sent = len(sink.lessons("zed@example.org"))
    # the author appends d; coursed applies it at start
    write_course(env, "edit", list("abcd"), extra="completed_get_new = true\n")
    env.tick(iso(T0 + timedelta(hours=3)))
    assert state_of(env, "zed", "edit") == "completed"
    p = env.tick(iso(T0 + timedelta(days=1, hours=1, minutes=1)))
    assert "was active for a subscriber who is" not in p.stderr, p.stderr
    assert len(sink.lessons("zed@example.org")) == sent        # nobody who left is mailed
    assert state_of(env, "zed", "edit") == "completed"


# Found by the model test, fixed in lib/version.c:
# the bug (model: a kill -9 during a round, then an edit removing the lesson on the wire,
# applied at the next start; invariant stuck): coursed applies a new version (version_sync)
# before it recovers the rows a crash left 'sending'; plan_enrollment counts such a row as in
# flight and withdraws it, but store_dlv_withdraw only moves queued/deferred rows, so the row
# stays in flight at position -id while the enrollment is given the next slot as well (two
# things in flight). Recovered, it was composed at a position outside the course
# ("course 'edit' has no lesson -1"), deferred and retried until give_up; and when the
# next slot came every tick failed in its plan ("queue lesson: UNIQUE constraint
# failed"): no lesson went out to anyone. version_sync now recovers such rows first.
def test_removed_lesson_left_sending_by_a_crash_is_withdrawn(env_factory):
    from smtpsink import Sink
    refuse = {"on": True}
    with Sink(lambda e, m, a: "451 4.3.0 try later" if refuse["on"] else None) as sink:
        env = env_factory(smtp_port=sink.port)
        write_course(env, "edit", list("abc"))
        env.ctl("init", now=iso(T0))
        env.ctl("sub", "add", "ann@example.org", "--tz", "UTC", now=iso(T0))
        env.ctl("enroll", "ann@example.org", "edit", "--no-welcome", now=iso(T0))
        env.tick(iso(T0 + timedelta(hours=1, minutes=1)))           # 09:01: a is deferred (451)
        assert env.sql("SELECT slug, state FROM deliveries") == [("a", "deferred")]
        # a retry of a was on the wire when coursed was killed: its row stays 'sending'
        env.sql("UPDATE deliveries SET state = 'sending' WHERE slug = 'a'")
        refuse["on"] = False
        # the author removes a; coursed applies the files at the next start
        write_course(env, "edit", list("bc"))
        p = env.tick(iso(T0 + timedelta(hours=1, minutes=30)))
        eid, nsa = env.sql("SELECT id, next_send_at FROM enrollments")[0]
        inflight = env.sql("SELECT slug, state FROM deliveries WHERE enrollment_id = ?"
                           " AND state IN ('queued','sending','deferred')", eid)
        assert (nsa is not None) + len(inflight) == 1, (nsa, inflight)      # nobody stuck
        for day in range(1, 4):
            p = env.tick(iso(T0 + timedelta(days=day, hours=1, minutes=1)))
            assert "has no lesson" not in p.stderr, p.stderr
        got = [m["msg"]["Subject"].split()[-1] for m in sink.lessons("ann@example.org")]
        assert got == ["b", "c"], got                                  # a was removed: never sent
