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

/* One record as csv_record reads it: its fields' bytes, each ended by a
 * NUL, in one buffer kept across records, and where each field starts.
 * Reading a record allocates nothing once the buffer has grown to the
 * longest record. */
struct csv_rec {
    GString *buf;
    GArray *off; /* guint: where each field starts in buf */
};

static guint csv_count(const struct csv_rec *rec)
{
    return rec->off->len;
}

/* Field i of the record (0 <= i < csv_count), in the record's buffer: the
 * caller may change it in place (strip it) but not make it longer. */
static char *csv_field_at(const struct csv_rec *rec, guint i)
{
    return rec->buf->str + g_array_index(rec->off, guint, i);
}

/* Reads one record starting at *p into rec (emptied first). Returns FALSE
 * at the end of input; *line advances over the record's newlines; *bad is
 * set for an unterminated quote. */
static gboolean csv_record(const char **p, int *line, struct csv_rec *rec, gboolean *bad)
{
    const char *s = *p;
    if (!*s)
        return FALSE;
    GString *b = rec->buf;
    g_string_truncate(b, 0);
    g_array_set_size(rec->off, 0);
    guint start = 0;
    gboolean quoted = FALSE, was_quoted = FALSE;
    for (;;) {
        char c = *s;
        if (quoted) {
            size_t n = strcspn(s, "\"\n");
            g_string_append_len(b, s, (gssize)n);
            s += n;
            c = *s;
            if (!c) {
                *bad = TRUE;
                break;
            }
            if (c == '\n') {
                (*line)++;
                g_string_append_c(b, '\n');
                s++;
            } else if (s[1] == '"') {
                g_string_append_c(b, '"');
                s += 2;
            } else {
                quoted = FALSE;
                s++;
            }
            continue;
        }
        if (c == '"' && b->len == start && !was_quoted) {
            quoted = was_quoted = TRUE;
            s++;
            continue;
        }
        if (c == ',' || c == '\n' || c == '\r' || !c) {
            g_string_append_c(b, '\0');
            g_array_append_val(rec->off, start);
            start = (guint)b->len;
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
        /* the field's ordinary bytes up to the next delimiter; a quote
         * after the first byte is one of them */
        size_t n = strcspn(s + 1, ",\r\n") + 1;
        g_string_append_len(b, s, (gssize)n);
        s += n;
    }
    *p = s;
    return TRUE;
}

static const char *const columns[] = { "email", "name", "tz", "course", "status", NULL };
static const char *const statuses[] = { "active", "paused", "completed", "unsubscribed", "bounced", NULL };

enum column { COL_EMAIL, COL_NAME, COL_TZ, COL_COURSE, COL_STATUS, N_COLUMNS };

/* A good row. Its strings live in the import's string chunk: a row costs
 * no allocation of its own, and the zones, courses and statuses that
 * repeat on every row are stored once. */
struct row {
    const char *email, *name, *tz, *course, *status;
};

/* One import between its passes: the text being read, where the header put
 * each column, and the rows pass 1 found good. */
struct import {
    struct app *app;
    const char *path;
    const char *p;          /* the next record */
    int line;               /* the line it starts on */
    int idx[N_COLUMNS];     /* field index of each column, -1 if the header lacks it */
    guint ncols;            /* fields in the header, so in every row */
    struct csv_rec rec;     /* the record being looked at */
    GStringChunk *strings;  /* the good rows' strings */
    GHashTable *seen;       /* email (in strings) -> line of its first row */
    GArray *rows;           /* struct row: the good ones, in file order (of the block being filled) */
    GHashTable *suppressed; /* every suppression hash, read once; NULL when there is none (or --force) */
    /* An import (not a dry run) checks on a thread of its own and hands
     * the good rows on in blocks while the writer writes the ones before
     * (import_write): NULL for a dry run, checked in the caller's thread. */
    GAsyncQueue *blocks; /* struct block * */
    gint stop;           /* set by the writer when it failed: checking stops */
    struct transfer_stats *stats;
    GPtrArray *problems;
};

/* WRITE_STEP good rows (fewer in the last) and how many records the file
 * had up to them, bad ones included: what the progress bar shows. The
 * block with rows NULL is the end. */
struct block {
    GArray *rows;
    gint64 upto;
};

/* Rows per block, a multiple of the rows store.c writes per statement. */
#define WRITE_STEP (32 * STORE_BULK_ROWS)

static void block_push(struct import *im, GArray *rows, gint64 upto)
{
    struct block *b = g_new(struct block, 1);
    b->rows = rows;
    b->upto = upto;
    g_async_queue_push(im->blocks, b);
}

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
    if (!csv_record(&im->p, &im->line, &im->rec, &bad) || bad) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: missing header row (email,name,tz,course,status)",
                    im->path);
        return FALSE;
    }
    for (guint i = 0; i < csv_count(&im->rec); i++) {
        char *h = g_strstrip(g_ascii_strdown(csv_field_at(&im->rec, i), -1));
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
    im->ncols = csv_count(&im->rec);
    return TRUE;
}

