"""SIGHUP as an operator uses it, against the real coursed: one snapshot of
config, courses, templates and key, swapped whole, used by delivery and by
the pages alike (issue 12).

- 100 SIGHUPs while 5,000 lessons go out, and 30 while 600 go out over
  STARTTLS + AUTH to a real server that speaks both (aiosmtpd): nothing
  lost, nothing sent twice, no crash;
- one SIGHUP that changes the relay, the templates, a course's text and the
  secret key: the next mail goes to the new relay with the new text and a
  link signed with the new key, and the HTTP pages accept that link (they
  run on the same snapshot) while a link signed with the old key is
  refused."""
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter

from conftest import COURSED, REPO, write_course
from smtpsink import Sink, free_port
from test_daemon import AuthSink, make_cert

NOW = "2026-05-04T07:00:00Z"        # a Monday, 09:00 Berlin: lesson 1 is due
T = 1777878000                      # NOW as Unix seconds


def populate(db, n, course):
    """n subscribers, each with lesson 1 of course due a minute ago."""
    con = sqlite3.connect(db)
    with con:
        con.executemany("INSERT INTO subscribers (id, email, name, tz, status, created_at, updated_at)"
                        " VALUES (?, ?, '', 'Europe/Berlin', 'active', ?, ?)",
                        ((i + 1, f"r{i}@example.org", T - 86400, T - 86400) for i in range(n)))
        con.executemany("INSERT INTO enrollments (id, subscriber_id, course, state, next_lesson, next_send_at,"
                        " anchor_at, created_at, updated_at) VALUES (?, ?, ?, 'active', 1, ?, ?, ?, ?)",
                        ((i + 1, i + 1, course, T - 60, T - 3600, T - 3600, T - 3600) for i in range(n)))
    con.close()


