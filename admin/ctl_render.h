/* ctl_render.h - coursectl's presentation layer: a command builds records
 * (named, typed fields) and hands them to one renderer, which prints them
 * either as aligned text (a table, "label: value" lines, or a view's own
 * lines) or as JSON through lib/json.h. The kind of a field decides its JSON
 * type, the same in every command (see "coursectl output" in
 * docs/architecture.md). */
#ifndef COURSECTL_RENDER_H
#define COURSECTL_RENDER_H
#include <stdio.h>
#include <glib.h>

enum ctl_kind {
    CTL_TEXT, /* JSON string */
    CTL_INT,  /* JSON integer (counts, ids, lesson numbers, SMTP codes) */
    CTL_TIME, /* an instant: JSON "2026-05-04T09:00:00Z" (UTC, ISO 8601) */
    CTL_DATE, /* a UTC day: JSON "2026-05-04" */
    CTL_BOOL, /* JSON true/false */
    CTL_INTS, /* JSON array of integers */
    CTL_LIST, /* JSON array of objects (struct ctl_record) */
};

struct ctl_record;

enum ctl_format { CTL_FMT_TEXT, CTL_FMT_JSON };

/* ---- records. Field names are string literals (kept, not copied); a
 * record keeps its fields in the order they were added. ---- */

/* Returns an empty record; free with ctl_record_free(). */
struct ctl_record *ctl_record_new(void);
void ctl_record_free(struct ctl_record *r);
/* Marks r as a line of the text form only (a note in a table): JSON skips it. */
void ctl_record_text_only(struct ctl_record *r);

/* Each adds one field; the value is copied. NULL text is null. */
void ctl_text(struct ctl_record *r, const char *name, const char *value);
void ctl_int(struct ctl_record *r, const char *name, gint64 v);
/* t <= 0 (never, not planned) is null. */
void ctl_time(struct ctl_record *r, const char *name, gint64 t);
void ctl_date(struct ctl_record *r, const char *name, gint64 t);
void ctl_bool(struct ctl_record *r, const char *name, gboolean v);
void ctl_ints(struct ctl_record *r, const char *name, const gint64 *v, guint n);
/* A list field (shown as [] while empty). */
void ctl_list(struct ctl_record *r, const char *name);
/* Returns a new record appended to r's list `name` (made if missing); r owns it. */
struct ctl_record *ctl_child(struct ctl_record *r, const char *name);
/* A cell of the text form only (not in JSON): what a table or a view shows
 * that is not a fact of its own (a "2/3" step, a composed schedule). */
void ctl_cell(struct ctl_record *r, const char *name, const char *text);
void ctl_cell_int(struct ctl_record *r, const char *name, gint64 v);

/* Reading back, for the views that print their own lines. Missing fields
 * read as NULL / 0. */
const char *ctl_get_text(const struct ctl_record *r, const char *name);
gint64 ctl_get_int(const struct ctl_record *r, const char *name);
/* Returns the records of list `name`, or NULL; owned by r. */
const GPtrArray *ctl_get_list(const struct ctl_record *r, const char *name);
/* Returns the integers of field `name` and their number in *n, or NULL. */
const gint64 *ctl_get_ints(const struct ctl_record *r, const char *name, guint *n);

/* ---- views: how the text form looks ---- */

enum ctl_col_flags {
    CTL_COL_CLIP = 1 << 0,  /* cut to the width with an ellipsis */
    CTL_COL_RIGHT = 1 << 1, /* aligned to the right */
    CTL_COL_AUTO = 1 << 2,  /* as wide as its widest cell (width: the least); the rows wait for the end */
    CTL_COL_LOCAL =
        1 << 3, /* an instant in the local zone (TZ): "2026-05-04 12:00:00 CEST"; JSON stays UTC */
};

struct ctl_column {
    const char *header;
    const char *field; /* the field shown */
    int width;         /* in characters; the last column is not padded (unless right-aligned) */
    unsigned flags;
    const char *null_text; /* shown for a null value (default "") */
    int cut;               /* > 0: only the first cut characters (a time to the minute: 16) */
};

/* One "label: value" line of a single record. For a list field, one line
 * per record of the list, its `parts` joined by two spaces. */
struct ctl_label {
    const char *label;
    const char *field;
    const char *null_text;  /* for null */
    const char *empty_text; /* for "" */
    const char *parts[4];   /* list fields: the child's fields shown */
};

/* A record's text written by the view itself (free-form reports). */
typedef void (*ctl_text_fn)(FILE *out, const struct ctl_record *r, void *arg);

struct ctl_view {
    const struct ctl_column *columns; /* a table, ended by a column without field */
    gboolean header;                  /* print the headers first */
    const char *empty;                /* the line printed when there is no row */
    const struct ctl_label *labels;   /* "label: value" lines, ended by one without label */
    int label_width;
    ctl_text_fn text; /* or free-form lines */
    void *arg;
};

/* ---- the renderer ---- */

struct ctl_out;

/* Starts a list of records on out: JSON, an array with one record per line;
 * text, the view (the table's header now). Returns the output; end it with
 * ctl_out_end(). */
struct ctl_out *ctl_out_new(FILE *out, enum ctl_format fmt, const struct ctl_view *view);
/* Prints r as the next record of the list and frees it. */
void ctl_out_row(struct ctl_out *o, struct ctl_record *r);
/* Ends the list ("]" or the view's empty line) and frees o. */
void ctl_out_end(struct ctl_out *o);

/* Prints every record of records (struct ctl_record *) as one list, as
 * ctl_out_new/row/end do; frees them and the array. */
void ctl_print(FILE *out, enum ctl_format fmt, const struct ctl_view *view, GPtrArray *records);

/* Prints one record on out: JSON, one object on one line; text, the view's
 * labels (or its text function). Frees r. */
void ctl_show(FILE *out, enum ctl_format fmt, const struct ctl_view *view, struct ctl_record *r);

/* Prints text made by lib/ as it is (an HTML snippet): no view, no JSON. */
void ctl_verbatim(FILE *out, const char *text);

/* Returns "2026-05-06 09:00 CEST (2026-05-06T07:00:00Z)": t in zone tz,
 * then in UTC; "-" for t <= 0. g_free(). */
char *ctl_when(gint64 t, const char *tz);

/* Returns s cut to width characters, with an ellipsis if it was longer
 * (NULL as ""); g_free(). */
char *ctl_fit(const char *s, glong width);

#endif
