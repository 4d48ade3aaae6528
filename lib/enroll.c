/* enroll.c - owns the operations on a subscriber's courses keyed by
 * address (start, pause, resume, stop, move, re-plan after a zone change)
 * and the projection shown by `coursectl schedule`, the status mail and
 * the .ics calendars. States move only through lifecycle.c; slots come
 * from schedule.c. */
#include <string.h>
#include "enroll.h"
#include "compose.h"
#include "error.h"
#include "lifecycle.h"
#include "notify.h"
#include "log.h"
#include "subscriber.h"

gint64 enroll_start(struct app *app, const char *email, const char *course, gboolean welcome,
                    const char *via, gint64 now, GError **err)
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
    gint64 first = schedule_first(app->cfg, c, s->tz, now);
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
typedef gboolean (*enroll_fn)(struct app *app, const struct enrollment_row *e, gint64 arg,
                              const char *via, gint64 now, GError **err);

static int for_each(struct app *app, const char *email, const char *course, unsigned states,
                    enroll_fn fn, gint64 arg, const char *via, gint64 now, GError **err)
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

int enroll_pause(struct app *app, const char *email, const char *course, gint64 until,
                 const char *via, gint64 now, GError **err)
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

int enroll_resume(struct app *app, const char *email, const char *course, const char *via,
                  gint64 now, GError **err)
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

gboolean enroll_stop(struct app *app, const char *email, const char *course, const char *via,
                     gint64 now, GError **err)
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

gboolean enroll_replan(struct app *app, gint64 subscriber_id, gint64 now, GError **err)
{
    GPtrArray *es = store_enrollments_of(app->st, subscriber_id, err);
    if (!es)
        return FALSE;
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < es->len; i++) {
        const struct enrollment_row *e = es->pdata[i];
        const struct course *c = course_find(app->courses, e->course);
        if (!c || e->state != ENR_ACTIVE || e->next_send_at <= 0)
            continue;
        gint64 next = life_slot_after(app, c, e->id, e->tz, e->anchor_at, now, err);
        struct enr_change ch = { .set_next = TRUE, .next_send_at = next, .replan = TRUE };
        ok = next > 0 && store_enr_apply(app->st, e->id, EV_ENR_PROGRESS, &ch, now, err);
    }
    g_ptr_array_unref(es);
    return ok;
}

/* How many lessons of e its local day of t already holds (t's own lesson
 * included when it is in flight), for schedule_after(). */
static int day_load(struct app *app, const struct enrollment_row *e, const char *tz, gint64 t,
                    gboolean inflight, GError **err)
{
    if (app->cfg->max_per_day <= 1)
        return 1;
    gint64 start, end;
    if (!pace_day_bounds(tz, t, &start, &end))
        return 1;
    int n = store_day_count(app->st, e->id, start, end, err);
    if (n < 0)
        return -1;
    return inflight ? MAX(n, 1) : n + 1;
}

gboolean enroll_upcoming(struct app *app, const struct enrollment_row *e, const struct course *c,
                         GArray *slots, int *first, GError **err)
{
    *first = e->next_lesson;
    struct pace_rule rule = schedule_rule(c, e->tz);
    gint64 t = 0, placed = 0, attempt = 0, shown = 0;
    gboolean inflight = FALSE;
    if (e->state == ENR_ACTIVE) {
        t = e->next_send_at;
        if (t <= 0) {                       /* a lesson is in flight */
            t = store_inflight_slot(app->st, e->id, e->next_lesson, &placed, &attempt, err);
            if (t < 0)
                return FALSE;
            inflight = TRUE;
        }
        /* A deferred lesson goes at its next attempt, as the claim will
         * decide then: within late_grace of its slot it is sent (the rest
         * still follow from its slot); past it, it waits for the first slot
         * after that attempt and the rest follow from there (life_late). */
        if (inflight && t > 0 && attempt > t) {
            if (attempt - t <= app->cfg->late_grace)
                shown = attempt;
            else if ((t = pace_next_slot(&rule, e->anchor_at, attempt)) > 0)
                placed = t;
        }
    } else if (e->state == ENR_PAUSED && e->paused_until > 0) {
        t = pace_next_slot(&rule, e->anchor_at, e->paused_until);
    }
    if (t <= 0 || e->next_lesson > c->n_lessons)
        return TRUE;
    /* A lesson in flight counts on the day it was queued (perhaps late),
     * as the tick counts it. */
    placed = MAX(placed, t);
    int load = day_load(app, e, rule.tz, placed, inflight, err);
    if (load < 0)
        return FALSE;
    schedule_project(app->cfg, &rule, e->anchor_at, t, placed, load, c->n_lessons - e->next_lesson + 1, slots);
    if (shown > 0 && slots->len > 0)
        g_array_index(slots, gint64, 0) = shown;
    return TRUE;
}

