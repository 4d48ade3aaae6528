/* token.h - unguessable, unforgeable tokens for confirm, unsubscribe and
 * VERP links: HMAC-SHA256 with a secret key, bound to purpose, id, address,
 * course and expiry. */
#ifndef COURSED_TOKEN_H
#define COURSED_TOKEN_H
#include <glib.h>

enum token_purpose {
    TOKEN_UNSUBSCRIBE = 'u',
    TOKEN_CONFIRM = 'c',
    TOKEN_BOUNCE = 'b',
    TOKEN_MANAGE = 'm', /* the subscriber's own page, /m/TOKEN (lib/manage.c) */
};

struct token_key;

/* Creates the key file (32 random bytes, hex, mode 0600) if it does not
 * exist. Returns TRUE if it exists afterwards; *created says whether this
 * call made it. */
gboolean token_key_create(const char *path, gboolean *created, GError **err);

/* Returns the key read from path, or NULL with err (missing, unreadable,
 * malformed). Free with token_key_free(). */
struct token_key *token_key_load(const char *path, GError **err);
void token_key_free(struct token_key *k);

/* Returns a 31-character base64url token (safe in URLs and in the local
 * part of an address). expires is Unix seconds, 0 for never. id is the
 * enrollment (or delivery) the token acts on. Caller g_free()s. */
char *token_make(const struct token_key *k, enum token_purpose purpose, gint64 id, const char *address,
                 const char *course, gint64 expires);

/* Reads purpose, id and expiry from a token without checking it (to find
 * the row whose address and course the MAC must match). FALSE if the token
 * is malformed. */
gboolean token_peek(const char *token, enum token_purpose *purpose, gint64 *id, gint64 *expires);

/* Returns TRUE if token was made with k for exactly this purpose, address
 * and course, and is not expired at now. The MAC is compared in constant
 * time. On FALSE, err says why (malformed, forged, expired). */
gboolean token_verify(const struct token_key *k, const char *token, enum token_purpose purpose,
                      const char *address, const char *course, gint64 now, GError **err);

/* Returns HMAC-SHA256(key, "suppress:" + lower-cased address) in hex: the
 * only trace kept of an erased person (so they are not re-imported by
 * mistake), useless without the key. g_free(). */
char *token_hash_address(const struct token_key *k, const char *address);

#endif
