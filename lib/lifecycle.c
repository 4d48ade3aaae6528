/* lifecycle.c - owns the consequences of every event: which rows change,
 * in which order, in one transaction. Callers never write a state
 * themselves; store.c refuses a transition the table of state.c does not
 * allow. The rule "an active enrollment has a next slot or one lesson in
 * flight" is kept here by construction: every function that takes a lesson
 * out of flight either plans the next one, or takes the enrollment out of
 * 'active' in the same transaction. */
#include <string.h>
#include "lifecycle.h"
#include "course.h"
#include "error.h"
#include "log.h"
#include "schedule.h"

/* Runs body inside a transaction of its own (a SAVEPOINT when nested). */
#define IN_TX(app, err, body)                          \
    do {                                               \
        if (!store_begin((app)->st, (err)))            \
            return FALSE;                              \
        gboolean ok_ = (body);                         \
        if (!ok_ || !store_commit((app)->st, (err))) { \
            store_rollback((app)->st);                 \
            return FALSE;                              \
        }                                              \
        return TRUE;                                   \
    } while (0)

static gboolean event(struct app *app, gint64 now, gint64 sub, gint64 enr, const char *kind, const char *via,
                      const char *detail, GError **err)
{
    return store_event(app->st, now, sub, enr, kind, via, detail, err);
}

/* Takes enrollment id out of 'active' (or keeps it paused) with a reason:
 * EV_ENR_HOLD or EV_ENR_STOP, and withdraws what waits. An outcome can
 * arrive after the person left (the lesson was in flight): an enrollment
 * already past the event's "from" states keeps its state, so a late
 * outcome never fails the group commit it belongs to. Rare paths only
 * (bounces, holds, stops): it reads the enrollment first. */
static gboolean enr_leave_active(struct app *app, gint64 id, enum state_event ev, enum enr_reason why,
                                 const char *text, gint64 now, GError **err)
{
    struct enrollment_row *e = store_enrollment_get(app->st, id, err);
    if (!e)
        return FALSE;
    gboolean applies = state_allows(ev, e->state);
    store_enrollment_free(e);
    struct enr_change ch = {
        .set_next = TRUE, .set_reason = TRUE, .reason = why, .set_pause = TRUE, .replan = TRUE
    };
    return (!applies || store_enr_apply(app->st, id, ev, &ch, now, err)) &&
           store_dlv_withdraw(app->st, id, text, err) >= 0;
}

int life_next_owed(struct app *app, const struct course *c, gint64 enr_id, GError **err)
{
    GArray *owed = g_array_new(FALSE, FALSE, sizeof(int));
    int n = store_owed(app->st, enr_id, c->n_lessons, owed, err) ? 0 : -1;
    if (n == 0 && owed->len > 0)
        n = g_array_index(owed, int, 0);
    g_array_free(owed, TRUE);
    return n;
}

gint64 life_next_slot(struct app *app, const struct course *c, const struct delivery_row *d, int *next_lesson,
                      GError **err)
{
    /* The next lesson is the first position with no row (d's own row is
     * there): after an edit that reordered the course it need not be
     * d->lesson + 1, and there may be none although positions follow. */
    int next = life_next_owed(app, c, d->enrollment_id, err);
    if (next < 0)
        return -2;
    *next_lesson = next ? next : c->n_lessons + 1;
    if (next == 0)
        return -1;
    struct pace_rule rule = life_rule(app, c, d->enrollment_id, d->subscriber_id, d->tz);
    int in_day = 1;
    gint64 placed = MAX(d->queued_at, d->slot_at);
    if (app->cfg->max_per_day > 1) {
        gint64 start, end;
        if (pace_day_bounds(rule.tz, placed, &start, &end)) {
            int n = store_day_count(app->st, d->enrollment_id, start, end, err);
            if (n < 0)
                return -2;
            in_day = MAX(n, 1);
        }
    }
    return schedule_after_placed(app->cfg, &rule, d->anchor_at, d->slot_at, placed, &in_day);
}

