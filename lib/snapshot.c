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

/* The templates of each course that has its own (courses/<slug>/templates/),
 * falling back to the shared ones, checked like them. */
static gboolean load_course_templates(struct snapshot *s, GError **err)
{
    s->course_tpl = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)render_free);
    for (guint i = 0; i < s->courses->len; i++) {
        const struct course *c = s->courses->pdata[i];
        struct render_set *own = NULL;
        if (!render_load_overrides(c->dir, s->tpl, &own, err))
            return FALSE;
        if (own)
            g_hash_table_insert(s->course_tpl, g_strdup(c->slug), own);
    }
    return TRUE;
}

/* Courses and templates, linted together, each lesson rendered once (the
 * Markdown is the same for everyone). */
static gboolean load_courses(struct snapshot *s, GError **err)
{
    s->courses = course_load_all(s->cfg->courses, s->cfg->domain, err);
    if (!s->courses)
        return FALSE;
    s->tpl = render_load(s->cfg->templates, err);
    if (!s->tpl || !load_course_templates(s, err))
        return FALSE;
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
        for (int n = 0; n < c->n_lessons; n++)
            c->lessons[n].html = render_markdown(c->lessons[n].body);
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
    if (!load_courses(s, err) || !load_key(s, flags, err))
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
