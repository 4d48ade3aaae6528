/* render.h - message templates with {{placeholders}}. */
#ifndef COURSED_RENDER_H
#define COURSED_RENDER_H
#include <glib.h>

struct render_var {
    const char *name;
    const char *value;
};

/* The set of templates read from one folder at start-up. */
struct render_set;

/* Returns every template of dir, each checked for unknown placeholders, or
 * NULL with err as "file:line: message". Free with render_free(). */
struct render_set *render_load(const char *dir, GError **err);
void render_free(struct render_set *set);

/* Returns template `name` (e.g. "lesson.txt") filled with vars, or NULL with
 * err if the template is missing or uses a placeholder not in vars. When
 * html is TRUE, values are HTML-escaped. Caller g_free()s. */
char *render_apply(const struct render_set *set, const char *name, const struct render_var *vars,
                   size_t n_vars, GError **err);

/* Fills text (read from file, for error messages) with vars. */
char *render_fill(const char *text, const char *file, const struct render_var *vars, size_t n_vars,
                  gboolean html, GError **err);

/* Returns TRUE if every placeholder of text is in allowed (NULL-terminated);
 * else FALSE with err naming file:line and the placeholder. */
gboolean render_check(const char *text, const char *file, const char *const *allowed, GError **err);

#endif
