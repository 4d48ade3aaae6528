/* calendar.h - the lessons still to come, as instants and as .ics. */
#ifndef COURSED_CALENDAR_H
#define COURSED_CALENDAR_H
#include <glib.h>
#include "app.h"
#include "course.h"
#include "store.h"

/* Fills slots (gint64, UTC) with the planned instants of the lessons still
 * to come and lessons (int) with their positions, in the order they go out
 * (the lesson in flight first, then every position without a row), by the
 * same schedule_after() that
 * places them (max_per_day included). A paused enrollment with an end is
 * projected from that end; an open pause or a finished course has none.
 * Returns FALSE with err on a database error. */
gboolean calendar_upcoming(struct app *app, const struct enrollment_row *e, const struct course *c,
                           GArray *slots, GArray *lessons, GError **err);

/* Returns the .ics calendar (see pace_calendar) of the lessons still to
 * come in the given enrollments (struct enrollment_row), with the highest
 * of their calendar_seq as SEQUENCE; NULL with err on a database error.
 * g_free(). */
char *calendar_of(struct app *app, GPtrArray *enrollments, gint64 now, GError **err);

/* Returns the calendar of the lessons still owed after the one in flight
 * (the next at `next`) of enrollment `id` in its round, for the mail
 * carrying that lesson. g_free(). */
char *calendar_after(struct app *app, const struct course *c, gint64 id, const char *tz, gint64 anchor,
                     int round, gint64 next, int sequence, gint64 now);

#endif
