/* app.h - everything a coursed process holds: config, courses, templates,
 * the database and the transport. Shared by coursed and coursectl. */
#ifndef COURSED_APP_H
#define COURSED_APP_H
#include <glib.h>
#include "config.h"
#include "render.h"
#include "store.h"
#include "token.h"
#include "transport.h"

struct compose_cache;

struct app {
    struct config *cfg;
    GPtrArray *courses;          /* of struct course */
    struct render_set *tpl;
    struct store *st;            /* NULL unless APP_STORE */
    struct transport *tr;        /* NULL unless APP_TRANSPORT */
    struct token_key *key;       /* NULL until 'coursectl init' made the key */
    volatile int *stop;          /* set by the daemon on SIGTERM; NULL elsewhere */
    struct compose_cache *cache; /* lesson skeletons of these courses (compose.c) */
    GPtrArray *unrecorded;       /* tick.c: outcomes the database has not accepted yet */
};

enum app_flags {
    APP_STORE = 1 << 0,          /* open the database */
    APP_CREATE = 1 << 1,         /* ... creating it if missing */
    APP_TRANSPORT = 1 << 2,      /* open the transport */
    APP_CONFIG_ONLY = 1 << 4,    /* read the config, not courses or templates */
    APP_KEY = 1 << 3,            /* the secret key must exist (APP_CREATE makes it) */
};

/* Returns a loaded app, or NULL with err saying which file is wrong. */
struct app *app_open(const char *config_path, int flags, GError **err);

/* Re-reads config, courses and templates. On any error keeps the old ones,
 * returns FALSE and sets err. Database path changes need a restart. */
gboolean app_reload(struct app *app, GError **err);

void app_free(struct app *app);

#endif
