"""Regression tests for the lifecycle defects of issue 11, each run with the
real coursed and coursectl against a real SMTP server and a real SQLite
file, each failing on the build before the lifecycle redesign:

- a 5xx in one course stopped only that course: the subscriber's other
  courses stayed 'active', their lesson was cancelled at claim and the
  enrollment was stuck for ever ("lesson 1 is being delivered", and
  --until-done never exited);
- `schedule` and the welcome .ics promised lesson 2 on the day of a
  first_within lesson, which max_per_day then moved;
- a 5.7.1 policy refusal paused only one course; now every course of the
  address waits for the operator, as a policy bounce report does;
- an enrollment whose course disappeared was skipped and logged on every
  tick; now it is paused with a reason `status` shows;
- the operator's `retry` re-activated a person who had left meanwhile."""
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone

import icalendar

from conftest import COURSED, write_course
from smtpsink import Sink

UTC = timezone.utc


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ticks(env, start, hours, step=1):
    for h in range(0, hours + 1, step):
        env.tick(iso(start + timedelta(hours=h)))


def test_hard_5xx_stops_every_course_and_nothing_is_stuck(env_factory):
    """ann is in two courses; the server refuses her first lesson with 550
    5.1.1. Exactly what a hard bounce report does happens: she is bounced,
    both courses are stopped, nothing stays 'active' with nothing planned,
    and `coursed --until-done` exits."""
    refuse = {"ann@example.org"}

    def decide(envelope, msg, attempt):
        return "550 5.1.1 no such user" if envelope.rcpt_tos[0] in refuse else None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port)
        write_course(env.courses, "one", 3)
        write_course(env.courses, "two", 3, schedule="FREQ=WEEKLY;BYDAY=TU,TH")
        t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)   # Sunday
        env.ctl("init", now=iso(t0))
        env.ctl("sub", "add", "ann@example.org", now=iso(t0))
        env.ctl("sub", "add", "bob@example.org", now=iso(t0))
        for who in ("ann@example.org", "bob@example.org"):
            env.ctl("enroll", who, "one", "--no-welcome", now=iso(t0))
            env.ctl("enroll", who, "two", "--no-welcome", now=iso(t0))
        ticks(env, t0, 24 * 10, step=6)
        states = dict(env.sql("SELECT e.course, e.state FROM enrollments e JOIN subscribers s"
                              " ON s.id = e.subscriber_id WHERE s.email = 'ann@example.org'"))
        assert states == {"one": "stopped", "two": "stopped"}, states
        assert env.sql("SELECT status FROM subscribers WHERE email = 'ann@example.org'") == [("bounced",)]
        status = env.ctl("status", "ann@example.org", now=iso(t0 + timedelta(days=10))).stdout
        assert "being delivered" not in status, status
        # nothing stuck, anywhere
        assert env.sql("SELECT count(*) FROM enrollments e WHERE state = 'active' AND next_send_at IS NULL"
                       " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.enrollment_id = e.id"
                       " AND d.state IN ('queued','sending','deferred'))") == [(0,)]
        # only one refusal: the second course was never tried
        assert len(sink.refused) == 1
        assert sink.lessons("ann@example.org") == []
        assert len(sink.lessons("bob@example.org")) == 6
        p = subprocess.run([COURSED, "-d", "-c", str(env.conf), "--now", iso(t0 + timedelta(days=11)),
                            "--until-done"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr[-2000:]


def test_policy_refusal_pauses_every_course(env_factory):
    """A 5.7.1 refusal is about us, not the address: every course of the
    address waits for the operator (a policy bounce report does the same),
    and `coursectl retry` sends it again and resumes the other course."""
    refuse = {"on": True}

    def decide(envelope, msg, attempt):
        return "550 5.7.1 blocked by policy" if refuse["on"] else None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port)
        write_course(env.courses, "one", 2)
        write_course(env.courses, "two", 2, schedule="FREQ=WEEKLY;BYDAY=TU,TH")
        t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
        env.ctl("init", now=iso(t0))
        env.ctl("sub", "add", "ann@example.org", now=iso(t0))
        env.ctl("enroll", "ann@example.org", "one", "--no-welcome", now=iso(t0))
        env.ctl("enroll", "ann@example.org", "two", "--no-welcome", now=iso(t0))
        env.tick("2026-05-04T07:00:00Z")   # Monday 09:00 CEST: lesson 1 of "one"
        assert dict(env.sql("SELECT course, state || '/' || reason FROM enrollments")) == \
            {"one": "paused/policy", "two": "paused/policy"}
        status = env.ctl("status", "ann@example.org", now="2026-05-04T08:00:00Z").stdout
        assert "policy" in status
        refuse["on"] = False
        out = env.ctl("retry", "--all-failed", now="2026-05-04T08:00:00Z").stdout
        assert "queued 1" in out
        env.tick("2026-05-04T08:00:00Z")
        ticks(env, datetime(2026, 5, 4, 8, tzinfo=UTC), 24 * 5, step=6)
    got = sorted(m["msg"]["X-Course-Lesson"] for m in sink.lessons("ann@example.org"))
    assert got == ["one 1/2", "one 2/2", "two 1/2", "two 2/2"], got
    assert dict(env.sql("SELECT course, state FROM enrollments")) == {"one": "completed", "two": "completed"}


def test_retry_does_not_revive_someone_who_left(env_factory):
    """The delivery gave up; meanwhile the person left. `retry --all-failed`
    queues nothing to them and leaves them unsubscribed."""
    with Sink(lambda e, m, a: "451 4.3.0 try later") as sink:
        env = env_factory(smtp_port=sink.port, extra_conf="[delivery]\ngive_up = 1h\nretry_first = 10m\n")
        write_course(env.courses, "one", 2)
        t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
        env.ctl("init", now=iso(t0))
        env.ctl("sub", "add", "ann@example.org", now=iso(t0))
        env.ctl("enroll", "ann@example.org", "one", "--no-welcome", now=iso(t0))
        ticks(env, datetime(2026, 5, 4, 7, tzinfo=UTC), 3)
        assert env.sql("SELECT state, reason FROM enrollments") == [("paused", "gave-up")]
        env.ctl("unenroll", "ann@example.org", "one", now="2026-05-04T11:00:00Z")
        env.ctl("retry", "--all-failed", now="2026-05-04T11:05:00Z")
        assert env.sql("SELECT state FROM enrollments") == [("stopped",)]
        assert env.sql("SELECT count(*) FROM deliveries WHERE state IN ('queued','deferred','sending')") == [(0,)]


def test_schedule_and_welcome_calendar_apply_max_per_day(env_factory, sink):
    """Enrolled on Sunday with first_within = 24h on a Mon/Wed/Fri 09:00
    course: lesson 1 comes on Monday at 07:00 (24 h on), and with
    max_per_day = 1 lesson 2 cannot come on Monday at 09:00: `schedule`,
    the welcome .ics (read with python3-icalendar) and what arrives all say
    Wednesday 09:00."""
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 3, extra="first_within = 24h\n")
    t0 = datetime(2026, 5, 3, 5, 0, tzinfo=UTC)     # Sunday 07:00 CEST
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "test", now=iso(t0))
    import json
    shown = [e["utc"] for e in json.loads(env.ctl("schedule", "ann@example.org", "--json", now=iso(t0)).stdout)]
    want = ["2026-05-04T05:00:00Z", "2026-05-06T07:00:00Z", "2026-05-08T07:00:00Z"]
    assert shown == want, shown
    ticks(env, t0, 24 * 6)
    welcome = [m for m in sink.system("ann@example.org")]
    cal = None
    for m in welcome:
        for part in m["msg"].walk():
            if part.get_content_type() == "text/calendar":
                cal = icalendar.Calendar.from_ical(part.get_content())
    assert cal is not None, "no calendar in the welcome mail"
    starts = sorted(iso(ev.get("dtstart").dt) for ev in cal.walk("VEVENT"))
    assert starts == want
    from email.utils import parsedate_to_datetime
    arrived = [iso(parsedate_to_datetime(m["msg"]["Date"])) for m in sink.lessons("ann@example.org")]
    assert arrived == want, arrived


