"""coursed behind a real Exim, wired with the README's lines
(contrib/exim/router and contrib/exim/transport, only the paths and the
pipe's user replaced): Exim takes each mail on stdin (-odf: delivered in
the foreground, no daemon, no port) and pipes it to the real coursectl
inbound. Checks what broke with Debian 12's Exim 4.96: a taint-free pipe
command (no "Tainted arg" bounce), the envelope from $SENDER/$RECIPIENT,
caseful_local_part, a null-sender DSN.

Runs where exim4 is installed (or COURSED_EXIM names an exim binary), as
root; skipped, saying so, elsewhere. Debian's Exim and Postfix packages
exclude each other and CI installs Postfix, so CI skips this test."""
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import COURSECTL, COURSED, REPO, Env, write_course
from smtpsink import Sink

UTC = timezone.utc
USER = "nobody"
DOMAIN = "courses.example.org"
CONTRIB = REPO / "contrib" / "exim"


def exim_binary():
    return os.environ.get("COURSED_EXIM") or shutil.which("exim4") or (
        "/usr/sbin/exim4" if os.path.exists("/usr/sbin/exim4") else None)


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_user():
    pw = pwd.getpwnam(USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def test_readme_quotes_the_exim_lines_verbatim():
    readme = (REPO / "README.md").read_text()
    for name in ("router", "transport"):
        assert (CONTRIB / name).read_text() in readme, f"README.md does not quote contrib/exim/{name} verbatim"


def test_exim_pipe_command_has_no_tainted_expansion():
    """What Exim 4.94+ refuses at delivery ("Tainted arg N for coursed_pipe
    transport command"), checked without Exim: the command may expand no
    variable of the message; the envelope comes from the environment."""
    command = next(l for l in (CONTRIB / "transport").read_text().splitlines()
                   if l.strip().startswith("command ="))
    stripped = command.replace("\\$SENDER", "").replace("\\$RECIPIENT", "")
    assert "$" not in stripped, command
    router = (CONTRIB / "router").read_text()
    assert "caseful_local_part" in router


class Exim:
    def __init__(self, root, binary, ctl_bin, conf):
        self.root, self.binary = Path(root), binary
        self.cfg = self.root / "exim.conf"
        self.spool = self.root / "spool"
        self.logdir = self.root / "log"
        self.ctl_bin, self.conf = ctl_bin, conf

    def write(self):
        self.spool.mkdir(parents=True)
        self.logdir.mkdir()
        if _has_user("Debian-exim"):               # Debian's exim user writes its spool and log
            for d in (self.spool, self.logdir):
                shutil.chown(d, "Debian-exim")
        def ours(text):
            """The README's lines with this test's paths and user."""
            return (text.replace("/usr/bin/coursectl", str(self.ctl_bin))
                    .replace("/etc/coursed/coursed.conf", str(self.conf))
                    .replace("user = coursed", f"user = {USER}"))
        self.cfg.write_text(
            f"primary_hostname = mx.local.test\n"
            f"exim_path = {self.binary}\n"
            f"qualify_domain = local.test\n"
            f"domainlist local_domains = {DOMAIN}\n"
            f"spool_directory = {self.spool}\n"
            f"log_file_path = {self.logdir}/%slog\n"
            # LD_LIBRARY_PATH: only when the test runs an unpacked (not
            # installed) exim binary, whose libraries sit beside it
            f"keep_environment = {'LD_LIBRARY_PATH' if os.environ.get('LD_LIBRARY_PATH') else ''}\n"
            "acl_not_smtp = acl_accept\n"
            "begin acl\nacl_accept:\n  accept\n"
            "begin routers\n" + ours((CONTRIB / "router").read_text()) +
            "begin transports\n" + ours((CONTRIB / "transport").read_text()) +
            "begin retry\n*   *   F,1h,10m\n")
        os.chmod(self.cfg, 0o644)

    def run(self, *args, data=None):
        return subprocess.run([self.binary, "-C", str(self.cfg), *args], input=data, capture_output=True,
                              timeout=60)

    def deliver(self, sender, rcpt, raw):
        """Submit on stdin (queued, -odq), then deliver that message as root
        (-M id): the same delivery Exim's queue runner makes, without
        waiting for one."""
        p = self.run("-odq", "-oi", "-f", sender, "--", rcpt, data=raw)
        if p.returncode != 0:
            return p
        mid = self.mainlog().strip().splitlines()[-1].split()[2]
        return self.run("-M", mid)

    def mainlog(self):
        try:
            return (self.logdir / "mainlog").read_text(errors="replace")
        except OSError:
            return "(no mainlog)"


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def mta():
    binary = exim_binary()
    if not binary:
        pytest.skip("Exim is not installed (Debian's exim4 conflicts with the Postfix the other "
                    "MTA test needs; install exim4-daemon-light to run this test)")
    if os.geteuid() != 0:
        pytest.skip("the Exim test runs Exim as root (-C with delivery to a pipe as another user)")
    root = Path(tempfile.mkdtemp(prefix="coursed-exim-"))
    os.chmod(root, 0o755)
    sink = Sink()
    try:
        sink.start()
        home = root / "coursed"
        home.mkdir()
        bindir = root / "bin"
        bindir.mkdir()
        ctl_bin, daemon_bin = bindir / "coursectl", bindir / "coursed"
        shutil.copy2(COURSECTL, ctl_bin)
        shutil.copy2(COURSED, daemon_bin)
        shutil.copytree(REPO / "templates", root / "templates")
        env = Env(home, smtp_port=sink.port)
        env.conf.write_text(env.conf.read_text().replace(f"templates = {REPO / 'templates'}\n",
                                                         f"templates = {root / 'templates'}\n"))
        write_course(env.courses, "first", 3, schedule="FREQ=DAILY", tz="UTC")
        subprocess.run(["chown", "-R", f"{USER}:", str(home)], check=True)
        ex = Exim(root / "exim", binary, ctl_bin, env.conf)
        ex.write()
        p = ex.run("-bV")
        assert p.returncode == 0, f"Exim refuses the README's lines:\n{p.stdout.decode()}{p.stderr.decode()}"
        yield SimpleNamespace(env=env, exim=ex, sink=sink, ctl_bin=str(ctl_bin), daemon_bin=str(daemon_bin))
    finally:
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)


