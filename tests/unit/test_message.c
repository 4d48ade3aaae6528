/* Unit tests of message.c's lesson skeletons: message_proto_build() must
 * write exactly the bytes message_build() writes, for every lesson of the
 * repo's courses and for hostile or odd values (long and non-ASCII names,
 * quotes, trailing blanks, '=' signs, long lines, CR, no final newline). */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "app.h"
#include "compose.h"
#include "course.h"
#include "message.h"

static void assert_same(const char *fast, gsize fast_len, const char *slow, gsize slow_len)
{
    if (fast_len != slow_len || memcmp(fast, slow, slow_len) != 0) {
        gsize i = 0;
        while (i < fast_len && i < slow_len && fast[i] == slow[i])
            i++;
        gsize from = i > 60 ? i - 60 : 0;
        char *a = g_strndup(fast + from, MIN(fast_len - from, 220));
        char *b = g_strndup(slow + from, MIN(slow_len - from, 220));
        char *ea = g_strescape(a, NULL), *eb = g_strescape(b, NULL);
        g_test_message("first difference at byte %" G_GSIZE_FORMAT " (+%" G_GSIZE_FORMAT
                       "):\nfast: %s\nslow: %s",
                       i, i - from, ea, eb);
        g_free(a);
        g_free(b);
        g_free(ea);
        g_free(eb);
        g_test_fail();
    }
}

static void check(const struct message_proto *p, const struct message_spec *m)
{
    gsize fl = 0, sl = 0;
    GError *e1 = NULL, *e2 = NULL;
    char *fast = message_proto_build(p, m, &fl, &e1);
    char *slow = message_build(m, &sl, &e2);
    g_assert_no_error(e1);
    g_assert_no_error(e2);
    g_assert_nonnull(fast);
    assert_same(fast, fl, slow, sl);
    g_free(fast);
    g_free(slow);
}

static const char *names[] = {
    NULL,
    "",
    "Reader Example",
    "Zoë Ångström",
    "O'Brien, Pat",
    "\"Quoted\" Name",
    "李小龙",
    "a.b.c",
    "Name (comment)",
    "Ünïcödé with a rather long name that will need folding somewhere "
    "along the line because it is long",
    "x@y",
    "semi;colon",
    "tab\there",
    "    spaced    ",
};

static const char *addrs[] = {
    "reader@example.org",
    "a@b.c",
    "very.long.local.part.of.an.address.that.goes.on.and.on@sub.domain.example.org",
};

/* A random body: lines of the sample (cache hits) and random lines. */
static char *random_body(GRand *r, const char *sample)
{
    static const char *atoms[] = {
        "word",           " ",  "  ", "\t",        "=", "=3D", "é", "—", "\xe2\x80\x9c", ".", "From ", "-",
        "<a href=\"x\">", "\r", "~",  "0123456789"
    };
    char **lines = g_strsplit(sample, "\n", -1);
    guint nl = g_strv_length(lines);
    GString *s = g_string_new(NULL);
    int n = g_rand_int_range(r, 0, 40);
    for (int i = 0; i < n; i++) {
        if (nl > 1 && g_rand_boolean(r)) {
            g_string_append(s, lines[g_rand_int_range(r, 0, (gint32)nl - 1)]);
        } else {
            int len = g_rand_int_range(r, 0, 60);
            for (int k = 0; k < len; k++)
                g_string_append(s, atoms[g_rand_int_range(r, 0, G_N_ELEMENTS(atoms))]);
        }
        if (i < n - 1 || g_rand_boolean(r))
            g_string_append_c(s, '\n');
    }
    g_strfreev(lines);
    return g_string_free(s, FALSE);
}

