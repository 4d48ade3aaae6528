/* ctl_render.c - owns coursectl's output: records of typed fields, and the
 * one renderer that prints them as aligned text (tables whose columns
 * count characters, "label: value" lines, or a view's own lines) or as JSON
 * through the one writer (lib/json.c). The JSON type of a value comes from
 * its kind alone, so the same field reads the same in every command. */
#include <string.h>
#include "clock.h"
#include "ctl_render.h"
#include "json.h"
#include "pace.h"

struct ctl_field {
    const char *name;
    enum ctl_kind kind;
    gboolean null;
    gboolean text_only;
    char *text;      /* CTL_TEXT */
    gint64 num;      /* CTL_INT, CTL_TIME, CTL_DATE, CTL_BOOL */
    GArray *ints;    /* CTL_INTS: gint64 */
    GPtrArray *list; /* CTL_LIST: struct ctl_record * */
};

struct ctl_record {
    GArray *fields; /* struct ctl_field */
    gboolean text_only;
};

struct ctl_out {
    FILE *out;
    enum ctl_format fmt;
    const struct ctl_view *view;
    struct json_writer *w;
    guint rows;
    GPtrArray *held; /* a table with CTL_COL_AUTO columns: its rows, printed at the end */
};

/* ---- records ---- */

static void field_clear(gpointer p)
{
    struct ctl_field *f = p;
    g_free(f->text);
    if (f->ints)
        g_array_free(f->ints, TRUE);
    if (f->list)
        g_ptr_array_unref(f->list);
}

struct ctl_record *ctl_record_new(void)
{
    struct ctl_record *r = g_new0(struct ctl_record, 1);
    r->fields = g_array_new(FALSE, TRUE, sizeof(struct ctl_field));
    g_array_set_clear_func(r->fields, field_clear);
    return r;
}

void ctl_record_free(struct ctl_record *r)
{
    if (!r)
        return;
    g_array_free(r->fields, TRUE);
    g_free(r);
}

void ctl_record_text_only(struct ctl_record *r)
{
    r->text_only = TRUE;
}

static struct ctl_field *add(struct ctl_record *r, const char *name, enum ctl_kind kind)
{
    struct ctl_field f = { .name = name, .kind = kind };
    g_array_append_val(r->fields, f);
    return &g_array_index(r->fields, struct ctl_field, r->fields->len - 1);
}

static const struct ctl_field *find(const struct ctl_record *r, const char *name)
{
    for (guint i = 0; i < r->fields->len; i++) {
        const struct ctl_field *f = &g_array_index(r->fields, struct ctl_field, i);
        if (!strcmp(f->name, name))
            return f;
    }
    return NULL;
}

void ctl_text(struct ctl_record *r, const char *name, const char *value)
{
    struct ctl_field *f = add(r, name, CTL_TEXT);
    f->text = g_strdup(value);
    f->null = value == NULL;
}

void ctl_int(struct ctl_record *r, const char *name, gint64 v)
{
    add(r, name, CTL_INT)->num = v;
}

void ctl_time(struct ctl_record *r, const char *name, gint64 t)
{
    struct ctl_field *f = add(r, name, CTL_TIME);
    f->num = t;
    f->null = t <= 0;
}

void ctl_date(struct ctl_record *r, const char *name, gint64 t)
{
    add(r, name, CTL_DATE)->num = t;
}

void ctl_bool(struct ctl_record *r, const char *name, gboolean v)
{
    add(r, name, CTL_BOOL)->num = v ? 1 : 0;
}

void ctl_ints(struct ctl_record *r, const char *name, const gint64 *v, guint n)
{
    struct ctl_field *f = add(r, name, CTL_INTS);
    f->ints = g_array_sized_new(FALSE, FALSE, sizeof(gint64), n);
    g_array_append_vals(f->ints, v, n);
}

void ctl_list(struct ctl_record *r, const char *name)
{
    add(r, name, CTL_LIST)->list = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_record_free);
}

struct ctl_record *ctl_child(struct ctl_record *r, const char *name)
{
    const struct ctl_field *f = find(r, name);
    if (!f || f->kind != CTL_LIST) {
        ctl_list(r, name);
        f = find(r, name);
    }
    struct ctl_record *child = ctl_record_new();
    g_ptr_array_add(f->list, child);
    return child;
}

