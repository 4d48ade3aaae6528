/* test_course.c - unit tests of lib/course.c: reading and validating course
 * folders (course.ini + lessons/NN-slug.md) and the "file:line:" errors. */
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "course.h"
#include "error.h"
#include "pace.h"

#define DOMAIN "example.org"

static const char good_ini[] =
    "[course]\n"                              /* 1 */
    "title = Demo Course\n"                   /* 2 */
    "description = A course to test with.\n"  /* 3 */
    "schedule = FREQ=WEEKLY;BYDAY=MO,WE,FR\n" /* 4 */
    "time = 09:00\n"                          /* 5 */
    "timezone = Europe/Berlin\n"              /* 6 */
    "first_within = 24h\n";                   /* 7 */

struct file {
    const char *name; /* relative to the course folder */
    const char *text;
};

static const struct file good_lessons[] = {
    { "lessons/01-hello.md", "Subject: Hello there\n\nBody one.\n" },
    { "lessons/02-second-step.md", "Subject:   Second step  \n\n# Two\n\nBody two.\n" },
    { "lessons/03-last.md", "subject: The last one\r\n\r\nBody three.\r\n" },
    { NULL, NULL },
};

/* ---- scratch folders ---- */

struct fx {
    char *root;    /* tmp folder, holds courses/ */
    char *courses; /* root/courses */
};

