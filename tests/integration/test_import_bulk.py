"""An import into a database that already has people (bench/import's
bulk path: the file's addresses are looked up in one join, the audit
events written in one statement): who is known keeps their status and zone
and is not enrolled twice, who left is not enrolled again, who is new gets
exactly one 'imported' event, and a suppressed address is still refused."""
import json

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
