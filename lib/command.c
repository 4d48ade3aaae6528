/* command.c - owns the effects of inbound mail: commands from subscribers,
 * confirmation replies, and bounces.
 *
 * Bounce rule (documented in the README): a VERP token names the delivery,
 * so a forged bounce cannot touch anyone. A bounce without a valid token
 * (to a course address, to bounces@ bare, a forged token) is matched by its
 * failed addresses and only recorded as a soft signal ('unverified-bounce'
 * in the audit trail): it never changes a state, and is not counted with
 * the soft bounces below. The worst class reported counts:
 *   hard (5.x.x but 5.7.x)  subscriber 'bounced', every course stopped;
 *   policy (5.7.x)          courses paused, the operator warned in the log
 *                           and in the audit trail (coursectl log / status);
 *   soft (4.x.x)            counted; soft bounces on 3 or more different
 *                           days within 14 days count as one hard bounce.
 *
 * Complaints (ARF): matched to one subscriber through the original they
 * carry (a VERP or unsubscribe token, checked; else the lesson Message-ID
 * <slug>.e<enrollment>[r<round>].<course>@domain, with the complained
 * address when the report names one); that subscriber leaves every course
 * and is suppressed (no import brings them back; their own confirmation
 * does); never answered. */
#include <string.h>
#include "command.h"
#include "bounce.h"
#include "course.h"
#include "enroll.h"
#include "error.h"
#include "lang.h"
#include "lifecycle.h"
#include "log.h"
#include "note.h"
#include "notify.h"
#include "optin.h"
#include "pace.h"
#include "subscriber.h"
#include "token.h"

#define SOFT_DAYS 3
#define SOFT_WINDOW (14 * 86400)

static gboolean reply(struct app *app, const struct inbound *r, const char *which, const struct course *c,
                      gint64 sub_id, gint64 enr_id, const struct render_var *vars, size_t n, gint64 now,
                      GError **err)
{
    if (!r->may_reply || !c)
        return TRUE;
    struct compose_system_opts opts = { vars, n, NULL, NULL, FALSE };
    /* no name from the mail: notify_queue greets only a trusted one */
    struct compose_to to = { r->sender, NULL, NULL, enr_id };
    return notify_queue(app, which, c, &to, sub_id, &opts, TRUE, NULL, now, err);
}

static gboolean reply_error(struct app *app, const struct inbound *r, const struct course *c, gint64 sub_id,
                            const char *reason, gint64 now, GError **err)
{
    struct render_var vars[] = { { "reason", reason, FALSE } };
    return reply(app, r, "error", c, sub_id, 0, vars, 1, now, err);
}

/* The recipient that counts: the last hard one, else the first policy
 * refusal, else the first (soft). Its class, the worst reported, decides
 * what happens. */
static const struct bounce_rcpt *worst_bounce(const GPtrArray *bounces)
{
    enum bounce_class worst = BOUNCE_SOFT;
    const struct bounce_rcpt *which = bounces->pdata[0];
    for (guint i = 0; i < bounces->len; i++) {
        const struct bounce_rcpt *b = bounces->pdata[i];
        if (b->klass == BOUNCE_HARD || (b->klass == BOUNCE_POLICY && worst == BOUNCE_SOFT)) {
            worst = b->klass;
            which = b;
        }
    }
    return which;
}

/* Records a soft bounce of delivery d; soft bounces on SOFT_DAYS different
 * days within SOFT_WINDOW make *worst hard (a mailbox full for weeks is
 * gone). */
static gboolean count_soft(struct app *app, gint64 sub_id, gint64 enr_id, const char *email,
                           const char *detail, gint64 now, enum bounce_class *worst, GString *res,
                           GError **err)
{
    if (!life_bounce(app, sub_id, enr_id, BOUNCE_SOFT, detail, "email", now, err))
        return FALSE;
    gint64 days = store_event_days(app->st, sub_id, "bounce-soft", now - SOFT_WINDOW, err);
    if (days < 0)
        return FALSE;
    if (days >= SOFT_DAYS) {
        *worst = BOUNCE_HARD;
        g_string_append_printf(res, "soft bounces on %" G_GINT64_FORMAT " days in 14: ", days);
    } else {
        g_string_append_printf(res, "soft bounce counted for %s (%" G_GINT64_FORMAT " day(s) in 14)", email,
                               days);
    }
    return TRUE;
}

