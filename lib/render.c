/* render.c - owns cmark and the template language: {{ name }} placeholders
 * and sections that show or hide text by whether a value is empty
 * ({{#name}}...{{/name}}, {{^name}}...{{/name}}), nothing else (no logic in
 * templates). It also makes the text/plain part from cmark's parse tree
 * (docs/rendering.md). Templates are read and checked once,
 * at start-up or reload, so an unknown placeholder is a load error and never
 * a send-time surprise.
 *
 * Escaping is decided here, once:
 *   - .html layouts: values are HTML-escaped unless marked raw (cmark's
 *     output and URLs we built ourselves);
 *   - system mails are Markdown: for the HTML part, values are
 *     backslash-escaped for Markdown before cmark sees them, so a subscriber
 *     name can never become a link or markup; for the text part they go in
 *     as they are.
 * cmark runs in safe mode: raw HTML is dropped and javascript: links
 * emptied; lessons with raw HTML are refused outright by the lint. */
#include <string.h>
#include <cmark-gfm.h>
#include <cmark-gfm-core-extensions.h>
#include "render.h"
#include "course.h"
#include "error.h"

struct render_set {
    char *dir;
    GHashTable *text;    /* file name -> template text (system mails: body only) */
    GHashTable *subject; /* system mail -> subject template */
    /* A course's overrides: the files it does not have come from here
     * (borrowed; NULL for the shared set). */
    const struct render_set *fallback;
};

static const char *const lesson_vars[] = { "name", "email", "course_title", "course_slug", "step", "steps",
                                           "subject", "lesson", "next_date", "unsubscribe_url",
                                           "command_address", "source",
                                           /* the words of the course's language (lang.h) */
                                           "lang", "greeting", "step_line", "next_label", "foot_pause",
                                           "foot_status", "foot_manage", "foot_leave", "support",
                                           "manage_url", "sign_off", "last", NULL };
static const char *const layout_vars[] = { "subject",         "body",       "course_title",
                                           "command_address", "lang",       "foot_commands",
                                           "foot_manage",     "manage_url", NULL };
static const char *const system_vars[] = { "name",
                                           "email",
                                           "course_title",
                                           "course_description",
                                           "source",
                                           "steps",
                                           "schedule",
                                           "zone",
                                           "zone_hint",
                                           "zone_sentence",
                                           "joined",
                                           "first_date",
                                           "next_date",
                                           "progress",
                                           "confirm_url",
                                           "command_address",
                                           "unsubscribe_url",
                                           "reason",
                                           "courses",
                                           "next_step",
                                           "greeting",
                                           "support",
                                           NULL };
/* The confirmation goes to an address nobody has verified yet: it must not
 * echo anything the requester typed (a name, a reason), or it becomes a
 * spam cannon. */
static const char *const confirm_vars[] = { "email",    "course_title", "course_description", "steps",
                                            "schedule", "confirm_url",  "command_address",    NULL };

/* Snippets: Markdown included in other mails, no placeholders of their
 * own (support.md: the help line, docs/support-default.md). */
static const char *const no_vars[] = { NULL };
static const char *const snippets[] = { "support.md", NULL };

static const char *const system_mails[] = { "confirm", "welcome",  "goodbye", "status", "help",
                                            "error",   "complete", "export",  NULL };

static const struct {
    const char *file;
    const char *const *vars;
} layouts[] = {
    { "lesson.txt", lesson_vars },
    { "lesson.html", lesson_vars },
    { "system.txt", layout_vars },
    { "system.html", layout_vars },
};

gboolean render_is_system(const char *which)
{
    return which && g_strv_contains(system_mails, which);
}

/* Returns TRUE if every placeholder of text is in allowed (NULL-terminated);
 * else FALSE with err naming file:line and the placeholder: the first
 * problem, or, when problems (of struct course_problem) is not NULL, every
 * one appended there instead. */
static gboolean render_check(const char *text, const char *file, const char *const *allowed,
                             GPtrArray *problems, GError **err)
{
    int line = 1;
    gboolean all_ok = TRUE;
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            line++;
        if (p[0] != '{' || p[1] != '{')
            continue;
        const char *end = strstr(p + 2, "}}");
        if (!end || memchr(p + 2, '\n', (size_t)(end - p - 2))) {
            if (problems)
                course_problem_add(problems, TRUE, file, line, "'{{' without a closing '}}'");
            else
                g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: '{{' without a closing '}}'", file, line);
            return FALSE;
        }
        char *name = g_strstrip(g_strndup(p + 2, (gsize)(end - p - 2)));
        gboolean section = name[0] && strchr("#^/", name[0]); /* {{#x}}, {{^x}}, {{/x}} */
        gboolean ok = g_strv_contains(allowed, name + section);
        char *end_tag = g_strdup_printf("{{/%s}}", name + section);
        if (ok && section && name[0] != '/' && !strstr(end + 2, end_tag)) {
            if (problems)
                course_problem_add(problems, TRUE, file, line, "section '{{%s}}' without its '%s'", name,
                                   end_tag);
            else
                g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: section '{{%s}}' without its '%s'", file,
                            line, name, end_tag);
            g_free(end_tag);
            g_free(name);
            return FALSE;
        }
        g_free(end_tag);
        if (!ok && problems)
            course_problem_add(problems, TRUE, file, line, "unknown placeholder '{{%s}}'", name);
        else if (!ok)
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: unknown placeholder '{{%s}}'", file, line,
                        name);
        g_free(name);
        if (!ok && !problems)
            return FALSE;
        all_ok = all_ok && ok;
        p = end + 1;
    }
    return all_ok;
}

/* Backslash-escape every ASCII punctuation character (CommonMark treats any
 * escaped punctuation as literal) and flatten line breaks. */
static char *md_escape(const char *v)
{
    GString *s = g_string_sized_new(strlen(v) * 2);
    for (const char *p = v; *p; p++) {
        if (*p == '\r' || *p == '\n')
            g_string_append_c(s, ' ');
        else if (g_ascii_ispunct(*p)) {
            g_string_append_c(s, '\\');
            g_string_append_c(s, *p);
        } else
            g_string_append_c(s, *p);
    }
    return g_string_free(s, FALSE);
}

enum escape { ESC_NONE, ESC_HTML, ESC_MARKDOWN };

/* Returns where text goes on after the section tag [open, end). A tag alone
 * on its line (only blanks around it) takes that whole line, so a section
 * left out leaves no blank line (as in Mustache): the blanks before it,
 * already in out, are taken back. */
static const char *section_tag(const char *text, const char *open, const char *end, GString *out)
{
    const char *start = open;
    while (start > text && (start[-1] == ' ' || start[-1] == '\t'))
        start--;
    const char *after = end + strspn(end, " \t");
    if ((start > text && start[-1] != '\n') || (*after && *after != '\n'))
        return end;
    size_t blanks = (size_t)(open - start);
    if (out->len >= blanks)
        g_string_truncate(out, out->len - blanks);
    return *after ? after + 1 : after;
}

