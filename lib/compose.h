/* compose.h - a lesson as a finished message for one subscriber. */
#ifndef COURSED_COMPOSE_H
#define COURSED_COMPOSE_H
#include <glib.h>
#include "app.h"
#include "course.h"

struct compose_to {
    const char *email;
    const char *name;
    const char *tz;          /* for dates shown in the text */
    gint64 enrollment_id;    /* 0 for a test send */
};

/* Returns the Message-ID (without <>) of lesson n of an enrollment: a fixed
 * function of (enrollment, lesson), so a resent lesson folds with the first
 * copy in the reader's mailbox. Caller g_free()s. */
char *compose_message_id(const struct config *cfg, const char *course, gint64 enrollment_id, int n);

/* Returns the envelope sender for lessons. Caller g_free()s. */
char *compose_env_from(const struct config *cfg);

/* Returns lesson n of c as a CRLF message dated `date`, with the next step
 * announced for next_at (<= 0: this is the last step), or NULL with err.
 * Caller g_free()s; *len gets the length. */
char *compose_lesson(const struct app *app, const struct course *c, int n,
                     const struct compose_to *to, gint64 date, gint64 next_at, gsize *len,
                     GError **err);

#endif
