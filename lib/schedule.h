/* schedule.h - when each lesson of an enrollment is due: the first slot,
 * the slot after a lesson (with max_per_day), and the projection of the
 * lessons still to come. The one source of truth: the tick places lessons
 * with these functions, and `coursectl schedule`, the status mail and every
 * .ics calendar project with the same ones, so that what a calendar promised
 * is what arrives when nothing changes. Model layer: no SQL (the caller
 * passes day counts), libical only through pace.c. */
#ifndef COURSED_SCHEDULE_H
#define COURSED_SCHEDULE_H
#include <glib.h>
#include "config.h"
#include "course.h"
#include "pace.h"

/* Returns the zone a subscriber's slots are computed in: their own, or the
 * course default. Borrowed. */
const char *schedule_zone(const struct course *c, const char *sub_tz);

/* Returns c's slot rule in the subscriber's zone (pointers borrowed). */
struct pace_rule schedule_rule(const struct course *c, const char *sub_tz);

/* The same, at the subscriber's own time of day lesson_time ("HH:MM";
 * NULL or unreadable: the course's time). */
struct pace_rule schedule_rule_at(const struct course *c, const char *sub_tz, const char *lesson_time);

/* Returns the first lesson's instant for someone starting at now: now with
 * [pacing] first_lesson = immediately; else the next slot, but never later
 * than the course's first_within. -1 if the rule has no slot. */
gint64 schedule_first(const struct config *cfg, const struct course *c, const char *sub_tz, gint64 now);

/* The same, at the subscriber's own time of day (NULL: the course's). */
gint64 schedule_first_at(const struct config *cfg, const struct course *c, const char *sub_tz,
                         const char *lesson_time, gint64 now);

/* Returns the date a preview of lesson n shows for "the next step": the
 * next slot after now in the subscriber's zone, or -1 after the last
 * lesson (coursectl course preview). */
gint64 schedule_preview_next(const struct course *c, const char *sub_tz, int n, gint64 now);

/* Returns the slot of the lesson after one placed at `prev`, whose local
 * day already holds *in_day lessons of this enrollment (prev included): the
 * next slot of the rule, moved to the next local day while the day it falls
 * on is full (max_per_day). *in_day becomes the count of the returned
 * slot's day, this lesson included. -1 when the rule has no more slots. */
gint64 schedule_after(const struct config *cfg, const struct pace_rule *rule, gint64 anchor, gint64 prev,
                      int *in_day);

/* The same, for a lesson of slot `prev` that went out (was queued) at
 * `placed`, perhaps later, on another local day: max_per_day counts the
 * day it went out, as the tick does when it places the next one. */
gint64 schedule_after_placed(const struct config *cfg, const struct pace_rule *rule, gint64 anchor,
                             gint64 prev, gint64 placed, int *in_day);

/* Appends to slots (gint64) the instants of `count` lessons, the first at
 * `first`, placed (queued) at first_placed (<= 0: at first), whose day
 * then holds first_in_day lessons, it included; each next one by
 * schedule_after_placed(). */
void schedule_project(const struct config *cfg, const struct pace_rule *rule, gint64 anchor, gint64 first,
                      gint64 first_placed, int first_in_day, int count, GArray *slots);

#endif
