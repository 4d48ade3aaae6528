/* manage.c - owns the subscriber's own page, base_url/m/TOKEN (the link in
 * the footer of every lesson and system mail): what it shows (each course,
 * its progress, the next lesson in the person's zone) and what its forms
 * may do. GET shows and never changes anything (link scanners fetch every
 * link of a mail). Every POST checks the token again and a csrf field
 * derived from it (a form another site built cannot carry it), then does
 * one thing through the same functions the mail commands use, with "page"
 * as the audit trail's via: pause, resume, leave, the zone, the person's
 * own time of day, and the right of access (a mail to their stored
 * address with a JSON file of everything we hold about them, queued in
 * the outbox like every system mail). Every value a visitor sends is checked against
 * what we offered (a course they are in, a zone we listed, 1, 2 or 4
 * weeks) and never shown back: the pages say only what we hold. No HTTP
 * here: daemon/http.c routes and sends what this returns. */
#include <string.h>
#include "manage.h"
#include "calendar.h"
#include "enroll.h"
#include "error.h"
#include "json.h"
#include "lifecycle.h"
#include "log.h"
#include "notify.h"
#include "optin.h"
#include "pace.h"
#include "schedule.h"
#include "subscriber.h"
#include "token.h"

/* The csrf field's "course": a token for this string and the page's token
 * as "address" can only be made with the key. */
#define CSRF_SCOPE "manage-form"

void manage_reply_clear(struct manage_reply *r)
{
    g_free(r->title);
    g_free(r->html);
    r->title = r->html = NULL;
}

static void reply(struct manage_reply *out, unsigned status, const char *title, char *html)
{
    out->status = status;
    out->title = g_strdup(title);
    out->html = html;
}

/* The enrollment the token names, or NULL with *out filled (400, 404 or
 * 503), as the other link pages answer. */
static struct enrollment_row *token_row(struct app *app, const char *token, gint64 now,
                                        struct manage_reply *out)
{
    enum token_purpose purpose;
    if (!token_peek(token, &purpose, NULL, NULL) || purpose != TOKEN_MANAGE) {
        reply(out, 400, "This link is not valid",
              g_strdup("<p>The link is incomplete or damaged. Please copy it from the mail again.</p>\n"));
        return NULL;
    }
    GError *err = NULL;
    struct enrollment_row *e = optin_token_enrollment(app, token, TOKEN_MANAGE, now, &err);
    if (e)
        return e;
    if (err && err->code == CD_ERR_BUSY)
        reply(out, 503, "Please try again",
              g_strdup("<p>We are busy for a moment. Please try again in a minute.</p>\n"));
    else
        reply(out, 404, "This link is not valid",
              g_strdup("<p>We do not know this link. Nothing was changed.</p>\n"));
    g_clear_error(&err);
    return NULL;
}

static const char button_style[] =
    "font-size:16px;padding:8px 16px;margin:4px 6px 4px 0;border-radius:6px;border:1px solid #8a3f20;"
    "background:#fff;color:#8a3f20;cursor:pointer;";

/* The opening of a form that posts action to self, with the csrf field. */
static void form_open(GString *h, const char *self, const char *csrf, const char *action, const char *course)
{
    char *s = g_markup_printf_escaped(
        "<form method=\"post\" action=\"%s\" style=\"display:inline\">\n"
        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n"
        "<input type=\"hidden\" name=\"action\" value=\"%s\">\n",
        self, csrf, action);
    g_string_append(h, s);
    g_free(s);
    if (course) {
        s = g_markup_printf_escaped("<input type=\"hidden\" name=\"course\" value=\"%s\">\n", course);
        g_string_append(h, s);
        g_free(s);
    }
}

static void button(GString *h, const char *name, const char *value, const char *label)
{
    char *s = name ? g_markup_printf_escaped(
                         "<button type=\"submit\" name=\"%s\" value=\"%s\" style=\"%s\">%s</button>\n", name,
                         value, button_style, label)
                   : g_markup_printf_escaped("<button type=\"submit\" style=\"%s\">%s</button>\n",
                                             button_style, label);
    g_string_append(h, s);
    g_free(s);
}

