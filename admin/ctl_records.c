/* ctl_records.c - owns what coursectl shows of lib/'s rows: the one
 * function per row type that names each field and gives it its kind (an
 * instant is CTL_TIME everywhere, an id or a count CTL_INT), and the text
 * views of the commands, laid out as they always were. Nothing here decides
 * anything about subscribers or lessons: the facts come from lib/. */
#include <string.h>
#include "ctl_records.h"
#include "pace.h"
#include "schedule.h"
#include "state.h"

/* ---- records ---- */

struct ctl_record *rec_course(const struct course *c)
{
    struct ctl_record *r = ctl_record_new();
    ctl_text(r, "slug", c->slug);
    ctl_text(r, "title", c->title);
    ctl_int(r, "lessons", c->n_lessons);
    ctl_text(r, "schedule", c->schedule);
    ctl_text(r, "time", c->time);
    ctl_text(r, "timezone", c->tz);
    ctl_text(r, "source", c->source);
    /* The text form says "weekly MO,WE,FR" for the common rules, so that
     * the list fits 80 columns; JSON keeps the rule as written. */
    const char *rule = c->schedule;
    char *shown = NULL;
    if (g_str_has_prefix(rule, "FREQ=WEEKLY;BYDAY=") && !strchr(rule + 18, ';'))
        shown = g_strconcat("weekly ", rule + 18, NULL);
    else if (!strcmp(rule, "FREQ=DAILY"))
        shown = g_strdup("daily");
    char *when = g_strdup_printf("%s %s %s", shown ? shown : rule, c->time, c->tz);
    g_free(shown);
    ctl_cell(r, "when", when);
    g_free(when);
    return r;
}

struct ctl_record *rec_subscriber(const struct sub_row *s)
{
    struct ctl_record *r = ctl_record_new();
    ctl_int(r, "id", s->id);
    ctl_text(r, "email", s->email);
    ctl_text(r, "name", s->name);
    ctl_text(r, "tz", s->tz);
    ctl_text(r, "status", state_name(ENT_SUB, s->status));
    ctl_time(r, "created_at", s->created_at);
    return r;
}

/* A subscriber whose address bounced or who left gets no more mail,
 * whatever their enrollments' rows still say: no next lesson is shown (nor
 * given in JSON), and the text says why. */
static void rec_enrollment(struct ctl_record *sub, const struct enrollment_row *e, GPtrArray *courses,
                           int sub_status)
{
    gboolean mailable = sub_status != SUB_BOUNCED && sub_status != SUB_UNSUBSCRIBED;
    const struct course *c = course_find(courses, e->course);
    int total = c ? c->n_lessons : 0;
    struct ctl_record *r = ctl_child(sub, "enrollments");
    ctl_text(r, "course", e->course);
    ctl_text(r, "state", state_name(ENT_ENR, e->state));
    ctl_int(r, "lessons_sent", e->lessons_sent);
    ctl_int(r, "next_lesson", e->next_lesson);
    ctl_time(r, "next_send_at", mailable ? e->next_send_at : 0);
    if (!mailable)
        ctl_cell(r, "no_more",
                 sub_status == SUB_BOUNCED ? "no more lessons: the address bounced"
                                           : "no more lessons: unsubscribed");
    gboolean why = (e->state == ENR_PAUSED || e->state == ENR_STOPPED) && e->reason != REASON_NONE;
    char *progress = g_strdup_printf("%d/%d sent%s%s%s", e->lessons_sent, total, why ? " (" : "",
                                     why ? state_reason_text(e->reason) : "", why ? ")" : "");
    ctl_cell(r, "progress", progress);
    g_free(progress);
    ctl_cell_int(r, "total", total);
    ctl_cell(r, "zone", c ? schedule_zone(c, e->tz) : "UTC");
    if ((e->state == ENR_PAUSED || e->state == ENR_STOPPED) && e->reason != REASON_NONE)
        ctl_cell(r, "reason", state_reason_text(e->reason));
}

struct ctl_record *rec_subscriber_full(const struct sub_row *s, const GPtrArray *es, GPtrArray *courses)
{
    struct ctl_record *r = rec_subscriber(s);
    ctl_list(r, "enrollments");
    for (guint i = 0; i < es->len; i++)
        rec_enrollment(r, es->pdata[i], courses, s->status);
    return r;
}