/* A bounce that no token vouches for can be forged by anyone: its failed
 * addresses that are subscribers get an 'unverified-bounce' event (a soft
 * signal for the operator), and nothing else happens. */
static gboolean apply_unverified_bounce(struct app *app, const struct inbound *r, gint64 now, GString *res,
                                        const char *why, GError **err)
{
    int matched = 0;
    for (guint i = 0; i < r->bounces->len && i < 10; i++) {
        const struct bounce_rcpt *b = r->bounces->pdata[i];
        GError *e = NULL;
        struct sub_row *s = subscriber_get(app, b->address, &e);
        if (!s) {
            if (e->code != CD_ERR_NOT_FOUND && e->code != CD_ERR_INVALID) {
                g_propagate_error(err, e);
                return FALSE;
            }
            g_error_free(e);
            continue;
        }
        char *detail = g_strdup_printf("%s %s (%s), %s", b->address, b->status, bounce_class_name(b->klass),
                                       why);
        gboolean ok = store_event(app->st, now, s->id, 0, "unverified-bounce", "email", detail, err);
        g_free(detail);
        store_sub_free(s);
        if (!ok)
            return FALSE;
        matched++;
    }
    if (matched)
        g_string_append_printf(res,
                               "bounce %s: %d subscriber(s) matched by address, recorded as a soft signal "
                               "only (a forged bounce must not stop anyone)",
                               why, matched);
    else
        g_string_append_printf(res, "bounce %s: ignored (a forged bounce must not unsubscribe anyone)", why);
    return TRUE;
}

/* A bounce of system mail o (its VERP token checked): what a lesson's
 * bounce does (life_mail_bounce), soft bounces counted the same way. */
static gboolean apply_mail_bounce(struct app *app, const struct inbound *r, const struct outbox_row *o,
                                  gint64 now, GString *res, GError **err)
{
    const struct bounce_rcpt *which = worst_bounce(r->bounces);
    enum bounce_class worst = which->klass;
    char *detail = g_strdup_printf("%s %s (%s) system mail %" G_GINT64_FORMAT " (%s)", which->address,
                                   which->status, bounce_class_name(worst), o->id, o->kind);
    gboolean ok = TRUE;
    if (o->subscriber_id <= 0) {
        g_string_append_printf(res,
                               "bounce of %s mail %" G_GINT64_FORMAT " to a non-subscriber: nothing to mark",
                               o->kind, o->id);
        g_free(detail);
        return TRUE;
    }
    if (worst == BOUNCE_SOFT)
        ok = count_soft(app, o->subscriber_id, o->enrollment_id, o->rcpt, detail, now, &worst, res, err);
    if (ok && worst != BOUNCE_SOFT)
        ok = life_mail_bounce(app, o->subscriber_id, o->rcpt, worst, detail, "email", now, err);
    if (ok && worst == BOUNCE_HARD) {
        g_string_append_printf(res, "hard bounce of the %s mail: %s bounced (or its pending request dead)",
                               o->kind, o->rcpt);
        log_info("bounce: %s", detail);
    } else if (ok && worst == BOUNCE_POLICY) {
        g_string_append_printf(res, "policy refusal of the %s mail: %s paused; the operator must look",
                               o->kind, o->rcpt);
        log_warn("operator: %s refused our %s mail by policy (%s); their courses are paused", o->rcpt,
                 o->kind, which->status);
    }
    g_free(detail);
    return ok;
}

/* The system mail a VERP token names, if the token is its (system mails'
 * tokens are bound to COMPOSE_VERP_MAIL instead of a course). NULL if not;
 * NULL with err on a database error. */
static struct outbox_row *mail_of_token(struct app *app, const char *token, gint64 id, gint64 now,
                                        GError **err)
{
    GError *e = NULL;
    struct outbox_row *o = store_outbox_get(app->st, id, &e);
    if (!o) {
        if (e->code != CD_ERR_NOT_FOUND)
            g_propagate_error(err, e);
        else
            g_error_free(e);
        return NULL;
    }
    if (!token_verify(app->key, token, TOKEN_BOUNCE, o->rcpt, COMPOSE_VERP_MAIL, now, NULL)) {
        store_outbox_free(o);
        return NULL;
    }
    return o;
}

