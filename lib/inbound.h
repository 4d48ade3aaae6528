/* inbound.h - what an inbound mail is and asks for. Pure: no database. */
#ifndef COURSED_INBOUND_H
#define COURSED_INBOUND_H
#include <glib.h>
#include "config.h"

enum inbound_kind {
    INBOUND_COMMAND,
    INBOUND_CONFIRM,
    INBOUND_BOUNCE,
    INBOUND_AUTOREPLY,
    INBOUND_IGNORED,
    INBOUND_COMPLAINT, /* a feedback report (ARF): someone called our mail spam */
    INBOUND_NOTE,      /* a reader's reply to one of our mails that is not a command */
};

/* A lesson as readers see it, so that "Re: <its subject>" is known as a
 * reply to it. An array ends with course == NULL. */
struct inbound_lesson {
    const char *course, *slug, *subject;
};

/* The most of a reader's note that is kept and forwarded. */
#define INBOUND_NOTE_MAX (64 * 1024)

struct inbound {
    enum inbound_kind kind;
    char *key; /* dedup key: "mid:<Message-ID>" or "sha256:<hash>", then " rcpt:<envelope recipient>" */
    char *message_id;
    char *sender; /* who to act for and reply to (From), normalised */
    char *sender_name;
    char *command;       /* subscribe, unsubscribe, pause, resume, status, help, next, tz, unknown */
    char *course;        /* slug, or NULL */
    char *args;          /* the rest of the command line */
    char *tz;            /* subscribe tz=..., or the tz command's zone */
    gboolean tz_guessed; /* tz was guessed from the Date header's offset */
    char *name;          /* subscribe's name */
    gint64 pause_for;    /* pause for N days|weeks, seconds; 0 = until resumed */
    gboolean all;        /* unsubscribe all: every course, not only this one */
    char *token;         /* confirm-, unsubscribe- or VERP token (a complaint: either) */
    gboolean has_offset; /* Date header offset, to guess a zone */
    int date_offset;
    GPtrArray *bounces;  /* struct bounce_rcpt * */
    char *feedback_type; /* a complaint's Feedback-Type (abuse, opt-out ...) */
    char *complainant;   /* a complaint's Original-Rcpt-To or original To, or NULL */
    char *original_id;   /* a complaint's original Message-ID (without <>), or NULL */
    gboolean may_reply;  /* RFC 3834 and loop rules allow an automatic reply */
    char *reason;        /* why it was classified so */
    gboolean unparsable; /* not a message at all: quarantine it */
    char *lesson;        /* a note: the slug of the lesson it answers, or NULL (a system mail) */
    char *note;          /* a note: the reader's text, quoted original cut off, at most INBOUND_NOTE_MAX */
};

/* Classifies one raw message. envelope_sender and envelope_rcpt are what
 * the MTA passed (NULL if unknown: then Return-Path and the recipient
 * headers are used). courses (const char * slugs, NULL-terminated) are the
 * command addresses. Never fails: unreadable input is INBOUND_IGNORED with a
 * reason. Free with inbound_free(). */
struct inbound *inbound_classify(const char *data, gsize len, const struct config *cfg,
                                 const char *const *courses, const char *envelope_sender,
                                 const char *envelope_rcpt);
/* inbound_classify, knowing the lessons' subjects (NULL: none), so that a
 * "Re: <lesson subject>" without In-Reply-To is a reply to that lesson. */
struct inbound *inbound_classify_lessons(const char *data, gsize len, const struct config *cfg,
                                         const char *const *courses, const struct inbound_lesson *lessons,
                                         const char *envelope_sender, const char *envelope_rcpt);
void inbound_free(struct inbound *r);

const char *inbound_kind_name(enum inbound_kind k);

/* Returns the classification as one JSON object (coursectl inbound
 * --dry-run --json). g_free(). */
char *inbound_to_json(const struct inbound *r, const char *action);

/* Returns an IANA zone for a UTC offset in minutes (Etc/GMT-N for whole
 * hours, a city for the half- and quarter-hour offsets), or NULL. Static. */
const char *inbound_zone_for_offset(int minutes);

#endif
