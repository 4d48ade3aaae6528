/* http.h - the confirm and one-click unsubscribe pages inside coursed. */
#ifndef COURSED_HTTP_H
#define COURSED_HTTP_H
#include <glib.h>

struct http;

/* Starts the listener of [http] listen in its own thread, with its own
 * database connection (opened from config_path). Returns NULL with err if
 * the address cannot be used; NULL without err when listen is empty. */
struct http *http_start(const char *config_path, GError **err);

/* Stops the listener (waits for requests in flight). Accepts NULL. */
void http_stop(struct http *h);

#endif
