/* transfer.c - owns the CSV format of imports and exports (RFC 4180:
 * comma-separated, double quotes around fields that need them, "" for a
 * quote inside; CRLF or LF). An import checks every row before it writes
 * any, reports each bad row by file and line, and writes the good ones in
 * one transaction: a crash or a full disk leaves nothing half-imported. */
#include <string.h>
#include "transfer.h"
#include "address.h"
#include "course.h"
#include "schedule.h"
#include "enroll.h"
#include "error.h"
#include "pace.h"
#include "token.h"

/* Reads one record starting at *p; fields are appended to out (g_free'd
 * strings). Returns FALSE at the end of input; *line advances over the
 * record's newlines; *bad is set for an unterminated quote. */
static gboolean csv_record(const char **p, int *line, GPtrArray *out, gboolean *bad)
{
    const char *s = *p;
    if (!*s)
        return FALSE;
    GString *f = g_string_new(NULL);
    gboolean quoted = FALSE, was_quoted = FALSE;
    for (;;) {
        char c = *s;
        if (quoted) {
            if (!c) {
                *bad = TRUE;
                break;
            }
            if (c == '"' && s[1] == '"') {
                g_string_append_c(f, '"');
                s += 2;
                continue;
            }
            if (c == '"') {
                quoted = FALSE;
                s++;
                continue;
            }
            if (c == '\n')
                (*line)++;
            g_string_append_c(f, c);
            s++;
            continue;
        }
        if (c == '"' && f->len == 0 && !was_quoted) {
            quoted = was_quoted = TRUE;
            s++;
            continue;
        }
        if (c == ',' || c == '\n' || c == '\r' || !c) {
            g_ptr_array_add(out, g_string_free(f, FALSE));
            f = g_string_new(NULL);
            was_quoted = FALSE;
            if (c == ',') {
                s++;
                continue;
            }
            if (c == '\r' && s[1] == '\n')
                s++;
            if (c)
                s++;
            (*line)++;
            break;
        }
        g_string_append_c(f, c);
        s++;
    }
    g_string_free(f, TRUE);
    *p = s;
    return TRUE;
}

static const char *const columns[] = { "email", "name", "tz", "course", "status", NULL };
static const char *const statuses[] = { "active", "paused", "completed", "unsubscribed", "bounced", NULL };

/* The columns, in the order of columns[]: the header maps each to its
 * position in the file. */
#define IMPORT_CACHE_KIB (128 * 1024)

enum column { COL_EMAIL, COL_NAME, COL_TZ, COL_COURSE, COL_STATUS, N_COLUMNS };

struct row {
    int line;
    char *email, *name, *tz, *course, *status;
};

static void row_free(struct row *r)
{
    g_free(r->email);
    g_free(r->name);
    g_free(r->tz);
    g_free(r->course);
    g_free(r->status);
    g_free(r);
}

/* One import between its passes: the text being read, where the header put
 * each column, and the rows pass 1 found good. */
struct import {
    struct app *app;
    const char *path;
    const char *p;          /* the next record */
    int line;               /* the line it starts on */
    int idx[N_COLUMNS];     /* field index of each column, -1 if the header lacks it */
    guint ncols;            /* fields in the header, so in every row */
    GPtrArray *fields;      /* the record being looked at (g_free'd strings) */
    GHashTable *seen;       /* email -> line of its first row */
    GPtrArray *rows;        /* struct row *: the good ones, in file order */
    GHashTable *suppressed; /* every suppression hash, read once; NULL when there is none (or --force) */
};

/* Reads the whole file: an import checks every row before it writes one,
 * so it needs them all. Binary or non-UTF-8 input is refused as a whole. */
