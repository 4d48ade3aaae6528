"""Every message coursed sends is well-formed: golden files for each lesson
of both real courses, strict parsing with Python's email package, the
headers a user checks, and header injection through subscriber names."""
import email
import email.policy
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, Env, write_course

GOLDEN = REPO / "tests" / "golden"
NOW = "2026-03-02T10:00:00Z"
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
COURSES = {"release": 14, "leaving-kindly": 8}
SYSTEM = ["confirm", "welcome", "goodbye", "status", "help", "error", "complete"]
# RFC 3834: an answer to a message is auto-replied; the welcome and the
# complete mail answer none (the course sends them, as its lessons)
AUTO_SUBMITTED = {"confirm": "auto-replied", "welcome": "auto-generated", "goodbye": "auto-replied",
                  "status": "auto-replied", "help": "auto-replied", "error": "auto-replied",
                  "complete": "auto-generated"}


@pytest.fixture
def real(tmp_path):
    """An installation over the repository's real courses, with a fixed key."""
    env = Env(tmp_path)
    env.courses.rmdir()
    env.courses.symlink_to(REPO / "courses")
    (tmp_path / "secret.key").write_text(KEY)
    os.chmod(tmp_path / "secret.key", 0o600)
    return env


def lessons_of(slug):
    return sorted((REPO / "courses" / slug / "lessons").glob("*.md"))


def strict(raw):
    """Parse with the strict policy: any defect raises."""
    return email.message_from_bytes(raw, policy=email.policy.strict)


def normalise(raw):
    return re.sub(rb"^Date: [^\r\n]*", b"Date: (normalised)", raw, flags=re.M)


def test_every_course_has_the_expected_lessons():
    for slug, n in COURSES.items():
        assert len(lessons_of(slug)) == n


@pytest.mark.parametrize("slug,n", [(s, n) for s, c in COURSES.items() for n in range(1, c + 1)])
def test_lesson_matches_golden_and_parses_strictly(real, slug, n):
    raw = real.ctl_bytes("course", "preview", slug, str(n), "--to", "reader@example.org",
                         "--name", "Reader Example", now=NOW)
    golden = GOLDEN / slug / f"{n:02d}.eml"
    if os.environ.get("COURSED_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(normalise(raw))
    assert normalise(raw) == golden.read_bytes(), f"{golden} differs; run tests/golden/update if intended"

    # wire format: CRLF only, no line over 998 octets (RFC 5322 2.1.1)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(l) for l in raw.split(b"\r\n")) <= 998

    msg = strict(raw)
    assert not msg.defects
    for part in msg.walk():
        assert not part.defects, part.defects
    lesson = lessons_of(slug)[n - 1]
    subject = lesson.read_text().splitlines()[0][len("Subject: "):]
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].display_name
    assert msg["From"].addresses[0].addr_spec == f"{slug}@courses.example.org"
    assert msg["To"].addresses[0].addr_spec == "reader@example.org"
    assert msg["Date"].datetime.isoformat() == "2026-03-02T10:00:00+00:00"
    # named by the lesson's identity (the slug of its file), not its position
    ident = lesson.stem[3:]
    assert msg["Message-ID"] == f"<{ident}.e0.{slug}@courses.example.org>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Id"].endswith(f"<{slug}.courses.example.org>")
    assert msg["X-Course-Lesson"] == f"{slug} {n}/{COURSES[slug]}"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = str(msg["List-Unsubscribe"])
    # a preview's links carry the fake token, the same in both
    m = re.fullmatch(r"<https://courses\.example\.org/u/(PREVIEW-NOT-A-REAL-TOKEN)>, "
                     r"<mailto:" + re.escape(slug) + r"\+unsubscribe-(PREVIEW-NOT-A-REAL-TOKEN)@courses\.example\.org\?subject=unsubscribe>",
                     unsub)
    assert m and m.group(1) == m.group(2), unsub
    assert msg.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in msg.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    # plain text (docs/rendering.md): the heading underlined, no '#'
    assert "\nTry this\n--------\n" in text.replace("\r\n", "\n")
    assert "## " not in text
    assert "<h2>Try this</h2>" in html
    assert "Reader Example" in text and "Reader Example" in html
    assert f"{n} of {COURSES[slug]}" in text
    assert "<script" not in html.lower()