def run_with_reloads(env, sink, n, reloads):
    """coursed delivers n due lessons while it gets `reloads` SIGHUPs, one
    each time 90% of n / reloads more lessons have arrived (the first after
    the first lesson, when its handler is surely in place), so that they
    spread over the run whatever its speed; returns (alive, returncode,
    stderr, lessons delivered when the last SIGHUP went)."""
    step = max(1, (n * 9 // 10) // reloads)
    # the log goes to a file: a pipe nobody reads would fill and stall coursed
    log = open(env.dir / "coursed.log", "w+")
    p = subprocess.Popen([COURSED, "-d", "-c", str(env.conf), "--now", NOW], stdout=subprocess.DEVNULL,
                         stderr=log, text=True)
    hups, at_last, deadline = 0, None, time.monotonic() + 400
    try:
        while time.monotonic() < deadline and p.poll() is None:
            got = len(sink.lessons())
            if got >= n and hups >= reloads:
                break
            if got > 0 and hups < reloads and (at_last is None or got >= at_last + step):
                p.send_signal(signal.SIGHUP)
                hups += 1
                at_last = got
            time.sleep(0.01)
        time.sleep(1)
    finally:
        alive = p.poll() is None
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        log.seek(0)
        err = log.read()
        log.close()
    assert hups == reloads
    return alive, p.returncode, err, at_last


def check_once_each(env, sink, n):
    ids = Counter(m["msg"]["Message-ID"] for m in sink.lessons())
    assert len(ids) == n, f"{len(ids)} distinct lessons of {n}"
    assert max(ids.values()) == 1, [k for k, v in ids.items() if v > 1][:5]
    assert env.sql("SELECT state, count(*) FROM deliveries GROUP BY state") == [("sent", n)]


def test_hundred_sighups_during_5000_deliveries(env_factory, sink):
    env = env_factory(smtp_port=sink.port, extra_conf=(
        "[coursed]\ntick_interval = 1s\n[delivery]\nbatch = 40\n"))
    env.conf.write_text(env.conf.read_text().replace("timeout = 30s\n", "timeout = 30s\nsessions = 2\n"
                                                     "messages_per_session = 20\n"))
    write_course(env.courses, "test", 2, schedule="FREQ=DAILY")
    env.ctl("init", now=NOW)
    populate(env.db, 5000, "test")
    alive, rc, err, at_last = run_with_reloads(env, sink, 5000, 100)
    assert alive, f"coursed died during the reloads: {rc}\n{err[-3000:]}"
    assert rc == 0, err[-3000:]
    assert at_last < 5000, "the reloads came after the run, not during it"
    # signals that arrive together coalesce, and a reload waits for the rounds in flight
    assert err.count("reloaded") >= 30, err[-3000:]
    check_once_each(env, sink, 5000)


def test_sighups_during_deliveries_over_starttls_and_auth(env_factory, tmp_path):
    """The same over STARTTLS + AUTH (where a reload used to crash libESMTP's
    SASL plugin): a server that speaks both, 30 reloads during 600 lessons."""
    key, crt = make_cert(tmp_path)
    sink = AuthSink(key, crt, "courses", "s3cret pass")
    sink.start()
    try:
        (tmp_path / "pw").write_text("s3cret pass\n")
        os.chmod(tmp_path / "pw", 0o600)
        env = env_factory(extra_conf=(f"[smtp]\nhost = localhost\nport = {sink.port}\nstarttls = required\n"
                                      f"ca_file = {crt}\nuser = courses\npassword_file = {tmp_path / 'pw'}\n"
                                      "timeout = 10s\nsessions = 2\nmessages_per_session = 10\n"
                                      "[coursed]\ntick_interval = 1s\n[delivery]\nbatch = 20\n"))
        write_course(env.courses, "test", 2, schedule="FREQ=DAILY")
        env.ctl("init", now=NOW)
        populate(env.db, 600, "test")
        alive, rc, err, at_last = run_with_reloads(env, sink, 600, 30)
    finally:
        sink.stop()
    assert alive, f"coursed died during the reloads: {rc}\n{err[-3000:]}"
    assert rc == 0, err[-3000:]
    assert err.count("reloaded") >= 10, err[-3000:]
    assert at_last < 600, "the reloads came after the run, not during it"
    check_once_each(env, sink, 600)
    assert all(ok and tls for _, ok, tls in sink.logins), "a login failed or went outside TLS"


def get(url, data=None):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def one_click(msg):
    url = [u.strip(" <>") for u in str(msg["List-Unsubscribe"]).split(",") if "https://" in u][0]
    return url.replace("https://courses.example.org", "")


def test_reload_changes_relay_templates_course_and_key(env_factory, tmp_path):
    with Sink() as first, Sink() as second:
        port = free_port()
        env = env_factory(smtp_port=first.port, http_port=port,
                          extra_conf="[coursed]\ntick_interval = 1s\n")
        templates = env.dir / "templates"
        shutil.copytree(REPO / "templates", templates)
        conf = env.conf.read_text().replace(f"templates = {REPO / 'templates'}", f"templates = {templates}")
        env.conf.write_text(conf)
        write_course(env.courses, "test", 1, schedule="FREQ=DAILY")
        env.ctl("init", now=NOW)
        env.ctl("sub", "add", "ann@example.org", now=NOW)
        env.ctl("sub", "add", "bob@example.org", now=NOW)
        env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
        p = subprocess.Popen([COURSED, "-d", "-c", str(env.conf), "--now", NOW], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while not first.lessons("ann@example.org") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert first.lessons("ann@example.org"), "lesson 1 did not reach ann before the reload"
            old_link = one_click(first.lessons("ann@example.org")[0]["msg"])
            # the operator's edits: relay, a template, the lesson, the key
            env.conf.write_text(env.conf.read_text().replace(f"port = {first.port}", f"port = {second.port}"))
            txt = templates / "lesson.txt"
            txt.write_text(txt.read_text() + "\nTEMPLATE-MARK-2\n")
            lesson = env.courses / "test" / "lessons" / "01-step-1.md"
            lesson.write_text(lesson.read_text().replace("This is lesson", "COURSE-MARK-2: this is lesson"))
            keyfile = env.dir / "secret.key"
            keyfile.unlink()
            keyfile.write_bytes(os.urandom(32).hex().encode() + b"\n")
            os.chmod(keyfile, 0o600)
            p.send_signal(signal.SIGHUP)
            time.sleep(1.5)          # the loop reloads between ticks (tick_interval = 1s)
            env.ctl("enroll", "bob@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
            deadline = time.monotonic() + 20
            while not second.lessons("bob@example.org") and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.05)
            got = second.lessons("bob@example.org")
            assert got, "bob's lesson did not reach the new relay"
            assert not first.lessons("bob@example.org"), "bob's lesson went to the old relay"
            text = got[0]["msg"].as_string()
            assert "TEMPLATE-MARK-2" in text and "COURSE-MARK-2" in text
            # the pages run on the snapshot delivery used: the new key's link works ...
            status, page = get(f"http://127.0.0.1:{port}{one_click(got[0]['msg'])}", b"List-Unsubscribe=One-Click")
            assert status == 200, page
            # ... and the old key's link is no longer ours
            status, page = get(f"http://127.0.0.1:{port}{old_link}", b"List-Unsubscribe=One-Click")
            assert status in (400, 404), (status, page)
            states = dict(env.sql("SELECT s.email, e.state FROM enrollments e JOIN subscribers s"
                                  " ON s.id = e.subscriber_id"))
            assert states["bob@example.org"] == "stopped"
            assert states["ann@example.org"] != "stopped"
        finally:
            alive = p.poll() is None
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=30)
        assert alive, err[-3000:]
        assert "reloaded" in err, err[-3000:]
