/* snapshot.h - what a coursed process has loaded, as one immutable,
 * reference-counted value: the configuration, the courses (lessons
 * rendered), the templates, the secret key and the lesson skeletons built
 * from them. A reload loads a whole new snapshot and swaps it only when it
 * is complete and valid; whoever holds a reference (a session in flight, a
 * page being served) keeps using the one it started with.
 *
 * Threads: a snapshot is read-only after snapshot_load() (the skeleton
 * cache inside is locked), so any thread may read one it holds a reference
 * to. A snapshot_box is the one place the current snapshot is published:
 * the main loop sets it, the HTTP thread gets it per request. */
#ifndef COURSED_SNAPSHOT_H
#define COURSED_SNAPSHOT_H
#include <glib.h>
#include "config.h"
#include "lang.h"
#include "render.h"
#include "token.h"

struct snapshot {
    struct config *cfg;
    GPtrArray *courses;     /* of struct course */
    struct render_set *tpl; /* NULL with SNAP_CONFIG_ONLY */
    /* slug -> struct render_set * of each course with templates of its own
     * (courses/<slug>/templates/), each falling back to tpl file by file;
     * NULL with SNAP_CONFIG_ONLY */
    GHashTable *course_tpl;
    /* tag -> struct render_set * of templates/<tag>/ (a language's system
     * mails), falling back to its primary language's, then to tpl; and tag
     * -> struct lang * of templates/strings/<tag>.ini, "en" always there.
     * Both hold every language a course names (and its primary one).
     * NULL with SNAP_CONFIG_ONLY. */
    GHashTable *lang_tpl;
    GHashTable *langs;
    struct token_key *key; /* NULL while no key file exists (before 'coursectl init') */
    /* Lesson skeletons of these courses: compose.c fills this slot on
     * first use, under cache_lock, and owns what is in it (cache_free). */
    gpointer cache;
    GDestroyNotify cache_free;
    GMutex cache_lock;
    gint refs;
};

enum snapshot_flags {
    SNAP_CONFIG_ONLY = 1 << 0, /* the config alone: no courses, templates or key */
    SNAP_KEY = 1 << 1,         /* the secret key must exist */
    SNAP_CREATE_KEY = 1 << 2,  /* create the key file if missing (coursectl init) */
    /* courses and key, but no templates (tpl NULL): the inbound pipe */
    SNAP_NO_TEMPLATES = 1 << 3,
};

/* Returns a new snapshot with one reference, or NULL with err naming the
 * file (and line) that is wrong. Reads every course and template (the
 * shared ones and each course's own), lints them and renders every lesson once: the cost of a start or a reload. */
struct snapshot *snapshot_load(const char *config_path, int flags, GError **err);

/* Returns the templates of language tag (NULL: en): templates/<tag>/,
 * else its primary language's, else the shared ones. Borrowed. */
const struct render_set *snapshot_templates(const struct snapshot *s, const char *tag);

/* Returns the words of language tag (NULL: en), else of its primary
 * language, else English; NULL only for a SNAP_CONFIG_ONLY snapshot.
 * Borrowed. */
const struct lang *snapshot_lang(const struct snapshot *s, const char *tag);

/* Returns s with one more reference (thread-safe). */
struct snapshot *snapshot_ref(struct snapshot *s);

/* Drops one reference; the last one frees everything. Accepts NULL. */
void snapshot_unref(struct snapshot *s);

/* The current snapshot, shared between threads. */
struct snapshot_box;

/* Returns a box holding a reference to s (which may be NULL). */
struct snapshot_box *snapshot_box_new(struct snapshot *s);

/* Publishes s (taking a new reference); the previous one is released. */
void snapshot_box_set(struct snapshot_box *b, struct snapshot *s);

/* Returns the current snapshot with a reference the caller drops with
 * snapshot_unref(). */
struct snapshot *snapshot_box_get(struct snapshot_box *b);

/* Frees the box and its reference. Accepts NULL. */
void snapshot_box_free(struct snapshot_box *b);

#endif
