"""Pacing on the subscriber's own calendar, end to end with the real
binaries and a real SMTP server: time zones across DST changes, the skipped
and the repeated hour, pause and resume, automatic resume, zone changes,
catch-up after a 3-day outage for 1,000 enrollments, and the .ics calendar
checked with another implementation (python3-icalendar).

Expected instants come from Python's zoneinfo, not from libical."""
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest

from conftest import write_course

UTC = timezone.utc


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(zone, y, m, d, hh=9, mm=0, fold=0):
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


def dates(sink, rcpt):
    return [parsedate_to_datetime(m["msg"]["Date"]) for m in sink.lessons(rcpt)]


def tags(sink, rcpt):
    return [m["msg"]["X-Course-Lesson"] for m in sink.lessons(rcpt)]


def run_ticks(env, ticks):
    for t in sorted(set(ticks)):
        env.tick(iso(t))


def hourly(start, end):
    t, out = start, []
    while t <= end:
        out.append(t)
        t += timedelta(hours=1)
    return out


def calendar_parts(sink, rcpt):
    out = []
    for m in sink.messages:
        if m["rcpts"] != [rcpt]:
            continue
        for part in m["msg"].walk():
            if part.get_content_type() == "text/calendar":
                out.append((m["msg"]["X-Course-Lesson"] or "welcome", part.get_content()))
    return out


DST_CASES = [
    # zone, enrolled at (UTC), local dates that must each get one lesson at 09:00
    ("Europe/Berlin", datetime(2026, 3, 26, 12, tzinfo=UTC), [(2026, 3, d) for d in range(27, 32)]),
    ("Europe/Berlin", datetime(2026, 10, 22, 12, tzinfo=UTC), [(2026, 10, d) for d in range(23, 28)]),
    ("America/New_York", datetime(2026, 3, 5, 20, tzinfo=UTC), [(2026, 3, d) for d in range(6, 11)]),
    ("Australia/Sydney", datetime(2026, 4, 2, 12, tzinfo=UTC), [(2026, 4, d) for d in range(3, 8)]),
    ("Asia/Kolkata", datetime(2026, 3, 26, 12, tzinfo=UTC), [(2026, 3, d) for d in range(27, 32)]),
    ("Australia/Adelaide", datetime(2026, 4, 2, 12, tzinfo=UTC), [(2026, 4, d) for d in range(3, 8)]),
]


@pytest.mark.parametrize("zone,enrolled,days", DST_CASES, ids=[f"{c[0]}-{c[1]:%m%d}" for c in DST_CASES])
def test_nine_local_stays_nine_across_dst(env_factory, sink, zone, enrolled, days):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "daily", len(days), schedule="FREQ=DAILY", tz="UTC")
    env.ctl("init", now=iso(enrolled))
    env.ctl("sub", "add", "ann@example.org", "--tz", zone, now=iso(enrolled))
    env.ctl("enroll", "ann@example.org", "daily", now=iso(enrolled))
    want = [local(zone, *d) for d in days]
    # tick at every half hour: a slot is never between two ticks
    ticks = [enrolled + timedelta(minutes=30 * i) for i in range(2 * 24 * (len(days) + 1))]
    run_ticks(env, ticks)
    assert dates(sink, "ann@example.org") == want
    assert tags(sink, "ann@example.org") == [f"daily {n}/{len(days)}" for n in range(1, len(days) + 1)]
    for t in dates(sink, "ann@example.org"):
        lt = t.astimezone(ZoneInfo(zone))
        assert (lt.hour, lt.minute) == (9, 0)


