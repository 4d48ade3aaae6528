/* bounce.h - what a bounce says: which addresses failed, how, and how badly. */
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
 * known MTA's plain-text bounce (Exim, qmail, Yahoo...). */
gboolean bounce_is_report(const struct message_in *m);

/* Returns the failed recipients of bounce m (struct bounce_rcpt *), from the
 * RFC 3464 fields when there are any, else from the text of the common
 * non-standard formats. Delayed/delivered DSN entries are soft/skipped. Our
 * own domain's addresses are never reported. g_ptr_array_unref() frees. */
GPtrArray *bounce_parse(const struct message_in *m, const char *our_domain);

/* Class of an enhanced status code: 4.x.x soft, 5.7.x policy, other 5.x.x
 * hard. */
enum bounce_class bounce_class_of(const char *status);
const char *bounce_class_name(enum bounce_class k);
void bounce_rcpt_free(struct bounce_rcpt *b);

#endif
