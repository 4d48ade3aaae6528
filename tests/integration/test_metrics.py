"""/metrics in the Prometheus text format: the real coursed after a real
send (one lesson delivered, one bounced at SMTP time, one deferred), parsed
by a small parser of the text format, its counters compared with what the
SMTP server received and the database holds."""
import re
import subprocess
import time
from datetime import datetime, timezone

import pytest

from conftest import COURSECTL, write_course
from pages import Daemon
from smtpsink import Sink

NOW = "2026-05-06T07:00:00Z"          # Wed 09:00 CEST: lesson 1 of everyone
T0 = "2026-05-04T10:00:00Z"

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf'^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)$')


def parse(text):
    """{(name, ((label, value), ...)): float}, after checking every line: HELP and TYPE come before the
    samples of their family, each family has both, and every other line is `name{labels} value`."""
    assert text.endswith("\n")
    helps, types, samples = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and help_text and name not in helps, line
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped") and name not in types, line
            assert name in helps, f"TYPE before HELP: {line}"
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.groups()
            family = re.sub(r"_(sum|count|bucket)$", "", name) if name not in types else name
            assert family in types, f"sample before its TYPE: {line}"
            pairs = tuple(tuple(p.split("=", 1)) for p in re.findall(LABEL, labels or ""))
            key = (name, tuple((k, v.strip('"')) for k, v in pairs))
            assert key not in samples, f"duplicate sample {line}"
            samples[key] = float(value)
    assert set(helps) == set(types)
    return samples


def decide(envelope, msg, attempt):
    if envelope.rcpt_tos == ["bob@example.org"]:
        return "550 5.1.1 no such user"
    if envelope.rcpt_tos == ["cat@example.org"]:
        return "451 4.3.0 try later"
    return None


@pytest.fixture
def sink():
    s = Sink(decide)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    e.conf.write_text(e.conf.read_text().replace("listen = \n", "listen = 127.0.0.1:0\n"))
    write_course(e.courses, "test", 3)
    e.ctl("init", now=T0)
    for who in ("ann", "bob", "cat"):
        e.ctl("sub", "add", f"{who}@example.org", now=T0)
        e.ctl("enroll", f"{who}@example.org", "test", "--no-welcome", now=T0)
    e.tick(NOW)
    return e


def test_metrics_parse_and_match_a_real_send(env, sink):
    # one inbound mail, as the MTA pipe hands it over
    raw = (b"From: ann@example.org\r\nTo: test@courses.example.org\r\nSubject: status\r\n"
           b"Message-ID: <m1@client.example>\r\nDate: Wed, 6 May 2026 09:00:00 +0200\r\n\r\nstatus\r\n")
    p = subprocess.run([COURSECTL, "-c", str(env.conf), "--now", NOW, "inbound"], input=raw, capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    d = Daemon(env, NOW)
    try:
        deadline = time.monotonic() + 20
        while True:
            status, headers, text = d.request("/metrics")
            assert status == 200, text
            m = parse(text)
            if m.get(("coursed_tick_duration_seconds_count", ()), 0) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        d.stop()
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    course = (("course", "test"),)
    assert len(sink.lessons()) == 1
    assert m[("coursed_lessons_sent_total", course)] == len(sink.lessons()) == 1
    assert m[("coursed_bounces_total", course)] == 1
    assert m[("coursed_lessons_deferred", course)] == 1
    assert env.sql("SELECT count(*) FROM deliveries WHERE state = 'deferred'") == [(1,)]
    in_flight = env.sql("SELECT count(*) FROM deliveries WHERE state IN ('queued', 'deferred', 'sending')")[0][0]
    assert m[("coursed_queue_depth", (("kind", "lessons"),))] == in_flight
    assert m[("coursed_inbound_messages_total", ())] == 1
    assert m[("coursed_tick_duration_seconds_count", ())] >= 1
    assert m[("coursed_tick_duration_seconds_sum", ())] >= 0
    assert ("coursed_oldest_due_seconds", ()) in m


def test_metrics_only_for_allowed_addresses(env):
    env.conf.write_text(env.conf.read_text() + "metrics_allow = 192.0.2.0/24\n")
    d = Daemon(env, NOW)
    try:
        status, _, text = d.request("/metrics")
        assert status == 403 and "coursed_" not in text
        assert d.request("/healthz")[0] == 200
    finally:
        d.stop()


def test_bad_metrics_allow_is_refused(env):
    env.conf.write_text(env.conf.read_text() + "metrics_allow = 127.0.0.1, not-a-net\n")
    from conftest import COURSED
    p = subprocess.run([COURSED, "-d", "-c", str(env.conf), "--now", NOW], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0 and "[http] metrics_allow" in p.stderr and "'not-a-net'" in p.stderr
