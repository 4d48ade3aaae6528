"""Markdown that renders (issue 14): a lesson with a table, ~~strikethrough~~
and an https image with alt text passes `coursectl course check`, previews
with a <table>, <del> and an image no wider than the mail, and arrives so
through a real SMTP server: the HTML part parsed with html.parser, the text
part with the table's rows one a line in aligned columns. Images over
anything but https, without alt text or by a relative path, task lists and
footnotes are each refused by the check with one message naming file and
line (docs/course-check.md)."""
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import pytest

from conftest import COURSED, Env
from smtpsink import Sink

NOW = "2026-03-02T08:00:00Z"        # a Monday; the lesson's slot is 09:00 UTC
SLOT = "2026-03-02T09:00:00Z"
INI = ("[course]\ntitle = Markdown\nschedule = FREQ=DAILY\ntime = 09:00\n"
       "timezone = UTC\nsource = a test\n")
LESSON = """Subject: A week in minutes

Your week, in minutes:

| Day | Minutes | Note |
|:----|--------:|:----:|
| Monday | 5 | **easy** |
| Tuesday | 10 | [why](https://example.org/why) |
| Wednesday | 120 | ~~skip~~ |

That ~~was~~ is all, about ~5 minutes a day.

![A calm lake at dawn](https://example.org/lake.jpg)
"""
ROWS = [["Day", "Minutes", "Note"], ["Monday", "5", "easy"], ["Tuesday", "10", "why"],
        ["Wednesday", "120", "skip"]]


def course(env, slug, lesson):
    d = env.courses / slug
    (d / "lessons").mkdir(parents=True)
    (d / "course.ini").write_text(INI)
    (d / "lessons" / "01-a.md").write_text(lesson)
    return d


class Tree(HTMLParser):
    """The parts of an HTML body the tests look at: the rows of each table
    (cell texts), the text of each <del>, each <img>'s attributes, and the
    text of each <p>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.dels, self.imgs, self.paragraphs = [], [], [], []
        self.open = []                 # open elements that collect text

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self.tables[-1][-1].append("")
            self.open.append(tag)
        elif tag in ("del", "p"):
            (self.dels if tag == "del" else self.paragraphs).append("")
            self.open.append(tag)
        elif tag == "img":
            self.imgs.append(dict(attrs))

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()

    def handle_data(self, data):
        for tag in self.open:
            if tag in ("td", "th"):
                self.tables[-1][-1][-1] += data
            elif tag == "del":
                self.dels[-1] += data
            elif tag == "p":
                self.paragraphs[-1] += data


def lesson_html(html):
    """The lesson's part of a lesson.html page (the layout has tables of its
    own): what is inside <div class="lesson">."""
    m = re.search(r'<div class="lesson"[^>]*>(.*?)\n\s*</div>\s*(?:<p class="sign"|</td>)', html, re.S)
    assert m, html
    t = Tree()
    t.feed(m.group(1))
    return t


def check_html(html):
    t = lesson_html(html)
    assert len(t.tables) == 1, t.tables
    assert [[c.strip() for c in row] for row in t.tables[0]] == ROWS
    assert t.dels == ["skip", "was"]
    assert not any("|" in p for p in t.paragraphs), "a table was left as a paragraph of pipes"
    assert any("~5 minutes" in p for p in t.paragraphs), "a single tilde struck text"
    assert len(t.imgs) == 1
    img = t.imgs[0]
    assert img["src"] == "https://example.org/lake.jpg"
    assert img["alt"] == "A calm lake at dawn"
    style = img.get("style", "").replace(" ", "")
    assert "max-width:100%" in style and "height:auto" in style, img


def check_text(text):
    """The table of the text part: one row a line, a line of dashes under the
    header, every cell inside the span of dashes of its column."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Day"))
    header, dashes, rows = lines[start], lines[start + 1], lines[start + 2:start + 5]
    assert re.fullmatch(r"-+( +-+){2}", dashes), dashes
    spans = [m.span() for m in re.finditer(r"-+", dashes)]
    for line, cells in zip([header] + rows, ROWS):
        assert "|" not in line, line
        for (a, b), cell in zip(spans, cells):
            if cell == "why":
                cell = "why [1]"
            elif cell == "skip":
                cell = "~~skip~~"
            at = line.index(cell, a)
            assert a <= at and at + len(cell) <= b, (line, cell, (a, b))
    # Minutes is right-aligned: the numbers end where its dashes end
    for line in rows:
        number = re.search(r"\d+", line)
        assert number.end() == spans[1][1], line
    assert lines[start + 5] == ""
    assert "That ~~was~~ is all, about ~5 minutes a day." in text
    # links and pictures as numbered references (docs/rendering.md)
    assert "[A calm lake at dawn] [2]" in lines
    assert "[1] https://example.org/why" in lines and "[2] https://example.org/lake.jpg" in lines


