"""Configuration that forgives what people paste: the README's example parses
as pasted, full-line comments (# and ;) are accepted, a comment after a value
is an error naming file, line and key (never part of a path), an empty
required path is an error, and `coursectl config show` tells where each
value came from. Also: COURSED_NOW does what --now does, for coursed and
for coursectl (inbound included, as an MTA pipe runs it)."""
import json
import os
import subprocess

import pytest

from conftest import COURSECTL, COURSED, REPO, write_course


def readme_ini_block():
    """The README's configuration example, verbatim."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split("### Configuration", 1)[1].split("```ini\n", 1)[1].split("```", 1)[0]


def run(*cmd, env=None, input=None):
    e = dict(os.environ)
    e.pop("COURSED_NOW", None)
    e.update(env or {})
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, env=e, input=input)


def show(conf):
    p = run(COURSECTL, "-c", str(conf), "config", "show", "--json")
    assert p.returncode == 0, p.stderr
    return {(r["section"], r["key"]): r for r in json.loads(p.stdout)}


def test_readme_example_parses_as_pasted(tmp_path):
    conf = tmp_path / "coursed.conf"
    conf.write_text(readme_ini_block())
    got = show(conf)
    assert got[("coursed", "tick_interval")]["value"] == "10s"
    assert got[("coursed", "database")]["value"] == "/var/lib/coursed/state.db"
    # the empty secret_key line means "beside the database", not the config's folder
    assert got[("coursed", "secret_key")]["value"] == "/var/lib/coursed/secret.key"
    line = readme_ini_block().splitlines().index("secret_key =") + 1
    assert got[("coursed", "secret_key")]["source"] == f"{conf}:{line} (empty: default, derived)"
    assert got[("http", "listen")]["value"] == "127.0.0.1:8025"


def test_readme_example_passes_coursed_check(tmp_path):
    """coursed -n on the README's block, only the three folders pointed at
    this tree (the block names /usr/share/coursed, which a build tree lacks)."""
    lines = []
    for line in readme_ini_block().splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "database":
            line = f"database = {tmp_path / 'state.db'}"
        elif key == "courses":
            line = f"courses = {REPO / 'courses'}"
        elif key == "templates":
            line = f"templates = {REPO / 'templates'}"
        lines.append(line)
    conf = tmp_path / "coursed.conf"
    conf.write_text("\n".join(lines) + "\n")
    p = run(COURSED, "-n", "-c", str(conf))
    assert p.returncode == 0, p.stderr
    assert "ok:" in p.stdout


def test_inline_comment_is_an_error_naming_file_line_and_key(tmp_path):
    conf = tmp_path / "coursed.conf"
    conf.write_text("[coursed]\ndomain = courses.example.org\n\n"
                    "tick_interval = 10s   # longest sleep between two ticks\n")
    p = run(COURSED, "-n", "-c", str(conf))
    assert p.returncode == 1
    assert (f"{conf}:4: [coursed] tick_interval: inline comments are not allowed "
            "('10s   # longest...'); put the comment on its own line") in p.stderr
    # coursectl reads the same file the same way
    p = run(COURSECTL, "-c", str(conf), "config", "show")
    assert p.returncode != 0
    assert f"{conf}:4: [coursed] tick_interval: inline comments" in p.stderr


def test_comment_after_an_empty_path_is_not_a_path(tmp_path):
    conf = tmp_path / "coursed.conf"
    conf.write_text("[coursed]\nsecret_key =                # HMAC key file\n")
    p = run(COURSED, "-n", "-c", str(conf))
    assert p.returncode == 1
    assert f"{conf}:2: [coursed] secret_key: inline comments are not allowed" in p.stderr
    conf.write_text("[smtp]\npassword_file = ; the AUTH password\n")
    p = run(COURSECTL, "-c", str(conf), "config", "show")
    assert p.returncode != 0
    assert f"{conf}:2: [smtp] password_file: inline comments are not allowed" in p.stderr


def test_empty_required_path_is_an_error(tmp_path):
    conf = tmp_path / "coursed.conf"
    conf.write_text("[coursed]\n# where the courses are\ncourses =\n")
    p = run(COURSED, "-n", "-c", str(conf))
    assert p.returncode == 1
    assert f"{conf}:3: [coursed] courses: a path is required here (it is empty)" in p.stderr
    conf.write_text("[transport]\nkind = maildir\nmaildir =\n")
    p = run(COURSECTL, "-c", str(conf), "config", "show")
    assert p.returncode != 0
    assert f"{conf}:3: [transport] maildir: a path is required here" in p.stderr


def test_full_line_comments_of_both_kinds_and_url_fragments(tmp_path):
    conf = tmp_path / "coursed.conf"
    conf.write_text("; written by hand\n[coursed]\n  # indented comment\n; the other kind\n"
                    "database = data/state.db\nbase_url = https://courses.example.org/#top\n")
    got = show(conf)
    assert got[("coursed", "database")]["value"] == str(tmp_path / "data" / "state.db")
    assert got[("coursed", "database")]["source"] == f"{conf}:5"
    assert got[("coursed", "base_url")]["value"] == "https://courses.example.org/#top"


def test_config_show_text_names_where_each_value_came_from(tmp_path):
    conf = tmp_path / "coursed.conf"
    conf.write_text("[coursed]\ndomain = example.net\n\n[delivery]\n# a comment\nbatch = 7\n")
    p = run(COURSECTL, "-c", str(conf), "config", "show")
    assert p.returncode == 0, p.stderr
    rows = {" ".join(line.split()[:2]): line.split() for line in p.stdout.splitlines()[1:]}
    assert rows["[delivery] batch"][2:] == ["7", f"{conf}:6"]
    assert rows["[coursed] domain"][2:] == ["example.net", f"{conf}:2"]
    assert rows["[coursed] tick_interval"][2:] == ["10s", "default"]
    assert rows["[smtp] helo"][2:] == ["example.net", "default", "(derived)"]
    assert p.stdout.splitlines()[0].split() == ["SETTING", "VALUE", "FROM"]


# ---- COURSED_NOW ----

T = "2026-05-04T10:00:00Z"
T_UNIX = 1777888800


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    write_course(e.courses, "test", 3)
    return e


def test_coursed_now_in_the_environment_sets_coursectl_clock(env):
    p = run(COURSECTL, "-c", str(env.conf), "init", env={"COURSED_NOW": T})
    assert p.returncode == 0, p.stderr
    p = run(COURSECTL, "-c", str(env.conf), "sub", "add", "ana@example.net", env={"COURSED_NOW": T})
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT created_at FROM subscribers") == [(T_UNIX,)]
    # --now wins over the environment
    p = run(COURSECTL, "-c", str(env.conf), "--now", "2026-06-01T00:00:00Z", "sub", "add", "bo@example.net",
            env={"COURSED_NOW": T})
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT created_at FROM subscribers WHERE email = 'bo@example.net'") == [(1780272000,)]


def test_coursed_now_sets_the_clock_of_the_inbound_pipe(env, sink):
    assert run(COURSECTL, "-c", str(env.conf), "init", env={"COURSED_NOW": T}).returncode == 0
    raw = ("From: ana@example.net\r\nTo: test@courses.example.org\r\nSubject: subscribe\r\n"
           "Message-ID: <envclock@client.example>\r\n\r\nsubscribe\r\n")
    # exactly as an MTA's pipe runs it: no --now, the clock in the environment
    p = run(COURSECTL, "-c", str(env.conf), "inbound", env={"COURSED_NOW": T}, input=raw)
    assert p.returncode == 0, p.stderr
    assert env.sql("SELECT created_at FROM subscribers WHERE email = 'ana@example.net'") == [(T_UNIX,)]
    assert env.sql("SELECT MIN(at) FROM events") == [(T_UNIX,)]


def test_coursed_now_sets_the_daemon_clock(env, sink):
    assert env.ctl("init", now=T).returncode == 0
    env.ctl("sub", "add", "ana@example.net", now=T)
    env.ctl("enroll", "ana@example.net", "test", "--no-welcome", now=T)
    # Monday 10:00 UTC: the next slot is Wednesday 09:00 Berlin
    p = run(COURSED, "-d", "-c", str(env.conf), "--once", env={"COURSED_NOW": "2026-05-06T07:00:05Z"})
    assert p.returncode == 0, p.stderr
    lessons = sink.lessons()
    assert len(lessons) == 1
    assert lessons[0]["msg"]["Date"].datetime.timestamp() == 1778050805
    p = run(COURSED, "-n", "-c", str(env.conf), env={"COURSED_NOW": "yesterday"})
    assert p.returncode == 2
    assert "COURSED_NOW: bad time 'yesterday'" in p.stderr