struct pace_rule life_rule(struct app *app, const struct course *c, gint64 enr_id, gint64 sub_id,
                           const char *tz)
{
    GError *e = NULL;
    char *t = store_lesson_time(app->st, enr_id, sub_id, &e);
    if (e) {
        /* The course's time, rather than no slot: said once per miss. */
        log_warn("time of day of enrollment %" G_GINT64_FORMAT ": %s", enr_id, e->message);
        g_error_free(e);
    }
    struct pace_rule rule = schedule_rule_at(c, tz, t);
    g_free(t);
    return rule;
}

gint64 life_first(struct app *app, const struct course *c, gint64 enr_id, gint64 sub_id, const char *tz,
                  gint64 now)
{
    char *t = store_lesson_time(app->st, enr_id, sub_id, NULL);
    gint64 first = schedule_first_at(app->cfg, c, tz, t, now);
    g_free(t);
    return first;
}

gint64 life_slot_after(struct app *app, const struct course *c, gint64 enr_id, const char *tz, gint64 anchor,
                       gint64 after, GError **err)
{
    struct pace_rule rule = life_rule(app, c, enr_id, 0, tz);
    gint64 slot = pace_next_slot(&rule, anchor, after);
    /* Lessons only ever go out at or before now, so a day after today is
     * never full: two rounds are enough (the bound is for safety). */
    for (int round = 0; slot > 0 && round < 4; round++) {
        gint64 start, end;
        if (!pace_day_bounds(rule.tz, slot, &start, &end))
            break;
        int n = store_day_count(app->st, enr_id, start, end, err);
        if (n < 0)
            return -2;
        if (n < app->cfg->max_per_day)
            break;
        slot = pace_next_slot(&rule, anchor, end - 1);
    }
    return slot;
}

/* The subscriber leaves (EV_SUB_LEFT) or bounced (EV_SUB_BOUNCE): the mails
 * nobody asked for that still wait (a welcome, the end of a course) are
 * withdrawn with it. Replies to their own mails, and the goodbye, go. */
static gboolean sub_gone(struct app *app, gint64 sub_id, enum state_event ev, gint64 now, GError **err)
{
    return store_sub_apply(app->st, sub_id, ev, now, err) &&
           store_outbox_withdraw_unasked(app->st, sub_id, err);
}

/* ---------------------------------------------------------------- outcomes */

static gboolean sent_body(struct app *app, const struct delivery_row *d, int code, const char *text,
                          gint64 next, int next_lesson, gint64 now, GError **err)
{
    return store_dlv_apply(app->st, d->id, EV_DLV_SENT, code, text, now, err) &&
           store_enr_lesson_done(app->st, d, next_lesson > 0 ? next_lesson : d->lesson + 1, next,
                                 d->calendar_dirty, now, err);
}

gboolean life_sent(struct app *app, const struct delivery_row *d, int code, const char *text, gint64 next,
                   int next_lesson, gint64 now, GError **err)
{
    /* The hot path: two statements, no savepoint of its own (the tick's
     * group commit is the transaction; both writes or neither). */
    if (store_in_transaction(app->st))
        return sent_body(app, d, code, text, next, next_lesson, now, err);
    IN_TX(app, err, sent_body(app, d, code, text, next, next_lesson, now, err));
}

gboolean life_deferred(struct app *app, const struct delivery_row *d, int code, const char *what,
                       gint64 next_attempt, gint64 now, GError **err)
{
    IN_TX(app, err,
          store_dlv_apply(app->st, d->id, EV_DLV_DEFER, code, what, next_attempt, err) &&
              event(app, now, d->subscriber_id, d->enrollment_id, "deferred", "daemon", what, err));
}

gboolean life_refused(struct app *app, const struct delivery_row *d, enum bounce_class k, int code,
                      const char *what, gint64 now, GError **err)
{
    IN_TX(app, err,
          store_dlv_apply(app->st, d->id, EV_DLV_FAIL, code, what, 0, err) &&
              life_bounce(app, d->subscriber_id, d->enrollment_id, k, what, "daemon", now, err));
}

gboolean life_gave_up(struct app *app, const struct delivery_row *d, int code, const char *what, gint64 now,
                      GError **err)
{
    IN_TX(app, err,
          store_dlv_apply(app->st, d->id, EV_DLV_FAIL, code, what, 0, err) &&
              enr_leave_active(app, d->enrollment_id, EV_ENR_HOLD, REASON_GAVE_UP, "gave up", now, err) &&
              event(app, now, d->subscriber_id, d->enrollment_id, "delivery-gave-up", "daemon", what, err));
}

