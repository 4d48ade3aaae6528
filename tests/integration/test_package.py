"""The Debian package: ./scripts/package builds coursed_*.deb (lintian without
errors), its files are where Debian and the unit expect them, the shipped
/etc/coursed/coursed.conf is the README's and parses as shipped, the
maintainer scripts create the coursed user and run init as it, and the
installed programs (dpkg -x into a scratch root) check the installed
configuration, courses and templates.

The package is built in build-deb/ (or $COURSED_PACKAGE_DIR), whose CMake
folder is kept between runs, so only the first run compiles everything."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

OUT = Path(os.environ.get("COURSED_PACKAGE_DIR", REPO / "build-deb"))


def readme_ini_block():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split("### Configuration", 1)[1].split("```ini\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def deb():
    if not shutil.which("dpkg-deb"):
        pytest.skip("not a Debian system: dpkg-deb is missing")
    p = subprocess.run([str(REPO / "scripts" / "package"), str(OUT)], capture_output=True, text=True,
                       timeout=1500)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    debs = sorted(OUT.glob("coursed_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    r = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg", "-x", str(deb), str(r)], check=True, timeout=120)
    return r


def test_contents_are_where_debian_and_the_unit_expect_them(deb):
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    files = {line.split()[5]: line.split()[0] for line in listing.splitlines()}
    for want in ["./usr/sbin/coursed", "./usr/bin/coursectl"]:
        assert files.get(want, "").startswith("-rwxr-xr-x"), want
    for want in ["./etc/coursed/coursed.conf", "./lib/systemd/system/coursed.service",
                 "./usr/share/coursed/courses/release/course.ini",
                 "./usr/share/coursed/courses/leaving-kindly/course.ini",
                 "./usr/share/coursed/templates/welcome.md", "./usr/share/coursed/templates/lesson.html",
                 "./usr/share/man/man8/coursed.8.gz", "./usr/share/man/man1/coursectl.1.gz",
                 "./usr/share/bash-completion/completions/coursectl", "./usr/share/doc/coursed/copyright"]:
        assert want in files, f"{want} is not in the package"
    assert not [f for f in files if f.startswith("./usr/local")], "nothing under /usr/local"
    lessons = [f for f in files if re.match(r"\./usr/share/coursed/courses/release/lessons/\d\d-.*\.md$", f)]
    assert len(lessons) == len(list((REPO / "courses" / "release" / "lessons").glob("*.md")))


def test_lintian_reports_no_error(deb):
    """scripts/package ran lintian on this .deb (and fails on E:); its report."""
    report = (OUT / "lintian.log").read_text()
    assert deb.stat().st_mtime <= (OUT / "lintian.log").stat().st_mtime
    errors = [line for line in report.splitlines() if line.startswith("E:")]
    assert not errors, report


def test_maintainer_scripts_create_the_user_and_init_as_it(deb, tmp_path):
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "ctrl")], check=True)
    ctrl = tmp_path / "ctrl"
    assert (ctrl / "conffiles").read_text().split() == ["/etc/coursed/coursed.conf"]
    post = (ctrl / "postinst").read_text()
    assert re.search(r"adduser --system --group --home /var/lib/coursed\b", post)
    assert "install -d -o coursed -g coursed -m 0750 /var/lib/coursed" in post
    assert "runuser -u coursed -- /usr/bin/coursectl -c /etc/coursed/coursed.conf init" in post
    p = subprocess.run(["sh", "-n", str(ctrl / "postinst")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True).stdout
    assert "adduser" in fields


def test_unit_runs_the_installed_binary_as_coursed(root):
    unit = (root / "lib/systemd/system/coursed.service").read_text()
    for line in unit.splitlines():
        if line.startswith(("ExecStart=", "ExecStartPre=")):
            binary = line.split("=", 1)[1].split()[0]
            assert (root / binary.lstrip("/")).is_file(), f"{line}: not in the package"
            assert "-c /etc/coursed/coursed.conf" in line
    assert "User=coursed" in unit.splitlines()
    assert "StateDirectory=coursed" in unit.splitlines()


def test_shipped_config_is_the_readmes_and_parses_as_shipped(root):
    shipped = (root / "etc/coursed/coursed.conf").read_text()
    assert shipped == (REPO / "contrib" / "coursed.conf").read_text()
    assert shipped.endswith(readme_ini_block()), "the shipped config and the README's example differ"
    p = subprocess.run([str(root / "usr/bin/coursectl"), "-c", str(root / "etc/coursed/coursed.conf"),
                        "config", "show"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_compiled_in_share_paths_are_the_packages(root, tmp_path):
    empty = tmp_path / "empty.conf"
    empty.write_text("# nothing set: every default\n")
    p = subprocess.run([str(root / "usr/bin/coursectl"), "-c", str(empty), "config", "show"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = {" ".join(line.split()[:2]): line.split()[2] for line in p.stdout.splitlines()[1:]
            if len(line.split()) > 3}
    assert rows["[coursed] courses"] == "/usr/share/coursed/courses"
    assert rows["[coursed] templates"] == "/usr/share/coursed/templates"


def test_installed_coursed_checks_the_installed_config(root, tmp_path):
    """The shipped config with its /usr/share/coursed and /var/lib/coursed
    pointed into the scratch root: init, then coursed -n, both installed."""
    conf = tmp_path / "coursed.conf"
    text = (root / "etc/coursed/coursed.conf").read_text()
    text = text.replace("/usr/share/coursed", str(root / "usr/share/coursed"))
    text = text.replace("/var/lib/coursed", str(tmp_path / "var"))
    (tmp_path / "var").mkdir()
    conf.write_text(text)
    p = subprocess.run([str(root / "usr/bin/coursectl"), "-c", str(conf), "init"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "var" / "state.db").is_file() and (tmp_path / "var" / "secret.key").is_file()
    p = subprocess.run([str(root / "usr/sbin/coursed"), "-n", "-c", str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"2 course(s) in {root / 'usr/share/coursed/courses'}" in p.stdout


class Overlay:
    """This Debian system seen through an overlay: a private mount namespace
    whose / is the real one below and a scratch folder above, so that dpkg
    installs, runs the maintainer scripts and purges for real (adduser,
    runuser, the database made as coursed) and every change lands in the
    scratch folder, never on the machine."""

    def __init__(self, base):
        self.base = base
        for d in ("upper", "work", "merged"):
            (base / d).mkdir()
        # the package file must be reachable inside
        self.share = base / "upper" / "coursed-test"
        self.share.mkdir()

    def run(self, script, timeout=300):
        b = self.base
        inner = (f"mount -t overlay overlay -o lowerdir=/,upperdir={b}/upper,workdir={b}/work {b}/merged"
                 f" && mount --bind /proc {b}/merged/proc && mount --bind /dev {b}/merged/dev"
                 f" && exec chroot {b}/merged /bin/sh -ec \"$0\"")
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, script],
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def overlay(tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("installing the package for real needs root and unshare (an overlay over /)")
    if subprocess.run(["dpkg-query", "-W", "coursed"], capture_output=True).returncode == 0:
        pytest.skip("coursed is installed on this machine: the first install cannot be tried over it")
    o = Overlay(tmp_path)
    probe = o.run("true")
    if probe.returncode != 0:
        pytest.skip(f"no overlay over / here (a container without mount rights?): {probe.stderr.strip()}")
    return o


def test_install_upgrade_purge_for_real(deb, overlay):
    """dpkg -i on this Debian system (in an overlay): the coursed system user,
    /var/lib/coursed owned by it with the database and key init made as it,
    the installed daemon checks the installed config as that user, and the
    MTA's pipe (coursectl inbound as coursed) writes the database: the
    operator's trial failed here with 'attempt to write a readonly
    database'. A second install (an upgrade) keeps the database; a purge
    removes the configuration and /var/lib/coursed."""
    def host_state():
        return (subprocess.run(["getent", "passwd", "coursed"], capture_output=True).stdout,
                os.path.exists("/etc/coursed"), os.path.exists("/var/lib/coursed"))
    before = host_state()
    shutil.copy(deb, overlay.share / "coursed.deb")
    p = overlay.run("dpkg -i /coursed-test/coursed.deb")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    p = overlay.run(
        "getent passwd coursed | cut -d: -f1,6,7\n"
        "stat -c '%U:%G %a %n' /var/lib/coursed /var/lib/coursed/state.db /var/lib/coursed/secret.key\n"
        "runuser -u coursed -- coursed -n -c /etc/coursed/coursed.conf >/dev/null && echo CHECK-OK\n"
        "printf 'From: Reader <reader@people.test>\\r\\nTo: release@courses.example.org\\r\\n"
        "Subject: subscribe\\r\\nMessage-ID: <pkg-1@people.test>\\r\\n\\r\\nsubscribe\\r\\n' |"
        " runuser -u coursed -- coursectl -c /etc/coursed/coursed.conf inbound"
        " --sender reader@people.test --recipient release@courses.example.org && echo PIPE-OK\n"
        "runuser -u coursed -- coursectl -c /etc/coursed/coursed.conf sub show reader@people.test\n"
        "sha256sum /var/lib/coursed/secret.key")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    user = out.splitlines()[0].split(":")
    assert user[0] == "coursed" and user[1] == "/var/lib/coursed" and user[2] in ("/usr/sbin/nologin", "/bin/false")
    assert "coursed:coursed 750 /var/lib/coursed\n" in out
    assert re.search(r"^coursed:coursed \d+ /var/lib/coursed/state\.db$", out, re.M)
    assert "coursed:coursed 600 /var/lib/coursed/secret.key" in out
    assert "CHECK-OK" in out and "PIPE-OK" in out
    assert "pending" in out                               # the subscriber the pipe recorded
    key = out.strip().splitlines()[-1].split()[0]
    # the upgrade: no second init, the key and the subscriber stay
    p = overlay.run("dpkg -i /coursed-test/coursed.deb && sha256sum /var/lib/coursed/secret.key &&"
                    " runuser -u coursed -- coursectl -c /etc/coursed/coursed.conf sub show reader@people.test")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert key in p.stdout and "pending" in p.stdout
    p = overlay.run("dpkg --purge coursed && ls -d /etc/coursed /var/lib/coursed 2>&1 || true")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "'/etc/coursed': No such file" in p.stdout and "'/var/lib/coursed': No such file" in p.stdout
    # and the machine itself saw none of it
    assert host_state() == before
