/* tick.c - owns the delivery cycle:
 *   plan     active enrollments whose slot has come -> one 'queued' delivery
 *            each (the enrollment then has a lesson in flight);
 *   deliver  claim ready deliveries -> compose -> transport -> record.
 * Outcomes are recorded as they happen: the transport reports each message
 * from its session thread as soon as its reply arrives, and the main thread
 * group-commits what has arrived (one transaction per drain of the queue,
 * so the window a crash can lose is one commit, not one session). An
 * outcome that cannot be written stays in memory (app->unrecorded) and is
 * written first when the database accepts it again; until then nothing new
 * is claimed and nothing is recovered, so nothing known to be sent is sent
 * again by a live process. Every state change goes through lifecycle.c;
 * the next slot comes from schedule.c, as every projection does. */
#include <string.h>
#include "tick.h"
#include "address.h"
#include "compose.h"
#include "course.h"
#include "calendar.h"
#include "enroll.h"
#include "error.h"
#include "lang.h"
#include "lifecycle.h"
#include "log.h"
#include "optin.h"
#include "pace.h"
#include "schedule.h"
gint64 tick_backoff(const struct config *cfg, int attempts)
{
    gint64 d = cfg->retry_first;
    for (int i = 1; i < attempts && d < cfg->retry_max; i++)
        d *= 2;
    return MIN(d, cfg->retry_max);
}

/* Decide for one due enrollment: queue its lesson now, or move it.
 * Returns the slot it was moved to, 0 if it should be queued, -1 on error. */
