"""The HTML parts, opened in headless Chromium (Debian's chromium): each
renders without console or network errors, the DOM holds the lesson, and a
screenshot is saved under build/artifacts/screenshots/ for a person to look
at (desktop 800 px and phone 375 px wide)."""
import email
import email.policy
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import BUILD, REPO, Env

NOW = "2026-03-02T10:00:00Z"
ARTIFACTS = Path(os.environ.get("COURSED_BUILD_DIR", BUILD)).resolve() / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    env = Env(tmp)
    env.courses.rmdir()
    env.courses.symlink_to(REPO / "courses")
    env.ctl("init", now=NOW)
    return env


def chromium(tmp, *args):
    profile = tmp / "profile"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp)
    shutil.rmtree(profile, ignore_errors=True)
    return p


def png_facts(path):
    """(width, height, distinct byte values in the first rows): enough to
    tell a real page from a blank or broken screenshot, with the stdlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    return w, h, len(set(raw[: w * 4 * 200]))


PAGES = [("release", "1"), ("release", "13"), ("leaving-kindly", "3"),
         ("release", "welcome"), ("release", "confirm"), ("release", "help")]


@pytest.mark.parametrize("slug,which", PAGES)
def test_html_part_renders_in_chromium(real, tmp_path, slug, which):
    raw = real.ctl_bytes("course", "preview", slug, which, "--to", "reader@example.org",
                         "--name", "Zoë Reader", now=NOW)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()
    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Zoë Reader" in dom.stdout or which == "confirm"
    if which.isdigit():
        assert "<h2>Try this</h2>" in dom.stdout
    errors = [l for l in dom.stderr.splitlines()
              if "CONSOLE" in l or "Failed to load resource" in l or "net::ERR_" in l]
    assert not errors, errors

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (800, 375):
        shot = ARTIFACTS / f"{slug}-{which}-{width}.png"
        p = chromium(tmp_path, f"--window-size={width},1600", f"--screenshot={shot}", page.as_uri())
        assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
        w, h, distinct = png_facts(shot)
        assert (w, h) == (width, 1600)
        assert distinct > 20, "the screenshot is blank"
