"""`coursectl course check` finds every problem of a course in one run, in
file and line order, each as `file:line: message` naming the offending text;
`coursed -n` refuses a broken course with every problem of its files.

The broken course is tests/fixtures/broken-course/ (a dozen different
mistakes); its expected report is tests/golden/course-check.txt. After an
intended change of a message, regenerate it and read the diff:

    COURSED_UPDATE_GOLDEN=1 /usr/bin/python3 -m pytest -q test_course_check.py -k golden
"""
import os
import shutil
import subprocess

from conftest import COURSED, REPO, Env, write_course

FIXTURE = REPO / "tests" / "fixtures" / "broken-course"
GOLDEN = REPO / "tests" / "golden" / "course-check.txt"
BOM = "\ufeff"
OK = "Subject: Fine\n\nFine.\n"
INI = "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 09:00\ntimezone = UTC\n"


def check(env, *slug):
    """Runs `coursectl course check` once; returns (exit code, problem lines
    with the courses folder shown as 'courses')."""
    p = env.ctl("course", "check", *slug, check=False)
    lines = p.stderr.replace(str(env.courses), "courses").splitlines()
    return p.returncode, lines


def course(env, slug, ini=INI, lessons=None, files=None):
    """A course folder: course.ini, lessons/ (name -> text or bytes) and other
    files relative to the folder."""
    d = env.courses / slug
    (d / "lessons").mkdir(parents=True)
    (d / "course.ini").write_text(ini, encoding="utf-8")
    for rel, text in {**{f"lessons/{k}": v for k, v in (lessons or {"01-a.md": OK}).items()},
                      **(files or {})}.items():
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return d


def daemon_check(env):
    return subprocess.run([COURSED, "-n", "-c", str(env.conf)], capture_output=True, text=True, timeout=60)


def test_broken_course_matches_golden(tmp_path):
    env = Env(tmp_path)
    write_course(env.courses, "fine", 2)
    shutil.copytree(FIXTURE, env.courses / "noticing")
    rc, lines = check(env)
    report = "\n".join(lines) + "\n"
    if os.environ.get("COURSED_UPDATE_GOLDEN"):
        GOLDEN.write_text(report)
    assert rc == 1
    assert report == GOLDEN.read_text(), f"{GOLDEN} differs; see this file's docstring to regenerate it"
    # one run found them all, every one with its file, sorted as promised
    problems = lines[:-1]
    assert lines[-1] == f"coursectl: {len(problems)} problem(s)"
    assert len(problems) >= 12
    assert all(p.startswith("courses/noticing/") for p in problems)

    def key(p):
        path, _, rest = p.partition(": ")
        file, _, line = path.partition(":")
        rank = 0 if file.endswith("/course.ini") else 1 if "/lessons" in file else 2
        return rank, file, int(line or 0)
    assert problems == sorted(problems, key=key)


def test_daemon_refuses_the_broken_course_with_every_problem(tmp_path):
    env = Env(tmp_path)
    shutil.copytree(FIXTURE, env.courses / "noticing")
    p = daemon_check(env)
    assert p.returncode == 1
    err = p.stderr.replace(str(env.courses), "courses")
    assert "courses/noticing/course.ini:7: time '7:30' must be HH:MM (24-hour)" in err
    assert "courses/noticing/lessons/05-listening.md: lesson 04 is missing" in err
    # what coursed does not use is the check's business, not a reason to stop
    assert "welcome.md" not in err and "notes.txt" not in err
    assert len(err.strip().splitlines()) >= 10


def test_four_mistakes_in_course_ini_give_four_messages_in_line_order(tmp_path):
    env = Env(tmp_path)
    course(env, "four", ini="[course]\ntitle = T\ntime = 9:00\nschedule = FREQ=HOURLY\n"
                            "timezone = Mars/Base\ncolour = blue\n")
    rc, lines = check(env)
    assert rc == 1
    assert lines == [
        "courses/four/course.ini:3: time '9:00' must be HH:MM (24-hour)",
        "courses/four/course.ini:4: schedule 'FREQ=HOURLY': FREQ must be DAILY or slower; "
        "the time of day is set by 'time'",
        "courses/four/course.ini:5: unknown time zone 'Mars/Base'",
        "courses/four/course.ini:6: unknown key 'colour'",
        "coursectl: 4 problem(s)",
    ]