gboolean life_unclaimed(struct app *app, const struct delivery_row *d, GError **err)
{
    return store_dlv_apply(app->st, d->id, EV_DLV_UNCLAIM, 0, NULL, 0, err);
}

gboolean life_course_gone(struct app *app, gint64 enr_id, gint64 sub_id, gint64 delivery_id, gint64 now,
                          GError **err)
{
    IN_TX(app, err,
          (!delivery_id || store_dlv_apply(app->st, delivery_id, EV_DLV_UNCLAIM, 0, NULL, 0, err)) &&
              enr_leave_active(app, enr_id, EV_ENR_HOLD, REASON_COURSE_GONE, "course not loaded", now, err) &&
              event(app, now, sub_id, enr_id, "paused", "daemon", "course not loaded", err));
}

gboolean life_moot(struct app *app, const struct delivery_row *d, gint64 now, GError **err)
{
    gboolean stop = d->enr_state == ENR_ACTIVE && d->sub_status != SUB_ACTIVE;
    if (stop)
        log_warn("lifecycle: enrollment %" G_GINT64_FORMAT " was active for a subscriber who is %s; stopped",
                 d->enrollment_id, state_name(ENT_SUB, d->sub_status));
    enum enr_reason why = d->sub_status == SUB_BOUNCED ? REASON_BOUNCED : REASON_SUBSCRIBER;
    IN_TX(app, err,
          store_dlv_withdraw(app->st, d->enrollment_id, "enrollment no longer active", err) >= 0 &&
              (!stop ||
               enr_leave_active(app, d->enrollment_id, EV_ENR_STOP, why, "subscriber not active", now, err)));
}

gboolean life_late(struct app *app, const struct delivery_row *d, gint64 slot, GError **err)
{
    return store_dlv_reslot(app->st, d->id, slot, err);
}

/* ----------------------------------------------------------------- bounces */

static gboolean bounce_body(struct app *app, gint64 sub_id, gint64 enr_id, enum bounce_class k,
                            const char *detail, const char *via, gint64 now, GError **err)
{
    if (k == BOUNCE_SOFT)
        return event(app, now, sub_id, enr_id, "bounce-soft", via, detail, err);
    GPtrArray *es = store_enrollments_of(app->st, sub_id, err);
    if (!es)
        return FALSE;
    gboolean ok = TRUE;
    if (k == BOUNCE_HARD) {
        /* A late bounce for someone who has since unsubscribed keeps that
         * status (the stronger fact is their own); their courses stop
         * either way. */
        struct enrollment_row *who = enr_id > 0 ? store_enrollment_get(app->st, enr_id, err) : NULL;
        if (enr_id > 0 && !who) {
            g_ptr_array_unref(es);
            return FALSE;
        }
        gboolean applies = !who || state_allows(EV_SUB_BOUNCE, who->sub_status);
        store_enrollment_free(who);
        ok = (!applies || sub_gone(app, sub_id, EV_SUB_BOUNCE, now, err)) &&
             event(app, now, sub_id, enr_id, "bounced", via, detail, err);
        for (guint i = 0; ok && i < es->len; i++) {
            const struct enrollment_row *e = es->pdata[i];
            if (e->state == ENR_PENDING || e->state == ENR_ACTIVE || e->state == ENR_PAUSED)
                ok = enr_leave_active(app, e->id, EV_ENR_STOP, REASON_BOUNCED, "address bounced", now, err);
        }
    } else {
        ok = event(app, now, sub_id, enr_id, "bounce-policy", via, detail, err);
        for (guint i = 0; ok && i < es->len; i++) {
            const struct enrollment_row *e = es->pdata[i];
            if (e->state == ENR_ACTIVE)
                ok = enr_leave_active(app, e->id, EV_ENR_HOLD, REASON_POLICY, "refused by policy", now, err);
        }
    }
    g_ptr_array_unref(es);
    return ok;
}