static gboolean apply_bounce(struct app *app, const struct inbound *r, gint64 now, GString *res, GError **err)
{
    enum token_purpose p;
    gint64 id = 0;
    if (!r->bounces || r->bounces->len == 0) {
        g_string_append(res, "bounce naming no failed recipient: nothing to do");
        return TRUE;
    }
    if (!r->token || !app->key || !token_peek(r->token, &p, &id, NULL) || p != TOKEN_BOUNCE)
        return apply_unverified_bounce(app, r, now, res, "without a valid VERP token", err);
    GError *e = NULL;
    struct delivery_row *d = store_delivery_full(app->st, id, &e);
    if (!d || !token_verify(app->key, r->token, TOKEN_BOUNCE, d->email, d->course, now, NULL)) {
        if (e && e->code != CD_ERR_NOT_FOUND) {
            g_propagate_error(err, e);
            store_delivery_free(d);
            return FALSE;
        }
        g_clear_error(&e);
        store_delivery_free(d);
        struct outbox_row *o = mail_of_token(app, r->token, id, now, &e);
        if (e) {
            g_propagate_error(err, e);
            return FALSE;
        }
        if (o) {
            gboolean ok = apply_mail_bounce(app, r, o, now, res, err);
            store_outbox_free(o);
            return ok;
        }
        return apply_unverified_bounce(app, r, now, res, "with a forged or unknown VERP token", err);
    }
    const struct bounce_rcpt *which = worst_bounce(r->bounces);
    enum bounce_class worst = which->klass;
    char *detail = g_strdup_printf("%s %s (%s) delivery %" G_GINT64_FORMAT, which->address, which->status,
                                   bounce_class_name(worst), d->id);
    gboolean ok = TRUE;
    if (worst == BOUNCE_SOFT)
        ok = count_soft(app, d->subscriber_id, d->enrollment_id, d->email, detail, now, &worst, res, err);
    /* The same lifecycle event as a 5xx at SMTP time: by construction. */
    if (ok && worst != BOUNCE_SOFT)
        ok = life_bounce(app, d->subscriber_id, d->enrollment_id, worst, detail, "email", now, err);
    if (ok && worst == BOUNCE_HARD) {
        g_string_append_printf(res, "hard bounce: %s marked bounced, no more lessons", d->email);
        log_info("bounce: %s", detail);
    } else if (ok && worst == BOUNCE_POLICY) {
        g_string_append_printf(res, "policy refusal: %s paused; the operator must look", d->email);
        log_warn("operator: %s refused our mail by policy (%s); their courses are paused", d->email,
                 which->status);
    }
    g_free(detail);
    store_delivery_free(d);
    return ok;
}

/* The subscriber's enrollment in r->course, or 0. */
static gint64 enrollment_of(struct app *app, const struct sub_row *s, const char *course, GError **err)
{
    return s ? store_enrollment_find(app->st, s->id, course, err) : 0;
}

/* "unsubscribe all": every course at once, one goodbye (in the course the
 * mail was sent to). Nothing the sender wrote is repeated. */
static gboolean leave_all(struct app *app, const struct inbound *r, const struct course *c, gint64 now,
                          GString *res, GError **err)
{
    GError *e = NULL;
    struct sub_row *s = subscriber_get(app, r->sender, &e);
    if (!s && e->code != CD_ERR_NOT_FOUND) {
        g_propagate_error(err, e);
        return FALSE;
    }
    g_clear_error(&e);
    if (!c && app->courses->len)
        c = app->courses->pdata[0];
    if (!s) {
        char *why = g_strdup_printf("%s is not subscribed to any course.", r->sender);
        gboolean ok = reply_error(app, r, c, 0, why, now, err);
        g_free(why);
        g_string_append(res, "unsubscribe all: not subscribed; error mail sent");
        return ok;
    }
    int n = life_leave_all(app, s, "email", now, err);
    gboolean ok = n >= 0;
    if (ok && c && r->may_reply) {
        struct render_var vars[] = { { "progress", lang_get(app_lang(app, c), "progress_left_all"), FALSE } };
        struct compose_system_opts opts = { vars, 1, NULL, NULL, FALSE };
        struct compose_to to = { s->email, s->name, s->tz, 0 };
        ok = notify_queue(app, "goodbye", c, &to, s->id, &opts, TRUE, NULL, now, err);
    }
    if (ok)
        g_string_append_printf(res, "%s left every course (%d running); goodbye sent", r->sender, n);
    store_sub_free(s);
    return ok;
}

