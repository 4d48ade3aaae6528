"""The signup form (GET and POST /s/<course>) and the consent record, end to
end: the real coursed serving its pages on a frozen clock, real form posts
(urllib, http.client), the confirmation mail at a real SMTP server, its
link pressed, and what a user would check: the mail, the page, the rows,
`coursectl sub show`."""
import getpass
import hashlib
import http.client
import json
import urllib.parse
from datetime import timedelta

import pytest

from conftest import write_course
from smtpsink import free_port
from test_inbound import T0, Daemon, inbound, iso, mail


def make_env(env_factory, sink, http_conf=""):
    env = env_factory(smtp_port=sink.port, http_port=free_port(), extra_conf=http_conf)
    write_course(env.courses, "test", 3, title="Slow Reading")
    env.ctl("init", now=iso(T0))
    return env


@pytest.fixture
def env(env_factory, sink):
    return make_env(env_factory, sink)


def post(d, path, fields=None, body=None, ctype="application/x-www-form-urlencoded", source="127.0.0.1",
         headers=None, chunked=False):
    """POSTs a form from source (any address of 127.0.0.0/8: all loopback);
    chunked: without Content-Length, in pieces of 1000 bytes."""
    data = body if body is not None else urllib.parse.urlencode(fields).encode()
    if chunked:
        data = iter([data[i:i + 1000] for i in range(0, len(data), 1000)])
    port = int(d.base.rsplit(":", 1)[1])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        h = {"Content-Type": ctype, **(headers or {})}
        c.request("POST", path, body=data, headers=h, encode_chunked=chunked)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def get(d, path):
    port = int(d.base.rsplit(":", 1)[1])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


def consents(env, email):
    return json.loads(env.ctl("sub", "show", email, "--json", now=iso(T0)).stdout)["consents"]


def confirm_path(sink, email):
    body = sink.system(email)[-1]["msg"].get_body(("plain",)).get_content()
    url = next(w for w in body.split() if "/c/" in w).strip("<>()")
    return url[url.index("/c/"):]


def test_signup_page_is_plain_accessible_and_changes_nothing(env):
    d = Daemon(env, T0)
    try:
        status, page, headers = get(d, "/s/test")
        # a query string (a link scanner, a curious person) changes nothing
        status_q, page_q, _ = get(d, "/s/test?email=q%40example.net&name=Quentin&website=x")
        missing, nf, _ = get(d, "/s/no-such-course-zz")
        bad_post = post(d, "/s/no-such-course-zz", {"email": "x@example.net"})
    finally:
        d.stop()
    html = page.decode()
    assert status == 200 and status_q == 200 and page_q == page
    assert 'lang="en"' in html and 'name="viewport"' in html and "<h1" in html and "Slow Reading" in html
    assert '<label for="email">' in html and 'id="email" name="email" type="email" required' in html
    assert '<label for="name">' in html and 'autocomplete="email"' in html
    # the honeypot: not type=hidden, hidden from people and screen readers, out of the tab order
    assert 'aria-hidden="true"' in html and 'name="website" type="text" tabindex="-1"' in html
    assert 'type="hidden" id="tz" name="tz" value=""' in html
    assert "resolvedOptions().timeZone" in html
    assert "IP address" not in html, "record_ip is off: the page does not say it is kept"
    # the script may run under the page's CSP (its hash), nothing else may
    csp = headers["Content-Security-Policy"]
    script = html.split("<script>")[1].split("</script>")[0]
    import base64
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert missing == 404 and b"no-such-course-zz" not in nf
    assert bad_post[0] == 404 and "no-such-course-zz" not in bad_post[1]
    assert env.sql("SELECT count(*) FROM subscribers") == [(0,)]
    assert env.sql("SELECT count(*) FROM consents") == [(0,)]


