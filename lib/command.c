/* command.c - owns the effects of inbound mail: commands from subscribers,
 * confirmation replies, and bounces.
 *
 * Bounce rule (documented in the README): a VERP token names the delivery,
 * so a forged bounce cannot touch anyone. The worst class reported counts:
 *   hard (5.x.x but 5.7.x)  subscriber 'bounced', every course stopped;
 *   policy (5.7.x)          courses paused, the operator warned in the log
 *                           and in the audit trail (coursectl log / status);
 *   soft (4.x.x)            counted; soft bounces on 3 or more different
 *                           days within 14 days count as one hard bounce. */
#include <string.h>
#include "command.h"
#include "bounce.h"
#include "course.h"
#include "enroll.h"
#include "error.h"
#include "lifecycle.h"
#include "log.h"
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
    struct compose_to to = { r->sender, r->sender_name, NULL, enr_id };
    return notify_queue(app, which, c, &to, sub_id, &opts, TRUE, NULL, now, err);
}

static gboolean reply_error(struct app *app, const struct inbound *r, const struct course *c, gint64 sub_id,
                            const char *reason, gint64 now, GError **err)
{
    struct render_var vars[] = { { "reason", reason, FALSE } };
    return reply(app, r, "error", c, sub_id, 0, vars, 1, now, err);
}

static char *courses_list(struct app *app)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < app->courses->len; i++) {
        const struct course *c = app->courses->pdata[i];
        g_string_append_printf(s, "- %s: write to %s@%s%s%s\n", c->title, c->slug, app->cfg->domain,
                               *c->description ? ". " : "", c->description);
    }
    return g_string_free(s, FALSE);
}

static gboolean apply_bounce(struct app *app, const struct inbound *r, gint64 now, GString *res, GError **err)
{
    enum token_purpose p;
    gint64 id = 0;
    if (!r->bounces || r->bounces->len == 0) {
        g_string_append(res, "bounce naming no failed recipient: nothing to do");
        return TRUE;
    }
    if (!r->token || !app->key || !token_peek(r->token, &p, &id, NULL) || p != TOKEN_BOUNCE) {
        g_string_append(res,
                        "bounce without a valid VERP token: ignored (a forged bounce must not "
                        "unsubscribe anyone)");
        return TRUE;
    }
    GError *e = NULL;
    struct delivery_row *d = store_delivery_full(app->st, id, &e);
    if (!d || !token_verify(app->key, r->token, TOKEN_BOUNCE, d->email, d->course, now, NULL)) {
        if (e && e->code != CD_ERR_NOT_FOUND) {
            g_propagate_error(err, e);
            store_delivery_free(d);
            return FALSE;
        }
        g_clear_error(&e);
        g_string_append(res, "bounce with a forged or unknown VERP token: ignored");
        store_delivery_free(d);
        return TRUE;
    }
    enum bounce_class worst = BOUNCE_SOFT;
    const struct bounce_rcpt *which = r->bounces->pdata[0];
    for (guint i = 0; i < r->bounces->len; i++) {
        const struct bounce_rcpt *b = r->bounces->pdata[i];
        if (b->klass == BOUNCE_HARD || (b->klass == BOUNCE_POLICY && worst == BOUNCE_SOFT)) {
            worst = b->klass;
            which = b;
        }
    }
    char *detail = g_strdup_printf("%s %s (%s) delivery %" G_GINT64_FORMAT, which->address, which->status,
                                   bounce_class_name(worst), d->id);
    gboolean ok = TRUE;
    if (worst == BOUNCE_SOFT) {
        ok = life_bounce(app, d->subscriber_id, d->enrollment_id, BOUNCE_SOFT, detail, "email", now, err);
        gint64 days = ok ? store_event_days(app->st, d->subscriber_id, "bounce-soft", now - SOFT_WINDOW, err)
                         : -1;
        ok = days >= 0;
        if (ok && days >= SOFT_DAYS) {
            worst = BOUNCE_HARD;
            g_string_append_printf(res, "soft bounces on %" G_GINT64_FORMAT " days in 14: ", days);
        } else if (ok) {
            g_string_append_printf(res, "soft bounce counted for %s (%" G_GINT64_FORMAT " day(s) in 14)",
                                   d->email, days);
        }
    }
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
        struct render_var vars[] = { { "progress",
                                       "You have left every other course of ours too: nothing more "
                                       "at all will be sent to this address.",
                                       FALSE } };
        struct compose_system_opts opts = { vars, 1, NULL, NULL, FALSE };
        struct compose_to to = { s->email, s->name, s->tz, 0 };
        ok = notify_queue(app, "goodbye", c, &to, s->id, &opts, TRUE, NULL, now, err);
    }
    if (ok)
        g_string_append_printf(res, "%s left every course (%d running); goodbye sent", r->sender, n);
    store_sub_free(s);
    return ok;
}