def test_skipped_and_repeated_hour(env_factory, sink):
    """02:30 Berlin does not exist on 2026-03-29 and occurs twice on
    2026-10-25. The documented rule (RFC 5545): a missing time is read with
    the offset before the gap (03:30 CEST), a repeated one is its first
    occurrence (02:30 CEST). Exactly one lesson each day."""
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "night", 3, schedule="FREQ=DAILY", time="02:30", tz="Europe/Berlin")
    start = datetime(2026, 3, 27, 12, tzinfo=UTC)
    env.ctl("init", now=iso(start))
    env.ctl("sub", "add", "spring@example.org", now=iso(start))
    env.ctl("enroll", "spring@example.org", "night", now=iso(start))
    autumn = datetime(2026, 10, 23, 12, tzinfo=UTC)
    env.ctl("sub", "add", "autumn@example.org", now=iso(autumn))
    ticks = [start + timedelta(minutes=30 * i) for i in range(2 * 24 * 4)]
    run_ticks(env, ticks)
    env.ctl("enroll", "autumn@example.org", "night", now=iso(autumn))
    run_ticks(env, [autumn + timedelta(minutes=30 * i) for i in range(2 * 24 * 4)])
    assert dates(sink, "spring@example.org") == [
        local("Europe/Berlin", 2026, 3, 28, 2, 30),
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),          # 03:30 CEST
        local("Europe/Berlin", 2026, 3, 30, 2, 30)]
    assert dates(sink, "autumn@example.org") == [
        local("Europe/Berlin", 2026, 10, 24, 2, 30),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),         # 02:30 CEST, the first one
        local("Europe/Berlin", 2026, 10, 26, 2, 30)]


def test_pause_ten_days_then_resume(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 6)                  # Mon/Wed/Fri 09:00 Berlin
    t0 = datetime(2026, 5, 3, 12, tzinfo=UTC)             # a Sunday
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "test", now=iso(t0))
    run_ticks(env, hourly(t0, datetime(2026, 5, 6, 12, tzinfo=UTC)))    # Mon, Wed sent
    assert len(dates(sink, "ann@example.org")) == 2
    paused_at = datetime(2026, 5, 6, 12, tzinfo=UTC)
    env.ctl("pause", "ann@example.org", now=iso(paused_at))
    run_ticks(env, hourly(paused_at, paused_at + timedelta(days=10)))
    assert len(dates(sink, "ann@example.org")) == 2, "a lesson arrived while paused"
    assert env.sql("SELECT state FROM enrollments") == [("paused",)]
    resumed_at = paused_at + timedelta(days=10, hours=1)   # Sat 16 May 13:00Z
    env.ctl("resume", "ann@example.org", now=iso(resumed_at))
    ics = env.ctl("schedule", "ann@example.org", "--ics", now=iso(resumed_at)).stdout
    run_ticks(env, hourly(resumed_at, resumed_at + timedelta(days=10)))
    got = dates(sink, "ann@example.org")
    assert tags(sink, "ann@example.org") == [f"test {n}/6" for n in range(1, 7)], "a lesson was lost or repeated"
    # lesson 3 at the first slot after resuming (Mon 18 May 09:00 CEST), the rest follow
    assert got[2:] == [local("Europe/Berlin", 2026, 5, d) for d in (18, 20, 22, 25)]
    # the first mail after the resume carries the new plan, SEQUENCE raised
    cals = calendar_parts(sink, "ann@example.org")
    assert [c[0] for c in cals] == ["welcome", "test 3/6"]
    # the welcome carried the whole plan as it stood then, SEQUENCE 0
    welcome = icalendar.Calendar.from_ical(cals[0][1])
    assert str(welcome["METHOD"]) == "PUBLISH"
    assert [e["DTSTART"].dt for e in welcome.walk("VEVENT")] == \
        [local("Europe/Berlin", 2026, 5, d) for d in (4, 6, 8, 11, 13, 15)]
    assert {int(e["SEQUENCE"]) for e in welcome.walk("VEVENT")} == {0}
    cal = icalendar.Calendar.from_ical(cals[1][1])
    assert str(cal["METHOD"]) == "PUBLISH"
    events = [e for e in cal.walk("VEVENT")]
    assert [e["DTSTART"].dt for e in events] == got[3:]
    assert all(int(e["SEQUENCE"]) >= 2 for e in events)   # paused, resumed
    # and `coursectl schedule --ics` at resume time planned the same instants
    planned = icalendar.Calendar.from_ical(ics)
    assert [e["DTSTART"].dt for e in planned.walk("VEVENT")] == got[2:]
    assert [str(e["UID"]) for e in planned.walk("VEVENT")][1:] == [str(e["UID"]) for e in events]


