/* notify.c - owns the rule that a system mail is decided and queued in
 * the same transaction as what caused it (so a confirmation is never sent
 * for a request that rolled back) while it is rendered only when coursed
 * sends it, from the templates it runs (a template on disk that coursed
 * refused cannot make the pipe fail); and the caps on automatic replies
 * (RFC 3834's advice against mail storms): one per address and day, one
 * for all addresses together per hour, both counted in the database so
 * that the pipe and the daemon share them. */
#include <string.h>
#include "notify.h"
#include "calendar.h"
#include "schedule.h"
#include "error.h"
#include "lang.h"
#include "log.h"
#include "pace.h"

/* The name a reply to email may greet: only one that came from the
 * operator or from a subscription its owner confirmed (never one typed in
 * a stranger's mail: a pending subscriber's is such). NULL: "there". The
 * caller g_free()s. */
static char *trusted_name(struct app *app, const char *email, GError **err, gboolean *ok)
{
    GError *e = NULL;
    struct sub_row *s = store_sub_get(app->st, email, &e);
    *ok = TRUE;
    if (!s) {
        if (e->code != CD_ERR_NOT_FOUND) {
            g_propagate_error(err, e);
            *ok = FALSE;
        } else {
            g_error_free(e);
        }
        return NULL;
    }
    char *name = s->status != SUB_PENDING && s->name && *s->name ? g_strdup(s->name) : NULL;
    store_sub_free(s);
    return name;
}

gboolean notify_queue(struct app *app, const char *which, const struct course *c, const struct compose_to *to,
                      gint64 subscriber_id, const struct compose_system_opts *opts, gboolean limit,
                      gboolean *limited, gint64 now, GError **err)
{
    if (limited)
        *limited = FALSE;
    /* The automatic replies: every mail answering a request (confirm is
     * one, to whoever asked) counts against replies_per_hour. */
    gboolean reply = limit || strcmp(which, "confirm") == 0;
    if (limit) {
        gint64 n = store_outbox_count(app->st, to->email, NULL, now - 86400, err);
        if (n < 0)
            return FALSE;
        if (n >= app->cfg->replies_per_day) {
            log_warn("%s: %" G_GINT64_FORMAT " automatic replies in 24h; not sending '%s'", to->email, n,
                     which);
            if (limited)
                *limited = TRUE;
            return TRUE;
        }
    }
    if (reply) {
        gint64 n = store_outbox_replies(app->st, now - 3600, err);
        if (n < 0)
            return FALSE;
        if (n >= app->cfg->replies_per_hour) {
            log_warn("automatic reply cap reached (%" G_GINT64_FORMAT
                     " in the last hour, [inbound] replies_per_hour): '%s' to %s dropped",
                     n, which, to->email);
            if (limited)
                *limited = TRUE;
            return TRUE;
        }
    }
    struct compose_to t = *to;
    struct compose_system_opts o = *opts;
    char *name = NULL;
    if (reply) {
        gboolean ok;
        name = trusted_name(app, to->email, err, &ok);
        if (!ok)
            return FALSE;
        t.name = name;
        o.bare_to = TRUE;
        if (!o.in_reply_to)
            o.in_reply_to = app->in_reply_to;
    }
    char *spec = compose_spec_new(app->cfg, which, &t, &o);
    gboolean ok = store_outbox_queue(app->st, subscriber_id, to->enrollment_id, which, to->email,
                                     c ? c->slug : NULL, spec, reply, now, err) > 0;
    g_free(spec);
    g_free(name);
    return ok;
}

/* How the person came into enrollment e, as this transaction's audit
 * trail says: 'confirmed' (their own request, optin_confirm) or
 * 'enrolled' (an operator, enroll_start), the newest event of e of
 * either kind; -1 on error. */
static int joined_how(struct app *app, const struct enrollment_row *e, GError **err)
{
    GPtrArray *evs = store_events(app->st, e->subscriber_id, 20, err);
    if (!evs)
        return -1;
    int how = COMPOSE_JOINED_UNSAID;
    for (guint i = 0; i < evs->len && how == COMPOSE_JOINED_UNSAID; i++) {
        const struct event_row *ev = evs->pdata[i];
        if (ev->enrollment_id != e->id)
            continue;
        if (strcmp(ev->kind, "confirmed") == 0)
            how = COMPOSE_JOINED_CONFIRMED;
        else if (strcmp(ev->kind, "enrolled") == 0)
            how = COMPOSE_JOINED_OPERATOR;
    }
    g_ptr_array_unref(evs);
    return how;
}

