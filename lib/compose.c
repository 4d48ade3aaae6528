/* compose.c - owns turning (course, lesson or system mail, subscriber) into
 * the values the templates see and the headers the message carries:
 * From, To, Subject, Date, Message-ID, List-Id (RFC 2919), List-Unsubscribe
 * with an https URL and a mailto, each carrying an HMAC token, and
 * List-Unsubscribe-Post (RFC 8058). It knows no SQL and no MIME: render.c
 * fills templates, message.c writes RFC 5322. */
#include <string.h>
#include "compose.h"
#include "schedule.h"
#include "snapshot.h"
#include "error.h"
#include "log.h"
#include "message.h"
#include "pace.h"
#include "render.h"
#include "store.h"
#include "token.h"

char *compose_message_id(const struct config *cfg, const char *course, gint64 enrollment_id, int n)
{
    return g_strdup_printf("lesson-%d.e%" G_GINT64_FORMAT ".%s@%s", n, enrollment_id, course, cfg->domain);
}

char *compose_lesson_id(const struct config *cfg, const struct course *c, gint64 enrollment_id, int round,
                        int n)
{
    /* The lesson's identity, not its position: an edit that moves it
     * keeps its Message-ID and its calendar UID (docs/course-edits.md).
     * A restart begins a new round, whose copies are new messages. */
    const struct lesson *l = course_lesson(c, n);
    if (!l)
        return compose_message_id(cfg, c->slug, enrollment_id, n);
    if (round > 0)
        return g_strdup_printf("%s.e%" G_GINT64_FORMAT "r%d.%s@%s", l->slug, enrollment_id, round, c->slug,
                               cfg->domain);
    return g_strdup_printf("%s.e%" G_GINT64_FORMAT ".%s@%s", l->slug, enrollment_id, c->slug, cfg->domain);
}

const char *compose_auto_submitted(const char *which)
{
    /* RFC 3834: auto-replied is a mail sent in answer to a message (the
     * confirmation of a subscribe, the answer to help, status, pause, a
     * goodbye after unsubscribe, an error); the welcome that starts a
     * course and the complete mail that ends it are the course's own mails,
     * like its lessons, sent whether or not anyone wrote: auto-generated. */
    return !strcmp(which, "welcome") || !strcmp(which, "complete") ? "auto-generated" : "auto-replied";
}

char *compose_env_from(const struct config *cfg)
{
    return g_strdup_printf("bounces@%s", cfg->domain);
}

char *compose_verp(const struct app *app, const struct delivery_row *d)
{
    if (!app->key)
        return compose_env_from(app->cfg);
    char *tok = token_make(app->key, TOKEN_BOUNCE, d->id, d->email, d->course, 0);
    char *addr = g_strdup_printf("bounces+%s@%s", tok, app->cfg->domain);
    g_free(tok);
    return addr;
}

char *compose_command_address(const struct config *cfg, const struct course *c)
{
    return g_strdup_printf("%s@%s", c ? c->slug : "courses", cfg->domain);
}

/* The unsubscribe URL and mailto for an enrollment; token never expires. */
static gboolean unsubscribe_links(const struct app *app, const struct course *c, const struct compose_to *to,
                                  char **url, char **mailto, GError **err)
{
    if (!to->preview && !app->key) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no secret key at %s: run 'coursectl init'",
                    app->cfg->secret_key);
        return FALSE;
    }
    char *tok = to->preview
                    ? g_strdup(COMPOSE_PREVIEW_TOKEN)
                    : token_make(app->key, TOKEN_UNSUBSCRIBE, to->enrollment_id, to->email, c->slug, 0);
    *url = g_strdup_printf("%s/u/%s", app->cfg->base_url, tok);
    *mailto = g_strdup_printf("%s+unsubscribe-%s@%s", c->slug, tok, app->cfg->domain);
    g_free(tok);
    return TRUE;
}

struct lesson_vars {
    char *step, *steps, *next, *unsub_url, *unsub_mailto, *command;
};

static void lesson_vars_clear(struct lesson_vars *v)
{
    g_free(v->step);
    g_free(v->steps);
    g_free(v->next);
    g_free(v->unsub_url);
    g_free(v->unsub_mailto);
    g_free(v->command);
}

/* The two bodies of lesson n for `to`; *unsub_url and *unsub_mailto (may
 * be NULL) get the unsubscribe links the bodies carry, for the headers. */