static char *import_load(const char *path, GError **err)
{
    char *text = NULL;
    gsize len = 0;
    GError *e = NULL;
    if (!g_file_get_contents(path, &text, &len, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
        g_error_free(e);
        return NULL;
    }
    if (memchr(text, '\0', len) || !g_utf8_validate(text, (gssize)len, NULL)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: not UTF-8 text", path);
        g_free(text);
        return NULL;
    }
    return text;
}

static int column_of(const char *name)
{
    for (int j = 0; columns[j]; j++)
        if (!strcmp(name, columns[j]))
            return j;
    return -1;
}

/* Reads the header row into im->idx. Columns are named, not positional, so
 * a spreadsheet may order them as it likes; an unknown or repeated name is
 * refused rather than guessed at, and only email is required. */
static gboolean import_header(struct import *im, GError **err)
{
    gboolean bad = FALSE;
    if (g_str_has_prefix(im->p, "\xef\xbb\xbf"))
        im->p += 3; /* a spreadsheet's byte order mark */
    if (!csv_record(&im->p, &im->line, im->fields, &bad) || bad) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: missing header row (email,name,tz,course,status)",
                    im->path);
        return FALSE;
    }
    for (guint i = 0; i < im->fields->len; i++) {
        char *h = g_strstrip(g_ascii_strdown(im->fields->pdata[i], -1));
        int k = column_of(h);
        if (k < 0 || im->idx[k] >= 0) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s:1: %s column '%s' (known: email, name, tz, course, status)", im->path,
                        k < 0 ? "unknown" : "repeated", h);
            g_free(h);
            return FALSE;
        }
        im->idx[k] = (int)i;
        g_free(h);
    }
    if (im->idx[COL_EMAIL] < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: the header has no 'email' column", im->path);
        return FALSE;
    }
    im->ncols = im->fields->len;
    return TRUE;
}

/* The current record's field for column k, trimmed; "" when the header has
 * no such column. */
static char *row_field(const struct import *im, enum column k)
{
    return im->idx[k] >= 0 ? g_strstrip(g_strdup(im->fields->pdata[im->idx[k]])) : g_strdup("");
}

/* Builds the row of the current record (which has the header's number of
 * fields): an empty status means active, the address is normalised and the
 * name cleaned. An address that cannot be normalised is the row's first
 * problem, so it is reported here (*why) before any other check. */
static struct row *row_parse(const struct import *im, int start, char **why)
{
    struct row *r = g_new0(struct row, 1);
    r->line = start;
    char *email = row_field(im, COL_EMAIL);
    r->name = row_field(im, COL_NAME);
    r->tz = row_field(im, COL_TZ);
    r->course = row_field(im, COL_COURSE);
    r->status = row_field(im, COL_STATUS);
    if (!*r->status) {
        g_free(r->status);
        r->status = g_strdup("active");
    }
    GError *e = NULL;
    r->email = address_normalize(email, &e);
    char *clean = address_clean_name(r->name, 200);
    g_free(r->name);
    r->name = clean;
    if (!r->email) {
        *why = g_strdup_printf("email: %s", e->message);
        g_clear_error(&e);
    }
    g_free(email);
    return r;
}

/* Checks the fields of a parsed row, first problem wins; *why names it as
 * "field: reason". An address erased at its owner's request is refused
 * unless the operator forces it: the erasure keeps only a keyed hash, so the
 * key is needed to recognise it. FALSE only when the database fails. */
static gboolean row_check(const struct import *im, const struct row *r, char **why, GError **err)
{
    if (*r->tz && !pace_tz_valid(r->tz)) {
        *why = g_strdup_printf("tz: unknown time zone '%s'", r->tz);
    } else if (*r->course && !course_find(im->app->courses, r->course)) {
        *why = g_strdup_printf("course: no course '%s'", r->course);
    } else if (!g_strv_contains(statuses, r->status)) {
        *why = g_strdup_printf("status: '%s' is not one of active, paused, completed, unsubscribed, bounced",
                               r->status);
    } else if (g_hash_table_contains(im->seen, r->email)) {
        *why = g_strdup_printf("email: %s appears again (first on line %d)", r->email,
                               GPOINTER_TO_INT(g_hash_table_lookup(im->seen, r->email)));
    } else if (im->suppressed && im->app->key) {
        char *hash = token_hash_address(im->app->key, r->email);
        if (g_hash_table_contains(im->suppressed, hash))
            *why = g_strdup_printf("email: %s was erased at their request; --force imports it", r->email);
        g_free(hash);
    }
    (void)err;
    return TRUE;
}