/* What a command's steps work on. s and enr are filled by the enrollment
 * lookup, so only for commands whose row needs an enrollment (then both
 * are set when the handler runs). A step sets done when it has answered
 * the mail and nothing after it may run. */
struct command_ctx {
    struct app *app;
    const struct inbound *r;
    const struct course *c; /* the course of the address written to, or NULL */
    gint64 now;
    GString *res; /* the one-line result, logged and stored with the mail */
    struct sub_row *s;
    gint64 enr;
    gboolean done;
};

typedef gboolean (*command_fn)(struct command_ctx *x, GError **err);

static gboolean cmd_subscribe(struct command_ctx *x, GError **err)
{
    const struct inbound *r = x->r;
    const char *tz = r->tz;
    gboolean guessed = r->tz_guessed;
    if (tz && !pace_tz_valid(tz) && r->has_offset) {
        tz = inbound_zone_for_offset(r->date_offset); /* a bad tz=: fall back to the guess */
        guessed = tz != NULL;
    }
    int rc = optin_request(x->app, r->sender, r->course, r->name, tz, guessed, "email", x->now, err);
    static const char *what[] = { "confirmation sent", "a confirmation was sent in the last 24h: nothing new",
                                  "hourly confirmation (or reply) cap reached: nothing sent",
                                  "already subscribed: status sent",
                                  "an earlier confirmation to this address bounced: nothing sent" };
    if (rc < 0)
        return FALSE;
    g_string_append_printf(x->res, "subscribe %s to %s: %s", r->sender, r->course, what[rc]);
    return TRUE;
}

/* The help mail lists every course: it also answers whatever we could not
 * read, so a confused sender learns what to write. */
static gboolean send_help(struct command_ctx *x, const char *result, GError **err)
{
    char *list = compose_courses_list(x->app, x->c); /* in the language of the help mail */
    struct render_var vars[] = { { "courses", list, TRUE } };
    gboolean ok = reply(x->app, x->r, "help", x->c, 0, 0, vars, 1, x->now, err);
    g_free(list);
    g_string_append(x->res, result);
    return ok;
}

static gboolean cmd_help(struct command_ctx *x, GError **err)
{
    return send_help(x, "help sent", err);
}

static gboolean cmd_unknown(struct command_ctx *x, GError **err)
{
    return send_help(x, "unknown command: help sent", err);
}

/* Runs before the sender is looked up, because neither needs the sender to
 * be enrolled where the mail went: "unsubscribe all" leaves every course,
 * and a token (List-Unsubscribe, +unsubscribe-TOKEN) names its enrollment
 * whoever forwards it. A refused token falls back to the sender, and the
 * result says so (the lookup's result follows it directly). */
static gboolean unsubscribe_first(struct command_ctx *x, GError **err)
{
    if (x->r->all) {
        x->done = TRUE;
        return leave_all(x->app, x->r, x->c, x->now, x->res, err);
    }
    if (!x->r->token)
        return TRUE;
    GError *e = NULL;
    if (optin_leave_token(x->app, x->r->token, "email", x->now, &e)) {
        g_string_append(x->res, "unsubscribed by token");
        x->done = TRUE;
        return TRUE;
    }
    if (e->code == CD_ERR_BUSY) {
        g_propagate_error(err, e);
        return FALSE;
    }
    g_string_append_printf(x->res, "unsubscribe token refused (%s); falling back to the sender", e->message);
    g_clear_error(&e);
    return TRUE;
}

static gboolean cmd_unsubscribe(struct command_ctx *x, GError **err)
{
    gboolean ok = optin_leave(x->app, x->enr, "email", x->now, err);
    g_string_append_printf(x->res, "%s left %s", x->r->sender, x->r->course);
    return ok;
}

static gboolean cmd_pause(struct command_ctx *x, GError **err)
{
    const struct inbound *r = x->r;
    int n = enroll_pause(x->app, r->sender, r->course, r->pause_for ? x->now + r->pause_for : 0, "email",
                         x->now, err);
    gboolean ok = n >= 0 && notify_status(x->app, x->c, x->enr, TRUE, x->now, err);
    g_string_append_printf(x->res, "paused%s; status sent", r->pause_for ? " for a while" : "");
    return ok;
}

