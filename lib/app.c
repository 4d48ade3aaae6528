/* app.c - owns start-up and reload order: config first, then courses and
 * templates (both validated whole before anything runs), then the database
 * and the transport. A reload builds the new set completely before it
 * swaps, so a broken edit never replaces a working configuration. */
#include <string.h>
#include "app.h"
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
    return TRUE;
fail:
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
    if (!load_parts(config_path, &app->cfg, &app->courses, &app->tpl, err))
        goto fail;
    if (flags & APP_STORE) {
        app->st = store_open(app->cfg->database, (flags & APP_CREATE) != 0, err);
        if (!app->st)
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
    transport_free(app->tr);
    store_close(app->st);
    render_free(app->tpl);
    if (app->courses)
        g_ptr_array_unref(app->courses);
    config_free(app->cfg);
    g_free(app);
}
