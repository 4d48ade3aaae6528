"""A real Postfix instance of its own for integration tests.

It has its own config_directory, queue_directory and data_directory in a
scratch folder, listens only on 127.0.0.1 at a port picked at run time, and
is stopped by stop() (the fixture calls it also when a test fails). What
coursed needs of Postfix is not written here: it is read from
contrib/postfix/ (the files the README quotes), with only the paths and
the pipe's user replaced for the test. What is written here is the rest of
an ordinary Postfix: its services, a local domain for unknown users, and
short retry times so that a flush retries at once.

Needs root (Postfix's master runs as root and drops privileges); where
Postfix cannot start, start() raises Unavailable and the tests skip saying
why."""
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from smtpsink import free_port

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib" / "postfix"

# Postfix's own services, as in Debian's master.cf but without chroot (the
# scratch queue has no chroot jail). The SMTP listener and the coursed pipe
# are added by Postfix.start().
SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Unavailable(Exception):
    """Postfix is not installed or cannot start here."""


def snippet(name):
    """The lines of contrib/postfix/NAME, as the README quotes them."""
    return (CONTRIB / name).read_text()


class Postfix:
    """One Postfix on 127.0.0.1:port, routing the course domain to the real
    coursectl inbound as `user`, and `transports` (domain -> nexthop) for
    the test's other domains. local.test is its local domain, where every
    user is unknown (the DSN case)."""

    def __init__(self, root, coursectl, coursed_conf, user, transports, local_domain="local.test"):
        self.root = Path(root)
        self.etc = self.root / "etc"
        self.queue = self.root / "queue"
        self.data = self.root / "data"
        self.log = self.root / "maillog"
        self.coursectl = coursectl
        self.conf = coursed_conf
        self.user = user
        self.transports = transports
        self.local_domain = local_domain
        self.port = None
        self.started = False

    def _ours(self, text):
        """The README's lines with the paths of this test."""
        return (text.replace("/etc/postfix/", f"{self.etc}/")
                .replace("user=coursed", f"user={self.user}")
                .replace("/usr/bin/coursectl", str(self.coursectl))
                .replace("/etc/coursed/coursed.conf", str(self.conf)))

    def _run(self, *args, check=True, timeout=60):
        p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise Unavailable(f"{' '.join(args)} -> {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
        return p

    def start(self):
        if not shutil.which("postfix") or not os.path.exists("/usr/sbin/postconf"):
            raise Unavailable("Postfix is not installed (apt-get install postfix)")
        if os.geteuid() != 0:
            raise Unavailable("Postfix's master must start as root; run the tests as root (CI does)")
        for d in (self.etc, self.queue, self.data):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        shutil.chown(self.data, "postfix")   # data_directory is the mail_owner's
        self.port = free_port()
        main = (
            "# the test's Postfix: its own directories, loopback only\n"
            "compatibility_level = 3.6\n"
            f"queue_directory = {self.queue}\n"
            f"data_directory = {self.data}\n"
            "mail_owner = postfix\n"
            "setgid_group = postdrop\n"
            f"maillog_file = {self.log}\n"
            f"maillog_file_prefixes = {self.root}\n"
            "inet_interfaces = 127.0.0.1\n"
            "inet_protocols = ipv4\n"
            # the test's own client is "local"; a client on 127.0.0.2 is
            # the outside world, as remote MTAs and subscribers are
            "mynetworks = 127.0.0.1/32\n"
            "myhostname = mx.local.test\n"
            f"mydestination = {self.local_domain}\n"
            f"myorigin = {self.local_domain}\n"
            # every local user unknown: accepted at RCPT, bounced by
            # local(8) with a real DSN
            "alias_maps =\nalias_database =\nlocal_recipient_maps =\n"
            "smtp_dns_support_level = disabled\n"
            "smtpd_peername_lookup = no\n"
            # retry at once when flushed; warn of a delay after a second
            "minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\nqueue_run_delay = 1s\n"
            "delay_warning_time = 1s\n"
            "smtp_connect_timeout = 5s\n"
            "biff = no\n"
            "# coursed's lines, from contrib/postfix/main.cf.snippet\n"
            + self._ours(snippet("main.cf.snippet")))
        (self.etc / "main.cf").write_text(main)
        master = (f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + SERVICES
                  + self._ours(snippet("master.cf.snippet")))
        (self.etc / "master.cf").write_text(master)
        transport = self._ours(snippet("transport")) + "".join(
            f"{dom} {hop}\n" for dom, hop in self.transports.items())
        (self.etc / "transport").write_text(transport)
        self._run("postmap", "-c", str(self.etc), f"hash:{self.etc}/transport")
        self._run("postfix", "-c", str(self.etc), "check", check=False)
        self._run("postfix", "-c", str(self.etc), "start")
        self.started = True
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(512).startswith(b"220"):
                        return self.port
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"Postfix started but does not answer on 127.0.0.1:{self.port}:\n"
                                  + self.log_tail())
            time.sleep(0.1)

    def stop(self):
        if self.started:
            self._run("postfix", "-c", str(self.etc), "stop", check=False)
            # bounded: master exits once its children have
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                p = self._run("postfix", "-c", str(self.etc), "status", check=False)
                if p.returncode != 0:
                    break
                time.sleep(0.1)
            else:
                self._run("postfix", "-c", str(self.etc), "abort", check=False)
            self.started = False

    def flush(self):
        """Retry every deferred mail now (postqueue -f), not at the next queue run."""
        self._run("postqueue", "-c", str(self.etc), "-f", check=False)

    def queued(self):
        """The mails in the queue, one dict each (postqueue -j)."""
        p = self._run("postqueue", "-c", str(self.etc), "-j", check=False)
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def purge(self):
        """Delete every queued mail (postsuper -d ALL)."""
        self._run("postsuper", "-c", str(self.etc), "-d", "ALL", check=False)

    def log_text(self):
        """The whole mail log of this instance so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no maillog)"

    def wait(self, predicate, what, timeout=60):
        """Poll predicate (flushing the queue between tries) until it holds;
        bounded by timeout seconds. Raises AssertionError with the mail log."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; Postfix log:\n{self.log_tail()}")
            self.flush()
            time.sleep(0.2)