/* The current record's field for column k, trimmed in place; "" when the
 * header has no such column. Borrowed from the record. */
static const char *row_field(const struct import *im, enum column k)
{
    return im->idx[k] >= 0 ? g_strstrip(csv_field_at(&im->rec, (guint)im->idx[k])) : "";
}

/* A row being checked: the normalised address and the cleaned name are its
 * own (g_free'd by draft_clear), the rest borrowed from the record. */
struct draft {
    char *email, *name;
    const char *tz, *course, *status;
};

static void draft_clear(struct draft *d)
{
    g_free(d->email);
    g_free(d->name);
}

/* Reads the current record (which has the header's number of fields) into
 * d: an empty status means active, the address is normalised and the name
 * cleaned. An address that cannot be normalised is the row's first
 * problem, so it is reported here (*why) before any other check. */
static void row_parse(const struct import *im, struct draft *d, char **why)
{
    const char *email = row_field(im, COL_EMAIL);
    d->name = address_clean_name(row_field(im, COL_NAME), 200);
    d->tz = row_field(im, COL_TZ);
    d->course = row_field(im, COL_COURSE);
    d->status = row_field(im, COL_STATUS);
    if (!*d->status)
        d->status = "active";
    GError *e = NULL;
    d->email = address_normalize(email, &e);
    if (!d->email) {
        *why = g_strdup_printf("email: %s", e->message);
        g_clear_error(&e);
    }
}

/* Checks the fields of a parsed row, first problem wins; *why names it as
 * "field: reason". An address erased at its owner's request is refused
 * unless the operator forces it: the erasure keeps only a keyed hash, so the
 * key is needed to recognise it. */
static void row_check(const struct import *im, const struct draft *d, char **why)
{
    if (*d->tz && !pace_tz_valid(d->tz)) {
        *why = g_strdup_printf("tz: unknown time zone '%s'", d->tz);
    } else if (*d->course && !course_find(im->app->courses, d->course)) {
        *why = g_strdup_printf("course: no course '%s'", d->course);
    } else if (!g_strv_contains(statuses, d->status)) {
        *why = g_strdup_printf("status: '%s' is not one of active, paused, completed, unsubscribed, bounced",
                               d->status);
    } else if (g_hash_table_contains(im->seen, d->email)) {
        *why = g_strdup_printf("email: %s appears again (first on line %d)", d->email,
                               GPOINTER_TO_INT(g_hash_table_lookup(im->seen, d->email)));
    } else if (im->suppressed && im->app->key) {
        char *hash = token_hash_address(im->app->key, d->email);
        if (g_hash_table_contains(im->suppressed, hash))
            *why = g_strdup_printf("email: %s was erased at their request; --force imports it", d->email);
        g_free(hash);
    }
}

/* Decides about the record read at line start: a good one is added to
 * im->rows (and im->seen), else *why says what is wrong. The shape of the
 * record (an unclosed quote, the wrong number of fields) is checked before
 * its contents, which cannot be trusted then. */
