/* schedule.c - owns the rules that place lessons on a subscriber's
 * calendar: the first slot (first_lesson, first_within), the slot after a
 * lesson (the course's RRULE at its local time, at most [pacing]
 * max_per_day in one local day), and the projection of what is to come.
 * The tick's next slot and every projection (schedule, status mail, .ics)
 * are computed here, so they cannot disagree. The enrollment instant
 * anchors the calendar's phase (INTERVAL rules). A subscriber's own time
 * of day (the manage page) replaces the course's `time` in the rule
 * (schedule_rule_at). */
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

struct pace_rule schedule_rule_at(const struct course *c, const char *sub_tz, const char *lesson_time)
{
    struct pace_rule rule = schedule_rule(c, sub_tz);
    int h, m;
    /* The subscriber's own time of day replaces the course's; the rule's
     * days, the zone and max_per_day stay as they are. */
    if (lesson_time && pace_parse_time(lesson_time, &h, &m)) {
        rule.hour = h;
        rule.minute = m;
    }
    return rule;
}

gint64 schedule_first(const struct config *cfg, const struct course *c, const char *sub_tz, gint64 now)
{
    return schedule_first_at(cfg, c, sub_tz, NULL, now);
}

gint64 schedule_first_at(const struct config *cfg, const struct course *c, const char *sub_tz,
                         const char *lesson_time, gint64 now)
{
    if (cfg && strcmp(cfg->first_lesson, "immediately") == 0)
        return now;
    struct pace_rule rule = schedule_rule_at(c, sub_tz, lesson_time);
    gint64 slot = pace_next_slot(&rule, now, now);
    if (c->first_within > 0 && (slot < 0 || slot > now + c->first_within))
        slot = now + c->first_within;
    return slot;
}

gint64 schedule_after_placed(const struct config *cfg, const struct pace_rule *rule, gint64 anchor,
                             gint64 prev, gint64 placed, int *in_day)
{
    int max = cfg && cfg->max_per_day > 0 ? (int)cfg->max_per_day : 1;
    gint64 t = pace_next_slot(rule, anchor, prev);
    /* No local day is longer than 25 hours: a slot that far after the
     * placement is on a later day, and the (libical) day bounds are not
     * needed. */
    if (t < 0 || t - placed >= 25 * 3600) {
        *in_day = 1;
        return t;
    }
    gint64 day_start, day_end;
    if (!pace_day_bounds(rule->tz, placed, &day_start, &day_end) || t >= day_end) {
        *in_day = 1;
        return t;
    }
    /* The slot falls on the day the previous lesson went out (or before
     * it: that lesson went out late, and this one is due at once): room
     * for one more, or the first slot of a later day. */
    if (t >= day_start && *in_day < max) {
        (*in_day)++;
        return t;
    }
    *in_day = 1;
    return pace_next_slot(rule, anchor, day_end - 1);
}

gint64 schedule_after(const struct config *cfg, const struct pace_rule *rule, gint64 anchor, gint64 prev,
                      int *in_day)
{
    return schedule_after_placed(cfg, rule, anchor, prev, prev, in_day);
}

void schedule_project(const struct config *cfg, const struct pace_rule *rule, gint64 anchor, gint64 first,
                      gint64 first_placed, int first_in_day, int count, GArray *slots)
{
    gint64 t = first, placed = first_placed > 0 ? first_placed : first;
    int in_day = MAX(first_in_day, 1);
    for (int i = 0; t > 0 && i < count; i++) {
        g_array_append_val(slots, t);
        if (i + 1 < count) {
            t = schedule_after_placed(cfg, rule, anchor, t, placed, &in_day);
            placed = t; /* a future lesson goes out at its slot */
        }
    }
}

gint64 schedule_preview_next(const struct course *c, const char *sub_tz, int n, gint64 now)
{
    if (n >= c->n_lessons)
        return -1;
    struct pace_rule rule = schedule_rule(c, sub_tz);
    return pace_next_slot(&rule, now, now);
}
