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
#include "lang.h"
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

char *compose_verp_mail(const struct app *app, const struct outbox_row *o)
{
    if (!app->key)
        return compose_env_from(app->cfg);
    char *tok = token_make(app->key, TOKEN_BOUNCE, o->id, o->rcpt, COMPOSE_VERP_MAIL, 0);
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

char *compose_date(const struct app *app, const struct course *c, gint64 t, const char *tz, gboolean together)
{
    char *s = pace_format_human(t, tz && *tz ? tz : (c ? c->tz : "UTC"), app_lang(app, c));
    if (!together)
        return s;
    GString *out = g_string_new(NULL);
    for (const char *p = s; *p; p++)
        if (*p == ' ')
            g_string_append(out, "\u00a0"); /* no line break inside the date */
        else
            g_string_append_c(out, *p);
    g_free(s);
    return g_string_free(out, FALSE);
}

char *compose_next_offer(const struct app *app, const struct course *c, const struct course *nc,
                         const char *url)
{
    const struct lang *words = app_lang(app, c);
    char n[16];
    g_snprintf(n, sizeof n, "%d", nc->n_lessons);
    char *about = *nc->description ? g_strconcat(": ", nc->description, NULL) : g_strdup("");
    char *offer = lang_say(words, "next_course_offer", FALSE, "title", nc->title, "steps", n, "about", about,
                           "url", url, (char *)NULL);
    char *md = g_strdup_printf("%s\n\n%s\n\n", offer, lang_get(words, "next_course_confirm"));
    g_free(offer);
    g_free(about);
    return md;
}

char *compose_courses_list(const struct app *app, const struct course *about)
{
    const struct lang *words = app_lang(app, about);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < app->courses->len; i++) {
        const struct course *c = app->courses->pdata[i];
        char *address = compose_command_address(app->cfg, c);
        char *item = lang_say(words, "course_list_item", FALSE, "title", c->title, "address", address,
                              (char *)NULL);
        g_string_append_printf(s, "- %s%s%s\n", item, *c->description ? ". " : "", c->description);
        g_free(item);
        g_free(address);
    }
    return g_string_free(s, FALSE);
}

/* The words a footer line's commands send, in the order of their
 * placeholders in footer(): {pause} {pause_2_weeks} {resume} {status}
 * {unsubscribe} {help}. */
static const char *const footer_commands[] = {
    "pause", "pause for 2 weeks", "resume", "status", "unsubscribe", "help",
};

/* Footer line `key` of words with its commands filled in: in text each
 * command quoted as the language quotes ("pause", „pause“), the line
 * wrapped at 72 columns; in HTML each a mailto: link to address that
 * sends it, the words escaped (the value is inserted raw). unsub_url
 * fills {unsubscribe_link} (may be NULL where there is none). g_free(). */
static char *footer(const struct lang *words, const char *key, gboolean html, const char *address,
                    const char *unsub_url)
{
    const char *style = "style=\"color:#5e5850; text-decoration:underline;\"";
    char *addr = g_markup_escape_text(address, -1);
    char *v[G_N_ELEMENTS(footer_commands)];
    for (size_t i = 0; i < G_N_ELEMENTS(footer_commands); i++) {
        const char *w = footer_commands[i];
        if (!html) {
            v[i] = lang_say(words, "quote", FALSE, "word", w, (char *)NULL);
            continue;
        }
        char *q = g_uri_escape_string(w, NULL, FALSE);
        v[i] = g_strdup_printf("<a href=\"mailto:%s?subject=%s\" %s>%s</a>", addr, q, style, w);
        g_free(q);
    }
    char *address_v = html ? g_strdup_printf("<a href=\"mailto:%s\" %s>%s</a>", addr, style, addr)
                           : g_strdup(address);
    char *link_word = g_markup_escape_text(lang_get(words, "unsubscribe_link"), -1);
    char *url = unsub_url ? g_markup_escape_text(unsub_url, -1) : NULL;
    char *link = html && url ? g_strdup_printf("<a href=\"%s\" %s>%s</a>", url, style, link_word)
                             : g_strdup(lang_get(words, "unsubscribe_link"));
    char *line = lang_say(words, key, html, "pause", v[0], "pause_2_weeks", v[1], "resume", v[2], "status",
                          v[3], "unsubscribe", v[4], "help", v[5], "address", address_v, "unsubscribe_link",
                          link, (char *)NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(footer_commands); i++)
        g_free(v[i]);
    g_free(link);
    g_free(url);
    g_free(link_word);
    g_free(address_v);
    g_free(addr);
    if (html)
        return line;
    char *wrapped = lang_wrap(line, 72);
    g_free(line);
    return wrapped;
}

