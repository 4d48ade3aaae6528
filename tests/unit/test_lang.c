/* test_lang.c - unit tests of lib/lang.c and of pace.c's dates for people:
 * BCP 47 tag syntax, the shipped strings files (en, de, fr) each with every
 * key, and dates and schedules written from them in the subscriber's zone
 * (summer time included), never from the C library's locale. */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "error.h"
#include "lang.h"
#include "pace.h"

static struct lang *shipped(const char *tag)
{
    const char *src = g_getenv("COURSED_SOURCE_DIR");
    g_assert_nonnull(src);
    char *dir = g_build_filename(src, "templates", "strings", NULL);
    char *path = lang_find(dir, tag);
    g_assert_nonnull(path);
    GError *err = NULL;
    struct lang *l = lang_load(path, tag, &err);
    g_assert_no_error(err);
    g_free(path);
    g_free(dir);
    return l;
}

static gint64 utc_at(int y, int mo, int d, int h, int mi)
{
    GDateTime *dt = g_date_time_new_utc(y, mo, d, h, mi, 0);
    gint64 t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    return t;
}

static void test_tags(void)
{
    const char *good[] = { "en", "de", "fr", "de-AT", "fr-CA", "sr-Latn-RS", "es-419", "de-CH-1996", "gsw" };
    const char *bad[] = { "",     "e",   "German!", "de_AT", "de-", "-de", "english-language-tag-x",
                          "de-A", "1de", "de--AT" };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
        g_assert_true(lang_tag_valid(good[i]));
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("tag '%s'", bad[i]);
        g_assert_false(lang_tag_valid(bad[i]));
    }
    g_assert_false(lang_tag_valid(NULL));
}

static void test_dates(void)
{
    static const struct {
        const char *tag;
        const char *winter, *summer, *first;
    } cases[] = {
        { "en", "Wednesday 4 March at 9:00", "Wednesday 1 July at 9:05", "Sunday 1 March at 0:30" },
        { "de", "Mittwoch, 4. März, 9:00", "Mittwoch, 1. Juli, 9:05", "Sonntag, 1. März, 0:30" },
        { "fr", "mercredi 4 mars à 9 h 00", "mercredi 1er juillet à 9 h 05", "dimanche 1er mars à 0 h 30" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct lang *l = shipped(cases[i].tag);
        char *s = pace_format_human(utc_at(2026, 3, 4, 8, 0), "Europe/Berlin", l);
        g_assert_cmpstr(s, ==, cases[i].winter);
        g_free(s);
        s = pace_format_human(utc_at(2026, 7, 1, 7, 5), "Europe/Berlin", l); /* CEST: UTC+2 */
        g_assert_cmpstr(s, ==, cases[i].summer);
        g_free(s);
        s = pace_format_human(utc_at(2026, 2, 28, 23, 30), "Europe/Paris", l); /* the next local day */
        g_assert_cmpstr(s, ==, cases[i].first);
        g_free(s);
        lang_free(l);
    }
}

static void test_schedules(void)
{
    struct lang *en = shipped("en"), *de = shipped("de"), *fr = shipped("fr");
    struct pace_rule r = { "FREQ=WEEKLY;BYDAY=TU,SA", 7, 30, "Europe/Paris" };
    char *s = pace_describe_in(&r, en);
    g_assert_cmpstr(s, ==, "on Tuesdays and Saturdays at 7:30");
    g_free(s);
    s = pace_describe_in(&r, de);
    g_assert_cmpstr(s, ==, "dienstags und samstags um 7:30 Uhr");
    g_free(s);
    s = pace_describe_in(&r, fr);
    g_assert_cmpstr(s, ==, "le mardi et le samedi à 7 h 30");
    g_free(s);
    struct pace_rule d = { "FREQ=DAILY;INTERVAL=3", 18, 0, "UTC" };
    s = pace_describe_in(&d, en);
    g_assert_cmpstr(s, ==, "every 3 days at 18:00");
    g_free(s);
    struct pace_rule w = { "FREQ=WEEKLY;BYDAY=MO,WE,FR", 9, 0, "UTC" };
    s = pace_describe_in(&w, de);
    g_assert_cmpstr(s, ==, "montags, mittwochs und freitags um 9:00 Uhr");
    g_free(s);
    lang_free(en);
    lang_free(de);
    lang_free(fr);
}

/* A strings file that lacks a key, has one coursed does not know, or uses
 * a placeholder its key does not have is refused, naming file and line. */
static void test_refused(void)
{
    struct lang *en = shipped("en");
    GString *full = g_string_new("[strings]\n");
    for (const char *const *k = lang_keys(); *k; k++)
        g_string_append_printf(full, "%s = %s\n", *k, lang_get(en, *k));
    char *dir = g_dir_make_tmp("test_lang_XXXXXX", NULL);
    char *path = g_build_filename(dir, "xx.ini", NULL);
    GError *err = NULL;

    g_assert_true(g_file_set_contents(path, full->str, -1, NULL));
    struct lang *ok = lang_load(path, "xx", &err);
    g_assert_no_error(err);
    lang_free(ok);

    char *missing = g_strdup(full->str);
    char *at = strstr(missing, "\nnext_label =");
    g_assert_nonnull(at);
    at[1] = '#'; /* comments it out */
    g_assert_true(g_file_set_contents(path, missing, -1, NULL));
    g_assert_null(lang_load(path, "xx", &err));
    g_assert_nonnull(strstr(err->message, "missing key 'next_label'"));
    g_clear_error(&err);

    char *unknown = g_strconcat(full->str, "farewell = Bye\n", NULL);
    g_assert_true(g_file_set_contents(path, unknown, -1, NULL));
    g_assert_null(lang_load(path, "xx", &err));
    char *want = g_strdup_printf("xx.ini:%u: unknown key 'farewell'",
                                 g_strv_length((char **)lang_keys()) + 2);
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, want));
    g_clear_error(&err);

    char *badvar = g_strconcat(full->str, "", NULL);
    char *g = strstr(badvar, "greeting = Hello {name},");
    g_assert_nonnull(g);
    memcpy(g + strlen("greeting = Hello {"), "nome", 4);
    g_assert_true(g_file_set_contents(path, badvar, -1, NULL));
    g_assert_null(lang_load(path, "xx", &err));
    g_assert_nonnull(strstr(err->message, "unknown placeholder '{nome}'"));
    g_clear_error(&err);

    g_remove(path);
    g_rmdir(dir);
    g_free(want);
    g_free(badvar);
    g_free(unknown);
    g_free(missing);
    g_free(path);
    g_free(dir);
    g_string_free(full, TRUE);
    lang_free(en);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    pace_init();
    g_test_add_func("/lang/tags", test_tags);
    g_test_add_func("/lang/dates", test_dates);
    g_test_add_func("/lang/schedules", test_schedules);
    g_test_add_func("/lang/refused", test_refused);
    return g_test_run();
}
