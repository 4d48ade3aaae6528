/* course.c - owns reading and validating a course folder:
 *   courses/<slug>/course.ini         [course] title, schedule, time, ...
 *   courses/<slug>/lessons/NN-x.md    "Subject: ..." header, blank line, Markdown
 *   courses/<slug>/templates/         per-course templates (accepted here)
 * Reading goes on past a problem and collects every one, each naming the
 * file and, where there is one, the line and the offending text, so that
 * `coursectl course check` lists them all at once; course_load() refuses a
 * course with any fatal problem (a daemon must not run half a course). A
 * course that loads is complete: lessons are numbered 01..N without gaps
 * and the schedule yields slots. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "course.h"
#include "address.h"
#include "config.h"
#include "error.h"
#include "lang.h"

#define BOM "\xef\xbb\xbf"

static const char *course_keys[] = {
    "title",       "description",   "sender",       "sender_name", "source",           "schedule",
    "time",        "timezone",      "first_within", "allow_next",  "on_insert_behind", "completed_get_new",
    "next_course", "complete_mail", "language",     "sign_off",    "replies_to",       NULL
};

/* What a course folder may hold besides hidden files. */
static const char *folder_entries[] = { "course.ini", "lessons", "templates", NULL };

gboolean course_slug_valid(const char *slug)
{
    if (!slug || !*slug || strlen(slug) > 64 || slug[0] == '-')
        return FALSE;
    for (const char *p = slug; *p; p++)
        if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && *p != '-')
            return FALSE;
    return TRUE;
}

static void lesson_clear(struct lesson *l)
{
    g_free(l->slug);
    g_free(l->path);
    g_free(l->subject);
    g_free(l->body);
    g_free(l->html);
    g_free(l->text);
}

void course_free(struct course *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_lessons; i++)
        lesson_clear(&c->lessons[i]);
    g_free(c->lessons);
    g_free(c->slug);
    g_free(c->dir);
    g_free(c->title);
    g_free(c->description);
    g_free(c->sender);
    g_free(c->sender_name);
    g_free(c->sign_off);
    g_free(c->next_course);
    g_free(c->language);
    g_free(c->replies_to);
    g_free(c->source);
    g_free(c->schedule);
    g_free(c->time);
    g_free(c->tz);
    g_free(c);
}

/* ---- problems ---- */

static void problem_free(gpointer data)
{
    struct course_problem *p = data;
    g_free(p->file);
    g_free(p->message);
    g_free(p);
}

GPtrArray *course_problems_new(void)
{
    return g_ptr_array_new_with_free_func(problem_free);
}

static void problem_addv(GPtrArray *problems, gboolean fatal, const char *file, int line, const char *fmt,
                         va_list ap) G_GNUC_PRINTF(5, 0);

static void problem_addv(GPtrArray *problems, gboolean fatal, const char *file, int line, const char *fmt,
                         va_list ap)
{
    struct course_problem *p = g_new0(struct course_problem, 1);
    p->file = g_strdup(file ? file : "");
    p->line = line;
    p->fatal = fatal;
    p->message = g_strdup_vprintf(fmt, ap);
    g_ptr_array_add(problems, p);
}

void course_problem_add(GPtrArray *problems, gboolean fatal, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_addv(problems, fatal, file, line, fmt, ap);
    va_end(ap);
}

struct sort_order {
    const char *dir;
    char *ini;
    char *lessons;
};

/* 0 the folder, 1 course.ini, 2 lessons/ and what is in it, 3 the rest. */
static int file_rank(const char *file, const struct sort_order *o)
{
    if (!strcmp(file, o->dir))
        return 0;
    if (!strcmp(file, o->ini))
        return 1;
    size_t n = strlen(o->lessons);
    if (!strncmp(file, o->lessons, n) && (file[n] == '\0' || file[n] == G_DIR_SEPARATOR))
        return 2;
    return 3;
}

