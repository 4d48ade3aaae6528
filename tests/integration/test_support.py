"""The help line (issue 16, "Safety first") and system mails without
jargon.

The operator sets the help line once, in templates/support.md (per
language in templates/<tag>/support.md; a course may have its own in
courses/<slug>/templates/support.md). The welcome, goodbye and complete
mails carry it, and so do the first lesson, the last lesson and every
lesson whose header says "Support: yes"; the other lessons do not. No
system mail shows a backtick, `Area/City` or `[for N days|weeks]`."""
import email
import email.policy
import os
import re
import shutil

import pytest

from conftest import REPO, Env, write_course

NOW = "2026-03-02T10:00:00Z"
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
SHIPPED = ["release", "leaving-kindly"]
SYSTEM = ["confirm", "welcome", "goodbye", "status", "help", "error", "complete"]
CARRY = ["welcome", "goodbye", "complete"]


def words(text):
    """text with its line breaks and spacing flattened, as compared."""
    return " ".join(text.replace("\u00a0", " ").split())


def support_text(tag=None):
    path = REPO / "templates" / (tag or "") / "support.md"
    return words(path.read_text(encoding="utf-8"))


def html_words(html):
    return words(re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").replace("&quot;", '"'))


@pytest.fixture
def real(tmp_path):
    env = Env(tmp_path)
    env.courses.rmdir()
    env.courses.symlink_to(REPO / "courses")
    (tmp_path / "secret.key").write_text(KEY)
    os.chmod(tmp_path / "secret.key", 0o600)
    return env


def mail_of(env, slug, which):
    raw = env.ctl_bytes("course", "preview", slug, which, "--to", "reader@example.org", "--name", "Reader",
                        now=NOW)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def marked(slug):
    """The lesson numbers that must carry the help line: the first, the
    last and those whose header says Support: yes."""
    files = sorted((REPO / "courses" / slug / "lessons").glob("*.md"))
    out = {1, len(files)}
    for n, f in enumerate(files, 1):
        head = f.read_text(encoding="utf-8").split("\n\n", 1)[0]
        if re.search(r"^Support: yes$", head, re.M):
            out.add(n)
    return out, len(files)


def test_the_shipped_courses_mark_the_lessons_on_pain_and_the_people_around_you():
    assert marked("release")[0] >= {1, 7, 10, 14}
    assert marked("leaving-kindly")[0] >= {1, 2, 4, 8}


@pytest.mark.parametrize("slug", SHIPPED)
def test_the_help_line_is_in_each_mail_that_needs_it_and_only_there(real, slug):
    line = support_text()
    carry, n = marked(slug)
    for which in CARRY + [str(k) for k in range(1, n + 1)]:
        text, html = mail_of(real, slug, which)
        want = which in CARRY or int(which) in carry
        assert (line in words(text)) == want, f"{slug} {which}: help line {'missing' if want else 'not expected'}"
        assert (line in html_words(html)) == want, f"{slug} {which} (HTML)"
        assert words(text).count(line) <= 1, f"{slug} {which}: the help line twice"


def test_the_help_line_reaches_the_reader_through_a_real_send(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    write_course(env.courses, "short", 3, schedule="FREQ=DAILY", time="09:00", tz="Europe/Berlin")
    env.ctl("init", now=NOW)
    env.ctl("sub", "add", "ann@example.org", "--name", "Ann", "--tz", "Europe/Berlin", now=NOW)
    env.ctl("enroll", "ann@example.org", "short", now=NOW)
    env.tick(NOW)
    for day in (3, 4, 5):
        env.tick(f"2026-03-0{day}T08:00:00Z")
    line = support_text()
    welcome = sink.system("ann@example.org")[0]["msg"]
    assert line in words(welcome.get_body(("plain",)).get_content())
    lessons = [m["msg"] for m in sink.lessons("ann@example.org")]
    assert len(lessons) == 3
    has = [line in words(m.get_body(("plain",)).get_content()) for m in lessons]
    assert has == [True, False, True], "the first and the last lesson carry it, the middle one does not"


def test_the_operator_and_a_course_set_the_help_line_in_one_place(tmp_path):
    env = Env(tmp_path)
    tpl = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tpl)
    (tpl / "support.md").write_text("Call the Example Crisis Line on 0800 000 000, day and night.\n")
    env.conf.write_text(env.conf.read_text().replace(f"templates = {REPO / 'templates'}", f"templates = {tpl}"))
    write_course(env.courses, "one", 3)
    write_course(env.courses, "own", 3)
    (env.courses / "own" / "templates").mkdir()
    (env.courses / "own" / "templates" / "support.md").write_text("Our own help: ask the course nurse.\n")
    assert "2 course(s) ok" in env.ctl("course", "check", now=NOW).stdout
    for which in ("welcome", "goodbye", "1", "3"):
        text, html = mail_of(env, "one", which)
        assert "Call the Example Crisis Line on 0800 000 000" in words(text), which
        assert "Call the Example Crisis Line on 0800 000 000" in html_words(html), which
        text, _ = mail_of(env, "own", which)
        assert "Our own help: ask the course nurse." in words(text) and "Example Crisis" not in text, which
    # a placeholder in it is refused at load, with file and line
    (tpl / "support.md").write_text("Help:\n{{name}}\n")
    p = env.ctl("course", "check", now=NOW, check=False)
    assert p.returncode != 0 and "support.md:2: unknown placeholder '{{name}}'" in p.stdout + p.stderr


def test_a_language_has_its_own_help_line(tmp_path):
    env = Env(tmp_path)
    for slug in ("atem", "souffle"):
        shutil.copytree(REPO / "tests" / "fixtures" / "languages" / slug, env.courses / slug)
    for slug, tag in (("atem", "de"), ("souffle", "fr")):
        for which in ("welcome", "goodbye", "1", "3", "4"):
            text, html = mail_of(env, slug, which)
            assert support_text(tag) in words(text), (slug, which)
            assert support_text(tag) in html_words(html), (slug, which)
            assert support_text() not in words(text)
        text, _ = mail_of(env, slug, "2")
        assert support_text(tag) not in words(text), "lesson 2 is not marked"


JARGON = [("`", "a backtick"), ("Area/City", "Area/City"), ("[for", "[for N days|weeks]")]


@pytest.mark.parametrize("slug", ["release", "atem", "souffle"])
def test_no_system_mail_has_jargon(tmp_path, slug):
    env = Env(tmp_path)
    src = REPO / "courses" / slug if slug == "release" else REPO / "tests" / "fixtures" / "languages" / slug
    shutil.copytree(src, env.courses / slug)
    for which in SYSTEM:
        text, html = mail_of(env, slug, which)
        for mark, what in JARGON:
            assert mark not in text and mark not in html, f"{slug} {which}: {what}"
        assert "<code>" not in html, f"{slug} {which}: a code box"


def test_help_gives_examples_a_person_can_copy(real):
    text, _ = mail_of(real, "release", "help")
    for example in ("tz Europe/Berlin", "pause for 2 weeks", "subscribe release"):
        # quoted, straight or curly (typography makes them curly)
        assert any(q[0] + example + q[1] in text for q in ('""', "\u201c\u201d")), example
