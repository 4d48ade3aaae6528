/* message.h - whole RFC 5322 messages, built with GMime. */
#ifndef COURSED_MESSAGE_H
#define COURSED_MESSAGE_H
#include <glib.h>

struct message_spec {
    const char *from_name, *from_addr;
    const char *to_name, *to_addr;
    const char *subject;        /* UTF-8; RFC 2047-encoded as needed */
    const char *message_id;     /* without <> */
    gint64 date;                /* Unix seconds */
    const char *list_id;        /* full List-Id value, or NULL */
    const char *list_unsubscribe; /* full List-Unsubscribe value, or NULL */
    const char *lesson_tag;     /* X-Course-Lesson value, or NULL */
    const char *reply_to;       /* Reply-To address, or NULL */
    const char *auto_submitted; /* Auto-Submitted value (RFC 3834), or NULL */
    const char *text;           /* text/plain body, UTF-8 */
    const char *html;           /* text/html alternative, or NULL */
    const char *calendar;       /* text/calendar attachment (invite.ics), or NULL */
};

/* Call once from the main thread before building messages. */
void message_init(void);

/* Returns the serialised message with CRLF line ends (as SMTP and Maildir
 * want), its length in *len; or NULL with err. Caller g_free()s. Values are
 * cleaned of control characters so no input can add a header. */
char *message_build(const struct message_spec *m, gsize *len, GError **err);

#endif