static char *fill(const char *text, const char *file, const struct render_var *vars, size_t n_vars,
                  enum escape esc, GError **err)
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
        char kind = name[0] && strchr("#^/", name[0]) ? name[0] : 0; /* a section's tag */
        const struct render_var *var = NULL;
        for (size_t i = 0; i < n_vars; i++)
            if (strcmp(vars[i].name, name + (kind != 0)) == 0)
                var = &vars[i];
        if (!var) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: no value for placeholder '{{%s}}'", file, name);
            g_free(name);
            g_string_free(out, TRUE);
            return NULL;
        }
        g_free(name);
        const char *value = var->value ? var->value : "";
        if (kind) {
            /* {{#x}}...{{/x}} is kept when x has a value, {{^x}}...{{/x}}
             * when it has none; a tag alone on its line takes the line. */
            p = section_tag(text, open, close + 2, out);
            if (kind == '/' || (kind == '#') == (*value != 0))
                continue;
            char *end_tag = g_strdup_printf("{{/%s}}", var->name);
            const char *skip = strstr(p, end_tag);
            g_free(end_tag);
            if (!skip) {
                g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: section '%s' without its '{{/%s}}'", file,
                            var->name, var->name);
                g_string_free(out, TRUE);
                return NULL;
            }
            GString *dropped = g_string_new(NULL); /* the part of the closing tag's line already written */
            p = section_tag(text, skip, skip + strlen(var->name) + 5, dropped);
            g_string_free(dropped, TRUE);
            continue;
        }
        char *escaped = NULL;
        if (!var->raw && esc == ESC_HTML)
            escaped = g_markup_escape_text(value, -1);
        else if (!var->raw && esc == ESC_MARKDOWN)
            escaped = md_escape(value);
        else if (!var->raw && esc == ESC_NONE && !strcmp(file, "lesson.txt") && !strcmp(var->name, "lesson"))
            escaped = render_markdown_text(value); /* the lesson's Markdown as plain text */
        g_string_append(out, escaped ? escaped : value);
        g_free(escaped);
        p = close + 2;
    }
    return g_string_free(out, FALSE);
}

static gboolean read_template(const char *dir, const char *file, char **text, GError **err)
{
    char *path = g_build_filename(dir, file, NULL);
    GError *e = NULL;
    gboolean ok = g_file_get_contents(path, text, NULL, &e);
    if (!ok) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
        g_error_free(e);
    } else if (!g_utf8_validate(*text, -1, NULL)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: not valid UTF-8", path);
        g_free(*text);
        *text = NULL;
        ok = FALSE;
    }
    g_free(path);
    return ok;
}

/* What is wrong with the "Subject: ...", blank line, body shape of a
 * system mail template text (and *line: where), or NULL. */
static const char *subject_problem(const char *text, int *line)
{
    *line = 1;
    if (!g_str_has_prefix(text, "Subject:"))
        return "expected 'Subject: ...'";
    const char *nl = strchr(text, '\n');
    *line = 2;
    if (!nl || nl[1] != '\n')
        return "expected a blank line after the subject";
    return NULL;
}

/* Split "Subject: ...\n\nbody" of a system mail template. */
static gboolean split_subject(const char *path, char *text, char **subject, char **body, GError **err)
{
    int line = 0;
    const char *problem = subject_problem(text, &line);
    if (problem) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: %s", path, line, problem);
        return FALSE;
    }
    char *nl = strchr(text, '\n');
    *subject = g_strstrip(g_strndup(text + 8, (gsize)(nl - text - 8)));
    *body = g_strdup(nl + 2);
    return TRUE;
}

/* The placeholders template `file` may use (*system: it is a system mail,
 * NAME.md), or NULL if coursed has no template of that name. */
static const char *const *template_vars(const char *file, gboolean *system)
{
    *system = FALSE;
    for (size_t i = 0; i < G_N_ELEMENTS(layouts); i++)
        if (strcmp(file, layouts[i].file) == 0)
            return layouts[i].vars;
    if (g_strv_contains(snippets, file))
        return no_vars;
    for (const char *const *w = system_mails; *w; w++) {
        size_t n = strlen(*w);
        if (strncmp(file, *w, n) == 0 && strcmp(file + n, ".md") == 0) {
            *system = TRUE;
            return strcmp(*w, "confirm") == 0 ? confirm_vars : system_vars;
        }
    }
    return NULL;
}

/* The file names of every template: the layouts, then NAME.md of each
 * system mail. g_strfreev(). */
static char **template_files(void)
{
    GPtrArray *a = g_ptr_array_new();
    for (size_t i = 0; i < G_N_ELEMENTS(layouts); i++)
        g_ptr_array_add(a, g_strdup(layouts[i].file));
    for (const char *const *w = system_mails; *w; w++)
        g_ptr_array_add(a, g_strconcat(*w, ".md", NULL));
    for (const char *const *w = snippets; *w; w++)
        g_ptr_array_add(a, g_strdup(*w));
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

static struct render_set *set_new(const char *dir, const struct render_set *fallback)
{
    struct render_set *set = g_new0(struct render_set, 1);
    set->dir = g_strdup(dir);
    set->text = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    set->subject = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    set->fallback = fallback;
    return set;
}

/* Reads template `file` (a name template_files() lists) of dir into set,
 * checked for unknown placeholders and, for a system mail, its subject. */
static gboolean load_file(struct render_set *set, const char *dir, const char *file, GError **err)
{
    gboolean system = FALSE;
    const char *const *allowed = template_vars(file, &system);
    char *path = g_build_filename(dir, file, NULL);
    char *text = NULL, *subject = NULL, *body = NULL;
    gboolean ok = read_template(dir, file, &text, err) && render_check(text, path, allowed, NULL, err) &&
                  (!system || split_subject(path, text, &subject, &body, err));
    if (ok && system) {
        g_hash_table_insert(set->subject, g_strndup(file, strlen(file) - 3), subject);
        g_hash_table_insert(set->text, g_strdup(file), body);
        g_free(text);
    } else if (ok && g_strv_contains(snippets, file)) {
        /* rendered once here: a snippet goes into every copy of a lesson */
        g_hash_table_insert(set->text, g_strconcat(file, ".html", NULL), render_markdown(text));
        g_hash_table_insert(set->text, g_strdup(file), text);
    } else if (ok) {
        g_hash_table_insert(set->text, g_strdup(file), text);
    } else {
        g_free(text);
    }
    g_free(path);
    return ok;
}

struct render_set *render_load(const char *dir, GError **err)
{
    struct render_set *set = set_new(dir, NULL);
    char **files = template_files();
    gboolean ok = TRUE;
    for (char **f = files; ok && *f; f++)
        ok = load_file(set, dir, *f, err);
    g_strfreev(files);
    if (!ok) {
        render_free(set);
        return NULL;
    }
    return set;
}

gboolean render_load_dir(const char *dir, const struct render_set *fallback, struct render_set **out,
                         GError **err)
{
    *out = NULL;
    gboolean ok = TRUE;
    struct render_set *set = set_new(dir, fallback);
    char **files = template_files();
    for (char **f = files; ok && *f; f++) {
        char *path = g_build_filename(dir, *f, NULL);
        gboolean here = g_file_test(path, G_FILE_TEST_EXISTS);
        g_free(path);
        if (here)
            ok = load_file(set, dir, *f, err);
    }
    g_strfreev(files);
    if (ok && g_hash_table_size(set->text) > 0)
        *out = set;
    else
        render_free(set);
    return ok;
}

gboolean render_load_overrides(const char *course_dir, const struct render_set *shared,
                               struct render_set **out, GError **err)
{
    *out = NULL;
    char *dir = g_build_filename(course_dir, "templates", NULL);
    gboolean ok = TRUE;
    if (!g_file_test(dir, G_FILE_TEST_EXISTS)) {
        g_free(dir);
        return TRUE;
    }
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "%s: not a folder (a course's templates/ holds the templates it overrides)", dir);
        g_free(dir);
        return FALSE;
    }
    ok = render_load_dir(dir, shared, out, err);
    g_free(dir);
    return ok;
}