void rec_consents(struct ctl_record *sub, const GPtrArray *cs)
{
    ctl_list(sub, "consents");
    for (guint i = 0; i < cs->len; i++) {
        const struct consent_row *c = cs->pdata[i];
        struct ctl_record *r = ctl_child(sub, "consents");
        ctl_text(r, "course", c->course);
        ctl_text(r, "source", c->source);
        ctl_text(r, "detail", c->detail);
        ctl_text(r, "operator", c->operator_name);
        ctl_time(r, "requested_at", c->requested_at);
        ctl_time(r, "confirmed_at", c->confirmed_at);
        ctl_text(r, "confirmed_via", c->confirmed_via);
        ctl_text(r, "shown_sha256", c->shown_sha256);
        ctl_text(r, "mail_sha256", c->mail_sha256);
        ctl_text(r, "ip", c->ip);
        ctl_text(r, "user_agent", c->user_agent);
        char *asked = ctl_when(c->requested_at, "UTC");
        char *how = g_strdup_printf("%s%s%s%s%s, %s", c->source, *c->detail ? " " : "", c->detail,
                                    *c->operator_name ? " by " : "", c->operator_name, asked);
        char *done = c->confirmed_at > 0 ? ctl_when(c->confirmed_at, "UTC") : NULL;
        char *conf = done ? g_strdup_printf("confirmed (%s) %s", c->confirmed_via, done)
                          : g_strdup("not confirmed");
        ctl_cell(r, "what", c->course ? c->course : "(no course)");
        ctl_cell(r, "how", how);
        ctl_cell(r, "confirmed", conf);
        g_free(conf);
        g_free(done);
        g_free(how);
        g_free(asked);
    }
}

struct ctl_record *rec_delivery(const struct delivery_row *d)
{
    struct ctl_record *r = ctl_record_new();
    ctl_int(r, "id", d->id);
    ctl_text(r, "email", d->email);
    ctl_text(r, "course", d->course);
    ctl_int(r, "lesson", d->lesson);
    ctl_text(r, "state", state_name(ENT_DLV, d->state));
    ctl_int(r, "attempts", d->attempts);
    ctl_time(r, "next_attempt", d->next_attempt_at);
    ctl_int(r, "last_code", d->last_code);
    ctl_text(r, "last_reply", d->last_text);
    ctl_text(r, "kind", "lesson");
    char *ref = g_strdup_printf("%" G_GINT64_FORMAT, d->id);
    ctl_text(r, "ref", ref);
    g_free(ref);
    return r;
}

struct ctl_record *rec_mail(const struct outbox_row *o)
{
    struct ctl_record *r = ctl_record_new();
    ctl_int(r, "id", o->id);
    ctl_text(r, "email", o->rcpt);
    ctl_text(r, "course", o->course);
    ctl_text(r, "state", state_name(ENT_MAIL, o->state));
    ctl_int(r, "attempts", o->attempts);
    ctl_time(r, "next_attempt", o->next_attempt_at);
    ctl_int(r, "last_code", o->last_code);
    ctl_text(r, "last_reply", o->last_text);
    ctl_text(r, "kind", o->kind);
    /* "m" + id: system mails are numbered apart from deliveries */
    char *ref = g_strdup_printf("m%" G_GINT64_FORMAT, o->id);
    ctl_text(r, "ref", ref);
    g_free(ref);
    return r;
}

struct ctl_record *rec_event(const struct event_row *e)
{
    struct ctl_record *r = ctl_record_new();
    ctl_time(r, "at", e->at);
    ctl_text(r, "email", e->email);
    ctl_text(r, "event", e->kind);
    ctl_text(r, "via", e->via);
    ctl_text(r, "detail", e->detail);
    ctl_text(r, "message_id", e->message_id);
    return r;
}

struct ctl_record *rec_day(const struct store_day *d)
{
    struct ctl_record *r = ctl_record_new();
    ctl_date(r, "day", d->day);
    ctl_int(r, "sent", d->sent);
    ctl_int(r, "deferred", d->deferred);
    ctl_int(r, "bounced", d->bounced);
    ctl_int(r, "unsubscribed", d->unsubscribed);
    return r;
}

