/* pace.c - owns libical: recurrence expansion and time-zone arithmetic.
 * A slot is computed in the subscriber's zone (a local wall-clock time) and
 * returned as a UTC instant; callers only ever store UTC. The zone table is
 * loaded once in pace_init() because libical's first lookup is not
 * thread-safe; lookups after that go through our own mutex. */
#include <string.h>
#include <libical/ical.h>
#include "pace.h"
#include "error.h"
#include "lang.h"

static GMutex zone_lock;
/* libical is called by the main thread and by the HTTP thread (a confirm
 * places the first lesson and writes the welcome calendar). Zones expand
 * their transitions lazily inside libical, so every exported function that
 * reaches libical holds this lock (recursive: they call each other);
 * uncontended it costs a few nanoseconds. */
static GRecMutex ical_lock;

/* libical looks a name up by scanning its zone list: remember the zones
 * found (a few hundred at most; unknown names, which hostile input can
 * invent without end, are not kept), so a tick does not scan per message. */
static icaltimezone *zone_get(const char *tz)
{
    static GHashTable *cache;
    if (!tz || !*tz)
        return NULL;
    if (strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0)
        return icaltimezone_get_utc_timezone();
    g_mutex_lock(&zone_lock);
    if (!cache)
        cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    gpointer hit = NULL;
    icaltimezone *z;
    if (g_hash_table_lookup_extended(cache, tz, NULL, &hit)) {
        z = hit;
    } else {
        z = icaltimezone_get_builtin_timezone(tz);
        if (z)
            g_hash_table_insert(cache, g_strdup(tz), z);
    }
    g_mutex_unlock(&zone_lock);
    return z;
}

void pace_thread_done(void)
{
    icalmemory_free_ring();
}

void pace_init(void)
{
    /* Forces libical to read its zone list now, in this thread. */
    (void)zone_get("Europe/Berlin");
    (void)icaltimezone_get_utc_timezone();
}

gboolean pace_tz_valid(const char *tz)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    return zone_get(tz) != NULL;
}

static int name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *pace_zone_names(void)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    icalarray *zones = icaltimezone_get_builtin_timezones();
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    for (size_t i = 0; zones && i < zones->num_elements; i++) {
        icaltimezone *z = icalarray_element_at(zones, i);
        const char *name = icaltimezone_get_location(z);
        if (name && *name)
            g_ptr_array_add(names, g_strdup(name));
    }
    g_ptr_array_add(names, g_strdup("UTC"));
    g_ptr_array_sort(names, name_cmp);
    return names;
}

gboolean pace_parse_time(const char *text, int *hour, int *minute)
{
    if (!text || strlen(text) != 5 || text[2] != ':' || !g_ascii_isdigit(text[0]) ||
        !g_ascii_isdigit(text[1]) || !g_ascii_isdigit(text[3]) || !g_ascii_isdigit(text[4]))
        return FALSE;
    int h = (text[0] - '0') * 10 + (text[1] - '0');
    int m = (text[3] - '0') * 10 + (text[4] - '0');
    if (h > 23 || m > 59)
        return FALSE;
    *hour = h;
    *minute = m;
    return TRUE;
}

gboolean pace_check(const struct pace_rule *rule, GError **err)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    if (!zone_get(rule->tz)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "unknown time zone '%s'", rule->tz ? rule->tz : "");
        return FALSE;
    }
    if (rule->hour < 0 || rule->hour > 23 || rule->minute < 0 || rule->minute > 59) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "bad time of day %d:%d", rule->hour, rule->minute);
        return FALSE;
    }
    if (!rule->rrule || !*rule->rrule) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "empty schedule");
        return FALSE;
    }
    icalerror_clear_errno();
    struct icalrecurrencetype r = icalrecurrencetype_from_string(rule->rrule);
    if (r.freq == ICAL_NO_RECURRENCE || icalerrno != ICAL_NO_ERROR) {
        icalerror_clear_errno();
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "schedule '%s' is not a valid RRULE", rule->rrule);
        return FALSE;
    }
    if (r.count != 0 || !icaltime_is_null_time(r.until)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "schedule '%s': COUNT and UNTIL are not allowed; the lessons set the length",
                    rule->rrule);
        return FALSE;
    }
    if (r.by_hour[0] != ICAL_RECURRENCE_ARRAY_MAX || r.by_minute[0] != ICAL_RECURRENCE_ARRAY_MAX ||
        r.by_second[0] != ICAL_RECURRENCE_ARRAY_MAX) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "schedule '%s': BYHOUR, BYMINUTE and BYSECOND are not allowed; "
                    "the time of day is set by 'time'",
                    rule->rrule);
        return FALSE;
    }
    if (r.freq < ICAL_DAILY_RECURRENCE) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "schedule '%s': FREQ must be DAILY or slower; the time of day is set by 'time'",
                    rule->rrule);
        return FALSE;
    }
    /* A rule that parses can still never fire (BYMONTHDAY=31;BYMONTH=2). */
    if (pace_next_slot(rule, 1767225600 /* 2026-01-01 */, 1767225600) < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "schedule '%s' yields no slot within a year", rule->rrule);
        return FALSE;
    }
    return TRUE;
}