/* Decides about the record read at line start: *out gets the row if it is
 * good, else *why says what is wrong (exactly one of them is set). The
 * shape of the record (an unclosed quote, the wrong number of fields) is
 * checked before its contents, which cannot be trusted then. FALSE only
 * when the database fails. */
static gboolean record_check(const struct import *im, int start, gboolean bad, struct row **out, char **why,
                             GError **err)
{
    if (bad) {
        *why = g_strdup("a quoted field is not closed");
        return TRUE;
    }
    if (im->fields->len != im->ncols) {
        *why = g_strdup_printf("expected %u fields, found %u", im->ncols, im->fields->len);
        return TRUE;
    }
    struct row *r = row_parse(im, start, why);
    if (!*why && !row_check(im, r, why, err)) {
        row_free(r);
        return FALSE;
    }
    if (*why)
        row_free(r);
    else
        *out = r;
    return TRUE;
}

/* Pass 1: checks every record after the header. A bad row is counted and
 * reported as "FILE:LINE: reason" and the rest go on being checked, so one
 * run lists every problem of the file; the good rows are kept in im->rows.
 * Blank lines are not rows. */
static gboolean import_check(struct import *im, struct transfer_stats *stats, GPtrArray *problems,
                             transfer_progress progress, void *arg, GError **err)
{
    for (;;) {
        g_ptr_array_set_size(im->fields, 0);
        int start = im->line;
        /* Reset per record; an unclosed quote runs to the end of the input,
         * so it is always the last record anyway. */
        gboolean bad = FALSE;
        if (!csv_record(&im->p, &im->line, im->fields, &bad))
            return TRUE;
        if (im->fields->len == 1 && !*(char *)im->fields->pdata[0])
            continue; /* blank line */
        stats->rows++;
        struct row *r = NULL;
        char *why = NULL;
        if (!record_check(im, start, bad, &r, &why, err))
            return FALSE;
        if (r) {
            g_hash_table_insert(im->seen, g_strdup(r->email), GINT_TO_POINTER(start));
            g_ptr_array_add(im->rows, r);
        } else {
            g_ptr_array_add(problems, g_strdup_printf("%s:%d: %s", im->path, start, why));
            g_free(why);
            stats->bad++;
        }
        if (progress && stats->rows % 2000 == 0)
            progress(stats->rows, 0, arg);
    }
}

/* What the database knew before the import wrote a row, read at once
 * (store_import_lookup): the subscribers among the file's addresses and
 * their enrollments. A file's address appears once (pass 1 refuses a
 * repeat), so what the import itself adds is never looked up. */
struct import_known {
    GHashTable *subs;     /* email -> struct store_known_sub * */
    GHashTable *enrolled; /* "email\ncourse" */
};

/* What pass 2 writes, decided row by row in memory first and then written
 * a few dozen rows per statement. New rows get ids above the largest (the
 * transaction holds the write lock), so an enrollment can name its new
 * subscriber before either is written. */
struct import_plan {
    GArray *subs;  /* struct store_new_sub (strings borrowed from the rows) */
    GArray *enrs;  /* struct store_new_enr */
    GArray *holds; /* struct import_hold: enrollments the row says are paused or completed */
    gint64 last_sub, last_enr;
};

struct import_hold {
    gint64 id;
    enum state_event ev;
};

