/* enroll.h - putting a subscriber on a course calendar. */
#ifndef COURSED_ENROLL_H
#define COURSED_ENROLL_H
#include <glib.h>
#include "app.h"
#include "course.h"

/* Returns the zone a subscriber's slots are computed in: their own, or the
 * course default. Borrowed. */
const char *enroll_zone(const struct course *c, const char *sub_tz);

/* Returns the first lesson's instant for someone starting at now: the next
 * slot, but never later than the course's first_within. */
gint64 enroll_first_slot(const struct course *c, const char *sub_tz, gint64 now);

/* Enrolls email in course (slug). Returns the enrollment id or -1 with err
 * (CD_ERR_NOT_FOUND for an unknown subscriber or course, CD_ERR_EXISTS). */
gint64 enroll_start(struct app *app, const char *email, const char *course, const char *via,
                    gint64 now, GError **err);

#endif