static void rm_rf(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    if (d) {
        const char *name;
        while ((name = g_dir_read_name(d))) {
            char *sub = g_build_filename(path, name, NULL);
            rm_rf(sub);
            g_free(sub);
        }
        g_dir_close(d);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

static void fx_setup(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    f->root = g_dir_make_tmp("coursed-course-XXXXXX", &err);
    g_assert_no_error(err);
    f->courses = g_build_filename(f->root, "courses", NULL);
    g_assert_cmpint(g_mkdir_with_parents(f->courses, 0755), ==, 0);
}

static void fx_teardown(struct fx *f, gconstpointer data)
{
    (void)data;
    rm_rf(f->root);
    g_free(f->root);
    g_free(f->courses);
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    char *path = g_build_filename(dir, rel, NULL);
    char *parent = g_path_get_dirname(path);
    g_assert_cmpint(g_mkdir_with_parents(parent, 0755), ==, 0);
    GError *err = NULL;
    g_file_set_contents(path, text, -1, &err);
    g_assert_no_error(err);
    g_free(parent);
    g_free(path);
}

/* Creates courses/<slug> with ini (unless NULL) and the lesson files;
 * returns its folder (g_free). */
static char *make_course(struct fx *f, const char *slug, const char *ini, const struct file *files)
{
    char *dir = g_build_filename(f->courses, slug, NULL);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    if (ini)
        write_file(dir, "course.ini", ini);
    for (const struct file *x = files; x && x->name; x++)
        write_file(dir, x->name, x->text);
    return dir;
}

/* ---- a good course ---- */

static void test_good_course(struct fx *f, gconstpointer data)
{
    (void)data;
    char *dir = make_course(f, "demo", good_ini, good_lessons);
    GError *err = NULL;
    struct course *c = course_load(dir, "demo", DOMAIN, &err);
    g_assert_no_error(err);
    g_assert_nonnull(c);

    g_assert_cmpstr(c->slug, ==, "demo");
    g_assert_cmpstr(c->dir, ==, dir);
    g_assert_cmpstr(c->title, ==, "Demo Course");
    g_assert_cmpstr(c->description, ==, "A course to test with.");
    g_assert_cmpstr(c->sender, ==, "demo@" DOMAIN);
    g_assert_cmpstr(c->sender_name, ==, "Demo Course"); /* defaults to title */
    g_assert_cmpstr(c->source, ==, "");
    g_assert_cmpstr(c->schedule, ==, "FREQ=WEEKLY;BYDAY=MO,WE,FR");
    g_assert_cmpstr(c->time, ==, "09:00");
    g_assert_cmpstr(c->tz, ==, "Europe/Berlin");
    g_assert_cmpint(c->first_within, ==, 86400);
    g_assert_cmpstr(c->rule.rrule, ==, c->schedule);
    g_assert_cmpstr(c->rule.tz, ==, c->tz);
    g_assert_cmpint(c->rule.hour, ==, 9);
    g_assert_cmpint(c->rule.minute, ==, 0);

    g_assert_cmpint(c->n_lessons, ==, 3);
    static const struct {
        const char *slug, *subject, *body;
    } want[] = {
        { "hello", "Hello there", "Body one.\n" },
        { "second-step", "Second step", "# Two\n\nBody two.\n" },
        { "last", "The last one", "Body three.\r\n" },
    };
    for (int i = 0; i < 3; i++) {
        const struct lesson *l = &c->lessons[i];
        g_assert_cmpint(l->n, ==, i + 1);
        g_assert_cmpstr(l->slug, ==, want[i].slug);
        g_assert_cmpstr(l->subject, ==, want[i].subject);
        g_assert_cmpstr(l->body, ==, want[i].body);
        g_assert_cmpint(l->body_line, ==, 3);
        char *path = g_build_filename(dir, good_lessons[i].name, NULL);
        g_assert_cmpstr(l->path, ==, path);
        g_free(path);
        g_assert_true(course_lesson(c, i + 1) == l);
    }
    g_assert_null(course_lesson(c, 0));
    g_assert_null(course_lesson(c, 4));
    g_assert_null(course_lesson(c, -1));
    g_assert_null(course_lesson(NULL, 1));

    course_free(c);
    course_free(NULL);
    g_free(dir);
}

static void test_optional_fields(struct fx *f, gconstpointer data)
{
    (void)data;
    /* No timezone: UTC. Explicit sender and sender_name are kept. A
     * multi-line header and the body line are counted. */
    static const struct file lessons[] = {
        { "lessons/01-only.md", "Subject: First\nSubject: Really first\n\nText.\n" },
        { "lessons/README.txt", "not a lesson: ignored\n" },
        { NULL, NULL },
    };
    char *dir = make_course(f, "opt-1",
                            "[course]\n"
                            "title = Opt\n"
                            "sender = hello@lists.example.org\n"
                            "sender_name = The Opt Team\n"
                            "source = After a talk.\n"
                            "schedule = FREQ=DAILY\n"
                            "time = 18:30\n",
                            lessons);
    GError *err = NULL;
    struct course *c = course_load(dir, "opt-1", DOMAIN, &err);
    g_assert_no_error(err);
    g_assert_nonnull(c);
    g_assert_cmpstr(c->tz, ==, "UTC");
    g_assert_cmpstr(c->sender, ==, "hello@lists.example.org");
    g_assert_cmpstr(c->sender_name, ==, "The Opt Team");
    g_assert_cmpstr(c->source, ==, "After a talk.");
    g_assert_cmpstr(c->description, ==, "");
    g_assert_cmpint(c->first_within, ==, 0);
    g_assert_cmpint(c->rule.hour, ==, 18);
    g_assert_cmpint(c->rule.minute, ==, 30);
    g_assert_cmpint(c->n_lessons, ==, 1);
    g_assert_cmpstr(c->lessons[0].subject, ==, "Really first");
    g_assert_cmpint(c->lessons[0].body_line, ==, 4);
    g_assert_cmpstr(c->lessons[0].body, ==, "Text.\n");
    course_free(c);
    g_free(dir);
}

/* ---- errors: table of broken courses ---- */

struct bad_case {
    const char *name;
    const char *ini;        /* NULL: good_ini */
    struct file lessons[4]; /* empty: good_lessons */
    const char *file;       /* expected in the message, relative to the course */
    int line;               /* expected "file:line:"; 0: no line, just "file:" */
    const char *needle;     /* also expected in the message, or NULL */
};

#define L3(a, b, c)                                                                   \
    {                                                                                 \
        { "lessons/01-a.md", a }, { "lessons/02-b.md", b }, { "lessons/03-c.md", c }, \
        {                                                                             \
            NULL, NULL                                                                \
        }                                                                             \
    }
#define OK_LESSON "Subject: Fine\n\nFine.\n"

static const struct bad_case bad_cases[] = {
    { "empty title",
      "[course]\ntitle =\nschedule = FREQ=DAILY\ntime = 09:00\n",
      { { NULL, NULL } },
      "course.ini",
      2,
      "title" },
    { "unknown key",
      "[course]\ntitle = T\nschedule = FREQ=DAILY\ncolour = blue\ntime = 09:00\n",
      { { NULL, NULL } },
      "course.ini",
      4,
      "colour" },
    { "unknown key, indented",
      "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 09:00\n\n  titel = typo\n",
      { { NULL, NULL } },
      "course.ini",
      6,
      "titel" },
    { "unknown section",
      "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 09:00\n[extra]\nx = 1\n",
      { { NULL, NULL } },
      "course.ini",
      5,
      "extra" },
    { "bad time 25:00",
      "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 25:00\n",
      { { NULL, NULL } },
      "course.ini",
      4,
      "25:00" },
    { "bad time 9am",
      "[course]\ntitle = T\ntime = 9am\nschedule = FREQ=DAILY\n",
      { { NULL, NULL } },
      "course.ini",
      3,
      "9am" },
    { "bad timezone",
      "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 09:00\ntimezone = Mars/Olympus_Mons\n",
      { { NULL, NULL } },
      "course.ini",
      5,
      "Mars/Olympus_Mons" },
    { "RRULE with COUNT",
      "[course]\ntitle = T\ntime = 09:00\ntimezone = UTC\nschedule = FREQ=WEEKLY;BYDAY=MO;COUNT=3\n",
      { { NULL, NULL } },
      "course.ini",
      5,
      "COUNT" },
    { "RRULE with UNTIL",
      "[course]\ntitle = T\nschedule = FREQ=DAILY;UNTIL=20270101T000000Z\ntime = 09:00\n",
      { { NULL, NULL } },
      "course.ini",
      3,
      "UNTIL" },
    { "unparsable RRULE",
      "[course]\ntitle = T\nschedule = every monday please\ntime = 09:00\n",
      { { NULL, NULL } },
      "course.ini",
      3,
      "every monday please" },
    { "hourly RRULE",
      "[course]\ntitle = T\ntime = 09:00\nschedule = FREQ=HOURLY\n",
      { { NULL, NULL } },
      "course.ini",
      4,
      "FREQ=HOURLY" },
    { "sender with display name",
      "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 09:00\nsender = Demo <demo@example.org>\n",
      { { NULL, NULL } },
      "course.ini",
      5,
      "sender" },
    { "bad first_within",
      "[course]\ntitle = T\nschedule = FREQ=DAILY\ntime = 09:00\nfirst_within = soon\n",
      { { NULL, NULL } },
      "course.ini",
      5,
      "first_within" },
    { "lesson missing Subject", NULL, L3(OK_LESSON, "\nNo header at all.\n", OK_LESSON), "lessons/02-b.md", 1,
      "Subject" },
    { "lesson with empty Subject", NULL, L3(OK_LESSON, OK_LESSON, "Subject:   \n\nText.\n"),
      "lessons/03-c.md", 1, "Subject" },
    { "unknown header field", NULL, L3("Subject: A\nAuthor: Someone\n\nText.\n", OK_LESSON, OK_LESSON),
      "lessons/01-a.md", 2, "Author" },
    { "no blank line after header", NULL,
      L3(OK_LESSON, "Subject: B\nThe text starts right away\n", OK_LESSON), "lessons/02-b.md", 2, NULL },
    { "header never ends", NULL, L3(OK_LESSON, OK_LESSON, "Subject: C"), "lessons/03-c.md", 1, "blank line" },
    { "empty body", NULL, L3(OK_LESSON, "Subject: B\n\n   \n\n", OK_LESSON), "lessons/02-b.md", 3, "empty" },
    { "body missing entirely", NULL, L3(OK_LESSON, OK_LESSON, "Subject: C\n\n"), "lessons/03-c.md", 3,
      "empty" },
    { "gap in numbering",
      NULL,
      { { "lessons/01-a.md", OK_LESSON }, { "lessons/03-c.md", OK_LESSON }, { NULL, NULL } },
      "lessons/03-c.md",
      0,
      "02" },
    { "numbering starts at 02",
      NULL,
      { { "lessons/02-b.md", OK_LESSON }, { NULL, NULL } },
      "lessons/02-b.md",
      0,
      "01" },
    { "lesson name without number",
      NULL,
      { { "lessons/01-a.md", OK_LESSON }, { "lessons/intro.md", OK_LESSON }, { NULL, NULL } },
      "lessons/intro.md",
      0,
      NULL },
    { "lesson name with one digit",
      NULL,
      { { "lessons/1-a.md", OK_LESSON }, { NULL, NULL } },
      "lessons/1-a.md",
      0,
      NULL },
    { "lesson name with empty slug",
      NULL,
      { { "lessons/01-.md", OK_LESSON }, { NULL, NULL } },
      "lessons/01-.md",
      0,
      NULL },
    { "lesson slug with capitals",
      NULL,
      { { "lessons/01-Hello.md", OK_LESSON }, { NULL, NULL } },
      "lessons/01-Hello.md",
      0,
      "Hello" },
    { "lesson slug with underscore",
      NULL,
      { { "lessons/01-hello_world.md", OK_LESSON }, { NULL, NULL } },
      "lessons/01-hello_world.md",
      0,
      NULL },
    { "no lessons",
      NULL,
      { { "lessons/README.txt", "nothing here\n" }, { NULL, NULL } },
      "lessons",
      0,
      "no lessons" },
};

static void test_bad_courses(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        const struct bad_case *b = &bad_cases[i];
        struct fx f;
        fx_setup(&f, NULL);
        const struct file *lessons = b->lessons[0].name ? b->lessons : good_lessons;
        char *dir = make_course(&f, "broken", b->ini ? b->ini : good_ini, lessons);
        GError *err = NULL;
        struct course *c = course_load(dir, "broken", DOMAIN, &err);
        if (g_test_verbose() || !err)
            g_test_message("case '%s': %s", b->name, err ? err->message : "(loaded)");
        g_assert_null(c);
        g_assert_error(err, CD_ERROR, CD_ERR_INVALID);

        char *path = g_build_filename(dir, b->file, NULL);
        char *want = b->line > 0 ? g_strdup_printf("%s:%d: ", path, b->line) : g_strdup_printf("%s: ", path);
        if (!g_str_has_prefix(err->message, want))
            g_test_message("case '%s': expected the message to start with '%s'", b->name, want);
        g_assert_true(g_str_has_prefix(err->message, want));
        if (b->needle) {
            if (!strstr(err->message, b->needle))
                g_test_message("case '%s': expected '%s' in the message", b->name, b->needle);
            g_assert_nonnull(strstr(err->message, b->needle));
        }
        g_free(want);
        g_free(path);
        g_error_free(err);
        g_free(dir);
        fx_teardown(&f, NULL);
    }
}

/* A missing required key is reported against the file, with a line number
 * an editor can jump to. */
static void test_missing_required_key(struct fx *f, gconstpointer data)
{
    (void)data;
    static const struct {
        const char *ini;
        const char *key;
    } cases[] = {
        { "[course]\nschedule = FREQ=DAILY\ntime = 09:00\n", "title" },
        { "[course]\ntitle = T\ntime = 09:00\n", "schedule" },
        { "[course]\ntitle = T\nschedule = FREQ=DAILY\n", "time" },
    };
    gboolean line_zero = FALSE;
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *slug = g_strdup_printf("missing-%zu", i);
        char *dir = make_course(f, slug, cases[i].ini, good_lessons);
        GError *err = NULL;
        struct course *c = course_load(dir, slug, DOMAIN, &err);
        g_assert_null(c);
        g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
        g_test_message("missing %s: %s", cases[i].key, err->message);
        char *ini = g_build_filename(dir, "course.ini", NULL);
        g_assert_true(g_str_has_prefix(err->message, ini));
        g_assert_nonnull(strstr(err->message, cases[i].key));
        /* "file:N: ..." with N a number */
        const char *p = err->message + strlen(ini);
        g_assert_cmpint(*p, ==, ':');
        char *end = NULL;
        long line = strtol(p + 1, &end, 10);
        g_assert_true(end > p + 1);
        g_assert_cmpint(*end, ==, ':');
        if (line < 1)
            line_zero = TRUE;
        g_free(ini);
        g_error_free(err);
        g_free(dir);
        g_free(slug);
    }
    /* A missing key is reported at the [course] line, never at line 0. */
    g_assert_false(line_zero);
}