gboolean life_bounce(struct app *app, gint64 sub_id, gint64 enr_id, enum bounce_class k, const char *detail,
                     const char *via, gint64 now, GError **err)
{
    IN_TX(app, err, bounce_body(app, sub_id, enr_id, k, detail, via, now, err));
}

/* ---------------------------------------------------------------- requests */

gboolean life_pause(struct app *app, const struct enrollment_row *e, gint64 until, enum enr_reason why,
                    const char *via, gint64 now, GError **err)
{
    struct enr_change ch = { .set_next = TRUE,
                             .set_pause = TRUE,
                             .paused_until = until,
                             .set_reason = TRUE,
                             .reason = why,
                             .replan = TRUE };
    char *detail = until > 0 ? g_strdup_printf("until %" G_GINT64_FORMAT, until) : g_strdup("");
    gboolean ok = store_begin(app->st, err);
    ok = ok && store_enr_apply(app->st, e->id, EV_ENR_PAUSE, &ch, now, err) &&
         store_dlv_withdraw(app->st, e->id, "paused", err) >= 0 &&
         event(app, now, e->subscriber_id, e->id, "paused", via, detail, err) && store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    g_free(detail);
    return ok;
}

gboolean life_resume(struct app *app, const struct enrollment_row *e, const char *via, gint64 now,
                     GError **err)
{
    const struct course *c = course_find(app->courses, e->course);
    if (!c) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "course '%s' is not loaded", e->course);
        return FALSE;
    }
    /* A pause that ran out resumes at the first slot after its end, as
     * `schedule` showed, however late the tick that notices it (a slot
     * already past then follows late_grace). */
    gint64 after = e->paused_until > 0 && e->paused_until <= now ? e->paused_until : now;
    gint64 next = e->next_lesson > c->n_lessons
                      ? 0
                      : life_slot_after(app, c, e->id, e->tz, e->anchor_at, after, err);
    if (next == -2)
        return FALSE;
    if (next < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "course '%s' has no slot after now", c->slug);
        return FALSE;
    }
    /* Past the end of a shortened course: resuming completes it. */
    struct enr_change ch = { .set_next = TRUE,
                             .next_send_at = next,
                             .set_pause = TRUE,
                             .set_reason = TRUE,
                             .reason = REASON_NONE,
                             .replan = TRUE };
    IN_TX(app, err,
          store_enr_apply(app->st, e->id, EV_ENR_RESUME, &ch, now, err) &&
              (next > 0 || store_enr_apply(app->st, e->id, EV_ENR_COMPLETE, NULL, now, err)) &&
              event(app, now, e->subscriber_id, e->id, "resumed", via, "", err));
}

/* The subscriber has no pending, active or paused course left. */
static gboolean none_left(struct app *app, gint64 sub_id, gboolean *none, GError **err)
{
    GPtrArray *all = store_enrollments_of(app->st, sub_id, err);
    if (!all)
        return FALSE;
    *none = TRUE;
    for (guint i = 0; i < all->len; i++) {
        enum enr_state s = ((struct enrollment_row *)all->pdata[i])->state;
        if (s == ENR_PENDING || s == ENR_ACTIVE || s == ENR_PAUSED)
            *none = FALSE;
    }
    g_ptr_array_unref(all);
    return TRUE;
}

static gboolean stop_body(struct app *app, const struct enrollment_row *e, enum enr_reason why,
                          const char *kind, const char *via, gint64 now, GError **err)
{
    gboolean none = FALSE;
    if (!enr_leave_active(app, e->id, EV_ENR_STOP, why, "left the course", now, err) ||
        !event(app, now, e->subscriber_id, e->id, kind, via, e->course, err) ||
        !none_left(app, e->subscriber_id, &none, err))
        return FALSE;
    /* A bounced subscriber stays bounced: that is the stronger fact. */
    if (none && e->sub_status != SUB_BOUNCED && state_allows(EV_SUB_LEFT, e->sub_status))
        return sub_gone(app, e->subscriber_id, EV_SUB_LEFT, now, err);
    return TRUE;
}

gboolean life_stop(struct app *app, const struct enrollment_row *e, enum enr_reason why, const char *kind,
                   const char *via, gint64 now, GError **err)
{
    IN_TX(app, err, stop_body(app, e, why, kind, via, now, err));
}

