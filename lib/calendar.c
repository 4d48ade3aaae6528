/* calendar.c - owns what coursed shows of the future: the projection of
 * an enrollment's lessons still to come (`coursectl schedule`, the status
 * mail) and the .ics calendars of the welcome, status and lesson mails.
 * Slots come from schedule.c, the same functions that place lessons, so
 * that what a calendar promised is what arrives. */
#include <string.h>
#include "calendar.h"
#include "lang.h"
#include "lifecycle.h"
#include "compose.h"
#include "error.h"
#include "log.h"
#include "schedule.h"

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

/* The positions still to come for e, in the order they go out: the lesson
 * in flight first (when one is), then every position with no row. After an
 * edit that reordered the course they need not be consecutive. */
static gboolean lessons_to_come(struct app *app, const struct enrollment_row *e, const struct course *c,
                                gboolean inflight, GArray *lessons, GError **err)
{
    if (inflight && e->next_lesson <= c->n_lessons)
        g_array_append_val(lessons, e->next_lesson);
    return store_owed(app->st, e->id, c->n_lessons, lessons, err);
}

gboolean calendar_upcoming(struct app *app, const struct enrollment_row *e, const struct course *c,
                           GArray *slots, GArray *lessons, GError **err)
{
    struct pace_rule rule = life_rule(app, c, e->id, e->subscriber_id, e->tz);
    gint64 t = 0, placed = 0, attempt = 0, shown = 0;
    gboolean inflight = FALSE;
    if (e->state == ENR_ACTIVE) {
        t = e->next_send_at;
        if (t <= 0) { /* a lesson is in flight */
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
    if (!lessons_to_come(app, e, c, inflight, lessons, err))
        return FALSE;
    /* A lesson in flight counts on the day it was queued (perhaps late),
     * as the tick counts it. */
    placed = MAX(placed, t);
    int load = day_load(app, e, rule.tz, placed, inflight, err);
    if (load < 0)
        return FALSE;
    if (lessons->len > 0)
        schedule_project(app->cfg, &rule, e->anchor_at, t, placed, load, (int)lessons->len, slots);
    if (shown > 0 && slots->len > 0)
        g_array_index(slots, gint64, 0) = shown;
    return TRUE;
}

/* Appends events for the lessons at positions lessons[] of c at slots[];
 * strings keeps what the events point to. */
static void add_events(struct app *app, const struct course *c, gint64 enrollment_id, int round,
                       GArray *lessons, GArray *slots, GArray *events, GPtrArray *strings)
{
    char *command = compose_command_address(app->cfg, c);
    const struct lang *words = app_lang(app, c);
    for (guint i = 0; i < slots->len && i < lessons->len; i++) {
        int n = g_array_index(lessons, int, i);
        const struct lesson *l = course_lesson(c, n);
        char *uid = compose_lesson_id(app->cfg, c, enrollment_id, round, n);
        char step[16], steps[16];
        g_snprintf(step, sizeof step, "%d", n);
        g_snprintf(steps, sizeof steps, "%d", c->n_lessons);
        char *summary = lang_say(words, "calendar_summary", FALSE, "title", c->title, "step", step, "steps",
                                 steps, "subject", l ? l->subject : "", (char *)NULL);
        char *desc = lang_say(words, "calendar_description", FALSE, "title", c->title, "step", step, "steps",
                              steps, "address", command, (char *)NULL);
        struct pace_event ev = { g_array_index(slots, gint64, i), uid, summary, desc };
        g_array_append_val(events, ev);
        g_ptr_array_add(strings, uid);
        g_ptr_array_add(strings, summary);
        g_ptr_array_add(strings, desc);
    }
    g_free(command);
}

char *calendar_of(struct app *app, GPtrArray *enrollments, gint64 now, GError **err)
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
        GArray *lessons = g_array_new(FALSE, FALSE, sizeof(int));
        gboolean ok = calendar_upcoming(app, e, c, slots, lessons, err);
        if (ok)
            add_events(app, c, e->id, e->round, lessons, slots, events, strings);
        g_array_free(slots, TRUE);
        g_array_free(lessons, TRUE);
        if (!ok)
            goto out;
        seq = MAX(seq, e->calendar_seq);
    }
    out = pace_calendar((struct pace_event *)events->data, events->len, seq,
                        any ? any->sender : app->cfg->domain, any ? any->title : "coursed", now);
out:
    g_ptr_array_unref(strings);
    g_array_free(events, TRUE);
    return out;
}

char *calendar_after(struct app *app, const struct course *c, gint64 id, const char *tz, gint64 anchor,
                     int round, gint64 next, int sequence, gint64 now)
{
    /* The lessons after the one being sent (its row is there: what comes
     * after is every position without one): the next one at `next` (the
     * slot its outcome will record), the rest by the same rule. */
    struct pace_rule rule = life_rule(app, c, id, 0, tz);
    GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
    GArray *lessons = g_array_new(FALSE, FALSE, sizeof(int));
    GError *e = NULL;
    if (!store_owed(app->st, id, c->n_lessons, lessons, &e)) {
        log_warn("calendar of enrollment %" G_GINT64_FORMAT ": %s", id, e->message);
        g_clear_error(&e);
    }
    if (next > 0 && lessons->len > 0)
        schedule_project(app->cfg, &rule, anchor, next, 0, 1, (int)lessons->len, slots);
    GArray *events = g_array_new(FALSE, FALSE, sizeof(struct pace_event));
    GPtrArray *strings = g_ptr_array_new_with_free_func(g_free);
    add_events(app, c, id, round, lessons, slots, events, strings);
    char *out = pace_calendar((struct pace_event *)events->data, events->len, sequence, c->sender, c->title,
                              now);
    g_ptr_array_unref(strings);
    g_array_free(events, TRUE);
    g_array_free(slots, TRUE);
    g_array_free(lessons, TRUE);
    return out;
}