/* UTC offset (seconds east) of zone z at instant t. */
static int offset_at(icaltimezone *z, gint64 t)
{
    struct icaltimetype u = icaltime_from_timet_with_zone((time_t)t, 0, icaltimezone_get_utc_timezone());
    int is_daylight = 0;
    return icaltimezone_get_utc_offset_of_utc_time(z, &u, &is_daylight);
}

gint64 pace_local_to_utc(const char *tz, int year, int month, int day, int hour, int minute)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    icaltimezone *z = zone_get(tz);
    if (!z)
        return -1;
    /* The wall-clock fields read as if they were UTC. */
    GDateTime *dt = g_date_time_new_utc(year, month, day, hour, minute, 0);
    if (!dt)
        return -1;
    gint64 wall = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    /* The offsets in force a day before and a day after bracket any
     * transition near this wall-clock time. */
    int before = offset_at(z, wall - 86400), after = offset_at(z, wall + 86400);
    gint64 first = -1;
    int cand[2] = { before, after };
    for (int i = 0; i < 2; i++) {
        gint64 u = wall - cand[i];
        if (offset_at(z, u) == cand[i] && (first < 0 || u < first))
            first = u;
    }
    if (first >= 0)
        return first;     /* one match, or the first of a repeated hour */
    return wall - before; /* in a gap: read with the offset before it */
}

gboolean pace_day_bounds(const char *tz, gint64 t, gint64 *start, gint64 *end)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    icaltimezone *z = zone_get(tz);
    if (!z)
        return FALSE;
    struct icaltimetype l = icaltime_from_timet_with_zone((time_t)t, 0, z);
    GDate *d = g_date_new_dmy((GDateDay)l.day, (GDateMonth)l.month, (GDateYear)l.year);
    *start = pace_local_to_utc(tz, l.year, l.month, l.day, 0, 0);
    g_date_add_days(d, 1);
    *end = pace_local_to_utc(tz, g_date_get_year(d), g_date_get_month(d), g_date_get_day(d), 0, 0);
    g_date_free(d);
    return TRUE;
}

/* The slots of a tick repeat: everyone who enrolled on the same local day
 * and is due at the same slot asks for the same next slot, and each answer
 * costs a libical iterator (an ICU calendar inside). pace_next_slot() is a
 * pure function of (rule, the anchor's local date, after), so its answers
 * are kept in a small direct-mapped table, its own copies of the strings
 * in each entry (a reload frees the course's). */
#define SLOT_MEMO 4096
struct slot_memo {
    char *rrule, *tz;
    int hour, minute, day; /* day: the anchor's local date, yyyymmdd */
    gint64 after, result;
};
static struct slot_memo slot_memo[SLOT_MEMO];
static GMutex slot_memo_lock;

static guint slot_memo_index(const struct pace_rule *rule, int day, gint64 after)
{
    guint h = g_str_hash(rule->rrule) * 31u + g_str_hash(rule->tz);
    h = h * 31u + (guint)(rule->hour * 60 + rule->minute);
    h = h * 31u + (guint)day;
    h = h * 31u + (guint)(after ^ (after >> 32));
    return h % SLOT_MEMO;
}

static gboolean slot_memo_get(const struct pace_rule *rule, int day, gint64 after, gint64 *result)
{
    g_mutex_lock(&slot_memo_lock);
    const struct slot_memo *m = &slot_memo[slot_memo_index(rule, day, after)];
    gboolean hit = m->rrule && m->after == after && m->day == day && m->hour == rule->hour &&
                   m->minute == rule->minute && !strcmp(m->rrule, rule->rrule) && !strcmp(m->tz, rule->tz);
    if (hit)
        *result = m->result;
    g_mutex_unlock(&slot_memo_lock);
    return hit;
}

static void slot_memo_put(const struct pace_rule *rule, int day, gint64 after, gint64 result)
{
    g_mutex_lock(&slot_memo_lock);
    struct slot_memo *m = &slot_memo[slot_memo_index(rule, day, after)];
    g_free(m->rrule);
    g_free(m->tz);
    *m = (struct slot_memo){
        g_strdup(rule->rrule), g_strdup(rule->tz), rule->hour, rule->minute, day, after, result
    };
    g_mutex_unlock(&slot_memo_lock);
}

