"""The documentation stays true to the programs: the man pages render without
warnings, every command `coursectl --help` lists (and every option of
`coursed --help`) is documented, every configuration key of the README is in
coursed(8) with its default, and the bash completion completes commands,
sub-commands and option values."""
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import COURSECTL, COURSED, REPO

MAN_DIR = REPO / "docs" / "man"
COURSECTL_MAN = MAN_DIR / "coursectl.1"
COURSED_MAN = MAN_DIR / "coursed.8"
COMPLETION = REPO / "contrib" / "coursectl.bash-completion"
MAN_PAGES = [COURSECTL_MAN, COURSED_MAN]


# ---- reading roff source ----

_ALTERNATING = {"BR", "RB", "BI", "IB", "IR", "RI"}
_FONT = {"B", "I", "SM", "SB"}
_ESCAPES = [
    (re.compile(r"\\f(\[[A-Z]*\]|\([A-Z]{2}|[BIRP1-4])"), ""),
    (re.compile(r"\\\((dq|lq|rq)"), '"'),
    (re.compile(r"\\\(em"), "--"),
    (re.compile(r"\\[-~ ]"), lambda m: "-" if m.group(0) == "\\-" else " "),
    (re.compile(r"\\[&c]"), ""),
    (re.compile(r"\\e"), "\\\\"),
]


def _roff_args(text):
    """Split macro arguments the way roff does: blanks, or "quoted" ("" is a quote)."""
    return [m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2)
            for m in re.finditer(r'"((?:[^"]|"")*)"?|(\S+)', text)]


def roff_text(line):
    """The plain text of one roff input line (a text line or a font macro)."""
    if line.startswith((".", "'")):
        m = re.match(r"[.'](\S+)\s*(.*)", line)
        if not m:
            return ""
        name, rest = m.groups()
        args = _roff_args(rest)
        if name in _ALTERNATING:
            text = "".join(args)
        elif name in _FONT:
            text = " ".join(args)
        else:
            return ""
    else:
        text = line
    for rx, repl in _ESCAPES:
        text = rx.sub(repl, text)
    return text.strip()


def sections(path):
    """{'.SH title': [lines]} of a man page source."""
    out, current = {}, None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith(".SH"):
            current = roff_text(".B " + line[3:].strip())
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def tags(lines):
    """The text of every .TP/.TQ tag (the input line after the macro)."""
    found = []
    for i, line in enumerate(lines[:-1]):
        if line.split()[:1] in (['.TP'], ['.TQ']):
            found.append(roff_text(lines[i + 1]))
    return found


# ---- (a) the man pages render without warnings ----

@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page):
    assert page.is_file(), f"{page} is missing"
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(page)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stderr == b"", p.stderr.decode(errors="replace")
    assert p.stdout.strip(), "rendered to nothing"


@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_has_the_classic_sections(page):
    have = set(sections(page))
    for title in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "FILES",
                  "EXAMPLES", "SEE ALSO"):
        assert title in have, f"{page.name} has no {title} section"
    assert "COMMANDS" in have or "OPTIONS" in have


# ---- (b) every command of coursectl --help is in coursectl(1) ----

def help_commands(text):
    """Commands of the "Commands:" block of coursectl --help: the leading
    lower-case words of its left column ("course preview", "send-test")."""
    cmds, inside = [], False
    for line in text.splitlines():
        if line.strip() == "Commands:":
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            left = re.split(r"\s{2,}", line.strip())[0]
            words = []
            for tok in left.split():
                if not re.fullmatch(r"[a-z][a-z0-9-]*", tok):
                    break
                words.append(tok)
            if words and " ".join(words) not in cmds:
                cmds.append(" ".join(words))
    return cmds


def test_help_parser():
    sample = ("Commands:\n"
              "  init                                     create or upgrade the database\n"
              "  course preview SLUG N [--to EMAIL] [--html|--text|--eml] write lesson N\n"
              "  sub list                                 list subscribers\n"
              "  retry ID | retry --all-failed            queue again\n"
              "  send-test EMAIL COURSE N                 send one lesson\n"
              "\nExit status:\n  0 success\n")
    assert help_commands(sample) == ["init", "course preview", "sub list", "retry", "send-test"]