static gboolean cmd_resume(struct command_ctx *x, GError **err)
{
    int n = enroll_resume(x->app, x->r->sender, x->r->course, "email", x->now, err);
    gboolean ok = n >= 0 && notify_status(x->app, x->c, x->enr, TRUE, x->now, err);
    g_string_append(x->res, n > 0 ? "resumed; status sent" : "was not paused; status sent");
    return ok;
}

static gboolean cmd_status(struct command_ctx *x, GError **err)
{
    gboolean ok = notify_status(x->app, x->c, x->enr, TRUE, x->now, err);
    g_string_append(x->res, "status sent");
    return ok;
}

/* A zone given by the subscriber is no longer a guess. */
static gboolean cmd_tz(struct command_ctx *x, GError **err)
{
    const struct inbound *r = x->r;
    if (!r->tz || !pace_tz_valid(r->tz)) {
        char *why = g_strdup_printf(
            "\"%s\" is not a time zone we know. Use a name like "
            "Europe/Berlin or America/New_York.",
            r->tz ? r->tz : "");
        gboolean ok = reply_error(x->app, r, x->c, x->s->id, why, x->now, err);
        g_free(why);
        g_string_append(x->res, "tz: unknown zone; error mail sent");
        return ok;
    }
    gboolean ok = subscriber_set(x->app, r->sender, NULL, r->tz, TRUE, "email", x->now, err) &&
                  store_sub_set_guessed(x->app->st, x->s->id, FALSE, err) &&
                  notify_status(x->app, x->c, x->enr, TRUE, x->now, err);
    g_string_append_printf(x->res, "zone set to %s; status sent", r->tz);
    return ok;
}

/* "next": the next lesson now, if the course allows it and one is planned
 * (not one already queued or sent: that would be two at once). */
static gboolean cmd_next(struct command_ctx *x, GError **err)
{
    const struct course *c = x->c;
    struct enrollment_row *row = store_enrollment_get(x->app->st, x->enr, err);
    gboolean ok = row != NULL;
    if (ok && (!c->allow_next || row->state != ENR_ACTIVE || row->next_send_at <= 0)) {
        const char *why = !c->allow_next ? "This course keeps its own pace: the next step comes at its time."
                          : row->state != ENR_ACTIVE ? "Your course is not running (paused or finished)."
                                                     : "Your next step is already on its way.";
        ok = reply_error(x->app, x->r, c, x->s->id, why, x->now, err);
        g_string_append(x->res, "next: not possible now; error mail sent");
    } else if (ok) {
        row->next_send_at = x->now;
        char *msgid = compose_lesson_id(x->app->cfg, c, row->id, row->round, row->next_lesson);
        const struct lesson *l = course_lesson(c, row->next_lesson);
        ok = store_queue(x->app->st, row, l ? l->slug : NULL, msgid, x->now, err) &&
             store_event(x->app->st, x->now, x->s->id, x->enr, "next", "email", "", err);
        g_free(msgid);
        g_string_append_printf(x->res, "lesson %d queued now", row->next_lesson);
    }
    store_enrollment_free(row);
    return ok;
}

/* "restart": the course again from lesson 1 (life_restart says for whom);
 * the status mail shows the new first date, or why not. */
static gboolean cmd_restart(struct command_ctx *x, GError **err)
{
    GError *e = NULL;
    if (enroll_restart(x->app, x->r->sender, x->r->course, "email", x->now, &e)) {
        g_string_append(x->res, "restarted; status sent");
        return notify_status(x->app, x->c, x->enr, TRUE, x->now, err);
    }
    if (e->code != CD_ERR_INVALID && e->code != CD_ERR_BUSY) {
        g_propagate_error(err, e);
        return FALSE;
    }
    gboolean busy = e->code == CD_ERR_BUSY;
    g_clear_error(&e);
    g_string_append(x->res, "restart: not possible now; error mail sent");
    return reply_error(
        x->app, x->r, x->c, x->s->id,
        busy ? "A step of your course is being sent right now. Please try again in a few minutes."
             : "Your course cannot start again from here. To join it again, subscribe once more.",
        x->now, err);
}

/* "confirm" without a token (the token is what confirms): say where it is. */
static gboolean cmd_confirm(struct command_ctx *x, GError **err)
{
    gboolean ok = reply_error(x->app, x->r, x->c, x->s->id,
                              "To confirm, reply to the confirmation mail itself, or use its link.", x->now,
                              err);
    g_string_append(x->res, "confirm without a token: error mail sent");
    return ok;
}