/* One sentence on where enrollment e stands. g_free(). */
static char *state_sentence(const struct enrollment_row *e, const char *zone)
{
    switch (e->state) {
    case ENR_PENDING: return g_strdup("Waiting for you to confirm the subscription.");
    case ENR_PAUSED:
        if (e->paused_until > 0) {
            char *until = pace_format_local(e->paused_until, zone);
            char *s = g_strdup_printf("Paused until %s.", until);
            g_free(until);
            return s;
        }
        return g_strdup("Paused until you resume it.");
    case ENR_COMPLETED: return g_strdup("Completed.");
    case ENR_STOPPED: return g_strdup("You have left this course.");
    case ENR_ACTIVE:
    default: return g_strdup("Running.");
    }
}

/* The part of the page for one course. */
static void course_part(struct app *app, GString *h, const struct enrollment_row *e, const char *self,
                        const char *csrf)
{
    const struct course *c = course_find(app->courses, e->course);
    const char *zone = c ? schedule_zone(c, e->tz) : (e->tz && *e->tz ? e->tz : "UTC");
    char *state = state_sentence(e, zone);
    char *next = NULL;
    if (c && (e->state == ENR_ACTIVE || e->state == ENR_PAUSED)) {
        GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
        GArray *lessons = g_array_new(FALSE, FALSE, sizeof(int));
        GError *err = NULL;
        if (calendar_upcoming(app, e, c, slots, lessons, &err) && slots->len)
            next = pace_format_local(g_array_index(slots, gint64, 0), zone);
        g_clear_error(&err);
        g_array_free(slots, TRUE);
        g_array_free(lessons, TRUE);
    }
    char *s = g_markup_printf_escaped(
        "<section class=\"course\" data-course=\"%s\" style=\"border-top:1px solid #e4ded4;padding-top:12px;"
        "margin-top:16px;\">\n<h2 style=\"font-size:20px;margin:0 0 6px;\">%s</h2>\n"
        "<p style=\"margin:0 0 4px;\" class=\"state\">%s</p>\n"
        "<p style=\"margin:0 0 4px;\" class=\"progress\">You have received %d of %d steps.</p>\n",
        e->course, c ? c->title : e->course, state, e->lessons_sent, c ? c->n_lessons : e->lessons_sent);
    g_string_append(h, s);
    g_free(s);
    if (next) {
        s = g_markup_printf_escaped(
            "<p style=\"margin:0 0 8px;\" class=\"next\">Next step: <strong>%s</strong></p>\n", next);
        g_string_append(h, s);
        g_free(s);
    }
    if (c && (e->state == ENR_ACTIVE || e->state == ENR_PAUSED)) {
        form_open(h, self, csrf, "pause", e->course);
        g_string_append(h, "<p style=\"margin:8px 0 0;\">Take a break:</p>\n");
        button(h, "weeks", "1", "Pause 1 week");
        button(h, "weeks", "2", "Pause 2 weeks");
        button(h, "weeks", "4", "Pause 4 weeks");
        g_string_append(h, "</form>\n");
    }
    if (c && e->state == ENR_PAUSED) {
        form_open(h, self, csrf, "resume", e->course);
        button(h, NULL, NULL, "Resume now");
        g_string_append(h, "</form>\n");
    }
    if (e->state != ENR_STOPPED) {
        form_open(h, self, csrf, "leave", e->course);
        button(h, NULL, NULL, "Leave this course");
        g_string_append(h, "</form>\n");
    }
    g_string_append(h, "</section>\n");
    g_free(next);
    g_free(state);
}

/* An instant as the JSON of coursectl writes it (ISO 8601 UTC; null for
 * none). */
static void jw_instant(struct json_writer *w, gint64 t)
{
    if (t <= 0) {
        jw_null(w);
        return;
    }
    GDateTime *d = g_date_time_new_from_unix_utc(t);
    char *s = g_date_time_format(d, "%Y-%m-%dT%H:%M:%SZ");
    jw_string(w, s);
    g_free(s);
    g_date_time_unref(d);
}

/* Everything coursed holds about subscriber s, as one JSON object (the
 * right of access): the subscriber, each enrollment, every delivery and
 * the audit trail. NULL with err. g_free(). */
