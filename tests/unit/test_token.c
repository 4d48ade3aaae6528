/* Unit tests of lib/token.c: round trip, every single-bit flip rejected,
 * one person's token never works for another, expiry, key file mode; every
 * case folding of a token verifies, and tokens of the old base64url form
 * (already sent) still do. */
#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include "error.h"
#include "token.h"

static struct token_key *key_in(const char *dir, const char *name)
{
    char *path = g_build_filename(dir, name, NULL);
    GError *err = NULL;
    gboolean created = FALSE;
    g_assert_true(token_key_create(path, &created, &err));
    g_assert_no_error(err);
    g_assert_true(created);
    struct stat st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);
    /* a second create keeps the existing key */
    g_assert_true(token_key_create(path, &created, &err));
    g_assert_false(created);
    struct token_key *k = token_key_load(path, &err);
    g_assert_no_error(err);
    g_free(path);
    return k;
}

static void test_round_trip_and_binding(void)
{
    char *dir = g_dir_make_tmp("tok-XXXXXX", NULL);
    struct token_key *k = key_in(dir, "a.key");
    struct token_key *other = key_in(dir, "b.key");
    char *t = token_make(k, TOKEN_UNSUBSCRIBE, 42, "ann@example.org", "release", 0);
    g_assert_cmpint(strlen(t), ==, 37);
    for (const char *p = t; *p; p++)
        g_assert_true(g_ascii_islower(*p) || (*p >= '2' && *p <= '7'));
    GError *err = NULL;
    g_assert_true(token_verify(k, t, TOKEN_UNSUBSCRIBE, "ann@example.org", "release", 0, &err));
    g_assert_no_error(err);
    enum token_purpose pur;
    gint64 id, exp;
    g_assert_true(token_peek(t, &pur, &id, &exp));
    g_assert_cmpint(pur, ==, TOKEN_UNSUBSCRIBE);
    g_assert_cmpint(id, ==, 42);
    g_assert_cmpint(exp, ==, 0);

    struct {
        const char *addr, *course;
        enum token_purpose p;
        struct token_key *key;
    } wrong[] = {
        { "bob@example.org", "release", TOKEN_UNSUBSCRIBE, k }, /* A's token never works for B */
        { "ann@example.org", "leaving-kindly", TOKEN_UNSUBSCRIBE, k },
        { "ann@example.org", "release", TOKEN_CONFIRM, k },
        { "ann@example.org", "release", TOKEN_UNSUBSCRIBE, other },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(wrong); i++) {
        g_assert_false(token_verify(wrong[i].key, t, wrong[i].p, wrong[i].addr, wrong[i].course, 0, &err));
        g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
        g_clear_error(&err);
    }
    g_free(t);
    token_key_free(k);
    token_key_free(other);
    token_key_free(NULL);
    g_free(dir);
}

/* Flip each bit of the decoded token: every flip must be refused. We flip
 * bits of the base32 text's 5-bit symbols, which covers every encoded
 * bit (the last symbol's unused bit included). */
static void test_every_bit_flip_is_rejected(void)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    char *dir = g_dir_make_tmp("tok-XXXXXX", NULL);
    struct token_key *k = key_in(dir, "a.key");
    char *t = token_make(k, TOKEN_CONFIRM, 7, "ann@example.org", "release", 2000000000);
    size_t n = strlen(t);
    int tried = 0;
    for (size_t i = 0; i < n; i++) {
        int v = (int)(strchr(alphabet, t[i]) - alphabet);
        for (int bit = 0; bit < 5; bit++) {
            char *f = g_strdup(t);
            f[i] = alphabet[v ^ (1 << bit)];
            g_assert_false(token_verify(k, f, TOKEN_CONFIRM, "ann@example.org", "release", 0, NULL));
            tried++;
            g_free(f);
        }
    }
    g_assert_cmpint(tried, ==, 37 * 5);
    /* shapes that are not tokens: wrong lengths, characters outside both
     * alphabets ('1', '8', '0' are not base32) */
    const char *junk[] = { "",
                           "short",
                           "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                           "1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa8",
                           "aaaaaaaaaaaaaaaaaa0aaaaaaaaaaaaaaaaaa" };
    for (size_t i = 0; i < G_N_ELEMENTS(junk); i++)
        g_assert_false(token_verify(k, junk[i], TOKEN_CONFIRM, "ann@example.org", "release", 0, NULL));
    g_assert_false(token_verify(k, NULL, TOKEN_CONFIRM, "ann@example.org", "release", 0, NULL));
    g_free(t);
    token_key_free(k);
    g_free(dir);
}

static void test_expiry(void)
{
    char *dir = g_dir_make_tmp("tok-XXXXXX", NULL);
    struct token_key *k = key_in(dir, "a.key");
    char *t = token_make(k, TOKEN_CONFIRM, 1, "ann@example.org", "release", 1000);
    GError *err = NULL;
    g_assert_true(token_verify(k, t, TOKEN_CONFIRM, "ann@example.org", "release", 1000, NULL));
    g_assert_false(token_verify(k, t, TOKEN_CONFIRM, "ann@example.org", "release", 1001, &err));
    g_assert_nonnull(strstr(err->message, "expired"));
    g_clear_error(&err);
    g_free(t);
    token_key_free(k);
    g_free(dir);
}

