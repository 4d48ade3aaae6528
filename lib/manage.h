/* manage.h - the subscriber's own page, base_url/m/TOKEN: what they get,
 * and the forms that pause, resume, change their zone or leave. */
#ifndef COURSED_MANAGE_H
#define COURSED_MANAGE_H
#include <glib.h>
#include "app.h"

/* What the page answers: an HTTP status, a title and the HTML of the main
 * part (escaped: it never holds a byte a visitor typed). Each string is
 * owned by the struct; manage_reply_clear() frees them. */
struct manage_reply {
    unsigned status;
    char *title;
    char *html;
};

void manage_reply_clear(struct manage_reply *r);

/* GET /m/TOKEN: the subscriber's courses, their progress, the next lesson
 * in their zone and the forms. Changes nothing. self is the path the forms
 * post back to (/m/TOKEN). Fills *out (status 400 for a damaged token, 404
 * for one we do not know, 503 while the database is busy). */
void manage_get(struct app *app, const char *token, const char *self, gint64 now, struct manage_reply *out);

/* POST /m/TOKEN with the form's fields (name -> value, as sent): checks
 * the token again and the form's csrf field derived from it, then does
 * the one action asked (pause 1, 2 or 4 weeks, resume, tz, the time of
 * day or back to the course's, leave one course, leave all) through enroll.c, subscriber.c, optin.c and
 * lifecycle.c, with the audit trail saying via "page", and answers with
 * the page as it now is and one sentence on what was done (400 for an
 * action or value it does not know, changing nothing). */
void manage_post(struct app *app, const char *token, const char *self, GHashTable *form, gint64 now,
                 struct manage_reply *out);

/* The page's one script (served as /m.js): puts the browser's own zone
 * first in the zone list. The page works without it. */
const char *manage_script(void);

#endif