static char *export_json(struct app *app, const struct sub_row *s, GError **err)
{
    GPtrArray *es = store_enrollments_of(app->st, s->id, err);
    GPtrArray *ds = es ? store_deliveries_of(app->st, s->id, err) : NULL;
    GPtrArray *evs = ds ? store_events(app->st, s->id, 100000, err) : NULL;
    char *t = evs ? store_lesson_time(app->st, 0, s->id, err) : NULL;
    char *out = NULL;
    if (evs && !(err && *err)) {
        GString *g = g_string_new(NULL);
        struct json_writer *w = jw_new(g, 0);
        jw_object(w);
        jw_key(w, "email");
        jw_string(w, s->email);
        jw_key(w, "name");
        jw_string(w, s->name ? s->name : "");
        jw_key(w, "tz");
        s->tz ? jw_string(w, s->tz) : jw_null(w);
        jw_key(w, "lesson_time");
        t ? jw_string(w, t) : jw_null(w);
        jw_key(w, "status");
        jw_string(w, state_name(ENT_SUB, s->status));
        jw_key(w, "created_at");
        jw_instant(w, s->created_at);
        jw_key(w, "enrollments");
        jw_array(w);
        for (guint i = 0; i < es->len; i++) {
            const struct enrollment_row *e = es->pdata[i];
            jw_object(w);
            jw_key(w, "course");
            jw_string(w, e->course);
            jw_key(w, "state");
            jw_string(w, state_name(ENT_ENR, e->state));
            jw_key(w, "reason");
            jw_string(w, state_reason_name(e->reason));
            jw_key(w, "next_lesson");
            jw_int(w, e->next_lesson);
            jw_key(w, "lessons_sent");
            jw_int(w, e->lessons_sent);
            jw_key(w, "next_send_at");
            jw_instant(w, e->next_send_at);
            jw_key(w, "paused_until");
            jw_instant(w, e->paused_until);
            jw_key(w, "created_at");
            jw_instant(w, e->created_at);
            jw_object_end(w);
        }
        jw_array_end(w);
        jw_key(w, "deliveries");
        jw_array(w);
        for (guint i = 0; i < ds->len; i++) {
            const struct delivery_row *d = ds->pdata[i];
            jw_object(w);
            jw_key(w, "course");
            jw_string(w, d->course);
            jw_key(w, "lesson");
            jw_int(w, d->lesson);
            jw_key(w, "state");
            jw_string(w, state_name(ENT_DLV, d->state));
            jw_key(w, "attempts");
            jw_int(w, d->attempts);
            jw_key(w, "slot_at");
            jw_instant(w, d->slot_at);
            jw_key(w, "sent_at");
            jw_instant(w, d->sent_at);
            jw_key(w, "last_code");
            jw_int(w, d->last_code);
            jw_object_end(w);
        }
        jw_array_end(w);
        jw_key(w, "events");
        jw_array(w);
        for (guint i = 0; i < evs->len; i++) {
            const struct event_row *ev = evs->pdata[i];
            jw_object(w);
            jw_key(w, "at");
            jw_instant(w, ev->at);
            jw_key(w, "event");
            jw_string(w, ev->kind);
            jw_key(w, "via");
            jw_string(w, ev->via);
            jw_key(w, "detail");
            jw_string(w, ev->detail ? ev->detail : "");
            jw_object_end(w);
        }
        jw_array_end(w);
        jw_object_end(w);
        jw_end(w);
        out = g_string_free(g, FALSE);
    }
    g_free(t);
    if (evs)
        g_ptr_array_unref(evs);
    if (ds)
        g_ptr_array_unref(ds);
    if (es)
        g_ptr_array_unref(es);
    return out;
}

/* Queues the export mail to the subscriber's stored address only, with
 * the JSON attached, through the outbox (in one transaction with its
 * audit event; an automatic reply, so the per-address cap applies).
 * Returns FALSE with err; *limited when the cap held it back. */
static gboolean export_queue(struct app *app, const struct enrollment_row *e, gint64 now, gboolean *limited,
                             GError **err)
{
    struct sub_row *s = subscriber_get(app, e->email, err);
    if (!s)
        return FALSE;
    const struct course *c = course_find(app->courses, e->course);
    gboolean ok = store_begin(app->st, err);
    char *json = ok ? export_json(app, s, err) : NULL;
    if (ok && json) {
        struct compose_system_opts opts = { .json = json, .json_name = "coursed-data.json" };
        struct compose_to to = { s->email, s->name, s->tz, e->id };
        ok = notify_queue(app, "export", c, &to, s->id, &opts, TRUE, limited, now, err) &&
             (*limited || store_event(app->st, now, s->id, 0, "exported", "page", "", err)) &&
             store_commit(app->st, err);
    } else {
        ok = FALSE;
    }
    if (!ok)
        store_rollback(app->st);
    g_free(json);
    store_sub_free(s);
    return ok;
}

