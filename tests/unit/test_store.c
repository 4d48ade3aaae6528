/* test_store.c - unit tests of lib/store.c on a scratch SQLite file: the
 * schema, subscribers, enrollments and the delivery life cycle
 * (queue -> claim -> sent / deferred / failed, crash recovery), written
 * through store_ready() and the guarded transitions (store_*_apply) the way
 * tick.c and lifecycle.c write them. Every event from every state is
 * tested in test_state.c.
 *
 * A few set-ups the API cannot make (a paused enrollment, a schema from the
 * future, a file that is not a database) are written with a second SQLite
 * connection. */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include "error.h"
#include "store.h"

struct fx {
    char *dir;
    char *path;
    struct store *st;
};

static void rm_rf(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    if (d) {
        const char *name;
        while ((name = g_dir_read_name(d))) {
            char *sub = g_build_filename(path, name, NULL);
            rm_rf(sub);
            g_free(sub);
        }
        g_dir_close(d);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

static void fx_setup(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    f->dir = g_dir_make_tmp("coursed-store-XXXXXX", &err);
    g_assert_no_error(err);
    f->path = g_build_filename(f->dir, "state.db", NULL);
    f->st = store_open(f->path, TRUE, &err);
    g_assert_no_error(err);
    g_assert_nonnull(f->st);
}

static void fx_teardown(struct fx *f, gconstpointer data)
{
    (void)data;
    store_close(f->st);
    rm_rf(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

/* Runs sql on a second connection to the same file. */
static void side_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        g_test_message("side_exec: %s: %s", sql, msg);
    g_assert_cmpint(rc, ==, SQLITE_OK);
    sqlite3_close(db);
}

static struct store_counts counts(struct store *st)
{
    struct store_counts c;
    GError *err = NULL;
    g_assert_true(store_counts(st, &c, &err));
    g_assert_no_error(err);
    return c;
}

static gint64 add_sub(struct store *st, const char *email, gint64 now)
{
    GError *err = NULL;
    gint64 id = store_sub_add(st, email, "Name", NULL, SUB_ACTIVE, now, &err);
    g_assert_no_error(err);
    g_assert_cmpint(id, >, 0);
    return id;
}

static gint64 enroll(struct store *st, gint64 sub, const char *course, gint64 next, gint64 anchor)
{
    GError *err = NULL;
    gint64 id = store_enroll(st, sub, course, ENR_ACTIVE, next, anchor, anchor, &err);
    g_assert_no_error(err);
    g_assert_cmpint(id, >, 0);
    return id;
}

/* The one enrollment row with this id, from store_enrollments_of. */
static struct enrollment_row *get_enrollment(struct store *st, gint64 sub, gint64 id)
{
    GError *err = NULL;
    GPtrArray *a = store_enrollments_of(st, sub, &err);
    g_assert_no_error(err);
    g_assert_nonnull(a);
    struct enrollment_row *found = NULL;
    for (guint i = 0; i < a->len; i++) {
        struct enrollment_row *e = a->pdata[i];
        if (e->id == id)
            found = g_ptr_array_steal_index(a, i);
    }
    g_ptr_array_unref(a);
    g_assert_nonnull(found);
    return found;
}

/* Queues the lesson e points at, in its own transaction. */
static void queue(struct store *st, const struct enrollment_row *e, const char *msgid, gint64 now)
{
    GError *err = NULL;
    g_assert_true(store_begin(st, &err));
    g_assert_no_error(err);
    g_assert_true(store_queue(st, e, "x", msgid, now, &err));
    g_assert_no_error(err);
    g_assert_true(store_commit(st, &err));
    g_assert_no_error(err);
}

/* Enrolls and queues lesson 1 of a fresh subscriber; returns the
 * enrollment id. */
static gint64 enroll_and_queue(struct store *st, const char *email, const char *course, gint64 slot,
                               gint64 now, gint64 *sub_out)
{
    gint64 sub = add_sub(st, email, slot - 100);
    gint64 id = enroll(st, sub, course, slot, slot - 100);
    struct enrollment_row *e = get_enrollment(st, sub, id);
    char *msgid = g_strdup_printf("<%s.%s.1@example.org>", course, email);
    queue(st, e, msgid, now);
    g_free(msgid);
    store_enrollment_free(e);
    if (sub_out)
        *sub_out = sub;
    return id;
}

/* Claims up to limit ready deliveries the way the tick does: store_ready()
 * reads them, then, in one transaction, each live one is claimed
 * (EV_DLV_CLAIM) and a moot one (its enrollment or subscriber no longer
 * active) withdrawn. Returns the claimed rows as stored afterwards. */
static GPtrArray *claim(struct store *st, gint64 now, int limit)
{
    GError *err = NULL;
    g_assert_true(store_begin(st, &err));
    g_assert_no_error(err);
    GPtrArray *ready = store_ready(st, now, limit, &err);
    g_assert_no_error(err);
    g_assert_nonnull(ready);
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    for (guint i = 0; i < ready->len; i++) {
        const struct delivery_row *d = ready->pdata[i];
        g_assert_true(d->state == DLV_QUEUED || d->state == DLV_DEFERRED);
        if (!d->live) {
            g_assert_cmpint(store_dlv_withdraw(st, d->enrollment_id, "enrollment no longer active", &err), >=,
                            0);
            g_assert_no_error(err);
            continue;
        }
        g_assert_true(store_dlv_apply(st, d->id, EV_DLV_CLAIM, 0, NULL, 0, &err));
        g_assert_no_error(err);
        g_array_append_val(ids, d->id);
    }
    g_ptr_array_unref(ready);
    g_assert_true(store_commit(st, &err));
    g_assert_no_error(err);

    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)store_delivery_free);
    for (guint i = 0; i < ids->len; i++) {
        struct delivery_row *d = store_delivery_full(st, g_array_index(ids, gint64, i), &err);
        g_assert_no_error(err);
        g_assert_nonnull(d);
        g_ptr_array_add(a, d);
    }
    g_array_free(ids, TRUE);
    return a;
}

/* ---- opening ---- */

static void test_open_version(struct fx *f, gconstpointer data)
{
    (void)data;
    g_assert_cmpint(store_latest_version(), >=, 1);
    g_assert_cmpint(store_schema_version(f->st), ==, store_latest_version());
    add_sub(f->st, "kept@example.org", 1000);
    store_close(f->st);

    /* Reopening migrates nothing and keeps the data, with or without create. */
    for (int i = 0; i < 2; i++) {
        GError *err = NULL;
        f->st = store_open(f->path, i == 0, &err);
        g_assert_no_error(err);
        g_assert_nonnull(f->st);
        g_assert_cmpint(store_schema_version(f->st), ==, store_latest_version());
        struct sub_row *r = store_sub_get(f->st, "kept@example.org", &err);
        g_assert_no_error(err);
        g_assert_nonnull(r);
        store_sub_free(r);
        g_assert_cmpint(counts(f->st).subscribers, ==, 1);
        store_close(f->st);
    }
    f->st = store_open(f->path, FALSE, NULL);
    g_assert_nonnull(f->st);
    store_close(NULL); /* accepts NULL */
}

static void test_open_missing(struct fx *f, gconstpointer data)
{
    (void)data;
    char *missing = g_build_filename(f->dir, "missing.db", NULL);
    GError *err = NULL;
    struct store *st = store_open(missing, FALSE, &err);
    g_assert_null(st);
    g_assert_error(err, CD_ERROR, CD_ERR_NOT_FOUND);
    g_assert_nonnull(strstr(err->message, missing));
    g_clear_error(&err);
    g_assert_false(g_file_test(missing, G_FILE_TEST_EXISTS)); /* not created */

    /* create in a folder that does not exist: an error, not a crash */
    char *deep = g_build_filename(f->dir, "no", "such", "dir", "x.db", NULL);
    st = store_open(deep, TRUE, &err);
    g_assert_null(st);
    g_assert_nonnull(err);
    g_assert_true(err->domain == CD_ERROR);
    g_clear_error(&err);
    g_free(deep);
    g_free(missing);
}

static void test_open_bad_files(struct fx *f, gconstpointer data)
{
    (void)data;
    /* not a database */
    char *junk = g_build_filename(f->dir, "junk.db", NULL);
    GError *err = NULL;
    char text[4096];
    memset(text, 'x', sizeof text);
    g_file_set_contents(junk, text, sizeof text, &err);
    g_assert_no_error(err);
    struct store *st = store_open(junk, FALSE, &err);
    g_assert_null(st);
    g_assert_nonnull(err);
    g_assert_true(err->domain == CD_ERROR);
    g_clear_error(&err);
    g_free(junk);

    /* a schema newer than this build knows */
    store_close(f->st);
    f->st = NULL;
    char *sql = g_strdup_printf("PRAGMA user_version = %d", store_latest_version() + 1);
    side_exec(f->path, sql);
    g_free(sql);
    st = store_open(f->path, FALSE, &err);
    g_assert_null(st);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message, "newer"));
    g_clear_error(&err);

    /* a negative version no coursed wrote: refused, not migrated from
     * migrations[-1] (found by clang's analyzer) */
    side_exec(f->path, "PRAGMA user_version = -1");
    st = store_open(f->path, FALSE, &err);
    g_assert_null(st);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message, "schema version"));
    g_clear_error(&err);
}