/* The problems of one template of a course's templates/ (file is its
 * name, path where it is), appended to problems. */
static void lint_override(const char *path, const char *file, GPtrArray *problems)
{
    gboolean system = FALSE;
    const char *const *allowed = template_vars(file, &system);
    char *text = NULL;
    GError *e = NULL;
    if (!g_file_get_contents(path, &text, NULL, &e)) {
        course_problem_add(problems, TRUE, path, 0, "%s", e->message);
        g_error_free(e);
        return;
    }
    int line = 0;
    const char *problem = NULL;
    if (!g_utf8_validate(text, -1, NULL)) {
        course_problem_add(problems, TRUE, path, 1, "not valid UTF-8");
    } else {
        if (system && (problem = subject_problem(text, &line)))
            course_problem_add(problems, TRUE, path, line, "%s", problem);
        render_check(text, path, allowed, problems, NULL);
    }
    g_free(text);
}

void render_lint_overrides(const char *course_dir, GPtrArray *problems)
{
    char *dir = g_build_filename(course_dir, "templates", NULL);
    char **files = template_files();
    char *known = g_strjoinv(", ", files);
    GDir *d = g_file_test(dir, G_FILE_TEST_IS_DIR) ? g_dir_open(dir, 0, NULL) : NULL;
    if (!d && g_file_test(dir, G_FILE_TEST_EXISTS))
        course_problem_add(problems, TRUE, dir, 0,
                           "not a folder: a course's templates/ holds the templates it overrides (%s)",
                           known);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        if (name[0] == '.')
            continue;
        char *path = g_build_filename(dir, name, NULL);
        if (g_strv_contains((const char *const *)files, name) && !g_file_test(path, G_FILE_TEST_IS_DIR))
            lint_override(path, name, problems);
        else
            course_problem_add(problems, FALSE, path, 0,
                               "%s coursed does not use: a course's templates/ may hold %s",
                               g_file_test(path, G_FILE_TEST_IS_DIR) ? "a folder" : "a file", known);
        g_free(path);
    }
    if (d)
        g_dir_close(d);
    g_free(known);
    g_strfreev(files);
    g_free(dir);
}

void render_free(struct render_set *set)
{
    if (!set)
        return;
    g_hash_table_destroy(set->text);
    g_hash_table_destroy(set->subject);
    g_free(set->dir);
    g_free(set);
}

/* The set on set's chain (its overrides, then what they fall back to) that
 * has template file, or NULL. */
static const struct render_set *holder(const struct render_set *set, const char *file)
{
    for (; set; set = set->fallback)
        if (g_hash_table_contains(set->text, file))
            return set;
    return NULL;
}

char *render_apply(const struct render_set *set, const char *name, const struct render_var *vars,
                   size_t n_vars, GError **err)
{
    const struct render_set *h = holder(set, name);
    const char *text = h ? g_hash_table_lookup(h->text, name) : NULL;
    if (!text) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "%s/%s: no such template", set->dir, name);
        return NULL;
    }
    gboolean html = g_str_has_suffix(name, ".html");
    char *out = fill(text, name, vars, n_vars, html ? ESC_HTML : ESC_NONE, err);
    if (out && !html) { /* a long value (an address, the source line) wrapped too */
        char *wrapped = render_text_wrap(out);
        g_free(out);
        out = wrapped;
    }
    return out;
}

const char *render_snippet_html(const struct render_set *set, const char *file)
{
    char *key = g_strconcat(file, ".html", NULL);
    const struct render_set *h = holder(set, key);
    const char *html = h ? g_hash_table_lookup(h->text, key) : "";
    g_free(key);
    return html;
}

const char *render_snippet(const struct render_set *set, const char *file)
{
    const struct render_set *h = holder(set, file);
    return h ? g_hash_table_lookup(h->text, file) : "";
}

gboolean render_system(const struct render_set *set, const char *which, const struct render_var *vars,
                       size_t n_vars, char **subject, char **text, char **html, GError **err)
{
    *subject = *text = *html = NULL;
    char *file = g_strconcat(which, ".md", NULL);
    const struct render_set *h = holder(set, file);
    const char *body = h ? g_hash_table_lookup(h->text, file) : NULL;
    const char *subj = h ? g_hash_table_lookup(h->subject, which) : NULL;
    char *md = NULL;
    gboolean ok = FALSE;
    if (!body || !subj) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "%s/%s: no such system mail", set->dir, file);
        goto out;
    }
    *subject = fill(subj, file, vars, n_vars, ESC_NONE, err);
    if (!*subject)
        goto out;
    md = fill(body, file, vars, n_vars, ESC_MARKDOWN, err);
    if (!md)
        goto out;
    *text = render_markdown_text(md); /* from the same escaped Markdown: a value is shown as typed */
    *html = render_markdown(md);
    ok = TRUE;
out:
    if (!ok) {
        g_free(*subject);
        g_free(*text);
        *subject = *text = NULL;
    }
    g_free(md);
    g_free(file);
    return ok;
}

/* ---- Markdown (cmark-gfm) ---- */

/* The Markdown a lesson may use is CommonMark plus two extensions of
 * GitHub's: tables and ~~strikethrough~~ (two tildes only, so "~5 minutes"
 * stays as written). The lint parses with more (task lists, footnotes) to
 * find them and say they are not supported; docs/course-check.md lists
 * both. */
static const char *const md_extensions[] = { "table", "strikethrough", NULL };
static const char *const md_refused_extensions[] = { "tasklist", NULL };
/* CMARK_OPT_SMART: straight quotes become curly and -- and --- dashes, in
 * the tree, so the HTML and the text part both get them. */