static void test_random(void)
{
    GRand *r = g_rand_new_with_seed(20261126);
    const char *sample_text =
        "Hello there,\n\nA line that every reader shares.\n  indented  \n"
        "trailing blank \nends with = sign=\n"
        "\xc3\xa9t\xc3\xa9 \xe2\x80\x94 dash\n"
        "a very long line a very long line a very long line a very long line a "
        "very long line a very long line\n";
    const char *sample_html =
        "<p>Hello there,</p>\n<div style=\"margin:0; padding:0;\">\n"
        "<a href=\"https://example.org/u/TOKEN\">x</a>\n";
    for (int shape = 0; shape < 4; shape++) {
        struct message_spec s = {
            .from_name = shape & 1 ? "Ré lease" : "Release",
            .from_addr = "release@courses.example.org",
            .subject = shape & 2 ? "Ünïcode subject that is long enough to need folding in the header"
                                 : "What you cannot bring back",
            .list_id = "Release <release.courses.example.org>",
            .lesson_tag = "release 1/13",
            .auto_submitted = "auto-generated",
            .list_unsubscribe = shape == 3 ? NULL : "<https://x/u/T>",
            .text = sample_text,
            .html = shape == 2 ? NULL : sample_html,
        };
        GError *err = NULL;
        struct message_proto *p = message_proto_new(&s, &err);
        g_assert_no_error(err);
        g_assert_nonnull(p);
        for (int i = 0; i < 300; i++) {
            struct message_spec m = s;
            m.to_name = names[g_rand_int_range(r, 0, G_N_ELEMENTS(names))];
            m.to_addr = addrs[g_rand_int_range(r, 0, G_N_ELEMENTS(addrs))];
            char *id = g_strdup_printf("lesson-%d.e%d.release@courses.example.org",
                                       g_rand_int_range(r, 1, 14), g_rand_int_range(r, 0, 2000000));
            m.message_id = id;
            m.date = g_rand_int_range(r, 0, G_MAXINT32);
            char *unsub = g_strdup_printf(
                "<https://courses.example.org/u/%08x>, <mailto:u-%08x@x?subject=unsubscribe>", g_rand_int(r),
                g_rand_int(r));
            if (s.list_unsubscribe)
                m.list_unsubscribe = unsub;
            char *text = random_body(r, sample_text);
            char *html = random_body(r, sample_html);
            m.text = text;
            if (s.html)
                m.html = html;
            check(p, &m);
            g_free(text);
            g_free(html);
            g_free(unsub);
            g_free(id);
        }
        /* What does not fit the skeleton takes the full path, same bytes. */
        struct message_spec m = s;
        m.to_addr = "reader@example.org";
        m.message_id = "lesson-1.e1.release@courses.example.org";
        m.calendar = "BEGIN:VCALENDAR\nEND:VCALENDAR\n";
        check(p, &m);
        m.calendar = NULL;
        m.subject = "Another subject";
        check(p, &m);
        m.subject = s.subject;
        m.message_id = "lesson-13.e1000000.leaving-kindly@courses.a-rather-long-domain-name.example.org";
        check(p, &m);
        char *huge = g_strnfill(300, 'x');
        m.message_id = huge;
        check(p, &m);
        g_free(huge);
        m.message_id = "ok@x";
        m.text = "";
        check(p, &m);
        m.text = NULL;
        check(p, &m);
        message_proto_free(p);
    }
    message_proto_free(NULL);
    g_rand_free(r);
}