static gint64 next_slot_uncached(const struct pace_rule *rule, icaltimezone *z, struct icaltimetype start,
                                 gint64 after);

gint64 pace_next_slot(const struct pace_rule *rule, gint64 anchor, gint64 after)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    icaltimezone *z = zone_get(rule->tz);
    if (!z)
        return -1;
    /* DTSTART: the anchor's local calendar day at the slot's time of day.
     * Noon is used for the expansion itself: libical moves a time inside a
     * DST gap to the other side and then keeps that hour on later days, so
     * only the date is taken from the iterator and the wall-clock time is
     * applied by pace_local_to_utc() with the RFC 5545 rule. */
    struct icaltimetype start = icaltime_from_timet_with_zone((time_t)anchor, 0, z);
    start.hour = 12;
    start.minute = 0;
    start.second = 0;
    start = icaltime_set_timezone(&start, z);
    int day = start.year * 10000 + start.month * 100 + start.day;
    gint64 found;
    if (slot_memo_get(rule, day, after, &found))
        return found;
    found = next_slot_uncached(rule, z, start, after);
    slot_memo_put(rule, day, after, found);
    return found;
}

/* Everything below depends on the anchor only through `start` (its local
 * date at noon), which is what makes the memo exact. */
/* libical 3.0.16 expands FREQ=WEEKLY;INTERVAL=2;BYDAY=SU from a Thursday
 * DTSTART as Mar 15, 29 instead of RFC 5545's Mar 8, 22 (the first week
 * is lost when DTSTART's weekday is not in BYDAY; dateutil and the RFC's
 * own WKST example agree on Mar 8). For a plain weekly rule with an
 * interval and BYDAY, move DTSTART to the rule's first occurrence, which
 * is in BYDAY, and which libical then expands right: the first BYDAY day
 * on or after DTSTART in its week (weeks begin on WKST), else the first
 * BYDAY day INTERVAL weeks on. */
static void weekly_first_occurrence(const struct icalrecurrencetype *r, struct icaltimetype *start)
{
    if (r->freq != ICAL_WEEKLY_RECURRENCE || r->interval <= 1 || r->by_day[0] == ICAL_RECURRENCE_ARRAY_MAX ||
        r->by_month[0] != ICAL_RECURRENCE_ARRAY_MAX || r->by_set_pos[0] != ICAL_RECURRENCE_ARRAY_MAX ||
        r->by_month_day[0] != ICAL_RECURRENCE_ARRAY_MAX || r->by_year_day[0] != ICAL_RECURRENCE_ARRAY_MAX ||
        r->by_week_no[0] != ICAL_RECURRENCE_ARRAY_MAX)
        return;
    int ws = r->week_start == ICAL_NO_WEEKDAY ? ICAL_MONDAY_WEEKDAY : (int)r->week_start; /* 1 = Sunday */
    int here = (icaltime_day_of_week(*start) - ws + 7) % 7; /* days since the week began */
    int first_on = 7, first_any = 7;
    for (int i = 0; i < ICAL_BY_DAY_SIZE && r->by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++) {
        int d = ((int)icalrecurrencetype_day_day_of_week(r->by_day[i]) - ws + 7) % 7;
        first_any = MIN(first_any, d);
        if (d >= here)
            first_on = MIN(first_on, d);
    }
    int shift = first_on < 7 ? first_on - here : 7 * r->interval - here + first_any;
    icaltime_adjust(start, shift, 0, 0, 0);
}

static gint64 next_slot_uncached(const struct pace_rule *rule, icaltimezone *z, struct icaltimetype start,
                                 gint64 after)
{
    struct icalrecurrencetype r = icalrecurrencetype_from_string(rule->rrule);
    if (r.freq == ICAL_NO_RECURRENCE)
        return -1;
    if (r.count == 0)
        weekly_first_occurrence(&r, &start);
    /* Skip ahead near `after`, so the cost does not grow with the time
     * since enrollment: DTSTART moves by whole periods of the rule (INTERVAL
     * days or weeks), which keeps its phase exactly. (libical's
     * icalrecur_iterator_set_start() does not: WEEKLY;INTERVAL=2 lost its
     * phase, found by the randomized test against a GLib reference.) A rule
     * with COUNT counts from DTSTART, and months vary in length: those are
     * expanded from the anchor (5000 iterations cover decades). */
    int period = r.freq == ICAL_DAILY_RECURRENCE ? 1 : r.freq == ICAL_WEEKLY_RECURRENCE ? 7 : 0;
    period *= MAX(r.interval, 1);
    gint64 anchor = icaltime_as_timet_with_zone(start, z);
    if (period > 0 && r.count == 0 && after - anchor > 3 * 86400) {
        gint64 periods = (after - anchor - 2 * 86400) / ((gint64)period * 86400);
        if (periods > 0)
            icaltime_adjust(&start, (int)(periods * period), 0, 0, 0);
    }
    icalrecur_iterator *it = icalrecur_iterator_new(r, start);
    if (!it)
        return -1;
    gint64 found = -1;
    for (int i = 0; i < 5000; i++) {
        struct icaltimetype t = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(t))
            break;
        gint64 u = pace_local_to_utc(rule->tz, t.year, t.month, t.day, rule->hour, rule->minute);
        if (u > after) {
            found = u;
            break;
        }
    }
    icalrecur_iterator_free(it);
    return found;
}