/* Appends events for lessons first.. of c at slots[]; strings keeps what
 * the events point to. */
static void add_events(struct app *app, const struct course *c, gint64 enrollment_id, int first,
                       GArray *slots, GArray *events, GPtrArray *strings)
{
    char *command = compose_command_address(app->cfg, c);
    for (guint i = 0; i < slots->len; i++) {
        int n = first + (int)i;
        const struct lesson *l = course_lesson(c, n);
        char *uid = compose_message_id(app->cfg, c->slug, enrollment_id, n);
        char *summary = g_strdup_printf("%s, step %d of %d: %s", c->title, n, c->n_lessons,
                                        l ? l->subject : "");
        char *desc = g_strdup_printf("Step %d of %d of \"%s\" arrives by e-mail at this time. "
                                     "To pause or change your time zone, write to %s.",
                                     n, c->n_lessons, c->title, command);
        struct pace_event ev = { g_array_index(slots, gint64, i), uid, summary, desc };
        g_array_append_val(events, ev);
        g_ptr_array_add(strings, uid);
        g_ptr_array_add(strings, summary);
        g_ptr_array_add(strings, desc);
    }
    g_free(command);
}

char *enroll_calendar(struct app *app, GPtrArray *enrollments, gint64 now, GError **err)
{
    GArray *events = g_array_new(FALSE, FALSE, sizeof(struct pace_event));
    GPtrArray *strings = g_ptr_array_new_with_free_func(g_free);
    int seq = 0;
    const struct course *any = NULL;
    char *out = NULL;
    for (guint i = 0; i < enrollments->len; i++) {
        const struct enrollment_row *e = enrollments->pdata[i];
        const struct course *c = course_find(app->courses, e->course);
        if (!c)
            continue;
        any = any ? any : c;
        GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
        int first = 0;
        if (!enroll_upcoming(app, e, c, slots, &first, err)) {
            g_array_free(slots, TRUE);
            goto out;
        }
        add_events(app, c, e->id, first, slots, events, strings);
        g_array_free(slots, TRUE);
        seq = MAX(seq, e->calendar_seq);
    }
    out = pace_calendar((struct pace_event *)events->data, events->len, seq,
                        any ? any->sender : app->cfg->domain, any ? any->title : "coursed", now);
out:
    g_ptr_array_unref(strings);
    g_array_free(events, TRUE);
    return out;
}

char *enroll_calendar_after(struct app *app, const struct course *c, gint64 id, const char *tz,
                            gint64 anchor, int lesson, gint64 next, int sequence, gint64 now)
{
    /* The lessons after `lesson`: the next one at `next` (the slot its
     * outcome will record), the rest by the same rule. */
    struct pace_rule rule = schedule_rule(c, tz);
    GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
    if (next > 0 && lesson < c->n_lessons)
        schedule_project(app->cfg, &rule, anchor, next, 0, 1, c->n_lessons - lesson, slots);
    GArray *events = g_array_new(FALSE, FALSE, sizeof(struct pace_event));
    GPtrArray *strings = g_ptr_array_new_with_free_func(g_free);
    add_events(app, c, id, lesson + 1, slots, events, strings);
    char *out = pace_calendar((struct pace_event *)events->data, events->len, sequence, c->sender,
                              c->title, now);
    g_ptr_array_unref(strings);
    g_array_free(events, TRUE);
    g_array_free(slots, TRUE);
    return out;
}