static gboolean leave_all_body(struct app *app, const struct sub_row *s, const char *via, gint64 now,
                               int *left, GError **err)
{
    GPtrArray *all = store_enrollments_of(app->st, s->id, err);
    if (!all)
        return FALSE;
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < all->len; i++) {
        const struct enrollment_row *e = all->pdata[i];
        /* A finished course stays finished: it sends nothing more anyway. */
        if (e->state != ENR_PENDING && e->state != ENR_ACTIVE && e->state != ENR_PAUSED)
            continue;
        ok = stop_body(app, e, REASON_SUBSCRIBER, "unsubscribed", via, now, err);
        (*left)++;
    }
    g_ptr_array_unref(all);
    /* Nothing was running: the person still asked to hear nothing more
     * (stop_body already did this when a course was left). */
    if (ok && *left == 0 && state_allows(EV_SUB_LEFT, s->status))
        ok = sub_gone(app, s->id, EV_SUB_LEFT, now, err);
    return ok && event(app, now, s->id, 0, "left-all", via, "", err);
}

int life_leave_all(struct app *app, const struct sub_row *s, const char *via, gint64 now, GError **err)
{
    int left = 0;
    if (!store_begin(app->st, err))
        return -1;
    if (!leave_all_body(app, s, via, now, &left, err) || !store_commit(app->st, err)) {
        store_rollback(app->st);
        return -1;
    }
    return left;
}

gboolean life_confirm(struct app *app, const struct enrollment_row *e, gint64 first, const char *via,
                      gint64 now, GError **err)
{
    struct enr_change ch = { .set_next = TRUE,
                             .next_send_at = first,
                             .anchor_at = now,
                             .set_pause = TRUE,
                             .set_reason = TRUE,
                             .reason = REASON_NONE };
    IN_TX(app, err,
          store_enr_apply(app->st, e->id, EV_ENR_CONFIRM, &ch, now, err) &&
              store_sub_apply(app->st, e->subscriber_id, EV_SUB_ACTIVATE, now, err) &&
              event(app, now, e->subscriber_id, e->id, "confirmed", via, e->course, err));
}

/* The lessons before position n that the enrollment never had get a
 * 'skipped' marker: the next lesson is always the first position with no
 * row, so a lesson skipped by a move stays skipped. */
static gboolean skip_before(struct app *app, const struct course *c, gint64 enr_id, int n, GError **err)
{
    for (int k = 1; k < n; k++)
        if (!store_mark_skip(app->st, enr_id, k, course_lesson(c, k)->slug, err))
            return FALSE;
    return TRUE;
}

/* The checks a move and a restart share: the course is loaded, the
 * subscriber may be mailed, and no lesson of e is on the wire (its outcome
 * would land on the new plan). Returns the course, or NULL with err. */
static const struct course *may_repoint(struct app *app, const struct enrollment_row *e, GError **err)
{
    const struct course *c = course_find(app->courses, e->course);
    if (!c) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", e->course);
        return NULL;
    }
    if (e->sub_status != SUB_ACTIVE && e->sub_status != SUB_PENDING) {
        /* Nobody who left or bounced is mailed again by an operator's move. */
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s is %s; they can subscribe again by mail", e->email,
                    state_name(ENT_SUB, e->sub_status));
        return NULL;
    }
    GPtrArray *sending = store_queue_list(app->st, DLV_SENDING, 0, err);
    if (!sending)
        return NULL;
    gboolean busy = FALSE;
    for (guint i = 0; i < sending->len; i++)
        busy |= ((struct delivery_row *)sending->pdata[i])->enrollment_id == e->id;
    g_ptr_array_unref(sending);
    if (busy) {
        /* 'sending' is also what a coursed killed mid-session leaves
         * behind, until it starts again and queues the row anew. */
        g_set_error(err, CD_ERROR, CD_ERR_BUSY,
                    "a lesson of %s in %s is being sent (or was, when coursed stopped: it is queued "
                    "again when coursed starts); try again once it is sent",
                    e->email, c->slug);
        return NULL;
    }
    return c;
}