/* The commands a mail can carry, by the name inbound.c gives them (its
 * list of command words, and "unknown" for anything else).
 *
 * To add a command: one row here and one cmd_* handler above (and its word
 * in inbound.c's list, which is what lets a mail carry it). The dispatcher
 * (apply_command) runs a row as:
 *   1. first, if set: steps that must not wait for the enrollment lookup;
 *      it may answer the mail itself (done);
 *   2. if needs_enrollment: the sender's subscriber and enrollment in the
 *      course written to are looked up; without them the sender gets the
 *      "not subscribed" error mail and run is not called;
 *   3. run.
 * Row 0 also answers a name missing from the table (inbound.c never
 * produces one). */
static const struct command_row {
    const char *name;
    gboolean needs_enrollment;
    command_fn first;
    command_fn run;
} commands[] = {
    { "unknown", FALSE, NULL, cmd_unknown },                     /* anything else: the help mail */
    { "subscribe", FALSE, NULL, cmd_subscribe },                 /* double opt-in: a confirmation */
    { "help", FALSE, NULL, cmd_help },                           /* the help mail */
    { "unsubscribe", TRUE, unsubscribe_first, cmd_unsubscribe }, /* leave: all, by token, or this course */
    { "pause", TRUE, NULL, cmd_pause },                          /* for a while or until resumed */
    { "resume", TRUE, NULL, cmd_resume },                        /* carry on where it was left off */
    { "status", TRUE, NULL, cmd_status },                        /* progress and the next date */
    { "tz", TRUE, NULL, cmd_tz },                                /* the subscriber's zone */
    { "next", TRUE, NULL, cmd_next },                            /* the next lesson now, if allowed */
    { "restart", TRUE, NULL, cmd_restart },                      /* the course again from lesson 1 */
    { "confirm", TRUE, NULL, cmd_confirm },                      /* no token: say where it is */
};

static const struct command_row *command_row(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return &commands[0];
}

/* Step 2 of a row that needs an enrollment: fills x->s and x->enr, or
 * answers with the "not subscribed" error mail and ends the command. */
static gboolean find_enrollment(struct command_ctx *x, GError **err)
{
    const struct inbound *r = x->r;
    GError *e = NULL;
    x->s = subscriber_get(x->app, r->sender, &e);
    if (!x->s && e->code != CD_ERR_NOT_FOUND) {
        g_propagate_error(err, e);
        return FALSE;
    }
    g_clear_error(&e);
    x->enr = enrollment_of(x->app, x->s, r->course, err);
    if (x->enr < 0)
        return FALSE;
    if (x->s && x->enr)
        return TRUE;
    x->done = TRUE;
    char *why = g_strdup_printf("%s is not subscribed to \"%s\".", r->sender, x->c ? x->c->title : r->course);
    gboolean ok = reply_error(x->app, r, x->c, x->s ? x->s->id : 0, why, x->now, err);
    g_string_append_printf(x->res, "%s: not subscribed; error mail sent", r->command);
    g_free(why);
    return ok;
}

/* Runs the command's row of the table (see there). */
static gboolean apply_command(struct app *app, const struct inbound *r, gint64 now, GString *res,
                              GError **err)
{
    const struct command_row *row = command_row(r->command);
    struct command_ctx x = { app, r, course_find(app->courses, r->course), now, res, NULL, 0, FALSE };
    gboolean ok = !row->first || row->first(&x, err);
    if (ok && !x.done && row->needs_enrollment)
        ok = find_enrollment(&x, err);
    if (ok && !x.done)
        ok = row->run(&x, err);
    store_sub_free(x.s);
    return ok;
}

/* A reply to the confirmation mail (its token in the address): starts the
 * enrollment, or says by mail why not (expired, already used). */
static gboolean apply_confirm(struct app *app, const struct inbound *r, gint64 now, GString *res,
                              GError **err)
{
    GError *e = NULL;
    gint64 id = optin_confirm(app, r->token, "email", now, &e);
    if (id > 0) {
        g_string_append_printf(res, "confirmed: enrollment %" G_GINT64_FORMAT " started, welcome sent", id);
        return TRUE;
    }
    if (e->code == CD_ERR_BUSY) {
        g_propagate_error(err, e);
        return FALSE;
    }
    char *why = g_strdup_printf("We could not confirm: %s. To start again, write \"subscribe\".", e->message);
    gboolean ok = reply_error(app, r, course_find(app->courses, r->course), 0, why, now, err);
    g_string_append_printf(res, "confirmation refused (%s); error mail sent", e->message);
    g_free(why);
    g_clear_error(&e);
    return ok;
}

