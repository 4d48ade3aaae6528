"""Courses in any language (issue 14): `language = de` in course.ini sets
the lang attribute of the HTML, the words of the layouts and of every
system mail, and the dates, from templates/strings/<tag>.ini and the
translated mails in templates/<tag>/.

A German and a French course (tests/fixtures/languages/) render each lesson
and each system mail, compared with golden files (tests/golden/update
regenerates them); no English word of the layout is left in them; dates
are written as people write them, in the three languages, through a real
send to the SMTP sink; a language without a strings file fails the check
with file and line."""
import configparser
import email
import email.policy
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import os
import pytest

from conftest import COURSED, REPO, Env, write_course

FIXTURES = REPO / "tests" / "fixtures" / "languages"
GOLDEN = REPO / "tests" / "golden" / "languages"
STRINGS = REPO / "templates" / "strings"
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
NOW = "2026-03-02T10:00:00Z"  # a Monday; the courses send on Wednesdays at 09:00
COURSES = {"atem": ("de", 4), "souffle": ("fr", 4)}
SYSTEM = ["confirm", "welcome", "goodbye", "status", "help", "error", "complete"]
UTC = timezone.utc


def strings(tag):
    p = configparser.ConfigParser(interpolation=None)
    p.optionxform = str
    p.read(STRINGS / f"{tag}.ini", encoding="utf-8")
    return dict(p["strings"])


def placeholders(text):
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.fixture
def langs(tmp_path):
    """An installation with the German and the French course, a fixed key."""
    env = Env(tmp_path)
    for slug in COURSES:
        shutil.copytree(FIXTURES / slug, env.courses / slug)
    (tmp_path / "secret.key").write_text(KEY)
    os.chmod(tmp_path / "secret.key", 0o600)
    return env


def normalise(raw):
    """What changes from one run to the next: the date, the random
    Message-ID of a system mail, MIME boundaries, the calendar's stamp."""
    raw = re.sub(rb"^Date: [^\r\n]*", b"Date: (normalised)", raw, flags=re.M)
    raw = re.sub(rb"^Message-I[Dd]: <(confirm|welcome|goodbye|status|help|error|complete)\.[^@]*@",
                 rb"Message-ID: <\1.(normalised)@", raw, flags=re.M)
    for b in set(re.findall(rb'boundary="([^"]+)"', raw)):
        raw = raw.replace(b, b"(boundary)")
    raw = re.sub(rb"DTSTAMP:[0-9TZ]+", b"DTSTAMP:(normalised)", raw)
    return raw


def preview(env, slug, which):
    return env.ctl_bytes("course", "preview", slug, which, "--to", "leser@example.org", "--name",
                         "Lea Beispiel", now=NOW)


