/* address.h - checking and normalising e-mail addresses. */
#ifndef COURSED_ADDRESS_H
#define COURSED_ADDRESS_H
#include <glib.h>

/* Returns the canonical form of an addr-spec (lower-cased), or NULL with err
 * set naming what is wrong. Caller g_free()s. */
char *address_normalize(const char *addr, GError **err);

/* Returns a copy of a display name with control characters (CR, LF, NUL,
 * TAB...) replaced by spaces and trimmed, cut to max_chars characters.
 * Caller g_free()s. Never NULL for non-NULL input. */
char *address_clean_name(const char *name, gsize max_chars);

#endif
