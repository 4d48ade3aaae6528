/* schedule.c - owns the rules that place lessons on a subscriber's
 * calendar: the first slot (first_lesson, first_within), the slot after a
 * lesson (the course's RRULE at its local time, at most [pacing]
 * max_per_day in one local day), and the projection of what is to come.
 * The tick's next slot and every projection (schedule, status mail, .ics)
 * are computed here, so they cannot disagree. The enrollment instant
 * anchors the calendar's phase (INTERVAL rules). */
#include <string.h>
#include "schedule.h"

const char *schedule_zone(const struct course *c, const char *sub_tz)
{
    return sub_tz && *sub_tz ? sub_tz : c->tz;
}

struct pace_rule schedule_rule(const struct course *c, const char *sub_tz)
{
    struct pace_rule rule = c->rule;
    rule.tz = schedule_zone(c, sub_tz);
    return rule;
}

gint64 schedule_first(const struct config *cfg, const struct course *c, const char *sub_tz, gint64 now)
{
    if (cfg && strcmp(cfg->first_lesson, "immediately") == 0)
        return now;
    struct pace_rule rule = schedule_rule(c, sub_tz);
    gint64 slot = pace_next_slot(&rule, now, now);
    if (c->first_within > 0 && (slot < 0 || slot > now + c->first_within))
        slot = now + c->first_within;
    return slot;
}

gint64 schedule_after(const struct config *cfg, const struct pace_rule *rule, gint64 anchor, gint64 prev,
                      int *in_day)
{
    int max = cfg && cfg->max_per_day > 0 ? (int)cfg->max_per_day : 1;
    gint64 t = pace_next_slot(rule, anchor, prev);
    /* No local day is longer than 25 hours: a slot that far on is on a
     * later day, and the (libical) day bounds are not needed. */
    if (t < 0 || t - prev >= 25 * 3600) {
        *in_day = 1;
        return t;
    }
    gint64 day_start, day_end;
    gboolean bounded = pace_day_bounds(rule->tz, prev, &day_start, &day_end);
    /* Bounded: a rule with slots on every day finds room on the next one. */
    for (int guard = 0; t > 0 && bounded && guard < 400; guard++) {
        if (t >= day_end) {
            *in_day = 1;
            return t;
        }
        if (*in_day < max) {
            (*in_day)++;
            return t;
        }
        /* prev's day is full: the first slot of a later day */
        t = pace_next_slot(rule, anchor, day_end - 1);
    }
    *in_day = 1;
    return t;
}

void schedule_project(const struct config *cfg, const struct pace_rule *rule, gint64 anchor, gint64 first,
                      int first_in_day, int count, GArray *slots)
{
    gint64 t = first;
    int in_day = MAX(first_in_day, 1);
    for (int i = 0; t > 0 && i < count; i++) {
        g_array_append_val(slots, t);
        if (i + 1 < count)
            t = schedule_after(cfg, rule, anchor, t, &in_day);
    }
}