def test_table_strikethrough_and_image_check_preview_and_send(tmp_path):
    with Sink() as sink:
        env = Env(tmp_path, smtp_port=sink.port)
        course(env, "md", LESSON)
        p = env.ctl("course", "check")
        assert p.stderr == "" and "1 course(s) ok" in p.stdout

        env.ctl("init", now=NOW)
        html = env.ctl("course", "preview", "md", "1", "--html", now=NOW).stdout
        check_html(html)
        text = env.ctl("course", "preview", "md", "1", "--text", now=NOW).stdout
        check_text(text)

        env.ctl("sub", "add", "ann@example.org", "--name", "Ann", now=NOW)
        env.ctl("enroll", "ann@example.org", "md", now=NOW)
        env.tick(SLOT)
        got = sink.lessons("ann@example.org")
    assert len(got) == 1
    msg = got[0]["msg"]
    assert msg.get_content_type() == "multipart/alternative"
    check_html(msg.get_body(("html",)).get_content())
    check_text(msg.get_body(("plain",)).get_content())


@pytest.mark.parametrize("line,message", [
    ("![a cat](http://example.org/cat.png)",
     "image 'http://example.org/cat.png' must be an https:// URL (write https://;"),
    ("![](https://example.org/dog.png)",
     "image 'https://example.org/dog.png' has no alt text: write ![what it shows](https://example.org/dog.png)"),
    ("![  ](https://example.org/dog.png)",
     "image 'https://example.org/dog.png' has no alt text"),
    ("![a bird](images/bird.png)",
     "image 'images/bird.png' must be an https:// URL (a lesson is sent without its files;"),
    ("![a dot](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk)",
     "image 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAA...' must be an https:// URL"),
    ("- [ ] buy milk", "a task list item is not supported in a lesson: '[ ]'"),
    ("Read this[^1].\n\nAnd more.", "a footnote is not supported in a lesson: '[^1]'"),
])
def test_each_unsupported_image_or_construct_is_one_message_with_its_line(tmp_path, line, message):
    env = Env(tmp_path)
    extra = "\n\n[^1]: https://example.org/note\n" if "[^1]" in line else "\n"
    course(env, "bad", f"Subject: Bad\n\nA first paragraph.\n\n{line}{extra}")
    p = env.ctl("course", "check", check=False)
    lines = p.stderr.replace(str(env.courses), "courses").splitlines()
    assert p.returncode == 1
    problems = [x for x in lines if not x.startswith("coursectl: ")]
    if "[^1]" in line:           # the reference and the note's text, each at its line
        assert problems[0].startswith(f"courses/bad/lessons/01-a.md:5: {message}"), problems
        assert problems[1].startswith("courses/bad/lessons/01-a.md:9: a footnote's text is not supported")
        assert len(problems) == 2
    else:
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"courses/bad/lessons/01-a.md:5: {message}"), problems


def test_a_broken_image_refuses_the_course_in_the_daemon(tmp_path):
    env = Env(tmp_path)
    course(env, "bad", "Subject: Bad\n\n| a | b |\n|---|---|\n| ![x](http://example.org/x.png) | y |\n")
    p = subprocess.run([COURSED, "-n", "-c", str(env.conf)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    err = p.stderr.replace(str(env.courses), "courses")
    assert "courses/bad/lessons/01-a.md:5: image 'http://example.org/x.png' must be an https:// URL" in err


def wide_png(path, width=1200, height=300):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_a_1200px_image_stays_inside_a_phone_screen(tmp_path):
    """The preview's HTML in headless Chromium at phone width, the image
    swapped for a local 1,200 px picture: the page is no wider than the
    window, the picture no wider than the mail's card."""
    env = Env(tmp_path)
    course(env, "md", LESSON)
    env.ctl("init", now=NOW)
    html = env.ctl("course", "preview", "md", "1", "--html", now=NOW).stdout
    wide_png(tmp_path / "wide.png")
    probe = ("<script>window.onload = function () { document.body.setAttribute('data-probe', "
             "document.documentElement.scrollWidth + ' ' + window.innerWidth + ' ' + "
             "document.querySelector('.lesson img').getBoundingClientRect().width); };</script></body>")
    page = tmp_path / "page.html"
    page.write_text(html.replace("https://example.org/lake.jpg", "wide.png").replace("</body>", probe))
    p = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--window-size=390,800",
                        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
                        "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'data-probe="(\d+) (\d+) ([\d.]+)"', p.stdout)
    assert m, p.stdout[-2000:] + p.stderr[-2000:]
    page_width, window, img = int(m.group(1)), int(m.group(2)), float(m.group(3))
    assert page_width <= window, f"the page is {page_width} px wide in a {window} px window"
    assert 100 < img < 600, img