/* The line of a pace_check error is chosen by looking for "zone" in the
 * message, which also contains the schedule text itself. */
static void test_schedule_error_line(struct fx *f, gconstpointer data)
{
    (void)data;
    char *dir = make_course(f, "zone-words",
                            "[course]\n"
                            "title = T\n"
                            "schedule = weekly in my own time zone\n"
                            "time = 09:00\n"
                            "timezone = UTC\n",
                            good_lessons);
    GError *err = NULL;
    struct course *c = course_load(dir, "zone-words", DOMAIN, &err);
    g_assert_null(c);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_test_message("%s", err->message);
    char *want = g_build_filename(dir, "course.ini:3:", NULL);
    gboolean right_line = g_str_has_prefix(err->message, want);
    g_free(want);
    g_error_free(err);
    g_free(dir);
    g_assert_true(right_line);
}

static void test_bad_course_slug(struct fx *f, gconstpointer data)
{
    (void)data;
    char *dir = make_course(f, "Bad_Slug", good_ini, good_lessons);
    GError *err = NULL;
    struct course *c = course_load(dir, "Bad_Slug", DOMAIN, &err);
    g_assert_null(c);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message, "Bad_Slug"));
    g_error_free(err);
    g_free(dir);
}

static void test_missing_files(struct fx *f, gconstpointer data)
{
    (void)data;
    /* no course.ini */
    char *dir = make_course(f, "no-ini", NULL, good_lessons);
    GError *err = NULL;
    g_assert_null(course_load(dir, "no-ini", DOMAIN, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message, "course.ini"));
    g_clear_error(&err);
    g_free(dir);
    /* no lessons folder */
    dir = make_course(f, "no-lessons", good_ini, NULL);
    g_assert_null(course_load(dir, "no-lessons", DOMAIN, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message, "lessons"));
    g_clear_error(&err);
    g_free(dir);
}

