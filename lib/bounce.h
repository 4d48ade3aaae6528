/* bounce.h - what a bounce says: which addresses failed, how, and how badly;
 * and what a complaint (ARF) says about which of our mails. */
#ifndef COURSED_BOUNCE_H
#define COURSED_BOUNCE_H
#include <glib.h>
#include "message.h"

enum bounce_class { BOUNCE_SOFT, BOUNCE_HARD, BOUNCE_POLICY };

struct bounce_rcpt {
    char *address;
    char status[16]; /* enhanced status code, e.g. "5.1.1" */
    enum bounce_class klass;
};

/* Returns TRUE if m looks like a delivery failure report: a DSN, or a
 * known MTA's or provider's plain-text bounce (Postfix, Exim, Sendmail,
 * qmail, Exchange, Domino, GroupWise, Yahoo ... and bounces that say it in
 * English, German or French words). Precedence, Auto-Submitted and the
 * sender do not matter here: the caller decides the order. */
gboolean bounce_is_report(const struct message_in *m);

/* Returns TRUE if the whole report is a delay warning ("will retry",
 * Action: delayed only): every recipient of it is soft. */
gboolean bounce_is_delay(const struct message_in *m);

/* Returns the failed recipients of bounce m (struct bounce_rcpt *), from the
 * RFC 3464 fields when there are any, else from X-Failed-Recipients and the
 * text of the common non-standard formats, each a bare address. Delayed
 * entries are soft, delivered/relayed ones skipped. Our own domain's
 * addresses, the reporting MTA's, the bounce's own sender and recipient and
 * the returned original's sender are never reported.
 * g_ptr_array_unref() frees. */
GPtrArray *bounce_parse(const struct message_in *m, const char *our_domain);

/* A complaint: a feedback report (ARF, RFC 5965), a provider's own
 * complaint format (Microsoft JMRP) or a mail client's unsubscribe report. */
struct bounce_complaint {
    char *type;             /* Feedback-Type, lower case: abuse, fraud, opt-out, auth-failure ... */
    char *recipient;        /* who complained: Original-Rcpt-To, or the original's To; or NULL */
    char *original_id;      /* the original's Message-ID without <>, or NULL */
    char *return_path;      /* the original's envelope sender (Original-Mail-From, Return-Path), or NULL */
    char *list_unsubscribe; /* the original's List-Unsubscribe, or NULL */
};

/* Returns the complaint m carries, or NULL when it is none.
 * bounce_complaint_free() frees. */
struct bounce_complaint *bounce_complaint_read(const struct message_in *m);
void bounce_complaint_free(struct bounce_complaint *c);

/* Class of an enhanced status code: 4.x.x soft, 5.7.x policy, other 5.x.x
 * hard. */
enum bounce_class bounce_class_of(const char *status);
const char *bounce_class_name(enum bounce_class k);
void bounce_rcpt_free(struct bounce_rcpt *b);

#endif
