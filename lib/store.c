/* store.c - owns SQL: the schema, its migrations, every statement and every
 * transaction. Invariants kept here:
 *   - a lesson is queued at most once per enrollment: UNIQUE(enrollment, lesson);
 *   - an enrollment has at most one lesson in flight: next_send_at is NULL
 *     from queueing until the outcome is recorded, and the 'sent' record and
 *     the enrollment's progress are written in the same transaction;
 *   - WAL + synchronous=FULL: a committed row survives power loss.
 * Statements are prepared once and cached per connection. */
#include <string.h>
#include <sqlite3.h>
#include "store.h"
#include "error.h"
#include "log.h"

struct store {
    sqlite3 *db;
    char *path;
    gint64 due_steps;    /* SQLite VM steps of the last store_due() */
    int depth;           /* open transactions: 1 = BEGIN, more = SAVEPOINTs */
    GHashTable *stmts;   /* const char *sql (static) -> sqlite3_stmt* */
    gboolean bulk_alone; /* store_bulk_begin took the rollback journal */
    GHashTable *bulk;    /* const char *head (static) -> its STORE_BULK_ROWS-row INSERT */
};

/* How long a statement waits for another connection's lock. */
#define BUSY_TIMEOUT_MS 10000

/* Each entry moves the schema one version up; never edit a released one. */
static const char *migrations[] = {
    /* 1: the initial schema */
    ("CREATE TABLE subscribers ("
     "  id INTEGER PRIMARY KEY,"
     "  email TEXT NOT NULL UNIQUE,"
     "  name TEXT NOT NULL DEFAULT '',"
     "  tz TEXT,"
     "  status TEXT NOT NULL DEFAULT 'active'"
     "    CHECK (status IN ('pending','active','bounced','unsubscribed')),"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE TABLE enrollments ("
     "  id INTEGER PRIMARY KEY,"
     "  subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,"
     "  course TEXT NOT NULL,"
     "  state TEXT NOT NULL CHECK (state IN ('pending','active','paused','completed','stopped')),"
     "  next_lesson INTEGER NOT NULL DEFAULT 1,"
     "  next_send_at INTEGER,"
     "  anchor_at INTEGER NOT NULL,"
     "  paused_until INTEGER,"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL,"
     "  UNIQUE (subscriber_id, course));"
     "CREATE INDEX enrollments_due ON enrollments(next_send_at)"
     "  WHERE state = 'active' AND next_send_at IS NOT NULL;"
     "CREATE TABLE deliveries ("
     "  id INTEGER PRIMARY KEY,"
     "  enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,"
     "  lesson INTEGER NOT NULL,"
     "  message_id TEXT NOT NULL,"
     "  state TEXT NOT NULL"
     "    CHECK (state IN ('queued','sending','sent','deferred','failed','cancelled')),"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  slot_at INTEGER NOT NULL,"
     "  queued_at INTEGER NOT NULL,"
     "  next_attempt_at INTEGER NOT NULL,"
     "  sent_at INTEGER,"
     "  last_code INTEGER,"
     "  last_text TEXT,"
     "  UNIQUE (enrollment_id, lesson));"
     "CREATE INDEX deliveries_ready ON deliveries(next_attempt_at)"
     "  WHERE state IN ('queued','deferred');"
     "CREATE INDEX deliveries_sending ON deliveries(state) WHERE state = 'sending';"
     "CREATE TABLE events ("
     "  id INTEGER PRIMARY KEY,"
     "  at INTEGER NOT NULL,"
     "  subscriber_id INTEGER,"
     "  enrollment_id INTEGER,"
     "  kind TEXT NOT NULL,"
     "  via TEXT NOT NULL,"
     "  detail TEXT NOT NULL DEFAULT '',"
     "  message_id TEXT);"
     "CREATE INDEX events_subscriber ON events(subscriber_id, at);"
     "CREATE TABLE inbound ("
     "  message_key TEXT PRIMARY KEY,"
     "  received_at INTEGER NOT NULL,"
     "  result TEXT NOT NULL DEFAULT '');"),
    /* 2: calendars that follow pauses and zone changes; automatic resume */
    ("ALTER TABLE enrollments ADD COLUMN calendar_seq INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE enrollments ADD COLUMN calendar_dirty INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX enrollments_resume ON enrollments(paused_until)"
     "  WHERE state = 'paused' AND paused_until IS NOT NULL;"),
    /* 3: system mails (welcome, confirm, replies), rendered when created */
    ("CREATE TABLE outbox ("
     "  id INTEGER PRIMARY KEY,"
     "  subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE,"
     "  enrollment_id INTEGER REFERENCES enrollments(id) ON DELETE CASCADE,"
     "  kind TEXT NOT NULL,"
     "  rcpt TEXT NOT NULL,"
     "  message BLOB NOT NULL,"
     "  state TEXT NOT NULL CHECK (state IN ('queued','sending','sent','deferred','failed')),"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  created_at INTEGER NOT NULL,"
     "  next_attempt_at INTEGER NOT NULL,"
     "  sent_at INTEGER,"
     "  last_code INTEGER,"
     "  last_text TEXT);"
     "CREATE INDEX outbox_ready ON outbox(next_attempt_at) WHERE state IN ('queued','deferred');"
     "CREATE INDEX outbox_sending ON outbox(state) WHERE state = 'sending';"),
    /* 4: double opt-in and replies */
    ("ALTER TABLE enrollments ADD COLUMN confirm_sent_at INTEGER;"
     "ALTER TABLE subscribers ADD COLUMN tz_guessed INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX outbox_rcpt ON outbox(rcpt, created_at);"
     "CREATE INDEX outbox_kind ON outbox(kind, created_at);"
     "CREATE INDEX events_kind ON events(subscriber_id, kind, at);"),
    /* 5: the hourly rate limit counts what was sent */
    ("CREATE INDEX deliveries_sent ON deliveries(sent_at) WHERE sent_at IS NOT NULL;"
     "CREATE INDEX outbox_sent ON outbox(sent_at) WHERE sent_at IS NOT NULL;"),
    /* 6: right to erasure */
    ("CREATE TABLE suppressions ("
     "  hash TEXT PRIMARY KEY,"
     "  created_at INTEGER NOT NULL,"
     "  reason TEXT NOT NULL DEFAULT '');"
     "CREATE INDEX events_at ON events(at);"),
    /* 7: the lifecycle as data. Why an enrollment is paused or stopped; and
     * one lesson in flight per enrollment, kept by the schema itself (a
     * database from before keeps its oldest in-flight row per enrollment). */
    ("ALTER TABLE enrollments ADD COLUMN reason TEXT NOT NULL DEFAULT ''"
     "  CHECK (reason IN ('','subscriber','operator','bounced','policy','gave-up','course-gone'));"
     "UPDATE deliveries SET state = 'cancelled', last_text = 'second lesson in flight (schema 7)'"
     "  WHERE state IN ('queued','sending','deferred') AND id NOT IN (SELECT min(id) FROM deliveries"
     "  WHERE state IN ('queued','sending','deferred') GROUP BY enrollment_id);"
     "CREATE UNIQUE INDEX deliveries_inflight ON deliveries(enrollment_id)"
     "  WHERE state IN ('queued','sending','deferred');"),
    /* 8: what a move made the enrollment forget. A lesson sent again after
     * `coursectl move` replaces its row (UNIQUE (enrollment_id, lesson));
     * the row it replaced is kept here, so that the day it went out still
     * counts for max_per_day and the audit keeps it. */
    ("CREATE TABLE delivery_history ("
     "  id INTEGER PRIMARY KEY,"
     "  enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,"
     "  lesson INTEGER NOT NULL,"
     "  message_id TEXT NOT NULL,"
     "  state TEXT NOT NULL,"
     "  queued_at INTEGER NOT NULL,"
     "  sent_at INTEGER,"
     "  forgotten_at INTEGER NOT NULL);"
     "CREATE INDEX delivery_history_day ON delivery_history(enrollment_id, queued_at);"),
    /* 9: the same rules, written so that checking them costs nothing.
     * SQLite evaluates `x IN (three or more constants)` in a CHECK or a
     * partial index by building a temporary b-tree on every write (about
     * 13 us each, three per delivery update: a fifth of the delivery path);
     * `x = a OR x = b ...` is plain comparisons. The index is rebuilt here;
     * the CHECKs are rewritten by rewrite_checks() below. */
    ("DROP INDEX deliveries_inflight;"
     "CREATE UNIQUE INDEX deliveries_inflight ON deliveries(enrollment_id)"
     "  WHERE state = 'queued' OR state = 'sending' OR state = 'deferred';"),
    /* 10: lessons known by identity (docs/course-edits.md). A delivery
     * names its lesson by slug; `lesson` is its position in the course as
     * it runs now (renumbered when a new version is applied; a removed
     * lesson's rows get the position -id, outside every course). The
     * versions of each course that ran, their lesson texts by hash. And the
     * rule the next lesson follows from here on, "the first position with
     * no row", needs a row for every position an enrollment passed: the
     * positions a `move` or an import skipped get a 'cancelled' row marked
     * 'skipped' (queued_at 0, so no day counts it). */
    ("ALTER TABLE deliveries ADD COLUMN slug TEXT;"
     "ALTER TABLE delivery_history ADD COLUMN slug TEXT;"
     "CREATE TABLE course_versions ("
     "  id INTEGER PRIMARY KEY,"
     "  course TEXT NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  lessons TEXT NOT NULL,"
     "  summary TEXT NOT NULL DEFAULT '',"
     "  UNIQUE (course, version));"
     "CREATE TABLE lesson_texts ("
     "  hash TEXT PRIMARY KEY,"
     "  subject TEXT NOT NULL,"
     "  body TEXT NOT NULL);"
     /* applying a version, or holding a course that is gone, reads one
      * course's enrollments (by state): not the whole table */
     "CREATE INDEX enrollments_course ON enrollments(course, state);"
     "WITH RECURSIVE p(eid, n) AS (SELECT id, 1 FROM enrollments WHERE next_lesson > 1"
     "  UNION ALL SELECT p.eid, p.n + 1 FROM p JOIN enrollments e ON e.id = p.eid WHERE p.n + 1 < "
     "e.next_lesson)"
     " INSERT INTO deliveries (enrollment_id, lesson, message_id, state, slot_at, queued_at,"
     "  next_attempt_at, last_text)"
     " SELECT eid, n, 'skipped-' || n || '.e' || eid, 'cancelled', 0, 0, 0, 'skipped'"
     " FROM p WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.enrollment_id = p.eid AND d.lesson = "
     "p.n);"),
    /* 11: a course taken again, and the end of a course. `round` counts
     * restarts: the Message-IDs and calendar UIDs of a new round differ
     * from the last one's (a mail app would fold a repeated Message-ID into
     * the old copy, or drop it). complete_due marks an enrollment whose
     * last lesson went out and whose `complete` mail is not queued yet (the
     * tick queues it outside the hot path); enrollments completed before
     * this version never get one. */
    ("ALTER TABLE enrollments ADD COLUMN round INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE enrollments ADD COLUMN complete_due INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX enrollments_complete_due ON enrollments(id) WHERE complete_due = 1;"),
    /* the subscriber's own time of day for lessons (the manage page): NULL
     * is the course's `time`; the same pacing rules place the slots */
    ("ALTER TABLE subscribers ADD COLUMN lesson_time TEXT"
     "  CHECK (lesson_time IS NULL OR lesson_time GLOB '[0-2][0-9]:[0-5][0-9]');"),
    /* system mails rendered when sent: `spec` is what to send (the kind's
     * values, GVariant text, see compose_spec_new) for the course `course`,
     * rendered by coursed from the templates it runs; rows from before
     * (spec NULL) keep their rendered `message`, new rows an empty one.
     * `reply` marks the automatic replies ([inbound] replies_per_hour
     * counts them, pipe and daemon alike). */
    ("ALTER TABLE outbox ADD COLUMN course TEXT;"
     "ALTER TABLE outbox ADD COLUMN spec TEXT;"
     "ALTER TABLE outbox ADD COLUMN reply INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX outbox_replies ON outbox(created_at) WHERE reply = 1;"),
    /* consent records: for every opt-in, what the person agreed to and how
     * (README.md, "Consent records"). One row per request that sent a confirmation (or
     * per operator enrollment and imported enrollment); the confirmation
     * fills confirmed_at and confirmed_via. course is NULL for an operator's
     * `sub add` (no course yet). shown_sha256 is the SHA-256 of the form
     * shown (page or snippet), mail_sha256 that of the confirmation mail as
     * rendered. ip and user_agent only with [http] record_ip. They go with
     * the subscriber (erasure). */
    ("CREATE TABLE consents ("
     "  id INTEGER PRIMARY KEY,"
     "  subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,"
     "  enrollment_id INTEGER REFERENCES enrollments(id) ON DELETE CASCADE,"
     "  course TEXT,"
     "  requested_at INTEGER NOT NULL,"
     "  source TEXT NOT NULL CHECK (source = 'mail' OR source = 'form' OR source = 'import'"
     "    OR source = 'operator'),"
     "  detail TEXT NOT NULL DEFAULT '',"
     "  operator TEXT NOT NULL DEFAULT '',"
     "  shown_sha256 TEXT,"
     "  mail_sha256 TEXT,"
     "  confirmed_at INTEGER,"
     "  confirmed_via TEXT CHECK (confirmed_via IS NULL OR confirmed_via = 'reply'"
     "    OR confirmed_via = 'link' OR confirmed_via = 'operator'),"
     "  ip TEXT,"
     "  user_agent TEXT);"
     "CREATE INDEX consents_subscriber ON consents(subscriber_id);"
     "CREATE INDEX consents_enrollment ON consents(enrollment_id);"),
    /* readers' notes (docs/notes.md): a reply to one of our mails that is
     * not a command. Personal data: it goes with its subscriber (erasure
     * deletes it through the cascade). outbox_id is the forward to the
     * course's replies_to, NULL while only kept; `forward` says why. */
    ("CREATE TABLE notes ("
     "  id INTEGER PRIMARY KEY,"
     "  subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,"
     "  course TEXT NOT NULL,"
     "  lesson_slug TEXT,"
     "  lesson INTEGER,"
     "  received_at INTEGER NOT NULL,"
     "  message_id TEXT,"
     "  body TEXT NOT NULL,"
     "  forward TEXT NOT NULL DEFAULT 'kept'"
     "    CHECK (forward = 'kept' OR forward = 'queued' OR forward = 'capped'),"
     "  outbox_id INTEGER);"
     "CREATE INDEX notes_course ON notes(course, received_at);"
     "CREATE INDEX notes_subscriber ON notes(subscriber_id, received_at);"),
    /* events_kind (subscriber_id, kind, at) serves every lookup by
     * subscriber; the second index only cost every event a B-tree insert */
    ("DROP INDEX IF EXISTS events_subscriber;"),
};

/* The CASE expressions that turn a stored state into its enum value, in the
 * order of state.h (tests/unit/test_state.c checks them against state.c). */
#define SUB_ORD(col)                                                    \
    "CASE " col                                                         \
    " WHEN 'pending' THEN 0 WHEN 'active' THEN 1 WHEN 'bounced' THEN 2" \
    " WHEN 'unsubscribed' THEN 3 END"
#define ENR_ORD(col)                                                   \
    "CASE " col                                                        \
    " WHEN 'pending' THEN 0 WHEN 'active' THEN 1 WHEN 'paused' THEN 2" \
    " WHEN 'completed' THEN 3 WHEN 'stopped' THEN 4 END"
#define DLV_ORD(col)                                                 \
    "CASE " col                                                      \
    " WHEN 'queued' THEN 0 WHEN 'sending' THEN 1 WHEN 'sent' THEN 2" \
    " WHEN 'deferred' THEN 3 WHEN 'failed' THEN 4 WHEN 'cancelled' THEN 5 END"
/* ... and back: the stored name of enum value ?N */
#define SUB_NAME(p)                                                     \
    "CASE " p                                                           \
    " WHEN 0 THEN 'pending' WHEN 1 THEN 'active' WHEN 2 THEN 'bounced'" \
    " WHEN 3 THEN 'unsubscribed' END"
#define ENR_NAME(p)                                                    \
    "CASE " p                                                          \
    " WHEN 0 THEN 'pending' WHEN 1 THEN 'active' WHEN 2 THEN 'paused'" \
    " WHEN 3 THEN 'completed' WHEN 4 THEN 'stopped' END"
#define DLV_NAME(p)                                                  \
    "CASE " p                                                        \
    " WHEN 0 THEN 'queued' WHEN 1 THEN 'sending' WHEN 2 THEN 'sent'" \
    " WHEN 3 THEN 'deferred' WHEN 4 THEN 'failed' WHEN 5 THEN 'cancelled' END"

int store_latest_version(void)
{
    return (int)G_N_ELEMENTS(migrations);
}

static int err_code(int rc)
{
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return CD_ERR_EXISTS;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return CD_ERR_NOT_FOUND;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR: return CD_ERR_BUSY;
    case SQLITE_CONSTRAINT: return CD_ERR_INVALID;
    default: return CD_ERR_FAILED;
    }
}

