/* tick.c - owns the delivery cycle:
 *   plan     active enrollments whose slot has come -> one 'queued' delivery
 *            each (the enrollment then has a lesson in flight);
 *   deliver  claim ready deliveries -> compose -> transport -> record.
 * Progress moves only when a lesson is recorded 'sent', in the same
 * transaction, and the next slot is computed from the lesson's own slot, so
 * retries never shift the calendar and lessons stay in order. */
#include <string.h>
#include "tick.h"
#include "compose.h"
#include "course.h"
#include "enroll.h"
#include "error.h"
#include "log.h"
#include "pace.h"

gint64 tick_backoff(const struct config *cfg, int attempts)
{
    gint64 d = cfg->retry_first;
    for (int i = 1; i < attempts && d < cfg->retry_max; i++)
        d *= 2;
    return MIN(d, cfg->retry_max);
}

/* Decide for one due enrollment: queue its lesson now, or move it.
 * Returns the slot it was moved to, 0 if it should be queued, -1 on error. */
static gint64 place(struct app *app, const struct enrollment_row *e, const struct course *c,
                    gint64 now, GError **err)
{
    struct pace_rule rule = enroll_rule(c, e->tz);
    /* Too late: a lesson long past its slot (downtime, a long retry) is not
     * fired at a random hour; it takes the next slot, the rest follow. */
    if (now - e->next_send_at > app->cfg->late_grace)
        return pace_next_slot(&rule, e->anchor_at, now);
    /* Never more than max_per_day in the subscriber's own calendar day. */
    gint64 day_start, day_end;
    if (!pace_day_bounds(rule.tz, now, &day_start, &day_end))
        return pace_next_slot(&rule, e->anchor_at, now);
    int today = store_day_count(app->st, e->id, day_start, day_end, err);
    if (today < 0)
        return -1;
    if (today >= app->cfg->max_per_day)
        return pace_next_slot(&rule, e->anchor_at, day_end - 1);
    return 0;
}

static gboolean plan(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    if (enroll_resume_due(app, now, err) < 0)
        return FALSE;
    for (;;) {
        GPtrArray *due = store_due(app->st, now, (int)app->cfg->batch, err);
        if (!due)
            return FALSE;
        guint n = due->len, skipped = 0;
        if (n == 0) {
            g_ptr_array_unref(due);
            return TRUE;
        }
        if (!store_begin(app->st, err)) {
            g_ptr_array_unref(due);
            return FALSE;
        }
        for (guint i = 0; i < n; i++) {
            struct enrollment_row *e = due->pdata[i];
            const struct course *c = course_find(app->courses, e->course);
            if (!c || e->next_lesson > c->n_lessons) {
                /* A course removed or shortened under a running enrollment:
                 * leave the row alone for the operator. */
                log_warn("enrollment %" G_GINT64_FORMAT " (%s): course '%s' has no lesson %d; skipped",
                         e->id, e->email, e->course, e->next_lesson);
                skipped++;
                continue;
            }
            gint64 moved = place(app, e, c, now, err);
            gboolean ok;
            if (moved < 0 && err && *err) {
                ok = FALSE;
            } else if (moved != 0) {
                log_debug("enrollment %" G_GINT64_FORMAT " (%s): lesson %d moved from %" G_GINT64_FORMAT
                          " to %" G_GINT64_FORMAT, e->id, e->email, e->next_lesson, e->next_send_at, moved);
                ok = moved > 0 ? store_reschedule(app->st, e->id, moved, now, err)
                               : store_pause(app->st, e->id, 0, now, err);
                stats->moved++;
            } else {
                char *msgid = compose_message_id(app->cfg, c->slug, e->id, e->next_lesson);
                ok = store_queue(app->st, e, msgid, now, err);
                g_free(msgid);
                stats->queued++;
            }
            if (!ok) {
                store_rollback(app->st);
                g_ptr_array_unref(due);
                return FALSE;
            }
        }
        g_ptr_array_unref(due);
        if (!store_commit(app->st, err)) {
            store_rollback(app->st);
            return FALSE;
        }
        /* Rows left untouched stay due: stop rather than read them again. */
        if (n < (guint)app->cfg->batch || skipped == n)
            return TRUE;
    }
}

/* The slot of the lesson after d, or -1 when d was the last lesson. A slot
 * already past is fine: plan() applies late_grace and max_per_day to it. */
static gint64 next_slot(const struct course *c, const struct delivery_row *d)
{
    if (d->lesson >= c->n_lessons)
        return -1;
    struct pace_rule rule = enroll_rule(c, d->tz);
    return pace_next_slot(&rule, d->anchor_at, d->slot_at);
}