def parts(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg, msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def every_mail():
    return [(slug, w) for slug, (_, n) in COURSES.items()
            for w in [f"{k}" for k in range(1, n + 1)] + SYSTEM]


@pytest.mark.parametrize("slug,which", every_mail())
def test_golden_lesson_and_system_mail(langs, slug, which):
    raw = normalise(preview(langs, slug, which))
    name = f"{int(which):02d}.eml" if which.isdigit() else f"{which}.eml"
    golden = GOLDEN / slug / name
    if os.environ.get("COURSED_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(raw)
    assert raw == golden.read_bytes(), f"{golden} differs; run tests/golden/update if intended"
    email.message_from_bytes(raw, policy=email.policy.strict)  # parses strictly


def english_phrases():
    """The English words of the layouts and of the sentences coursed
    writes: each literal run of en.ini's values (between placeholders) of
    two words or more, and every weekday and month name."""
    en = strings("en")
    phrases = set()
    for key, value in en.items():
        if key in ("weekdays", "weekdays_plural", "months"):
            phrases.update(v.strip() for v in value.split(";"))
            continue
        # the commands and zone examples (tz Europe/Berlin) are the same in every language
        for run in re.split(r"\{\w+\}|\btz [A-Za-z_/]+", value):
            run = run.strip(" ,.:;!?\"()")
            if len(run.split()) >= 2 or (key in ("greeting", "unsubscribe_link", "next_label") and run):
                phrases.add(run)
    return phrases


@pytest.mark.parametrize("slug,which", every_mail())
def test_no_english_word_of_the_layout_is_left(langs, slug, which):
    tag = COURSES[slug][0]
    msg, text, html = parts(preview(langs, slug, which))
    assert f'<html lang="{tag}">' in html
    found = [p for p in english_phrases() if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text + html)]
    assert not found, f"{slug} {which}: English words left: {found}"
    assert "CET" not in text and not re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", text)


def test_every_language_has_every_key_with_the_same_placeholders():
    en = strings("en")
    for tag in ("de", "fr"):
        other = strings(tag)
        assert set(other) == set(en), f"{tag}.ini: keys differ from en.ini"
        for key, value in en.items():
            assert placeholders(other[key]) == placeholders(value), f"{tag}.ini {key}"
            if ";" in value:
                assert len(other[key].split(";")) == len(value.split(";")), f"{tag}.ini {key}"


def test_every_system_mail_is_translated_with_the_same_placeholders():
    mails = sorted(p.name for p in (REPO / "templates").glob("*.md"))
    assert "support.md" in mails and "welcome.md" in mails
    for tag in ("de", "fr"):
        for name in mails:
            ours = (REPO / "templates" / tag / name)
            assert ours.is_file(), f"templates/{tag}/{name} is missing"
            want = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", (REPO / "templates" / name).read_text()))
            got = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", ours.read_text()))
            assert got == want, f"templates/{tag}/{name}: placeholders {got ^ want} differ"


def test_a_language_without_strings_file_fails_the_check_with_file_and_line(tmp_path):
    env = Env(tmp_path)
    write_course(env.courses, "xx", 1, extra="language = xx\n")
    p = env.ctl("course", "check", now=NOW, check=False)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    line = (env.courses / "xx" / "course.ini").read_text().splitlines().index("language = xx") + 1
    assert f"courses/xx/course.ini:{line}: language 'xx': no strings file templates/strings/xx.ini" in out, out
    # the daemon refuses to start on it too, naming the same line
    d = subprocess.run([COURSED, "-n", "-c", str(env.conf)], capture_output=True, text=True, timeout=60)
    assert d.returncode != 0 and f"course.ini:{line}: language 'xx'" in d.stdout + d.stderr


def test_a_language_tag_is_checked_for_its_syntax(tmp_path):
    env = Env(tmp_path)
    write_course(env.courses, "bad", 1, extra="language = German!\n")
    p = env.ctl("course", "check", now=NOW, check=False)
    line = (env.courses / "bad" / "course.ini").read_text().splitlines().index("language = German!") + 1
    assert p.returncode != 0
    assert f"courses/bad/course.ini:{line}: language 'German!' is not a language tag" in p.stdout + p.stderr


def test_a_region_falls_back_to_its_language(tmp_path):
    env = Env(tmp_path)
    write_course(env.courses, "wien", 2, extra="language = de-AT\n", tz="Europe/Vienna")
    assert "1 course(s) ok" in env.ctl("course", "check", now=NOW).stdout
    _, text, html = parts(env.ctl_bytes("course", "preview", "wien", "1", now=NOW))
    assert '<html lang="de-AT">' in html and "Schritt 1 von 2" in text
    _, text, _ = parts(env.ctl_bytes("course", "preview", "wien", "welcome", now=NOW))
    assert "schön, dass du dabei bist" in text


def as_read(s):
    return s.replace("\u00a0", " ")


def test_dates_in_three_languages_through_a_real_send(env_factory, sink):
    env = env_factory(smtp_port=sink.port)
    for slug, tag in (("en", "en"), ("de", "de"), ("fr", "fr")):
        write_course(env.courses, slug, 3, schedule="FREQ=WEEKLY;BYDAY=WE", time="09:00",
                     tz="Europe/Berlin", extra=f"language = {tag}\n")
    env.ctl("init", now=NOW)
    for slug in ("en", "de", "fr"):
        env.ctl("sub", "add", f"{slug}@example.org", "--tz", "Europe/Berlin", now=NOW)
        env.ctl("enroll", f"{slug}@example.org", slug, now=NOW)
    env.tick(NOW)
    first = {"en": "Wednesday 4 March at 9:00", "de": "Mittwoch, 4. März, 9:00",
             "fr": "mercredi 4 mars à 9 h 00"}
    for slug, date in first.items():
        welcome = [m["msg"] for m in sink.system(f"{slug}@example.org")]
        assert len(welcome) == 1, slug
        text = welcome[0].get_body(("plain",)).get_content()
        html = welcome[0].get_body(("html",)).get_content()
        assert date in as_read(text), (slug, text)
        # on a phone the first date does not break across lines
        assert date.replace(" ", "\u00a0") in html, slug
        assert "CET" not in as_read(text).split(date)[0][-40:]
    env.tick("2026-03-04T08:00:00Z")  # Wednesday 09:00 in Berlin: lesson 1
    nxt = {"en": "Next step: Wednesday 11 March at 9:00", "de": "Nächster Schritt: Mittwoch, 11. März, 9:00",
           "fr": "Prochaine étape : mercredi 11 mars à 9 h 00"}
    for slug, said in nxt.items():
        lessons = sink.lessons(f"{slug}@example.org")
        assert len(lessons) == 1, slug
        text = lessons[0]["msg"].get_body(("plain",)).get_content()
        html = lessons[0]["msg"].get_body(("html",)).get_content()
        assert said in as_read(text), (slug, text)
        assert "2026-03-11" not in text and "CET" not in text
        assert said.split(": ")[-1].split(" : ")[-1] in as_read(html)
