"""[http] listen with several addresses and IPv6, read by GLib: the real
coursed listens on each (port 0: the kernel picks, the log says which) and
refuses a bad list naming the setting and the bad part."""
import socket
import subprocess
import urllib.request

import pytest

from conftest import COURSED
from pages import Daemon

NOW = "2026-05-04T10:00:00Z"


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def env(env_factory):
    e = env_factory()
    e.ctl("init", now=NOW)
    return e


def listen(env, value):
    env.conf.write_text(env.conf.read_text().replace("listen = \n", f"listen = {value}\n"))


def health(base):
    with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
        return r.status, r.read().decode()


def test_two_ipv4_addresses(env):
    listen(env, "127.0.0.1:0, 127.0.0.2:0")
    d = Daemon(env, NOW, expect=2)
    try:
        bases = d.bases()
        assert [b.split("//")[1].rsplit(":", 1)[0] for b in bases] == ["127.0.0.1", "127.0.0.2"]
        for b in bases:
            assert health(b) == (200, "ok\n")
    finally:
        d.stop()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_and_ipv4_together(env):
    listen(env, "[::1]:0, 127.0.0.1:0")
    d = Daemon(env, NOW, expect=2)
    try:
        v6, v4 = d.bases()
        assert v6.startswith("http://[::1]:") and v4.startswith("http://127.0.0.1:")
        assert health(v6) == (200, "ok\n")
        assert health(v4) == (200, "ok\n")
        # the IPv6 listener is only on ::1: the same port on IPv4 is not ours
        port = int(v6.rsplit(":", 1)[1])
        with socket.create_connection(("::1", port), timeout=5):
            pass
    finally:
        d.stop()


@pytest.mark.parametrize("value,part", [
    ("127.0.0.1:8025, nonsense", "nonsense"),
    ("localhost:8025", "localhost"),
    ("[::1]", "[::1]"),
    ("127.0.0.1:99999", "127.0.0.1:99999"),
    ("::1:8025", "::1:8025"),
])
def test_bad_listen_is_refused_naming_setting_and_part(env, value, part):
    listen(env, value)
    p = subprocess.run([COURSED, "-d", "-c", str(env.conf), "--now", NOW], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "[http] listen" in p.stderr and f"'{part}'" in p.stderr, p.stderr
    assert "HTTP pages on" not in p.stderr
