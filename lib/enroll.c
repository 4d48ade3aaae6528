/* enroll.c - owns when each lesson of an enrollment is due, outside the
 * tick: the first slot, pause and resume, re-planning after a zone change,
 * and the projection shown by `coursectl schedule` and the .ics calendar.
 * The enrollment instant anchors the calendar's phase (INTERVAL rules). */
#include <string.h>
#include "enroll.h"
#include "compose.h"
#include "error.h"
#include "notify.h"
#include "log.h"
#include "subscriber.h"

const char *enroll_zone(const struct course *c, const char *sub_tz)
{
    return sub_tz && *sub_tz ? sub_tz : c->tz;
}

struct pace_rule enroll_rule(const struct course *c, const char *sub_tz)
{
    struct pace_rule rule = c->rule;
    rule.tz = enroll_zone(c, sub_tz);
    return rule;
}

gint64 enroll_first_slot(const struct config *cfg, const struct course *c, const char *sub_tz,
                         gint64 now)
{
    if (cfg && strcmp(cfg->first_lesson, "immediately") == 0)
        return now;
    struct pace_rule rule = enroll_rule(c, sub_tz);
    gint64 slot = pace_next_slot(&rule, now, now);
    if (c->first_within > 0 && (slot < 0 || slot > now + c->first_within))
        slot = now + c->first_within;
    return slot;
}

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
    gint64 first = enroll_first_slot(app->cfg, c, s->tz, now);
    if (first < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "course '%s' has no slot after now", course);
        goto out;
    }
    if (!store_begin(app->st, err))
        goto out;
    id = store_enroll(app->st, s->id, c->slug, first, now, now, err);
    if (id < 0 || !store_event(app->st, now, s->id, id, "enrolled", via, c->slug, err) ||
        (welcome && !notify_welcome(app, c, id, now, err)) || !store_commit(app->st, err)) {
        store_rollback(app->st);
        id = -1;
    }
out:
    store_sub_free(s);
    return id;
}

/* Runs fn on each of email's enrollments in `course` (or all) whose state
 * is one of `states` (comma-separated), inside one transaction. Returns how
 * many, or -1. */
typedef gboolean (*enroll_fn)(struct app *app, const struct enrollment_row *e,
                              const struct course *c, gint64 arg, const char *via, gint64 now,
                              GError **err);

static gboolean state_in(const char *state, const char *states)
{
    char **set = g_strsplit(states, ",", -1);
    gboolean in = g_strv_contains((const char *const *)set, state);
    g_strfreev(set);
    return in;
}

static int for_each(struct app *app, const char *email, const char *course, const char *states,
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
        const struct enrollment_row *e = es->pdata[i];
        if (course && strcmp(course, e->course) != 0)
            continue;
        enrolled = TRUE;
        const struct course *c = course_find(app->courses, e->course);
        if (!c || !state_in(e->state, states))
            continue;
        if (!fn(app, e, c, arg, via, now, err)) {
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

static gboolean pause_one(struct app *app, const struct enrollment_row *e, const struct course *c,
                          gint64 until, const char *via, gint64 now, GError **err)
{
    (void)c;
    char *detail = until > 0 ? g_strdup_printf("until %" G_GINT64_FORMAT, until) : g_strdup("");
    gboolean ok = store_pause(app->st, e->id, until, now, err) &&
                  store_event(app->st, now, e->subscriber_id, e->id, "paused", via, detail, err);
    g_free(detail);
    return ok;
}

int enroll_pause(struct app *app, const char *email, const char *course, gint64 until,
                 const char *via, gint64 now, GError **err)
{
    if (until != 0 && until <= now) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "the end of a pause must be in the future");
        return -1;
    }
    /* Pausing a paused enrollment again moves the end of its pause. */
    return for_each(app, email, course, "active,paused", pause_one, until, via, now, err);
}

static gboolean resume_one(struct app *app, const struct enrollment_row *e, const struct course *c,
                           gint64 arg, const char *via, gint64 now, GError **err)
{
    (void)arg;
    struct pace_rule rule = enroll_rule(c, e->tz);
    gint64 next = pace_next_slot(&rule, e->anchor_at, now);
    if (next < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "course '%s' has no slot after now", c->slug);
        return FALSE;
    }
    return store_resume(app->st, e->id, next, now, err) &&
           store_event(app->st, now, e->subscriber_id, e->id, "resumed", via, "", err);
}

int enroll_resume(struct app *app, const char *email, const char *course, const char *via,
                  gint64 now, GError **err)
{
    return for_each(app, email, course, "paused", resume_one, 0, via, now, err);
}

int enroll_resume_due(struct app *app, gint64 now, GError **err)
{
    int total = 0;
    for (;;) {
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
            const struct course *c = course_find(app->courses, e->course);
            if (!c)
                continue;
            if (!resume_one(app, e, c, 0, "daemon", now, err)) {
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
            return total;
    }
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
    gboolean ok = store_begin(app->st, err) &&
                  store_enrollment_set(app->st, e->id, "stopped", 0, 0, 0, now, err) &&
                  store_event(app->st, now, e->subscriber_id, e->id, "unenrolled", via, course, err) &&
                  store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
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
    gboolean ok = FALSE;
    if (n < 1 || n > c->n_lessons) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s has lessons 1 to %d", course, c->n_lessons);
    } else {
        struct pace_rule rule = enroll_rule(c, e->tz);
        gint64 next = pace_next_slot(&rule, e->anchor_at, now);
        char *detail = g_strdup_printf("%s to lesson %d", course, n);
        ok = store_begin(app->st, err) && store_move(app->st, e->id, n, next, now, err) &&
             store_event(app->st, now, e->subscriber_id, e->id, "moved", via, detail, err) &&
             store_commit(app->st, err);
        if (!ok)
            store_rollback(app->st);
        g_free(detail);
    }
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
        if (!c || strcmp(e->state, "active") != 0 || e->next_send_at <= 0)
            continue;
        struct pace_rule rule = enroll_rule(c, e->tz);
        gint64 next = pace_next_slot(&rule, e->anchor_at, now);
        ok = next > 0 && store_replan(app->st, e->id, next, now, err);
    }
    g_ptr_array_unref(es);
    return ok;
}

gboolean enroll_upcoming(struct app *app, const struct enrollment_row *e, const struct course *c,
                         GArray *slots, int *first, GError **err)
{
    *first = e->next_lesson;
    struct pace_rule rule = enroll_rule(c, e->tz);
    gint64 t = 0;
    if (strcmp(e->state, "active") == 0) {
        t = e->next_send_at;
        if (t <= 0) {                       /* a lesson is in flight */
            t = store_inflight_slot(app->st, e->id, e->next_lesson, err);
            if (t < 0)
                return FALSE;
        }
    } else if (strcmp(e->state, "paused") == 0 && e->paused_until > 0) {
        t = pace_next_slot(&rule, e->anchor_at, e->paused_until);
    }
    for (int n = e->next_lesson; t > 0 && n <= c->n_lessons; n++) {
        g_array_append_val(slots, t);
        t = pace_next_slot(&rule, e->anchor_at, t);
    }
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
                            gint64 anchor, int lesson, gint64 slot_at, int sequence, gint64 now)
{
    struct pace_rule rule = enroll_rule(c, tz);
    GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
    gint64 t = slot_at;
    for (int n = lesson + 1; n <= c->n_lessons; n++) {
        t = pace_next_slot(&rule, anchor, MAX(t, now));
        if (t < 0)
            break;
        g_array_append_val(slots, t);
    }
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