static void record_check(struct import *im, int start, gboolean bad, char **why)
{
    if (bad) {
        *why = g_strdup("a quoted field is not closed");
        return;
    }
    if (csv_count(&im->rec) != im->ncols) {
        *why = g_strdup_printf("expected %u fields, found %u", im->ncols, csv_count(&im->rec));
        return;
    }
    struct draft d = { 0 };
    row_parse(im, &d, why);
    if (!*why)
        row_check(im, &d, why);
    if (!*why) {
        struct row r = {
            g_string_chunk_insert(im->strings, d.email),
            g_string_chunk_insert(im->strings, d.name),
            g_string_chunk_insert_const(im->strings, d.tz),
            g_string_chunk_insert_const(im->strings, d.course),
            g_string_chunk_insert_const(im->strings, d.status),
        };
        g_hash_table_insert(im->seen, (gpointer)r.email, GINT_TO_POINTER(start));
        g_array_append_val(im->rows, r);
    }
    draft_clear(&d);
}

/* Pass 1: checks every record after the header. A bad row is counted and
 * reported as "FILE:LINE: reason" and the rest go on being checked, so one
 * run lists every problem of the file; the good rows are kept in im->rows.
 * Blank lines are not rows. */
static void import_check(struct import *im, transfer_progress progress, void *arg)
{
    struct transfer_stats *stats = im->stats;
    GPtrArray *problems = im->problems;
    for (;;) {
        int start = im->line;
        /* Reset per record; an unclosed quote runs to the end of the input,
         * so it is always the last record anyway. */
        gboolean bad = FALSE;
        if (im->blocks && im->rows->len >= WRITE_STEP) {
            block_push(im, im->rows, stats->rows);
            im->rows = g_array_sized_new(FALSE, FALSE, sizeof(struct row), WRITE_STEP);
        }
        if ((im->blocks && g_atomic_int_get(&im->stop)) || !csv_record(&im->p, &im->line, &im->rec, &bad))
            break;
        if (!bad && csv_count(&im->rec) == 1 && !*csv_field_at(&im->rec, 0))
            continue; /* blank line */
        stats->rows++;
        char *why = NULL;
        record_check(im, start, bad, &why);
        if (why) {
            g_ptr_array_add(problems, g_strdup_printf("%s:%d: %s", im->path, start, why));
            g_free(why);
            stats->bad++;
        }
        if (progress && stats->rows % 2000 == 0)
            progress(stats->rows, 0, arg);
    }
    if (im->blocks) {
        block_push(im, im->rows, stats->rows);
        im->rows = NULL;
        block_push(im, NULL, stats->rows);
    }
}

static gpointer import_check_thread(gpointer data)
{
    import_check(data, NULL, NULL);
    return NULL;
}

/* What the database knew before the import wrote a row, read a block at
 * a time (store_import_lookup): the subscribers among the block's
 * addresses and their enrollments. A file's address appears once (pass 1 refuses a
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
    const struct store_known_sub *k = g_hash_table_size(known->subs)
                                          ? g_hash_table_lookup(known->subs, r->email)
                                          : NULL;
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
    /* the key on the stack: this runs once per row */
    char buf[256];
    const char *z = zone ? zone : c->tz;
    size_t ls = strlen(c->slug), lz = strlen(z);
    char *key = ls + lz + 2 <= sizeof buf ? buf : g_malloc(ls + lz + 2);
    memcpy(key, c->slug, ls);
    key[ls] = '\n';
    memcpy(key + ls + 1, z, lz + 1);
    const gint64 *cached = g_hash_table_lookup(first_slots, key);
    gint64 first = cached ? *cached : schedule_first(app->cfg, c, zone, now);
    if (!cached)
        g_hash_table_insert(first_slots, g_strdup(key), g_memdup2(&first, sizeof first));
    if (key != buf)
        g_free(key);
    return first;
}

