/* app.c - owns start-up and reload order: the snapshot first (config,
 * courses, templates, key: snapshot.c), then the database and the
 * transport. A reload builds the new snapshot, transport and (if the path
 * changed) database connection completely before it swaps, so a broken
 * edit never replaces a working configuration. */
#include <string.h>
#include "app.h"
#include "course.h"
#include "error.h"
#include "log.h"
#include "message.h"
#include "pace.h"
#include "snapshot.h"

static void use_snapshot(struct app *app, struct snapshot *snap)
{
    app->snap = snap;
    app->cfg = snap->cfg;
    app->courses = snap->courses;
    app->tpl = snap->tpl;
    app->course_tpl = snap->course_tpl;
    app->key = snap->key;
}

static int snapshot_flags(int flags)
{
    return ((flags & APP_CONFIG_ONLY) ? SNAP_CONFIG_ONLY : 0) | ((flags & APP_KEY) ? SNAP_KEY : 0) |
           ((flags & APP_CREATE) ? SNAP_CREATE_KEY : 0) |
           ((flags & APP_NO_TEMPLATES) ? SNAP_NO_TEMPLATES : 0);
}

struct app *app_open(const char *config_path, int flags, GError **err)
{
    pace_init();
    message_init();
    struct app *app = g_new0(struct app, 1);
    app->flags = flags;
    struct snapshot *snap = snapshot_load(config_path, snapshot_flags(flags), err);
    if (!snap)
        goto fail;
    use_snapshot(app, snap);
    if (flags & APP_CONFIG_ONLY)
        return app;
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
    /* A reload never creates a key: the one that signs live links stays
     * unless a new file is put in place. */
    struct snapshot *snap = snapshot_load(app->cfg->path, snapshot_flags(app->flags) & ~SNAP_CREATE_KEY, err);
    if (!snap)
        return FALSE;
    struct transport *tr = NULL;
    struct store *st = NULL;
    gboolean new_db = app->st && strcmp(snap->cfg->database, app->cfg->database) != 0;
    if (new_db && app->unrecorded && app->unrecorded->len > 0) {
        g_set_error(err, CD_ERROR, CD_ERR_BUSY,
                    "[coursed] database changed to %s while %u outcomes wait to "
                    "be recorded in %s; reload again once they are",
                    snap->cfg->database, app->unrecorded->len, app->cfg->database);
        goto fail;
    }
    if (new_db && !(st = store_open(snap->cfg->database, FALSE, err)))
        goto fail;
    if (app->tr && !(tr = transport_open(snap->cfg, err)))
        goto fail;
    if (new_db) {
        log_warn("[coursed] database is now %s (was %s)", snap->cfg->database, app->cfg->database);
        store_close(app->st);
        app->st = st;
    }
    if (tr) {
        transport_free(app->tr);
        app->tr = tr;
    }
    struct snapshot *old = app->snap;
    use_snapshot(app, snap);
    snapshot_unref(old);
    return TRUE;
fail:
    store_close(st);
    snapshot_unref(snap);
    return FALSE;
}

struct app app_view(struct snapshot *snap, struct store *st)
{
    struct app view = { 0 };
    use_snapshot(&view, snap);
    view.st = st;
    return view;
}

const struct render_set *app_templates(const struct app *app, const struct course *c)
{
    const struct render_set *own = c && app->course_tpl ? g_hash_table_lookup(app->course_tpl, c->slug)
                                                        : NULL;
    if (own)
        return own;
    return app->snap && c ? snapshot_templates(app->snap, c->language) : app->tpl;
}

const struct lang *app_lang(const struct app *app, const struct course *c)
{
    return app->snap ? snapshot_lang(app->snap, c ? c->language : NULL) : NULL;
}

void app_free(struct app *app)
{
    if (!app)
        return;
    if (app->unrecorded && app->unrecorded->len > 0)
        log_err(
            "exiting with %u delivery outcomes that could not be recorded: those lessons will be "
            "sent again at the next start",
            app->unrecorded->len);
    if (app->unrecorded)
        g_ptr_array_unref(app->unrecorded);
    transport_free(app->tr);
    store_close(app->st);
    snapshot_unref(app->snap);
    g_free(app);
}