def test_pause_for_resumes_by_itself(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 4)
    t0 = datetime(2026, 5, 3, 12, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "test", now=iso(t0))
    run_ticks(env, hourly(t0, datetime(2026, 5, 4, 12, tzinfo=UTC)))     # lesson 1 on Mon
    env.ctl("pause", "ann@example.org", "--for", "2w", now="2026-05-04T12:00:00Z")
    assert env.sql("SELECT state, paused_until FROM enrollments") == \
        [("paused", int(datetime(2026, 5, 18, 12, tzinfo=UTC).timestamp()))]
    run_ticks(env, hourly(datetime(2026, 5, 4, 13, tzinfo=UTC), datetime(2026, 5, 26, 12, tzinfo=UTC)))
    got = dates(sink, "ann@example.org")
    # back on Mon 18 May at 12:00Z: the next slot after that is Wed 20 May
    assert got == [local("Europe/Berlin", 2026, 5, d) for d in (4, 20, 22, 25)]
    assert env.sql("SELECT kind, via FROM events WHERE kind IN ('paused','resumed') ORDER BY id") == \
        [("paused", "cli"), ("resumed", "daemon")]


def test_zone_change_replans_and_never_resends(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 4)
    t0 = datetime(2026, 5, 3, 12, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", "--tz", "Europe/Berlin", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "test", now=iso(t0))
    run_ticks(env, hourly(t0, datetime(2026, 5, 4, 12, tzinfo=UTC)))     # Mon 07:00Z
    env.ctl("sub", "set", "ann@example.org", "--tz", "America/Los_Angeles", now="2026-05-04T12:00:00Z")
    run_ticks(env, hourly(datetime(2026, 5, 4, 13, tzinfo=UTC), datetime(2026, 5, 12, 0, tzinfo=UTC)))
    got = dates(sink, "ann@example.org")
    # Mon 4 May 09:00 PDT (16:00Z) is the next slot, but she already had a
    # lesson that local day: the next is Wed 6 May 09:00 PDT
    assert got == [local("Europe/Berlin", 2026, 5, 4)] + \
        [local("America/Los_Angeles", 2026, 5, d) for d in (6, 8, 11)]
    assert tags(sink, "ann@example.org") == [f"test {n}/4" for n in range(1, 5)]
    assert [c[0] for c in calendar_parts(sink, "ann@example.org")] == ["welcome", "test 2/4"]


@pytest.mark.parametrize("outage_hours,late", [(3, True), (8, False)])
def test_late_grace(env_factory, sink, outage_hours, late):
    """Down over a slot: back within late_grace (6h) it goes at once; later,
    it moves to the next slot and the rest shift."""
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 3)
    t0 = datetime(2026, 5, 3, 12, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "test", now=iso(t0))
    slot = local("Europe/Berlin", 2026, 5, 4)                 # Mon 07:00Z
    back = slot + timedelta(hours=outage_hours)
    run_ticks(env, hourly(t0, slot - timedelta(hours=1)) + hourly(back, back + timedelta(days=7)))
    got = dates(sink, "ann@example.org")
    if late:
        assert got == [back] + [local("Europe/Berlin", 2026, 5, d) for d in (6, 8)]
    else:
        assert got == [local("Europe/Berlin", 2026, 5, d) for d in (6, 8, 11)]


ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "Pacific/Auckland",
         "America/Los_Angeles", "Asia/Tokyo", "Europe/London"]


