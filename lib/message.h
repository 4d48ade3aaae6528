/* message.h - whole RFC 5322 messages, built with GMime. */
#ifndef COURSED_MESSAGE_H
#define COURSED_MESSAGE_H
#include <glib.h>

struct message_spec {
    const char *from_name, *from_addr;
    const char *to_name, *to_addr;
    const char *subject;          /* UTF-8; RFC 2047-encoded as needed */
    const char *message_id;       /* without <> */
    gint64 date;                  /* Unix seconds */
    const char *list_id;          /* full List-Id value, or NULL */
    const char *list_unsubscribe; /* full List-Unsubscribe value, or NULL */
    const char *lesson_tag;       /* X-Course-Lesson value, or NULL */
    const char *reply_to;         /* Reply-To address, or NULL */
    const char *auto_submitted;   /* Auto-Submitted value (RFC 3834), or NULL */
    const char *text;             /* text/plain body, UTF-8 */
    const char *html;             /* text/html alternative, or NULL */
    const char *calendar;         /* text/calendar attachment (invite.ics), or NULL */
    const char *json;             /* application/json attachment (json_name), or NULL */
    const char *json_name;        /* its file name */
    const char *in_reply_to;      /* Message-ID answered (without <>): In-Reply-To and References;
                                   * dropped unless it is a valid msg-id; NULL: none */
};

/* Call once from the main thread before building messages. */
void message_init(void);

/* Returns the serialised message with CRLF line ends (as SMTP and Maildir
 * want), its length in *len; or NULL with err. Caller g_free()s. Values are
 * cleaned of control characters so no input can add a header. */
char *message_build(const struct message_spec *m, gsize *len, GError **err);

/* A lesson's skeleton: built once, filled per reader (see message.c). */
struct message_proto;

/* Returns the skeleton for messages shaped like `shape`: its From,
 * Subject, List-Id, X-Course-Lesson, Reply-To and Auto-Submitted are fixed;
 * its text and html are samples whose lines are encoded once. Returns NULL
 * with err when GMime's output has no recognisable slots (callers then use
 * message_build). Free with message_proto_free(). */
struct message_proto *message_proto_new(const struct message_spec *shape, GError **err);
void message_proto_free(struct message_proto *p);

/* Returns m serialised exactly as message_build(m) would, from skeleton p
 * when m fits it (same fixed fields, no calendar), else by message_build.
 * p may be NULL. Thread-safe: p is only read. Caller g_free()s. */
char *message_proto_build(const struct message_proto *p, const struct message_spec *m, gsize *len,
                          GError **err);

/* One recipient's lines of a delivery-status report (RFC 3464). */
struct message_dsn {
    char *recipient;  /* Final-Recipient address (type prefix removed) */
    char *action;     /* failed, delayed, delivered, relayed, expanded */
    char *status;     /* enhanced status code, e.g. 5.1.1 */
    char *diagnostic; /* Diagnostic-Code, as text */
};

/* An inbound message, reduced to what classification needs. Every string
 * is valid UTF-8 with control characters other than TAB and LF removed. */
struct message_in {
    char *message_id; /* without <>, NULL if none */
    char *from_addr, *from_name;
    char *subject;     /* decoded */
    char *return_path; /* envelope sender from Return-Path; "" for <>; NULL if absent */
    GPtrArray *rcpts;  /* addresses from Delivered-To, X-Original-To, To, Cc (char *) */
    gboolean has_date;
    int date_offset;      /* Date header's UTC offset in minutes */
    GHashTable *headers;  /* lower-cased name -> first value (unfolded) */
    char *text;           /* the body's text: text/plain, else text/html as text */
    gboolean html_only;   /* text came from an HTML part */
    char *preamble;       /* when text is empty: a multipart's text before parts that are lost
                           * (a broken boundary), for bounce reading only; or NULL */
    gboolean is_dsn;      /* multipart/report; report-type=delivery-status */
    GPtrArray *dsn;       /* struct message_dsn *, one per recipient block */
    gboolean is_feedback; /* multipart/report; report-type=feedback-report (ARF) */
    GHashTable *feedback; /* message/feedback-report fields (lower-cased name -> first value), or NULL */
    GHashTable *original; /* headers of the returned original (message/rfc822 or
                           * text/rfc822-headers part), lower-cased name -> first value, or NULL */
};

/* Returns the parsed message, or NULL with err when the bytes are not a
 * message at all. Never trusts its input: sizes are bounded and nothing is
 * executed or fetched. Free with message_in_free(). */
struct message_in *message_parse(const char *data, gsize len, GError **err);
void message_in_free(struct message_in *m);

/* Returns the first value of header `name` (any case), or NULL. Borrowed. */
const char *message_in_header(const struct message_in *m, const char *name);

/* Returns the first value of header `name` of the original message a report
 * returns (m->original), or NULL. Borrowed. */
const char *message_in_original_header(const struct message_in *m, const char *name);

/* Returns field `name` of the feedback report (m->feedback), or NULL. */
const char *message_in_feedback(const struct message_in *m, const char *name);

/* A reader's note forwarded to a course's author (docs/notes.md). Built
 * anew: nothing of the reader's headers is carried over but their address
 * (as Reply-To, so that the author's answer goes to the reader). */
struct message_note {
    const char *from_name, *from_addr; /* the course's sender */
    const char *to_addr;               /* the course's replies_to */
    const char *reply_to;              /* the reader's address */
    const char *subject;
    const char *message_id; /* without <> */
    gint64 date;
    const char *course; /* X-Coursed-Course */
    const char *lesson; /* X-Coursed-Lesson (slug), or NULL */
    const char *text;   /* text/plain body, UTF-8 */
};

/* Returns the forward serialised with CRLF line ends, its length in *len;
 * or NULL with err (a header value with control characters). It carries
 * Auto-Submitted: auto-generated (RFC 3834: no responder answers it, so an
 * author's vacation reply cannot reach the reader or come back to us).
 * Caller g_free()s. */
char *message_build_note(const struct message_note *n, gsize *len, GError **err);

#endif
