"""The lesson as a letter, looked at in headless Chromium (Debian's
chromium): lessons sent for real to the test SMTP server, their HTML part
taken out with Python's email package, shot at 390 px (a phone) and
1,200 px wide, in light and in dark mode (prefers-color-scheme, turned on
with --force-dark-mode). The screenshots stay under
build/artifacts/layout/ for a person to look at; what a script can check
is checked: no page is wider than its window, dark mode really darkens the
card and lightens the text, pictures are never wider than the mail, and
the last lesson has no "Next step" line and no pause help."""
import json
import re
import shutil
from html import escape

import pytest

from conftest import REPO, Env, write_course
from smtpsink import Sink
from test_html_render import ARTIFACTS as SCREENSHOTS, chromium, png_facts

NOW = "2026-03-02T10:00:00Z"
ARTIFACTS = SCREENSHOTS.parent / "layout"
WIDTHS = (390, 1200)
HEIGHT = 3200  # the last lesson, the longest, whole at 390 px
SCHEMES = {"light": [], "dark": ["--force-dark-mode"]}
WIDE = """Subject: A lesson that tries to be wide

Some text with a very long address in it:
https://example.org/a/very/long/path/that/goes/on/and/on/and/on/for/more/than/a/phone/is/wide/index.html
and a word that never ends: Donaudampfschifffahrtsgesellschaftskapitaenswitwenrentenversicherung.

| Day | What to do | Minutes | Why it helps, said at some length |
|---|---|--:|---|
| Monday | Walk around the block before breakfast | 15 | It clears the head before the day begins |

![A wide picture of a lake](https://example.invalid/lake-4000px.jpg)
"""
# Reads, after load, what the checks need of the mail in each frame.
PROBE = """<script>
window.addEventListener('load', function () {
  var out = {};
  document.querySelectorAll('iframe').forEach(function (f) {
    var d = f.contentDocument, card = d.querySelector('.card'), text = d.querySelector('.lesson p, .body p');
    out[f.id] = {
      scroll: d.documentElement.scrollWidth, inner: f.contentWindow.innerWidth,
      dark: f.contentWindow.matchMedia('(prefers-color-scheme: dark)').matches,
      card: getComputedStyle(card).backgroundColor, text: getComputedStyle(text).color,
      imgs: Array.from(d.images).map(function (i) { return i.getBoundingClientRect().width; }),
      cardWidth: card.getBoundingClientRect().width
    };
  });
  document.body.setAttribute('data-probe', JSON.stringify(out));
});
</script>"""


def luma(css):
    r, g, b = (int(x) for x in re.findall(r"\d+", css)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.fixture(scope="module")
def mails(tmp_path_factory):
    """name -> the HTML part of a mail sent for real: release's first and
    last lessons, the welcome, and a lesson written to be too wide."""
    tmp = tmp_path_factory.mktemp("layout")
    with Sink() as sink:
        env = Env(tmp, smtp_port=sink.port)
        env.courses.rmdir()
        shutil.copytree(REPO / "courses", env.courses)
        write_course(env.courses, "wide", 1, title="Wide")
        (env.courses / "wide" / "lessons" / "01-step-1.md").write_text(WIDE)
        env.ctl("init", now=NOW)
        last = len(list((REPO / "courses" / "release" / "lessons").glob("*.md")))
        for course, which in (("release", "1"), ("release", str(last)), ("release", "welcome"), ("wide", "1")):
            env.ctl("send-test", "reader@example.org", course, which, now=NOW)
        got = [m["msg"] for m in sink.messages]
    assert len(got) == 4
    names = ["lesson-first", "lesson-last", "welcome", "wide"]
    return {n: m.get_body(("html",)).get_content() for n, m in zip(names, got)}


def test_screenshots_at_phone_and_desktop_width_light_and_dark(mails, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in ("lesson-first", "lesson-last", "wide"):
        page = tmp_path / f"{name}.html"
        page.write_text(mails[name], encoding="utf-8")
        for width in WIDTHS:
            for scheme, flags in SCHEMES.items():
                if name == "wide" and width != 390:
                    continue
                shot = ARTIFACTS / f"{name}-{width}-{scheme}.png"
                shot.unlink(missing_ok=True)
                p = chromium(tmp_path, *flags, f"--window-size={width},{HEIGHT}", f"--screenshot={shot}", page.as_uri())
                assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
                w, h, distinct = png_facts(shot)
                assert (w, h) == (width, HEIGHT)
                assert distinct > 20, f"{shot} is blank"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_mail_is_wider_than_its_window_and_dark_mode_darkens(mails, tmp_path, scheme):
    # --dump-dom keeps its window at least 500 px wide, so each mail goes
    # into a frame of the width it is checked at
    frames = "".join(
        f'<iframe id="{name}-{w}" style="width:{w}px; height:1800px; border:0; display:block" '
        f'srcdoc="{escape(html, quote=True)}"></iframe>'
        for name, html in mails.items() for w in WIDTHS)
    page = tmp_path / "probe.html"
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{frames}{PROBE}</body></html>", encoding="utf-8")
    p = chromium(tmp_path, *SCHEMES[scheme], "--window-size=1300,2000", "--virtual-time-budget=5000",
                 "--dump-dom", page.as_uri())
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r'data-probe="([^"]*)"', p.stdout)
    assert m, p.stdout[-2000:]
    probe = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert set(probe) == {f"{n}-{w}" for n in mails for w in WIDTHS}
    for frame, got in probe.items():
        width = int(frame.rsplit("-", 1)[1])
        assert got["inner"] == width, (frame, got)
        assert got["scroll"] <= width, f"{frame}: the page is {got['scroll']} px wide in a {width} px window"
        assert got["cardWidth"] <= min(width, 600), (frame, got)
        assert all(w <= got["cardWidth"] for w in got["imgs"]), (frame, got)
        assert got["dark"] == (scheme == "dark"), (frame, got)
        if scheme == "dark":
            assert luma(got["card"]) < 60 and luma(got["text"]) > 180, (frame, got)
        else:
            assert luma(got["card"]) > 240 and luma(got["text"]) < 80, (frame, got)
    assert probe["wide-390"]["imgs"], "the wide lesson's picture is in the page"


def test_last_lesson_layout_has_no_next_step_and_no_pause(mails):
    first, last = mails["lesson-first"], mails["lesson-last"]
    assert "Next step:" in first and "Need a break?" in first and "subject=pause" in first
    assert "Next step" not in last and "Need a break?" not in last and "subject=pause" not in last
    for html in (first, last):
        assert re.search(r'<a href="https://courses\.example\.org/u/[^"]+"[^>]*>unsubscribe</a>', html, re.I)
        assert "prefers-color-scheme: dark" in html
