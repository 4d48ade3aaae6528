/* ctl_records.h - what coursectl shows of each thing lib/ returns: one
 * function per row type makes its record (so a field has one name and one
 * kind in every command), and the text views that lay records out. */
#ifndef COURSECTL_RECORDS_H
#define COURSECTL_RECORDS_H
#include "config.h"
#include "course.h"
#include "doctor.h"
#include "store.h"
#include "ctl_render.h"

/* Each returns a new record; the caller frees it (or hands it to
 * ctl_out_row/ctl_show, which free it). */
struct ctl_record *rec_course(const struct course *c);
/* A subscriber: id, email, name, tz, status, created_at. */
struct ctl_record *rec_subscriber(const struct sub_row *s);
/* A subscriber with "enrollments" (struct enrollment_row; courses gives
 * each course's length and zone). */
struct ctl_record *rec_subscriber_full(const struct sub_row *s, const GPtrArray *es, GPtrArray *courses);
/* Adds the list "consents" to a subscriber's record r: one child per
 * consent record (struct consent_row), oldest first. */
void rec_consents(struct ctl_record *r, const GPtrArray *consents);
struct ctl_record *rec_delivery(const struct delivery_row *d);
/* A system mail of the outbox, as `queue` lists it beside the deliveries. */
struct ctl_record *rec_mail(const struct outbox_row *o);
struct ctl_record *rec_event(const struct event_row *e);
struct ctl_record *rec_day(const struct store_day *d);
/* A course's funnel; reached[k-1] = enrollments sent lesson k, lost[k-1]
 * = those of them that left after it (store_funnel_lost). */
struct ctl_record *rec_funnel(const struct course *c, const GArray *reached, const GArray *lost,
                              const struct store_funnel_states *sc);
/* An upcoming lesson at t, shown in zone tz (with its weekday). */
struct ctl_record *rec_slot(const struct course *c, int lesson, gint64 t, const char *tz);
/* A lesson of `course timeline`: lesson, slug, subject, zone, weekday,
 * local_date, local_time, local and utc of its slot t in zone tz. */
struct ctl_record *rec_timeline(const struct course *c, int lesson, gint64 t, const char *tz);
/* The line of schedule for a course without upcoming lessons (text only). */
struct ctl_record *rec_slot_note(const char *course, const char *what);
struct ctl_record *rec_check(const struct doctor_check *c);
/* One setting of `config show`: section, key, value, source. */
struct ctl_record *rec_config_entry(const struct config_entry *e);
/* The "fix:" line under a failed check (text only). */
struct ctl_record *rec_check_fix(const struct doctor_check *c);
/* export: the subscriber of row r with an empty "enrollments"; then
 * rec_export_enrollment() adds r's enrollment (if any) to it. */
struct ctl_record *rec_export_subscriber(const struct store_export_row *r);
void rec_export_enrollment(struct ctl_record *sub, const struct store_export_row *r);

/* A reader's note (coursectl replies, and the data export's "notes"). */
struct ctl_record *rec_note(const struct note_row *n);
/* Adds the notes of n's subscriber, one by one, to its export record sub. */
void rec_export_note(struct ctl_record *sub, const struct note_row *n);
/* The funnel's notes per lesson (index = position - 1). */
void rec_funnel_notes(struct ctl_record *funnel, const GArray *notes);

extern const struct ctl_view view_notes;
extern const struct ctl_view view_courses;
extern const struct ctl_view view_subscribers;
extern const struct ctl_view view_subscriber; /* sub show */
extern const struct ctl_view view_status;
extern const struct ctl_view view_schedule;
extern const struct ctl_view view_timeline;
extern const struct ctl_view view_queue;
extern const struct ctl_view view_days;
extern const struct ctl_view view_events;
extern const struct ctl_view view_checks;
extern const struct ctl_view view_config;
/* stats per course; utf8: draw bars with block characters. Returns a view
 * that points to *utf8. */
struct ctl_view view_funnel(const gboolean *utf8);

#endif
