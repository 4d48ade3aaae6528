/* test_pace.c - unit tests of lib/pace.c: slots of an RRULE at a local time
 * of day in an IANA zone, returned as UTC instants.
 *
 * Expected instants are computed independently of libical: with GLib's
 * GDateTime/GTimeZone (system tzdata), and for the UTC cases also as literal
 * Unix timestamps (checked with `date -u -d @N`). */
#include <string.h>
#include <glib.h>
#include "error.h"
#include "pace.h"

/* Unix seconds of a local wall-clock time in zone tz, computed by GLib. */
static gint64 local_at(const char *tz, int y, int mo, int d, int h, int mi)
{
    GTimeZone *z = g_time_zone_new_identifier(tz);
    g_assert_nonnull(z);
    GDateTime *dt = g_date_time_new(z, y, mo, d, h, mi, 0);
    g_assert_nonnull(dt);
    gint64 t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    g_time_zone_unref(z);
    return t;
}

static gint64 utc_at(int y, int mo, int d, int h, int mi)
{
    return local_at("UTC", y, mo, d, h, mi);
}

/* "2026-03-04T09:00:00Z", for readable assertion messages. */
static char *fmt_utc(gint64 t)
{
    if (t < 0)
        return g_strdup_printf("(%" G_GINT64_FORMAT ")", t);
    GDateTime *dt = g_date_time_new_from_unix_utc(t);
    char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ %a");
    g_date_time_unref(dt);
    return s;
}

static void assert_slot(gint64 got, gint64 want, const char *what)
{
    if (got != want) {
        char *g = fmt_utc(got), *w = fmt_utc(want);
        g_test_message("%s: got %s, want %s", what, g, w);
        g_free(g);
        g_free(w);
    }
    g_assert_cmpint(got, ==, want);
}

static void assert_local_hm(gint64 t, const char *tz, int hour, int minute)
{
    GTimeZone *z = g_time_zone_new_identifier(tz);
    g_assert_nonnull(z);
    GDateTime *u = g_date_time_new_from_unix_utc(t);
    GDateTime *l = g_date_time_to_timezone(u, z);
    g_assert_cmpint(g_date_time_get_hour(l), ==, hour);
    g_assert_cmpint(g_date_time_get_minute(l), ==, minute);
    g_date_time_unref(l);
    g_date_time_unref(u);
    g_time_zone_unref(z);
}

/* ---- the helpers themselves agree with literal timestamps ---- */

static void test_reference_instants(void)
{
    /* date -u -d @1772445600 -> Mon Mar  2 10:00:00 UTC 2026 */
    g_assert_cmpint(utc_at(2026, 3, 2, 10, 0), ==, 1772445600);
    /* date -u -d @1772614800 -> Wed Mar  4 09:00:00 UTC 2026 */
    g_assert_cmpint(utc_at(2026, 3, 4, 9, 0), ==, 1772614800);
    /* Berlin is UTC+1 in winter, UTC+2 in summer. */
    g_assert_cmpint(local_at("Europe/Berlin", 2026, 3, 27, 9, 0), ==, utc_at(2026, 3, 27, 8, 0));
    g_assert_cmpint(local_at("Europe/Berlin", 2026, 3, 30, 9, 0), ==, utc_at(2026, 3, 30, 7, 0));
    g_assert_cmpint(local_at("Asia/Kolkata", 2026, 3, 2, 9, 0), ==, utc_at(2026, 3, 2, 3, 30));
}

/* ---- pace_next_slot ---- */

static void test_weekly_mwf_utc(void)
{
    struct pace_rule r = { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "UTC" };
    gint64 mon10 = 1772445600; /* Mon 2026-03-02 10:00Z */
    /* Monday's 09:00 has passed: the next slot is Wednesday 09:00. */
    assert_slot(pace_next_slot(&r, mon10, mon10), 1772614800, "Mon 10:00 -> Wed 09:00");
    /* Walk a week and a bit. */
    static const int want_day[] = { 4, 6, 9, 11, 13, 16 };
    gint64 after = mon10;
    for (size_t i = 0; i < G_N_ELEMENTS(want_day); i++) {
        gint64 t = pace_next_slot(&r, mon10, after);
        assert_slot(t, utc_at(2026, 3, want_day[i], 9, 0), "weekly walk");
        after = t;
    }
    /* From a Monday before 09:00, that Monday's slot is next. */
    gint64 mon08 = utc_at(2026, 3, 2, 8, 0);
    assert_slot(pace_next_slot(&r, mon08, mon08), utc_at(2026, 3, 2, 9, 0), "Mon 08:00 -> Mon 09:00");
}

