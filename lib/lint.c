/* lint.c - owns the whole-course check. Loading a course stops at its first
 * error (a daemon must not run half a course), but an author fixing a
 * course wants every problem at once: so each course is loaded on its own,
 * its lessons are linted (raw HTML, placeholders, link schemes), and the
 * templates are checked for unknown placeholders. */
#include <string.h>
#include "lint.h"
#include "course.h"
#include "error.h"
#include "render.h"

int lint_courses(const struct config *cfg, const char *slug, GPtrArray *problems)
{
    GError *err = NULL;
    struct render_set *tpl = render_load(cfg->templates, &err);
    if (!tpl) {
        g_ptr_array_add(problems, g_strdup(err->message));
        g_clear_error(&err);
    }
    GPtrArray *slugs = course_list_slugs(cfg->courses, &err);
    if (!slugs) {
        g_ptr_array_add(problems, g_strdup(err->message));
        g_error_free(err);
        render_free(tpl);
        return -1;
    }
    if (slug && !g_ptr_array_find_with_equal_func(slugs, slug, g_str_equal, NULL)) {
        g_ptr_array_add(problems, g_strdup_printf("%s: no course '%s' here", cfg->courses, slug));
        g_ptr_array_unref(slugs);
        render_free(tpl);
        return -1;
    }
    int checked = 0;
    for (guint i = 0; i < slugs->len; i++) {
        const char *s = slugs->pdata[i];
        if (slug && strcmp(slug, s) != 0)
            continue;
        checked++;
        char *dir = g_build_filename(cfg->courses, s, NULL);
        struct course *c = course_load(dir, s, cfg->domain, &err);
        g_free(dir);
        if (!c) {
            g_ptr_array_add(problems, g_strdup(err->message));
            g_clear_error(&err);
            continue;
        }
        if (c->next_course && !g_ptr_array_find_with_equal_func(slugs, c->next_course, g_str_equal, NULL))
            g_ptr_array_add(problems, g_strdup_printf("%s/course.ini: next_course '%s' is not a course here",
                                                      c->dir, c->next_course));
        render_lint_course(c, problems);
        course_free(c);
    }
    g_ptr_array_unref(slugs);
    render_free(tpl);
    return checked;
}
