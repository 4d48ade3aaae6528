"""coursectl, command by command, as an operator uses it: real binary, real
SQLite file, JSON parsed and checked, and the errors of a bad e-mail, a
missing subscriber, a bad CSV row and a bad time zone."""
import csv
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import COURSECTL, write_course

NOW = "2026-05-04T10:00:00Z"


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "test", 3)
    e.ctl("init", now=NOW)
    return e


def js(env, *args):
    p = env.ctl(*args, "--json", now=NOW)
    return json.loads(p.stdout)


def test_help_lists_every_command_and_exit_codes():
    p = subprocess.run([COURSECTL, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    for cmd in ["init", "course list", "course check", "course preview", "sub add", "sub show", "sub set",
                "sub list", "sub rm", "enroll", "unenroll", "pause", "resume", "move", "schedule", "import",
                "export", "queue", "retry", "cancel", "stats", "log", "doctor", "send-test", "inbound", "status"]:
        assert f"  {cmd} " in p.stdout, cmd
    assert "75" in p.stdout and "Exit status" in p.stdout
    sub = subprocess.run([COURSECTL, "-c", "/nonexistent", "sub", "list", "--help"], capture_output=True, text=True,
                         timeout=30)
    assert "--status" in sub.stdout or "--status" in sub.stderr or sub.returncode != 0


def test_sub_add_show_set_list_rm(env):
    env.ctl("sub", "add", "Ann@Example.ORG", "--name", "Ann", "--tz", "Europe/Berlin", now=NOW)
    env.ctl("sub", "add", "bob@example.org", "--name", "Bob", now=NOW)
    shown = js(env, "sub", "show", "ann@example.org")
    assert shown["email"] == "ann@example.org" and shown["tz"] == "Europe/Berlin" and shown["enrollments"] == []
    env.ctl("sub", "set", "ann@example.org", "--name", "Ann B", "--tz", "Asia/Tokyo", now=NOW)
    assert js(env, "sub", "show", "ann@example.org")["name"] == "Ann B"
    env.ctl("enroll", "bob@example.org", "test", now=NOW)
    rows = js(env, "sub", "list")
    assert [r["email"] for r in rows] == ["ann@example.org", "bob@example.org"]
    assert [r["email"] for r in js(env, "sub", "list", "--course", "test")] == ["bob@example.org"]
    assert [r["email"] for r in js(env, "sub", "list", "--search", "ANN")] == ["ann@example.org"]
    assert js(env, "sub", "list", "--status", "bounced") == []
    text = env.ctl("sub", "list", now=NOW).stdout
    assert all(len(line) <= 80 for line in text.splitlines())
    env.ctl("sub", "rm", "ann@example.org", now=NOW)
    assert [r["email"] for r in js(env, "sub", "list")] == ["bob@example.org"]


@pytest.mark.parametrize("args,code,words", [
    (["sub", "add", "not-an-address"], 2, "bad e-mail address"),
    (["sub", "add", "x@example.org", "--tz", "Mars/Olympus"], 2, "unknown time zone"),
    (["sub", "show", "nobody@example.org"], 3, "no subscriber"),
    (["enroll", "nobody@example.org", "test"], 3, "no subscriber"),
    (["enroll", "x@example.org", "nocourse"], 3, "no course"),
    (["pause", "nobody@example.org"], 3, "no subscriber"),
    (["queue", "--state", "weird"], 2, "--state"),
    (["cancel", "abc"], 2, "not a delivery id"),
    (["retry", "99999"], 3, "not failed"),
    (["stats", "nocourse"], 3, "no course"),
])
def test_errors_are_one_clear_line(env, args, code, words):
    p = env.ctl(*args, now=NOW, check=False)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert words in p.stderr
    assert p.stderr.count("\n") <= 2


def test_enroll_pause_resume_move_unenroll_schedule(env, sink):
    env.ctl("sub", "add", "ann@example.org", now=NOW)
    env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now=NOW)
    assert js(env, "sub", "show", "ann@example.org")["enrollments"][0]["state"] == "active"
    env.ctl("pause", "ann@example.org", "--for", "1w", now=NOW)
    assert js(env, "sub", "show", "ann@example.org")["enrollments"][0]["state"] == "paused"
    env.ctl("resume", "ann@example.org", now=NOW)
    env.ctl("move", "ann@example.org", "test", "--to-lesson", "3", now=NOW)
    e = js(env, "sub", "show", "ann@example.org")["enrollments"][0]
    assert e["next_lesson"] == 3
    env.tick("2026-05-06T07:00:00Z")
    assert [m["msg"]["X-Course-Lesson"] for m in sink.lessons()] == ["test 3/3"]
    env.ctl("move", "ann@example.org", "test", "--to-lesson", "1", now="2026-05-06T08:00:00Z")
    env.tick("2026-05-08T07:00:00Z")
    assert [m["msg"]["X-Course-Lesson"] for m in sink.lessons()] == ["test 3/3", "test 1/3"]
    sched = js(env, "schedule", "ann@example.org")
    assert sched == [{"course": "test", "lesson": 2, "local": sched[0]["local"], "utc": "2026-05-11T07:00:00Z"},
                     {"course": "test", "lesson": 3, "local": sched[1]["local"], "utc": "2026-05-13T07:00:00Z"}]
    assert js(env, "status", "ann@example.org")["enrollments"][0]["next_lesson"] == 2
    courses = js(env, "course", "list")
    assert [(c["slug"], c["lessons"]) for c in courses] == [("test", 3)]
    env.ctl("unenroll", "ann@example.org", "test", now="2026-05-08T08:00:00Z")
    env.tick("2026-05-11T07:00:00Z")
    assert len(sink.lessons()) == 2
    log = js(env, "log", "ann@example.org")
    kinds = [e["event"] for e in log]
    for k in ("unenrolled", "moved", "resumed", "paused", "enrolled", "subscriber-added"):
        assert k in kinds
    assert all(e["via"] == "cli" for e in log if e["event"] != "deferred")


def test_import_export_and_bad_rows(env, tmp_path):
    f = tmp_path / "people.csv"
    f.write_text("email,name,tz,course,status\n"
                 "ann@example.org,Ann,Europe/Berlin,test,active\n"
                 "\"bob@example.org\",\"Bob, Jr.\",,test,paused\n"
                 "broken-address,X,,,\n"
                 "cy@example.org,Cy,Mars/Base,,\n"
                 "di@example.org,Di,,nocourse,\n"
                 "ann@example.org,Ann again,,,\n"
                 "ed@example.org,Ed,,,weird\n"
                 "fy@example.org,\"unterminated\n")
    dry = env.ctl("import", str(f), "--dry-run", now=NOW, check=False)
    assert dry.returncode == 1
    assert js(env, "sub", "list") == [], "a dry run wrote"
    p = env.ctl("import", str(f), now=NOW, check=False)
    assert p.returncode == 1
    errs = p.stderr
    assert f"{f}:4: email: bad e-mail address" in errs
    assert f"{f}:5: tz: unknown time zone 'Mars/Base'" in errs
    assert f"{f}:6: course: no course 'nocourse'" in errs
    assert f"{f}:7: email: ann@example.org appears again (first on line 2)" in errs
    assert f"{f}:8: status:" in errs
    assert f"{f}:9:" in errs
    assert "2 added" in p.stdout
    people = {r["email"]: r for r in js(env, "sub", "list")}
    assert set(people) == {"ann@example.org", "bob@example.org"}
    assert js(env, "sub", "show", "bob@example.org")["enrollments"][0]["state"] == "paused"
    assert js(env, "sub", "show", "bob@example.org")["name"] == "Bob, Jr."
    out = tmp_path / "out.csv"
    env.ctl("export", "--output", str(out), now=NOW)
    rows = list(csv.DictReader(out.open(newline="")))
    assert [(r["email"], r["name"], r["course"], r["status"]) for r in rows] == [
        ("ann@example.org", "Ann", "test", "active"), ("bob@example.org", "Bob, Jr.", "test", "paused")]
    j = json.loads(env.ctl("export", "--format", "json", now=NOW).stdout)
    assert j[1]["enrollments"][0]["state"] == "paused"
    # an exported file imports again into a fresh database, unchanged
    (tmp_path / "second").mkdir()
    env2 = type(env)(tmp_path / "second")
    shutil.copytree(env.courses, env2.courses, dirs_exist_ok=True)
    env2.ctl("init", now=NOW)
    assert env2.ctl("import", str(out), now=NOW).returncode == 0
    assert [r["email"] for r in js(env2, "sub", "list")] == ["ann@example.org", "bob@example.org"]


def test_erase_then_reimport_is_refused_unless_forced(env, tmp_path):
    env.ctl("sub", "add", "gone@example.org", "--name", "Gone", now=NOW)
    env.ctl("enroll", "gone@example.org", "test", now=NOW)
    env.ctl("sub", "rm", "gone@example.org", "--erase", now=NOW)
    # every trace is gone: no row names the address
    dump = subprocess.run(["sqlite3", str(env.db), ".dump"], capture_output=True, text=True, timeout=30).stdout
    assert "gone@example.org" not in dump.lower() and "Gone" not in dump
    assert env.sql("SELECT count(*) FROM suppressions") == [(1,)]
    f = tmp_path / "again.csv"
    f.write_text("email,name\ngone@example.org,Gone\n")
    p = env.ctl("import", str(f), now=NOW, check=False)
    assert p.returncode == 1 and "was erased" in p.stderr
    p = env.ctl("sub", "add", "gone@example.org", now=NOW, check=False)
    assert p.returncode == 2 and "--force" in p.stderr
    assert env.ctl("import", str(f), "--force", now=NOW).returncode == 0
    assert [r["email"] for r in js(env, "sub", "list")] == ["gone@example.org"]


def test_queue_retry_cancel(env_factory):
    from smtpsink import Sink

    def decide(envelope, msg, attempt):
        return "550 5.1.1 unknown" if envelope.rcpt_tos == ["bad@example.org"] else \
            ("451 4.3.0 later" if envelope.rcpt_tos == ["slow@example.org"] else None)

    with Sink(decide) as sink:
        env = env_factory(smtp_port=sink.port)
        write_course(env.courses, "test", 2)
        env.ctl("init", now=NOW)
        for a in ("bad@example.org", "slow@example.org", "ok@example.org"):
            env.ctl("sub", "add", a, now=NOW)
            env.ctl("enroll", a, "test", "--no-welcome", now="2026-05-03T12:00:00Z")
        env.tick("2026-05-04T07:00:00Z")
        q = js(env, "queue")
        states = {r["email"]: r for r in q}
        assert states["bad@example.org"]["state"] == "failed" and states["bad@example.org"]["last_code"] == 550
        assert states["slow@example.org"]["state"] == "deferred" and states["slow@example.org"]["last_code"] == 451
        assert [r["email"] for r in js(env, "queue", "--state", "failed")] == ["bad@example.org"]
        text = env.ctl("queue", now=NOW).stdout
        assert all(len(line) <= 80 for line in text.splitlines())
        # cancel the deferred one: its lesson is skipped, the course goes on
        env.ctl("cancel", str(states["slow@example.org"]["id"]), now=NOW)
        # retry the failed one after the address was fixed at the other end
        sink.decide = None
        env.ctl("retry", "--all-failed", now="2026-05-04T08:00:00Z")
        env.tick("2026-05-04T08:00:00Z")
        assert [m["msg"]["X-Course-Lesson"] for m in sink.lessons("bad@example.org")] == ["test 1/2"]
        assert js(env, "queue") == []
        env.tick("2026-05-06T07:00:00Z")
        assert [m["msg"]["X-Course-Lesson"] for m in sink.lessons("slow@example.org")] == ["test 2/2"]


def test_stats_funnel_and_daily(env, sink):
    for i in range(4):
        env.ctl("sub", "add", f"p{i}@example.org", now=NOW)
        env.ctl("enroll", f"p{i}@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
    env.tick("2026-05-04T07:00:00Z")
    env.ctl("unenroll", "p3@example.org", "test", now="2026-05-04T08:00:00Z")
    env.tick("2026-05-06T07:00:00Z")
    st = js(env, "stats", "test")
    assert st == [{"course": "test", "enrolled": 4, "active": 3, "paused": 0, "completed": 0, "unsubscribed": 1,
                   "bounced": 0, "pending": 0, "reached": [4, 3, 0], "lost": [1, 0, 0], "notes_per_lesson": [0, 0, 0]}]
    text = env.ctl("stats", "test", now=NOW).stdout
    assert "\u2588" not in text or os.environ.get("LANG", "").lower().find("utf") >= 0
    ascii_text = env.ctl("stats", "test", "--ascii", now=NOW).stdout
    assert "#" in ascii_text and all(len(l) <= 80 for l in ascii_text.splitlines())
    utf = subprocess.run([COURSECTL, "-c", str(env.conf), "--now", NOW, "stats", "test"], capture_output=True,
                         text=True, env={**os.environ, "LANG": "C.UTF-8"}, timeout=30).stdout
    assert "\u2588" in utf
    daily = js(env, "stats", "--since", "30d")
    assert sum(d["sent"] for d in daily) == 7 and sum(d["unsubscribed"] for d in daily) == 0
    by_day = {d["day"]: d for d in daily}
    assert by_day["2026-05-04"]["sent"] == 4 and by_day["2026-05-06"]["sent"] == 3


def test_doctor(env, sink):
    p = env.ctl("doctor", now=NOW)
    assert p.returncode == 0, p.stdout
    assert "ok   smtp 127.0.0.1" in p.stdout and "ok   database" in p.stdout and "ok   secret key" in p.stdout
    os.chmod(env.dir / "secret.key", 0o644)
    p = env.ctl("doctor", now=NOW, check=False)
    assert p.returncode == 1 and "FAIL secret key" in p.stdout and "chmod 600" in p.stdout


def test_send_test(env, sink):
    env.ctl("send-test", "someone@example.net", "test", "2", now=NOW)
    got = sink.lessons("someone@example.net")
    assert [m["msg"]["X-Course-Lesson"] for m in got] == ["test 2/3"]
    assert js(env, "sub", "list") == [], "send-test touched subscribers"
    assert env.sql("SELECT count(*) FROM enrollments") == [(0,)]


def test_import_progress_bar_in_tmux(env, tmp_path):
    """A terminal test: tmux runs coursectl import on a 100k-row file; the
    pane shows the progress bar drawing and the final counts."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    f = tmp_path / "big.csv"
    with f.open("w") as out:
        out.write("email,name,tz,course,status\n")
        for i in range(100000):
            out.write(f"user{i}@example.org,User {i},,test,active\n")
    sock = str(tmp_path / "tmux.sock")
    cmd = f"{COURSECTL} -c {env.conf} --now {NOW} import {f}; echo EXIT=$?; sleep 30"
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-x", "100", "-y", "20", cmd], check=True, timeout=30)
    try:
        seen_bar, final = False, ""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            pane = subprocess.run(["tmux", "-S", sock, "capture-pane", "-p"], capture_output=True, text=True,
                                  timeout=30).stdout
            if "importing [" in pane and "%" in pane:
                seen_bar = True
            if "EXIT=" in pane:
                final = pane
                break
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, timeout=30)
    assert seen_bar, "no progress bar drawn"
    assert "100%" in final
    assert "imported: 100000 rows, 100000 added, 0 already there, 100000 enrolled, 0 bad" in final
    assert "EXIT=0" in final
    assert env.sql("SELECT count(*) FROM subscribers") == [(100000,)]
