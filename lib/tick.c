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

/* ------------------------------------------------------------- delivery
 * What is ready is claimed in rounds of at most [delivery] batch rows. A
 * round is cut into jobs of messages_per_session, one SMTP session each,
 * run by at most [smtp] sessions threads. The main thread records each
 * job's outcomes as soon as its session ends, and claims the next round
 * while the sessions are busy: the sessions never wait for SQLite, and
 * what a crash can leave sent but unrecorded is the sessions in flight. */

enum round_kind { ROUND_LESSONS, ROUND_OUTBOX };

/* A lesson to compose in the session's thread (templates, cmark, GMime and
 * HMAC are per-message work and thread-safe; the libical work, next slot
 * and calendar, was done on the main thread). */
struct outgoing {
    const struct course *c;
    struct compose_to to;
    int lesson;
    gint64 next;                  /* the next lesson's slot, -1: last */
    char *ics;                    /* the new calendar, or NULL */
};

static void outgoing_free(struct outgoing *o)
{
    if (o) {
        g_free(o->ics);
        g_free(o);
    }
}

struct round;

struct job {
    struct app *app;
    struct round *r;
    guint first, n;               /* rows [first, first + n) of r */
    gint64 now;
    GAsyncQueue *done;            /* the job is pushed here when its session ended */
};

/* One claim: its rows, their messages and outcomes. */
struct round {
    enum round_kind kind;
    GPtrArray *rows;              /* struct delivery_row * or struct outbox_row * */
    struct transport_msg *msgs;   /* one per row */
    struct outgoing **out;        /* lessons: one per row, NULL when there is nothing to send */
    char **env_from;              /* lessons: the VERP sender per row; outbox: [0] for all */
    struct job *jobs;
    guint n_jobs, jobs_left;
};

static void round_free(struct round *r)
{
    if (!r)
        return;
    for (guint i = 0; i < r->rows->len; i++) {
        transport_msg_clear(&r->msgs[i]);
        if (r->out)
            outgoing_free(r->out[i]);
    }
    if (r->env_from)
        for (guint i = 0; i < (r->kind == ROUND_LESSONS ? r->rows->len : 1); i++)
            g_free(r->env_from[i]);
    g_free(r->env_from);
    g_free(r->out);
    g_free(r->msgs);
    g_free(r->jobs);
    g_ptr_array_unref(r->rows);
    g_free(r);
}

/* Compose what needs it, then one SMTP session for the lot. */
static void job_work(struct job *j)
{
    struct round *r = j->r;
    /* Queued behind other sessions when SIGTERM came: not in flight yet,
     * so not started; the rows go back to the queue. */
    gboolean stopping = j->app->stop && *j->app->stop;
    struct transport_msg *batch = g_new0(struct transport_msg, j->n);
    guint *idx = g_new0(guint, j->n);
    char **bodies = g_new0(char *, j->n);
    size_t k = 0;
    for (guint i = j->first; i < j->first + j->n; i++) {
        struct transport_msg *m = &r->msgs[i];
        struct outgoing *o = r->out ? r->out[i] : NULL;
        if (!o && !m->data)
            continue;   /* already failed (no such course) */
        if (stopping) {
            m->outcome = TRANSPORT_UNSENT;
            continue;
        }
        if (o) {
            GError *e = NULL;
            bodies[k] = compose_lesson(j->app, o->c, o->lesson, &o->to, j->now, o->next, o->ics,
                                       &m->len, &e);
            if (!bodies[k]) {
                /* Cannot build it now (template broken): retry later rather
                 * than lose the lesson. */
                m->outcome = TRANSPORT_TEMP;
                m->text = g_strdup(e->message);
                log_err("delivery %" G_GINT64_FORMAT ": cannot compose %s lesson %d: %s", m->id,
                        o->c->slug, o->lesson, e->message);
                g_error_free(e);
                continue;
            }
            m->data = bodies[k];
        }
        batch[k] = *m;
        idx[k++] = i;
    }
    if (k > 0)
        transport_send(j->app->tr, batch, k);
    /* Only the outcome is kept: the bodies of a round never sit in memory
     * together. */
    for (size_t i = 0; i < k; i++) {
        r->msgs[idx[i]] = batch[i];
        if (bodies[i]) {
            r->msgs[idx[i]].data = NULL;
            g_free(bodies[i]);
        }
    }
    g_free(bodies);
    g_free(idx);
    g_free(batch);
}

