/* pace.h - lesson slots: an RRULE and a local time of day in an IANA zone,
 * turned into UTC instants. */
#ifndef COURSED_PACE_H
#define COURSED_PACE_H
#include <glib.h>

struct pace_rule {
    const char *rrule; /* e.g. "FREQ=WEEKLY;BYDAY=MO,WE,FR" */
    int hour, minute;  /* local time of day of each slot */
    const char *tz;    /* IANA zone, e.g. "Europe/Berlin" or "UTC" */
};

/* Load libical's zone data. Call once from the main thread before any other
 * pace_ function and before starting threads (libical's lazy zone loading is
 * not thread-safe). */
void pace_init(void);

/* Frees libical's per-thread ring buffer: a thread other than the main one
 * calls it after each unit of work (the HTTP pages, after each request). */
void pace_thread_done(void);

/* Returns TRUE if tz names a zone known to the system tzdata. */
gboolean pace_tz_valid(const char *tz);

/* Returns TRUE if rule can produce slots; else FALSE with err saying why
 * (bad RRULE, COUNT/UNTIL given, unknown zone, bad time). */
gboolean pace_check(const struct pace_rule *rule, GError **err);

/* Returns the names of the IANA zones libical knows (the system tzdata),
 * sorted, "UTC" among them: what a person may choose from.
 * g_ptr_array_unref(). */
GPtrArray *pace_zone_names(void);

/* Parse "HH:MM" into hour and minute. */
gboolean pace_parse_time(const char *text, int *hour, int *minute);

/* Returns the first slot strictly after `after`, as Unix seconds, for a
 * calendar whose phase starts on the local day of `anchor` (so that, for
 * example, INTERVAL=2 keeps its weeks across calls). Returns -1 if the rule
 * yields no such slot. */
gint64 pace_next_slot(const struct pace_rule *rule, gint64 anchor, gint64 after);

/* Returns the UTC instant of a wall-clock time in tz, by RFC 5545's rule
 * (3.3.5): a time that occurs twice (autumn) is the first occurrence; a
 * time that does not exist (spring gap) is read with the offset before the
 * gap, so 02:30 becomes 03:30 summer time. -1 for an unknown zone. */
gint64 pace_local_to_utc(const char *tz, int year, int month, int day, int hour, int minute);

/* The local calendar day of instant t in tz, as [*start, *end) in UTC
 * (23, 24 or 25 hours long). FALSE for an unknown zone. */
gboolean pace_day_bounds(const char *tz, gint64 t, gint64 *start, gint64 *end);

/* Returns a plain-English reading of the rule, e.g. "Mondays, Wednesdays
 * and Fridays at 09:00"; g_free(). */
char *pace_describe(const struct pace_rule *rule);

struct pace_event {
    gint64 start;    /* UTC */
    const char *uid; /* stable across versions of the calendar */
    const char *summary;
    const char *description;
};

/* Returns an iCalendar (RFC 5545) text, METHOD:PUBLISH, one 15-minute
 * VEVENT per event with UTC times (understood by every calendar app),
 * SEQUENCE sequence, ORGANIZER mailto:organizer and calendar name `name`.
 * Caller g_free()s. */
char *pace_calendar(const struct pace_event *ev, size_t n, int sequence, const char *organizer,
                    const char *name, gint64 dtstamp);

/* Returns "2026-03-02 10:00 CET"-style local time of t in tz; g_free(). */
char *pace_format_local(gint64 t, const char *tz);

#endif