/* The enrollment a complaint's original names: through a token (checked),
 * else through the lesson Message-ID <slug>.e<id>[r<round>].<course>@domain
 * together with the complained address, which must be the enrollment's
 * (a report that redacts it and carries no token matches nobody). 0 if
 * none, -1 on error. *how says which. */
static gint64 complaint_enrollment(struct app *app, const struct inbound *r, gint64 now, const char **how,
                                   GError **err)
{
    enum token_purpose p;
    gint64 id = 0;
    if (r->token && app->key && token_peek(r->token, &p, &id, NULL)) {
        GError *e = NULL;
        if (p == TOKEN_BOUNCE) {
            struct delivery_row *d = store_delivery_full(app->st, id, &e);
            gint64 enr = d && token_verify(app->key, r->token, TOKEN_BOUNCE, d->email, d->course, now, NULL)
                             ? d->enrollment_id
                             : 0;
            store_delivery_free(d);
            if (e && e->code != CD_ERR_NOT_FOUND) {
                g_propagate_error(err, e);
                return -1;
            }
            g_clear_error(&e);
            if (enr <= 0) {
                /* a complaint about one of our system mails (a welcome...) */
                struct outbox_row *o = mail_of_token(app, r->token, id, now, &e);
                if (e) {
                    g_propagate_error(err, e);
                    return -1;
                }
                enr = o ? o->enrollment_id : 0;
                store_outbox_free(o);
            }
            *how = "its VERP envelope";
            if (enr > 0)
                return enr;
        } else if (p == TOKEN_UNSUBSCRIBE) {
            struct enrollment_row *en = optin_token_enrollment(app, r->token, TOKEN_UNSUBSCRIBE, now, &e);
            gint64 enr = en ? en->id : 0;
            store_enrollment_free(en);
            g_clear_error(&e);
            *how = "its unsubscribe token";
            if (enr > 0)
                return enr;
        }
    }
    if (!r->original_id)
        return 0;
    char *dom = g_regex_escape_string(app->cfg->domain, -1);
    char *pattern = g_strdup_printf("^[^@\\s]+\\.e(\\d{1,18})(?:r\\d{1,9})?\\.([a-z0-9_-]{1,64})@%s$", dom);
    GRegex *re = g_regex_new(pattern, G_REGEX_CASELESS, 0, NULL);
    GMatchInfo *mi = NULL;
    gint64 enr = 0;
    if (re && g_regex_match(re, r->original_id, 0, &mi)) {
        char *n = g_match_info_fetch(mi, 1), *course = g_match_info_fetch(mi, 2);
        GError *e = NULL;
        struct enrollment_row *en = store_enrollment_get(app->st, g_ascii_strtoll(n, NULL, 10), &e);
        if (!en && e && e->code != CD_ERR_NOT_FOUND) {
            g_propagate_error(err, e);
            enr = -1;
        } else if (en && g_ascii_strcasecmp(en->course, course) == 0 && r->complainant &&
                   g_ascii_strcasecmp(en->email, r->complainant) == 0) {
            /* Our Message-IDs can be guessed: without the complained
             * address to match, anyone could unsubscribe enrollment after
             * enrollment with forged reports (the token paths need no
             * such check: their HMAC is the proof). */
            enr = en->id;
            *how = "the Message-ID of our lesson";
        }
        g_clear_error(&e);
        store_enrollment_free(en);
        g_free(n);
        g_free(course);
    }
    g_match_info_free(mi);
    if (re)
        g_regex_unref(re);
    g_free(pattern);
    g_free(dom);
    return enr;
}

/* A complaint: the reader leaves everything, is suppressed, and is never
 * answered. */