static gboolean fail(struct store *st, int rc, const char *what, GError **err)
{
    g_set_error(err, CD_ERROR, err_code(rc), "%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
    return FALSE;
}

/* A transition the table refuses: a bug in the caller, or a race another
 * transaction won. Logged loudly; nothing was written. */
static gboolean refuse(struct store *st, const char *table, gint64 id, enum state_event ev, GError **err)
{
    const struct state_transition *t = state_transition(ev);
    char *sql = g_strdup_printf("SELECT %s FROM %s WHERE id = %" G_GINT64_FORMAT,
                                strcmp(table, "subscribers") == 0 ? "status" : "state", table, id);
    sqlite3_stmt *s = NULL;
    char *now_in = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        now_in = g_strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    g_free(sql);
    if (!now_in) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "%s: no %s row %" G_GINT64_FORMAT " to %s", st->path,
                    table, id, t->name);
        return FALSE;
    }
    g_set_error(err, CD_ERROR, CD_ERR_STATE, "%s row %" G_GINT64_FORMAT ": cannot %s from '%s'", table, id,
                t->name, now_in);
    log_err("lifecycle: %s", (*err)->message);
    g_free(now_in);
    return FALSE;
}

static gboolean exec(struct store *st, const char *sql, GError **err)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(st, rc, sql, err);
    return TRUE;
}

/* Returns the cached statement for sql (a string literal), reset. */
static sqlite3_stmt *prep(struct store *st, const char *sql, GError **err)
{
    sqlite3_stmt *s = g_hash_table_lookup(st->stmts, sql);
    if (s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return s;
    }
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) {
        fail(st, rc, "prepare", err);
        return NULL;
    }
    g_hash_table_insert(st->stmts, (gpointer)sql, s);
    return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static void bind_time(sqlite3_stmt *s, int i, gint64 t)
{
    if (t > 0)
        sqlite3_bind_int64(s, i, t);
    else
        sqlite3_bind_null(s, i);
}

static char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? g_strdup((const char *)t) : NULL;
}

/* Run a statement that returns no rows. */
static gboolean step_done(struct store *st, sqlite3_stmt *s, const char *what, GError **err)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, what, err);
    return TRUE;
}

static void stmt_finalize(gpointer p)
{
    sqlite3_finalize(p);
}

/* The CHECK constraints of schema 1 to 7, as `col IN (list)`. */
static const struct check_rewrite {
    const char *table, *column, *list[8];
} check_rewrites[] = {
    { "subscribers", "status", { "pending", "active", "bounced", "unsubscribed" } },
    { "enrollments", "state", { "pending", "active", "paused", "completed", "stopped" } },
    { "enrollments",
      "reason",
      { "", "subscriber", "operator", "bounced", "policy", "gave-up", "course-gone" } },
    { "deliveries", "state", { "queued", "sending", "sent", "deferred", "failed", "cancelled" } },
    { "outbox", "state", { "queued", "sending", "sent", "deferred", "failed" } },
};

/* Migration 9, second half: each CHECK above becomes the same rule as a
 * chain of equalities, by the procedure the SQLite documentation gives
 * for changes that touch no stored row ("Making Other Kinds Of Table
 * Schema Changes": writable_schema, then a new schema_version, in the
 * migration's transaction). Every row already satisfies the rule, so
 * nothing on disk changes meaning. A table whose text differs (made by
 * another tool) keeps its CHECK: slower, equally correct. */
static gboolean rewrite_checks(struct store *st, GError **err)
{
    sqlite3_stmt *s = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(st->db, "PRAGMA schema_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version < 0)
        return fail(st, sqlite3_errcode(st->db), "read the schema version", err);
    if (!exec(st, "PRAGMA writable_schema = ON", err))
        return FALSE;
    gboolean ok = TRUE;
    int changed = 0;
    for (guint i = 0; ok && i < G_N_ELEMENTS(check_rewrites); i++) {
        const struct check_rewrite *r = &check_rewrites[i];
        GString *in = g_string_new(NULL), *eq = g_string_new(NULL);
        g_string_printf(in, "CHECK (%s IN (", r->column);
        g_string_append_c(eq, '(');
        for (int k = 0; k < 8 && r->list[k]; k++) {
            g_string_append_printf(in, "%s'%s'", k ? "," : "", r->list[k]);
            g_string_append_printf(eq, "%s%s = '%s'", k ? " OR " : "", r->column, r->list[k]);
        }
        g_string_append(in, "))");
        g_string_append(eq, ")");
        /* keep "CHECK (" and the closing parenthesis: only the rule changes */
        char *from = g_strdup(in->str + strlen("CHECK "));
        ok = sqlite3_prepare_v2(st->db,
                                "UPDATE sqlite_schema SET sql = replace(sql, ?1, ?2)"
                                " WHERE type = 'table' AND name = ?3 AND instr(sql, ?1) > 0",
                                -1, &s, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_text(s, 1, from, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, eq->str, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 3, r->table, -1, SQLITE_STATIC);
            ok = sqlite3_step(s) == SQLITE_DONE;
            changed += sqlite3_changes(st->db);
        }
        if (!ok)
            fail(st, sqlite3_errcode(st->db), "rewrite a CHECK constraint", err);
        sqlite3_finalize(s);
        g_free(from);
        g_string_free(in, TRUE);
        g_string_free(eq, TRUE);
    }
    char *bump = g_strdup_printf("PRAGMA schema_version = %d", version + 1);
    ok = ok && (changed == 0 || exec(st, bump, err));
    g_free(bump);
    GError *off = NULL;
    if (!exec(st, "PRAGMA writable_schema = OFF", ok ? err : &off))
        ok = FALSE;
    g_clear_error(&off);
    return ok;
}

/* What a migration runs after its SQL (NULL: nothing). */
static gboolean (*const migration_steps[])(struct store *, GError **) = {
    [8] = rewrite_checks,
};

static gboolean migrate(struct store *st, GError **err)
{
    int have = store_schema_version(st);
    if (have < 0) {
        /* unreadable (busy past the timeout), or a negative user_version
         * no coursed ever wrote: nothing is migrated from an unknown state */
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: cannot read a valid schema version (%d): %s",
                    st->path, have, sqlite3_errmsg(st->db));
        return FALSE;
    }
    if (have > store_latest_version()) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "%s: schema version %d is newer than this coursed knows (%d)", st->path, have,
                    store_latest_version());
        return FALSE;
    }
    for (int v = have; v < store_latest_version(); v++) {
        if (!store_begin(st, err))
            return FALSE;
        char *bump = g_strdup_printf("PRAGMA user_version = %d", v + 1);
        gboolean ok = exec(st, migrations[v], err) &&
                      ((guint)v >= G_N_ELEMENTS(migration_steps) || !migration_steps[v] ||
                       migration_steps[v](st, err)) &&
                      exec(st, bump, err);
        g_free(bump);
        if (!ok || !store_commit(st, err)) {
            store_rollback(st);
            return FALSE;
        }
    }
    return TRUE;
}

struct store *store_open(const char *path, gboolean create, GError **err)
{
    if (!create && !g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "%s: no database here; run 'coursectl init' first",
                    path);
        return NULL;
    }
    struct store *st = g_new0(struct store, 1);
    st->path = g_strdup(path);
    st->stmts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, stmt_finalize);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        g_set_error(err, CD_ERROR, err_code(rc), "%s: cannot open: %s", path,
                    st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        store_close(st);
        return NULL;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(st->db, 1);
    if (!exec(st, "PRAGMA journal_mode = WAL", err) || !exec(st, "PRAGMA synchronous = FULL", err) ||
        !exec(st, "PRAGMA foreign_keys = ON", err) || !migrate(st, err)) {
        store_close(st);
        return NULL;
    }
    return st;
}

const char *store_path(const struct store *st)
{
    return st->path;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    if (st->stmts)
        g_hash_table_destroy(st->stmts);
    if (st->bulk)
        g_hash_table_destroy(st->bulk);
    if (st->db)
        sqlite3_close(st->db);
    g_free(st->path);
    g_free(st);
}

int store_schema_version(struct store *st)
{
    sqlite3_stmt *s = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Transactions nest: an inner begin is a SAVEPOINT, so a function that
 * keeps its own work atomic (enroll_pause, subscriber_set...) can also run
 * inside a caller's larger transaction (one inbound mail, one tick). */
gboolean store_begin(struct store *st, GError **err)
{
    gboolean ok;
    if (st->depth == 0) {
        ok = exec(st, "BEGIN IMMEDIATE", err);
    } else {
        char *sql = g_strdup_printf("SAVEPOINT s%d", st->depth);
        ok = exec(st, sql, err);
        g_free(sql);
    }
    if (ok)
        st->depth++;
    return ok;
}

gboolean store_commit(struct store *st, GError **err)
{
    if (st->depth <= 0)
        return TRUE;
    if (st->depth == 1) {
        /* On failure the transaction stays open for store_rollback(). */
        if (!exec(st, "COMMIT", err))
            return FALSE;
        st->depth = 0;
        return TRUE;
    }
    char *sql = g_strdup_printf("RELEASE s%d", st->depth - 1);
    gboolean ok = exec(st, sql, err);
    g_free(sql);
    if (ok)
        st->depth--;
    return ok;
}

gboolean store_in_transaction(struct store *st)
{
    return st && st->depth > 0;
}

void store_rollback(struct store *st)
{
    if (!st || st->depth <= 0)
        return;
    if (st->depth == 1) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        st->depth = 0;
        return;
    }
    char *sql = g_strdup_printf("ROLLBACK TO s%d; RELEASE s%d", st->depth - 1, st->depth - 1);
    sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    g_free(sql);
    st->depth--;
}

/* ---- subscribers ---- */

gint64 store_sub_add(struct store *st, const char *email, const char *name, const char *tz,
                     enum sub_state status, gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO subscribers (email, name, tz, status, created_at, updated_at)"
                           " VALUES (?1, ?2, ?3, " SUB_NAME("?5") ", ?4, ?4)",
                           err);
    if (!s)
        return -1;
    bind_text(s, 1, email);
    bind_text(s, 2, name ? name : "");
    bind_text(s, 3, tz);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int(s, 5, status);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        g_set_error(err, CD_ERROR, CD_ERR_EXISTS, "subscriber %s already exists", email);
        return -1;
    }
    if (rc != SQLITE_DONE) {
        fail(st, rc, "add subscriber", err);
        return -1;
    }
    return sqlite3_last_insert_rowid(st->db);
}

#define SUB_COLS "id, email, name, tz, " SUB_ORD("status") ", created_at"

static struct sub_row *sub_from(sqlite3_stmt *s)
{
    struct sub_row *r = g_new0(struct sub_row, 1);
    r->id = sqlite3_column_int64(s, 0);
    r->email = col_text(s, 1);
    r->name = col_text(s, 2);
    r->tz = col_text(s, 3);
    r->status = (enum sub_state)sqlite3_column_int(s, 4);
    r->created_at = sqlite3_column_int64(s, 5);
    return r;
}

