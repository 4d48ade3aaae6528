/* token.c - owns the secret key and the token format.
 *   token = base32( purpose[1] | id[6, big-endian] | expires[4] | mac[12] )
 *   mac   = HMAC-SHA256(key, purpose | id | expires | address | 0 | course | 0)[0..12)
 * base32 is RFC 4648's alphabet written in lower case, without padding: 37
 * characters. Tokens travel in the local part of addresses
 * (slug+confirm-TOKEN@, slug+unsubscribe-TOKEN@, bounces+TOKEN@), and
 * relays, forwarders and MTAs may fold the case of a local part (Exim does
 * unless told caseful_local_part), so the alphabet has one case and
 * verification accepts any. Tokens made before (base64url, 31 characters,
 * case-sensitive) are still read, by their length, so links already sent
 * keep working.
 * The address and course are bound by the MAC but not carried, so a token
 * reveals nothing and stays short enough for the local part of a reply
 * address (64 octets at most). 96 MAC bits make forgery hopeless;
 * comparison is constant time so timing reveals nothing either. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "token.h"
#include "error.h"

#define KEY_LEN 32
#define MAC_LEN 12
#define RAW_LEN (1 + 6 + 4 + MAC_LEN)
#define B32_LEN ((RAW_LEN * 8 + 4) / 5)
#define B64_LEN ((RAW_LEN * 4 + 2) / 3)

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

struct token_key {
    guint8 key[KEY_LEN];
};

gboolean token_key_create(const char *path, gboolean *created, GError **err)
{
    if (created)
        *created = FALSE;
    if (g_file_test(path, G_FILE_TEST_EXISTS))
        return TRUE;
    guint8 raw[KEY_LEN];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        g_set_error(err, CD_ERROR, CD_ERR_IO, "%s: no randomness: %s", path, g_strerror(errno));
        return FALSE;
    }
    char hex[KEY_LEN * 2 + 2];
    for (int i = 0; i < KEY_LEN; i++)
        g_snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[KEY_LEN * 2] = '\n';
    hex[KEY_LEN * 2 + 1] = '\0';
    memset(raw, 0, sizeof raw);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_IO, "%s: %s", path, g_strerror(errno));
        return FALSE;
    }
    gboolean ok = write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex) && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    memset(hex, 0, sizeof hex);
    if (!ok) {
        unlink(path);
        g_set_error(err, CD_ERROR, CD_ERR_IO, "%s: %s", path, g_strerror(saved));
        return FALSE;
    }
    if (created)
        *created = TRUE;
    return TRUE;
}

struct token_key *token_key_load(const char *path, GError **err)
{
    char *text = NULL;
    GError *e = NULL;
    if (!g_file_get_contents(path, &text, NULL, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "secret key %s: %s (run 'coursectl init')", path,
                    e->message);
        g_error_free(e);
        return NULL;
    }
    g_strstrip(text);
    struct token_key *k = NULL;
    if (strlen(text) != KEY_LEN * 2) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "secret key %s: expected %d hex digits", path,
                    KEY_LEN * 2);
        goto out;
    }
    k = g_new0(struct token_key, 1);
    for (int i = 0; i < KEY_LEN; i++) {
        int hi = g_ascii_xdigit_value(text[2 * i]), lo = g_ascii_xdigit_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "secret key %s: not hexadecimal", path);
            token_key_free(k);
            k = NULL;
            goto out;
        }
        k->key[i] = (guint8)(hi << 4 | lo);
    }
out:
    memset(text, 0, strlen(text));
    g_free(text);
    return k;
}

void token_key_free(struct token_key *k)
{
    if (!k)
        return;
    memset(k->key, 0, sizeof k->key);
    g_free(k);
}

static void mac(const struct token_key *k, const guint8 *head, const char *address, const char *course,
                guint8 out[MAC_LEN])
{
    GHmac *h = g_hmac_new(G_CHECKSUM_SHA256, k->key, KEY_LEN);
    g_hmac_update(h, head, 1 + 6 + 4);
    g_hmac_update(h, (const guchar *)(address ? address : ""), -1);
    g_hmac_update(h, (const guchar *)"", 1);
    g_hmac_update(h, (const guchar *)(course ? course : ""), -1);
    g_hmac_update(h, (const guchar *)"", 1);
    guint8 full[32];
    gsize len = sizeof full;
    g_hmac_get_digest(h, full, &len);
    g_hmac_unref(h);
    memcpy(out, full, MAC_LEN);
}

static char *b64url(const guint8 *raw, gsize len)
{
    char *s = g_base64_encode(raw, len);
    for (char *p = s; *p; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
        else if (*p == '=')
            *p = '\0';
    }
    return s;
}

/* Decode exactly RAW_LEN bytes of the old base64url form; FALSE on any
 * other shape. */
