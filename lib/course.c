/* course.c - owns reading and validating a course folder:
 *   courses/<slug>/course.ini         [course] title, schedule, time, ...
 *   courses/<slug>/lessons/NN-x.md    "Subject: ..." header, blank line, Markdown
 * Every error names the file and, where there is one, the line, so that
 * `coursed -n` and `coursectl course check` point at the mistake. A course
 * that loads is complete: lessons are numbered 01..N without gaps and the
 * schedule yields slots. */
#include <stdlib.h>
#include <string.h>
#include "course.h"
#include "config.h"
#include "error.h"

static const char *course_keys[] = { "title",       "description",      "sender",
                                     "sender_name", "source",           "schedule",
                                     "time",        "timezone",         "first_within",
                                     "allow_next",  "on_insert_behind", "completed_get_new",
                                     "next_course", "complete_mail",    NULL };

gboolean course_slug_valid(const char *slug)
{
    if (!slug || !*slug || strlen(slug) > 64 || slug[0] == '-')
        return FALSE;
    for (const char *p = slug; *p; p++)
        if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && *p != '-')
            return FALSE;
    return TRUE;
}

/* Line (1-based) of "key =" in the INI text, or 0 if absent. */
static int key_line(const char *text, const char *key)
{
    int line = 1;
    size_t klen = strlen(key);
    for (const char *p = text; *p; line++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, key, klen) == 0) {
            const char *q = p + klen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=')
                return line;
        }
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

/* Line (1-based) of the first occurrence of needle in text, or 0. */
static int text_line(const char *text, const char *needle)
{
    const char *hit = strstr(text, needle);
    if (!hit)
        return 0;
    int line = 1;
    for (const char *p = text; p < hit; p++)
        line += *p == '\n';
    return line;
}

static void lesson_clear(struct lesson *l)
{
    g_free(l->slug);
    g_free(l->path);
    g_free(l->subject);
    g_free(l->body);
    g_free(l->html);
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
    g_free(c->next_course);
    g_free(c->source);
    g_free(c->schedule);
    g_free(c->time);
    g_free(c->tz);
    g_free(c);
}

/* Parse one lesson file: header lines "Key: value" up to a blank line. */
static gboolean lesson_load(struct lesson *l, GError **err)
{
    char *text = NULL;
    gsize len = 0;
    GError *e = NULL;
    if (!g_file_get_contents(l->path, &text, &len, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", l->path, e->message);
        g_error_free(e);
        return FALSE;
    }
    gboolean ok = FALSE;
    if (memchr(text, '\0', len) || !g_utf8_validate(text, len, NULL)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: not valid UTF-8 text", l->path);
        goto out;
    }
    int line = 1;
    char *p = text;
    for (;;) {
        char *nl = strchr(p, '\n');
        if (!nl) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s:%d: the header must end with a blank line before the lesson text", l->path, line);
            goto out;
        }
        *nl = '\0';
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        if (*p == '\0') {
            p = nl + 1;
            line++;
            break;
        }
        char *colon = strchr(p, ':');
        if (!colon) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: expected 'Subject: ...' in the lesson header",
                        l->path, line);
            goto out;
        }
        *colon = '\0';
        char *value = g_strstrip(colon + 1);
        if (g_ascii_strcasecmp(p, "Subject") != 0) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s:%d: unknown header field '%s' (only Subject is known)", l->path, line, p);
            goto out;
        }
        if (!*value || strlen(value) > 200) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: Subject must be 1 to 200 bytes", l->path,
                        line);
            goto out;
        }
        g_free(l->subject);
        l->subject = g_strdup(value);
        p = nl + 1;
        line++;
    }
    if (!l->subject) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: missing 'Subject:' header", l->path);
        goto out;
    }
    l->body = g_strdup(p);
    l->body_line = line;
    {
        char *probe = g_strstrip(g_strdup(p));
        gboolean empty = *probe == '\0';
        g_free(probe);
        if (empty) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: the lesson text is empty", l->path, line);
            goto out;
        }
    }
    ok = TRUE;
out:
    g_free(text);
    return ok;
}