void ctl_cell(struct ctl_record *r, const char *name, const char *text)
{
    ctl_text(r, name, text);
    g_array_index(r->fields, struct ctl_field, r->fields->len - 1).text_only = TRUE;
}

void ctl_cell_int(struct ctl_record *r, const char *name, gint64 v)
{
    ctl_int(r, name, v);
    g_array_index(r->fields, struct ctl_field, r->fields->len - 1).text_only = TRUE;
}

const char *ctl_get_text(const struct ctl_record *r, const char *name)
{
    const struct ctl_field *f = find(r, name);
    return f && f->kind == CTL_TEXT ? f->text : NULL;
}

gint64 ctl_get_int(const struct ctl_record *r, const char *name)
{
    const struct ctl_field *f = find(r, name);
    return f && !f->null && f->kind != CTL_TEXT ? f->num : 0;
}

const GPtrArray *ctl_get_list(const struct ctl_record *r, const char *name)
{
    const struct ctl_field *f = find(r, name);
    return f ? f->list : NULL;
}

const gint64 *ctl_get_ints(const struct ctl_record *r, const char *name, guint *n)
{
    const struct ctl_field *f = find(r, name);
    *n = f && f->ints ? f->ints->len : 0;
    return f && f->ints ? (const gint64 *)(void *)f->ints->data : NULL;
}

/* ---- JSON ---- */

static void json_record(struct json_writer *w, const struct ctl_record *r);

static void json_field(struct json_writer *w, const struct ctl_field *f)
{
    if (f->null) {
        jw_null(w);
        return;
    }
    switch (f->kind) {
    case CTL_TEXT: jw_string(w, f->text); break;
    case CTL_INT: jw_int(w, f->num); break;
    case CTL_BOOL: jw_bool(w, f->num != 0); break;
    case CTL_TIME:
    case CTL_DATE: {
        char *t = clock_format_utc(f->num);
        if (f->kind == CTL_DATE && strlen(t) > 10)
            t[10] = '\0';
        jw_string(w, t);
        g_free(t);
        break;
    }
    case CTL_INTS:
        jw_array(w);
        for (guint i = 0; i < f->ints->len; i++)
            jw_int(w, g_array_index(f->ints, gint64, i));
        jw_array_end(w);
        break;
    case CTL_LIST:
        jw_array(w);
        for (guint i = 0; i < f->list->len; i++)
            if (!((const struct ctl_record *)f->list->pdata[i])->text_only)
                json_record(w, f->list->pdata[i]);
        jw_array_end(w);
        break;
    }
}

static void json_record(struct json_writer *w, const struct ctl_record *r)
{
    jw_object(w);
    for (guint i = 0; i < r->fields->len; i++) {
        const struct ctl_field *f = &g_array_index(r->fields, struct ctl_field, i);
        if (f->text_only)
            continue;
        jw_key(w, f->name);
        json_field(w, f);
    }
    jw_object_end(w);
}

/* ---- text ---- */

char *ctl_fit(const char *s, glong width)
{
    s = s ? s : "";
    if (g_utf8_strlen(s, -1) <= width)
        return g_strdup(s);
    char *cut = g_utf8_substring(s, 0, width - 1);
    char *out = g_strconcat(cut, "\u2026", NULL);
    g_free(cut);
    return out;
}

char *ctl_when(gint64 t, const char *tz)
{
    if (t <= 0)
        return g_strdup("-");
    char *local = pace_format_local(t, tz);
    char *utc = clock_format_utc(t);
    char *s = g_strdup_printf("%s (%s)", local, utc);
    g_free(local);
    g_free(utc);
    return s;
}

/* Returns the text of f (null: null_text, or ""); g_free(). */
static char *field_text(const struct ctl_field *f, const char *null_text)
{
    if (!f || f->null)
        return g_strdup(null_text ? null_text : "");
    switch (f->kind) {
    case CTL_TEXT: return g_strdup(f->text);
    case CTL_INT: return g_strdup_printf("%" G_GINT64_FORMAT, f->num);
    case CTL_BOOL: return g_strdup(f->num ? "yes" : "no");
    case CTL_TIME: return clock_format_utc(f->num);
    case CTL_DATE: {
        char *t = clock_format_utc(f->num);
        if (strlen(t) > 10)
            t[10] = '\0';
        return t;
    }
    case CTL_INTS: {
        GString *s = g_string_new(NULL);
        for (guint i = 0; i < f->ints->len; i++)
            g_string_append_printf(s, "%s%" G_GINT64_FORMAT, i ? " " : "", g_array_index(f->ints, gint64, i));
        return g_string_free(s, FALSE);
    }
    case CTL_LIST: return g_strdup_printf("%u", f->list->len);
    }
    return g_strdup("");
}