#define MD_OPTIONS (CMARK_OPT_VALIDATE_UTF8 | CMARK_OPT_STRIKETHROUGH_DOUBLE_TILDE | CMARK_OPT_SMART)

/* cmark-gfm parses under one lock: registering the extensions writes a
 * process-wide list (twice at once aborts), and every parse adds the
 * extensions' characters ('~') to a process-wide table when it finishes
 * and takes them out after, so a parse in another thread meanwhile misses
 * them (~~struck~~ left as written: 1,631 of 200,000 renders in 4
 * threads). Lessons are parsed once at load; system mails, one at a time
 * where they are decided (the loop, the pages' thread). */
static GMutex md_lock;

/* Parses md with md_extensions (and those named in more, if not NULL);
 * returns the document, and the parser (its extensions are the renderer's)
 * in *parser. Free both. */
static cmark_node *md_parse(const char *md, int options, const char *const *more, cmark_parser **parser)
{
    static gboolean registered;
    g_mutex_lock(&md_lock);
    if (!registered)
        cmark_gfm_core_extensions_ensure_registered();
    registered = TRUE;
    cmark_parser *p = cmark_parser_new(options);
    for (const char *const *e = md_extensions; *e; e++)
        cmark_parser_attach_syntax_extension(p, cmark_find_syntax_extension(*e));
    for (const char *const *e = more; e && *e; e++)
        cmark_parser_attach_syntax_extension(p, cmark_find_syntax_extension(*e));
    cmark_parser_feed(p, md, strlen(md));
    cmark_node *doc = cmark_parser_finish(p);
    g_mutex_unlock(&md_lock);
    *parser = p;
    return doc;
}

static gboolean md_is(cmark_node *n, const char *type)
{
    return strcmp(cmark_node_get_type_string(n), type) == 0;
}

/* Mail apps drop <style> blocks, so what the layout needs of cmark's tags
 * goes into them: an image never wider than the mail, a table with room
 * between its columns (scrolling sideways rather than widening the mail).
 * cmark escapes every '<' of the text and drops raw HTML, so each "<img "
 * or "<td" of its output is a tag it wrote. */
static const struct {
    const char *tag, *with;
} md_styles[] = {
    { "<img ", "<img style=\"max-width: 100%; height: auto; border: 0;\" " },
    { "<table>",
      "<div style=\"overflow-x: auto;\"><table style=\"border-collapse: collapse; margin: 0 0 16px;\">" },
    { "</table>", "</table></div>" },
    { "<th>", "<th style=\"padding: 4px 12px 4px 0; border-bottom: 1px solid #e4ded4; text-align: left;\">" },
    { "<th ", "<th style=\"padding: 4px 12px 4px 0; border-bottom: 1px solid #e4ded4;\" " },
    { "<td>",
      "<td style=\"padding: 4px 12px 4px 0; border-bottom: 1px solid #eeeae3; vertical-align: top;\">" },
    { "<td ",
      "<td style=\"padding: 4px 12px 4px 0; border-bottom: 1px solid #eeeae3; vertical-align: top;\" " },
};

static char *md_style(const char *html)
{
    GString *out = g_string_sized_new(strlen(html) + 256);
    for (const char *p = html; *p;) {
        size_t i = 0;
        if (*p == '<')
            while (i < G_N_ELEMENTS(md_styles) && !g_str_has_prefix(p, md_styles[i].tag))
                i++;
        if (*p != '<' || i == G_N_ELEMENTS(md_styles)) {
            g_string_append_c(out, *p++);
            continue;
        }
        g_string_append(out, md_styles[i].with);
        p += strlen(md_styles[i].tag);
    }
    return g_string_free(out, FALSE);
}

char *render_markdown(const char *md)
{
    cmark_parser *parser = NULL;
    cmark_node *doc = md_parse(md, MD_OPTIONS, NULL, &parser);
    char *html = cmark_render_html(doc, CMARK_OPT_DEFAULT, cmark_parser_get_syntax_extensions(parser));
    char *out = md_style(html);
    free(html);
    cmark_node_free(doc);
    cmark_parser_free(parser);
    return out;
}

/* The columns a reader's fixed-width font gives character c. */
static size_t md_width_char(gunichar c)
{
    if (c >= 0x20 && c < 0x7f) /* most of every lesson: no table to look up */
        return 1;
    return g_unichar_iszerowidth(c) ? 0 : g_unichar_iswide(c) ? 2 : 1;
}

/* The columns a reader's fixed-width font gives s (characters, not bytes). */
static size_t md_width(const char *s)
{
    size_t w = 0;
    for (const char *p = s; *p; p = g_utf8_next_char(p))
        w += md_width_char(g_utf8_get_char(p));
    return w;
}

/* The text of the inline nodes under n, for a table cell of the text part:
 * markup dropped, a link's URL after its text, ~~struck~~ as written. */
static void md_cell_text(cmark_node *n, GString *out)
{
    for (cmark_node *c = cmark_node_first_child(n); c; c = cmark_node_next(c)) {
        cmark_node_type t = cmark_node_get_type(c);
        if (t == CMARK_NODE_TEXT || t == CMARK_NODE_CODE || t == CMARK_NODE_HTML_INLINE) {
            for (const char *p = cmark_node_get_literal(c); p && *p; p++)
                g_string_append_c(out, (unsigned char)*p < ' ' ? ' ' : *p);
        } else if (t == CMARK_NODE_SOFTBREAK || t == CMARK_NODE_LINEBREAK) {
            g_string_append_c(out, ' ');
        } else if (t == CMARK_NODE_LINK || t == CMARK_NODE_IMAGE) {
            gsize from = out->len;
            md_cell_text(c, out);
            const char *url = cmark_node_get_url(c);
            const char *shown = url && g_str_has_prefix(url, "mailto:") ? url + 7 : url;
            if (url && *url && strcmp(out->str + from, shown) != 0)
                g_string_append_printf(out, out->len > from ? " (%s)" : "%s", url);
        } else if (md_is(c, "strikethrough")) {
            g_string_append(out, "~~");
            md_cell_text(c, out);
            g_string_append(out, "~~");
        } else {
            md_cell_text(c, out);
        }
    }
}

/* The end of the line that starts at p (CRLF, LF or CR, as cmark counts
 * lines), past its line break. */
static const char *md_next_line(const char *p)
{
    p += strcspn(p, "\r\n");
    if (*p == '\r' && p[1] == '\n')
        return p + 2;
    return *p ? p + 1 : p;
}

/* ---- the text part: plain text from the parse tree ----
 *
 * A text/plain part is read in a fixed-width font by people, not parsed:
 * no Markdown marks, paragraphs wrapped at TEXT_WIDTH columns, links as
 * numbered references listed at the end, lists with "- " or "1. ",
 * headings underlined, quotes and code indented. Fixed wrapping rather than
 * format=flowed (RFC 3676): flowed text is shown reflowed by few clients
 * and its trailing spaces and space-stuffing are mangled by many; a text
 * wrapped at 72 reads the same everywhere (docs/rendering.md). */