static int problem_cmp(gconstpointer a, gconstpointer b, gpointer data)
{
    const struct course_problem *x = *(struct course_problem *const *)a;
    const struct course_problem *y = *(struct course_problem *const *)b;
    int rx = file_rank(x->file, data), ry = file_rank(y->file, data);
    if (rx != ry)
        return rx - ry;
    int c = strcmp(x->file, y->file);
    if (c)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

void course_problems_sort(GPtrArray *problems, const char *dir)
{
    struct sort_order o = { dir, g_build_filename(dir, "course.ini", NULL),
                            g_build_filename(dir, "lessons", NULL) };
    g_ptr_array_sort_with_data(problems, problem_cmp, &o); /* stable since GLib 2.32 */
    g_free(o.ini);
    g_free(o.lessons);
}

char *course_problem_text(const struct course_problem *p)
{
    if (!*p->file)
        return g_strdup(p->message);
    if (p->line > 0)
        return g_strdup_printf("%s:%d: %s", p->file, p->line, p->message);
    return g_strdup_printf("%s: %s", p->file, p->message);
}

/* The fatal problems, one a line, or NULL if there is none. g_free(). */
static char *fatal_text(GPtrArray *problems)
{
    GString *s = NULL;
    for (guint i = 0; i < problems->len; i++) {
        const struct course_problem *p = problems->pdata[i];
        if (!p->fatal)
            continue;
        char *t = course_problem_text(p);
        if (!s)
            s = g_string_new(t);
        else
            g_string_append_printf(s, "\n%s", t);
        g_free(t);
    }
    return s ? g_string_free(s, FALSE) : NULL;
}

/* ---- the loader: one course being read ---- */

struct loader {
    struct course *c;
    GPtrArray *problems; /* this course's, sorted at the end */
    char *ini;           /* path of course.ini */
    GKeyFile *kf;        /* course.ini without the lines that have a problem */
    GHashTable *lines;   /* key of [course] -> its line (the last: GKeyFile keeps that value) */
    int course_line;     /* line of [course], 0 if there is none */
};

static void bad(struct loader *ld, const char *file, int line, const char *fmt, ...) G_GNUC_PRINTF(4, 5);
static void unused(struct loader *ld, const char *file, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* A fatal problem. */
static void bad(struct loader *ld, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_addv(ld->problems, TRUE, file, line, fmt, ap);
    va_end(ap);
}

/* A file coursed does not use: reported, not fatal. */
static void unused(struct loader *ld, const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_addv(ld->problems, FALSE, file, 0, fmt, ap);
    va_end(ap);
}

/* Line (1-based) of key in course.ini, or of [course] when the key is not
 * there, or 1. */
static int ini_line(const struct loader *ld, const char *key)
{
    int line = GPOINTER_TO_INT(g_hash_table_lookup(ld->lines, key));
    return line ? line : MAX(ld->course_line, 1);
}

/* Offending text as quoted in a message: at most 60 characters. g_free(). */
static char *excerpt(const char *s)
{
    if (g_utf8_strlen(s, -1) <= 60)
        return g_strdup(s);
    char *head = g_utf8_substring(s, 0, 57);
    char *out = g_strconcat(head, "...", NULL);
    g_free(head);
    return out;
}

/* Line (1-based) of the first byte of text that is not UTF-8 or is NUL, or
 * 0 if text is valid UTF-8. */
static int bad_utf8_line(const char *text, gsize len)
{
    const char *end = NULL;
    if (g_utf8_validate(text, (gssize)len, &end)) /* with a length, a NUL is invalid too */
        return 0;
    int line = 1;
    for (const char *p = text; p < end; p++)
        line += *p == '\n';
    return line;
}

/* Reads path into *text (a byte-order mark taken off), or FALSE with the
 * problem reported. */
static gboolean read_text(struct loader *ld, const char *path, char **text, gsize *len)
{
    GError *e = NULL;
    if (!g_file_get_contents(path, text, len, &e)) {
        bad(ld, path, 0, "%s", e->message);
        g_error_free(e);
        return FALSE;
    }
    if (*len >= 3 && !memcmp(*text, BOM, 3)) {
        memmove(*text, *text + 3, *len - 3 + 1);
        *len -= 3;
    }
    int line = bad_utf8_line(*text, *len);
    if (line) {
        bad(ld, path, line, "not valid UTF-8 text");
        g_free(*text);
        *text = NULL;
        return FALSE;
    }
    return TRUE;
}

/* ---- the folder ---- */

/* The folder's name, and what it holds besides course.ini, lessons/ and
 * templates/. */
static void folder_check(struct loader *ld)
{
    const struct course *c = ld->c;
    if (!course_slug_valid(c->slug))
        bad(ld, c->dir, 0, "course folder name '%s' may use only a-z, 0-9 and '-'", c->slug);
    GDir *d = g_dir_open(c->dir, 0, NULL);
    if (!d)
        return; /* reading course.ini says why */
    const char *name;
    while ((name = g_dir_read_name(d))) {
        if (name[0] == '.' || g_strv_contains(folder_entries, name))
            continue;
        char *path = g_build_filename(c->dir, name, NULL);
        unused(ld, path, "%s coursed does not use: a course folder holds course.ini, lessons/ and templates/",
               g_file_test(path, G_FILE_TEST_IS_DIR) ? "a folder" : "a file");
        g_free(path);
    }
    g_dir_close(d);
}

/* ---- course.ini: its lines ---- */

enum section { IN_NONE, IN_COURSE, IN_OTHER };

/* Returns NULL if GKeyFile reads the one line s (a key = value line), else
 * its message. g_free(). */
static char *keyfile_line_error(const char *s)
{
    char *text = g_strconcat("[x]\n", s, "\n", NULL);
    GKeyFile *kf = g_key_file_new();
    GError *e = NULL;
    char *msg = NULL;
    if (!g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &e)) {
        msg = g_strdup(e->message);
        g_error_free(e);
    }
    g_key_file_free(kf);
    g_free(text);
    return msg;
}

/* A "[name]" line; returns FALSE if GKeyFile must not see it. */
static gboolean ini_group_line(struct loader *ld, const char *s, int line, enum section *in)
{
    size_t n = strlen(s);
    if (n < 3 || s[n - 1] != ']' || strpbrk(s + 1, "[]") != s + n - 1) {
        bad(ld, ld->ini, line, "'%s' is not a [section] line", s);
        return FALSE;
    }
    char *name = g_strndup(s + 1, n - 2);
    if (!strcmp(name, "course")) {
        *in = IN_COURSE;
        if (!ld->course_line)
            ld->course_line = line;
    } else {
        *in = IN_OTHER;
        bad(ld, ld->ini, line, "unknown section [%s] (course.ini has one section, [course])", name);
    }
    g_free(name);
    return TRUE;
}

/* A "key = value" line; returns FALSE if GKeyFile must not see it. */
static gboolean ini_key_line(struct loader *ld, const char *s, int line, enum section in)
{
    const char *eq = strchr(s, '=');
    char *text = excerpt(s), *msg = NULL;
    gboolean keep = FALSE;
    if (*s == ';')
        bad(ld, ld->ini, line, "'%s': a comment in course.ini starts with #", text);
    else if (!eq || eq == s)
        bad(ld, ld->ini, line, "'%s' is not a 'key = value' line, a [section] or a # comment", text);
    else if (in == IN_NONE)
        bad(ld, ld->ini, line, "'%s' comes before the [course] line", text);
    else if ((msg = keyfile_line_error(s)))
        bad(ld, ld->ini, line, "'%s': %s", text, msg);
    else
        keep = TRUE;
    if (keep && in == IN_COURSE) {
        char *key = g_strstrip(g_strndup(s, (gsize)(eq - s)));
        int before = GPOINTER_TO_INT(g_hash_table_lookup(ld->lines, key));
        if (!g_strv_contains(course_keys, key))
            bad(ld, ld->ini, line, "unknown key '%s'", key);
        else if (before)
            bad(ld, ld->ini, line, "'%s' is set twice (also on line %d); keep one", key, before);
        g_hash_table_replace(ld->lines, key, GINT_TO_POINTER(line));
    }
    g_free(msg);
    g_free(text);
    return keep;
}

/* Every line of course.ini: the problems of its structure are reported
 * with their line, and the lines GKeyFile would refuse are left out of
 * what it is given (blank lines keep the numbering). g_free(). */
static char *ini_scan(struct loader *ld, const char *text)
{
    GString *kept = g_string_sized_new(strlen(text));
    enum section in = IN_NONE;
    char **lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        char *s = g_strstrip(g_strdup(lines[i]));
        gboolean keep = TRUE;
        if (*s == '[')
            keep = ini_group_line(ld, s, i + 1, &in);
        else if (*s && *s != '#')
            keep = ini_key_line(ld, s, i + 1, in);
        g_string_append_printf(kept, "%s\n", keep ? lines[i] : "");
        g_free(s);
    }
    g_strfreev(lines);
    return g_string_free(kept, FALSE);
}

