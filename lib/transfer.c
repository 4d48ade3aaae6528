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

/* Writes one good row (inside the transaction). */
static gboolean import_row(struct app *app, const struct row *r, GHashTable *first_slots, gint64 now,
                           struct transfer_stats *stats, GError **err)
{
    GError *e = NULL;
    struct sub_row *s = store_sub_get(app->st, r->email, &e);
    gint64 sub_id;
    enum sub_state status = SUB_ACTIVE;
    /* The zone slots are computed in is the subscriber's own: for someone
     * already known, the stored one, whatever this row says. */
    g_autofree char *zone = NULL;
    if (s) {
        sub_id = s->id;
        status = s->status;
        zone = g_strdup(s->tz);
        stats->existing++;
        store_sub_free(s);
    } else if (e->code == CD_ERR_NOT_FOUND) {
        g_clear_error(&e);
        /* A row that says unsubscribed or bounced keeps that fact. */
        int st = state_parse(ENT_SUB, r->status);
        status = st == SUB_UNSUBSCRIBED || st == SUB_BOUNCED ? (enum sub_state)st : SUB_ACTIVE;
        zone = *r->tz ? g_strdup(r->tz) : NULL;
        sub_id = store_sub_add(app->st, r->email, r->name, r->tz, status, now, err);
        if (sub_id < 0)
            return FALSE;
        if (!store_event(app->st, now, sub_id, 0, "imported", "cli", "", err))
            return FALSE;
        stats->added++;
    } else {
        g_propagate_error(err, e);
        return FALSE;
    }
    /* Nobody who left or bounced is enrolled by an import: that is theirs
     * to ask for again. */
    if (!*r->course || status != SUB_ACTIVE || strcmp(r->status, "unsubscribed") == 0 ||
        strcmp(r->status, "bounced") == 0)
        return TRUE;
    gint64 have = store_enrollment_find(app->st, sub_id, r->course, err);
    if (have < 0)
        return FALSE;
    if (have > 0)
        return TRUE;
    const struct course *c = course_find(app->courses, r->course);
    /* The first slot depends only on course and zone: compute it once. */
    char *key = g_strconcat(r->course, "\n", zone ? zone : c->tz, NULL);
    gpointer cached = g_hash_table_lookup(first_slots, key);
    gint64 first;
    if (cached) {
        first = *(gint64 *)cached;
        g_free(key);
    } else {
        first = schedule_first(app->cfg, c, zone, now);
        g_hash_table_insert(first_slots, key, g_memdup2(&first, sizeof first));
    }
    gint64 id = store_enroll(app->st, sub_id, c->slug, ENR_ACTIVE, first, now, now, err);
    if (id < 0)
        return FALSE;
    stats->enrolled++;
    int want = state_parse(ENT_ENR, r->status);
    struct enr_change none_planned = { .set_next = TRUE, .set_reason = TRUE, .reason = REASON_OPERATOR };
    if (want == ENR_PAUSED)
        return store_enr_apply(app->st, id, EV_ENR_PAUSE, &none_planned, now, err);
    if (want == ENR_COMPLETED)
        return store_enr_apply(app->st, id, EV_ENR_COMPLETE, &none_planned, now, err);
    return TRUE;
}

