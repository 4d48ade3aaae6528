/* Unit tests of lib/address.c: the canonical form (ASCII and
 * internationalised domains, one form for every spelling), the ASCII form
 * the wire carries, and every refusal with the reason it gives. */
#include <string.h>
#include "address.h"
#include "error.h"

static void expect_canonical(const char *in, const char *canonical, const char *ascii)
{
    GError *err = NULL;
    char *n = address_normalize(in, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(n, ==, canonical);
    g_assert_true(g_utf8_validate(n, -1, NULL));
    char *nfc = g_utf8_normalize(n, -1, G_NORMALIZE_NFC);
    g_assert_cmpstr(nfc, ==, n);
    g_free(nfc);
    /* the wire form, and back to the same person */
    char *a = address_to_ascii(n, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(a, ==, ascii);
    for (const char *p = a; *p; p++)
        g_assert_cmpint((guchar)*p, <, 0x80);
    char *again = address_normalize(a, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(again, ==, canonical);
    /* canonical is a fixed point */
    char *twice = address_normalize(n, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(twice, ==, canonical);
    g_free(twice);
    g_free(again);
    g_free(a);
    g_free(n);
}

static void expect_refused(const char *in, const char *reason)
{
    GError *err = NULL;
    char *n = address_normalize(in, &err);
    if (n)
        g_error("'%s' was accepted as '%s'", in, n);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    if (!strstr(err->message, reason))
        g_error("'%s': expected \"%s\" in \"%s\"", in, reason, err->message);
    /* what an error message shows is one line of visible text */
    g_assert_true(g_utf8_validate(err->message, -1, NULL));
    for (const char *p = err->message; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        g_assert_false(g_unichar_iscntrl(c) || g_unichar_type(c) == G_UNICODE_FORMAT);
    }
    g_error_free(err);
}

static void test_ascii(void)
{
    expect_canonical("Ann@Example.ORG", "ann@example.org", "ann@example.org");
    expect_canonical("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk",
                     "first.last+tag@sub.example.co.uk");
    expect_canonical("o'hara@a-b.example", "o'hara@a-b.example", "o'hara@a-b.example");
    char *label63 = g_strnfill(63, 'a');
    char *ok = g_strdup_printf("x@%s.example", label63);
    expect_canonical(ok, ok, ok);
    g_free(ok);
    g_free(label63);
}

/* Every spelling of one internationalised address is one canonical form:
 * Unicode, NFC, lower case; the wire gets punycode. */
static void test_idn_one_form(void)
{
    const char *spellings[] = {
        "anna@müller.example",        "anna@MÜLLER.example",
        "Anna@Müller.Example",        "anna@mu\xcc\x88ller.example", /* NFD: u + combining diaeresis */
        "anna@xn--mller-kva.example", "ANNA@XN--MLLER-KVA.EXAMPLE",
        "anna@müller\u3002example", /* ideographic full stop */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(spellings); i++)
        expect_canonical(spellings[i], "anna@müller.example", "anna@xn--mller-kva.example");
    expect_canonical("a@bücher.müller.example", "a@bücher.müller.example",
                     "a@xn--bcher-kva.xn--mller-kva.example");
    expect_canonical("info@пример.рф", "info@пример.рф", "info@xn--e1afmkfd.xn--p1ai");
    expect_canonical("info@日本語.jp", "info@日本語.jp", "info@xn--wgv71a119e.jp");
    /* Latin with Japanese scripts is one writing system */
    expect_canonical("a@abcひらがな漢字.jp", "a@abcひらがな漢字.jp", "a@xn--abc-r73b4fvb9jq026a6htb.jp");
    expect_canonical("a@ελλάδα.gr", "a@ελλάδα.gr", "a@xn--hxakic4aa.gr");
    /* full-width letters are the letters (IDNA maps them) */
    expect_canonical("a@\xef\xbd\x85\xef\xbd\x98.org", "a@ex.org", "a@ex.org");
    /* different scripts in different labels are fine */
    expect_canonical("a@müller.рф", "a@müller.рф", "a@xn--mller-kva.xn--p1ai");
}

static void test_to_ascii(void)
{
    GError *err = NULL;
    char *a = address_to_ascii("anna@müller.example", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(a, ==, "anna@xn--mller-kva.example");
    g_free(a);
    /* ASCII comes back as it is, whatever it is */
    a = address_to_ascii("Whatever@Example.ORG", &err);
    g_assert_cmpstr(a, ==, "Whatever@Example.ORG");
    g_free(a);
    g_assert_null(address_to_ascii("josé@example.org", &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message,
                            "a local part that is not ASCII (josé) cannot be delivered: the mail "
                            "relay does not speak SMTPUTF8"));
    g_clear_error(&err);
    g_assert_null(address_to_ascii("", &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_clear_error(&err);
    g_assert_null(address_to_ascii(NULL, NULL));
}

static void test_local_part_not_ascii(void)
{
    expect_refused("josé@example.org",
                   "bad e-mail address 'josé@example.org': a local part that is not ASCII "
                   "(josé) cannot be delivered: the mail relay does not speak SMTPUTF8");
    expect_refused("josé@müller.example", "a local part that is not ASCII (josé)");
    expect_refused("用户@例子.广告", "does not speak SMTPUTF8");
    /* a right-to-left override is not echoed into a terminal */
    expect_refused("jos\xe2\x80\xaeé@example.org", "a local part that is not ASCII (jos?é)");
    /* an ASCII character that is not allowed is named as such first */
    expect_refused("jo sé@example.org", "character not allowed in the local part");
}

static void test_hostile_domains(void)
{
    /* IDNA itself */
    expect_refused("a@xn--zzzzzz.example", "an xn-- label is not a valid internationalised name (IDNA)");
    expect_refused("a@xn--ab--cd.example", "(IDNA)");
    expect_refused("a@xn--a.example", "(IDNA)");
    expect_refused("a@xn--mller-kva-.example", "a label starts or ends with a hyphen");
    expect_refused("a@xn--.example", "a label starts or ends with a hyphen");
    expect_refused("a@-ü.example", "a label starts or ends with a hyphen");
    expect_refused("a@ü-.example", "a label starts or ends with a hyphen");
    expect_refused("a@-ab.example", "a label starts or ends with a hyphen");
    /* overlong labels, in Unicode and in ASCII */
    GString *s = g_string_new("a@");
    for (int i = 0; i < 70; i++)
        g_string_append(s, "ü");
    g_string_append(s, ".example");
    expect_refused(s->str, "is not a valid internationalised name (IDNA");
    g_string_assign(s, "a@");
    for (int i = 0; i < 64; i++)
        g_string_append_c(s, 'a');
    g_string_append(s, ".example");
    expect_refused(s->str, "is longer than 63 characters");
    /* 60 characters of ü are one label of 63 bytes of Unicode but longer
     * in punycode... and 254 in all is counted on the wire */
    g_string_assign(s, "a@");
    for (int i = 0; i < 5; i++)
        g_string_append(s, "üüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüü.");
    g_string_append(s, "example");
    expect_refused(s->str, "longer than");
    g_string_free(s, TRUE);
    /* mixed scripts: a Cyrillic а in a Latin name, Greek omicron, Arabic with Latin */
    expect_refused("a@p\xd0\xb0ypal.example", "the label 'pаypal' mixes scripts (Latn, Cyrl)");
    expect_refused("a@g\xce\xbf\xce\xbfgle.example", "mixes scripts (Latn, Grek)");
    expect_refused("a@\u0627b.example", "mixes scripts (Arab, Latn)");
    expect_refused("a@ひらがな한국.jp", "mixes scripts");
    /* invisible characters are refused, not silently dropped */
    expect_refused("a@pay\xe2\x80\x8bpal.example", "character U+200B is not allowed in a domain");
    expect_refused("a@pay\xc2\xadpal.example", "character U+00AD is not allowed");
    expect_refused("a@exa mple.org", "bad domain");
    expect_refused("a@exa\tmple.org", "bad domain");
    expect_refused("a@exa\xe3\x80\x80mple.org", "U+3000"); /* ideographic space */
    expect_refused("a@\xee\x80\x80.example", "U+E000");    /* private use */
    /* not UTF-8 at all */
    expect_refused("a@m\xfcller.example", "not valid UTF-8");
    expect_refused("a@\xff\xfe.example", "not valid UTF-8");
    /* the shape of a domain, as before */
    expect_refused("a@müller", "bad domain");
    expect_refused("a@localhost", "bad domain");
    expect_refused("a@müller..example", "bad domain");
    expect_refused("a@.example", "bad domain");
    expect_refused("a@example.org.", "bad domain");
    expect_refused("a@ex_ample.org", "bad domain");
    expect_refused("a@[127.0.0.1]", "bad domain");
    expect_refused("a@", "bad domain");
}

static void test_shape(void)
{
    GError *err = NULL;
    g_assert_null(address_normalize("", &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_clear_error(&err);
    g_assert_null(address_normalize(NULL, NULL));
    expect_refused("no-at-sign", "expected local@domain");
    expect_refused("@example.org", "expected local@domain");
    expect_refused(".a@example.org", "character not allowed in the local part");
    expect_refused("a.@example.org", "character not allowed in the local part");
    expect_refused("a..b@example.org", "character not allowed in the local part");
    expect_refused("a\"b@example.org", "character not allowed in the local part");
    expect_refused("a@b@example.org", "character not allowed in the local part");
    expect_refused("a\r\nBcc: x@example.org", "character not allowed in the local part");
    char *local65 = g_strnfill(65, 'a');
    char *long_local = g_strdup_printf("%s@example.org", local65);
    expect_refused(long_local, "the local part is longer than 64 characters");
    g_free(long_local);
    g_free(local65);
    /* a huge input is refused without being shown whole */
    char *huge = g_strnfill(100000, 'a');
    GError *e = NULL;
    g_assert_null(address_normalize(huge, &e));
    g_assert_error(e, CD_ERROR, CD_ERR_INVALID);
    g_assert_cmpuint(strlen(e->message), <, 400);
    g_error_free(e);
    g_free(huge);
}

static void test_clean_name(void)
{
    char *n = address_clean_name("  Ann\r\nBcc: x\t Müller ", 200);
    g_assert_cmpstr(n, ==, "Ann  Bcc: x  Müller");
    g_free(n);
    n = address_clean_name("Jörg", 2);
    g_assert_cmpstr(n, ==, "Jö");
    g_free(n);
    g_assert_null(address_clean_name(NULL, 10));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/address/ascii", test_ascii);
    g_test_add_func("/address/idn-one-form", test_idn_one_form);
    g_test_add_func("/address/to-ascii", test_to_ascii);
    g_test_add_func("/address/local-part-not-ascii", test_local_part_not_ascii);
    g_test_add_func("/address/hostile-domains", test_hostile_domains);
    g_test_add_func("/address/shape", test_shape);
    g_test_add_func("/address/clean-name", test_clean_name);
    return g_test_run();
}
