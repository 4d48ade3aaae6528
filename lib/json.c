/* json.c - owns writing JSON (RFC 8259): the streaming writer behind every
 * --json output, with its commas, nesting and escaping (quotes, backslashes
 * and every control character escaped, invalid UTF-8 replaced), so that
 * output built from hostile input, or by a caller that errs, is still one
 * valid JSON value. */
#include "json.h"

#define JW_CHUNK 8192 /* a file writer writes when this much is buffered */

struct jw_level {
    char close;   /* '}' or ']' */
    gboolean any; /* a member was written */
    gboolean key; /* (object) a key waits for its value */
};

struct json_writer {
    GString *buf; /* the caller's string, or the file's buffer */
    FILE *file;   /* NULL: write into buf only */
    unsigned flags;
    GArray *stack; /* struct jw_level, innermost last */
    int skip;      /* depth of a container dropped as out of place */
    gboolean done; /* the top-level value is complete */
    gboolean misused;
};

static void escape(GString *out, const char *s)
{
    char *valid = g_utf8_make_valid(s, -1);
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)valid; *p; p++) {
        switch (*p) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                g_string_append_printf(out, "\\u%04x", *p);
            else
                g_string_append_c(out, (char)*p);
        }
    }
    g_string_append_c(out, '"');
    g_free(valid);
}

static struct json_writer *writer_new(GString *buf, FILE *file, unsigned flags)
{
    struct json_writer *w = g_new0(struct json_writer, 1);
    w->buf = buf;
    w->file = file;
    w->flags = flags;
    w->stack = g_array_new(FALSE, FALSE, sizeof(struct jw_level));
    return w;
}

struct json_writer *jw_new(GString *out, unsigned flags)
{
    return writer_new(out, NULL, flags);
}

struct json_writer *jw_new_file(FILE *out, unsigned flags)
{
    return writer_new(g_string_sized_new(JW_CHUNK), out, flags);
}

static void misuse(struct json_writer *w, const char *what)
{
    w->misused = TRUE;
    g_critical("json writer: %s", what);
}

static struct jw_level *top(struct json_writer *w)
{
    return w->stack->len ? &g_array_index(w->stack, struct jw_level, w->stack->len - 1) : NULL;
}

static void flush(struct json_writer *w, gboolean all)
{
    if (w->file && w->buf->len && (all || w->buf->len >= JW_CHUNK)) {
        fwrite(w->buf->str, 1, w->buf->len, w->file);
        g_string_truncate(w->buf, 0);
    }
}

/* The separator before a member of the current container. */
static void separate(struct json_writer *w, struct jw_level *l)
{
    if (l->any)
        g_string_append(w->buf, (w->flags & JW_LINES) && w->stack->len == 1 ? ",\n " : ", ");
    l->any = TRUE;
}

/* Makes room for a value; FALSE (and the value is dropped) if none fits here. */
static gboolean value_slot(struct json_writer *w)
{
    if (w->skip)
        return FALSE;
    struct jw_level *l = top(w);
    if (!l) {
        if (!w->done)
            return TRUE;
        misuse(w, "a second top-level value");
        return FALSE;
    }
    if (l->close == '}') {
        if (!l->key) {
            misuse(w, "a value in an object without its key");
            return FALSE;
        }
        l->key = FALSE;
        return TRUE;
    }
    separate(w, l);
    return TRUE;
}

static void scalar_done(struct json_writer *w)
{
    if (!w->stack->len)
        w->done = TRUE;
    flush(w, FALSE);
}

static void open_container(struct json_writer *w, char open, char close)
{
    if (!value_slot(w)) {
        w->skip++;
        return;
    }
    struct jw_level l = { close, FALSE, FALSE };
    g_array_append_val(w->stack, l);
    g_string_append_c(w->buf, open);
}

static void close_container(struct json_writer *w, char close)
{
    if (w->skip) {
        w->skip--;
        return;
    }
    struct jw_level *l = top(w);
    if (!l || l->close != close) {
        misuse(w, "an end that matches no begin");
        return;
    }
    if (l->key) {
        misuse(w, "a key without its value");
        g_string_append(w->buf, "null");
    }
    g_array_set_size(w->stack, w->stack->len - 1);
    g_string_append_c(w->buf, close);
    scalar_done(w);
}

void jw_object(struct json_writer *w)
{
    open_container(w, '{', '}');
}
void jw_object_end(struct json_writer *w)
{
    close_container(w, '}');
}
void jw_array(struct json_writer *w)
{
    open_container(w, '[', ']');
}
void jw_array_end(struct json_writer *w)
{
    close_container(w, ']');
}

void jw_key(struct json_writer *w, const char *key)
{
    if (w->skip)
        return;
    struct jw_level *l = top(w);
    if (!l || l->close != '}') {
        misuse(w, "a key outside an object");
        return;
    }
    if (l->key) {
        misuse(w, "a key without its value");
        g_string_append(w->buf, "null");
    }
    separate(w, l);
    escape(w->buf, key ? key : "");
    g_string_append(w->buf, ": ");
    l->key = TRUE;
}

void jw_string(struct json_writer *w, const char *s)
{
    if (!value_slot(w))
        return;
    if (s)
        escape(w->buf, s);
    else
        g_string_append(w->buf, "null");
    scalar_done(w);
}

void jw_int(struct json_writer *w, gint64 v)
{
    if (!value_slot(w))
        return;
    g_string_append_printf(w->buf, "%" G_GINT64_FORMAT, v);
    scalar_done(w);
}

void jw_bool(struct json_writer *w, gboolean v)
{
    if (!value_slot(w))
        return;
    g_string_append(w->buf, v ? "true" : "false");
    scalar_done(w);
}

void jw_null(struct json_writer *w)
{
    if (!value_slot(w))
        return;
    g_string_append(w->buf, "null");
    scalar_done(w);
}

gboolean jw_end(struct json_writer *w)
{
    if (w->skip)
        misuse(w, "a dropped container left open");
    w->skip = 0;
    if (w->stack->len)
        misuse(w, "containers left open");
    while (w->stack->len)
        close_container(w, top(w)->close);
    if (!w->done)
        g_string_append(w->buf, "null");
    flush(w, TRUE);
    if (w->file)
        g_string_free(w->buf, TRUE);
    g_array_free(w->stack, TRUE);
    gboolean ok = !w->misused;
    g_free(w);
    return ok;
}
