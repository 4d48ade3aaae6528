"""coursed in its loop on a frozen clock, serving its HTTP pages, for the
tests of the pages: it reads the addresses coursed says it listens on from
its log (so [http] listen may use port 0) and stops coursed at the end."""
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

from conftest import COURSED

LISTENING = re.compile(r"HTTP pages on (http://\S+?)/?$")


class Daemon:
    def __init__(self, env, now, expect=1):
        self.env = env
        self.lines = []
        self.p = subprocess.Popen([COURSED, "-d", "-c", str(env.conf), "--now", now],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 20
        while len(self.bases()) < expect:
            if time.monotonic() > deadline or self.p.poll() is not None:
                self.stop()
                raise RuntimeError("coursed did not start its HTTP pages:\n" + "".join(self.lines))
            time.sleep(0.05)
        self.base = self.bases()[0]

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line)

    def bases(self):
        return [m.group(1) for m in (LISTENING.search(l.strip()) for l in list(self.lines)) if m]

    def request(self, path, data=None, base=None, headers=None):
        """(status, headers, body) of GET path, or of POST with data (a dict: form-encoded; bytes: as is)."""
        if isinstance(data, dict):
            data = urllib.parse.urlencode(data).encode()
        req = urllib.request.Request((base or self.base) + path, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.reader.join(timeout=5)


class Forms(HTMLParser):
    """The forms of a page: each {'action', 'fields' (hidden inputs), 'buttons' [(name, value, label)],
    'selects' {name: [option values]}}, and every link."""

    def __init__(self, html):
        super().__init__()
        self.forms, self.links, self._form, self._button, self._select = [], [], None, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "form":
            self._form = {"action": a.get("action"), "fields": {}, "buttons": [], "selects": {}}
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and a.get("type") == "hidden":
            self._form["fields"][a["name"]] = a.get("value", "")
        elif self._form is not None and tag == "button":
            self._button = [a.get("name"), a.get("value"), ""]
        elif self._form is not None and tag == "select":
            self._select = self._form["selects"].setdefault(a["name"], [])
        elif self._select is not None and tag == "option":
            self._select.append(a.get("value", ""))

    def handle_data(self, data):
        if self._button is not None:
            self._button[2] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None:
            self._form["buttons"].append(tuple(self._button))
            self._button = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._form = None

    def find(self, action, course=None):
        for f in self.forms:
            if f["fields"].get("action") == action and (course is None or f["fields"].get("course") == course):
                return f
        raise AssertionError(f"no form {action} {course}")


def submit(daemon, page, action, course=None, button=None, **extra):
    """POST the form `action` (for course) of page (HTML) as a browser would, pressing the button whose
    label contains `button` (or the first)."""
    f = Forms(page).find(action, course)
    data = dict(f["fields"])
    btn = next(b for b in f["buttons"] if button is None or button in b[2])
    if btn[0]:
        data[btn[0]] = btn[1]
    data.update(extra)
    return daemon.request(f["action"], data)
