/* optin.c - owns double opt-in and leaving.
 *   - A subscribe request never enrolls anyone: it creates a pending
 *     enrollment and sends one confirmation, to the requesting address only,
 *     echoing nothing the requester typed.
 *   - One pending confirmation per address and course; a repeat within 24h
 *     sends nothing; all confirmations together are capped per hour.
 *   - A confirmation token binds purpose, enrollment, address and course,
 *     expires after [inbound] confirm_ttl and works once (the enrollment
 *     must still be pending).
 *   - Leaving is immediate and never needs a confirmation. */
#include <string.h>
#include "optin.h"
#include "address.h"
#include "course.h"
#include "schedule.h"
#include "enroll.h"
#include "error.h"
#include "lang.h"
#include "lifecycle.h"
#include "log.h"
#include "notify.h"
#include "pace.h"
#include "subscriber.h"
#include "token.h"

/* What a confirm token is bound to besides its enrollment and address: the
 * course and the time this confirmation was sent (the enrollment's
 * confirm_sent_at). A token therefore confirms only the request it was
 * mailed for: after the person leaves and asks again, or after a newer
 * confirmation supersedes it, an old link inside its lifetime is refused
 * (it used to confirm any later request of the same enrollment).
 * g_free(). */
static char *confirm_binding(const char *slug, gint64 sent_at)
{
    return g_strdup_printf("%s#%" G_GINT64_FORMAT, slug, sent_at);
}

/* How long the offer of a next course may be taken up: longer than a
 * confirmation's [inbound] confirm_ttl, since the person did not just ask. */
#define OFFER_TTL (30 * 86400)

static char *confirm_token(struct app *app, gint64 enr_id, const char *email, const char *slug, gint64 now,
                           gint64 ttl)
{
    char *bound = confirm_binding(slug, now);
    char *tok = token_make(app->key, TOKEN_CONFIRM, enr_id, email, bound, now + ttl);
    g_free(bound);
    return tok;
}

/* A confirm token of the release before the binding above (bound to the
 * course alone) still works for the confirmation it came with: its
 * lifetime ends one TTL after that mail was sent. */
static gboolean confirm_legacy_ok(struct app *app, const char *token, const struct enrollment_row *row,
                                  gint64 now)
{
    gint64 expires = 0;
    if (!token_peek(token, NULL, NULL, &expires) || row->confirm_sent_at <= 0 ||
        !token_verify(app->key, token, TOKEN_CONFIRM, row->email, row->course, now, NULL))
        return FALSE;
    gint64 issued[] = { expires - app->cfg->confirm_ttl, expires - MAX(OFFER_TTL, app->cfg->confirm_ttl) };
    for (guint i = 0; i < G_N_ELEMENTS(issued); i++)
        if (ABS(issued[i] - row->confirm_sent_at) <= 5)
            return TRUE;
    return FALSE;
}

/* Queues the confirmation of enrollment enr_id and records the consent
 * request of origin with it; *capped: dropped by [inbound] replies_per_hour
 * (then the request waits unconfirmed, no consent is recorded, and asking
 * again tries again). The mail is rendered when coursed sends it, which
 * then fills in the record's SHA-256 of the mail exactly as sent
 * (store_consent_mail, lib/tick.c). */
static gboolean send_confirm(struct app *app, const struct course *c, gint64 sub_id, gint64 enr_id,
                             const char *email, const struct optin_origin *origin, gint64 now,
                             gboolean *capped, GError **err)
{
    char *tok = confirm_token(app, enr_id, email, c->slug, now, app->cfg->confirm_ttl);
    char *url = g_strdup_printf("%s/c/%s", app->cfg->base_url, tok);
    char *reply_to = g_strdup_printf("%s+confirm-%s@%s", c->slug, tok, app->cfg->domain);
    struct render_var vars[] = { { "confirm_url", url, TRUE } };
    struct compose_system_opts opts = { vars, 1, reply_to, NULL, FALSE };
    struct compose_to to = { email, NULL, NULL, enr_id };
    struct consent_row consent = {
        .subscriber_id = sub_id,
        .enrollment_id = enr_id,
        .course = (char *)c->slug,
        .requested_at = now,
        .source = (char *)origin->source,
        .shown_sha256 = (char *)origin->shown_sha256,
        .ip = (char *)origin->ip,
        .user_agent = (char *)origin->user_agent,
    };
    gboolean ok = notify_queue(app, "confirm", c, &to, sub_id, &opts, FALSE, capped, now, err) &&
                  (*capped || (store_consent_add(app->st, &consent, err) > 0 &&
                               store_enr_apply(app->st, enr_id, EV_ENR_REQUEST,
                                               &(struct enr_change){ .confirm_sent_at = now }, now, err)));
    g_free(reply_to);
    g_free(url);
    g_free(tok);
    return ok;
}

