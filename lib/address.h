/* address.h - checking and normalising e-mail addresses. */
#ifndef COURSED_ADDRESS_H
#define COURSED_ADDRESS_H
#include <glib.h>

/* Returns the canonical form of an addr-spec, or NULL with err set naming
 * what is wrong. The canonical form is the one stored and shown to people:
 * the local part in lower case (ASCII only: the relay has no SMTPUTF8), the
 * domain as the Unicode form of its IDNA ASCII name (NFC, lower case), so
 * `anna@MÜLLER.example` and `anna@xn--mller-kva.example` are one address,
 * `anna@müller.example`. Caller g_free()s. */
char *address_normalize(const char *addr, GError **err);

/* Returns addr as it goes into the SMTP envelope and the To: header: the
 * domain in its ASCII form (punycode, `anna@xn--mller-kva.example`), the
 * local part as it is. An all-ASCII address comes back unchanged. NULL with
 * err set for a local part that is not ASCII or a domain with no ASCII
 * form; never for a canonical form from address_normalize(). Caller
 * g_free()s. */
char *address_to_ascii(const char *addr, GError **err);

/* Returns a copy of a display name with control characters (CR, LF, NUL,
 * TAB...) replaced by spaces and trimmed, cut to max_chars characters.
 * Caller g_free()s. Never NULL for non-NULL input. */
char *address_clean_name(const char *name, gsize max_chars);

#endif