/* Reads course.ini into ld->kf. If the file cannot be read or has no
 * [course], ld->course_line stays 0: there are no keys, and none is
 * reported missing. */
static void ini_load(struct loader *ld)
{
    char *text = NULL;
    gsize len = 0;
    if (!read_text(ld, ld->ini, &text, &len))
        return;
    char *kept = ini_scan(ld, text);
    GError *e = NULL;
    gboolean ok = g_key_file_load_from_data(ld->kf, kept, (gsize)-1, G_KEY_FILE_NONE, &e);
    if (!ok) { /* not expected: the lines GKeyFile refuses are left out */
        bad(ld, ld->ini, 1, "%s", e->message);
        g_error_free(e);
        ld->course_line = 0;
    } else if (!ld->course_line) {
        bad(ld, ld->ini, 1, "missing section [course]");
    }
    g_free(kept);
    g_free(text);
}

/* ---- course.ini: each key ---- */

/* Returns the value of key, stripped, or NULL if it is absent, empty or
 * cannot be read (a problem; and a missing required key is one). g_free(). */
static char *ini_get(struct loader *ld, const char *key, gboolean required)
{
    GError *e = NULL;
    char *v = NULL;
    if (g_key_file_has_key(ld->kf, "course", key, NULL))
        v = g_key_file_get_string(ld->kf, "course", key, &e);
    if (e) { /* the file is UTF-8: this is a backslash escape GLib does not know */
        char *raw = g_key_file_get_value(ld->kf, "course", key, NULL);
        bad(ld, ld->ini, ini_line(ld, key),
            "%s '%s': a backslash starts an escape (\\s \\n \\t \\r); write \\\\ for a backslash", key, raw);
        g_free(raw);
        g_free(v); /* GLib may return a value with the error */
        g_error_free(e);
        return NULL;
    }
    if (v && !*g_strstrip(v))
        g_clear_pointer(&v, g_free);
    if (!v && required && ld->course_line) /* no [course] at all is one problem */
        bad(ld, ld->ini, ini_line(ld, key), "missing value for '%s'", key);
    return v;
}