struct ctl_record *rec_funnel(const struct course *c, const GArray *reached, const GArray *lost,
                              const struct store_funnel_states *sc)
{
    struct ctl_record *r = ctl_record_new();
    ctl_text(r, "course", c->slug);
    ctl_int(r, "enrolled",
            sc->active + sc->paused + sc->completed + sc->unsubscribed + sc->bounced + sc->pending);
    ctl_int(r, "active", sc->active);
    ctl_int(r, "paused", sc->paused);
    ctl_int(r, "completed", sc->completed);
    ctl_int(r, "unsubscribed", sc->unsubscribed);
    ctl_int(r, "bounced", sc->bounced);
    ctl_int(r, "pending", sc->pending);
    ctl_ints(r, "reached", (const gint64 *)(void *)reached->data, reached->len);
    ctl_ints(r, "lost", (const gint64 *)(void *)lost->data, lost->len);
    ctl_cell(r, "title", c->title);
    return r;
}

/* The English weekday and the local time of instant t in zone tz (as
 * pace_format_local shows the zone: unknown names are UTC); with parts,
 * also its local date and time of day, and the weekday in JSON too. */
static void add_local(struct ctl_record *r, gint64 t, const char *tz, gboolean parts)
{
    static const char *days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
    GTimeZone *gz = g_time_zone_new_identifier(tz && *tz ? tz : "UTC");
    if (!gz)
        gz = g_time_zone_new_utc();
    GDateTime *u = g_date_time_new_from_unix_utc(t);
    GDateTime *l = g_date_time_to_timezone(u, gz);
    const char *day = days[(g_date_time_get_day_of_week(l) + 6) % 7];
    if (parts)
        ctl_text(r, "weekday", day);
    else
        ctl_cell(r, "weekday", day); /* schedule's JSON stays as it was */
    if (parts) {
        char *date = g_date_time_format(l, "%Y-%m-%d"), *time = g_date_time_format(l, "%H:%M");
        ctl_text(r, "local_date", date);
        ctl_text(r, "local_time", time);
        g_free(date);
        g_free(time);
    }
    char *local = pace_format_local(t, tz);
    ctl_text(r, "local", local);
    g_free(local);
    g_date_time_unref(l);
    g_date_time_unref(u);
    g_time_zone_unref(gz);
}

struct ctl_record *rec_slot(const struct course *c, int lesson, gint64 t, const char *tz)
{
    struct ctl_record *r = ctl_record_new();
    ctl_text(r, "course", c->slug);
    ctl_int(r, "lesson", lesson);
    char *step = g_strdup_printf("%d/%d", lesson, c->n_lessons);
    ctl_cell(r, "step", step);
    g_free(step);
    add_local(r, t, tz, FALSE);
    ctl_time(r, "utc", t);
    return r;
}

struct ctl_record *rec_timeline(const struct course *c, int lesson, gint64 t, const char *tz)
{
    struct ctl_record *r = ctl_record_new();
    const struct lesson *l = course_lesson(c, lesson);
    ctl_text(r, "course", c->slug);
    ctl_int(r, "lesson", lesson);
    ctl_text(r, "slug", l ? l->slug : NULL);
    ctl_text(r, "subject", l ? l->subject : NULL);
    ctl_text(r, "zone", tz);
    add_local(r, t, tz, TRUE);
    ctl_time(r, "utc", t);
    return r;
}

struct ctl_record *rec_slot_note(const char *course, const char *what)
{
    struct ctl_record *r = ctl_record_new();
    ctl_record_text_only(r);
    ctl_text(r, "course", course);
    ctl_cell(r, "step", what);
    return r;
}

struct ctl_record *rec_check(const struct doctor_check *c)
{
    struct ctl_record *r = ctl_record_new();
    ctl_cell(r, "mark", c->ok ? "ok" : "FAIL");
    ctl_text(r, "name", c->name);
    ctl_bool(r, "ok", c->ok);
    ctl_text(r, "detail", c->detail);
    ctl_text(r, "fix", c->ok ? NULL : c->fix);
    return r;
}

struct ctl_record *rec_check_fix(const struct doctor_check *c)
{
    struct ctl_record *r = ctl_record_new();
    ctl_record_text_only(r);
    ctl_cell(r, "mark", "");
    char *fix = g_strdup_printf("fix: %s", c->fix);
    ctl_cell(r, "name", fix);
    g_free(fix);
    return r;
}

struct ctl_record *rec_export_subscriber(const struct store_export_row *row)
{
    struct ctl_record *r = ctl_record_new();
    ctl_text(r, "email", row->email);
    ctl_text(r, "name", row->name);
    ctl_text(r, "tz", row->tz);
    ctl_text(r, "status", row->status);
    ctl_time(r, "created_at", row->created_at);
    ctl_list(r, "enrollments");
    return r;
}

