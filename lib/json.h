/* json.h - writing JSON for --json output (writing only; coursed never
 * parses JSON). */
#ifndef COURSED_JSON_H
#define COURSED_JSON_H
#include <glib.h>

/* Appends s as a JSON string literal (quoted, escaped) to out; NULL as null. */
void json_string(GString *out, const char *s);

/* Appends "key": to out, with a comma before it unless it opens an object
 * (the caller passes first = TRUE for the first member). */
void json_key(GString *out, const char *key, gboolean first);

#endif
