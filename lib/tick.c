/* tick.c - owns the delivery cycle:
 *   plan     active enrollments whose slot has come -> one 'queued' delivery
 *            each (the enrollment then has a lesson in flight);
 *   deliver  claim ready deliveries -> compose -> transport -> record.
 * Progress moves only when a lesson is recorded 'sent', in the same
 * transaction, and the next slot is computed from the lesson's own slot, so
 * retries never shift the calendar and lessons stay in order. */
#include <string.h>
#include "tick.h"
#include "address.h"
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

/* nexts[i]: the next lesson's slot for claimed[i] (-1: last lesson or no
 * course), computed once when the message was prepared. */
static gboolean record(struct app *app, GPtrArray *claimed, struct transport_msg *msgs,
                       const gint64 *nexts, gint64 now, struct tick_stats *stats, GError **err)
{
    if (!store_begin(app->st, err))
        return FALSE;
    for (guint i = 0; i < claimed->len; i++) {
        struct delivery_row *d = claimed->pdata[i];
        struct transport_msg *m = &msgs[i];
        char *what = g_strdup_printf("%d %s%s%s", m->code, m->status, *m->status ? " " : "",
                                     m->text ? m->text : "");
        gboolean ok = TRUE;
        if (m->outcome == TRANSPORT_OK) {
            ok = store_mark_sent(app->st, d, m->code, m->text, now, nexts[i], err);
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
            ok = store_mark_deferred(app->st, d, m->code, what, at, err) &&
                 store_event(app->st, now, d->subscriber_id, d->enrollment_id, "deferred", "daemon", what, err);
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

/* One message on its way out. Lessons are composed inside the session's
 * own thread (templates, cmark, GMime and HMAC are per-message work and
 * thread-safe; the libical work, next slot and calendar, was done before on
 * the main thread); system mails arrive composed. */
struct outgoing {
    struct transport_msg *m;
    const struct course *c;       /* NULL: m->data is ready */
    struct compose_to to;
    int lesson;
    gint64 next;
    char *ics;
    char *body;                   /* composed here; freed by the caller */
};

static void outgoing_free(struct outgoing *o)
{
    g_free(o->ics);
    g_free(o->body);
    g_free(o);
}

struct job {
    struct app *app;
    struct outgoing **items;
    size_t n;
    gint64 now;
};

/* Compose what needs it, then one SMTP session for the lot. */
static void job_work(struct job *j)
{
    struct transport_msg *batch = g_new0(struct transport_msg, j->n);
    struct outgoing **sent = g_new0(struct outgoing *, j->n);
    size_t k = 0;
    for (size_t i = 0; i < j->n; i++) {
        struct outgoing *o = j->items[i];
        if (o->c) {
            GError *e = NULL;
            o->body = compose_lesson(j->app, o->c, o->lesson, &o->to, j->now, o->next, o->ics,
                                     &o->m->len, &e);
            if (!o->body) {
                /* Cannot build it now (template broken): retry later rather
                 * than lose the lesson. */
                o->m->outcome = TRANSPORT_TEMP;
                o->m->text = g_strdup(e->message);
                log_err("delivery %" G_GINT64_FORMAT ": cannot compose %s lesson %d: %s", o->m->id,
                        o->c->slug, o->lesson, e->message);
                g_error_free(e);
                continue;
            }
            o->m->data = o->body;
        }
        batch[k] = *o->m;
        sent[k++] = o;
    }
    if (k > 0)
        transport_send(j->app->tr, batch, k);
    for (size_t i = 0; i < k; i++)
        *sent[i]->m = batch[i];
    g_free(sent);
    g_free(batch);
}

struct pool_state {
    GMutex lock;
    GCond cond;
    guint done;
};

static void run_job(gpointer data, gpointer user)
{
    struct pool_state *ps = user;
    job_work(data);
    g_mutex_lock(&ps->lock);
    ps->done++;
    g_cond_signal(&ps->cond);
    g_mutex_unlock(&ps->lock);
}

/* Sends `ready` (struct outgoing *): one SMTP session per
 * messages_per_session messages, up to [smtp] sessions at once, each in its
 * own thread with its own libESMTP session. Returns FALSE only when the
 * daemon is stopping and sessions were still running after stop_timeout:
 * they are abandoned (their rows stay 'sending' and are recovered at the
 * next start), and nothing of this round may be freed or recorded. */
static gboolean send_ready(struct app *app, GPtrArray *ready, gint64 now)
{
    size_t per = (size_t)app->cfg->smtp_per_session;
    guint jobs = (guint)((ready->len + per - 1) / per);
    if (jobs == 0)
        return TRUE;
    struct job *js = g_new0(struct job, jobs);
    for (guint k = 0; k < jobs; k++) {
        js[k].app = app;
        js[k].items = (struct outgoing **)ready->pdata + k * per;
        js[k].n = MIN(per, ready->len - k * per);
        js[k].now = now;
    }
    /* Without a daemon to stop (coursectl), plain calls do; in coursed the
     * sessions always run in threads so that SIGTERM is answered in time. */
    if (!app->stop) {
        for (guint k = 0; k < jobs; k++)
            job_work(&js[k]);
        g_free(js);
        return TRUE;
    }
    struct pool_state *ps = g_new0(struct pool_state, 1);
    g_mutex_init(&ps->lock);
    g_cond_init(&ps->cond);
    GThreadPool *pool = g_thread_pool_new(run_job, ps, (gint)MIN((guint)app->cfg->smtp_sessions, jobs),
                                          TRUE, NULL);
    for (guint k = 0; k < jobs; k++)
        g_thread_pool_push(pool, &js[k], NULL);
    gint64 deadline = 0;
    g_mutex_lock(&ps->lock);
    while (ps->done < jobs) {
        if (*app->stop && !deadline)
            deadline = g_get_monotonic_time() + app->cfg->stop_timeout * G_USEC_PER_SEC;
        if (deadline && g_get_monotonic_time() >= deadline)
            break;
        g_cond_wait_until(&ps->cond, &ps->lock, g_get_monotonic_time() + G_USEC_PER_SEC / 10);
    }
    gboolean finished = ps->done == jobs;
    g_mutex_unlock(&ps->lock);
    if (!finished) {
        /* The threads still use js, the items and ps: leave them be. */
        log_warn("stopping: %u SMTP session(s) still running after %" G_GINT64_FORMAT
                 "s; abandoned, their deliveries are recovered at the next start",
                 jobs - ps->done, app->cfg->stop_timeout);
        return FALSE;
    }
    g_thread_pool_free(pool, FALSE, TRUE);
    g_mutex_clear(&ps->lock);
    g_cond_clear(&ps->cond);
    g_free(ps);
    g_free(js);
    return TRUE;
}

/* How many messages this round may send under the rate limits (the hourly
 * one counted in the database, so it holds across restarts and --once). */
static int round_limit(struct app *app, gint64 now, GError **err)
{
    gint64 limit = app->cfg->batch;
    if (app->cfg->rate_per_second > 0)
        limit = MIN(limit, app->cfg->rate_per_second);
    if (app->cfg->rate_per_hour > 0) {
        gint64 sent = store_sent_since(app->st, now - 3600, err);
        if (sent < 0)
            return -1;
        limit = MIN(limit, MAX(app->cfg->rate_per_hour - sent, 0));
    }
    return (int)limit;
}

/* System mails (welcome, confirm, replies) go before lessons, so that a
 * welcome arrives ahead of the first lesson. They were rendered when they
 * were queued; here they are only sent and their outcome recorded. */
static gboolean deliver_outbox(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    int limit = round_limit(app, now, err);
    if (limit < 0)
        return FALSE;
    GPtrArray *claimed = limit ? store_outbox_claim(app->st, now, limit, err) : g_ptr_array_new();
    if (!claimed)
        return FALSE;
    guint n = claimed->len;
    if (n == 0) {
        g_ptr_array_unref(claimed);
        return TRUE;
    }
    char *env_from = compose_env_from(app->cfg);
    struct transport_msg *msgs = g_new0(struct transport_msg, n);
    GPtrArray *ready = g_ptr_array_new_with_free_func((GDestroyNotify)outgoing_free);
    for (guint i = 0; i < n; i++) {
        struct outbox_row *r = claimed->pdata[i];
        msgs[i] = (struct transport_msg){ .env_from = env_from, .rcpt = r->rcpt, .data = r->data,
                                          .len = r->len, .id = r->id };
        struct outgoing *o = g_new0(struct outgoing, 1);
        o->m = &msgs[i];
        g_ptr_array_add(ready, o);
    }
    if (!send_ready(app, ready, now)) {
        g_set_error(err, CD_ERROR, CD_ERR_ABANDONED, "stopping with SMTP sessions in flight");
        return FALSE;
    }
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
    int limit = round_limit(app, now, err);
    if (limit < 0)
        return FALSE;
    GPtrArray *claimed = limit ? store_claim(app->st, now, limit, err) : g_ptr_array_new();
    if (!claimed)
        return FALSE;
    guint n = claimed->len;
    if (n == 0) {
        g_ptr_array_unref(claimed);
        return TRUE;
    }
    struct transport_msg *msgs = g_new0(struct transport_msg, n);
    char **env_from = g_new0(char *, n);
    gint64 *nexts = g_new0(gint64, n);
    GPtrArray *ready = g_ptr_array_new_with_free_func((GDestroyNotify)outgoing_free);
    for (guint i = 0; i < n; i++) {
        struct delivery_row *d = claimed->pdata[i];
        struct transport_msg *m = &msgs[i];
        m->id = d->id;
        env_from[i] = compose_verp(app, d);
        m->env_from = env_from[i];
        m->rcpt = d->email;
        const struct course *c = course_find(app->courses, d->course);
        if (!c) {
            m->outcome = TRANSPORT_TEMP;
            m->text = g_strdup_printf("course '%s' is not loaded", d->course);
            log_err("delivery %" G_GINT64_FORMAT ": %s", d->id, m->text);
            continue;
        }
        struct outgoing *o = g_new0(struct outgoing, 1);
        o->m = m;
        o->c = c;
        o->to = (struct compose_to){ d->email, d->name, d->tz ? d->tz : c->tz, d->enrollment_id };
        o->lesson = d->lesson;
        /* The slot the next lesson will get: shown in this mail, and
         * recorded with its outcome. */
        o->next = next_slot(c, d);
        nexts[i] = o->next;
        /* After a pause, resume or zone change the plan moved: this mail
         * carries the new calendar, with a higher SEQUENCE. */
        if (d->calendar_dirty)
            o->ics = enroll_calendar_after(app, c, d->enrollment_id, d->tz, d->anchor_at, d->lesson,
                                           d->slot_at, d->calendar_seq, now);
        g_ptr_array_add(ready, o);
    }
    if (!send_ready(app, ready, now)) {
        g_set_error(err, CD_ERROR, CD_ERR_ABANDONED, "stopping with SMTP sessions in flight");
        return FALSE;
    }
    gboolean ok = record(app, claimed, msgs, nexts, now, stats, err);
    if (!ok)
        log_err("cannot record %u outcomes: %s; they stay 'sending' and are retried after restart",
                n, (*err)->message);
    for (guint i = 0; i < n; i++) {
        transport_msg_clear(&msgs[i]);
        g_free(env_from[i]);
    }
    g_ptr_array_unref(ready);
    g_free(nexts);
    g_free(env_from);
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
    /* Drain what is ready, batch by batch, within this tick; a stopping
     * daemon takes no new work. */
    for (int round = 0; round < 1000 && !(app->stop && *app->stop); round++) {
        gint64 started = g_get_monotonic_time();
        int before = stats->sent + stats->deferred + stats->failed;
        if (!deliver_outbox(app, now, stats, err) || !deliver(app, now, stats, err))
            return FALSE;
        if (stats->sent + stats->deferred + stats->failed == before)
            break;
        /* rate_per_second: each round carries at most that many; pace the
         * rounds a second apart. */
        if (app->cfg->rate_per_second > 0) {
            gint64 left = started + G_USEC_PER_SEC - g_get_monotonic_time();
            if (left > 0)
                g_usleep((gulong)left);
        }
    }
    return TRUE;
}

gboolean tick_send_test(struct app *app, const char *email, const char *course, int n, gint64 now,
                        GError **err)
{
    const struct course *c = course_find(app->courses, course);
    if (!c) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", course);
        return FALSE;
    }
    char *addr = address_normalize(email, err);
    if (!addr)
        return FALSE;
    struct compose_to to = { addr, NULL, NULL, 0 };
    struct pace_rule rule = enroll_rule(c, NULL);
    gint64 next = n < c->n_lessons ? pace_next_slot(&rule, now, now) : -1;
    gsize len = 0;
    char *body = compose_lesson(app, c, n, &to, now, next, NULL, &len, err);
    gboolean ok = FALSE;
    if (body) {
        char *from = compose_env_from(app->cfg);
        struct transport_msg m = { .env_from = from, .rcpt = addr, .data = body, .len = len };
        transport_send(app->tr, &m, 1);
        ok = m.outcome == TRANSPORT_OK;
        if (!ok)
            g_set_error(err, CD_ERROR, m.outcome == TRANSPORT_PERM ? CD_ERR_INVALID : CD_ERR_BUSY,
                        "not sent: %d %s %s", m.code, m.status, m.text ? m.text : "");
        transport_msg_clear(&m);
        g_free(from);
        g_free(body);
    }
    g_free(addr);
    return ok;
}
