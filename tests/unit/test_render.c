/* Unit tests of lib/render.c's text part (render_markdown_text) and of the
 * layouts' sections: no Markdown mark left, wrapping at 72 columns counted
 * in characters, links as numbered references, lists, tables, code, CRLF,
 * and typography (smart quotes and dashes) in both parts. */
#include <string.h>
#include <glib/gstdio.h>
#include "error.h"
#include "render.h"

/* Every line of text is at most max columns (characters, not bytes), or a
 * single address standing alone. */
static void assert_width(const char *text, glong max)
{
    char **lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        glong w = g_utf8_strlen(*l, -1);
        char *bare = g_strstrip(g_strdup(*l));
        gboolean one_address = strstr(bare, "://") && !strchr(bare, ' ');
        g_free(bare);
        if (w > max && !one_address)
            g_error("line of %ld columns: '%s'", w, *l);
        g_assert_false(g_str_has_suffix(*l, " "));
    }
    g_strfreev(lines);
}

static char *text_of(const char *md)
{
    char *t = render_markdown_text(md);
    g_assert_true(g_utf8_validate(t, -1, NULL));
    assert_width(t, 72);
    return t;
}

static void test_marks_dropped(void)
{
    char *t = text_of("# Title\n\nSome **bold**, *soft* and `code` text.\n\n## Part two\n\nMore.\n");
    g_assert_cmpstr(t, ==, "Title\n=====\n\nSome bold, soft and code text.\n\nPart two\n--------\n\nMore.");
    g_free(t);
}

static void test_wrap_paragraph(void)
{
    GString *md = g_string_new(NULL);
    for (int i = 0; i < 40; i++)
        g_string_append(md, "word ");
    char *t = text_of(md->str);
    g_assert_cmpint(strlen(t), ==, 40 * 5 - 1);
    g_assert_cmpint(strcspn(t, "\n"), ==, 69); /* 14 words of 4 and their spaces: 14*5-1 */
    g_free(t);
    g_string_free(md, TRUE);
}

static void test_width_in_characters(void)
{
    GString *md = g_string_new(NULL);
    for (int i = 0; i < 30; i++)
        g_string_append(md, "été ");
    char *t = text_of(md->str);
    /* 18 words of 3 characters (6 bytes) fill 71 columns: a byte count
     * would have broken after 11 */
    g_assert_cmpint(g_utf8_strlen(t, (gssize)strcspn(t, "\n")), ==, 71);
    g_free(t);
    g_string_free(md, TRUE);
}

static void test_links_numbered(void)
{
    char *t = text_of(
        "Read [the article](https://example.org/a) and [this](https://example.org/b), "
        "then [the article](https://example.org/a) again, or write to <mailto:me@example.org> "
        "or see <https://example.org/c>.\n");
    g_assert_nonnull(strstr(t, "Read the article [1] and this [2], then the article [1] again"));
    g_assert_nonnull(strstr(t, "me@example.org"));
    g_assert_null(strstr(t, "mailto:"));
    g_assert_nonnull(strstr(t, "https://example.org/c."));
    g_assert_true(g_str_has_suffix(t, "\n\n[1] https://example.org/a\n[2] https://example.org/b"));
    g_assert_null(strstr(t, "]("));
    g_free(t);
}

static void test_long_url_and_word(void)
{
    const char *url =
        "https://example.org/a/very/long/path/that/goes/on/and/on/and/on/for/more/than/"
        "seventy-two/columns";
    char *md = g_strdup_printf("See <%s> now, or [there](%s).\n\n%s\n", url, url,
                               "x123456789012345678901234567890123456789012345678901234567890123456789"
                               "0123456789end");
    char *t = render_markdown_text(md);
    assert_width(t, 72);
    char *alone = g_strdup_printf("\n%s\n", url);
    g_assert_nonnull(strstr(t, alone));   /* never cut, alone on its line */
    g_assert_nonnull(strstr(t, "[1]\n")); /* the reference's address too long for one line */
    /* a word that is no address is cut at 72 */
    g_assert_nonnull(strstr(t,
                            "\nx12345678901234567890123456789012345678901234567890123456789012345678901\n"
                            "23456789end\n"));
    g_free(alone);
    g_free(t);
    g_free(md);
}

