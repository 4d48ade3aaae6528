"""A real SMTP server for integration tests: aiosmtpd on 127.0.0.1.

The sink records every message it accepts (envelope, raw bytes, parsed
message) and every reply it refuses with.  A test can make it refuse
chosen messages with a callable `decide(envelope, msg, attempt)` that
returns None to accept or an SMTP reply such as "451 4.3.0 try later".
"""
import email
import email.policy
import socket
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class _NoDelaySMTP(SMTP):
    """Replies go out at once (TCP_NODELAY), as a real MTA's do: without it
    Nagle's algorithm and the client's delayed ACK stall pipelined sessions
    by 40 ms per message."""

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class _Controller(Controller):
    def factory(self):
        return _NoDelaySMTP(self.handler, **self.SMTP_kwargs)


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (the kernel picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        key = (msg.get("Message-ID"), tuple(envelope.rcpt_tos))
        with self.sink.lock:
            attempt = self.sink.attempts.get(key, 0) + 1
            self.sink.attempts[key] = attempt
        verdict = self.sink.decide(envelope, msg, attempt) if self.sink.decide else None
        with self.sink.lock:
            if verdict:
                self.sink.refused.append({"msg": msg, "reply": verdict, "rcpts": list(envelope.rcpt_tos)})
                return verdict
            self.sink.messages.append({
                "mail_from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "raw": raw,
                "msg": msg,
                "at": time.monotonic(),
            })
        return "250 2.0.0 OK"


class Sink:
    def __init__(self, decide=None):
        self.decide = decide
        self.messages = []
        self.refused = []
        self.attempts = {}
        self.lock = threading.Lock()
        self.controller = None
        self.port = None

    def start(self):
        last = None
        for _ in range(10):
            port = free_port()
            ctl = _Controller(_Handler(self), hostname="127.0.0.1", port=port,
                             server_hostname="localhost", ready_timeout=10)
            try:
                ctl.start()
            except Exception as exc:  # the port was taken in between: pick another
                last = exc
                time.sleep(0.05)
                continue
            self.controller, self.port = ctl, port
            return port
        raise RuntimeError(f"could not start the SMTP sink: {last}")

    def lessons(self, rcpt=None):
        """The lesson mails received (those with X-Course-Lesson), in order."""
        with self.lock:
            return [m for m in self.messages if m["msg"]["X-Course-Lesson"]
                    and (rcpt is None or m["rcpts"] == [rcpt])]

    def system(self, rcpt=None):
        """The system mails received (welcome, confirm, replies), in order."""
        with self.lock:
            return [m for m in self.messages if not m["msg"]["X-Course-Lesson"]
                    and (rcpt is None or m["rcpts"] == [rcpt])]

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