/* The texts: title (required, one line), description, source, the
 * sender's name (default the title). */
static void check_texts(struct loader *ld)
{
    struct course *c = ld->c;
    c->title = ini_get(ld, "title", TRUE);
    for (const char *p = c->title; p && *p; p++)
        if ((unsigned char)*p < 0x20) {
            bad(ld, ld->ini, ini_line(ld, "title"), "title has control characters");
            break;
        }
    if (!c->title)
        c->title = g_strdup("");
    c->description = ini_get(ld, "description", FALSE);
    if (!c->description)
        c->description = g_strdup("");
    c->source = ini_get(ld, "source", FALSE);
    if (!c->source)
        c->source = g_strdup("");
    c->sender_name = ini_get(ld, "sender_name", FALSE);
    if (!c->sender_name)
        c->sender_name = g_strdup(c->title);
    c->sign_off = ini_get(ld, "sign_off", FALSE);
    if (!c->sign_off)
        c->sign_off = g_strdup(c->sender_name);
}

/* The From address: a bare address, default <slug>@<domain>. */
static void check_sender(struct loader *ld, const char *domain)
{
    struct course *c = ld->c;
    c->sender = ini_get(ld, "sender", FALSE);
    if (!c->sender)
        c->sender = g_strdup_printf("%s@%s", c->slug, domain);
    else if (!strchr(c->sender, '@') || strpbrk(c->sender, " <>\""))
        bad(ld, ld->ini, ini_line(ld, "sender"),
            "sender '%s' is not a bare address (the name goes in sender_name)", c->sender);
}

/* replies_to: where readers' notes are forwarded (docs/notes.md); a
 * real address, normalised, or none (the notes are kept for the operator). */
static void check_replies_to(struct loader *ld)
{
    struct course *c = ld->c;
    char *v = ini_get(ld, "replies_to", FALSE);
    if (!v)
        return;
    GError *e = NULL;
    c->replies_to = strpbrk(v, " <>\"") ? NULL : address_normalize(v, &e);
    if (!c->replies_to)
        bad(ld, ld->ini, ini_line(ld, "replies_to"), "replies_to '%s' is not a bare address%s%s", v,
            e ? ": " : "", e ? e->message : "");
    g_clear_error(&e);
    g_free(v);
}

/* time, timezone and schedule: each is checked on its own, so that a bad
 * zone or time does not hide a bad schedule. */