void rec_export_enrollment(struct ctl_record *sub, const struct store_export_row *row)
{
    if (!row->course)
        return;
    struct ctl_record *r = ctl_child(sub, "enrollments");
    ctl_text(r, "course", row->course);
    ctl_text(r, "state", row->state);
    ctl_int(r, "next_lesson", row->next_lesson);
}

struct ctl_record *rec_note(const struct note_row *n)
{
    struct ctl_record *r = ctl_record_new();
    ctl_int(r, "id", n->id);
    ctl_time(r, "received_at", n->received_at);
    ctl_text(r, "email", n->email);
    ctl_text(r, "course", n->course);
    if (n->lesson > 0)
        ctl_int(r, "lesson", n->lesson);
    else
        ctl_text(r, "lesson", NULL);
    ctl_text(r, "lesson_slug", n->lesson_slug);
    ctl_text(r, "forward", n->forward);
    ctl_text(r, "body", n->body);
    return r;
}

void rec_export_note(struct ctl_record *sub, const struct note_row *n)
{
    struct ctl_record *r = ctl_child(sub, "notes");
    ctl_text(r, "course", n->course);
    ctl_text(r, "lesson_slug", n->lesson_slug);
    ctl_time(r, "received_at", n->received_at);
    ctl_text(r, "body", n->body);
}

void rec_funnel_notes(struct ctl_record *funnel, const GArray *notes)
{
    ctl_ints(funnel, "notes_per_lesson", (const gint64 *)(void *)notes->data, notes->len);
}

/* ---- views ---- */

/* A note: one line saying who, when and about what, then the text
 * indented (so that a reader's line cannot pass for one of ours). */
static void note_text(FILE *out, const struct ctl_record *r, void *arg)
{
    (void)arg;
    char *when = ctl_when(ctl_get_int(r, "received_at"), NULL);
    const char *slug = ctl_get_text(r, "lesson_slug");
    fprintf(out, "#%" G_GINT64_FORMAT " %s  %s  %s", ctl_get_int(r, "id"), when, ctl_get_text(r, "email"),
            ctl_get_text(r, "course"));
    if (slug)
        fprintf(out, " lesson %" G_GINT64_FORMAT " (%s)", ctl_get_int(r, "lesson"), slug);
    fprintf(out, "  [%s]\n", ctl_get_text(r, "forward"));
    char **lines = g_strsplit(ctl_get_text(r, "body") ? ctl_get_text(r, "body") : "", "\n", -1);
    for (char **l = lines; *l; l++)
        if (**l || l[1])
            fprintf(out, "    %s\n", *l);
    g_strfreev(lines);
    g_free(when);
}
const struct ctl_view view_notes = { .text = note_text, .empty = "(no notes)" };

/* 80 columns for slugs up to 18 characters: the slug is never cut (it is
 * what the other commands take), the schedule and the title are. */