/* GLib reads the zone file on every g_time_zone_new_identifier(): keep one
 * GTimeZone per name (a tick formats a date for every message). */
static GTimeZone *gtz_get(const char *tz)
{
    static GMutex lock;
    static GHashTable *cache;
    g_mutex_lock(&lock);
    if (!cache)
        cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_time_zone_unref);
    GTimeZone *gz = g_hash_table_lookup(cache, tz);
    if (!gz) {
        gz = g_time_zone_new_identifier(tz);
        if (!gz)
            gz = g_time_zone_new_utc();
        g_hash_table_insert(cache, g_strdup(tz), gz);
    }
    g_time_zone_ref(gz);
    g_mutex_unlock(&lock);
    return gz;
}

char *pace_format_local(gint64 t, const char *tz)
{
    GTimeZone *gz = gtz_get(tz && *tz ? tz : "UTC");
    GDateTime *u = g_date_time_new_from_unix_utc(t);
    GDateTime *l = g_date_time_to_timezone(u, gz);
    char *s = g_date_time_format(l, "%Y-%m-%d %H:%M %Z");
    g_date_time_unref(l);
    g_date_time_unref(u);
    g_time_zone_unref(gz);
    return s;
}

char *pace_format_human(gint64 t, const char *tz, const struct lang *words)
{
    if (!words)
        return pace_format_local(t, tz);
    GTimeZone *gz = gtz_get(tz && *tz ? tz : "UTC");
    GDateTime *u = g_date_time_new_from_unix_utc(t);
    GDateTime *l = g_date_time_to_timezone(u, gz);
    char *s = lang_date(words, g_date_time_get_day_of_week(l), g_date_time_get_day_of_month(l),
                        g_date_time_get_month(l), g_date_time_get_hour(l), g_date_time_get_minute(l));
    g_date_time_unref(l);
    g_date_time_unref(u);
    g_time_zone_unref(gz);
    return s;
}

/* The weekdays of rule's BYDAY as words's plural names joined ("Tuesdays
 * and Saturdays"), or NULL when the rule is not weekly by day. g_free(). */
static char *describe_days(const struct icalrecurrencetype *r, const struct lang *words)
{
    if (r->freq != ICAL_WEEKLY_RECURRENCE || r->by_day[0] == ICAL_RECURRENCE_ARRAY_MAX)
        return NULL;
    int n = 0;
    while (n < ICAL_BY_DAY_SIZE && r->by_day[n] != ICAL_RECURRENCE_ARRAY_MAX)
        n++;
    GString *s = g_string_new(NULL);
    for (int i = 0; i < n; i++) {
        int dow = icalrecurrencetype_day_day_of_week(r->by_day[i]); /* 1 = Sunday */
        if (i > 0 && i == n - 1)
            g_string_append_printf(s, " %s ", lang_get(words, "list_and"));
        else if (i > 0)
            g_string_append(s, ", ");
        g_string_append(s, dow >= 1 && dow <= 7 ? lang_item(words, "weekdays_plural", (dow + 5) % 7) : "?");
    }
    return g_string_free(s, FALSE);
}

