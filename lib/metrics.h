/* metrics.h - /metrics: coursed's numbers in the Prometheus text format. */
#ifndef COURSED_METRICS_H
#define COURSED_METRICS_H
#include <glib.h>
#include "app.h"

/* Records that a tick took seconds (the daemon loop calls it after each
 * tick; any thread may read what it recorded). */
void metrics_tick_done(double seconds);

/* Returns the exposition (text format 0.0.4: HELP and TYPE lines, then
 * `name{labels} value` lines) of the numbers in app's database at now and
 * of this process's ticks, or NULL with err. g_free(). */
char *metrics_text(struct app *app, gint64 now, GError **err);

#endif
