/* enroll.c - owns when a course starts for a subscriber. The enrollment
 * instant anchors the calendar's phase; lesson 1 is due at the first slot
 * after it (capped by first_within), and each later lesson at the slot
 * after the previous one (see tick.c). */
#include "enroll.h"
#include "error.h"
#include "subscriber.h"

const char *enroll_zone(const struct course *c, const char *sub_tz)
{
    return sub_tz && *sub_tz ? sub_tz : c->tz;
}

gint64 enroll_first_slot(const struct course *c, const char *sub_tz, gint64 now)
{
    struct pace_rule rule = c->rule;
    rule.tz = enroll_zone(c, sub_tz);
    gint64 slot = pace_next_slot(&rule, now, now);
    if (c->first_within > 0 && (slot < 0 || slot > now + c->first_within))
        slot = now + c->first_within;
    return slot;
}

gint64 enroll_start(struct app *app, const char *email, const char *course, const char *via,
                    gint64 now, GError **err)
{
    const struct course *c = course_find(app->courses, course);
    if (!c) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", course);
        return -1;
    }
    struct sub_row *s = subscriber_get(app, email, err);
    if (!s)
        return -1;
    gint64 id = -1;
    gint64 first = enroll_first_slot(c, s->tz, now);
    if (first < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "course '%s' has no slot after now", course);
        goto out;
    }
    if (!store_begin(app->st, err))
        goto out;
    id = store_enroll(app->st, s->id, c->slug, first, now, now, err);
    if (id < 0 || !store_event(app->st, now, s->id, id, "enrolled", via, c->slug, err) ||
        !store_commit(app->st, err)) {
        store_rollback(app->st);
        id = -1;
    }
out:
    store_sub_free(s);
    return id;
}