def test_course_removed_pauses_with_a_reason(env_factory, sink):
    """The course folder is removed under a running enrollment: the
    enrollment is paused once, with a reason `status` shows; it is not
    logged again on every tick; restored and resumed, it goes on."""
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "keep", 1)
    write_course(env.courses, "gone", 2)
    t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "gone", "--no-welcome", now=iso(t0))
    import shutil
    shutil.move(str(env.courses / "gone"), str(env.dir / "gone.saved"))
    first = env.tick("2026-05-04T07:00:00Z").stderr
    again = env.tick("2026-05-04T08:00:00Z").stderr
    assert "not loaded" in first
    assert "not loaded" not in again, again
    assert env.sql("SELECT state, reason FROM enrollments") == [("paused", "course-gone")]
    status = env.ctl("status", "ann@example.org", now="2026-05-04T08:00:00Z").stdout
    assert "is not loaded" in status, status
    shutil.move(str(env.dir / "gone.saved"), str(env.courses / "gone"))
    env.ctl("resume", "ann@example.org", "gone", now="2026-05-04T09:00:00Z")
    ticks(env, datetime(2026, 5, 4, 9, tzinfo=UTC), 24 * 6, step=2)
    assert len(sink.lessons("ann@example.org")) == 2
    keys = Counter(m["msg"]["Message-ID"] for m in sink.lessons())
    assert max(keys.values()) == 1