struct sub_row *store_sub_get(struct store *st, const char *email, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT " SUB_COLS " FROM subscribers WHERE email = ?1", err);
    if (!s)
        return NULL;
    bind_text(s, 1, email);
    int rc = sqlite3_step(s);
    struct sub_row *r = NULL;
    if (rc == SQLITE_ROW)
        r = sub_from(s);
    else if (rc == SQLITE_DONE)
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no subscriber %s", email);
    else
        fail(st, rc, "get subscriber", err);
    sqlite3_reset(s);
    return r;
}

void store_sub_free(struct sub_row *r)
{
    if (!r)
        return;
    g_free(r->email);
    g_free(r->name);
    g_free(r->tz);
    g_free(r);
}

/* ---- enrollments ---- */

gint64 store_enroll(struct store *st, gint64 subscriber_id, const char *course, enum enr_state state,
                    gint64 next_send_at, gint64 anchor_at, gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO enrollments (subscriber_id, course, state, next_lesson, next_send_at,"
                           " anchor_at, created_at, updated_at) VALUES (?1, ?2, " ENR_NAME(
                               "?6") ", 1, ?3, ?4, ?5, ?5)",
                           err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, subscriber_id);
    bind_text(s, 2, course);
    bind_time(s, 3, next_send_at);
    sqlite3_bind_int64(s, 4, anchor_at);
    sqlite3_bind_int64(s, 5, now);
    sqlite3_bind_int(s, 6, state);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        g_set_error(err, CD_ERROR, CD_ERR_EXISTS, "already enrolled in %s", course);
        return -1;
    }
    if (rc != SQLITE_DONE) {
        fail(st, rc, "enroll", err);
        return -1;
    }
    return sqlite3_last_insert_rowid(st->db);
}

#define ENR_COLS \
    "e.id, e.subscriber_id, s.email, s.name, s.tz, e.course, " ENR_ORD("e.state") ", e.next_lesson," \
    " e.next_send_at, e.anchor_at, e.created_at,"                                       \
    " (SELECT count(*) FROM deliveries d WHERE d.enrollment_id = e.id AND d.state = 'sent'),"  \
    " coalesce(e.paused_until, 0), e.calendar_seq, e.calendar_dirty, e.reason, e.round"

static struct enrollment_row *enrollment_from(sqlite3_stmt *s)
{
    struct enrollment_row *r = g_new0(struct enrollment_row, 1);
    r->id = sqlite3_column_int64(s, 0);
    r->subscriber_id = sqlite3_column_int64(s, 1);
    r->email = col_text(s, 2);
    r->name = col_text(s, 3);
    r->tz = col_text(s, 4);
    r->course = col_text(s, 5);
    r->state = (enum enr_state)sqlite3_column_int(s, 6);
    r->next_lesson = sqlite3_column_int(s, 7);
    r->next_send_at = sqlite3_column_int64(s, 8);
    r->anchor_at = sqlite3_column_int64(s, 9);
    r->created_at = sqlite3_column_int64(s, 10);
    r->lessons_sent = sqlite3_column_int(s, 11);
    r->paused_until = sqlite3_column_int64(s, 12);
    r->calendar_seq = sqlite3_column_int(s, 13);
    r->calendar_dirty = sqlite3_column_int(s, 14);
    int reason = state_reason_parse((const char *)sqlite3_column_text(s, 15));
    r->reason = reason < 0 ? REASON_NONE : (enum enr_reason)reason;
    r->round = sqlite3_column_int(s, 16);
    return r;
}

static GPtrArray *enrollment_rows(struct store *st, sqlite3_stmt *s, GError **err)
{
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_enrollment_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, enrollment_from(s));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "read enrollments", err);
        return NULL;
    }
    return a;
}

GPtrArray *store_enrollments_of(struct store *st, gint64 subscriber_id, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT " ENR_COLS
                           " FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                           " WHERE e.subscriber_id = ?1 ORDER BY e.id",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, subscriber_id);
    return enrollment_rows(st, s, err);
}

GPtrArray *store_due(struct store *st, gint64 now, int limit, GError **err)
{
    /* The WHERE matches the partial index enrollments_due exactly, so the
     * cost is the number due, not the number enrolled. */
    sqlite3_stmt *s = prep(st,
                           "SELECT " ENR_COLS
                           " FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                           " WHERE e.state = 'active' AND e.next_send_at IS NOT NULL AND e.next_send_at <= ?1"
                           " ORDER BY e.next_send_at LIMIT ?2",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit);
    sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 1);
    GPtrArray *rows = enrollment_rows(st, s, err);
    st->due_steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 1);
    return rows;
}

gint64 store_due_cost(struct store *st)
{
    return st->due_steps;
}

void store_enrollment_free(struct enrollment_row *r)
{
    if (!r)
        return;
    g_free(r->email);
    g_free(r->name);
    g_free(r->tz);
    g_free(r->course);
    g_free(r);
}

/* ---- deliveries ---- */

gboolean store_queue(struct store *st, const struct enrollment_row *e, const char *slug,
                     const char *message_id, gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "INSERT INTO deliveries (enrollment_id, lesson, message_id, state, slot_at, queued_at,"
        " next_attempt_at, slug) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5, ?6)"
        /* A lesson cancelled by a pause, or failed before one, is queued
         * again on resume; a sent or pending one is never touched. */
        " ON CONFLICT (enrollment_id, lesson) DO UPDATE SET state = 'queued', attempts = 0,"
        "  message_id = excluded.message_id, slug = excluded.slug,"
        "  slot_at = excluded.slot_at, queued_at = excluded.queued_at,"
        "  next_attempt_at = excluded.next_attempt_at, last_code = NULL, last_text = NULL"
        "  WHERE deliveries.state IN ('cancelled', 'failed')",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, e->id);
    sqlite3_bind_int(s, 2, e->next_lesson);
    bind_text(s, 3, message_id);
    sqlite3_bind_int64(s, 4, e->next_send_at);
    sqlite3_bind_int64(s, 5, now);
    bind_text(s, 6, slug);
    if (!step_done(st, s, "queue lesson", err))
        return FALSE;
    s = prep(st, "UPDATE enrollments SET next_send_at = NULL, updated_at = ?2 WHERE id = ?1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, e->id);
    sqlite3_bind_int64(s, 2, now);
    return step_done(st, s, "mark lesson in flight", err);
}

void store_delivery_free(struct delivery_row *r)
{
    if (!r)
        return;
    g_free(r->message_id);
    g_free(r->last_text);
    g_free(r->email);
    g_free(r->name);
    g_free(r->tz);
    g_free(r->course);
    g_free(r);
}

gboolean store_reschedule(struct store *st, gint64 enrollment_id, gint64 next_send_at, gint64 now,
                          GError **err)
{
    sqlite3_stmt *s = prep(
        st, "UPDATE enrollments SET next_send_at = ?2, updated_at = ?3 WHERE id = ?1 AND state = 'active'",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int64(s, 2, next_send_at);
    sqlite3_bind_int64(s, 3, now);
    return step_done(st, s, "reschedule", err);
}

int store_day_count(struct store *st, gint64 enrollment_id, gint64 start, gint64 end, GError **err)
{
    /* Walks only this enrollment's deliveries (UNIQUE(enrollment_id, lesson)
     * is an index with enrollment_id first). */
    sqlite3_stmt *s = prep(
        st,
        "SELECT (SELECT count(*) FROM deliveries WHERE enrollment_id = ?1 AND state <> 'cancelled'"
        " AND queued_at >= ?2 AND queued_at < ?3) + (SELECT count(*) FROM delivery_history"
        " WHERE enrollment_id = ?1 AND queued_at >= ?2 AND queued_at < ?3)",
        err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int64(s, 2, start);
    sqlite3_bind_int64(s, 3, end);
    int rc = sqlite3_step(s);
    int n = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        fail(st, rc, "count today's lessons", err);
    return n;
}

GPtrArray *store_resumes_due(struct store *st, gint64 now, int limit, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT " ENR_COLS
                           " FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                           " WHERE e.state = 'paused' AND e.paused_until IS NOT NULL AND e.paused_until <= ?1"
                           " ORDER BY e.paused_until LIMIT ?2",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit);
    return enrollment_rows(st, s, err);
}

gint64 store_inflight_slot(struct store *st, gint64 enrollment_id, int lesson, gint64 *queued_at,
                           gint64 *next_attempt, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "SELECT slot_at, queued_at, next_attempt_at FROM deliveries WHERE enrollment_id = ?1 AND lesson = ?2"
        " AND state IN ('queued', 'deferred', 'sending')",
        err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int(s, 2, lesson);
    int rc = sqlite3_step(s);
    gint64 t = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    if (queued_at)
        *queued_at = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
    if (next_attempt)
        *next_attempt = rc == SQLITE_ROW ? sqlite3_column_int64(s, 2) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fail(st, rc, "in-flight slot", err);
        return -1;
    }
    return t;
}

gboolean store_sub_update(struct store *st, gint64 id, const char *name, const char *tz, gboolean set_tz,
                          gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "UPDATE subscribers SET name = coalesce(?2, name),"
                           " tz = CASE WHEN ?4 THEN ?3 ELSE tz END, updated_at = ?5 WHERE id = ?1",
                           err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, name);
    bind_text(s, 3, tz);
    sqlite3_bind_int(s, 4, set_tz);
    sqlite3_bind_int64(s, 5, now);
    return step_done(st, s, "update subscriber", err);
}

gboolean store_inbound_first(struct store *st, const char *key, gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO inbound (message_key, received_at) VALUES (?1, ?2)"
                           " ON CONFLICT (message_key) DO NOTHING",
                           err);
    if (!s)
        return FALSE;
    bind_text(s, 1, key);
    sqlite3_bind_int64(s, 2, now);
    if (!step_done(st, s, "remember inbound", err))
        return FALSE;
    return sqlite3_changes(st->db) == 1;
}

gboolean store_inbound_result(struct store *st, const char *key, const char *result, GError **err)
{
    sqlite3_stmt *s = prep(st, "UPDATE inbound SET result = ?2 WHERE message_key = ?1", err);
    if (!s)
        return FALSE;
    bind_text(s, 1, key);
    bind_text(s, 2, result);
    return step_done(st, s, "record inbound result", err);
}

struct enrollment_row *store_enrollment_get(struct store *st, gint64 id, GError **err)
{
    sqlite3_stmt *s = prep(st,
        "SELECT " ENR_COLS ", coalesce(e.confirm_sent_at, 0), " SUB_ORD("s.status") ", s.tz_guessed"
        " FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id WHERE e.id = ?1", err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    struct enrollment_row *r = NULL;
    if (rc == SQLITE_ROW) {
        r = enrollment_from(s);
        r->confirm_sent_at = sqlite3_column_int64(s, 17);
        r->sub_status = (enum sub_state)sqlite3_column_int(s, 18);
        r->tz_guessed = sqlite3_column_int(s, 19);
    } else if (rc == SQLITE_DONE) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no enrollment %" G_GINT64_FORMAT, id);
    } else {
        fail(st, rc, "get enrollment", err);
    }
    sqlite3_reset(s);
    return r;
}

gint64 store_enrollment_find(struct store *st, gint64 subscriber_id, const char *course, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT id FROM enrollments WHERE subscriber_id = ?1 AND course = ?2", err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, subscriber_id);
    bind_text(s, 2, course);
    int rc = sqlite3_step(s);
    gint64 id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fail(st, rc, "find enrollment", err);
        return -1;
    }
    return id;
}

gboolean store_sub_set_guessed(struct store *st, gint64 id, gboolean guessed, GError **err)
{
    sqlite3_stmt *s = prep(st, "UPDATE subscribers SET tz_guessed = ?2 WHERE id = ?1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, guessed);
    return step_done(st, s, "mark zone guessed", err);
}

static gint64 count1(struct store *st, sqlite3_stmt *s, const char *what, GError **err)
{
    int rc = sqlite3_step(s);
    gint64 n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        fail(st, rc, what, err);
    return n;
}

gint64 store_outbox_count(struct store *st, const char *rcpt, const char *kind, gint64 since, GError **err)
{
    sqlite3_stmt *s = rcpt
                          ? prep(st, "SELECT count(*) FROM outbox WHERE rcpt = ?1 AND created_at >= ?3", err)
                          : prep(st, "SELECT count(*) FROM outbox WHERE kind = ?2 AND created_at >= ?3", err);
    if (!s)
        return -1;
    bind_text(s, 1, rcpt);
    bind_text(s, 2, kind);
    sqlite3_bind_int64(s, 3, since);
    return count1(st, s, "count system mails", err);
}

gint64 store_event_days(struct store *st, gint64 subscriber_id, const char *kind, gint64 since, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "SELECT count(DISTINCT at / 86400) FROM events WHERE subscriber_id = ?1 AND kind = ?2 AND at >= ?3",
        err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, subscriber_id);
    bind_text(s, 2, kind);
    sqlite3_bind_int64(s, 3, since);
    return count1(st, s, "count events", err);
}

gint64 store_sent_since(struct store *st, gint64 since, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT (SELECT count(*) FROM deliveries WHERE sent_at >= ?1)"
                           " + (SELECT count(*) FROM outbox WHERE sent_at >= ?1)",
                           err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, since);
    return count1(st, s, "count sent", err);
}