/* ---- course_load_all / course_find ---- */

static void test_load_all(struct fx *f, gconstpointer data)
{
    (void)data;
    g_free(make_course(f, "zeta", good_ini, good_lessons));
    g_free(make_course(f, "alpha", good_ini, good_lessons));
    g_free(make_course(f, "mid-1", good_ini, good_lessons));
    /* not courses: no course.ini, hidden, a plain file */
    g_free(make_course(f, "drafts", NULL, good_lessons));
    g_free(make_course(f, ".hidden", "garbage", NULL));
    write_file(f->courses, "README.md", "Courses live here.\n");

    GError *err = NULL;
    GPtrArray *set = course_load_all(f->courses, DOMAIN, &err);
    g_assert_no_error(err);
    g_assert_nonnull(set);
    g_assert_cmpuint(set->len, ==, 3);
    static const char *order[] = { "alpha", "mid-1", "zeta" };
    for (guint i = 0; i < set->len; i++) {
        const struct course *c = set->pdata[i];
        g_assert_cmpstr(c->slug, ==, order[i]);
        g_assert_cmpint(c->n_lessons, ==, 3);
    }
    GPtrArray *slugs = course_list_slugs(f->courses, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(slugs->len, ==, 3);
    for (guint i = 0; i < slugs->len; i++)
        g_assert_cmpstr(slugs->pdata[i], ==, order[i]);
    g_ptr_array_unref(slugs);

    const struct course *c = course_find(set, "mid-1");
    g_assert_nonnull(c);
    g_assert_cmpstr(c->slug, ==, "mid-1");
    g_assert_cmpstr(c->sender, ==, "mid-1@" DOMAIN);
    g_assert_true(course_find(set, "alpha") == set->pdata[0]);
    g_assert_null(course_find(set, "drafts"));
    g_assert_null(course_find(set, "gamma"));
    g_assert_null(course_find(set, ""));
    g_assert_null(course_find(set, NULL));
    g_assert_null(course_find(NULL, "alpha"));
    g_ptr_array_unref(set);

    /* An empty folder is an empty set, not an error. */
    char *empty = g_build_filename(f->root, "empty", NULL);
    g_assert_cmpint(g_mkdir(empty, 0755), ==, 0);
    set = course_load_all(empty, DOMAIN, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(set->len, ==, 0);
    g_ptr_array_unref(set);
    g_free(empty);
}

static void test_load_all_errors(struct fx *f, gconstpointer data)
{
    (void)data;
    g_free(make_course(f, "alpha", good_ini, good_lessons));
    static const struct file broken[] = {
        { "lessons/01-a.md", OK_LESSON },
        { "lessons/02-b.md", "Subject: B\nX-Header: y\n\nText\n" },
        { NULL, NULL },
    };
    char *dir = make_course(f, "beta", good_ini, broken);
    GError *err = NULL;
    GPtrArray *set = course_load_all(f->courses, DOMAIN, &err);
    g_assert_null(set);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    char *want = g_build_filename(dir, "lessons", "02-b.md:2:", NULL);
    g_assert_nonnull(strstr(err->message, want));
    g_free(want);
    g_clear_error(&err);
    g_free(dir);

    /* a missing folder */
    char *nowhere = g_build_filename(f->root, "nowhere", NULL);
    g_assert_null(course_load_all(nowhere, DOMAIN, &err));
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message, nowhere));
    g_clear_error(&err);
    g_free(nowhere);
}