/* ---- subscribers ---- */

static void test_subscribers(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    gint64 a = store_sub_add(f->st, "ann@example.org", "Ann", "Europe/Berlin", SUB_ACTIVE, 1000, &err);
    g_assert_no_error(err);
    g_assert_cmpint(a, >, 0);
    gint64 b = store_sub_add(f->st, "bob@example.org", NULL, NULL, SUB_ACTIVE, 2000, &err);
    g_assert_no_error(err);
    g_assert_cmpint(b, >, a);

    /* duplicate */
    g_assert_cmpint(store_sub_add(f->st, "ann@example.org", "Ann again", NULL, SUB_ACTIVE, 3000, &err), ==,
                    -1);
    g_assert_error(err, CD_ERROR, CD_ERR_EXISTS);
    g_assert_nonnull(strstr(err->message, "ann@example.org"));
    g_clear_error(&err);

    struct sub_row *r = store_sub_get(f->st, "ann@example.org", &err);
    g_assert_no_error(err);
    g_assert_nonnull(r);
    g_assert_cmpint(r->id, ==, a);
    g_assert_cmpstr(r->email, ==, "ann@example.org");
    g_assert_cmpstr(r->name, ==, "Ann");
    g_assert_cmpstr(r->tz, ==, "Europe/Berlin");
    g_assert_cmpint(r->status, ==, SUB_ACTIVE);
    g_assert_cmpint(r->created_at, ==, 1000);
    store_sub_free(r);

    r = store_sub_get(f->st, "bob@example.org", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(r->name, ==, "");
    g_assert_null(r->tz);
    store_sub_free(r);

    r = store_sub_get(f->st, "nobody@example.org", &err);
    g_assert_null(r);
    g_assert_error(err, CD_ERROR, CD_ERR_NOT_FOUND);
    g_clear_error(&err);

    /* status is an enum sub_state now: -1 is "any" (0 would be 'pending') */
    struct store_sub_filter all = { .status = -1 };
    GPtrArray *list = store_sub_find(f->st, &all, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(list->len, ==, 2);
    g_assert_cmpstr(((struct sub_row *)list->pdata[0])->email, ==, "ann@example.org");
    g_assert_cmpstr(((struct sub_row *)list->pdata[1])->email, ==, "bob@example.org");
    g_assert_cmpint(((struct sub_row *)list->pdata[1])->status, ==, SUB_ACTIVE);
    g_ptr_array_unref(list);
    struct store_sub_filter by_status = { .status = SUB_ACTIVE };
    list = store_sub_find(f->st, &by_status, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(list->len, ==, 2);
    g_ptr_array_unref(list);
    by_status.status = SUB_PENDING;
    list = store_sub_find(f->st, &by_status, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(list->len, ==, 0);
    g_ptr_array_unref(list);
    g_assert_cmpint(counts(f->st).subscribers, ==, 2);
    store_sub_free(NULL);
}

/* ---- enrollments ---- */

static void test_enroll(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    gint64 sub = add_sub(f->st, "ann@example.org", 1000);
    gint64 e1 = store_enroll(f->st, sub, "release", ENR_ACTIVE, 5000, 1000, 1100, &err);
    g_assert_no_error(err);
    g_assert_cmpint(e1, >, 0);

    g_assert_cmpint(store_enroll(f->st, sub, "release", ENR_ACTIVE, 6000, 1000, 1200, &err), ==, -1);
    g_assert_error(err, CD_ERROR, CD_ERR_EXISTS);
    g_clear_error(&err);

    gint64 e2 = store_enroll(f->st, sub, "leaving-kindly", ENR_ACTIVE, 0, 1000, 1300, &err);
    g_assert_no_error(err);
    g_assert_cmpint(e2, >, e1);

    GPtrArray *a = store_enrollments_of(f->st, sub, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(a->len, ==, 2);
    struct enrollment_row *r = a->pdata[0];
    g_assert_cmpint(r->id, ==, e1);
    g_assert_cmpint(r->subscriber_id, ==, sub);
    g_assert_cmpstr(r->email, ==, "ann@example.org");
    g_assert_cmpstr(r->name, ==, "Name");
    g_assert_cmpstr(r->course, ==, "release");
    g_assert_cmpint(r->state, ==, ENR_ACTIVE);
    g_assert_cmpint(r->next_lesson, ==, 1);
    g_assert_cmpint(r->next_send_at, ==, 5000);
    g_assert_cmpint(r->anchor_at, ==, 1000);
    g_assert_cmpint(r->created_at, ==, 1100);
    g_assert_cmpint(r->lessons_sent, ==, 0);
    r = a->pdata[1];
    g_assert_cmpstr(r->course, ==, "leaving-kindly");
    g_assert_cmpint(r->next_send_at, ==, 0); /* no slot */
    g_ptr_array_unref(a);

    a = store_enrollments_of(f->st, sub + 100, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(a->len, ==, 0);
    g_ptr_array_unref(a);
    g_assert_cmpint(counts(f->st).enroll_active, ==, 2);
    store_enrollment_free(NULL);
}

/* Enrolling a subscriber id that does not exist must fail, and not claim
 * that the enrollment already exists. */
static void test_enroll_unknown_subscriber(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    gint64 id = store_enroll(f->st, 4242, "release", ENR_ACTIVE, 5000, 1000, 1000, &err);
    g_assert_cmpint(id, ==, -1);
    g_assert_nonnull(err);
    g_assert_true(err->domain == CD_ERROR);
    g_test_message("%s (code %d)", err->message, err->code);
    g_assert_cmpint(err->code, ==, CD_ERR_NOT_FOUND);
    g_clear_error(&err);
    g_assert_cmpint(counts(f->st).enroll_active, ==, 0);
}

static void test_due(struct fx *f, gconstpointer data)
{
    (void)data;
    static const struct {
        const char *email;
        gint64 next;
    } rows[] = {
        { "c@example.org", 300 },     { "a@example.org", 100 },
        { "b@example.org", 200 },     { "none@example.org", 0 }, /* no slot: never due */
        { "later@example.org", 400 },                            /* not yet */
        { "paused@example.org", 50 },                            /* due, but paused below */
        { "edge@example.org", 250 },
    };
    gint64 ids[G_N_ELEMENTS(rows)];
    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        gint64 sub = add_sub(f->st, rows[i].email, 10);
        ids[i] = enroll(f->st, sub, "release", rows[i].next, 10);
    }
    char *sql = g_strdup_printf("UPDATE enrollments SET state = 'paused' WHERE id = %" G_GINT64_FORMAT,
                                ids[5]);
    side_exec(f->path, sql);
    g_free(sql);

    GError *err = NULL;
    GPtrArray *a = store_due(f->st, 300, 100, &err);
    g_assert_no_error(err);
    static const char *want[] = { "a@example.org", "b@example.org", "edge@example.org", "c@example.org" };
    g_assert_cmpuint(a->len, ==, G_N_ELEMENTS(want));
    gint64 prev = 0;
    for (guint i = 0; i < a->len; i++) {
        struct enrollment_row *e = a->pdata[i];
        g_assert_cmpstr(e->email, ==, want[i]);
        g_assert_cmpint(e->state, ==, ENR_ACTIVE);
        g_assert_cmpint(e->next_send_at, <=, 300);
        g_assert_cmpint(e->next_send_at, >=, prev); /* oldest first */
        prev = e->next_send_at;
    }
    g_ptr_array_unref(a);

    /* limited */
    a = store_due(f->st, 300, 2, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(a->len, ==, 2);
    g_assert_cmpstr(((struct enrollment_row *)a->pdata[0])->email, ==, "a@example.org");
    g_assert_cmpstr(((struct enrollment_row *)a->pdata[1])->email, ==, "b@example.org");
    g_ptr_array_unref(a);

    /* the boundary is inclusive: next_send_at <= now */
    a = store_due(f->st, 100, 10, &err);
    g_assert_cmpuint(a->len, ==, 1);
    g_ptr_array_unref(a);
    a = store_due(f->st, 99, 10, &err);
    g_assert_cmpuint(a->len, ==, 0);
    g_ptr_array_unref(a);
    a = store_due(f->st, 1000, 100, &err);
    g_assert_cmpuint(a->len, ==, 5);
    g_ptr_array_unref(a);
}

/* ---- queueing ---- */

static void test_queue_once(struct fx *f, gconstpointer data)
{
    (void)data;
    gint64 sub = add_sub(f->st, "ann@example.org", 10);
    gint64 id = enroll(f->st, sub, "release", 100, 10);
    GError *err = NULL;
    GPtrArray *due = store_due(f->st, 150, 10, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(due->len, ==, 1);
    struct enrollment_row *e = due->pdata[0];
    g_assert_cmpint(e->id, ==, id);

    /* twice in one transaction, then once more in another */
    g_assert_true(store_begin(f->st, &err));
    g_assert_true(store_queue(f->st, e, "x", "<m1@example.org>", 150, &err));
    g_assert_no_error(err);
    g_assert_true(store_queue(f->st, e, "x", "<m1-again@example.org>", 151, &err));
    g_assert_no_error(err);
    g_assert_true(store_commit(f->st, &err));
    g_assert_no_error(err);
    queue(f->st, e, "<m1-third@example.org>", 152);

    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.queued, ==, 1);
    g_assert_cmpint(c.sending + c.sent + c.deferred + c.failed + c.cancelled, ==, 0);
    g_ptr_array_unref(due);

    /* in flight: no longer due, next_send_at reads 0 */
    due = store_due(f->st, 1000000, 10, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(due->len, ==, 0);
    g_ptr_array_unref(due);
    struct enrollment_row *r = get_enrollment(f->st, sub, id);
    g_assert_cmpint(r->next_send_at, ==, 0);
    g_assert_cmpint(r->next_lesson, ==, 1);
    g_assert_cmpint(r->state, ==, ENR_ACTIVE);
    store_enrollment_free(r);

    /* the first queueing won: its message id and times */
    GPtrArray *a = claim(f->st, 1000, 10);
    g_assert_cmpuint(a->len, ==, 1);
    struct delivery_row *d = a->pdata[0];
    g_assert_cmpstr(d->message_id, ==, "<m1@example.org>");
    g_assert_cmpint(d->queued_at, ==, 150);
    g_assert_cmpint(d->slot_at, ==, 100);
    g_ptr_array_unref(a);
}

static void test_queue_rollback(struct fx *f, gconstpointer data)
{
    (void)data;
    gint64 sub = add_sub(f->st, "ann@example.org", 10);
    gint64 id = enroll(f->st, sub, "release", 100, 10);
    struct enrollment_row *e = get_enrollment(f->st, sub, id);
    GError *err = NULL;
    g_assert_true(store_begin(f->st, &err));
    /* a second begin nests (a SAVEPOINT): its rollback undoes only its part */
    g_assert_true(store_begin(f->st, &err));
    g_assert_no_error(err);
    g_assert_true(store_queue(f->st, e, "x", "<m@example.org>", 150, &err));
    store_rollback(f->st);
    g_assert_cmpint(counts(f->st).queued, ==, 0);
    g_assert_true(store_queue(f->st, e, "x", "<m@example.org>", 150, &err));
    g_assert_cmpint(counts(f->st).queued, ==, 1);
    store_rollback(f->st);
    store_rollback(f->st); /* harmless outside a transaction */
    g_assert_cmpint(counts(f->st).queued, ==, 0);
    GPtrArray *due = store_due(f->st, 150, 10, &err);
    g_assert_cmpuint(due->len, ==, 1); /* still due */
    g_ptr_array_unref(due);
    store_enrollment_free(e);
}

/* ---- claiming ---- */

static void test_claim(struct fx *f, gconstpointer data)
{
    (void)data;
    gint64 sub = 0;
    gint64 id = enroll_and_queue(f->st, "ann@example.org", "release", 1000, 1010, &sub);

    /* store_ready() reads what is ready, with the state of its enrollment
     * and subscriber, and writes nothing */
    GError *err = NULL;
    for (int i = 0; i < 2; i++) {
        GPtrArray *r = store_ready(f->st, 1020, 10, &err);
        g_assert_no_error(err);
        g_assert_cmpuint(r->len, ==, 1);
        const struct delivery_row *d = r->pdata[0];
        g_assert_cmpint(d->state, ==, DLV_QUEUED);
        g_assert_cmpint(d->attempts, ==, 0);
        g_assert_true(d->live);
        g_assert_cmpint(d->enr_state, ==, ENR_ACTIVE);
        g_assert_cmpint(d->sub_status, ==, SUB_ACTIVE);
        g_assert_cmpint(d->enrollment_id, ==, id);
        g_ptr_array_unref(r);
        g_assert_cmpint(counts(f->st).queued, ==, 1);
        g_assert_cmpint(counts(f->st).sending, ==, 0);
    }

    /* not before its next_attempt_at (= queued_at) */
    GPtrArray *a = claim(f->st, 1009, 10);
    g_assert_cmpuint(a->len, ==, 0);
    g_ptr_array_unref(a);

    a = claim(f->st, 1020, 10);
    g_assert_cmpuint(a->len, ==, 1);
    struct delivery_row *d = a->pdata[0];
    g_assert_cmpint(d->id, >, 0);
    g_assert_cmpint(d->enrollment_id, ==, id);
    g_assert_cmpint(d->subscriber_id, ==, sub);
    g_assert_cmpint(d->lesson, ==, 1);
    g_assert_cmpstr(d->message_id, ==, "<release.ann@example.org.1@example.org>");
    g_assert_cmpint(d->state, ==, DLV_SENDING);
    g_assert_cmpint(d->attempts, ==, 1);
    g_assert_cmpint(d->slot_at, ==, 1000);
    g_assert_cmpint(d->queued_at, ==, 1010);
    g_assert_cmpint(d->next_attempt_at, ==, 1010);
    g_assert_cmpint(d->sent_at, ==, 0);
    g_assert_cmpstr(d->email, ==, "ann@example.org");
    g_assert_cmpstr(d->name, ==, "Name");
    g_assert_null(d->tz);
    g_assert_cmpstr(d->course, ==, "release");
    g_assert_cmpint(d->anchor_at, ==, 900);
    g_ptr_array_unref(a);

    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.queued, ==, 0);
    g_assert_cmpint(c.sending, ==, 1);

    /* nothing left to claim, and a second claim of the row is refused */
    a = claim(f->st, 5000, 10);
    g_assert_cmpuint(a->len, ==, 0);
    g_ptr_array_unref(a);
    GPtrArray *sending = store_queue_list(f->st, DLV_SENDING, 10, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(sending->len, ==, 1);
    gint64 did = ((struct delivery_row *)sending->pdata[0])->id;
    g_ptr_array_unref(sending);
    g_assert_false(store_dlv_apply(f->st, did, EV_DLV_CLAIM, 0, NULL, 0, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_STATE);
    g_clear_error(&err);
    struct delivery_row *again = store_delivery_full(f->st, did, &err);
    g_assert_no_error(err);
    g_assert_cmpint(again->attempts, ==, 1);
    store_delivery_free(again);
    store_delivery_free(NULL);
}

static void test_claim_limit_and_order(struct fx *f, gconstpointer data)
{
    (void)data;
    enroll_and_queue(f->st, "c@example.org", "release", 100, 130, NULL);
    enroll_and_queue(f->st, "a@example.org", "release", 100, 110, NULL);
    enroll_and_queue(f->st, "b@example.org", "release", 100, 120, NULL);
    GPtrArray *a = claim(f->st, 200, 2);
    g_assert_cmpuint(a->len, ==, 2);
    /* the two that have waited longest, in any order */
    gboolean seen_a = FALSE, seen_b = FALSE;
    for (guint i = 0; i < a->len; i++) {
        struct delivery_row *d = a->pdata[i];
        seen_a |= strcmp(d->email, "a@example.org") == 0;
        seen_b |= strcmp(d->email, "b@example.org") == 0;
    }
    g_assert_true(seen_a && seen_b);
    g_ptr_array_unref(a);
    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.queued, ==, 1);
    g_assert_cmpint(c.sending, ==, 2);
}

/* ---- outcomes ---- */

/* What life_sent() writes: the delivery 'sent', the enrollment's progress
 * (next slot, or completed with none), in one transaction. */
static void mark_sent(struct store *st, const struct delivery_row *d, gint64 now, gint64 next)
{
    GError *err = NULL;
    g_assert_true(store_begin(st, &err));
    g_assert_true(store_dlv_apply(st, d->id, EV_DLV_SENT, 250, "2.0.0 Ok: queued", now, &err));
    g_assert_no_error(err);
    g_assert_true(store_enr_lesson_done(st, d, d->lesson + 1, next, d->calendar_dirty, now, &err));
    g_assert_no_error(err);
    g_assert_true(store_commit(st, &err));
    g_assert_no_error(err);
}

/* Reads enrollment id. */
static struct enrollment_row *enr_get(struct store *st, gint64 id)
{
    GError *err = NULL;
    struct enrollment_row *e = store_enrollment_get(st, id, &err);
    g_assert_no_error(err);
    g_assert_nonnull(e);
    return e;
}

static void test_mark_sent(struct fx *f, gconstpointer data)
{
    (void)data;
    gint64 sub = 0;
    gint64 id = enroll_and_queue(f->st, "ann@example.org", "release", 1000, 1000, &sub);
    GPtrArray *a1 = claim(f->st, 1000, 10);
    g_assert_cmpuint(a1->len, ==, 1);
    const struct delivery_row *d1 = a1->pdata[0];
    mark_sent(f->st, d1, 1001, 2000);

    struct enrollment_row *e = get_enrollment(f->st, sub, id);
    g_assert_cmpint(e->state, ==, ENR_ACTIVE);
    g_assert_cmpint(e->next_lesson, ==, 2);
    g_assert_cmpint(e->next_send_at, ==, 2000);
    g_assert_cmpint(e->lessons_sent, ==, 1);
    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.sent, ==, 1);
    g_assert_cmpint(c.sending, ==, 0);

    /* due again at its next slot; lesson 2 is the last one */
    GError *err = NULL;
    GPtrArray *due = store_due(f->st, 2000, 10, &err);
    g_assert_cmpuint(due->len, ==, 1);
    g_assert_cmpint(((struct enrollment_row *)due->pdata[0])->next_lesson, ==, 2);
    g_ptr_array_unref(due);
    queue(f->st, e, "<m2@example.org>", 2000);
    store_enrollment_free(e);
    GPtrArray *a2 = claim(f->st, 2000, 10);
    g_assert_cmpuint(a2->len, ==, 1);
    const struct delivery_row *d2 = a2->pdata[0];
    g_assert_cmpint(d2->lesson, ==, 2);
    mark_sent(f->st, d2, 2001, -1);

    e = get_enrollment(f->st, sub, id);
    g_assert_cmpint(e->state, ==, ENR_COMPLETED);
    g_assert_cmpint(e->next_lesson, ==, 3);
    g_assert_cmpint(e->next_send_at, ==, 0);
    g_assert_cmpint(e->lessons_sent, ==, 2);
    store_enrollment_free(e);
    c = counts(f->st);
    g_assert_cmpint(c.sent, ==, 2);
    g_assert_cmpint(c.enroll_completed, ==, 1);
    g_assert_cmpint(c.enroll_active, ==, 0);

    /* A stale outcome for lesson 1 is refused by the table (it is 'sent'
     * already) and writes nothing; its progress step alone does not move
     * progress back either. */
    GError *err2 = NULL;
    g_assert_true(store_begin(f->st, &err2));
    g_assert_false(store_dlv_apply(f->st, d1->id, EV_DLV_SENT, 250, "again", 3000, &err2));
    g_assert_error(err2, CD_ERROR, CD_ERR_STATE);
    g_clear_error(&err2);
    g_assert_true(store_enr_lesson_done(f->st, d1, d1->lesson + 1, 9999, FALSE, 3000, &err2));
    g_assert_no_error(err2);
    g_assert_true(store_commit(f->st, &err2));
    struct delivery_row *again = store_delivery_full(f->st, d1->id, &err2);
    g_assert_no_error(err2);
    g_assert_cmpint(again->state, ==, DLV_SENT);
    g_assert_cmpint(again->sent_at, ==, 1001);
    g_assert_cmpstr(again->last_text, ==, "2.0.0 Ok: queued");
    store_delivery_free(again);
    e = get_enrollment(f->st, sub, id);
    g_assert_cmpint(e->state, ==, ENR_COMPLETED);
    g_assert_cmpint(e->next_lesson, ==, 3);
    g_assert_cmpint(e->next_send_at, ==, 0);
    store_enrollment_free(e);

    g_ptr_array_unref(a1);
    g_ptr_array_unref(a2);
}

static void test_mark_deferred(struct fx *f, gconstpointer data)
{
    (void)data;
    enroll_and_queue(f->st, "ann@example.org", "release", 1000, 1000, NULL);
    GPtrArray *a = claim(f->st, 1000, 10);
    g_assert_cmpuint(a->len, ==, 1);
    GError *err = NULL;
    g_assert_true(store_begin(f->st, &err));
    g_assert_true(store_dlv_apply(f->st, ((struct delivery_row *)a->pdata[0])->id, EV_DLV_DEFER, 451,
                                  "4.7.1 try later", 1300, &err));
    g_assert_no_error(err);
    g_assert_true(store_commit(f->st, &err));
    g_ptr_array_unref(a);
    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.deferred, ==, 1);
    g_assert_cmpint(c.sending, ==, 0);
    g_assert_cmpint(store_next_due(f->st, &err), ==, 1300);

    a = claim(f->st, 1299, 10);
    g_assert_cmpuint(a->len, ==, 0);
    g_ptr_array_unref(a);

    a = claim(f->st, 1300, 10);
    g_assert_cmpuint(a->len, ==, 1);
    struct delivery_row *d = a->pdata[0];
    g_assert_cmpint(d->state, ==, DLV_SENDING);
    g_assert_cmpint(d->attempts, ==, 2);
    g_assert_cmpint(d->last_code, ==, 451);
    g_assert_cmpstr(d->last_text, ==, "4.7.1 try later");
    g_assert_cmpint(d->next_attempt_at, ==, 1300);
    g_ptr_array_unref(a);
    c = counts(f->st);
    g_assert_cmpint(c.deferred, ==, 0);
    g_assert_cmpint(c.sending, ==, 1);
}

/* A lesson refused for good: the delivery 'failed', its enrollment taken
 * out of 'active' by ev (EV_ENR_STOP or EV_ENR_HOLD) with a reason, and,
 * if bounce, the subscriber 'bounced'; in one transaction. */
static void mark_failed(struct store *st, const struct delivery_row *d, int code, const char *text,
                        enum state_event ev, enum enr_reason why, gboolean bounce, gint64 now)
{
    GError *err = NULL;
    struct enr_change ch = { .set_next = TRUE, .set_reason = TRUE, .reason = why };
    g_assert_true(store_begin(st, &err));
    g_assert_true(store_dlv_apply(st, d->id, EV_DLV_FAIL, code, text, 0, &err));
    g_assert_no_error(err);
    g_assert_true(store_enr_apply(st, d->enrollment_id, ev, &ch, now, &err));
    g_assert_no_error(err);
    if (bounce) {
        g_assert_true(store_sub_apply(st, d->subscriber_id, EV_SUB_BOUNCE, now, &err));
        g_assert_no_error(err);
    }
    g_assert_true(store_commit(st, &err));
    g_assert_no_error(err);
}

static void test_mark_failed(struct fx *f, gconstpointer data)
{
    (void)data;
    gint64 sub = 0;
    gint64 id = enroll_and_queue(f->st, "ann@example.org", "release", 1000, 1000, &sub);
    GPtrArray *a = claim(f->st, 1000, 10);
    g_assert_cmpuint(a->len, ==, 1);
    GError *err = NULL;
    mark_failed(f->st, a->pdata[0], 550, "5.1.1 no such user", EV_ENR_STOP, REASON_BOUNCED, TRUE, 1001);
    g_ptr_array_unref(a);

    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.failed, ==, 1);
    g_assert_cmpint(c.sending, ==, 0);
    g_assert_cmpint(c.enroll_stopped, ==, 1);
    g_assert_cmpint(c.enroll_active, ==, 0);
    struct enrollment_row *e = enr_get(f->st, id);
    g_assert_cmpint(e->state, ==, ENR_STOPPED);
    g_assert_cmpint(e->reason, ==, REASON_BOUNCED);
    g_assert_cmpint(e->sub_status, ==, SUB_BOUNCED);
    g_assert_cmpint(e->next_send_at, ==, 0);
    store_enrollment_free(e);
    struct sub_row *s = store_sub_get(f->st, "ann@example.org", &err);
    g_assert_no_error(err);
    g_assert_cmpint(s->status, ==, SUB_BOUNCED);
    store_sub_free(s);
    a = store_queue_list(f->st, DLV_FAILED, 10, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(a->len, ==, 1);
    g_assert_cmpint(((struct delivery_row *)a->pdata[0])->last_code, ==, 550);
    g_assert_cmpstr(((struct delivery_row *)a->pdata[0])->last_text, ==, "5.1.1 no such user");
    g_ptr_array_unref(a);

    /* Without sub_status the subscriber is left alone. */
    gint64 sub2 = 0;
    gint64 id2 = enroll_and_queue(f->st, "bob@example.org", "release", 1000, 1000, &sub2);
    a = claim(f->st, 1000, 10);
    g_assert_cmpuint(a->len, ==, 1);
    mark_failed(f->st, a->pdata[0], 554, "gave up", EV_ENR_HOLD, REASON_GAVE_UP, FALSE, 1002);
    g_ptr_array_unref(a);
    e = enr_get(f->st, id2);
    g_assert_cmpint(e->state, ==, ENR_PAUSED);
    g_assert_cmpint(e->reason, ==, REASON_GAVE_UP);
    g_assert_cmpint(e->subscriber_id, ==, sub2);
    store_enrollment_free(e);
    s = store_sub_get(f->st, "bob@example.org", &err);
    g_assert_cmpint(s->status, ==, SUB_ACTIVE);
    store_sub_free(s);
    c = counts(f->st);
    g_assert_cmpint(c.failed, ==, 2);
    g_assert_cmpint(c.enroll_paused, ==, 1);
}

/* A bounce on one enrollment cancels the subscriber's other queued
 * deliveries at the next claim instead of sending them. */
static void test_claim_cancels_moot(struct fx *f, gconstpointer data)
{
    (void)data;
    gint64 sub = add_sub(f->st, "ann@example.org", 10);
    gint64 e1 = enroll(f->st, sub, "release", 100, 10);
    gint64 e2 = enroll(f->st, sub, "leaving-kindly", 100, 10);
    struct enrollment_row *r1 = get_enrollment(f->st, sub, e1);
    struct enrollment_row *r2 = get_enrollment(f->st, sub, e2);
    queue(f->st, r1, "<r1@example.org>", 100);
    queue(f->st, r2, "<r2@example.org>", 200);
    store_enrollment_free(r1);
    store_enrollment_free(r2);

    GPtrArray *a = claim(f->st, 150, 10);
    g_assert_cmpuint(a->len, ==, 1);
    mark_failed(f->st, a->pdata[0], 550, "bounced", EV_ENR_STOP, REASON_BOUNCED, TRUE, 151);
    g_ptr_array_unref(a);

    /* store_ready() shows the other lesson as moot, and writes nothing */
    GError *err = NULL;
    for (int i = 0; i < 2; i++) {
        a = store_ready(f->st, 300, 10, &err);
        g_assert_no_error(err);
        g_assert_cmpuint(a->len, ==, 1);
        const struct delivery_row *d = a->pdata[0];
        g_assert_cmpint(d->enrollment_id, ==, e2);
        g_assert_false(d->live);
        g_assert_cmpint(d->state, ==, DLV_QUEUED);
        g_assert_cmpint(d->enr_state, ==, ENR_ACTIVE);
        g_assert_cmpint(d->sub_status, ==, SUB_BOUNCED);
        g_ptr_array_unref(a);
        g_assert_cmpint(counts(f->st).queued, ==, 1);
    }

    a = claim(f->st, 300, 10);
    g_assert_cmpuint(a->len, ==, 0);
    g_ptr_array_unref(a);
    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.cancelled, ==, 1);
    g_assert_cmpint(c.queued, ==, 0);
    g_assert_cmpint(c.failed, ==, 1);
}

static void test_recover_sending(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    g_assert_cmpint(store_recover_sending(f->st, &err), ==, 0);
    g_assert_no_error(err);
    enroll_and_queue(f->st, "a@example.org", "release", 100, 100, NULL);
    enroll_and_queue(f->st, "b@example.org", "release", 100, 100, NULL);
    enroll_and_queue(f->st, "c@example.org", "release", 100, 100, NULL);
    GPtrArray *a = claim(f->st, 100, 2);
    g_assert_cmpuint(a->len, ==, 2);
    g_ptr_array_unref(a);
    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.sending, ==, 2);
    g_assert_cmpint(c.queued, ==, 1);

    /* "crash": reopen, then recover */
    store_close(f->st);
    f->st = store_open(f->path, FALSE, &err);
    g_assert_no_error(err);
    g_assert_cmpint(store_recover_sending(f->st, &err), ==, 2);
    g_assert_no_error(err);
    c = counts(f->st);
    g_assert_cmpint(c.sending, ==, 0);
    g_assert_cmpint(c.queued, ==, 3);
    g_assert_cmpint(store_recover_sending(f->st, &err), ==, 0);

    /* recovered rows are claimed again, counting the earlier attempt */
    a = claim(f->st, 100, 10);
    g_assert_cmpuint(a->len, ==, 3);
    int twice = 0;
    for (guint i = 0; i < a->len; i++)
        twice += ((struct delivery_row *)a->pdata[i])->attempts == 2;
    g_assert_cmpint(twice, ==, 2);
    g_ptr_array_unref(a);
}

static void test_idle_and_next_due(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    g_assert_true(store_idle(f->st, &err));
    g_assert_no_error(err);
    g_assert_cmpint(store_next_due(f->st, &err), ==, 0);
    g_assert_no_error(err);

    gint64 s1 = add_sub(f->st, "a@example.org", 10);
    gint64 e1 = enroll(f->st, s1, "release", 500, 10);
    g_assert_false(store_idle(f->st, &err));
    g_assert_cmpint(store_next_due(f->st, &err), ==, 500);

    gint64 s2 = add_sub(f->st, "b@example.org", 10);
    gint64 e2 = enroll(f->st, s2, "release", 300, 10);
    g_assert_cmpint(store_next_due(f->st, &err), ==, 300);

    /* queued at 350: the delivery's next attempt now counts, the
     * enrollment's slot no longer does */
    struct enrollment_row *r2 = get_enrollment(f->st, s2, e2);
    queue(f->st, r2, "<b1@example.org>", 350);
    store_enrollment_free(r2);
    g_assert_cmpint(store_next_due(f->st, &err), ==, 350);

    /* sending is not "due" */
    GPtrArray *a = claim(f->st, 350, 10);
    g_assert_cmpuint(a->len, ==, 1);
    g_assert_cmpint(store_next_due(f->st, &err), ==, 500);
    mark_sent(f->st, a->pdata[0], 351, -1);
    g_ptr_array_unref(a);
    g_assert_false(store_idle(f->st, &err)); /* e1 still active */

    struct enrollment_row *r1 = get_enrollment(f->st, s1, e1);
    queue(f->st, r1, "<a1@example.org>", 500);
    store_enrollment_free(r1);
    a = claim(f->st, 500, 10);
    g_assert_false(store_idle(f->st, &err)); /* in flight */
    mark_sent(f->st, a->pdata[0], 501, -1);
    g_ptr_array_unref(a);
    /* both completed: their complete mails are owed until queued */
    g_assert_false(store_idle(f->st, &err));
    GArray *due = store_complete_due(f->st, 10, &err);
    g_assert_nonnull(due);
    g_assert_cmpuint(due->len, ==, 2);
    for (guint i = 0; i < due->len; i++)
        g_assert_true(store_complete_clear(f->st, g_array_index(due, gint64, i), &err));
    g_array_free(due, TRUE);
    g_assert_true(store_idle(f->st, &err));
    g_assert_no_error(err);
    g_assert_cmpint(store_next_due(f->st, &err), ==, 0);
    struct store_counts c = counts(f->st);
    g_assert_cmpint(c.enroll_completed, ==, 2);
    g_assert_cmpint(c.sent, ==, 2);
}

static void test_event(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    gint64 sub = add_sub(f->st, "a@example.org", 10);
    g_assert_true(store_event(f->st, 20, sub, 0, "subscribed", "cli", "by hand", &err));
    g_assert_no_error(err);
    g_assert_true(store_event(f->st, 21, 0, 0, "tick", "daemon", NULL, &err));
    g_assert_no_error(err);
}

/* One text value read by a second connection. */
static char *side_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
    sqlite3_stmt *s = NULL;
    g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &s, NULL), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_step(s), ==, SQLITE_ROW);
    char *v = g_strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static struct store_new_sub *new_subs(guint n, gint64 first_id, const char *prefix, GPtrArray *keep)
{
    struct store_new_sub *a = g_new0(struct store_new_sub, n);
    for (guint i = 0; i < n; i++) {
        char *email = g_strdup_printf("%s%u@example.org", prefix, i);
        g_ptr_array_add(keep, email);
        a[i] = (struct store_new_sub){ first_id + i, email, "Bulk", NULL, SUB_ACTIVE };
    }
    return a;
}

/* store_bulk_begin: alone (rollback journal) only when nobody else has the
 * database open, and at once otherwise; the WAL and the foreign keys come
 * back after; a conflict in a bulk INSERT undoes the whole transaction. */
static void test_bulk(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
    guint n = 2 * STORE_BULK_ROWS + 5; /* two full statements and a short one */
    struct store_new_sub *subs = new_subs(n, 1, "a", keep);
    g_assert_true(store_bulk_begin(f->st, 200000, &err));
    g_assert_no_error(err);
    g_assert_true(store_bulk_alone(f->st));
    g_assert_true(store_subs_insert(f->st, subs, n, 1000, &err));
    g_assert_no_error(err);
    g_assert_true(store_commit(f->st, &err));
    store_bulk_end(f->st);
    char *mode = side_text(f->path, "PRAGMA journal_mode");
    g_assert_cmpstr(mode, ==, "wal");
    g_free(mode);
    g_assert_cmpint(counts(f->st).subscribers, ==, n);
    /* foreign keys are checked again */
    g_assert_cmpint(store_enroll(f->st, 4242, "release", ENR_ACTIVE, 5000, 1000, 1000, &err), ==, -1);
    g_clear_error(&err);

    /* another connection reading: WAL kept, and no waiting for it */
    sqlite3 *other = NULL;
    g_assert_cmpint(sqlite3_open(f->path, &other), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(other, "BEGIN; SELECT count(*) FROM subscribers", NULL, NULL, NULL), ==,
                    SQLITE_OK);
    gint64 t0 = g_get_monotonic_time();
    g_assert_true(store_bulk_begin(f->st, 200000, &err));
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 5 * G_USEC_PER_SEC);
    g_assert_false(store_bulk_alone(f->st));
    /* a repeated address in the second statement: the first's rows go too */
    struct store_new_sub *more = new_subs(STORE_BULK_ROWS + 1, n + 1, "b", keep);
    more[STORE_BULK_ROWS].email = subs[0].email;
    g_assert_false(store_subs_insert(f->st, more, STORE_BULK_ROWS + 1, 1000, &err));
    g_assert_nonnull(err);
    g_test_message("%s", err->message);
    g_clear_error(&err);
    store_rollback(f->st);
    store_bulk_end(f->st);
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    g_assert_cmpint(counts(f->st).subscribers, ==, n);
    g_assert_false(store_in_transaction(f->st));
    g_assert_cmpint(store_sub_add(f->st, "after@example.org", "", NULL, SUB_ACTIVE, 1000, &err), >, 0);
    g_assert_no_error(err);
    g_free(subs);
    g_free(more);
    g_ptr_array_unref(keep);
}

#define ADD(name, fn) g_test_add(name, struct fx, NULL, fx_setup, fn, fx_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/store/open/version", test_open_version);
    ADD("/store/open/missing", test_open_missing);
    ADD("/store/open/bad-files", test_open_bad_files);
    ADD("/store/subscribers", test_subscribers);
    ADD("/store/enroll", test_enroll);
    ADD("/store/enroll/unknown-subscriber", test_enroll_unknown_subscriber);
    ADD("/store/due", test_due);
    ADD("/store/queue/once", test_queue_once);
    ADD("/store/queue/rollback", test_queue_rollback);
    ADD("/store/claim", test_claim);
    ADD("/store/claim/limit-and-order", test_claim_limit_and_order);
    ADD("/store/claim/cancels-moot", test_claim_cancels_moot);
    ADD("/store/mark-sent", test_mark_sent);
    ADD("/store/mark-deferred", test_mark_deferred);
    ADD("/store/mark-failed", test_mark_failed);
    ADD("/store/recover-sending", test_recover_sending);
    ADD("/store/idle-and-next-due", test_idle_and_next_due);
    ADD("/store/event", test_event);
    ADD("/store/bulk", test_bulk);
    return g_test_run();
}
