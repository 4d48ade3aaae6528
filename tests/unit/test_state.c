/* test_state.c - unit tests of lib/state.c (the table of legal transitions
 * and the stored names of states) and of its agreement with lib/store.c:
 * for every event and every state it may find, the guarded UPDATE of the
 * store applies exactly the transitions the table allows, and the enum
 * values the store reads and writes (its CASE expressions) are those of
 * state.h. A second SQLite connection sets up and inspects rows without
 * going through the code under test. */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include "error.h"
#include "state.h"
#include "store.h"

/* ------------------------------------------------------------ pure table */

/* The states as the schema's CHECK constraints spell them, in enum order. */
static const char *const sub_names[] = { "pending", "active", "bounced", "unsubscribed" };
static const char *const enr_names[] = { "pending", "active", "paused", "completed", "stopped" };
static const char *const dlv_names[] = { "queued", "sending", "sent", "deferred", "failed", "cancelled" };
static const char *const mail_names[] = { "queued", "sending", "sent", "deferred", "failed" };

static const struct {
    enum state_entity ent;
    const char *const *names;
    int n;
} entities[] = {
    { ENT_SUB, sub_names, G_N_ELEMENTS(sub_names) },
    { ENT_ENR, enr_names, G_N_ELEMENTS(enr_names) },
    { ENT_DLV, dlv_names, G_N_ELEMENTS(dlv_names) },
    { ENT_MAIL, mail_names, G_N_ELEMENTS(mail_names) },
};

static int n_states(enum state_entity ent)
{
    for (size_t i = 0; i < G_N_ELEMENTS(entities); i++)
        if (entities[i].ent == ent)
            return entities[i].n;
    g_assert_not_reached();
    return 0;
}

static void test_names(void)
{
    G_STATIC_ASSERT(G_N_ELEMENTS(sub_names) == SUB_N_STATES);
    G_STATIC_ASSERT(G_N_ELEMENTS(enr_names) == ENR_N_STATES);
    G_STATIC_ASSERT(G_N_ELEMENTS(dlv_names) == DLV_N_STATES);
    G_STATIC_ASSERT(G_N_ELEMENTS(entities) == ENT_N);
    for (size_t i = 0; i < G_N_ELEMENTS(entities); i++) {
        enum state_entity ent = entities[i].ent;
        for (int s = 0; s < entities[i].n; s++) {
            g_assert_cmpstr(state_name(ent, s), ==, entities[i].names[s]);
            g_assert_cmpint(state_parse(ent, entities[i].names[s]), ==, s);
            g_assert_cmpint(state_parse(ent, state_name(ent, s)), ==, s);
        }
        g_assert_cmpstr(state_name(ent, entities[i].n), ==, "?");
        g_assert_cmpstr(state_name(ent, -1), ==, "?");
        g_assert_cmpint(state_parse(ent, "no-such-state"), ==, -1);
        g_assert_cmpint(state_parse(ent, ""), ==, -1);
        g_assert_cmpint(state_parse(ent, NULL), ==, -1);
        g_assert_cmpint(state_parse(ent, "Active"), ==, -1); /* exact */
    }
    /* system mails are never cancelled */
    g_assert_cmpint(state_parse(ENT_MAIL, "cancelled"), ==, -1);
    g_assert_cmpstr(state_name(ENT_MAIL, DLV_CANCELLED), ==, "?");
    g_assert_cmpstr(state_name(ENT_N, 0), ==, "?");
    g_assert_cmpint(state_parse(ENT_N, "active"), ==, -1);
}

static void test_reasons(void)
{
    static const char *const want[] = { "",       "subscriber", "operator",   "bounced",
                                        "policy", "gave-up",    "course-gone" };
    G_STATIC_ASSERT(G_N_ELEMENTS(want) == REASON_N);
    for (int r = 0; r < REASON_N; r++) {
        g_assert_cmpstr(state_reason_name(r), ==, want[r]);
        g_assert_cmpint(state_reason_parse(state_reason_name(r)), ==, r);
        g_assert_nonnull(state_reason_text(r));
        if (r != REASON_NONE)
            g_assert_cmpuint(strlen(state_reason_text(r)), >, 0);
    }
    g_assert_cmpstr(state_reason_name(REASON_N), ==, "");
    g_assert_cmpstr(state_reason_text(REASON_N), ==, "");
    g_assert_cmpint(state_reason_parse("no-such-reason"), ==, -1);
    g_assert_cmpint(state_reason_parse(NULL), ==, REASON_NONE);
    g_assert_cmpint(state_reason_parse(""), ==, REASON_NONE);
}

#define EV(x) \
    {         \
        x, #x \
    }
