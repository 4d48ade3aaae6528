/* doctor.h - checks of a coursed installation, each with a fix. */
#ifndef COURSED_DOCTOR_H
#define COURSED_DOCTOR_H
#include <glib.h>
#include "app.h"

struct doctor_check {
    char *name; /* config, courses, database, secret key, smtp, http, inbound */
    gboolean ok;
    char *detail; /* what was found */
    char *fix;    /* what to do, when not ok */
};

/* Runs every check; returns an array of struct doctor_check (unref frees).
 * Network checks talk only to the configured relays and listener, with a
 * 10 s timeout each. */
GPtrArray *doctor_run(struct app *app);

#endif
