/* lifecycle.h - every event in the life of a subscriber, an enrollment and
 * a delivery is one function here that applies all of its consequences in
 * one transaction (a SAVEPOINT inside the caller's, when there is one), for
 * every caller: the tick, inbound mail, opt-in, the pages and coursectl.
 * The legal states and transitions are the table in state.c; store.c
 * refuses any write the table does not allow.
 *
 * Invariant kept by every function: an active enrollment has either a next
 * slot (next_send_at) or exactly one lesson in flight (queued, sending or
 * deferred; the partial unique index deliveries_inflight holds the "one"). */
#ifndef COURSED_LIFECYCLE_H
#define COURSED_LIFECYCLE_H
#include <glib.h>
#include "app.h"
#include "bounce.h"
#include "store.h"

/* Returns the position of the first lesson of c the enrollment is still
 * owed (the first position with no delivery row), 0 when none, -1 with err. */
int life_next_owed(struct app *app, const struct course *c, gint64 enr_id, GError **err);

/* Returns c's slot rule for the subscriber (subscriber sub_id, or when 0
 * the one of enrollment enr_id) in zone tz, at their own time of day when
 * they chose one on the manage page (schema: subscribers.lesson_time). */
struct pace_rule life_rule(struct app *app, const struct course *c, gint64 enr_id, gint64 sub_id,
                           const char *tz);

/* Returns the first slot (schedule_first) at the subscriber's own time
 * of day. */
gint64 life_first(struct app *app, const struct course *c, gint64 enr_id, gint64 sub_id, const char *tz,
                  gint64 now);

/* Returns the slot of the lesson after d's: schedule_after() from d's slot,
 * with d's local day as loaded as the database says (max_per_day); -1 when
 * d's lesson is the last, -2 with err on a database error. *next_lesson
 * gets the next lesson's position (the first with no row; n_lessons + 1
 * when none), which the outcome records. Main thread (libical). */
gint64 life_next_slot(struct app *app, const struct course *c, const struct delivery_row *d, int *next_lesson,
                      GError **err);
/* Returns the first slot of c's rule (zone tz, anchor) after `after` whose
 * local day does not yet hold max_per_day lessons of enrollment enr_id
 * (those a move forgot included); -1 if the rule has no slot, -2 with err
 * on a database error. Every re-plan (resume, move, retry, a new zone, a
 * late lesson) places with this, as the tick does. One or two day counts. */
gint64 life_slot_after(struct app *app, const struct course *c, gint64 enr_id, const char *tz, gint64 anchor,
                       gint64 after, GError **err);

/* --- outcomes of a claimed lesson (the tick) --- */

/* Sent (2xx): the delivery is 'sent', the enrollment moves to its next
 * lesson, at position next_lesson, at `next` (the slot and position
 * life_next_slot() gave; next <= 0: it was the last and the enrollment is
 * completed). */
gboolean life_sent(struct app *app, const struct delivery_row *d, int code, const char *text, gint64 next,
                   int next_lesson, gint64 now, GError **err);
/* Temporary failure: deferred until next_attempt, with an audit event. */
gboolean life_deferred(struct app *app, const struct delivery_row *d, int code, const char *what,
                       gint64 next_attempt, gint64 now, GError **err);
/* Refused for good at SMTP time (5xx): the delivery fails and the refusal
 * has exactly the effect of a bounce report of class k (see life_bounce). */
gboolean life_refused(struct app *app, const struct delivery_row *d, enum bounce_class k, int code,
                      const char *what, gint64 now, GError **err);
/* Still failing after [delivery] give_up: the delivery fails, its
 * enrollment is held (paused, reason gave-up) for the operator. */
gboolean life_gave_up(struct app *app, const struct delivery_row *d, int code, const char *what, gint64 now,
                      GError **err);
/* Never offered to a server (the daemon is stopping): queued again, the
 * attempt not counted. */
gboolean life_unclaimed(struct app *app, const struct delivery_row *d, GError **err);
/* The course of enrollment enr_id is no longer loaded: whatever waits is
 * withdrawn (delivery_id: the claimed one, 0 if none) and the enrollment
 * is held with reason course-gone, visible in `coursectl status`, instead
 * of being skipped and logged on every tick. */
gboolean life_course_gone(struct app *app, gint64 enr_id, gint64 sub_id, gint64 delivery_id, gint64 now,
                          GError **err);
/* A claimed row whose enrollment or subscriber is no longer active (a
 * change committed between reading and claiming): withdrawn; an active
 * enrollment of a subscriber who is not active is stopped with it. */
gboolean life_moot(struct app *app, const struct delivery_row *d, gint64 now, GError **err);

