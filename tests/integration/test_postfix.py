"""coursed behind a real Postfix, wired with the lines the README shows
(contrib/postfix/): coursed delivers through Postfix (relayhost = its
port), and Postfix pipes the course domain's mail to the real coursectl
inbound. Subscribers live at people.test (Postfix relays to an SMTP sink),
local.test is Postfix's own domain where every user is unknown (a genuine
DSN), slow.test answers 451 to everything (a genuine delay warning).

A "remote" client connects from 127.0.0.2 (loopback, but outside
mynetworks), as subscribers and remote MTAs do. Skipped, saying why, where
Postfix cannot start (not installed, not root)."""
import json
import os
import smtplib
import subprocess
import tempfile
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import COURSECTL, COURSED, REPO, Env, write_course
from postfix import CONTRIB, Postfix, Unavailable
from smtpsink import Sink

UTC = timezone.utc
USER = "nobody"            # the pipe may not run as root; the test's coursed files are this user's
DOMAIN = "courses.example.org"


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_user():
    import pwd
    pw = pwd.getpwnam(USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class Setup:
    def __init__(self, env, pf, sink, slow, ctl_bin, daemon_bin):
        self.env, self.pf, self.sink, self.slow = env, pf, sink, slow
        self.ctl_bin, self.daemon_bin = str(ctl_bin), str(daemon_bin)

    @property
    def now(self):
        """The real time: the pipe Postfix runs has no fake clock, so the
        test's own commands agree with it."""
        return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)

    def ctl(self, *args, now=None, check=True, env=None):
        """coursectl as the pipe's user, so that every file stays that user's."""
        cmd = [self.ctl_bin, "-c", str(self.env.conf), "--now", iso(now or self.now), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, **as_user())
        assert not check or p.returncode == 0, f"{cmd} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def tick(self, now):
        cmd = [self.daemon_bin, "-d", "-c", str(self.env.conf), "--once", "--now", iso(now)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **as_user())
        assert p.returncode == 0, f"{cmd} -> {p.returncode}\n{p.stdout}\n{p.stderr}"

    def sql(self, query, *params):
        """Read the database as its owner (a root reader could leave a
        root-owned -shm file that the pipe cannot write)."""
        code = ("import json, sqlite3, sys\n"
                "con = sqlite3.connect(sys.argv[1])\n"
                "print(json.dumps(con.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()))\n")
        p = subprocess.run(["/usr/bin/python3", "-c", code, str(self.env.db), query, json.dumps(params)],
                           capture_output=True, text=True, timeout=30, **as_user())
        assert p.returncode == 0, p.stderr
        return [tuple(r) for r in json.loads(p.stdout)]

    def remote_send(self, frm, rcpts, raw):
        """SMTP to Postfix from 127.0.0.2: a client outside mynetworks."""
        with smtplib.SMTP("127.0.0.1", self.pf.port, source_address=("127.0.0.2", 0), timeout=30) as s:
            s.ehlo("client.people.test")
            refused = s.sendmail(frm, rcpts, raw)
            assert refused == {}, refused


@pytest.fixture(scope="module")
def mta():
    root = Path(tempfile.mkdtemp(prefix="coursed-postfix-"))
    os.chmod(root, 0o755)
    sink = Sink()
    slow = Sink(decide=lambda env, msg, attempt: "451 4.3.0 slow.test: try again later")
    pf = None
    try:
        sink.start()
        slow.start()
        home = root / "coursed"
        home.mkdir()
        # The pipe's user may not reach the checkout (CI's may sit under
        # /root): it runs copies of the programs and templates.
        bindir = root / "bin"
        bindir.mkdir()
        ctl_bin, daemon_bin = bindir / "coursectl", bindir / "coursed"
        shutil.copy2(COURSECTL, ctl_bin)
        shutil.copy2(COURSED, daemon_bin)
        shutil.copytree(REPO / "templates", root / "templates")
        # coursed submits to Postfix: the relayhost is Postfix's port (set below)
        pf = Postfix(root / "postfix", ctl_bin, home / "coursed.conf", USER,
                     {"people.test": f"smtp:[127.0.0.1]:{sink.port}",
                      "slow.test": f"smtp:[127.0.0.1]:{slow.port}"})
        try:
            if not shutil.which("postfix"):
                raise Unavailable("Postfix is not installed (apt-get install postfix)")
            env = Env(home, smtp_port=1)          # rewritten once Postfix has its port
            write_course(env.courses, "first", 3, schedule="FREQ=DAILY", tz="UTC")
            write_course(env.courses, "second", 3, schedule="FREQ=DAILY", tz="UTC")
            port = pf.start()
        except Unavailable as e:
            pytest.skip(f"no Postfix on loopback: {e}")
        env.conf.write_text(env.conf.read_text().replace("port = 1\n", f"port = {port}\n")
                            .replace(f"templates = {REPO / 'templates'}\n", f"templates = {root / 'templates'}\n"))
        assert f"templates = {root / 'templates'}" in env.conf.read_text()
        subprocess.run(["chown", "-R", f"{USER}:", str(home)], check=True)
        s = Setup(env, pf, sink, slow, ctl_bin, daemon_bin)
        s.ctl("init")
        yield s
    finally:
        if pf:
            pf.stop()
        slow.stop()
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)


