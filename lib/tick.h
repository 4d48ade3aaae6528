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

/* Sends lesson n of course to email now, outside any enrollment (a test
 * send: Message-ID with enrollment 0, nothing recorded). Returns FALSE with
 * err saying what the server answered. */
gboolean tick_send_test(struct app *app, const char *email, const char *course, int n, gint64 now,
                        GError **err);

#endif