def test_form_post_confirm_link_and_consent_record(env, sink):
    d = Daemon(env, T0)
    try:
        _, page, _ = get(d, "/s/test")
        status, reply = post(d, "/s/test", {"email": "Zoe.Reader@Example.NET", "name": "Zoë Secretname",
                                            "tz": "America/Toronto", "website": "", "form": "page"},
                             headers={"User-Agent": "TestBrowser/1.0"})
    finally:
        d.stop()
    assert status == 200 and "Check your mail" in reply
    assert "Secretname" not in reply and "zoe.reader" not in reply.lower() and "Toronto" not in reply
    # nothing is enrolled before the confirmation
    assert env.sql("SELECT state FROM enrollments") == [("pending",)]
    assert env.sql("SELECT name, tz, status FROM subscribers") == [("Zoë Secretname", "America/Toronto",
                                                                    "pending")]
    env.tick(iso(T0))
    mails = sink.system()
    assert [m["rcpts"] for m in mails] == [["zoe.reader@example.net"]]
    assert mails[0]["msg"]["Subject"].startswith("Please confirm")
    [c] = consents(env, "zoe.reader@example.net")
    assert c["course"] == "test" and c["source"] == "form" and c["requested_at"] == iso(T0)
    assert c["confirmed_at"] is None and c["confirmed_via"] is None
    assert c["shown_sha256"] == hashlib.sha256(page).hexdigest()
    # the mail is rendered when coursed sends it: the record names exactly
    # the bytes that reached the server
    assert c["mail_sha256"] == hashlib.sha256(mails[0]["raw"]).hexdigest()
    assert c["ip"] is None and c["user_agent"] is None, "kept without [http] record_ip"

    later = T0 + timedelta(minutes=5)
    d = Daemon(env, later)
    try:
        path = confirm_path(sink, "zoe.reader@example.net")
        assert get(d, path)[0] == 200
        assert env.sql("SELECT state FROM enrollments") == [("pending",)]
        status, done = post(d, path, {"confirm": "yes"})
    finally:
        d.stop()
    assert status == 200
    assert env.sql("SELECT state FROM enrollments") == [("active",)]
    [c] = consents(env, "zoe.reader@example.net")
    assert c["confirmed_via"] == "link" and c["confirmed_at"] == iso(later)
    text = env.ctl("sub", "show", "zoe.reader@example.net", now=iso(later)).stdout
    assert "consent:" in text and "form" in text and "confirmed (link)" in text


def test_reply_page_is_the_same_whoever_posts(env, sink):
    """Subscribed, pending, asked recently or new: the same page, so the
    form cannot tell who is subscribed."""
    env.ctl("sub", "add", "member@example.net", now=iso(T0))
    env.ctl("enroll", "member@example.net", "test", "--no-welcome", now=iso(T0))
    d = Daemon(env, T0)
    try:
        pages = [post(d, "/s/test", {"email": e, "form": "page"}) for e in
                 ("member@example.net", "new@example.net", "new@example.net")]
    finally:
        d.stop()
    assert all(p == pages[0] for p in pages) and pages[0][0] == 200
    env.tick(iso(T0))
    assert len(sink.system("new@example.net")) == 1, "a repeat within a day sends nothing new"


def test_honeypot_filled_is_dropped_silently(env, sink):
    d = Daemon(env, T0)
    try:
        good = post(d, "/s/test", {"email": "person@example.net", "website": ""})
        bot = post(d, "/s/test", {"email": "bot@example.net", "website": "http://spam.example"})
    finally:
        d.stop()
    assert bot == good
    env.tick(iso(T0))
    assert sink.system("bot@example.net") == [] and len(sink.system("person@example.net")) == 1
    assert env.sql("SELECT email FROM subscribers") == [("person@example.net",)]


def test_per_ip_and_global_rate_limits(env_factory, sink):
    env = make_env(env_factory, sink, "signup_per_ip_per_hour = 3\nsignup_per_hour = 5\n")
    d = Daemon(env, T0)
    try:
        first = [post(d, "/s/test", {"email": f"a{i}@example.net"})[0] for i in range(6)]
        # another address of the loopback net still has room, up to the global 5
        second = [post(d, "/s/test", {"email": f"b{i}@example.net"}, source="127.0.0.2")[0] for i in range(4)]
        status, page = post(d, "/s/test", {"email": "c@example.net"}, source="127.0.0.3")
    finally:
        d.stop()
    assert first == [200, 200, 200, 429, 429, 429]
    assert second == [200, 200, 429, 429]
    assert status == 429 and "c@example.net" not in page
    env.tick(iso(T0))
    assert sorted(m["rcpts"][0] for m in sink.system()) == ["a0@example.net", "a1@example.net",
                                                            "a2@example.net", "b0@example.net",
                                                            "b1@example.net"]
    # an hour later the windows are open again
    later = T0 + timedelta(hours=1, minutes=1)
    d = Daemon(env, later)
    try:
        assert post(d, "/s/test", {"email": "a9@example.net"})[0] == 200
    finally:
        d.stop()


def test_behind_a_local_proxy_the_forwarded_address_counts(env_factory, sink):
    """Behind nginx on the same machine every post comes from 127.0.0.1: the
    address the proxy appended to X-Forwarded-For is the client's (what a
    client wrote before it is not believed)."""
    env = make_env(env_factory, sink, "signup_per_ip_per_hour = 2\nrecord_ip = true\n")
    d = Daemon(env, T0)
    try:
        def via(addr, email, claimed="198.51.100.7"):
            return post(d, "/s/test", {"email": email}, headers={"X-Forwarded-For": f"{claimed}, {addr}"})[0]
        one = [via("203.0.113.5", f"p{i}@example.net", claimed=f"198.51.100.{i}") for i in range(3)]
        other = via("203.0.113.6", "q@example.net")
    finally:
        d.stop()
    assert one == [200, 200, 429] and other == 200
    [c] = consents(env, "q@example.net")
    assert c["ip"] == "203.0.113.6"