def subscribe_mail(frm, to, msgid):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: subscribe\r\nMessage-ID: {msgid}\r\n"
            f"Date: Tue, 1 Dec 2026 12:00:00 +0000\r\n\r\nsubscribe\r\n").encode()


def test_readme_quotes_the_postfix_lines_verbatim():
    readme = (REPO / "README.md").read_text()
    for name in ("main.cf.snippet", "master.cf.snippet", "transport"):
        text = (CONTRIB / name).read_text()
        assert text in readme, f"README.md does not quote contrib/postfix/{name} verbatim"


def test_remote_subscribe_then_confirm_through_postfix(mta):
    mta.remote_send("ana@people.test", [f"first@{DOMAIN}"],
                    subscribe_mail("Ana <ana@people.test>", f"first@{DOMAIN}", "<pf-sub-1@people.test>"))
    mta.pf.wait(lambda: mta.sql("SELECT e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                                " WHERE s.email = 'ana@people.test'") == [("pending",)],
                "the subscribe mail to reach coursectl inbound")
    mta.tick(mta.now)
    req = mta.pf.wait(lambda: mta.sink.system("ana@people.test"), "the confirmation request")[0]
    reply_to = req["msg"]["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith("first+confirm-")
    # a relay that shouts: the token survives the case folding
    reply = (f"From: ana@people.test\r\nTo: {reply_to.upper()}\r\nSubject: Re: {req['msg']['Subject']}\r\n"
             "Message-ID: <pf-conf-1@people.test>\r\n\r\nyes\r\n").encode()
    mta.remote_send("ana@people.test", [reply_to.upper()], reply)
    mta.pf.wait(lambda: mta.sql("SELECT e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                                " WHERE s.email = 'ana@people.test'") == [("active",)],
                "the confirmation to enroll")
    assert mta.sql("SELECT status FROM subscribers WHERE email = 'ana@people.test'") == [("active",)]


def test_one_mail_to_two_course_addresses_through_postfix(mta):
    rcpts = [f"first@{DOMAIN}", f"second@{DOMAIN}"]
    mta.remote_send("bo@people.test", rcpts,
                    subscribe_mail("bo@people.test", ", ".join(rcpts), "<pf-both-1@people.test>"))
    q = ("SELECT e.course, e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
         " WHERE s.email = 'bo@people.test' ORDER BY e.course")
    mta.pf.wait(lambda: mta.sql(q) == [("first", "pending"), ("second", "pending")],
                "a subscribe request in both courses")
    mta.pf.wait(lambda: mta.pf.queued() == [], "Postfix's queue to empty")


def lesson_to(mta, email, course):
    """Lesson 1 of course to email, handed to Postfix at its slot; returns
    the sent deliveries."""
    mta.ctl("sub", "add", email)
    mta.ctl("enroll", email, course, "--no-welcome")
    slot = json.loads(mta.ctl("schedule", email, "--json").stdout)[0]["utc"]
    mta.tick(datetime.strptime(slot, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
    return mta.sql("SELECT d.id FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
                   " JOIN subscribers s ON s.id = e.subscriber_id WHERE s.email = ? AND d.state = 'sent'", email)


def test_unknown_local_user_dsn_marks_bounced(mta):
    email = "nobody-here@local.test"
    assert lesson_to(mta, email, "first"), "no lesson was handed to Postfix"
    # local(8) refuses the unknown user; the DSN goes to bounces+TOKEN@,
    # through the coursed pipe, into coursectl inbound
    mta.pf.wait(lambda: mta.sql("SELECT status FROM subscribers WHERE email = ?", email) == [("bounced",)],
                "the DSN to mark the subscriber bounced")
    assert mta.sql("SELECT e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                   " WHERE s.email = ?", email) == [("stopped",)]
    results = [r for (r,) in mta.sql("SELECT result FROM inbound")]
    assert any("5.1.1" in r or "bounce" in r for r in results), results


def test_delayed_dsn_is_soft(mta):
    email = "waiting@slow.test"
    assert lesson_to(mta, email, "first"), "no lesson was handed to Postfix"
    try:
        # Postfix defers (451), and after delay_warning_time sends a
        # genuine "delayed" DSN to the VERP address
        q = ("SELECT count(*) FROM events v JOIN subscribers s ON s.id = v.subscriber_id"
             " WHERE s.email = ? AND v.kind = 'bounce-soft'")
        mta.pf.wait(lambda: mta.sql(q, email) != [(0,)], "the delay warning to count as a soft bounce",
                    timeout=90)
        assert mta.slow.refused, "the slow domain was never tried"
        assert mta.sql("SELECT status FROM subscribers WHERE email = ?", email) == [("active",)]
        assert mta.sql("SELECT e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                       " WHERE s.email = ?", email) == [("active",)]
    finally:
        mta.pf.purge()                              # the deferred lesson goes nowhere


def doctor_postfix(mta, etc):
    """coursectl doctor's Postfix lines, read from the instance in etc
    (MAIL_CONFIG, as for every Postfix command): {name: ok}."""
    p = mta.ctl("doctor", check=False, env=dict(os.environ, MAIL_CONFIG=str(etc)))
    lines = {}
    for line in p.stdout.splitlines():
        m = line.split(None, 1)
        if len(m) == 2 and m[0] in ("ok", "FAIL") and m[1].startswith("postfix"):
            name = " ".join(m[1].split()[:2])
            lines[name] = m[0] == "ok"
    return p, lines


def test_doctor_reads_the_local_postfix(mta):
    p, lines = doctor_postfix(mta, mta.pf.etc)
    assert lines == {"postfix relay_domains": True, "postfix transport": True, "postfix transport_maps": True,
                     "postfix recipient": True, "postfix recipient_delimiter": True}, p.stdout
    # the README's lines before this fix: no relay_domains, no recipient limit
    old = mta.pf.root.parent / "old-etc"            # where the pipe's user may read
    old.mkdir()
    os.chmod(old, 0o755)
    main = (mta.pf.etc / "main.cf").read_text()
    main = "\n".join(l for l in main.splitlines()
                     if not l.startswith(("relay_domains", "coursed_destination_recipient_limit")))
    (old / "main.cf").write_text(main + "\n")
    shutil.copy(mta.pf.etc / "master.cf", old / "master.cf")
    p, lines = doctor_postfix(mta, old)
    assert p.returncode != 0
    assert lines == {"postfix relay_domains": False, "postfix transport": True, "postfix transport_maps": True,
                     "postfix recipient": False, "postfix recipient_delimiter": True}, p.stdout
    assert "454 Relay access denied" in p.stdout and "coursed_destination_recipient_limit" in p.stdout
    # a master.cf without the pipe, the map still pointing to it
    master = "\n".join(l for l in (mta.pf.etc / "master.cf").read_text().splitlines()
                       if not l.startswith(("coursed ", "  flags=")))
    (old / "master.cf").write_text(master + "\n")
    p, lines = doctor_postfix(mta, old)
    assert lines["postfix transport"] is False and lines["postfix transport_maps"] is False, p.stdout


def test_internal_error_defers_and_never_bounces(mta):
    """coursectl inbound's exit 75 (here: the database cannot be written)
    is a temporary failure for Postfix: the mail waits in the queue, the
    sender gets no bounce, and it is handled once the fault is gone."""
    db = mta.env.db
    mode = db.stat().st_mode
    os.chmod(db, 0o444)
    try:
        before = len(mta.pf.log_text())
        mta.remote_send("cy@people.test", [f"first@{DOMAIN}"],
                        subscribe_mail("cy@people.test", f"first@{DOMAIN}", "<pf-tempfail-1@people.test>"))
        deferred = mta.pf.wait(lambda: [l for l in mta.pf.log_text()[before:].splitlines()
                                        if "relay=coursed" in l and "status=deferred" in l],
                               "the mail to be deferred")
        assert "readonly database" in deferred[0], deferred[0]
        assert [m for m in mta.pf.queued() if m["sender"] == "cy@people.test"], "the mail left the queue"
    finally:
        # SQLite gave the -wal and -shm files it made the db's mode
        for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if f.exists():
                os.chmod(f, mode)
    q = ("SELECT e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
         " WHERE s.email = 'cy@people.test'")
    mta.pf.wait(lambda: mta.sql(q) == [("pending",)], "the deferred mail to be handled after the fault")
    assert not [m for m in mta.sink.messages if m["rcpts"] == ["cy@people.test"]
                and "Undelivered" in str(m["msg"]["Subject"])], "the sender got a bounce"
