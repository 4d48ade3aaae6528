/* signup.h - the signup form of a course: its page, the snippet an author
 * pastes into their own site, and what a post of it decides (the honeypot,
 * the rate limits, then the same double opt-in as a subscribe mail). */
#ifndef COURSED_SIGNUP_H
#define COURSED_SIGNUP_H
#include <glib.h>
#include "app.h"

/* The per-IP and global windows of [http] signup_per_ip_per_hour and
 * signup_per_hour: the posts of the last hour, kept in memory by the one
 * process that serves the pages (a restart forgets them; the caps on
 * confirmations, kept in the database, still hold). Locked inside. */
struct signup_limits;

/* Returns new, empty windows; free with signup_limits_free(). */
struct signup_limits *signup_limits_new(void);
void signup_limits_free(struct signup_limits *lim);

/* What a post of the form carries; every field may be NULL (absent). ip and
 * user_agent are the request's, kept only with [http] record_ip. */
struct signup_post {
    const char *email;
    const char *name;
    const char *tz;      /* the page's script fills it from the browser */
    const char *website; /* the honeypot: people never see it */
    const char *form;    /* "page" or "snippet": which form was shown */
    const char *ip;      /* the client's address (the rate limits key) */
    const char *user_agent;
};

enum signup_outcome {
    SIGNUP_ACCEPTED,  /* handed to the opt-in (which may send nothing: already
                         in, asked recently, capped; the page is the same) */
    SIGNUP_DROPPED,   /* the honeypot was filled: nothing done, same page */
    SIGNUP_LIMITED,   /* over a rate limit: nothing done (429) */
    SIGNUP_BAD_EMAIL, /* no usable address: the form again (400), no echo */
    SIGNUP_NO_COURSE, /* no such course (404) */
};

/* Returns the whole signup page of course (an HTML document; g_free), the
 * same bytes for every visitor, so that its SHA-256 in a consent record
 * names what the person saw; or NULL when there is no such course. With
 * problem (a fixed sentence of ours, never input) it says that above the
 * form. */
char *signup_page(const struct app *app, const char *course, const char *problem);

/* Returns the HTML snippet of course's form for an author's own site,
 * posting to base_url/s/SLUG (g_free), or NULL with err (CD_ERR_NOT_FOUND). */
char *signup_snippet(const struct app *app, const char *course, GError **err);

/* Returns the Content-Security-Policy source of the page's one inline
 * script ('sha256-...'), static. */
const char *signup_script_csp(void);

/* Handles a post of course's form at now. Returns the outcome, or -1 with
 * err (the database is busy or failed). */
int signup_submit(struct app *app, struct signup_limits *lim, const char *course, const struct signup_post *p,
                  gint64 now, GError **err);

#endif
