"""The subscriber's page in a real browser: headless Chromium (Debian's
chromium and chromium-driver, driven by python3-selenium) opens the manage
link of a real lesson received by the test SMTP server, pauses a course,
changes the zone and the time of day with the page's own controls; the test then reads the
database and coursectl's schedule. Screenshots at 390 px and 1,200 px are
kept under the build folder (browser-screenshots/)."""
import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import BUILD, write_course
from pages import Daemon

webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)        # a Monday
WED = datetime(2026, 5, 6, 7, 0, tzinfo=UTC)        # Wed 09:00 CEST: lesson 1
NOW = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
SHOTS = Path(BUILD) / "browser-screenshots"
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM or not DRIVER:
        pytest.skip("chromium or chromedriver is missing (Debian: chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'chromium'}", "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-sync", "--disable-component-update"):
        opts.add_argument(a)
    # the browser's own zone, which the page's script puts first in the list
    env = dict(os.environ, TZ="Asia/Tokyo")
    service = Service(DRIVER, env=env)
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


@pytest.fixture
def env(env_factory, sink):
    e = env_factory(smtp_port=sink.port)
    e.conf.write_text(e.conf.read_text().replace("listen = \n", "listen = 127.0.0.1:0\n"))
    write_course(e.courses, "test", 5)
    e.ctl("init", now=iso(T0))
    e.ctl("sub", "add", "ann@example.org", "--tz", "Europe/Berlin", now=iso(T0))
    e.ctl("enroll", "ann@example.org", "test", "--no-welcome", now=iso(T0))
    e.tick(iso(WED))
    return e


def manage_link(sink):
    lesson = sink.lessons("ann@example.org")[0]["msg"]
    text = next(p.get_content() for p in lesson.walk() if p.get_content_type() == "text/plain")
    return next(w for w in text.split() if w.startswith("https://courses.example.org/m/"))


def shoot(browser, name, width):
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(width, 900)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(max(height, 600), 4000))
    path = SHOTS / f"{name}-{width}.png"
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    # nothing is wider than the window: the page works at phone width
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width


def press(browser, button):
    """Click a form's button and wait (bounded) for the page the POST answers with."""
    html = browser.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(browser, 20).until(EC.staleness_of(html))
    WebDriverWait(browser, 20).until(lambda b: b.execute_script("return document.readyState") == "complete")


def test_manage_journey_in_chromium(env, sink, browser):
    url = manage_link(sink)
    d = Daemon(env, iso(NOW))
    try:
        browser.get(d.base + url[len("https://courses.example.org"):])
        assert browser.title == "Your courses"
        assert "You have received 1 of 5 steps." in browser.page_source
        shoot(browser, "manage", 390)
        shoot(browser, "manage", 1200)
        # the script put the browser's zone first
        zone = Select(browser.find_element(By.ID, "tz"))
        assert zone.options[0].get_attribute("value") == "Asia/Tokyo"
        assert zone.first_selected_option.get_attribute("value") == "Europe/Berlin"

        # pause two weeks, with the button a person presses
        section = browser.find_element(By.CSS_SELECTOR, 'section[data-course="test"]')
        press(browser, section.find_element(By.XPATH, './/button[contains(., "Pause 2 weeks")]'))
        assert "Paused for 2 weeks." in browser.find_element(By.ID, "notice").text
        until = int((NOW + timedelta(days=14)).timestamp())
        assert env.sql("SELECT state, paused_until FROM enrollments") == [("paused", until)]
        first = json.loads(env.ctl("schedule", "ann@example.org", "--json", now=iso(NOW)).stdout)[0]
        assert first["utc"] == "2026-05-22T07:00:00Z"     # Fri after the pause, 09:00 CEST
        shoot(browser, "paused", 390)

        # resume, then another zone
        section = browser.find_element(By.CSS_SELECTOR, 'section[data-course="test"]')
        press(browser, section.find_element(By.XPATH, './/button[contains(., "Resume now")]'))
        assert env.sql("SELECT state FROM enrollments") == [("active",)]
        Select(browser.find_element(By.ID, "tz")).select_by_value("America/New_York")
        press(browser, browser.find_element(By.XPATH, '//button[contains(., "Save zone")]'))
        assert "time zone is saved" in browser.find_element(By.ID, "notice").text
        assert env.sql("SELECT tz FROM subscribers") == [("America/New_York",)]
        status = json.loads(env.ctl("status", "ann@example.org", "--json", now=iso(NOW)).stdout)
        assert status["tz"] == "America/New_York"
        first = json.loads(env.ctl("schedule", "ann@example.org", "--json", now=iso(NOW)).stdout)[0]
        assert first["utc"] == "2026-05-08T13:00:00Z"     # Fri 09:00 EDT
        assert "2026-05-08 09:00 EDT" in browser.page_source
        shoot(browser, "zone", 1200)

        # the subscriber's own time of day (the time control's value, as the control sets it)
        field = browser.find_element(By.ID, "time")
        browser.execute_script("arguments[0].value = '07:30'", field)
        press(browser, browser.find_element(By.XPATH, '//button[contains(., "Save time")]'))
        assert "time of day is saved" in browser.find_element(By.ID, "notice").text
        assert env.sql("SELECT lesson_time FROM subscribers") == [("07:30",)]
        first = json.loads(env.ctl("schedule", "ann@example.org", "--json", now=iso(NOW)).stdout)[0]
        assert first["utc"] == "2026-05-08T11:30:00Z"     # Fri 07:30 EDT
        assert "2026-05-08 07:30 EDT" in browser.page_source
        shoot(browser, "time", 390)
    finally:
        d.stop()


