"""coursed as a long-running daemon: systemd notification, SIGHUP reload
(a broken config is refused and the old one keeps running), SIGTERM, the
single-instance lock, the config check, and SMTP with STARTTLS and AUTH
against a real server that speaks them (aiosmtpd)."""
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult

from conftest import COURSED, write_course
from smtpsink import Sink, _Controller, _Handler, free_port

NOW = "2026-05-04T07:00:00Z"        # a Monday, 09:00 Berlin: lesson 1 is due


def start(env, *extra, notify=None):
    environ = dict(os.environ)
    if notify:
        environ["NOTIFY_SOCKET"] = notify
    return subprocess.Popen([COURSED, "-d", "-c", str(env.conf), "--now", NOW, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environ)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.stderr.read().decode(errors="replace")


def recv_until(sock, word, timeout=20):
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(data)
        if word in data:
            return got
    raise AssertionError(f"no {word!r} from coursed; got {got}")


@pytest.fixture
def maildir_env(env_factory):
    env = env_factory(transport="maildir")
    write_course(env.courses, "test", 2)
    env.ctl("init", now=NOW)
    env.ctl("sub", "add", "ann@example.org", now=NOW)
    env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
    return env


def test_notify_reload_and_term(maildir_env, tmp_path):
    env = maildir_env
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    p = start(env, notify=path)
    try:
        assert any("READY=1" in m for m in recv_until(sock, "READY=1"))
        # a good reload
        p.send_signal(signal.SIGHUP)
        recv_until(sock, "RELOADING=1")
        recv_until(sock, "READY=1")
        # a broken config is refused; the running one stays
        good = env.conf.read_text()
        env.conf.write_text(good + "[coursed]\nno_such_key = 1\n")
        p.send_signal(signal.SIGHUP)
        recv_until(sock, "READY=1")
        assert p.poll() is None, "a broken config stopped coursed"
        env.conf.write_text(good)
        # the lock: a second coursed on the same database refuses to run
        second = subprocess.run([COURSED, "-d", "-c", str(env.conf), "--once", "--now", NOW],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 75
        assert "already running" in second.stderr
        p.send_signal(signal.SIGTERM)
        recv_until(sock, "STOPPING=1")
        p.wait(timeout=30)
        assert p.returncode == 0
    finally:
        log = stop(p)
        sock.close()
    assert "reload refused" in log and "no_such_key" in log
    # it delivered while running: the lesson is in the Maildir
    assert len(list((env.dir / "outbox" / "new").iterdir())) == 1


def test_config_check(env_factory):
    env = env_factory(transport="maildir")
    write_course(env.courses, "test", 1)
    ok = subprocess.run([COURSED, "-n", "-c", str(env.conf)], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    env.conf.write_text(env.conf.read_text() + "[smtp]\nport = 99999\n")
    bad = subprocess.run([COURSED, "-n", "-c", str(env.conf)], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1
    assert str(env.conf) in bad.stderr and "[smtp] port" in bad.stderr


def make_cert(tmp):
    key, crt = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True, timeout=60)
    return key, crt


class AuthSink(Sink):
    """aiosmtpd with STARTTLS (required) and AUTH PLAIN/LOGIN (only over TLS)."""

    def __init__(self, key, crt, user, password):
        super().__init__()
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(str(crt), str(key))
        self.user, self.password = user, password
        self.logins = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == self.user and auth_data.password.decode() == self.password
        self.logins.append((auth_data.login.decode(), ok, session.ssl is not None))
        return AuthResult(success=ok)

    def start(self):
        self.port = free_port()
        self.controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      server_hostname="localhost", ready_timeout=10,
                                      tls_context=self.ctx, require_starttls=True,
                                      authenticator=self.authenticate, auth_required=True,
                                      auth_require_tls=True)
        self.controller.start()
        return self.port


@pytest.mark.parametrize("password,delivered", [("s3cret pass", True), ("wrong", False)])
def test_starttls_and_auth(env_factory, tmp_path, password, delivered):
    key, crt = make_cert(tmp_path)
    sink = AuthSink(key, crt, "courses", "s3cret pass")
    sink.start()
    try:
        (tmp_path / "pw").write_text(password + "\n")
        os.chmod(tmp_path / "pw", 0o600)
        env = env_factory(extra_conf=(f"[smtp]\nhost = localhost\nport = {sink.port}\nstarttls = required\n"
                                      f"ca_file = {crt}\nuser = courses\npassword_file = {tmp_path / 'pw'}\n"
                                      "timeout = 5s\n"))
        write_course(env.courses, "test", 1)
        env.ctl("init", now=NOW)
        env.ctl("sub", "add", "ann@example.org", now=NOW)
        env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
        p = env.tick(NOW)
    finally:
        sink.stop()
    assert sink.logins and all(tls for _, _, tls in sink.logins), "AUTH outside TLS"
    if delivered:
        assert len(sink.lessons("ann@example.org")) == 1
        assert env.sql("SELECT state FROM deliveries") == [("sent",)]
    else:
        assert sink.lessons() == []
        assert env.sql("SELECT state FROM deliveries") == [("deferred",)]
    assert password not in p.stderr, "the SMTP password reached the log"


def test_starttls_required_refuses_plain_server(env_factory, sink):
    env = env_factory(extra_conf=f"[smtp]\nhost = 127.0.0.1\nport = {sink.port}\nstarttls = required\ntimeout = 20s\n")
    write_course(env.courses, "test", 1)
    env.ctl("init", now=NOW)
    env.ctl("sub", "add", "ann@example.org", now=NOW)
    env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
    env.tick(NOW)
    assert sink.messages == [], "sent in clear text although STARTTLS is required"
    assert env.sql("SELECT state FROM deliveries") == [("deferred",)]


def test_reload_with_auth_keeps_sending(env_factory, tmp_path):
    """SIGHUP with [smtp] user and password_file set: the reload opens the
    new transport before it frees the old one, and closing the old one used
    to clear the process-wide password the new one had just set; the next
    delivery then crashed inside libESMTP's SASL plugin. Now the daemon
    reloads and goes on delivering over AUTH."""
    key, crt = make_cert(tmp_path)
    sink = AuthSink(key, crt, "courses", "s3cret pass")
    sink.start()
    try:
        (tmp_path / "pw").write_text("s3cret pass\n")
        os.chmod(tmp_path / "pw", 0o600)
        env = env_factory(extra_conf=(f"[smtp]\nhost = localhost\nport = {sink.port}\nstarttls = required\n"
                                      f"ca_file = {crt}\nuser = courses\npassword_file = {tmp_path / 'pw'}\n"
                                      "timeout = 5s\n[coursed]\ntick_interval = 1s\n"))
        write_course(env.courses, "test", 2, schedule="FREQ=DAILY")
        env.ctl("init", now=NOW)
        env.ctl("sub", "add", "ann@example.org", now=NOW)
        env.ctl("sub", "add", "bob@example.org", now=NOW)
        env.ctl("enroll", "ann@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
        p = subprocess.Popen([COURSED, "-d", "-c", str(env.conf), "--now", NOW], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while not sink.lessons("ann@example.org") and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        env.ctl("enroll", "bob@example.org", "test", "--no-welcome", now="2026-05-03T12:00:00Z")
        deadline = time.monotonic() + 20
        while not sink.lessons("bob@example.org") and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        alive = p.poll() is None
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    finally:
        sink.stop()
    assert alive, f"coursed died after SIGHUP: {p.returncode}\n{err[-2000:]}"
    assert "reloaded" in err
    assert len(sink.lessons("bob@example.org")) == 1, err[-2000:]