def test_three_day_outage_with_1000_enrollments(env_factory, sink):
    env = env_factory(smtp_port=sink.port, extra_conf="[delivery]\nbatch = 1000\n")
    lessons = 8
    write_course(env.courses, "daily", lessons, schedule="FREQ=DAILY", tz="UTC")
    t0 = datetime(2026, 6, 1, 0, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    # 1,000 subscribers in eight zones, added straight into the real SQLite
    # file (coursectl would take minutes), then enrolled through the CLI path
    # for a sample and by SQL for the rest with the same first slot rule.
    import sqlite3
    con = sqlite3.connect(env.db)
    now = int(t0.timestamp())
    for i in range(1000):
        con.execute("INSERT INTO subscribers (email, name, tz, status, created_at, updated_at)"
                    " VALUES (?, '', ?, 'active', ?, ?)", (f"s{i}@example.org", ZONES[i % len(ZONES)], now, now))
    con.commit()
    con.close()
    for i in range(8):
        env.ctl("enroll", f"s{i}@example.org", "daily", now=iso(t0))
    first = {z: env.sql("SELECT e.next_send_at FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                        " WHERE s.tz = ?", z)[0][0] for z in ZONES}
    con = sqlite3.connect(env.db)
    for i in range(8, 1000):
        z = ZONES[i % len(ZONES)]
        con.execute("INSERT INTO enrollments (subscriber_id, course, state, next_lesson, next_send_at,"
                    " anchor_at, created_at, updated_at) VALUES (?, 'daily', 'active', 1, ?, ?, ?, ?)",
                    (i + 1, first[z], now, now, now))
    con.commit()
    con.close()

    outage_from = t0 + timedelta(days=2, hours=12)
    outage_to = outage_from + timedelta(days=3)
    ticks = hourly(t0, outage_from) + hourly(outage_to, t0 + timedelta(days=14))
    run_ticks(env, ticks)

    assert len(sink.lessons()) == 1000 * lessons, "a lesson was lost or sent twice"
    ids = [m["msg"]["Message-ID"] for m in sink.messages]
    assert len(set(ids)) == len(ids)
    by = {}
    for m in sink.lessons():
        by.setdefault(m["rcpts"][0], []).append(m)
    assert len(by) == 1000
    after = 0
    for i in range(1000):
        got = by[f"s{i}@example.org"]
        zone = ZoneInfo(ZONES[i % len(ZONES)])
        assert [m["msg"]["X-Course-Lesson"] for m in got] == [f"daily {n}/{lessons}" for n in range(1, lessons + 1)]
        days = [parsedate_to_datetime(m["msg"]["Date"]).astimezone(zone).date() for m in got]
        assert len(set(days)) == len(days), f"s{i}: two lessons in one local day: {days}"
        for m in got:
            d = parsedate_to_datetime(m["msg"]["Date"])
            lt = d.astimezone(zone)
            # on its slot, or late by no more than late_grace (6h)
            assert 9 <= lt.hour < 15 or (lt.hour, lt.minute) == (15, 0), f"s{i}: sent at {lt}"
            if d >= outage_to:
                after += 1
    # after the outage each subscriber gets at most one lesson per tick: no burst
    per_tick = {}
    for m in sink.lessons():
        per_tick.setdefault((m["rcpts"][0], m["msg"]["Date"]), 0)
        per_tick[(m["rcpts"][0], m["msg"]["Date"])] += 1
    assert max(per_tick.values()) == 1
    assert after > 0


@pytest.mark.parametrize("mode,first_within,want", [
    ("next-slot", "", datetime(2026, 5, 11, 7, 0, tzinfo=UTC)),        # Mon 09:00 CEST
    ("next-slot", "first_within = 24h\n", datetime(2026, 5, 9, 8, 0, tzinfo=UTC)),  # capped
    ("immediately", "", datetime(2026, 5, 8, 8, 0, tzinfo=UTC)),
])
def test_first_lesson(env_factory, sink, mode, first_within, want):
    """Enrolled on Friday 10:00 CEST, after that day's slot: the next slot
    is Monday, 71 hours on; first_within = 24h brings it to Saturday 10:00;
    first_lesson = immediately sends it at once."""
    env = env_factory(smtp_port=sink.port, extra_conf=f"[pacing]\nfirst_lesson = {mode}\n")
    write_course(env.courses, "test", 2, extra=first_within)
    t0 = datetime(2026, 5, 8, 8, 0, tzinfo=UTC)
    env.ctl("init", now=iso(t0))
    env.ctl("sub", "add", "ann@example.org", now=iso(t0))
    env.ctl("enroll", "ann@example.org", "test", now=iso(t0))
    run_ticks(env, hourly(t0, t0 + timedelta(days=4)))
    assert dates(sink, "ann@example.org")[0] == want