static gint64 place(struct app *app, const struct enrollment_row *e, const struct course *c, gint64 now,
                    GError **err)
{
    struct pace_rule rule = life_rule(app, c, e->id, e->subscriber_id, e->tz);
    /* Too late: a lesson long past its slot (downtime, a long retry) is not
     * fired at a random hour; it takes the next slot, the rest follow. */
    if (now - e->next_send_at > app->cfg->late_grace) {
        gint64 slot = life_slot_after(app, c, e->id, e->tz, e->anchor_at, now, err);
        return slot == -2 ? -1 : slot;
    }
    /* Never more than max_per_day in the subscriber's own calendar day (the
     * same rule schedule_after() applied when it planned this slot). */
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

/* One due enrollment: queued, moved, or taken out of the way (course gone,
 * or shortened below its position) so that it is never read again. */
static gboolean plan_one(struct app *app, const struct enrollment_row *e, gint64 now,
                         struct tick_stats *stats, GError **err)
{
    const struct course *c = course_find(app->courses, e->course);
    if (!c) {
        log_warn("operator: enrollment %" G_GINT64_FORMAT
                 " (%s): course '%s' is not loaded; paused until "
                 "it is back (coursectl resume)",
                 e->id, e->email, e->course);
        stats->moved++;
        return life_course_gone(app, e->id, e->subscriber_id, 0, now, err);
    }
    if (e->next_lesson > c->n_lessons) {
        /* Shortened below this reader's position: every lesson it still has
         * was sent. */
        log_info("enrollment %" G_GINT64_FORMAT " (%s): %s has %d lessons now; completed", e->id, e->email,
                 c->slug, c->n_lessons);
        struct enr_change ch = { .set_next = TRUE };
        return store_enr_apply(app->st, e->id, EV_ENR_COMPLETE, &ch, now, err);
    }
    gint64 moved = place(app, e, c, now, err);
    if (moved < 0 && err && *err)
        return FALSE;
    if (moved < 0) {
        stats->moved++;
        return life_course_gone(app, e->id, e->subscriber_id, 0, now, err);
    }
    if (moved > 0) {
        log_debug("enrollment %" G_GINT64_FORMAT " (%s): lesson %d moved from %" G_GINT64_FORMAT
                  " to %" G_GINT64_FORMAT,
                  e->id, e->email, e->next_lesson, e->next_send_at, moved);
        stats->moved++;
        return store_reschedule(app->st, e->id, moved, now, err);
    }
    char *msgid = compose_lesson_id(app->cfg, c, e->id, e->round, e->next_lesson);
    gboolean ok = store_queue(app->st, e, course_lesson(c, e->next_lesson)->slug, msgid, now, err);
    g_free(msgid);
    stats->queued++;
    return ok;
}

static gboolean plan(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    if (enroll_resume_due(app, now, err) < 0)
        return FALSE;
    /* Bounded: every row read is queued, moved past now, or taken out of
     * 'active', so a page never comes back. */
    for (int rounds = 0; rounds < 10000; rounds++) {
        GPtrArray *due = store_due(app->st, now, (int)app->cfg->batch, err);
        if (!due)
            return FALSE;
        guint n = due->len;
        if (n == 0) {
            g_ptr_array_unref(due);
            return TRUE;
        }
        if (!store_begin(app->st, err)) {
            g_ptr_array_unref(due);
            return FALSE;
        }
        for (guint i = 0; i < n; i++) {
            if (!plan_one(app, due->pdata[i], now, stats, err)) {
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
        if (n < (guint)app->cfg->batch)
            return TRUE;
    }
    return TRUE;
}

/* ------------------------------------------------------------- delivery
 * What is ready is claimed in rounds of at most [delivery] batch rows. A
 * round is cut into jobs of messages_per_session, one SMTP session each,
 * run by at most [smtp] sessions threads. Each message's outcome comes back
 * through the `done` queue as soon as its reply arrives; the main thread
 * drains the queue and commits what it found in one transaction, and
 * claims the next round while the sessions are busy. */

enum round_kind { ROUND_LESSONS, ROUND_OUTBOX };

/* The shortest interval between two group commits while sessions run. */
#define TICK_COMMIT_US 10000

/* A lesson to compose in the session's thread (templates, cmark, GMime and
 * HMAC are per-message work and thread-safe; the libical work, next slot
 * and calendar, was done on the main thread). */
struct outgoing {
    const struct course *c;
    struct compose_to to;
    int lesson;
    gint64 next;     /* the next lesson's slot, -1: last */
    int next_lesson; /* its position (n_lessons + 1: none) */
    char *ics;       /* the new calendar, or NULL */
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
    guint first, n; /* rows [first, first + n) of r */
    gint64 now;
    GAsyncQueue *done; /* reports, then the job itself, go here */
};

/* One claim: its rows, their messages. Rows move into outcomes as their
 * reports are taken (the round keeps NULL in their place). */
struct round {
    enum round_kind kind;
    GPtrArray *rows;            /* struct delivery_row * or struct outbox_row * */
    struct transport_msg *msgs; /* one per row */
    struct outgoing **out;      /* lessons: one per row, NULL when there is nothing to send */
    char **env_from;            /* the VERP sender per row */
    gboolean *gone;             /* lessons: the course is not loaded */
    char **rcpt;                /* each message's recipient, owned: a row may be recorded
                                   * and freed while its session still logs it */
    struct job *jobs;
    guint n_jobs, jobs_left;
};

/* What the session threads hand to the main thread: one message's outcome,
 * or (msg == FALSE) the end of a job. */
struct report {
    gboolean msg;
    struct job *job;
    guint i; /* row of job->r */
    enum transport_outcome outcome;
    int code;
    char status[16];
    char *text;
};

/* An outcome waiting to be written, self-contained: it outlives its round
 * (and a reload) when the database refuses it for a while. */
struct outcome {
    enum round_kind kind;
    void *row;       /* owned: struct delivery_row * or struct outbox_row * */
    gint64 next;     /* lessons: the next lesson's slot, -1: last */
    int next_lesson; /* lessons: its position, computed with the slot */
    gboolean gone;   /* lessons: the course is not loaded */
    enum transport_outcome outcome;
    int code;
    char status[16];
    char *text;
};

static void outcome_free(struct outcome *o)
{
    if (!o)
        return;
    if (o->kind == ROUND_OUTBOX)
        store_outbox_free(o->row);
    else
        store_delivery_free(o->row);
    g_free(o->text);
    g_free(o);
}

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
        for (guint i = 0; i < r->rows->len; i++)
            g_free(r->env_from[i]);
    g_free(r->env_from);
    g_free(r->out);
    g_free(r->gone);
    if (r->rcpt)
        g_strfreev(r->rcpt);
    g_free(r->msgs);
    g_free(r->jobs);
    g_ptr_array_unref(r->rows);
    g_free(r);
}

/* transport_report_fn: in the session's thread. */
static void on_report(const struct transport_msg *m, void *arg)
{
    struct job *j = arg;
    struct report *rp = g_new0(struct report, 1);
    rp->msg = TRUE;
    rp->job = j;
    rp->i = m->tag;
    rp->outcome = m->outcome;
    rp->code = m->code;
    g_strlcpy(rp->status, m->status, sizeof rp->status);
    rp->text = g_strdup(m->text ? m->text : "");
    g_async_queue_push(j->done, rp);
}

static void report_local(struct job *j, guint i, enum transport_outcome o, const char *text)
{
    struct transport_msg m = { .tag = i, .outcome = o, .text = (char *)text };
    on_report(&m, j);
}

/* Compose what needs it, then one SMTP session for the lot. */
static void job_work(struct job *j)
{
    struct round *r = j->r;
    /* Queued behind other sessions when SIGTERM came: not in flight yet,
     * so not started; the rows go back to the queue. */
    gboolean stopping = j->app->stop && *j->app->stop;
    struct transport_msg *batch = g_new0(struct transport_msg, j->n);
    char **bodies = g_new0(char *, j->n);
    size_t k = 0;
    for (guint i = j->first; i < j->first + j->n; i++) {
        struct transport_msg *m = &r->msgs[i];
        struct outgoing *o = r->out ? r->out[i] : NULL;
        if (r->gone && r->gone[i]) {
            report_local(j, i, TRANSPORT_UNSENT, "course not loaded");
            continue;
        }
        if (stopping) {
            report_local(j, i, TRANSPORT_UNSENT, "stopping");
            continue;
        }
        if (o) {
            GError *e = NULL;
            bodies[k] = compose_lesson(j->app, o->c, o->lesson, &o->to, j->now, o->next, o->ics, &m->len, &e);
            if (!bodies[k]) {
                /* Cannot build it now (template broken): retry later rather
                 * than lose the lesson. */
                log_err("delivery %" G_GINT64_FORMAT ": cannot compose %s lesson %d: %s", m->id, o->c->slug,
                        o->lesson, e->message);
                report_local(j, i, TRANSPORT_TEMP, e->message);
                g_error_free(e);
                continue;
            }
            m->data = bodies[k];
        }
        batch[k] = *m;
        batch[k].tag = i;
        batch[k].text = NULL;
        k++;
    }
    if (k > 0)
        transport_send(j->app->tr, batch, k, on_report, j);
    /* Only the outcome is kept: the bodies of a round never sit in memory
     * together. */
    for (size_t i = 0; i < k; i++) {
        transport_msg_clear(&batch[i]);
        r->msgs[batch[i].tag].data = NULL;
        g_free(bodies[i]);
    }
    g_free(bodies);
    g_free(batch);
}

static void run_job(gpointer data, gpointer user)
{
    (void)user;
    struct job *j = data;
    job_work(j);
    struct report *end = g_new0(struct report, 1);
    end->job = j;
    g_async_queue_push(j->done, end);
}

/* The session threads of one tick: at most [smtp] sessions at once, fed
 * in order. Without threads (coursectl, which has no SIGTERM to answer),
 * jobs run in the caller's thread. */
struct sender {
    gboolean threads;  /* run sessions in threads (coursed) */
    GThreadPool *pool; /* made at the first job: an idle tick starts no thread */
    GAsyncQueue *done; /* struct report *, for the main thread to record */
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

/* Renders the claimed system mails that were queued as what to send
 * (compose_spec_new), now, from the templates of the snapshot this tick
 * runs; rows queued rendered by an older version are sent as they are. A
 * row that cannot be rendered (its course gone, a template that fails)
 * fails alone and loudly: logged for the operator, 'failed' in
 * `coursectl queue` with why; it leaves rows, and the rest goes on.
 * Returns FALSE only on a database error. */
static gboolean outbox_render(struct app *app, GPtrArray *rows, GError **err)
{
    for (guint i = 0; i < rows->len;) {
        struct outbox_row *o = rows->pdata[i];
        if (!o->spec) {
            i++;
            continue;
        }
        const struct course *c = o->course ? course_find(app->courses, o->course) : NULL;
        GError *e = NULL;
        gsize len = 0;
        char *msg = NULL;
        if (o->course && !c)
            g_set_error(&e, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' is not loaded", o->course);
        else
            /* dated when it was decided, as when it was rendered then: its
             * links' expiry and its dates count from that moment */
            msg = compose_system_spec(app, o->kind, c, o->spec, o->created_at, &len, &e);
        if (msg && strcmp(o->kind, "confirm") == 0 && o->enrollment_id > 0) {
            /* the consent record keeps what the person was sent, exactly */
            char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)msg, len);
            gboolean ok = store_consent_mail(app->st, o->enrollment_id, sum, err);
            g_free(sum);
            if (!ok) {
                g_free(msg);
                return FALSE; /* the rows stay 'sending': recovered at the next tick */
            }
        }
        if (msg) {
            g_free(o->data);
            o->data = msg;
            o->len = len;
            i++;
            continue;
        }
        char *what = g_strdup_printf("not rendered: %s", e ? e->message : "no reason given");
        log_warn("operator: system mail %" G_GINT64_FORMAT " (%s) to %s failed, %s; the other mail goes on",
                 o->id, o->kind, o->rcpt, what);
        g_clear_error(&e);
        gboolean ok = store_mail_apply(app->st, o->id, EV_MAIL_FAIL, 0, what, 0, err);
        g_free(what);
        if (!ok)
            return FALSE; /* the rows stay 'sending': recovered at the next tick */
        g_ptr_array_remove_index(rows, i);
    }
    return TRUE;
}

/* System mails (welcome, confirm, replies), rendered by outbox_render,
 * each from its own VERP sender (its bounces come back to it). */
static struct round *outbox_round(struct app *app, GPtrArray *rows)
{
    struct round *r = g_new0(struct round, 1);
    r->kind = ROUND_OUTBOX;
    r->rows = rows;
    r->msgs = g_new0(struct transport_msg, rows->len);
    r->env_from = g_new0(char *, rows->len);
    r->rcpt = g_new0(char *, rows->len + 1);
    for (guint i = 0; i < rows->len; i++) {
        struct outbox_row *o = rows->pdata[i];
        r->rcpt[i] = g_strdup(o->rcpt);
        r->env_from[i] = compose_verp_mail(app, o);
        r->msgs[i] = (struct transport_msg){
            .env_from = r->env_from[i], .rcpt = r->rcpt[i], .data = o->data, .len = o->len, .id = o->id
        };
        r->msgs[i].what = "system mail"; /* its id is the outbox's, not a delivery's */
    }
    return r;
}

static struct round *lesson_round(struct app *app, GPtrArray *rows, gint64 now, GError **err)
{
    guint n = rows->len;
    struct round *r = g_new0(struct round, 1);
    r->kind = ROUND_LESSONS;
    r->rows = rows;
    r->msgs = g_new0(struct transport_msg, n);
    r->out = g_new0(struct outgoing *, n);
    r->env_from = g_new0(char *, n);
    r->gone = g_new0(gboolean, n);
    r->rcpt = g_new0(char *, n + 1);
    for (guint i = 0; i < n; i++) {
        struct delivery_row *d = rows->pdata[i];
        struct transport_msg *m = &r->msgs[i];
        m->id = d->id;
        r->env_from[i] = compose_verp(app, d);
        m->env_from = r->env_from[i];
        r->rcpt[i] = g_strdup(d->email);
        m->rcpt = r->rcpt[i];
        const struct course *c = course_find(app->courses, d->course);
        if (!c) {
            r->gone[i] = TRUE;
            continue;
        }
        struct outgoing *o = g_new0(struct outgoing, 1);
        o->c = c;
        o->to = (struct compose_to){ d->email, d->name, d->tz ? d->tz : c->tz, d->enrollment_id,
                                     d->message_id };
        o->lesson = d->lesson;
        r->out[i] = o;
        /* The slot the next lesson will get: shown in this mail, and
         * recorded with its outcome. */
        o->next = life_next_slot(app, c, d, &o->next_lesson, err);
        if (o->next == -2) {
            round_free(r);
            return NULL;
        }
        /* After a pause, resume or zone change the plan moved: this mail
         * carries the new calendar, with a higher SEQUENCE. */
        if (d->calendar_dirty)
            o->ics = calendar_after(app, c, d->enrollment_id, d->tz, d->anchor_at, d->round, o->next,
                                    d->calendar_seq, now);
    }
    return r;
}

/* Claims up to limit ready lessons in one transaction: the live ones move
 * to 'sending'; a moot one (its enrollment or subscriber no longer active)
 * is withdrawn by the lifecycle. Returns the claimed rows or NULL. */
static GPtrArray *claim_lessons(struct app *app, gint64 now, int limit, GError **err)
{
    if (!store_begin(app->st, err))
        return NULL;
    GPtrArray *claimed = g_ptr_array_new_with_free_func((GDestroyNotify)store_delivery_free);
    /* A page wholly moot is followed by the next one (bounded). */
    for (int pages = 0; (int)claimed->len < limit && pages < 1000; pages++) {
        int want = limit - (int)claimed->len;
        GPtrArray *page = store_ready(app->st, now, want, err);
        if (!page)
            goto fail;
        gboolean ok = TRUE;
        for (guint i = 0; ok && i < page->len; i++) {
            struct delivery_row *d = page->pdata[i];
            if (!d->live) {
                ok = life_moot(app, d, now, err);
                continue;
            }
            const struct course *c = course_find(app->courses, d->course);
            if (c && now - d->slot_at > app->cfg->late_grace) {
                /* Its own row counts for the day it was queued, and a
                 * lesson before it was placed by place(), so the day
                 * rule already holds: the plain next slot. */
                struct pace_rule rule = life_rule(app, c, d->enrollment_id, d->subscriber_id, d->tz);
                gint64 slot = pace_next_slot(&rule, d->anchor_at, now);
                if (slot > 0) {
                    log_info("delivery %" G_GINT64_FORMAT
                             ": %s lesson %d to %s is past late_grace; it "
                             "waits for its next slot",
                             d->id, d->course, d->lesson, d->email);
                    ok = life_late(app, d, slot, err);
                    continue;
                }
            }
            ok = store_dlv_apply(app->st, d->id, EV_DLV_CLAIM, 0, NULL, 0, err);
            if (ok) {
                d->state = DLV_SENDING;
                d->attempts++;
                g_ptr_array_add(claimed, d);
                page->pdata[i] = NULL;
            }
        }
        guint got = page->len;
        g_ptr_array_unref(page);
        if (!ok)
            goto fail;
        if ((int)got < want)
            break;
    }
    if (!store_commit(app->st, err))
        goto fail;
    return claimed;
fail:
    store_rollback(app->st);
    g_ptr_array_unref(claimed);
    return NULL;
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
    if (!outbox_render(app, rows, err)) {
        g_ptr_array_unref(rows);
        return FALSE;
    }
    if (rows->len > 0) {
        *out = outbox_round(app, rows);
    } else {
        g_ptr_array_unref(rows);
        rows = claim_lessons(app, now, limit, err);
        if (!rows)
            return FALSE;
        if (rows->len == 0) {
            g_ptr_array_unref(rows);
            return TRUE;
        }
        *out = lesson_round(app, rows, now, err);
        if (!*out)
            return FALSE; /* the rows stay 'sending': recovered at the next tick */
    }
    round_push(app, snd, *out, now);
    return TRUE;
}

static gboolean record_lesson(struct app *app, const struct outcome *o, gint64 now, struct tick_stats *stats,
                              GError **err)
{
    const struct delivery_row *d = o->row;
    char *what = g_strdup_printf("%d %s%s%s", o->code, o->status, *o->status ? " " : "",
                                 o->text ? o->text : "");
    gboolean ok = TRUE;
    if (o->gone) {
        ok = life_course_gone(app, d->enrollment_id, d->subscriber_id, d->id, now, err);
        log_warn("operator: delivery %" G_GINT64_FORMAT ": course '%s' is not loaded; enrollment paused",
                 d->id, d->course);
    } else if (o->outcome == TRANSPORT_UNSENT) {
        ok = life_unclaimed(app, d, err);
        log_info("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s not sent: stopping; queued again", d->id,
                 d->course, d->lesson, d->email);
    } else if (o->outcome == TRANSPORT_OK) {
        ok = life_sent(app, d, o->code, o->text, o->next, o->next_lesson, now, err);
        stats->sent++;
        log_info("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s sent: %s", d->id, d->course, d->lesson,
                 d->email, what);
    } else if (o->outcome == TRANSPORT_PERM) {
        /* A policy refusal is about us, not the address: the courses
         * pause for the operator. Anything else 5xx: the address is dead.
         * Either way exactly what a bounce report of that class does. */
        enum bounce_class k = g_str_has_prefix(o->status, "5.7.") ? BOUNCE_POLICY : BOUNCE_HARD;
        ok = life_refused(app, d, k, o->code, what, now, err);
        stats->failed++;
        if (k == BOUNCE_POLICY)
            log_warn("operator: delivery %" G_GINT64_FORMAT
                     ": %s lesson %d to %s refused by policy: %s; "
                     "the subscriber's courses are paused",
                     d->id, d->course, d->lesson, d->email, what);
        else
            log_warn("delivery %" G_GINT64_FORMAT
                     ": %s lesson %d to %s refused: %s; subscriber "
                     "marked bounced, every course stopped",
                     d->id, d->course, d->lesson, d->email, what);
    } else if (now - d->queued_at >= app->cfg->give_up) {
        ok = life_gave_up(app, d, o->code, what, now, err);
        stats->failed++;
        log_warn("delivery %" G_GINT64_FORMAT
                 ": %s lesson %d to %s still failing after %d "
                 "attempts: %s; enrollment paused",
                 d->id, d->course, d->lesson, d->email, d->attempts, what);
    } else {
        ok = life_deferred(app, d, o->code, what, now + tick_backoff(app->cfg, d->attempts), now, err);
        stats->deferred++;
        log_info("delivery %" G_GINT64_FORMAT ": %s lesson %d to %s deferred (attempt %d): %s", d->id,
                 d->course, d->lesson, d->email, d->attempts, what);
    }
    g_free(what);
    return ok;
}

static gboolean record_system(struct app *app, const struct outcome *oc, gint64 now, struct tick_stats *stats,
                              GError **err)
{
    const struct outbox_row *o = oc->row;
    char *what = g_strdup_printf("%d %s %s", oc->code, oc->status, oc->text ? oc->text : "");
    gboolean ok;
    if (oc->outcome == TRANSPORT_UNSENT) {
        ok = store_mail_apply(app->st, o->id, EV_MAIL_UNCLAIM, 0, NULL, 0, err);
    } else if (oc->outcome == TRANSPORT_OK) {
        ok = store_mail_apply(app->st, o->id, EV_MAIL_SENT, oc->code, what, now, err);
        stats->sent++;
        log_info("system mail %" G_GINT64_FORMAT " (%s) to %s sent: %s", o->id, o->kind, o->rcpt, what);
    } else if (oc->outcome == TRANSPORT_PERM) {
        /* As for a lesson (record_lesson): 5.7.x is about us, anything else
         * 5xx says the address is dead (life_mail_bounce). */
        enum bounce_class k = g_str_has_prefix(oc->status, "5.7.") ? BOUNCE_POLICY : BOUNCE_HARD;
        ok = life_mail_refused(app, o->id, o->subscriber_id, o->rcpt, k, oc->code, what, now, err);
        stats->failed++;
        log_warn("system mail %" G_GINT64_FORMAT " (%s) to %s refused: %s; %s", o->id, o->kind, o->rcpt, what,
                 o->subscriber_id <= 0 ? "not a subscriber, nothing to mark"
                 : k == BOUNCE_POLICY  ? "a policy refusal: the subscriber's courses are paused"
                                       : "a hard bounce, like a lesson's");
    } else if (now - o->created_at >= app->cfg->give_up) {
        ok = store_mail_apply(app->st, o->id, EV_MAIL_FAIL, oc->code, what, 0, err);
        stats->failed++;
        log_warn("system mail %" G_GINT64_FORMAT " (%s) to %s failed: %s", o->id, o->kind, o->rcpt, what);
    } else {
        ok = store_mail_apply(app->st, o->id, EV_MAIL_DEFER, oc->code, what,
                              now + tick_backoff(app->cfg, o->attempts), err);
        stats->deferred++;
        log_info("system mail %" G_GINT64_FORMAT " (%s) to %s deferred: %s", o->id, o->kind, o->rcpt, what);
    }
    g_free(what);
    return ok;
}

/* Writes every outcome waiting in app->unrecorded in one transaction (the
 * group commit). On failure they all stay, for the next try. */
static gboolean flush(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    GPtrArray *u = app->unrecorded;
    if (!u || u->len == 0)
        return TRUE;
    struct tick_stats s = { 0 };
    if (!store_begin(app->st, err))
        return FALSE;
    for (guint i = 0; i < u->len; i++) {
        const struct outcome *o = u->pdata[i];
        gboolean ok = o->kind == ROUND_OUTBOX ? record_system(app, o, now, &s, err)
                                              : record_lesson(app, o, now, &s, err);
        if (!ok) {
            store_rollback(app->st);
            return FALSE;
        }
    }
    if (!store_commit(app->st, err)) {
        store_rollback(app->st);
        return FALSE;
    }
    stats->sent += s.sent;
    stats->deferred += s.deferred;
    stats->failed += s.failed;
    g_ptr_array_set_size(u, 0);
    return TRUE;
}

/* Takes one report off the queue: an outcome joins app->unrecorded (its
 * row moves out of the round); the end of a job frees the round after its
 * last job. Returns TRUE for the end of a job. */
static gboolean take(struct app *app, struct report *rp)
{
    struct round *r = rp->job->r;
    gboolean end = !rp->msg;
    if (rp->msg) {
        struct outcome *o = g_new0(struct outcome, 1);
        o->kind = r->kind;
        o->row = r->rows->pdata[rp->i];
        r->rows->pdata[rp->i] = NULL;
        o->next = r->out && r->out[rp->i] ? r->out[rp->i]->next : -1;
        o->next_lesson = r->out && r->out[rp->i] ? r->out[rp->i]->next_lesson : 0;
        o->gone = r->gone && r->gone[rp->i];
        o->outcome = rp->outcome;
        o->code = rp->code;
        g_strlcpy(o->status, rp->status, sizeof o->status);
        o->text = rp->text;
        rp->text = NULL;
        g_ptr_array_add(app->unrecorded, o);
    } else if (--r->jobs_left == 0) {
        round_free(r);
    }
    g_free(rp->text);
    g_free(rp);
    return end;
}

/* The state of one tick's delivery loop (deliver_all and its steps). */
struct loop {
    guint sessions;    /* [smtp] sessions */
    guint running;     /* jobs pushed and not yet ended */
    guint outbox_left; /* of which system mails: lessons wait for them */
    int rounds;
    int inflight;  /* rows claimed whose outcome has not come back */
    gboolean more; /* claiming goes on */
    gboolean ok;   /* no database error yet (err is set once) */
    gint64 next_claim, deadline, next_flush, flush_wait, last_flush;
};

/* A stopping daemon takes no new work and gives the sessions
 * stop_timeout; a waiting reload lets the rounds in flight finish (on the
 * snapshot they started with) and be recorded, claims nothing, and the
 * tick returns so that the loop can swap: a long tick never holds a
 * SIGHUP back. */
static void loop_check_signals(const struct app *app, struct loop *L)
{
    if (app->stop && *app->stop) {
        L->more = FALSE;
        if (!L->deadline)
            L->deadline = g_get_monotonic_time() + app->cfg->stop_timeout * G_USEC_PER_SEC;
    }
    if (app->yield && *app->yield)
        L->more = FALSE;
}

/* Group commit: whatever arrived is written in one transaction. A commit
 * costs an fsync, so at least a few milliseconds of outcomes (or a few
 * hundred) are gathered per commit, which keeps the crash window at a
 * message or two per session. While the database refuses, retry at
 * growing intervals, logging once per step, and claim nothing. */
static void loop_group_commit(struct app *app, struct loop *L, gint64 mono, gint64 now,
                              struct tick_stats *stats, GError **err)
{
    if (app->unrecorded->len > 0 && L->flush_wait == 0 && app->unrecorded->len < 256 &&
        mono < L->last_flush + TICK_COMMIT_US && L->running > 0)
        L->next_flush = L->last_flush + TICK_COMMIT_US;
    if (app->unrecorded->len == 0 || mono < L->next_flush)
        return;
    GError *e = NULL;
    L->last_flush = mono;
    if (flush(app, now, stats, &e)) {
        L->flush_wait = 0;
        L->next_flush = 0;
        return;
    }
    L->flush_wait = L->flush_wait ? MIN(L->flush_wait * 2, G_USEC_PER_SEC) : G_USEC_PER_SEC / 20;
    L->next_flush = mono + L->flush_wait;
    log_err(
        "cannot record %u outcomes: %s; they are kept and written when the database "
        "accepts them (retry in %" G_GINT64_FORMAT " ms); nothing new is claimed",
        app->unrecorded->len, e->message, L->flush_wait / 1000);
    if (L->ok)
        g_propagate_error(err, e);
    else
        g_error_free(e);
    L->ok = L->more = FALSE;
}

/* Keeps the sessions fed: claims a round while fewer than [smtp] sessions
 * jobs wait for a thread (rate_per_second: rounds a second apart; without
 * threads a round runs inline and is recorded before the next). Nothing is
 * claimed once a group commit failed, or while system mails are out.
 * Returns TRUE when the loop should go round again at once. */
static gboolean loop_claim(struct app *app, struct sender *snd, struct loop *L, gint64 mono, gint64 now,
                           GError **err)
{
    gboolean hungry = snd->pool ? g_thread_pool_unprocessed(snd->pool) < L->sessions
                                : snd->threads || L->running == 0;
    /* rate_per_second: the next round waits for this one to end, and then
     * a second (set in loop_collect), so that no second at the server ever
     * sees two rounds, however late a busy machine sends one. */
    if (!L->more || L->outbox_left > 0 || !hungry || (app->cfg->rate_per_second > 0 && L->running > 0))
        return FALSE;
    if (mono < L->next_claim && L->running == 0) {
        g_usleep((gulong)(L->next_claim - mono));
        return TRUE;
    }
    if (mono < L->next_claim)
        return FALSE;
    struct round *r = NULL;
    if (!claim(app, snd, now, L->inflight + (int)app->unrecorded->len, &r, err)) {
        L->ok = L->more = FALSE;
        return FALSE;
    }
    if (!r) {
        L->more = FALSE;
        return FALSE;
    }
    L->running += r->n_jobs;
    L->inflight += (int)r->rows->len;
    if (r->kind == ROUND_OUTBOX)
        L->outbox_left = r->n_jobs;
    if (app->cfg->rate_per_second > 0)
        L->next_claim = mono + G_USEC_PER_SEC;
    if (++L->rounds >= 1000)
        L->more = FALSE;
    return TRUE;
}

/* Waits for the next report of a session (at most until the next claim or
 * commit is due, and a tenth of a second) and drains what is there: one
 * commit for all of it. FALSE with CD_ERR_ABANDONED when the daemon is
 * stopping and stop_timeout ran out. */
static gboolean loop_collect(struct app *app, struct sender *snd, struct loop *L, gint64 mono, GError **err)
{
    gint64 wait = G_USEC_PER_SEC / 10;
    if (L->more && L->next_claim > mono)
        wait = MIN(wait, L->next_claim - mono);
    if (app->unrecorded->len > 0 && L->next_flush > mono)
        wait = MIN(wait, L->next_flush - mono);
    /* While outcomes gather for the next commit, sleep until it is due
     * rather than wake for every report. */
    struct report *rp;
    if (app->unrecorded->len > 0 && L->next_flush > mono && L->flush_wait == 0) {
        g_usleep((gulong)MAX(wait, 100));
        rp = g_async_queue_try_pop(snd->done);
        if (!rp)
            return TRUE;
    } else {
        rp = g_async_queue_timeout_pop(snd->done, (guint64)MAX(wait, 1000));
    }
    if (!rp) {
        if (L->deadline && g_get_monotonic_time() >= L->deadline) {
            log_warn("stopping: %u SMTP session(s) still running after %" G_GINT64_FORMAT
                     "s; abandoned, their deliveries are recovered at the next start",
                     L->running, app->cfg->stop_timeout);
            g_clear_error(err);
            g_set_error(err, CD_ERROR, CD_ERR_ABANDONED, "stopping with SMTP sessions in flight");
            return FALSE;
        }
        return TRUE;
    }
    int drained = 0;
    do {
        gboolean outbox = rp->job->r->kind == ROUND_OUTBOX;
        if (take(app, rp)) {
            L->running--;
            if (outbox)
                L->outbox_left--;
        } else {
            L->inflight--;
        }
    } while (++drained < 10000 && (rp = g_async_queue_try_pop(snd->done)));
    if (app->cfg->rate_per_second > 0 && L->running == 0)
        L->next_claim = MAX(L->next_claim, g_get_monotonic_time() + G_USEC_PER_SEC);
    return TRUE;
}

/* Sends everything ready. Returns FALSE with err on a database error
 * (outcomes not written stay in app->unrecorded for the next tick), or
 * with CD_ERR_ABANDONED when the daemon is stopping and sessions still ran
 * after stop_timeout: they are left running, their rows stay 'sending' for
 * the next start, and nothing they use is freed. */
static gboolean deliver_all(struct app *app, struct sender *snd, gint64 now, struct tick_stats *stats,
                            GError **err)
{
    struct loop L = { .sessions = (guint)MAX(app->cfg->smtp_sessions, 1), .more = TRUE, .ok = TRUE };
    for (;;) {
        loop_check_signals(app, &L);
        gint64 mono = g_get_monotonic_time();
        loop_group_commit(app, &L, mono, now, stats, err);
        if (loop_claim(app, snd, &L, mono, now, err))
            continue;
        if (L.running == 0) {
            if (app->unrecorded->len == 0 || !L.more)
                break;
            continue;
        }
        if (!loop_collect(app, snd, &L, mono, err))
            return FALSE;
    }
    /* The last outcomes of the tick. */
    if (app->unrecorded->len > 0) {
        GError *e = NULL;
        if (!flush(app, now, stats, &e)) {
            log_err("cannot record %u outcomes: %s; they are kept for the next tick", app->unrecorded->len,
                    e->message);
            if (L.ok)
                g_propagate_error(err, e);
            else
                g_error_free(e);
            L.ok = FALSE;
        }
    }
    return L.ok;
}

gboolean tick_run(struct app *app, gint64 now, struct tick_stats *stats, GError **err)
{
    memset(stats, 0, sizeof *stats);
    if (!app->unrecorded)
        app->unrecorded = g_ptr_array_new_with_free_func((GDestroyNotify)outcome_free);
    /* Outcomes an earlier tick could not write come first: until they are
     * written, the rows they name are 'sending' and must not be recovered
     * (they were sent), and nothing new is claimed. */
    if (app->unrecorded->len > 0) {
        if (!flush(app, now, stats, err))
            return FALSE;
        log_info("recorded the outcomes an earlier tick could not write");
    }
    /* One process per database (the daemon's lock) and one tick at a time:
     * anything still 'sending' when a tick starts was orphaned by a crash.
     * Sending it again is the price of at-least-once; the fixed Message-ID
     * lets mail clients fold the copy. */
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
        return FALSE; /* the threads still run: leave the pool be */
    if (snd.pool)
        g_thread_pool_free(snd.pool, FALSE, TRUE);
    /* Reports that came after the loop ended (none when it ended normally). */
    struct report *rp;
    while ((rp = g_async_queue_try_pop(snd.done)))
        take(app, rp);
    g_async_queue_unref(snd.done);
    /* The ends of courses reached in this tick: their complete mails go
     * with the next tick's system mails. */
    return ok && optin_complete_due(app, now, err) >= 0;
}

/* The system mails in the order a reader meets them (each one of
 * render_is_system()), for previews and send-test of a whole course. */
static const char *const test_mails[] = { "confirm", "welcome",  "status",  "help",
                                          "error",   "complete", "goodbye", NULL };

const char *const *tick_test_system_mails(void)
{
    return test_mails;
}

/* The paragraph of the complete mail offering c's next course, with the
 * fake token in its confirm link ("" without a next course). */
static char *sample_next_step(const struct app *app, const struct course *c)
{
    const struct course *nc = c->next_course ? course_find(app->courses, c->next_course) : NULL;
    if (!nc)
        return g_strdup("");
    char *url = g_strdup_printf("%s/c/%s", app->cfg->base_url, COMPOSE_PREVIEW_TOKEN);
    char *md = compose_next_offer(app, c, nc, url);
    g_free(url);
    return md;
}

char *tick_sample_system(const struct app *app, const char *which, const struct course *c,
                         const struct compose_to *to, gint64 now, struct compose_parts *parts, gsize *len,
                         GError **err)
{
    const char *zone = schedule_zone(c, to->tz);
    gint64 first = schedule_first(app->cfg, c, to->tz, now);
    const struct lang *words = app_lang(app, c);
    char *first_date = first > 0 ? compose_date(app, c, first, zone, !strcmp(which, "welcome"))
                                 : g_strdup(lang_get(words, "none_planned"));
    char *next = first > 0 && c->n_lessons > 1
                     ? compose_date(app, c, schedule_preview_next(c, to->tz, 1, first), zone, FALSE)
                     : g_strdup(lang_get(words, "none_planned"));
    char had[16], steps[16];
    g_snprintf(had, sizeof had, "%d", !strcmp(which, "goodbye") ? MIN(2, c->n_lessons) : 1);
    g_snprintf(steps, sizeof steps, "%d", c->n_lessons);
    char *progress = lang_say(words, !strcmp(which, "goodbye") ? "progress_left" : "progress_active", FALSE,
                              "sent", had, "steps", steps, (char *)NULL);
    char *url = g_strdup_printf("%s/c/%s", app->cfg->base_url, COMPOSE_PREVIEW_TOKEN);
    char *reply_to = g_strdup_printf("%s+confirm-%s@%s", c->slug, COMPOSE_PREVIEW_TOKEN, app->cfg->domain);
    char *courses = compose_courses_list(app, c);
    char *next_step = sample_next_step(app, c);
    struct render_var vars[] = {
        { "first_date", first_date, FALSE },
        { "zone", zone, FALSE },
        { "next_date", next, FALSE },
        { "progress", progress, FALSE },
        { "confirm_url", url, TRUE },
        { "courses", courses, TRUE },
        { "next_step", next_step, TRUE },
        { "reason",
          "\"Europe/Paaris\" is not a time zone we know. Use a name like Europe/Berlin or "
          "America/New_York.",
          FALSE },
    };
    /* As the real ones go: the confirmation, help, error and goodbye
     * without List-Unsubscribe (there is nothing, or not yet, to leave). */
    gboolean confirm = !strcmp(which, "confirm");
    struct compose_system_opts opts = {
        .vars = vars,
        .n_vars = G_N_ELEMENTS(vars),
        .reply_to = confirm ? reply_to : NULL,
        .list_headers = !strcmp(which, "welcome") || !strcmp(which, "status") || !strcmp(which, "complete"),
        .parts = parts,
    };
    char *out = compose_system(app, which, c, to, &opts, now, len, err);
    g_free(next_step);
    g_free(courses);
    g_free(reply_to);
    g_free(url);
    g_free(progress);
    g_free(next);
    g_free(first_date);
    return out;
}

/* Lesson n of c as a test: "[TEST] " first in the subject and a Message-ID
 * of its own, so that a mail program never folds re-tests together. */
static char *test_lesson(const struct app *app, const struct course *c, int n, const struct compose_to *to,
                         gint64 now, gsize *len, GError **err)
{
    const struct lesson *l = course_lesson(c, n);
    char *uuid = g_uuid_string_random();
    char *msgid = g_strdup_printf("%s.test-%s.%s@%s", l ? l->slug : "lesson", uuid, c->slug,
                                  app->cfg->domain);
    struct compose_to t = *to;
    t.message_id = msgid;
    char *body = compose_lesson(app, c, n, &t, now, schedule_preview_next(c, to->tz, n, now), NULL, len, err);
    g_free(msgid);
    g_free(uuid);
    return body;
}

/* Adds what `which` names ("N", a system mail, or "all") to msgs. */
static gboolean test_messages(const struct app *app, const struct course *c, const char *which,
                              const struct compose_to *to, gint64 now, GArray *msgs, GError **err)
{
    gboolean all = !strcmp(which, "all");
    int from = 0, to_n = -1;
    if (all) {
        from = 1;
        to_n = c->n_lessons;
    } else if (!render_is_system(which)) {
        char *end = NULL;
        gint64 n = g_ascii_strtoll(which, &end, 10);
        if (*end || n < 1 || n > c->n_lessons) {
            g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' has lessons 1 to %d, not '%s'", c->slug,
                        c->n_lessons, which);
            return FALSE;
        }
        from = to_n = (int)n;
    }
    for (int n = from; n >= 1 && n <= to_n; n++) {
        struct transport_msg m = { 0 };
        m.data = test_lesson(app, c, n, to, now, &m.len, err);
        if (!m.data)
            return FALSE;
        g_array_append_val(msgs, m);
    }
    for (const char *const *w = test_mails; *w; w++) {
        if (!all && strcmp(*w, which) != 0)
            continue;
        struct transport_msg m = { 0 };
        m.data = tick_sample_system(app, *w, c, to, now, NULL, &m.len, err);
        if (!m.data)
            return FALSE;
        g_array_append_val(msgs, m);
    }
    return TRUE;
}

int tick_send_test(struct app *app, const char *email, const char *course, const char *which, gint64 now,
                   GError **err)
{
    const struct course *c = course_find(app->courses, course);
    if (!c) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", course);
        return -1;
    }
    char *addr = address_normalize(email, err);
    if (!addr)
        return -1;
    struct compose_to to = { .email = addr, .preview = TRUE, .subject_prefix = "[TEST] " };
    GArray *msgs = g_array_new(FALSE, TRUE, sizeof(struct transport_msg));
    char *from = compose_env_from(app->cfg);
    int sent = -1;
    if (test_messages(app, c, which, &to, now, msgs, err)) {
        for (guint i = 0; i < msgs->len; i++) {
            struct transport_msg *m = &g_array_index(msgs, struct transport_msg, i);
            m->env_from = from;
            m->rcpt = addr;
        }
        transport_send(app->tr, (struct transport_msg *)(void *)msgs->data, msgs->len, NULL, NULL);
        sent = 0;
        for (guint i = 0; i < msgs->len; i++) {
            const struct transport_msg *m = &g_array_index(msgs, struct transport_msg, i);
            if (m->outcome == TRANSPORT_OK)
                sent++;
            else if (err && !*err)
                g_set_error(err, CD_ERROR, m->outcome == TRANSPORT_PERM ? CD_ERR_INVALID : CD_ERR_BUSY,
                            "not sent: %d %s %s", m->code, m->status, m->text ? m->text : "");
        }
        if (sent < (int)msgs->len)
            sent = -1;
    }
    for (guint i = 0; i < msgs->len; i++) {
        struct transport_msg *m = &g_array_index(msgs, struct transport_msg, i);
        g_free((char *)m->data);
        transport_msg_clear(m);
    }
    g_array_free(msgs, TRUE);
    g_free(from);
    g_free(addr);
    return sent;
}