def wait_for_mail(sink, rcpt, n, timeout=30):
    """The n-th system mail to rcpt, waiting (bounded) for the running
    coursed to send it."""
    import time
    deadline = time.monotonic() + timeout
    while len(sink.system(rcpt)) < n:
        assert time.monotonic() < deadline, f"no mail {n} to {rcpt} within {timeout} s"
        time.sleep(0.1)
    return sink.system(rcpt)[n - 1]["msg"]


def test_signup_journey_in_chromium(env, sink, browser):
    """A person on the course's signup page: fills it in with the keyboard's
    fields and presses Subscribe; the browser's zone goes in with it; the
    confirmation arrives at the SMTP server; its link, opened in the
    browser, and the Confirm button there enroll them (issue 17)."""
    d = Daemon(env, iso(NOW))
    try:
        browser.get(d.base + "/s/test")
        shoot(browser, "signup", 390)
        shoot(browser, "signup", 1200)
        browser.find_element(By.ID, "email").send_keys("zoe@example.org")
        browser.find_element(By.ID, "name").send_keys("Zoe")
        assert browser.find_element(By.ID, "tz").get_attribute("value") == "Asia/Tokyo"
        press(browser, browser.find_element(By.XPATH, '//button[contains(., "Subscribe")]'))
        assert "Check your mail" in browser.page_source
        assert "zoe@example.org" not in browser.page_source and "Zoe" not in browser.page_source
        assert env.sql("SELECT state FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id "
                       "WHERE s.email = 'zoe@example.org'") == [("pending",)]

        confirm = wait_for_mail(sink, "zoe@example.org", 1)
        assert confirm["Subject"].startswith("Please confirm")
        text = confirm.get_body(("plain",)).get_content()
        link = next(w for w in text.split() if w.startswith("https://courses.example.org/c/"))
        browser.get(d.base + link[len("https://courses.example.org"):])
        shoot(browser, "confirm", 390)
        press(browser, browser.find_element(By.XPATH, '//button[contains(., "Confirm")]'))
        assert env.sql("SELECT e.state, s.tz FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id "
                       "WHERE s.email = 'zoe@example.org'") == [("active", "Asia/Tokyo")]
        consent = json.loads(env.ctl("sub", "show", "zoe@example.org", "--json", now=iso(NOW)).stdout)
        [c] = consent["consents"]
        assert c["source"] == "form" and c["confirmed_via"] == "link"
        welcome = wait_for_mail(sink, "zoe@example.org", 2)
        assert welcome["Subject"].startswith("Welcome")
    finally:
        d.stop()
