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


def test_slow_clients_from_one_address_do_not_take_the_pages_down(env):
    """200 connections from 127.0.0.2 that send a request one byte a second for 30 s ("slowloris");
    meanwhile normal requests from 127.0.0.1 keep being served: a client address holds at most
    [http] connections_per_ip of the connections."""
    import threading
    import time
    listen(env, "127.0.0.1:0")
    d = Daemon(env, NOW)
    stop = threading.Event()
    port = int(d.base.rsplit(":", 1)[1])
    held = []

    def attacker():
        socks = []
        for _ in range(200):
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(2)
                s.bind(("127.0.0.2", 0))
                s.connect(("127.0.0.1", port))
                socks.append(s)
            except OSError:
                s.close()
        held.append(len(socks))
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for i in range(30):                       # one byte a second on every socket, 30 s
            if stop.is_set():
                break
            for s in list(socks):
                try:
                    s.send(request[i:i + 1])
                except OSError:
                    socks.remove(s)
            time.sleep(1)
        for s in socks:
            s.close()

    t = threading.Thread(target=attacker)
    try:
        t.start()
        time.sleep(3)                                # the attack is in place
        served = 0
        tries = 0
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and tries < 31:
            tries += 1
            try:
                if health(d.base) == (200, "ok\n"):
                    served += 1
            except OSError:
                pass
            time.sleep(0.7)
        assert tries == 31 and served == 31, f"{served} of {tries} normal requests served"
    finally:
        stop.set()
        t.join(timeout=40)
        d.stop()


def test_headers_that_trickle_in_are_cut_at_header_timeout(env):
    """libmicrohttpd's own timeout restarts with every byte: a request whose headers take longer than
    [http] header_timeout is closed however steadily its bytes come."""
    import time
    listen(env, "127.0.0.1:0")
    env.conf.write_text(env.conf.read_text() + "header_timeout = 2s\n")
    d = Daemon(env, NOW)
    try:
        port = int(d.base.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        started = time.monotonic()
        closed = None
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
        for i in range(40):                       # one byte every 0.25 s: 10 s in all, bounded
            try:
                s.send(request[i:i + 1])
                s.settimeout(0.25)
                if s.recv(100) == b"":
                    closed = time.monotonic() - started
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = time.monotonic() - started
                break
        s.close()
        assert closed is not None and 1.5 <= closed <= 5, closed
        # a normal request is not cut
        assert health(d.base) == (200, "ok\n")
    finally:
        d.stop()
