"""The inbound fixture set: mail as Gmail, Outlook, Apple Mail, Thunderbird
and others send it, automatic replies, hostile messages, and bounces from
Postfix, Exim, Sendmail, qmail, Exchange/Office 365, Gmail and Yahoo, each
with its expected classification (tests/fixtures/inbound/expected.json),
checked through the real `coursectl inbound --dry-run --json`."""
import json
import subprocess

import pytest

from conftest import COURSECTL, REPO, Env

FIXTURES = REPO / "tests" / "fixtures" / "inbound"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("fixtures"))
    env.courses.rmdir()
    env.courses.symlink_to(REPO / "courses")
    return env


def test_every_fixture_has_an_expectation():
    files = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.eml"))
    assert files == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(real, name):
    want = EXPECTED[name]
    p = subprocess.run([COURSECTL, "-c", str(real.conf), "inbound", "--dry-run", "--json"],
                       input=(FIXTURES / name).read_bytes(), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["kind"] == want["kind"], (got, want.get("note"))
    for key in ("command", "course", "tz", "token"):
        if key in want:
            assert got.get(key) == want[key], (key, got, want.get("note"))
    if "args" in want:
        assert (got.get("args") or "") == want["args"], (got, want.get("note"))
    if "name" in want:
        assert got.get("name") == want["name"], (got, want.get("note"))
    if want["kind"] == "bounce" and "bounces" in want:
        assert got["bounces"] == want["bounces"], (got, want.get("note"))
    if want["kind"] in ("auto-reply", "ignored", "bounce"):
        assert got["may_reply"] is False