/* Enrolls sub_id in the row's course unless already enrolled there. The
 * row's status carries over: paused or completed is applied as the
 * operator's, with nothing planned. */
static void import_enrollment(struct app *app, const struct row *r, const struct import_known *known,
                              struct import_plan *plan, gint64 sub_id, const char *zone,
                              GHashTable *first_slots, gint64 now, struct transfer_stats *stats)
{
    if (g_hash_table_size(known->enrolled) > 0) { /* none at all in a first import */
        char *key = g_strconcat(r->email, "\n", r->course, NULL);
        gboolean have = g_hash_table_contains(known->enrolled, key);
        g_free(key);
        if (have)
            return;
    }
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
static gboolean import_lookup(struct app *app, const GArray *rows, gint64 newest, struct import_known *known,
                              GError **err)
{
    if (newest == 0)
        return TRUE;
    const char **emails = g_new(const char *, rows->len + 1);
    for (guint i = 0; i < rows->len; i++)
        emails[i] = g_array_index(rows, struct row, i).email;
    emails[rows->len] = NULL;
    gboolean ok = store_import_lookup(app->st, emails, rows->len, known->subs, known->enrolled, err);
    g_free(emails);
    return ok;
}

/* Writes the plan of one block: the subscribers, then the enrollments,
 * then the holds one by one (the lifecycle's guarded transition). */
static gboolean import_apply(struct app *app, const struct import_plan *plan, gint64 now, GError **err)
{
    struct enr_change none_planned = { .set_next = TRUE, .set_reason = TRUE, .reason = REASON_OPERATOR };
    gboolean ok = store_subs_insert(app->st, (const struct store_new_sub *)(void *)plan->subs->data,
                                    plan->subs->len, now, err) &&
                  store_enrollments_insert(app->st, (const struct store_new_enr *)(void *)plan->enrs->data,
                                           plan->enrs->len, now, err);
    for (guint i = 0; ok && i < plan->holds->len; i++) {
        const struct import_hold *h = &g_array_index(plan->holds, struct import_hold, i);
        ok = store_enr_apply(app->st, h->id, h->ev, &none_planned, now, err);
    }
    return ok;
}

/* Plans and writes one block of good rows: what the database knows of
 * their addresses is read in one join (none at all into an empty
 * database), then each row is decided in memory and the lot written a
 * few dozen rows per statement. */
static gboolean import_block(struct app *app, const GArray *rows, gint64 newest, struct import_known *known,
                             struct import_plan *plan, GHashTable *first_slots, gint64 now,
                             struct transfer_stats *stats, GError **err)
{
    g_hash_table_remove_all(known->subs);
    g_hash_table_remove_all(known->enrolled);
    g_array_set_size(plan->subs, 0);
    g_array_set_size(plan->enrs, 0);
    g_array_set_size(plan->holds, 0);
    if (!import_lookup(app, rows, newest, known, err))
        return FALSE;
    for (guint i = 0; i < rows->len; i++)
        import_row(app, &g_array_index(rows, struct row, i), known, plan, first_slots, now, stats);
    return import_apply(app, plan, now, err);
}

/* Pass 2: writes the good rows in one transaction as the checking thread
 * hands them on, so a failure (disk full, a lock) leaves nothing
 * half-imported; the counts of what was written are then zero again, as
 * the database is. It takes every block up to the end, even after a
 * failure, so that the thread has ended when it returns. The transaction
 * does not check foreign keys (store_bulk_begin): every enrollment,
 * consent and event it writes names a subscriber import_lookup read or
 * import_subscriber added in it, under the write lock. expect is the
 * number of records the file seems to hold (its lines): the size the
 * transaction is set up for and the progress bar's end. */
static gboolean import_write(struct app *app, struct import *im, gint64 expect, gint64 now,
                             transfer_progress progress, void *arg, GError **err)
{
    struct transfer_stats *stats = im->stats;
    gboolean ok = store_bulk_begin(app->st, (guint)MIN(expect, G_MAXUINT), err);
    GHashTable *first_slots = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    struct import_known known = {
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)store_known_sub_free),
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
    };
    struct import_plan plan = {
        g_array_sized_new(FALSE, FALSE, sizeof(struct store_new_sub), WRITE_STEP),
        g_array_sized_new(FALSE, FALSE, sizeof(struct store_new_enr), WRITE_STEP),
        g_array_new(FALSE, FALSE, sizeof(struct import_hold)),
        ok ? store_subs_max_id(app->st, err) : -1,
        ok ? store_enrollments_max_id(app->st, err) : -1,
    };
    gint64 newest = plan.last_sub, newest_enr = plan.last_enr;
    ok = ok && newest >= 0 && newest_enr >= 0;
    for (;;) {
        struct block *b = g_async_queue_pop(im->blocks);
        GArray *rows = b->rows;
        gint64 upto = b->upto;
        g_free(b);
        if (!rows)
            break;
        if (ok)
            ok = import_block(app, rows, newest, &known, &plan, first_slots, now, stats, err);
        if (!ok)
            g_atomic_int_set(&im->stop, 1);
        else if (progress)
            progress(MIN(upto, expect), MAX(expect, 1), arg);
        g_array_free(rows, TRUE);
    }
    /* the checker has ended (the end block is its last act): its counts
     * are final */
    if (ok && progress && stats->rows > 0)
        progress(stats->rows, stats->rows, arg);
    /* every new subscriber's 'imported' event and every new enrollment's
     * consent (this file, by this Unix user), one statement each */
    ok = ok && store_events_imported(app->st, newest, now, err) &&
         store_consent_import(app->st, newest_enr, im->path, g_get_user_name(), now, err) &&
         store_commit(app->st, err);
    if (!ok)
        stats->added = stats->enrolled = stats->existing = 0;
    store_bulk_end(app->st);
    g_hash_table_destroy(known.subs);
    g_hash_table_destroy(known.enrolled);
    g_array_free(plan.subs, TRUE);
    g_array_free(plan.enrs, TRUE);
    g_array_free(plan.holds, TRUE);
    g_hash_table_destroy(first_slots);
    return ok;
}