def now():
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)


def ctl(mta, *args):
    cmd = [mta.ctl_bin, "-c", str(mta.env.conf), "--now", iso(now()), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **as_user())
    assert p.returncode == 0, f"{cmd} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def tick(mta, at):
    cmd = [mta.daemon_bin, "-d", "-c", str(mta.env.conf), "--once", "--now", iso(at)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **as_user())
    assert p.returncode == 0, f"{cmd} -> {p.returncode}\n{p.stderr}"


def sql(mta, query, *params):
    code = ("import json, sqlite3, sys\ncon = sqlite3.connect(sys.argv[1])\n"
            "print(json.dumps(con.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()))\n")
    p = subprocess.run(["/usr/bin/python3", "-c", code, str(mta.env.db), query, json.dumps(params)],
                       capture_output=True, text=True, timeout=30, **as_user())
    assert p.returncode == 0, p.stderr
    return [tuple(r) for r in json.loads(p.stdout)]


def delivered(mta, p):
    """The last delivery went to the pipe and succeeded: no bounce (**),
    no deferral (==), no taint refusal."""
    log = mta.exim.mainlog()
    assert p.returncode == 0, f"exim -> {p.returncode}\n{p.stderr.decode()}\n{log}"
    last = log.strip().splitlines()[-3:]
    assert any(" => " in l and "T=coursed_pipe" in l for l in last), log
    assert "Tainted" not in log and not any(" ** " in l or " == " in l for l in last), log


def test_subscribe_and_confirm_through_exim(mta):
    raw = (f"From: Ana <ana@people.test>\r\nTo: first@{DOMAIN}\r\nSubject: subscribe\r\n"
           "Message-ID: <ex-sub-1@people.test>\r\n\r\nsubscribe\r\n").encode()
    ctl(mta, "init")
    delivered(mta, mta.exim.deliver("ana@people.test", f"first@{DOMAIN}", raw))
    assert sql(mta, "SELECT state FROM enrollments") == [("pending",)], mta.exim.mainlog()
    tick(mta, now())
    req = mta.sink.system("ana@people.test")[0]["msg"]
    reply_to = req["Reply-To"].addresses[0].addr_spec
    shouted = reply_to.upper()                     # caseful or not, the token must survive
    reply = (f"From: ana@people.test\r\nTo: {shouted}\r\nSubject: Re: {req['Subject']}\r\n"
             "Message-ID: <ex-conf-1@people.test>\r\n\r\nyes\r\n").encode()
    delivered(mta, mta.exim.deliver("ana@people.test", shouted, reply))
    assert sql(mta, "SELECT state FROM enrollments") == [("active",)], mta.exim.mainlog()


def test_null_sender_dsn_through_exim_marks_bounced(mta):
    email = "gone@people.test"
    ctl(mta, "sub", "add", email)
    ctl(mta, "enroll", email, "first", "--no-welcome")
    slot = json.loads(ctl(mta, "schedule", email, "--json").stdout)[0]["utc"]
    tick(mta, datetime.strptime(slot, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
    verp = mta.sink.lessons(email)[0]["mail_from"]
    dsn = (f"From: MAILER-DAEMON@mx.people.test\r\nTo: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           "Message-ID: <ex-dsn-1@mx>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.people.test\r\n\r\n"
           f"Final-Recipient: rfc822; {email}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           f"Diagnostic-Code: smtp; 550 5.1.1 <{email}>: User unknown\r\n--b--\r\n").encode()
    delivered(mta, mta.exim.deliver("", verp, dsn))
    assert sql(mta, "SELECT status FROM subscribers WHERE email = ?", email) == [("bounced",)], \
        mta.exim.mainlog()
