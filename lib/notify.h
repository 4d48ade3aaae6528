/* notify.h - queueing system mails (welcome, confirm, status, help,
 * goodbye, error) for a subscriber. */
#ifndef COURSED_NOTIFY_H
#define COURSED_NOTIFY_H
#include <glib.h>
#include "app.h"
#include "compose.h"
#include "course.h"

/* Queues what to send for system mail `which` about course c to `to` (its
 * values, see compose_spec_new) in the outbox inside the caller's
 * transaction; coursed renders it when it sends it. When limit is TRUE it
 * is an automatic reply: at most [inbound] replies_per_day go to one
 * address per day. Replies (limit, and every confirm) count against
 * [inbound] replies_per_hour for all addresses together, go to the bare
 * address, greet only a name from the operator or a confirmed
 * subscription, and answer app->in_reply_to (In-Reply-To) unless opts names
 * one. Over a cap nothing is queued, it is logged and *limited is set.
 * Returns FALSE only on error. */
gboolean notify_queue(struct app *app, const char *which, const struct course *c, const struct compose_to *to,
                      gint64 subscriber_id, const struct compose_system_opts *opts, gboolean limit,
                      gboolean *limited, gint64 now, GError **err);

/* Queues the welcome mail of enrollment id, with the course calendar. It
 * says how the person came in ({{joined}}), from the event this
 * transaction wrote before it: 'confirmed' (optin_confirm: they confirmed
 * their own request) or 'enrolled' (enroll_start: an operator added them);
 * and one sentence on the zone of its dates ({{zone_sentence}}): theirs,
 * guessed from their mail, or the course's while theirs is not known. */
gboolean notify_welcome(struct app *app, const struct course *c, gint64 enrollment_id, gint64 now,
                        GError **err);

/* Queues a status mail for the subscriber about course c. */
gboolean notify_status(struct app *app, const struct course *c, gint64 enrollment_id, gboolean limit,
                       gint64 now, GError **err);

#endif