gboolean transfer_import(struct app *app, const char *path, gboolean dry_run, gboolean force, gint64 now,
                         transfer_progress progress, void *arg, struct transfer_stats *stats,
                         GPtrArray *problems, GError **err)
{
    memset(stats, 0, sizeof *stats);
    char *text = NULL;
    gsize len = 0;
    GError *e = NULL;
    if (!g_file_get_contents(path, &text, &len, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
        g_error_free(e);
        return FALSE;
    }
    gboolean ok = FALSE;
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)row_free);
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTable *first_slots = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    GPtrArray *fields = g_ptr_array_new_with_free_func(g_free);
    int idx[5] = { -1, -1, -1, -1, -1 };
    if (memchr(text, '\0', len) || !g_utf8_validate(text, (gssize)len, NULL)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: not UTF-8 text", path);
        goto out;
    }
    const char *p = text;
    if (g_str_has_prefix(p, "\xef\xbb\xbf"))
        p += 3; /* a spreadsheet's byte order mark */
    int line = 1, start;
    gboolean bad = FALSE;
    if (!csv_record(&p, &line, fields, &bad) || bad) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: missing header row (email,name,tz,course,status)",
                    path);
        goto out;
    }
    for (guint i = 0; i < fields->len; i++) {
        char *h = g_strstrip(g_ascii_strdown(fields->pdata[i], -1));
        int k = -1;
        for (int j = 0; columns[j]; j++)
            if (!strcmp(h, columns[j]))
                k = j;
        if (k < 0 || idx[k] >= 0) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s:1: %s column '%s' (known: email, name, tz, course, status)", path,
                        k < 0 ? "unknown" : "repeated", h);
            g_free(h);
            goto out;
        }
        idx[k] = (int)i;
        g_free(h);
    }
    if (idx[0] < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: the header has no 'email' column", path);
        goto out;
    }
    guint ncols = fields->len;
    /* Pass 1: check every row. */
    for (;;) {
        g_ptr_array_set_size(fields, 0);
        start = line;
        if (!csv_record(&p, &line, fields, &bad))
            break;
        if (fields->len == 1 && !*(char *)fields->pdata[0])
            continue; /* blank line */
        stats->rows++;
        char *why = NULL;
        struct row *r = g_new0(struct row, 1);
        r->line = start;
        if (bad)
            why = g_strdup("a quoted field is not closed");
        else if (fields->len != ncols)
            why = g_strdup_printf("expected %u fields, found %u", ncols, fields->len);
        if (!why) {
#define FIELD(k) (idx[k] >= 0 ? g_strstrip(g_strdup(fields->pdata[idx[k]])) : g_strdup(""))
            char *email = FIELD(0);
            r->name = FIELD(1);
            r->tz = FIELD(2);
            r->course = FIELD(3);
            r->status = FIELD(4);
#undef FIELD
            if (!*r->status) {
                g_free(r->status);
                r->status = g_strdup("active");
            }
            r->email = address_normalize(email, &e);
            char *clean = address_clean_name(r->name, 200);
            g_free(r->name);
            r->name = clean;
            if (!r->email) {
                why = g_strdup_printf("email: %s", e->message);
                g_clear_error(&e);
            } else if (*r->tz && !pace_tz_valid(r->tz)) {
                why = g_strdup_printf("tz: unknown time zone '%s'", r->tz);
            } else if (*r->course && !course_find(app->courses, r->course)) {
                why = g_strdup_printf("course: no course '%s'", r->course);
            } else if (!g_strv_contains(statuses, r->status)) {
                why = g_strdup_printf(
                    "status: '%s' is not one of active, paused, completed, unsubscribed, bounced", r->status);
            } else if (g_hash_table_contains(seen, r->email)) {
                why = g_strdup_printf("email: %s appears again (first on line %d)", r->email,
                                      GPOINTER_TO_INT(g_hash_table_lookup(seen, r->email)));
            } else if (!force && app->key) {
                char *hash = token_hash_address(app->key, r->email);
                int sup = store_suppressed(app->st, hash, err);
                g_free(hash);
                if (sup < 0) {
                    g_free(email);
                    row_free(r);
                    goto out;
                }
                if (sup)
                    why = g_strdup_printf("email: %s was erased at their request; --force imports it",
                                          r->email);
            }
            g_free(email);
        }
        if (why) {
            g_ptr_array_add(problems, g_strdup_printf("%s:%d: %s", path, start, why));
            g_free(why);
            row_free(r);
            stats->bad++;
        } else {
            g_hash_table_insert(seen, g_strdup(r->email), GINT_TO_POINTER(start));
            g_ptr_array_add(rows, r);
        }
        if (progress && stats->rows % 2000 == 0)
            progress(stats->rows, 0, arg);
    }
    if (dry_run) {
        ok = TRUE;
        goto out;
    }
    /* Pass 2: write the good rows in one transaction. */
    if (!store_begin(app->st, err))
        goto out;
    for (guint i = 0; i < rows->len; i++) {
        if (!import_row(app, rows->pdata[i], first_slots, now, stats, err)) {
            store_rollback(app->st);
            stats->added = stats->enrolled = stats->existing = 0;
            goto out;
        }
        if (progress && (i % 2000 == 0 || i + 1 == rows->len))
            progress(i + 1, rows->len, arg);
    }
    ok = store_commit(app->st, err);
    if (!ok) {
        store_rollback(app->st);
        stats->added = stats->enrolled = stats->existing = 0;
    }
out:
    g_ptr_array_unref(fields);
    g_hash_table_destroy(first_slots);
    g_hash_table_destroy(seen);
    g_ptr_array_unref(rows);
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