/* How many records the text after the header seems to hold: its lines (a
 * quoted line break or a blank line makes it an overestimate). */
static gint64 count_lines(const char *p)
{
    gint64 n = 0;
    for (const char *q = p; (q = strchr(q, '\n')); q++)
        n++;
    return n + (*p && p[strlen(p) - 1] != '\n');
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
        .rec = { g_string_sized_new(256), g_array_new(FALSE, FALSE, sizeof(guint)) },
        .strings = g_string_chunk_new(1 << 20),
        .seen = g_hash_table_new(g_str_hash, g_str_equal),
        .rows = g_array_sized_new(FALSE, FALSE, sizeof(struct row), WRITE_STEP),
        .stats = stats,
        .problems = problems,
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
    ok = ok && import_header(&im, err);
    if (ok && dry_run) {
        /* pass 1 alone: the counts and problems are its report */
        import_check(&im, progress, arg);
    } else if (ok) {
        /* Checking a row costs about a quarter of writing it: on a second
         * core, it is done by the time the writer wants the rows. The
         * thread touches no SQLite; pass 1's shared parts (courses, zones,
         * the address cache) are read-only or locked. */
        im.blocks = g_async_queue_new();
        gint64 expect = count_lines(im.p);
        GThread *checker = g_thread_new("import-check", import_check_thread, &im);
        ok = import_write(app, &im, expect, now, progress, arg, err);
        g_thread_join(checker);
        g_async_queue_unref(im.blocks);
    }
    g_string_free(im.rec.buf, TRUE);
    g_array_free(im.rec.off, TRUE);
    g_hash_table_destroy(im.seen);
    if (im.suppressed)
        g_hash_table_destroy(im.suppressed);
    if (im.rows)
        g_array_free(im.rows, TRUE);
    g_string_chunk_free(im.strings);
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