static int lesson_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static gboolean lessons_load(struct course *c, GError **err)
{
    char *ldir = g_build_filename(c->dir, "lessons", NULL);
    GError *e = NULL;
    GDir *d = g_dir_open(ldir, 0, &e);
    gboolean ok = FALSE;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    if (!d) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", ldir, e->message);
        g_error_free(e);
        goto out;
    }
    const char *name;
    while ((name = g_dir_read_name(d)))
        if (g_str_has_suffix(name, ".md"))
            g_ptr_array_add(names, g_strdup(name));
    g_dir_close(d);
    g_ptr_array_sort(names, lesson_name_cmp);
    if (names->len == 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: no lessons (expected NN-slug.md files)", ldir);
        goto out;
    }
    c->n_lessons = (int)names->len;
    c->lessons = g_new0(struct lesson, names->len);
    for (guint i = 0; i < names->len; i++) {
        const char *fn = names->pdata[i];
        struct lesson *l = &c->lessons[i];
        l->path = g_build_filename(ldir, fn, NULL);
        l->n = (int)i + 1;
        if (strlen(fn) < 7 || !g_ascii_isdigit(fn[0]) || !g_ascii_isdigit(fn[1]) || fn[2] != '-') {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: lesson file names must look like 01-some-slug.md",
                        l->path);
            goto out;
        }
        int num = (fn[0] - '0') * 10 + (fn[1] - '0');
        if (num != l->n) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s: expected lesson number %02d here; lessons are numbered 01..N without gaps",
                        l->path, l->n);
            goto out;
        }
        l->slug = g_strndup(fn + 3, strlen(fn) - 3 - 3);
        if (!course_slug_valid(l->slug)) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: lesson slug '%s' may use only a-z, 0-9 and '-'",
                        l->path, l->slug);
            goto out;
        }
        /* The slug is the lesson's identity (what was sent to whom): two
         * lessons with one slug would be one lesson. */
        for (guint k = 0; k < i; k++)
            if (strcmp(c->lessons[k].slug, l->slug) == 0) {
                g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                            "%s: lesson slug '%s' is also the slug of %s; each lesson needs its own", l->path,
                            l->slug, c->lessons[k].path);
                goto out;
            }
        if (!lesson_load(l, err))
            goto out;
    }
    ok = TRUE;
out:
    g_ptr_array_unref(names);
    g_free(ldir);
    return ok;
}

struct course *course_load(const char *dir, const char *slug, const char *domain, GError **err)
{
    struct course *c = g_new0(struct course, 1);
    c->slug = g_strdup(slug);
    c->dir = g_strdup(dir);
    char *ini = g_build_filename(dir, "course.ini", NULL);
    char *text = NULL;
    GKeyFile *kf = g_key_file_new();
    GError *e = NULL;
    char **keys = NULL;

    if (!course_slug_valid(slug)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "%s: course folder name '%s' may use only a-z, 0-9 and '-'", dir, slug);
        goto fail;
    }
    if (!g_file_get_contents(ini, &text, NULL, &e) ||
        !g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", ini, e->message);
        g_clear_error(&e);
        goto fail;
    }
    char **groups = g_key_file_get_groups(kf, NULL);
    for (char **g = groups; *g; g++) {
        if (strcmp(*g, "course") != 0) {
            char *needle = g_strdup_printf("[%s]", *g);
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: unknown section [%s]", ini,
                        text_line(text, needle), *g);
            g_free(needle);
            g_strfreev(groups);
            goto fail;
        }
    }
    g_strfreev(groups);
    keys = g_key_file_get_keys(kf, "course", NULL, NULL);
    if (!keys) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:1: missing section [course]", ini);
        goto fail;
    }
    for (char **k = keys; *k; k++) {
        if (!g_strv_contains(course_keys, *k)) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: unknown key '%s'", ini, key_line(text, *k),
                        *k);
            goto fail;
        }
    }