/* The zone form: a <select> of every zone, the person's own selected (the
 * script puts the browser's guess first). */
static void zone_part(GString *h, const char *tz, const char *self, const char *csrf)
{
    g_string_append(h,
                    "<section style=\"border-top:1px solid #e4ded4;padding-top:12px;margin-top:16px;\">\n"
                    "<h2 style=\"font-size:20px;margin:0 0 6px;\">Your time zone</h2>\n");
    form_open(h, self, csrf, "tz", NULL);
    g_string_append(
        h,
        "<label for=\"tz\">Lessons and dates follow this zone:</label><br>\n"
        "<select id=\"tz\" name=\"tz\" style=\"font-size:16px;margin:6px 6px 6px 0;max-width:100%;\">\n");
    char *s = g_markup_printf_escaped("<option value=\"\"%s>The course's own zone</option>\n",
                                      tz && *tz ? "" : " selected");
    g_string_append(h, s);
    g_free(s);
    GPtrArray *zones = pace_zone_names();
    for (guint i = 0; i < zones->len; i++) {
        const char *z = zones->pdata[i];
        s = g_markup_printf_escaped("<option value=\"%s\"%s>%s</option>\n", z,
                                    tz && strcmp(tz, z) == 0 ? " selected" : "", z);
        g_string_append(h, s);
        g_free(s);
    }
    g_ptr_array_unref(zones);
    g_string_append(h, "</select>\n");
    button(h, NULL, NULL, "Save zone");
    g_string_append(h, "</form>\n</section>\n");
}

/* The time-of-day form: the subscriber's own time (an <input type=time>,
 * which a browser without it shows as text: HH:MM is what we read), or
 * the course's. */
static void time_part(struct app *app, GString *h, const struct enrollment_row *e, const char *self,
                      const char *csrf)
{
    char *t = store_lesson_time(app->st, 0, e->subscriber_id, NULL);
    g_string_append(h,
                    "<section style=\"border-top:1px solid #e4ded4;padding-top:12px;margin-top:16px;\">\n"
                    "<h2 style=\"font-size:20px;margin:0 0 6px;\">Your time of day</h2>\n");
    char *s = t ? g_markup_printf_escaped("<p id=\"time-now\">Lessons come at %s in your time zone.</p>\n", t)
                : g_strdup("<p id=\"time-now\">Lessons come at the course's time of day.</p>\n");
    g_string_append(h, s);
    g_free(s);
    form_open(h, self, csrf, "time", NULL);
    s = g_markup_printf_escaped(
        "<label for=\"time\">Your own time (HH:MM):</label>\n"
        "<input id=\"time\" name=\"time\" type=\"time\" required value=\"%s\" "
        "style=\"font-size:16px;margin:6px 6px 6px 0;\">\n",
        t ? t : "");
    g_string_append(h, s);
    g_free(s);
    button(h, NULL, NULL, "Save time");
    g_string_append(h, "</form>\n");
    if (t) {
        form_open(h, self, csrf, "time_reset", NULL);
        button(h, NULL, NULL, "Use the course's time");
        g_string_append(h, "</form>\n");
    }
    g_string_append(h, "</section>\n");
    g_free(t);
}

/* The whole page for the subscriber of enrollment e, with notice (ours,
 * never a visitor's text) above it when not NULL. */