static void test_nested_lists(void)
{
    char *t = text_of(
        "- one\n- two\n  - two a, a long item that has to wrap because it is much longer than the "
        "line\n  - two b\n- three\n\n1. first\n2. second\n\n   more of second\n3. third\n");
    g_assert_cmpstr(t, ==,
                    "- one\n- two\n  - two a, a long item that has to wrap because it is much longer than\n"
                    "    the line\n  - two b\n- three\n\n1. first\n\n2. second\n\n   more of second\n\n"
                    "3. third");
    g_free(t);
    char *ten = text_of("8. a\n9. b\n10. c\n");
    g_assert_cmpstr(ten, ==, "8.  a\n9.  b\n10. c");
    g_free(ten);
}

static void test_quote_code_rule(void)
{
    char *t = text_of("> quoted *words*\n> more\n\n```\nint x;\n  y\n```\n\n---\n\nend\n");
    g_assert_cmpstr(t, ==, "    quoted words more\n\n    int x;\n      y\n\n~\n\nend");
    g_free(t);
}

static void test_crlf(void)
{
    char *t = text_of("A line\r\nand more\r\n\r\n- item\r\n\r\n```\r\ncode\r\n```\r\n");
    g_assert_null(strchr(t, '\r'));
    g_assert_cmpstr(t, ==, "A line and more\n\n- item\n\n    code");
    g_free(t);
}

static void test_tables(void)
{
    char *t = text_of("| Day | What |\n|---|--:|\n| Mon | **walk** |\n| Tue | [read](https://e.org) |\n");
    g_assert_cmpstr(t, ==, "Day      What\n---  --------\nMon      walk\nTue  read [1]\n\n[1] https://e.org");
    g_free(t);
    GString *md = g_string_new("| Step | Why it helps |\n|---|---|\n");
    g_string_append(md,
                    "| Walk | Because a walk in the morning, before the day begins, clears the head "
                    "and |\n| Read | A page |\n");
    char *wide = text_of(md->str);
    g_assert_null(strchr(wide, '|'));
    g_assert_cmpstr(wide, ==,
                    "Step: Walk\nWhy it helps: Because a walk in the morning, before the day begins,\n"
                    "  clears the head and\n\nStep: Read\nWhy it helps: A page");
    g_free(wide);
    g_string_free(md, TRUE);
}

static void test_smart_typography(void)
{
    const char *md = "\"Quoted\" -- and it's 'fine' --- really.\n";
    char *t = text_of(md);
    g_assert_cmpstr(t, ==, "\u201cQuoted\u201d \u2013 and it\u2019s \u2018fine\u2019 \u2014 really.");
    char *html = render_markdown(md);
    g_assert_nonnull(strstr(html, "\u201cQuoted\u201d \u2013 and it\u2019s"));
    g_free(html);
    g_free(t);
}

static void test_image_and_html(void)
{
    char *t = text_of("Look: ![a door](https://e.org/d.png)\n\n<div>raw</div>\n\nafter <b>x</b>\n");
    g_assert_cmpstr(t, ==, "Look: [a door] [1]\n\nafter x\n\n[1] https://e.org/d.png");
    g_free(t);
}

static void test_hard_break(void)
{
    char *t = text_of("one  \ntwo\\\nthree\n");
    g_assert_cmpstr(t, ==, "one\ntwo\nthree");
    g_free(t);
}