static gboolean apply_command(struct app *app, const struct inbound *r, gint64 now, GString *res,
                              GError **err)
{
    const struct course *c = course_find(app->courses, r->course);
    const char *cmd = r->command;
    GError *e = NULL;
    if (!strcmp(cmd, "subscribe")) {
        const char *tz = r->tz;
        gboolean guessed = r->tz_guessed;
        if (tz && !pace_tz_valid(tz) && r->has_offset) {
            tz = inbound_zone_for_offset(r->date_offset); /* a bad tz=: fall back to the guess */
            guessed = tz != NULL;
        }
        int rc = optin_request(app, r->sender, r->course, r->name, tz, guessed, "email", now, err);
        static const char *what[] = { "confirmation sent",
                                      "a confirmation was sent in the last 24h: nothing new",
                                      "hourly confirmation cap reached: nothing sent",
                                      "already subscribed: status sent" };
        if (rc < 0)
            return FALSE;
        g_string_append_printf(res, "subscribe %s to %s: %s", r->sender, r->course, what[rc]);
        return TRUE;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "unknown")) {
        char *list = courses_list(app);
        struct render_var vars[] = { { "courses", list, TRUE } };
        gboolean ok = reply(app, r, "help", c, 0, 0, vars, 1, now, err);
        g_free(list);
        g_string_append(res, !strcmp(cmd, "help") ? "help sent" : "unknown command: help sent");
        return ok;
    }
    if (!strcmp(cmd, "unsubscribe") && r->all)
        return leave_all(app, r, c, now, res, err);
    if (!strcmp(cmd, "unsubscribe") && r->token) {
        if (!optin_leave_token(app, r->token, "email", now, &e)) {
            if (e->code == CD_ERR_BUSY) {
                g_propagate_error(err, e);
                return FALSE;
            }
            g_string_append_printf(res, "unsubscribe token refused (%s); falling back to the sender",
                                   e->message);
            g_clear_error(&e);
        } else {
            g_string_append(res, "unsubscribed by token");
            return TRUE;
        }
    }
    struct sub_row *s = subscriber_get(app, r->sender, &e);
    if (!s && e->code != CD_ERR_NOT_FOUND) {
        g_propagate_error(err, e);
        return FALSE;
    }
    g_clear_error(&e);
    gint64 enr = enrollment_of(app, s, r->course, err);
    if (enr < 0) {
        store_sub_free(s);
        return FALSE;
    }
    gboolean ok = TRUE;
    if (!s || !enr) {
        char *why = g_strdup_printf("%s is not subscribed to \"%s\".", r->sender, c ? c->title : r->course);
        ok = reply_error(app, r, c, s ? s->id : 0, why, now, err);
        g_string_append_printf(res, "%s: not subscribed; error mail sent", cmd);
        g_free(why);
    } else if (!strcmp(cmd, "unsubscribe")) {
        ok = optin_leave(app, enr, "email", now, err);
        g_string_append_printf(res, "%s left %s", r->sender, r->course);
    } else if (!strcmp(cmd, "pause")) {
        int n = enroll_pause(app, r->sender, r->course, r->pause_for ? now + r->pause_for : 0, "email", now,
                             err);
        ok = n >= 0 && notify_status(app, c, enr, TRUE, now, err);
        g_string_append_printf(res, "paused%s; status sent", r->pause_for ? " for a while" : "");
    } else if (!strcmp(cmd, "resume")) {
        int n = enroll_resume(app, r->sender, r->course, "email", now, err);
        ok = n >= 0 && notify_status(app, c, enr, TRUE, now, err);
        g_string_append(res, n > 0 ? "resumed; status sent" : "was not paused; status sent");
    } else if (!strcmp(cmd, "status")) {
        ok = notify_status(app, c, enr, TRUE, now, err);
        g_string_append(res, "status sent");
    } else if (!strcmp(cmd, "tz")) {
        if (!r->tz || !pace_tz_valid(r->tz)) {
            char *why = g_strdup_printf(
                "\"%s\" is not a time zone we know. Use a name like "
                "Europe/Berlin or America/New_York.",
                r->tz ? r->tz : "");
            ok = reply_error(app, r, c, s->id, why, now, err);
            g_free(why);
            g_string_append(res, "tz: unknown zone; error mail sent");
        } else {
            ok = subscriber_set(app, r->sender, NULL, r->tz, TRUE, "email", now, err) &&
                 store_sub_set_guessed(app->st, s->id, FALSE, err) &&
                 notify_status(app, c, enr, TRUE, now, err);
            g_string_append_printf(res, "zone set to %s; status sent", r->tz);
        }
    } else if (!strcmp(cmd, "next")) {
        struct enrollment_row *row = store_enrollment_get(app->st, enr, err);
        ok = row != NULL;
        if (ok && (!c->allow_next || row->state != ENR_ACTIVE || row->next_send_at <= 0)) {
            const char *why = !c->allow_next
                                  ? "This course keeps its own pace: the next step comes at its time."
                              : row->state != ENR_ACTIVE ? "Your course is not running (paused or finished)."
                                                         : "Your next step is already on its way.";
            ok = reply_error(app, r, c, s->id, why, now, err);
            g_string_append(res, "next: not possible now; error mail sent");
        } else if (ok) {
            row->next_send_at = now;
            char *msgid = compose_message_id(app->cfg, c->slug, row->id, row->next_lesson);
            ok = store_queue(app->st, row, msgid, now, err) &&
                 store_event(app->st, now, s->id, enr, "next", "email", "", err);
            g_free(msgid);
            g_string_append_printf(res, "lesson %d queued now", row->next_lesson);
        }
        store_enrollment_free(row);
    } else if (!strcmp(cmd, "confirm")) {
        ok = reply_error(app, r, c, s->id,
                         "To confirm, reply to the confirmation mail itself, or use its link.", now, err);
        g_string_append(res, "confirm without a token: error mail sent");
    }
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
    gint64 last_event = store_event_last(app->st, &e);
    gboolean first = !e && store_inbound_first(app->st, r->key, now, &e);
    gboolean ok = e == NULL;
    if (e)
        g_propagate_error(err, e);
    else if (!first)
        g_string_append(res, "seen before: no second effect");
    else if (r->kind == INBOUND_BOUNCE)
        ok = apply_bounce(app, r, now, res, err);
    else if (r->kind == INBOUND_CONFIRM) {
        gint64 id = optin_confirm(app, r->token, "email", now, &e);
        if (id > 0) {
            g_string_append_printf(res, "confirmed: enrollment %" G_GINT64_FORMAT " started, welcome sent",
                                   id);
        } else if (e->code == CD_ERR_BUSY) {
            g_propagate_error(err, e);
            ok = FALSE;
        } else {
            char *why = g_strdup_printf("We could not confirm: %s. To start again, write \"subscribe\".",
                                        e->message);
            ok = reply_error(app, r, course_find(app->courses, r->course), 0, why, now, err);
            g_string_append_printf(res, "confirmation refused (%s); error mail sent", e->message);
            g_free(why);
            g_clear_error(&e);
        }
    } else if (r->kind == INBOUND_COMMAND)
        ok = apply_command(app, r, now, res, err);
    else
        g_string_append_printf(res, "%s: %s", inbound_kind_name(r->kind), r->reason ? r->reason : "");
    /* The audit trail names the mail that caused each change. */
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
    case INBOUND_BOUNCE: return g_strdup("record the bounce against the delivery its VERP token names");
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
    default: return g_strdup("nothing: no reply, no change");
    }
}