/* The paragraph of the complete mail that offers c's next course to the
 * subscriber of e, with a confirm link for a pending enrollment in it
 * (made here; nothing starts unless they confirm). "" when there is
 * nothing to offer: no next course, or they are in it, finished it, or
 * left it (leaving is an answer). Returns Markdown, or NULL with err. */
static char *offer_next(struct app *app, const struct course *c, const struct enrollment_row *e, gint64 now,
                        GError **err)
{
    const struct course *nc = course_find(app->courses, c->next_course);
    if (!nc || !app->key)
        return g_strdup("");
    gint64 id = store_enrollment_find(app->st, e->subscriber_id, nc->slug, err);
    if (id < 0)
        return NULL;
    struct enrollment_row *row = id ? store_enrollment_get(app->st, id, err) : NULL;
    if (id && !row)
        return NULL;
    gboolean offer = !row || row->state == ENR_PENDING;
    store_enrollment_free(row);
    if (!offer)
        return g_strdup("");
    if (!id)
        id = store_enroll(app->st, e->subscriber_id, nc->slug, ENR_PENDING, 0, now, now, err);
    if (id < 0 ||
        !store_enr_apply(app->st, id, EV_ENR_REQUEST, &(struct enr_change){ .confirm_sent_at = now }, now,
                         err) ||
        !store_event(app->st, now, e->subscriber_id, id, "offered", "daemon", c->slug, err))
        return NULL;
    /* the offer is an opt-in request too: its consent record says where */
    char *where = g_strdup_printf("offered in the complete mail of %s", c->slug);
    struct consent_row consent = { .subscriber_id = e->subscriber_id,
                                   .enrollment_id = id,
                                   .course = (char *)nc->slug,
                                   .requested_at = now,
                                   .source = "mail",
                                   .detail = where };
    gboolean recorded = store_consent_add(app->st, &consent, err) > 0;
    g_free(where);
    if (!recorded)
        return NULL;
    char *tok = confirm_token(app, id, e->email, nc->slug, now, MAX(OFFER_TTL, app->cfg->confirm_ttl));
    char *url = g_strdup_printf("%s/c/%s", app->cfg->base_url, tok);
    char *md = compose_next_offer(app, c, nc, url);
    g_free(url);
    g_free(tok);
    return md;
}

/* Queues the complete mail of enrollment id, if it is still completed,
 * its subscriber active and its course wants one. */
static gboolean complete_one(struct app *app, gint64 id, gint64 now, GError **err)
{
    struct enrollment_row *e = store_enrollment_get(app->st, id, err);
    if (!e)
        return FALSE;
    const struct course *c = course_find(app->courses, e->course);
    gboolean ok = TRUE;
    if (c && c->complete_mail && e->state == ENR_COMPLETED && e->sub_status == SUB_ACTIVE) {
        char *next = c->next_course ? offer_next(app, c, e, now, err) : g_strdup("");
        ok = next != NULL;
        if (ok) {
            struct render_var vars[] = { { "next_step", next, TRUE } };
            struct compose_system_opts opts = { vars, G_N_ELEMENTS(vars), NULL, NULL, TRUE };
            struct compose_to to = { e->email, e->name, e->tz, e->id, NULL };
            ok = notify_queue(app, "complete", c, &to, e->subscriber_id, &opts, FALSE, NULL, now, err);
        }
        g_free(next);
    }
    store_enrollment_free(e);
    return ok && store_complete_clear(app->st, id, err);
}

int optin_complete_due(struct app *app, gint64 now, GError **err)
{
    /* Pages of 100, one transaction each, until none is left (bounded):
     * a daemon that waited a tick per page would keep --until-done and
     * the people who just finished waiting. */
    int n = 0;
    for (int page = 0; page < 1000; page++) {
        GArray *ids = store_complete_due(app->st, 100, err);
        if (!ids)
            return -1;
        guint len = ids->len;
        gboolean ok = len == 0 || store_begin(app->st, err);
        for (guint i = 0; ok && i < len; i++)
            ok = complete_one(app, g_array_index(ids, gint64, i), now, err);
        g_array_free(ids, TRUE);
        if (len == 0)
            break;
        if (!ok || !store_commit(app->st, err)) {
            store_rollback(app->st);
            return -1;
        }
        n += (int)len;
    }
    return n;
}