GPtrArray *store_sub_find(struct store *st, const struct store_sub_filter *f, GError **err)
{
    sqlite3_stmt *s = prep(st,
        "SELECT " SUB_COLS " FROM subscribers sub WHERE"
        " (?1 < 0 OR sub.status = " SUB_NAME("?1") ")"
        " AND (?2 IS NULL OR EXISTS (SELECT 1 FROM enrollments e WHERE e.subscriber_id = sub.id"
        "      AND e.course = ?2 AND (?3 <= 0 OR e.next_lesson - 1 >= ?3)))"
        " AND (?2 IS NOT NULL OR ?3 <= 0 OR EXISTS (SELECT 1 FROM enrollments e"
        "      WHERE e.subscriber_id = sub.id AND e.next_lesson - 1 >= ?3))"
        " AND (?4 <= 0 OR sub.created_at >= ?4)"
        " AND (?5 IS NULL OR instr(lower(sub.email), lower(?5)) > 0 OR instr(lower(sub.name), lower(?5)) > 0)"
        " ORDER BY sub.id LIMIT ?6", err);
    if (!s)
        return NULL;
    sqlite3_bind_int(s, 1, f->status);
    bind_text(s, 2, f->course);
    sqlite3_bind_int(s, 3, f->lesson);
    sqlite3_bind_int64(s, 4, f->since);
    bind_text(s, 5, f->search);
    sqlite3_bind_int64(s, 6, f->limit > 0 ? f->limit : -1);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_sub_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, sub_from(s));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "find subscribers", err);
        return NULL;
    }
    return a;
}

gboolean store_sub_erase(struct store *st, gint64 id, const char *hash, gint64 now, GError **err)
{
    /* Enrollments, deliveries and system mails go with the row (ON DELETE
     * CASCADE); events name the subscriber only by id, so they go too. */
    sqlite3_stmt *s = prep(st, "DELETE FROM events WHERE subscriber_id = ?1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    if (!step_done(st, s, "erase events", err))
        return FALSE;
    s = prep(st, "DELETE FROM subscribers WHERE id = ?1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    if (!step_done(st, s, "erase subscriber", err))
        return FALSE;
    if (!hash)
        return TRUE;
    s = prep(st,
             "INSERT INTO suppressions (hash, created_at, reason) VALUES (?1, ?2, 'erased')"
             " ON CONFLICT (hash) DO NOTHING",
             err);
    if (!s)
        return FALSE;
    bind_text(s, 1, hash);
    sqlite3_bind_int64(s, 2, now);
    return step_done(st, s, "suppress", err);
}

int store_suppressed(struct store *st, const char *hash, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT count(*) FROM suppressions WHERE hash = ?1", err);
    if (!s)
        return -1;
    bind_text(s, 1, hash);
    return (int)count1(st, s, "check suppression", err);
}

gboolean store_unsuppress(struct store *st, const char *hash, GError **err)
{
    sqlite3_stmt *s = prep(st, "DELETE FROM suppressions WHERE hash = ?1", err);
    if (!s)
        return FALSE;
    bind_text(s, 1, hash);
    return step_done(st, s, "unsuppress", err);
}

#define QUEUE_COLS \
    "d.id, d.enrollment_id, e.subscriber_id, d.lesson, d.message_id, " DLV_ORD("d.state") ", d.attempts,"\
    " d.slot_at, d.queued_at, d.next_attempt_at, coalesce(d.sent_at, 0), coalesce(d.last_code, 0),"\
    " d.last_text, s.email, s.name, s.tz, e.course, e.anchor_at, e.calendar_seq, e.calendar_dirty, e.round"

static struct delivery_row *delivery_from(sqlite3_stmt *s)
{
    struct delivery_row *d = g_new0(struct delivery_row, 1);
    d->id = sqlite3_column_int64(s, 0);
    d->enrollment_id = sqlite3_column_int64(s, 1);
    d->subscriber_id = sqlite3_column_int64(s, 2);
    d->lesson = sqlite3_column_int(s, 3);
    d->message_id = col_text(s, 4);
    d->state = (enum dlv_state)sqlite3_column_int(s, 5);
    d->attempts = sqlite3_column_int(s, 6);
    d->slot_at = sqlite3_column_int64(s, 7);
    d->queued_at = sqlite3_column_int64(s, 8);
    d->next_attempt_at = sqlite3_column_int64(s, 9);
    d->sent_at = sqlite3_column_int64(s, 10);
    d->last_code = sqlite3_column_int(s, 11);
    d->last_text = col_text(s, 12);
    d->email = col_text(s, 13);
    d->name = col_text(s, 14);
    d->tz = col_text(s, 15);
    d->course = col_text(s, 16);
    d->anchor_at = sqlite3_column_int64(s, 17);
    d->calendar_seq = sqlite3_column_int(s, 18);
    d->calendar_dirty = sqlite3_column_int(s, 19);
    d->round = sqlite3_column_int(s, 20);
    return d;
}

/* ---- transitions ---- */

gboolean store_enr_apply(struct store *st, gint64 id, enum state_event ev, const struct enr_change *ch,
                         gint64 now, GError **err)
{
    static const struct enr_change none;
    const struct state_transition *t = state_transition(ev);
    g_return_val_if_fail(t->ent == ENT_ENR, FALSE);
    ch = ch ? ch : &none;
    /* One statement: the guard is the event's "from" set as a bit mask. */
    sqlite3_stmt *s = prep(st,
        "UPDATE enrollments SET state = " ENR_NAME("?2") ","
        " next_send_at = CASE WHEN ?4 THEN nullif(?5, 0) ELSE next_send_at END,"
        " next_lesson = CASE WHEN ?6 THEN ?7 ELSE next_lesson END,"
        " paused_until = CASE WHEN ?8 THEN nullif(?9, 0) ELSE paused_until END,"
        " reason = CASE WHEN ?10 THEN ?11 ELSE reason END,"
        " calendar_seq = calendar_seq + ?12,"
        " calendar_dirty = CASE WHEN ?12 THEN 1 ELSE calendar_dirty END,"
        " anchor_at = CASE WHEN ?13 > 0 THEN ?13 ELSE anchor_at END,"
        " confirm_sent_at = CASE WHEN ?14 > 0 THEN ?14 ELSE confirm_sent_at END,"
        " round = round + ?16, complete_due = CASE WHEN ?16 THEN 0 ELSE complete_due END,"
        " updated_at = ?15"
        " WHERE id = ?1 AND (?3 >> " ENR_ORD("state") ") & 1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, t->to);
    sqlite3_bind_int64(s, 3, t->from);
    sqlite3_bind_int(s, 4, ch->set_next);
    sqlite3_bind_int64(s, 5, ch->next_send_at > 0 ? ch->next_send_at : 0);
    sqlite3_bind_int(s, 6, ch->set_lesson);
    sqlite3_bind_int(s, 7, ch->next_lesson);
    sqlite3_bind_int(s, 8, ch->set_pause);
    sqlite3_bind_int64(s, 9, ch->paused_until > 0 ? ch->paused_until : 0);
    sqlite3_bind_int(s, 10, ch->set_reason);
    bind_text(s, 11, state_reason_name(ch->reason));
    sqlite3_bind_int(s, 12, ch->replan ? 1 : 0);
    sqlite3_bind_int64(s, 13, ch->anchor_at);
    sqlite3_bind_int64(s, 14, ch->confirm_sent_at);
    sqlite3_bind_int64(s, 15, now);
    sqlite3_bind_int(s, 16, ch->new_round ? 1 : 0);
    if (!step_done(st, s, t->name, err))
        return FALSE;
    return sqlite3_changes(st->db) == 1 || refuse(st, "enrollments", id, ev, err);
}

gboolean store_sub_apply(struct store *st, gint64 id, enum state_event ev, gint64 now, GError **err)
{
    const struct state_transition *t = state_transition(ev);
    g_return_val_if_fail(t->ent == ENT_SUB, FALSE);
    sqlite3_stmt *s = prep(st,
        "UPDATE subscribers SET status = " SUB_NAME("?2") ", updated_at = ?4"
        " WHERE id = ?1 AND (?3 >> " SUB_ORD("status") ") & 1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, t->to);
    sqlite3_bind_int64(s, 3, t->from);
    sqlite3_bind_int64(s, 4, now);
    if (!step_done(st, s, t->name, err))
        return FALSE;
    return sqlite3_changes(st->db) == 1 || refuse(st, "subscribers", id, ev, err);
}

/* The shared body of delivery and system-mail transitions: the two tables
 * have the same state columns. */
static gboolean queue_apply(struct store *st, sqlite3_stmt *s, const char *table, gint64 id,
                            enum state_event ev, int code, const char *text, gint64 when, GError **err)
{
    const struct state_transition *t = state_transition(ev);
    if (!s)
        return FALSE;
    int attempts = ev == EV_DLV_CLAIM || ev == EV_MAIL_CLAIM       ? 1
                   : ev == EV_DLV_UNCLAIM || ev == EV_MAIL_UNCLAIM ? -1
                                                                   : 0;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, t->to);
    sqlite3_bind_int64(s, 3, t->from);
    sqlite3_bind_int(s, 4, attempts);
    sqlite3_bind_int64(s, 5, when);
    sqlite3_bind_int(s, 6, text != NULL);
    sqlite3_bind_int(s, 7, code);
    bind_text(s, 8, text);
    sqlite3_bind_int(s, 9, ev == EV_DLV_RETRY);
    if (!step_done(st, s, t->name, err))
        return FALSE;
    return sqlite3_changes(st->db) == 1 || refuse(st, table, id, ev, err);
}

gboolean store_dlv_apply(struct store *st, gint64 id, enum state_event ev, int code, const char *text,
                         gint64 when, GError **err)
{
    g_return_val_if_fail(state_transition(ev)->ent == ENT_DLV, FALSE);
    sqlite3_stmt *s = prep(st,
        "UPDATE deliveries SET state = " DLV_NAME("?2") ","
        " attempts = CASE WHEN ?9 THEN 0 ELSE max(attempts + ?4, 0) END,"
        " sent_at = CASE WHEN ?2 = 2 THEN ?5 ELSE sent_at END,"
        " next_attempt_at = CASE WHEN ?2 IN (0, 3) AND ?5 > 0 THEN ?5 ELSE next_attempt_at END,"
        " queued_at = CASE WHEN ?9 THEN ?5 ELSE queued_at END,"
        /* the operator's retry goes now, not at a later slot */
        " slot_at = CASE WHEN ?9 THEN ?5 ELSE slot_at END,"
        " last_code = CASE WHEN ?6 THEN ?7 ELSE last_code END,"
        " last_text = CASE WHEN ?6 THEN ?8 ELSE last_text END"
        " WHERE id = ?1 AND (?3 >> " DLV_ORD("state") ") & 1", err);
    return queue_apply(st, s, "deliveries", id, ev, code, text, when, err);
}

gboolean store_mail_apply(struct store *st, gint64 id, enum state_event ev, int code, const char *text,
                          gint64 when, GError **err)
{
    g_return_val_if_fail(state_transition(ev)->ent == ENT_MAIL, FALSE);
    sqlite3_stmt *s = prep(st,
        "UPDATE outbox SET state = " DLV_NAME("?2") ","
        " attempts = CASE WHEN ?9 THEN 0 ELSE max(attempts + ?4, 0) END,"
        " sent_at = CASE WHEN ?2 = 2 THEN ?5 ELSE sent_at END,"
        " next_attempt_at = CASE WHEN ?2 IN (0, 3) AND ?5 > 0 THEN ?5 ELSE next_attempt_at END,"
        " last_code = CASE WHEN ?6 THEN ?7 ELSE last_code END,"
        " last_text = CASE WHEN ?6 THEN ?8 ELSE last_text END"
        " WHERE id = ?1 AND (?3 >> " DLV_ORD("state") ") & 1", err);
    return queue_apply(st, s, "outbox", id, ev, code, text, when, err);
}

gboolean store_dlv_reslot(struct store *st, gint64 id, gint64 slot, GError **err)
{
    const struct state_transition *t = state_transition(EV_DLV_RESLOT);
    sqlite3_stmt *s = prep(st,
        "UPDATE deliveries SET state = " DLV_NAME("?2") ", slot_at = ?3, next_attempt_at = ?3"
        " WHERE id = ?1 AND (?4 >> " DLV_ORD("state") ") & 1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, t->to);
    sqlite3_bind_int64(s, 3, slot);
    sqlite3_bind_int64(s, 4, t->from);
    if (!step_done(st, s, t->name, err))
        return FALSE;
    return sqlite3_changes(st->db) == 1 || refuse(st, "deliveries", id, EV_DLV_RESLOT, err);
}

int store_dlv_withdraw(struct store *st, gint64 enrollment_id, const char *why, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "UPDATE deliveries SET state = 'cancelled', last_text = ?2"
                           " WHERE enrollment_id = ?1 AND (?3 >> " DLV_ORD("state") ") & 1",
                           err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, enrollment_id);
    bind_text(s, 2, why);
    sqlite3_bind_int64(s, 3, state_transition(EV_DLV_WITHDRAW)->from);
    if (!step_done(st, s, "withdraw queued lessons", err))
        return -1;
    return sqlite3_changes(st->db);
}

gboolean store_enr_lesson_done(struct store *st, const struct delivery_row *d, int next_lesson,
                               gint64 next_send_at, gboolean carried_calendar, gint64 now, GError **err)
{
    /* EV_ENR_PROGRESS or EV_ENR_COMPLETE for an active enrollment; a paused
     * or stopped one keeps its state and plans nothing (resume plans). The
     * guard next_lesson = lesson: only the lesson in flight moves it (a
     * `move` in between has already re-pointed it). */
    sqlite3_stmt *s = prep(
        st,
        "UPDATE enrollments SET updated_at = ?3, next_lesson = ?7,"
        " next_send_at = CASE WHEN state = 'active' AND ?4 > 0 THEN ?4 ELSE NULL END,"
        " state = CASE WHEN state = 'active' AND ?4 <= 0 THEN 'completed' ELSE state END,"
        " complete_due = CASE WHEN state = 'active' AND ?4 <= 0 THEN 1 ELSE complete_due END,"
        " calendar_dirty = CASE WHEN ?5 AND calendar_seq = ?6 THEN 0 ELSE calendar_dirty END"
        " WHERE id = ?1 AND next_lesson = ?2",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, d->enrollment_id);
    sqlite3_bind_int(s, 2, d->lesson);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, next_send_at);
    sqlite3_bind_int(s, 5, carried_calendar);
    sqlite3_bind_int(s, 6, d->calendar_seq);
    sqlite3_bind_int(s, 7, next_lesson);
    return step_done(st, s, "advance enrollment", err);
}

gboolean store_dlv_forget_from(struct store *st, gint64 enrollment_id, int lesson, gint64 now, GError **err)
{
    /* What went out (or was tried) moves to delivery_history first: the
     * day it went out keeps counting for max_per_day. */
    sqlite3_stmt *s = prep(
        st,
        "INSERT INTO delivery_history (enrollment_id, lesson, message_id, state, queued_at, sent_at,"
        " forgotten_at) SELECT enrollment_id, lesson, message_id, state, queued_at, sent_at, ?3"
        " FROM deliveries WHERE enrollment_id = ?1 AND lesson >= ?2 AND state NOT IN ('sending','cancelled')",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int(s, 2, lesson);
    sqlite3_bind_int64(s, 3, now);
    if (!step_done(st, s, "keep forgotten lessons", err))
        return FALSE;
    s = prep(st, "DELETE FROM deliveries WHERE enrollment_id = ?1 AND lesson >= ?2 AND state <> 'sending'",
             err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int(s, 2, lesson);
    return step_done(st, s, "forget later lessons", err);
}

GPtrArray *store_ready(struct store *st, gint64 now, int limit, GError **err)
{
    /* Only the rows in hand are looked at (index deliveries_ready), so a
     * round costs its own size, not the size of the queue. */
    sqlite3_stmt *s = prep(st,
        "SELECT " QUEUE_COLS ", e.state = 'active' AND s.status = 'active', " ENR_ORD("e.state") ","
        " " SUB_ORD("s.status")
        " FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
        " JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE d.state IN ('queued','deferred') AND d.next_attempt_at <= ?1"
        " ORDER BY d.next_attempt_at LIMIT ?2", err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_delivery_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct delivery_row *d = delivery_from(s);
        d->live = sqlite3_column_int(s, 21) != 0;
        d->enr_state = (enum enr_state)sqlite3_column_int(s, 22);
        d->sub_status = (enum sub_state)sqlite3_column_int(s, 23);
        g_ptr_array_add(a, d);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "read ready deliveries", err);
        return NULL;
    }
    return a;
}

/* The ids (gint64) that s (a prepared "SELECT id ... LIMIT ?1", or NULL
 * when preparing failed) returns for ?1 = limit; g_array_free(, TRUE).
 * NULL with err naming `what`. */
static GArray *id_rows(struct store *st, sqlite3_stmt *s, int limit, const char *what, GError **err)
{
    if (!s)
        return NULL;
    sqlite3_bind_int(s, 1, limit);
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        gint64 id = sqlite3_column_int64(s, 0);
        g_array_append_val(ids, id);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_array_free(ids, TRUE);
        fail(st, rc, what, err);
        return NULL;
    }
    return ids;
}

GArray *store_stuck(struct store *st, int limit, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "SELECT e.id FROM enrollments e WHERE e.state = 'active' AND e.next_send_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.enrollment_id = e.id"
        "   AND d.state IN ('queued','sending','deferred')) ORDER BY e.id LIMIT ?1",
        err);
    return id_rows(st, s, limit, "stuck enrollments", err);
}

GPtrArray *store_queue_list(struct store *st, int state, int limit, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "SELECT " QUEUE_COLS
        " FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
        " JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE (?1 < 0 AND d.state IN ('queued','sending','deferred','failed')) OR d.state = " DLV_NAME(
            "?1") " ORDER BY d.next_attempt_at, d.id LIMIT ?2",
        err);
    if (!s)
        return NULL;
    sqlite3_bind_int(s, 1, state);
    sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_delivery_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, delivery_from(s));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "list the queue", err);
        return NULL;
    }
    return a;
}

