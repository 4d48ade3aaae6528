/* clock.c - owns the notion of "now". Every stored time and every Date header
 * comes from clock_now(), so that tests and the demo can run weeks of schedule
 * in seconds with --now (frozen) or --now plus a speed (fast demo clock).
 * $COURSED_NOW does what --now does, for programs an MTA starts (a pipe
 * cannot add an option, but its environment can be set). */
#include <string.h>
#include "clock.h"
#include "error.h"

static gboolean fake;
static gint64 fake_start;
static double fake_speed;
static gint64 real_start_us;

void clock_set_fake(gint64 start, double speed)
{
    fake = TRUE;
    fake_start = start;
    fake_speed = speed;
    real_start_us = g_get_monotonic_time();
}

gboolean clock_is_fake(void)
{
    return fake;
}

gint64 clock_now(void)
{
    if (!fake)
        return g_get_real_time() / G_USEC_PER_SEC;
    if (fake_speed <= 0)
        return fake_start;
    double elapsed = (double)(g_get_monotonic_time() - real_start_us) / G_USEC_PER_SEC;
    return fake_start + (gint64)(elapsed * fake_speed);
}

gboolean clock_setup(const char *cli, double speed, GError **err)
{
    const char *what = "--now";
    const char *text = cli;
    if (!text || !*text) {
        what = "COURSED_NOW";
        text = g_getenv("COURSED_NOW");
    }
    if (!text || !*text)
        return TRUE;
    gint64 t;
    GError *e = NULL;
    if (!clock_parse(text, &t, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", what, e->message);
        g_error_free(e);
        return FALSE;
    }
    clock_set_fake(t, speed);
    return TRUE;
}

gboolean clock_parse(const char *text, gint64 *out, GError **err)
{
    GDateTime *dt = NULL;
    if (text && strlen(text) == 10) {
        char *full = g_strconcat(text, "T00:00:00Z", NULL);
        dt = g_date_time_new_from_iso8601(full, NULL);
        g_free(full);
    } else if (text) {
        dt = g_date_time_new_from_iso8601(text, NULL);
    }
    if (!dt) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "bad time '%s': expected ISO 8601 like 2026-03-02T09:00:00Z", text ? text : "");
        return FALSE;
    }
    *out = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    return TRUE;
}

char *clock_format_utc(gint64 t)
{
    GDateTime *dt = g_date_time_new_from_unix_utc(t);
    if (!dt)
        return g_strdup("?");
    char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
    g_date_time_unref(dt);
    return s;
}