gboolean life_restart(struct app *app, const struct enrollment_row *e, const char *via, gint64 now,
                      GError **err)
{
    const struct course *c = may_repoint(app, e, err);
    if (!c)
        return FALSE;
    if (e->state == ENR_PENDING || e->state == ENR_STOPPED) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s's enrollment in %s is %s: %s", e->email, c->slug,
                    state_name(ENT_ENR, e->state),
                    e->state == ENR_PENDING ? "it starts when they confirm" : "they can subscribe again");
        return FALSE;
    }
    /* A pause the person chose ends with the restart; a hold of the
     * daemon's or the operator's (policy, gave-up, course-gone, operator)
     * stays: the course starts again from lesson 1 when it is lifted. */
    gboolean held = e->state == ENR_PAUSED && e->reason != REASON_SUBSCRIBER && e->reason != REASON_NONE;
    struct enr_change ch = { .set_next = !held,
                             .set_lesson = TRUE,
                             .next_lesson = 1,
                             .set_pause = !held,
                             .set_reason = !held,
                             .reason = REASON_NONE,
                             .replan = TRUE,
                             .anchor_at = now,
                             .new_round = TRUE };
    gboolean ok = store_begin(app->st, err);
    /* Every row moves to delivery_history (what went out stays in the
     * audit, and today's lessons still count for max_per_day). */
    ok = ok && store_dlv_withdraw(app->st, e->id, "restarted", err) >= 0 &&
         store_dlv_forget_from(app->st, e->id, 1, now, err);
    if (ok && !held) {
        /* Lesson 1 as for a new subscriber, unless today is already full. */
        ch.next_send_at = life_first(app, c, e->id, e->subscriber_id, e->tz, now);
        gint64 start, end;
        struct pace_rule rule = life_rule(app, c, e->id, e->subscriber_id, e->tz);
        if (ch.next_send_at > 0 && pace_day_bounds(rule.tz, ch.next_send_at, &start, &end)) {
            int n = store_day_count(app->st, e->id, start, end, err);
            ok = n >= 0;
            if (ok && n >= app->cfg->max_per_day)
                ch.next_send_at = life_slot_after(app, c, e->id, e->tz, now, ch.next_send_at, err);
        }
        ok = ok && ch.next_send_at != -2;
        if (ok && ch.next_send_at <= 0) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "course '%s' has no slot after now", c->slug);
            ok = FALSE;
        }
    }
    ok = ok && store_enr_apply(app->st, e->id, held ? EV_ENR_PAUSE : EV_ENR_RESTART, &ch, now, err) &&
         event(app, now, e->subscriber_id, e->id, "restarted", via, c->slug, err) &&
         store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    return ok;
}

gboolean life_move(struct app *app, const struct enrollment_row *e, int n, const char *via, gint64 now,
                   GError **err)
{
    const struct course *c = may_repoint(app, e, err);
    if (!c)
        return FALSE;
    if (n < 1 || n > c->n_lessons) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s has lessons 1 to %d", c->slug, c->n_lessons);
        return FALSE;
    }
    struct enr_change ch = { .set_next = e->state != ENR_STOPPED && e->state != ENR_PENDING,
                             .set_lesson = TRUE,
                             .next_lesson = n,
                             .replan = TRUE };
    char *detail = g_strdup_printf("%s to lesson %d", c->slug, n);
    gboolean ok = store_begin(app->st, err);
    ok = ok && store_dlv_withdraw(app->st, e->id, "moved", err) >= 0 &&
         store_dlv_forget_from(app->st, e->id, n, now, err) && skip_before(app, c, e->id, n, err) &&
         (e->state != ENR_COMPLETED || store_enr_apply(app->st, e->id, EV_ENR_REOPEN, NULL, now, err));
    /* The next slot whose day is not full yet: a lesson sent today and
     * forgotten by this move still counts for max_per_day. */
    if (ok) {
        ch.next_send_at = life_slot_after(app, c, e->id, e->tz, e->anchor_at, now, err);
        ok = ch.next_send_at != -2;
    }
    /* Progress and plan: same state (a paused one stays paused; its resume plans). */
    if (ok && e->state == ENR_PAUSED)
        ch.set_next = FALSE;
    ok = ok &&
         store_enr_apply(app->st, e->id,
                         e->state == ENR_PAUSED    ? EV_ENR_PAUSE
                         : e->state == ENR_STOPPED ? EV_ENR_STOP
                         : e->state == ENR_PENDING ? EV_ENR_REQUEST
                                                   : EV_ENR_PROGRESS,
                         &ch, now, err) &&
         event(app, now, e->subscriber_id, e->id, "moved", via, detail, err) && store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    g_free(detail);
    return ok;
}