struct delivery_row *store_delivery_full(struct store *st, gint64 id, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT " QUEUE_COLS
                           " FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
                           " JOIN subscribers s ON s.id = e.subscriber_id WHERE d.id = ?1",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    struct delivery_row *d = rc == SQLITE_ROW ? delivery_from(s) : NULL;
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no delivery %" G_GINT64_FORMAT, id);
    else if (rc != SQLITE_ROW)
        fail(st, rc, "get delivery", err);
    return d;
}

gint64 store_event_last(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT coalesce(max(id), 0) FROM events", err);
    return s ? count1(st, s, "last event", err) : -1;
}

gboolean store_events_tag(struct store *st, gint64 after_id, const char *message_id, GError **err)
{
    sqlite3_stmt *s = prep(st, "UPDATE events SET message_id = ?2 WHERE id > ?1 AND message_id IS NULL", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, after_id);
    bind_text(s, 2, message_id);
    return step_done(st, s, "tag events", err);
}

GPtrArray *store_events(struct store *st, gint64 subscriber_id, int limit, GError **err)
{
    /* two texts, not "?1 = 0 OR subscriber_id = ?1": SQLite plans a
     * statement before its values are bound, and that one walks every
     * event newest first to find one subscriber's */
#define EVENTS_SELECT                                                                                 \
    "SELECT ev.at, coalesce(s.email, ''), ev.kind, ev.via, ev.detail, coalesce(ev.enrollment_id, 0)," \
    " ev.message_id FROM events ev LEFT JOIN subscribers s ON s.id = ev.subscriber_id"
    sqlite3_stmt *s =
        subscriber_id
            ? prep(st, EVENTS_SELECT " WHERE ev.subscriber_id = ?1 ORDER BY ev.at DESC, ev.id DESC LIMIT ?2",
                   err)
            : prep(st, EVENTS_SELECT " WHERE ?1 = 0 ORDER BY ev.at DESC, ev.id DESC LIMIT ?2", err);
#undef EVENTS_SELECT
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, subscriber_id);
    sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_event_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct event_row *e = g_new0(struct event_row, 1);
        e->at = sqlite3_column_int64(s, 0);
        e->email = col_text(s, 1);
        e->kind = col_text(s, 2);
        e->via = col_text(s, 3);
        e->detail = col_text(s, 4);
        e->enrollment_id = sqlite3_column_int64(s, 5);
        e->message_id = col_text(s, 6);
        g_ptr_array_add(a, e);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "read events", err);
        return NULL;
    }
    return a;
}

void store_event_free(struct event_row *e)
{
    if (!e)
        return;
    g_free(e->email);
    g_free(e->kind);
    g_free(e->via);
    g_free(e->detail);
    g_free(e->message_id);
    g_free(e);
}

gboolean store_funnel_lost(struct store *st, const char *course, GArray *lost, GError **err)
{
    /* The last lesson each enrollment that ended without completing got:
     * stopped (left the course) or its subscriber bounced or unsubscribed.
     * Someone active or paused between two lessons is waiting, not lost. */
    sqlite3_stmt *s = prep(
        st,
        "SELECT last, count(*) FROM (SELECT max(d.lesson) AS last FROM enrollments e"
        " JOIN subscribers sub ON sub.id = e.subscriber_id"
        " JOIN deliveries d ON d.enrollment_id = e.id AND d.state = 'sent'"
        " WHERE e.course = ?1 AND e.state <> 'completed'"
        "   AND (e.state = 'stopped' OR sub.status = 'bounced' OR sub.status = 'unsubscribed')"
        " GROUP BY e.id) GROUP BY last",
        err);
    if (!s)
        return FALSE;
    bind_text(s, 1, course);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int lesson = sqlite3_column_int(s, 0);
        if (lesson >= 1 && lesson <= (int)lost->len)
            g_array_index(lost, gint64, lesson - 1) = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "funnel lost", err);
    return TRUE;
}

gboolean store_funnel(struct store *st, const char *course, GArray *reached,
                      struct store_funnel_states *states, GError **err)
{
    memset(states, 0, sizeof *states);
    sqlite3_stmt *s = prep(
        st,
        "SELECT d.lesson, count(*) FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
        " WHERE e.course = ?1 AND d.state = 'sent' GROUP BY d.lesson ORDER BY d.lesson",
        err);
    if (!s)
        return FALSE;
    bind_text(s, 1, course);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int lesson = sqlite3_column_int(s, 0);
        gint64 n = sqlite3_column_int64(s, 1);
        if (lesson >= 1 && lesson <= (int)reached->len)
            g_array_index(reached, gint64, lesson - 1) = n;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "funnel", err);
    s = prep(st,
             "SELECT CASE WHEN sub.status IN ('bounced','unsubscribed') THEN sub.status"
             "            WHEN e.state = 'stopped' THEN 'unsubscribed' ELSE e.state END, count(*)"
             " FROM enrollments e JOIN subscribers sub ON sub.id = e.subscriber_id WHERE e.course = ?1"
             " GROUP BY 1",
             err);
    if (!s)
        return FALSE;
    bind_text(s, 1, course);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0);
        gint64 n = sqlite3_column_int64(s, 1);
        if (!strcmp(k, "active"))
            states->active += n;
        else if (!strcmp(k, "paused"))
            states->paused += n;
        else if (!strcmp(k, "completed"))
            states->completed += n;
        else if (!strcmp(k, "unsubscribed"))
            states->unsubscribed += n;
        else if (!strcmp(k, "bounced"))
            states->bounced += n;
        else if (!strcmp(k, "pending"))
            states->pending += n;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "funnel states", err);
    return TRUE;
}

gboolean store_daily(struct store *st, gint64 since, GArray *days, GError **err)
{
    /* One row per UTC day: sent lessons and mails, deferrals, bounces,
     * unsubscribes (from the audit trail). */
    sqlite3_stmt *s = prep(
        st,
        "SELECT day, sum(sent), sum(deferred), sum(bounced), sum(unsub) FROM ("
        " SELECT sent_at / 86400 AS day, 1 AS sent, 0 AS deferred, 0 AS bounced, 0 AS unsub"
        "   FROM deliveries WHERE sent_at >= ?1"
        " UNION ALL SELECT sent_at / 86400, 1, 0, 0, 0 FROM outbox WHERE sent_at >= ?1"
        " UNION ALL SELECT at / 86400, 0, kind = 'deferred', kind IN ('bounced','bounce-policy'),"
        "   kind = 'unsubscribed' FROM events WHERE at >= ?1"
        "   AND kind IN ('deferred','bounced','bounce-policy','unsubscribed'))"
        " GROUP BY day ORDER BY day",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, since);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_day d = { sqlite3_column_int64(s, 0) * 86400, sqlite3_column_int64(s, 1),
                               sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3),
                               sqlite3_column_int64(s, 4) };
        g_array_append_val(days, d);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "daily stats", err);
    return TRUE;
}

gboolean store_check(struct store *st, char **result, GError **err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);
    GString *out = g_string_new(NULL);
    if (rc == SQLITE_OK)
        while ((rc = sqlite3_step(s)) == SQLITE_ROW)
            g_string_append_printf(out, "%s%s", out->len ? "; " : "",
                                   (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        g_string_free(out, TRUE);
        return fail(st, rc, "integrity check", err);
    }
    *result = g_string_free(out, FALSE);
    return TRUE;
}

gboolean store_export(struct store *st, store_export_cb cb, void *arg, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "SELECT sub.email, sub.name, sub.tz, sub.status, e.course, e.state, coalesce(e.next_lesson, 0),"
        " sub.created_at FROM subscribers sub LEFT JOIN enrollments e ON e.subscriber_id = sub.id"
        " ORDER BY sub.id, e.id",
        err);
    if (!s)
        return FALSE;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_export_row r = {
            (const char *)sqlite3_column_text(s, 0),
            (const char *)sqlite3_column_text(s, 1),
            (const char *)sqlite3_column_text(s, 2),
            (const char *)sqlite3_column_text(s, 3),
            (const char *)sqlite3_column_text(s, 4),
            (const char *)sqlite3_column_text(s, 5),
            sqlite3_column_int(s, 6),
            sqlite3_column_int64(s, 7),
        };
        cb(&r, arg);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "export", err);
    return TRUE;
}

int store_recover_sending(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(st, "UPDATE deliveries SET state = 'queued' WHERE state = 'sending'", err);
    if (!s || !step_done(st, s, "recover sending", err))
        return -1;
    int n = sqlite3_changes(st->db);
    s = prep(st, "UPDATE outbox SET state = 'queued' WHERE state = 'sending'", err);
    if (!s || !step_done(st, s, "recover sending system mail", err))
        return -1;
    return n + sqlite3_changes(st->db);
}

gint64 store_outbox_add(struct store *st, gint64 subscriber_id, gint64 enrollment_id, const char *kind,
                        const char *rcpt, const char *data, gsize len, gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "INSERT INTO outbox (subscriber_id, enrollment_id, kind, rcpt, message, state, created_at,"
        " next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6)",
        err);
    if (!s)
        return -1;
    bind_time(s, 1, subscriber_id);
    bind_time(s, 2, enrollment_id);
    bind_text(s, 3, kind);
    bind_text(s, 4, rcpt);
    sqlite3_bind_blob64(s, 5, data, len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, now);
    if (!step_done(st, s, "queue system mail", err))
        return -1;
    return sqlite3_last_insert_rowid(st->db);
}

gint64 store_outbox_queue(struct store *st, gint64 subscriber_id, gint64 enrollment_id, const char *kind,
                          const char *rcpt, const char *course, const char *spec, gboolean reply, gint64 now,
                          GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO outbox (subscriber_id, enrollment_id, kind, rcpt, message, state,"
                           " created_at, next_attempt_at, course, spec, reply)"
                           " VALUES (?1, ?2, ?3, ?4, X'', 'queued', ?5, ?5, ?6, ?7, ?8)",
                           err);
    if (!s)
        return -1;
    bind_time(s, 1, subscriber_id);
    bind_time(s, 2, enrollment_id);
    bind_text(s, 3, kind);
    bind_text(s, 4, rcpt);
    sqlite3_bind_int64(s, 5, now);
    bind_text(s, 6, course);
    bind_text(s, 7, spec);
    sqlite3_bind_int(s, 8, reply ? 1 : 0);
    if (!step_done(st, s, "queue system mail", err))
        return -1;
    return sqlite3_last_insert_rowid(st->db);
}

