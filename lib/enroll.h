/* enroll.h - a subscriber's place on a course calendar: start, pause,
 * resume, re-planning, and the plan ahead. */
#ifndef COURSED_ENROLL_H
#define COURSED_ENROLL_H
#include <glib.h>
#include "app.h"
#include "course.h"
#include "schedule.h"

/* Enrolls email in course (slug) and, if welcome, queues the welcome mail
 * with the course calendar (.ics) in the same transaction (needs
 * app->key). Returns the enrollment id or -1 with err (CD_ERR_NOT_FOUND
 * for an unknown subscriber or course, CD_ERR_EXISTS). */
gint64 enroll_start(struct app *app, const char *email, const char *course, gboolean welcome, const char *via,
                    gint64 now, GError **err);

/* Pauses email's active enrollments (only `course` if not NULL) until
 * `until` (0: until resumed). Returns how many, or -1 with err. */
int enroll_pause(struct app *app, const char *email, const char *course, gint64 until, const char *via,
                 gint64 now, GError **err);

/* Resumes paused enrollments: the next unsent lesson goes at the next slot
 * after now, and the slots after it follow. Returns how many, or -1. */
int enroll_resume(struct app *app, const char *email, const char *course, const char *via, gint64 now,
                  GError **err);

/* Resumes every enrollment whose pause has run out by now (the tick calls
 * this). Returns how many, or -1 with err. */
int enroll_resume_due(struct app *app, gint64 now, GError **err);

/* Stops email's enrollment in course at once, without a goodbye mail (the
 * operator's unenroll). FALSE with err (CD_ERR_NOT_FOUND). */
gboolean enroll_stop(struct app *app, const char *email, const char *course, const char *via, gint64 now,
                     GError **err);

/* Starts email's enrollment in course again from lesson 1 (see
 * life_restart). FALSE with err (CD_ERR_NOT_FOUND when not enrolled). */
gboolean enroll_restart(struct app *app, const char *email, const char *course, const char *via, gint64 now,
                        GError **err);

/* Moves email's enrollment in course so that lesson n is the next one, at
 * the next slot; lessons from n on may be sent again. */
gboolean enroll_move(struct app *app, const char *email, const char *course, int n, const char *via,
                     gint64 now, GError **err);

#endif