#define GET(field, key, required)                                                            \
    do {                                                                                     \
        c->field = g_key_file_get_string(kf, "course", key, NULL);                           \
        if (c->field)                                                                        \
            g_strstrip(c->field);                                                            \
        if ((required) && (!c->field || !*c->field)) {                                       \
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: missing value for '%s'", ini, \
                        MAX(key_line(text, key), MAX(text_line(text, "[course]"), 1)), key); \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)
    GET(title, "title", TRUE);
    GET(schedule, "schedule", TRUE);
    GET(time, "time", TRUE);
    GET(tz, "timezone", FALSE);
    GET(description, "description", FALSE);
    GET(sender, "sender", FALSE);
    GET(sender_name, "sender_name", FALSE);
    GET(source, "source", FALSE);
#undef GET
    if (!c->tz)
        c->tz = g_strdup("UTC");
    if (!c->description)
        c->description = g_strdup("");
    if (!c->source)
        c->source = g_strdup("");
    if (!c->sender_name || !*c->sender_name) {
        g_free(c->sender_name);
        c->sender_name = g_strdup(c->title);
    }
    if (!c->sender || !*c->sender) {
        g_free(c->sender);
        c->sender = g_strdup_printf("%s@%s", slug, domain);
    } else if (!strchr(c->sender, '@') || strpbrk(c->sender, " <>\"")) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: sender '%s' is not a bare address", ini,
                    key_line(text, "sender"), c->sender);
        goto fail;
    }
    for (const char *p = c->title; *p; p++)
        if ((unsigned char)*p < 0x20) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: title has control characters", ini,
                        key_line(text, "title"));
            goto fail;
        }
    if (!pace_parse_time(c->time, &c->rule.hour, &c->rule.minute)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: time '%s' must be HH:MM (24-hour)", ini,
                    key_line(text, "time"), c->time);
        goto fail;
    }
    char *fw = g_key_file_get_string(kf, "course", "first_within", NULL);
    if (fw) {
        gboolean ok = config_parse_duration(g_strstrip(fw), &c->first_within);
        g_free(fw);
        if (!ok) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: first_within must be a duration like 24h", ini,
                        key_line(text, "first_within"));
            goto fail;
        }
    }
    if (g_key_file_has_key(kf, "course", "allow_next", NULL)) {
        c->allow_next = g_key_file_get_boolean(kf, "course", "allow_next", &e);
        if (e) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: allow_next must be true or false", ini,
                        key_line(text, "allow_next"));
            g_clear_error(&e);
            goto fail;
        }
    }
    if (g_key_file_has_key(kf, "course", "completed_get_new", NULL)) {
        c->completed_get_new = g_key_file_get_boolean(kf, "course", "completed_get_new", &e);
        if (e) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: completed_get_new must be true or false", ini,
                        key_line(text, "completed_get_new"));
            g_clear_error(&e);
            goto fail;
        }
    }
    c->complete_mail = TRUE;
    if (g_key_file_has_key(kf, "course", "complete_mail", NULL)) {
        c->complete_mail = g_key_file_get_boolean(kf, "course", "complete_mail", &e);
        if (e) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: complete_mail must be true or false", ini,
                        key_line(text, "complete_mail"));
            g_clear_error(&e);
            goto fail;
        }
    }
    char *nc = g_key_file_get_string(kf, "course", "next_course", NULL);
    if (nc) {
        g_strstrip(nc);
        if (*nc && (!course_slug_valid(nc) || !strcmp(nc, slug))) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: next_course '%s' must be the slug of another course",
                        ini, key_line(text, "next_course"), nc);
            g_free(nc);
            goto fail;
        }
        if (*nc)
            c->next_course = nc;
        else
            g_free(nc);
    }
    char *oib = g_key_file_get_string(kf, "course", "on_insert_behind", NULL);
    if (oib) {
        g_strstrip(oib);
        gboolean known = !strcmp(oib, "skip") || !strcmp(oib, "send");
        c->insert_behind_send = !strcmp(oib, "send");
        if (!known)
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s:%d: on_insert_behind must be skip or send, not '%s'", ini,
                        key_line(text, "on_insert_behind"), oib);
        g_free(oib);
        if (!known)
            goto fail;
    }
    c->rule.rrule = c->schedule;
    c->rule.tz = c->tz;
    if (!pace_check(&c->rule, &e)) {
        const char *key = pace_tz_valid(c->tz) ? "schedule" : "timezone";
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: %s", ini, MAX(key_line(text, key), 1), e->message);
        g_clear_error(&e);
        goto fail;
    }
    if (!lessons_load(c, err))
        goto fail;
    g_strfreev(keys);
    g_key_file_free(kf);
    g_free(text);
    g_free(ini);
    return c;
fail:
    g_strfreev(keys);
    g_key_file_free(kf);
    g_free(text);
    g_free(ini);
    course_free(c);
    return NULL;
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
    for (guint i = 0; i < slugs->len; i++) {
        char *sub = g_build_filename(courses_dir, slugs->pdata[i], NULL);
        struct course *c = course_load(sub, slugs->pdata[i], domain, err);
        g_free(sub);
        if (!c) {
            g_ptr_array_unref(set);
            set = NULL;
            break;
        }
        g_ptr_array_add(set, c);
    }
    g_ptr_array_unref(slugs);
    if (set && !course_check_links(set, err)) {
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
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s/course.ini: next_course '%s' is not a course here",
                        c->dir, c->next_course);
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