def test_oversize_body_and_wrong_content_type_are_refused(env, sink):
    d = Daemon(env, T0)
    try:
        big = post(d, "/s/test", {"email": "big@example.net", "name": "x" * 9000})
        # without Content-Length the body is counted as it comes
        chunks = post(d, "/s/test", {"email": "chunks@example.net", "name": "x" * 9000}, chunked=True)
        small = post(d, "/s/test", {"email": "small@example.net", "name": "Sam"}, chunked=True)
        plain = post(d, "/s/test", body=b"email=plain@example.net", ctype="text/plain")
        multi = post(d, "/s/test", body=(b"--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n"
                                         b"multi@example.net\r\n--XyZ--\r\n"),
                     ctype="multipart/form-data; boundary=XyZ")
    finally:
        d.stop()
    assert big[0] == 413 and "big@" not in big[1]
    assert chunks[0] == 413 and small[0] == 200
    assert plain[0] == 415 and "plain@" not in plain[1]
    assert multi[0] == 200 and "multi@" not in multi[1]
    env.tick(iso(T0))
    assert sorted(m["rcpts"][0] for m in sink.system()) == ["multi@example.net", "small@example.net"]


def test_bad_email_and_bad_zone_are_handled_without_echo(env, sink):
    d = Daemon(env, T0)
    try:
        bad = post(d, "/s/test", {"email": "not an address <b>x</b>"})
        nul = post(d, "/s/test", body=b"email=nul%40example.net%00junk", ctype="application/x-www-form-urlencoded")
        latin = post(d, "/s/test", body=b"email=l%E9a%40example.net", ctype="application/x-www-form-urlencoded")
        zone = post(d, "/s/test", {"email": "zone@example.net", "tz": "Mars/Olympus_<i>Mons</i>"})
    finally:
        d.stop()
    assert bad[0] == 400 and "whole email address" in bad[1] and "<b>x" not in bad[1] and "not an" not in bad[1]
    assert '<form method="post">' in bad[1], "the form again, empty"
    assert nul[0] == 400 and "junk" not in nul[1] and latin[0] == 400
    assert zone[0] == 200 and "Olympus" not in zone[1] and "Mons" not in zone[1]
    # the unknown zone is dropped: the course's applies until the person sets theirs
    assert env.sql("SELECT email, tz FROM subscribers") == [("zone@example.net", None)]
    env.tick(iso(T0))
    assert len(sink.system("zone@example.net")) == 1


