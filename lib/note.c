/* note.c - owns readers' notes (docs/notes.md): a reply to one of our
 * mails that is not a command is what a person wrote to the author. It is
 * stored with its subscriber (so erasure and the data export cover it),
 * never answered, and forwarded to the course's replies_to as a new
 * message through the outbox, so that the forward obeys the send rate, the
 * retries and the loop rules of every other outgoing mail. */
#include <string.h>
#include "note.h"
#include "course.h"
#include "error.h"
#include "log.h"
#include "message.h"
#include "store.h"

struct inbound_lesson *note_lessons(const struct app *app)
{
    guint n = 0;
    for (guint i = 0; i < app->courses->len; i++)
        n += (guint)((const struct course *)app->courses->pdata[i])->n_lessons;
    struct inbound_lesson *a = g_new0(struct inbound_lesson, n + 1);
    guint k = 0;
    for (guint i = 0; i < app->courses->len; i++) {
        const struct course *c = app->courses->pdata[i];
        for (int j = 0; j < c->n_lessons; j++)
            a[k++] = (struct inbound_lesson){ c->slug, c->lessons[j].slug, c->lessons[j].subject };
    }
    return a;
}

static const struct lesson *lesson_by_slug(const struct course *c, const char *slug)
{
    for (int j = 0; c && slug && j < c->n_lessons; j++)
        if (!strcmp(c->lessons[j].slug, slug))
            return &c->lessons[j];
    return NULL;
}

/* Queues the forward of note text from reader about lesson l (or NULL)
 * of c; returns the outbox id, or -1 with err. The subject and the first
 * lines are ours; the reader's display name is never used (it is
 * whatever a stranger typed). */
static gint64 forward_queue(struct app *app, const struct course *c, const struct lesson *l,
                            const char *reader, const char *text, gint64 now, GError **err)
{
    char *subject = l ? g_strdup_printf("A reader's note on \"%s\" (%s)", l->subject, c->title)
                      : g_strdup_printf("A reader's note (%s)", c->title);
    char *body = g_strdup_printf(
        "%s wrote back about %s%s%s of %s.\n"
        "Answer this mail to reply to them in person.\n\n----\n\n%s",
        reader, l ? "the lesson \"" : "one of the course's mails", l ? l->subject : "", l ? "\"" : "",
        c->title, text);
    char *uuid = g_uuid_string_random();
    char *msgid = g_strdup_printf("note.%s@%s", uuid, app->cfg->domain);
    struct message_note m = {
        .from_name = c->sender_name,
        .from_addr = c->sender,
        .to_addr = c->replies_to,
        .reply_to = reader,
        .subject = subject,
        .message_id = msgid,
        .date = now,
        .course = c->slug,
        .lesson = l ? l->slug : NULL,
        .text = body,
    };
    gsize len = 0;
    char *msg = message_build_note(&m, &len, err);
    /* No subscriber on the row: a failure to reach the author is not the
     * reader's bounce. */
    gint64 id = msg ? store_outbox_add(app->st, 0, 0, "note", c->replies_to, msg, len, now, err) : -1;
    g_free(msg);
    g_free(msgid);
    g_free(uuid);
    g_free(body);
    g_free(subject);
    return id;
}

gboolean note_apply(struct app *app, const struct inbound *r, gint64 now, GString *res, GError **err)
{
    GError *e = NULL;
    struct sub_row *s = store_sub_get(app->st, r->sender, &e);
    if (!s) {
        if (e->code != CD_ERR_NOT_FOUND) {
            g_propagate_error(err, e);
            return FALSE;
        }
        g_error_free(e);
        g_string_append(res, "a note from an address that is not a subscriber: not kept, no reply");
        return TRUE;
    }
    const struct course *c = course_find(app->courses, r->course);
    const struct lesson *l = lesson_by_slug(c, r->lesson);
    struct note_row n = {
        .subscriber_id = s->id,
        .course = r->course,
        .lesson_slug = l ? l->slug : NULL,
        .lesson = l ? l->n : 0,
        .received_at = now,
        .message_id = r->message_id,
        .body = r->note ? r->note : "",
        .forward = "kept",
    };
    gboolean ok = TRUE;
    if (c && c->replies_to && g_ascii_strcasecmp(c->replies_to, r->sender) == 0) {
        /* the author answering their own forward through the course: a loop */
        g_string_append(res, "a note from the course's own replies_to address: kept, not forwarded");
    } else if (c && c->replies_to) {
        /* One reader cannot make us mail the author without bound: the
         * cap on automatic replies per address per day holds for forwards
         * of one reader's notes too; past it the note is only kept. */
        gint64 sent = store_notes_forwarded_since(app->st, s->id, now - 86400, err);
        ok = sent >= 0;
        if (ok && sent >= app->cfg->replies_per_day) {
            n.forward = "capped";
            log_warn("%s: %" G_GINT64_FORMAT " notes forwarded in 24h; keeping this one only", r->sender,
                     sent);
            g_string_append_printf(res, "note kept; not forwarded (%" G_GINT64_FORMAT " in 24h)", sent);
        } else if (ok) {
            n.outbox_id = forward_queue(app, c, l, r->sender, n.body, now, err);
            ok = n.outbox_id > 0;
            n.forward = "queued";
            g_string_append_printf(res, "note kept and forwarded to %s", c->replies_to);
        }
    } else {
        g_string_append(res, "note kept for the operator (coursectl replies)");
    }
    ok = ok && store_note_add(app->st, &n, err) > 0 &&
         store_event(app->st, now, s->id, 0, "note", "email", l ? l->slug : "", err);
    store_sub_free(s);
    return ok;
}