static gboolean lesson_parts(const struct app *app, const struct course *c, int n,
                             const struct compose_to *to, gint64 next_at, char **text, char **html,
                             char **unsub_url, char **unsub_mailto, GError **err)
{
    *text = *html = NULL;
    const struct lesson *l = course_lesson(c, n);
    if (!l) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' has no lesson %d", c->slug, n);
        return FALSE;
    }
    struct lesson_vars v = { 0 };
    if (!unsubscribe_links(app, c, to, &v.unsub_url, &v.unsub_mailto, err))
        return FALSE;
    v.step = g_strdup_printf("%d", n);
    v.steps = g_strdup_printf("%d", c->n_lessons);
    v.next = next_at > 0 ? pace_format_local(next_at, to->tz ? to->tz : c->tz)
                         : g_strdup("none: this is the last step");
    v.command = compose_command_address(app->cfg, c);
    char *lesson_html = l->html ? g_strdup(l->html) : render_markdown(l->body);
    struct render_var vars[] = {
        { "name", to->name && *to->name ? to->name : "there", FALSE },
        { "email", to->email, FALSE },
        { "course_title", c->title, FALSE },
        { "course_slug", c->slug, FALSE },
        { "step", v.step, FALSE },
        { "steps", v.steps, FALSE },
        { "subject", l->subject, FALSE },
        { "lesson", l->body, FALSE },
        { "next_date", v.next, FALSE },
        { "unsubscribe_url", v.unsub_url, FALSE },
        { "command_address", v.command, FALSE },
        { "source", c->source, FALSE },
    };
    const struct render_set *tpl = app_templates(app, c); /* the course's own, or the shared ones */
    *text = render_apply(tpl, "lesson.txt", vars, G_N_ELEMENTS(vars), err);
    if (*text) {
        vars[7].value = lesson_html; /* "lesson": cmark's HTML, inserted as is */
        vars[7].raw = TRUE;
        *html = render_apply(tpl, "lesson.html", vars, G_N_ELEMENTS(vars), err);
    }
    g_free(lesson_html);
    if (*html && unsub_url) {
        *unsub_url = v.unsub_url;
        *unsub_mailto = v.unsub_mailto;
        v.unsub_url = v.unsub_mailto = NULL;
    }
    lesson_vars_clear(&v);
    if (!*html) {
        g_free(*text);
        *text = NULL;
        return FALSE;
    }
    return TRUE;
}

gboolean compose_lesson_parts(const struct app *app, const struct course *c, int n,
                              const struct compose_to *to, gint64 next_at, char **text, char **html,
                              GError **err)
{
    return lesson_parts(app, c, n, to, next_at, text, html, NULL, NULL, err);
}

struct compose_cache {
    GMutex lock;
    GHashTable *protos; /* const struct lesson * -> struct message_proto * or NULL */
};

struct compose_cache *compose_cache_new(void)
{
    struct compose_cache *cc = g_new0(struct compose_cache, 1);
    g_mutex_init(&cc->lock);
    cc->protos = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                       (GDestroyNotify)message_proto_free);
    return cc;
}

/* The skeleton cache of app's snapshot, made on first use (NULL for a
 * view without a snapshot). */
static struct compose_cache *cache_of(const struct app *app)
{
    struct snapshot *snap = app->snap;
    if (!snap)
        return NULL;
    g_mutex_lock(&snap->cache_lock);
    if (!snap->cache) {
        snap->cache = compose_cache_new();
        snap->cache_free = (GDestroyNotify)compose_cache_free;
    }
    struct compose_cache *cc = snap->cache;
    g_mutex_unlock(&snap->cache_lock);
    return cc;
}

void compose_cache_free(struct compose_cache *cc)
{
    if (!cc)
        return;
    g_hash_table_destroy(cc->protos);
    g_mutex_clear(&cc->lock);
    g_free(cc);
}

/* The skeleton of lesson l, made from this first message on first use;
 * NULL (every message then built whole) if there is no cache or GMime's
 * output could not be used as a skeleton. */
static const struct message_proto *lesson_proto(const struct app *app, const struct lesson *l,
                                                const struct message_spec *shape)
{
    struct compose_cache *cc = cache_of(app);
    if (!cc)
        return NULL;
    g_mutex_lock(&cc->lock);
    gpointer p = NULL;
    if (!g_hash_table_lookup_extended(cc->protos, l, NULL, &p)) {
        GError *e = NULL;
        p = message_proto_new(shape, &e);
        if (!p) {
            log_warn("lesson '%s': no skeleton, each copy is built whole: %s", l->subject, e->message);
            g_error_free(e);
        }
        g_hash_table_insert(cc->protos, (gpointer)l, p);
    }
    g_mutex_unlock(&cc->lock);
    return p;
}