/* Returns instant t in the local zone of the machine (TZ), ISO-like with
 * the zone's abbreviation: an operator reads the audit trail in their own
 * time, and the abbreviation says which one it is; g_free(). */
static char *local_time(gint64 t)
{
    GDateTime *dt = g_date_time_new_from_unix_local(t);
    if (!dt)
        return g_strdup("?");
    char *s = g_date_time_format(dt, "%Y-%m-%d %H:%M:%S %Z");
    g_date_time_unref(dt);
    return s;
}

/* Appends one cell: clipped, padded to the column (a space after it unless last). */
static void append_cell(GString *line, const char *text, const struct ctl_column *c, gboolean last)
{
    char *s = g_strdup(text);
    if (c->cut > 0 && g_utf8_strlen(s, -1) > c->cut) {
        char *cut = g_utf8_substring(s, 0, c->cut);
        g_free(s);
        s = cut;
    }
    if (c->flags & CTL_COL_CLIP) {
        char *fit = ctl_fit(s, c->width);
        g_free(s);
        s = fit;
    }
    glong pad = MAX(c->width - g_utf8_strlen(s, -1), 0);
    if (c->flags & CTL_COL_RIGHT)
        g_string_append_printf(line, "%*s%s", (int)pad, "", s);
    else if (!last)
        g_string_append_printf(line, "%s%*s", s, (int)pad, "");
    else
        g_string_append(line, s);
    if (!last)
        g_string_append_c(line, ' ');
    g_free(s);
}

/* A row ends at its last field that a column shows (a note spans the rest). */
static void print_row(FILE *out, const struct ctl_column *cols, const struct ctl_record *r)
{
    int last = -1;
    for (int i = 0; cols[i].field; i++)
        if (!r || find(r, cols[i].field))
            last = i;
    GString *line = g_string_new(NULL);
    for (int i = 0; i <= last; i++) {
        const struct ctl_field *f = r ? find(r, cols[i].field) : NULL;
        char *cell = !r ? g_strdup(cols[i].header)
                     : (cols[i].flags & CTL_COL_LOCAL) && f && !f->null && f->kind == CTL_TIME
                         ? local_time(f->num)
                         : field_text(f, cols[i].null_text);
        append_cell(line, cell, &cols[i], i == last);
        g_free(cell);
    }
    g_string_append_c(line, '\n');
    fputs(line->str, out);
    g_string_free(line, TRUE);
}

static char *label_value(const struct ctl_field *f, const struct ctl_label *l)
{
    char *v = field_text(f, l->null_text);
    if (!*v && l->empty_text) {
        g_free(v);
        v = g_strdup(l->empty_text);
    }
    return v;
}

static void print_labels(FILE *out, const struct ctl_view *view, const struct ctl_record *r)
{
    for (const struct ctl_label *l = view->labels; l->label; l++) {
        const struct ctl_field *f = find(r, l->field);
        if (!f)
            continue;
        if (f->kind != CTL_LIST) {
            char *v = label_value(f, l);
            fprintf(out, "%-*s%s\n", view->label_width, l->label, v);
            g_free(v);
            continue;
        }
        for (guint i = 0; i < f->list->len; i++) {
            const struct ctl_record *child = f->list->pdata[i];
            GString *line = g_string_new(NULL);
            for (int k = 0; k < (int)G_N_ELEMENTS(l->parts) && l->parts[k]; k++) {
                char *v = field_text(find(child, l->parts[k]), NULL);
                g_string_append_printf(line, "%s%s", k ? "  " : "", v);
                g_free(v);
            }
            fprintf(out, "%-*s%s\n", view->label_width, l->label, line->str);
            g_string_free(line, TRUE);
        }
    }
}

