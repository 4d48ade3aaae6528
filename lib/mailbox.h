/* mailbox.h - commands that arrive in a Maildir (fetchmail, mbsync,
 * getmail from a hosted IMAP mailbox). */
#ifndef COURSED_MAILBOX_H
#define COURSED_MAILBOX_H
#include <glib.h>
#include "app.h"

/* Handles every message in <dir>/new, oldest first: each is classified and
 * applied once (see command_apply), then moved to <dir>/cur with the Seen
 * flag; one that is not a message at all goes to <dir>/.Quarantine/cur.
 * Nothing is deleted. On a database error the scan stops and the message
 * stays in new/ for the next scan. Returns how many were handled, or -1
 * with err. */
int mailbox_scan(struct app *app, const char *dir, gint64 now, GError **err);

/* Creates dir/{tmp,new,cur} and dir/.Quarantine/{tmp,new,cur}. */
gboolean mailbox_prepare(const char *dir, GError **err);

#endif
