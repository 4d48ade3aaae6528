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

struct snapshot;

/* One thread's view: the snapshot it runs on, and its own database
 * connection and transport. cfg, courses, tpl, course_tpl and key are borrowed
 * from snap (kept as fields because every layer reads them). */
struct app {
    struct snapshot *snap; /* one reference, owned */
    struct config *cfg;
    GPtrArray *courses; /* of struct course */
    struct render_set *tpl;
    GHashTable *course_tpl; /* slug -> a course's own templates (see app_templates) */
    struct token_key *key;  /* NULL until 'coursectl init' made the key */
    struct store *st;       /* NULL unless APP_STORE */
    struct transport *tr;   /* NULL unless APP_TRANSPORT */
    volatile int *stop;     /* set by the daemon on SIGTERM; NULL elsewhere */
    volatile int *yield;    /* set on SIGHUP: the tick ends after the rounds in flight */
    GPtrArray *unrecorded;  /* tick.c: outcomes the database has not accepted yet */
    int flags;              /* enum app_flags it was opened with */
    /* command.c: the Message-ID of the mail being answered, while it is */
    const char *in_reply_to;
};

enum app_flags {
    APP_STORE = 1 << 0,       /* open the database */
    APP_CREATE = 1 << 1,      /* ... creating it if missing */
    APP_TRANSPORT = 1 << 2,   /* open the transport */
    APP_CONFIG_ONLY = 1 << 4, /* read the config, not courses or templates */
    APP_KEY = 1 << 3,         /* the secret key must exist (APP_CREATE makes it) */
    /* courses but no templates (app->tpl NULL): only decide, never render */
    APP_NO_TEMPLATES = 1 << 5,
};

/* Returns a loaded app, or NULL with err saying which file is wrong. */
struct app *app_open(const char *config_path, int flags, GError **err);

/* Loads a new snapshot (config, courses, templates, key) and, only when
 * all of it is valid and the transport and database it names open, swaps
 * it in; the old snapshot is released (whoever still holds it keeps it).
 * On any error keeps everything, returns FALSE and sets err. A new database
 * path is refused while outcomes wait to be recorded in the old one. Main
 * thread, between ticks. */
gboolean app_reload(struct app *app, GError **err);

/* Returns a view of snap with the caller's database connection st (both
 * borrowed: the view is valid while the caller holds them), for a thread
 * that serves requests on the current snapshot (the HTTP pages). */
struct app app_view(struct snapshot *snap, struct store *st);

struct course;
/* Returns the templates of course c's mails (c may be NULL): the course's
 * own (courses/<slug>/templates/), falling back file by file to those of
 * its language (templates/<tag>/, then its primary language's), then to
 * the shared ones (English). Borrowed from the app's snapshot. */
const struct render_set *app_templates(const struct app *app, const struct course *c);

struct lang;
/* Returns the words of course c's language (c NULL: English), for its
 * mails' layout words, sentences and dates; NULL only without courses
 * (APP_CONFIG_ONLY). Borrowed from the app's snapshot. */
const struct lang *app_lang(const struct app *app, const struct course *c);

/* Frees the app, its store, its transport and its snapshot reference.
 * Accepts NULL. */
void app_free(struct app *app);

#endif