static void test_strictly_after(void)
{
    struct pace_rule r = { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "UTC" };
    gint64 anchor = 1772445600; /* Mon 2026-03-02 10:00Z */
    gint64 wed09 = 1772614800;  /* Wed 2026-03-04 09:00Z */
    gint64 fri09 = utc_at(2026, 3, 6, 9, 0);
    assert_slot(pace_next_slot(&r, anchor, wed09 - 1), wed09, "one second before the slot");
    assert_slot(pace_next_slot(&r, anchor, wed09), fri09, "exactly at the slot");
    assert_slot(pace_next_slot(&r, anchor, wed09 + 1), fri09, "one second after the slot");
}

/* The anchor's day need not match BYDAY: a Tuesday enrollment on a
 * Monday/Wednesday/Friday course gets Wednesday, never Tuesday. */
static void test_anchor_off_schedule(void)
{
    struct pace_rule r = { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "UTC" };
    gint64 tue07 = utc_at(2026, 3, 3, 7, 0);
    assert_slot(pace_next_slot(&r, tue07, tue07), utc_at(2026, 3, 4, 9, 0), "Tue 07:00 -> Wed 09:00");
    struct pace_rule r2 = { "FREQ=WEEKLY;BYDAY=TU,TH", 9, 0, "Europe/Berlin" };
    gint64 mon = local_at("Europe/Berlin", 2026, 3, 2, 6, 0);
    assert_slot(pace_next_slot(&r2, mon, mon), local_at("Europe/Berlin", 2026, 3, 3, 9, 0),
                "Mon 06:00 -> Tue 09:00 Berlin");
}

struct walk_case {
    const char *name;
    const char *rrule;
    int hour, minute;
    const char *tz;
    int start[5]; /* local y, m, d, h, mi of anchor and first `after` */
    int n;
    int want[8][5]; /* UTC y, m, d, h, mi of the slots, in order */
};

static const struct walk_case walks[] = {
    { "berlin-spring",
      "FREQ=WEEKLY;BYDAY=MO,WE,FR",
      9,
      0,
      "Europe/Berlin",
      { 2026, 3, 23, 10, 0 },
      5,
      { { 2026, 3, 25, 8, 0 },
        { 2026, 3, 27, 8, 0 }, /* CET, UTC+1 */
        { 2026, 3, 30, 7, 0 },
        { 2026, 4, 1, 7, 0 },
        { 2026, 4, 3, 7, 0 } } }, /* CEST */
    { "berlin-autumn",
      "FREQ=WEEKLY;BYDAY=MO,WE,FR",
      9,
      0,
      "Europe/Berlin",
      { 2026, 10, 19, 10, 0 },
      4,
      { { 2026, 10, 21, 7, 0 },
        { 2026, 10, 23, 7, 0 }, /* CEST */
        { 2026, 10, 26, 8, 0 },
        { 2026, 10, 28, 8, 0 } } }, /* CET */
    { "berlin-daily-across-change",
      "FREQ=DAILY",
      9,
      0,
      "Europe/Berlin",
      { 2026, 3, 27, 12, 0 },
      4,
      { { 2026, 3, 28, 8, 0 }, { 2026, 3, 29, 7, 0 }, { 2026, 3, 30, 7, 0 }, { 2026, 3, 31, 7, 0 } } },
    { "new-york-spring",
      "FREQ=DAILY",
      9,
      0,
      "America/New_York",
      { 2026, 3, 6, 12, 0 },
      4,
      { { 2026, 3, 7, 14, 0 }, { 2026, 3, 8, 13, 0 }, { 2026, 3, 9, 13, 0 }, { 2026, 3, 10, 13, 0 } } },
    { "new-york-autumn",
      "FREQ=DAILY",
      9,
      0,
      "America/New_York",
      { 2026, 10, 30, 12, 0 },
      3,
      { { 2026, 10, 31, 13, 0 }, { 2026, 11, 1, 14, 0 }, { 2026, 11, 2, 14, 0 } } },
    { "kolkata",
      "FREQ=DAILY",
      9,
      0,
      "Asia/Kolkata",
      { 2026, 3, 2, 10, 0 },
      2,
      { { 2026, 3, 3, 3, 30 }, { 2026, 3, 4, 3, 30 } } },
    { "kolkata-before",
      "FREQ=DAILY",
      9,
      0,
      "Asia/Kolkata",
      { 2026, 3, 2, 8, 59 },
      1,
      { { 2026, 3, 2, 3, 30 } } },
    { "utc-minutes",
      "FREQ=DAILY",
      23,
      45,
      "UTC",
      { 2026, 12, 31, 23, 50 },
      2,
      { { 2027, 1, 1, 23, 45 }, { 2027, 1, 2, 23, 45 } } },
    { "monthly",
      "FREQ=MONTHLY;BYMONTHDAY=1",
      8,
      30,
      "UTC",
      { 2026, 1, 15, 0, 0 },
      3,
      { { 2026, 2, 1, 8, 30 }, { 2026, 3, 1, 8, 30 }, { 2026, 4, 1, 8, 30 } } },
};