def test_two_broken_lessons_give_two_messages(tmp_path):
    env = Env(tmp_path)
    course(env, "two", lessons={"01-a.md": OK, "02-b.md": "Subject: B\nAuthor: me\n\nText.\n",
                                "03-c.md": "Subject: C\n\n   \n"})
    rc, lines = check(env)
    assert rc == 1
    assert lines == [
        "courses/two/lessons/02-b.md:2: unknown header field 'Author' (only Subject is known)",
        "courses/two/lessons/03-c.md:3: the lesson text is empty",
        "coursectl: 2 problem(s)",
    ]


def test_byte_order_mark_is_accepted_in_lessons_and_course_ini(tmp_path):
    env = Env(tmp_path)
    course(env, "bom", ini=BOM + INI, lessons={"01-a.md": BOM + "Subject: With a BOM\n\nText.\n",
                                               "02-b.md": BOM + "Subject: CRLF too\r\n\r\nText.\r\n"})
    assert (env.courses / "bom" / "course.ini").read_bytes().startswith(b"\xef\xbb\xbf[course]")
    p = env.ctl("course", "check")
    assert p.stdout == "1 course(s) ok\n" and p.stderr == ""
    assert daemon_check(env).returncode == 0
    env.ctl("init")
    eml = env.ctl("course", "preview", "bom", "1", "--eml").stdout
    assert "Subject: With a BOM" in eml and "\ufeff" not in eml


def test_byte_order_mark_does_not_hide_a_problem(tmp_path):
    env = Env(tmp_path)
    course(env, "bom", ini=BOM + "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 7\n",
           lessons={"01-a.md": BOM + "Subject: A\nFrom: me\n\nText.\n"})
    rc, lines = check(env)
    assert lines == [
        "courses/bom/course.ini:4: time '7' must be HH:MM (24-hour)",
        "courses/bom/lessons/01-a.md:2: unknown header field 'From' (only Subject is known)",
        "coursectl: 2 problem(s)",
    ]


def test_keyfile_errors_have_file_and_line(tmp_path):
    env = Env(tmp_path)
    course(env, "ini", ini="title = T\n[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 09:00\n"
                           "this is not a setting\n; a comment\ntime = 10:00\n[course\n")
    rc, lines = check(env)
    assert lines == [
        "courses/ini/course.ini:1: 'title = T' comes before the [course] line",
        "courses/ini/course.ini:6: 'this is not a setting' is not a 'key = value' line, a [section] or a # comment",
        "courses/ini/course.ini:7: '; a comment': a comment in course.ini starts with #",
        "courses/ini/course.ini:8: 'time' is set twice (also on line 5); keep one",
        "courses/ini/course.ini:9: '[course' is not a [section] line",
        "coursectl: 5 problem(s)",
    ]


def test_empty_lesson_file_says_it_is_empty(tmp_path):
    env = Env(tmp_path)
    course(env, "empty", lessons={"01-a.md": OK, "02-b.md": ""})
    rc, lines = check(env)
    assert lines == [
        "courses/empty/lessons/02-b.md:1: the file is empty; a lesson is 'Subject: ...', a blank line, then the text",
        "coursectl: 1 problem(s)",
    ]


def test_gap_names_the_missing_number_and_both_neighbours(tmp_path):
    env = Env(tmp_path)
    course(env, "gap", lessons={"01-a.md": OK, "02-b.md": OK, "03-x.md": OK, "05-y.md": OK, "06-z.md": OK})
    rc, lines = check(env)
    assert lines == ["courses/gap/lessons/05-y.md: lesson 04 is missing between 03-x.md and 05-y.md",
                     "coursectl: 1 problem(s)"]


def test_numbering_from_01_and_duplicates(tmp_path):
    env = Env(tmp_path)
    course(env, "nums", lessons={"03-c.md": OK, "04-d.md": OK, "04-e.md": OK, "07-g.md": OK})
    rc, lines = check(env)
    assert lines == [
        "courses/nums/lessons/03-c.md: lessons 01 and 02 are missing before 03-c.md "
        "(lessons are numbered from 01 without gaps)",
        "courses/nums/lessons/04-e.md: lesson number 04 is also the number of 04-d.md; each lesson needs its own",
        "courses/nums/lessons/07-g.md: lessons 05 and 06 are missing between 04-e.md and 07-g.md",
        "coursectl: 3 problem(s)",
    ]