static void run_job(gpointer data, gpointer user)
{
    (void)user;
    struct job *j = data;
    job_work(j);
    g_async_queue_push(j->done, j);
}

/* The session threads of one tick: at most [smtp] sessions at once, fed
 * in order. Without threads (coursectl, which has no SIGTERM to answer),
 * jobs run in the caller's thread. */
struct sender {
    gboolean threads;   /* run sessions in threads (coursed) */
    GThreadPool *pool;  /* made at the first job: an idle tick starts no thread */
    GAsyncQueue *done;  /* finished jobs, for the main thread to record */
};

static void round_push(struct app *app, struct sender *snd, struct round *r, gint64 now)
{
    guint per = (guint)MAX(app->cfg->smtp_per_session, 1);
    r->n_jobs = r->jobs_left = (r->rows->len + per - 1) / per;
    r->jobs = g_new0(struct job, r->n_jobs);
    if (snd->threads && !snd->pool)
        snd->pool = g_thread_pool_new(run_job, NULL, (gint)MAX(app->cfg->smtp_sessions, 1), TRUE, NULL);
    for (guint k = 0; k < r->n_jobs; k++) {
        r->jobs[k] = (struct job){ app, r, k * per, MIN(per, r->rows->len - k * per), now, snd->done };
        if (snd->pool)
            g_thread_pool_push(snd->pool, &r->jobs[k], NULL);
        else
            run_job(&r->jobs[k], NULL);
    }
}

/* How many messages the next round may carry under the rate limits (the
 * hourly one counted in the database, so it holds across restarts and
 * --once; `inflight` are claimed and not yet recorded). */
static int round_limit(struct app *app, gint64 now, int inflight, GError **err)
{
    gint64 limit = app->cfg->batch;
    if (app->cfg->rate_per_second > 0)
        limit = MIN(limit, app->cfg->rate_per_second);
    if (app->cfg->rate_per_hour > 0) {
        gint64 sent = store_sent_since(app->st, now - 3600, err);
        if (sent < 0)
            return -1;
        limit = MIN(limit, MAX(app->cfg->rate_per_hour - sent - inflight, 0));
    }
    return (int)limit;
}

/* System mails (welcome, confirm, replies) were rendered when they were
 * queued; here they are only sent. */
static struct round *outbox_round(struct app *app, GPtrArray *rows)
{
    struct round *r = g_new0(struct round, 1);
    r->kind = ROUND_OUTBOX;
    r->rows = rows;
    r->msgs = g_new0(struct transport_msg, rows->len);
    r->env_from = g_new0(char *, 1);
    r->env_from[0] = compose_env_from(app->cfg);
    for (guint i = 0; i < rows->len; i++) {
        struct outbox_row *o = rows->pdata[i];
        r->msgs[i] = (struct transport_msg){ .env_from = r->env_from[0], .rcpt = o->rcpt,
                                             .data = o->data, .len = o->len, .id = o->id };
    }
    return r;
}

static struct round *lesson_round(struct app *app, GPtrArray *rows, gint64 now)
{
    guint n = rows->len;
    struct round *r = g_new0(struct round, 1);
    r->kind = ROUND_LESSONS;
    r->rows = rows;
    r->msgs = g_new0(struct transport_msg, n);
    r->out = g_new0(struct outgoing *, n);
    r->env_from = g_new0(char *, n);
    for (guint i = 0; i < n; i++) {
        struct delivery_row *d = rows->pdata[i];
        struct transport_msg *m = &r->msgs[i];
        m->id = d->id;
        r->env_from[i] = compose_verp(app, d);
        m->env_from = r->env_from[i];
        m->rcpt = d->email;
        const struct course *c = course_find(app->courses, d->course);
        if (!c) {
            m->outcome = TRANSPORT_TEMP;
            m->text = g_strdup_printf("course '%s' is not loaded", d->course);
            log_err("delivery %" G_GINT64_FORMAT ": %s", d->id, m->text);
            continue;
        }
        struct outgoing *o = g_new0(struct outgoing, 1);
        o->c = c;
        o->to = (struct compose_to){ d->email, d->name, d->tz ? d->tz : c->tz, d->enrollment_id };
        o->lesson = d->lesson;
        /* The slot the next lesson will get: shown in this mail, and
         * recorded with its outcome. */
        o->next = next_slot(c, d);
        /* After a pause, resume or zone change the plan moved: this mail
         * carries the new calendar, with a higher SEQUENCE. */
        if (d->calendar_dirty)
            o->ics = enroll_calendar_after(app, c, d->enrollment_id, d->tz, d->anchor_at, d->lesson,
                                           d->slot_at, d->calendar_seq, now);
        r->out[i] = o;
    }
    return r;
}