static gboolean unb64url(const char *token, guint8 raw[RAW_LEN])
{
    size_t n = strlen(token);
    if (n != B64_LEN)
        return FALSE;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!g_ascii_isalnum(c))
            return FALSE;
        buf[i] = c;
    }
    while (n % 4)
        buf[n++] = '=';
    buf[n] = '\0';
    gsize out = 0;
    guchar *dec = g_base64_decode(buf, &out);
    gboolean ok = out == RAW_LEN;
    if (ok)
        memcpy(raw, dec, RAW_LEN);
    g_free(dec);
    /* Reject non-canonical encodings (unused low bits set), so that one
     * token has exactly one spelling. */
    if (ok) {
        char *again = b64url(raw, RAW_LEN);
        ok = strcmp(again, token) == 0;
        g_free(again);
    }
    return ok;
}

/* RFC 4648 base32 in lower case, no padding. GLib has no base32, and the
 * whole of it is this loop: 5 bits per character, most significant
 * first. Caller g_free()s. */
static char *b32(const guint8 *raw, gsize len)
{
    char *s = g_malloc((len * 8 + 4) / 5 + 1);
    gsize o = 0;
    guint32 acc = 0;
    int bits = 0;
    for (gsize i = 0; i < len; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 5) {
            s[o++] = b32_alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        s[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
    s[o] = '\0';
    return s;
}

/* Decode exactly RAW_LEN bytes of base32, in any case; FALSE on any other
 * shape, and when the unused low bits of the last character are set (so
 * that one token has one spelling up to case). */
static gboolean unb32(const char *token, guint8 raw[RAW_LEN])
{
    if (strlen(token) != B32_LEN)
        return FALSE;
    guint32 acc = 0;
    int bits = 0;
    gsize o = 0;
    for (gsize i = 0; i < B32_LEN; i++) {
        const char *p = strchr(b32_alphabet, g_ascii_tolower(token[i]));
        if (!p || !*p)
            return FALSE;
        acc = (acc << 5) | (guint32)(p - b32_alphabet);
        bits += 5;
        if (bits >= 8) {
            raw[o++] = (guint8)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return o == RAW_LEN && (acc & ((1u << bits) - 1)) == 0;
}

/* Either form: base32 (any case) or the old base64url. */
static gboolean decode(const char *token, guint8 raw[RAW_LEN])
{
    return token && (unb32(token, raw) || unb64url(token, raw));
}

char *token_make(const struct token_key *k, enum token_purpose purpose, gint64 id, const char *address,
                 const char *course, gint64 expires)
{
    guint8 raw[RAW_LEN];
    raw[0] = (guint8)purpose;
    for (int i = 0; i < 6; i++)
        raw[1 + i] = (guint8)((guint64)id >> (8 * (5 - i)));
    for (int i = 0; i < 4; i++)
        raw[7 + i] = (guint8)((guint64)expires >> (8 * (3 - i)));
    mac(k, raw, address, course, raw + 11);
    return b32(raw, RAW_LEN);
}

gboolean token_peek(const char *token, enum token_purpose *purpose, gint64 *id, gint64 *expires)
{
    guint8 raw[RAW_LEN];
    if (!decode(token, raw))
        return FALSE;
    guint64 v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | raw[1 + i];
    guint64 e = 0;
    for (int i = 0; i < 4; i++)
        e = e << 8 | raw[7 + i];
    if (purpose)
        *purpose = (enum token_purpose)raw[0];
    if (id)
        *id = (gint64)v;
    if (expires)
        *expires = (gint64)e;
    return TRUE;
}

gboolean token_verify(const struct token_key *k, const char *token, enum token_purpose purpose,
                      const char *address, const char *course, gint64 now, GError **err)
{
    guint8 raw[RAW_LEN], want[MAC_LEN];
    if (!decode(token, raw)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "malformed token");
        return FALSE;
    }
    mac(k, raw, address, course, want);
    guint8 diff = (guint8)(raw[0] ^ (guint8)purpose);
    for (int i = 0; i < MAC_LEN; i++)
        diff |= (guint8)(raw[11 + i] ^ want[i]);
    if (diff != 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "token does not verify");
        return FALSE;
    }
    gint64 expires = 0;
    for (int i = 0; i < 4; i++)
        expires = expires << 8 | raw[7 + i];
    if (expires != 0 && now > expires) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "token expired");
        return FALSE;
    }
    return TRUE;
}

char *token_hash_address(const struct token_key *k, const char *address)
{
    char *lower = g_utf8_strdown(address, -1);
    GHmac *h = g_hmac_new(G_CHECKSUM_SHA256, k->key, KEY_LEN);
    g_hmac_update(h, (const guchar *)"suppress:", -1);
    g_hmac_update(h, (const guchar *)lower, -1);
    char *hex = g_strdup(g_hmac_get_string(h));
    g_hmac_unref(h);
    g_free(lower);
    return hex;
}