static void check_pace(struct loader *ld)
{
    struct course *c = ld->c;
    c->time = ini_get(ld, "time", TRUE);
    c->tz = ini_get(ld, "timezone", FALSE);
    c->schedule = ini_get(ld, "schedule", TRUE);
    if (!c->tz)
        c->tz = g_strdup("UTC");
    c->rule.rrule = c->schedule;
    c->rule.tz = c->tz;
    if (c->time && !pace_parse_time(c->time, &c->rule.hour, &c->rule.minute)) {
        bad(ld, ld->ini, ini_line(ld, "time"), "time '%s' must be HH:MM (24-hour)", c->time);
        c->rule.hour = c->rule.minute = 0;
    }
    GError *e = NULL;
    struct pace_rule probe = c->rule;
    if (!pace_tz_valid(c->tz)) {
        probe.tz = "UTC";
        if (!pace_check(&c->rule, &e)) /* says which zone */
            bad(ld, ld->ini, ini_line(ld, "timezone"), "%s", e->message);
        g_clear_error(&e);
    }
    if (c->schedule && !pace_check(&probe, &e)) {
        bad(ld, ld->ini, ini_line(ld, "schedule"), "%s", e->message);
        g_error_free(e);
    }
}

static void check_first_within(struct loader *ld)
{
    char *fw = ini_get(ld, "first_within", FALSE);
    if (fw && !config_parse_duration(fw, &ld->c->first_within))
        bad(ld, ld->ini, ini_line(ld, "first_within"), "first_within '%s' must be a duration like 24h", fw);
    g_free(fw);
}

/* The true/false keys, each with its default. */
static void check_flags(struct loader *ld)
{
    struct course *c = ld->c;
    const struct {
        const char *key;
        gboolean *field;
        gboolean dflt;
    } flags[] = {
        { "allow_next", &c->allow_next, FALSE },
        { "completed_get_new", &c->completed_get_new, FALSE },
        { "complete_mail", &c->complete_mail, TRUE },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        *flags[i].field = flags[i].dflt;
        char *v = ini_get(ld, flags[i].key, FALSE);
        if (v && (!strcmp(v, "true") || !strcmp(v, "false")))
            *flags[i].field = !strcmp(v, "true");
        else if (v)
            bad(ld, ld->ini, ini_line(ld, flags[i].key), "%s must be true or false, not '%s'", flags[i].key,
                v);
        g_free(v);
    }
}

/* next_course: the slug of another course (that it is loaded is
 * course_check_links' question). */
static void check_next_course(struct loader *ld)
{
    struct course *c = ld->c;
    char *nc = ini_get(ld, "next_course", FALSE);
    c->next_course_line = ini_line(ld, "next_course");
    if (nc && (!course_slug_valid(nc) || !strcmp(nc, c->slug))) {
        bad(ld, ld->ini, c->next_course_line, "next_course '%s' must be the slug of another course", nc);
        g_clear_pointer(&nc, g_free);
    }
    c->next_course = nc;
}

/* language: a BCP 47 tag (syntax only; whether templates/strings/ has its
 * words is for the snapshot and the check, which know that folder).
 * Default en. */
static void check_language(struct loader *ld)
{
    struct course *c = ld->c;
    char *tag = ini_get(ld, "language", FALSE);
    c->language_line = ini_line(ld, "language");
    if (tag && !lang_tag_valid(tag)) {
        bad(ld, ld->ini, c->language_line,
            "language '%s' is not a language tag: write one like en, de, fr or de-AT (BCP 47)", tag);
        g_clear_pointer(&tag, g_free);
    }
    c->language = tag ? tag : g_strdup("en");
}

static void check_on_insert_behind(struct loader *ld)
{
    char *oib = ini_get(ld, "on_insert_behind", FALSE);
    if (oib && strcmp(oib, "skip") != 0 && strcmp(oib, "send") != 0)
        bad(ld, ld->ini, ini_line(ld, "on_insert_behind"), "on_insert_behind must be skip or send, not '%s'",
            oib);
    ld->c->insert_behind_send = oib && !strcmp(oib, "send");
    g_free(oib);
}

/* ---- lessons/ ---- */

/* A name in lessons/ that is not NN-slug.md. One that looks meant as a
 * lesson (NN-..., or .md in any case) is a lesson the course would lack:
 * fatal. Anything else (notes.txt, an editor's backup~) is only reported. */