def test_stray_files_are_reported(tmp_path):
    env = Env(tmp_path)
    course(env, "stray", lessons={"01-a.md": OK, "02-b.md": OK, "06-bonus.md.txt": OK, "06-bonus.MD": OK,
                                  "notes.txt": "ideas\n"},
           files={"welcome.md": OK, "templates/welcome.md": OK, ".hidden": "x"})
    rc, lines = check(env)
    assert rc == 1
    assert lines == [
        "courses/stray/lessons/06-bonus.MD: not read as a lesson: lesson files are named NN-slug.md "
        "(rename it to 06-bonus.md?)",
        "courses/stray/lessons/06-bonus.md.txt: not read as a lesson: lesson files are named NN-slug.md "
        "(rename it to 06-bonus.md?)",
        "courses/stray/lessons/notes.txt: not a lesson, and coursed does not use it: lesson files are named "
        "NN-slug.md",
        "courses/stray/welcome.md: a file coursed does not use: a course folder holds course.ini, lessons/ "
        "and templates/",
        "coursectl: 4 problem(s)",
    ]
    # a lesson the course would lack stops the daemon ...
    p = daemon_check(env)
    assert p.returncode == 1 and "06-bonus.MD" in p.stderr and "06-bonus.md.txt" in p.stderr
    # ... a file it does not use does not
    (env.courses / "stray" / "lessons" / "06-bonus.MD").unlink()
    (env.courses / "stray" / "lessons" / "06-bonus.md.txt").unlink()
    assert daemon_check(env).returncode == 0
    rc, lines = check(env)
    assert rc == 1 and len(lines) == 3


def test_raw_html_is_reported_once_per_tag_with_the_tag_named(tmp_path):
    env = Env(tmp_path)
    course(env, "html", lessons={"01-a.md": "Subject: A\n\nStart by\n<b>noticing</b> what <em>is</em> here.\n\n"
                                            "<div class=\"box\">\nboxed\n</div>\n"})
    rc, lines = check(env)
    assert lines == [
        "courses/html/lessons/01-a.md:4: raw HTML is not allowed in a lesson: '<b>' (write **bold** in Markdown)",
        "courses/html/lessons/01-a.md:4: raw HTML is not allowed in a lesson: '<em>' "
        "(write *emphasis* in Markdown)",
        "courses/html/lessons/01-a.md:6: raw HTML is not allowed in a lesson: '<div class=\"box\">'",
        "coursectl: 3 problem(s)",
    ]


def test_every_course_is_checked_in_one_run(tmp_path):
    env = Env(tmp_path)
    course(env, "a-first", ini="[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 25:00\n")
    write_course(env.courses, "b-fine", 1)
    course(env, "c-last", lessons={"01-a.md": "Subject: A\n\nHello {{name}}.\n"})
    rc, lines = check(env)
    assert lines == [
        "courses/a-first/course.ini:4: time '25:00' must be HH:MM (24-hour)",
        "courses/c-last/lessons/01-a.md:3: '{{' is not allowed in a lesson: '{{name}}' "
        "(placeholders belong in templates)",
        "coursectl: 2 problem(s)",
    ]
    p = daemon_check(env)
    assert p.returncode == 1 and "a-first" in p.stderr


def test_daemon_names_every_markdown_problem_not_only_the_first(tmp_path):
    """A course that loads but fails the Markdown lint: coursed -n lists each
    problem on a line of its own, as course check does (it used to say the
    first one and "and more")."""
    env = Env(tmp_path)
    course(env, "html", lessons={"01-a.md": "Subject: A\n\n<b>one</b>\n",
                                 "02-b.md": "Subject: B\n\nfine\n\n<em>two</em>\n"})
    p = daemon_check(env)
    assert p.returncode == 1
    err = p.stderr.replace(str(env.courses), "courses")
    assert "courses/html/lessons/01-a.md:3: raw HTML is not allowed in a lesson: '<b>'" in err
    assert "courses/html/lessons/02-b.md:5: raw HTML is not allowed in a lesson: '<em>'" in err
    assert "and more" not in err
