"""An import into a database that already has people (bench/import's
bulk path: the file's addresses are looked up in one join, the audit
events written in one statement): who is known keeps their status and zone
and is not enrolled twice, who left is not enrolled again, who is new gets
exactly one 'imported' event, and a suppressed address is still refused."""
import csv
import io
import json
import random
import unicodedata

from conftest import write_course

NOW = "2026-05-04T10:00:00Z"


def test_import_over_existing_people(env_factory, tmp_path):
    env = env_factory()
    write_course(env.courses, "test", 3)
    write_course(env.courses, "other", 2)
    env.ctl("init", now=NOW)
    env.ctl("sub", "add", "known@example.org", "--tz", "Asia/Tokyo", now=NOW)
    env.ctl("enroll", "known@example.org", "test", "--no-welcome", now=NOW)
    env.ctl("sub", "add", "left@example.org", now=NOW)
    env.ctl("enroll", "left@example.org", "test", "--no-welcome", now=NOW)
    env.ctl("unenroll", "left@example.org", "test", now=NOW)
    env.sql("UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'left@example.org'")
    env.ctl("sub", "add", "gone@example.org", now=NOW)
    env.ctl("sub", "rm", "gone@example.org", "--erase", now=NOW)
    before = env.sql("SELECT count(*) FROM events WHERE kind = 'imported'")[0][0]
    f = tmp_path / "people.csv"
    f.write_text("email,name,tz,course,status\n"
                 "known@example.org,Known,Europe/Berlin,test,active\n"     # enrolled already: nothing
                 "KNOWN2@example.org,New Two,,other,active\n"
                 "left@example.org,Left,,other,active\n"                   # left: never enrolled by an import
                 "gone@example.org,Gone,,test,active\n"                    # erased: refused
                 "new@example.org,New,America/New_York,test,paused\n")
    p = env.ctl("import", str(f), now=NOW, check=False)
    assert p.returncode == 1
    assert f"{f}:5: email: gone@example.org was erased at their request" in p.stderr
    assert "imported: 5 rows, 2 added, 2 already there, 2 enrolled, 1 bad" in p.stdout
    subs = {e: (tz, st) for e, tz, st in env.sql("SELECT email, tz, status FROM subscribers")}
    assert subs["known@example.org"] == ("Asia/Tokyo", "active")       # the stored zone stands
    assert subs["left@example.org"] == (None, "unsubscribed")
    assert "gone@example.org" not in subs
    enr = sorted(env.sql("SELECT s.email, e.course, e.state FROM enrollments e"
                         " JOIN subscribers s ON s.id = e.subscriber_id"))
    assert enr == [("known2@example.org", "other", "active"), ("known@example.org", "test", "active"),
                   ("left@example.org", "test", "stopped"), ("new@example.org", "test", "paused")]
    imported = env.sql("SELECT s.email FROM events v JOIN subscribers s ON s.id = v.subscriber_id"
                       " WHERE v.kind = 'imported' ORDER BY v.id")
    assert len(imported) == before + 2 and imported[-2:] == [("known2@example.org",), ("new@example.org",)]
    log = json.loads(env.ctl("log", "new@example.org", "--json", now=NOW).stdout)
    assert [e["event"] for e in log].count("imported") == 1
    assert env.sql("PRAGMA foreign_key_check") == []


WS = " \t\n\v\f\r"                                   # what g_strstrip trims


def expected_name(field):
    """What the import stores for a name field as Python's csv module read
    it: trimmed, control characters as spaces, 200 characters, trimmed."""
    s = field.strip(WS)
    s = "".join(" " if unicodedata.category(c) == "Cc" or c in "\u2028\u2029" else c for c in s)
    return s[:200].strip(WS)


