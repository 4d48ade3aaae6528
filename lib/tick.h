/* tick.h - one pass of the delivery engine. */
#ifndef COURSED_TICK_H
#define COURSED_TICK_H
#include <glib.h>
#include "app.h"

struct tick_stats {
    int queued; /* lessons whose slot came and were queued */
    int moved;  /* lessons moved to a later slot (late, or day cap) */
    int sent;
    int deferred;
    int failed;
};

/* Runs one tick at instant now: queues the lessons that are due, then
 * delivers what is ready through app->tr and records each outcome.
 * Returns FALSE with err if the database could not be used (the tick is
 * then simply tried again later; nothing is lost). */
gboolean tick_run(struct app *app, gint64 now, struct tick_stats *stats, GError **err);

/* Returns the delay before retry number `attempts` (1-based): retry_first
 * doubled per attempt, capped at retry_max. */
gint64 tick_backoff(const struct config *cfg, int attempts);

/* Sends `which` of course to email now, outside any enrollment (nothing
 * recorded): lesson "N", a system mail, or "all" (every lesson, then
 * every system mail, in one session). Each is a test: "[TEST] " first in
 * its subject, a Message-ID of its own (re-tests never fold together),
 * links with COMPOSE_PREVIEW_TOKEN (no key needed). Returns the number of
 * mails sent, or -1 with err (saying what the server answered). */
int tick_send_test(struct app *app, const char *email, const char *course, const char *which, gint64 now,
                   GError **err);

/* The system mails in the order a reader meets them (confirm, welcome,
 * status, help, error, complete, goodbye), NULL-terminated. */
const char *const *tick_test_system_mails(void);

/* Returns system mail `which` of c for `to`, as a preview or a test send
 * shows it: every value filled as a real send fills it, with example
 * values where a real one depends on a subscriber (progress, a reason)
 * and COMPOSE_PREVIEW_TOKEN in the confirm link and its Reply-To; parts
 * (may be NULL) gets the subject and both parts. NULL with err. g_free(). */
struct compose_parts;
struct course;
struct compose_to;
char *tick_sample_system(const struct app *app, const char *which, const struct course *c,
                         const struct compose_to *to, gint64 now, struct compose_parts *parts, gsize *len,
                         GError **err);

#endif