static const struct ctl_column courses_cols[] = {
    { "COURSE", "slug", 6, CTL_COL_AUTO, NULL, 0 },
    { "LESSONS", "lessons", 7, CTL_COL_RIGHT, NULL, 0 },
    { "SCHEDULE", "when", 36, CTL_COL_CLIP, NULL, 0 },
    { "TITLE", "title", 16, CTL_COL_CLIP, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_courses = { .columns = courses_cols, .header = TRUE };

static const struct ctl_column subs_cols[] = {
    { "ID", "id", 6, 0, NULL, 0 },
    { "EMAIL", "email", 30, CTL_COL_CLIP, NULL, 0 },
    { "STATUS", "status", 12, CTL_COL_CLIP, NULL, 0 },
    { "ZONE", "tz", 14, CTL_COL_CLIP, "(course)", 0 },
    { "NAME", "name", 13, CTL_COL_CLIP, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_subscribers = { .columns = subs_cols, .header = TRUE };

static const struct ctl_label sub_labels[] = {
    { "email:", "email", NULL, NULL, { NULL } },
    { "name:", "name", "-", "-", { NULL } },
    { "status:", "status", NULL, NULL, { NULL } },
    { "zone:", "tz", "(course default)", NULL, { NULL } },
    { "created:", "created_at", NULL, NULL, { NULL } },
    { "course:", "enrollments", NULL, NULL, { "course", "state", "progress", NULL } },
    { "consent:", "consents", NULL, NULL, { "what", "how", "confirmed", NULL } },
    { NULL, NULL, NULL, NULL, { NULL } },
};
const struct ctl_view view_subscriber = { .labels = sub_labels, .label_width = 10 };

static void status_enrollment(FILE *out, const struct ctl_record *e)
{
    const char *state = ctl_get_text(e, "state");
    fprintf(out, "  %-16s %-10s %d/%d sent", ctl_get_text(e, "course"), state,
            (int)ctl_get_int(e, "lessons_sent"), (int)ctl_get_int(e, "total"));
    gint64 next = ctl_get_int(e, "next_send_at");
    if (ctl_get_text(e, "no_more")) {
        fprintf(out, "  %s", ctl_get_text(e, "no_more"));
    } else if (next > 0) {
        char *when = ctl_when(next, ctl_get_text(e, "zone"));
        fprintf(out, "  next: lesson %d at %s", (int)ctl_get_int(e, "next_lesson"), when);
        g_free(when);
    } else if (!strcmp(state, "active")) {
        fprintf(out, "  lesson %d is being delivered", (int)ctl_get_int(e, "next_lesson"));
    }
    if (ctl_get_text(e, "reason"))
        fprintf(out, "  (%s)", ctl_get_text(e, "reason"));
    fputc('\n', out);
}

static void status_text(FILE *out, const struct ctl_record *r, void *arg)
{
    (void)arg;
    const char *name = ctl_get_text(r, "name"), *tz = ctl_get_text(r, "tz");
    fprintf(out, "%s  name: %s  status: %s  zone: %s\n", ctl_get_text(r, "email"), name && *name ? name : "-",
            ctl_get_text(r, "status"), tz ? tz : "(course default)");
    const GPtrArray *es = ctl_get_list(r, "enrollments");
    if (!es || es->len == 0)
        fprintf(out, "  not enrolled in any course\n");
    for (guint i = 0; es && i < es->len; i++)
        status_enrollment(out, es->pdata[i]);
}
const struct ctl_view view_status = { .text = status_text };

static const struct ctl_column schedule_cols[] = {
    { "COURSE", "course", 16, 0, NULL, 0 }, { "STEP", "step", 5, 0, NULL, 0 },
    { "DAY", "weekday", 3, 0, NULL, 0 },    { "LOCAL TIME", "local", 26, 0, NULL, 0 },
    { "UTC", "utc", 0, 0, NULL, 0 },        { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_schedule = { .columns = schedule_cols, .header = TRUE };

static const struct ctl_column timeline_cols[] = {
    { "#", "lesson", 3, CTL_COL_RIGHT | CTL_COL_AUTO, NULL, 0 },
    { "DAY", "weekday", 3, 0, NULL, 0 },
    { "LOCAL TIME", "local", 10, CTL_COL_AUTO, NULL, 0 },
    { "SUBJECT", "subject", 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_timeline = { .columns = timeline_cols,
                                        .header = TRUE,
                                        .empty = "no slot: the schedule has no date after the start" };

static const struct ctl_column queue_cols[] = {
    { "ID", "ref", 7, 0, NULL, 0 },
    { "KIND", "kind", 8, CTL_COL_CLIP, NULL, 0 },
    { "STATE", "state", 8, 0, NULL, 0 },
    { "TRY", "attempts", 3, 0, NULL, 0 },
    { "EMAIL", "email", 16, CTL_COL_CLIP, NULL, 0 },
    { "NEXT ATTEMPT", "next_attempt", 17, 0, NULL, 16 },
    { "LAST REPLY", "last_reply", 14, CTL_COL_CLIP, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_queue = { .columns = queue_cols, .header = TRUE, .empty = "(empty)" };

static const struct ctl_column days_cols[] = {
    { "DAY (UTC)", "day", 10, 0, NULL, 0 },
    { "SENT", "sent", 8, CTL_COL_RIGHT, NULL, 0 },
    { "DEFERRED", "deferred", 8, CTL_COL_RIGHT, NULL, 0 },
    { "BOUNCED", "bounced", 8, CTL_COL_RIGHT, NULL, 0 },
    { "LEFT", "unsubscribed", 8, CTL_COL_RIGHT, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_days = { .columns = days_cols, .header = TRUE };

/* The time in the operator's zone (JSON keeps UTC), and the detail whole:
 * it is the answer to "what happened", cut it and the log says nothing. */
static const struct ctl_column events_cols[] = {
    { "AT", "at", 24, CTL_COL_LOCAL, NULL, 0 },      { "EMAIL", "email", 20, CTL_COL_CLIP, NULL, 0 },
    { "EVENT", "event", 18, CTL_COL_CLIP, NULL, 0 }, { "VIA", "via", 6, CTL_COL_CLIP, NULL, 0 },
    { "DETAIL", "detail", 0, 0, NULL, 0 },           { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_events = { .columns = events_cols, .empty = "(no events)" };

struct ctl_record *rec_config_entry(const struct config_entry *e)
{
    struct ctl_record *r = ctl_record_new();
    ctl_text(r, "section", e->group);
    ctl_text(r, "key", e->key);
    ctl_text(r, "value", e->value);
    ctl_text(r, "source", e->origin);
    char *name = g_strdup_printf("[%s] %s", e->group, e->key);
    ctl_cell(r, "name", name);
    g_free(name);
    return r;
}

/* The value column is as wide as the widest value, so that the source of
 * each line stays readable beside it (nothing is cut: a path is the
 * answer an operator came for). */
static const struct ctl_column config_cols[] = {
    { "SETTING", "name", 20, CTL_COL_AUTO, NULL, 0 },
    { "VALUE", "value", 8, CTL_COL_AUTO, NULL, 0 },
    { "FROM", "source", 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_config = { .columns = config_cols, .header = TRUE };

static const struct ctl_column checks_cols[] = {
    { "", "mark", 4, 0, NULL, 0 },
    { "CHECK", "name", 24, 0, NULL, 0 },
    { "DETAIL", "detail", 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_checks = { .columns = checks_cols };

/* One line per lesson: a bar of width 40 in eighths (or #), the count, and
 * how many left the course after it (those waiting for their next lesson
 * are not lost; nothing is shown where nobody was lost), and the readers'
 * notes about it. */
static void funnel_bars(FILE *out, const gint64 *reached, const gint64 *lost, guint n, gint64 total,
                        gboolean u, const gint64 *notes, guint n_notes)
{
    static const char *parts[] = { "", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589" };
    gint64 top = MAX(total, 1);
    for (guint k = 0; k < n; k++) {
        int width = 40, eighths = (int)(reached[k] * width * 8 / top);
        GString *bar = g_string_new(NULL);
        for (int b = 0; b < eighths / 8; b++)
            g_string_append(bar, u ? "\u2588" : "#");
        if (u)
            g_string_append(bar, parts[eighths % 8]);
        glong blen = g_utf8_strlen(bar->str, -1);
        fprintf(out, "  %2u %s%*s %6" G_GINT64_FORMAT, k + 1, bar->str, (int)(width - blen), "", reached[k]);
        if (lost && lost[k] > 0)
            fprintf(out, "  -%" G_GINT64_FORMAT, lost[k]);
        if (notes && k < n_notes && notes[k] > 0)
            fprintf(out, "  %" G_GINT64_FORMAT " note%s", notes[k], notes[k] == 1 ? "" : "s");
        fputc('\n', out);
        g_string_free(bar, TRUE);
    }
}

static void funnel_text(FILE *out, const struct ctl_record *r, void *arg)
{
    const gboolean *utf8 = arg;
    gint64 total = ctl_get_int(r, "enrolled");
    fprintf(out,
            "%s (%s): %" G_GINT64_FORMAT " enrolled\n  %" G_GINT64_FORMAT " active, %" G_GINT64_FORMAT
            " paused, %" G_GINT64_FORMAT " completed, %" G_GINT64_FORMAT " unsubscribed, %" G_GINT64_FORMAT
            " bounced, %" G_GINT64_FORMAT " pending\n  lesson: reached by, then left the course after it\n",
            ctl_get_text(r, "title"), ctl_get_text(r, "course"), total, ctl_get_int(r, "active"),
            ctl_get_int(r, "paused"), ctl_get_int(r, "completed"), ctl_get_int(r, "unsubscribed"),
            ctl_get_int(r, "bounced"), ctl_get_int(r, "pending"));
    guint n = 0;
    const gint64 *reached = ctl_get_ints(r, "reached", &n);
    guint nl = 0, n_notes = 0;
    const gint64 *lost = ctl_get_ints(r, "lost", &nl);
    const gint64 *notes = ctl_get_ints(r, "notes_per_lesson", &n_notes);
    funnel_bars(out, reached, nl == n ? lost : NULL, n, total, *utf8, notes, n_notes);
}

struct ctl_view view_funnel(const gboolean *utf8)
{
    struct ctl_view v = { .text = funnel_text, .arg = (void *)utf8 };
    return v;
}