#define TEXT_WIDTH 72
/* However deep a list or quote nests, its text keeps this many columns. */
#define TEXT_MIN_ROOM 30
/* Inside an inline run, a space that must not break a line (between a
 * link's text and its reference number); the wrapper writes a space. */
#define TEXT_NOBREAK '\x01'

struct pt {
    GString *out;
    GPtrArray *urls; /* the numbered references, in the order first used */
};

/* Returns url as a reader can copy it: spaces and control characters
 * percent-encoded (cmark keeps them as written in <...>). g_free(). */
static char *pt_url(const char *url)
{
    GString *s = g_string_new(NULL);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            g_string_append_printf(s, "%%%02X", (unsigned char)*p);
        else
            g_string_append_c(s, *p);
    return g_string_free(s, FALSE);
}

/* The number (from 1) of url among the references, added if new. */
static guint pt_ref(struct pt *pt, const char *url)
{
    char *shown = pt_url(url);
    for (guint i = 0; i < pt->urls->len; i++)
        if (strcmp(pt->urls->pdata[i], shown) == 0) {
            g_free(shown);
            return i + 1;
        }
    g_ptr_array_add(pt->urls, shown);
    return pt->urls->len;
}

/* Appends literal to s, every control character (a CR of CRLF input, a
 * tab) as a space, so a run holds only '\n' for a hard break. */
static void pt_literal(GString *s, const char *literal)
{
    for (const char *p = literal; p && *p; p++)
        g_string_append_c(s, (unsigned char)*p < ' ' ? ' ' : *p);
}

/* The inline nodes under n as one run of text: marks dropped, code spans
 * as their text, a hard line break as '\n', a link as its text and a
 * reference "[1]" (unless its text is its address), an image as its alt
 * text in brackets with a reference. Raw HTML is dropped, as in the HTML
 * part (safe mode). */
static void pt_inline(struct pt *pt, cmark_node *n, GString *s)
{
    for (cmark_node *c = cmark_node_first_child(n); c; c = cmark_node_next(c)) {
        cmark_node_type t = cmark_node_get_type(c);
        if (t == CMARK_NODE_TEXT || t == CMARK_NODE_CODE) {
            pt_literal(s, cmark_node_get_literal(c));
        } else if (t == CMARK_NODE_SOFTBREAK) {
            g_string_append_c(s, ' ');
        } else if (t == CMARK_NODE_LINEBREAK) {
            g_string_append_c(s, '\n');
        } else if (t == CMARK_NODE_HTML_INLINE) {
            continue;
        } else if (t == CMARK_NODE_LINK || t == CMARK_NODE_IMAGE) {
            GString *text = g_string_new(NULL);
            pt_inline(pt, c, text);
            g_strstrip(text->str);
            const char *url = cmark_node_get_url(c);
            const char *bare = url && g_str_has_prefix(url, "mailto:") ? url + 7 : url;
            gboolean is_address = url && (!*text->str || !strcmp(text->str, url) || !strcmp(text->str, bare));
            if (t == CMARK_NODE_IMAGE)
                g_string_append_printf(s, "[%s]", *text->str ? text->str : "picture");
            else if (is_address) {
                char *shown = pt_url(bare);
                g_string_append(s, shown);
                g_free(shown);
            } else
                g_string_append(s, text->str);
            if (url && *url && (t == CMARK_NODE_IMAGE || !is_address))
                g_string_append_printf(s, "%c[%u]", TEXT_NOBREAK, pt_ref(pt, url));
            g_string_free(text, TRUE);
        } else if (md_is(c, "strikethrough")) {
            /* as written: the words alone would say the opposite, and ~~ is
             * how chat apps strike text too */
            g_string_append(s, "~~");
            pt_inline(pt, c, s);
            g_string_append(s, "~~");
        } else {
            pt_inline(pt, c, s); /* emphasis, strong: the words alone */
        }
    }
}

/* Returns TRUE if word is an address a reader copies whole (never broken). */
static gboolean pt_is_url(const char *word)
{
    return strstr(word, "://") || g_str_has_prefix(word, "mailto:") || g_str_has_prefix(word, "www.");
}

/* Appends prefix and line to out as one line, without trailing spaces. */
static void pt_line(GString *out, const char *prefix, const char *line)
{
    gsize from = out->len;
    g_string_append(out, prefix);
    g_string_append(out, line);
    while (out->len > from && out->str[out->len - 1] == ' ')
        g_string_truncate(out, out->len - 1);
    g_string_append_c(out, '\n');
}

/* The columns left for text on a line that starts with prefix. */
static size_t pt_room(const char *prefix)
{
    size_t taken = md_width(prefix);
    return taken + TEXT_MIN_ROOM > TEXT_WIDTH ? TEXT_MIN_ROOM : TEXT_WIDTH - taken;
}

/* Appends run (words, '\n' for a hard break) to out wrapped at TEXT_WIDTH
 * columns: the first line after first, the others after rest. A word wider
 * than the line stands alone on its own; if it is not an address and
 * cut_words, it is cut at the width (only a pasted token is that long). */
static void pt_wrap_cut(GString *out, const char *run, const char *first, const char *rest,
                        gboolean cut_words)
{
    char **lines = g_strsplit(run, "\n", -1);
    GString *line = g_string_new(NULL);
    const char *prefix = first;
    for (char **l = lines; *l; l++) {
        char **words = g_strsplit(*l, " ", -1);
        size_t used = 0;
        g_string_truncate(line, 0);
        for (char **w = words; *w; w++) {
            if (!**w)
                continue;
            g_strdelimit(*w, "\x01", ' ');
            size_t room = pt_room(prefix);
            size_t width = md_width(*w);
            if (used > 0 && used + 1 + width > room) {
                pt_line(out, prefix, line->str);
                prefix = rest;
                room = pt_room(prefix);
                g_string_truncate(line, 0);
                used = 0;
            }
            const char *word = *w;
            while (cut_words && width > room && !pt_is_url(word)) { /* cut a long word at the width */
                const char *cut = word;
                size_t cols = 0;
                while (*cut && cols + md_width_char(g_utf8_get_char(cut)) <= room) {
                    cols += md_width_char(g_utf8_get_char(cut));
                    cut = g_utf8_next_char(cut);
                }
                if (cut == word)
                    cut = g_utf8_next_char(cut);
                g_string_append_len(line, word, cut - word);
                pt_line(out, prefix, line->str);
                prefix = rest;
                room = pt_room(prefix);
                g_string_truncate(line, 0);
                word = cut;
                width = md_width(word);
            }
            if (used > 0)
                g_string_append_c(line, ' ');
            g_string_append(line, word);
            used += (used > 0) + width;
        }
        if (line->len > 0) {
            pt_line(out, prefix, line->str);
            prefix = rest;
        }
        g_strfreev(words);
    }
    g_string_free(line, TRUE);
    g_strfreev(lines);
}