/* Claims the next round and sets it on its way: system mails first (a
 * welcome goes ahead of the first lesson), else lessons. *out is NULL when
 * nothing is ready. Returns FALSE with err on a database error. */
static gboolean claim(struct app *app, struct sender *snd, gint64 now, int inflight, struct round **out,
                      GError **err)
{
    *out = NULL;
    int limit = round_limit(app, now, inflight, err);
    if (limit < 0)
        return FALSE;
    if (limit == 0)
        return TRUE;
    GPtrArray *rows = store_outbox_claim(app->st, now, limit, err);
    if (!rows)
        return FALSE;
    if (rows->len > 0) {
        *out = outbox_round(app, rows);
    } else {
        g_ptr_array_unref(rows);
        rows = store_claim(app->st, now, limit, err);
        if (!rows)
            return FALSE;
        if (rows->len == 0) {
            g_ptr_array_unref(rows);
            return TRUE;
        }
        *out = lesson_round(app, rows, now);
    }
    round_push(app, snd, *out, now);
    return TRUE;
}

static gboolean record_lesson(struct app *app, const struct delivery_row *d, const struct transport_msg *m,
                              gint64 next, gint64 now, struct tick_stats *stats, GError **err)
{
    char *what = g_strdup_printf("%d %s%s%s", m->code, m->status, *m->status ? " " : "",
                                 m->text ? m->text : "");
    gboolean ok = TRUE;
    if (m->outcome == TRANSPORT_UNSENT) {
        ok = store_unclaim(app->st, FALSE, d->id, err);
        log_info("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s not sent: stopping; queued again",
                 d->id, d->course, d->lesson, d->email);
    } else if (m->outcome == TRANSPORT_OK) {
        ok = store_mark_sent(app->st, d, m->code, m->text, now, next, err);
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
    return ok;
}

static gboolean record_system(struct app *app, const struct outbox_row *o, const struct transport_msg *m,
                              gint64 now, struct tick_stats *stats, GError **err)
{
    char *what = g_strdup_printf("%d %s %s", m->code, m->status, m->text ? m->text : "");
    gboolean ok;
    if (m->outcome == TRANSPORT_UNSENT) {
        ok = store_unclaim(app->st, TRUE, o->id, err);
    } else if (m->outcome == TRANSPORT_OK) {
        ok = store_outbox_mark(app->st, o->id, "sent", m->code, what, now, err);
        stats->sent++;
        log_info("system mail %" G_GINT64_FORMAT " (%s) to %s sent: %s", o->id, o->kind, o->rcpt, what);
    } else if (m->outcome == TRANSPORT_PERM || now - o->created_at >= app->cfg->give_up) {
        ok = store_outbox_mark(app->st, o->id, "failed", m->code, what, now, err);
        stats->failed++;
        log_warn("system mail %" G_GINT64_FORMAT " (%s) to %s failed: %s", o->id, o->kind, o->rcpt, what);
    } else {
        ok = store_outbox_mark(app->st, o->id, "deferred", m->code, what,
                               now + tick_backoff(app->cfg, o->attempts), err);
        stats->deferred++;
        log_info("system mail %" G_GINT64_FORMAT " (%s) to %s deferred: %s", o->id, o->kind, o->rcpt, what);
    }
    g_free(what);
    return ok;
}

/* Records one finished session's outcomes in one transaction: each sent
 * lesson with its enrollment's progress. */
static gboolean record(struct app *app, const struct job *j, gint64 now, struct tick_stats *stats,
                       GError **err)
{
    const struct round *r = j->r;
    if (!store_begin(app->st, err))
        return FALSE;
    for (guint i = j->first; i < j->first + j->n; i++) {
        gboolean ok = r->kind == ROUND_OUTBOX
                          ? record_system(app, r->rows->pdata[i], &r->msgs[i], now, stats, err)
                          : record_lesson(app, r->rows->pdata[i], &r->msgs[i],
                                          r->out[i] ? r->out[i]->next : -1, now, stats, err);
        if (!ok) {
            store_rollback(app->st);
            return FALSE;
        }
    }
    return store_commit(app->st, err) || (store_rollback(app->st), FALSE);
}

/* Sends everything ready. Returns FALSE with err on a database error (what
 * could not be recorded stays 'sending' and goes again after a restart: at
 * least once), or with CD_ERR_ABANDONED when the daemon is stopping and
 * sessions still ran after stop_timeout: they are left running, their rows
 * stay 'sending' for the next start, and nothing they use is freed. */
static gboolean deliver_all(struct app *app, struct sender *snd, gint64 now, struct tick_stats *stats,
                            GError **err)
{
    guint sessions = (guint)MAX(app->cfg->smtp_sessions, 1);
    guint running = 0;          /* jobs pushed and not yet recorded */
    guint outbox_left = 0;      /* of which system mails: lessons wait for them */
    int unrecorded = 0;         /* rows claimed and not yet recorded */
    int rounds = 0;
    gboolean more = TRUE, ok = TRUE;
    gint64 next_claim = 0, deadline = 0;
    for (;;) {
        if (app->stop && *app->stop) {
            more = FALSE;   /* a stopping daemon takes no new work */
            if (!deadline)
                deadline = g_get_monotonic_time() + app->cfg->stop_timeout * G_USEC_PER_SEC;
        }
        /* Keep the sessions fed: claim while fewer than [smtp] sessions
         * jobs wait for a thread. rate_per_second: rounds a second apart. */
        gint64 mono = g_get_monotonic_time();
        /* without threads a round runs inline: record it before the next */
        gboolean hungry = snd->pool ? g_thread_pool_unprocessed(snd->pool) < sessions
                                    : snd->threads || running == 0;
        if (more && outbox_left == 0 && hungry) {
            if (mono < next_claim && running == 0) {
                g_usleep((gulong)(next_claim - mono));
                continue;
            }
            if (mono >= next_claim) {
                struct round *r = NULL;
                if (!claim(app, snd, now, unrecorded, &r, err)) {
                    ok = more = FALSE;
                } else if (!r) {
                    more = FALSE;
                } else {
                    running += r->n_jobs;
                    unrecorded += (int)r->rows->len;
                    if (r->kind == ROUND_OUTBOX)
                        outbox_left = r->n_jobs;
                    if (app->cfg->rate_per_second > 0)
                        next_claim = mono + G_USEC_PER_SEC;
                    if (++rounds >= 1000)
                        more = FALSE;
                    continue;
                }
            }
        }
        if (running == 0)
            break;
        gint64 wait = G_USEC_PER_SEC / 10;
        if (more && next_claim > mono)
            wait = MIN(wait, next_claim - mono);
        struct job *j = g_async_queue_timeout_pop(snd->done, (guint64)MAX(wait, 1000));
        if (!j) {
            if (deadline && g_get_monotonic_time() >= deadline) {
                log_warn("stopping: %u SMTP session(s) still running after %" G_GINT64_FORMAT
                         "s; abandoned, their deliveries are recovered at the next start",
                         running, app->cfg->stop_timeout);
                g_clear_error(err);
                g_set_error(err, CD_ERROR, CD_ERR_ABANDONED, "stopping with SMTP sessions in flight");
                return FALSE;
            }
            continue;
        }
        GError *e = NULL;
        if (!record(app, j, now, stats, &e)) {
            log_err("cannot record %u outcomes: %s; they stay 'sending' and are retried after restart",
                    j->n, e->message);
            if (ok)
                g_propagate_error(err, e);
            else
                g_error_free(e);
            ok = more = FALSE;
        }
        running--;
        unrecorded -= (int)j->n;
        struct round *r = j->r;
        if (r->kind == ROUND_OUTBOX)
            outbox_left--;
        if (--r->jobs_left == 0)
            round_free(r);
    }
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
    /* In coursed the sessions always run in threads, so that SIGTERM is
     * answered in time; coursectl sends in its own thread. */
    struct sender snd = { app->stop != NULL, NULL, g_async_queue_new() };
    gboolean ok = deliver_all(app, &snd, now, stats, err);
    if (!ok && err && *err && (*err)->code == CD_ERR_ABANDONED)
        return FALSE;   /* the threads still run: leave the pool be */
    if (snd.pool)
        g_thread_pool_free(snd.pool, FALSE, TRUE);
    g_async_queue_unref(snd.done);
    return ok;
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