def test_every_command_of_help_is_in_the_man_page():
    p = subprocess.run([COURSECTL, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    cmds = help_commands(p.stdout)
    assert len(cmds) >= 10, f"could not read the commands of:\n{p.stdout}"
    documented = tags(sections(COURSECTL_MAN)["COMMANDS"])
    missing = [c for c in cmds
               if not any(t == c or t.startswith(c + " ") for t in documented)]
    assert not missing, f"coursectl.1 does not document: {missing}"


def test_every_option_of_coursed_help_is_in_the_man_page():
    p = subprocess.run([COURSED, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", p.stdout)) - {"--help-all"}
    assert "--once" in options
    documented = " ".join(tags(sections(COURSED_MAN)["OPTIONS"]))
    missing = sorted(o for o in options if not re.search(re.escape(o) + r"\b(?!-)", documented))
    assert not missing, f"coursed.8 does not document: {missing}"


def readme_config():
    """[(section, key, default)] of the README's example configuration."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("### Configuration", 1)[1].split("```ini", 1)[1].split("```", 1)[0]
    keys, section = [], None
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
        elif "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            keys.append((section, key, value))
    return keys


def test_every_config_key_is_in_coursed_8_with_its_default():
    keys = readme_config()
    assert len(keys) >= 30
    lines = sections(COURSED_MAN)["CONFIGURATION"]
    by_section, current = {}, None
    for i, line in enumerate(lines):
        if line.startswith(".SS"):
            current = roff_text(".B " + line[3:].strip())
            by_section[current] = []
        elif current and line.split()[:1] == [".TP"] and i + 1 < len(lines):
            by_section[current].append(roff_text(lines[i + 1]))
    missing = []
    for section, key, default in keys:
        want = f"{key} = {default}" if default else f"{key} = (empty)"
        if want not in by_section.get(f"[{section}]", []):
            missing.append(f"[{section}] {want}")
    assert not missing, f"coursed.8 lacks (or has another default for): {missing}"


# ---- (c) the bash completion ----

def complete(line):
    """Complete `line` (the cursor at its end) with _coursectl; the candidates."""
    if not shutil.which("bash"):
        pytest.skip("bash is not installed")
    words = line.split()
    if line.endswith(" "):
        words.append("")
    script = "\n".join([
        f"source {shlex.quote(str(COMPLETION))}",
        "complete -p coursectl",
        "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in words) + ")",
        f"COMP_CWORD={len(words) - 1}",
        f"COMP_LINE={shlex.quote(line)}",
        f"COMP_POINT={len(line)}",
        "_coursectl",
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr
    out = p.stdout.splitlines()
    assert out and out[0].startswith("complete -F _coursectl") and out[0].endswith(" coursectl"), out
    return [w for w in out[1:] if w]


def test_completion_of_a_command():
    assert complete("coursectl su") == ["sub"]


def test_completion_of_sub_commands():
    assert sorted(complete("coursectl sub ")) == sorted(["add", "show", "set", "list", "rm"])
    assert sorted(complete("coursectl course ")) == sorted(["list", "check", "diff", "plan", "history", "preview",
                                                                 "timeline"])


def test_completion_of_queue_states():
    assert sorted(complete("coursectl queue --state ")) == sorted(
        ["queued", "deferred", "failed", "sending"])
    assert complete("coursectl queue --state de") == ["deferred"]


def test_completion_of_other_option_values():
    assert sorted(complete("coursectl export --format ")) == ["csv", "json"]
    assert sorted(complete("coursectl sub list --status ")) == sorted(
        ["pending", "active", "bounced", "unsubscribed"])
    assert "--erase" in complete("coursectl sub rm x@example.org --")


def test_completion_of_course_slugs_from_the_config_on_the_line(tmp_path):
    from conftest import Env, write_course
    env = Env(tmp_path, transport="maildir")
    write_course(env.courses, "alpha", 2)
    write_course(env.courses, "beta", 2)
    got = complete(f"{COURSECTL} -c {env.conf} enroll x@example.org ")
    assert sorted(got) == ["alpha", "beta"]
    # a config that does not load completes nothing, silently
    assert complete(f"{COURSECTL} -c {tmp_path / 'nope.conf'} enroll x@example.org ") == []
