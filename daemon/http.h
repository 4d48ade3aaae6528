/* http.h - the confirm and one-click unsubscribe pages inside coursed. */
#ifndef COURSED_HTTP_H
#define COURSED_HTTP_H
#include <glib.h>

struct http;

struct snapshot_box;

/* Starts the listener of the current snapshot's [http] listen in its own
 * thread, with its own database connection; every request runs on the
 * snapshot current in box (borrowed: it must outlive the listener).
 * Returns NULL with err if the address or database cannot be used; NULL
 * without err when listen is empty. */
struct http *http_start(struct snapshot_box *box, GError **err);

/* Returns the address h listens on ("" for NULL): a reload restarts the
 * listener only when [http] listen changed. */
const char *http_listen(const struct http *h);

/* Stops the listener (waits for requests in flight). Accepts NULL. */
void http_stop(struct http *h);

#endif