static void test_text_wrap(void)
{
    char *t = render_text_wrap(
        "short\n  Based on the article \"The two sides of releasing a relationship\" (when "
        "your partner leaves)\nhttps://example.org/u/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaa\nend");
    g_assert_cmpstr(t, ==,
                    "short\n  Based on the article \"The two sides of releasing a relationship\" (when\n"
                    "  your partner leaves)\nhttps://example.org/u/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    "aaaaaaaaaaaaaaaaaaaaaaaaa\nend");
    g_free(t);
}

/* A copy of the shipped templates in a new folder, lesson.txt replaced by
 * lesson_txt. Returns the folder; g_free(). */
static char *templates_with(const char *lesson_txt)
{
    char *dir = g_dir_make_tmp("tpl-XXXXXX", NULL);
    char *src = g_build_filename(g_getenv("COURSED_SOURCE_DIR"), "templates", NULL);
    GDir *d = g_dir_open(src, 0, NULL);
    g_assert_nonnull(d);
    const char *name;
    while ((name = g_dir_read_name(d))) {
        char *from = g_build_filename(src, name, NULL), *to = g_build_filename(dir, name, NULL), *text = NULL;
        if (g_file_test(from, G_FILE_TEST_IS_DIR)) { /* strings/, de/, fr/: not layouts */
            g_free(from);
            g_free(to);
            continue;
        }
        g_assert_true(g_file_get_contents(from, &text, NULL, NULL));
        g_assert_true(g_file_set_contents(to, strcmp(name, "lesson.txt") ? text : lesson_txt, -1, NULL));
        g_free(text);
        g_free(from);
        g_free(to);
    }
    g_dir_close(d);
    g_free(src);
    return dir;
}

static void rm_dir(char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        char *path = g_build_filename(dir, name, NULL);
        g_remove(path);
        g_free(path);
    }
    if (d)
        g_dir_close(d);
    g_rmdir(dir);
    g_free(dir);
}

static void test_sections(void)
{
    char *dir = templates_with(
        "Hello\n{{#next_date}}\nNext: {{next_date}}\n{{/next_date}}\n  {{^last}}\n"
        "pause help\n{{/last}}\nbye {{lesson}}\n");
    GError *err = NULL;
    struct render_set *set = render_load(dir, &err);
    g_assert_no_error(err);
    struct render_var vars[] = { { "next_date", "Monday", FALSE },
                                 { "last", "", FALSE },
                                 { "lesson", "*x*", FALSE } };
    char *out = render_apply(set, "lesson.txt", vars, G_N_ELEMENTS(vars), &err);
    g_assert_cmpstr(out, ==, "Hello\nNext: Monday\npause help\nbye x\n");
    g_free(out);
    vars[0].value = "";
    vars[1].value = "last";
    out = render_apply(set, "lesson.txt", vars, G_N_ELEMENTS(vars), &err);
    g_assert_cmpstr(out, ==, "Hello\nbye x\n"); /* both left out, and their lines with them */
    g_free(out);
    render_free(set);
    rm_dir(dir);
    /* a section that is never closed is a load error naming file and line */
    dir = templates_with("Hello\n\n{{#next_date}} Next: {{next_date}}\n{{lesson}}\n");
    set = render_load(dir, &err);
    g_assert_null(set);
    g_assert_nonnull(err);
    g_assert_nonnull(
        strstr(err->message, "lesson.txt:3: section '{{#next_date}}' without its '{{/next_date}}'"));
    g_error_free(err);
    rm_dir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/render/marks_dropped", test_marks_dropped);
    g_test_add_func("/render/wrap_paragraph", test_wrap_paragraph);
    g_test_add_func("/render/width_in_characters", test_width_in_characters);
    g_test_add_func("/render/links_numbered", test_links_numbered);
    g_test_add_func("/render/long_url_and_word", test_long_url_and_word);
    g_test_add_func("/render/nested_lists", test_nested_lists);
    g_test_add_func("/render/quote_code_rule", test_quote_code_rule);
    g_test_add_func("/render/crlf", test_crlf);
    g_test_add_func("/render/tables", test_tables);
    g_test_add_func("/render/smart_typography", test_smart_typography);
    g_test_add_func("/render/image_and_html", test_image_and_html);
    g_test_add_func("/render/hard_break", test_hard_break);
    g_test_add_func("/render/text_wrap", test_text_wrap);
    g_test_add_func("/render/sections", test_sections);
    return g_test_run();
}
