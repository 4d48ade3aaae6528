/* app.c - owns start-up and reload order: config first, then courses and
 * templates (both validated whole before anything runs), then the database
 * and the transport. A reload builds the new set completely before it
 * swaps, so a broken edit never replaces a working configuration. */
#include <string.h>
#include "app.h"
#include "compose.h"
#include "course.h"
#include "error.h"
#include "log.h"
#include "message.h"
#include "pace.h"

/* Loads the parts that can be reloaded: config, courses, templates. */
static gboolean load_parts(const char *path, struct config **cfg, GPtrArray **courses,
                           struct render_set **tpl, GError **err)
{
    *cfg = config_load(path, err);
    if (!*cfg)
        return FALSE;
    *courses = course_load_all((*cfg)->courses, (*cfg)->domain, err);
    if (!*courses)
        goto fail;
    *tpl = render_load((*cfg)->templates, err);
    if (!*tpl)
        goto fail;
    GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < (*courses)->len; i++)
        render_lint_course((*courses)->pdata[i], problems);
    if (problems->len > 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s%s", (char *)problems->pdata[0],
                    problems->len > 1 ? " (and more: run 'coursectl course check')" : "");
        g_ptr_array_unref(problems);
        goto fail;
    }
    g_ptr_array_unref(problems);
    /* Lessons are the same Markdown for everyone: render them once. */
    for (guint i = 0; i < (*courses)->len; i++) {
        struct course *c = (*courses)->pdata[i];
        for (int n = 0; n < c->n_lessons; n++)
            c->lessons[n].html = render_markdown(c->lessons[n].body);
    }
    return TRUE;
fail:
    render_free(*tpl);
    *tpl = NULL;
    if (*courses)
        g_ptr_array_unref(*courses);
    config_free(*cfg);
    *cfg = NULL;
    *courses = NULL;
    return FALSE;
}

struct app *app_open(const char *config_path, int flags, GError **err)
{
    pace_init();
    message_init();
    struct app *app = g_new0(struct app, 1);
    if (flags & APP_CONFIG_ONLY) {
        app->cfg = config_load(config_path, err);
        if (!app->cfg)
            goto fail;
        app->courses = g_ptr_array_new();
        return app;
    }
    if (!load_parts(config_path, &app->cfg, &app->courses, &app->tpl, err))
        goto fail;
    app->cache = compose_cache_new();
    if (flags & APP_STORE) {
        app->st = store_open(app->cfg->database, (flags & APP_CREATE) != 0, err);
        if (!app->st)
            goto fail;
    }
    if (flags & APP_CREATE) {
        gboolean created = FALSE;
        if (!token_key_create(app->cfg->secret_key, &created, err))
            goto fail;
        if (created)
            log_info("created secret key %s (mode 0600)", app->cfg->secret_key);
    }
    if ((flags & APP_KEY) || g_file_test(app->cfg->secret_key, G_FILE_TEST_EXISTS)) {
        app->key = token_key_load(app->cfg->secret_key, err);
        if (!app->key)
            goto fail;
    }
    if (flags & APP_TRANSPORT) {
        app->tr = transport_open(app->cfg, err);
        if (!app->tr)
            goto fail;
    }
    return app;
fail:
    app_free(app);
    return NULL;
}

gboolean app_reload(struct app *app, GError **err)
{
    struct config *cfg = NULL;
    GPtrArray *courses = NULL;
    struct render_set *tpl = NULL;
    if (!load_parts(app->cfg->path, &cfg, &courses, &tpl, err))
        return FALSE;
    if (strcmp(cfg->database, app->cfg->database) != 0)
        log_warn("[coursed] database changed to %s: takes effect at the next restart", cfg->database);
    struct transport *tr = NULL;
    if (app->tr) {
        tr = transport_open(cfg, err);
        if (!tr) {
            config_free(cfg);
            g_ptr_array_unref(courses);
            render_free(tpl);
            return FALSE;
        }
        transport_free(app->tr);
        app->tr = tr;
    }
    /* Skeletons belong to the courses, templates and config they came
     * from: start afresh (reloads happen between ticks, never during one). */
    compose_cache_free(app->cache);
    app->cache = compose_cache_new();
    config_free(app->cfg);
    g_ptr_array_unref(app->courses);
    render_free(app->tpl);
    app->cfg = cfg;
    app->courses = courses;
    app->tpl = tpl;
    return TRUE;
}

void app_free(struct app *app)
{
    if (!app)
        return;
    if (app->unrecorded && app->unrecorded->len > 0)
        log_err("exiting with %u delivery outcomes that could not be recorded: those lessons will be "
                "sent again at the next start", app->unrecorded->len);
    if (app->unrecorded)
        g_ptr_array_unref(app->unrecorded);
    transport_free(app->tr);
    compose_cache_free(app->cache);
    token_key_free(app->key);
    store_close(app->st);
    render_free(app->tpl);
    if (app->courses)
        g_ptr_array_unref(app->courses);
    config_free(app->cfg);
    g_free(app);
}