static void lesson_stray(struct loader *ld, const char *ldir, const char *name)
{
    char *path = g_build_filename(ldir, name, NULL);
    char *lower = g_ascii_strdown(name, -1);
    if (g_file_test(path, G_FILE_TEST_IS_DIR))
        unused(ld, path, "a folder coursed does not use: lessons/ holds NN-slug.md files");
    else if (!g_str_has_suffix(name, "~") &&
             ((g_ascii_isdigit(name[0]) && g_ascii_isdigit(name[1])) || strstr(lower, ".md"))) {
        /* the name it was meant to have: up to its .md (in any case), or
         * with .md for its extension */
        const char *md = strstr(lower, ".md");
        const char *dot = strrchr(name, '.');
        size_t keep = md ? (size_t)(md - lower) : dot && dot > name ? (size_t)(dot - name) : strlen(name);
        char *meant = g_strdup_printf("%.*s.md", (int)keep, name);
        bad(ld, path, 0, "not read as a lesson: lesson files are named NN-slug.md (rename it to %s?)", meant);
        g_free(meant);
    } else
        unused(ld, path, "not a lesson, and coursed does not use it: lesson files are named NN-slug.md");
    g_free(lower);
    g_free(path);
}

static int name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Returns the names of the lesson files (*.md) of ldir, sorted, reporting
 * the other files; NULL if the folder cannot be read. */
static GPtrArray *lessons_list(struct loader *ld, const char *ldir)
{
    GError *e = NULL;
    GDir *d = g_dir_open(ldir, 0, &e);
    if (!d) {
        bad(ld, ldir, 0, "%s", e->message);
        g_error_free(e);
        return NULL;
    }
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d))) {
        if (name[0] == '.')
            continue;
        char *path = g_build_filename(ldir, name, NULL);
        if (g_str_has_suffix(name, ".md") && !g_file_test(path, G_FILE_TEST_IS_DIR))
            g_ptr_array_add(names, g_strdup(name));
        else
            lesson_stray(ld, ldir, name);
        g_free(path);
    }
    g_dir_close(d);
    g_ptr_array_sort(names, name_cmp);
    if (names->len == 0)
        bad(ld, ldir, 0, "no lessons (expected NN-slug.md files)");
    return names;
}

/* The lesson number num of file fn after the one numbered *prev (0 at the
 * start), named *prev_fn: the next, or a gap, or the same again. */
static void lesson_number_check(struct loader *ld, const char *path, const char *fn, int num, int *prev,
                                const char **prev_fn)
{
    if (num == 0)
        bad(ld, path, 0, "lesson numbers start at 01, not 00");
    else if (num == *prev)
        bad(ld, path, 0, "lesson number %02d is also the number of %s; each lesson needs its own", num,
            *prev_fn);
    else if (num == *prev + 2 && *prev == 0)
        bad(ld, path, 0, "lesson 01 is missing before %s (lessons are numbered from 01 without gaps)", fn);
    else if (num == *prev + 2)
        bad(ld, path, 0, "lesson %02d is missing between %s and %s", *prev + 1, *prev_fn, fn);
    else if (num > *prev + 2 && *prev == 0)
        bad(ld, path, 0,
            "lessons 01 %s %02d are missing before %s (lessons are numbered from 01 without gaps)",
            num == 3 ? "and" : "to", num - 1, fn);
    else if (num > *prev + 2)
        bad(ld, path, 0, "lessons %02d %s %02d are missing between %s and %s", *prev + 1,
            num == *prev + 3 ? "and" : "to", num - 1, *prev_fn, fn);
    if (num > 0) {
        *prev = num;
        *prev_fn = fn;
    }
}

/* The name NN-slug.md of lesson i (file fn): its number follows the one
 * before, its slug is valid and its own. */
static void lesson_name_check(struct loader *ld, int i, const char *fn, int *prev, const char **prev_fn)
{
    struct lesson *l = &ld->c->lessons[i];
    if (strlen(fn) < 7 || !g_ascii_isdigit(fn[0]) || !g_ascii_isdigit(fn[1]) || fn[2] != '-') {
        bad(ld, l->path, 0, "lesson file names must look like 01-some-slug.md");
        return;
    }
    lesson_number_check(ld, l->path, fn, (fn[0] - '0') * 10 + (fn[1] - '0'), prev, prev_fn);
    l->slug = g_strndup(fn + 3, strlen(fn) - 3 - 3);
    if (!course_slug_valid(l->slug)) {
        bad(ld, l->path, 0, "lesson slug '%s' may use only a-z, 0-9 and '-'", l->slug);
        return;
    }
    /* The slug is the lesson's identity (what was sent to whom): two
     * lessons with one slug would be one lesson. */
    for (int k = 0; k < i; k++)
        if (ld->c->lessons[k].slug && !strcmp(ld->c->lessons[k].slug, l->slug)) {
            bad(ld, l->path, 0, "lesson slug '%s' is also the slug of %s; each lesson needs its own", l->slug,
                strrchr(ld->c->lessons[k].path, G_DIR_SEPARATOR) + 1);
            return;
        }
}

