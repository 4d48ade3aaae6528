"""Editing a course while people are in it (docs/course-edits.md), with the
real coursed and coursectl, a real SMTP sink and SQLite file.

A daily course at 09:00 UTC with lessons a..f. Five readers stand at
different places when the author edits the files:
  ann had a b c d      bob had a b c      cy had a b      dee had a
  zed completed the course (moved to f, then sent f)
Each test applies one edit (insert, remove, reorder, edit text, rename,
append, shorten, remove the course and bring it back), lets coursed run
for ten more days and asserts, from the mails received, exactly which
lessons each reader got after the edit, in which order, at 09:00 UTC slots,
and that no Message-ID ever arrived twice."""
import json
import os
import shutil
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from conftest import COURSED

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)  # a Monday
READERS = ["ann", "bob", "cy", "dee", "zed"]


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_lessons(env, order, texts=None, extra=""):
    """courses/edit with lessons in `order` (slugs), numbered 01..N."""
    root = env.courses / "edit"
    d = root / "lessons"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (root / "course.ini").write_text(
        "[course]\ntitle = Edit Course\nschedule = FREQ=DAILY\ntime = 09:00\n"
        f"timezone = UTC\nsource = a test\n{extra}")
    for i, slug in enumerate(order, 1):
        body = (texts or {}).get(slug, f"The text of {slug}.")
        (d / f"{i:02d}-{slug}.md").write_text(f"Subject: Lesson {slug}\n\n{body}\n")


def got(sink, who, since=None):
    """(slug, date) of the lessons `who` received (after `since`)."""
    out = []
    for m in sink.lessons(f"{who}@example.org"):
        at = parsedate_to_datetime(m["msg"]["Date"]).astimezone(UTC)
        if since is None or at > since:
            out.append((m["msg"]["Subject"].split()[-1], at, m))
    return out