/* The subscriber a row is about: the one already known, whose status and
 * zone stand whatever the row says, or a new one with the row's name and
 * zone. A new row that says unsubscribed or bounced keeps that fact.
 * *status and *zone (borrowed) are what the enrollment is decided and
 * placed by. Returns the id. */
static gint64 import_subscriber(const struct row *r, const struct import_known *known,
                                struct import_plan *plan, struct transfer_stats *stats,
                                enum sub_state *status, const char **zone)
{
    const struct store_known_sub *k = g_hash_table_lookup(known->subs, r->email);
    if (k) {
        *status = k->status;
        *zone = k->tz;
        stats->existing++;
        return k->id;
    }
    int st = state_parse(ENT_SUB, r->status);
    *status = st == SUB_UNSUBSCRIBED || st == SUB_BOUNCED ? (enum sub_state)st : SUB_ACTIVE;
    *zone = *r->tz ? r->tz : NULL;
    struct store_new_sub ns = { ++plan->last_sub, r->email, r->name, r->tz, *status };
    g_array_append_val(plan->subs, ns);
    stats->added++;
    return ns.id;
}

/* Whether a row enrolls its subscriber: only when it names a course and
 * nobody left or bounced, by the row or as already known. Nobody who left
 * or bounced is enrolled by an import: that is theirs to ask for again. */
static gboolean row_enrolls(const struct row *r, enum sub_state status)
{
    return *r->course && status == SUB_ACTIVE && strcmp(r->status, "unsubscribed") != 0 &&
           strcmp(r->status, "bounced") != 0;
}

/* The first slot of course c in zone (NULL: the course's). It depends only
 * on course and zone, so an import of many rows computes it once per pair
 * (first_slots: "course\nzone" -> gint64). */
static gint64 first_slot(struct app *app, GHashTable *first_slots, const struct course *c, const char *zone,
                         gint64 now)
{
    char *key = g_strconcat(c->slug, "\n", zone ? zone : c->tz, NULL);
    const gint64 *cached = g_hash_table_lookup(first_slots, key);
    if (cached) {
        g_free(key);
        return *cached;
    }
    gint64 first = schedule_first(app->cfg, c, zone, now);
    g_hash_table_insert(first_slots, key, g_memdup2(&first, sizeof first));
    return first;
}

/* Enrolls sub_id in the row's course unless already enrolled there. The
 * row's status carries over: paused or completed is applied as the
 * operator's, with nothing planned. */
static void import_enrollment(struct app *app, const struct row *r, const struct import_known *known,
                              struct import_plan *plan, gint64 sub_id, const char *zone,
                              GHashTable *first_slots, gint64 now, struct transfer_stats *stats)
{
    char *key = g_strconcat(r->email, "\n", r->course, NULL);
    gboolean have = g_hash_table_contains(known->enrolled, key);
    g_free(key);
    if (have)
        return;
    const struct course *c = course_find(app->courses, r->course);
    struct store_new_enr ne = { ++plan->last_enr, sub_id, c->slug,
                                first_slot(app, first_slots, c, zone, now) };
    g_array_append_val(plan->enrs, ne);
    stats->enrolled++;
    int want = state_parse(ENT_ENR, r->status);
    if (want == ENR_PAUSED || want == ENR_COMPLETED) {
        struct import_hold h = { ne.id, want == ENR_PAUSED ? EV_ENR_PAUSE : EV_ENR_COMPLETE };
        g_array_append_val(plan->holds, h);
    }
}

/* Plans one good row. */
static void import_row(struct app *app, const struct row *r, const struct import_known *known,
                       struct import_plan *plan, GHashTable *first_slots, gint64 now,
                       struct transfer_stats *stats)
{
    enum sub_state status = SUB_ACTIVE;
    /* The zone slots are computed in is the subscriber's own: for someone
     * already known, the stored one, whatever this row says. */
    const char *zone = NULL;
    gint64 sub_id = import_subscriber(r, known, plan, stats, &status, &zone);
    if (row_enrolls(r, status))
        import_enrollment(app, r, known, plan, sub_id, zone, first_slots, now, stats);
}