gboolean life_cancel(struct app *app, gint64 id, gint64 now, GError **err)
{
    struct delivery_row *d = store_delivery_full(app->st, id, err);
    if (!d)
        return FALSE;
    if (!state_allows(EV_DLV_CANCEL, d->state)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "delivery %" G_GINT64_FORMAT
                    " is %s (only queued, "
                    "deferred or failed ones can be cancelled)",
                    id, state_name(ENT_DLV, d->state));
        store_delivery_free(d);
        return FALSE;
    }
    const struct course *c = course_find(app->courses, d->course);
    gint64 next = -1;
    int next_lesson = d->lesson + 1;
    if (c) {
        next = life_next_slot(app, c, d, &next_lesson, err);
        if (next == -2) {
            store_delivery_free(d);
            return FALSE;
        }
    }
    const struct lesson *l = c ? course_lesson(c, d->lesson) : NULL;
    char *detail = l ? g_strdup_printf("lesson %d (%s)", d->lesson, l->slug)
                     : g_strdup_printf("lesson %d", d->lesson);
    gboolean ok = store_begin(app->st, err);
    ok = ok && store_dlv_apply(app->st, id, EV_DLV_CANCEL, 0, "cancelled by the operator", 0, err) &&
         store_enr_lesson_done(app->st, d, next_lesson, c ? next : -1, FALSE, now, err) &&
         event(app, now, d->subscriber_id, d->enrollment_id, "cancelled", "cli", detail, err) &&
         store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    g_free(detail);
    store_delivery_free(d);
    return ok;
}

/* Retries one failed (or deferred, when named) delivery d. */
static gboolean retry_one(struct app *app, const struct delivery_row *d, gint64 now, GError **err)
{
    struct enrollment_row *e = store_enrollment_get(app->st, d->enrollment_id, err);
    if (!e)
        return FALSE;
    gboolean failure = e->reason == REASON_BOUNCED || e->reason == REASON_POLICY ||
                       e->reason == REASON_GAVE_UP;
    if (e->state == ENR_ACTIVE && e->next_send_at <= 0 && d->state == DLV_FAILED) {
        /* Resumed since, and its next lesson is already in flight: one at
         * a time. The failed one stays failed for a later retry. */
        log_info("delivery %" G_GINT64_FORMAT ": another lesson of enrollment %" G_GINT64_FORMAT
                 " is in flight; retry this one when it is done",
                 d->id, e->id);
        store_enrollment_free(e);
        return TRUE;
    }
    gboolean ok = store_dlv_apply(app->st, d->id, EV_DLV_RETRY, 0, NULL, now, err);
    /* The delivery is in flight again: the enrollment's plan waits for it. */
    struct enr_change ch = {
        .set_next = TRUE, .set_pause = TRUE, .set_reason = TRUE, .reason = REASON_NONE, .replan = TRUE
    };
    if (ok && failure && state_allows(EV_ENR_RETRY, e->state))
        ok = store_enr_apply(app->st, e->id, EV_ENR_RETRY, &ch, now, err);
    else if (ok && e->state == ENR_ACTIVE) {
        /* Resumed since the failure, so a later lesson is planned: the
         * retried one goes first and the plan waits for its outcome (one
         * lesson in flight or a next slot, never both). */
        ok = e->next_send_at <= 0 ||
             store_enr_apply(app->st, e->id, EV_ENR_PROGRESS,
                             &(struct enr_change){ .set_next = TRUE, .replan = TRUE }, now, err);
    } else if (ok) {
        /* left or paused by the person: the lesson waits for them, not sent */
        ok = store_dlv_withdraw(app->st, e->id, "not active", err) >= 0;
    }
    if (ok && e->sub_status == SUB_BOUNCED && failure)
        ok = store_sub_apply(app->st, e->subscriber_id, EV_SUB_REVIVE, now, err);
    if (ok && (e->reason == REASON_BOUNCED || e->reason == REASON_POLICY)) {
        /* every course the same bounce or refusal took out comes back, at
         * its next slot */
        GPtrArray *es = store_enrollments_of(app->st, e->subscriber_id, err);
        ok = ok && es;
        for (guint i = 0; ok && i < es->len; i++) {
            const struct enrollment_row *o = es->pdata[i];
            const struct course *c = course_find(app->courses, o->course);
            if (o->id == e->id || o->reason != e->reason || !c || !state_allows(EV_ENR_RETRY, o->state))
                continue;
            struct enr_change oc = { .set_next = TRUE,
                                     .next_send_at = life_slot_after(app, c, o->id, o->tz, o->anchor_at, now,
                                                                     err),
                                     .set_reason = TRUE,
                                     .reason = REASON_NONE,
                                     .replan = TRUE };
            ok = oc.next_send_at != -2 && store_enr_apply(app->st, o->id, EV_ENR_RETRY, &oc, now, err);
        }
        if (es)
            g_ptr_array_unref(es);
    }
    ok = ok && event(app, now, e->subscriber_id, e->id, "retried", "cli", "", err);
    store_enrollment_free(e);
    return ok;
}