/* ---- course_slug_valid ---- */

static void test_slug_valid(void)
{
    static const struct {
        const char *slug;
        gboolean ok;
    } cases[] = {
        { "release", TRUE },
        { "leaving-kindly", TRUE },
        { "a", TRUE },
        { "0", TRUE },
        { "course-2", TRUE },
        { "2026-spring", TRUE },
        { "a--b", TRUE },
        { "", FALSE },
        { NULL, FALSE },
        { "-leading", FALSE },
        { "Release", FALSE },
        { "with space", FALSE },
        { "under_score", FALSE },
        { "dot.ted", FALSE },
        { "slash/ed", FALSE },
        { "..", FALSE },
        { "caf\xc3\xa9", FALSE },
        { "tab\t", FALSE },
        /* 64 characters is the limit */
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", TRUE },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", FALSE },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        gboolean ok = course_slug_valid(cases[i].slug);
        if (ok != cases[i].ok)
            g_test_message("case '%s'", cases[i].slug ? cases[i].slug : "(null)");
        g_assert_cmpint(ok, ==, cases[i].ok);
    }
}

/* ---- the courses shipped in the repository ---- */

static void test_repo_courses(void)
{
    const char *src = g_getenv("COURSED_SOURCE_DIR");
    if (!src || !*src) {
        g_test_skip("COURSED_SOURCE_DIR is not set");
        return;
    }
    char *dir = g_build_filename(src, "courses", NULL);
    GError *err = NULL;
    GPtrArray *set = course_load_all(dir, DOMAIN, &err);
    g_assert_no_error(err);
    g_assert_nonnull(set);
    static const struct {
        const char *slug;
        int min_lessons;
    } want[] = {
        { "release", 12 },
        { "leaving-kindly", 5 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        const struct course *c = course_find(set, want[i].slug);
        g_assert_nonnull(c);
        g_assert_cmpint(c->n_lessons, >=, want[i].min_lessons);
        g_assert_true(strchr(c->sender, '@') != NULL);
        g_assert_true(*c->title);
        g_assert_true(pace_tz_valid(c->tz));
        for (int n = 1; n <= c->n_lessons; n++) {
            const struct lesson *l = course_lesson(c, n);
            g_assert_nonnull(l);
            g_assert_true(l->subject && *l->subject);
            g_assert_true(l->body && *l->body);
            g_assert_true(course_slug_valid(l->slug));
        }
    }
    g_ptr_array_unref(set);
    g_free(dir);
}

#define ADD(name, fn) g_test_add(name, struct fx, NULL, fx_setup, fn, fx_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    pace_init();
    ADD("/course/load/good", test_good_course);
    ADD("/course/load/optional-fields", test_optional_fields);
    g_test_add_func("/course/load/errors", test_bad_courses);
    ADD("/course/load/missing-required-key", test_missing_required_key);
    ADD("/course/load/schedule-error-line", test_schedule_error_line);
    ADD("/course/load/bad-course-slug", test_bad_course_slug);
    ADD("/course/load/missing-files", test_missing_files);
    ADD("/course/load-all/good", test_load_all);
    ADD("/course/load-all/errors", test_load_all_errors);
    g_test_add_func("/course/slug-valid", test_slug_valid);
    g_test_add_func("/course/repo-courses", test_repo_courses);
    return g_test_run();
}
