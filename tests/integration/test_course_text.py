"""Checks for the course text shipped in courses/*/.

Covers course.ini structure, lesson file layout and Markdown rules, and an
overlap check that makes sure no lesson copies the source article verbatim.
"""

import configparser
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COURSES_DIR = REPO / "courses"
ARTICLE = Path(os.environ.get("COURSED_ARTICLE") or (REPO.parent / "shared" / "article.txt"))

# what an edit does to readers already in the course (docs/course-edits.md)
OPTIONAL_KEYS = {"on_insert_behind", "completed_get_new", "next_course", "complete_mail", "sign_off", "language", "replies_to"}
REQUIRED_KEYS = {
    "title",
    "description",
    "sender_name",
    "source",
    "schedule",
    "time",
    "timezone",
    "first_within",
}
MIN_LESSONS = {"release": 12, "leaving-kindly": 5}
# A lesson reads as a letter: it opens with its idea, without a heading,
# and has only these two (issue 16: fewer fixed headings). The last
# paragraph of every lesson but the last says what the next one is about.
HEADINGS = [
    "## Try this",
    "## A question to sit with",
]
LESSON_NAME = re.compile(r"^(\d\d)-[a-z0-9-]+\.md$")
WINDOW = 8


def course_dirs():
    if not COURSES_DIR.is_dir():
        return []
    return sorted(p for p in COURSES_DIR.iterdir() if p.is_dir())


def lesson_files(course):
    lessons = course / "lessons"
    if not lessons.is_dir():
        return []
    return sorted(lessons.glob("*.md"))


def all_lessons():
    return [f for c in course_dirs() for f in lesson_files(c)]


def _id(path):
    return str(path.relative_to(COURSES_DIR))


def read_ini(course):
    parser = configparser.ConfigParser(interpolation=None)
    with open(course / "course.ini", encoding="utf-8") as fh:
        parser.read_file(fh)
    return parser


