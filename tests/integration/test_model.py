"""Stateful, randomized, model-based test of coursed: the REAL coursed and
coursectl, a real SMTP sink (aiosmtpd on 127.0.0.1, port from the kernel),
a real SQLite file and the fake clock, compared after every step with the
small reference model in model.py.

What a run does
---------------
A seeded generator (`random.Random(seed)`, no hypothesis) picks 30-60 steps.
Each step is plain data (a tuple, printed on failure) and carries `dt`, the
fake-clock advance before it.  Steps:

  add EMAIL [ZONE] [force]   coursectl sub add (with/without --tz, --force after an erasure)
  enroll EMAIL COURSE        coursectl enroll (with/without --no-welcome)
  import ROWS                coursectl import of a small CSV (email,name,tz,course)
  subscribe EMAIL COURSE     `coursectl inbound` (the MTA pipe) with "subscribe [tz=Z]"
  confirm EMAIL COURSE VIA   reply to the confirmation's Reply-To, or POST its /c/ link
  cmd EMAIL COURSE WHAT      inbound pause / pause for N days / resume / leave / unsubscribe /
                             the List-Unsubscribe mailto token / next / tz ZONE / status
  oneclick EMAIL COURSE      RFC 8058 POST of a received lesson's List-Unsubscribe URL
  mode EMAIL M               the sink answers that recipient's lessons 250 / 451 4.3.0 /
                             550 5.1.1 / 550 5.7.1 from now on (system mails always 250)
  tick                       one `coursed --once` at now+dt (dt up to 3 weeks: an outage)
  walk DT EVERY              `coursed --once` every EVERY (<= 6h) over DT (up to a week)
  hang                       one tick against a server that accepts and never speaks ([smtp] timeout 2s)
  sighup WHAT                running daemon: max_per_day changed, or the text of mwf's lesson
                             at position 2 (a new version, same slugs); SIGHUP, wait for
                             "reloaded" (and the version applied), SIGTERM
  edit COURSE ORDER HOW      the author edits the course: ORDER is the whole new list of slugs
                             (a lesson inserted, as new-K or a removed slug back; one removed;
                             reordered; or all three), written as lessons/NN-slug.md; then
                             applied HOW: hup (idle daemon, SIGHUP), busy (daemon at a slot,
                             SIGHUP while the sink holds the round's lessons: that round goes
                             out as composed, the new version applies after it; every lesson
                             gets a new text revision so that each copy tells which snapshot
                             composed it) or restart (the next `coursed --once` applies it at
                             start; after a kill -9 its rows are still 'sending')
  kill DELAY                 running daemon against a slow sink, kill -9 after DELAY s
  retry K / cancel K         coursectl retry / cancel of the K-th failed|deferred (|queued) delivery
  move EMAIL COURSE N        coursectl move --to-lesson N
  erase EMAIL                coursectl sub rm --erase
  quiet DT                   `coursectl schedule --json` for everyone, then only ticks (at
                             every scheduled instant plus random ones) with all replies 250

After the steps a final phase sets every reply to 250, ticks whenever the
database says something is due (bounded: 400 ticks, 200 days), then runs
`coursed --until-done --speed` which must exit 0 within 30 s.

Invariants (the names are what a failure reports and what can be tolerated)
--------------------------------------------------------------------------
  no-lesson-twice       a Message-ID (SLUG.eID.COURSE: the lesson's identity, whatever its
                        position) arrives once; after a kill -9 each row left 'sending'
                        allows one more copy (counted and bounded separately:
                        kill_dups <= kill_inflight)
  order                 each arriving lesson is the first one still owed in the course's
                        current order (cancel skips a lesson, move makes N the next one),
                        except the one lesson in flight when an edit was applied, which
                        goes first (docs/course-edits.md rule 10)
  removed-got-lesson    a lesson no longer in the course arrives (rule 4)
  lesson-lost           (final) every enrollment the model has active is completed and got
                        every lesson it was owed
  until-done            (final) coursed --until-done exits 0 in bounded time
  max-per-day-enrollment   at most max_per_day lessons of one enrollment per local day
                        ("most lessons one subscriber gets in one local day", config.c)
                        (lessons sent by `next` or `coursectl retry` do not count)
  slot-time             a lesson arrives at a slot of its course (local time, weekday) in
                        the subscriber's zone (any zone held since the previous lesson), or
                        within late_grace after it; the first lesson may instead come at
                        first_within after activation (+late_grace); `next`/`retry`
                        lessons are exempt
  stuck                 an 'active' enrollment has next_send_at set XOR exactly one delivery
                        queued/sending/deferred
  schedule-vs-delivered    in a quiet stretch, per enrollment with nothing in flight, the
                        lessons delivered are those `coursectl schedule --json` listed, at
                        the listed instants
  schedule-vs-delivered-inflight   the same for enrollments that had a lesson in flight
                        (deferred) when the stretch began
  bounced-got-lesson    after a 550 5.1.1 no lesson in any course (same tick excepted: the
                        other sessions of that round were claimed already)
  paused-got-lesson     after a 5.7.1 (all courses paused), a pause command or give-up
  left-got-lesson       after leave/unsubscribe/one-click of that course
  erased-got-lesson     after sub rm --erase
  model-state           enrollment states, next lesson and bounced status in the database
                        are what the model predicts; nothing unexpected is enrolled
  db-integrity          PRAGMA integrity_check = ok, foreign_key_check empty
  cli                   a command the model expects to succeed exits 0 (and vice versa)
  sighup / http         the daemon reloads and stays up; the pages answer as documented
  lesson-text           every copy carries the text revision of the version that runs when it
                        is composed (rule 6); copies of the round on the wire at a reload
                        carry the old one (rule 10)
  edit-apply            after a SIGHUP with changed course files, coursed logs the version
                        applied
  reopen-left           an edit reopens a completed course of a subscriber who left every
                        course or bounced (found by this test, fixed)
  removed-sending       (found by this test, fixed) a restart applies an edit that removes a
                        lesson a kill -9 left 'sending': strict, `stuck` and then `cli`
                        (every tick fails) report it; tolerated, the step recovers the
                        rows with a tick before it changes the files

What an edit does to people already enrolled is Model.apply_edit (model.py),
written from docs/course-edits.md: the model knows lessons by slug, each
course's current order and its versions.  At the moment of the apply it is
told which enrollments have a lesson in flight (a row queued, sending or
deferred: read from the database just before the reload, or for a reload
during a round, those rows less the ones that round answered for good); that
lesson counts for the position (inserted before it: behind) and stays next.

Where the model adopts what the database says (documented, not guessed):
the subscriber's zone after a subscribe/confirm (guessing from Date is the
parser's business), the lessons an enrollment owes when a re-subscribe is
confirmed (those of the running version with no row, and its next lesson),
the subscribers' status at an edit (the model does not track who left
everything), and active->paused when a delivery failed after give_up (4xx
for longer than [delivery] give_up: the exact boundary is not modelled).

Not covered: `coursectl pause --until` (the inbound "pause for N days" takes
its place), [inbound] maildir, relays, AUTH/TLS.

On failure the test prints the seed and the shortest step list it found:
delta debugging (remove chunks, then single steps) re-running each candidate
from a fresh environment, within COURSED_MODEL_SHRINK_SECONDS (default 150).

Running
-------
  COURSED_BIN=.../build/daemon/coursed COURSECTL_BIN=.../build/admin/coursectl \\
      /usr/bin/python3 -m pytest -q -x tests/integration/test_model.py

Default: seeds 1-6 x 40 steps (about 60-120 s on 2 cores when nothing fails;
a failure adds up to COURSED_MODEL_SHRINK_SECONDS of shrinking).  Environment:
  COURSED_MODEL_SEED=N        run only that seed (a failure prints it)
  COURSED_MODEL_STEPS=N       steps per seed (default 40)
  COURSED_MODEL_MINUTES=M     soak: keep running new seeds (from a random start) until M
                              minutes are up; stops at the first failure
  COURSED_MODEL_TOLERATE=a,b  invariants to report but not fail on ("known" = the list
                              KNOWN_FAILING below, "open" = OPEN_BUGS: found and not fixed
                              yet, each with an xfail test in test_course_edit_regress.py);
                              default: strict, nothing tolerated
  COURSED_MODEL_SHRINK_SECONDS=S   shrink budget (0: no shrinking)
  COURSED_MODEL_STEPS_FILE=F  replay the steps in F (a Python list literal, as printed)

Soak:
  COURSED_MODEL_MINUTES=30 /usr/bin/python3 -m pytest -q -s tests/integration/test_model.py
(a soak prints, per seed, how the edits were applied, and at the end what the
edits did to people: inserted ahead / behind, removed while owed or in
flight, completed at once, reopened ... so that a soak shows which rules it
reached)
"""
import ast
import csv
import email
import email.policy
import io
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone, time as dtime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from conftest import COURSED, COURSECTL, REPO
from model import Course, Enr, Model, Sub
from smtpsink import Sink, free_port