static void page(struct app *app, const struct enrollment_row *e, const char *token, const char *self,
                 const char *notice, gint64 now, struct manage_reply *out)
{
    (void)now;
    GError *err = NULL;
    GPtrArray *es = store_enrollments_of(app->st, e->subscriber_id, &err);
    if (!es) {
        gboolean busy = err && err->code == CD_ERR_BUSY;
        g_clear_error(&err);
        reply(out, busy ? 503 : 500, "Please try again",
              g_strdup("<p>We could not read your courses just now. Please try again in a minute.</p>\n"));
        return;
    }
    char *csrf = token_make(app->key, TOKEN_MANAGE, e->id, token, CSRF_SCOPE, 0);
    GString *h = g_string_new(NULL);
    if (notice) {
        char *s = g_markup_printf_escaped(
            "<p role=\"status\" id=\"notice\" style=\"background:#eef6ee;border:1px solid #9c9;padding:8px "
            "12px;"
            "border-radius:6px;\">%s</p>\n",
            notice);
        g_string_append(h, s);
        g_free(s);
    }
    char *s = g_markup_printf_escaped("<p>For <strong>%s</strong>.</p>\n", e->email);
    g_string_append(h, s);
    g_free(s);
    gboolean running = FALSE;
    for (guint i = 0; i < es->len; i++) {
        const struct enrollment_row *x = es->pdata[i];
        course_part(app, h, x, self, csrf);
        running = running || x->state != ENR_STOPPED;
    }
    zone_part(h, e->tz, self, csrf);
    time_part(app, h, e, self, csrf);
    g_string_append(
        h,
        "<section style=\"border-top:1px solid #e4ded4;padding-top:12px;margin-top:16px;\">\n"
        "<h2 style=\"font-size:20px;margin:0 0 6px;\">Your data</h2>\n"
        "<p>We can mail you everything we hold about you, as a file, to this address only.</p>\n");
    form_open(h, self, csrf, "export", NULL);
    button(h, NULL, NULL, "Mail me my data");
    g_string_append(h, "</form>\n</section>\n");
    if (running) {
        g_string_append(h,
                        "<section style=\"border-top:1px solid #e4ded4;padding-top:12px;margin-top:16px;\">\n"
                        "<h2 style=\"font-size:20px;margin:0 0 6px;\">Leave everything</h2>\n");
        form_open(h, self, csrf, "leave_all", NULL);
        button(h, NULL, NULL, "Leave every course");
        g_string_append(h, "</form>\n</section>\n");
    }
    g_string_append(h, "<script src=\"/m.js\"></script>\n");
    reply(out, 200, "Your courses", g_string_free(h, FALSE));
    g_free(csrf);
    g_ptr_array_unref(es);
}

void manage_get(struct app *app, const char *token, const char *self, gint64 now, struct manage_reply *out)
{
    struct enrollment_row *e = token_row(app, token, now, out);
    if (!e)
        return;
    page(app, e, token, self, NULL, now, out);
    store_enrollment_free(e);
}

/* The subscriber's enrollment in course (a slug from the form, checked
 * against theirs), or 0. */
static gint64 own_enrollment(struct app *app, const struct enrollment_row *e, const char *course)
{
    if (!course)
        return 0;
    GError *err = NULL;
    GPtrArray *es = store_enrollments_of(app->st, e->subscriber_id, &err);
    g_clear_error(&err);
    gint64 id = 0;
    for (guint i = 0; es && i < es->len; i++) {
        const struct enrollment_row *x = es->pdata[i];
        if (strcmp(x->course, course) == 0)
            id = x->id;
    }
    if (es)
        g_ptr_array_unref(es);
    return id;
}

/* A zone we listed ("" is the course's own), or NULL. */
static const char *known_zone(const char *tz)
{
    if (!tz)
        return NULL;
    if (!*tz)
        return "";
    return pace_tz_valid(tz) ? tz : NULL;
}

/* Does the one action; returns the notice (g_free) or NULL with *bad set
 * for a request we do not understand, or with err. */