int life_retry(struct app *app, gint64 id, gint64 now, GError **err)
{
    GPtrArray *rows = NULL;
    if (id > 0) {
        GError *e = NULL;
        struct delivery_row *d = store_delivery_full(app->st, id, &e);
        if (!d) {
            if (e->code == CD_ERR_NOT_FOUND) {
                g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND,
                            "delivery %" G_GINT64_FORMAT
                            " is not failed "
                            "or deferred: there is no such delivery",
                            id);
                g_error_free(e);
            } else {
                g_propagate_error(err, e);
            }
            return -1;
        }
        if (d->state != DLV_FAILED && d->state != DLV_DEFERRED) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "delivery %" G_GINT64_FORMAT
                        " is %s (only failed or "
                        "deferred ones can be retried)",
                        id, state_name(ENT_DLV, d->state));
            store_delivery_free(d);
            return -1;
        }
        rows = g_ptr_array_new_with_free_func((GDestroyNotify)store_delivery_free);
        g_ptr_array_add(rows, d);
    } else {
        rows = store_queue_list(app->st, DLV_FAILED, 0, err);
        if (!rows)
            return -1;
    }
    int n = 0;
    gboolean ok = store_begin(app->st, err);
    for (guint i = 0; ok && i < rows->len; i++) {
        const struct delivery_row *d = rows->pdata[i];
        /* An enrollment with another lesson in flight keeps that one. */
        ok = retry_one(app, d, now, err);
        n++;
    }
    g_ptr_array_unref(rows);
    if (!ok || !store_commit(app->st, err)) {
        store_rollback(app->st);
        return -1;
    }
    return n;
}

int life_repair(struct app *app, gint64 now, GError **err)
{
    GArray *ids = store_stuck(app->st, 1000, err);
    if (!ids)
        return -1;
    int n = 0;
    gboolean ok = ids->len == 0 || store_begin(app->st, err);
    for (guint i = 0; ok && i < ids->len; i++) {
        gint64 id = g_array_index(ids, gint64, i);
        log_err("lifecycle: BUG: enrollment %" G_GINT64_FORMAT
                " was active with nothing planned and "
                "nothing in flight; its next lesson is planned now",
                id);
        struct enr_change ch = { .set_next = TRUE, .next_send_at = now };
        ok = store_enr_apply(app->st, id, EV_ENR_PROGRESS, &ch, now, err) &&
             event(app, now, 0, id, "repaired", "daemon", "nothing planned", err);
        n++;
    }
    if (ids->len > 0 && (!ok || !store_commit(app->st, err))) {
        store_rollback(app->st);
        n = -1;
    }
    g_array_free(ids, TRUE);
    return n;
}

gboolean life_replan(struct app *app, gint64 subscriber_id, gint64 now, GError **err)
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