UTC = timezone.utc
T0 = int(datetime(2026, 5, 3, 12, 0, tzinfo=UTC).timestamp())   # a Sunday
DOMAIN = "courses.example.org"
GRACE = 6 * 3600
GIVE_UP = 86400
EMAILS = [f"p{i}@example.org" for i in range(7)]
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC", "Asia/Tokyo"]
# mwf keeps the defaults of an edit (on_insert_behind = skip, completed stay
# completed); daily has on_insert_behind = send and completed_get_new = true.
COURSES = [
    Course("mwf", 5, (0, 2, 4), dtime(9, 0), "Europe/Berlin", 0, True),
    Course("daily", 4, tuple(range(7)), dtime(20, 0), "America/New_York", 12 * 3600, False,
           insert_behind_send=True, completed_get_new=True),
]
MAX_LESSONS = 9                    # an edit never makes a course longer (NN- keeps two digits anyway)
REPLIES = {"ok": None, "451": "451 4.3.0 try later", "511": "550 5.1.1 no such user",
           "571": "550 5.7.1 refused by policy"}

# Invariants the build at f7b1b3f violates (one line each: the reading of the
# cause); COURSED_MODEL_TOLERATE=known tolerates exactly these.  Strict by default.
# Open bugs of the build the model found (each with a plain test in
# test_course_edit_regress.py, xfail until fixed): COURSED_MODEL_TOLERATE=open
# tolerates them.
OPEN_BUGS = frozenset({
    # none open: reopen-left and removed-sending were fixed in lib/version.c
    # (their plain tests in test_course_edit_regress.py pass)
})

KNOWN_FAILING = frozenset({
    "max-per-day-enrollment",   # counted by queued_at: a lesson recovered after kill -9 plus the next one
    "slot-time",                # late_grace is applied when planning, not to a lesson re-sent or retried late
    "schedule-vs-delivered",    # `schedule` ignores max_per_day (first_within lesson and a slot on one day)
    "model-state",              # a 550 5.1.1 during SMTP leaves paused courses paused (README: every course stopped)
    "stuck",                    # two 5.7.1 in one round: an active enrollment with nothing planned
    "until-done",               # ...so --until-done never exits
    "lesson-lost",              # ...and its lessons never come
})


def tolerated():
    raw = os.environ.get("COURSED_MODEL_TOLERATE", "")
    names = {n.strip() for n in raw.split(",") if n.strip()}
    if "known" in names:
        names |= KNOWN_FAILING
    if "open" in names:
        names |= OPEN_BUGS
    return names


def iso(t):
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dt_of(t):
    return datetime.fromtimestamp(t, UTC)


class Violation(Exception):
    def __init__(self, invariant, message, step_index):
        super().__init__(f"[{invariant}] at step {step_index}: {message}")
        self.invariant, self.message, self.step_index = invariant, message, step_index