static void pt_wrap(GString *out, const char *run, const char *first, const char *rest)
{
    pt_wrap_cut(out, run, first, rest, TRUE);
}

/* The cells of table t as text, row by row (n_cols each), and each
 * column's width. g_ptr_array_unref() and g_free() them. */
static GPtrArray *pt_cells(struct pt *pt, cmark_node *t, guint n_cols, size_t **width)
{
    GPtrArray *cells = g_ptr_array_new_with_free_func(g_free);
    *width = g_new0(size_t, n_cols ? n_cols : 1);
    for (cmark_node *row = cmark_node_first_child(t); row; row = cmark_node_next(row)) {
        cmark_node *cell = cmark_node_first_child(row);
        for (guint i = 0; i < n_cols; i++) {
            GString *s = g_string_new(NULL);
            if (cell) {
                pt_inline(pt, cell, s);
                cell = cmark_node_next(cell);
            }
            g_strdelimit(s->str, "\n\x01", ' ');
            g_strstrip(s->str);
            (*width)[i] = MAX((*width)[i], MAX(md_width(s->str), 1));
            g_ptr_array_add(cells, g_string_free(s, FALSE));
        }
    }
    return cells;
}

/* Table t: in aligned columns, two spaces apart, a line of dashes under the
 * header row, when that fits in TEXT_WIDTH; else each row as lines of
 * "Header: value", a blank line between rows (what a phone can show). */
static void pt_table(struct pt *pt, cmark_node *t, const char *first, const char *rest)
{
    guint n_cols = cmark_gfm_extensions_get_table_columns(t);
    if (n_cols == 0)
        return; /* no columns, no cells to lay out (and no k % n_cols below) */
    const uint8_t *align = cmark_gfm_extensions_get_table_alignments(t);
    size_t *width = NULL;
    GPtrArray *cells = pt_cells(pt, t, n_cols, &width);
    size_t total = md_width(rest);
    for (guint i = 0; i < n_cols; i++)
        total += width[i] + (i ? 2 : 0);
    GString *line = g_string_new(NULL);
    const char *prefix = first;
    if (total <= TEXT_WIDTH) {
        for (guint k = 0; k < cells->len; k++) {
            guint i = k % n_cols;
            const char *s = cells->pdata[k];
            size_t pad = width[i] - md_width(s);
            size_t before = align && align[i] == 'r' ? pad : align && align[i] == 'c' ? pad / 2 : 0;
            g_string_append_printf(line, "%s%*s%s%*s", i ? "  " : "", (int)before, "", s, (int)(pad - before),
                                   "");
            if (i + 1 < n_cols)
                continue;
            pt_line(pt->out, prefix, line->str);
            prefix = rest;
            g_string_truncate(line, 0);
            for (guint j = 0; k + 1 == n_cols && j < n_cols; j++) {
                g_string_append(line, j ? "  " : "");
                for (size_t w = 0; w < width[j]; w++)
                    g_string_append_c(line, '-');
            }
            if (line->len)
                pt_line(pt->out, prefix, line->str);
            g_string_truncate(line, 0);
        }
    } else {
        char *more = g_strconcat(rest, "  ", NULL);
        for (guint k = n_cols; k < cells->len; k++) {
            guint i = k % n_cols;
            if (i == 0 && k > n_cols)
                g_string_append_c(pt->out, '\n');
            char *run = g_strdup_printf("%s: %s", (char *)cells->pdata[i], (char *)cells->pdata[k]);
            pt_wrap(pt->out, run, prefix, more);
            prefix = rest;
            g_free(run);
        }
        g_free(more);
    }
    g_string_free(line, TRUE);
    g_free(width);
    g_ptr_array_unref(cells);
}

static void pt_block(struct pt *pt, cmark_node *n, const char *first, const char *rest);

/* The blocks under n, the first one's first line after first, every other
 * line after rest; a blank line between blocks unless tight (the items of
 * a tight list). */
static void pt_blocks(struct pt *pt, cmark_node *n, const char *first, const char *rest, gboolean tight)
{
    gboolean any = FALSE;
    for (cmark_node *c = cmark_node_first_child(n); c; c = cmark_node_next(c)) {
        gsize before = pt->out->len;
        if (any && !tight)
            g_string_append_c(pt->out, '\n');
        gsize mark = pt->out->len;
        pt_block(pt, c, any ? rest : first, rest);
        if (pt->out->len == mark) /* raw HTML, dropped: no blank line for it */
            g_string_truncate(pt->out, before);
        else
            any = TRUE;
    }
}

static void pt_list(struct pt *pt, cmark_node *list, const char *first, const char *rest)
{
    gboolean ordered = cmark_node_get_list_type(list) == CMARK_ORDERED_LIST;
    gboolean tight = cmark_node_get_list_tight(list);
    int start = cmark_node_get_list_start(list);
    int n = 0;
    for (cmark_node *c = cmark_node_first_child(list); c; c = cmark_node_next(c))
        n++;
    char *widest = g_strdup_printf("%d. ", start + MAX(n - 1, 0));
    size_t marker_width = ordered ? strlen(widest) : 2;
    int i = 0;
    for (cmark_node *item = cmark_node_first_child(list); item; item = cmark_node_next(item), i++) {
        if (i > 0 && !tight)
            g_string_append_c(pt->out, '\n');
        char *marker = ordered ? g_strdup_printf("%d.", start + i) : g_strdup("-");
        char *item_first = g_strdup_printf("%s%-*s", i ? rest : first, (int)marker_width, marker);
        char *item_rest = g_strdup_printf("%s%*s", rest, (int)marker_width, "");
        gsize mark = pt->out->len;
        pt_blocks(pt, item, item_first, item_rest, tight);
        if (pt->out->len == mark) /* an empty item still shows its marker */
            pt_line(pt->out, item_first, "");
        g_free(item_rest);
        g_free(item_first);
        g_free(marker);
    }
    g_free(widest);
}