static char *act(struct app *app, const struct enrollment_row *e, GHashTable *form, gint64 now, gboolean *bad,
                 GError **err)
{
    const char *action = g_hash_table_lookup(form, "action");
    const char *course = g_hash_table_lookup(form, "course");
    *bad = FALSE;
    if (!action) {
        *bad = TRUE;
        return NULL;
    }
    gint64 enr = own_enrollment(app, e, course);
    if (strcmp(action, "pause") == 0 && enr) {
        const char *w = g_hash_table_lookup(form, "weeks");
        int weeks = !w ? 0 : !strcmp(w, "1") ? 1 : !strcmp(w, "2") ? 2 : !strcmp(w, "4") ? 4 : 0;
        if (!weeks) {
            *bad = TRUE;
            return NULL;
        }
        if (enroll_pause(app, e->email, course, now + (gint64)weeks * 7 * 86400, "page", now, err) < 0)
            return NULL;
        return g_strdup_printf("Paused for %d week%s.", weeks, weeks == 1 ? "" : "s");
    }
    if (strcmp(action, "resume") == 0 && enr) {
        int n = enroll_resume(app, e->email, course, "page", now, err);
        if (n < 0)
            return NULL;
        return g_strdup(n ? "Resumed: the next step goes at the next slot." : "This course was not paused.");
    }
    if (strcmp(action, "leave") == 0 && enr) {
        if (!optin_leave(app, enr, "page", now, err))
            return NULL;
        return g_strdup("You have left the course. Nothing more of it will be sent.");
    }
    if (strcmp(action, "tz") == 0) {
        const char *tz = known_zone(g_hash_table_lookup(form, "tz"));
        if (!tz) {
            *bad = TRUE;
            return NULL;
        }
        if (!subscriber_set(app, e->email, NULL, *tz ? tz : NULL, TRUE, "page", now, err))
            return NULL;
        return g_strdup("Your time zone is saved. The next steps follow it.");
    }
    if (strcmp(action, "time") == 0 || strcmp(action, "time_reset") == 0) {
        const char *t = strcmp(action, "time") == 0 ? g_hash_table_lookup(form, "time") : NULL;
        int hh, mm;
        /* browsers send HH:MM (HH:MM:SS only with a step, which we do not set) */
        if (strcmp(action, "time") == 0 && (!t || !pace_parse_time(t, &hh, &mm))) {
            *bad = TRUE;
            return NULL;
        }
        if (!subscriber_set_time(app, e->email, t, "page", now, err))
            return NULL;
        return g_strdup(t ? "Your time of day is saved. The next steps come at it."
                          : "Lessons come at the course's time of day again.");
    }
    if (strcmp(action, "export") == 0) {
        gboolean limited = FALSE;
        if (!export_queue(app, e, now, &limited, err))
            return NULL;
        return g_strdup(limited ? "We have sent you many mails today; please ask again tomorrow."
                                : "We are sending everything we hold about you to your address.");
    }
    if (strcmp(action, "leave_all") == 0) {
        struct sub_row *s = subscriber_get(app, e->email, err);
        int n = s ? life_leave_all(app, s, "page", now, err) : -1;
        store_sub_free(s);
        if (n < 0)
            return NULL;
        return g_strdup("You have left every course. Nothing more will be sent to this address.");
    }
    *bad = TRUE;
    return NULL;
}

void manage_post(struct app *app, const char *token, const char *self, GHashTable *form, gint64 now,
                 struct manage_reply *out)
{
    struct enrollment_row *e = token_row(app, token, now, out);
    if (!e)
        return;
    const char *csrf = g_hash_table_lookup(form, "csrf");
    GError *err = NULL;
    if (!csrf || !token_verify(app->key, csrf, TOKEN_MANAGE, token, CSRF_SCOPE, now, &err)) {
        g_clear_error(&err);
        reply(out, 400, "Not understood",
              g_strdup("<p>This form is not one of ours. Nothing was changed. Please open the link in "
                       "your mail again.</p>\n"));
        store_enrollment_free(e);
        return;
    }
    gboolean bad = FALSE;
    char *notice = act(app, e, form, now, &bad, &err);
    if (bad) {
        reply(out, 400, "Not understood",
              g_strdup("<p>We did not understand that. Nothing was changed.</p>\n"));
    } else if (!notice) {
        gboolean busy = err && err->code == CD_ERR_BUSY;
        log_warn("manage page of enrollment %" G_GINT64_FORMAT ": %s", e->id, err ? err->message : "?");
        g_clear_error(&err);
        reply(out, busy ? 503 : 409, "Not changed",
              g_strdup("<p>We could not do that just now. Nothing was changed. Please try again.</p>\n"));
    } else {
        /* The page as it is now: the token's row is read again. */
        struct enrollment_row *now_e = store_enrollment_get(app->st, e->id, NULL);
        page(app, now_e ? now_e : e, token, self, notice, now, out);
        store_enrollment_free(now_e);
    }
    g_free(notice);
    store_enrollment_free(e);
}

const char *manage_script(void)
{
    /* The browser's zone first in the list (and chosen when the person has
     * none yet); a page without scripts keeps the plain list. */
    return "(function () {\n"
           "  var z; try { z = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }\n"
           "  var s = document.getElementById('tz'); if (!s || !z) return;\n"
           "  for (var i = 0; i < s.options.length; i++) {\n"
           "    var o = s.options[i];\n"
           "    if (o.value === z) {\n"
           "      var keep = s.selectedIndex > 0 ? s.options[s.selectedIndex] : null;\n"
           "      s.insertBefore(o, s.options[0]);\n"
           "      o.textContent = z + ' (this device)';\n"
           "      if (keep) keep.selected = true; else o.selected = true;\n"
           "      return;\n"
           "    }\n"
           "  }\n"
           "})();\n";
}