def test_pause_that_ran_out_resumes_at_the_slot_schedule_showed(env_factory, sink):
    """Paused for a week: `schedule` shows the next lesson at the first slot
    after the pause ends. The tick that notices the end comes an hour after
    that slot; the lesson still goes at that slot's instant (within
    late_grace), not two days later at the slot after the tick (found by
    the model-based test, seed 1052348143)."""
    import json
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 3)
    t0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)    # Monday, after the 09:00 slot
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now=iso(t0))
    env.ctl("pause", "ann@example.org", "--until", "2026-05-11T06:00:00Z", now=iso(t0))
    shown = json.loads(env.ctl("schedule", "ann@example.org", "--json", now=iso(t0)).stdout)
    assert shown[0]["utc"] == "2026-05-11T07:00:00Z", shown
    env.tick("2026-05-11T08:00:00Z")                # the first tick after the pause ran out
    from email.utils import parsedate_to_datetime
    got = [iso(parsedate_to_datetime(m["msg"]["Date"])) for m in sink.lessons("ann@example.org")]
    assert got == ["2026-05-11T08:00:00Z"], got     # sent now, within late_grace of 07:00
    assert env.sql("SELECT slot_at FROM deliveries") == [(1778482800,)]   # 2026-05-11T07:00:00Z


def test_import_of_a_known_subscriber_plans_in_their_own_zone(env_factory, sink):
    """ann is known, in Asia/Kolkata; a CSV row enrolls her with another
    zone in its tz column. Her first lesson is planned at 09:00 in her own
    zone (the one every later slot uses), not at 09:00 New York time, which
    would reach her at 18:30 (found by the model-based test, seed 40506282)."""
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 2)
    t0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)      # Monday 13:30 in Kolkata
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", "--tz", "Asia/Kolkata", now=iso(t0))
    csv = env.dir / "rows.csv"
    csv.write_text("email,name,tz,course,status\r\nann@example.org,Ann,America/New_York,test,active\r\n")
    env.ctl("import", str(csv), now=iso(t0))
    # the next slot in Kolkata: Wednesday 09:00 IST = 03:30Z
    assert env.sql("SELECT next_send_at FROM enrollments") == [(1778038200,)]