/* The footer line naming the subscriber's own page (url, "" for a mail
 * that has none: then the line is empty too): in text the words and the
 * URL, in HTML a link (the value is inserted raw). g_free(). */
static char *manage_line(const struct lang *words, gboolean html, const char *url)
{
    if (!url || !*url)
        return g_strdup("");
    if (!html)
        return lang_say(words, "foot_manage_text", FALSE, "manage_url", url, (char *)NULL);
    char *u = g_markup_escape_text(url, -1);
    char *word = g_markup_escape_text(lang_get(words, "manage_link"), -1);
    char *link = g_strdup_printf("<a href=\"%s\" style=\"color:#5e5850; text-decoration:underline;\">%s</a>",
                                 u, word);
    char *line = lang_say(words, "foot_manage_html", TRUE, "manage_link", link, (char *)NULL);
    g_free(link);
    g_free(word);
    g_free(u);
    return line;
}

/* The greeting line of words for name ("Hello Anna,"; "Hello there,"
 * without one). g_free(). */
static char *greeting(const struct lang *words, const char *name)
{
    if (name && *name)
        return lang_say(words, "greeting", FALSE, "name", name, (char *)NULL);
    return g_strdup(lang_get(words, "greeting_anonymous"));
}

/* The help line of c's mails (support.md: the course's own, its
 * language's or the shared one), as Markdown; NULL if there is none.
 * g_free(). */
static char *support_md(const struct app *app, const struct course *c)
{
    char *md = g_strstrip(g_strdup(render_snippet(app_templates(app, c), "support.md")));
    if (!*md)
        g_clear_pointer(&md, g_free);
    return md;
}

/* The link to the subscriber's own page (lib/manage.c), base_url/m/TOKEN:
 * the token names the enrollment the mail is about and is bound to its
 * address and course like the unsubscribe token (it never expires); the
 * page shows every course of that subscriber. "" for a mail that belongs
 * to no enrollment (a reply to a stranger) or without a key. g_free(). */
static char *manage_link(const struct app *app, const struct course *c, const struct compose_to *to)
{
    if (to->preview)
        return g_strdup_printf("%s/m/%s", app->cfg->base_url, COMPOSE_PREVIEW_TOKEN);
    if (!app->key || !c || to->enrollment_id <= 0)
        return g_strdup("");
    char *tok = token_make(app->key, TOKEN_MANAGE, to->enrollment_id, to->email, c->slug, 0);
    char *url = g_strdup_printf("%s/m/%s", app->cfg->base_url, tok);
    g_free(tok);
    return url;
}

struct lesson_vars {
    char *step, *steps, *next, *unsub_url, *unsub_mailto, *command, *manage;
    char *foot_manage, *foot_manage_html;
    char *greeting, *step_line, *foot_pause, *foot_status, *foot_leave, *support;
    char *foot_pause_html, *foot_status_html, *foot_leave_html, *support_html;
};