int optin_request(struct app *app, const char *email, const char *course, const char *name, const char *tz,
                  gboolean zone_guessed, const char *via, gint64 now, GError **err)
{
    static const struct optin_origin by_mail = { "mail", NULL, NULL, NULL };
    return optin_request_from(app, email, course, name, tz, zone_guessed, via, &by_mail, now, err);
}

int optin_request_from(struct app *app, const char *email, const char *course, const char *name,
                       const char *tz, gboolean zone_guessed, const char *via,
                       const struct optin_origin *origin, gint64 now, GError **err)
{
    const struct course *c = course_find(app->courses, course);
    if (!c) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", course);
        return -1;
    }
    if (!app->key) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no secret key: run 'coursectl init'");
        return -1;
    }
    if (tz && !pace_tz_valid(tz))
        tz = NULL; /* a bad zone in a request is dropped, not an error mail */
    char *addr = address_normalize(email, err);
    if (!addr)
        return -1;
    int result = -1;
    struct sub_row *s = NULL;
    if (!store_begin(app->st, err))
        goto out;
    GError *e = NULL;
    s = store_sub_get(app->st, addr, &e);
    if (!s && e->code != CD_ERR_NOT_FOUND) {
        g_propagate_error(err, e);
        goto fail;
    }
    g_clear_error(&e);
    if (!s) {
        char *clean = address_clean_name(name ? name : "", 100);
        gint64 id = store_sub_add(app->st, addr, clean, tz, SUB_PENDING, now, err);
        g_free(clean);
        if (id < 0 || (zone_guessed && tz && !store_sub_set_guessed(app->st, id, TRUE, err)) ||
            !store_event(app->st, now, id, 0, "subscribe-requested", via, c->slug, err))
            goto fail;
        s = store_sub_get(app->st, addr, err);
        if (!s)
            goto fail;
    }
    gint64 enr = store_enrollment_find(app->st, s->id, c->slug, err);
    if (enr < 0)
        goto fail;
    struct enrollment_row *row = enr ? store_enrollment_get(app->st, enr, err) : NULL;
    if (enr && !row)
        goto fail;
    /* Enrolled already (or finished): a status mail answers. */
    if (row && (row->state == ENR_ACTIVE || row->state == ENR_PAUSED || row->state == ENR_COMPLETED)) {
        store_enrollment_free(row);
        result = notify_status(app, c, enr, TRUE, now, err) ? OPTIN_ALREADY : -1;
        goto done;
    }
    /* A confirmation to this address bounced hard, and it never
     * confirmed anything: mailing it again would only bounce again. */
    if (row && row->state == ENR_STOPPED && row->reason == REASON_BOUNCED && s->status == SUB_PENDING) {
        store_enrollment_free(row);
        log_info("%s: an earlier confirmation bounced; not confirming again", addr);
        result = OPTIN_DEAD;
        goto done;
    }
    if (row && row->state == ENR_PENDING && row->confirm_sent_at > now - 86400) {
        store_enrollment_free(row);
        result = OPTIN_RECENT;
        goto done;
    }
    store_enrollment_free(row);
    gint64 sent = store_outbox_count(app->st, NULL, "confirm", now - 3600, err);
    if (sent < 0)
        goto fail;
    if (sent >= app->cfg->confirm_per_hour) {
        log_warn("confirmation cap reached (%" G_GINT64_FORMAT " in the last hour): not confirming %s", sent,
                 addr);
        result = OPTIN_CAPPED;
        goto done;
    }
    if (!enr) {
        enr = store_enroll(app->st, s->id, c->slug, ENR_PENDING, 0, now, now, err);
        if (enr < 0)
            goto fail;
    } else if (!store_enr_apply(app->st, enr, EV_ENR_REQUEST,
                                &(struct enr_change){
                                    .set_next = TRUE, .set_pause = TRUE, .set_reason = TRUE },
                                now, err)) {
        goto fail;
    }
    gboolean capped = FALSE;
    if (!send_confirm(app, c, s->id, enr, addr, origin, now, &capped, err))
        goto fail;
    result = capped ? OPTIN_CAPPED : OPTIN_SENT;
done:
    if (result < 0 || !store_commit(app->st, err))
        goto fail;
    goto out;
fail:
    store_rollback(app->st);
    result = -1;
out:
    store_sub_free(s);
    g_free(addr);
    return result;
}

