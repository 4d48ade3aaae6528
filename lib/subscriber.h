/* subscriber.h - adding and looking up subscribers, with validation. */
#ifndef COURSED_SUBSCRIBER_H
#define COURSED_SUBSCRIBER_H
#include <glib.h>
#include "app.h"

/* Adds a subscriber after checking the address, name and zone (tz may be
 * NULL: the course default applies). Returns the new id, or -1 with err. */
gint64 subscriber_add(struct app *app, const char *email, const char *name, const char *tz,
                      const char *via, gint64 now, GError **err);

/* Returns the subscriber for an address in any case form, or NULL with err
 * (CD_ERR_INVALID for a bad address, CD_ERR_NOT_FOUND). Free with
 * store_sub_free(). */
struct sub_row *subscriber_get(struct app *app, const char *email, GError **err);

/* Changes a subscriber's name (if not NULL) and zone (if set_tz; tz NULL
 * or "" means the course default). A new zone re-plans the future slots of
 * every active enrollment; lessons already sent are untouched. Returns
 * FALSE with err (bad zone, unknown subscriber). */
gboolean subscriber_set(struct app *app, const char *email, const char *name, const char *tz,
                        gboolean set_tz, const char *via, gint64 now, GError **err);

#endif