gint64 store_outbox_replies(struct store *st, gint64 since, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT count(*) FROM outbox WHERE reply = 1 AND created_at >= ?1", err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, since);
    int rc = sqlite3_step(s);
    gint64 n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        fail(st, rc, "count automatic replies", err);
    return n;
}

#define OUTBOX_COLS                                                                            \
    "id, kind, rcpt, message, attempts, created_at, course, spec, coalesce(subscriber_id, 0)," \
    " coalesce(enrollment_id, 0), state, next_attempt_at, coalesce(last_code, 0), last_text"

/* The outbox row at s's current result (OUTBOX_COLS). */
static struct outbox_row *outbox_from(sqlite3_stmt *s)
{
    struct outbox_row *r = g_new0(struct outbox_row, 1);
    r->id = sqlite3_column_int64(s, 0);
    r->kind = col_text(s, 1);
    r->rcpt = col_text(s, 2);
    r->len = (gsize)sqlite3_column_bytes(s, 3);
    r->data = g_malloc(r->len + 1);
    if (r->len)
        memcpy(r->data, sqlite3_column_blob(s, 3), r->len);
    r->data[r->len] = '\0';
    r->attempts = sqlite3_column_int(s, 4);
    r->created_at = sqlite3_column_int64(s, 5);
    r->course = col_text(s, 6);
    r->spec = col_text(s, 7);
    r->subscriber_id = sqlite3_column_int64(s, 8);
    r->enrollment_id = sqlite3_column_int64(s, 9);
    r->state = state_parse(ENT_MAIL, (const char *)sqlite3_column_text(s, 10));
    r->next_attempt_at = sqlite3_column_int64(s, 11);
    r->last_code = sqlite3_column_int(s, 12);
    r->last_text = col_text(s, 13);
    return r;
}

struct outbox_row *store_outbox_get(struct store *st, gint64 id, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT " OUTBOX_COLS " FROM outbox WHERE id = ?1", err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    struct outbox_row *r = rc == SQLITE_ROW ? outbox_from(s) : NULL;
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no system mail %" G_GINT64_FORMAT, id);
    else if (rc != SQLITE_ROW)
        fail(st, rc, "read system mail", err);
    return r;
}

GPtrArray *store_outbox_list(struct store *st, int state, int limit, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT " OUTBOX_COLS
                           " FROM outbox"
                           " WHERE (?1 < 0 AND state IN ('queued','sending','deferred','failed'))"
                           " OR state = " DLV_NAME("?1") " ORDER BY next_attempt_at, id LIMIT ?2",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int(s, 1, state);
    sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_outbox_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, outbox_from(s));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "list the system mails", err);
        return NULL;
    }
    return a;
}

GPtrArray *store_outbox_claim(struct store *st, gint64 now, int limit, GError **err)
{
    if (!store_begin(st, err))
        return NULL;
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_outbox_free);
    sqlite3_stmt *s = prep(st,
                           "UPDATE outbox SET state = 'sending', attempts = attempts + 1"
                           " WHERE id IN (SELECT id FROM outbox WHERE state IN ('queued','deferred')"
                           "   AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2)"
                           " RETURNING " OUTBOX_COLS,
                           err);
    if (!s)
        goto fail;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, outbox_from(s));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        fail(st, rc, "claim system mail", err);
        goto fail;
    }
    if (!store_commit(st, err))
        goto fail;
    return a;
fail:
    store_rollback(st);
    g_ptr_array_unref(a);
    return NULL;
}

void store_outbox_free(struct outbox_row *r)
{
    if (!r)
        return;
    g_free(r->kind);
    g_free(r->rcpt);
    g_free(r->data);
    g_free(r->course);
    g_free(r->spec);
    g_free(r->last_text);
    g_free(r);
}

gboolean store_event(struct store *st, gint64 now, gint64 subscriber_id, gint64 enrollment_id,
                     const char *kind, const char *via, const char *detail, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO events (at, subscriber_id, enrollment_id, kind, via, detail)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, now);
    bind_time(s, 2, subscriber_id);
    bind_time(s, 3, enrollment_id);
    bind_text(s, 4, kind);
    bind_text(s, 5, via);
    bind_text(s, 6, detail ? detail : "");
    return step_done(st, s, "log event", err);
}

gboolean store_counts(struct store *st, struct store_counts *out, GError **err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = prep(st,
                           "SELECT 'sub', '', count(*) FROM subscribers"
                           " UNION ALL SELECT 'enr', state, count(*) FROM enrollments GROUP BY state"
                           " UNION ALL SELECT 'del', state, count(*) FROM deliveries GROUP BY state",
                           err);
    if (!s)
        return FALSE;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(s, 0);
        const char *state = (const char *)sqlite3_column_text(s, 1);
        gint64 n = sqlite3_column_int64(s, 2);
        if (strcmp(kind, "sub") == 0)
            out->subscribers = n;
        else if (strcmp(kind, "enr") == 0) {
            if (strcmp(state, "active") == 0)
                out->enroll_active = n;
            else if (strcmp(state, "paused") == 0)
                out->enroll_paused = n;
            else if (strcmp(state, "completed") == 0)
                out->enroll_completed = n;
            else if (strcmp(state, "stopped") == 0)
                out->enroll_stopped = n;
        } else {
            if (strcmp(state, "queued") == 0)
                out->queued = n;
            else if (strcmp(state, "sending") == 0)
                out->sending = n;
            else if (strcmp(state, "sent") == 0)
                out->sent = n;
            else if (strcmp(state, "deferred") == 0)
                out->deferred = n;
            else if (strcmp(state, "failed") == 0)
                out->failed = n;
            else if (strcmp(state, "cancelled") == 0)
                out->cancelled = n;
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "count", err);
    return TRUE;
}

gint64 store_next_due(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT min(t) FROM ("
                           " SELECT min(next_send_at) AS t FROM enrollments"
                           "  WHERE state = 'active' AND next_send_at IS NOT NULL"
                           " UNION ALL SELECT min(next_attempt_at) FROM deliveries"
                           "  WHERE state IN ('queued','deferred')"
                           " UNION ALL SELECT min(next_attempt_at) FROM outbox"
                           "  WHERE state IN ('queued','deferred')"
                           " UNION ALL SELECT min(paused_until) FROM enrollments"
                           "  WHERE state = 'paused' AND paused_until IS NOT NULL)",
                           err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    gint64 t = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        fail(st, rc, "next due", err);
        return -1;
    }
    return t;
}

gboolean store_idle(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "SELECT EXISTS (SELECT 1 FROM enrollments WHERE state = 'active')"
        " OR EXISTS (SELECT 1 FROM deliveries WHERE state IN ('queued','deferred','sending'))"
        " OR EXISTS (SELECT 1 FROM outbox WHERE state IN ('queued','deferred','sending'))"
        " OR EXISTS (SELECT 1 FROM enrollments WHERE complete_due = 1)",
        err);
    if (!s)
        return FALSE;
    int rc = sqlite3_step(s);
    gboolean busy = rc == SQLITE_ROW && sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return fail(st, rc, "idle check", err);
    return !busy;
}

/* ---- lessons by identity, and the versions of a course (schema 10) ---- */

gboolean store_owed(struct store *st, gint64 enrollment_id, int n_lessons, GArray *out, GError **err)
{
    /* Walks only this enrollment's rows (the UNIQUE index leads with
     * enrollment_id): n_lessons probes at most. */
    sqlite3_stmt *s = prep(st,
                           "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < ?2)"
                           " SELECT x FROM seq WHERE NOT EXISTS (SELECT 1 FROM deliveries d"
                           " WHERE d.enrollment_id = ?1 AND d.lesson = seq.x) ORDER BY x",
                           err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int(s, 2, n_lessons);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int x = sqlite3_column_int(s, 0);
        g_array_append_val(out, x);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE || fail(st, rc, "lessons still owed", err);
}

void store_version_free(struct store_version *v)
{
    if (!v)
        return;
    g_free(v->course);
    g_free(v->lessons);
    g_free(v->summary);
    g_free(v);
}

static struct store_version *version_from(sqlite3_stmt *s)
{
    struct store_version *v = g_new0(struct store_version, 1);
    v->course = col_text(s, 0);
    v->version = sqlite3_column_int(s, 1);
    v->created_at = sqlite3_column_int64(s, 2);
    v->lessons = col_text(s, 3);
    v->summary = col_text(s, 4);
    return v;
}

struct store_version *store_version_latest(struct store *st, const char *course, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT course, version, created_at, lessons, summary FROM course_versions"
                           " WHERE course = ?1 ORDER BY version DESC LIMIT 1",
                           err);
    if (!s)
        return NULL;
    bind_text(s, 1, course);
    int rc = sqlite3_step(s);
    struct store_version *v = rc == SQLITE_ROW ? version_from(s) : NULL;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        fail(st, rc, "latest course version", err);
    return v;
}

GPtrArray *store_versions(struct store *st, const char *course, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT course, version, created_at, lessons, summary FROM course_versions"
                           " WHERE course = ?1 ORDER BY version",
                           err);
    if (!s)
        return NULL;
    bind_text(s, 1, course);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_version_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, version_from(s));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "course versions", err);
        return NULL;
    }
    return a;
}

GPtrArray *store_version_courses(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT DISTINCT course FROM course_versions ORDER BY 1", err);
    if (!s)
        return NULL;
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, col_text(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "courses known", err);
        return NULL;
    }
    return a;
}

int store_version_add(struct store *st, const char *course, const char *lessons, const char *summary,
                      gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO course_versions (course, version, created_at, lessons, summary)"
                           " SELECT ?1, coalesce(max(version), 0) + 1, ?2, ?3, ?4 FROM course_versions"
                           " WHERE course = ?1 RETURNING version",
                           err);
    if (!s)
        return -1;
    bind_text(s, 1, course);
    sqlite3_bind_int64(s, 2, now);
    bind_text(s, 3, lessons);
    bind_text(s, 4, summary ? summary : "");
    int rc = sqlite3_step(s);
    int v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        fail(st, rc, "record a course version", err);
        return -1;
    }
    return v;
}

gboolean store_text_put(struct store *st, const char *hash, const char *subject, const char *body,
                        GError **err)
{
    sqlite3_stmt *s = prep(st, "INSERT OR IGNORE INTO lesson_texts (hash, subject, body) VALUES (?1, ?2, ?3)",
                           err);
    if (!s)
        return FALSE;
    bind_text(s, 1, hash);
    bind_text(s, 2, subject);
    bind_text(s, 3, body);
    return step_done(st, s, "keep a lesson text", err);
}

gboolean store_text_get(struct store *st, const char *hash, char **subject, char **body, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT subject, body FROM lesson_texts WHERE hash = ?1", err);
    if (!s)
        return FALSE;
    bind_text(s, 1, hash);
    int rc = sqlite3_step(s);
    *subject = rc == SQLITE_ROW ? col_text(s, 0) : NULL;
    *body = rc == SQLITE_ROW ? col_text(s, 1) : NULL;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE || fail(st, rc, "read a lesson text", err);
}

GPtrArray *store_course_enrollments(struct store *st, const char *course, int state, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT " ENR_COLS ", " SUB_ORD("s.status")
                           " FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id"
                           " WHERE e.course = ?1 AND (?2 < 0 OR e.state = " ENR_NAME("?2") ") ORDER BY e.id",
                           err);
    if (!s)
        return NULL;
    bind_text(s, 1, course);
    sqlite3_bind_int(s, 2, state);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_enrollment_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct enrollment_row *r = enrollment_from(s);
        r->sub_status = (enum sub_state)sqlite3_column_int(s, 17);
        g_ptr_array_add(a, r);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "read a course's enrollments", err);
        return NULL;
    }
    return a;
}

int store_course_count(struct store *st, const char *course, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT count(*) FROM enrollments WHERE course = ?1", err);
    if (!s)
        return -1;
    bind_text(s, 1, course);
    return (int)count1(st, s, "count enrollments of a course", err);
}

void store_mark_free(struct store_mark *m)
{
    if (!m)
        return;
    g_free(m->slug);
    g_free(m);
}

GPtrArray *store_marks(struct store *st, gint64 enrollment_id, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT id, lesson, slug, " DLV_ORD("state") ", slot_at, coalesce(last_text, '')"
                           " = 'skipped' FROM deliveries WHERE enrollment_id = ?1 ORDER BY lesson",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, enrollment_id);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_mark_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_mark *m = g_new0(struct store_mark, 1);
        m->id = sqlite3_column_int64(s, 0);
        m->lesson = sqlite3_column_int(s, 1);
        m->slug = col_text(s, 2);
        m->state = (enum dlv_state)sqlite3_column_int(s, 3);
        m->slot_at = sqlite3_column_int64(s, 4);
        m->skipped = sqlite3_column_int(s, 5);
        g_ptr_array_add(a, m);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "lessons of an enrollment", err);
        return NULL;
    }
    return a;
}

gboolean store_fill_slugs(struct store *st, const char *course, int lesson, const char *slug, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "UPDATE deliveries SET slug = ?3 WHERE slug IS NULL AND lesson = ?2 AND enrollment_id"
        " IN (SELECT id FROM enrollments WHERE course = ?1)",
        err);
    if (!s)
        return FALSE;
    bind_text(s, 1, course);
    sqlite3_bind_int(s, 2, lesson);
    bind_text(s, 3, slug);
    if (!step_done(st, s, "name delivered lessons", err))
        return FALSE;
    s = prep(st,
             "UPDATE delivery_history SET slug = ?3 WHERE slug IS NULL AND lesson = ?2 AND enrollment_id"
             " IN (SELECT id FROM enrollments WHERE course = ?1)",
             err);
    if (!s)
        return FALSE;
    bind_text(s, 1, course);
    sqlite3_bind_int(s, 2, lesson);
    bind_text(s, 3, slug);
    return step_done(st, s, "name forgotten lessons", err);
}