class Hanging:
    """Accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns, self.stopped = [], False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        self.t.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


# ------------------------------------------------------------------ world
class World:
    """One fresh installation: folder, config, courses, database, sink."""

    def __init__(self, tmp):
        self.dir = Path(tmp)
        self.courses_dir = self.dir / "courses"
        self.conf = self.dir / "coursed.conf"
        self.db = self.dir / "state.db"
        self.now = T0
        self.mpd = 1
        self.modes = {}
        self.quiet = False
        self.slow = False
        self.obs = []                      # ("ok"|"refused", rcpt, msg, reply) in arrival order
        self.sink = Sink(decide=self.decide)
        self.sink.start()
        self.hang = None
        self.http_port = free_port()
        self.daemon = None
        self.hold = None                   # threading.Event: lessons wait in the sink until it is set
        self.held = threading.Event()      # set when a lesson is waiting on `hold`
        self.order = {c.slug: list(c.lessons) for c in COURSES}   # the lessons/ folder, in order
        self.rev = {}                      # (course, slug) -> text revision in its file
        for c in COURSES:
            self.write_course(c)
        self.write_conf()
        self.ctl("init")

    # the sink's verdicts are a function of the steps (mode steps, quiet)
    def decide(self, envelope, msg, attempt):
        if self.slow:
            time.sleep(0.12)
        hold = self.hold
        if hold is not None and msg["X-Course-Lesson"]:
            self.held.set()
            hold.wait(1.5)                 # well inside [smtp] timeout (2 s)
        rcpt = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        verdict = None
        if msg["X-Course-Lesson"] and not self.quiet:
            verdict = REPLIES[self.modes.get(rcpt, "ok")]
        self.obs.append(("refused" if verdict else "ok", rcpt, msg, verdict))
        return verdict

    def write_course(self, c):
        d = self.courses_dir / c.slug / "lessons"
        d.mkdir(parents=True, exist_ok=True)
        extra = (f"first_within = {c.first_within // 3600}h\n" if c.first_within else "") + \
                ("allow_next = true\n" if c.allow_next else "") + \
                ("on_insert_behind = send\n" if c.insert_behind_send else "") + \
                ("completed_get_new = true\n" if c.completed_get_new else "")
        (self.courses_dir / c.slug / "course.ini").write_text(
            f"[course]\ntitle = Course {c.slug}\nschedule = {c.rrule()}\ntime = {c.at:%H:%M}\n"
            f"timezone = {c.tz}\nsource = a test\n{extra}")
        self.write_lessons(c.slug)

    def write_lessons(self, course):
        """The lessons/ folder as self.order says: NN-slug.md, nothing else."""
        d = self.courses_dir / course / "lessons"
        for f in d.glob("*.md"):
            f.unlink()
        for k, slug in enumerate(self.order[course], 1):
            (d / f"{k:02d}-{slug}.md").write_text(self.lesson_body(course, slug))

    def lesson_body(self, course, slug):
        return (f"Subject: Lesson {slug} of {course}\n\n"
                f"This is lesson **{slug}** of {course}. {rev_mark(self.rev.get((course, slug), 0))}\n")

    def write_conf(self, port=None):
        port = port or self.sink.port
        self.conf.write_text(
            "[coursed]\ndatabase = state.db\ncourses = courses\n"
            f"templates = {REPO / 'templates'}\ndomain = {DOMAIN}\n"
            "base_url = https://courses.example.org\ntick_interval = 1s\nstop_timeout = 2s\n"
            "[transport]\nkind = smtp\n"
            f"[smtp]\nhost = 127.0.0.1\nport = {port}\nstarttls = off\ntimeout = 2s\n"
            "sessions = 2\nmessages_per_session = 3\n"
            f"[pacing]\nlate_grace = {GRACE // 3600}h\nmax_per_day = {self.mpd}\n"
            f"[delivery]\nretry_first = 10m\nretry_max = 2h\ngive_up = {GIVE_UP // 3600}h\n"
            f"[http]\nlisten = 127.0.0.1:{self.http_port}\n")

    def ctl(self, *args, stdin=None):
        cmd = [COURSECTL, "-c", str(self.conf), "--now", iso(self.now)] + [str(a) for a in args]
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)

    def tick(self, at=None):
        at = self.now if at is None else at
        p = subprocess.run([COURSED, "-d", "-c", str(self.conf), "--once", "--now", iso(at)],
                           capture_output=True, timeout=120)
        if p.returncode != 0:
            raise Violation("cli", f"coursed --once at {iso(at)} -> {p.returncode}: "
                                   f"{p.stderr.decode(errors='replace')[-1500:]}", -1)
        return p

    def sql(self, q, *params):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(q, params).fetchall()
        finally:
            con.close()

    # a running daemon on the frozen clock, serving the pages
    def start_daemon(self, extra=()):
        self.daemon_log = open(self.dir / f"daemon-{time.monotonic_ns()}.log", "w+b")
        self.daemon = subprocess.Popen([COURSED, "-d", "-c", str(self.conf), "--now", iso(self.now), *extra],
                                       stdout=subprocess.DEVNULL, stderr=self.daemon_log)

    def wait_http(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                return False
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2).read()
                return True
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        return False

    def daemon_text(self):
        self.daemon_log.flush()
        return (self.daemon_log.name and Path(self.daemon_log.name).read_bytes()).decode(errors="replace")

    def stop_daemon(self):
        p, self.daemon = self.daemon, None
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.daemon_log.close()
        return p.returncode

    def post(self, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def close(self):
        if self.daemon is not None:
            self.daemon.kill()
            self.daemon.wait(timeout=10)
            self.daemon_log.close()
            self.daemon = None
        self.sink.stop()
        if self.hang:
            self.hang.stop()


def mail(frm, to, subject, body="", date="Mon, 4 May 2026 12:00:00 +0530"):
    mid = f"<{os.urandom(8).hex()}@client.example>"
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {mid}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


def lesson_ids(msg):
    """(course, slug, enrollment id) from the Message-ID <SLUG.eID[rR].COURSE@domain>."""
    mid = msg["Message-ID"].strip().strip("<>")
    local = mid.split("@")[0]
    slug, part_e, course = local.split(".", 2)
    return course, slug, int(part_e[1:].split("r")[0])


def rev_mark(r):
    """The text revision a lesson file carries (and so every copy composed from it)."""
    return f"Revision {r}."


def lesson_rev(msg):
    """The revision in a lesson's text (None: no marker)."""
    import re
    m = re.search(r"Revision (\d+)\.", msg.get_body(("plain",)).get_content())
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------ runner
class Run:
    def __init__(self, tmp, seed, tolerate):
        self.seed = seed
        self.rng = random.Random(seed)
        self.tol = tolerate
        self.w = World(tmp)
        self.m = Model(COURSES, GRACE, 1)
        self.obs_i = 0
        self.step_i = -1
        self.tolerated_seen = Counter()
        self.last_tick_at = None
        self.received_ids = Counter()
        self.bound = set()                 # eids bound to a model enrollment
        self.new_slugs = 0                 # generated "new-K" slugs
        self.pending_edit = None           # an edit applied by a reload while a round was on the wire
        self.prev_kind = None              # the kind of the step generated last
        self.edits_seen = Counter()        # how each edit was applied (reported per seed)

    # ----- reporting
    def violate(self, invariant, message):
        if invariant in self.tol:
            self.tolerated_seen[invariant] += 1
            return
        raise Violation(invariant, message, self.step_i)

    # ----- generation
    def gen(self):
        r, m = self.rng, self.m
        subs = [e for e, s in m.subs.items()]
        active_subs = [e for e, s in m.subs.items() if s.status == "active"]
        enrs = list(m.enr.keys())
        small = r.choice([0, 0, 60, 600, 3600, 4 * 3600])
        kinds = ["add"] * 8 + ["enroll"] * 10 + ["import"] * 3 + ["subscribe"] * 5 + ["confirm"] * 6 + \
                ["cmd"] * 12 + ["oneclick"] * 2 + ["mode"] * 7 + ["tick"] * 7 + ["walk"] * 14 + \
                ["hang"] * 2 + ["sighup"] * 2 + ["kill"] * 3 + ["retry"] * 4 + ["cancel"] * 3 + \
                ["move"] * 3 + ["erase"] * 2 + ["quiet"] * 5 + ["edit"] * 12
        k = r.choice(kinds)
        if self.prev_kind == "kill" and r.random() < 0.5:
            # an author's edit right after a crash, applied at the next start,
            # removing the lesson a round had on the wire (still 'sending')
            rows = sorted(self.w.sql("SELECT DISTINCT e.course, d.slug FROM deliveries d"
                                     " JOIN enrollments e ON e.id = d.enrollment_id WHERE d.state = 'sending'"))
            if rows:
                course, slug = r.choice(rows)
                order = [x for x in m.courses[course].lessons if x != slug]
                if order and len(order) < m.courses[course].n:
                    return ("edit", 0, course, tuple(order), "restart")
        if k in ("enroll", "cmd", "move", "oneclick") and not enrs and k != "enroll":
            k = "walk"
        if k == "enroll" and not active_subs:
            k = "add"
        if k == "add":
            em = r.choice(EMAILS)
            return ("add", small, em, r.choice(ZONES + [None, None]), em in m.erased and r.random() < 0.7)
        if k == "enroll":
            return ("enroll", small, r.choice(active_subs), r.choice(COURSES).slug, r.random() < 0.7)
        if k == "import":
            rows = tuple((em, r.choice(ZONES + [""]), r.choice(COURSES).slug)
                         for em in r.sample(EMAILS, r.randint(1, 3)))
            return ("import", small, rows)
        if k == "subscribe":
            return ("subscribe", small, r.choice(EMAILS), r.choice(COURSES).slug, r.choice(ZONES + [None]))
        if k == "confirm":
            pend = [key for key, e in m.enr.items() if e.state == "pending"]
            em, c = r.choice(pend) if pend else (r.choice(EMAILS), r.choice(COURSES).slug)
            return ("confirm", small, em, c, r.choice(["reply", "reply", "link"]))
        if k == "cmd":
            em, c = r.choice(enrs)
            what = r.choice(["pause", "pause", "pause for 3 days", "pause for 1 weeks", "resume", "resume",
                             "resume", "leave", "unsubscribe", "unsubscribe-token", "unsubscribe all",
                             "next", "next",
                             f"tz {r.choice(ZONES)}", "status"])
            return ("cmd", small, em, c, what)
        if k == "oneclick":
            em, c = r.choice(enrs)
            return ("oneclick", small, em, c)
        if k == "mode":
            pool = subs or EMAILS
            return ("mode", 0, r.choice(pool), r.choice(["ok", "ok", "451", "451", "511", "571"]))
        if k == "tick":
            return ("tick", r.choice([60, 600, 3600, 3 * 3600, 9 * 3600, 86400, 3 * 86400, 7 * 86400, 21 * 86400]))
        if k == "walk":
            return ("walk", 0, r.choice([86400, 2 * 86400, 4 * 86400, 7 * 86400]), r.choice([3600, 3 * 3600, 6 * 3600]))
        if k == "hang":
            return ("hang", small)
        if k == "sighup":
            return ("sighup", small, r.choice(["mpd", "text"]))
        if k == "edit":
            return self.gen_edit(small)
        if k == "kill":
            return ("kill", 0, round(r.uniform(0.2, 1.2), 2))
        if k in ("retry", "cancel"):
            return (k, small, r.randrange(100))
        if k == "move":
            em, c = r.choice(enrs)
            return ("move", small, em, c, r.randint(1, m.courses[c].n))
        if k == "erase":
            return ("erase", small, r.choice(subs or EMAILS))
        return ("quiet", 0, r.choice([2 * 86400, 5 * 86400, 9 * 86400]), r.randrange(1 << 30))

    def gen_edit(self, small):
        """("edit", dt, COURSE, NEW-ORDER, HOW): the whole new list of slugs is
        in the step, so that a shrunk list still means one thing."""
        r, m = self.rng, self.m
        c = m.courses[r.choice([c.slug for c in COURSES])]
        order = list(c.lessons)
        ops = ["insert", "remove", "reorder", "mix"]
        op = r.choice(ops + ["insert", "reorder"])
        if op == "remove" and len(order) < 2:
            op = "insert"
        if op == "insert" and len(order) >= MAX_LESSONS:
            op = "remove"
        # where people stand: the next lesson of each one in the course (an
        # edit at, just before or just after it is where the rules differ)
        at = sorted({m.next_slug(e) for e in m.enr.values()
                     if e.course == c.slug and e.state in ("active", "paused") and m.next_slug(e)})
        # ...above all a lesson in flight (deferred, queued): it counts for
        # the position and keeps going (rules 3 and 10)
        flying = sorted({slug for slug, in self.w.sql(
            "SELECT d.slug FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
            " WHERE e.course = ? AND d.state IN ('queued','sending','deferred')", c.slug)} & set(order))
        if flying and r.random() < 0.6:
            at = flying

        def insert():
            back = sorted(c.removed)
            if back and r.random() < 0.35:
                slug = r.choice(back)            # a lesson of an earlier version comes back
            else:
                self.new_slugs += 1
                slug = f"new-{self.new_slugs}"
            if at and r.random() < 0.5:
                order.insert(order.index(r.choice(at)) + r.choice([0, 0, 1]), slug)
            else:
                order.insert(r.randint(0, len(order)), slug)

        def remove():
            order.remove(r.choice(at) if at and r.random() < 0.5 else r.choice(order))

        def reorder():
            before = list(order)
            while order == before and len(order) > 1:
                if r.random() < 0.5:
                    i, j = r.sample(range(len(order)), 2)
                    order[i], order[j] = order[j], order[i]
                elif r.random() < 0.5:
                    order.insert(r.randint(0, len(order) - 1), order.pop(r.randrange(len(order))))
                else:
                    r.shuffle(order)
        if op == "insert":
            insert()
        elif op == "remove":
            remove()
        elif op == "reorder":
            reorder()
        else:
            if len(order) < MAX_LESSONS:
                insert()
            if len(order) > 2:
                remove()
            reorder()
        how = r.choice(["hup", "hup", "busy", "busy", "restart"])
        return ("edit", small, c.slug, tuple(order), how)

    def opening(self):
        """A start that gets lessons flowing, drawn from the same seed."""
        r = self.rng
        out = []
        for em in r.sample(EMAILS, 3):
            out.append(("add", 0, em, r.choice(ZONES + [None]), False))
            for c in r.sample([c.slug for c in COURSES], r.randint(1, 2)):
                out.append(("enroll", 0, em, c, True))
        return out

    # ----- execution
    def run(self, steps=None, n_steps=40, record=None):
        """Runs given steps, or generates n_steps; record gets each step executed."""
        if steps is None:
            planned = self.opening()
            i = 0
            while i < n_steps:
                st = planned.pop(0) if planned else self.gen()
                self.prev_kind = st[0]
                record.append(st)
                self.step_i = i
                self.execute(st)
                i += 1
        else:
            for i, st in enumerate(steps):
                if record is not None:
                    record.append(st)
                self.step_i = i
                self.execute(st)
        self.step_i = "final"
        self.final()

    def execute(self, st):
        kind, dt = st[0], st[1]
        self.w.now += dt
        getattr(self, "do_" + kind)(*st[2:])
        self.after_step()

    # ----- steps
    def expect_rc(self, p, ok, what):
        if (p.returncode == 0) != ok:
            self.violate("cli", f"{what}: rc {p.returncode}, model expected {'success' if ok else 'failure'}: "
                                f"{p.stdout.decode(errors='replace')[-500:]} {p.stderr.decode(errors='replace')[-500:]}")

    def do_add(self, em, zone, force):
        m = self.m
        args = ["sub", "add", em] + (["--tz", zone] if zone else []) + (["--force"] if force else [])
        p = self.w.ctl(*args)
        ok = em not in m.subs and (em not in m.erased or force)
        self.expect_rc(p, ok, "sub add")
        if ok and p.returncode == 0:
            m.subs[em] = Sub(em, "active", zone, True, [(self.w.now, zone)])
            m.erased.discard(em)

    def do_enroll(self, em, course, welcome):
        m = self.m
        s = m.subs.get(em)
        if not s or s.status != "active":
            return                                   # not generated for these; a no-op when shrunk
        # enroll refuses an address that left every course or bounced (README)
        st = self.w.sql("SELECT status FROM subscribers WHERE email = ?", em)
        p = self.w.ctl("enroll", em, course, *([] if welcome else ["--no-welcome"]))
        ok = (em, course) not in m.enr and bool(st) and st[0][0] in ("active", "pending")
        self.expect_rc(p, ok, "enroll")
        if ok and p.returncode == 0:
            e = Enr(em, course)
            m.enr[(em, course)] = e
            m.activate(e, self.w.now)

    def do_import(self, rows):
        m = self.m
        # an import does not enroll a known address that left every course
        # (unsubscribed) or bounced (README): the model reads that status
        def status(em):
            r = self.w.sql("SELECT status FROM subscribers WHERE email = ?", em)
            return r[0][0] if r else None
        good = [(em, z, c) for em, z, c in rows
                if em not in m.erased and (em not in m.subs or (m.subs[em].status == "active"
                                                               and status(em) in (None, "active")))]
        if not good:
            return
        path = self.w.dir / f"import-{self.step_i}.csv"
        buf = io.StringIO()
        wr = csv.writer(buf)
        wr.writerow(["email", "name", "tz", "course"])
        for em, z, c in good:
            wr.writerow([em, "Imported One", z, c])
        path.write_text(buf.getvalue())
        p = self.w.ctl("import", path)
        self.expect_rc(p, True, "import")
        if p.returncode != 0:
            return
        for em, z, c in good:
            if em not in m.subs:
                m.subs[em] = Sub(em, "active", z or None, True, [(self.w.now, z or None)])
            if (em, c) not in m.enr:
                e = Enr(em, c)
                m.enr[(em, c)] = e
                m.activate(e, self.w.now)

    def inbound(self, raw, sender, rcpt):
        p = self.w.ctl("inbound", "--sender", sender, "--recipient", rcpt, stdin=raw)
        if p.returncode != 0:
            self.violate("cli", f"inbound to {rcpt} -> {p.returncode}: {p.stderr.decode(errors='replace')[-800:]}")
        return p

    def do_subscribe(self, em, course, zone):
        m = self.m
        body = f"subscribe {course}" + (f" tz={zone}" if zone else "") + " Some Body"
        self.inbound(mail(em, f"{course}@{DOMAIN}", "subscribe", body), em, f"{course}@{DOMAIN}")
        s = m.subs.get(em)
        if s is None:
            s = m.subs[em] = Sub(em, "pending", None, False, [])
        s.zone_known = False                          # adopted after the step
        e = m.enr.get((em, course))
        if e and e.state in ("active", "paused", "completed"):
            return                  # a status mail answers, whoever asks (a bounced one who finished too)
        if e and e.state == "pending" and self.w.now - e.confirm_at < 86400:
            return
        if e is None:
            e = m.enr[(em, course)] = Enr(em, course)
            e.owed = set(m.courses[course].lessons)   # a re-subscribe keeps what it owed
        e.state, e.confirm_at = "pending", self.w.now

    def confirmation(self, em, course):
        """The latest confirmation mail to em for course (from the sink)."""
        for rec in reversed(self.w.sink.system(em)):
            rt = rec["msg"]["Reply-To"]
            if rt and f"{course}+confirm-" in str(rt):
                return rec["msg"]
        return None

    def do_confirm(self, em, course, via):
        m = self.m
        c = self.confirmation(em, course)
        if c is None:
            return                                   # nothing arrived to confirm
        sent = int(parsedate_to_datetime(c["Date"]).timestamp())
        e = m.enr.get((em, course))
        status, page = 200, ""
        if via == "reply":
            to = c["Reply-To"].addresses[0].addr_spec
            self.inbound(mail(em, to, "Re: " + str(c["Subject"]), "yes\r\n\r\n> Please confirm"), em, to)
        else:
            body = c.get_body(("plain",)).get_content()
            url = next(w for w in body.split() if "/c/" in w).strip("<>()")
            self.w.tick()
            self.last_tick_at = self.w.now
            self.process_obs()
            self.w.start_daemon()
            try:
                if not self.w.wait_http():
                    self.violate("http", "coursed did not serve its pages")
                    return
                status, page = self.w.post(url[url.index("/c/"):], b"confirm=yes")
            finally:
                rc = self.w.stop_daemon()
            if rc != 0:
                self.violate("http", f"coursed exited {rc} after serving the confirm page")
        # the model: a pending enrollment becomes active if the token is
        # valid (the latest one, not expired); others change nothing
        if e is None or e.state != "pending":
            return
        if self.w.now - sent > 72 * 3600 + 60:
            return
        if self.w.now - sent > 72 * 3600 - 60:
            e.state = "adopt"                        # at the expiry boundary: either
            return
        if via == "link" and status != 200:
            self.violate("http", f"confirm POST -> {status}: {page[:300]}")
        owed, pointer = self.db_owed(em, course)
        m.subs[em].status = "active"
        m.erased.discard(em)
        m.activate(e, self.w.now, owed, pointer)

    def db_owed(self, em, course):
        """What the database says an enrollment owes (adopted where the model
        documents it: a confirmed re-subscribe goes on where it stood): the
        lessons of the running version with no row, and the next lesson
        (whose own row a pause, stop or failure may have left)."""
        c = self.m.courses[course]
        row = self.w.sql("SELECT e.id, e.next_lesson FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                         " WHERE s.email = ? AND e.course = ?", em, course)
        if not row:
            return set(c.lessons), None
        eid, nl = row[0]
        have = {lesson for lesson, in self.w.sql("SELECT lesson FROM deliveries WHERE enrollment_id = ?", eid)}
        owed = {slug for k, slug in enumerate(c.lessons, 1) if k not in have}
        pointer = c.lessons[nl - 1] if 1 <= nl <= c.n else None
        if pointer:
            owed.add(pointer)
        return owed, pointer

    def do_cmd(self, em, course, what):
        m = self.m
        e = m.enr.get((em, course))
        to, subject = f"{course}@{DOMAIN}", what
        if what == "unsubscribe-token":
            got = [r for r in self.w.sink.lessons(em) if lesson_ids(r["msg"])[0] == course]
            if not got:
                return
            mailto = [u.strip(" <>") for u in str(got[-1]["msg"]["List-Unsubscribe"]).split(",")
                      if "mailto:" in u][0]
            to, subject = mailto[len("mailto:"):].split("?")[0], "unsubscribe"
            token_eid = lesson_ids(got[-1]["msg"])[2]
        inflight = True
        if what.startswith("next") and e and e.eid:
            row = self.w.sql("SELECT next_send_at FROM enrollments WHERE id = ?", e.eid)
            inflight = not row or row[0][0] is None
        self.inbound(mail(em, to, subject, "thanks"), em, to)
        s = m.subs.get(em)
        if what == "unsubscribe-token":
            t = m.byid.get(token_eid)
            if t is not None and t.state not in ("erased",) and t.state != "stopped":
                t.state, t.stopped_at, t.stop_cause = "stopped", self.w.now, "left by token"
                t.reason = "subscriber"
            return
        if what == "unsubscribe all" and s is not None:
            for (who, _), t in m.enr.items():
                if who == em and t.state in ("pending", "active", "paused"):
                    t.state, t.stopped_at, t.stop_cause = "stopped", self.w.now, "left all"
                    t.reason = "subscriber"
            return
        if e is None or s is None:
            return
        if what.startswith("pause"):
            if e.state in ("active", "paused"):
                e.state, e.paused_at = "paused", self.w.now
                e.paused_until = None
                e.reason = "subscriber"     # the person's pause wins over a failure's hold
                if " for " in what:
                    n, unit = what.split()[2:4]
                    e.paused_until = self.w.now + int(n) * (7 if unit.startswith("week") else 1) * 86400
        elif what == "resume":
            if e.state == "paused":
                e.state, e.paused_until, e.reason = "active", None, ""
                if not e.owed:
                    # nothing left (the operator cancelled the last lesson
                    # while it was paused): the resume completes it
                    e.state = "completed"
        elif what in ("leave", "unsubscribe"):
            if e.state != "stopped":
                e.state, e.stopped_at, e.stop_cause = "stopped", self.w.now, f"left by '{what}'"
                e.reason = "subscriber"
        elif what == "next":
            c = m.courses[course]
            if c.allow_next and e.state == "active" and e.owed and not inflight:
                e.exempt[m.next_slug(e)] = "next"
        elif what.startswith("tz "):
            m.set_zone(em, what[3:], self.w.now)

    def do_oneclick(self, em, course):
        m = self.m
        got = [r for r in self.w.sink.lessons(em) if lesson_ids(r["msg"])[0] == course]
        if not got:
            return
        msg = got[-1]["msg"]
        eid = lesson_ids(msg)[2]
        url = [u.strip(" <>") for u in str(msg["List-Unsubscribe"]).split(",") if u.strip(" <>").startswith("https")][0]
        path = url.replace("https://courses.example.org", "")
        self.w.tick()
        self.last_tick_at = self.w.now
        self.process_obs()
        self.w.start_daemon()
        try:
            if not self.w.wait_http():
                self.violate("http", "coursed did not serve its pages")
                return
            status, page = self.w.post(path, b"List-Unsubscribe=One-Click")
        finally:
            rc = self.w.stop_daemon()
        if rc != 0:
            self.violate("http", f"coursed exited {rc} after the one-click POST")
        t = m.byid.get(eid)
        # After an erasure SQLite may give the deleted enrollment's id to a
        # new one of someone else: the old link must not touch that (the
        # token names the address too; 404 is the documented answer).
        if t is None or t.state == "erased" or t.email != em:
            return
        if status != 200:
            self.violate("http", f"one-click POST {path} -> {status}: {page[:300]}")
        if t.state != "stopped":
            t.state, t.stopped_at, t.stop_cause = "stopped", self.w.now, "one-click"
            t.reason = "subscriber"

    def do_mode(self, em, mode):
        self.w.modes[em] = mode

    def do_tick(self):
        self.w.tick()
        self.last_tick_at = self.w.now

    def do_walk(self, span, every):
        end = self.w.now + span
        t = self.w.now
        while t < end:
            t = min(t + every, end)
            self.w.now = t
            self.w.tick()
            self.last_tick_at = t
            self.process_obs()

    def do_hang(self):
        if self.w.hang is None:
            self.w.hang = Hanging()
        self.w.write_conf(port=self.w.hang.port)
        try:
            t0 = time.monotonic()
            self.w.tick()
            if time.monotonic() - t0 > 60:
                self.violate("cli", "a tick against a hanging server took over 60 s")
        finally:
            self.w.write_conf()
        self.last_tick_at = self.w.now

    def do_sighup(self, what):
        w, m = self.w, self.m
        w.tick()
        self.last_tick_at = w.now
        self.process_obs()
        w.start_daemon()
        try:
            if not w.wait_http():
                self.violate("sighup", "coursed did not start")
                return
            applied = None
            if what == "mpd":
                w.mpd = 2 if w.mpd == 1 else 1
                w.write_conf()
                m.mpd = w.mpd
                m.mpd_history.append((w.now, w.mpd))
            else:
                # a new text of the second lesson of mwf: a new version with
                # the same slugs (everyone who has not had it gets the new text)
                order = list(w.order["mwf"])
                slug = order[min(1, len(order) - 1)]
                fly = self.fly_now()
                w.rev[("mwf", slug)] = w.rev.get(("mwf", slug), 0) + 1
                w.write_lessons("mwf")
                self.model_edit("mwf", order, fly)
                applied = "mwf"
            self.hup_and_wait(applied)
        finally:
            rc = w.stop_daemon()
        if rc != 0:
            self.violate("sighup", f"coursed exited {rc} after SIGHUP")

    def hup_and_wait(self, course=None, release=None):
        """SIGHUP the running daemon and wait for its 'reloaded' line and,
        when a course's files changed, for that version to be applied
        (lessons go out on a new snapshot only after that). release: called
        right after the signal (the edit during a round lets the sink go on)."""
        w = self.w
        before = w.daemon_text().count(f"course {course}: version") if course else 0
        reloads = w.daemon_text().count("reloaded")
        w.daemon.send_signal(signal.SIGHUP)
        if release:
            release()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and w.daemon.poll() is None:
            text = w.daemon_text()
            if text.count("reloaded") > reloads and (
                    not course or text.count(f"course {course}: version") > before):
                break
            time.sleep(0.05)
        text = w.daemon_text()
        if text.count("reloaded") <= reloads:
            self.violate("sighup", f"no 'reloaded' line after SIGHUP: {text[-800:]}")
        if course and text.count(f"course {course}: version") <= before:
            self.violate("edit-apply", f"no 'course {course}: version N applied' after SIGHUP: {text[-1500:]}")
        if not w.wait_http(5):
            self.violate("sighup", "pages gone after SIGHUP")

    # ----- editing a course
    def inflight_rows(self):
        """enrollment id -> (slug, state, message id) of its lesson in flight."""
        return {eid: (slug, st, mid) for eid, slug, st, mid in self.w.sql(
            "SELECT enrollment_id, slug, state, message_id FROM deliveries"
            " WHERE state IN ('queued','sending','deferred')")}

    def fly_now(self):
        return {eid: slug for eid, (slug, _, _) in self.inflight_rows().items()}

    def write_edit(self, course, order, bump):
        """The author's edit: course/lessons/ rewritten as NN-slug.md in the
        new order. bump: every lesson, old and new, gets a new text revision
        (so that each copy tells which snapshot composed it)."""
        w = self.w
        old = list(w.order[course])
        w.order[course] = list(order)
        if bump:
            for slug in set(old) | set(order):
                w.rev[(course, slug)] = w.rev.get((course, slug), 0) + 1
        w.write_lessons(course)

    def model_edit(self, course, order, fly):
        """The model learns of the new version at the moment coursed applies it."""
        m, w = self.m, self.w
        for (c, slug), r in w.rev.items():
            if c == course:
                m.rev[(c, slug)] = r
        status = dict(w.sql("SELECT email, status FROM subscribers"))
        m.apply_edit(course, list(order), fly, w.now, status)

    def next_due(self, course):
        """A time when a lesson of `course` is due: its earliest planned slot
        (within 9 days), else now."""
        row = self.w.sql("SELECT min(next_send_at) FROM enrollments WHERE state = 'active' AND course = ?", course)
        t = row[0][0] if row else None
        if t is None or t <= self.w.now or t > self.w.now + 9 * 86400:
            return self.w.now
        return t + 60

    def do_edit(self, course, order, how):
        """Edit the course (insert, remove, reorder lessons; the step names the
        whole new order) and have coursed apply it:
          hup      running daemon, idle: files rewritten, SIGHUP
          busy     running daemon at a slot, a round on the wire (the sink holds
                   the lessons): SIGHUP during the round, which finishes as it
                   was composed (rule 10); the new version applies after it
          restart  no daemon: the next `coursed --once` applies it at start
                   (right after a kill -9 its rows are still 'sending')"""
        w = self.w
        order = list(order)
        if len(set(order)) != len(order) or not order or len(order) > MAX_LESSONS:
            return
        changed = order != w.order[course] or how == "busy"
        self.edits_seen[how] += 1
        if how == "restart":
            self.process_obs()
            gone = [(eid, slug) for eid, (slug, st, _) in self.inflight_rows().items()
                    if st == "sending" and slug in w.order[course] and slug not in order
                    and self.m.byid.get(eid) is not None and self.m.byid[eid].course == course]
            if gone and "removed-sending" in self.tol:
                # the open bug, tolerated: it is not run into (strict, the
                # invariants see it: stuck, then every tick fails); the rows
                # are recovered by a tick before the files change
                self.tolerated_seen["removed-sending"] += 1
                w.tick()
                self.process_obs()
            fly = self.fly_now()
            self.write_edit(course, order, bump=False)
            self.model_edit(course, order, fly)
            w.tick()
            self.last_tick_at = w.now
            return
        if how == "hup":
            w.tick()
            self.last_tick_at = w.now
            self.process_obs()
        else:
            w.now = self.next_due(course)
            w.held.clear()
            w.hold = threading.Event()
        obs_start = len(w.obs)
        w.start_daemon()
        try:
            if not w.wait_http():
                self.violate("edit", "coursed did not start")
                return
            due = how == "busy" and w.sql(
                "SELECT 1 FROM enrollments WHERE state = 'active' AND next_send_at <= ?1"
                " UNION ALL SELECT 1 FROM deliveries WHERE state IN ('queued','deferred','sending')"
                " AND next_attempt_at <= ?1", w.now)
            if how == "hup" or not due or not w.held.wait(4):
                # idle: nothing goes out between now and the apply
                if w.hold is not None:
                    w.hold.set()
                    w.hold = None
                    time.sleep(0.3)          # a tick that was on its way to the sink
                self.process_obs()
                fly = self.fly_now()
                self.write_edit(course, order, bump=(how == "busy"))
                self.model_edit(course, order, fly)
                self.hup_and_wait(course if changed else None)
            else:
                self.edits_seen["busy-held"] += 1
                self.write_edit(course, order, bump=True)
                rows = {}

                def release():
                    # the flag is up: nothing more is claimed; what is 'sending'
                    # now goes out on the old snapshot, the rest waits for the new
                    time.sleep(0.25)
                    rows.update(self.inflight_rows())
                    w.hold.set()
                    w.hold = None
                self.pending_edit = {"course": course, "order": order, "rows": rows, "obs_start": obs_start}
                self.hup_and_wait(course, release=release)
            self.quiesce()
        finally:
            if w.hold is not None:
                w.hold.set()
                w.hold = None
            rc = w.stop_daemon()
        self.last_tick_at = w.now
        if rc != 0:
            self.violate("edit", f"coursed exited {rc} after the edit: {w.daemon_text()[-800:] if w.daemon_log else ''}")
        if self.pending_edit:
            self.process_obs()
            if self.pending_edit:
                self.apply_pending(len(w.obs))

    def quiesce(self, limit=10):
        """Wait until the running daemon has nothing on the wire and the sink
        has been quiet for half a second."""
        w = self.w
        deadline = time.monotonic() + limit
        n, since = len(w.obs), time.monotonic()
        while time.monotonic() < deadline and w.daemon.poll() is None:
            time.sleep(0.1)
            if len(w.obs) != n:
                n, since = len(w.obs), time.monotonic()
                continue
            if time.monotonic() - since >= 0.5 and not w.sql("SELECT 1 FROM deliveries WHERE state = 'sending'"):
                return

    def apply_pending(self, upto):
        """The edit of a reload during a round, applied in the model after the
        copies that round composed: what was 'sending' when the flag went up
        and got a final answer is had; queued, deferred or answered 4xx is in
        flight."""
        pe, self.pending_edit = self.pending_edit, None
        w = self.w
        last = {}
        for kind, rcpt, msg, reply in w.obs[pe["obs_start"]:upto]:
            if msg["X-Course-Lesson"]:
                last[msg["Message-ID"].strip()] = "final" if kind == "ok" or reply.startswith("5") else "again"
        fly = {}
        for eid, (slug, st, mid) in pe["rows"].items():
            if st != "sending" or last.get(f"<{mid}>", "again") == "again":
                fly[eid] = slug
        self.model_edit(pe["course"], pe["order"], fly)

    def do_kill(self, delay):
        w, m = self.w, self.m
        # jump to the next Monday/Wednesday/Friday 09:00 Berlin so that lessons are due
        t = dt_of(w.now)
        for _ in range(8):
            t = t + timedelta(days=1)
            if t.weekday() in (0, 2, 4):
                break
        from zoneinfo import ZoneInfo
        slot = datetime.combine(t.date(), dtime(9, 0), tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
        w.now = int(slot.timestamp()) + 60
        w.slow = True
        try:
            w.start_daemon()
            time.sleep(delay)
            w.daemon.kill()
            w.daemon.wait(timeout=10)
            w.daemon_log.close()
            w.daemon = None
        finally:
            w.slow = False
        self.last_tick_at = w.now
        rows = w.sql("SELECT message_id FROM deliveries WHERE state = 'sending'")
        for (mid,) in rows:
            key = f"<{mid}>"
            m.dup_allow[key] = m.dup_allow.get(key, 0) + 1
        m.kill_inflight += len(rows)

    def failing_rows(self, states):
        q = ",".join("'%s'" % s for s in states)
        return self.w.sql(f"SELECT d.id, d.message_id, d.state, d.enrollment_id, d.slug FROM deliveries d"
                          f" WHERE d.state IN ({q}) ORDER BY d.id")

    def do_retry(self, k):
        rows = self.failing_rows(["failed", "deferred"])
        if not rows:
            return
        did, mid, state, eid, lesson = rows[k % len(rows)]
        p = self.w.ctl("retry", did)
        self.expect_rc(p, True, f"retry {did}")
        e = self.m.byid.get(eid)
        if e is None:
            return
        e.exempt[lesson] = "retry"            # (failing_rows names lessons by slug)
        # retry re-activates only what a failure took out (README): the
        # enrollment, and every course of the address the same bounce or
        # policy refusal took out; a pause or leave by the person stands.
        failure = getattr(e, "reason", "") in ("bounced", "policy", "gave-up")
        if state == "failed" and failure:
            cause = self.m.fail_cause.get(f"<{mid}>")
            if cause == "511":
                s = self.m.subs.get(e.email)
                if s:
                    s.status = "active"
            same = [x for x in self.m.enrollments_of(e.email)
                    if x is e or (e.reason in ("bounced", "policy") and getattr(x, "reason", "") == e.reason)]
            for x in same:
                if x.state in ("paused", "stopped"):
                    x.state, x.paused_until, x.reason = "active", None, ""

    def do_cancel(self, k):
        rows = self.failing_rows(["queued", "failed", "deferred"])
        if not rows:
            return
        did, mid, state, eid, lesson = rows[k % len(rows)]
        p = self.w.ctl("cancel", did)
        self.expect_rc(p, True, f"cancel {did}")
        e = self.m.byid.get(eid)
        if e is None or not e.owed or lesson != self.m.next_slug(e):
            return
        e.owed.discard(lesson)
        if e.pointer == lesson:
            e.pointer = None
        if not e.owed and e.state == "active":
            e.state = "completed"

    def do_move(self, em, course, n):
        e = self.m.enr.get((em, course))
        # a subscriber who left every course (unsubscribed) or bounced is
        # not mailed again by an operator's move (README)
        st = self.w.sql("SELECT status FROM subscribers WHERE email = ?", em)
        c = self.m.courses[course]
        # a row a kill -9 left 'sending' (no daemon runs between steps) is
        # refused as busy until a tick queues it again (README)
        sending = e is not None and bool(self.w.sql(
            "SELECT 1 FROM deliveries WHERE enrollment_id = ? AND state = 'sending'", e.eid))
        p = self.w.ctl("move", em, course, "--to-lesson", n)
        ok = e is not None and bool(st) and st[0][0] in ("active", "pending") and 1 <= n <= c.n
        if ok and sending:
            if p.returncode != 75:
                self.violate("cli", f"move with a lesson left 'sending': rc {p.returncode}, expected 75")
            return
        self.expect_rc(p, ok, "move")
        if e is None or p.returncode != 0:
            return
        # the lessons from position n of the running version are owed again
        # (or still); those before it are had (skip markers)
        e.owed = set(c.lessons[n - 1:])
        e.pointer = None
        for k in list(e.exempt):
            if k in e.owed:
                del e.exempt[k]
        if e.state == "completed":
            e.state = "active"

    def do_erase(self, em):
        m = self.m
        p = self.w.ctl("sub", "rm", em, "--erase")
        self.expect_rc(p, em in m.subs, "sub rm --erase")
        if em not in m.subs or p.returncode != 0:
            return
        del m.subs[em]
        for key in [k for k in m.enr if k[0] == em]:
            e = m.enr.pop(key)
            e.state = "erased"
            e.stopped_at = self.w.now
        m.erased.add(em)

    def do_quiet(self, span, seed):
        w, m = self.w, self.m
        w.quiet = True
        try:
            w.tick()
            self.last_tick_at = w.now
            self.process_obs()
            start, end = w.now, w.now + span
            planned, inflight = {}, set()
            for em in list(m.subs):
                p = w.ctl("schedule", em, "--json")
                if p.returncode != 0:
                    continue
                for row in json.loads(p.stdout or b"[]"):
                    t = int(datetime.strptime(row["utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
                    if start < t <= end:
                        order = m.courses[row["course"]].lessons
                        slug = order[row["lesson"] - 1] if 1 <= row["lesson"] <= len(order) else row["lesson"]
                        planned.setdefault((em, row["course"]), []).append((slug, t))
            for eid, in w.sql("SELECT e.id FROM enrollments e WHERE e.state = 'active' AND e.next_send_at IS NULL"
                              " UNION SELECT enrollment_id FROM deliveries WHERE state IN ('queued','deferred','sending')"):
                inflight.add(eid)
            r = random.Random(seed)
            ticks = {t for lst in planned.values() for _, t in lst}
            ticks |= {r.randint(start + 1, end) for _ in range(8)} | {end}
            mark = {key: len(e.received) for key, e in m.enr.items()}
            for t in sorted(ticks):
                w.now = t
                w.tick()
                self.last_tick_at = t
                self.process_obs()
            for key, e in m.enr.items():
                if e.state == "erased":
                    continue
                got = [(n, t) for t, n in e.received[mark.get(key, 0):] if start < t <= end]
                want = planned.get(key, [])
                if got != want:
                    inv = "schedule-vs-delivered-inflight" if e.eid in inflight else "schedule-vs-delivered"
                    fmt = lambda l: [(n, iso(t)) for n, t in l]
                    self.violate(inv, f"{key}: schedule said {fmt(want)}, delivered {fmt(got)}")
            w.now = end
        finally:
            w.quiet = False

    # ----- after every step
    def after_step(self):
        self.process_obs()
        if self.last_tick_at is not None:
            self.m.auto_resume(self.last_tick_at)
        self.bind_and_check_db()

    def process_obs(self):
        w, m = self.w, self.m
        if self.obs_i < len(w.obs):
            self.bind_ids()
        while self.obs_i < len(w.obs):
            kind, rcpt, msg, reply = w.obs[self.obs_i]
            if not msg["X-Course-Lesson"]:
                self.obs_i += 1
                continue
            course, n, eid = lesson_ids(msg)
            pe = self.pending_edit
            if pe and course == pe["course"] and lesson_rev(msg) == w.rev.get((course, n), 0):
                # the first copy composed on the new snapshot: the round that
                # was on the wire at the SIGHUP is over, the version applied
                self.apply_pending(self.obs_i)
            self.obs_i += 1
            t = int(parsedate_to_datetime(msg["Date"]).timestamp())
            m.auto_resume(t)
            e = m.byid.get(eid)
            if e is None:
                self.bind_ids()
                e = m.byid.get(eid)
            if e is None:
                self.violate("model-state", f"a lesson for enrollment {eid} the model does not know")
                continue
            if kind == "refused":
                self.on_refused(e, n, t, reply, msg)
            else:
                self.on_lesson(e, n, t, msg)

    def on_refused(self, e, n, t, reply, msg):
        m = self.m
        s = m.subs.get(e.email)
        mid = msg["Message-ID"].strip()
        if reply.startswith("550 5.1.1"):
            m.fail_cause[mid] = "511"
            if s:
                s.status, s.bounced_at = "bounced", t
            for x in m.enrollments_of(e.email):
                if x.state in ("active", "paused", "pending"):
                    x.state, x.stopped_at, x.stop_cause = "stopped", t, "bounced 5.1.1"
                    x.reason = "bounced"
        elif reply.startswith("550 5.7.1"):
            m.fail_cause[mid] = "571"
            if s:
                s.policy_at = t
            for x in m.enrollments_of(e.email):
                if x.state == "active":
                    x.state, x.paused_at, x.paused_until = "paused", t, None
                    x.reason = "policy"

    def on_lesson(self, e, n, t, msg):
        m = self.m
        mid = msg["Message-ID"].strip()
        self.received_ids[mid] += 1
        c = m.courses[e.course]
        who = f"{e.email} {e.course} lesson {n} at {iso(t)}"
        if n not in e.owed:
            if m.dup_allow.get(mid, 0) > 0:
                m.dup_allow[mid] -= 1
                m.kill_dups += 1
                return
            if self.received_ids[mid] > 1:
                self.violate("no-lesson-twice", f"{who}: {mid} arrived {self.received_ids[mid]} times")
            elif n not in c.lessons:
                self.violate("removed-got-lesson", f"{who}: not in the version that runs {c.lessons} "
                                                   f"(versions {c.versions})")
            else:
                self.violate("order", f"{who}: not owed (owed {self.owed_str(e)}, versions {c.versions})")
            return
        want = m.next_slug(e)
        if n != want:
            self.violate("order", f"{who}: lesson {want} is owed first (owed {self.owed_str(e)}, "
                                  f"versions {c.versions})")
        s = m.subs.get(e.email)
        if e.state == "erased":
            self.violate("erased-got-lesson", f"{who}: erased at {iso(e.stopped_at)}")
        elif s and s.status == "bounced" and s.bounced_at is not None and s.bounced_at < t:
            self.violate("bounced-got-lesson", f"{who}: bounced (5.1.1) at {iso(s.bounced_at)}")
        elif e.state == "stopped" and e.stopped_at is not None and e.stopped_at < t:
            inv = "bounced-got-lesson" if e.stop_cause.startswith("bounced") else "left-got-lesson"
            self.violate(inv, f"{who}: stopped ({e.stop_cause}) at {iso(e.stopped_at)}")
        elif e.state == "paused" and e.paused_at is not None and e.paused_at < t:
            self.violate("paused-got-lesson", f"{who}: paused at {iso(e.paused_at)}")
        elif e.state == "pending":
            self.violate("model-state", f"{who}: the enrollment is pending")
        # timing
        zone = m.zone_of(e)
        exempt = e.exempt.pop(n, None)
        if not exempt:
            zones = list(dict.fromkeys(e.zones_since + [zone]))
            ok = any(c.on_slot(dt_of(t), z, GRACE) for z in zones)
            first = not e.received_since_activation()
            if not ok and first and c.first_within:
                ok = e.activated_at <= t <= e.activated_at + c.first_within + GRACE
            if not ok:
                from zoneinfo import ZoneInfo
                loc = [dt_of(t).astimezone(ZoneInfo(z)).strftime("%a %Y-%m-%d %H:%M %Z") for z in zones]
                self.violate("slot-time", f"{who}: {loc} is no slot of {c.rrule()} {c.at:%H:%M} "
                                          f"(nor within {GRACE // 3600}h after one)"
                                          + (f"; activated {iso(e.activated_at)}" if first else ""))
            self.check_per_day(e, n, t, zone)
        want_rev = m.rev.get((e.course, n), 0)
        if lesson_rev(msg) != want_rev:
            self.violate("lesson-text", f"{who}: text revision {lesson_rev(msg)}, the version that runs "
                                        f"has {want_rev}")
        e.received.append((t, n))
        e.counted = getattr(e, "counted", [])
        if not exempt:
            e.counted.append(t)
        e.owed.discard(n)
        if e.pointer == n:
            e.pointer = None
        e.zones_since = [zone]
        if not e.owed and e.state in ("active", "paused", "stopped"):
            if e.state == "active":
                e.state = "completed"

    def owed_str(self, e):
        c = self.m.courses[e.course]
        return [s for s in c.lessons if s in e.owed] + sorted(e.owed - set(c.lessons)) + \
            ([f"pointer {e.pointer}"] if e.pointer else [])

    def check_per_day(self, e, n, t, zone):
        from zoneinfo import ZoneInfo
        m = self.m
        z = ZoneInfo(zone)
        day = dt_of(t).astimezone(z).date()
        mpd = m.mpd_at(t)
        same = [u for u in getattr(e, "counted", []) if dt_of(u).astimezone(z).date() == day]
        if len(same) + 1 > mpd:
            self.violate("max-per-day-enrollment",
                         f"{e.email} {e.course} lesson {n}: {len(same) + 1} lessons on local day {day} "
                         f"({zone}), at {[iso(u) for u in same + [t]]}; max_per_day {mpd}")
        # max_per_day is per course (README "Pacing"): two courses are two
        # streams, so there is no check over all courses of a subscriber.

    def bind_ids(self):
        m = self.m
        for eid, em, course in self.w.sql(
                "SELECT e.id, s.email, e.course FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"):
            known = m.byid.get(eid)
            if known is not None and known.state != "erased" and (known.email, known.course) == (em, course):
                continue
            # new, or an id SQLite reused after an erasure (INTEGER PRIMARY KEY without AUTOINCREMENT)
            e = m.enr.get((em, course))
            if e is None:
                self.violate("model-state", f"enrollment {eid} ({em}, {course}) exists; the model has none")
                continue
            if e.eid is not None and e.eid != eid:
                self.violate("model-state", f"({em}, {course}) is enrollment {eid}, was {e.eid}")
            e.eid = eid
            m.byid[eid] = e

    def bind_and_check_db(self):
        w, m = self.w, self.m
        self.bind_ids()
        if w.sql("PRAGMA integrity_check") != [("ok",)]:
            self.violate("db-integrity", f"integrity_check: {w.sql('PRAGMA integrity_check')}")
        fk = w.sql("PRAGMA foreign_key_check")
        if fk:
            self.violate("db-integrity", f"foreign_key_check: {fk[:5]}")
        # nobody stuck
        for eid, em, course, nsa, inflight in w.sql(
                "SELECT e.id, s.email, e.course, e.next_send_at,"
                " (SELECT count(*) FROM deliveries d WHERE d.enrollment_id = e.id"
                "   AND d.state IN ('queued','sending','deferred'))"
                " FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id WHERE e.state = 'active'"):
            if (nsa is not None) + inflight != 1:
                self.violate("stuck", f"active enrollment {eid} ({em}, {course}): next_send_at "
                                      f"{iso(nsa) if nsa else None} and {inflight} deliveries in flight")
        # the model's state
        rows = {(em, c): (eid, st, nl) for eid, em, c, st, nl in w.sql(
            "SELECT e.id, s.email, e.course, e.state, e.next_lesson FROM enrollments e"
            " JOIN subscribers s ON s.id = e.subscriber_id")}
        sending = {eid for eid, in w.sql("SELECT DISTINCT enrollment_id FROM deliveries WHERE state = 'sending'")}
        subs = {em: (st, tz) for em, st, tz in w.sql("SELECT email, status, tz FROM subscribers")}
        for key, e in m.enr.items():
            if key not in rows:
                self.violate("model-state", f"{key}: the model has it {e.state}; the database has no such enrollment")
                continue
            eid, st, nl = rows[key]
            if eid in sending:
                continue
            if e.state == "adopt":
                e.state = st
                if st == "active":
                    m.activate(e, w.now, *self.db_owed(*key))
                continue
            if e.state == "active" and st == "paused":
                gave_up = w.sql("SELECT message_id FROM deliveries WHERE enrollment_id = ? AND state = 'failed'"
                                " AND (last_code IS NULL OR last_code < 500)", eid)
                if gave_up:
                    e.state, e.paused_at, e.paused_until = "paused", w.now, None
                    e.reason = "gave-up"
                    for (mid,) in gave_up:
                        m.fail_cause[f"<{mid}>"] = "giveup"
            if st != e.state and e.open_bug == "reopen-left" and st in ("active", "stopped"):
                # coursed reopened a completed course for a subscriber who left
                # every course or bounced; its claim then stops it as moot
                self.violate("reopen-left", f"{key} (enrollment {eid}): completed, the subscriber is not active; "
                                            f"an edit appended lessons and the database has it {st}")
                # tolerated: the model goes on from what the database says
                # (active: it is stopped at the claim, or mailed if the
                # subscriber is active again by then)
                m.activate(e, w.now, *self.db_owed(*key))
                e.open_bug = "reopen-left"
                if st == "stopped":
                    e.state, e.stopped_at, e.stop_cause, e.reason = "stopped", w.now, "moot", "subscriber"
                    e.open_bug = ""
                continue
            if st != e.state:
                self.violate("model-state", f"{key} (enrollment {eid}): database {st}, model {e.state}")
                e.state = st               # report once
            elif st in ("active", "paused"):
                want = m.next_pos(e)
                # A lesson that reached the server just before a kill -9 is
                # not known to be sent: it is in flight again (after late_grace
                # it waits for its next slot), and the database is behind.
                if nl != want:
                    again = w.sql("SELECT message_id FROM deliveries WHERE enrollment_id = ? AND lesson = ?"
                                  " AND state IN ('queued','sending','deferred')", eid, nl)
                    if again and m.dup_allow.get(f"<{again[0][0]}>", 0) > 0:
                        want = nl
                    # ... or it was queued again and then withdrawn (a pause,
                    # a policy hold): its copy reached the server, and the
                    # database still owes it (seed 178253474)
                    c = m.courses[key[1]]
                    slug = c.lessons[nl - 1] if 1 <= nl <= len(c.lessons) else None
                    if slug and any(k.startswith(f"<{slug}.e{eid}.") and n > 0 for k, n in m.dup_allow.items()):
                        want = nl
                if nl != want:
                    c = m.courses[key[1]]
                    self.violate("model-state", f"{key} (enrollment {eid}): next lesson {nl} in the database, "
                                                f"model {want} (owed {self.owed_str(e)}, versions {c.versions})")
        for em, s in m.subs.items():
            if em not in subs:
                if s.status != "pending" or any(k[0] == em for k in m.enr):
                    self.violate("model-state", f"subscriber {em} missing from the database")
                continue
            st, tz = subs[em]
            if (s.status == "bounced") != (st == "bounced"):
                self.violate("model-state", f"subscriber {em}: database {st}, model {s.status}")
                s.status = st
            if s.zone_known and (s.zone or None) != (tz or None):
                self.violate("model-state", f"subscriber {em}: zone {tz} in the database, model {s.zone}")
            if not s.zone_known:
                if tz != s.zone:
                    s.zones.append((w.now, tz))
                    for x in m.enrollments_of(em):
                        zz = tz or m.courses[x.course].tz
                        if zz not in x.zones_since:
                            x.zones_since.append(zz)
                s.zone = tz
            if s.status == "pending" and st == "active":
                s.status = "active"
        for em in subs:
            if em not in m.subs:
                self.violate("model-state", f"subscriber {em} in the database; the model has none")
        if m.kill_dups > m.kill_inflight:
            self.violate("no-lesson-twice", f"{m.kill_dups} duplicates after kills, {m.kill_inflight} in flight")

    # ----- the end: months of clock, then --until-done
    def final(self):
        w, m = self.w, self.m
        w.quiet = True
        start = w.now
        same = 0
        for _ in range(400):
            due = w.sql("SELECT min(t) FROM ("
                        " SELECT min(next_send_at) AS t FROM enrollments WHERE state = 'active'"
                        " UNION ALL SELECT min(next_attempt_at) FROM deliveries WHERE state IN ('queued','deferred','sending')"
                        " UNION ALL SELECT min(next_attempt_at) FROM outbox WHERE state IN ('queued','deferred','sending')"
                        " UNION ALL SELECT min(paused_until) FROM enrollments WHERE state = 'paused')")[0][0]
            if due is None or w.now - start > 200 * 86400:
                break
            if due <= w.now:
                same += 1
                if same > 2:                 # due but nothing moves: let an hour pass
                    due = w.now + 3600
                    same = 0
            else:
                same = 0
            w.now = max(due, w.now)
            w.tick()
            self.last_tick_at = w.now
            self.process_obs()
            m.auto_resume(w.now)
        self.bind_and_check_db()
        p = subprocess.Popen([COURSED, "-d", "-c", str(w.conf), "--now", iso(w.now), "--speed", "100000",
                              "--until-done"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=30)
            if p.returncode != 0:
                self.violate("until-done", f"coursed --until-done exited {p.returncode}: {err.decode(errors='replace')[-800:]}")
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate(timeout=10)
            busy = w.sql("SELECT e.id, s.email, e.course, e.state, e.next_lesson, e.next_send_at FROM enrollments e"
                         " JOIN subscribers s ON s.id = e.subscriber_id WHERE e.state = 'active'")
            self.violate("until-done", f"coursed --until-done still running after 30 s; active: {busy}")
        self.process_obs()
        for key, e in m.enr.items():
            if e.state == "active":
                self.violate("lesson-lost", f"{key} (enrollment {e.eid}) still owed {sorted(e.owed)} "
                                            f"after {(w.now - start) // 86400} more days")
        self.bind_and_check_db()


def _received_since_activation(self):
    return any(t >= self.activated_at for t, _ in self.received) if self.activated_at is not None else False


Enr.received_since_activation = _received_since_activation


# ------------------------------------------------------------------ driver
def run_once(seed, steps=None, n_steps=40, tolerate=frozenset()):
    """Runs in a fresh folder; returns (Violation or None, steps executed, run)."""
    record = []
    with tempfile.TemporaryDirectory(prefix="coursed-model-") as tmp:
        r = Run(tmp, seed, tolerate)
        try:
            r.run(steps=steps, n_steps=n_steps, record=record)
            return None, record, r
        except Violation as v:
            if v.step_index == -1:
                v.step_index = r.step_i
            return v, record, r
        finally:
            r.w.close()


def shrink(seed, steps, invariant, tolerate, budget):
    """Delta debugging: the shortest list found that still violates
    `invariant`, within `budget` seconds."""
    deadline = time.monotonic() + budget
    runs = 0

    def fails(cand):
        nonlocal runs
        runs += 1
        v, _, _ = run_once(seed, steps=cand, tolerate=tolerate)
        return v is not None and v.invariant == invariant

    best = list(steps)
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, progressed = 0, False
        while i < len(best) and time.monotonic() < deadline:
            cand = best[:i] + best[i + chunk:]
            if cand and fails(cand):
                best, progressed = cand, True
            else:
                i += chunk
        if not progressed:
            chunk //= 2
    return best, runs


def report(seed, v, steps, tolerate):
    budget = float(os.environ.get("COURSED_MODEL_SHRINK_SECONDS", "150"))
    failing = steps[:v.step_index + 1] if isinstance(v.step_index, int) else steps
    small, runs = (failing, 0)
    if budget > 0:
        small, runs = shrink(seed, failing, v.invariant, tolerate, budget)
    text = "\n".join(f"    {s!r}," for s in small)
    return (f"coursed model test failed: seed {seed}, invariant '{v.invariant}'\n{v}\n"
            f"shortest reproduction found ({len(small)} of {len(steps)} steps, {runs} shrink runs):\n"
            f"[\n{text}\n]\n"
            f"replay: COURSED_MODEL_SEED={seed} COURSED_MODEL_STEPS_FILE=<that list in a file>")


def seeds_and_budget():
    if os.environ.get("COURSED_MODEL_SEED"):
        return [int(os.environ["COURSED_MODEL_SEED"])], None
    minutes = float(os.environ.get("COURSED_MODEL_MINUTES", "0"))
    if minutes > 0:
        return None, minutes
    return [1, 2, 3, 4, 5, 6], None


def test_model():
    tolerate = frozenset(tolerated())
    n_steps = int(os.environ.get("COURSED_MODEL_STEPS", "40"))
    seeds, minutes = seeds_and_budget()
    if os.environ.get("COURSED_MODEL_STEPS_FILE"):
        steps = ast.literal_eval(Path(os.environ["COURSED_MODEL_STEPS_FILE"]).read_text())
        seed = seeds[0] if seeds else 0
        v, rec, r = run_once(seed, steps=steps, tolerate=tolerate)
        if v:
            pytest.fail(f"replayed steps fail: {v}", pytrace=False)
        return
    if minutes:
        deadline = time.monotonic() + minutes * 60
        base = random.SystemRandom().randrange(1 << 30)

        def gen_seeds():
            k = 0
            while time.monotonic() < deadline:
                yield base + k
                k += 1
        seeds = gen_seeds()
    total = Counter()
    edits = Counter()
    done = 0
    for seed in seeds:
        t0 = time.monotonic()
        v, steps, r = run_once(seed, n_steps=n_steps, tolerate=tolerate)
        done += 1
        total.update(r.tolerated_seen)
        edits.update(r.m.edit_stats)
        print(f"seed {seed}: {len(steps)} steps, {time.monotonic() - t0:.1f}s, "
              f"{len(r.w.sink.lessons())} lessons, kill dups {r.m.kill_dups}/{r.m.kill_inflight} in flight"
              + (f", edits {dict(r.edits_seen)}" if r.edits_seen else "")
              + (f", tolerated {dict(r.tolerated_seen)}" if r.tolerated_seen else "")
              + (f", FAILED {v.invariant}" if v else ""))
        if v:
            pytest.fail(report(seed, v, steps, tolerate), pytrace=False)
    print(f"what the edits did over {done} seeds: {dict(sorted(edits.items()))}")
    if total:
        print(f"tolerated violations over {done} seeds: {dict(total)}")
