/* mailbox.c - owns the inbound Maildir. A message is "handled" when its
 * effects are committed (command_apply remembers its key, so a crash
 * between commit and rename only means the next scan sees it again and it
 * has no second effect); then it is renamed into cur/ with the Seen flag.
 * rename() within one file system is atomic, so a message is always in
 * exactly one place. */
#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>
#include "mailbox.h"
#include "command.h"
#include "course.h"
#include "error.h"
#include "inbound.h"
#include "log.h"
#include "note.h"

#define MAILBOX_MAX (10 * 1024 * 1024)

gboolean mailbox_prepare(const char *dir, GError **err)
{
    const char *subs[] = { "tmp", "new", "cur", ".Quarantine/tmp", ".Quarantine/new", ".Quarantine/cur" };
    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *d = g_build_filename(dir, subs[i], NULL);
        int rc = g_mkdir_with_parents(d, 0750);
        int saved = errno;
        g_free(d);
        if (rc != 0) {
            g_set_error(err, CD_ERROR, CD_ERR_IO, "[inbound] maildir %s: %s", dir, g_strerror(saved));
            return FALSE;
        }
    }
    return TRUE;
}

static int name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Move new/NAME to cur/NAME:2,S (or into the quarantine). */
static void move_aside(const char *dir, const char *name, gboolean quarantine)
{
    char *from = g_build_filename(dir, "new", name, NULL);
    char *base = g_strdup(name);
    char *colon = strchr(base, ':');
    if (colon)
        *colon = '\0';
    char *flagged = g_strconcat(base, ":2,S", NULL);
    char *to = quarantine ? g_build_filename(dir, ".Quarantine", "cur", flagged, NULL)
                          : g_build_filename(dir, "cur", flagged, NULL);
    if (g_rename(from, to) != 0)
        log_err("cannot move %s to %s: %s (it stays; its key prevents a second effect)", from, to,
                g_strerror(errno));
    g_free(to);
    g_free(flagged);
    g_free(base);
    g_free(from);
}

int mailbox_scan(struct app *app, const char *dir, gint64 now, GError **err)
{
    if (!mailbox_prepare(dir, err))
        return -1;
    char *newdir = g_build_filename(dir, "new", NULL);
    GError *e = NULL;
    GDir *d = g_dir_open(newdir, 0, &e);
    if (!d) {
        g_set_error(err, CD_ERROR, CD_ERR_IO, "%s: %s", newdir, e->message);
        g_error_free(e);
        g_free(newdir);
        return -1;
    }
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(d)) && names->len < 10000)
        if (n[0] != '.')
            g_ptr_array_add(names, g_strdup(n));
    g_dir_close(d);
    g_ptr_array_sort(names, name_cmp); /* Maildir names start with the time */
    char **slugs = course_slugs(app->courses);
    struct inbound_lesson *lessons = note_lessons(app); /* "Re: <lesson>" is a reader's note */
    int handled = 0;
    for (guint i = 0; i < names->len; i++) {
        char *path = g_build_filename(newdir, names->pdata[i], NULL);
        char *data = NULL;
        gsize len = 0;
        if (!g_file_get_contents(path, &data, &len, &e)) {
            log_warn("inbound maildir: %s", e->message); /* gone meanwhile, or unreadable */
            g_clear_error(&e);
            g_free(path);
            continue;
        }
        struct inbound *r = inbound_classify_lessons(data, MIN(len, (gsize)MAILBOX_MAX), app->cfg,
                                                     (const char *const *)slugs, lessons, NULL, NULL);
        char *result = NULL;
        gboolean quarantine = r->unparsable || len == 0 || len > MAILBOX_MAX;
        gboolean ok = quarantine || command_apply(app, r, "email", now, &result, err);
        if (ok) {
            log_info("inbound %s: %s: %s", (char *)names->pdata[i], inbound_kind_name(r->kind),
                     quarantine ? "quarantined" : result);
            move_aside(dir, names->pdata[i], quarantine);
            handled++;
        }
        g_free(result);
        inbound_free(r);
        g_free(data);
        g_free(path);
        if (!ok) {
            handled = -1;
            break;
        }
    }
    g_strfreev(slugs);
    g_free(lessons);
    g_ptr_array_unref(names);
    g_free(newdir);
    return handled;
}