@pytest.fixture
def course(env_factory, sink):
    """The five readers in place at day 3, 10:00; returns (env, now)."""
    env = env_factory(smtp_port=sink.port)
    write_lessons(env, list("abcdef"))
    env.ctl("init", now=iso(T0))
    for who in READERS:
        env.ctl("sub", "add", f"{who}@example.org", "--tz", "UTC", now=iso(T0))
    env.ctl("enroll", "zed@example.org", "edit", "--no-welcome", now=iso(T0))
    env.ctl("move", "zed@example.org", "edit", "--to-lesson", "6", now=iso(T0))
    for day, who in enumerate(["ann", "bob", "cy", "dee"]):
        env.ctl("enroll", f"{who}@example.org", "edit", "--no-welcome", now=iso(T0 + timedelta(days=day)))
        env.tick(iso(T0 + timedelta(days=day, hours=1)))
    had = {w: [s for s, _, _ in got(sink, w)] for w in READERS}
    assert had == {"ann": list("abcd"), "bob": list("abc"), "cy": list("ab"), "dee": ["a"], "zed": ["f"]}, had
    assert env.sql("SELECT state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                   " WHERE s.email = 'zed@example.org'") == [("completed",)]
    return env, T0 + timedelta(days=3, hours=2)


def run_on(env, sink, now, days=10):
    """Ticks at 09:00 UTC each day for `days` days after now; returns the
    lessons (slugs) each reader got after now, and checks slots and ids."""
    for k in range(1, days + 1):
        env.tick(iso(datetime(now.year, now.month, now.day, 9, 0, tzinfo=UTC) + timedelta(days=k)))
    after = {}
    for w in READERS:
        lessons = got(sink, w, since=now)
        for slug, at, _ in lessons:
            assert (at.hour, at.minute) == (9, 0), (w, slug, at)
        days_seen = [at.date() for _, at, _ in lessons]
        assert len(days_seen) == len(set(days_seen)), (w, "two lessons on one day", days_seen)
        after[w] = [s for s, _, _ in lessons]
        ids = Counter(m["msg"]["Message-ID"] for _, _, m in got(sink, w))
        assert all(n == 1 for n in ids.values()), (w, ids)
        subjects = Counter(m["msg"]["Subject"] for _, _, m in got(sink, w))
        assert all(n == 1 for n in subjects.values()), (w, "a lesson twice", subjects)
    return after


def test_insert_reaches_those_behind_it_and_skips_those_past_it(course, sink):
    env, now = course
    write_lessons(env, ["a", "b", "new", "c", "d", "e", "f"])
    plan = json.loads(env.ctl("course", "plan", "edit", "--json", now=iso(now)).stdout)
    assert [c["kind"] for c in plan["changes"]] == ["added"], plan["changes"]
    new = [l for l in plan["by_lesson"] if l["slug"] == "new"][0]
    # cy (had a b) and dee (had a) get it; ann and bob are past it; zed completed
    assert (new["next"] + new["later"], new["skip_behind"], new["skip_completed"]) == (2, 2, 1), new
    assert run_on(env, sink, now) == {
        "ann": ["e", "f"], "bob": ["d", "e", "f"], "cy": ["new", "c", "d", "e", "f"],
        "dee": ["b", "new", "c", "d", "e", "f"], "zed": []}
    # the audit names the version change for each enrollment it touched
    kinds = env.sql("SELECT s.email FROM events v JOIN subscribers s ON s.id = v.subscriber_id"
                    " WHERE v.kind = 'version' ORDER BY s.email")
    assert [k[0] for k in kinds] == ["cy@example.org", "dee@example.org"], kinds


def test_insert_behind_with_send_comes_next(course, sink):
    env, now = course
    write_lessons(env, ["a", "b", "new", "c", "d", "e", "f"], extra="on_insert_behind = send\n")
    assert run_on(env, sink, now) == {
        "ann": ["new", "e", "f"], "bob": ["new", "d", "e", "f"], "cy": ["new", "c", "d", "e", "f"],
        "dee": ["b", "new", "c", "d", "e", "f"], "zed": []}


def test_removed_lesson_is_sent_to_nobody(course, sink):
    env, now = course
    write_lessons(env, ["a", "b", "d", "e", "f"])
    diff = env.ctl("course", "diff", "edit", now=iso(now)).stdout
    assert "removed  c (was lesson 3)" in diff, diff
    assert run_on(env, sink, now) == {
        "ann": ["e", "f"], "bob": ["d", "e", "f"], "cy": ["d", "e", "f"], "dee": ["b", "d", "e", "f"], "zed": []}


def test_reorder_sends_what_is_left_in_the_new_order(course, sink):
    env, now = course
    write_lessons(env, ["a", "b", "c", "e", "d", "f"])
    diff = json.loads(env.ctl("course", "diff", "edit", "--json", now=iso(now)).stdout)
    assert [(c["kind"], c["slug"]) for c in diff["changes"]] in ([("moved", "e")], [("moved", "d")]), diff
    assert run_on(env, sink, now) == {
        "ann": ["e", "f"], "bob": ["e", "d", "f"], "cy": ["c", "e", "d", "f"],
        "dee": ["b", "c", "e", "d", "f"], "zed": []}


def test_reorder_moving_a_lesson_before_someone_still_sends_it(course, sink):
    """e moves to the front: everyone who had not had it gets it next."""
    env, now = course
    write_lessons(env, ["e", "a", "b", "c", "d", "f"])
    assert run_on(env, sink, now) == {
        "ann": ["e", "f"], "bob": ["e", "d", "f"], "cy": ["e", "c", "d", "f"],
        "dee": ["e", "b", "c", "d", "f"], "zed": []}


def test_edited_text_reaches_those_who_have_not_had_it(course, sink):
    env, now = course
    write_lessons(env, list("abcdef"), texts={"e": "A better text of e."})
    diff = env.ctl("course", "diff", "edit", now=iso(now)).stdout
    assert "edited   e (lesson 5, was 5)" in diff and "+ A better text of e." in diff, diff
    after = run_on(env, sink, now)
    assert after == {"ann": ["e", "f"], "bob": ["d", "e", "f"], "cy": ["c", "d", "e", "f"],
                     "dee": ["b", "c", "d", "e", "f"], "zed": []}
    for w in ["ann", "bob", "cy", "dee"]:
        e = [m for s, _, m in got(sink, w) if s == "e"][0]
        assert "A better text of e." in e["msg"].get_body(("plain",)).get_content()


def test_rename_is_a_new_lesson(course, sink):
    env, now = course
    write_lessons(env, ["a", "b", "c", "d2", "e", "f"], texts={"d2": "The text of d."})
    diff = env.ctl("course", "diff", "edit", now=iso(now)).stdout
    assert "renamed  d -> d2" in diff, diff
    after = run_on(env, sink, now)
    assert after == {"ann": ["d2", "e", "f"], "bob": ["d2", "e", "f"], "cy": ["c", "d2", "e", "f"],
                     "dee": ["b", "c", "d2", "e", "f"], "zed": []}


def test_appended_lesson_after_completion(course, sink):
    env, now = course
    write_lessons(env, list("abcdefg"))
    after = run_on(env, sink, now)
    assert after["zed"] == [] and after["ann"] == ["e", "f", "g"], after


def test_appended_lesson_reaches_completed_with_completed_get_new(course, sink):
    env, now = course
    write_lessons(env, list("abcdefg"), extra="completed_get_new = true\n")
    after = run_on(env, sink, now)
    assert after["zed"] == ["g"] and after["dee"] == ["b", "c", "d", "e", "f", "g"], after
    assert env.sql("SELECT e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                   " WHERE s.email = 'zed@example.org'") == [("completed",)]


def test_shortened_below_someones_position_completes_them(course, sink):
    env, now = course
    write_lessons(env, list("abcd"))
    env.tick(iso(now))
    states = dict(env.sql("SELECT s.email, e.state FROM enrollments e JOIN subscribers s"
                          " ON s.id = e.subscriber_id"))
    assert states["ann@example.org"] == "completed", states
    after = run_on(env, sink, now)
    assert after == {"ann": [], "bob": ["d"], "cy": ["c", "d"], "dee": ["b", "c", "d"], "zed": []}
    # and nothing is logged on every tick afterwards
    p = env.tick(iso(now + timedelta(days=20)))
    assert "lessons now" not in p.stderr and "version" not in p.stderr, p.stderr


def test_course_removed_pauses_and_its_return_resumes(course, sink):
    env, now = course
    away = env.dir / "edit-away"
    shutil.move(str(env.courses / "edit"), str(away))
    p = env.tick(iso(now))
    assert "course 'edit' is not loaded: 4 enrollments paused" in p.stderr, p.stderr
    rows = env.sql("SELECT s.email, e.state, e.reason FROM enrollments e JOIN subscribers s"
                   " ON s.id = e.subscriber_id ORDER BY s.email")
    assert [r[1:] for r in rows if not r[0].startswith("zed")] == [("paused", "course-gone")] * 4, rows
    show = env.ctl("sub", "show", "bob@example.org", now=iso(now)).stdout
    assert "not loaded" in show, show
    # ticks while it is away: nothing sent, nothing logged again
    for k in range(1, 3):
        p = env.tick(iso(now + timedelta(days=k)))
        assert "not loaded" not in p.stderr, p.stderr
    back = now + timedelta(days=2, hours=1)
    shutil.move(str(away), str(env.courses / "edit"))
    p = env.tick(iso(back))
    assert "course 'edit' is back: 4 enrollments resumed" in p.stderr, p.stderr
    after = run_on(env, sink, back)
    assert after == {"ann": ["e", "f"], "bob": ["d", "e", "f"], "cy": ["c", "d", "e", "f"],
                     "dee": ["b", "c", "d", "e", "f"], "zed": []}


def test_course_history_and_coursed_n(course, sink):
    env, now = course
    write_lessons(env, ["a", "b", "new", "c", "d", "e", "f"])
    import subprocess
    p = subprocess.run([COURSED, "-n", "-c", str(env.conf)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "course edit: the files differ from version 1" in p.stdout and "added new (lesson 3)" in p.stdout, p.stdout
    env.tick(iso(now))
    hist = json.loads(env.ctl("course", "history", "edit", "--json").stdout)
    assert [h["version"] for h in hist] == [1, 2], hist
    assert [l["slug"] for l in hist[1]["contents"]] == ["a", "b", "new", "c", "d", "e", "f"], hist
    assert "added new (lesson 3)" in hist[1]["summary"], hist
    text = env.ctl("course", "history", "edit").stdout
    assert "a b new c d e f" in text, text
    # the files are now the version that runs
    assert "which runs" in env.ctl("course", "diff", "edit").stdout


GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_diff_and_plan_match_golden(course, sink):
    """One edit of every kind at once (insert, remove, reorder, edit text,
    rename) against the five readers: `course diff` and `course plan` as an
    author reads them, compared with tests/golden/course-{diff,plan}.txt
    (COURSED_UPDATE_GOLDEN=1 rewrites them; review the diff)."""
    env, now = course
    # a b c d e f  ->  a new b e d f2: new inserted, c removed, e edited and
    # moved before d, f renamed f2
    write_lessons(env, ["a", "new", "b", "e", "d", "f2"], texts={"e": "A better text of e."})
    out = {}
    for what in ("diff", "plan"):
        p = env.ctl("course", what, "edit", now=iso(now))
        out[what] = p.stdout.replace(str(env.dir), "<dir>")
        golden = GOLDEN / f"course-{what}.txt"
        if os.environ.get("COURSED_UPDATE_GOLDEN"):
            golden.write_text(out[what])
        assert out[what] == golden.read_text(), f"{golden} differs:\n{out[what]}"
    # and the plan is what happens
    after = run_on(env, sink, now)
    # "new" is behind ann, bob and cy (each had b, which now follows it)
    assert after == {"ann": ["e", "f2"], "bob": ["e", "d", "f2"], "cy": ["e", "d", "f2"],
                     "dee": ["new", "b", "e", "d", "f2"], "zed": []}, after
