/* enroll.c - owns the operations on a subscriber's courses keyed by
 * address (start, pause, resume, stop, move). States move only through
 * lifecycle.c; slots come from schedule.c; what is shown of the future is
 * calendar.c's. */
#include <string.h>
#include "enroll.h"
#include "error.h"
#include "lifecycle.h"
#include "notify.h"
#include "log.h"
#include "subscriber.h"

gint64 enroll_start(struct app *app, const char *email, const char *course, gboolean welcome, const char *via,
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
    gint64 first = life_first(app, c, 0, s->id, s->tz, now);
    if (s->status == SUB_BOUNCED || s->status == SUB_UNSUBSCRIBED) {
        /* Consent is the person's: someone who left, or whose address
         * bounced, comes back by subscribing again (or `retry`). */
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s is %s; they can subscribe again by mail%s", s->email,
                    state_name(ENT_SUB, s->status),
                    s->status == SUB_BOUNCED ? " (or 'coursectl retry' if the bounce was wrong)" : "");
        goto out;
    }
    if (first < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "course '%s' has no slot after now", course);
        goto out;
    }
    if (!store_begin(app->st, err))
        goto out;
    id = store_enroll(app->st, s->id, c->slug, ENR_ACTIVE, first, now, now, err);
    if (id < 0 || (s->status == SUB_PENDING && !store_sub_apply(app->st, s->id, EV_SUB_ACTIVATE, now, err)) ||
        !store_event(app->st, now, s->id, id, "enrolled", via, c->slug, err) ||
        (welcome && !notify_welcome(app, c, id, now, err)) || !store_commit(app->st, err)) {
        store_rollback(app->st);
        id = -1;
    }
out:
    store_sub_free(s);
    return id;
}

/* Runs fn on each of email's enrollments in `course` (or all) whose state
 * is in the mask `states`, inside one transaction. Returns how many, or -1. */
typedef gboolean (*enroll_fn)(struct app *app, const struct enrollment_row *e, gint64 arg, const char *via,
                              gint64 now, GError **err);

static int for_each(struct app *app, const char *email, const char *course, unsigned states, enroll_fn fn,
                    gint64 arg, const char *via, gint64 now, GError **err)
{
    if (course && !course_find(app->courses, course)) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", course);
        return -1;
    }
    struct sub_row *s = subscriber_get(app, email, err);
    if (!s)
        return -1;
    GPtrArray *es = store_enrollments_of(app->st, s->id, err);
    int n = -1;
    if (!es || !store_begin(app->st, err))
        goto out;
    n = 0;
    gboolean enrolled = FALSE;
    for (guint i = 0; i < es->len; i++) {
        struct enrollment_row *e = es->pdata[i];
        if (course && strcmp(course, e->course) != 0)
            continue;
        enrolled = TRUE;
        if (!course_find(app->courses, e->course) || !(states & (1u << e->state)))
            continue;
        e->sub_status = s->status;
        if (!fn(app, e, arg, via, now, err)) {
            store_rollback(app->st);
            n = -1;
            goto out;
        }
        n++;
    }
    if (course && !enrolled) {
        store_rollback(app->st);
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "%s is not enrolled in %s", s->email, course);
        n = -1;
        goto out;
    }
    if (!store_commit(app->st, err)) {
        store_rollback(app->st);
        n = -1;
    }
out:
    if (es)
        g_ptr_array_unref(es);
    store_sub_free(s);
    return n;
}

static gboolean pause_one(struct app *app, const struct enrollment_row *e, gint64 until, const char *via,
                          gint64 now, GError **err)
{
    return life_pause(app, e, until, strcmp(via, "cli") == 0 ? REASON_OPERATOR : REASON_SUBSCRIBER, via, now,
                      err);
}

int enroll_pause(struct app *app, const char *email, const char *course, gint64 until, const char *via,
                 gint64 now, GError **err)
{
    if (until != 0 && until <= now) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "the end of a pause must be in the future");
        return -1;
    }
    /* Pausing a paused enrollment again moves the end of its pause. */
    return for_each(app, email, course, (1u << ENR_ACTIVE) | (1u << ENR_PAUSED), pause_one, until, via, now,
                    err);
}

static gboolean resume_one(struct app *app, const struct enrollment_row *e, gint64 arg, const char *via,
                           gint64 now, GError **err)
{
    (void)arg;
    return life_resume(app, e, via, now, err);
}

int enroll_resume(struct app *app, const char *email, const char *course, const char *via, gint64 now,
                  GError **err)
{
    return for_each(app, email, course, 1u << ENR_PAUSED, resume_one, 0, via, now, err);
}

int enroll_resume_due(struct app *app, gint64 now, GError **err)
{
    int total = 0;
    /* Bounded: each round resumes or holds every row it read, so no row is
     * read twice. */
    for (int rounds = 0; rounds < 1000; rounds++) {
        GPtrArray *due = store_resumes_due(app->st, now, 500, err);
        if (!due)
            return -1;
        guint n = due->len;
        if (n > 0 && !store_begin(app->st, err)) {
            g_ptr_array_unref(due);
            return -1;
        }
        for (guint i = 0; i < n; i++) {
            const struct enrollment_row *e = due->pdata[i];
            gboolean ok = course_find(app->courses, e->course)
                              ? life_resume(app, e, "daemon", now, err)
                              : life_course_gone(app, e->id, e->subscriber_id, 0, now, err);
            if (!ok) {
                store_rollback(app->st);
                g_ptr_array_unref(due);
                return -1;
            }
            total++;
        }
        g_ptr_array_unref(due);
        if (n > 0 && !store_commit(app->st, err)) {
            store_rollback(app->st);
            return -1;
        }
        if (n < 500)
            break;
    }
    return total;
}

/* The enrollment of email in course, with its course; NULL with err. */
static struct enrollment_row *find_one(struct app *app, const char *email, const char *course,
                                       const struct course **c, GError **err)
{
    *c = course_find(app->courses, course);
    if (!*c) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", course);
        return NULL;
    }
    struct sub_row *s = subscriber_get(app, email, err);
    if (!s)
        return NULL;
    gint64 id = store_enrollment_find(app->st, s->id, course, err);
    struct enrollment_row *e = NULL;
    if (id == 0)
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "%s is not enrolled in %s", s->email, course);
    else if (id > 0)
        e = store_enrollment_get(app->st, id, err);
    store_sub_free(s);
    return e;
}

gboolean enroll_stop(struct app *app, const char *email, const char *course, const char *via, gint64 now,
                     GError **err)
{
    const struct course *c;
    struct enrollment_row *e = find_one(app, email, course, &c, err);
    if (!e)
        return FALSE;
    gboolean ok = e->state == ENR_STOPPED || e->state == ENR_COMPLETED ||
                  life_stop(app, e, REASON_OPERATOR, "unenrolled", via, now, err);
    store_enrollment_free(e);
    return ok;
}

gboolean enroll_restart(struct app *app, const char *email, const char *course, const char *via, gint64 now,
                        GError **err)
{
    const struct course *c;
    struct enrollment_row *e = find_one(app, email, course, &c, err);
    if (!e)
        return FALSE;
    gboolean ok = life_restart(app, e, via, now, err);
    store_enrollment_free(e);
    return ok;
}

gboolean enroll_move(struct app *app, const char *email, const char *course, int n, const char *via,
                     gint64 now, GError **err)
{
    const struct course *c;
    struct enrollment_row *e = find_one(app, email, course, &c, err);
    if (!e)
        return FALSE;
    gboolean ok = life_move(app, e, n, via, now, err);
    store_enrollment_free(e);
    return ok;
}