char *compose_lesson(const struct app *app, const struct course *c, int n, const struct compose_to *to,
                     gint64 date, gint64 next_at, const char *calendar, gsize *len, GError **err)
{
    char *text = NULL, *html = NULL, *url = NULL, *mailto = NULL;
    if (!lesson_parts(app, c, n, to, next_at, &text, &html, &url, &mailto, err))
        return NULL;
    const struct lesson *l = course_lesson(c, n);
    char *unsub = g_strdup_printf("<%s>, <mailto:%s?subject=unsubscribe>", url, mailto);
    char *msgid = to->message_id ? g_strdup(to->message_id)
                                 : compose_lesson_id(app->cfg, c, to->enrollment_id, 0, n);
    char *list_id = g_strdup_printf("%s <%s.%s>", c->title, c->slug, app->cfg->domain);
    char *tag = g_strdup_printf("%s %d/%d", c->slug, n, c->n_lessons);
    char *subject = g_strconcat(to->subject_prefix ? to->subject_prefix : "", l->subject, NULL);
    struct message_spec m = {
        .from_name = c->sender_name,
        .from_addr = c->sender,
        .to_name = to->name,
        .to_addr = to->email,
        .subject = subject,
        .message_id = msgid,
        .date = date,
        .list_id = list_id,
        .list_unsubscribe = unsub,
        .lesson_tag = tag,
        .auto_submitted = "auto-generated",
        .text = text,
        .html = html,
        .calendar = calendar,
    };
    char *out = message_proto_build(lesson_proto(app, l, &m), &m, len, err);
    g_free(subject);
    g_free(tag);
    g_free(list_id);
    g_free(msgid);
    g_free(unsub);
    g_free(url);
    g_free(mailto);
    g_free(text);
    g_free(html);
    return out;
}

/* The welcome's one sentence on the zone its dates are in (zone): the
 * subscriber's own, one guessed from their mail, or the course's while
 * theirs is not known. g_free(). */
static char *zone_sentence(const char *zone, gboolean known, gboolean guessed)
{
    const char *fix = "reply with \"tz\" and your zone, for example \"tz Europe/Berlin\".";
    if (known && guessed)
        return g_strdup_printf(
            "We guessed your time zone (%s) from your mail, and all times are in it. If it is "
            "wrong, %s",
            zone, fix);
    if (known)
        return g_strdup_printf("All times are in your time zone, %s. If that is not right, %s", zone, fix);
    return g_strdup_printf(
        "We do not know your time zone yet, so all times are in the course's, %s. To have them in yours, %s",
        zone, fix);
}

/* The former zone_hint placeholder (templates that still have the zone
 * line and {{zone_hint}} below it): said only when the zone is not the
 * person's own. g_free(). */
static char *zone_hint(const char *zone, gboolean known, gboolean guessed)
{
    if (known && guessed)
        return g_strdup_printf(
            "We guessed your time zone (%s) from your mail. If it is wrong, reply with \"tz\" and your zone, "
            "for example \"tz Europe/Berlin\".",
            zone);
    if (!known)
        return g_strdup_printf(
            "We do not know your time zone yet, so the times follow the course's zone, %s.", zone);
    return g_strdup("");
}

/* How the person came in, as the welcome says it. */
static const char *joined_sentence(enum compose_joined how)
{
    switch (how) {
    case COMPOSE_JOINED_OPERATOR:
        return "You have been added to this course by its organiser. If you did not expect this, reply with "
               "\"unsubscribe\" and you will hear no more from it.";
    case COMPOSE_JOINED_UNSAID: return "";
    case COMPOSE_JOINED_CONFIRMED:
    default: return "Thank you for confirming.";
    }
}