static const struct {
    enum state_event ev;
    const char *name;
} events[] = {
    EV(EV_SUB_ACTIVATE), EV(EV_SUB_BOUNCE),   EV(EV_SUB_LEFT),    EV(EV_SUB_REVIVE), EV(EV_ENR_REQUEST),
    EV(EV_ENR_CONFIRM),  EV(EV_ENR_PAUSE),    EV(EV_ENR_RESUME),  EV(EV_ENR_HOLD),   EV(EV_ENR_STOP),
    EV(EV_ENR_COMPLETE), EV(EV_ENR_REOPEN),   EV(EV_ENR_RESTART), EV(EV_ENR_RETRY),  EV(EV_ENR_PROGRESS),
    EV(EV_DLV_REQUEUE),  EV(EV_DLV_CLAIM),    EV(EV_DLV_UNCLAIM), EV(EV_DLV_SENT),   EV(EV_DLV_DEFER),
    EV(EV_DLV_FAIL),     EV(EV_DLV_WITHDRAW), EV(EV_DLV_CANCEL),  EV(EV_DLV_RETRY),  EV(EV_DLV_RESLOT),
    EV(EV_MAIL_CLAIM),   EV(EV_MAIL_UNCLAIM), EV(EV_MAIL_SENT),   EV(EV_MAIL_DEFER), EV(EV_MAIL_FAIL),
};

static enum state_entity entity_of_name(const char *name)
{
    if (g_str_has_prefix(name, "EV_SUB_"))
        return ENT_SUB;
    if (g_str_has_prefix(name, "EV_ENR_"))
        return ENT_ENR;
    if (g_str_has_prefix(name, "EV_DLV_"))
        return ENT_DLV;
    if (g_str_has_prefix(name, "EV_MAIL_"))
        return ENT_MAIL;
    g_assert_not_reached();
    return ENT_N;
}

static void test_table(void)
{
    G_STATIC_ASSERT(G_N_ELEMENTS(events) == EV_N);
    GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);
    for (int ev = 0; ev < EV_N; ev++) {
        g_assert_cmpint(events[ev].ev, ==, ev); /* this list is in enum order */
        const struct state_transition *t = state_transition(ev);
        g_assert_nonnull(t);
        g_test_message("%s: %s", events[ev].name, t->name);
        g_assert_cmpint(t->ev, ==, ev);
        g_assert_cmpint(t->ent, ==, entity_of_name(events[ev].name));
        int n = n_states(t->ent);
        g_assert_cmpint(t->to, >=, 0);
        g_assert_cmpint(t->to, <, n);
        g_assert_cmpuint(t->from, !=, 0);
        g_assert_cmpuint(t->from >> n, ==, 0); /* no bit beyond the entity's states */
        g_assert_nonnull(t->name);
        g_assert_cmpuint(strlen(t->name), >, 0);
        g_assert_false(g_hash_table_contains(names, t->name)); /* errors name the event */
        g_hash_table_add(names, (gpointer)t->name);
        for (int s = 0; s < n; s++)
            g_assert_cmpint(state_allows(ev, s), ==, (t->from >> s) & 1);
        g_assert_false(state_allows(ev, -1));
        g_assert_false(state_allows(ev, n));
        g_assert_false(state_allows(ev, 32));
        g_assert_false(state_allows(ev, 1000));
    }
    g_hash_table_unref(names);

    /* a few rows that the lifecycle relies on, spelled out */
    g_assert_true(state_allows(EV_DLV_CLAIM, DLV_DEFERRED));
    g_assert_false(state_allows(EV_DLV_CLAIM, DLV_SENDING)); /* claimed once */
    g_assert_false(state_allows(EV_DLV_SENT, DLV_SENT));     /* recorded once */
    g_assert_false(state_allows(EV_DLV_WITHDRAW, DLV_SENDING));
    g_assert_false(state_allows(EV_ENR_COMPLETE, ENR_PAUSED));
    g_assert_false(state_allows(EV_ENR_CONFIRM, ENR_STOPPED));
    g_assert_false(state_allows(EV_SUB_REVIVE, SUB_UNSUBSCRIBED));
    g_assert_false(state_allows(EV_SUB_BOUNCE, SUB_UNSUBSCRIBED));
    /* system mails are never cancelled: no mail event leads to or from it */
    for (int ev = 0; ev < EV_N; ev++) {
        const struct state_transition *t = state_transition(ev);
        if (t->ent == ENT_MAIL) {
            g_assert_cmpint(t->to, !=, DLV_CANCELLED);
            g_assert_false(state_allows(ev, DLV_CANCELLED));
        }
    }
}

/* ------------------------------------------------------ against the store */

struct fx {
    char *dir;
    char *path;
    struct store *st;
    sqlite3 *side; /* a second connection to the same file */
    int serial;    /* unique addresses */
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
    f->dir = g_dir_make_tmp("coursed-state-XXXXXX", &err);
    g_assert_no_error(err);
    f->path = g_build_filename(f->dir, "state.db", NULL);
    f->st = store_open(f->path, TRUE, &err);
    g_assert_no_error(err);
    g_assert_nonnull(f->st);
    g_assert_cmpint(sqlite3_open(f->path, &f->side), ==, SQLITE_OK);
    sqlite3_busy_timeout(f->side, 5000);
}