def test_suppressed_address_is_treated_like_a_subscribe_mail(env, sink):
    for who in ("bymail@example.net", "byform@example.net"):
        env.ctl("sub", "add", who, now=iso(T0))
        env.ctl("sub", "rm", who, "--erase", now=iso(T0))
    assert env.sql("SELECT count(*) FROM suppressions") == [(2,)]
    raw = mail("bymail@example.net", "test@courses.example.org", "subscribe", "subscribe test")
    assert inbound(env, raw).returncode == 0
    d = Daemon(env, T0)
    try:
        assert post(d, "/s/test", {"email": "byform@example.net"})[0] == 200
    finally:
        d.stop()
    env.tick(iso(T0))
    # both get one confirmation; nothing is enrolled until they confirm
    assert len(sink.system("bymail@example.net")) == len(sink.system("byform@example.net")) == 1
    assert env.sql("SELECT state FROM enrollments ORDER BY id") == [("pending",), ("pending",)]
    d = Daemon(env, T0 + timedelta(minutes=1))
    try:
        assert post(d, confirm_path(sink, "byform@example.net"), {"confirm": "yes"})[0] == 200
    finally:
        d.stop()
    assert env.sql("SELECT s.email, e.state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                   " ORDER BY e.id") == [("bymail@example.net", "pending"), ("byform@example.net", "active")]
    assert env.sql("SELECT count(*) FROM suppressions") == [(1,)], "their own confirmation lifts it"


def test_record_ip_keeps_address_and_agent(env_factory, sink):
    env = make_env(env_factory, sink, "record_ip = true\n")
    d = Daemon(env, T0)
    try:
        post(d, "/s/test", {"email": "ip@example.net", "form": "snippet"}, source="127.0.0.5",
             headers={"User-Agent": "TestBrowser/2.0"})
    finally:
        d.stop()
    [c] = consents(env, "ip@example.net")
    assert c["ip"] == "127.0.0.5" and c["user_agent"] == "TestBrowser/2.0"
    d = Daemon(env, T0)
    try:
        assert b"the IP address and browser you asked from" in get(d, "/s/test")[1]
    finally:
        d.stop()
    snippet = env.ctl("form", "test", now=iso(T0)).stdout
    assert c["shown_sha256"] == hashlib.sha256(snippet.encode()).hexdigest()


def test_form_snippet_posts_to_base_url(env):
    out = env.ctl("form", "test", now=iso(T0)).stdout
    assert '<form method="post" action="https://courses.example.org/s/test">' in out
    assert 'name="email"' in out and 'name="website"' in out and 'aria-hidden="true"' in out
    bad = env.ctl("form", "nope", now=iso(T0), check=False)
    assert bad.returncode != 0 and "no course 'nope'" in bad.stderr


def test_consent_of_mail_operator_and_import_paths_and_erasure(env, sink, tmp_path):
    # a subscribe mail, confirmed by reply
    raw = mail("mailer@example.net", "test@courses.example.org", "subscribe", "subscribe test")
    assert inbound(env, raw).returncode == 0
    env.tick(iso(T0))
    confirm = sink.system("mailer@example.net")[0]
    reply_to = confirm["msg"]["Reply-To"].addresses[0].addr_spec
    later = T0 + timedelta(hours=1)
    assert inbound(env, mail("mailer@example.net", reply_to, "Re: confirm", "yes"), now=later).returncode == 0
    [c] = consents(env, "mailer@example.net")
    assert (c["source"], c["confirmed_via"], c["confirmed_at"]) == ("mail", "reply", iso(later))
    assert c["shown_sha256"] is None and len(c["mail_sha256"]) == 64

    # an operator: sub add, then enroll
    env.ctl("sub", "add", "op@example.net", now=iso(T0))
    env.ctl("enroll", "op@example.net", "test", "--no-welcome", now=iso(T0))
    ops = consents(env, "op@example.net")
    assert [(c["course"], c["source"], c["operator"], c["confirmed_via"]) for c in ops] == [
        (None, "operator", getpass.getuser(), "operator"), ("test", "operator", getpass.getuser(), "operator")]

    # an import names its file and the operator
    f = tmp_path / "people.csv"
    f.write_text("email,name,tz,course,status\nimp@example.net,Imp,,test,active\n")
    env.ctl("import", str(f), now=iso(T0 + timedelta(minutes=3)))
    [c] = consents(env, "imp@example.net")
    assert (c["source"], c["detail"], c["operator"], c["course"]) == ("import", str(f), getpass.getuser(), "test")

    # the JSON export carries them; erasure removes them with everything else
    export = json.loads(env.ctl("export", "--format", "json", now=iso(later)).stdout)
    by = {s["email"]: s for s in export}
    assert by["mailer@example.net"]["consents"][0]["source"] == "mail"
    assert len(by["op@example.net"]["consents"]) == 2
    env.ctl("sub", "rm", "mailer@example.net", "--erase", now=iso(later))
    assert env.sql("SELECT count(*) FROM consents c JOIN subscribers s ON s.id = c.subscriber_id"
                   " WHERE s.email = 'mailer@example.net'") == [(0,)]
    assert env.sql("SELECT count(*) FROM consents") == [(3,)]


def test_signup_page_in_chromium(env, tmp_path):
    """Chromium renders the page at 390 px and 1,200 px without console or
    CSP errors, and the page's script (allowed by its CSP hash) fills the
    hidden tz field with the browser's zone. Screenshots go to
    build/artifacts/screenshots/."""
    import os
    import shutil
    import subprocess
    from test_html_render import ARTIFACTS, CHROMIUM, FLAGS, png_facts
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed")

    def chromium(*args):
        profile = tmp_path / "profile"
        p = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path, env={**os.environ, "TZ": "Asia/Tokyo"})
        shutil.rmtree(profile, ignore_errors=True)
        return p

    d = Daemon(env, T0)
    try:
        dom = chromium("--dump-dom", d.base + "/s/test")
        assert dom.returncode == 0, dom.stderr[-2000:]
        errors = [l for l in dom.stderr.splitlines() if "CONSOLE" in l or "net::ERR_" in l
                  or "Content Security Policy" in l]
        assert not errors, errors
        assert 'name="tz" value="Asia/Tokyo"' in dom.stdout
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for width in (390, 1200):
            shot = ARTIFACTS / f"signup-{width}.png"
            p = chromium(f"--window-size={width},900", f"--screenshot={shot}", d.base + "/s/test")
            assert p.returncode == 0 and png_facts(shot)[0] == width and png_facts(shot)[2] > 10
    finally:
        d.stop()
    assert env.sql("SELECT count(*) FROM subscribers") == [(0,)]
