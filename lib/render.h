/* render.h - message templates with {{placeholders}}, and Markdown. */
#ifndef COURSED_RENDER_H
#define COURSED_RENDER_H
#include <glib.h>

struct course;

struct render_var {
    const char *name;
    const char *value;
    gboolean raw; /* trusted markup (cmark output, our own URLs): not escaped */
};

/* The set of templates read from one folder at start-up. */
struct render_set;

/* Returns every template of dir, each checked for unknown placeholders, or
 * NULL with err as "file:line: message". Free with render_free(). */
struct render_set *render_load(const char *dir, GError **err);
void render_free(struct render_set *set);

/* A course's own templates: every template file (a layout or NAME.md of a
 * system mail) in course_dir/templates/, checked as render_load() checks
 * the shared ones (the same placeholders per file). *out gets a set that
 * falls back file by file to shared (borrowed: it must outlive the set),
 * or NULL when the course has no templates/ folder or no template in it.
 * FALSE with err as "file:line: message" on the first problem. Files
 * there that are not templates are left alone (render_lint_overrides
 * reports them). */
gboolean render_load_overrides(const char *course_dir, const struct render_set *shared,
                               struct render_set **out, GError **err);

/* The templates of one folder (a language's, templates/<tag>/): every
 * template file there, checked as render_load() checks them; *out gets a
 * set falling back file by file to fallback (borrowed: it must outlive
 * the set), or NULL when dir holds no template. FALSE with err as
 * "file:line: message". render_load_overrides() is this for
 * course_dir/templates/. */
gboolean render_load_dir(const char *dir, const struct render_set *fallback, struct render_set **out,
                         GError **err);

/* Returns snippet `file` (support.md) of set or of what it falls back to,
 * as written (Markdown), or "" if no set has it. Borrowed from set. */
const char *render_snippet(const struct render_set *set, const char *file);

/* Returns snippet `file` of set (or of what it falls back to) rendered
 * to HTML by render_markdown() once at load, or "". Borrowed from set. */
const char *render_snippet_html(const struct render_set *set, const char *file);

/* Appends every problem of course_dir/templates/ to problems (of struct
 * course_problem, course.h): each unknown placeholder of each template
 * with its line, a system mail without its Subject line, and files there
 * that are not templates (not fatal: the daemon leaves them alone). */
void render_lint_overrides(const char *course_dir, GPtrArray *problems);

/* Returns layout template `name` (lesson.txt, lesson.html, system.txt,
 * system.html) of set (or of what it falls back to) filled with vars; values are HTML-escaped in .html layouts
 * unless raw, and .txt layouts come out wrapped (render_text_wrap). A
 * section {{#x}}...{{/x}} is kept only when x has a value, {{^x}}...{{/x}}
 * only when it has none. NULL with err if a placeholder has no value.
 * g_free(). */
char *render_apply(const struct render_set *set, const char *name, const struct render_var *vars,
                   size_t n_vars, GError **err);

/* Fills system mail `which` (confirm, welcome, goodbye, status, help,
 * error, complete) of set (or of what it falls back to). *subject gets the subject, *text the body as plain
 * text (render_markdown_text), *html the body rendered to HTML; values are
 * escaped for Markdown first, so a name can never become markup and is
 * shown as typed in both. g_free() all three. */
gboolean render_system(const struct render_set *set, const char *which, const struct render_var *vars,
                       size_t n_vars, char **subject, char **text, char **html, GError **err);

/* Returns TRUE if which names a system mail. */
gboolean render_is_system(const char *which);

/* Returns md rendered to HTML by cmark-gfm in safe mode (raw HTML omitted,
 * javascript: links emptied, UTF-8 validated), with tables and
 * ~~strikethrough~~; images and tables carry inline styles (an image is
 * never wider than the mail). g_free(). */
char *render_markdown(const char *md);

/* Returns md as plain text for a text/plain part, built from cmark-gfm's
 * parse tree (docs/rendering.md): no Markdown marks, typography as in the
 * HTML part, paragraphs wrapped at 72 columns (characters, not bytes; an
 * address longer than that alone on its line), links as "text [1]" with
 * the numbered addresses listed at the end, lists as "- " or "1. ",
 * headings underlined, quotes and code indented, tables in columns (or as
 * "Header: value" lines when too wide). No final line break. The `lesson`
 * value of lesson.txt and the body of every system mail go through it.
 * g_free(). */
char *render_markdown_text(const char *md);

/* Returns text with every line wider than 72 columns wrapped at spaces
 * (its indentation kept on the lines it becomes); narrower lines and a
 * word that is wider alone (an address, a token) are left as they are. render_apply() runs
 * the .txt layouts through it. g_free(). */
char *render_text_wrap(const char *text);

/* Checks every lesson of c: no raw HTML, no {{ }}, links and images (https,
 * alt text), no construct the renderer does not support (task lists,
 * footnotes: docs/course-check.md); appends one "file:line: message"
 * string per problem to problems (g_free'd strings). Returns TRUE if there
 * was none. */
gboolean render_lint_course(const struct course *c, GPtrArray *problems);

#endif