static void test_walks(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(walks); i++) {
        const struct walk_case *w = &walks[i];
        struct pace_rule r = { w->rrule, w->hour, w->minute, w->tz };
        gint64 anchor = local_at(w->tz, w->start[0], w->start[1], w->start[2], w->start[3], w->start[4]);
        gint64 after = anchor;
        for (int k = 0; k < w->n; k++) {
            gint64 want = utc_at(w->want[k][0], w->want[k][1], w->want[k][2], w->want[k][3], w->want[k][4]);
            /* The hand-written table itself is checked against GLib: each
             * expected instant is the rule's wall-clock time in the zone. */
            assert_local_hm(want, w->tz, w->hour, w->minute);
            gint64 got = pace_next_slot(&r, anchor, after);
            char *what = g_strdup_printf("%s slot %d", w->name, k + 1);
            assert_slot(got, want, what);
            g_free(what);
            after = got;
        }
    }
}

/* The wall-clock time of every slot is the rule's, on both sides of a
 * change, checked against GLib over a whole year of Berlin slots. */
static void test_local_time_kept_over_a_year(void)
{
    struct pace_rule r = { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "Europe/Berlin" };
    GTimeZone *z = g_time_zone_new_identifier("Europe/Berlin");
    g_assert_nonnull(z);
    gint64 anchor = local_at("Europe/Berlin", 2026, 1, 1, 12, 0);
    gint64 after = anchor;
    int n = 0;
    while (n < 3 * 53) {
        gint64 t = pace_next_slot(&r, anchor, after);
        g_assert_cmpint(t, >, after);
        GDateTime *u = g_date_time_new_from_unix_utc(t);
        GDateTime *l = g_date_time_to_timezone(u, z);
        g_assert_cmpint(g_date_time_get_hour(l), ==, 9);
        g_assert_cmpint(g_date_time_get_minute(l), ==, 0);
        int dow = g_date_time_get_day_of_week(l);
        g_assert_true(dow == 1 || dow == 3 || dow == 5);
        g_date_time_unref(l);
        g_date_time_unref(u);
        after = t;
        n++;
    }
    g_time_zone_unref(z);
}

