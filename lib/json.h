/* json.h - the one JSON writer of coursed (writing only; coursed never
 * parses JSON). Every --json output goes through it.
 *
 * A struct json_writer streams one JSON value into a GString or a FILE. It
 * owns the commas, the nesting and the escaping, so that whatever its caller
 * does the text is one valid JSON value (RFC 8259):
 *
 *     struct json_writer *w = jw_new(out, 0);
 *     jw_object(w);
 *     jw_key(w, "id");    jw_int(w, 7);
 *     jw_key(w, "tags");  jw_array(w); jw_string(w, "a"); jw_array_end(w);
 *     jw_object_end(w);
 *     jw_end(w);          ->  {"id": 7, "tags": ["a"]}
 *
 * A call out of place (a value in an object without its key, a key in an
 * array, an end that does not match, a second top-level value) is a bug of
 * the caller: it is logged with g_critical() and dropped, containers left
 * open are closed by jw_end(), a key left without value gets null, and a
 * writer given nothing writes null. */
#ifndef COURSED_JSON_H
#define COURSED_JSON_H
#include <stdio.h>
#include <glib.h>

enum jw_flags {
    JW_LINES = 1 << 0, /* a line break after each member of the outermost array or object */
};

struct json_writer;

/* Returns a writer that appends to out (the caller's; not freed). Free the
 * writer with jw_end(). */
struct json_writer *jw_new(GString *out, unsigned flags);
/* Returns a writer that streams to out (buffered, written in chunks and at
 * jw_end(); the caller checks ferror/fclose). Free with jw_end(). */
struct json_writer *jw_new_file(FILE *out, unsigned flags);
/* Closes whatever is still open, writes what is buffered and frees w.
 * Returns FALSE if w was used out of order (its output is valid JSON all
 * the same). */
gboolean jw_end(struct json_writer *w);

void jw_object(struct json_writer *w);
void jw_object_end(struct json_writer *w);
void jw_array(struct json_writer *w);
void jw_array_end(struct json_writer *w);
/* The name of the next member of the current object (escaped as a string). */
void jw_key(struct json_writer *w, const char *key);
/* A string, escaped; invalid UTF-8 is replaced. NULL writes null. */
void jw_string(struct json_writer *w, const char *s);
void jw_int(struct json_writer *w, gint64 v);
void jw_bool(struct json_writer *w, gboolean v);
void jw_null(struct json_writer *w);

#endif