gboolean store_mark_place(struct store *st, gint64 id, int lesson, GError **err)
{
    sqlite3_stmt *s = prep(st, "UPDATE deliveries SET lesson = ?2 WHERE id = ?1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, lesson);
    return step_done(st, s, "renumber a lesson", err);
}

gboolean store_mark_skip(struct store *st, gint64 enrollment_id, int lesson, const char *slug, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "INSERT INTO deliveries (enrollment_id, lesson, message_id, state, slot_at, queued_at,"
        " next_attempt_at, last_text, slug) VALUES (?1, ?2, 'skipped-' || ?3 || '.e' || ?1,"
        " 'cancelled', 0, 0, 0, 'skipped', ?3)"
        " ON CONFLICT (enrollment_id, lesson) DO NOTHING",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int(s, 2, lesson);
    bind_text(s, 3, slug ? slug : "");
    return step_done(st, s, "mark a lesson skipped", err);
}

gboolean store_enr_repoint(struct store *st, gint64 id, int lesson, gint64 next_send_at, gboolean set_next,
                           gint64 now, GError **err)
{
    /* Not a state transition: where the enrollment stands in its course
     * moves, its state does not (the caller applies one if it changes). */
    sqlite3_stmt *s = prep(st,
                           "UPDATE enrollments SET next_lesson = ?2, updated_at = ?3,"
                           " next_send_at = CASE WHEN ?5 THEN nullif(?4, 0) ELSE next_send_at END,"
                           " calendar_seq = calendar_seq + 1, calendar_dirty = 1 WHERE id = ?1",
                           err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, lesson);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int64(s, 4, next_send_at > 0 ? next_send_at : 0);
    sqlite3_bind_int(s, 5, set_next);
    return step_done(st, s, "re-point an enrollment", err);
}

gboolean store_mark_drop(struct store *st, gint64 id, GError **err)
{
    sqlite3_stmt *s = prep(
        st, "DELETE FROM deliveries WHERE id = ?1 AND (state = 'cancelled' OR state = 'failed')", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    return step_done(st, s, "drop a withdrawn lesson", err);
}

GArray *store_complete_due(struct store *st, int limit, GError **err)
{
    /* The partial index enrollments_complete_due holds only the marked
     * rows: a tick with nothing owed costs one empty index probe. */
    sqlite3_stmt *s = prep(st, "SELECT id FROM enrollments WHERE complete_due = 1 ORDER BY id LIMIT ?1", err);
    return id_rows(st, s, limit, "enrollments owed a complete mail", err);
}

gboolean store_complete_clear(struct store *st, gint64 id, GError **err)
{
    sqlite3_stmt *s = prep(st, "UPDATE enrollments SET complete_due = 0 WHERE id = ?1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    return step_done(st, s, "complete mail done", err);
}

gboolean store_outbox_withdraw_unasked(struct store *st, gint64 subscriber_id, GError **err)
{
    /* Deleted, not failed: a mail that never left has nothing to audit,
     * and a 'failed' row would alarm the operator for nothing. */
    sqlite3_stmt *s = prep(
        st,
        "DELETE FROM outbox WHERE subscriber_id = ?1 AND (state = 'queued' OR state = 'deferred')"
        " AND (kind = 'welcome' OR kind = 'complete')",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, subscriber_id);
    return step_done(st, s, "withdraw unasked system mails", err);
}

gboolean store_suppress(struct store *st, const char *hash, const char *reason, gint64 now, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO suppressions (hash, created_at, reason) VALUES (?1, ?2, ?3)"
                           " ON CONFLICT (hash) DO NOTHING",
                           err);
    if (!s)
        return FALSE;
    bind_text(s, 1, hash);
    sqlite3_bind_int64(s, 2, now);
    bind_text(s, 3, reason);
    return step_done(st, s, "suppress", err);
}

void store_metric_free(struct store_metric *m)
{
    if (!m)
        return;
    g_free(m->name);
    g_free(m->label);
    g_free(m);
}

GPtrArray *store_metrics(struct store *st, gint64 now, GError **err)
{
    /* One read of every number /metrics shows (lib/metrics.c names and
     * documents them): per course, lessons sent (history included: a
     * moved lesson's first sending still happened), failed, deferred now
     * and bounced (the bounce events); the queue (lessons and system
     * mails waiting or in flight) and how long its oldest due item has
     * waited; inbound mails and what they caused. */
    sqlite3_stmt *s = prep(
        st,
        "SELECT 'sent', e.course, count(*) FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
        "  WHERE d.state = 'sent' GROUP BY e.course"
        " UNION ALL SELECT 'sent', e.course, count(*) FROM delivery_history h"
        "  JOIN enrollments e ON e.id = h.enrollment_id WHERE h.state = 'sent' GROUP BY e.course"
        " UNION ALL SELECT 'failed', e.course, count(*) FROM deliveries d"
        "  JOIN enrollments e ON e.id = d.enrollment_id WHERE d.state = 'failed' GROUP BY e.course"
        " UNION ALL SELECT 'deferred', e.course, count(*) FROM deliveries d"
        "  JOIN enrollments e ON e.id = d.enrollment_id WHERE d.state = 'deferred' GROUP BY e.course"
        " UNION ALL SELECT 'bounced', coalesce(e.course, ''), count(*) FROM events v"
        "  LEFT JOIN enrollments e ON e.id = v.enrollment_id WHERE v.kind = 'bounced'"
        "  GROUP BY coalesce(e.course, '')"
        " UNION ALL SELECT 'queue', 'lessons', count(*) FROM deliveries"
        "  WHERE state = 'queued' OR state = 'deferred' OR state = 'sending'"
        " UNION ALL SELECT 'queue', 'system', count(*) FROM outbox"
        "  WHERE state = 'queued' OR state = 'deferred' OR state = 'sending'"
        " UNION ALL SELECT 'oldest', '', ?1 - min(t) FROM ("
        "  SELECT min(next_send_at) AS t FROM enrollments WHERE state = 'active' AND next_send_at <= ?1"
        "  UNION ALL SELECT min(next_attempt_at) FROM deliveries"
        "   WHERE (state = 'queued' OR state = 'deferred') AND next_attempt_at <= ?1"
        "  UNION ALL SELECT min(next_attempt_at) FROM outbox"
        "   WHERE (state = 'queued' OR state = 'deferred') AND next_attempt_at <= ?1)"
        " UNION ALL SELECT 'inbound', '', count(*) FROM inbound"
        " UNION ALL SELECT 'caused', kind, count(*) FROM events WHERE message_id IS NOT NULL GROUP BY kind",
        err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, now);
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)store_metric_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_metric *m = g_new0(struct store_metric, 1);
        m->name = col_text(s, 0);
        m->label = col_text(s, 1);
        if (!m->label)
            m->label = g_strdup("");
        m->value = sqlite3_column_int64(s, 2); /* NULL (nothing due): 0 */
        g_ptr_array_add(rows, m);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(rows);
        fail(st, rc, "metrics", err);
        return NULL;
    }
    return rows;
}

char *store_lesson_time(struct store *st, gint64 enrollment_id, gint64 subscriber_id, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT lesson_time FROM subscribers WHERE id = coalesce(nullif(?2, 0),"
                           " (SELECT subscriber_id FROM enrollments WHERE id = ?1))",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int64(s, 2, subscriber_id);
    int rc = sqlite3_step(s);
    char *t = rc == SQLITE_ROW ? col_text(s, 0) : NULL;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        fail(st, rc, "read the time of day", err);
    return t;
}

gboolean store_sub_set_lesson_time(struct store *st, gint64 id, const char *lesson_time, gint64 now,
                                   GError **err)
{
    sqlite3_stmt *s = prep(st, "UPDATE subscribers SET lesson_time = ?2, updated_at = ?3 WHERE id = ?1", err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, lesson_time);
    sqlite3_bind_int64(s, 3, now);
    return step_done(st, s, "set the time of day", err);
}

GPtrArray *store_deliveries_of(struct store *st, gint64 subscriber_id, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT " QUEUE_COLS
                           " FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id"
                           " JOIN subscribers s ON s.id = e.subscriber_id"
                           " WHERE e.subscriber_id = ?1 ORDER BY d.id",
                           err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, subscriber_id);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_delivery_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_ptr_array_add(a, delivery_from(s));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "list a subscriber's deliveries", err);
        return NULL;
    }
    return a;
}

/* The consent records (schema: the consents table). */

gint64 store_consent_add(struct store *st, const struct consent_row *c, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "INSERT INTO consents (subscriber_id, enrollment_id, course, requested_at, source,"
                           " detail, operator, shown_sha256, mail_sha256, confirmed_at, confirmed_via, ip,"
                           " user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                           err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, c->subscriber_id);
    bind_time(s, 2, c->enrollment_id);
    bind_text(s, 3, c->course);
    sqlite3_bind_int64(s, 4, c->requested_at);
    bind_text(s, 5, c->source);
    bind_text(s, 6, c->detail ? c->detail : "");
    bind_text(s, 7, c->operator_name ? c->operator_name : "");
    bind_text(s, 8, c->shown_sha256);
    bind_text(s, 9, c->mail_sha256);
    bind_time(s, 10, c->confirmed_at);
    bind_text(s, 11, c->confirmed_via);
    bind_text(s, 12, c->ip);
    bind_text(s, 13, c->user_agent);
    if (!step_done(st, s, "record consent", err))
        return -1;
    return sqlite3_last_insert_rowid(st->db);
}

gboolean store_consent_confirm(struct store *st, gint64 enrollment_id, const char *via, gint64 now,
                               GError **err)
{
    /* the newest open request of the enrollment: the one whose mail was
     * answered (an older one was left unanswered) */
    sqlite3_stmt *s = prep(st,
                           "UPDATE consents SET confirmed_at = ?2, confirmed_via = ?3 WHERE id = ("
                           "SELECT max(id) FROM consents WHERE enrollment_id = ?1 AND confirmed_at IS NULL)",
                           err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, enrollment_id);
    sqlite3_bind_int64(s, 2, now);
    bind_text(s, 3, via);
    return step_done(st, s, "record the confirmation", err);
}

gboolean store_consent_mail(struct store *st, gint64 enrollment_id, const char *sha256, GError **err)
{
    /* the newest open request: the one this confirmation mail was queued
     * with (rendered again on a retry, the same bytes: set once) */
    sqlite3_stmt *s = prep(st,
                           "UPDATE consents SET mail_sha256 = ?2 WHERE mail_sha256 IS NULL AND id = ("
                           "SELECT max(id) FROM consents WHERE enrollment_id = ?1 AND confirmed_at IS NULL)",
                           err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, enrollment_id);
    bind_text(s, 2, sha256);
    return step_done(st, s, "record the confirmation mail's hash", err);
}

gboolean store_consent_import(struct store *st, gint64 after_id, const char *file, const char *operator_name,
                              gint64 now, GError **err)
{
    /* inside the import's transaction every enrollment above after_id is
     * one it made: one statement, not a row per line of a large file */
    sqlite3_stmt *s = prep(
        st,
        "INSERT OR ROLLBACK INTO consents (subscriber_id, enrollment_id, course, requested_at,"
        " source, detail, operator, confirmed_at, confirmed_via)"
        " SELECT e.subscriber_id, e.id, e.course, ?1, 'import', ?2, ?3, ?1, 'operator'"
        " FROM enrollments e WHERE e.id > ?4 ORDER BY e.id",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 4, after_id);
    bind_text(s, 2, file);
    bind_text(s, 3, operator_name);
    return step_done(st, s, "record the consent of an import", err);
}

GPtrArray *store_consents_of(struct store *st, gint64 subscriber_id, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "SELECT subscriber_id, coalesce(enrollment_id, 0), course, requested_at, source,"
        " detail, operator, shown_sha256, mail_sha256, coalesce(confirmed_at, 0),"
        " confirmed_via, ip, user_agent FROM consents WHERE subscriber_id = ?1 ORDER BY id",
        err);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, subscriber_id);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_consent_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct consent_row *c = g_new0(struct consent_row, 1);
        c->subscriber_id = sqlite3_column_int64(s, 0);
        c->enrollment_id = sqlite3_column_int64(s, 1);
        c->course = col_text(s, 2);
        c->requested_at = sqlite3_column_int64(s, 3);
        c->source = col_text(s, 4);
        c->detail = col_text(s, 5);
        c->operator_name = col_text(s, 6);
        c->shown_sha256 = col_text(s, 7);
        c->mail_sha256 = col_text(s, 8);
        c->confirmed_at = sqlite3_column_int64(s, 9);
        c->confirmed_via = col_text(s, 10);
        c->ip = col_text(s, 11);
        c->user_agent = col_text(s, 12);
        g_ptr_array_add(a, c);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        g_ptr_array_unref(a);
        fail(st, rc, "read consent records", err);
        return NULL;
    }
    return a;
}

void store_consent_free(struct consent_row *c)
{
    if (!c)
        return;
    g_free(c->course);
    g_free(c->source);
    g_free(c->detail);
    g_free(c->operator_name);
    g_free(c->shown_sha256);
    g_free(c->mail_sha256);
    g_free(c->confirmed_via);
    g_free(c->ip);
    g_free(c->user_agent);
    g_free(c);
}

/* ---- readers' notes ---- */