@pytest.mark.parametrize("which", SYSTEM)
def test_system_mails_parse_strictly(real, which):
    raw = real.ctl_bytes("course", "preview", "release", which, "--to", "reader@example.org",
                         "--name", "Zed <evil> Example", now=NOW)
    msg = strict(raw)
    assert not any(p.defects for p in msg.walk())
    assert msg["Auto-Submitted"] == AUTO_SUBMITTED[which]
    assert msg.get_body(("plain",)) is not None and msg.get_body(("html",)) is not None
    html = msg.get_body(("html",)).get_content()
    assert "<evil>" not in html
    if which == "confirm":
        # the confirmation echoes nothing the requester typed
        assert b"Zed" not in raw
        assert msg["List-Unsubscribe"] is None
    if which == "welcome":
        text = msg.get_body(("plain",)).get_content()
        assert "The two sides of releasing a relationship" in text, "the welcome mail credits the article"


def test_course_check_reports_file_and_line(tmp_path):
    env = Env(tmp_path)
    write_course(env.courses, "good", 2)
    write_course(env.courses, "bad", 3)
    lesson = env.courses / "bad" / "lessons" / "02-step-2.md"
    lesson.write_text("Subject: Two\n\nFine line.\n\n<div>raw html</div>\n\nAnd <b>inline</b>.\n")
    (env.courses / "bad" / "lessons" / "03-step-3.md").write_text(
        "Subject: Three\n\nA [bad link](javascript:alert(1)) and {{name}}.\n")
    p = env.ctl("course", "check", check=False)
    assert p.returncode == 1
    err = p.stderr
    assert f"{lesson}:5: raw HTML is not allowed in a lesson" in err
    assert f"{lesson}:7: raw HTML is not allowed in a lesson" in err
    three = env.courses / "bad" / "lessons" / "03-step-3.md"
    assert f"{three}:3: '{{{{' is not allowed in a lesson" in err
    assert f"{three}:3: link" in err
    # one course can be checked alone
    assert env.ctl("course", "check", "good").returncode == 0
    # the daemon refuses to start on it
    p = env.ctl("init", check=False)
    assert p.returncode != 0 and "raw HTML" in p.stderr


def test_course_check_catches_unknown_placeholder_in_template(tmp_path):
    env = Env(tmp_path)
    write_course(env.courses, "good", 1)
    tpl = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tpl)
    html = tpl / "lesson.html"
    lines = html.read_text().splitlines(True)
    lines.insert(3, "<p>{{ favourite_colour }}</p>\n")
    html.write_text("".join(lines))
    env.conf.write_text(env.conf.read_text().replace(f"templates = {REPO / 'templates'}", f"templates = {tpl}"))
    p = env.ctl("course", "check", check=False)
    assert p.returncode == 1
    assert f"{html}:4: unknown placeholder '{{{{favourite_colour}}}}'" in p.stderr


INJECTIONS = [
    ("crlf@example.org", "Eve\r\nBcc: victim@example.net"),
    ("lf@example.org", "Eve\nX-Injected: yes"),
    ("cr@example.org", "Eve\rX-Injected: yes"),
    ("long@example.org", "Zoë Ünïcødé Ŵïth Ä Vërÿ Łøñg Ñåmé " * 12),
]


def test_header_injection_through_names(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "test", 1)
    env.ctl("init", now=NOW)
    for addr, name in INJECTIONS:
        env.ctl("sub", "add", addr, "--name", name, now=NOW)
    env.ctl("sub", "add", "nul@example.org", "--name", "placeholder", now=NOW)
    # a NUL cannot pass through argv: put it in the database as hostile data would
    env.sql("UPDATE subscribers SET name = ? WHERE email = 'nul@example.org'", "Eve\x00\r\nBcc: victim@example.net")
    assert env.sql("SELECT length(CAST(name AS BLOB)) FROM subscribers WHERE email = 'nul@example.org'") == [(29,)]
    for addr, _ in INJECTIONS + [("nul@example.org", "")]:
        env.ctl("enroll", addr, "test", now=NOW)
    env.tick("2026-03-04T08:00:00Z")
    assert len(sink.lessons()) == len(INJECTIONS) + 1
    assert len(sink.system()) == len(INJECTIONS) + 1      # the welcome mails
    for m in sink.messages:
        raw = m["raw"]
        assert len(m["rcpts"]) == 1
        msg = strict(raw)
        assert not any(p.defects for p in msg.walk())
        assert msg["Bcc"] is None and msg["X-Injected"] is None
        assert b"\x00" not in raw
        assert max(len(l) for l in raw.split(b"\r\n")) <= 998
        to = msg["To"].addresses[0]
        assert "\r" not in to.display_name and "\n" not in to.display_name
        assert to.addr_spec == m["rcpts"][0]
    long = sink.lessons("long@example.org")[0]
    assert long["msg"]["To"].addresses[0].display_name.startswith("Zoë Ünïcødé")