static gboolean apply_complaint(struct app *app, const struct inbound *r, gint64 now, GString *res,
                                GError **err)
{
    const char *how = "nothing";
    gint64 enr_id = complaint_enrollment(app, r, now, &how, err);
    if (enr_id < 0)
        return FALSE;
    struct enrollment_row *en = enr_id > 0 ? store_enrollment_get(app->st, enr_id, err) : NULL;
    if (enr_id > 0 && !en)
        return FALSE;
    if (!en) {
        g_string_append(res, "complaint whose original names none of our readers: nothing to do, no reply");
        return TRUE;
    }
    struct sub_row *s = subscriber_get(app, en->email, err);
    store_enrollment_free(en);
    if (!s)
        return FALSE;
    char *detail = g_strdup_printf("%s complaint about %s, matched by %s",
                                   r->feedback_type ? r->feedback_type : "abuse",
                                   r->original_id ? r->original_id : "a mail of ours", how);
    char *hash = app->key ? token_hash_address(app->key, s->email) : NULL;
    gboolean ok = life_leave_all(app, s, "email", now, err) >= 0 &&
                  (!hash || store_suppress(app->st, hash, "complaint", now, err)) &&
                  store_event(app->st, now, s->id, enr_id, "complaint", "email", detail, err);
    if (ok) {
        g_string_append_printf(res, "complaint: %s left every course and is suppressed; no reply", s->email);
        log_warn("complaint: %s (%s)", s->email, detail);
    }
    g_free(hash);
    g_free(detail);
    store_sub_free(s);
    return ok;
}

gboolean command_apply(struct app *app, const struct inbound *r, const char *via, gint64 now, char **result,
                       GError **err)
{
    (void)via;
    GString *res = g_string_new(NULL);
    *result = NULL;
    if (!store_begin(app->st, err)) {
        g_string_free(res, TRUE);
        return FALSE;
    }
    GError *e = NULL;
    app->in_reply_to = r->message_id; /* every reply queued below answers this mail */
    gint64 last_event = store_event_last(app->st, &e);
    gboolean first = !e && store_inbound_first(app->st, r->key, now, &e);
    gboolean ok = e == NULL;
    if (e)
        g_propagate_error(err, e);
    else if (!first)
        g_string_append(res, "seen before: no second effect");
    else if (r->kind == INBOUND_BOUNCE)
        ok = apply_bounce(app, r, now, res, err);
    else if (r->kind == INBOUND_COMPLAINT)
        ok = apply_complaint(app, r, now, res, err);
    else if (r->kind == INBOUND_CONFIRM)
        ok = apply_confirm(app, r, now, res, err);
    else if (r->kind == INBOUND_COMMAND)
        ok = apply_command(app, r, now, res, err);
    else if (r->kind == INBOUND_NOTE)
        ok = note_apply(app, r, now, res, err);
    else
        g_string_append_printf(res, "%s: %s", inbound_kind_name(r->kind), r->reason ? r->reason : "");
    /* The audit trail names the mail that caused each change. */
    app->in_reply_to = NULL;
    ok = ok && store_inbound_result(app->st, r->key, res->str, err) &&
         (!r->message_id || store_events_tag(app->st, last_event, r->message_id, err)) &&
         store_commit(app->st, err);
    if (!ok) {
        store_rollback(app->st);
        g_string_free(res, TRUE);
        return FALSE;
    }
    *result = g_string_free(res, FALSE);
    return TRUE;
}

char *command_describe(const struct inbound *r)
{
    switch (r->kind) {
    case INBOUND_BOUNCE:
        return g_strdup(r->token ? "record the bounce against the delivery its VERP token names"
                                 : "no VERP token: record a soft signal against the subscribers it names, "
                                   "stop nobody");
    case INBOUND_COMPLAINT:
        return g_strdup(
            "unsubscribe the reader the original names from every course, suppress the address, "
            "log it; no reply");
    case INBOUND_CONFIRM:
        return g_strdup("confirm the pending subscription its token names and send the welcome mail");
    case INBOUND_COMMAND:
        if (!strcmp(r->command, "subscribe"))
            return g_strdup_printf("send a confirmation request to %s for %s", r->sender, r->course);
        if (!strcmp(r->command, "unsubscribe") && r->all)
            return g_strdup_printf("stop every course of %s, and answer with one goodbye", r->sender);
        if (!strcmp(r->command, "unknown"))
            return g_strdup_printf("answer %s with the help mail", r->sender);
        return g_strdup_printf("%s for %s in %s, and answer by mail", r->command, r->sender, r->course);
    case INBOUND_NOTE:
        return g_strdup("keep the reader's note (forward it to the course's replies_to, if any); no reply");
    default: return g_strdup("nothing: no reply, no change");
    }
}