static void fx_teardown(struct fx *f, gconstpointer data)
{
    (void)data;
    sqlite3_close(f->side);
    store_close(f->st);
    rm_rf(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static void side_exec(struct fx *f, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(f->side, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        g_test_message("side_exec: %s: %s", sql, msg);
    sqlite3_free(msg);
    g_assert_cmpint(rc, ==, SQLITE_OK);
}

/* The first column of the first row of sql, as text (g_free), NULL if none. */
static char *side_text(struct fx *f, const char *sql)
{
    sqlite3_stmt *s = NULL;
    g_assert_cmpint(sqlite3_prepare_v2(f->side, sql, -1, &s, NULL), ==, SQLITE_OK);
    char *v = NULL;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        v = g_strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
}

/* Every column of row id of table, quoted, as one string (g_free): equal
 * snapshots mean nothing was written. */
static char *side_row(struct fx *f, const char *table, gint64 id)
{
    char *sql = g_strdup_printf("SELECT * FROM %s WHERE id = %" G_GINT64_FORMAT, table, id);
    sqlite3_stmt *s = NULL;
    g_assert_cmpint(sqlite3_prepare_v2(f->side, sql, -1, &s, NULL), ==, SQLITE_OK);
    g_free(sql);
    g_assert_cmpint(sqlite3_step(s), ==, SQLITE_ROW);
    GString *out = g_string_new(NULL);
    for (int i = 0; i < sqlite3_column_count(s); i++) {
        const char *v = (const char *)sqlite3_column_text(s, i);
        g_string_append_printf(out, "%s=%s|", sqlite3_column_name(s, i), v ? v : "NULL");
    }
    sqlite3_finalize(s);
    return g_string_free(out, FALSE);
}

/* The state column of row id, as stored (g_free). */
static char *side_state(struct fx *f, const char *table, const char *col, gint64 id)
{
    char *sql = g_strdup_printf("SELECT %s FROM %s WHERE id = %" G_GINT64_FORMAT, col, table, id);
    char *v = side_text(f, sql);
    g_free(sql);
    g_assert_nonnull(v);
    return v;
}

/* A refusal must say CD_ERR_STATE. A wrong code is recorded as a failure
 * of the test without stopping it, so that one run reports every case. */
static void check_refused(GError **err, const char *what, int from_state_name_ent, int s)
{
    g_assert_nonnull(*err);
    if ((*err)->domain != CD_ERROR || (*err)->code != CD_ERR_STATE) {
        g_test_message("FAIL: %s from %s: refused with code %d, not CD_ERR_STATE: %s", what,
                       state_name(from_state_name_ent, s), (*err)->code, (*err)->message);
        g_test_fail();
    }
    g_clear_error(err);
}

static gint64 new_sub(struct fx *f, enum sub_state s, char **email_out)
{
    GError *err = NULL;
    char *email = g_strdup_printf("s%d@example.org", ++f->serial);
    gint64 id = store_sub_add(f->st, email, "Name", NULL, s, 1000, &err);
    g_assert_no_error(err);
    g_assert_cmpint(id, >, 0);
    if (email_out)
        *email_out = email;
    else
        g_free(email);
    return id;
}

static gint64 new_enr(struct fx *f, enum enr_state s)
{
    GError *err = NULL;
    gint64 sub = new_sub(f, SUB_ACTIVE, NULL);
    gint64 id = store_enroll(f->st, sub, "release", s, 2000, 1000, 1000, &err);
    g_assert_no_error(err);
    g_assert_cmpint(id, >, 0);
    return id;
}

static struct enrollment_row *enr_get(struct fx *f, gint64 id)
{
    GError *err = NULL;
    struct enrollment_row *e = store_enrollment_get(f->st, id, &err);
    g_assert_no_error(err);
    g_assert_nonnull(e);
    return e;
}

/* The initial states of store_sub_add and store_enroll are written as the
 * names of state.c and read back as the same enum values. */
static void test_store_initial_states(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    for (int s = 0; s < SUB_N_STATES; s++) {
        char *email = NULL;
        gint64 id = new_sub(f, s, &email);
        char *stored = side_state(f, "subscribers", "status", id);
        g_assert_cmpstr(stored, ==, state_name(ENT_SUB, s));
        g_free(stored);
        struct sub_row *r = store_sub_get(f->st, email, &err);
        g_assert_no_error(err);
        g_assert_cmpint(r->status, ==, s);
        store_sub_free(r);
        /* store_sub_find's status filter uses the same mapping */
        struct store_sub_filter flt = { .status = s, .search = email };
        GPtrArray *a = store_sub_find(f->st, &flt, &err);
        g_assert_no_error(err);
        g_assert_cmpuint(a->len, ==, 1);
        g_ptr_array_unref(a);
        g_free(email);
    }
    for (int s = 0; s < ENR_N_STATES; s++) {
        gint64 id = new_enr(f, s);
        char *stored = side_state(f, "enrollments", "state", id);
        g_assert_cmpstr(stored, ==, state_name(ENT_ENR, s));
        g_free(stored);
        struct enrollment_row *e = enr_get(f, id);
        g_assert_cmpint(e->state, ==, s);
        g_assert_cmpint(e->sub_status, ==, SUB_ACTIVE);
        g_assert_cmpint(e->reason, ==, REASON_NONE);
        store_enrollment_free(e);
    }
    /* and a subscriber's status as store_enrollment_get reads it */
    for (int s = 0; s < SUB_N_STATES; s++) {
        gint64 sub = new_sub(f, s, NULL);
        gint64 id = store_enroll(f->st, sub, "release", ENR_ACTIVE, 2000, 1000, 1000, &err);
        g_assert_no_error(err);
        struct enrollment_row *e = enr_get(f, id);
        g_assert_cmpint(e->sub_status, ==, s);
        store_enrollment_free(e);
    }
}

/* Every enrollment event from every state. */
static void test_store_enr_transitions(struct fx *f, gconstpointer data)
{
    (void)data;
    int applied = 0, refused = 0;
    for (int ev = 0; ev < EV_N; ev++) {
        const struct state_transition *t = state_transition(ev);
        if (t->ent != ENT_ENR)
            continue;
        for (int s = 0; s < ENR_N_STATES; s++) {
            gint64 id = new_enr(f, s);
            struct enrollment_row *before = enr_get(f, id);
            char *snap = side_row(f, "enrollments", id);
            /* a change that touches every column, so "unchanged" means it */
            struct enr_change ch = {
                .set_next = TRUE,
                .next_send_at = 7777,
                .set_lesson = TRUE,
                .next_lesson = 3,
                .set_pause = TRUE,
                .paused_until = 8888,
                .set_reason = TRUE,
                .reason = REASON_OPERATOR,
                .replan = TRUE,
                .anchor_at = 5555,
                .confirm_sent_at = 6666,
            };
            GError *err = NULL;
            gboolean ok = store_enr_apply(f->st, id, ev, &ch, 9000, &err);
            g_test_message("%s from %s: %s", t->name, state_name(ENT_ENR, s), ok ? "applied" : "refused");
            g_assert_cmpint(ok, ==, state_allows(ev, s));
            struct enrollment_row *after = enr_get(f, id);
            char *stored = side_state(f, "enrollments", "state", id);
            if (ok) {
                applied++;
                g_assert_no_error(err);
                g_assert_cmpint(after->state, ==, t->to);
                g_assert_cmpstr(stored, ==, state_name(ENT_ENR, t->to));
                g_assert_cmpint(after->next_send_at, ==, 7777);
                g_assert_cmpint(after->next_lesson, ==, 3);
                g_assert_cmpint(after->paused_until, ==, 8888);
                g_assert_cmpint(after->reason, ==, REASON_OPERATOR);
                g_assert_cmpint(after->calendar_seq, ==, before->calendar_seq + 1);
                g_assert_cmpint(after->calendar_dirty, ==, 1);
                g_assert_cmpint(after->anchor_at, ==, 5555);
                g_assert_cmpint(after->confirm_sent_at, ==, 6666);
            } else {
                refused++;
                check_refused(&err, t->name, ENT_ENR, s);
                char *snap2 = side_row(f, "enrollments", id);
                g_assert_cmpstr(snap2, ==, snap);
                g_free(snap2);
                g_assert_cmpint(after->state, ==, s);
                g_assert_cmpstr(stored, ==, state_name(ENT_ENR, s));
            }
            g_free(stored);
            g_free(snap);
            store_enrollment_free(before);
            store_enrollment_free(after);
        }
    }
    g_assert_cmpint(applied, >, 0);
    g_assert_cmpint(refused, >, 0);

    /* a change with nothing set touches nothing but state (and updated_at) */
    gint64 id = new_enr(f, ENR_ACTIVE);
    GError *err = NULL;
    g_assert_true(store_enr_apply(f->st, id, EV_ENR_PAUSE, NULL, 9000, &err));
    g_assert_no_error(err);
    struct enrollment_row *e = enr_get(f, id);
    g_assert_cmpint(e->state, ==, ENR_PAUSED);
    g_assert_cmpint(e->next_send_at, ==, 2000);
    g_assert_cmpint(e->next_lesson, ==, 1);
    g_assert_cmpint(e->paused_until, ==, 0);
    g_assert_cmpint(e->reason, ==, REASON_NONE);
    g_assert_cmpint(e->calendar_seq, ==, 0);
    g_assert_cmpint(e->anchor_at, ==, 1000);
    store_enrollment_free(e);

    /* an enrollment that does not exist is not found, not a state error */
    g_assert_false(store_enr_apply(f->st, 999999, EV_ENR_PAUSE, NULL, 9000, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_NOT_FOUND);
    g_clear_error(&err);
}

/* Every reason is accepted by the schema's CHECK and read back. */
static void test_store_reasons(struct fx *f, gconstpointer data)
{
    (void)data;
    for (int r = 0; r < REASON_N; r++) {
        gint64 id = new_enr(f, ENR_ACTIVE);
        struct enr_change ch = { .set_reason = TRUE, .reason = r };
        GError *err = NULL;
        g_assert_true(store_enr_apply(f->st, id, EV_ENR_HOLD, &ch, 9000, &err));
        g_assert_no_error(err);
        struct enrollment_row *e = enr_get(f, id);
        g_assert_cmpint(e->state, ==, ENR_PAUSED);
        g_assert_cmpint(e->reason, ==, r);
        store_enrollment_free(e);
        char *stored = side_state(f, "enrollments", "reason", id);
        g_assert_cmpstr(stored, ==, state_reason_name(r));
        g_free(stored);
    }
}

/* Every subscriber event from every state. */
static void test_store_sub_transitions(struct fx *f, gconstpointer data)
{
    (void)data;
    int applied = 0, refused = 0;
    for (int ev = 0; ev < EV_N; ev++) {
        const struct state_transition *t = state_transition(ev);
        if (t->ent != ENT_SUB)
            continue;
        for (int s = 0; s < SUB_N_STATES; s++) {
            char *email = NULL;
            gint64 id = new_sub(f, s, &email);
            char *snap = side_row(f, "subscribers", id);
            GError *err = NULL;
            gboolean ok = store_sub_apply(f->st, id, ev, 9000, &err);
            g_test_message("%s from %s: %s", t->name, state_name(ENT_SUB, s), ok ? "applied" : "refused");
            g_assert_cmpint(ok, ==, state_allows(ev, s));
            struct sub_row *r = store_sub_get(f->st, email, NULL);
            g_assert_nonnull(r);
            char *stored = side_state(f, "subscribers", "status", id);
            if (ok) {
                applied++;
                g_assert_no_error(err);
                g_assert_cmpint(r->status, ==, t->to);
                g_assert_cmpstr(stored, ==, state_name(ENT_SUB, t->to));
            } else {
                refused++;
                check_refused(&err, t->name, ENT_SUB, s);
                char *snap2 = side_row(f, "subscribers", id);
                g_assert_cmpstr(snap2, ==, snap);
                g_free(snap2);
                g_assert_cmpint(r->status, ==, s);
            }
            g_free(stored);
            g_free(snap);
            store_sub_free(r);
            g_free(email);
        }
    }
    g_assert_cmpint(applied, >, 0);
    g_assert_cmpint(refused, >, 0);
    GError *err = NULL;
    g_assert_false(store_sub_apply(f->st, 999999, EV_SUB_BOUNCE, 9000, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_NOT_FOUND);
    g_clear_error(&err);
}

/* A delivery of a fresh active enrollment, lesson 1, put in state s by
 * raw SQL (attempts 2, a last code, distinct times). */
static gint64 new_dlv(struct fx *f, enum dlv_state s, gint64 *enr_out)
{
    GError *err = NULL;
    gint64 enr = new_enr(f, ENR_ACTIVE);
    struct enrollment_row *e = enr_get(f, enr);
    char *msgid = g_strdup_printf("<lesson.%" G_GINT64_FORMAT "@example.org>", enr);
    g_assert_true(store_queue(f->st, e, "x", msgid, 3000, &err));
    g_assert_no_error(err);
    g_free(msgid);
    store_enrollment_free(e);
    char *sql = g_strdup_printf(
        "UPDATE deliveries SET state = '%s', attempts = 2, last_code = 421,"
        " last_text = 'before', sent_at = %s"
        " WHERE enrollment_id = %" G_GINT64_FORMAT,
        state_name(ENT_DLV, s), s == DLV_SENT ? "3100" : "NULL", enr);
    side_exec(f, sql);
    g_free(sql);
    sql = g_strdup_printf("SELECT id FROM deliveries WHERE enrollment_id = %" G_GINT64_FORMAT, enr);
    char *id = side_text(f, sql);
    g_free(sql);
    g_assert_nonnull(id);
    gint64 v = g_ascii_strtoll(id, NULL, 10);
    g_free(id);
    if (enr_out)
        *enr_out = enr;
    return v;
}

static struct delivery_row *dlv_get(struct fx *f, gint64 id)
{
    GError *err = NULL;
    struct delivery_row *d = store_delivery_full(f->st, id, &err);
    g_assert_no_error(err);
    g_assert_nonnull(d);
    return d;
}

/* Every delivery event from every state. */
static void test_store_dlv_transitions(struct fx *f, gconstpointer data)
{
    (void)data;
    int applied = 0, refused = 0;
    for (int ev = 0; ev < EV_N; ev++) {
        const struct state_transition *t = state_transition(ev);
        if (t->ent != ENT_DLV)
            continue;
        for (int s = 0; s < DLV_N_STATES; s++) {
            gint64 id = new_dlv(f, s, NULL);
            struct delivery_row *before = dlv_get(f, id);
            g_assert_cmpint(before->state, ==, s);
            char *snap = side_row(f, "deliveries", id);
            GError *err = NULL;
            gboolean ok = store_dlv_apply(f->st, id, ev, 250, "after", 4242, &err);
            g_test_message("%s from %s: %s", t->name, state_name(ENT_DLV, s), ok ? "applied" : "refused");
            g_assert_cmpint(ok, ==, state_allows(ev, s));
            struct delivery_row *after = dlv_get(f, id);
            char *stored = side_state(f, "deliveries", "state", id);
            if (ok) {
                applied++;
                g_assert_no_error(err);
                g_assert_cmpint(after->state, ==, t->to);
                g_assert_cmpstr(stored, ==, state_name(ENT_DLV, t->to));
                g_assert_cmpint(after->last_code, ==, 250);
                g_assert_cmpstr(after->last_text, ==, "after");
                int want_attempts = ev == EV_DLV_CLAIM     ? 3
                                    : ev == EV_DLV_UNCLAIM ? 1
                                    : ev == EV_DLV_RETRY   ? 0
                                                           : 2;
                g_assert_cmpint(after->attempts, ==, want_attempts);
                if (ev == EV_DLV_SENT)
                    g_assert_cmpint(after->sent_at, ==, 4242);
                else
                    g_assert_cmpint(after->sent_at, ==, before->sent_at);
                if (ev == EV_DLV_DEFER || ev == EV_DLV_RETRY || ev == EV_DLV_REQUEUE || ev == EV_DLV_RESLOT)
                    g_assert_cmpint(after->next_attempt_at, ==, 4242);
                /* the operator's retry goes now, not at a later slot */
                if (ev == EV_DLV_RETRY)
                    g_assert_cmpint(after->slot_at, ==, 4242);
                else
                    g_assert_cmpint(after->slot_at, ==, before->slot_at);
                if (ev == EV_DLV_CLAIM || ev == EV_DLV_SENT || ev == EV_DLV_FAIL || ev == EV_DLV_WITHDRAW ||
                    ev == EV_DLV_CANCEL)
                    g_assert_cmpint(after->next_attempt_at, ==, before->next_attempt_at);
            } else {
                refused++;
                check_refused(&err, t->name, ENT_DLV, s);
                char *snap2 = side_row(f, "deliveries", id);
                g_assert_cmpstr(snap2, ==, snap);
                g_free(snap2);
                g_assert_cmpint(after->state, ==, s);
            }
            g_free(stored);
            g_free(snap);
            store_delivery_free(before);
            store_delivery_free(after);
        }
    }
    g_assert_cmpint(applied, >, 0);
    g_assert_cmpint(refused, >, 0);

    /* text NULL leaves last_code and last_text alone */
    gint64 id = new_dlv(f, DLV_QUEUED, NULL);
    GError *err = NULL;
    g_assert_true(store_dlv_apply(f->st, id, EV_DLV_CLAIM, 0, NULL, 0, &err));
    struct delivery_row *d = dlv_get(f, id);
    g_assert_cmpint(d->last_code, ==, 421);
    g_assert_cmpstr(d->last_text, ==, "before");
    store_delivery_free(d);
    g_assert_false(store_dlv_apply(f->st, 999999, EV_DLV_CLAIM, 0, NULL, 0, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_NOT_FOUND);
    g_clear_error(&err);
}

/* store_dlv_reslot: exactly from the states EV_DLV_RESLOT allows; the
 * new slot is slot_at and next attempt, attempts and texts unchanged. */
static void test_store_reslot(struct fx *f, gconstpointer data)
{
    (void)data;
    const struct state_transition *t = state_transition(EV_DLV_RESLOT);
    for (int s = 0; s < DLV_N_STATES; s++) {
        gint64 id = new_dlv(f, s, NULL);
        struct delivery_row *before = dlv_get(f, id);
        char *snap = side_row(f, "deliveries", id);
        GError *err = NULL;
        gboolean ok = store_dlv_reslot(f->st, id, 7000, &err);
        g_test_message("reslot from %s: %s", state_name(ENT_DLV, s), ok ? "applied" : "refused");
        g_assert_cmpint(ok, ==, state_allows(EV_DLV_RESLOT, s));
        struct delivery_row *after = dlv_get(f, id);
        if (ok) {
            g_assert_no_error(err);
            g_assert_cmpint(after->state, ==, t->to);
            g_assert_cmpint(after->slot_at, ==, 7000);
            g_assert_cmpint(after->next_attempt_at, ==, 7000);
            g_assert_cmpint(after->attempts, ==, before->attempts);
            g_assert_cmpint(after->queued_at, ==, before->queued_at);
            g_assert_cmpint(after->last_code, ==, before->last_code);
            g_assert_cmpstr(after->last_text, ==, before->last_text);
        } else {
            check_refused(&err, t->name, ENT_DLV, s);
            char *snap2 = side_row(f, "deliveries", id);
            g_assert_cmpstr(snap2, ==, snap);
            g_free(snap2);
        }
        store_delivery_free(before);
        store_delivery_free(after);
        g_free(snap);
    }
}

/* store_dlv_withdraw takes exactly the rows EV_DLV_WITHDRAW allows. */
static void test_store_withdraw(struct fx *f, gconstpointer data)
{
    (void)data;
    for (int s = 0; s < DLV_N_STATES; s++) {
        gint64 enr = 0;
        gint64 id = new_dlv(f, s, &enr);
        char *snap = side_row(f, "deliveries", id);
        GError *err = NULL;
        int n = store_dlv_withdraw(f->st, enr, "why", &err);
        g_assert_no_error(err);
        g_assert_cmpint(n, ==, state_allows(EV_DLV_WITHDRAW, s) ? 1 : 0);
        struct delivery_row *d = dlv_get(f, id);
        if (n) {
            g_assert_cmpint(d->state, ==, state_transition(EV_DLV_WITHDRAW)->to);
            g_assert_cmpstr(d->last_text, ==, "why");
        } else {
            char *snap2 = side_row(f, "deliveries", id);
            g_assert_cmpstr(snap2, ==, snap);
            g_free(snap2);
        }
        store_delivery_free(d);
        g_free(snap);
    }
}

/* Every system-mail event from every state. */
static void test_store_mail_transitions(struct fx *f, gconstpointer data)
{
    (void)data;
    int applied = 0, refused = 0;
    for (int ev = 0; ev < EV_N; ev++) {
        const struct state_transition *t = state_transition(ev);
        if (t->ent != ENT_MAIL)
            continue;
        for (int s = 0; s < n_states(ENT_MAIL); s++) {
            GError *err = NULL;
            gint64 sub = new_sub(f, SUB_ACTIVE, NULL);
            gint64 id = store_outbox_add(f->st, sub, 0, "welcome", "x@example.org", "data", 4, 3000, &err);
            g_assert_no_error(err);
            char *sql = g_strdup_printf(
                "UPDATE outbox SET state = '%s', attempts = 2 WHERE id = %" G_GINT64_FORMAT,
                state_name(ENT_MAIL, s), id);
            side_exec(f, sql);
            g_free(sql);
            char *snap = side_row(f, "outbox", id);
            gboolean ok = store_mail_apply(f->st, id, ev, 250, "after", 4242, &err);
            g_test_message("%s from %s: %s", t->name, state_name(ENT_MAIL, s), ok ? "applied" : "refused");
            g_assert_cmpint(ok, ==, state_allows(ev, s));
            char *stored = side_state(f, "outbox", "state", id);
            if (ok) {
                applied++;
                g_assert_no_error(err);
                g_assert_cmpstr(stored, ==, state_name(ENT_MAIL, t->to));
                sql = g_strdup_printf("SELECT attempts FROM outbox WHERE id = %" G_GINT64_FORMAT, id);
                char *att = side_text(f, sql);
                g_free(sql);
                g_assert_cmpstr(att, ==, ev == EV_MAIL_CLAIM ? "3" : ev == EV_MAIL_UNCLAIM ? "1" : "2");
                g_free(att);
            } else {
                refused++;
                check_refused(&err, t->name, ENT_MAIL, s);
                char *snap2 = side_row(f, "outbox", id);
                g_assert_cmpstr(snap2, ==, snap);
                g_free(snap2);
                g_assert_cmpstr(stored, ==, state_name(ENT_MAIL, s));
            }
            g_free(stored);
            g_free(snap);
        }
    }
    g_assert_cmpint(applied, >, 0);
    g_assert_cmpint(refused, >, 0);
}

/* deliveries_inflight: one queued, sending or deferred lesson per
 * enrollment. Lesson 1 is put in each state; queueing lesson 2 must fail
 * exactly while lesson 1 is in flight. */
static void test_inflight_index(struct fx *f, gconstpointer data)
{
    (void)data;
    for (int s = 0; s < DLV_N_STATES; s++) {
        gint64 enr = 0;
        new_dlv(f, s, &enr);
        gboolean inflight = s == DLV_QUEUED || s == DLV_SENDING || s == DLV_DEFERRED;
        struct enrollment_row *e = enr_get(f, enr);
        e->next_lesson = 2;
        e->next_send_at = 5000;
        GError *err = NULL;
        g_assert_true(store_begin(f->st, &err));
        gboolean ok = store_queue(f->st, e, "x", "<lesson2@example.org>", 5000, &err);
        g_test_message("lesson 2 while lesson 1 is %s: %s", state_name(ENT_DLV, s),
                       ok ? "queued" : "refused");
        if (inflight) {
            g_assert_false(ok);
            g_assert_nonnull(err);
            g_assert_true(err->domain == CD_ERROR);
            g_assert_cmpint(err->code, ==, CD_ERR_EXISTS);
            g_clear_error(&err);
            store_rollback(f->st);
        } else {
            g_assert_true(ok);
            g_assert_no_error(err);
            g_assert_true(store_commit(f->st, &err));
        }
        char *sql = g_strdup_printf("SELECT count(*) FROM deliveries WHERE enrollment_id = %" G_GINT64_FORMAT,
                                    enr);
        char *n = side_text(f, sql);
        g_free(sql);
        g_assert_cmpstr(n, ==, inflight ? "1" : "2");
        g_free(n);
        store_enrollment_free(e);
    }

    /* Raw SQL cannot get around it either. */
    gint64 enr = 0;
    new_dlv(f, DLV_DEFERRED, &enr);
    char *sql = g_strdup_printf(
        "INSERT INTO deliveries (enrollment_id, lesson, message_id, state, slot_at,"
        " queued_at, next_attempt_at) VALUES (%" G_GINT64_FORMAT
        ", 7, '<x@example.org>', 'sending', 1, 1, 1)",
        enr);
    g_assert_cmpint(sqlite3_exec(f->side, sql, NULL, NULL, NULL), ==, SQLITE_CONSTRAINT);
    g_free(sql);
    /* ... while a second row that is not in flight is fine */
    sql = g_strdup_printf(
        "INSERT INTO deliveries (enrollment_id, lesson, message_id, state, slot_at,"
        " queued_at, next_attempt_at) VALUES (%" G_GINT64_FORMAT
        ", 7, '<x@example.org>', 'cancelled', 1, 1, 1)",
        enr);
    side_exec(f, sql);
    g_free(sql);
    /* ... and may not be requeued while the other is in flight */
    sql = g_strdup_printf("SELECT id FROM deliveries WHERE enrollment_id = %" G_GINT64_FORMAT
                          " AND lesson = 7",
                          enr);
    char *id = side_text(f, sql);
    g_free(sql);
    GError *err = NULL;
    g_assert_false(
        store_dlv_apply(f->st, g_ascii_strtoll(id, NULL, 10), EV_DLV_REQUEUE, 0, NULL, 6000, &err));
    g_assert_nonnull(err);
    g_test_message("requeue beside one in flight: %s", err->message);
    g_clear_error(&err);
    g_free(id);
}

/* store_queue of a lesson that has a row already: queued again exactly
 * from the states EV_DLV_REQUEUE allows, else left alone (no error). */
static void test_queue_again(struct fx *f, gconstpointer data)
{
    (void)data;
    for (int s = 0; s < DLV_N_STATES; s++) {
        gint64 enr = 0;
        gint64 id = new_dlv(f, s, &enr);
        char *snap = side_row(f, "deliveries", id);
        struct enrollment_row *e = enr_get(f, enr);
        e->next_lesson = 1;
        e->next_send_at = 5000;
        GError *err = NULL;
        gboolean ok = store_queue(f->st, e, "x", "<again@example.org>", 5100, &err);
        g_test_message("lesson 1 queued again from %s: %s", state_name(ENT_DLV, s), ok ? "ok" : err->message);
        g_assert_no_error(err);
        g_assert_true(ok);
        struct delivery_row *d = dlv_get(f, id);
        if (state_allows(EV_DLV_REQUEUE, s)) {
            g_assert_cmpint(d->state, ==, state_transition(EV_DLV_REQUEUE)->to);
            g_assert_cmpint(d->attempts, ==, 0);
            g_assert_cmpint(d->queued_at, ==, 5100);
            g_assert_cmpint(d->slot_at, ==, 5000);
        } else {
            char *snap2 = side_row(f, "deliveries", id);
            g_assert_cmpstr(snap2, ==, snap);
            g_free(snap2);
        }
        store_delivery_free(d);
        store_enrollment_free(e);
        g_free(snap);
    }
}

/* store_stuck: active, no slot, nothing in flight. */
static void test_stuck(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    gint64 ok_slot = new_enr(f, ENR_ACTIVE); /* has a slot */
    gint64 inflight = 0;
    new_dlv(f, DLV_DEFERRED, &inflight); /* lesson in flight */
    gint64 sent = 0;
    new_dlv(f, DLV_SENT, &sent); /* stuck: sent, nothing next */
    gint64 paused = new_enr(f, ENR_PAUSED);
    struct enr_change none = { .set_next = TRUE };
    g_assert_true(store_enr_apply(f->st, paused, EV_ENR_PAUSE, &none, 9000, &err));
    gint64 noslot = new_enr(f, ENR_ACTIVE);
    g_assert_true(store_enr_apply(f->st, noslot, EV_ENR_PROGRESS, &none, 9000, &err)); /* stuck */
    g_assert_no_error(err);
    (void)ok_slot;
    GArray *a = store_stuck(f->st, 10, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(a->len, ==, 2);
    g_assert_cmpint(g_array_index(a, gint64, 0), ==, sent);
    g_assert_cmpint(g_array_index(a, gint64, 1), ==, noslot);
    g_array_free(a, TRUE);
    a = store_stuck(f->st, 1, &err);
    g_assert_cmpuint(a->len, ==, 1);
    g_array_free(a, TRUE);
}

#define ADD(name, fn) g_test_add(name, struct fx, NULL, fx_setup, fn, fx_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/state/names", test_names);
    g_test_add_func("/state/reasons", test_reasons);
    g_test_add_func("/state/table", test_table);
    ADD("/state/store/initial-states", test_store_initial_states);
    ADD("/state/store/enrollments", test_store_enr_transitions);
    ADD("/state/store/reasons", test_store_reasons);
    ADD("/state/store/deliveries", test_store_dlv_transitions);
    ADD("/state/store/withdraw", test_store_withdraw);
    ADD("/state/store/reslot", test_store_reslot);
    ADD("/state/store/system-mails", test_store_mail_transitions);
    ADD("/state/store/inflight-index", test_inflight_index);
    ADD("/state/store/queue-again", test_queue_again);
    ADD("/state/store/stuck", test_stuck);
    ADD("/state/store/subscribers", test_store_sub_transitions);
    return g_test_run();
}
