/* note.h - readers' notes: replies to our mails that are not commands. */
#ifndef COURSED_NOTE_H
#define COURSED_NOTE_H
#include <glib.h>
#include "app.h"
#include "inbound.h"

/* Returns every lesson of every loaded course as inbound_classify_lessons
 * wants them, ending with course == NULL; the strings are the courses'
 * (valid while app's courses are). g_free() the array. */
struct inbound_lesson *note_lessons(const struct app *app);

/* Keeps note r (kind INBOUND_NOTE) inside the caller's transaction, and
 * queues its forward to the course's replies_to in the outbox; appends
 * what was done to res. A note from an address that is no subscriber is
 * not kept (nobody to attach it to, nobody to erase it for). Never answers
 * the reader. Returns FALSE only when the database fails. */
gboolean note_apply(struct app *app, const struct inbound *r, gint64 now, GString *res, GError **err);

#endif