def test_refusal_after_the_person_left_is_recorded(env_factory):
    """ann leaves while her lesson is in flight, and the server then refuses
    it with 550. The late outcome is recorded (the delivery failed, she
    stays unsubscribed, nothing is left 'sending'); it must not make the
    whole group commit fail over a transition that no longer applies."""
    box = {}

    def decide(envelope, msg, attempt):
        box["env"].ctl("unenroll", "ann@example.org", "one", now="2026-05-04T07:00:00Z")
        return "550 5.1.1 no such user"

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port)
        box["env"] = env
        write_course(env.courses, "one", 2)
        t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
        env.ctl("init", now=iso(t0))
        env.ctl("sub", "add", "ann@example.org", now=iso(t0))
        env.ctl("enroll", "ann@example.org", "one", "--no-welcome", now=iso(t0))
        p = env.tick("2026-05-04T07:00:00Z", check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(sink.refused) == 1
    assert env.sql("SELECT state, last_code FROM deliveries") == [("failed", 550)]
    assert env.sql("SELECT status FROM subscribers") == [("unsubscribed",)]
    assert env.sql("SELECT state FROM enrollments") == [("stopped",)]


def test_move_back_keeps_max_per_day(env_factory, sink):
    """With first_lesson = immediately, lesson 1 of a daily 09:00 course
    reached ann at 08:00; at 08:30 the operator moves her back to lesson 1.
    The move forgets the row of lesson 1 so that it can go again, but the
    day it went out still counts: with max_per_day = 1 it does not go
    again at 09:00 today; `schedule` says tomorrow 09:00, and that is when
    it arrives (found by the model-based test, seed 632092350)."""
    import json
    from email.utils import parsedate_to_datetime
    env = env_factory(smtp_port=sink.port, extra_conf="[pacing]\nfirst_lesson = immediately\n")
    write_course(env.courses, "daily", 3, schedule="FREQ=DAILY", tz="UTC")
    t0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", "--tz", "UTC", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "daily", "--no-welcome", now=iso(t0))
    env.tick(iso(t0))
    assert len(sink.lessons("ann@example.org")) == 1
    t1 = t0 + timedelta(minutes=30)
    env.ctl("move", "ann@example.org", "daily", "--to-lesson", "1", now=iso(t1))
    shown = json.loads(env.ctl("schedule", "ann@example.org", "--json", now=iso(t1)).stdout)
    assert shown[0]["utc"] == "2026-05-05T09:00:00Z", shown
    ticks(env, datetime(2026, 5, 4, 9, 0, tzinfo=UTC), 72)
    got = [iso(parsedate_to_datetime(m["msg"]["Date"])) for m in sink.lessons("ann@example.org")]
    assert got == ["2026-05-04T08:00:00Z", "2026-05-05T09:00:00Z",
                   "2026-05-06T09:00:00Z", "2026-05-07T09:00:00Z"], got
    subjects = [m["msg"]["Subject"] for m in sink.lessons("ann@example.org")]
    assert subjects[1] == subjects[0], subjects         # lesson 1 again, as the operator asked
    # the audit keeps the row the move replaced
    assert env.sql("SELECT lesson, state FROM delivery_history") == [(1, "sent")]


def test_schedule_shows_a_deferred_lesson_at_its_next_attempt(env_factory):
    """Lesson 1 is refused with 451 at its slot. `schedule` then shows it at
    its next attempt (not at the slot already past), and the lessons after
    it at their own slots; a daemon that wakes exactly at the times
    `schedule` showed delivers each lesson then (found by the model-based
    test, seed 1013035779: a lesson shown at its past slot was sent a day
    late, at the next slot, and every later lesson a day late with it)."""
    import json
    from email.utils import parsedate_to_datetime
    first = {"done": False}

    def decide(envelope, msg, attempt):
        if msg["X-Course-Lesson"] and not first["done"]:
            first["done"] = True
            return "451 4.3.0 try again later"
        return None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port, extra_conf="[delivery]\nretry_first = 10m\n")
        write_course(env.courses, "daily", 3, schedule="FREQ=DAILY", tz="UTC")
        t0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
        env.ctl("init", now=iso(t0))
        env.ctl("sub", "add", "ann@example.org", "--tz", "UTC", now=iso(t0))
        env.ctl("enroll", "ann@example.org", "daily", "--no-welcome", now=iso(t0))
        slot = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
        env.tick(iso(slot))                                 # refused: deferred
        assert env.sql("SELECT state FROM deliveries") == [("deferred",)]
        shown = [e["utc"] for e in json.loads(env.ctl("schedule", "ann@example.org", "--json",
                                                      now=iso(slot)).stdout)]
        assert shown == ["2026-05-04T09:10:00Z", "2026-05-05T09:00:00Z", "2026-05-06T09:00:00Z"], shown
        for t in shown:
            env.tick(t)
        got = [iso(parsedate_to_datetime(m["msg"]["Date"])) for m in sink.lessons("ann@example.org")]
        assert got == shown, got


def test_retry_after_resume_does_not_leave_two_lessons_planned(env_factory):
    """Found by the model-based soak (seed 356411669): a 5.7.1 refusal holds
    the course; the person resumes it (lesson 2 planned at its slot); then
    the operator retries the refused lesson 1. Both were planned at once:
    the enrollment was active with a next slot and a lesson in flight, and
    queueing lesson 2 beside lesson 1 broke the one-in-flight rule. Now the
    retried lesson goes first and the plan waits for it."""
    refuse = {"on": True}

    def decide(envelope, msg, attempt):
        return "550 5.7.1 blocked by policy" if refuse["on"] else None

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port)
        write_course(env.courses, "one", 3, schedule="FREQ=DAILY", tz="UTC")
        t0 = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
        env.ctl("init", now=iso(t0))
        env.ctl("sub", "add", "ann@example.org", "--tz", "UTC", now=iso(t0))
        env.ctl("enroll", "ann@example.org", "one", "--no-welcome", now=iso(t0))
        env.tick("2026-05-04T09:00:00Z")
        assert env.sql("SELECT state, reason FROM enrollments") == [("paused", "policy")]
        refuse["on"] = False
        env.ctl("resume", "ann@example.org", "one", now="2026-05-04T10:00:00Z")
        env.ctl("retry", "--all-failed", now="2026-05-04T10:00:00Z")
        inflight = env.sql("SELECT count(*) FROM deliveries WHERE state IN ('queued','deferred','sending')")[0][0]
        planned = env.sql("SELECT next_send_at IS NOT NULL FROM enrollments")[0][0]
        assert (inflight, planned) == (1, 0), "a lesson in flight and another planned"
        for h in range(0, 24 * 4, 3):
            env.tick(iso(datetime(2026, 5, 4, 10, tzinfo=UTC) + timedelta(hours=h)))
    got = [m["msg"]["X-Course-Lesson"] for m in sink.lessons("ann@example.org")]
    assert got == ["one 1/3", "one 2/3", "one 3/3"], got
    assert env.sql("SELECT state FROM enrollments") == [("completed",)]