static void print_text(FILE *out, const struct ctl_view *view, const struct ctl_record *r)
{
    if (view->text)
        view->text(out, r, view->arg);
    else if (view->columns)
        print_row(out, view->columns, r);
    else if (view->labels)
        print_labels(out, view, r);
}

/* ---- the renderer ---- */

static gboolean has_auto(const struct ctl_view *view)
{
    for (int i = 0; view && view->columns && view->columns[i].field; i++)
        if (view->columns[i].flags & CTL_COL_AUTO)
            return TRUE;
    return FALSE;
}

/* Prints the held rows of o, each CTL_COL_AUTO column as wide as its
 * widest cell (or its header), and frees them. */
static void print_held(struct ctl_out *o)
{
    const struct ctl_column *src = o->view->columns;
    int n = 0;
    while (src[n].field)
        n++;
    struct ctl_column *cols = g_new0(struct ctl_column, (gsize)n + 1);
    memcpy(cols, src, sizeof(*cols) * (gsize)n);
    for (int i = 0; i < n; i++) {
        if (!(cols[i].flags & CTL_COL_AUTO))
            continue;
        cols[i].width = MAX(cols[i].width, (int)g_utf8_strlen(cols[i].header, -1));
        for (guint k = 0; k < o->held->len; k++) {
            const struct ctl_field *f = find(o->held->pdata[k], cols[i].field);
            if (!f)
                continue;
            char *cell = field_text(f, cols[i].null_text);
            glong len = g_utf8_strlen(cell, -1);
            cols[i].width = MAX(cols[i].width, (int)(cols[i].cut > 0 ? MIN(len, cols[i].cut) : len));
            g_free(cell);
        }
    }
    if (o->view->header)
        print_row(o->out, cols, NULL);
    for (guint k = 0; k < o->held->len; k++)
        print_row(o->out, cols, o->held->pdata[k]);
    g_free(cols);
    g_ptr_array_unref(o->held);
    o->held = NULL;
}

struct ctl_out *ctl_out_new(FILE *out, enum ctl_format fmt, const struct ctl_view *view)
{
    struct ctl_out *o = g_new0(struct ctl_out, 1);
    o->out = out;
    o->fmt = fmt;
    o->view = view;
    if (fmt == CTL_FMT_JSON) {
        o->w = jw_new_file(out, JW_LINES);
        jw_array(o->w);
    } else if (has_auto(view)) {
        o->held = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_record_free);
    } else if (view && view->columns && view->header) {
        print_row(out, view->columns, NULL);
    }
    return o;
}

void ctl_out_row(struct ctl_out *o, struct ctl_record *r)
{
    o->rows++;
    if (o->held) {
        g_ptr_array_add(o->held, r);
        return;
    }
    if (o->fmt == CTL_FMT_JSON) {
        if (!r->text_only)
            json_record(o->w, r);
    } else if (o->view) {
        print_text(o->out, o->view, r);
    }
    ctl_record_free(r);
}

void ctl_out_end(struct ctl_out *o)
{
    if (o->held)
        print_held(o);
    if (o->fmt == CTL_FMT_JSON) {
        jw_array_end(o->w);
        jw_end(o->w);
        fputc('\n', o->out);
    } else if (o->rows == 0 && o->view && o->view->empty) {
        fprintf(o->out, "%s\n", o->view->empty);
    }
    g_free(o);
}

void ctl_print(FILE *out, enum ctl_format fmt, const struct ctl_view *view, GPtrArray *records)
{
    struct ctl_out *o = ctl_out_new(out, fmt, view);
    gsize n = 0;
    gpointer *rows = g_ptr_array_steal(records, &n);
    for (gsize i = 0; i < n; i++)
        ctl_out_row(o, rows[i]);
    g_free(rows);
    g_ptr_array_unref(records);
    ctl_out_end(o);
}

void ctl_verbatim(FILE *out, const char *text)
{
    fputs(text, out);
}

void ctl_show(FILE *out, enum ctl_format fmt, const struct ctl_view *view, struct ctl_record *r)
{
    if (fmt == CTL_FMT_JSON) {
        struct json_writer *w = jw_new_file(out, 0);
        json_record(w, r);
        jw_end(w);
        fputc('\n', out);
    } else if (view) {
        print_text(out, view, r);
    }
    ctl_record_free(r);
}
