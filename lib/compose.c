/* compose.c - owns turning (course, lesson, subscriber) into the values the
 * templates see and the headers the message carries. It knows no SQL and no
 * MIME: render.c fills templates, message.c writes RFC 5322. */
#include <string.h>
#include "compose.h"
#include "error.h"
#include "message.h"
#include "pace.h"
#include "render.h"

char *compose_message_id(const struct config *cfg, const char *course, gint64 enrollment_id, int n)
{
    return g_strdup_printf("lesson-%d.e%" G_GINT64_FORMAT ".%s@%s", n, enrollment_id, course,
                           cfg->domain);
}

char *compose_env_from(const struct config *cfg)
{
    return g_strdup_printf("bounces@%s", cfg->domain);
}

char *compose_lesson(const struct app *app, const struct course *c, int n,
                     const struct compose_to *to, gint64 date, gint64 next_at, gsize *len,
                     GError **err)
{
    const struct lesson *l = course_lesson(c, n);
    if (!l) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' has no lesson %d", c->slug, n);
        return NULL;
    }
    const struct config *cfg = app->cfg;
    char *step = g_strdup_printf("%d", n);
    char *steps = g_strdup_printf("%d", c->n_lessons);
    char *next = next_at > 0 ? pace_format_local(next_at, to->tz ? to->tz : c->tz)
                             : g_strdup("none: this is the last step");
    char *unsub_url = g_strdup_printf("%s/u/", cfg->base_url);
    char *unsub_mailto = g_strdup_printf("%s+unsubscribe@%s", c->slug, cfg->domain);
    char *command = g_strdup_printf("%s@%s", c->slug, cfg->domain);
    const char *name = to->name && *to->name ? to->name : "there";
    struct render_var vars[] = {
        { "name", name },
        { "email", to->email },
        { "course_title", c->title },
        { "course_slug", c->slug },
        { "step", step },
        { "steps", steps },
        { "subject", l->subject },
        { "lesson", l->body },
        { "next_date", next },
        { "unsubscribe_url", unsub_url },
        { "unsubscribe_mailto", unsub_mailto },
        { "command_address", command },
        { "source", c->source },
    };
    char *out = NULL;
    char *text = render_apply(app->tpl, "lesson.txt", vars, G_N_ELEMENTS(vars), err);
    if (!text)
        goto done;
    char *msgid = compose_message_id(cfg, c->slug, to->enrollment_id, n);
    char *list_id = g_strdup_printf("%s <%s.%s>", c->title, c->slug, cfg->domain);
    char *tag = g_strdup_printf("%s %d/%d", c->slug, n, c->n_lessons);
    struct message_spec m = {
        .from_name = c->sender_name,
        .from_addr = c->sender,
        .to_name = to->name,
        .to_addr = to->email,
        .subject = l->subject,
        .message_id = msgid,
        .date = date,
        .list_id = list_id,
        .lesson_tag = tag,
        .text = text,
    };
    out = message_build(&m, len, err);
    g_free(tag);
    g_free(list_id);
    g_free(msgid);
    g_free(text);
done:
    g_free(command);
    g_free(unsub_mailto);
    g_free(unsub_url);
    g_free(next);
    g_free(steps);
    g_free(step);
    return out;
}