char *compose_system(const struct app *app, const char *which, const struct course *c,
                     const struct compose_to *to, const struct compose_system_opts *opts, gint64 date,
                     gsize *len, GError **err)
{
    const struct config *cfg = app->cfg;
    char *command = compose_command_address(cfg, c);
    char *steps = c ? g_strdup_printf("%d", c->n_lessons) : g_strdup("");
    char *schedule = c ? pace_describe(&c->rule) : g_strdup("");
    char *url = NULL, *mailto = NULL;
    if (c && opts->list_headers && !unsubscribe_links(app, c, to, &url, &mailto, err)) {
        g_free(command);
        g_free(steps);
        g_free(schedule);
        return NULL;
    }
    const char *title = c ? c->title : "coursed";
    gboolean known = to->tz && *to->tz; /* else the dates are in the course's zone */
    const char *zone = known ? to->tz : (c ? c->tz : "UTC");
    char *zone_says = zone_sentence(zone, known, opts->tz_guessed);
    char *hint = zone_hint(zone, known, opts->tz_guessed);
    /* Sensible defaults for a welcome or a preview; callers override. */
    char *first = c ? pace_format_local(schedule_first(cfg, c, to->tz, date), to->tz ? to->tz : c->tz)
                    : g_strdup("");
    GArray *vars = g_array_new(FALSE, FALSE, sizeof(struct render_var));
    struct render_var base[] = {
        { "name", to->name && *to->name ? to->name : "there", FALSE },
        { "email", to->email, FALSE },
        { "course_title", title, FALSE },
        { "course_description", c ? c->description : "", FALSE },
        { "source", c ? c->source : "", FALSE },
        { "steps", steps, FALSE },
        { "schedule", schedule, FALSE },
        { "zone", zone, FALSE },
        { "zone_hint", hint, FALSE },
        { "zone_sentence", zone_says, FALSE },
        { "joined", joined_sentence(opts->joined), FALSE },
        { "first_date", first, FALSE },
        { "next_date", "", FALSE },
        { "progress", "", FALSE },
        { "confirm_url", "", TRUE },
        { "command_address", command, FALSE },
        { "unsubscribe_url", url ? url : "", TRUE },
        { "reason", "", FALSE },
        { "courses", "", TRUE },
        { "next_step", "", TRUE },
    };
    g_array_append_vals(vars, base, G_N_ELEMENTS(base));
    if (opts->n_vars)
        g_array_append_vals(vars, opts->vars, (guint)opts->n_vars); /* later entries win */

    char *subject = NULL, *text_md = NULL, *body_html = NULL, *text = NULL, *html = NULL;
    char *out = NULL;
    const struct render_set *tpl = app_templates(app, c); /* the course's own, or the shared ones */
    if (!render_system(tpl, which, (struct render_var *)vars->data, vars->len, &subject, &text_md, &body_html,
                       err))
        goto done;
    struct render_var lv[] = {
        { "subject", subject, FALSE },
        { "body", text_md, FALSE },
        { "course_title", title, FALSE },
        { "command_address", command, FALSE },
    };
    text = render_apply(tpl, "system.txt", lv, G_N_ELEMENTS(lv), err);
    if (!text)
        goto done;
    lv[1].value = body_html;
    lv[1].raw = TRUE;
    html = render_apply(tpl, "system.html", lv, G_N_ELEMENTS(lv), err);
    if (!html)
        goto done;
    char *uuid = g_uuid_string_random();
    char *msgid = g_strdup_printf("%s.%s@%s", which, uuid, cfg->domain);
    if (to->subject_prefix) {
        char *prefixed = g_strconcat(to->subject_prefix, subject, NULL);
        g_free(subject);
        subject = prefixed;
    }
    char *list_id = c && opts->list_headers ? g_strdup_printf("%s <%s.%s>", c->title, c->slug, cfg->domain)
                                            : NULL;
    char *unsub = url ? g_strdup_printf("<%s>, <mailto:%s?subject=unsubscribe>", url, mailto) : NULL;
    struct message_spec m = {
        .from_name = c ? c->sender_name : "coursed",
        .from_addr = c ? c->sender : command,
        .to_name = strcmp(which, "confirm") == 0 ? NULL : to->name,
        .to_addr = to->email,
        .subject = subject,
        .message_id = msgid,
        .date = date,
        .list_id = list_id,
        .list_unsubscribe = unsub,
        .reply_to = opts->reply_to,
        .auto_submitted = compose_auto_submitted(which),
        .text = text,
        .html = html,
        .calendar = opts->calendar,
    };
    out = message_build(&m, len, err);
    if (out && opts->parts) {
        opts->parts->subject = g_strdup(subject);
        opts->parts->text = g_strdup(text);
        opts->parts->html = g_strdup(html);
    }
    g_free(unsub);
    g_free(list_id);
    g_free(msgid);
    g_free(uuid);
done:
    g_free(subject);
    g_free(text_md);
    g_free(body_html);
    g_free(text);
    g_free(html);
    g_free(url);
    g_free(mailto);
    g_array_free(vars, TRUE);
    g_free(hint);
    g_free(zone_says);
    g_free(first);
    g_free(schedule);
    g_free(steps);
    g_free(command);
    return out;
}