/* One header line "Field: value" at line of lesson l; FALSE if it is not
 * a header line at all (then where the text starts is unknown). */
static gboolean lesson_field(struct loader *ld, struct lesson *l, char *p, int line, gboolean *has_subject)
{
    char *colon = strchr(p, ':');
    if (!colon) {
        char *text = excerpt(p);
        bad(ld, l->path, line,
            "'%s' is not a header field: the header is 'Subject: ...' and ends with a blank line before the "
            "lesson text",
            text);
        g_free(text);
        return FALSE;
    }
    *colon = '\0';
    char *value = g_strstrip(colon + 1);
    if (g_ascii_strcasecmp(p, "Support") == 0) { /* the help line (docs/safety.md) */
        if (g_ascii_strcasecmp(value, "yes") != 0 && g_ascii_strcasecmp(value, "no") != 0)
            bad(ld, l->path, line, "Support must be yes or no, not '%s'", value);
        l->support = g_ascii_strcasecmp(value, "yes") == 0;
        return TRUE;
    }
    if (g_ascii_strcasecmp(p, "Subject") != 0) {
        bad(ld, l->path, line, "unknown header field '%s' (the fields are Subject and Support)", p);
        return TRUE;
    }
    *has_subject = TRUE;
    if (!*value || strlen(value) > 200)
        bad(ld, l->path, line, "Subject must be 1 to 200 bytes, not %zu", strlen(value));
    g_free(l->subject);
    l->subject = g_strdup(value);
    return TRUE;
}

/* The header of lesson l from text; returns where the lesson text starts
 * (its line in *line), or NULL if the header does not end. */
static char *lesson_header(struct loader *ld, struct lesson *l, char *text, int *line)
{
    gboolean has_subject = FALSE;
    char *p = text;
    for (*line = 1;; (*line)++) {
        size_t n = strcspn(p, "\n");
        if (p[n] != '\n') {
            bad(ld, l->path, *line, "the header must end with a blank line before the lesson text");
            return NULL;
        }
        p[n] = '\0';
        if (n > 0 && p[n - 1] == '\r')
            p[n - 1] = '\0';
        gboolean end = *p == '\0';
        if (!end && !lesson_field(ld, l, p, *line, &has_subject))
            return NULL;
        p += n + 1;
        if (end)
            break;
    }
    if (!has_subject)
        bad(ld, l->path, 1, "missing 'Subject:' header");
    (*line)++;
    return p;
}

/* Parses lesson file l: header lines "Field: value" up to a blank line,
 * then the Markdown. */
static void lesson_parse(struct loader *ld, struct lesson *l)
{
    char *text = NULL;
    gsize len = 0;
    if (!read_text(ld, l->path, &text, &len))
        return;
    char *probe = g_strstrip(g_strdup(text));
    gboolean empty = !*probe;
    g_free(probe);
    int line = 1;
    char *body = empty ? NULL : lesson_header(ld, l, text, &line);
    if (empty)
        bad(ld, l->path, 1, "the file is empty; a lesson is 'Subject: ...', a blank line, then the text");
    if (body) {
        l->body = g_strdup(body);
        l->body_line = line;
        probe = g_strstrip(g_strdup(body));
        if (!*probe)
            bad(ld, l->path, line, "the lesson text is empty");
        g_free(probe);
    }
    g_free(text);
}

static void lessons_load(struct loader *ld)
{
    struct course *c = ld->c;
    char *ldir = g_build_filename(c->dir, "lessons", NULL);
    GPtrArray *names = lessons_list(ld, ldir);
    if (names && names->len > 0) {
        int prev = 0;
        const char *prev_fn = NULL;
        c->n_lessons = (int)names->len;
        c->lessons = g_new0(struct lesson, names->len);
        for (guint i = 0; i < names->len; i++) {
            struct lesson *l = &c->lessons[i];
            l->n = (int)i + 1;
            l->path = g_build_filename(ldir, names->pdata[i], NULL);
            lesson_name_check(ld, (int)i, names->pdata[i], &prev, &prev_fn);
            lesson_parse(ld, l);
        }
    }
    if (names)
        g_ptr_array_unref(names);
    g_free(ldir);
}

/* ---- a course ---- */

