/* subscriber.h - adding and looking up subscribers, with validation. */
#ifndef COURSED_SUBSCRIBER_H
#define COURSED_SUBSCRIBER_H
#include <glib.h>
#include "app.h"

/* Adds a subscriber after checking the address, name and zone (tz may be
 * NULL: the course default applies). An address erased earlier is refused
 * (CD_ERR_INVALID) unless force. Returns the new id, or -1 with err. */
gint64 subscriber_add(struct app *app, const char *email, const char *name, const char *tz, gboolean force,
                      const char *via, gint64 now, GError **err);

/* Returns the subscriber for an address in any case form, or NULL with err
 * (CD_ERR_INVALID for a bad address, CD_ERR_NOT_FOUND). Free with
 * store_sub_free(). */
struct sub_row *subscriber_get(struct app *app, const char *email, GError **err);

/* Changes a subscriber's name (if not NULL) and zone (if set_tz; tz NULL
 * or "" means the course default). A new zone re-plans the future slots of
 * every active enrollment; lessons already sent are untouched. Returns
 * FALSE with err (bad zone, unknown subscriber). */
gboolean subscriber_set(struct app *app, const char *email, const char *name, const char *tz, gboolean set_tz,
                        const char *via, gint64 now, GError **err);

/* Sets the subscriber's own time of day for lessons ("HH:MM"; NULL: the
 * course's `time`) and re-plans the next lesson of every running course
 * by the same pacing rules, in one transaction with its audit event.
 * FALSE with err (not HH:MM, unknown subscriber, database). */
gboolean subscriber_set_time(struct app *app, const char *email, const char *lesson_time, const char *via,
                             gint64 now, GError **err);

/* Returns 1 if the address was erased (suppressed), 0 if not, -1 on error.
 * Needs app->key. */
int subscriber_suppressed(struct app *app, const char *email, GError **err);

/* Right to erasure: deletes every trace of the person (subscriber, enrollments,
 * deliveries, mails, events) and keeps only a keyed hash of the address as
 * a suppression entry. Without erase, the subscriber is removed the same way
 * but no suppression is kept. */
gboolean subscriber_remove(struct app *app, const char *email, gboolean erase, gint64 now, GError **err);

#endif