/* Reads what the database knows of the rows' addresses, in two joins; an
 * empty table of subscribers (a first import) needs none. */
static gboolean import_lookup(struct app *app, const GPtrArray *rows, gint64 newest,
                              struct import_known *known, GError **err)
{
    if (newest == 0)
        return TRUE;
    const char **emails = g_new(const char *, rows->len + 1);
    for (guint i = 0; i < rows->len; i++)
        emails[i] = ((const struct row *)rows->pdata[i])->email;
    emails[rows->len] = NULL;
    gboolean ok = store_import_lookup(app->st, emails, rows->len, known->subs, known->enrolled, err);
    g_free(emails);
    return ok;
}

/* Writes the plan: the subscribers, then the enrollments, WRITE_STEP rows
 * at a time so that the progress bar moves; then the holds one by one (the
 * lifecycle's guarded transition) and every new subscriber's 'imported'
 * event in one statement. */
#define WRITE_STEP 2000

static gboolean import_apply(struct app *app, const struct import_plan *plan, gint64 newest, guint rows,
                             gint64 now, transfer_progress progress, void *arg, GError **err)
{
    guint total = plan->subs->len + plan->enrs->len, done = 0;
    gboolean ok = TRUE;
    for (guint at = 0; ok && at < plan->subs->len; at += WRITE_STEP) {
        guint n = MIN(WRITE_STEP, plan->subs->len - at);
        ok = store_subs_insert(app->st, &g_array_index(plan->subs, struct store_new_sub, at), n, now, err);
        done += n;
        if (ok && progress)
            progress((gint64)done * rows / total, rows, arg);
    }
    for (guint at = 0; ok && at < plan->enrs->len; at += WRITE_STEP) {
        guint n = MIN(WRITE_STEP, plan->enrs->len - at);
        ok = store_enrollments_insert(app->st, &g_array_index(plan->enrs, struct store_new_enr, at), n, now,
                                      err);
        done += n;
        if (ok && progress)
            progress((gint64)done * rows / total, rows, arg);
    }
    struct enr_change none_planned = { .set_next = TRUE, .set_reason = TRUE, .reason = REASON_OPERATOR };
    for (guint i = 0; ok && i < plan->holds->len; i++) {
        const struct import_hold *h = &g_array_index(plan->holds, struct import_hold, i);
        ok = store_enr_apply(app->st, h->id, h->ev, &none_planned, now, err);
    }
    ok = ok && store_events_imported(app->st, newest, now, err);
    if (ok && progress && total == 0)
        progress(rows, rows, arg);
    return ok;
}

/* Pass 2: writes the good rows in one transaction, so a failure (disk full,
 * a lock) leaves nothing half-imported; the counts of what was written are
 * then zero again, as the database is. */
