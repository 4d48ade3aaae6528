/* Unit tests of lib/token.c: round trip, every single-bit flip rejected,
 * one person's token never works for another, expiry, key file mode. */
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
    g_assert_cmpint(strlen(t), ==, 31);
    for (const char *p = t; *p; p++)
        g_assert_true(g_ascii_isalnum(*p) || *p == '-' || *p == '_');
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
 * bits of the base64url text's 6-bit symbols, which covers every encoded
 * bit, and also try every other symbol at each position. */
static void test_every_bit_flip_is_rejected(void)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *dir = g_dir_make_tmp("tok-XXXXXX", NULL);
    struct token_key *k = key_in(dir, "a.key");
    char *t = token_make(k, TOKEN_CONFIRM, 7, "ann@example.org", "release", 2000000000);
    size_t n = strlen(t);
    int tried = 0;
    for (size_t i = 0; i < n; i++) {
        int v = (int)(strchr(alphabet, t[i]) - alphabet);
        for (int bit = 0; bit < 6; bit++) {
            char *f = g_strdup(t);
            f[i] = alphabet[v ^ (1 << bit)];
            g_assert_false(token_verify(k, f, TOKEN_CONFIRM, "ann@example.org", "release", 0, NULL));
            tried++;
            g_free(f);
        }
    }
    g_assert_cmpint(tried, ==, 31 * 6);
    /* shapes that are not tokens */
    const char *junk[] = { "", "short", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };
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
    g_test_add_func("/token/bad-key-files", test_bad_key_files);
    return g_test_run();
}
