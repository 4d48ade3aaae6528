/* compose.h - lessons and system mails as finished messages for one
 * subscriber. */
#ifndef COURSED_COMPOSE_H
#define COURSED_COMPOSE_H
#include <glib.h>
#include "app.h"
#include "course.h"
#include "render.h"

struct compose_to {
    const char *email;
    const char *name;
    const char *tz;             /* for dates shown in the text; NULL: the course's */
    gint64 enrollment_id;       /* 0 for a test send or a preview */
    const char *message_id;     /* a lesson's, as queued; NULL: made for round 0 */
    gboolean preview;           /* a preview or test send: links carry COMPOSE_PREVIEW_TOKEN, no key needed */
    const char *subject_prefix; /* put before the subject ("[TEST] "), or NULL */
};

/* The token of every link in a preview or a test send: clearly not one
 * that works, and no secret key is needed to make it. */
#define COMPOSE_PREVIEW_TOKEN "PREVIEW-NOT-A-REAL-TOKEN"

/* What a message is made of, for previews: each g_free()d by the caller. */
struct compose_parts {
    char *subject; /* as in the Subject header (the prefix included) */
    char *text;    /* the text/plain part */
    char *html;    /* the text/html part */
};

/* Returns the Message-ID (without <>) of lesson n of an enrollment: a fixed
 * function of (enrollment, lesson), so a resent lesson folds with the first
 * copy in the reader's mailbox. Caller g_free()s. */
char *compose_message_id(const struct config *cfg, const char *course, gint64 enrollment_id, int n);

/* Returns the Message-ID (without <>) of the lesson at position n of c for
 * an enrollment in its round (restarts so far), named by the lesson's
 * identity (its slug): "<slug>.e<id>.<course>@<domain>", and
 * "<slug>.e<id>r<round>.<course>@<domain>" after a restart. The same
 * lesson keeps it when an edit moves it, and a resent copy folds with the
 * first. Caller g_free()s. */
char *compose_lesson_id(const struct config *cfg, const struct course *c, gint64 enrollment_id, int round,
                        int n);

/* Returns instant t as the readers of course c write a date, in the
 * language of c (c NULL: English) and zone tz (NULL or "": c's):
 * "Wednesday 4 March at 9:00". together: with no-break spaces, so that
 * the date never breaks across lines (the welcome's first date, read on a
 * phone). g_free(). */
char *compose_date(const struct app *app, const struct course *c, gint64 t, const char *tz,
                   gboolean together);

/* Returns the paragraphs of c's complete mail that offer course nc (its
 * {{next_step}}), in c's language, with the confirm link url, as
 * Markdown. g_free(). */
char *compose_next_offer(const struct app *app, const struct course *c, const struct course *nc,
                         const char *url);

/* Returns the help mail's list of every course of app ({{courses}}), one
 * Markdown list item each ("- Title: write to slug@domain. Description"),
 * in the language of course about (NULL: English). g_free(). */
char *compose_courses_list(const struct app *app, const struct course *about);

/* Returns the envelope sender for lessons. Caller g_free()s. */
char *compose_env_from(const struct config *cfg);

struct delivery_row;
/* Returns the VERP envelope sender of a lesson, bounces+TOKEN@domain, whose
 * token names the delivery (or bounces@domain without a key). g_free(). */
char *compose_verp(const struct app *app, const struct delivery_row *d);

/* What a system mail's VERP token is bound to in place of a course (not a
 * course slug, so it never matches a delivery's token). */
#define COMPOSE_VERP_MAIL "~system-mail"

struct outbox_row;
/* Returns the VERP envelope sender of system mail o, bounces+TOKEN@domain,
 * whose token names the outbox row (or bounces@domain without a key).
 * g_free(). */
char *compose_verp_mail(const struct app *app, const struct outbox_row *o);

/* Returns the address commands for course c are sent to. g_free(). */
char *compose_command_address(const struct config *cfg, const struct course *c);

/* Lesson skeletons (message.c), built on first use and shared by the
 * session threads. compose_cache_free accepts NULL. */
struct compose_cache *compose_cache_new(void);
void compose_cache_free(struct compose_cache *cc);

/* Returns lesson n of c as a CRLF message dated `date`, with the next step
 * announced for next_at (<= 0: this is the last step), with the .ics
 * `calendar` attached when not NULL, or NULL with err. Needs app->key (List-Unsubscribe token). Caller g_free()s; *len gets
 * the length. */
char *compose_lesson(const struct app *app, const struct course *c, int n, const struct compose_to *to,
                     gint64 date, gint64 next_at, const char *calendar, gsize *len, GError **err);

/* Lesson n's parts without headers, for previews: *text and *html. */
gboolean compose_lesson_parts(const struct app *app, const struct course *c, int n,
                              const struct compose_to *to, gint64 next_at, char **text, char **html,
                              GError **err);

/* How a person came into a course, as the welcome says it ({{joined}}). */
enum compose_joined {
    COMPOSE_JOINED_CONFIRMED, /* confirmed their own request (and previews) */
    COMPOSE_JOINED_OPERATOR,  /* added by an operator (coursectl enroll) */
    COMPOSE_JOINED_UNSAID,    /* not known: nothing said */
};

struct compose_system_opts {
    const struct render_var *vars; /* extra values (zone_hint, confirm_url, reason...) */
    size_t n_vars;
    const char *reply_to;        /* e.g. release+confirm-TOKEN@domain */
    const char *calendar;        /* .ics attachment, or NULL */
    gboolean list_headers;       /* List-Id and List-Unsubscribe (not on confirm) */
    struct compose_parts *parts; /* if not NULL: gets the subject and both parts, as sent */
    enum compose_joined joined;  /* welcome: how the person came in */
    gboolean tz_guessed;         /* to->tz was guessed from their mail (zone_sentence, zone_hint) */
    const char *json;            /* application/json attachment (the export mail), or NULL */
    const char *json_name;       /* its file name */
    const char *in_reply_to;     /* the command answered (Message-ID without <>), or NULL */
    gboolean bare_to;            /* To: the bare address (a reply: no name from a stranger) */
};

/* Returns what to send for system mail `which` to `to` with opts (every
 * value the templates will see, the headers' values, a Message-ID made
 * now), as GVariant text for the outbox: the pipe records it, coursed
 * renders it with compose_system_spec() from the templates it runs.
 * opts->parts is not kept. Caller g_free()s. */
char *compose_spec_new(const struct config *cfg, const char *which, const struct compose_to *to,
                       const struct compose_system_opts *opts);

/* Returns system mail `which` rendered from spec (compose_spec_new) for
 * course c (NULL: none, as for help), dated `date`, as compose_system does;
 * or NULL with err (a spec that does not parse, a template that fails).
 * Caller g_free()s; *len gets the length. */
char *compose_system_spec(const struct app *app, const char *which, const struct course *c, const char *spec,
                          gint64 date, gsize *len, GError **err);

/* Returns the Auto-Submitted value (RFC 3834) of system mail `which`:
 * "auto-generated" for welcome and complete (not answers to a message),
 * "auto-replied" for the others. Static. */
const char *compose_auto_submitted(const char *which);

/* Returns system mail `which` (confirm, welcome, goodbye, status, help,
 * error) about course c (may be NULL for help) as a CRLF message carrying
 * the Auto-Submitted of compose_auto_submitted(which), or NULL with err.
 * Caller g_free()s. */
char *compose_system(const struct app *app, const char *which, const struct course *c,
                     const struct compose_to *to, const struct compose_system_opts *opts, gint64 date,
                     gsize *len, GError **err);

#endif
