"""The subscriber's own page, /m/TOKEN, end to end: the link in a real
lesson received by the test SMTP server, the real coursed serving it, its
forms posted as a browser posts them, and the database and coursectl's
schedule read afterwards."""
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from conftest import write_course
from pages import Daemon, Forms, submit

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)        # a Monday
WED = datetime(2026, 5, 6, 7, 0, tzinfo=UTC)        # Wed 09:00 CEST: lesson 1
NOW = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)       # the page is used after it


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dump(db):
    """Every row of every table, to compare before and after."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
    finally:
        con.close()


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port, extra_conf="")
    e.conf.write_text(e.conf.read_text().replace("listen = \n", "listen = 127.0.0.1:0\n"))
    write_course(e.courses, "test", 5)
    write_course(e.courses, "other", 5, title="Other Course")
    e.ctl("init", now=iso(T0))
    e.ctl("sub", "add", "ann@example.org", "--tz", "Europe/Berlin", now=iso(T0))
    e.ctl("enroll", "ann@example.org", "test", "--no-welcome", now=iso(T0))
    e.ctl("enroll", "ann@example.org", "other", "--no-welcome", now=iso(T0))
    e.tick(iso(WED))
    return e


def lesson_of(sink, course="test"):
    m = next(m for m in sink.lessons("ann@example.org") if m["msg"]["X-Course-Lesson"].startswith(course))
    return m


def text_of(msg):
    return next(p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain")


def html_of(msg):
    return next(p.get_content() for p in msg.walk() if p.get_content_type() == "text/html")


def manage_path(sink):
    text = text_of(lesson_of(sink)["msg"])
    url = next(w for w in text.split() if w.startswith("https://courses.example.org/m/"))
    return url[len("https://courses.example.org"):]


@pytest.fixture
def daemon(env):
    d = Daemon(env, iso(NOW))
    yield d
    d.stop()


def schedule(env, course="test"):
    return json.loads(env.ctl("schedule", "ann@example.org", course, "--json", now=iso(NOW)).stdout)


def test_every_mail_carries_the_manage_link_and_one_click_stays_u(env, sink):
    m = lesson_of(sink)["msg"]
    path = manage_path(sink)
    assert path.startswith("/m/") and len(path) > 10
    assert "https://courses.example.org" + path in html_of(m)
    assert "/u/" in m["List-Unsubscribe"] and "/m/" not in m["List-Unsubscribe"]
    # a system mail too (a status mail asked with coursectl's inbound path is heavy: the welcome will do)
    env.ctl("sub", "add", "bob@example.org", now=iso(T0))
    env.ctl("enroll", "bob@example.org", "test", now=iso(T0))
    env.tick(iso(T0 + timedelta(minutes=5)))
    welcome = sink.system("bob@example.org")[0]["msg"]
    assert "https://courses.example.org/m/" in text_of(welcome)


def test_page_shows_courses_progress_next_date_in_zone(env, sink, daemon):
    status, headers, page = daemon.request(manage_path(sink))
    assert status == 200
    assert "ann@example.org" in page
    assert "Test Course" in page and "Other Course" in page
    assert "You have received 1 of 5 steps." in page
    assert "2026-05-08 09:00 CEST" in page                      # Friday, in Berlin
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    forms = Forms(page)
    assert "Europe/Berlin" in forms.find("tz")["selects"]["tz"]
    # the page works without its script, which is ours and served under the same policy
    s, h, js = daemon.request("/m.js")
    assert s == 200 and "resolvedOptions().timeZone" in js and h["X-Content-Type-Options"] == "nosniff"


def test_forged_and_damaged_tokens_are_refused_without_echo(env, sink, daemon):
    good = manage_path(sink)
    before = dump(env.db)
    tok = good[len("/m/"):]
    forged = tok[:-3] + ("AAA" if tok[-3:] != "AAA" else "BBB")
    for path, code in [("/m/" + forged, 404), ("/m/" + tok + "%00junk", 400), ("/m/<script>x", 400),
                       ("/m/" + tok[:10], 400), ("/m/", 400)]:
        status, _, page = daemon.request(path)
        assert status == code, path
        assert forged not in page and "<script>x" not in page and "junk" not in page
        assert "ann@example.org" not in page
    # a token of another purpose (the unsubscribe link's) does not open the page
    unsub = lesson_of(sink)["msg"]["List-Unsubscribe"].split("<")[1].split(">")[0]
    status, _, _ = daemon.request("/m/" + unsub.rsplit("/", 1)[1])
    assert status == 400
    # a forged token's POST changes nothing either
    status, _, _ = daemon.request("/m/" + forged, {"action": "leave_all", "csrf": "x"})
    assert status == 404
    assert dump(env.db) == before


def test_link_scanner_and_query_strings_change_nothing(env, sink, daemon):
    m = lesson_of(sink)["msg"]
    links = set(Forms(html_of(m)).links)
    links |= {w for w in text_of(m).split() if w.startswith("https://")}
    links |= {m["List-Unsubscribe"].split("<")[1].split(">")[0]}
    paths = [u[len("https://courses.example.org"):] for u in links if u.startswith("https://courses.example.org")]
    assert any(p.startswith("/m/") for p in paths) and any(p.startswith("/u/") for p in paths)
    before = dump(env.db)
    for p in paths:
        for q in ["", "?action=leave_all", "?List-Unsubscribe=One-Click", "?utm_source=x&weeks=4"]:
            status, _, page = daemon.request(p + q)
            assert status == 200, p + q
            assert "utm_source" not in page
    assert dump(env.db) == before
    assert env.sql("SELECT state FROM enrollments ORDER BY id") == [("active",), ("active",)]


def test_pause_two_weeks_then_next_lesson_date(env, sink, daemon):
    status, _, page = daemon.request(manage_path(sink))
    status, _, page = submit(daemon, page, "pause", "test", "2 weeks")
    assert status == 200 and "Paused for 2 weeks." in page
    until = NOW + timedelta(days=14)
    assert env.sql("SELECT state, paused_until FROM enrollments e WHERE course = 'test'") == \
        [("paused", int(until.timestamp()))]
    assert env.sql("SELECT state FROM enrollments WHERE course = 'other'") == [("active",)]
    log = json.loads(env.ctl("log", "ann@example.org", "--json", now=iso(NOW)).stdout)
    assert any(e["event"] == "paused" and e["via"] == "page" for e in log)
    # the pause ends Wed 20 May 12:00Z; the next slot is Fri 22 May 09:00 CEST
    assert schedule(env)[0]["utc"] == "2026-05-22T07:00:00Z"
    assert "Paused until 2026-05-20 14:00 CEST" in page
    # resume: the next slot after now, Friday 8 May
    status, _, page = submit(daemon, page, "resume", "test")
    assert status == 200 and "Resumed" in page
    assert env.sql("SELECT state FROM enrollments WHERE course = 'test'") == [("active",)]
    assert schedule(env)[0]["utc"] == "2026-05-08T07:00:00Z"


@pytest.mark.parametrize("weeks,expect", [("1", "2026-05-15T07:00:00Z"), ("4", "2026-06-05T07:00:00Z")])
def test_pause_one_or_four_weeks(env, sink, daemon, weeks, expect):
    status, _, page = daemon.request(manage_path(sink))
    status, _, page = submit(daemon, page, "pause", "test", f"{weeks} week")
    assert status == 200
    assert schedule(env)[0]["utc"] == expect


def test_zone_change_moves_next_slot_and_unknown_zone_changes_nothing(env, sink, daemon):
    status, _, page = daemon.request(manage_path(sink))
    before = dump(env.db)
    status, _, bad = submit(daemon, page, "tz", tz="Mars/Olympus_Mons")
    assert status == 400 and "Mars" not in bad
    assert dump(env.db) == before
    status, _, page = submit(daemon, page, "tz", tz="America/New_York")
    assert status == 200 and "time zone is saved" in page
    assert env.sql("SELECT tz FROM subscribers") == [("America/New_York",)]
    assert schedule(env)[0]["utc"] == "2026-05-08T13:00:00Z"      # 09:00 EDT
    assert "2026-05-08 09:00 EDT" in page
    log = json.loads(env.ctl("log", "ann@example.org", "--json", now=iso(NOW)).stdout)
    assert any(e["via"] == "page" for e in log)


def test_post_needs_the_csrf_field_of_its_token(env, sink, daemon):
    path = manage_path(sink)
    status, _, page = daemon.request(path)
    f = Forms(page).find("leave", "test")
    before = dump(env.db)
    for csrf in [None, "", "x" * 31, f["fields"]["csrf"][:-2] + "zz"]:
        data = {"action": "leave", "course": "test"}
        if csrf is not None:
            data["csrf"] = csrf
        status, _, out = daemon.request(path, data)
        assert status == 400 and "zz" not in out
    # an action or course we never offered
    for data in [{"action": "erase"}, {"action": "leave", "course": "nope"}, {"action": "pause", "course": "test",
                                                                              "weeks": "3"}]:
        data["csrf"] = f["fields"]["csrf"]
        status, _, out = daemon.request(path, data)
        assert status == 400 and "nope" not in out and "erase" not in out
    assert dump(env.db) == before


def test_leave_one_then_everything(env, sink, daemon):
    status, _, page = daemon.request(manage_path(sink))
    status, _, page = submit(daemon, page, "leave", "test")
    assert status == 200
    assert env.sql("SELECT course, state, reason FROM enrollments ORDER BY course") == \
        [("other", "active", ""), ("test", "stopped", "subscriber")]
    status, _, page = submit(daemon, page, "leave_all")
    assert status == 200 and "left every course" in page
    assert env.sql("SELECT state FROM enrollments ORDER BY course") == [("stopped",), ("stopped",)]
    assert env.sql("SELECT status FROM subscribers") == [("unsubscribed",)]


def test_one_click_body_is_exact_and_u_token_exact(env, sink, daemon):
    unsub = lesson_of(sink)["msg"]["List-Unsubscribe"].split("<")[1].split(">")[0]
    path = unsub[len("https://courses.example.org"):]
    before = dump(env.db)
    for body in [b"a=b&List-Unsubscribe=One-Click", b"xList-Unsubscribe=One-Clicky", b"List-Unsubscribe=Two"]:
        status, _, _ = daemon.request(path, body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 400, body
    status, _, page = daemon.request(path + "%00junk", b"List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "junk" not in page
    assert dump(env.db) == before
    status, _, _ = daemon.request(path, b"List-Unsubscribe=One-Click",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    assert env.sql("SELECT state FROM enrollments WHERE course = 'test'") == [("stopped",)]


def test_posts_are_rate_limited_per_address(env, sink):
    env.conf.write_text(env.conf.read_text() + "posts_per_minute = 3\n")
    d = Daemon(env, iso(NOW))
    try:
        path = manage_path(sink)
        codes = [d.request(path, {"action": "nothing"})[0] for _ in range(5)]
        assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429]
        assert d.request(path)[0] == 200            # GET is not limited
    finally:
        d.stop()


def test_own_time_of_day_moves_the_next_slot_and_the_calendar_follows(env, sink, daemon):
    status, _, page = daemon.request(manage_path(sink))
    before = dump(env.db)
    for bad in ["25:00", "7:30", "07:30; DROP", ""]:
        status, _, out = submit(daemon, page, "time", time=bad)
        assert status == 400 and "DROP" not in out
    assert dump(env.db) == before
    status, _, page = submit(daemon, page, "time", time="07:30")
    assert status == 200 and "time of day is saved" in page
    assert env.sql("SELECT lesson_time FROM subscribers") == [("07:30",)]
    # the same pacing rules at the person's own time: Friday 07:30 CEST, both courses
    assert schedule(env)[0]["utc"] == "2026-05-08T05:30:00Z"
    assert schedule(env, "other")[0]["utc"] == "2026-05-08T05:30:00Z"
    assert "2026-05-08 07:30 CEST" in page and 'value="07:30"' in page
    log = json.loads(env.ctl("log", "ann@example.org", "--json", now=iso(NOW)).stdout)
    assert any(e["via"] == "page" and "time 07:30" in (e.get("detail") or "") for e in log)
    # a pause ends at a slot at that time too
    status, _, page = submit(daemon, page, "pause", "test", "1 week")
    assert schedule(env)[0]["utc"] == "2026-05-15T05:30:00Z"
    status, _, page = submit(daemon, page, "resume", "test")
    daemon.stop()
    # the lesson goes out at the new slot, with the calendar of what follows at the new time
    env.tick("2026-05-08T05:29:00Z")
    assert len(sink.lessons("ann@example.org")) == 2           # lesson 1 of each course only
    env.tick("2026-05-08T05:30:00Z")
    lessons = [m for m in sink.lessons("ann@example.org") if m["msg"]["X-Course-Lesson"] == "test 2/5"]
    assert len(lessons) == 1
    ics = [p.get_content() for p in lessons[0]["msg"].walk() if p.get_content_type() == "text/calendar"]
    assert ics and "20260511T053000Z" in (ics[0] if isinstance(ics[0], str) else ics[0].decode())
    # back to the course's time
    d = Daemon(env, iso(NOW))
    try:
        status, _, page = d.request(manage_path(sink))
        status, _, page = submit(d, page, "time_reset")
        assert status == 200
        assert env.sql("SELECT lesson_time FROM subscribers") == [(None,)]
        assert schedule(env)[0]["utc"] == "2026-05-11T07:00:00Z"   # Monday 09:00 CEST
    finally:
        d.stop()


def test_export_mails_a_json_file_to_the_stored_address_only(env, sink, daemon):
    import time
    status, _, page = daemon.request(manage_path(sink))
    before = len(sink.system())
    status, _, page = submit(daemon, page, "export", rcpt="mallory@example.net", email="mallory@example.net")
    assert status == 200 and "sending everything" in page and "mallory" not in page
    deadline = time.monotonic() + 30
    while len(sink.system()) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    mails = sink.system()[before:]
    assert len(mails) == 1 and mails[0]["rcpts"] == ["ann@example.org"]
    msg = mails[0]["msg"]
    assert msg["To"].addresses[0].addr_spec == "ann@example.org"
    parts = [p for p in msg.walk() if p.get_content_type() == "application/json"]
    assert len(parts) == 1 and parts[0].get_filename() == "coursed-data.json"
    data = json.loads(parts[0].get_content() if isinstance(parts[0].get_content(), str)
                      else parts[0].get_content().decode("utf-8"))
    assert data["email"] == "ann@example.org" and data["tz"] == "Europe/Berlin"
    assert sorted(e["course"] for e in data["enrollments"]) == ["other", "test"]
    assert {(d["course"], d["lesson"], d["state"]) for d in data["deliveries"]} == {("test", 1, "sent"),
                                                                                     ("other", 1, "sent")}
    assert any(e["event"] == "enrolled" for e in data["events"])
    assert "mallory" not in mails[0]["raw"].decode(errors="replace")
    log = json.loads(env.ctl("log", "ann@example.org", "--json", now=iso(NOW)).stdout)
    assert any(e["event"] == "exported" and e["via"] == "page" for e in log)