struct course *course_read(const char *dir, const char *slug, const char *domain, GPtrArray *problems)
{
    struct course *c = g_new0(struct course, 1);
    c->slug = g_strdup(slug);
    c->dir = g_strdup(dir);
    struct loader ld = {
        .c = c,
        .problems = course_problems_new(),
        .ini = g_build_filename(dir, "course.ini", NULL),
        .kf = g_key_file_new(),
        .lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
    };
    folder_check(&ld);
    ini_load(&ld);
    check_texts(&ld);
    check_sender(&ld, domain);
    check_replies_to(&ld);
    check_pace(&ld);
    check_first_within(&ld);
    check_flags(&ld);
    check_next_course(&ld);
    check_on_insert_behind(&ld);
    check_language(&ld);
    lessons_load(&ld);
    course_problems_sort(ld.problems, dir);
    g_ptr_array_extend_and_steal(problems, ld.problems);
    g_hash_table_destroy(ld.lines);
    g_key_file_free(ld.kf);
    g_free(ld.ini);
    return c;
}

struct course *course_load(const char *dir, const char *slug, const char *domain, GError **err)
{
    GPtrArray *problems = course_problems_new();
    struct course *c = course_read(dir, slug, domain, problems);
    char *text = fatal_text(problems);
    if (text) {
        g_set_error_literal(err, CD_ERROR, CD_ERR_INVALID, text);
        course_free(c);
        c = NULL;
    }
    g_free(text);
    g_ptr_array_unref(problems);
    return c;
}

static int str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

GPtrArray *course_list_slugs(const char *courses_dir, GError **err)
{
    GError *e = NULL;
    GDir *d = g_dir_open(courses_dir, 0, &e);
    if (!d) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", courses_dir, e->message);
        g_error_free(e);
        return NULL;
    }
    GPtrArray *slugs = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d))) {
        if (name[0] == '.')
            continue;
        char *ini = g_build_filename(courses_dir, name, "course.ini", NULL);
        if (g_file_test(ini, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add(slugs, g_strdup(name));
        g_free(ini);
    }
    g_dir_close(d);
    g_ptr_array_sort(slugs, str_cmp);
    return slugs;
}

GPtrArray *course_load_all(const char *courses_dir, const char *domain, GError **err)
{
    GPtrArray *slugs = course_list_slugs(courses_dir, err);
    if (!slugs)
        return NULL;
    GPtrArray *set = g_ptr_array_new_with_free_func((GDestroyNotify)course_free);
    GString *broken = NULL; /* every broken course's problems, not just the first's */
    for (guint i = 0; i < slugs->len; i++) {
        char *sub = g_build_filename(courses_dir, slugs->pdata[i], NULL);
        GError *e = NULL;
        struct course *c = course_load(sub, slugs->pdata[i], domain, &e);
        g_free(sub);
        if (c) {
            g_ptr_array_add(set, c);
            continue;
        }
        if (!broken)
            broken = g_string_new(e->message);
        else
            g_string_append_printf(broken, "\n%s", e->message);
        g_error_free(e);
    }
    g_ptr_array_unref(slugs);
    if (broken) {
        g_set_error_literal(err, CD_ERROR, CD_ERR_INVALID, broken->str);
        g_string_free(broken, TRUE);
    }
    if (broken || !course_check_links(set, err)) {
        g_ptr_array_unref(set);
        set = NULL;
    }
    return set;
}

gboolean course_check_links(GPtrArray *set, GError **err)
{
    for (guint i = 0; i < set->len; i++) {
        const struct course *c = set->pdata[i];
        if (c->next_course && !course_find(set, c->next_course)) {
            char *ini = g_build_filename(c->dir, "course.ini", NULL);
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: next_course '%s' is not a course here", ini,
                        c->next_course_line, c->next_course);
            g_free(ini);
            return FALSE;
        }
    }
    return TRUE;
}

char **course_slugs(GPtrArray *set)
{
    char **out = g_new0(char *, set->len + 1);
    for (guint i = 0; i < set->len; i++)
        out[i] = g_strdup(((struct course *)set->pdata[i])->slug);
    return out;
}

const struct course *course_find(GPtrArray *set, const char *slug)
{
    if (!set || !slug)
        return NULL;
    for (guint i = 0; i < set->len; i++) {
        const struct course *c = set->pdata[i];
        if (strcmp(c->slug, slug) == 0)
            return c;
    }
    return NULL;
}

const struct lesson *course_lesson(const struct course *c, int n)
{
    if (!c || n < 1 || n > c->n_lessons)
        return NULL;
    return &c->lessons[n - 1];
}