static void pt_block(struct pt *pt, cmark_node *n, const char *first, const char *rest)
{
    cmark_node_type t = cmark_node_get_type(n);
    if (t == CMARK_NODE_PARAGRAPH || t == CMARK_NODE_HEADING) {
        GString *run = g_string_new(NULL);
        pt_inline(pt, n, run);
        gsize from = pt->out->len;
        pt_wrap(pt->out, run->str, first, rest);
        if (t == CMARK_NODE_HEADING) { /* underlined as wide as its longest line */
            size_t wide = 0;
            char **lines = g_strsplit(pt->out->str + from, "\n", -1);
            for (char **l = lines; *l; l++)
                wide = MAX(wide, md_width(*l) - MIN(md_width(*l), md_width(l == lines ? first : rest)));
            g_strfreev(lines);
            char *rule = g_strnfill(MAX(wide, 3), cmark_node_get_heading_level(n) == 1 ? '=' : '-');
            pt_line(pt->out, rest, rule);
            g_free(rule);
        }
        g_string_free(run, TRUE);
    } else if (t == CMARK_NODE_CODE_BLOCK) {
        char *first_code = g_strconcat(first, "    ", NULL), *rest_code = g_strconcat(rest, "    ", NULL);
        char **lines = g_strsplit(cmark_node_get_literal(n) ? cmark_node_get_literal(n) : "", "\n", -1);
        guint count = g_strv_length(lines);
        if (count > 0 && !*lines[count - 1])
            count--;
        for (guint i = 0; i < count; i++) {
            GString *code = g_string_new(NULL);
            pt_literal(code, lines[i]); /* a CR of CRLF, a tab: spaces */
            pt_line(pt->out, i ? rest_code : first_code, code->str);
            g_string_free(code, TRUE);
        }
        g_strfreev(lines);
        g_free(first_code);
        g_free(rest_code);
    } else if (t == CMARK_NODE_BLOCK_QUOTE) {
        char *first_quote = g_strconcat(first, "    ", NULL), *rest_quote = g_strconcat(rest, "    ", NULL);
        pt_blocks(pt, n, first_quote, rest_quote, FALSE);
        g_free(first_quote);
        g_free(rest_quote);
    } else if (t == CMARK_NODE_LIST) {
        pt_list(pt, n, first, rest);
    } else if (t == CMARK_NODE_THEMATIC_BREAK) {
        pt_line(pt->out, first, "~");
    } else if (md_is(n, "table")) {
        pt_table(pt, n, first, rest);
    } else if (t != CMARK_NODE_HTML_BLOCK) {
        pt_blocks(pt, n, first, rest, FALSE);
    }
}

char *render_markdown_text(const char *md)
{
    cmark_parser *parser = NULL;
    cmark_node *doc = md_parse(md, MD_OPTIONS, NULL, &parser);
    struct pt pt = { g_string_sized_new(strlen(md) + 256), g_ptr_array_new_with_free_func(g_free) };
    pt_blocks(&pt, doc, "", "", FALSE);
    if (pt.urls->len > 0)
        g_string_append_c(pt.out, '\n');
    for (guint i = 0; i < pt.urls->len; i++) { /* a long address alone on the line after its number */
        char *ref = g_strdup_printf("[%u]", i + 1);
        const char *url = pt.urls->pdata[i];
        if (strlen(ref) + 1 + md_width(url) <= TEXT_WIDTH) {
            char *both = g_strconcat(ref, " ", url, NULL);
            pt_line(pt.out, "", both);
            g_free(both);
        } else {
            pt_line(pt.out, "", ref);
            pt_line(pt.out, "", url);
        }
        g_free(ref);
    }
    while (pt.out->len > 0 && pt.out->str[pt.out->len - 1] == '\n')
        g_string_truncate(pt.out, pt.out->len - 1);
    g_ptr_array_unref(pt.urls);
    cmark_node_free(doc);
    cmark_parser_free(parser);
    return g_string_free(pt.out, FALSE);
}

char *render_text_wrap(const char *text)
{
    GString *out = g_string_sized_new(strlen(text) + 64);
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, "\n");
        char *line = g_strndup(p, len);
        if (md_width(line) <= TEXT_WIDTH) {
            g_string_append(out, line);
            g_string_append_c(out, '\n');
        } else {
            size_t indent = strspn(line, " ");
            char *prefix = g_strndup(line, indent);
            g_strdelimit(line, "\x01", ' ');
            pt_wrap_cut(out, line + indent, prefix, prefix, FALSE); /* a value's long word is an address */
            g_free(prefix);
        }
        g_free(line);
        p += len;
        if (*p == '\n')
            p++;
        else
            g_string_truncate(out, out->len - 1); /* the last line had no line break */
    }
    return g_string_free(out, FALSE);
}

/* ---- the lint of lessons ---- */

/* Line of the lesson file where node n starts (inline nodes without a
 * position take the nearest block's). */
static int lint_line(const struct lesson *l, cmark_node *n)
{
    while (n && cmark_node_get_start_line(n) == 0)
        n = cmark_node_parent(n);
    return l->body_line + (n ? cmark_node_get_start_line(n) : 1) - 1;
}

/* The Markdown for an HTML tag an author may have reached for, or NULL. */
static const char *lint_html_hint(const char *tag)
{
    static const struct {
        const char *tags, *hint;
    } hints[] = {
        { " b strong ", "write **bold** in Markdown" },
        { " i em ", "write *emphasis* in Markdown" },
        { " a ", "write [text](https://...) in Markdown" },
        { " h1 h2 h3 h4 h5 h6 ", "start the line with # for a heading" },
        { " ul ol li ", "start each line with - for a list" },
        { " code pre ", "write `code` in Markdown" },
        { " p br ", "a blank line starts a new paragraph" },
    };
    char *key = g_strdup_printf(" %s ", tag);
    const char *hint = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(hints) && !hint; i++)
        if (*tag && strstr(hints[i].tags, key))
            hint = hints[i].hint;
    g_free(key);
    return hint;
}

/* The first tag of raw HTML (as written, at most 60 bytes) in *shown, its
 * lower-case name in *name; returns TRUE for a closing tag. g_free() both. */
static gboolean lint_html_tag(const char *html, char **shown, char **name)
{
    const char *end = strchr(html, '>');
    size_t len = end ? (size_t)(end - html) + 1 : strcspn(html, "\n");
    if (len > 60)
        len = 60;
    *shown = g_utf8_make_valid(html, (gssize)len);
    const char *p = html + 1;
    gboolean closing = *p == '/';
    p += closing;
    size_t n = 0;
    while (g_ascii_isalnum(p[n]))
        n++;
    *name = g_ascii_strdown(p, (gssize)n);
    return closing;
}

/* Raw HTML node n of lesson l at line: one problem per tag, naming it; the
 * closing tag of one already reported (in open, the names of the inline
 * tags reported and not closed yet) is not reported again. */
static void lint_html(const struct lesson *l, cmark_node *n, int line, GPtrArray *open, GPtrArray *problems)
{
    char *shown = NULL, *name = NULL;
    gboolean closing = lint_html_tag(cmark_node_get_literal(n), &shown, &name);
    gboolean inline_tag = cmark_node_get_type(n) == CMARK_NODE_HTML_INLINE;
    guint at = 0;
    if (inline_tag && closing && g_ptr_array_find_with_equal_func(open, name, g_str_equal, &at)) {
        g_ptr_array_remove_index(open, at);
    } else {
        const char *hint = lint_html_hint(name);
        g_ptr_array_add(problems,
                        g_strdup_printf("%s:%d: raw HTML is not allowed in a lesson: '%s'%s%s%s", l->path,
                                        line, shown, hint ? " (" : "", hint ? hint : "", hint ? ")" : ""));
        if (inline_tag && !closing && !g_str_has_suffix(shown, "/>") && *name) {
            g_ptr_array_add(open, name);
            name = NULL;
        }
    }
    g_free(name);
    g_free(shown);
}