char *pace_describe_in(const struct pace_rule *rule, const struct lang *words)
{
    if (!words)
        return pace_describe(rule);
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    struct icalrecurrencetype r = icalrecurrencetype_from_string(rule->rrule);
    char *time = lang_time(words, rule->hour, rule->minute);
    char n[16];
    g_snprintf(n, sizeof n, "%d", r.interval);
    char *days = describe_days(&r, words), *out;
    if (r.freq == ICAL_DAILY_RECURRENCE && r.interval <= 1)
        out = lang_say(words, "schedule_daily", FALSE, "time", time, (char *)NULL);
    else if (r.freq == ICAL_DAILY_RECURRENCE)
        out = lang_say(words, "schedule_days", FALSE, "n", n, "time", time, (char *)NULL);
    else if (days && r.interval > 1)
        out = lang_say(words, "schedule_weeks", FALSE, "days", days, "n", n, "time", time, (char *)NULL);
    else if (days)
        out = lang_say(words, "schedule_weekly", FALSE, "days", days, "time", time, (char *)NULL);
    else
        out = lang_say(words, "schedule_other", FALSE, "time", time, (char *)NULL);
    g_free(days);
    g_free(time);
    return out;
}

char *pace_describe(const struct pace_rule *rule)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    static const char *days[] = { "Sundays",   "Mondays", "Tuesdays", "Wednesdays",
                                  "Thursdays", "Fridays", "Saturdays" };
    struct icalrecurrencetype r = icalrecurrencetype_from_string(rule->rrule);
    GString *s = g_string_new(NULL);
    if (r.freq == ICAL_DAILY_RECURRENCE && r.interval <= 1)
        g_string_append(s, "Every day");
    else if (r.freq == ICAL_DAILY_RECURRENCE)
        g_string_append_printf(s, "Every %d days", r.interval);
    else if (r.freq == ICAL_WEEKLY_RECURRENCE && r.by_day[0] != ICAL_RECURRENCE_ARRAY_MAX) {
        int n = 0;
        while (n < ICAL_BY_DAY_SIZE && r.by_day[n] != ICAL_RECURRENCE_ARRAY_MAX)
            n++;
        for (int i = 0; i < n; i++) {
            int dow = icalrecurrencetype_day_day_of_week(r.by_day[i]);
            if (i > 0)
                g_string_append(s, i == n - 1 ? " and " : ", ");
            g_string_append(s, dow >= 1 && dow <= 7 ? days[dow - 1] : "?");
        }
        if (r.interval > 1)
            g_string_append_printf(s, ", every %d weeks", r.interval);
    } else
        g_string_append(s, "On the course calendar");
    g_string_append_printf(s, " at %02d:%02d", rule->hour, rule->minute);
    return g_string_free(s, FALSE);
}

static struct icaltimetype utc_time(gint64 t)
{
    return icaltime_from_timet_with_zone((time_t)t, 0, icaltimezone_get_utc_timezone());
}

char *pace_calendar(const struct pace_event *ev, size_t n, int sequence, const char *organizer,
                    const char *name, gint64 dtstamp)
{
    g_autoptr(GRecMutexLocker) locker = g_rec_mutex_locker_new(&ical_lock);
    (void)locker; /* held to the end of the scope */
    icalcomponent *cal = icalcomponent_new(ICAL_VCALENDAR_COMPONENT);
    icalcomponent_add_property(cal, icalproperty_new_version("2.0"));
    icalcomponent_add_property(cal, icalproperty_new_prodid("-//coursed//coursed//EN"));
    icalcomponent_add_property(cal, icalproperty_new_method(ICAL_METHOD_PUBLISH));
    icalcomponent_add_property(cal, icalproperty_new_calscale("GREGORIAN"));
    icalproperty *xname = icalproperty_new_x(name);
    icalproperty_set_x_name(xname, "X-WR-CALNAME");
    icalcomponent_add_property(cal, xname);
    char *org = g_strconcat("mailto:", organizer, NULL);
    for (size_t i = 0; i < n; i++) {
        icalcomponent *v = icalcomponent_new(ICAL_VEVENT_COMPONENT);
        icalcomponent_add_property(v, icalproperty_new_uid(ev[i].uid));
        icalcomponent_add_property(v, icalproperty_new_dtstamp(utc_time(dtstamp)));
        icalcomponent_add_property(v, icalproperty_new_dtstart(utc_time(ev[i].start)));
        icalcomponent_add_property(v, icalproperty_new_dtend(utc_time(ev[i].start + 15 * 60)));
        icalcomponent_add_property(v, icalproperty_new_sequence(sequence));
        icalcomponent_add_property(v, icalproperty_new_summary(ev[i].summary));
        if (ev[i].description)
            icalcomponent_add_property(v, icalproperty_new_description(ev[i].description));
        icalcomponent_add_property(v, icalproperty_new_organizer(org));
        icalcomponent_add_property(v, icalproperty_new_transp(ICAL_TRANSP_TRANSPARENT));
        icalcomponent_add_component(cal, v);
    }
    g_free(org);
    char *text = icalcomponent_as_ical_string_r(cal);
    char *out = g_strdup(text);
    free(text);
    icalcomponent_free(cal);
    return out;
}
