/* snapshot.c - owns loading what a process runs on (config, courses,
 * templates, key) as one value, in the order that lets a broken edit fail
 * before anything is replaced: config first, then courses and templates,
 * both validated whole, then the key. See snapshot.h for the threading
 * rules. */
#include <string.h>
#include "snapshot.h"
#include "course.h"
#include "error.h"
#include "log.h"

/* The primary language of tag ("de" of "de-AT"), or NULL when tag has
 * no subtag. g_free(). */
static char *primary_of(const char *tag)
{
    const char *dash = strchr(tag, '-');
    return dash ? g_strndup(tag, (gsize)(dash - tag)) : NULL;
}

/* Loads language tag (its words and templates/<tag>/) into s unless it is
 * there; for a course, c names it in messages. */
static gboolean load_language(struct snapshot *s, const char *tag, const struct course *c, GError **err)
{
    if (g_hash_table_contains(s->langs, tag))
        return TRUE;
    char *primary = primary_of(tag);
    if (primary && !load_language(s, primary, NULL, NULL)) /* optional: tag may have its own */
        g_hash_table_insert(s->langs, g_strdup(primary), NULL);
    g_free(primary);
    char *sdir = g_build_filename(s->cfg->templates, "strings", NULL);
    char *path = lang_find(sdir, tag);
    g_free(sdir);
    if (!path) {
        if (c)
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s/course.ini:%d: language '%s': no strings file %s/strings/%s.ini", c->dir,
                        c->language_line, tag, s->cfg->templates, tag);
        else
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s/strings/%s.ini: no such file", s->cfg->templates,
                        tag);
        return FALSE;
    }
    struct lang *words = lang_load(path, tag, err);
    g_free(path);
    if (!words)
        return FALSE;
    g_hash_table_insert(s->langs, g_strdup(tag), words);
    if (!strcmp(tag, "en"))
        return TRUE; /* English is templates/ itself */
    char *dir = g_build_filename(s->cfg->templates, tag, NULL);
    struct render_set *set = NULL;
    char *p = primary_of(tag);
    const struct render_set *fallback = snapshot_templates(s, p);
    g_free(p);
    gboolean ok = !g_file_test(dir, G_FILE_TEST_IS_DIR) || render_load_dir(dir, fallback, &set, err);
    if (set)
        g_hash_table_insert(s->lang_tpl, g_strdup(tag), set);
    g_free(dir);
    return ok;
}

const struct render_set *snapshot_templates(const struct snapshot *s, const char *tag)
{
    if (!tag || !s->lang_tpl)
        return s->tpl;
    const struct render_set *set = g_hash_table_lookup(s->lang_tpl, tag);
    char *p = set ? NULL : primary_of(tag);
    if (p)
        set = g_hash_table_lookup(s->lang_tpl, p);
    g_free(p);
    return set ? set : s->tpl;
}

const struct lang *snapshot_lang(const struct snapshot *s, const char *tag)
{
    if (!s->langs)
        return NULL;
    const struct lang *words = tag ? g_hash_table_lookup(s->langs, tag) : NULL;
    char *p = words || !tag ? NULL : primary_of(tag);
    if (p)
        words = g_hash_table_lookup(s->langs, p);
    g_free(p);
    return words ? words : g_hash_table_lookup(s->langs, "en");
}

/* English and every language a course names. */
static gboolean load_languages(struct snapshot *s, GError **err)
{
    s->langs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)lang_free);
    s->lang_tpl = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)render_free);
    if (!load_language(s, "en", NULL, err))
        return FALSE;
    for (guint i = 0; i < s->courses->len; i++) {
        const struct course *c = s->courses->pdata[i];
        if (!load_language(s, c->language, c, err))
            return FALSE;
    }
    return TRUE;
}

/* The templates of each course that has its own (courses/<slug>/templates/),
 * falling back to those of its language, checked like them. */
static gboolean load_course_templates(struct snapshot *s, GError **err)
{
    s->course_tpl = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)render_free);
    for (guint i = 0; i < s->courses->len; i++) {
        const struct course *c = s->courses->pdata[i];
        struct render_set *own = NULL;
        if (!render_load_overrides(c->dir, snapshot_templates(s, c->language), &own, err))
            return FALSE;
        if (own)
            g_hash_table_insert(s->course_tpl, g_strdup(c->slug), own);
    }
    return TRUE;
}

/* Courses and templates, linted together, each lesson rendered once (the
 * Markdown is the same for everyone). */
