/* subscriber.c - owns the rules for who can be a subscriber: a valid,
 * normalised address, a display name without control characters, and a
 * time zone the system knows. */
#include "subscriber.h"
#include "address.h"
#include "lifecycle.h"
#include "error.h"
#include "pace.h"
#include "token.h"

int subscriber_suppressed(struct app *app, const char *email, GError **err)
{
    if (!app->key)
        return 0;
    char *hash = token_hash_address(app->key, email);
    int n = store_suppressed(app->st, hash, err);
    g_free(hash);
    return n;
}

gint64 subscriber_add(struct app *app, const char *email, const char *name, const char *tz, gboolean force,
                      const char *via, gint64 now, GError **err)
{
    char *addr = address_normalize(email, err);
    if (!addr)
        return -1;
    gint64 id = -1;
    char *clean = address_clean_name(name ? name : "", 200);
    char *hash = app->key ? token_hash_address(app->key, addr) : NULL;
    if (tz && !pace_tz_valid(tz)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "unknown time zone '%s' (use an IANA name like Europe/Berlin)", tz);
        goto out;
    }
    if (!store_begin(app->st, err))
        goto out;
    int suppressed = hash ? store_suppressed(app->st, hash, err) : 0;
    if (suppressed < 0) {
        store_rollback(app->st);
        goto out;
    }
    if (suppressed && !force) {
        store_rollback(app->st);
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "%s was erased at their request earlier; add --force to add it again", addr);
        goto out;
    }
    if (suppressed && !store_unsuppress(app->st, hash, err)) {
        store_rollback(app->st);
        goto out;
    }
    id = store_sub_add(app->st, addr, clean, tz, SUB_ACTIVE, now, err);
    if (id < 0 || !store_event(app->st, now, id, 0, "subscriber-added", via, addr, err) ||
        !store_commit(app->st, err)) {
        store_rollback(app->st);
        id = -1;
    }
out:
    g_free(hash);
    g_free(clean);
    g_free(addr);
    return id;
}

gboolean subscriber_remove(struct app *app, const char *email, gboolean erase, gint64 now, GError **err)
{
    if (erase && !app->key) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no secret key: run 'coursectl init'");
        return FALSE;
    }
    struct sub_row *s = subscriber_get(app, email, err);
    if (!s)
        return FALSE;
    char *hash = erase ? token_hash_address(app->key, s->email) : NULL;
    gboolean ok = store_begin(app->st, err) && store_sub_erase(app->st, s->id, hash, now, err) &&
                  (erase || store_event(app->st, now, 0, 0, "subscriber-removed", "cli", "", err)) &&
                  store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    g_free(hash);
    store_sub_free(s);
    return ok;
}

struct sub_row *subscriber_get(struct app *app, const char *email, GError **err)
{
    char *addr = address_normalize(email, err);
    if (!addr)
        return NULL;
    struct sub_row *r = store_sub_get(app->st, addr, err);
    g_free(addr);
    return r;
}

gboolean subscriber_set(struct app *app, const char *email, const char *name, const char *tz, gboolean set_tz,
                        const char *via, gint64 now, GError **err)
{
    if (set_tz && tz && *tz && !pace_tz_valid(tz)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "unknown time zone '%s' (use an IANA name like Europe/Berlin)", tz);
        return FALSE;
    }
    struct sub_row *s = subscriber_get(app, email, err);
    if (!s)
        return FALSE;
    char *clean = name ? address_clean_name(name, 200) : NULL;
    const char *zone = set_tz && tz && *tz ? tz : NULL;
    char *detail = g_strdup_printf("%s%s%s%s", clean ? "name " : "", clean ? clean : "",
                                   set_tz ? " zone " : "", set_tz ? (zone ? zone : "(course)") : "");
    gboolean ok = store_begin(app->st, err) &&
                  store_sub_update(app->st, s->id, clean, zone, set_tz, now, err) &&
                  (!set_tz || life_replan(app, s->id, now, err)) &&
                  store_event(app->st, now, s->id, 0, "subscriber-changed", via, g_strstrip(detail), err) &&
                  store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    g_free(detail);
    g_free(clean);
    store_sub_free(s);
    return ok;
}

gboolean subscriber_set_time(struct app *app, const char *email, const char *lesson_time, const char *via,
                             gint64 now, GError **err)
{
    int h, m;
    if (lesson_time && !pace_parse_time(lesson_time, &h, &m)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "not a time of day (HH:MM)");
        return FALSE;
    }
    struct sub_row *s = subscriber_get(app, email, err);
    if (!s)
        return FALSE;
    char *detail = g_strdup_printf("time %s", lesson_time ? lesson_time : "(course)");
    /* The future slots follow at once (life_replan places each running
     * course's next lesson with the new time; its calendar is re-sent). */
    gboolean ok = store_begin(app->st, err) &&
                  store_sub_set_lesson_time(app->st, s->id, lesson_time, now, err) &&
                  life_replan(app, s->id, now, err) &&
                  store_event(app->st, now, s->id, 0, "subscriber-changed", via, detail, err) &&
                  store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    g_free(detail);
    store_sub_free(s);
    return ok;
}
