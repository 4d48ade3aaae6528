/* transfer.h - subscribers in and out: CSV import, CSV and JSON export. */
#ifndef COURSED_TRANSFER_H
#define COURSED_TRANSFER_H
#include <stdio.h>
#include <glib.h>
#include "app.h"

struct transfer_stats {
    gint64 rows;     /* data rows read */
    gint64 added;    /* new subscribers */
    gint64 existing; /* already there (enrolled if a course was given) */
    gint64 enrolled;
    gint64 bad; /* refused rows */
};

typedef void (*transfer_progress)(gint64 done, gint64 total, void *arg);

/* Imports path (CSV, header row naming columns among email, name, tz,
 * course, status; email required). Every row is checked; each bad one is
 * appended to problems as "FILE:LINE: reason". Unless dry_run, the good rows
 * go in in one transaction. Addresses erased earlier are refused unless
 * force. Returns FALSE with err only when the file as a whole cannot be
 * used (unreadable, no or bad header) or the database fails. */
gboolean transfer_import(struct app *app, const char *path, gboolean dry_run, gboolean force, gint64 now,
                         transfer_progress progress, void *arg, struct transfer_stats *stats,
                         GPtrArray *problems, GError **err);

/* Writes every subscriber (one row per enrollment) as CSV with the import
 * columns (JSON export is coursectl's renderer, over the same rows). */
gboolean transfer_export_csv(struct app *app, FILE *out, GError **err);

#endif