static gboolean load_courses(struct snapshot *s, int flags, GError **err)
{
    s->courses = course_load_all(s->cfg->courses, s->cfg->domain, err);
    if (!s->courses)
        return FALSE;
    /* Without templates: a process that only decides (the pipe) never
     * fails on a template, which coursed renders when it sends. It still
     * reads the strings files (the words of values it decides, such as a
     * status mail's progress), but one that does not load only costs
     * those words, never the mail. */
    if (!(flags & SNAP_NO_TEMPLATES)) {
        s->tpl = render_load(s->cfg->templates, err);
        if (!s->tpl || !load_languages(s, err) || !load_course_templates(s, err))
            return FALSE;
    } else {
        GError *e = NULL;
        if (!load_languages(s, &e)) {
            log_warn("%s (the mail is handled; coursed checks the templates when it loads them)", e->message);
            g_clear_error(&e);
        }
    }
    GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < s->courses->len; i++)
        render_lint_course(s->courses->pdata[i], problems);
    if (problems->len > 0) {
        /* every problem, one per line, as course check says them: an
         * author fixing one at a time would need a run per mistake */
        g_ptr_array_add(problems, NULL);
        char *all = g_strjoinv("\n", (char **)problems->pdata);
        g_set_error_literal(err, CD_ERROR, CD_ERR_INVALID, all);
        g_free(all);
        g_ptr_array_unref(problems);
        return FALSE;
    }
    g_ptr_array_unref(problems);
    for (guint i = 0; i < s->courses->len; i++) {
        struct course *c = s->courses->pdata[i];
        for (int n = 0; n < c->n_lessons; n++) {
            /* once per lesson, not per copy: the plain text walks the
             * parse tree and wraps, several times the cost of the HTML */
            c->lessons[n].html = render_markdown(c->lessons[n].body);
            c->lessons[n].text = render_markdown_text(c->lessons[n].body);
        }
    }
    return TRUE;
}

static gboolean load_key(struct snapshot *s, int flags, GError **err)
{
    if (flags & SNAP_CREATE_KEY) {
        gboolean created = FALSE;
        if (!token_key_create(s->cfg->secret_key, &created, err))
            return FALSE;
        if (created)
            log_info("created secret key %s (mode 0600)", s->cfg->secret_key);
    }
    if (!(flags & (SNAP_KEY | SNAP_CREATE_KEY)) && !g_file_test(s->cfg->secret_key, G_FILE_TEST_EXISTS))
        return TRUE;
    s->key = token_key_load(s->cfg->secret_key, err);
    return s->key != NULL;
}

struct snapshot *snapshot_load(const char *config_path, int flags, GError **err)
{
    struct snapshot *s = g_new0(struct snapshot, 1);
    s->refs = 1;
    g_mutex_init(&s->cache_lock);
    s->cfg = config_load(config_path, err);
    if (!s->cfg)
        goto fail;
    if (flags & SNAP_CONFIG_ONLY) {
        s->courses = g_ptr_array_new();
        return s;
    }
    if (!load_courses(s, flags, err) || !load_key(s, flags, err))
        goto fail;
    return s;
fail:
    snapshot_unref(s);
    return NULL;
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
    g_atomic_int_inc(&s->refs);
    return s;
}

void snapshot_unref(struct snapshot *s)
{
    if (!s || !g_atomic_int_dec_and_test(&s->refs))
        return;
    if (s->cache && s->cache_free)
        s->cache_free(s->cache);
    g_mutex_clear(&s->cache_lock);
    token_key_free(s->key);
    if (s->course_tpl) /* before tpl, which they fall back to */
        g_hash_table_destroy(s->course_tpl);
    if (s->lang_tpl) /* render_free() does not touch a set's fallback */
        g_hash_table_destroy(s->lang_tpl);
    if (s->langs)
        g_hash_table_destroy(s->langs);
    render_free(s->tpl);
    if (s->courses)
        g_ptr_array_unref(s->courses);
    config_free(s->cfg);
    g_free(s);
}

struct snapshot_box {
    GMutex lock;
    struct snapshot *cur;
};

struct snapshot_box *snapshot_box_new(struct snapshot *s)
{
    struct snapshot_box *b = g_new0(struct snapshot_box, 1);
    g_mutex_init(&b->lock);
    b->cur = s ? snapshot_ref(s) : NULL;
    return b;
}

void snapshot_box_set(struct snapshot_box *b, struct snapshot *s)
{
    struct snapshot *old;
    g_mutex_lock(&b->lock);
    old = b->cur;
    b->cur = s ? snapshot_ref(s) : NULL;
    g_mutex_unlock(&b->lock);
    snapshot_unref(old); /* outside the lock: the last unref frees */
}

struct snapshot *snapshot_box_get(struct snapshot_box *b)
{
    g_mutex_lock(&b->lock);
    struct snapshot *s = b->cur ? snapshot_ref(b->cur) : NULL;
    g_mutex_unlock(&b->lock);
    return s;
}

void snapshot_box_free(struct snapshot_box *b)
{
    if (!b)
        return;
    snapshot_unref(b->cur);
    g_mutex_clear(&b->lock);
    g_free(b);
}