/* Header injection is refused on the fast path as on the full one. */
static void test_refuses_control_chars(void)
{
    struct message_spec s = {
        .from_addr = "a@b.c", .subject = "s", .text = "t\n", .html = "<p>t</p>\n", .list_unsubscribe = "<u>"
    };
    struct message_proto *p = message_proto_new(&s, NULL);
    g_assert_nonnull(p);
    struct message_spec m = s;
    m.to_addr = "r@x.y";
    m.message_id = "id@x\r\nBcc: victim@x.y";
    gsize len = 0;
    GError *err = NULL;
    g_assert_null(message_proto_build(p, &m, &len, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    m.message_id = "id@x";
    m.list_unsubscribe = "<u>\nBcc: victim@x.y";
    g_assert_null(message_proto_build(p, &m, &len, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    message_proto_free(p);
}

/* Every lesson of the repo's courses, for readers unlike the sample. */
static void test_repo_lessons(void)
{
    const char *src = g_getenv("COURSED_SOURCE_DIR");
    if (!src) {
        g_test_skip("COURSED_SOURCE_DIR is not set");
        return;
    }
    GError *err = NULL;
    char *dir = g_dir_make_tmp("coursed-message-XXXXXX", &err);
    g_assert_no_error(err);
    char *conf = g_build_filename(dir, "coursed.conf", NULL);
    char *text = g_strdup_printf(
        "[coursed]\ndatabase = state.db\ncourses = %s/courses\n"
        "templates = %s/templates\ndomain = courses.example.org\n"
        "base_url = https://courses.example.org\n[transport]\nkind = maildir\n",
        src, src);
    g_assert_true(g_file_set_contents(conf, text, -1, NULL));
    struct app *app = app_open(conf, APP_CREATE | APP_KEY, &err);
    g_assert_no_error(err);
    struct compose_to readers[] = {
        { "reader@example.org", "Reader Example", "Europe/Berlin", 1 },
        { "zoe@example.org", "Zoë \"Z\" Ångström, PhD", "Asia/Kolkata", 123456 },
        { "x@example.net", NULL, NULL, 7 },
        { "long.address.of.someone@a.very.long.subdomain.example.com",
          "A name long enough that the To header is folded by the address encoder", "UTC", 99999999 },
    };
    int checked = 0;
    for (guint i = 0; i < app->courses->len; i++) {
        const struct course *c = app->courses->pdata[i];
        for (int n = 1; n <= c->n_lessons; n++) {
            /* The skeleton from one reader's copy, then checked for others. */
            char *st = NULL, *sh = NULL;
            struct compose_to sample = { "sample@example.org", "Sample", NULL, 5 };
            g_assert_true(compose_lesson_parts(app, c, n, &sample, 1800000000, &st, &sh, &err));
            const struct lesson *l = course_lesson(c, n);
            char *list_id = g_strdup_printf("%s <%s.courses.example.org>", c->title, c->slug);
            struct message_spec shape = { .from_name = c->sender_name,
                                          .from_addr = c->sender,
                                          .subject = l->subject,
                                          .list_id = list_id,
                                          .lesson_tag = "tag",
                                          .auto_submitted = "auto-generated",
                                          .list_unsubscribe = "<x>",
                                          .text = st,
                                          .html = sh };
            struct message_proto *p = message_proto_new(&shape, &err);
            g_assert_no_error(err);
            for (size_t k = 0; k < G_N_ELEMENTS(readers); k++) {
                char *t = NULL, *h = NULL;
                g_assert_true(compose_lesson_parts(
                    app, c, n, &readers[k], k == 2 ? 0 : 1790000000 + (gint64)k * 86400, &t, &h, &err));
                char *id = compose_message_id(app->cfg, c->slug, readers[k].enrollment_id, n);
                struct message_spec m = shape;
                m.to_name = readers[k].name;
                m.to_addr = readers[k].email;
                m.message_id = id;
                m.date = 1790000000 + (gint64)k;
                m.list_unsubscribe = "<https://courses.example.org/u/abc>, <mailto:u@x?subject=unsubscribe>";
                m.text = t;
                m.html = h;
                check(p, &m);
                checked++;
                g_free(id);
                g_free(t);
                g_free(h);
            }
            message_proto_free(p);
            g_free(list_id);
            g_free(st);
            g_free(sh);
        }
    }
    g_assert_cmpint(checked, >=, 4 * 19);
    app_free(app);
    char *key = g_build_filename(dir, "secret.key", NULL);
    g_unlink(key);
    g_unlink(conf);
    g_rmdir(dir);
    g_free(key);
    g_free(text);
    g_free(conf);
    g_free(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    message_init();
    g_test_add_func("/message/proto/random", test_random);
    g_test_add_func("/message/proto/refuses-control-chars", test_refuses_control_chars);
    g_test_add_func("/message/proto/repo-lessons", test_repo_lessons);
    return g_test_run();
}