gboolean notify_welcome(struct app *app, const struct course *c, gint64 enrollment_id, gint64 now,
                        GError **err)
{
    struct enrollment_row *e = store_enrollment_get(app->st, enrollment_id, err);
    if (!e)
        return FALSE;
    int how = joined_how(app, e, err);
    GPtrArray *one = g_ptr_array_new();
    g_ptr_array_add(one, e);
    gboolean ok = FALSE;
    char *ics = how < 0 ? NULL : calendar_of(app, one, now, err);
    if (ics) {
        const char *tz = e->tz && *e->tz ? e->tz : NULL; /* NULL: not known */
        char *first = compose_date(app, c, e->next_send_at, schedule_zone(c, tz), TRUE);
        struct render_var vars[] = {
            { "first_date", first, FALSE },
        };
        /* zone, zone_sentence and zone_hint follow e->tz (NULL: the course's
         * zone, said to be the course's) and whether it was guessed */
        struct compose_system_opts opts = { .vars = vars,
                                            .n_vars = G_N_ELEMENTS(vars),
                                            .calendar = ics,
                                            .list_headers = TRUE,
                                            .joined = (enum compose_joined)how,
                                            .tz_guessed = tz && e->tz_guessed };
        struct compose_to to = { e->email, e->name, tz, e->id };
        ok = notify_queue(app, "welcome", c, &to, e->subscriber_id, &opts, FALSE, NULL, now, err);
        g_free(first);
        g_free(ics);
    }
    g_ptr_array_unref(one);
    store_enrollment_free(e);
    return ok;
}

gboolean notify_status(struct app *app, const struct course *c, gint64 enrollment_id, gboolean limit,
                       gint64 now, GError **err)
{
    struct enrollment_row *e = store_enrollment_get(app->st, enrollment_id, err);
    if (!e)
        return FALSE;
    const char *zone = schedule_zone(c, e->tz);
    const struct lang *words = app_lang(app, c);
    char sent[16], steps[16];
    g_snprintf(sent, sizeof sent, "%d", e->lessons_sent);
    g_snprintf(steps, sizeof steps, "%d", c->n_lessons);
    char *progress;
    if (e->state == ENR_COMPLETED)
        progress = lang_say(words, "progress_completed", FALSE, "steps", steps, (char *)NULL);
    else if (e->state == ENR_PAUSED && e->paused_until > 0) {
        char *until = compose_date(app, c, e->paused_until, zone, FALSE);
        progress = lang_say(words, "progress_paused_until", FALSE, "sent", sent, "steps", steps, "date",
                            until, (char *)NULL);
        g_free(until);
    } else if (e->state == ENR_PAUSED)
        progress = lang_say(words, "progress_paused", FALSE, "sent", sent, "steps", steps, (char *)NULL);
    else if (e->state == ENR_STOPPED)
        progress = lang_say(words, "progress_stopped", FALSE, "sent", sent, "steps", steps, (char *)NULL);
    else
        progress = lang_say(words, "progress_active", FALSE, "sent", sent, "steps", steps, (char *)NULL);
    GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
    GArray *lessons = g_array_new(FALSE, FALSE, sizeof(int));
    gboolean ok = calendar_upcoming(app, e, c, slots, lessons, err);
    g_array_free(lessons, TRUE);
    char *next = slots->len ? compose_date(app, c, g_array_index(slots, gint64, 0), zone, FALSE)
                            : g_strdup(lang_get(words, "none_planned"));
    struct render_var vars[] = {
        { "progress", progress, FALSE },
        { "next_date", next, FALSE },
        { "zone", zone, FALSE },
    };
    struct compose_system_opts opts = { vars, G_N_ELEMENTS(vars), NULL, NULL, TRUE };
    struct compose_to to = { e->email, e->name, e->tz, e->id };
    ok = ok && notify_queue(app, "status", c, &to, e->subscriber_id, &opts, limit, NULL, now, err);
    g_free(next);
    g_free(progress);
    g_array_free(slots, TRUE);
    store_enrollment_free(e);
    return ok;
}
