/* lint.c - owns the whole-course check. Loading a course refuses it on
 * its first fatal problem (a daemon must not run half a course), but an
 * author fixing a course wants every problem at once: so each course is
 * read as far as it goes (course_read collects the problems of its
 * folder, course.ini and lesson files), its lessons' Markdown is linted
 * (raw HTML, placeholders, link schemes), and the problems of one course
 * are printed in file and line order. The templates are checked for
 * unknown placeholders first. */
#include <stdlib.h>
#include <string.h>
#include "lint.h"
#include "course.h"
#include "error.h"
#include "lang.h"
#include "render.h"

/* Adds the "file:line: message" strings of render_lint_course about the
 * lessons of c to problems as course problems, so that they sort among
 * the others. */
static void add_render_problems(const struct course *c, GPtrArray *texts, GPtrArray *problems)
{
    for (guint i = 0; i < texts->len; i++) {
        const char *t = texts->pdata[i];
        const struct lesson *l = NULL;
        for (int k = 0; k < c->n_lessons && !l; k++) {
            size_t n = strlen(c->lessons[k].path);
            if (!strncmp(t, c->lessons[k].path, n) && t[n] == ':')
                l = &c->lessons[k];
        }
        if (!l) {
            course_problem_add(problems, TRUE, NULL, 0, "%s", t);
            continue;
        }
        char *end = NULL;
        long line = strtol(t + strlen(l->path) + 1, &end, 10);
        if (end && end[0] == ':' && end[1] == ' ')
            course_problem_add(problems, TRUE, l->path, (int)line, "%s", end + 2);
        else
            course_problem_add(problems, TRUE, l->path, 0, "%s", t + strlen(l->path) + 2);
    }
}

/* The language of c: a strings file for it under templates/strings/
 * (loadable: every key, every placeholder known), and its templates/<tag>/
 * folder if it has one; problems appended against course.ini's line. */
static void lint_language(const struct config *cfg, const struct course *c, GPtrArray *problems)
{
    if (!c->language)
        return;
    char *ini = g_build_filename(c->dir, "course.ini", NULL);
    char *sdir = g_build_filename(cfg->templates, "strings", NULL);
    char *path = lang_find(sdir, c->language);
    GError *e = NULL;
    struct lang *words = path ? lang_load(path, c->language, &e) : NULL;
    if (!path)
        course_problem_add(problems, TRUE, ini, c->language_line,
                           "language '%s': no strings file templates/strings/%s.ini", c->language,
                           c->language);
    else if (!words)
        course_problem_add(problems, TRUE, ini, c->language_line, "language '%s': %s", c->language,
                           e->message);
    g_clear_error(&e);
    lang_free(words);
    char *dir = g_build_filename(cfg->templates, c->language, NULL);
    struct render_set *set = NULL;
    if (strcmp(c->language, "en") != 0 && g_file_test(dir, G_FILE_TEST_IS_DIR) &&
        !render_load_dir(dir, NULL, &set, &e)) {
        course_problem_add(problems, TRUE, ini, c->language_line, "language '%s': %s", c->language,
                           e->message);
        g_clear_error(&e);
    }
    render_free(set);
    g_free(dir);
    g_free(path);
    g_free(sdir);
    g_free(ini);
}

/* Every problem of the course slug under cfg->courses (slugs: every
 * course there), in file and line order, appended to problems as
 * strings. */
static void lint_course(const struct config *cfg, const char *slug, GPtrArray *slugs, GPtrArray *problems)
{
    char *dir = g_build_filename(cfg->courses, slug, NULL);
    GPtrArray *found = course_problems_new();
    struct course *c = course_read(dir, slug, cfg->domain, found);
    if (c->next_course && !g_ptr_array_find_with_equal_func(slugs, c->next_course, g_str_equal, NULL)) {
        char *ini = g_build_filename(dir, "course.ini", NULL);
        course_problem_add(found, TRUE, ini, c->next_course_line, "next_course '%s' is not a course here",
                           c->next_course);
        g_free(ini);
    }
    lint_language(cfg, c, found);
    GPtrArray *texts = g_ptr_array_new_with_free_func(g_free);
    render_lint_course(c, texts);
    add_render_problems(c, texts, found);
    g_ptr_array_unref(texts);
    render_lint_overrides(dir, found); /* courses/<slug>/templates/ */
    course_problems_sort(found, dir);
    for (guint i = 0; i < found->len; i++)
        g_ptr_array_add(problems, course_problem_text(found->pdata[i]));
    g_ptr_array_unref(found);
    course_free(c);
    g_free(dir);
}

int lint_courses(const struct config *cfg, const char *slug, GPtrArray *problems)
{
    GError *err = NULL;
    struct render_set *tpl = render_load(cfg->templates, &err);
    if (!tpl) {
        g_ptr_array_add(problems, g_strdup(err->message));
        g_clear_error(&err);
    }
    render_free(tpl);
    GPtrArray *slugs = course_list_slugs(cfg->courses, &err);
    if (!slugs) {
        g_ptr_array_add(problems, g_strdup(err->message));
        g_error_free(err);
        return -1;
    }
    if (slug && !g_ptr_array_find_with_equal_func(slugs, slug, g_str_equal, NULL)) {
        g_ptr_array_add(problems, g_strdup_printf("%s: no course '%s' here", cfg->courses, slug));
        g_ptr_array_unref(slugs);
        return -1;
    }
    int checked = 0;
    for (guint i = 0; i < slugs->len; i++) {
        if (slug && strcmp(slug, slugs->pdata[i]) != 0)
            continue;
        checked++;
        lint_course(cfg, slugs->pdata[i], slugs, problems);
    }
    g_ptr_array_unref(slugs);
    return checked;
}