static void lesson_vars_clear(struct lesson_vars *v)
{
    g_free(v->greeting);
    g_free(v->step_line);
    g_free(v->foot_pause);
    g_free(v->foot_status);
    g_free(v->foot_leave);
    g_free(v->support);
    g_free(v->foot_pause_html);
    g_free(v->foot_status_html);
    g_free(v->foot_leave_html);
    g_free(v->foot_manage);
    g_free(v->foot_manage_html);
    g_free(v->support_html);
    g_free(v->step);
    g_free(v->steps);
    g_free(v->next);
    g_free(v->unsub_url);
    g_free(v->unsub_mailto);
    g_free(v->command);
    g_free(v->manage);
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
    const struct lang *words = app_lang(app, c);
    v.step = g_strdup_printf("%d", n);
    v.steps = g_strdup_printf("%d", c->n_lessons);
    /* Empty on the last lesson (and when not known): the layouts leave out
     * their "Next step" line then, and the last one its pause help. */
    gboolean last = n >= c->n_lessons;
    v.next = next_at > 0 && !last ? compose_date(app, c, next_at, to->tz, FALSE) : g_strdup("");
    v.command = compose_command_address(app->cfg, c);
    v.manage = manage_link(app, c, to);
    v.greeting = greeting(words, to->name);
    v.step_line = lang_say(words, "step_line", FALSE, "step", v.step, "steps", v.steps, (char *)NULL);
    v.foot_pause = footer(words, "foot_pause", FALSE, v.command, NULL);
    v.foot_status = footer(words, "foot_status", FALSE, v.command, NULL);
    v.foot_leave = footer(words, "foot_leave_text", FALSE, v.command, NULL);
    v.foot_pause_html = footer(words, "foot_pause", TRUE, v.command, NULL);
    v.foot_status_html = footer(words, "foot_status", TRUE, v.command, NULL);
    v.foot_leave_html = footer(words, "foot_leave_html", TRUE, v.command, v.unsub_url);
    v.foot_manage = manage_line(words, FALSE, v.manage);
    v.foot_manage_html = manage_line(words, TRUE, v.manage);
    /* The help line: the first and the last lesson, and those whose
     * header says "Support: yes" (docs/safety.md). */
    char *help = n == 1 || n == c->n_lessons || l->support ? support_md(app, c) : NULL;
    v.support = help ? g_strconcat(help, "\n\n", NULL) : g_strdup("");
    const char *help_html = help ? render_snippet_html(app_templates(app, c), "support.md") : NULL;
    v.support_html = help_html
                         ? g_strdup_printf(
                               "<div class=\"support\" style=\"margin:8px 0 16px; padding:12px 16px; "
                               "border-left:3px solid #8a3f20; background-color:#f8f5f0;\">\n%s</div>\n",
                               help_html)
                         : g_strdup("");
    g_free(help);
    char *lesson_html = l->html ? g_strdup(l->html) : render_markdown(l->body);
    struct render_var vars[] = {
        { "name", to->name && *to->name ? to->name : "there", FALSE },
        { "email", to->email, FALSE },
        { "course_title", c->title, FALSE },
        { "course_slug", c->slug, FALSE },
        { "step", v.step, FALSE },
        { "steps", v.steps, FALSE },
        { "subject", l->subject, FALSE },
        /* the plain text made at load (the Markdown rendered per copy otherwise) */
        { "lesson", l->text ? l->text : l->body, l->text != NULL },
        { "next_date", v.next, FALSE },
        { "unsubscribe_url", v.unsub_url, FALSE },
        { "command_address", v.command, FALSE },
        { "source", c->source, FALSE },
        { "lang", c->language, FALSE },
        { "greeting", v.greeting, FALSE },
        { "step_line", v.step_line, FALSE },
        { "next_label", lang_get(words, "next_label"), FALSE },
        { "foot_pause", v.foot_pause, FALSE },
        { "foot_status", v.foot_status, FALSE },
        { "foot_leave", v.foot_leave, FALSE },
        { "support", v.support, FALSE },
        { "manage_url", v.manage, FALSE },
        { "foot_manage", v.foot_manage, FALSE },
        { "sign_off", c->sign_off, FALSE },
        { "last", last ? "last" : "", FALSE },
    };
    const struct render_set *tpl = app_templates(app, c); /* the course's own, or the shared ones */
    *text = render_apply(tpl, "lesson.txt", vars, G_N_ELEMENTS(vars), err);
    if (*text) {
        vars[7].value = lesson_html; /* "lesson": cmark's HTML, inserted as is */
        vars[7].raw = TRUE;
        /* the footer lines and the help line: markup built here, escaped */
        const char *html_of[][2] = { { "foot_pause", v.foot_pause_html },
                                     { "foot_status", v.foot_status_html },
                                     { "foot_leave", v.foot_leave_html },
                                     { "foot_manage", v.foot_manage_html },
                                     { "support", v.support_html } };
        for (size_t i = 0; i < G_N_ELEMENTS(vars); i++)
            for (size_t k = 0; k < G_N_ELEMENTS(html_of); k++)
                if (!strcmp(vars[i].name, html_of[k][0])) {
                    vars[i].value = html_of[k][1];
                    vars[i].raw = TRUE;
                }
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
static char *zone_sentence(const struct lang *words, const char *zone, gboolean known, gboolean guessed)
{
    const char *key = known && guessed ? "zone_guessed" : known ? "zone_known" : "zone_unknown";
    return lang_say(words, key, FALSE, "zone", zone, (char *)NULL);
}

/* The former zone_hint placeholder (templates that still have the zone
 * line and {{zone_hint}} below it): said only when the zone is not the
 * person's own. g_free(). */
static char *zone_hint(const struct lang *words, const char *zone, gboolean known, gboolean guessed)
{
    if (known && !guessed)
        return g_strdup("");
    return lang_say(words, known ? "zone_hint_guessed" : "zone_hint_unknown", FALSE, "zone", zone,
                    (char *)NULL);
}

/* How the person came in, as the welcome says it. */
static const char *joined_sentence(const struct lang *words, enum compose_joined how)
{
    switch (how) {
    case COMPOSE_JOINED_OPERATOR: return lang_get(words, "joined_operator");
    case COMPOSE_JOINED_UNSAID: return "";
    case COMPOSE_JOINED_CONFIRMED:
    default: return lang_get(words, "joined_confirmed");
    }
}

char *compose_system(const struct app *app, const char *which, const struct course *c,
                     const struct compose_to *to, const struct compose_system_opts *opts, gint64 date,
                     gsize *len, GError **err)
{
    const struct config *cfg = app->cfg;
    char *command = compose_command_address(cfg, c);
    char *steps = c ? g_strdup_printf("%d", c->n_lessons) : g_strdup("");
    const struct lang *words = app_lang(app, c); /* c NULL: English */
    char *schedule = c ? pace_describe_in(&c->rule, words) : g_strdup("");
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
    char *zone_says = zone_sentence(words, zone, known, opts->tz_guessed);
    char *hint = zone_hint(words, zone, known, opts->tz_guessed);
    /* Sensible defaults for a welcome or a preview; callers override. */
    char *first = c ? compose_date(app, c, schedule_first(cfg, c, to->tz, date), to->tz, TRUE) : g_strdup("");
    char *hello = greeting(words, to->name);
    char *help = c ? support_md(app, c) : NULL;
    char *foot_text = footer(words, "foot_commands", FALSE, command, NULL);
    char *foot_html = footer(words, "foot_commands", TRUE, command, NULL);
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
        { "joined", joined_sentence(words, opts->joined), FALSE },
        { "first_date", first, FALSE },
        { "next_date", "", FALSE },
        { "progress", "", FALSE },
        { "confirm_url", "", TRUE },
        { "command_address", command, FALSE },
        { "unsubscribe_url", url ? url : "", TRUE },
        { "reason", "", FALSE },
        { "courses", "", TRUE },
        { "next_step", "", TRUE },
        { "greeting", hello, FALSE },
        { "support", help ? help : "", TRUE }, /* the operator's Markdown */
    };
    g_array_append_vals(vars, base, G_N_ELEMENTS(base));
    if (opts->n_vars)
        g_array_append_vals(vars, opts->vars, (guint)opts->n_vars); /* later entries win */

    char *subject = NULL, *text_md = NULL, *body_html = NULL, *text = NULL, *html = NULL;
    char *out = NULL, *manage = NULL, *foot_manage_text = NULL, *foot_manage_html = NULL;
    const struct render_set *tpl = app_templates(app, c); /* the course's own, or the shared ones */
    if (!render_system(tpl, which, (struct render_var *)vars->data, vars->len, &subject, &text_md, &body_html,
                       err))
        goto done;
    manage = manage_link(app, c, to);
    foot_manage_text = manage_line(words, FALSE, manage);
    foot_manage_html = manage_line(words, TRUE, manage);
    struct render_var lv[] = {
        { "subject", subject, FALSE },
        { "body", text_md, FALSE },
        { "course_title", title, FALSE },
        { "command_address", command, FALSE },
        { "lang", c ? c->language : "en", FALSE },
        { "foot_commands", foot_text, FALSE },
        { "manage_url", manage, FALSE },
        { "foot_manage", foot_manage_text, FALSE },
    };
    text = render_apply(tpl, "system.txt", lv, G_N_ELEMENTS(lv), err);
    if (!text)
        goto done;
    lv[1].value = body_html;
    lv[1].raw = TRUE;
    lv[5].value = foot_html;
    lv[5].raw = TRUE;
    lv[7].value = foot_manage_html;
    lv[7].raw = TRUE;
    html = render_apply(tpl, "system.html", lv, G_N_ELEMENTS(lv), err);
    if (!html)
        goto done;
    char *uuid = g_uuid_string_random();
    char *msgid = to->message_id ? g_strdup(to->message_id)
                                 : g_strdup_printf("%s.%s@%s", which, uuid, cfg->domain);
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
        .to_name = strcmp(which, "confirm") == 0 || opts->bare_to ? NULL : to->name,
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
        .json = opts->json,
        .json_name = opts->json_name,
        .in_reply_to = opts->in_reply_to,
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
    g_free(manage);
    g_free(foot_manage_text);
    g_free(foot_manage_html);
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
    g_free(hello);
    g_free(help);
    g_free(foot_text);
    g_free(foot_html);
    g_free(schedule);
    g_free(steps);
    g_free(command);
    return out;
}

/* A string for a GVariant: valid UTF-8 whatever came in ("" for NULL). */
static GVariant *v_str(const char *s)
{
    char *valid = g_utf8_make_valid(s ? s : "", -1);
    GVariant *v = g_variant_new_take_string(valid);
    return v;
}

char *compose_spec_new(const struct config *cfg, const char *which, const struct compose_to *to,
                       const struct compose_system_opts *opts)
{
    GVariantBuilder vars;
    g_variant_builder_init(&vars, G_VARIANT_TYPE("a(ssb)"));
    for (size_t i = 0; i < opts->n_vars; i++)
        g_variant_builder_add(&vars, "(@s@sb)", v_str(opts->vars[i].name), v_str(opts->vars[i].value),
                              opts->vars[i].raw);
    char *uuid = g_uuid_string_random();
    char *msgid = to->message_id ? g_strdup(to->message_id)
                                 : g_strdup_printf("%s.%s@%s", which, uuid, cfg->domain);
    GVariantDict d;
    g_variant_dict_init(&d, NULL);
    g_variant_dict_insert_value(&d, "email", v_str(to->email));
    if (to->name && *to->name)
        g_variant_dict_insert_value(&d, "name", v_str(to->name));
    if (to->tz && *to->tz)
        g_variant_dict_insert_value(&d, "tz", v_str(to->tz));
    g_variant_dict_insert(&d, "enrollment", "x", to->enrollment_id);
    g_variant_dict_insert_value(&d, "message_id", v_str(msgid));
    g_variant_dict_insert_value(&d, "vars", g_variant_builder_end(&vars));
    if (opts->reply_to)
        g_variant_dict_insert_value(&d, "reply_to", v_str(opts->reply_to));
    if (opts->calendar)
        g_variant_dict_insert_value(&d, "calendar", v_str(opts->calendar));
    if (opts->in_reply_to)
        g_variant_dict_insert_value(&d, "in_reply_to", v_str(opts->in_reply_to));
    if (opts->json) /* the export mail's attachment */
        g_variant_dict_insert_value(&d, "json", v_str(opts->json));
    if (opts->json_name)
        g_variant_dict_insert_value(&d, "json_name", v_str(opts->json_name));
    g_variant_dict_insert(&d, "list_headers", "b", opts->list_headers);
    g_variant_dict_insert(&d, "joined", "i", (gint32)opts->joined);
    g_variant_dict_insert(&d, "tz_guessed", "b", opts->tz_guessed);
    g_variant_dict_insert(&d, "bare_to", "b", opts->bare_to);
    GVariant *v = g_variant_ref_sink(g_variant_dict_end(&d));
    char *text = g_variant_print(v, TRUE);
    g_variant_unref(v);
    g_free(msgid);
    g_free(uuid);
    return text;
}

/* A string member of dict d, or NULL (borrowed from d's value). */
static const char *spec_str(GVariantDict *d, const char *key)
{
    GVariant *v = g_variant_dict_lookup_value(d, key, G_VARIANT_TYPE_STRING);
    if (!v)
        return NULL;
    const char *s = g_variant_get_string(v, NULL);
    g_variant_unref(v); /* the dict keeps its own reference */
    return s;
}

char *compose_system_spec(const struct app *app, const char *which, const struct course *c, const char *spec,
                          gint64 date, gsize *len, GError **err)
{
    GError *e = NULL;
    GVariant *v = spec ? g_variant_parse(G_VARIANT_TYPE_VARDICT, spec, NULL, NULL, &e) : NULL;
    if (!v) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "what to send is unreadable: %s",
                    e ? e->message : "empty");
        g_clear_error(&e);
        return NULL;
    }
    GVariantDict d;
    g_variant_dict_init(&d, v);
    GArray *vars = g_array_new(FALSE, FALSE, sizeof(struct render_var));
    GVariant *vv = g_variant_dict_lookup_value(&d, "vars", G_VARIANT_TYPE("a(ssb)"));
    GVariantIter it;
    if (vv) {
        g_variant_iter_init(&it, vv);
        const char *name, *value;
        gboolean raw;
        while (g_variant_iter_next(&it, "(&s&sb)", &name, &value, &raw)) {
            struct render_var rv = { name, value, raw };
            g_array_append_val(vars, rv);
        }
    }
    gint64 enr = 0;
    gint32 joined = COMPOSE_JOINED_UNSAID;
    gboolean list_headers = FALSE, tz_guessed = FALSE, bare_to = FALSE;
    g_variant_dict_lookup(&d, "enrollment", "x", &enr);
    g_variant_dict_lookup(&d, "joined", "i", &joined);
    g_variant_dict_lookup(&d, "list_headers", "b", &list_headers);
    g_variant_dict_lookup(&d, "tz_guessed", "b", &tz_guessed);
    g_variant_dict_lookup(&d, "bare_to", "b", &bare_to);
    struct compose_to to = {
        .email = spec_str(&d, "email"),
        .name = spec_str(&d, "name"),
        .tz = spec_str(&d, "tz"),
        .enrollment_id = enr,
        .message_id = spec_str(&d, "message_id"),
    };
    struct compose_system_opts opts = {
        .vars = (const struct render_var *)(void *)vars->data,
        .n_vars = vars->len,
        .reply_to = spec_str(&d, "reply_to"),
        .calendar = spec_str(&d, "calendar"),
        .list_headers = list_headers,
        .joined = joined >= COMPOSE_JOINED_CONFIRMED && joined <= COMPOSE_JOINED_UNSAID
                      ? (enum compose_joined)joined
                      : COMPOSE_JOINED_UNSAID,
        .tz_guessed = tz_guessed,
        .in_reply_to = spec_str(&d, "in_reply_to"),
        .bare_to = bare_to,
        .json = spec_str(&d, "json"),
        .json_name = spec_str(&d, "json_name"),
    };
    char *out = NULL;
    if (!to.email || !*to.email)
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "what to send names no recipient");
    else
        out = compose_system(app, which, c, &to, &opts, date, len, err);
    g_array_free(vars, TRUE);
    if (vv)
        g_variant_unref(vv);
    g_variant_dict_clear(&d);
    g_variant_unref(v);
    return out;
}