/* A ready lesson whose slot passed more than late_grace ago (retried for
 * long, or recovered after a crash) is not sent at a random hour: it waits
 * for `slot`, the next one; the give-up clock keeps running. */
gboolean life_late(struct app *app, const struct delivery_row *d, gint64 slot, GError **err);

/* --- bounces --- */

/* A bounce or a refusal of class k for subscriber sub_id (enr_id: the
 * enrollment whose lesson bounced, for the audit trail):
 *   hard    subscriber 'bounced'; every pending, active or paused
 *           enrollment stopped (reason bounced); their queued lessons
 *           withdrawn;
 *   policy  every active enrollment held (reason policy); the operator
 *           warned;
 *   soft    only counted (the caller escalates repeated soft bounces). */
gboolean life_bounce(struct app *app, gint64 sub_id, gint64 enr_id, enum bounce_class k, const char *detail,
                     const char *via, gint64 now, GError **err);

/* --- requests (mail, pages, coursectl) --- */

/* Pauses e until `until` (0: until resumed); pausing again moves the end.
 * What waits in the queue is withdrawn, so a resume plans it afresh. */
gboolean life_pause(struct app *app, const struct enrollment_row *e, gint64 until, enum enr_reason why,
                    const char *via, gint64 now, GError **err);
/* Resumes a paused e: its next lesson at the next slot after now. FALSE
 * with CD_ERR_INVALID if the course is gone or has no slot. */
gboolean life_resume(struct app *app, const struct enrollment_row *e, const char *via, gint64 now,
                     GError **err);
/* Stops e (kind: the audit event, "unsubscribed" or "unenrolled"); queued
 * lessons withdrawn; the subscriber becomes 'unsubscribed' when no
 * pending, active or paused course is left. */
gboolean life_stop(struct app *app, const struct enrollment_row *e, enum enr_reason why, const char *kind,
                   const char *via, gint64 now, GError **err);
/* The person leaves every course at once ("unsubscribe all"): each
 * pending, active or paused enrollment is stopped as life_stop() does, and
 * the subscriber is 'unsubscribed' (a bounced one stays bounced). Returns
 * how many courses were left, or -1 with err. */
int life_leave_all(struct app *app, const struct sub_row *s, const char *via, gint64 now, GError **err);
/* Confirms a pending e (double opt-in): subscriber and enrollment active,
 * the first lesson at `first`. */
gboolean life_confirm(struct app *app, const struct enrollment_row *e, gint64 first, const char *via,
                      gint64 now, GError **err);
/* Points e at lesson n (1-based) at the next slot; lessons from n on may be
 * sent again; a completed enrollment becomes active. CD_ERR_BUSY while a
 * lesson of e is being sent; CD_ERR_INVALID for a subscriber who left or
 * bounced. */
gboolean life_move(struct app *app, const struct enrollment_row *e, int n, const char *via, gint64 now,
                   GError **err);
/* Starts e's course again from lesson 1 (the `restart` command and
 * `coursectl enroll --restart`): a new round (new Message-IDs and calendar
 * UIDs), its calendar anchored now, lesson 1 at the first slot as for a
 * new subscriber; every earlier delivery moves to delivery_history. An
 * active, completed or paused-by-the-person enrollment becomes active; a
 * hold (policy, gave-up, course-gone, operator) stays, pointed at lesson
 * 1. CD_ERR_INVALID for a pending or stopped enrollment or a subscriber
 * who left or bounced; CD_ERR_BUSY while a lesson of e is being sent. */
gboolean life_restart(struct app *app, const struct enrollment_row *e, const char *via, gint64 now,
                      GError **err);
/* The operator cancels delivery id (queued, deferred or failed): its
 * enrollment moves past that lesson to the next slot (or completes). */
gboolean life_cancel(struct app *app, gint64 id, gint64 now, GError **err);
/* The operator retries delivery id (0: every failed one): queued now; the
 * enrollment a failure held or stopped (reason bounced, policy, gave-up) is
 * active again, and a bounced subscriber active with every course the
 * bounce stopped. Returns how many deliveries, or -1. */
int life_retry(struct app *app, gint64 id, gint64 now, GError **err);
/* Repairs what breaks the invariant above (a bug if any is found; logged
 * loudly): the stuck enrollment's next lesson is planned at now. Returns
 * how many were repaired, or -1. */
int life_repair(struct app *app, gint64 now, GError **err);

/* Re-plans the subscriber's active enrollments after a change of zone.
 * Call inside a transaction. */
gboolean life_replan(struct app *app, gint64 subscriber_id, gint64 now, GError **err);

#endif