struct enrollment_row *optin_token_enrollment(struct app *app, const char *token, int purpose, gint64 now,
                                              GError **err)
{
    enum token_purpose p;
    gint64 id = 0;
    if (!app->key || !token_peek(token, &p, &id, NULL) || (int)p != purpose || id <= 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "not a valid link or token");
        return NULL;
    }
    GError *e = NULL;
    struct enrollment_row *row = store_enrollment_get(app->st, id, &e);
    if (!row) {
        if (e->code == CD_ERR_NOT_FOUND) {
            g_clear_error(&e);
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "not a valid link or token");
        } else {
            g_propagate_error(err, e);
        }
        return NULL;
    }
    char *bound = purpose == TOKEN_CONFIRM ? confirm_binding(row->course, row->confirm_sent_at)
                                           : g_strdup(row->course);
    GError *why = NULL;
    gboolean ok = token_verify(app->key, token, (enum token_purpose)purpose, row->email, bound, now, &why) ||
                  (purpose == TOKEN_CONFIRM && confirm_legacy_ok(app, token, row, now));
    g_free(bound);
    if (!ok) {
        g_propagate_error(err, why);
        store_enrollment_free(row);
        return NULL;
    }
    g_clear_error(&why);
    return row;
}

gint64 optin_confirm(struct app *app, const char *token, const char *via, gint64 now, GError **err)
{
    if (!store_begin(app->st, err))
        return -1;
    struct enrollment_row *e = optin_token_enrollment(app, token, TOKEN_CONFIRM, now, err);
    gint64 id = -1;
    const struct course *c = e ? course_find(app->courses, e->course) : NULL;
    if (e && !c)
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' is not offered any more", e->course);
    else if (e && e->state != ENR_PENDING)
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "this confirmation was already used");
    else if (e) {
        gint64 first = life_first(app, c, e->id, e->subscriber_id, e->tz, now);
        char *hash = token_hash_address(app->key, e->email);
        gboolean lifted = store_unsuppress(app->st, hash, err);
        g_free(hash);
        /* the consent record says how: a reply to the mail, or the page's
         * button (the link) */
        const char *means = strcmp(via, "email") == 0 ? "reply" : "link";
        if (lifted && life_confirm(app, e, first, via, now, err) &&
            store_consent_confirm(app->st, e->id, means, now, err) && notify_welcome(app, c, e->id, now, err))
            id = e->id;
    }
    store_enrollment_free(e);
    if (id < 0 || !store_commit(app->st, err)) {
        store_rollback(app->st);
        return -1;
    }
    return id;
}

gboolean optin_leave(struct app *app, gint64 enrollment_id, const char *via, gint64 now, GError **err)
{
    if (!store_begin(app->st, err))
        return FALSE;
    struct enrollment_row *e = store_enrollment_get(app->st, enrollment_id, err);
    gboolean ok = e != NULL;
    /* Leaving is immediate (a finished course too: the person asks for
     * nothing more); leaving twice changes nothing. */
    if (ok && e->state != ENR_STOPPED) {
        const struct course *c = course_find(app->courses, e->course);
        ok = life_stop(app, e, REASON_SUBSCRIBER, "unsubscribed", via, now, err);
        if (ok && c) {
            struct compose_to to = { e->email, e->name, e->tz, e->id };
            char sent[16], steps[16];
            g_snprintf(sent, sizeof sent, "%d", e->lessons_sent);
            g_snprintf(steps, sizeof steps, "%d", c->n_lessons);
            char *progress = lang_say(app_lang(app, c), "progress_left", FALSE, "sent", sent, "steps", steps,
                                      (char *)NULL);
            struct render_var vars[] = { { "progress", progress, FALSE } };
            struct compose_system_opts opts = { vars, 1, NULL, NULL, FALSE };
            ok = notify_queue(app, "goodbye", c, &to, e->subscriber_id, &opts, TRUE, NULL, now, err);
            g_free(progress);
        }
    }
    store_enrollment_free(e);
    if (!ok || !store_commit(app->st, err)) {
        store_rollback(app->st);
        return FALSE;
    }
    return TRUE;
}

gboolean optin_leave_token(struct app *app, const char *token, const char *via, gint64 now, GError **err)
{
    struct enrollment_row *e = optin_token_enrollment(app, token, TOKEN_UNSUBSCRIBE, now, err);
    if (!e)
        return FALSE;
    gboolean ok = optin_leave(app, e->id, via, now, err);
    store_enrollment_free(e);
    return ok;
}
