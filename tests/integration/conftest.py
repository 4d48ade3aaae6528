"""Shared fixtures: the real coursed/coursectl binaries, a scratch folder with
a config file, a real SQLite file, and an SMTP sink on a free port."""
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from smtpsink import Sink

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("COURSED_BUILD_DIR", REPO / "build"))
COURSED = os.environ.get("COURSED_BIN", str(BUILD / "daemon" / "coursed"))
COURSECTL = os.environ.get("COURSECTL_BIN", str(BUILD / "admin" / "coursectl"))


def write_course(root, slug, n_lessons, schedule="FREQ=WEEKLY;BYDAY=MO,WE,FR",
                 time="09:00", tz="Europe/Berlin", title="Test Course", extra=""):
    d = Path(root) / slug / "lessons"
    d.mkdir(parents=True)
    (Path(root) / slug / "course.ini").write_text(
        f"[course]\ntitle = {title}\nschedule = {schedule}\ntime = {time}\n"
        f"timezone = {tz}\nsource = a test\n{extra}")
    for n in range(1, n_lessons + 1):
        (d / f"{n:02d}-step-{n}.md").write_text(
            f"Subject: Step {n} of the test\n\nThis is lesson **{n}**.\n")


class Env:
    """One coursed installation in a temporary folder."""

    def __init__(self, tmp, smtp_port=None, transport="smtp", extra_conf="", http_port=None):
        self.dir = Path(tmp)
        self.courses = self.dir / "courses"
        self.courses.mkdir(exist_ok=True)
        self.conf = self.dir / "coursed.conf"
        self.db = self.dir / "state.db"
        smtp = f"[smtp]\nhost = 127.0.0.1\nport = {smtp_port}\nstarttls = off\ntimeout = 30s\n" if smtp_port else ""
        self.conf.write_text(
            "[coursed]\ndatabase = state.db\ncourses = courses\n"
            f"templates = {REPO / 'templates'}\ndomain = courses.example.org\n"
            "base_url = https://courses.example.org\n"
            f"[transport]\nkind = {transport}\nmaildir = outbox\n{smtp}"
            f"[http]\nlisten = {'127.0.0.1:%d' % http_port if http_port else ''}\n{extra_conf}")

    def ctl(self, *args, now=None, check=True):
        cmd = [COURSECTL, "-c", str(self.conf)]
        if now:
            cmd += ["--now", now]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd + list(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def ctl_bytes(self, *args, now=None):
        """Run coursectl and return its stdout as bytes (CRLF kept)."""
        cmd = [COURSECTL, "-c", str(self.conf)] + (["--now", now] if now else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"{cmd} -> {p.returncode}\n{p.stderr.decode(errors='replace')}")
        return p.stdout

    def tick(self, now, check=True):
        cmd = [COURSED, "-d", "-c", str(self.conf), "--once", "--now", now]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def sql(self, query, *params):
        con = sqlite3.connect(self.db)
        try:
            rows = con.execute(query, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()


@pytest.fixture
def sink():
    s = Sink()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def env_factory(tmp_path):
    def make(**kw):
        return Env(tmp_path, **kw)
    return make
