/* lang.h - the words of one language that coursed itself writes: the
 * layouts' words ("Hello", "Step 3 of 5", the footer lines), the sentences
 * system mails get from code (the zone sentence, the progress), weekday
 * and month names and the date patterns. Read from
 * templates/strings/<tag>.ini (GKeyFile, group [strings]); every key
 * coursed knows must be there and use only its own {placeholders}, so a
 * missing word is a load error and never an English word in a German
 * mail. */
#ifndef COURSED_LANG_H
#define COURSED_LANG_H
#include <glib.h>

struct lang;

/* Returns TRUE if tag is a well-formed BCP 47 language tag (RFC 5646's
 * langtag: a 2-3 letter language, then optional script, region and
 * variant subtags; "de", "de-AT", "fr-CA", "sr-Latn-RS"). Syntax only:
 * whether coursed has words for it is lang_find()'s question. */
gboolean lang_tag_valid(const char *tag);

/* Returns the path of the strings file for tag under dir (the
 * templates/strings folder): dir/<tag>.ini, else the file of its primary
 * language (de for de-AT), or NULL if neither exists. g_free(). */
char *lang_find(const char *dir, const char *tag);

/* Returns the words of path (a strings file), for language tag, or NULL
 * with err as "file:line: message" (a missing key, an unknown key or
 * {placeholder}, a list of the wrong length). lang_free(). */
struct lang *lang_load(const char *path, const char *tag, GError **err);
void lang_free(struct lang *s);

/* Returns the language tag s was loaded for (borrowed). */
const char *lang_tag(const struct lang *s);

/* Returns the keys every strings file has, NULL-terminated (static). */
const char *const *lang_keys(void);

/* Returns the text of key (borrowed; "" for a key coursed does not know,
 * which the load makes impossible for the keys it does). */
const char *lang_get(const struct lang *s, const char *key);

/* Returns item i (0-based) of the ';'-separated list key (weekdays:
 * Monday first; months: January first), or "" if there is none. Borrowed. */
const char *lang_item(const struct lang *s, const char *key, int i);

/* Returns key with its {placeholders} filled from the NULL-terminated
 * name, value pairs that follow. With html the words of the string are
 * HTML-escaped and the values inserted as they are (the caller passes
 * markup it built, escaped); without, all of it is plain text. A
 * placeholder without a value stays as written. g_free(). */
char *lang_say(const struct lang *s, const char *key, gboolean html, ...) G_GNUC_NULL_TERMINATED;

/* Returns the date of local time (weekday 1 = Monday .. 7, day, month
 * 1..12, hour, minute) as people write it in s's language ("Wednesday 4
 * March at 9:00"; "Mittwoch, 4. März, 9:00"). g_free(). */
char *lang_date(const struct lang *s, int weekday, int day, int month, int hour, int minute);

/* Returns the time of day as s's language writes it ("9:00", "9 h 00").
 * g_free(). */
char *lang_time(const struct lang *s, int hour, int minute);

/* Returns text with its lines broken between words so that none is
 * longer than width characters (a word longer than that stands alone);
 * the line breaks of text are kept. For the plain-text footer lines.
 * g_free(). */
char *lang_wrap(const char *text, int width);

#endif