def test_csv_against_pythons_reader(env_factory, tmp_path):
    """Randomised files (quotes, commas, newlines inside quotes, CRLF or LF,
    blank lines, a header in any order) read by the import and by Python's
    csv module, the reference: every good row's name as Python read it, and
    every bad row reported on the line it starts on."""
    env = env_factory()
    write_course(env.courses, "test", 3)
    env.ctl("init", now=NOW)
    rnd = random.Random(20261202)
    pieces = ["a", "Zoë", "日本", " ", ",", '"', '""', "\n", "\r\n", "\t", "x y", "O'Neil", "\u2028", "é,"]
    for trial in range(6):
        cols = ["email", "name", "tz", "course"]
        rnd.shuffle(cols)
        term = rnd.choice(["\n", "\r\n"])
        quoting = rnd.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])
        def record(values):
            buf = io.StringIO()
            csv.writer(buf, lineterminator=term, quoting=quoting).writerow(values)
            return buf.getvalue()
        text, line, want, bad = record(cols), 2, {}, {}
        for i in range(150):
            if rnd.random() < 0.1:
                text += term                                   # a blank line is no row
                line += 1
            email = f"T{trial}-Row{i}@Example.org"
            name = " " * rnd.randint(0, 2) + "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 8)))
            zone = "Mars/Base" if rnd.random() < 0.1 else rnd.choice(["", "Europe/Berlin", " Asia/Tokyo "])
            values = {"email": email, "name": name, "tz": zone, "course": "test"}
            rec = record([values[c] for c in cols])
            if zone == "Mars/Base":
                bad[line] = email
            else:
                want[email.lower()] = expected_name(name)
            text += rec
            line += rec.count("\n")
        f = tmp_path / f"people-{trial}.csv"
        f.write_bytes(text.encode())
        # the reference reads the same bytes
        ref = list(csv.DictReader(io.StringIO(text, newline="")))
        assert len(ref) == len(want) + len(bad)
        for r in ref:
            if r["tz"] != "Mars/Base":
                assert want[r["email"].lower()] == expected_name(r["name"])
        p = env.ctl("import", str(f), now=NOW, check=False)
        assert p.returncode == (1 if bad else 0), p.stderr
        reported = [ln for ln in p.stderr.splitlines() if ln.startswith(f"{f}:")]
        assert reported == [f"{f}:{n}: tz: unknown time zone 'Mars/Base'" for n in sorted(bad)]
        got = dict(env.sql("SELECT email, name FROM subscribers WHERE email LIKE ?", f"t{trial}-%"))
        assert got == want


def test_large_import_alone_then_wal_again(env_factory, tmp_path):
    """100,000 rows into a database nobody else has open: the import takes
    SQLite's rollback journal for its one transaction (store_bulk_begin) and
    leaves the database in WAL mode, every row with its subscriber,
    enrollment, consent and 'imported' event, and no broken reference (the
    transaction does not check foreign keys: its rows must keep them)."""
    env = env_factory()
    write_course(env.courses, "test", 3)
    env.ctl("init", now=NOW)
    env.ctl("sub", "add", "before@example.org", now=NOW)
    env.ctl("enroll", "before@example.org", "test", "--no-welcome", now=NOW)
    n = 100_000
    f = tmp_path / "many.csv"
    zones = ["America/New_York", "", "Asia/Kolkata"]
    with f.open("w") as out:
        out.write("email,name,tz,course,status\n")
        for i in range(n):
            out.write(f"m{i}@example.org,Many {i},{zones[i % 3]},test,{'paused' if i % 1000 == 7 else 'active'}\n")
        out.write("before@example.org,Before,,test,active\n")
    p = env.ctl("import", str(f), now=NOW)
    assert f"imported: {n + 1} rows, {n} added, 1 already there, {n} enrolled, 0 bad" in p.stdout
    assert env.sql("PRAGMA journal_mode")[0][0] == "wal"
    assert env.sql("PRAGMA foreign_key_check") == []
    assert env.sql("SELECT count(*) FROM subscribers")[0][0] == n + 1
    assert env.sql("SELECT state, count(*) FROM enrollments GROUP BY state ORDER BY state") == [
        ("active", n + 1 - n // 1000), ("paused", n // 1000)]
    assert env.sql("SELECT count(*) FROM consents WHERE source = 'import' AND detail = ?", str(f))[0][0] == n
    assert env.sql("SELECT count(*), count(DISTINCT subscriber_id) FROM events WHERE kind = 'imported'")[0] == (n, n)
    # the zone decides the first slot; the known subscriber kept their one enrollment
    assert env.sql("SELECT count(DISTINCT next_send_at) FROM enrollments e JOIN subscribers s"
                   " ON s.id = e.subscriber_id WHERE s.email LIKE 'm%' AND e.state = 'active'")[0][0] == 3
    assert env.sql("SELECT count(*) FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                   " WHERE s.email = 'before@example.org'")[0][0] == 1
