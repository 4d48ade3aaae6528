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

#endif