/* Every case folding of a token verifies: all upper, all lower, and each
 * single letter's case changed; the bits behind it are the same. */
static void test_any_case_verifies(void)
{
    char *dir = g_dir_make_tmp("tok-XXXXXX", NULL);
    struct token_key *k = key_in(dir, "a.key");
    char *t = token_make(k, TOKEN_BOUNCE, 123456, "ann@example.org", "release", 0);
    char *up = g_ascii_strup(t, -1);
    GError *err = NULL;
    g_assert_true(token_verify(k, up, TOKEN_BOUNCE, "ann@example.org", "release", 0, &err));
    g_assert_no_error(err);
    enum token_purpose pur;
    gint64 id;
    g_assert_true(token_peek(up, &pur, &id, NULL));
    g_assert_cmpint(pur, ==, TOKEN_BOUNCE);
    g_assert_cmpint(id, ==, 123456);
    int folded = 0;
    for (size_t i = 0; t[i]; i++) {
        if (!g_ascii_isalpha(t[i]))
            continue;
        char *f = g_strdup(t);
        f[i] = g_ascii_toupper(f[i]);
        g_assert_true(token_verify(k, f, TOKEN_BOUNCE, "ann@example.org", "release", 0, NULL));
        up[i] = g_ascii_tolower(up[i]); /* upper case with one letter lowered */
        g_assert_true(token_verify(k, up, TOKEN_BOUNCE, "ann@example.org", "release", 0, NULL));
        up[i] = g_ascii_toupper(up[i]);
        folded++;
        g_free(f);
    }
    g_assert_cmpint(folded, >, 0);
    /* a forged token in upper case is still forged */
    g_assert_false(token_verify(k, up, TOKEN_BOUNCE, "bob@example.org", "release", 0, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_clear_error(&err);
    g_free(up);
    g_free(t);
    token_key_free(k);
    g_free(dir);
}

/* The raw bytes of a base32 token, decoded here independently of
 * token.c, so that the old base64url form of the same token can be
 * written the way token.c used to write it. */
static char *old_form_of(const char *b32)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    guint8 raw[23];
    guint32 acc = 0;
    int bits = 0;
    size_t o = 0;
    for (const char *p = b32; *p; p++) {
        acc = (acc << 5) | (guint32)(strchr(alphabet, *p) - alphabet);
        bits += 5;
        if (bits >= 8) {
            g_assert_cmpuint(o, <, sizeof raw);
            raw[o++] = (guint8)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    g_assert_cmpuint(o, ==, sizeof raw);
    char *s = g_base64_encode(raw, sizeof raw);
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

/* Tokens already sent (base64url, 31 characters) keep working; their case
 * still matters, and a forged one is refused. */
static void test_old_tokens_verify(void)
{
    char *dir = g_dir_make_tmp("tok-XXXXXX", NULL);
    struct token_key *k = key_in(dir, "a.key");
    char *t = token_make(k, TOKEN_UNSUBSCRIBE, 42, "ann@example.org", "release", 0);
    char *old = old_form_of(t);
    g_assert_cmpint(strlen(old), ==, 31);
    GError *err = NULL;
    g_assert_true(token_verify(k, old, TOKEN_UNSUBSCRIBE, "ann@example.org", "release", 0, &err));
    g_assert_no_error(err);
    enum token_purpose pur;
    gint64 id;
    g_assert_true(token_peek(old, &pur, &id, NULL));
    g_assert_cmpint(pur, ==, TOKEN_UNSUBSCRIBE);
    g_assert_cmpint(id, ==, 42);
    g_assert_false(token_verify(k, old, TOKEN_UNSUBSCRIBE, "bob@example.org", "release", 0, NULL));
    /* the old alphabet has both cases: a flipped case is another token */
    char *up = g_ascii_strup(old, -1);
    if (strcmp(up, old) != 0)
        g_assert_false(token_verify(k, up, TOKEN_UNSUBSCRIBE, "ann@example.org", "release", 0, NULL));
    /* a flipped symbol is refused */
    old[5] = old[5] == 'A' ? 'B' : 'A';
    g_assert_false(token_verify(k, old, TOKEN_UNSUBSCRIBE, "ann@example.org", "release", 0, NULL));
    g_free(up);
    g_free(old);
    g_free(t);
    token_key_free(k);
    g_free(dir);
}

static void test_bad_key_files(void)
{
    char *dir = g_dir_make_tmp("tok-XXXXXX", NULL);
    char *path = g_build_filename(dir, "bad.key", NULL);
    GError *err = NULL;
    g_assert_null(token_key_load(path, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_NOT_FOUND);
    g_clear_error(&err);
    g_file_set_contents(path, "abc\n", -1, NULL);
    g_assert_null(token_key_load(path, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_clear_error(&err);
    g_file_set_contents(path, "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", -1, NULL);
    g_assert_null(token_key_load(path, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_clear_error(&err);
    g_free(path);
    g_free(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/token/round-trip-and-binding", test_round_trip_and_binding);
    g_test_add_func("/token/every-bit-flip-is-rejected", test_every_bit_flip_is_rejected);
    g_test_add_func("/token/expiry", test_expiry);
    g_test_add_func("/token/any-case-verifies", test_any_case_verifies);
    g_test_add_func("/token/old-tokens-verify", test_old_tokens_verify);
    g_test_add_func("/token/bad-key-files", test_bad_key_files);
    return g_test_run();
}