/* Every '{{' of lesson l, each naming the placeholder it starts. */
static void lint_braces(const struct lesson *l, GPtrArray *problems)
{
    int line = l->body_line;
    const char *from = l->body;
    for (const char *b = strstr(from, "{{"); b; b = strstr(from, "{{")) {
        for (; from < b; from++)
            line += *from == '\n';
        size_t len = strcspn(b, "\n");
        const char *close = g_strstr_len(b, (gssize)len, "}}");
        len = close ? (size_t)(close - b) + 2 : MIN(len, 20);
        char *shown = g_utf8_make_valid(b, (gssize)MIN(len, 60));
        g_ptr_array_add(
            problems, g_strdup_printf("%s:%d: '{{' is not allowed in a lesson: '%s' (placeholders belong in "
                                      "templates)",
                                      l->path, line, shown));
        g_free(shown);
        from = b + 2;
    }
}

static void lint_link(const struct lesson *l, cmark_node *n, int line, GPtrArray *problems)
{
    const char *url = cmark_node_get_url(n);
    if (url && !g_str_has_prefix(url, "https://") && !g_str_has_prefix(url, "http://") &&
        !g_str_has_prefix(url, "mailto:"))
        g_ptr_array_add(problems,
                        g_strdup_printf("%s:%d: link '%s' must be an https://, http:// or mailto: URL",
                                        l->path, line, url));
}

/* What an image's URL is, for the message that refuses it. */
static const char *lint_image_hint(const char *url)
{
    if (g_ascii_strncasecmp(url, "http://", 7) == 0)
        return "write https://; mail apps block or warn about pictures over http";
    if (g_ascii_strncasecmp(url, "data:", 5) == 0)
        return "most mail apps drop data: pictures; put the picture on a web server";
    if (!strchr(url, ':'))
        return "a lesson is sent without its files; put the picture on a web server and give its whole "
               "https:// URL";
    return "put the picture on a web server and give its https:// URL";
}

/* Image n: over https, with alt text (what the reader gets when pictures
 * are off, and a screen reader reads). */
static void lint_image(const struct lesson *l, cmark_node *n, int line, GPtrArray *problems)
{
    const char *url = cmark_node_get_url(n);
    const char *u = url ? url : "";
    size_t len = strlen(u);
    const char *cut = u + MIN(len, 60);
    while (cut > u && (*cut & 0xc0) == 0x80) /* not inside a character */
        cut--;
    char *shown = g_strdup_printf("%.*s%s", (int)(cut - u), u, *cut ? "..." : "");
    if (len <= 8 || g_ascii_strncasecmp(u, "https://", 8) != 0)
        g_ptr_array_add(problems, g_strdup_printf("%s:%d: image '%s' must be an https:// URL (%s)", l->path,
                                                  line, shown, lint_image_hint(u)));
    GString *alt = g_string_new(NULL);
    md_cell_text(n, alt);
    if (!*g_strstrip(alt->str))
        g_ptr_array_add(problems,
                        g_strdup_printf("%s:%d: image '%s' has no alt text: write ![what it shows](%s)",
                                        l->path, line, shown, shown));
    g_string_free(alt, TRUE);
    g_free(shown);
}

/* The source text at line (of the lesson text) from column col up to the
 * first ']' (at most 40 bytes), for quoting a construct. g_free(). */
static char *lint_source(const struct lesson *l, int line, int col)
{
    const char *p = l->body;
    for (int i = 1; i < line && *p; i++)
        p = md_next_line(p);
    size_t len = strcspn(p, "\r\n");
    if (col < 1 || (size_t)col > len)
        col = 1;
    p += col - 1;
    len = strcspn(p, "]\r\n");
    len += p[len] == ']';
    return g_utf8_make_valid(p, (gssize)MIN(len, 40));
}

/* Constructs the renderer does not support (the lint parses them only to
 * find them): task lists and footnotes. */
static gboolean lint_refused(const struct lesson *l, cmark_node *n, int line, GPtrArray *problems)
{
    cmark_node_type t = cmark_node_get_type(n);
    const char *what = "a footnote", *hint = "write the note into the text, or as a paragraph at the end";
    char *shown = NULL;
    if (md_is(n, "tasklist")) {
        what = "a task list item";
        hint = "mail apps cannot tick boxes: write a plain list ('- ...')";
        shown = g_strdup(cmark_gfm_extensions_get_tasklist_item_checked(n) ? "[x]" : "[ ]");
    } else if (t == CMARK_NODE_FOOTNOTE_REFERENCE) {
        shown = lint_source(l, cmark_node_get_start_line(n), cmark_node_get_start_column(n));
    } else if (t == CMARK_NODE_FOOTNOTE_DEFINITION) {
        what = "a footnote's text";
        shown = lint_source(l, cmark_node_get_start_line(n), 1);
    } else {
        return FALSE;
    }
    g_ptr_array_add(problems, g_strdup_printf("%s:%d: %s is not supported in a lesson: '%s' (%s)", l->path,
                                              line, what, shown, hint));
    g_free(shown);
    return TRUE;
}

/* The Markdown of lesson l, in the order of its lines. */
static void lint_lesson(const struct lesson *l, GPtrArray *problems)
{
    cmark_parser *parser = NULL;
    cmark_node *doc = md_parse(l->body, MD_OPTIONS | CMARK_OPT_FOOTNOTES, md_refused_extensions, &parser);
    cmark_iter *it = cmark_iter_new(doc);
    GPtrArray *open = g_ptr_array_new_with_free_func(g_free);
    cmark_event_type ev;
    while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
        cmark_node *n = cmark_iter_get_node(it);
        if (ev != CMARK_EVENT_ENTER)
            continue;
        cmark_node_type t = cmark_node_get_type(n);
        if (t == CMARK_NODE_HTML_BLOCK || t == CMARK_NODE_HTML_INLINE)
            lint_html(l, n, lint_line(l, n), open, problems);
        else if (t == CMARK_NODE_LINK)
            lint_link(l, n, lint_line(l, n), problems);
        else if (t == CMARK_NODE_IMAGE)
            lint_image(l, n, lint_line(l, n), problems);
        else
            lint_refused(l, n, lint_line(l, n), problems);
    }
    g_ptr_array_unref(open);
    cmark_iter_free(it);
    cmark_node_free(doc);
    cmark_parser_free(parser);
    lint_braces(l, problems);
}

gboolean render_lint_course(const struct course *c, GPtrArray *problems)
{
    guint before = problems->len;
    for (int i = 0; i < c->n_lessons; i++)
        if (c->lessons[i].body) /* NULL: a broken lesson of a course read for the check */
            lint_lesson(&c->lessons[i], problems);
    return problems->len == before;
}
