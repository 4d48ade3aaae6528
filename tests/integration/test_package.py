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