static gboolean import_write(struct app *app, const char *path, const GPtrArray *rows, gint64 now,
                             transfer_progress progress, void *arg, struct transfer_stats *stats,
                             GError **err)
{
    /* A large import touches every page of the new rows' indexes many
     * times: with SQLite's 2 MB cache they go to the WAL and are read back
     * again and again. A cache as large as the transaction is worth it for
     * the one command; it is set back afterwards. */
    if (!store_cache_size(app->st, IMPORT_CACHE_KIB, err) || !store_begin(app->st, err))
        return FALSE;
    GHashTable *first_slots = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    struct import_known known = {
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)store_known_sub_free),
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
    };
    struct import_plan plan = {
        g_array_sized_new(FALSE, FALSE, sizeof(struct store_new_sub), rows->len),
        g_array_sized_new(FALSE, FALSE, sizeof(struct store_new_enr), rows->len),
        g_array_new(FALSE, FALSE, sizeof(struct import_hold)),
        store_subs_max_id(app->st, err),
        store_enrollments_max_id(app->st, err),
    };
    gint64 newest = plan.last_sub;
    gboolean ok = plan.last_sub >= 0 && plan.last_enr >= 0 && import_lookup(app, rows, newest, &known, err);
    for (guint i = 0; ok && i < rows->len; i++)
        import_row(app, rows->pdata[i], &known, &plan, first_slots, now, stats);
    /* the consent of what was enrolled: this file, by this Unix user */
    ok = ok && import_apply(app, &plan, newest, rows->len, now, progress, arg, err) &&
         store_consent_import(app->st, path, g_get_user_name(), now, err) && store_commit(app->st, err);
    if (!ok) {
        store_rollback(app->st);
        stats->added = stats->enrolled = stats->existing = 0;
    }
    store_cache_size(app->st, 0, NULL);
    g_hash_table_destroy(known.subs);
    g_hash_table_destroy(known.enrolled);
    g_array_free(plan.subs, TRUE);
    g_array_free(plan.enrs, TRUE);
    g_array_free(plan.holds, TRUE);
    g_hash_table_destroy(first_slots);
    return ok;
}

gboolean transfer_import(struct app *app, const char *path, gboolean dry_run, gboolean force, gint64 now,
                         transfer_progress progress, void *arg, struct transfer_stats *stats,
                         GPtrArray *problems, GError **err)
{
    memset(stats, 0, sizeof *stats);
    char *text = import_load(path, err);
    if (!text)
        return FALSE;
    struct import im = {
        .app = app,
        .path = path,
        .p = text,
        .line = 1,
        .idx = { -1, -1, -1, -1, -1 },
        .fields = g_ptr_array_new_with_free_func(g_free),
        .seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        .rows = g_ptr_array_new_with_free_func((GDestroyNotify)row_free),
    };
    /* The suppressions are read once, not queried per row; a database that
     * has none (or --force) spares every row its HMAC. */
    gboolean ok = TRUE;
    if (!force && app->key) {
        im.suppressed = store_suppression_set(app->st, err);
        ok = im.suppressed != NULL;
        if (ok && g_hash_table_size(im.suppressed) == 0)
            g_clear_pointer(&im.suppressed, g_hash_table_destroy);
    }
    /* A dry run stops after pass 1: the counts and problems are its report. */
    ok = ok && import_header(&im, err) && import_check(&im, stats, problems, progress, arg, err) &&
         (dry_run || import_write(app, path, im.rows, now, progress, arg, stats, err));
    g_ptr_array_unref(im.fields);
    g_hash_table_destroy(im.seen);
    if (im.suppressed)
        g_hash_table_destroy(im.suppressed);
    g_ptr_array_unref(im.rows);
    g_free(text);
    return ok;
}

static void csv_field(FILE *out, const char *v, gboolean last)
{
    v = v ? v : "";
    if (strpbrk(v, ",\"\r\n")) {
        fputc('"', out);
        for (const char *p = v; *p; p++) {
            if (*p == '"')
                fputc('"', out);
            fputc(*p, out);
        }
        fputc('"', out);
    } else {
        fputs(v, out);
    }
    fputs(last ? "\r\n" : ",", out);
}

static const char *export_status(const struct store_export_row *r)
{
    if (strcmp(r->status, "active") != 0 || !r->state)
        return r->status;
    return !strcmp(r->state, "stopped") ? "unsubscribed" : r->state;
}

static void csv_row(const struct store_export_row *r, void *arg)
{
    FILE *out = arg;
    csv_field(out, r->email, FALSE);
    csv_field(out, r->name, FALSE);
    csv_field(out, r->tz, FALSE);
    csv_field(out, r->course, FALSE);
    csv_field(out, export_status(r), TRUE);
}

gboolean transfer_export_csv(struct app *app, FILE *out, GError **err)
{
    fputs("email,name,tz,course,status\r\n", out);
    return store_export(app->st, csv_row, out, err);
}
