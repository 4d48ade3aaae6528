/* command.h - carrying out what an inbound mail asks for. */
#ifndef COURSED_COMMAND_H
#define COURSED_COMMAND_H
#include <glib.h>
#include "app.h"
#include "inbound.h"

/* Applies classification r in one transaction: the message key is
 * remembered first, so the same message delivered twice has no second
 * effect. *result gets a one-line account of what was done (g_free).
 * Returns FALSE with err only when the database could not be used
 * (CD_ERR_BUSY: the MTA should retry); a bad token or an unknown command is
 * answered by mail and counts as handled. */
gboolean command_apply(struct app *app, const struct inbound *r, const char *via, gint64 now, char **result,
                       GError **err);

/* Returns what command_apply would do, without doing it (dry run). */
char *command_describe(const struct inbound *r);

#endif