/* INTERVAL keeps its phase from the anchor's day, whatever `after` is. */
static void test_interval_phase(void)
{
    struct pace_rule r = { "FREQ=DAILY;INTERVAL=2", 9, 0, "UTC" };
    gint64 anchor = utc_at(2026, 3, 2, 10, 0); /* phase: the 2nd, 4th, 6th ... */
    static const struct {
        int day, hour;
        int want_day;
    } cases[] = {
        { 2, 10, 4 },                           /* the anchor day's slot is past */
        { 3, 8, 4 },                            /* the 3rd is off-phase */
        { 3, 12, 4 }, { 4, 8, 4 }, { 4, 9, 6 }, /* exactly at the slot: the next one */
        { 5, 9, 6 },  { 7, 0, 8 }, { 20, 23, 22 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        gint64 after = utc_at(2026, 3, cases[i].day, cases[i].hour, 0);
        char *what = g_strdup_printf("INTERVAL=2 after March %d %02d:00", cases[i].day, cases[i].hour);
        assert_slot(pace_next_slot(&r, anchor, after), utc_at(2026, 3, cases[i].want_day, 9, 0), what);
        g_free(what);
    }
    /* Another anchor, the other phase. */
    gint64 anchor2 = utc_at(2026, 3, 3, 7, 0);
    assert_slot(pace_next_slot(&r, anchor2, anchor2), utc_at(2026, 3, 3, 9, 0), "phase 2, same day");
    assert_slot(pace_next_slot(&r, anchor2, utc_at(2026, 3, 4, 0, 0)), utc_at(2026, 3, 5, 9, 0),
                "phase 2, off day");

    /* Weekly with INTERVAL=2: every other Monday from the anchor's week. */
    struct pace_rule w = { "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", 9, 0, "UTC" };
    gint64 a = utc_at(2026, 3, 2, 10, 0); /* Monday, after its slot */
    assert_slot(pace_next_slot(&w, a, a), utc_at(2026, 3, 16, 9, 0), "biweekly first");
    assert_slot(pace_next_slot(&w, a, utc_at(2026, 3, 10, 0, 0)), utc_at(2026, 3, 16, 9, 0),
                "biweekly skips the off week");
    assert_slot(pace_next_slot(&w, a, utc_at(2026, 3, 17, 0, 0)), utc_at(2026, 3, 30, 9, 0),
                "biweekly keeps phase");
}

/* The phase is the anchor's *local* calendar day, not its UTC day. */
static void test_phase_local_day(void)
{
    /* 2026-03-03 03:00Z is still March 2nd, 22:00 in New York. */
    struct pace_rule ny = { "FREQ=DAILY;INTERVAL=2", 9, 0, "America/New_York" };
    gint64 anchor = utc_at(2026, 3, 3, 3, 0);
    assert_slot(pace_next_slot(&ny, anchor, anchor), local_at("America/New_York", 2026, 3, 4, 9, 0),
                "New York: phase from March 2nd");
    /* 2026-03-02 23:30Z is already March 3rd, 05:00 in Kolkata. */
    struct pace_rule in = { "FREQ=DAILY;INTERVAL=2", 9, 0, "Asia/Kolkata" };
    anchor = utc_at(2026, 3, 2, 23, 30);
    assert_slot(pace_next_slot(&in, anchor, anchor), utc_at(2026, 3, 3, 3, 30),
                "Kolkata: the same local day");
    assert_slot(pace_next_slot(&in, anchor, utc_at(2026, 3, 3, 3, 30)), utc_at(2026, 3, 5, 3, 30),
                "Kolkata: then two days on");
}

/* Slots years after the anchor are still found. */
static void test_far_after_anchor(void)
{
    struct pace_rule r = { "FREQ=DAILY", 9, 0, "UTC" };
    gint64 anchor = utc_at(2026, 1, 1, 0, 0);
    assert_slot(pace_next_slot(&r, anchor, utc_at(2035, 6, 1, 12, 0)), utc_at(2035, 6, 2, 9, 0),
                "daily, nine years on");
    assert_slot(pace_next_slot(&r, anchor, utc_at(2046, 6, 1, 12, 0)), utc_at(2046, 6, 2, 9, 0),
                "daily, twenty years on");
    struct pace_rule w = { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "Europe/Berlin" };
    assert_slot(pace_next_slot(&w, anchor, utc_at(2030, 1, 1, 0, 0)),
                local_at("Europe/Berlin", 2030, 1, 2, 9, 0), "weekly, four years on");
}

/* A slot time inside the spring-forward gap (02:00-02:59 in Europe) and in
 * the repeated autumn hour, by the documented RFC 5545 rule: a time that
 * does not exist is read with the offset before the gap (02:30 -> 03:30
 * CEST = 01:30Z); a time that occurs twice is its first occurrence (02:30
 * CEST = 00:30Z). Every other day the slot is at the rule's wall-clock time. */
static void test_time_in_dst_gap(void)
{
    struct pace_rule r = { "FREQ=DAILY", 2, 30, "Europe/Berlin" };
    gint64 anchor = utc_at(2026, 3, 26, 12, 0);
    gint64 after = anchor;
    for (int day = 27; day <= 31; day++) {
        gint64 t = pace_next_slot(&r, anchor, after);
        gint64 want = day == 29 ? utc_at(2026, 3, 29, 1, 30) : local_at("Europe/Berlin", 2026, 3, day, 2, 30);
        assert_slot(t, want, "02:30 Berlin around the spring change");
        after = t;
    }
    g_assert_cmpint(pace_local_to_utc("Europe/Berlin", 2026, 3, 29, 2, 30), ==, utc_at(2026, 3, 29, 1, 30));
    g_assert_cmpint(pace_local_to_utc("America/New_York", 2026, 3, 8, 2, 30), ==, utc_at(2026, 3, 8, 7, 30));
}

static void test_time_in_repeated_hour(void)
{
    struct pace_rule r = { "FREQ=DAILY", 2, 30, "Europe/Berlin" };
    gint64 anchor = utc_at(2026, 10, 22, 12, 0);
    gint64 after = anchor;
    for (int day = 23; day <= 27; day++) {
        gint64 t = pace_next_slot(&r, anchor, after);
        gint64 want = day == 25 ? utc_at(2026, 10, 25, 0, 30)
                                : local_at("Europe/Berlin", 2026, 10, day, 2, 30);
        assert_slot(t, want, "02:30 Berlin around the autumn change");
        after = t;
    }
    /* one slot that day, not two */
    g_assert_cmpint(pace_next_slot(&r, anchor, utc_at(2026, 10, 25, 0, 30)), ==,
                    local_at("Europe/Berlin", 2026, 10, 26, 2, 30));
    g_assert_cmpint(pace_local_to_utc("America/New_York", 2026, 11, 1, 1, 30), ==,
                    utc_at(2026, 11, 1, 5, 30));
}

static void test_next_slot_bad_rule(void)
{
    struct pace_rule bad_zone = { "FREQ=DAILY", 9, 0, "Mars/Olympus_Mons" };
    g_assert_cmpint(pace_next_slot(&bad_zone, 1772445600, 1772445600), ==, -1);
    struct pace_rule bad_rrule = { "NOT AN RRULE", 9, 0, "UTC" };
    g_assert_cmpint(pace_next_slot(&bad_rrule, 1772445600, 1772445600), ==, -1);
}

/* ---- pace_check ---- */

struct check_case {
    const char *rrule;
    int hour, minute;
    const char *tz;
    gboolean ok;
    const char *needle; /* expected in the message when !ok */
};

static const struct check_case checks[] = {
    { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "Europe/Berlin", TRUE, NULL },
    { "FREQ=DAILY", 0, 0, "UTC", TRUE, NULL },
    { "FREQ=DAILY;INTERVAL=2", 23, 59, "Asia/Kolkata", TRUE, NULL },
    { "FREQ=MONTHLY;BYMONTHDAY=1", 9, 0, "America/New_York", TRUE, NULL },
    { "FREQ=WEEKLY;BYDAY=MO", 9, 0, "Mars/Olympus_Mons", FALSE, "Mars/Olympus_Mons" },
    { "FREQ=WEEKLY;BYDAY=MO", 9, 0, "", FALSE, "zone" },
    { "FREQ=WEEKLY;BYDAY=MO", 9, 0, NULL, FALSE, "zone" },
    { "FREQ=WEEKLY;BYDAY=MO;COUNT=5", 9, 0, "UTC", FALSE, "COUNT" },
    { "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270101T000000Z", 9, 0, "UTC", FALSE, "UNTIL" },
    { "FREQ=HOURLY", 9, 0, "UTC", FALSE, "DAILY" },
    { "FREQ=MINUTELY", 9, 0, "UTC", FALSE, "DAILY" },
    { "FREQ=SECONDLY", 9, 0, "UTC", FALSE, "DAILY" },
    { "garbage", 9, 0, "UTC", FALSE, "garbage" },
    { "FREQ=FORTNIGHTLY", 9, 0, "UTC", FALSE, "FORTNIGHTLY" },
    { "", 9, 0, "UTC", FALSE, "schedule" },
    { NULL, 9, 0, "UTC", FALSE, "schedule" },
    { "FREQ=DAILY", 24, 0, "UTC", FALSE, "time" },
    { "FREQ=DAILY", 9, 60, "UTC", FALSE, "time" },
    { "FREQ=DAILY", -1, 0, "UTC", FALSE, "time" },
};

static void test_check(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(checks); i++) {
        const struct check_case *c = &checks[i];
        struct pace_rule r = { c->rrule, c->hour, c->minute, c->tz };
        GError *err = NULL;
        gboolean ok = pace_check(&r, &err);
        if (g_test_verbose() || ok != c->ok)
            g_test_message("case %zu: rrule=%s tz=%s -> %s", i, c->rrule ? c->rrule : "(null)",
                           c->tz ? c->tz : "(null)", err ? err->message : "ok");
        if (c->ok) {
            g_assert_no_error(err);
            g_assert_true(ok);
        } else {
            g_assert_false(ok);
            g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
            g_assert_nonnull(strstr(err->message, c->needle));
            g_error_free(err);
        }
    }
}

