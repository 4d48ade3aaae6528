/* optin.h - double opt-in and leaving: the steps that an inbound mail and
 * the HTTP pages share. Each runs in one transaction (nested in the
 * caller's when there is one). */
#ifndef COURSED_OPTIN_H
#define COURSED_OPTIN_H
#include <glib.h>
#include "app.h"

enum optin_result {
    OPTIN_SENT,    /* a confirmation mail was queued */
    OPTIN_RECENT,  /* one was sent in the last 24h: nothing new */
    OPTIN_CAPPED,  /* the hourly cap on confirmations is reached */
    OPTIN_ALREADY, /* already enrolled: a status mail answers */
    OPTIN_DEAD,    /* an earlier confirmation to this address bounced: nothing sent */
};

/* A subscribe request from email for course: never enrolls by itself. A new
 * address becomes a 'pending' subscriber (name and zone from the request;
 * zone_guessed when it came from the Date header); the enrollment waits in
 * 'pending' and a confirmation goes to email only, recorded as a consent
 * request from a mail. Returns the result, or -1 with err. */
int optin_request(struct app *app, const char *email, const char *course, const char *name, const char *tz,
                  gboolean zone_guessed, const char *via, gint64 now, GError **err);

/* Where a subscribe request came from, for its consent record (strings
 * borrowed). */
struct optin_origin {
    const char *source;       /* "mail" or "form" */
    const char *shown_sha256; /* SHA-256 (hex) of the form shown, or NULL */
    const char *ip;           /* with [http] record_ip only, else NULL */
    const char *user_agent;   /* likewise */
};

/* optin_request() for a request from origin (the form, lib/signup.c): the
 * same rules, the same mail; the consent record says where it came from. */
int optin_request_from(struct app *app, const char *email, const char *course, const char *name,
                       const char *tz, gboolean zone_guessed, const char *via,
                       const struct optin_origin *origin, gint64 now, GError **err);

/* Confirms with a token from a confirmation mail or page: valid, unexpired,
 * for a still-pending enrollment (so it works once). Starts the course and
 * queues the welcome mail. Returns the enrollment id, or -1 with err
 * (CD_ERR_INVALID for a bad or used token). */
gint64 optin_confirm(struct app *app, const char *token, const char *via, gint64 now, GError **err);

/* Returns the enrollment a token of `purpose` acts on, after checking it
 * (free with store_enrollment_free), or NULL with err. */
struct enrollment_row *optin_token_enrollment(struct app *app, const char *token, int purpose, gint64 now,
                                              GError **err);

/* Queues the `complete` mail of up to 100 enrollments whose last lesson
 * went out (the course's complete_mail on, the subscriber still active):
 * the end of the course, how to take it again (`restart`), and, when the
 * course names a next_course the person is not in, finished or left, an
 * offer to join it: a pending enrollment and its confirm link, valid 30
 * days. Never an enrollment without a confirmation. One transaction per
 * page of 100, until none is owed. Returns how many were handled, or -1
 * with err. */
int optin_complete_due(struct app *app, gint64 now, GError **err);

/* Leaves enrollment id (unsubscribe): stopped at once, queued lessons
 * withdrawn, goodbye mail queued. The subscriber becomes 'unsubscribed'
 * when no course is left. Returns FALSE with err. */
gboolean optin_leave(struct app *app, gint64 enrollment_id, const char *via, gint64 now, GError **err);

/* The one-click path: checks an unsubscribe token and leaves. */
gboolean optin_leave_token(struct app *app, const char *token, const char *via, gint64 now, GError **err);

#endif