gint64 store_note_add(struct store *st, const struct note_row *n, GError **err)
{
    sqlite3_stmt *s = prep(
        st,
        "INSERT INTO notes (subscriber_id, course, lesson_slug, lesson, received_at,"
        " message_id, body, forward, outbox_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, n->subscriber_id);
    bind_text(s, 2, n->course);
    bind_text(s, 3, n->lesson_slug);
    if (n->lesson > 0)
        sqlite3_bind_int(s, 4, n->lesson);
    sqlite3_bind_int64(s, 5, n->received_at);
    bind_text(s, 6, n->message_id);
    bind_text(s, 7, n->body);
    bind_text(s, 8, n->forward ? n->forward : "kept");
    bind_time(s, 9, n->outbox_id);
    if (!step_done(st, s, "store note", err))
        return -1;
    return sqlite3_last_insert_rowid(st->db);
}

gint64 store_notes_forwarded_since(struct store *st, gint64 subscriber_id, gint64 since, GError **err)
{
    sqlite3_stmt *s = prep(st,
                           "SELECT count(*) FROM notes WHERE subscriber_id = ?1 AND received_at >= ?2"
                           " AND forward = 'queued'",
                           err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, subscriber_id);
    sqlite3_bind_int64(s, 2, since);
    return count1(st, s, "count forwarded notes", err);
}

GPtrArray *store_notes(struct store *st, const char *course, GError **err)
{
    /* The forward's state is the outbox row's own while it exists (queued,
     * sent, deferred, failed), so the list tells the truth about delivery. */
    sqlite3_stmt *s = prep(
        st,
        "SELECT n.id, n.subscriber_id, s.email, n.course, n.lesson_slug, n.lesson,"
        " n.received_at, n.message_id, n.body,"
        " CASE WHEN n.forward = 'queued' THEN coalesce(o.state, 'queued') ELSE n.forward END"
        " FROM notes n JOIN subscribers s ON s.id = n.subscriber_id"
        " LEFT JOIN outbox o ON o.id = n.outbox_id"
        " WHERE ?1 IS NULL OR n.course = ?1 ORDER BY n.received_at, n.id",
        err);
    if (!s)
        return NULL;
    bind_text(s, 1, course);
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_note_free);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct note_row *n = g_new0(struct note_row, 1);
        n->id = sqlite3_column_int64(s, 0);
        n->subscriber_id = sqlite3_column_int64(s, 1);
        n->email = col_text(s, 2);
        n->course = col_text(s, 3);
        n->lesson_slug = col_text(s, 4);
        n->lesson = sqlite3_column_int(s, 5);
        n->received_at = sqlite3_column_int64(s, 6);
        n->message_id = col_text(s, 7);
        n->body = col_text(s, 8);
        n->forward = col_text(s, 9);
        g_ptr_array_add(a, n);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        fail(st, rc, "list notes", err);
        g_ptr_array_unref(a);
        return NULL;
    }
    return a;
}

void store_note_free(struct note_row *n)
{
    if (!n)
        return;
    g_free(n->email);
    g_free(n->course);
    g_free(n->lesson_slug);
    g_free(n->message_id);
    g_free(n->body);
    g_free(n->forward);
    g_free(n);
}

gboolean store_note_counts(struct store *st, const char *course, GArray *per_lesson, GError **err)
{
    sqlite3_stmt *s = prep(
        st, "SELECT lesson, count(*) FROM notes WHERE course = ?1 AND lesson > 0 GROUP BY lesson", err);
    if (!s)
        return FALSE;
    bind_text(s, 1, course);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int lesson = sqlite3_column_int(s, 0);
        if (lesson >= 1 && (guint)lesson <= per_lesson->len)
            g_array_index(per_lesson, gint64, lesson - 1) = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE || fail(st, rc, "count notes", err);
}

/* ---- bulk import (transfer.c): the checks of a whole file at once ---- */

GHashTable *store_suppression_set(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT hash FROM suppressions", err);
    if (!s)
        return NULL;
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_hash_table_add(set, col_text(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        fail(st, rc, "read suppressions", err);
        g_hash_table_destroy(set);
        return NULL;
    }
    return set;
}

gint64 store_subs_max_id(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT coalesce(max(id), 0) FROM subscribers", err);
    return s ? count1(st, s, "newest subscriber", err) : -1;
}

void store_known_sub_free(struct store_known_sub *k)
{
    if (!k)
        return;
    g_free(k->tz);
    g_free(k);
}

gboolean store_import_lookup(struct store *st, const char *const *emails, guint n, GHashTable *known,
                             GHashTable *enrolled, GError **err)
{
    /* One temporary table of the file's addresses, joined once with
     * subscribers and enrollments: two statements instead of two queries
     * per row. */
    if (!exec(st, "CREATE TEMP TABLE IF NOT EXISTS import_emails (email TEXT NOT NULL)", err) ||
        !exec(st, "DELETE FROM temp.import_emails", err))
        return FALSE;
    sqlite3_stmt *s = prep(st, "INSERT INTO temp.import_emails (email) VALUES (?1)", err);
    if (!s)
        return FALSE;
    for (guint i = 0; i < n; i++) {
        sqlite3_bind_text(s, 1, emails[i], -1, SQLITE_STATIC);
        if (!step_done(st, s, "import address", err))
            return FALSE;
    }
    s = prep(st,
             "SELECT i.email, s.id, " SUB_ORD("s.status") ", s.tz FROM temp.import_emails i"
                                                          " JOIN subscribers s ON s.email = i.email",
             err);
    if (!s)
        return FALSE;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_known_sub *k = g_new0(struct store_known_sub, 1);
        k->id = sqlite3_column_int64(s, 1);
        k->status = (enum sub_state)sqlite3_column_int(s, 2);
        k->tz = col_text(s, 3);
        g_hash_table_replace(known, col_text(s, 0), k);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "look up imported addresses", err);
    s = prep(st,
             "SELECT i.email || char(10) || e.course FROM temp.import_emails i"
             " JOIN subscribers s ON s.email = i.email JOIN enrollments e ON e.subscriber_id = s.id",
             err);
    if (!s)
        return FALSE;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        g_hash_table_add(enrolled, col_text(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return fail(st, rc, "look up imported enrollments", err);
    return exec(st, "DELETE FROM temp.import_emails", err);
}

gboolean store_events_imported(struct store *st, gint64 after_id, gint64 now, GError **err)
{
    /* inside the import's transaction every subscriber above after_id is
     * one it added: their audit events in one statement */
    sqlite3_stmt *s = prep(
        st,
        "INSERT OR ROLLBACK INTO events (at, subscriber_id, enrollment_id, kind, via, detail)"
        " SELECT ?1, id, NULL, 'imported', 'cli', '' FROM subscribers WHERE id > ?2 ORDER BY id",
        err);
    if (!s)
        return FALSE;
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, after_id);
    return step_done(st, s, "log imports", err);
}

/* SQLite advises its rollback journal over the WAL for transactions of
 * more than about 100 MB: the WAL holds every new page once and the
 * checkpoint copies it again, where a rollback journal keeps only the old
 * contents of the pages that already existed (none of a new table's). A
 * row of an import is about 400 bytes with its indexes. */
#define BULK_ALONE_ROWS 100000

gboolean store_bulk_begin(struct store *st, guint rows, GError **err)
{
    /* A large transaction touches its indexes' pages many times: with
     * SQLite's 2 MB cache they go to the WAL and are read back again and
     * again. Each multi-row INSERT inside a transaction also keeps a
     * statement journal, to undo itself alone if a constraint fails; on
     * disk that journal was two thirds of an import's writes (a temporary
     * file cut and written again for every statement). In memory it holds
     * only the pages one statement touches. The foreign keys are the
     * caller's to keep (store.h): checking them was a lookup per row and
     * table. */
    st->bulk_alone = FALSE;
    if (!exec(st, "PRAGMA cache_size = -131072; PRAGMA temp_store = MEMORY; PRAGMA foreign_keys = OFF", err))
        return FALSE;
    if (rows >= BULK_ALONE_ROWS) {
        /* only when no other connection has the database open: the switch
         * needs it alone, and is refused at once (no waiting) otherwise */
        sqlite3_busy_timeout(st->db, 0);
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = DELETE", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            st->bulk_alone = !g_strcmp0((const char *)sqlite3_column_text(s, 0), "delete");
        sqlite3_finalize(s);
        sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    }
    /* Alone, the file grows 16 MB at a time (fallocate), not a page at a
     * time; store_bulk_end cuts what is left over. */
    if (st->bulk_alone) {
        int chunk = 16 * 1024 * 1024;
        sqlite3_file_control(st->db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk);
    }
    return store_begin(st, err);
}

gboolean store_bulk_alone(const struct store *st)
{
    return st->bulk_alone;
}

/* Cuts the database file to the pages it holds, under an exclusive lock
 * (nobody reads or writes meanwhile): growing by chunks leaves up to one
 * chunk past the end, and a transaction rolled back (by SQLite itself on a
 * full disk) leaves all it had grown. Only in the rollback journal, where
 * the file's pages are the database's. */
static void bulk_trim(struct store *st)
{
    if (sqlite3_exec(st->db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK)
        return; /* someone else has it: the tail stays, unused */
    sqlite3_file *f = NULL;
    sqlite3_int64 size = 0;
    gint64 pages = 0, page_size = 0;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA page_count", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        pages = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(st->db, "PRAGMA page_size", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        page_size = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (pages > 0 && page_size > 0 &&
        sqlite3_file_control(st->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f &&
        f->pMethods && f->pMethods->xFileSize(f, &size) == SQLITE_OK && size > pages * page_size)
        f->pMethods->xTruncate(f, pages * page_size);
    sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
}

void store_bulk_end(struct store *st)
{
    if (!st)
        return;
    if (st->depth > 0)
        store_rollback(st);
    if (st->bulk_alone) {
        int chunk = 0;
        sqlite3_file_control(st->db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk);
        bulk_trim(st);
        /* If this cannot have the WAL back (someone opened the database in
         * the meantime and is reading it), the next store_open anywhere
         * sets it. */
        sqlite3_exec(st->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
    }
    st->bulk_alone = FALSE;
    sqlite3_exec(st->db, "PRAGMA cache_size = -2000; PRAGMA temp_store = DEFAULT; PRAGMA foreign_keys = ON",
                 NULL, NULL, NULL);
}

/* Runs `head` followed by n copies of `row` (comma-separated) with the
 * values bind() puts in, for rows [0, total) in chunks of STORE_BULK_ROWS:
 * one statement per chunk, not per row (a statement's start and end cost
 * as much as the insert itself). */
typedef void (*bulk_bind_fn)(sqlite3_stmt *s, int *col, guint i, const void *rows, gint64 now);

/* The INSERT of head and n copies of row, prepared; NULL with err. */
static sqlite3_stmt *bulk_prepare(struct store *st, const char *head, const char *row, guint n,
                                  const char *what, GError **err)
{
    GString *sql = g_string_new(head);
    for (guint k = 0; k < n; k++) {
        if (k)
            g_string_append_c(sql, ',');
        g_string_append(sql, row);
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(st->db, sql->str, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    g_string_free(sql, TRUE);
    if (rc != SQLITE_OK) {
        fail(st, rc, what, err);
        return NULL;
    }
    return s;
}

static gboolean bulk_insert(struct store *st, const char *head, const char *row, const void *rows,
                            guint total, bulk_bind_fn bind, gint64 now, const char *what, GError **err)
{
    /* the full-size statement is kept with the connection, as prep() keeps
     * the others: preparing it cost as much as a few hundred rows */
    if (!st->bulk)
        st->bulk = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, stmt_finalize);
    sqlite3_stmt *full = g_hash_table_lookup(st->bulk, head);
    if (!full && total >= STORE_BULK_ROWS) {
        full = bulk_prepare(st, head, row, STORE_BULK_ROWS, what, err);
        if (!full)
            return FALSE;
        g_hash_table_insert(st->bulk, (gpointer)head, full);
    }
    gboolean ok = TRUE;
    for (guint at = 0; ok && at < total; at += STORE_BULK_ROWS) {
        guint n = MIN(STORE_BULK_ROWS, total - at);
        sqlite3_stmt *s = n == STORE_BULK_ROWS ? full : bulk_prepare(st, head, row, n, what, err);
        if (!s)
            return FALSE;
        int col = 1;
        for (guint k = 0; k < n; k++)
            bind(s, &col, at + k, rows, now);
        ok = step_done(st, s, what, err);
        sqlite3_clear_bindings(s); /* the rows' strings are bound SQLITE_STATIC */
        if (s != full)
            sqlite3_finalize(s);
    }
    return ok;
}

static void bind_new_sub(sqlite3_stmt *s, int *col, guint i, const void *rows, gint64 now)
{
    const struct store_new_sub *r = (const struct store_new_sub *)rows + i;
    sqlite3_bind_int64(s, (*col)++, r->id);
    sqlite3_bind_text(s, (*col)++, r->email, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, (*col)++, r->name ? r->name : "", -1, SQLITE_STATIC);
    if (r->tz && *r->tz)
        sqlite3_bind_text(s, (*col)++, r->tz, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, (*col)++);
    sqlite3_bind_int(s, (*col)++, r->status);
    sqlite3_bind_int64(s, (*col)++, now);
    sqlite3_bind_int64(s, (*col)++, now);
}

gboolean store_subs_insert(struct store *st, const struct store_new_sub *subs, guint n, gint64 now,
                           GError **err)
{
    return bulk_insert(
        st,
        "INSERT OR ROLLBACK INTO subscribers (id, email, name, tz, status, created_at, updated_at) VALUES ",
        "(?, ?, ?, ?, " SUB_NAME("?") ", ?, ?)", subs, n, bind_new_sub, now, "import subscribers", err);
}

static void bind_new_enr(sqlite3_stmt *s, int *col, guint i, const void *rows, gint64 now)
{
    const struct store_new_enr *r = (const struct store_new_enr *)rows + i;
    sqlite3_bind_int64(s, (*col)++, r->id);
    sqlite3_bind_int64(s, (*col)++, r->subscriber_id);
    sqlite3_bind_text(s, (*col)++, r->course, -1, SQLITE_STATIC);
    bind_time(s, (*col)++, r->next_send_at);
    for (int k = 0; k < 3; k++)
        sqlite3_bind_int64(s, (*col)++, now); /* anchor_at, created_at, updated_at */
}

gboolean store_enrollments_insert(struct store *st, const struct store_new_enr *enrs, guint n, gint64 now,
                                  GError **err)
{
    return bulk_insert(
        st,
        "INSERT OR ROLLBACK INTO enrollments (id, subscriber_id, course, state, next_lesson, next_send_at,"
        " anchor_at, created_at, updated_at) VALUES ",
        "(?, ?, ?, 'active', 1, ?, ?, ?, ?)", enrs, n, bind_new_enr, now, "import enrollments", err);
}

gint64 store_enrollments_max_id(struct store *st, GError **err)
{
    sqlite3_stmt *s = prep(st, "SELECT coalesce(max(id), 0) FROM enrollments", err);
    return s ? count1(st, s, "newest enrollment", err) : -1;
}