static gboolean record(struct app *app, GPtrArray *claimed, struct transport_msg *msgs, gint64 now,
                       struct tick_stats *stats, GError **err)
{
    if (!store_begin(app->st, err))
        return FALSE;
    for (guint i = 0; i < claimed->len; i++) {
        struct delivery_row *d = claimed->pdata[i];
        struct transport_msg *m = &msgs[i];
        const struct course *c = course_find(app->courses, d->course);
        char *what = g_strdup_printf("%d %s%s%s", m->code, m->status, *m->status ? " " : "",
                                     m->text ? m->text : "");
        gboolean ok = TRUE;
        if (m->outcome == TRANSPORT_OK) {
            ok = store_mark_sent(app->st, d, m->code, m->text, now, c ? next_slot(c, d) : -1, err);
            stats->sent++;
            log_info("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s sent: %s", d->id, d->course,
                     d->lesson, d->email, what);
        } else if (m->outcome == TRANSPORT_PERM && g_str_has_prefix(m->status, "5.7.")) {
            /* A policy refusal is about us, not the address: pause, and
             * let the operator look. */
            ok = store_mark_failed(app->st, d, m->code, what, "paused", NULL, now, err) &&
                 store_event(app->st, now, d->subscriber_id, d->enrollment_id, "bounce-policy", "daemon",
                             what, err);
            stats->failed++;
            log_warn("operator: delivery %" G_GINT64_FORMAT ": %s lesson %d to %s refused by policy: %s; "
                     "enrollment paused", d->id, d->course, d->lesson, d->email, what);
        } else if (m->outcome == TRANSPORT_PERM) {
            ok = store_mark_failed(app->st, d, m->code, what, "stopped", "bounced", now, err) &&
                 store_event(app->st, now, d->subscriber_id, d->enrollment_id, "bounced", "daemon",
                             what, err);
            stats->failed++;
            log_warn("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s refused: %s; subscriber "
                     "marked bounced", d->id, d->course, d->lesson, d->email, what);
        } else if (now - d->queued_at >= app->cfg->give_up) {
            ok = store_mark_failed(app->st, d, m->code, what, "paused", NULL, now, err) &&
                 store_event(app->st, now, d->subscriber_id, d->enrollment_id, "delivery-gave-up",
                             "daemon", what, err);
            stats->failed++;
            log_warn("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s still failing after %d "
                     "attempts: %s; enrollment paused", d->id, d->course, d->lesson, d->email,
                     d->attempts, what);
        } else {
            gint64 at = now + tick_backoff(app->cfg, d->attempts);
            ok = store_mark_deferred(app->st, d, m->code, what, at, err);
            stats->deferred++;
            log_info("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s deferred (attempt %d): %s",
                     d->id, d->course, d->lesson, d->email, d->attempts, what);
        }
        g_free(what);
        if (!ok) {
            store_rollback(app->st);
            return FALSE;
        }
    }
    return store_commit(app->st, err) || (store_rollback(app->st), FALSE);
}

/* Sends the messages in ready (struct transport_msg *), one SMTP session
 * per messages_per_session, and leaves each outcome in its message. */
static void send_ready(struct app *app, GPtrArray *ready)
{
    size_t per = (size_t)app->cfg->smtp_per_session;
    struct transport_msg *batch = g_new0(struct transport_msg, per);
    for (guint off = 0; off < ready->len; off += (guint)per) {
        size_t k = MIN(per, ready->len - off);
        for (size_t j = 0; j < k; j++)
            batch[j] = *(struct transport_msg *)ready->pdata[off + j];
        transport_send(app->tr, batch, k);
        for (size_t j = 0; j < k; j++)
            *(struct transport_msg *)ready->pdata[off + j] = batch[j];
    }
    g_free(batch);
}

/* System mails (welcome, confirm, replies) go before lessons, so that a
 * welcome arrives ahead of the first lesson. They were rendered when they
 * were queued; here they are only sent and their outcome recorded. */
static gboolean deliver_outbox(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    GPtrArray *claimed = store_outbox_claim(app->st, now, (int)app->cfg->batch, err);
    if (!claimed)
        return FALSE;
    guint n = claimed->len;
    if (n == 0) {
        g_ptr_array_unref(claimed);
        return TRUE;
    }
    char *env_from = compose_env_from(app->cfg);
    struct transport_msg *msgs = g_new0(struct transport_msg, n);
    GPtrArray *ready = g_ptr_array_new();
    for (guint i = 0; i < n; i++) {
        struct outbox_row *r = claimed->pdata[i];
        msgs[i] = (struct transport_msg){ .env_from = env_from, .rcpt = r->rcpt, .data = r->data,
                                          .len = r->len, .id = r->id };
        g_ptr_array_add(ready, &msgs[i]);
    }
    send_ready(app, ready);
    gboolean ok = store_begin(app->st, err);
    for (guint i = 0; ok && i < n; i++) {
        struct outbox_row *r = claimed->pdata[i];
        struct transport_msg *m = &msgs[i];
        char *what = g_strdup_printf("%d %s %s", m->code, m->status, m->text ? m->text : "");
        if (m->outcome == TRANSPORT_OK) {
            ok = store_outbox_mark(app->st, r->id, "sent", m->code, what, now, err);
            stats->sent++;
            log_info("system mail %" G_GINT64_FORMAT " (%s) to %s sent: %s", r->id, r->kind, r->rcpt, what);
        } else if (m->outcome == TRANSPORT_PERM || now - r->created_at >= app->cfg->give_up) {
            ok = store_outbox_mark(app->st, r->id, "failed", m->code, what, now, err);
            stats->failed++;
            log_warn("system mail %" G_GINT64_FORMAT " (%s) to %s failed: %s", r->id, r->kind, r->rcpt, what);
        } else {
            ok = store_outbox_mark(app->st, r->id, "deferred", m->code, what,
                                   now + tick_backoff(app->cfg, r->attempts), err);
            stats->deferred++;
            log_info("system mail %" G_GINT64_FORMAT " (%s) to %s deferred: %s", r->id, r->kind, r->rcpt, what);
        }
        g_free(what);
    }
    ok = ok && store_commit(app->st, err);
    if (!ok)
        store_rollback(app->st);
    for (guint i = 0; i < n; i++)
        transport_msg_clear(&msgs[i]);
    g_ptr_array_unref(ready);
    g_free(msgs);
    g_free(env_from);
    g_ptr_array_unref(claimed);
    return ok;
}

