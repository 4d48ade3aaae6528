/* render.c - owns the template language: {{ name }} placeholders, nothing
 * else (no logic in templates). Templates are read and checked once, at
 * start-up or reload, so an unknown placeholder is a load error and never a
 * send-time surprise. Values are inserted after any Markdown rendering, and
 * HTML-escaped in .html templates. */
#include <string.h>
#include "render.h"
#include "error.h"

struct render_set {
    char *dir;
    GHashTable *text;   /* name -> template text */
};

/* Placeholders each template may use. */
static const char *const lesson_vars[] = {
    "name", "email", "course_title", "course_slug", "step", "steps", "subject", "lesson",
    "next_date", "unsubscribe_url", "unsubscribe_mailto", "command_address", "source", NULL
};

static const struct {
    const char *file;
    const char *const *vars;
    gboolean required;
} known[] = {
    { "lesson.txt", lesson_vars, TRUE },
};

gboolean render_check(const char *text, const char *file, const char *const *allowed, GError **err)
{
    int line = 1;
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            line++;
        if (p[0] != '{' || p[1] != '{')
            continue;
        const char *end = strstr(p + 2, "}}");
        if (!end || memchr(p + 2, '\n', (size_t)(end - p - 2))) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: '{{' without a closing '}}'", file, line);
            return FALSE;
        }
        char *name = g_strstrip(g_strndup(p + 2, (gsize)(end - p - 2)));
        gboolean ok = g_strv_contains(allowed, name);
        if (!ok)
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: unknown placeholder '{{%s}}'", file,
                        line, name);
        g_free(name);
        if (!ok)
            return FALSE;
        p = end + 1;
    }
    return TRUE;
}

char *render_fill(const char *text, const char *file, const struct render_var *vars, size_t n_vars,
                  gboolean html, GError **err)
{
    GString *out = g_string_sized_new(strlen(text) + 1024);
    const char *p = text;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            g_string_append(out, p);
            break;
        }
        g_string_append_len(out, p, open - p);
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: '{{' without a closing '}}'", file);
            g_string_free(out, TRUE);
            return NULL;
        }
        char *name = g_strstrip(g_strndup(open + 2, (gsize)(close - open - 2)));
        const char *value = NULL;
        for (size_t i = 0; i < n_vars; i++)
            if (strcmp(vars[i].name, name) == 0)
                value = vars[i].value ? vars[i].value : "";
        if (!value) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: no value for placeholder '{{%s}}'", file, name);
            g_free(name);
            g_string_free(out, TRUE);
            return NULL;
        }
        g_free(name);
        if (html) {
            char *esc = g_markup_escape_text(value, -1);
            g_string_append(out, esc);
            g_free(esc);
        } else {
            g_string_append(out, value);
        }
        p = close + 2;
    }
    return g_string_free(out, FALSE);
}

struct render_set *render_load(const char *dir, GError **err)
{
    struct render_set *set = g_new0(struct render_set, 1);
    set->dir = g_strdup(dir);
    set->text = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (size_t i = 0; i < G_N_ELEMENTS(known); i++) {
        char *path = g_build_filename(dir, known[i].file, NULL);
        char *text = NULL;
        GError *e = NULL;
        if (!g_file_get_contents(path, &text, NULL, &e)) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
            g_error_free(e);
            g_free(path);
            render_free(set);
            return NULL;
        }
        if (!g_utf8_validate(text, -1, NULL) || !render_check(text, path, known[i].vars, err)) {
            if (err && !*err)
                g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: not valid UTF-8", path);
            g_free(text);
            g_free(path);
            render_free(set);
            return NULL;
        }
        g_free(path);
        g_hash_table_insert(set->text, g_strdup(known[i].file), text);
    }
    return set;
}

void render_free(struct render_set *set)
{
    if (!set)
        return;
    g_hash_table_destroy(set->text);
    g_free(set->dir);
    g_free(set);
}

char *render_apply(const struct render_set *set, const char *name, const struct render_var *vars,
                   size_t n_vars, GError **err)
{
    const char *text = g_hash_table_lookup(set->text, name);
    if (!text) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "%s/%s: no such template", set->dir, name);
        return NULL;
    }
    return render_fill(text, name, vars, n_vars, g_str_has_suffix(name, ".html"), err);
}