def split_lesson(path):
    """Return (subject, body) or fail with a clear message."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0].startswith("Subject: "), f"{path.name}: first line must start with 'Subject: '"
    subject = lines[0][len("Subject: "):].strip()
    assert subject, f"{path.name}: empty subject"
    if len(lines) > 1 and lines[1] in ("Support: yes", "Support: no"):  # the help line (docs/safety.md)
        lines = lines[:1] + lines[2:]
    assert len(lines) > 2 and lines[1] == "", f"{path.name}: subject must be followed by one blank line"
    assert lines[2].strip() != "", f"{path.name}: exactly one blank line expected after the subject"
    return subject, "\n".join(lines[2:])


def section(body, heading):
    """Text between `heading` and the next second-level heading."""
    start = body.index(heading + "\n") + len(heading) + 1
    nxt = re.search(r"^## ", body[start:], re.M)
    return body[start:start + nxt.start()] if nxt else body[start:]


_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
})


def normalise(text):
    """Lowercase word list: straight quotes, only letters/digits/apostrophes."""
    text = text.lower().translate(_QUOTES)
    text = re.sub(r"[^\w']|_", " ", text)
    return [w for w in (t.strip("'") for t in text.split()) if w]


def windows(words, n=WINDOW):
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


# ---------------------------------------------------------------- course.ini

def test_courses_exist():
    names = {c.name for c in course_dirs()}
    for name in MIN_LESSONS:
        assert name in names, f"missing course directory courses/{name}"


@pytest.mark.parametrize("course", course_dirs(), ids=lambda p: p.name)
def test_course_ini(course):
    parser = read_ini(course)
    assert parser.sections() == ["course"], f"{course.name}: only a [course] group is allowed"
    keys = set(parser["course"].keys())
    assert keys - OPTIONAL_KEYS == REQUIRED_KEYS, (
        f"{course.name}: missing {sorted(REQUIRED_KEYS - keys)}, "
        f"unexpected {sorted(keys - REQUIRED_KEYS - OPTIONAL_KEYS)}"
    )
    for key in REQUIRED_KEYS:
        value = parser["course"][key]
        assert value.strip(), f"{course.name}: empty value for {key}"
        assert "\n" not in value, f"{course.name}: {key} must fit on one line"
    assert "article" in parser["course"]["source"].lower(), f"{course.name}: source must name the article"
    assert re.fullmatch(r"\d\d:\d\d", parser["course"]["time"]), f"{course.name}: time must be HH:MM"
    assert parser["course"]["schedule"].startswith("FREQ="), f"{course.name}: schedule must be an RRULE"


# ------------------------------------------------------------ lesson layout

@pytest.mark.parametrize("course", course_dirs(), ids=lambda p: p.name)
def test_lessons_numbered_contiguously(course):
    files = lesson_files(course)
    assert len(files) >= MIN_LESSONS.get(course.name, 1), f"{course.name}: too few lessons ({len(files)})"
    numbers = []
    for f in files:
        m = LESSON_NAME.match(f.name)
        assert m, f"{course.name}: bad lesson file name {f.name} (want NN-slug.md)"
        numbers.append(int(m.group(1)))
    assert numbers == list(range(1, len(files) + 1)), f"{course.name}: lessons not numbered 01..NN: {numbers}"


@pytest.mark.parametrize("path", all_lessons(), ids=_id)
def test_lesson_header_and_headings(path):
    subject, body = split_lesson(path)
    assert len(subject) < 60, f"{path.name}: subject too long ({len(subject)} chars)"
    found = [line for line in body.split("\n") if line.startswith("## ")]
    for h in HEADINGS:
        assert found.count(h) == 1, f"{path.name}: heading {h!r} must appear exactly once"
    assert found == HEADINGS, f"{path.name}: headings must be exactly {HEADINGS} in order, got {found}"
    for h in HEADINGS:
        assert section(body, h).strip(), f"{path.name}: section {h!r} is empty"


@pytest.mark.parametrize("path", all_lessons(), ids=_id)
def test_lesson_markdown_rules(path):
    text = path.read_text(encoding="utf-8")
    assert "<" not in text, f"{path.name}: '<' found (no raw HTML or angle-bracket autolinks)"
    assert "{{" not in text and "}}" not in text, f"{path.name}: template braces found"
    assert "\t" not in text, f"{path.name}: tab character found"
    for n, line in enumerate(text.split("\n"), 1):
        assert line == line.rstrip(), f"{path.name}:{n}: trailing whitespace"
        assert len(line) < 200, f"{path.name}:{n}: line too long ({len(line)} chars)"


@pytest.mark.parametrize("path", all_lessons(), ids=_id)
def test_lesson_length(path):
    _, body = split_lesson(path)
    count = len(body.split())
    assert 200 <= count <= 400, f"{path.name}: body has {count} words, want 200-400"


@pytest.mark.parametrize("path", all_lessons(), ids=_id)
def test_small_step_has_duration(path):
    _, body = split_lesson(path)
    step = section(body, "## Try this")
    minutes = [int(n) for n in re.findall(r"\b(\d+)\s*(?:-\s*)?min(?:ute)?s?\b", step, re.I)]
    assert any(5 <= m <= 15 for m in minutes), f"{path.name}: small step must state 5-15 minutes, found {minutes}"


@pytest.mark.parametrize("path", all_lessons(), ids=_id)
def test_question_is_italic(path):
    _, body = split_lesson(path)
    question = section(body, "## A question to sit with").strip()
    assert re.search(r"(\*[^*\n]+\?\*|_[^_\n]+\?_)", question), f"{path.name}: question must be in *italics*"


# ------------------------------------------------------------------ overlap

def _overlap_targets():
    targets = []
    for course in course_dirs():
        ini = course / "course.ini"
        if ini.is_file():
            targets.append(ini)
        targets.extend(lesson_files(course))
    return targets


@pytest.fixture(scope="module")
def article_windows():
    if not ARTICLE.is_file():
        pytest.skip(f"article not found at {ARTICLE} (set COURSED_ARTICLE)")
    return set(windows(normalise(ARTICLE.read_text(encoding="utf-8"))))


def _texts(path):
    if path.name == "course.ini":
        parser = read_ini(path.parent)
        return [parser["course"][k] for k in parser["course"]]
    return [path.read_text(encoding="utf-8")]


@pytest.mark.parametrize("path", _overlap_targets(), ids=_id)
def test_no_overlap_with_article(path, article_windows):
    hits = []
    for text in _texts(path):
        for w in windows(normalise(text)):
            if w in article_windows:
                hits.append(" ".join(w))
    assert not hits, f"{_id(path)} copies {WINDOW}+ consecutive words from the article: {hits}"


@pytest.mark.parametrize("course", course_dirs(), ids=lambda c: c.name)
def test_next_time_except_in_the_last_lesson(course):
    """Every lesson but the last ends by naming the next one; the last one
    names none (no "next time", no "next step": the course ends there, and
    the complete mail offers what may follow)."""
    files = lesson_files(course)
    for f in files[:-1]:
        _, body = split_lesson(f)
        last = body.strip().split("\n\n")[-1]
        assert last.startswith("Next time"), f"{f.name}: last paragraph should say what comes next: {last[:60]!r}"
    _, body = split_lesson(files[-1])
    assert not re.search(r"next (time|step)", body, re.I), f"{files[-1].name}: the last lesson promises a next one"


def test_one_word_for_one_thing():
    """The courses write "break-up" and "mail", never "breakup" or "e-mail";
    each mail is a "step" (the layouts say "Step 3 of 14"), and no lesson
    calls itself a "lesson"."""
    for f in all_lessons():
        text = f.read_text(encoding="utf-8")
        for word in (r"\bbreakups?\b", r"\be-?mails?\b", r"\blessons?\b"):
            m = re.search(word, text, re.I)
            assert not m, f"{f.name}: {m.group(0)!r} (the courses say 'break-up', 'mail' and 'step')"