static gboolean deliver(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    GPtrArray *claimed = store_claim(app->st, now, (int)app->cfg->batch, err);
    if (!claimed)
        return FALSE;
    guint n = claimed->len;
    if (n == 0) {
        g_ptr_array_unref(claimed);
        return TRUE;
    }
    struct transport_msg *msgs = g_new0(struct transport_msg, n);
    char **bodies = g_new0(char *, n);
    char **env_from = g_new0(char *, n);
    GPtrArray *ready = g_ptr_array_new();  /* indexes into msgs of what to send */
    for (guint i = 0; i < n; i++) {
        struct delivery_row *d = claimed->pdata[i];
        struct transport_msg *m = &msgs[i];
        m->id = d->id;
        env_from[i] = compose_verp(app, d);
        m->env_from = env_from[i];
        m->rcpt = d->email;
        const struct course *c = course_find(app->courses, d->course);
        GError *e = NULL;
        if (c) {
            struct compose_to to = { d->email, d->name, d->tz ? d->tz : c->tz, d->enrollment_id };
            struct pace_rule rule = enroll_rule(c, d->tz);
            gint64 next = d->lesson < c->n_lessons ? pace_next_slot(&rule, d->anchor_at, MAX(d->slot_at, now)) : -1;
            /* After a pause, resume or zone change the plan moved: this mail
             * carries the new calendar, with a higher SEQUENCE. */
            char *ics = d->calendar_dirty ? enroll_calendar_after(app, c, d->enrollment_id, d->tz,
                                                                  d->anchor_at, d->lesson, d->slot_at,
                                                                  d->calendar_seq, now)
                                          : NULL;
            bodies[i] = compose_lesson(app, c, d->lesson, &to, now, next, ics, &m->len, &e);
            g_free(ics);
        } else {
            g_set_error(&e, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' is not loaded", d->course);
        }
        if (!bodies[i]) {
            /* Cannot build it now (course removed, template broken): retry
             * later rather than lose the lesson. */
            m->outcome = TRANSPORT_TEMP;
            m->text = g_strdup(e->message);
            log_err("delivery %" G_GINT64_FORMAT ": cannot compose %s lesson %d: %s", d->id,
                    d->course, d->lesson, e->message);
            g_error_free(e);
            continue;
        }
        m->data = bodies[i];
        g_ptr_array_add(ready, m);
    }
    send_ready(app, ready);
    gboolean ok = record(app, claimed, msgs, now, stats, err);
    if (!ok)
        log_err("cannot record %u outcomes: %s; they stay 'sending' and are retried after restart",
                n, (*err)->message);
    for (guint i = 0; i < n; i++) {
        transport_msg_clear(&msgs[i]);
        g_free(bodies[i]);
        g_free(env_from[i]);
    }
    g_ptr_array_unref(ready);
    g_free(env_from);
    g_free(bodies);
    g_free(msgs);
    g_ptr_array_unref(claimed);
    return ok;
}

gboolean tick_run(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    memset(stats, 0, sizeof *stats);
    /* One process per database (the daemon's lock) and one tick at a time:
     * anything still 'sending' when a tick starts was orphaned by a crash or
     * by a failed write of its outcome. Sending it again is the price of
     * at-least-once; the fixed Message-ID lets mail clients fold the copy. */
    int orphans = store_recover_sending(app->st, err);
    if (orphans < 0)
        return FALSE;
    if (orphans > 0)
        log_warn("%d deliveries were left 'sending' by an earlier run; queued again", orphans);
    if (!plan(app, now, stats, err))
        return FALSE;
    /* Drain what is ready, batch by batch, within this tick. */
    for (int round = 0; round < 1000; round++) {
        int before = stats->sent + stats->deferred + stats->failed;
        if (!deliver_outbox(app, now, stats, err) || !deliver(app, now, stats, err))
            return FALSE;
        if (stats->sent + stats->deferred + stats->failed == before)
            break;
    }
    return TRUE;
}