/* A rule that parses but never fires must be rejected, and promptly. */
static void test_check_never_fires(void)
{
    struct pace_rule r = { "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", 9, 0, "UTC" };
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time();
    g_assert_false(pace_check(&r, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_error_free(err);
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_USEC_PER_SEC);
}

/* ---- pace_parse_time ---- */

static void test_parse_time(void)
{
    static const struct {
        const char *text;
        gboolean ok;
        int h, m;
    } cases[] = {
        { "09:00", TRUE, 9, 0 },   { "00:00", TRUE, 0, 0 },     { "23:59", TRUE, 23, 59 },
        { "12:30", TRUE, 12, 30 }, { "24:00", FALSE, 0, 0 },    { "25:00", FALSE, 0, 0 },
        { "09:60", FALSE, 0, 0 },  { "9:00", FALSE, 0, 0 },     { "09:0", FALSE, 0, 0 },
        { "0900", FALSE, 0, 0 },   { "09.00", FALSE, 0, 0 },    { " 9:00", FALSE, 0, 0 },
        { "09:00 ", FALSE, 0, 0 }, { "09:00:00", FALSE, 0, 0 }, { "-1:00", FALSE, 0, 0 },
        { "ab:cd", FALSE, 0, 0 },  { "", FALSE, 0, 0 },         { NULL, FALSE, 0, 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        int h = -7, m = -7;
        gboolean ok = pace_parse_time(cases[i].text, &h, &m);
        if (ok != cases[i].ok)
            g_test_message("case '%s'", cases[i].text ? cases[i].text : "(null)");
        g_assert_cmpint(ok, ==, cases[i].ok);
        if (ok) {
            g_assert_cmpint(h, ==, cases[i].h);
            g_assert_cmpint(m, ==, cases[i].m);
        } else {
            /* Outputs are untouched on failure. */
            g_assert_cmpint(h, ==, -7);
            g_assert_cmpint(m, ==, -7);
        }
    }
}

/* ---- pace_tz_valid ---- */

static void test_tz_valid(void)
{
    static const struct {
        const char *tz;
        gboolean ok;
    } cases[] = {
        { "UTC", TRUE },
        { "Etc/UTC", TRUE },
        { "Europe/Berlin", TRUE },
        { "America/New_York", TRUE },
        { "Asia/Kolkata", TRUE },
        { "Australia/Sydney", TRUE },
        { "Mars/Olympus_Mons", FALSE },
        { "Europe/Atlantis", FALSE },
        { "../../../etc/passwd", FALSE },
        { "", FALSE },
        { NULL, FALSE },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        gboolean ok = pace_tz_valid(cases[i].tz);
        if (ok != cases[i].ok)
            g_test_message("case '%s'", cases[i].tz ? cases[i].tz : "(null)");
        g_assert_cmpint(ok, ==, cases[i].ok);
    }
}

/* ---- pace_describe ---- */

static void test_describe(void)
{
    static const struct {
        const char *rrule;
        int h, m;
        const char *want;
    } cases[] = {
        { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "Mondays, Wednesdays and Fridays at 09:00" },
        { "FREQ=WEEKLY;BYDAY=TU,TH", 9, 0, "Tuesdays and Thursdays at 09:00" },
        { "FREQ=WEEKLY;BYDAY=SU", 7, 5, "Sundays at 07:05" },
        { "FREQ=DAILY", 18, 30, "Every day at 18:30" },
        { "FREQ=DAILY;INTERVAL=3", 8, 0, "Every 3 days at 08:00" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct pace_rule r = { cases[i].rrule, cases[i].h, cases[i].m, "UTC" };
        char *s = pace_describe(&r);
        g_assert_cmpstr(s, ==, cases[i].want);
        g_free(s);
    }
}

/* ---- pace_format_local ---- */

static void test_format_local(void)
{
    static const struct {
        gint64 t;
        const char *tz;
        const char *want;
    } cases[] = {
        { 1772445600, "Europe/Berlin", "2026-03-02 11:00 CET" },
        { 1772445600, "UTC", "2026-03-02 10:00 UTC" },
        { 1772445600, "Asia/Kolkata", "2026-03-02 15:30 IST" },
        { 1772445600, NULL, "2026-03-02 10:00 UTC" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *s = pace_format_local(cases[i].t, cases[i].tz);
        g_assert_cmpstr(s, ==, cases[i].want);
        g_free(s);
    }
    /* Summer time is named. */
    char *s = pace_format_local(utc_at(2026, 7, 1, 7, 0), "Europe/Berlin");
    g_assert_cmpstr(s, ==, "2026-07-01 09:00 CEST");
    g_free(s);
}

/* ---- randomized: pace_next_slot() against a reference written with GLib
 * dates alone (no libical), for daily and weekly rules with intervals and
 * day sets, in zones with and without DST, with anchors at any time of
 * their local day (which the slot memo treats as one). 3,000 cases. */
static gint64 reference_next(const char *tz, gboolean weekly, int interval, const int *days, int ndays, int h,
                             int mi, gint64 anchor, gint64 after)
{
    GTimeZone *z = g_time_zone_new_identifier(tz);
    GDateTime *u = g_date_time_new_from_unix_utc(anchor);
    GDateTime *l = g_date_time_to_timezone(u, z);
    GDate *a = g_date_new_dmy((GDateDay)g_date_time_get_day_of_month(l), (GDateMonth)g_date_time_get_month(l),
                              (GDateYear)g_date_time_get_year(l));
    GDate *amon = g_date_copy(a);
    g_date_subtract_days(amon, g_date_get_weekday(amon) - G_DATE_MONDAY);
    gint64 found = -1;
    GDate *d = g_date_copy(a);
    for (int i = 0; i < 800 && found < 0; i++, g_date_add_days(d, 1)) {
        int since = g_date_days_between(a, d);
        gboolean on;
        if (!weekly) {
            on = since % interval == 0;
        } else {
            GDate *mon = g_date_copy(d);
            g_date_subtract_days(mon, g_date_get_weekday(mon) - G_DATE_MONDAY);
            int weeks = g_date_days_between(amon, mon) / 7;
            g_date_free(mon);
            on = FALSE;
            for (int k = 0; k < ndays; k++)
                on |= (int)g_date_get_weekday(d) == days[k];
            on = on && weeks % interval == 0;
        }
        if (!on)
            continue;
        gint64 t = local_at(tz, g_date_get_year(d), g_date_get_month(d), g_date_get_day(d), h, mi);
        if (t > after)
            found = t;
    }
    g_date_free(d);
    g_date_free(a);
    g_date_free(amon);
    g_date_time_unref(l);
    g_date_time_unref(u);
    g_time_zone_unref(z);
    return found;
}

static void test_random_against_reference(void)
{
    static const char *zones[] = { "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
                                   "Australia/Sydney" };
    static const char *names[] = { "", "MO", "TU", "WE", "TH", "FR", "SA", "SU" };
    static const int hm[][2] = { { 7, 30 }, { 9, 0 }, { 18, 15 }, { 20, 0 } };
    GRand *rnd = g_rand_new_with_seed(20261201);
    for (int n = 0; n < 3000; n++) {
        const char *tz = zones[g_rand_int_range(rnd, 0, G_N_ELEMENTS(zones))];
        gboolean weekly = g_rand_boolean(rnd);
        int interval = g_rand_int_range(rnd, 1, weekly ? 3 : 4);
        int days[7], ndays = 0;
        GString *rule = g_string_new(weekly ? "FREQ=WEEKLY" : "FREQ=DAILY");
        if (interval > 1)
            g_string_append_printf(rule, ";INTERVAL=%d", interval);
        if (weekly) {
            for (int wd = 1; wd <= 7; wd++)
                if (g_rand_int_range(rnd, 0, 3) == 0)
                    days[ndays++] = wd;
            if (ndays == 0)
                days[ndays++] = g_rand_int_range(rnd, 1, 8);
            g_string_append(rule, ";BYDAY=");
            for (int k = 0; k < ndays; k++)
                g_string_append_printf(rule, "%s%s", k ? "," : "", names[days[k]]);
        }
        int pick = g_rand_int_range(rnd, 0, G_N_ELEMENTS(hm));
        struct pace_rule r = { rule->str, hm[pick][0], hm[pick][1], tz };
        /* 2026-01-01 plus up to a year; after: up to 60 days on */
        gint64 anchor = 1767225600 + g_rand_int_range(rnd, 0, 365 * 86400);
        gint64 after = anchor + g_rand_int_range(rnd, -3600, 60 * 86400);
        gint64 want = reference_next(tz, weekly, interval, days, ndays, r.hour, r.minute, anchor, after);
        gint64 got = pace_next_slot(&r, anchor, after);
        if (got != want) {
            char *g = fmt_utc(got), *w = fmt_utc(want), *an = fmt_utc(anchor), *af = fmt_utc(after);
            g_test_message("case %d: %s %02d:%02d %s anchor %s after %s: got %s, want %s", n, rule->str,
                           r.hour, r.minute, tz, an, af, g, w);
            g_free(g);
            g_free(w);
            g_free(an);
            g_free(af);
        }
        g_assert_cmpint(got, ==, want);
        g_string_free(rule, TRUE);
    }
    g_rand_free(rnd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    pace_init();
    g_test_add_func("/pace/reference-instants", test_reference_instants);
    g_test_add_func("/pace/next-slot/weekly-mwf-utc", test_weekly_mwf_utc);
    g_test_add_func("/pace/next-slot/strictly-after", test_strictly_after);
    g_test_add_func("/pace/next-slot/anchor-off-schedule", test_anchor_off_schedule);
    g_test_add_func("/pace/next-slot/walks", test_walks);
    g_test_add_func("/pace/next-slot/local-time-kept-over-a-year", test_local_time_kept_over_a_year);
    g_test_add_func("/pace/next-slot/interval-phase", test_interval_phase);
    g_test_add_func("/pace/next-slot/phase-local-day", test_phase_local_day);
    g_test_add_func("/pace/next-slot/far-after-anchor", test_far_after_anchor);
    g_test_add_func("/pace/next-slot/time-in-dst-gap", test_time_in_dst_gap);
    g_test_add_func("/pace/next-slot/time-in-repeated-hour", test_time_in_repeated_hour);
    g_test_add_func("/pace/next-slot/bad-rule", test_next_slot_bad_rule);
    g_test_add_func("/pace/next-slot/random-against-reference", test_random_against_reference);
    g_test_add_func("/pace/describe", test_describe);
    g_test_add_func("/pace/check", test_check);
    g_test_add_func("/pace/check/never-fires", test_check_never_fires);
    g_test_add_func("/pace/parse-time", test_parse_time);
    g_test_add_func("/pace/tz-valid", test_tz_valid);
    g_test_add_func("/pace/format-local", test_format_local);
    return g_test_run();
}
